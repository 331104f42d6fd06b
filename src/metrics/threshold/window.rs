//! Sliding windows for conditions written `... over 30s`: the run's cumulative sink of a
//! selection is kept once per second, and the samples of the last N seconds are the
//! latest snapshot minus the one N seconds older. Subtracting cumulative sinks keeps
//! the memory per threshold at N + 1 sinks whatever the traffic.

use crate::metrics::sink::{Counter, Rate, Sink, TREND_SCALE, Trend};
use std::collections::VecDeque;
use std::time::Duration;

/// The samples recorded between two cumulative sinks of one selection (`before` is
/// the older one; `None` when nothing was recorded yet). A gauge's window is its
/// latest state. `None` when nothing was recorded at all.
pub fn window_of(now: Option<&Sink>, before: Option<&Sink>) -> Option<Sink> {
    let now = now?;
    let Some(before) = before else { return Some(now.clone()) };
    Some(match (now, before) {
        (Sink::Counter(a), Sink::Counter(b)) => Sink::Counter(Counter { sum: a.sum - b.sum }),
        (Sink::Rate(a), Sink::Rate(b)) => {
            Sink::Rate(Rate { trues: a.trues.saturating_sub(b.trues), total: a.total.saturating_sub(b.total) })
        }
        (Sink::Trend(a), Sink::Trend(b)) => {
            let mut hist = a.hist.clone();
            // Cumulative histograms only grow: the older one is contained in the newer.
            if hist.subtract(&b.hist).is_err() {
                return Some(now.clone());
            }
            let mut t = Trend { hist, sum: a.sum - b.sum, ..Trend::default() };
            if t.count() > 0 {
                // Exact extremes of a window are not kept: the histogram's are within
                // its precision (3 significant figures).
                t.min = (t.hist.min() as f64 / TREND_SCALE).max(a.min);
                t.max = (t.hist.max() as f64 / TREND_SCALE).min(a.max);
            }
            Sink::Trend(Box::new(t))
        }
        _ => now.clone(),
    })
}

/// Once-a-second cumulative snapshots of one selection, enough for windows up to a
/// length.
#[derive(Debug, Default)]
pub struct Windows {
    /// (second of the run, cumulative sink at its end), oldest first.
    snapshots: VecDeque<(u64, Option<Sink>)>,
    keep: usize,
}

impl Windows {
    /// Snapshots for windows up to `longest`.
    pub fn new(longest: Duration) -> Windows {
        Windows { snapshots: VecDeque::new(), keep: longest.as_secs() as usize + 1 }
    }

    /// Records the cumulative sink at the end of `second` (seconds count from 0).
    pub fn push(&mut self, second: u64, cumulative: Option<Sink>) {
        self.snapshots.push_back((second, cumulative));
        while self.snapshots.len() > self.keep {
            self.snapshots.pop_front();
        }
    }

    /// The samples of the `len` seconds ending with the latest snapshot; `None` until
    /// the run has lasted `len` (a window is always full) or when nothing was recorded.
    pub fn last(&self, len: Duration) -> Option<Sink> {
        let (latest, now) = self.snapshots.back()?;
        let len = len.as_secs();
        if latest + 1 < len {
            return None;
        }
        if latest + 1 == len {
            return window_of(now.as_ref(), None);
        }
        let start = latest - len;
        let before = self.snapshots.iter().find(|(s, _)| *s == start)?;
        window_of(now.as_ref(), before.1.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::sink::{MetricKind, Stat};

    #[test]
    fn a_window_holds_only_its_seconds() {
        let mut w = Windows::new(Duration::from_secs(3));
        let mut cumulative = Sink::new(MetricKind::Trend);
        // Seconds 0..5 at 10 ms, then seconds 5..8 at 500 ms.
        for second in 0..8u64 {
            for _ in 0..100 {
                cumulative.add(if second < 5 { 10.0 } else { 500.0 });
            }
            w.push(second, Some(cumulative.clone()));
            let p95 =
                w.last(Duration::from_secs(3)).and_then(|s| s.stat(Stat::Percentile(95.0), Duration::ZERO).unwrap());
            match second {
                0 | 1 => assert_eq!(p95, None, "not a full window yet"),
                2..=4 => assert_eq!(p95, Some(10.0)),
                _ => assert!(p95.unwrap() > 400.0, "second {second}: {p95:?}"),
            }
        }
        let window = w.last(Duration::from_secs(3)).unwrap();
        assert_eq!(window.stat(Stat::Count, Duration::ZERO).unwrap(), Some(300.0));
        assert!(window.stat(Stat::Min, Duration::ZERO).unwrap().unwrap() > 400.0);
    }

    #[test]
    fn counters_and_rates_subtract() {
        let mut before = Sink::new(MetricKind::Rate);
        before.add(1.0);
        let mut now = before.clone();
        now.add(0.0);
        now.add(0.0);
        let w = window_of(Some(&now), Some(&before)).unwrap();
        assert_eq!(w.stat(Stat::Rate, Duration::ZERO).unwrap(), Some(0.0));
        let (mut a, mut b) = (Sink::new(MetricKind::Counter), Sink::new(MetricKind::Counter));
        b.add(5.0);
        a.add(5.0);
        a.add(30.0);
        let w = window_of(Some(&a), Some(&b)).unwrap();
        assert_eq!(w.stat(Stat::Rate, Duration::from_secs(10)).unwrap(), Some(3.0));
        assert!(window_of(None, Some(&b)).is_none());
    }
}
