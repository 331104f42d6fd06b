//! `per-vu-iterations`: each VU runs its own number of iterations, or stops at
//! `max_duration`. Options: `vus` (default 1), `iterations` (per VU, default 1),
//! `max_duration` (default 10m), `graceful_stop`.

use std::time::Duration;

use serde_json::{Map, Value};

use super::options::Reader;
use super::shared_iterations::DEFAULT_MAX_DURATION;
use super::{ClosedPlan, Iterations, OptionError, VuStage, scale_count, scale_duration};

/// A fixed number of iterations for each VU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PerVuIterations {
    /// VUs, each running `iterations`.
    pub vus: u64,
    /// Iterations per VU.
    pub iterations: u64,
    /// Hard stop even if iterations remain.
    pub max_duration: Duration,
    /// Time running iterations get to finish after `max_duration`.
    pub graceful_stop: Duration,
}

impl PerVuIterations {
    /// The `executor` value that selects this profile.
    pub const NAME: &'static str = "per-vu-iterations";
    /// Option keys this profile accepts (canonical spellings).
    pub const KEYS: &'static [&'static str] = &["executor", "vus", "iterations", "max_duration", "graceful_stop"];

    pub(crate) fn read(opts: &Map<String, Value>) -> Result<Self, Vec<OptionError>> {
        let mut r = Reader::new(Self::NAME, Self::KEYS, opts);
        let vus = r.count("vus", Some(1), 1);
        let iterations = r.count("iterations", Some(1), 1);
        let max_duration = r.duration("max_duration", Some(DEFAULT_MAX_DURATION), true);
        let graceful_stop = r.graceful_stop();
        let built = (|| {
            Some(PerVuIterations {
                vus: vus?,
                iterations: iterations?,
                max_duration: max_duration?,
                graceful_stop: graceful_stop?,
            })
        })();
        r.finish(built)
    }

    /// `vus` VUs for up to `max_duration`, each running `iterations`.
    pub fn plan(&self) -> ClosedPlan {
        ClosedPlan {
            stages: vec![VuStage { duration: self.max_duration, target: self.vus }],
            start_vus: self.vus,
            max_vus: self.vus,
            iterations: Iterations::PerVu(self.iterations),
            duration: self.max_duration,
            graceful_stop: self.graceful_stop,
            graceful_ramp_down: Duration::ZERO,
        }
    }

    /// Durations and the per-VU iteration count times `factor`; the VU count is unchanged.
    pub fn scaled(&self, factor: f64) -> Self {
        PerVuIterations {
            vus: self.vus,
            iterations: scale_count(self.iterations, factor),
            max_duration: scale_duration(self.max_duration, factor),
            graceful_stop: scale_duration(self.graceful_stop, factor),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executor::tests::{errors, parse};
    use crate::executor::{Executor, Plan};
    use serde_json::json;

    #[test]
    fn defaults_to_one_iteration_on_one_vu_within_10m() {
        let e = parse(json!({"executor": "per-vu-iterations"}));
        let expected = PerVuIterations {
            vus: 1,
            iterations: 1,
            max_duration: Duration::from_secs(600),
            graceful_stop: Duration::from_secs(30),
        };
        assert_eq!(e, Executor::PerVuIterations(expected));
    }

    #[test]
    fn plans_iterations_per_vu() {
        // Fewer iterations than VUs is fine here: each VU has its own count.
        let e = parse(
            json!({"executor": "per-vu-iterations", "vus": 4, "iterations": 2, "max_duration": 90, "gracefulStop": 0}),
        );
        let Plan::Closed(plan) = e.plan() else { panic!() };
        assert_eq!(plan.iterations, Iterations::PerVu(2));
        assert_eq!(plan.duration, Duration::from_secs(90));
        assert_eq!(plan.graceful_stop, Duration::ZERO);
        assert_eq!(e.nominal_duration(), Duration::from_secs(90));
        assert_eq!(e.max_vus(), 4);
    }

    #[test]
    fn reports_every_bad_option() {
        let found = errors(json!({"executor": "per-vu-iterations", "vus": 1.5, "iterations": 0, "maxDuration": "1x"}));
        assert_eq!(found.len(), 3, "{found:?}");
        assert_eq!(found[0], "vus: expected a whole number, got 1.5");
        assert_eq!(found[1], "iterations: must be at least 1, got 0");
        assert!(found[2].starts_with("maxDuration: invalid duration \"1x\""), "{}", found[2]);
    }

    #[test]
    fn scales_iterations_with_a_floor_of_one() {
        let e = parse(json!({"executor": "per-vu-iterations", "vus": 3, "iterations": 20}));
        let Executor::PerVuIterations(s) = e.scaled(0.25) else { panic!() };
        assert_eq!((s.vus, s.iterations), (3, 5));
        let Executor::PerVuIterations(s) = e.scaled(0.01) else { panic!() };
        assert_eq!(s.iterations, 1);
    }
}
