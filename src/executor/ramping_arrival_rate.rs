//! `ramping-arrival-rate`: the rate at which iterations start follows stages, linearly
//! from `start_rate`. Options: `start_rate` (default 0), `time_unit` (default 1s),
//! `stages` (required, `[#{duration, target}]`, targets are rates per `time_unit`),
//! `pre_allocated_vus`, `max_vus` (defaults from the peak rate, see
//! `constant_arrival_rate`), `graceful_stop`.

use std::time::Duration;

use serde_json::{Map, Value};

use super::constant_arrival_rate::{DEFAULT_TIME_UNIT, per_second, read_vus, refuse_absurd};
use super::options::{Reader, TargetKind};
use super::{OpenPlan, OptionError, RateStage, scale_duration};

/// Iterations started at a rate following stages.
#[derive(Debug, Clone, PartialEq)]
pub struct RampingArrivalRate {
    /// Iterations per second at the start.
    pub start_rate_per_s: f64,
    /// The ramp, targets already in iterations per second; total duration > 0.
    pub stages: Vec<RateStage>,
    /// VUs created before the phase starts.
    pub pre_allocated_vus: u64,
    /// The most VUs the engine may create.
    pub max_vus: u64,
    /// Time running iterations get to finish after the last stage.
    pub graceful_stop: Duration,
}

