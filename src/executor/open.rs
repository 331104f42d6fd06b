//! The plan of open-model profiles (iterations start at a rate, whatever the system under
//! test does): a piecewise-linear rate and the closed-form arrival times it implies.
//! Pure data; imports nothing internal.

use std::time::Duration;

/// One piece of a rate ramp: over `duration`, the rate moves linearly from the previous
/// stage's target (or the plan's start rate) to `target_rate_per_s`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RateStage {
    /// How long the ramp takes; zero means an instant jump to the target.
    pub duration: Duration,
    /// Iterations started per second at the end of the stage.
    pub target_rate_per_s: f64,
}

/// What an open-model profile asks the engine to do.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OpenPlan {
    /// Iterations per second at offset zero.
    pub start_rate_per_s: f64,
    /// Piecewise-linear rate; constant-arrival-rate is one stage whose target equals the
    /// start rate.
    pub stages: Vec<RateStage>,
    /// VUs to create before the phase starts.
    pub pre_allocated_vus: u64,
    /// The most VUs the engine may create; arrivals finding none free are dropped.
    pub max_vus: u64,
    /// Length of the phase: no arrival at or after it.
    pub duration: Duration,
    /// Time iterations still running at `duration` get to finish before they are
    /// cancelled.
    pub graceful_stop: Duration,
}

/// A stage clipped to the plan's duration, with the arrivals counted before and after it.
#[derive(Debug, Clone, Copy)]
struct Segment {
    start: Duration,
    length: Duration,
    from: f64,
    to: f64,
    /// Integral of the rate from zero to `start`.
    before: f64,
    /// Integral of the rate from zero to `start + length`.
    after: f64,
}

/// Snaps a running arrival count to the nearest whole number when it is off by float
/// noise only, so 0.1/s over 10s counts exactly 1 and stage boundaries stay exact.
fn snap(x: f64) -> f64 {
    let whole = x.round();
    // Why these bounds: sums of a few products carry a relative error near 1e-16; 1e-9
    // relative (at most 1e-6 absolute) is far above that and far below a real fraction.
    let tolerance = (1e-9 * x.abs().max(1.0)).min(1e-6);
    if (x - whole).abs() <= tolerance { whole } else { x }
}

/// Seconds to a duration, rounded to the nearest nanosecond (not truncated, so `i/rate`
/// lands exactly on whole milliseconds when it should).
fn nanos_of(secs: f64) -> u128 {
    (secs * 1e9).round().max(0.0) as u128
}

impl Segment {
    /// Seconds after `start` at which the rate's integral over the segment reaches `n`
    /// (0 <= n < after - before). Closed form, so each arrival is computed on its own and
    /// errors do not accumulate across a million of them.
    fn offset_of(&self, n: f64) -> f64 {
        if n <= 0.0 {
            return 0.0;
        }
        let length = self.length.as_secs_f64();
        // Integral over [0, τ]: from·τ + slope·τ²/2 = n, slope = (to - from) / length.
        let half_slope = (self.to - self.from) / (2.0 * length);
        if half_slope == 0.0 {
            return n / self.from;
        }
        // The root written as 2n / (b + sqrt(b² + 4an)): no cancellation whether the rate
        // rises or falls, and defined when `from` is zero.
        let discriminant = (self.from * self.from + 4.0 * half_slope * n).max(0.0);
        2.0 * n / (self.from + discriminant.sqrt())
    }

    fn rate_at(&self, elapsed: Duration) -> f64 {
        let fraction = elapsed.as_secs_f64() / self.length.as_secs_f64();
        self.from + (self.to - self.from) * fraction
    }
}

impl OpenPlan {
    /// The stages clipped to `duration` (a stage crossing it is cut at the rate it has
    /// there), with running arrival counts.
    fn segments(&self) -> Vec<Segment> {
        let mut segments = Vec::with_capacity(self.stages.len());
        let (mut start, mut from, mut before) = (Duration::ZERO, self.start_rate_per_s, 0.0);
        for stage in &self.stages {
            if start >= self.duration {
                break;
            }
            let mut length = stage.duration;
            let mut to = stage.target_rate_per_s;
            if start + length > self.duration {
                let kept = self.duration - start;
                to = from + (to - from) * (kept.as_secs_f64() / length.as_secs_f64());
                length = kept;
            }
            let after = snap(before + (from + to) / 2.0 * length.as_secs_f64());
            segments.push(Segment { start, length, from, to, before, after });
            (start, from, before) = (start + length, to, after);
        }
        segments
    }

