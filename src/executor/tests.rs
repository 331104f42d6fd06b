//! Tests across profiles: executor selection, unknown keys, many errors at once,
//! scaling, and property-style checks of plans over many generated inputs. Helpers here
//! are shared with the profile files' own tests.

use std::time::Duration;

use serde_json::{Map, Value, json};

use super::*;

/// `value` (a JSON object) as an options map.
pub(crate) fn opts(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("options must be an object: {other}"),
    }
}

/// The executor for `value`, failing the test with every error otherwise.
pub(crate) fn parse(value: Value) -> Executor {
    match Executor::from_options(&opts(value)) {
        Ok(e) => e,
        Err(errors) => panic!("unexpected errors: {errors:#?}"),
    }
}

/// The errors for `value` as displayed, failing the test if it parses.
pub(crate) fn errors(value: Value) -> Vec<String> {
    match Executor::from_options(&opts(value)) {
        Ok(e) => panic!("expected errors, parsed {e:?}"),
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
    }
}

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[test]
fn every_name_parses_to_its_profile() {
    let minimal = [
        json!({"executor": "shared-iterations"}),
        json!({"executor": "per-vu-iterations"}),
        json!({"executor": "constant-vus", "duration": 1}),
        json!({"executor": "ramping-vus", "stages": [{"duration": 1, "target": 1}]}),
        json!({"executor": "constant-arrival-rate", "rate": 1, "duration": 1}),
        json!({"executor": "ramping-arrival-rate", "stages": [{"duration": 1, "target": 1}]}),
        json!({"executor": "bursts", "bursts": 1, "size": 1}),
    ];
    for (name, value) in NAMES.iter().zip(minimal) {
        let e = parse(value);
        assert_eq!(e.name(), *name);
        let open = matches!(e, Executor::ConstantArrivalRate(_) | Executor::RampingArrivalRate(_));
        match e.plan() {
            Plan::Closed(_) => assert!(!open && !matches!(e, Executor::Bursts(_)), "{name}"),
            Plan::Open(_) => assert!(open, "{name}"),
            Plan::Bursts(_) => assert_eq!(*name, "bursts"),
        }
    }
}

#[test]
fn an_unknown_executor_suggests_the_closest() {
    let e = Executor::from_options(&opts(json!({"executor": "constant-arival-rate", "rate": 5}))).unwrap_err();
    assert_eq!(e.len(), 1, "{e:#?}");
    assert_eq!(e[0].to_string(), "executor: unknown executor \"constant-arival-rate\"");
    assert_eq!(
        e[0].hint.as_deref(),
        Some(
            "did you mean `constant-arrival-rate`? executors: shared-iterations, per-vu-iterations, \
             constant-vus, ramping-vus, constant-arrival-rate, ramping-arrival-rate, bursts"
        )
    );
    let e = Executor::from_options(&opts(json!({"executor": "open-model"}))).unwrap_err();
    assert!(e[0].hint.as_deref().unwrap().starts_with("executors: shared-iterations"), "{e:?}");
}

#[test]
fn a_missing_executor_still_reports_typos_elsewhere() {
    let found = errors(json!({"vsu": 3, "duration": "1m", "maxVUs": 5}));
    assert_eq!(found, ["executor: is required", "vsu: unknown option for any executor"]);
    let e = Executor::from_options(&opts(json!({"vsu": 3}))).unwrap_err();
    assert_eq!(e[1].hint.as_deref(), Some("did you mean `vus`?"));
    let found = errors(json!({"executor": 5}));
    assert_eq!(found, ["executor: expected the name of an executor, got 5"]);
}

#[test]
fn options_of_another_executor_are_named_as_such() {
    let e = Executor::from_options(&opts(json!({
        "executor": "constant-vus",
        "duration": "1m",
        "stages": [],
        "preAllocatedVUs": 3,
    })))
    .unwrap_err();
    let found: Vec<String> = e.iter().map(ToString::to_string).collect();
    assert_eq!(
        found,
        [
            "preAllocatedVUs: not an option of constant-vus (it belongs to constant-arrival-rate, ramping-arrival-rate)",
            "stages: not an option of constant-vus (it belongs to ramping-vus, ramping-arrival-rate)",
        ]
    );
    assert_eq!(e[1].hint.as_deref(), Some("options of constant-vus: executor, vus, duration, graceful_stop"));
}

