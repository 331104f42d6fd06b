//! Execution segments (k6's idea): one phase's plan split over N machines so that the
//! union of the N parts is exactly the single-machine plan, with no rounding drift.
//!
//! Items are dealt out like cards ("striping"): number the plan's VUs, iterations and
//! arrivals 0, 1, 2, ...; segment `i` of `N` owns the items `k` with `k % N == i`. A
//! segment's share of a count is then `ceil((total - i) / N)`, the shares add up to the
//! total for every total, and a share never falls when the total grows. So:
//!
//! - a VU count over time (constant-vus, ramping-vus, shared- and per-vu-iterations) is
//!   the share of the whole plan's count at every instant, not a ramp of rounded
//!   targets: at every nanosecond the segments' VUs add up to the whole's;
//! - an arrival-rate plan's iterations are the whole plan's exact arrival times, every
//!   N-th one: the union is the same sequence of start times, not N rounded rates;
//! - counts (iterations, burst sizes, `pre_allocated_vus`, `max_vus`) are split by share.
//!
//! When there are fewer VUs than segments, the iterations and arrivals are dealt over
//! the segments that have VUs only (the others are idle), so none is planned where no
//! VU could run it. Pure data like the plans; imports only the sibling plan types.

use super::{BurstPlan, ClosedPlan, Iterations, OpenPlan, Plan};
use std::time::Duration;

/// Segment `index` (0-based) of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    index: u64,
    count: u64,
}

/// A segment that does not exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SegmentError {
    /// Zero segments.
    #[error("a plan is split into at least 1 segment, got 0")]
    NoSegments,
    /// An index past the last segment.
    #[error("segment {index} does not exist: there are {count} (0 to {last})", last = count - 1)]
    OutOfRange {
        /// The index asked for.
        index: u64,
        /// How many there are.
        count: u64,
    },
}

/// The number of items `k` in `0..total` with `k % lanes == index`; zero when
/// `index >= lanes`.
fn stripe(index: u64, lanes: u64, total: u64) -> u64 {
    if index >= lanes || total <= index { 0 } else { (total - index - 1) / lanes + 1 }
}

impl Segment {
    /// Segment `index` of `count` (0-based).
    pub fn new(index: u64, count: u64) -> Result<Segment, SegmentError> {
        match (index, count) {
            (_, 0) => Err(SegmentError::NoSegments),
            (i, n) if i >= n => Err(SegmentError::OutOfRange { index: i, count: n }),
            (index, count) => Ok(Segment { index, count }),
        }
    }

    /// Every segment of `count`, in order (none for zero).
    pub fn all(count: u64) -> Vec<Segment> {
        (0..count).map(|index| Segment { index, count }).collect()
    }

    /// The index, 0-based.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// How many segments there are.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// This segment's share of `total` items.
    pub fn share(&self, total: u64) -> u64 {
        stripe(self.index, self.count, total)
    }

    /// This segment's part of a phase's plan.
    pub fn split(&self, plan: &Plan) -> SegmentPlan {
        match plan {
            Plan::Closed(p) => SegmentPlan::Closed(ClosedSegment::new(p, *self)),
            Plan::Open(p) => SegmentPlan::Open(OpenSegment::new(p, *self)),
            Plan::Bursts(p) => SegmentPlan::Bursts(BurstPlan { size: self.share(p.size), ..p.clone() }),
        }
    }
}

impl std::fmt::Display for Segment {
    /// `2/3`: the second of three (1-based, as people count machines).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index + 1, self.count)
    }
}

/// Splits a plan into `count` segments.
pub fn split(plan: &Plan, count: u64) -> Vec<SegmentPlan> {
    Segment::all(count).iter().map(|s| s.split(plan)).collect()
}

/// One segment's part of a phase.
#[derive(Debug, Clone, PartialEq)]
pub enum SegmentPlan {
    /// Of a closed-model plan.
    Closed(ClosedSegment),
    /// Of an open-model plan.
    Open(OpenSegment),
    /// Of a bursts plan: the same bursts, `size` split (zero: idle).
    Bursts(BurstPlan),
}

impl SegmentPlan {
    /// Whether this segment has nothing to run (fewer VUs or burst places than segments).
    pub fn is_idle(&self) -> bool {
        match self {
            SegmentPlan::Closed(c) => c.max_vus == 0,
            SegmentPlan::Open(o) => o.max_vus == 0,
            SegmentPlan::Bursts(b) => b.size == 0,
        }
    }
}

