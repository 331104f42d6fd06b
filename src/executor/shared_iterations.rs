//! `shared-iterations`: VUs take iterations from one shared pool until it is empty or
//! `max_duration` passes. Options: `vus` (default 1), `iterations` (default 1, at least
//! `vus`, as in k6), `max_duration` (default 10m), `graceful_stop`.

use std::time::Duration;

use serde_json::{Map, Value};

use super::options::Reader;
use super::{ClosedPlan, Iterations, OptionError, VuStage, scale_count, scale_duration};

/// A fixed number of iterations shared among VUs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedIterations {
    /// VUs taking iterations from the pool.
    pub vus: u64,
    /// Iterations in the pool, at least `vus`.
    pub iterations: u64,
    /// Hard stop even if iterations remain.
    pub max_duration: Duration,
    /// Time running iterations get to finish after `max_duration`.
    pub graceful_stop: Duration,
}

/// k6's default `maxDuration` for iteration-based executors.
pub(crate) const DEFAULT_MAX_DURATION: Duration = Duration::from_secs(600);

impl SharedIterations {
    /// The `executor` value that selects this profile.
    pub const NAME: &'static str = "shared-iterations";
    /// Option keys this profile accepts (canonical spellings).
    pub const KEYS: &'static [&'static str] = &["executor", "vus", "iterations", "max_duration", "graceful_stop"];

    pub(crate) fn read(opts: &Map<String, Value>) -> Result<Self, Vec<OptionError>> {
        let mut r = Reader::new(Self::NAME, Self::KEYS, opts);
        let vus = r.count("vus", Some(1), 1);
        let iterations = r.count("iterations", Some(1), 1);
        let max_duration = r.duration("max_duration", Some(DEFAULT_MAX_DURATION), true);
        let graceful_stop = r.graceful_stop();
        if let (Some(vus), Some(iterations)) = (vus, iterations)
            && iterations < vus
        {
            // Why an error, as in k6: the extra VUs would never run anything, which is
            // almost always a mix-up of the two numbers.
            let (key, vus_key) = (r.written("iterations").to_string(), r.written("vus").to_string());
            r.push(OptionError::new(
                &key,
                format!("must be at least {vus_key} ({vus}) so that every VU gets an iteration, got {iterations}"),
                Some(format!("raise {key} or lower {vus_key}")),
            ));
        }
        let built = (|| {
            Some(SharedIterations {
                vus: vus?,
                iterations: iterations?,
                max_duration: max_duration?,
                graceful_stop: graceful_stop?,
            })
        })();
        r.finish(built)
    }

    /// `vus` VUs for up to `max_duration`, sharing `iterations`.
    pub fn plan(&self) -> ClosedPlan {
        ClosedPlan {
            stages: vec![VuStage { duration: self.max_duration, target: self.vus }],
            start_vus: self.vus,
            max_vus: self.vus,
            iterations: Iterations::Shared(self.iterations),
            duration: self.max_duration,
            graceful_stop: self.graceful_stop,
            graceful_ramp_down: Duration::ZERO,
        }
    }

    /// Durations and the iteration count times `factor` (the count stays at least `vus`);
    /// the VU count is unchanged.
    pub fn scaled(&self, factor: f64) -> Self {
        SharedIterations {
            vus: self.vus,
            iterations: scale_count(self.iterations, factor).max(self.vus),
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
        let e = parse(json!({"executor": "shared-iterations"}));
        let expected = SharedIterations {
            vus: 1,
            iterations: 1,
            max_duration: Duration::from_secs(600),
            graceful_stop: Duration::from_secs(30),
        };
        assert_eq!(e, Executor::SharedIterations(expected));
        assert_eq!(e.nominal_duration(), Duration::from_secs(600));
    }

    #[test]
    fn plans_a_shared_pool_with_a_hard_stop() {
        let e = parse(json!({"executor": "shared-iterations", "vus": 5, "iterations": 100.0, "maxDuration": "30s"}));
        let Plan::Closed(plan) = e.plan() else { panic!() };
        assert_eq!(plan.iterations, Iterations::Shared(100));
        assert_eq!(plan.duration, Duration::from_secs(30));
        assert_eq!(plan.vus_at(Duration::from_secs(29)), 5);
        assert_eq!(e.max_vus(), 5);
    }

    #[test]
    fn needs_at_least_one_iteration_per_vu() {
        let found = errors(json!({"executor": "shared-iterations", "vus": 10, "iterations": 5}));
        assert_eq!(found, ["iterations: must be at least vus (10) so that every VU gets an iteration, got 5"]);
    }

    #[test]
    fn reports_every_bad_option() {
        let found = errors(
            json!({"executor": "shared-iterations", "vus": -1, "iterations": "many", "max_duration": 0, "graceful_stop": []}),
        );
        assert_eq!(
            found,
            [
                "vus: must be at least 1, got -1",
                "iterations: expected a whole number, got \"many\"",
                "max_duration: must be longer than 0, got 0",
                "graceful_stop: expected a duration, got []",
            ]
        );
    }

    #[test]
    fn scaling_keeps_an_iteration_per_vu() {
        let e = parse(json!({"executor": "shared-iterations", "vus": 10, "iterations": 1000}));
        let Executor::SharedIterations(s) = e.scaled(0.1) else { panic!() };
        assert_eq!((s.vus, s.iterations, s.max_duration), (10, 100, Duration::from_secs(60)));
        let Executor::SharedIterations(s) = e.scaled(0.001) else { panic!() };
        assert_eq!(s.iterations, 10);
    }
}
