//! `ramping-vus`: the VU count follows stages, linearly from `start_vus`. Options:
//! `start_vus` (default 1, as in k6), `stages` (required, `[#{duration, target}]`),
//! `graceful_ramp_down` (default 30s), `graceful_stop`.

use std::time::Duration;

use serde_json::{Map, Value};

use super::options::{Reader, TargetKind};
use super::{ClosedPlan, Iterations, OptionError, VuStage, scale_duration};

/// A VU count following stages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RampingVus {
    /// VUs at the start.
    pub start_vus: u64,
    /// The ramp; at least one stage, with a total duration > 0.
    pub stages: Vec<VuStage>,
    /// Time an iteration on a VU the ramp removes gets to finish.
    pub graceful_ramp_down: Duration,
    /// Time running iterations get to finish after the last stage.
    pub graceful_stop: Duration,
}

/// k6's default `gracefulRampDown`.
const DEFAULT_GRACEFUL_RAMP_DOWN: Duration = Duration::from_secs(30);

impl RampingVus {
    /// The `executor` value that selects this profile.
    pub const NAME: &'static str = "ramping-vus";
    /// Option keys this profile accepts (canonical spellings).
    pub const KEYS: &'static [&'static str] =
        &["executor", "start_vus", "stages", "graceful_ramp_down", "graceful_stop"];

    pub(crate) fn read(opts: &Map<String, Value>) -> Result<Self, Vec<OptionError>> {
        let mut r = Reader::new(Self::NAME, Self::KEYS, opts);
        let start_vus = r.count("start_vus", Some(1), 0);
        let stages = r.stages("stages", TargetKind::Vus).map(|stages| {
            // Targets were read as whole numbers >= 0, so the cast is exact.
            stages.iter().map(|s| VuStage { duration: s.duration, target: s.target as u64 }).collect()
        });
        let graceful_ramp_down = r.duration("graceful_ramp_down", Some(DEFAULT_GRACEFUL_RAMP_DOWN), false);
        let graceful_stop = r.graceful_stop();
        let built = (|| {
            Some(RampingVus {
                start_vus: start_vus?,
                stages: stages?,
                graceful_ramp_down: graceful_ramp_down?,
                graceful_stop: graceful_stop?,
            })
        })();
        r.finish(built)
    }

    /// The stages as they are, lasting their total duration.
    pub fn plan(&self) -> ClosedPlan {
        let max_vus = self.stages.iter().map(|s| s.target).fold(self.start_vus, u64::max);
        ClosedPlan {
            stages: self.stages.clone(),
            start_vus: self.start_vus,
            max_vus,
            iterations: Iterations::Unlimited,
            duration: self.stages.iter().map(|s| s.duration).sum(),
            graceful_stop: self.graceful_stop,
            graceful_ramp_down: self.graceful_ramp_down,
        }
    }

    /// Every duration times `factor`; VU counts are unchanged.
    pub fn scaled(&self, factor: f64) -> Self {
        RampingVus {
            start_vus: self.start_vus,
            stages: self
                .stages
                .iter()
                .map(|s| VuStage { duration: scale_duration(s.duration, factor), target: s.target })
                .collect(),
            graceful_ramp_down: scale_duration(self.graceful_ramp_down, factor),
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

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn defaults_to_one_start_vu_and_30s_grace() {
        let e = parse(json!({"executor": "ramping-vus", "stages": [{"duration": "10s", "target": 5}]}));
        let expected = RampingVus {
            start_vus: 1,
            stages: vec![VuStage { duration: secs(10), target: 5 }],
            graceful_ramp_down: secs(30),
            graceful_stop: secs(30),
        };
        assert_eq!(e, Executor::RampingVus(expected));
    }

    #[test]
    fn plans_the_ramp_across_stages() {
        let e = parse(json!({
            "executor": "ramping-vus",
            "startVUs": 0,
            "gracefulRampDown": "5s",
            "stages": [
                {"duration": "20s", "target": 20},
                {"duration": 30, "target": 20},
                {"duration": "10s", "target": 0},
            ],
        }));
        assert_eq!(e.nominal_duration(), secs(60));
        assert_eq!(e.max_vus(), 20);
        let Plan::Closed(plan) = e.plan() else { panic!() };
        assert_eq!((plan.start_vus, plan.max_vus, plan.graceful_ramp_down), (0, 20, secs(5)));
        let at = |ms: u64| plan.vus_at(Duration::from_millis(ms));
        assert_eq!([at(0), at(500), at(1000), at(10_000), at(19_999)], [0, 0, 1, 10, 19]);
        assert_eq!([at(20_000), at(49_999), at(50_000), at(55_000), at(59_999), at(60_000)], [20, 20, 20, 10, 0, 0]);
    }

    #[test]
    fn every_stage_error_is_located() {
        let found = errors(json!({
            "executor": "ramping-vus",
            "start_vus": -2,
            "stages": [
                {"duration": "10s", "target": 5},
                {"duration": "ten seconds", "target": 2.5},
                {"target": 1, "durration": "1s"},
                7,
            ],
        }));
        assert_eq!(found.len(), 6, "{found:#?}");
        assert_eq!(found[0], "start_vus: must be at least 0, got -2");
        assert!(found[1].starts_with("stages[1].duration: invalid duration \"ten seconds\""), "{}", found[1]);
        assert_eq!(found[2], "stages[1].target: expected a whole number, got 2.5");
        assert_eq!(found[3], "stages[2].durration: unknown stage option");
        assert_eq!(found[4], "stages[2].duration: is required in every stage");
        assert_eq!(found[5], "stages[3]: expected a map with duration and target, got 7");
        let e = Executor::from_options(&opts(json!({
            "executor": "ramping-vus",
            "stages": [{"durration": "1s", "target": 1}],
        })))
        .unwrap_err();
        assert_eq!(e[0].hint.as_deref(), Some("did you mean `duration`? stage options: duration, target"));
    }

    #[test]
    fn stages_must_be_a_non_empty_list_lasting_longer_than_zero() {
        let found = errors(json!({"executor": "ramping-vus"}));
        assert_eq!(found, ["stages: is required by ramping-vus"]);
        let found = errors(json!({"executor": "ramping-vus", "stages": []}));
        assert_eq!(found, ["stages: needs at least one stage"]);
        let found = errors(json!({"executor": "ramping-vus", "stages": {"duration": "1s"}}));
        assert_eq!(found, ["stages: expected a list of stages, got {\"duration\":\"1s\"}"]);
        let found = errors(json!({"executor": "ramping-vus", "stages": [{"duration": 0, "target": 3}]}));
        assert_eq!(found, ["stages: the stages last 0s in total"]);
    }

    #[test]
    fn scales_stage_durations_keeping_instant_jumps() {
        let e = parse(json!({
            "executor": "ramping-vus",
            "stages": [{"duration": "1m", "target": 10}, {"duration": 0, "target": 2}, {"duration": "1s", "target": 2}],
        }));
        let Executor::RampingVus(s) = e.scaled(0.1) else { panic!() };
        let durations: Vec<Duration> = s.stages.iter().map(|s| s.duration).collect();
        assert_eq!(durations, [secs(6), Duration::ZERO, Duration::from_millis(100)]);
        assert_eq!(s.stages.iter().map(|s| s.target).collect::<Vec<_>>(), [10, 2, 2]);
        assert_eq!(s.graceful_ramp_down, secs(3));
    }
}