#[test]
fn every_problem_is_reported_in_one_go() {
    let e = Executor::from_options(&opts(json!({
        "executor": "ramping-arrival-rate",
        "startRate": "fast",
        "time_unit": "1 fortnight",
        "stages": [{"duration": "1s", "target": 1}, {"duration": -1, "target": 1, "ramp": "linear"}],
        "pre_allocated_vus": 10,
        "max_vus": 5,
        "graceful_stop": false,
        "iterations": 100,
    })))
    .unwrap_err();
    let keys: Vec<&str> = e.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        keys,
        ["iterations", "startRate", "time_unit", "stages[1].ramp", "stages[1].duration", "max_vus", "graceful_stop"]
    );
    let hints: Vec<Option<&str>> = e.iter().map(|e| e.hint.as_deref()).collect();
    assert_eq!(hints[2], Some(crate::duration::DURATION_HINT));
    assert_eq!(hints[4], Some(crate::duration::DURATION_HINT));
    assert_eq!(e[5].to_string(), "max_vus: must be at least pre_allocated_vus (10), got 5");
}

#[test]
fn scaling_with_a_bad_factor_changes_nothing() {
    let e = parse(json!({"executor": "constant-vus", "duration": "1m"}));
    for factor in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        assert_eq!(e.scaled(factor), e, "factor {factor}");
    }
    assert_eq!(e.scaled(1.0), e);
    assert_eq!(e.scaled(2.0).nominal_duration(), Duration::from_secs(120));
}

#[test]
fn scaled_durations_stay_at_least_a_millisecond() {
    let e = parse(json!({"executor": "constant-vus", "duration": "10s", "graceful_stop": 0}));
    let Executor::ConstantVus(s) = e.scaled(1e-9) else { panic!() };
    assert_eq!((s.duration, s.graceful_stop), (Duration::from_millis(1), Duration::ZERO));
    assert_eq!(scale_duration(Duration::from_micros(200), 0.5), Duration::from_micros(200));
    assert_eq!(scale_duration(Duration::from_secs(3), 1.0 / 3.0), Duration::from_secs(1));
    assert_eq!(scale_count(7, 0.5), 4);
    assert_eq!(scale_count(7, 0.0001), 1);
}

/// A random ramping-arrival-rate plan: up to 5 stages, some of zero length, some at rate
/// zero, some fractional, durations in whole milliseconds up to 20s.
fn random_open_plan(rng: &mut Rng) -> OpenPlan {
    let rate = |rng: &mut Rng| match rng.below(4) {
        0 => 0.0,
        1 => rng.below(50) as f64,
        2 => rng.unit() * 2.0,
        _ => rng.unit() * 50.0,
    };
    let start = rate(rng);
    let stages: Vec<RateStage> = (0..1 + rng.below(5))
        .map(|_| {
            let duration = if rng.below(5) == 0 { Duration::ZERO } else { Duration::from_millis(rng.below(20_000)) };
            RateStage { duration, target_rate_per_s: rate(rng) }
        })
        .collect();
    let duration = stages.iter().map(|s| s.duration).sum();
    OpenPlan {
        start_rate_per_s: start,
        stages,
        pre_allocated_vus: 1,
        max_vus: 1,
        duration,
        graceful_stop: Duration::ZERO,
    }
}

/// The rate's integral from zero to `t`, computed directly (trapezoids per stage).
fn integral_to(plan: &OpenPlan, t: Duration) -> f64 {
    let (mut total, mut from, mut start) = (0.0, plan.start_rate_per_s, Duration::ZERO);
    for stage in &plan.stages {
        let end = start + stage.duration;
        if t <= start {
            break;
        }
        if stage.duration.is_zero() {
            from = stage.target_rate_per_s;
            continue;
        }
        let to = stage.target_rate_per_s;
        let span = t.min(end) - start;
        let rate_at_span = from + (to - from) * span.as_secs_f64() / stage.duration.as_secs_f64();
        total += (from + rate_at_span) / 2.0 * span.as_secs_f64();
        (from, start) = (to, end);
    }
    total
}