impl RampingArrivalRate {
    /// The `executor` value that selects this profile.
    pub const NAME: &'static str = "ramping-arrival-rate";
    /// Option keys this profile accepts (canonical spellings).
    pub const KEYS: &'static [&'static str] =
        &["executor", "start_rate", "time_unit", "stages", "pre_allocated_vus", "max_vus", "graceful_stop"];

    pub(crate) fn read(opts: &Map<String, Value>) -> Result<Self, Vec<OptionError>> {
        let mut r = Reader::new(Self::NAME, Self::KEYS, opts);
        let start_rate = r.rate("start_rate", Some(0.0), false);
        let time_unit = r.duration("time_unit", Some(DEFAULT_TIME_UNIT), true);
        let start_rate_per_s = per_second(start_rate, time_unit);
        let stages: Option<Vec<RateStage>> = r.stages("stages", TargetKind::Rate).and_then(|raw| {
            raw.iter()
                .map(|s| {
                    Some(RateStage { duration: s.duration, target_rate_per_s: per_second(Some(s.target), time_unit)? })
                })
                .collect()
        });
        if !refuse_absurd(&mut r, "start_rate", start_rate_per_s) {
            let fastest = stages.as_ref().and_then(|s| s.iter().map(|s| s.target_rate_per_s).reduce(f64::max));
            refuse_absurd(&mut r, "stages", fastest);
        }
        let peak = stages
            .as_ref()
            .zip(start_rate_per_s)
            .map(|(stages, start)| stages.iter().map(|s| s.target_rate_per_s).fold(start, f64::max));
        let (pre_allocated_vus, max_vus) = read_vus(&mut r, peak);
        let graceful_stop = r.graceful_stop();
        let built = (|| {
            Some(RampingArrivalRate {
                start_rate_per_s: start_rate_per_s?,
                stages: stages?,
                pre_allocated_vus: pre_allocated_vus?,
                max_vus: max_vus?,
                graceful_stop: graceful_stop?,
            })
        })();
        r.finish(built)
    }

    /// The stages as they are, lasting their total duration.
    pub fn plan(&self) -> OpenPlan {
        OpenPlan {
            start_rate_per_s: self.start_rate_per_s,
            stages: self.stages.clone(),
            pre_allocated_vus: self.pre_allocated_vus,
            max_vus: self.max_vus,
            duration: self.stages.iter().map(|s| s.duration).sum(),
            graceful_stop: self.graceful_stop,
        }
    }

    /// Every duration times `factor`; rates and VU counts are unchanged.
    pub fn scaled(&self, factor: f64) -> Self {
        RampingArrivalRate {
            stages: self
                .stages
                .iter()
                .map(|s| RateStage { duration: scale_duration(s.duration, factor), ..*s })
                .collect(),
            graceful_stop: scale_duration(self.graceful_stop, factor),
            ..self.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executor::tests::{errors, parse};
    use crate::executor::{Executor, Plan};
    use serde_json::json;

    fn open(value: serde_json::Value) -> OpenPlan {
        match parse(value).plan() {
            Plan::Open(plan) => plan,
            other => panic!("not open: {other:?}"),
        }
    }

    #[test]
    fn defaults_start_at_zero_and_size_vus_from_the_peak() {
        let e = parse(json!({
            "executor": "ramping-arrival-rate",
            "stages": [{"duration": "10s", "target": 10}, {"duration": "10s", "target": 250}],
        }));
        let expected = RampingArrivalRate {
            start_rate_per_s: 0.0,
            stages: vec![
                RateStage { duration: Duration::from_secs(10), target_rate_per_s: 10.0 },
                RateStage { duration: Duration::from_secs(10), target_rate_per_s: 250.0 },
            ],
            pre_allocated_vus: 250,
            max_vus: 500,
            graceful_stop: Duration::from_secs(30),
        };
        assert_eq!(e, Executor::RampingArrivalRate(expected));
        assert_eq!(e.nominal_duration(), Duration::from_secs(20));
        assert_eq!(e.max_vus(), 500);
    }

    #[test]
    fn a_ramp_from_zero_to_ten_gives_fifty_arrivals() {
        let plan = open(json!({"executor": "ramping-arrival-rate", "stages": [{"duration": "10s", "target": 10}]}));
        assert_eq!(plan.expected_iterations(), 50);
        let times: Vec<Duration> = (0..).map_while(|i| plan.arrival(i)).collect();
        assert_eq!(times.len(), 50);
        assert!(times.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(times[0], Duration::ZERO);
        assert_eq!(times[18], Duration::from_secs(6));
    }

    #[test]
    fn time_unit_applies_to_start_rate_and_targets() {
        let plan = open(json!({
            "executor": "ramping-arrival-rate",
            "startRate": 60,
            "timeUnit": "1m",
            "stages": [{"duration": "30s", "target": 60}, {"duration": "30s", "target": 180}],
        }));
        assert_eq!(plan.start_rate_per_s, 1.0);
        assert_eq!(plan.stages[1].target_rate_per_s, 3.0);
        // 30 at 1/s, then 1 -> 3/s over 30s: 60 more.
        assert_eq!(plan.expected_iterations(), 90);
        assert_eq!(plan.arrival(30), Some(Duration::from_secs(30)));
        assert_eq!(plan.rate_at(Duration::from_secs(45)), 2.0);
    }

    #[test]
    fn a_zero_rate_stage_pauses_arrivals() {
        let plan = open(json!({
            "executor": "ramping-arrival-rate",
            "start_rate": 1,
            "stages": [
                {"duration": "5s", "target": 1},
                {"duration": 0, "target": 0},
                {"duration": "5s", "target": 0},
                {"duration": 0, "target": 1},
                {"duration": "5s", "target": 1},
            ],
        }));
        let times: Vec<Duration> = (0..).map_while(|i| plan.arrival(i)).collect();
        let secs: Vec<u64> = times.iter().map(|t| t.as_secs()).collect();
        assert_eq!(secs, [0, 1, 2, 3, 4, 10, 11, 12, 13, 14]);
        assert!(times.iter().all(|t| t.subsec_nanos() == 0));
    }

    #[test]
    fn reports_every_bad_option() {
        let found = errors(json!({
            "executor": "ramping-arrival-rate",
            "start_rate": -1,
            "stages": [{"duration": "1s", "target": -5}, {"duration": "1s", "target": "max"}],
            "maxVUs": 0,
            "rate": 5,
        }));
        assert_eq!(
            found,
            [
                "rate: not an option of ramping-arrival-rate (it belongs to constant-arrival-rate)",
                "start_rate: must not be negative, got -1",
                "stages[0].target: must not be negative, got -5",
                "stages[1].target: expected a number, got \"max\"",
                "maxVUs: must be at least 1, got 0",
            ]
        );
    }

    #[test]
    fn scales_stage_durations_not_rates() {
        let e = parse(json!({
            "executor": "ramping-arrival-rate",
            "start_rate": 10,
            "stages": [{"duration": "1m", "target": 10}, {"duration": "1m", "target": 0}],
        }));
        let scaled = e.scaled(0.1);
        let Executor::RampingArrivalRate(s) = &scaled else { panic!() };
        assert_eq!(s.stages[0], RateStage { duration: Duration::from_secs(6), target_rate_per_s: 10.0 });
        assert_eq!(s.start_rate_per_s, 10.0);
        let Plan::Open(plan) = scaled.plan() else { panic!() };
        // 60 + 30 arrivals instead of 600 + 300.
        assert_eq!(plan.expected_iterations(), 90);
    }
}
