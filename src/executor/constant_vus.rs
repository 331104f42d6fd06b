//! `constant-vus`: a fixed number of VUs loop over iterations for a duration.
//! Options: `vus` (default 1), `duration` (required), `graceful_stop`.

use std::time::Duration;

use serde_json::{Map, Value};

use super::options::Reader;
use super::{ClosedPlan, Iterations, OptionError, VuStage, scale_duration};

/// A fixed number of VUs looping for a duration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConstantVus {
    /// VUs running the whole time.
    pub vus: u64,
    /// How long they loop.
    pub duration: Duration,
    /// Time running iterations get to finish after `duration`.
    pub graceful_stop: Duration,
}

impl ConstantVus {
    /// The `executor` value that selects this profile.
    pub const NAME: &'static str = "constant-vus";
    /// Option keys this profile accepts (canonical spellings).
    pub const KEYS: &'static [&'static str] = &["executor", "vus", "duration", "graceful_stop"];

    pub(crate) fn read(opts: &Map<String, Value>) -> Result<Self, Vec<OptionError>> {
        let mut r = Reader::new(Self::NAME, Self::KEYS, opts);
        let vus = r.count("vus", Some(1), 1);
        let duration = r.duration("duration", None, true);
        let graceful_stop = r.graceful_stop();
        let built = (|| Some(ConstantVus { vus: vus?, duration: duration?, graceful_stop: graceful_stop? }))();
        r.finish(built)
    }

    /// One stage holding `vus` for `duration`.
    pub fn plan(&self) -> ClosedPlan {
        ClosedPlan {
            stages: vec![VuStage { duration: self.duration, target: self.vus }],
            start_vus: self.vus,
            max_vus: self.vus,
            iterations: Iterations::Unlimited,
            duration: self.duration,
            graceful_stop: self.graceful_stop,
            graceful_ramp_down: Duration::ZERO,
        }
    }

    /// Durations times `factor`; the VU count is unchanged.
    pub fn scaled(&self, factor: f64) -> Self {
        ConstantVus {
            vus: self.vus,
            duration: scale_duration(self.duration, factor),
            graceful_stop: scale_duration(self.graceful_stop, factor),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executor::tests::{errors, opts, parse};
    use crate::executor::{Executor, Plan};
    use serde_json::json;

    #[test]
    fn defaults_to_one_vu_and_a_30s_graceful_stop() {
        let e = parse(json!({"executor": "constant-vus", "duration": "2m"}));
        let expected =
            ConstantVus { vus: 1, duration: Duration::from_secs(120), graceful_stop: Duration::from_secs(30) };
        assert_eq!(e, Executor::ConstantVus(expected));
        assert_eq!(e.name(), "constant-vus");
        assert_eq!(e.nominal_duration(), Duration::from_secs(120));
        assert_eq!(e.max_vus(), 1);
    }

    #[test]
    fn plans_one_flat_stage() {
        let e = parse(json!({"executor": "constant-vus", "vus": 8, "duration": 10, "gracefulStop": "5s"}));
        let Plan::Closed(plan) = e.plan() else { panic!("not closed: {e:?}") };
        assert_eq!(plan.stages, vec![VuStage { duration: Duration::from_secs(10), target: 8 }]);
        assert_eq!((plan.start_vus, plan.max_vus, plan.iterations), (8, 8, Iterations::Unlimited));
        assert_eq!(plan.graceful_stop, Duration::from_secs(5));
        assert_eq!(plan.vus_at(Duration::ZERO), 8);
        assert_eq!(plan.vus_at(Duration::from_millis(9999)), 8);
        assert_eq!(plan.vus_at(Duration::from_secs(10)), 0);
    }

    #[test]
    fn reports_every_bad_option() {
        let found = errors(json!({"executor": "constant-vus", "vus": 0, "graceful_stop": "soon"}));
        assert_eq!(found.len(), 3, "{found:?}");
        assert_eq!(found[0], "vus: must be at least 1, got 0");
        assert_eq!(found[1], "duration: is required by constant-vus");
        assert!(found[2].starts_with("graceful_stop: invalid duration \"soon\""), "{}", found[2]);
        let e = Executor::from_options(&opts(json!({"executor": "constant-vus", "duration": "0s"}))).unwrap_err();
        assert_eq!(e[0].to_string(), "duration: must be longer than 0, got \"0s\"");
        assert_eq!(e[0].hint.as_deref(), Some(crate::duration::DURATION_HINT));
    }

    #[test]
    fn scales_durations_not_vus() {
        let e = parse(json!({"executor": "constant-vus", "vus": 8, "duration": "10m"}));
        let Executor::ConstantVus(s) = e.scaled(0.01) else { panic!() };
        assert_eq!(
            s,
            ConstantVus { vus: 8, duration: Duration::from_secs(6), graceful_stop: Duration::from_millis(300) }
        );
    }
}