#[test]
fn random_plans_schedule_ordered_arrivals_inside_the_duration() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut checked = 0;
    for _ in 0..300 {
        let plan = random_open_plan(&mut rng);
        let count = plan.expected_iterations();
        let total = integral_to(&plan, plan.duration);
        assert!(count as f64 >= total - 1e-6 && (count as f64) < total + 1.0 + 1e-6, "{count} vs {total}: {plan:?}");
        let mut last = Duration::ZERO;
        for i in 0..count {
            let t = plan.arrival(i).unwrap_or_else(|| panic!("arrival {i} of {count} missing: {plan:?}"));
            assert!(t >= last, "arrival {i} at {t:?} before {last:?}: {plan:?}");
            assert!(t < plan.duration, "arrival {i} at {t:?} not before {:?}: {plan:?}", plan.duration);
            // The i-th arrival is where the integral reaches i (to within the nanosecond
            // rounding of the offset times the highest rate).
            let reached = integral_to(&plan, t);
            assert!((reached - i as f64).abs() < 1e-4, "arrival {i} at {t:?} has integral {reached}: {plan:?}");
            last = t;
            checked += 1;
        }
        assert_eq!(plan.arrival(count), None, "{plan:?}");
        assert_eq!(plan.arrival(count + 10), None);
    }
    assert!(checked > 10_000, "only {checked} arrivals checked");
}

#[test]
fn random_ramps_keep_vus_between_their_stage_ends() {
    let mut rng = Rng(42);
    for _ in 0..200 {
        let start_vus = rng.below(30);
        let stages: Vec<VuStage> = (0..1 + rng.below(5))
            .map(|_| VuStage { duration: Duration::from_millis(rng.below(10_000)), target: rng.below(30) })
            .collect();
        let e = RampingVus { start_vus, stages, graceful_ramp_down: Duration::ZERO, graceful_stop: Duration::ZERO };
        let plan = e.plan();
        let mut from = start_vus;
        let mut start = Duration::ZERO;
        for stage in &plan.stages {
            let (low, high) = (from.min(stage.target), from.max(stage.target));
            for step in 0..20 {
                let t = start + stage.duration * step / 20;
                if t < start + stage.duration {
                    let vus = plan.vus_at(t);
                    assert!((low..=high).contains(&vus), "{vus} outside {low}..={high} at {t:?}: {plan:?}");
                }
            }
            (from, start) = (stage.target, start + stage.duration);
        }
        assert!(plan.stages.iter().all(|s| s.target <= plan.max_vus) && start_vus <= plan.max_vus);
        assert_eq!(plan.vus_at(plan.duration), 0);
    }
}

#[test]
fn arbitrary_option_values_never_panic() {
    let mut rng = Rng(7);
    let keys: Vec<&str> = NAMES.iter().filter_map(|n| keys_of(n)).flatten().copied().collect();
    let values = [
        json!(null),
        json!(true),
        json!(-1),
        json!(0),
        json!(1.5),
        json!(1e300),
        json!(-1e300),
        json!(u64::MAX),
        json!("1s"),
        json!("nonsense"),
        json!([]),
        json!([{"duration": 1e300, "target": 1e300}]),
        json!([{"duration": "1s", "target": -0.0}]),
        json!({}),
    ];
    for _ in 0..2000 {
        let mut map = Map::new();
        map.insert("executor".into(), json!(NAMES[rng.below(NAMES.len() as u64) as usize]));
        for _ in 0..rng.below(6) {
            let key = keys[rng.below(keys.len() as u64) as usize];
            if key != "executor" {
                map.insert(key.into(), values[rng.below(values.len() as u64) as usize].clone());
            }
        }
        match Executor::from_options(&map) {
            Ok(e) => {
                let _ = (e.plan(), e.scaled(0.5), e.nominal_duration(), e.max_vus());
            }
            Err(errors) => assert!(!errors.is_empty()),
        }
    }
}

#[test]
fn several_unknown_keys_share_one_list_of_the_valid_ones() {
    let e = Executor::from_options(&opts(json!({
        "executor": "shared-iterations",
        "vus": 1,
        "itrations": 2,
        "duraton": "1s",
        "foo": 1,
    })))
    .unwrap_err();
    let (message, hint) = describe_errors("p", &e);
    assert!(message.starts_with("phase \"p\": invalid options (3 problems)"), "{message}");
    let hint = hint.unwrap();
    assert_eq!(hint.matches("options of shared-iterations:").count(), 1, "{hint}");
    assert!(hint.starts_with("did you mean `iterations` for itrations"), "{hint}");
    assert!(
        hint.ends_with("options of shared-iterations: executor, vus, iterations, max_duration, graceful_stop"),
        "{hint}"
    );
}