    /// Offset from the phase start of the `i`-th iteration (0-based), or None when it
    /// falls at or after `duration`. The `i`-th arrival is when the integral of the rate
    /// first exceeds `i`, so the first is at zero and a zero-rate stretch has none.
    pub fn arrival(&self, i: u64) -> Option<Duration> {
        let target = i as f64;
        // Segments are few (one per stage): a linear scan beats keeping an index.
        let segment = self.segments().into_iter().find(|s| target < s.after)?;
        let offset = segment.offset_of((target - segment.before).max(0.0));
        // Mathematically the arrival is inside the segment; clamping keeps float noise from
        // pushing it onto the next segment or past `duration`.
        let last = segment.length.as_nanos().saturating_sub(1);
        let nanos = nanos_of(offset).min(last);
        Some(segment.start + Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX)))
    }

    /// Number of arrivals the plan schedules in total: the rate's integral over
    /// `duration`, rounded up (an arrival at zero counts).
    pub fn expected_iterations(&self) -> u64 {
        let total = self.segments().last().map_or(0.0, |s| s.after);
        total.ceil().max(0.0) as u64
    }

    /// Target rate (iterations per second) at offset `t`; zero at and after `duration`.
    pub fn rate_at(&self, t: Duration) -> f64 {
        self.segments().iter().find(|s| t >= s.start && t < s.start + s.length).map_or(0.0, |s| s.rate_at(t - s.start))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    fn stage(duration: f64, target: f64) -> RateStage {
        RateStage { duration: secs(duration), target_rate_per_s: target }
    }

    fn plan(start: f64, stages: Vec<RateStage>) -> OpenPlan {
        let duration = stages.iter().map(|s| s.duration).sum();
        OpenPlan {
            start_rate_per_s: start,
            stages,
            pre_allocated_vus: 1,
            max_vus: 100,
            duration,
            graceful_stop: secs(30.0),
        }
    }

    fn all(plan: &OpenPlan) -> Vec<Duration> {
        (0..).map_while(|i| plan.arrival(i)).collect()
    }

    #[test]
    fn constant_rate_arrives_every_one_over_rate() {
        let p = plan(4.0, vec![stage(10.0, 4.0)]);
        assert_eq!(p.expected_iterations(), 40);
        for i in 0..40 {
            assert_eq!(p.arrival(i), Some(Duration::from_millis(i * 250)), "arrival {i}");
        }
        assert_eq!(p.arrival(40), None);
        assert_eq!(all(&p).len(), 40);
    }

    #[test]
    fn a_million_arrivals_do_not_drift() {
        let p = plan(1000.0, vec![stage(1000.0, 1000.0)]);
        assert_eq!(p.expected_iterations(), 1_000_000);
        assert_eq!(p.arrival(999_999), Some(Duration::from_micros(999_999_000)));
        assert_eq!(p.arrival(1_000_000), None);
        let p = plan(3.0, vec![stage(400_000.0, 3.0)]);
        assert_eq!(p.expected_iterations(), 1_200_000);
        assert_eq!(p.arrival(1_199_999), Some(Duration::from_nanos(399_999_666_666_667)));
        assert_eq!(p.arrival(900_000), Some(secs(300_000.0)));
    }

    #[test]
    fn a_ramp_from_zero_follows_the_integral() {
        // 0 -> 10/s over 10s: the rate is t, its integral t²/2, so 50 arrivals, the i-th
        // at sqrt(2i) s.
        let p = plan(0.0, vec![stage(10.0, 10.0)]);
        assert_eq!(p.expected_iterations(), 50);
        let times = all(&p);
        assert_eq!(times.len(), 50);
        assert_eq!(times[0], Duration::ZERO);
        assert_eq!(times[2], secs(2.0));
        assert_eq!(times[8], secs(4.0));
        assert_eq!(times[32], secs(8.0));
        for (i, t) in times.iter().enumerate() {
            let expected = (2.0 * i as f64).sqrt();
            assert!((t.as_secs_f64() - expected).abs() < 1e-9, "arrival {i}: {t:?}");
        }
        assert!(times.windows(2).all(|w| w[0] < w[1]));
        assert!(*times.last().unwrap() < secs(10.0));
    }

    #[test]
    fn a_ramp_down_mirrors_the_ramp_up() {
        // 10 -> 0/s over 10s: integral 10t - t²/2, so the i-th arrival at
        // 10 - sqrt(100 - 2i) s.
        let p = plan(10.0, vec![stage(10.0, 0.0)]);
        assert_eq!(p.expected_iterations(), 50);
        for i in 0..50u64 {
            let expected = 10.0 - (100.0 - 2.0 * i as f64).sqrt();
            let got = p.arrival(i).unwrap().as_secs_f64();
            assert!((got - expected).abs() < 1e-9, "arrival {i}: {got} vs {expected}");
        }
        assert_eq!(p.arrival(50), None);
    }

    #[test]
    fn counts_round_the_integral_up() {
        // 1 -> 2/s over 3s: integral 4.5, arrivals at integral 0, 1, 2, 3, 4.
        let p = plan(1.0, vec![stage(3.0, 2.0)]);
        assert_eq!(p.expected_iterations(), 5);
        assert_eq!(all(&p).len(), 5);
    }

    #[test]
    fn a_zero_rate_stage_has_no_arrivals() {
        // 2/s for 5s, instant drop to 0 for 10s, instant jump back to 2/s for 5s.
        let p = plan(2.0, vec![stage(5.0, 2.0), stage(0.0, 0.0), stage(10.0, 0.0), stage(0.0, 2.0), stage(5.0, 2.0)]);
        assert_eq!(p.expected_iterations(), 20);
        let times = all(&p);
        assert_eq!(times.len(), 20);
        assert!(times.iter().all(|t| *t < secs(5.0) || *t >= secs(15.0)), "{times:?}");
        assert_eq!(times[9], secs(4.5));
        assert_eq!(times[10], secs(15.0));
        assert_eq!(times[19], secs(19.5));
        assert_eq!(p.rate_at(secs(7.0)), 0.0);
        assert_eq!(p.rate_at(secs(16.0)), 2.0);
    }

    #[test]
    fn fractional_rates_are_exact() {
        // 0.1/s for 100s: 10 arrivals, 10s apart (0.1 is not exact in binary).
        let p = plan(0.1, vec![stage(100.0, 0.1)]);
        assert_eq!(p.expected_iterations(), 10);
        let times = all(&p);
        let expected: Vec<Duration> = (0..10).map(|i| secs(i as f64 * 10.0)).collect();
        assert_eq!(times, expected);
        // 0.1/s for 5s: the integral is 0.5, so one arrival (at zero).
        assert_eq!(plan(0.1, vec![stage(5.0, 0.1)]).expected_iterations(), 1);
    }

    #[test]
    fn rate_is_interpolated_within_stages() {
        let p = plan(0.0, vec![stage(10.0, 10.0), stage(10.0, 20.0)]);
        assert_eq!(p.rate_at(Duration::ZERO), 0.0);
        assert_eq!(p.rate_at(secs(2.5)), 2.5);
        assert_eq!(p.rate_at(secs(10.0)), 10.0);
        assert_eq!(p.rate_at(secs(15.0)), 15.0);
        assert_eq!(p.rate_at(secs(20.0)), 0.0);
        // Two stages: 50 + 150 arrivals, stage two's first at exactly 10s.
        assert_eq!(p.expected_iterations(), 200);
        assert_eq!(p.arrival(50), Some(secs(10.0)));
    }

    #[test]
    fn a_duration_shorter_than_the_stages_cuts_them() {
        let p = OpenPlan { duration: secs(5.0), ..plan(0.0, vec![stage(10.0, 10.0)]) };
        // Integral up to 5s is 12.5.
        assert_eq!(p.expected_iterations(), 13);
        assert!(all(&p).iter().all(|t| *t < secs(5.0)));
        assert_eq!(p.rate_at(secs(4.0)), 4.0);
        assert_eq!(p.rate_at(secs(6.0)), 0.0);
    }
}
