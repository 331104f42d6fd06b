//! The plan of closed-model profiles (a number of VUs looping over iterations): VU
//! target over time as piecewise-linear stages, plus iteration limits. Pure data; imports
//! nothing internal.

use std::time::Duration;

/// How many iterations a closed plan runs before it is done (besides its duration).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Iterations {
    /// VUs loop until the plan's duration ends (constant-vus, ramping-vus).
    Unlimited,
    /// This many iterations in total, taken by whichever VU is free (shared-iterations).
    Shared(u64),
    /// This many iterations for each VU (per-vu-iterations).
    PerVu(u64),
}

/// One piece of a VU ramp: over `duration`, the VU count moves linearly from the previous
/// stage's target (or the plan's `start_vus`) to `target`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VuStage {
    /// How long the ramp takes; zero means an instant jump to `target`.
    pub duration: Duration,
    /// VU count at the end of the stage.
    pub target: u64,
}

/// What a closed-model profile asks the engine to do.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClosedPlan {
    /// Piecewise-linear VU target; constant profiles have one stage with
    /// `start_vus == target`.
    pub stages: Vec<VuStage>,
    /// VU count at offset zero.
    pub start_vus: u64,
    /// The most VUs the plan reaches at once.
    pub max_vus: u64,
    /// When the plan is done besides its duration.
    pub iterations: Iterations,
    /// Total length of the stages, or `max_duration` for iteration-based profiles: a hard
    /// stop after which no iteration starts.
    pub duration: Duration,
    /// Time iterations still running at `duration` get to finish before they are
    /// cancelled.
    pub graceful_stop: Duration,
    /// Time an iteration running on a VU that the ramp removes gets to finish
    /// (ramping-vus); zero for profiles whose target never drops.
    pub graceful_ramp_down: Duration,
}

impl ClosedPlan {
    /// The VU target at offset `t` from the phase start: linear between stage ends like
    /// k6's ramping-vus, rounded down; zero at and after `duration`.
    pub fn vus_at(&self, t: Duration) -> u64 {
        if t >= self.duration {
            return 0;
        }
        let mut from = self.start_vus;
        let mut start = Duration::ZERO;
        for stage in &self.stages {
            let end = start + stage.duration;
            if t < end {
                // Integer arithmetic: exact at every nanosecond, no float rounding at the
                // stage ends. `t < end` implies a stage longer than zero.
                let elapsed = (t - start).as_nanos() as i128;
                let length = stage.duration.as_nanos() as i128;
                let delta = i128::from(stage.target) - i128::from(from);
                let step = match delta.checked_mul(elapsed) {
                    Some(product) => product.div_euclid(length),
                    // Only absurd VU counts over absurd durations get here.
                    None => (delta as f64 * (elapsed as f64 / length as f64)).floor() as i128,
                };
                let value = i128::from(from) + step;
                return value.clamp(0, i128::from(u64::MAX)) as u64;
            }
            from = stage.target;
            start = end;
        }
        // Stages shorter than `duration` (not built by this module): hold the last target.
        from
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn ramp() -> ClosedPlan {
        // 0 -> 10 over 10s, hold 10 for 5s, jump to 4, 4 -> 0 over 4s.
        let stages = vec![
            VuStage { duration: secs(10), target: 10 },
            VuStage { duration: secs(5), target: 10 },
            VuStage { duration: Duration::ZERO, target: 4 },
            VuStage { duration: secs(4), target: 0 },
        ];
        ClosedPlan {
            stages,
            start_vus: 0,
            max_vus: 10,
            iterations: Iterations::Unlimited,
            duration: secs(19),
            graceful_stop: secs(30),
            graceful_ramp_down: secs(30),
        }
    }

    #[test]
    fn vus_follow_the_stages_rounded_down() {
        let plan = ramp();
        assert_eq!(plan.vus_at(Duration::ZERO), 0);
        assert_eq!(plan.vus_at(Duration::from_millis(999)), 0);
        assert_eq!(plan.vus_at(secs(1)), 1);
        assert_eq!(plan.vus_at(Duration::from_millis(5500)), 5);
        assert_eq!(plan.vus_at(Duration::from_nanos(9_999_999_999)), 9);
        assert_eq!(plan.vus_at(secs(10)), 10);
        assert_eq!(plan.vus_at(secs(14)), 10);
        // The zero-length stage is an instant jump: at 15s the 4 -> 0 ramp starts.
        assert_eq!(plan.vus_at(secs(15)), 4);
        // Ramping down, floor: 4 - 0.25 = 3.75 -> 3.
        assert_eq!(plan.vus_at(Duration::from_millis(15_250)), 3);
        assert_eq!(plan.vus_at(secs(17)), 2);
        assert_eq!(plan.vus_at(Duration::from_millis(18_999)), 0);
        assert_eq!(plan.vus_at(secs(19)), 0);
        assert_eq!(plan.vus_at(secs(500)), 0);
    }

    #[test]
    fn vus_are_monotonic_within_a_ramp() {
        let plan = ramp();
        let mut last = 0;
        for ms in (0..10_000).step_by(7) {
            let now = plan.vus_at(Duration::from_millis(ms));
            assert!(now >= last, "at {ms}ms: {now} < {last}");
            last = now;
        }
    }

    #[test]
    fn stages_shorter_than_the_duration_hold_the_last_target() {
        let plan = ClosedPlan { duration: secs(30), ..ramp() };
        assert_eq!(plan.vus_at(secs(25)), 0);
        let plan = ClosedPlan { stages: vec![VuStage { duration: secs(1), target: 3 }], ..plan };
        assert_eq!(plan.vus_at(secs(25)), 3);
    }
}