/// A segment of a closed-model plan: its VUs over time are its share of the whole
/// plan's, and iterations are split among the segments that have VUs.
#[derive(Debug, Clone, PartialEq)]
pub struct ClosedSegment {
    whole: ClosedPlan,
    segment: Segment,
    /// The most VUs this segment has at once.
    pub max_vus: u64,
    /// This segment's iteration limit: its share of a shared pool, or the same number
    /// per VU.
    pub iterations: Iterations,
}

impl ClosedSegment {
    fn new(whole: &ClosedPlan, segment: Segment) -> ClosedSegment {
        let iterations = match whole.iterations {
            // Dealt over the segments that have a VU: with 1 VU over 2 segments, the
            // second has no VU to run any.
            Iterations::Shared(n) => {
                let lanes = segment.count.min(whole.max_vus);
                Iterations::Shared(stripe(segment.index, lanes, n))
            }
            other => other,
        };
        ClosedSegment { whole: whole.clone(), segment, max_vus: segment.share(whole.max_vus), iterations }
    }

    /// The VU target at offset `t`: this segment's share of the whole plan's.
    pub fn vus_at(&self, t: Duration) -> u64 {
        self.segment.share(self.whole.vus_at(t))
    }

    /// The whole plan (durations, graceful stops and ramp-down are the same for every
    /// segment).
    pub fn whole(&self) -> &ClosedPlan {
        &self.whole
    }
}

/// A segment of an open-model plan: every `lanes`-th arrival of the whole plan, so the
/// segments' arrivals together are exactly the whole's.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenSegment {
    whole: OpenPlan,
    segment: Segment,
    /// Segments that take arrivals: all, or as many as the whole plan's `max_vus` when
    /// that is fewer (a segment without a VU could start nothing).
    lanes: u64,
    /// VUs to create before the phase starts.
    pub pre_allocated_vus: u64,
    /// The most VUs this segment may create.
    pub max_vus: u64,
}

impl OpenSegment {
    fn new(whole: &OpenPlan, segment: Segment) -> OpenSegment {
        let lanes = segment.count.min(whole.max_vus);
        OpenSegment {
            whole: whole.clone(),
            segment,
            lanes,
            pre_allocated_vus: stripe(segment.index, lanes, whole.pre_allocated_vus),
            max_vus: stripe(segment.index, lanes, whole.max_vus),
        }
    }

    /// Offset of this segment's `i`-th arrival (0-based): the whole plan's arrival
    /// number `index + i * lanes`; None past the plan's end or for an idle segment.
    pub fn arrival(&self, i: u64) -> Option<Duration> {
        if self.segment.index >= self.lanes {
            return None;
        }
        let k = i.checked_mul(self.lanes)?.checked_add(self.segment.index)?;
        self.whole.arrival(k)
    }

    /// Arrivals this segment schedules in total.
    pub fn expected_iterations(&self) -> u64 {
        stripe(self.segment.index, self.lanes, self.whole.expected_iterations())
    }

    /// This segment's rate at offset `t`, iterations per second (for display: the exact
    /// times are [`OpenSegment::arrival`]).
    pub fn rate_at(&self, t: Duration) -> f64 {
        if self.segment.index >= self.lanes { 0.0 } else { self.whole.rate_at(t) / self.lanes as f64 }
    }

