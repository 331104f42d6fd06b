//! Sinks: the four metric types (counter, gauge, rate, trend) and the statistics a
//! threshold or report may read from them. A sink is mergeable, so per-thread sinks
//! fold into run totals without re-reading samples.

use hdrhistogram::Histogram;
use std::time::Duration;

/// The kind of a metric, as in k6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricKind {
    /// A sum that only grows (`http_reqs`, `data_sent`).
    Counter,
    /// The last value set, with its min and max (`vus`).
    Gauge,
    /// The share of non-zero samples (`http_req_failed`, `checks`).
    Rate,
    /// A distribution of values (`http_req_duration`), kept in an HDR histogram.
    Trend,
}

impl MetricKind {
    /// The lowercase name used in scripts and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Rate => "rate",
            MetricKind::Trend => "trend",
        }
    }

    /// The statistics a threshold may use on this kind (k6's table).
    pub fn allowed_stats(self) -> &'static str {
        match self {
            MetricKind::Counter => "count, rate",
            MetricKind::Gauge => "value",
            MetricKind::Rate => "rate",
            MetricKind::Trend => "avg, min, max, med, p(N), count",
        }
    }
}

/// One statistic of a sink.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stat {
    /// Mean of a trend.
    Avg,
    /// Smallest value of a trend.
    Min,
    /// Largest value of a trend.
    Max,
    /// Median of a trend (= p(50)).
    Med,
    /// Percentile of a trend, 0..=100.
    Percentile(f64),
    /// Sum of a counter, or number of samples of a trend.
    Count,
    /// Share of non-zero samples of a rate; per-second rate of a counter.
    Rate,
    /// Last value of a gauge.
    Value,
}

impl std::fmt::Display for Stat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stat::Avg => f.write_str("avg"),
            Stat::Min => f.write_str("min"),
            Stat::Max => f.write_str("max"),
            Stat::Med => f.write_str("med"),
            Stat::Percentile(p) => write!(f, "p({p})"),
            Stat::Count => f.write_str("count"),
            Stat::Rate => f.write_str("rate"),
            Stat::Value => f.write_str("value"),
        }
    }
}

/// Trend values are recorded in thousandths (microseconds for millisecond trends), so
/// the histogram keeps three decimals of the script's unit.
pub const TREND_SCALE: f64 = 1000.0;

/// A counter: a growing sum.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counter {
    /// Sum of all added values.
    pub sum: f64,
}

/// A gauge: the last value, plus the extremes seen.
#[derive(Debug, Clone, PartialEq)]
pub struct Gauge {
    /// The last value set.
    pub last: f64,
    /// The smallest value set.
    pub min: f64,
    /// The largest value set.
    pub max: f64,
}

/// A rate: how many samples were non-zero out of all.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rate {
    /// Non-zero samples.
    pub trues: u64,
    /// All samples.
    pub total: u64,
}

/// A trend: an HDR histogram of values (in thousandths) plus exact sum, min and max.
#[derive(Debug, Clone)]
pub struct Trend {
    /// Values times [`TREND_SCALE`], 3 significant figures, auto-resizing.
    pub hist: Histogram<u64>,
    /// Exact sum of the values, for the mean.
    pub sum: f64,
    /// Exact smallest value.
    pub min: f64,
    /// Exact largest value.
    pub max: f64,
}

impl Default for Trend {
    fn default() -> Self {
        Trend {
            hist: Histogram::new(3).expect("3 significant figures is a valid histogram"),
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }
}

impl Trend {
    /// Number of values recorded.
    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    /// Adds one value (negative values are clamped to zero in the histogram, kept in min).
    pub fn add(&mut self, value: f64) {
        let scaled = (value.max(0.0) * TREND_SCALE).round() as u64;
        // `record` grows the auto-resizing histogram; `saturating_record` never resizes
        // and would clamp every value above the initial range (~2 ms) to it.
        if self.hist.record(scaled).is_err() {
            self.hist.saturating_record(scaled);
        }
        self.sum += value;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
    }

    /// The value at a percentile 0..=100, in the script's unit; `None` when empty.
    pub fn percentile(&self, p: f64) -> Option<f64> {
        if self.count() == 0 {
            return None;
        }
        // The histogram's highest-equivalent value can exceed the exact max: clamp, so a
        // report never shows p99 > max (a classic Locust complaint).
        let v = self.hist.value_at_quantile(p / 100.0) as f64 / TREND_SCALE;
        Some(v.clamp(self.min, self.max))
    }

