//! The run's aggregate: every thread's drained samples folded into run totals, plus
//! one summary row per second for progress and reports. Outputs read only this.

use super::series::{Str, Tags};
use super::sink::{Sink, Stat};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// One second of the run, summarised (what the live view and history charts need).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct IntervalRow {
    /// Seconds since the run started, at the end of the interval.
    pub t_s: f64,
    /// HTTP requests completed in the interval.
    pub requests: u64,
    /// Logical HTTP requests that failed in the interval.
    pub failures: u64,
    /// VUs running at the end of the interval.
    pub vus: u64,
    /// Iterations completed in the interval.
    pub iterations: u64,
    /// Latency percentiles of the interval's requests (ms), when there were any.
    pub p50_ms: Option<f64>,
    /// See `p50_ms`.
    pub p95_ms: Option<f64>,
    /// See `p50_ms`.
    pub p99_ms: Option<f64>,
}

/// One second of one phase or one request name (for per-phase and per-name charts).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct GroupRow {
    /// Seconds since the run started, at the end of the interval.
    pub t_s: f64,
    /// `phase` or `name`: which tag `key` is a value of.
    pub group: &'static str,
    /// The phase's or request's name.
    pub key: String,
    /// HTTP requests completed in the interval.
    pub requests: u64,
    /// Logical HTTP requests that failed in the interval.
    pub failures: u64,
    /// Latency percentiles of the interval (ms).
    pub p50_ms: Option<f64>,
    /// See `p50_ms`.
    pub p95_ms: Option<f64>,
    /// See `p50_ms`.
    pub p99_ms: Option<f64>,
}

/// The interval's running totals of one phase or request name: two counts and a
/// latency histogram, merged in place (no clone per sample batch once it exists).
#[derive(Default)]
struct GroupAcc {
    requests: u64,
    failures: u64,
    durations: Option<Sink>,
}

/// Run totals per series, and the per-second history.
pub struct Aggregate {
    series: HashMap<Str, HashMap<Tags, Sink>>,
    interval: HashMap<Str, Sink>,
    interval_groups: BTreeMap<(&'static str, Str), GroupAcc>,
    started: Instant,
    history: Vec<IntervalRow>,
    group_history: Vec<GroupRow>,
}

impl Aggregate {
    /// An empty aggregate whose clock starts now.
    pub fn new() -> Aggregate {
        Aggregate {
            series: HashMap::new(),
            interval: HashMap::new(),
            interval_groups: BTreeMap::new(),
            started: Instant::now(),
            history: Vec::new(),
            group_history: Vec::new(),
        }
    }

    /// When the run started.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Folds one thread's drained samples in.
    pub fn merge(&mut self, drained: Vec<(Str, Tags, Sink)>) {
        for (name, tags, sink) in drained {
            if matches!(&*name, "http_reqs" | "http_req_failed" | "http_req_duration" | "iterations") {
                match self.interval.get_mut(&name) {
                    Some(s) => s.merge(&sink),
                    None => {
                        self.interval.insert(name.clone(), sink.clone());
                    }
                }
                self.merge_groups(&name, &tags, &sink);
            }
            let by_tags = self.series.entry(name).or_default();
            match by_tags.get_mut(&tags) {
                Some(s) => s.merge(&sink),
                None => {
                    by_tags.insert(tags, sink);
                }
            }
        }
    }

    fn merge_groups(&mut self, name: &str, tags: &Tags, sink: &Sink) {
        for group in ["phase", "name"] {
            let Some(key) = tags.get(group) else { continue };
            let acc = match self.interval_groups.get_mut(&(group, Str::from(key))) {
                Some(acc) => acc,
                None => self.interval_groups.entry((group, Str::from(key))).or_default(),
            };
            match (name, sink) {
                ("http_reqs", Sink::Counter(c)) => acc.requests += c.sum as u64,
                ("http_req_failed", Sink::Rate(r)) => acc.failures += r.trues,
                ("http_req_duration", _) => match &mut acc.durations {
                    Some(d) => d.merge(sink),
                    None => acc.durations = Some(sink.clone()),
                },
                _ => {}
            }
        }
    }

    /// Closes the current one-second interval into the history.
    pub fn close_interval(&mut self, vus: u64) -> IntervalRow {
        let mut row = IntervalRow { t_s: self.started.elapsed().as_secs_f64(), vus, ..Default::default() };
        let z = Duration::ZERO;
        if let Some(s) = self.interval.get("http_reqs") {
            row.requests = s.stat(Stat::Count, z).ok().flatten().unwrap_or(0.0) as u64;
        }
        if let Some(s) = self.interval.get("iterations") {
            row.iterations = s.stat(Stat::Count, z).ok().flatten().unwrap_or(0.0) as u64;
        }
        if let Some(s) = self.interval.get("http_req_failed") {
            row.failures = s.stat(Stat::Count, z).ok().flatten().unwrap_or(0.0) as u64;
        }
        if let Some(s) = self.interval.get("http_req_duration") {
            row.p50_ms = s.stat(Stat::Percentile(50.0), z).ok().flatten();
            row.p95_ms = s.stat(Stat::Percentile(95.0), z).ok().flatten();
            row.p99_ms = s.stat(Stat::Percentile(99.0), z).ok().flatten();
        }
        self.interval.clear();
        for ((group, key), acc) in std::mem::take(&mut self.interval_groups) {
            let p = |q: f64| acc.durations.as_ref().and_then(|d| d.stat(Stat::Percentile(q), z).ok().flatten());
            self.group_history.push(GroupRow {
                t_s: row.t_s,
                group,
                key: key.to_string(),
                requests: acc.requests,
                failures: acc.failures,
                p50_ms: p(50.0),
                p95_ms: p(95.0),
                p99_ms: p(99.0),
            });
        }
        self.history.push(row.clone());
        row
    }