    /// The whole plan.
    pub fn whole(&self) -> &OpenPlan {
        &self.whole
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executor::Executor;
    use serde_json::json;

    fn plan(v: serde_json::Value) -> Plan {
        Executor::from_options(v.as_object().unwrap()).unwrap().plan()
    }

    fn closed(parts: &[SegmentPlan]) -> Vec<&ClosedSegment> {
        parts.iter().map(|p| if let SegmentPlan::Closed(c) = p { c } else { panic!("{p:?}") }).collect()
    }

    fn open(parts: &[SegmentPlan]) -> Vec<&OpenSegment> {
        parts.iter().map(|p| if let SegmentPlan::Open(o) = p { o } else { panic!("{p:?}") }).collect()
    }

    fn shared(i: Iterations) -> u64 {
        match i {
            Iterations::Shared(n) => n,
            other => panic!("{other:?}"),
        }
    }

    /// Every arrival of every segment, sorted: equal to the whole plan's.
    fn union_of_arrivals(parts: &[&OpenSegment]) -> Vec<Duration> {
        let mut all = Vec::new();
        for p in parts {
            let mut i = 0;
            while let Some(t) = p.arrival(i) {
                all.push(t);
                i += 1;
            }
            assert_eq!(i, p.expected_iterations(), "segment {}", p.segment);
        }
        all.sort();
        all
    }

    fn arrivals_of(p: &OpenPlan) -> Vec<Duration> {
        (0..).map_while(|i| p.arrival(i)).collect()
    }

    #[test]
    fn shares_add_up_for_every_total_and_never_fall() {
        for n in 1..=7u64 {
            let segments = Segment::all(n);
            let mut before = vec![0; n as usize];
            for total in 0..=200u64 {
                let shares: Vec<u64> = segments.iter().map(|s| s.share(total)).collect();
                assert_eq!(shares.iter().sum::<u64>(), total, "{total} over {n}");
                assert!(shares.iter().max().unwrap() - shares.iter().min().unwrap() <= 1, "{shares:?}");
                assert!(shares.iter().zip(&before).all(|(a, b)| a >= b), "{total} over {n}");
                before = shares;
            }
        }
        assert_eq!(Segment::new(3, 3), Err(SegmentError::OutOfRange { index: 3, count: 3 }));
        assert_eq!(Segment::new(3, 3).unwrap_err().to_string(), "segment 3 does not exist: there are 3 (0 to 2)");
        assert_eq!(Segment::new(0, 0), Err(SegmentError::NoSegments));
        assert_eq!(Segment::new(1, 3).unwrap().to_string(), "2/3");
    }

    #[test]
    fn seven_constant_vus_over_three() {
        let whole = plan(json!({"executor": "constant-vus", "vus": 7, "duration": "30s"}));
        let parts = split(&whole, 3);
        let c = closed(&parts);
        assert_eq!(c.iter().map(|c| c.max_vus).collect::<Vec<_>>(), [3, 2, 2]);
        for t in [0, 1, 15_000, 29_999] {
            let t = Duration::from_millis(t);
            assert_eq!(c.iter().map(|c| c.vus_at(t)).sum::<u64>(), 7);
        }
        assert_eq!(c[0].vus_at(Duration::from_secs(30)), 0);
        assert!(c.iter().all(|c| c.iterations == Iterations::Unlimited));
    }

    #[test]
    fn a_thousand_and_one_shared_iterations_over_four() {
        let whole = plan(json!({"executor": "shared-iterations", "vus": 10, "iterations": 1001}));
        let c = closed(&split(&whole, 4)).into_iter().cloned().collect::<Vec<_>>();
        assert_eq!(c.iter().map(|c| shared(c.iterations)).collect::<Vec<_>>(), [251, 250, 250, 250]);
        assert_eq!(c.iter().map(|c| c.max_vus).collect::<Vec<_>>(), [3, 3, 2, 2]);
        assert_eq!(c.iter().map(|c| c.vus_at(Duration::ZERO)).sum::<u64>(), 10);
    }

    #[test]
    fn shared_iterations_go_only_to_segments_with_a_vu() {
        // 2 VUs over 3 segments: the third is idle and gets none of the 5 iterations.
        let whole = plan(json!({"executor": "shared-iterations", "vus": 2, "iterations": 5}));
        let parts = split(&whole, 3);
        let c = closed(&parts);
        assert_eq!(c.iter().map(|c| shared(c.iterations)).collect::<Vec<_>>(), [3, 2, 0]);
        assert_eq!(parts.iter().map(SegmentPlan::is_idle).collect::<Vec<_>>(), [false, false, true]);
        // Every segment with VUs has at least one iteration per VU, for any split.
        for vus in 1..=12u64 {
            for iterations in vus..=40 {
                let whole = plan(json!({"executor": "shared-iterations", "vus": vus, "iterations": iterations}));
                for n in 1..=6 {
                    let parts = split(&whole, n);
                    let c = closed(&parts);
                    assert_eq!(c.iter().map(|c| shared(c.iterations)).sum::<u64>(), iterations);
                    assert_eq!(c.iter().map(|c| c.max_vus).sum::<u64>(), vus);
                    assert!(c.iter().all(|c| shared(c.iterations) >= c.max_vus), "{vus} {iterations} {n}");
                    assert!(c.iter().all(|c| c.max_vus > 0 || shared(c.iterations) == 0));
                }
            }
        }
    }

    #[test]
    fn per_vu_iterations_split_the_vus_and_keep_the_count_per_vu() {
        let whole = plan(json!({"executor": "per-vu-iterations", "vus": 7, "iterations": 13}));
        let parts = split(&whole, 3);
        let c = closed(&parts);
        assert!(c.iter().all(|c| c.iterations == Iterations::PerVu(13)));
        assert_eq!(c.iter().map(|c| c.max_vus * 13).sum::<u64>(), 7 * 13);
    }

    #[test]
    fn ramping_vus_add_up_at_every_instant() {
        let whole = plan(json!({"executor": "ramping-vus", "start_vus": 1, "stages": [
            {"duration": "7s", "target": 11}, {"duration": "3s", "target": 11},
            {"duration": "5s", "target": 2}, {"duration": "0s", "target": 9}, {"duration": "4s", "target": 0}]}));
        let Plan::Closed(w) = &whole else { panic!() };
        for n in [2, 3, 4, 7] {
            let parts = split(&whole, n);
            let c = closed(&parts);
            // Every 7 ms over the whole ramp (and past its end).
            for ms in (0..=20_000).step_by(7) {
                let t = Duration::from_millis(ms);
                assert_eq!(c.iter().map(|c| c.vus_at(t)).sum::<u64>(), w.vus_at(t), "{n} segments at {ms}ms");
            }
            assert_eq!(c.iter().map(|c| c.max_vus).sum::<u64>(), w.max_vus);
        }
    }

    #[test]
    fn a_rate_of_two_thousand_per_second_over_three() {
        let whole = plan(json!({"executor": "constant-arrival-rate", "rate": 2000, "duration": "3s",
            "pre_allocated_vus": 50, "max_vus": 100}));
        let Plan::Open(w) = &whole else { panic!() };
        let parts = split(&whole, 3);
        let o = open(&parts);
        assert_eq!(o.iter().map(|o| o.expected_iterations()).collect::<Vec<_>>(), [2000, 2000, 2000]);
        assert_eq!(union_of_arrivals(&o), arrivals_of(w));
        assert_eq!(o.iter().map(|o| o.pre_allocated_vus).collect::<Vec<_>>(), [17, 17, 16]);
        assert_eq!(o.iter().map(|o| o.max_vus).sum::<u64>(), 100);
        let rate: f64 = o.iter().map(|o| o.rate_at(Duration::from_secs(1))).sum();
        assert!((rate - 2000.0).abs() < 1e-9, "{rate}");
    }

    #[test]
    fn an_awkward_rate_over_four_keeps_every_arrival() {
        // 7 per 3s for 10s: 23.33... arrivals, 24 scheduled, not divisible by 4.
        let whole = plan(json!({"executor": "constant-arrival-rate", "rate": 7, "time_unit": "3s", "duration": "10s",
            "pre_allocated_vus": 3, "max_vus": 3}));
        let Plan::Open(w) = &whole else { panic!() };
        let parts = split(&whole, 4);
        let o = open(&parts);
        assert_eq!(union_of_arrivals(&o), arrivals_of(w));
        // Only 3 VUs: the arrivals are dealt over 3 segments, the fourth is idle.
        assert_eq!(parts.iter().map(SegmentPlan::is_idle).collect::<Vec<_>>(), [false, false, false, true]);
        assert_eq!(o[3].arrival(0), None);
    }

    #[test]
    fn ramping_arrival_rates_keep_the_whole_sequence() {
        let whole = plan(json!({"executor": "ramping-arrival-rate", "start_rate": 5, "stages": [
            {"duration": "4s", "target": 301}, {"duration": "3s", "target": 301}, {"duration": "5s", "target": 0}],
            "pre_allocated_vus": 7, "max_vus": 40}));
        let Plan::Open(w) = &whole else { panic!() };
        for n in [2, 3, 5] {
            let parts = split(&whole, n);
            let o = open(&parts);
            assert_eq!(union_of_arrivals(&o), arrivals_of(w), "{n} segments");
            assert_eq!(o.iter().map(|o| o.pre_allocated_vus).sum::<u64>(), 7);
        }
    }

    #[test]
    fn bursts_split_their_size() {
        let whole = plan(json!({"executor": "bursts", "bursts": 4, "size": 10, "pause": "5s"}));
        let parts = split(&whole, 3);
        let sizes: Vec<u64> = parts
            .iter()
            .map(|p| match p {
                SegmentPlan::Bursts(b) => {
                    assert_eq!(b.bursts, 4);
                    b.size
                }
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(sizes, [4, 3, 3]);
        let small = plan(json!({"executor": "bursts", "bursts": 2, "size": 1}));
        assert_eq!(split(&small, 2).iter().map(SegmentPlan::is_idle).collect::<Vec<_>>(), [false, true]);
    }
}