    /// The mean; `None` when empty.
    pub fn mean(&self) -> Option<f64> {
        (self.count() > 0).then(|| self.sum / self.count() as f64)
    }

    /// The standard deviation (from the histogram); `None` when empty.
    pub fn stdev(&self) -> Option<f64> {
        (self.count() > 0).then(|| self.hist.stdev() / TREND_SCALE)
    }
}

/// One series' accumulated samples.
#[derive(Debug, Clone)]
pub enum Sink {
    /// See [`Counter`].
    Counter(Counter),
    /// See [`Gauge`].
    Gauge(Gauge),
    /// See [`Rate`].
    Rate(Rate),
    /// See [`Trend`].
    Trend(Box<Trend>),
}

/// A statistic that does not apply to a metric kind.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{stat} does not apply to a {kind} metric (use {allowed})", kind = kind.as_str(), allowed = kind.allowed_stats())]
pub struct StatError {
    /// The statistic asked for.
    pub stat: Stat,
    /// The metric's kind.
    pub kind: MetricKind,
}

impl Sink {
    /// An empty sink of a kind.
    pub fn new(kind: MetricKind) -> Sink {
        match kind {
            MetricKind::Counter => Sink::Counter(Counter::default()),
            MetricKind::Gauge => Sink::Gauge(Gauge { last: 0.0, min: f64::INFINITY, max: f64::NEG_INFINITY }),
            MetricKind::Rate => Sink::Rate(Rate::default()),
            MetricKind::Trend => Sink::Trend(Box::default()),
        }
    }

    /// This sink's kind.
    pub fn kind(&self) -> MetricKind {
        match self {
            Sink::Counter(_) => MetricKind::Counter,
            Sink::Gauge(_) => MetricKind::Gauge,
            Sink::Rate(_) => MetricKind::Rate,
            Sink::Trend(_) => MetricKind::Trend,
        }
    }

    /// Adds one sample.
    pub fn add(&mut self, value: f64) {
        match self {
            Sink::Counter(c) => c.sum += value,
            Sink::Gauge(g) => {
                g.last = value;
                g.min = g.min.min(value);
                g.max = g.max.max(value);
            }
            Sink::Rate(r) => {
                r.total += 1;
                if value != 0.0 {
                    r.trues += 1;
                }
            }
            Sink::Trend(t) => t.add(value),
        }
    }

    /// Folds another sink of the same kind into this one (a later gauge wins `last`).
    pub fn merge(&mut self, other: &Sink) {
        match (self, other) {
            (Sink::Counter(a), Sink::Counter(b)) => a.sum += b.sum,
            (Sink::Gauge(a), Sink::Gauge(b)) if b.min.is_finite() => {
                a.last = b.last;
                a.min = a.min.min(b.min);
                a.max = a.max.max(b.max);
            }
            (Sink::Rate(a), Sink::Rate(b)) => {
                a.trues += b.trues;
                a.total += b.total;
            }
            (Sink::Trend(a), Sink::Trend(b)) if b.count() > 0 => {
                // Same precision on both sides; a histogram read back from a file has a
                // fixed range until told to grow, so grow rather than lose samples.
                if a.hist.add(&b.hist).is_err() {
                    a.hist.auto(true);
                    let _ = a.hist.add(&b.hist);
                }
                a.sum += b.sum;
                a.min = a.min.min(b.min);
                a.max = a.max.max(b.max);
            }
            // An empty gauge or trend adds nothing. Kinds are fixed per metric name by the
            // registry; mixing is a bug upstream, and ignoring it keeps a report alive
            // rather than panicking.
            _ => {}
        }
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        match self {
            Sink::Counter(c) => c.sum == 0.0,
            Sink::Gauge(g) => !g.min.is_finite(),
            Sink::Rate(r) => r.total == 0,
            Sink::Trend(t) => t.count() == 0,
        }
    }

