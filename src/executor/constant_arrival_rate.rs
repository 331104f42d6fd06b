//! `constant-arrival-rate`: iterations start at a fixed rate for a duration, each on a
//! free VU. Options: `rate` (required, > 0, fractional allowed) per `time_unit` (default
//! 1s), `duration` (required), `pre_allocated_vus`, `max_vus`, `graceful_stop`.
//!
//! VU defaults, shared with ramping-arrival-rate: `pre_allocated_vus` is enough for
//! iterations of up to one second at the peak rate, `max(1, ceil(peak_rate_per_s))`, but
//! never above an explicit `max_vus`. `max_vus` defaults to `max(100, 2 ×
//! pre_allocated_vus)`. Why not k6's `maxVUs = preAllocatedVUs`: there, iterations
//! slower than the budget silently drop arrivals; our VUs are cheap coroutines, so the
//! default leaves headroom for twice the expected latency (or 100 VUs at low rates).

use std::time::Duration;

use serde_json::{Map, Value};

use super::options::Reader;
use super::{OpenPlan, OptionError, RateStage, scale_duration};

/// Iterations started at a fixed rate.
#[derive(Debug, Clone, PartialEq)]
pub struct ConstantArrivalRate {
    /// Iterations started per second (`rate` / `time_unit`).
    pub rate_per_s: f64,
    /// How long iterations keep starting.
    pub duration: Duration,
    /// VUs created before the phase starts.
    pub pre_allocated_vus: u64,
    /// The most VUs the engine may create.
    pub max_vus: u64,
    /// Time running iterations get to finish after `duration`.
    pub graceful_stop: Duration,
}

/// The unit `rate` is counted in unless `time_unit` says otherwise.
pub(crate) const DEFAULT_TIME_UNIT: Duration = Duration::from_secs(1);

/// The default `max_vus` for a given `pre_allocated_vus` (see the module docs).
fn default_max_vus(pre_allocated_vus: u64) -> u64 {
    pre_allocated_vus.saturating_mul(2).max(100)
}

/// The highest arrival rate a profile may ask for, in iterations per second: ten times
/// what one process starts on a fast machine, so agents sharing a rate have room, while
/// a typo (`1e12`, a rate per millisecond) is refused instead of running a scheduler that
/// can only fall behind.
pub const MAX_RATE_PER_S: f64 = 10_000_000.0;

/// Refuses a rate (`key`, iterations per second) above [`MAX_RATE_PER_S`]; says whether
/// it was.
pub(crate) fn refuse_absurd(r: &mut Reader<'_>, key: &'static str, per_s: Option<f64>) -> bool {
    let Some(per_s) = per_s.filter(|p| *p > MAX_RATE_PER_S) else { return false };
    let key = r.written(key).to_string();
    r.push(OptionError::new(
        &key,
        format!("asks for {per_s:.0} iterations per second, more than any load generator starts (at most 10,000,000)"),
        Some("check the rate and its time_unit; one process starts about 100,000 iterations/s, agents (--agent) share a rate".into()),
    ));
    true
}

/// Reads `pre_allocated_vus` and `max_vus` with their defaults for a profile whose
/// highest rate is `peak_rate_per_s` (None when the rates were invalid: errors are
/// already recorded), and checks `max_vus >= pre_allocated_vus`.
pub(crate) fn read_vus(r: &mut Reader<'_>, peak_rate_per_s: Option<f64>) -> (Option<u64>, Option<u64>) {
    const PRE: &str = "pre_allocated_vus";
    const MAX: &str = "max_vus";
    if peak_rate_per_s.is_some_and(|p| p > MAX_RATE_PER_S) {
        return (None, None);
    }
    let pre = r.given(PRE).then(|| r.count(PRE, None, 0));
    let max = r.given(MAX).then(|| r.count(MAX, None, 1));
    // Float to integer casts saturate, so an absurd rate cannot wrap around.
    let default_pre = peak_rate_per_s.map(|peak| (peak.ceil() as u64).max(1));
    match (pre, max) {
        (Some(pre), Some(max)) => {
            if let (Some(p), Some(m)) = (pre, max)
                && m < p
            {
                let (max_key, pre_key) = (r.written(MAX).to_string(), r.written(PRE).to_string());
                r.push(OptionError::new(
                    &max_key,
                    format!("must be at least {pre_key} ({p}), got {m}"),
                    Some(format!("raise {max_key} or lower {pre_key}")),
                ));
            }
            (pre, max)
        }
        (Some(pre), None) => (pre, pre.map(default_max_vus)),
        (None, Some(max)) => (default_pre.zip(max).map(|(d, m)| d.min(m)), max),
        (None, None) => (default_pre, default_pre.map(default_max_vus)),
    }
}