    /// The per-second history so far.
    pub fn history(&self) -> &[IntervalRow] {
        &self.history
    }

    /// Per-second rows per phase and per request name (only those with traffic).
    pub fn group_history(&self) -> &[GroupRow] {
        &self.group_history
    }

    /// Every series of a metric whose tags contain all `filters`, merged; `None` when
    /// no series matched.
    pub fn query(&self, metric: &str, filters: &[(String, String)]) -> Option<Sink> {
        let mut out: Option<Sink> = None;
        for (tags, sink) in self.series.get(metric)? {
            if tags.contains_all(filters) {
                match &mut out {
                    Some(acc) => acc.merge(sink),
                    None => out = Some(sink.clone()),
                }
            }
        }
        out
    }

    /// Like [`Aggregate::query`], grouped by the value of one tag (series without it are
    /// left out).
    pub fn group_by(&self, metric: &str, key: &str, filters: &[(String, String)]) -> BTreeMap<String, Sink> {
        let mut out: BTreeMap<String, Sink> = BTreeMap::new();
        let Some(by_tags) = self.series.get(metric) else { return out };
        for (tags, sink) in by_tags {
            let (true, Some(value)) = (tags.contains_all(filters), tags.get(key)) else { continue };
            match out.get_mut(value) {
                Some(acc) => acc.merge(sink),
                None => {
                    out.insert(value.to_string(), sink.clone());
                }
            }
        }
        out
    }

    /// Distinct tag sets of a metric matching `filters` (for grouping by several tags).
    pub fn series_of(&self, metric: &str) -> Vec<(&Tags, &Sink)> {
        self.series.get(metric).map(|m| m.iter().collect()).unwrap_or_default()
    }
}

impl Default for Aggregate {
    fn default() -> Self {
        Aggregate::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::series::{Store, builtin};

    fn tags(pairs: &[(&str, &str)]) -> Tags {
        Tags::new(pairs.iter().map(|(k, v)| (Str::from(*k), Str::from(*v))).collect())
    }

    #[test]
    fn query_merges_matching_series_from_several_threads() {
        let mut agg = Aggregate::new();
        for worker in 0..2 {
            let mut store = Store::default();
            for i in 0..10 {
                let status = if i % 5 == 0 { "500" } else { "200" };
                let t = tags(&[("phase", "peak"), ("status", status), ("w", if worker == 0 { "0" } else { "1" })]);
                store.add(&builtin::HTTP_REQ_DURATION, &t, (i + 1) as f64);
            }
            agg.merge(store.drain());
        }
        let peak = agg.query("http_req_duration", &[("phase".into(), "peak".into())]).unwrap();
        assert_eq!(peak.stat(Stat::Count, Duration::ZERO).unwrap(), Some(20.0));
        let errors = agg.query("http_req_duration", &[("status".into(), "500".into())]).unwrap();
        assert_eq!(errors.stat(Stat::Count, Duration::ZERO).unwrap(), Some(4.0));
        assert!(agg.query("http_req_duration", &[("phase".into(), "other".into())]).is_none());
        let by_status = agg.group_by("http_req_duration", "status", &[]);
        assert_eq!(by_status.keys().collect::<Vec<_>>(), vec!["200", "500"]);
    }

    #[test]
    fn intervals_summarise_and_reset() {
        let mut agg = Aggregate::new();
        let mut store = Store::default();
        let t = tags(&[]);
        for _ in 0..3 {
            store.add(&builtin::HTTP_REQS, &t, 1.0);
            store.add(&builtin::HTTP_REQ_FAILED, &t, 0.0);
        }
        store.add(&builtin::HTTP_REQ_FAILED, &t, 1.0);
        agg.merge(store.drain());
        let row = agg.close_interval(7);
        assert_eq!((row.requests, row.failures, row.vus), (3, 1, 7));
        let row = agg.close_interval(0);
        assert_eq!(row.requests, 0);
        assert_eq!(agg.history().len(), 2);
    }

    #[test]
    fn intervals_are_also_kept_per_phase_and_per_name() {
        let mut agg = Aggregate::new();
        let mut store = Store::default();
        for (phase, name, ms) in [("warm", "a", 10.0), ("warm", "b", 20.0), ("peak", "a", 30.0)] {
            let t = tags(&[("phase", phase), ("name", name)]);
            store.add(&builtin::HTTP_REQS, &t, 1.0);
            store.add(&builtin::HTTP_REQ_FAILED, &t, if name == "b" { 1.0 } else { 0.0 });
            store.add(&builtin::HTTP_REQ_DURATION, &t, ms);
        }
        agg.merge(store.drain());
        agg.close_interval(1);
        let rows: Vec<(&str, &str, u64, u64, Option<f64>)> = agg
            .group_history()
            .iter()
            .map(|r| (r.group, r.key.as_str(), r.requests, r.failures, r.p50_ms.map(f64::round)))
            .collect();
        assert_eq!(
            rows,
            [
                ("name", "a", 2, 0, Some(10.0)),
                ("name", "b", 1, 1, Some(20.0)),
                ("phase", "peak", 1, 0, Some(30.0)),
                ("phase", "warm", 2, 1, Some(10.0)),
            ]
        );
    }
}