    /// Reads a statistic. `elapsed` is the time the counter ran, for a counter's rate.
    /// Empty sinks give `Ok(None)`: "no data", which thresholds treat as not passed.
    pub fn stat(&self, stat: Stat, elapsed: Duration) -> Result<Option<f64>, StatError> {
        let bad = || StatError { stat, kind: self.kind() };
        Ok(match (self, stat) {
            (Sink::Counter(c), Stat::Count) => Some(c.sum),
            (Sink::Counter(c), Stat::Rate) => {
                let secs = elapsed.as_secs_f64();
                Some(if secs > 0.0 { c.sum / secs } else { 0.0 })
            }
            (Sink::Gauge(g), Stat::Value) => g.min.is_finite().then_some(g.last),
            (Sink::Gauge(g), Stat::Min) => g.min.is_finite().then_some(g.min),
            (Sink::Gauge(g), Stat::Max) => g.min.is_finite().then_some(g.max),
            (Sink::Rate(r), Stat::Rate) => (r.total > 0).then(|| r.trues as f64 / r.total as f64),
            (Sink::Rate(r), Stat::Count) => Some(r.trues as f64),
            (Sink::Trend(t), Stat::Avg) => t.mean(),
            (Sink::Trend(t), Stat::Min) => (t.count() > 0).then_some(t.min),
            (Sink::Trend(t), Stat::Max) => (t.count() > 0).then_some(t.max),
            (Sink::Trend(t), Stat::Med) => t.percentile(50.0),
            (Sink::Trend(t), Stat::Percentile(p)) => t.percentile(p),
            (Sink::Trend(t), Stat::Count) => Some(t.count() as f64),
            _ => return Err(bad()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trend_percentiles_stay_within_min_and_max() {
        let mut t = Sink::new(MetricKind::Trend);
        for v in 1..=1000 {
            t.add(v as f64 / 10.0);
        }
        let z = Duration::ZERO;
        assert_eq!(t.stat(Stat::Min, z).unwrap(), Some(0.1));
        assert_eq!(t.stat(Stat::Max, z).unwrap(), Some(100.0));
        let p95 = t.stat(Stat::Percentile(95.0), z).unwrap().unwrap();
        assert!((p95 - 95.0).abs() < 0.1, "{p95}");
        let p100 = t.stat(Stat::Percentile(100.0), z).unwrap().unwrap();
        assert_eq!(p100, 100.0);
        assert!((t.stat(Stat::Avg, z).unwrap().unwrap() - 50.05).abs() < 1e-9);
    }

    #[test]
    fn merging_equals_recording_in_one_place() {
        let (mut a, mut b, mut all) =
            (Sink::new(MetricKind::Trend), Sink::new(MetricKind::Trend), Sink::new(MetricKind::Trend));
        for v in 0..500 {
            a.add(v as f64);
            all.add(v as f64);
        }
        for v in 500..1000 {
            b.add(v as f64);
            all.add(v as f64);
        }
        a.merge(&b);
        let z = Duration::ZERO;
        for s in [Stat::Avg, Stat::Min, Stat::Max, Stat::Med, Stat::Percentile(99.0), Stat::Count] {
            assert_eq!(a.stat(s, z).unwrap(), all.stat(s, z).unwrap(), "{s}");
        }
    }

    #[test]
    fn rates_counters_and_gauges() {
        let mut r = Sink::new(MetricKind::Rate);
        for v in [1.0, 0.0, 1.0, 1.0] {
            r.add(v);
        }
        assert_eq!(r.stat(Stat::Rate, Duration::ZERO).unwrap(), Some(0.75));
        let mut c = Sink::new(MetricKind::Counter);
        c.add(30.0);
        assert_eq!(c.stat(Stat::Rate, Duration::from_secs(10)).unwrap(), Some(3.0));
        let mut g = Sink::new(MetricKind::Gauge);
        g.add(5.0);
        g.add(2.0);
        assert_eq!(g.stat(Stat::Value, Duration::ZERO).unwrap(), Some(2.0));
        assert_eq!(g.stat(Stat::Max, Duration::ZERO).unwrap(), Some(5.0));
    }

    #[test]
    fn wrong_stat_for_kind_is_an_error_naming_the_allowed_ones() {
        let e = Sink::new(MetricKind::Rate).stat(Stat::Percentile(95.0), Duration::ZERO).unwrap_err();
        assert_eq!(e.to_string(), "p(95) does not apply to a rate metric (use rate)");
    }

    #[test]
    fn empty_sinks_have_no_data() {
        assert_eq!(Sink::new(MetricKind::Trend).stat(Stat::Avg, Duration::ZERO).unwrap(), None);
        assert_eq!(Sink::new(MetricKind::Rate).stat(Stat::Rate, Duration::ZERO).unwrap(), None);
    }
}