/// `rate` per `time_unit` as iterations per second; None when either was invalid.
pub(crate) fn per_second(rate: Option<f64>, time_unit: Option<Duration>) -> Option<f64> {
    Some(rate? / time_unit?.as_secs_f64())
}

impl ConstantArrivalRate {
    /// The `executor` value that selects this profile.
    pub const NAME: &'static str = "constant-arrival-rate";
    /// Option keys this profile accepts (canonical spellings).
    pub const KEYS: &'static [&'static str] =
        &["executor", "rate", "time_unit", "duration", "pre_allocated_vus", "max_vus", "graceful_stop"];

    pub(crate) fn read(opts: &Map<String, Value>) -> Result<Self, Vec<OptionError>> {
        let mut r = Reader::new(Self::NAME, Self::KEYS, opts);
        let rate = r.rate("rate", None, true);
        let time_unit = r.duration("time_unit", Some(DEFAULT_TIME_UNIT), true);
        let rate_per_s = per_second(rate, time_unit);
        refuse_absurd(&mut r, "rate", rate_per_s);
        let duration = r.duration("duration", None, true);
        let (pre_allocated_vus, max_vus) = read_vus(&mut r, rate_per_s);
        let graceful_stop = r.graceful_stop();
        let built = (|| {
            Some(ConstantArrivalRate {
                rate_per_s: rate_per_s?,
                duration: duration?,
                pre_allocated_vus: pre_allocated_vus?,
                max_vus: max_vus?,
                graceful_stop: graceful_stop?,
            })
        })();
        r.finish(built)
    }

    /// One flat stage at `rate_per_s` for `duration`.
    pub fn plan(&self) -> OpenPlan {
        OpenPlan {
            start_rate_per_s: self.rate_per_s,
            stages: vec![RateStage { duration: self.duration, target_rate_per_s: self.rate_per_s }],
            pre_allocated_vus: self.pre_allocated_vus,
            max_vus: self.max_vus,
            duration: self.duration,
            graceful_stop: self.graceful_stop,
        }
    }

    /// Durations times `factor`; the rate and VU counts are unchanged, so the number of
    /// iterations scales with `factor`.
    pub fn scaled(&self, factor: f64) -> Self {
        ConstantArrivalRate {
            duration: scale_duration(self.duration, factor),
            graceful_stop: scale_duration(self.graceful_stop, factor),
            ..self.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executor::tests::{errors, opts, parse};
    use crate::executor::{Executor, Plan};
    use serde_json::json;

    fn read(value: serde_json::Value) -> ConstantArrivalRate {
        match parse(value) {
            Executor::ConstantArrivalRate(e) => e,
            other => panic!("not constant-arrival-rate: {other:?}"),
        }
    }

    #[test]
    fn defaults_size_the_vus_from_the_rate() {
        let e = read(json!({"executor": "constant-arrival-rate", "rate": 50, "duration": "1m"}));
        let expected = ConstantArrivalRate {
            rate_per_s: 50.0,
            duration: Duration::from_secs(60),
            pre_allocated_vus: 50,
            max_vus: 100,
            graceful_stop: Duration::from_secs(30),
        };
        assert_eq!(e, expected);
        let e = read(json!({"executor": "constant-arrival-rate", "rate": 300.5, "duration": 1}));
        assert_eq!((e.pre_allocated_vus, e.max_vus), (301, 602));
        let e = read(json!({"executor": "constant-arrival-rate", "rate": 0.1, "duration": 1}));
        assert_eq!((e.pre_allocated_vus, e.max_vus), (1, 100));
        let e = read(json!({"executor": "constant-arrival-rate", "rate": 500, "duration": 1, "max_vus": 20}));
        assert_eq!((e.pre_allocated_vus, e.max_vus), (20, 20));
        let e = read(json!({"executor": "constant-arrival-rate", "rate": 5, "duration": 1, "pre_allocated_vus": 80}));
        assert_eq!((e.pre_allocated_vus, e.max_vus), (80, 160));
    }

    #[test]
    fn reads_k6_spellings_and_time_units() {
        let e = read(json!({
            "executor": "constant-arrival-rate",
            "rate": 30,
            "timeUnit": "1m",
            "duration": "10s",
            "preAllocatedVUs": 2,
            "maxVUs": 4,
            "gracefulStop": "1s",
        }));
        let expected = ConstantArrivalRate {
            rate_per_s: 0.5,
            duration: Duration::from_secs(10),
            pre_allocated_vus: 2,
            max_vus: 4,
            graceful_stop: Duration::from_secs(1),
        };
        assert_eq!(e, expected);
        let Plan::Open(plan) = Executor::ConstantArrivalRate(e).plan() else { panic!() };
        assert_eq!(plan.expected_iterations(), 5);
        assert_eq!(plan.arrival(4), Some(Duration::from_secs(8)));
        assert_eq!(plan.rate_at(Duration::from_secs(3)), 0.5);
    }

    #[test]
    fn arrivals_are_i_over_rate() {
        let e = parse(json!({"executor": "constant-arrival-rate", "rate": 20, "duration": "3s"}));
        let Plan::Open(plan) = e.plan() else { panic!() };
        assert_eq!(plan.expected_iterations(), 60);
        for i in 0..60 {
            assert_eq!(plan.arrival(i), Some(Duration::from_millis(i * 50)));
        }
        assert_eq!(plan.arrival(60), None);
    }

    #[test]
    fn reports_every_bad_option() {
        let found = errors(json!({
            "executor": "constant-arrival-rate",
            "rate": 0,
            "time_unit": "0s",
            "pre_allocated_vus": -1,
            "max_vus": 0,
        }));
        assert_eq!(
            found,
            [
                "rate: must be greater than 0, got 0",
                "time_unit: must be longer than 0, got \"0s\"",
                "duration: is required by constant-arrival-rate",
                "pre_allocated_vus: must be at least 0, got -1",
                "max_vus: must be at least 1, got 0",
            ]
        );
        let e = Executor::from_options(&opts(json!({
            "executor": "constant-arrival-rate",
            "rate": 10,
            "duration": "1s",
            "preAllocatedVUs": 50,
            "maxVUs": 10,
        })))
        .unwrap_err();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].to_string(), "maxVUs: must be at least preAllocatedVUs (50), got 10");
        assert_eq!(e[0].hint.as_deref(), Some("raise maxVUs or lower preAllocatedVUs"));
    }

    #[test]
    fn a_rate_no_load_generator_could_start_is_refused() {
        let too_much = |key: &str, n: &str| {
            format!(
                "{key}: asks for {n} iterations per second, more than any load generator starts (at most 10,000,000)"
            )
        };
        let found = errors(json!({"executor": "constant-arrival-rate", "rate": 1e12, "duration": "1s"}));
        assert_eq!(found, [too_much("rate", "1000000000000")]);
        // Per millisecond, a modest-looking rate is a billion a second.
        let found =
            errors(json!({"executor": "constant-arrival-rate", "rate": 1e6, "time_unit": "1ms", "duration": "1s"}));
        assert_eq!(found, [too_much("rate", "1000000000")]);
        let found = errors(json!({
            "executor": "ramping-arrival-rate",
            "stages": [{"duration": "1s", "target": 10}, {"duration": "1s", "target": 1e12}],
        }));
        assert_eq!(found, [too_much("stages", "1000000000000")]);
        let found = errors(json!({
            "executor": "ramping-arrival-rate",
            "start_rate": 1e12,
            "stages": [{"duration": "1s", "target": 10}],
        }));
        assert_eq!(found, [too_much("start_rate", "1000000000000")]);
        // The bound itself is allowed.
        parse(json!({"executor": "constant-arrival-rate", "rate": 1e7, "duration": "1s", "max_vus": 10}));
    }

    #[test]
    fn alias_and_canonical_together_is_an_error() {
        let found = errors(json!({
            "executor": "constant-arrival-rate",
            "rate": 1,
            "duration": 1,
            "maxVUs": 10,
            "max_vus": 20,
        }));
        assert_eq!(found, ["max_vus: given twice, as `maxVUs` and `max_vus`"]);
    }

    #[test]
    fn scales_the_duration_not_the_rate() {
        let e = parse(json!({"executor": "constant-arrival-rate", "rate": 10, "duration": "1m"}));
        let scaled = e.scaled(0.5);
        let Executor::ConstantArrivalRate(s) = &scaled else { panic!() };
        assert_eq!((s.rate_per_s, s.duration, s.pre_allocated_vus), (10.0, Duration::from_secs(30), 10));
        let Plan::Open(plan) = scaled.plan() else { panic!() };
        assert_eq!(plan.expected_iterations(), 300);
    }
}
