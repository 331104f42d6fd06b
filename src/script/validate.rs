//! Validators shared by the bindings and `volley check`: each is the one place a rule
//! lives (an `expect` condition, a metric selection, a threshold on a metric's kind,
//! `retry`'s options and backoff, `sleep`'s bounds), so `check` reports a literal
//! argument with the very message `run` would give. No Rhai calls, no run state.

use super::opts::{self, Opts};
use crate::metrics::threshold::{Condition, Selector};
use rhai::{Dynamic, EvalAltResult, Map};
use std::time::Duration;

/// A primitive's options map: where it is among the arguments, the keys it takes, and
/// how its values are read (the very code the primitive runs).
pub struct OptionsSpec {
    /// The argument that is the options map.
    pub index: usize,
    /// The function, as messages name it.
    pub what: &'static str,
    /// The keys it accepts.
    pub allowed: &'static [&'static str],
    /// Reads every value as the primitive would.
    pub values: fn(&Opts) -> Result<(), Box<EvalAltResult>>,
}

fn amqp_publish_values(o: &Opts) -> Result<(), Box<EvalAltResult>> {
    for key in ["persistent", "confirm", "mandatory"] {
        o.bool(key)?;
    }
    for key in ["content_type", "message_id", "correlation_id", "name"] {
        o.string(key)?;
    }
    o.duration("timeout")?;
    o.string_pairs("tags")?;
    o.map("headers")?;
    o.int("window")?;
    Ok(())
}

fn amqp_topology_values(o: &Opts) -> Result<(), Box<EvalAltResult>> {
    for key in ["durable", "exclusive", "auto_delete", "internal"] {
        o.bool(key)?;
    }
    o.map("arguments")?;
    Ok(())
}

fn named_values(o: &Opts) -> Result<(), Box<EvalAltResult>> {
    o.string("name")?;
    o.string_pairs("tags")?;
    Ok(())
}

fn resources_values(o: &Opts) -> Result<(), Box<EvalAltResult>> {
    o.duration("interval")?;
    Ok(())
}

fn target_values(o: &Opts) -> Result<(), Box<EvalAltResult>> {
    super::http::target_options(o).map(|_| ())
}

/// The options map of a call to `name` with `argc` arguments, if it takes one.
pub fn options_of(name: &str, argc: usize) -> Option<OptionsSpec> {
    use super::amqp::{CONSUME_OPTIONS, EXCHANGE_OPTIONS, MANY_OPTIONS, PUBLISH_OPTIONS, QUEUE_OPTIONS};
    use super::http::{REQUEST_OPTIONS, TARGET_OPTIONS};
    let request = super::http::request_option_values;
    let (index, what, allowed, values): (usize, &'static str, &'static [&'static str], fn(&Opts) -> _) =
        match (name, argc) {
            ("http::get", 2) => (1, "http::get", REQUEST_OPTIONS, request),
            ("http::delete", 2) => (1, "http::delete", REQUEST_OPTIONS, request),
            ("http::head", 2) => (1, "http::head", REQUEST_OPTIONS, request),
            ("http::post", 3) => (2, "http::post", REQUEST_OPTIONS, request),
            ("http::put", 3) => (2, "http::put", REQUEST_OPTIONS, request),
            ("http::patch", 3) => (2, "http::patch", REQUEST_OPTIONS, request),
            ("http::request", 4) => (3, "http::request", REQUEST_OPTIONS, request),
            ("http::defaults", 1) => (0, "http::defaults", TARGET_OPTIONS, target_values),
            ("http::target", 2) => (1, "http::target", TARGET_OPTIONS, target_values),
            ("amqp::publish", 4) => (3, "amqp::publish", PUBLISH_OPTIONS, amqp_publish_values),
            ("amqp::publish_many", 5) => (4, "amqp::publish_many", MANY_OPTIONS, amqp_publish_values),
            ("amqp::declare_queue", 2) => (1, "amqp::declare_queue", QUEUE_OPTIONS, amqp_topology_values),
            ("amqp::declare_exchange", 3) => (2, "amqp::declare_exchange", EXCHANGE_OPTIONS, amqp_topology_values),
            ("amqp::consume", 4) => (3, "amqp::consume", CONSUME_OPTIONS, named_values),
            ("resources::start", 1) => (0, "resources::start", &["interval", "process"], resources_values),
            _ => return None,
        };
    Some(OptionsSpec { index, what, allowed, values })
}

/// What `phase()` says when called inside an iteration (shared with `volley check`).
pub const PHASE_AT_TOP_LEVEL: &str =
    "phase() runs at the top level of a script, not inside an iteration; hint: call it outside the phase's function";

/// The keys of the map `phase()` returns (see `engine::phase`, whose test keeps the two
/// in step). Shared with `volley check`, which names a misspelled one.
pub const PHASE_RESULT_KEYS: &[&str] = &[
    "name",
    "executor",
    "vus_max",
    "stopped",
    "lost_agents",
    "bursts",
    "tasks",
    "elapsed_s",
    "iterations",
    "dropped_iterations",
    "interrupted_iterations",
    "iteration_errors",
    "timed_out_iterations",
    "requests",
    "logical_requests",
    "failed",
    "success_rate",
    "rps",
    "iterations_per_s",
    "latency",
    "iteration_duration",
    "checks",
    "errors",
];

/// What reading a key a phase's result does not have says (a map gives `()` for it,
/// silently), when the key looks like a misspelling of one it has.
pub fn phase_result_typo(key: &str) -> Option<String> {
    if PHASE_RESULT_KEYS.contains(&key) {
        return None;
    }
    let near = super::opts::did_you_mean(key, PHASE_RESULT_KEYS.iter().copied())?;
    Some(format!(
        "a phase's result has no `{key}` (reading it gives ()); hint: did you mean `{near}`? it has {}",
        PHASE_RESULT_KEYS.join(", ")
    ))
}

/// The keys of a phase result's distributions (`latency`, `iteration_duration`), as
/// [`crate::script::core::sink_to_map`] writes a trend (the phase's test keeps the two in
/// step).
pub const TREND_RESULT_KEYS: &[&str] = &["avg", "min", "med", "max", "p90", "p95", "p99", "p999", "count"];

/// The keys of a phase result's `checks`, as [`crate::script::core::sink_to_map`] writes
/// a rate.
pub const RATE_RESULT_KEYS: &[&str] = &["rate", "passes", "fails", "count"];

/// What reading `result.map.key` says when a phase result's `map` (`latency`,
/// `iteration_duration`, `checks`: maps with fixed keys) has no `key`. `None` for a key
/// it has, and for a map whose keys depend on the run (`errors`).
pub fn phase_result_sub_typo(map: &str, key: &str) -> Option<String> {
    let keys = match map {
        "latency" | "iteration_duration" => TREND_RESULT_KEYS,
        "checks" => RATE_RESULT_KEYS,
        _ => return None,
    };
    if keys.contains(&key) {
        return None;
    }
    // k6's habit and the obvious guess: the median is `med` (p50 is nearest to p90).
    let near = match key {
        "p50" | "median" | "p(50)" if keys.contains(&"med") => Some("med".to_string()),
        _ => super::opts::did_you_mean(key, keys.iter().copied()).map(str::to_string),
    };
    let near = near.map(|n| format!("did you mean `{n}`? ")).unwrap_or_default();
    Some(format!(
        "a phase result's `{map}` has no `{key}` (reading it gives ()); hint: {near}it has {}",
        keys.join(", ")
    ))
}

/// What running a phase name a second time says (shared with `volley check`).
pub fn phase_already_run(name: &str) -> String {
    format!("phase {name:?} was already run; hint: give each phase its own name, results are tagged by it")
}

/// Parses an `expect` condition such as `"< 300"` (shared with `volley check`).
pub fn expectation(text: &str) -> Result<(&'static str, f64), String> {
    let t = text.trim();
    let parsed = ["<=", ">=", "==", "!=", "<", ">"]
        .into_iter()
        .find(|op| t.starts_with(op))
        .and_then(|op| t[op.len()..].trim().parse::<f64>().ok().filter(|l| l.is_finite()).map(|l| (op, l)));
    parsed.ok_or_else(|| {
        format!(
            "expect: invalid condition {text:?}; hint: write an operator and a number, e.g. \"< 300\" or \">= 0.95\""
        )
    })
}

fn with_hint(e: crate::metrics::ThresholdError) -> String {
    match &e.hint {
        Some(h) => format!("{e}; hint: {h}"),
        None => e.to_string(),
    }
}

/// Parses a metric selection such as `http_req_duration{phase:peak}` (for `threshold`
/// and `stats`, shared with `volley check`).
pub fn selector(text: &str) -> Result<Selector, String> {
    Selector::parse(text).map_err(with_hint)
}

/// Parses `stats()`'s metric selection (shared with `volley check`).
pub fn stats_selector(text: &str) -> Result<Selector, String> {
    // The selector grammar is the thresholds'; its errors say "threshold".
    selector(text).map_err(|e| e.replacen("invalid threshold", "stats: invalid metric selection", 1))
}

/// Parses one threshold condition and checks it applies to the selected metric's kind
/// (shared with `volley check`, which has no selector when it did not parse).
pub fn threshold_condition(text: &str, selector: Option<&Selector>, condition: &str) -> Result<Condition, String> {
    let cond = Condition::parse(condition).map_err(with_hint)?;
    if let Some(kind) = selector.and_then(|s| crate::script::context::kind_of(&s.metric)) {
        cond.validate_for(kind).map_err(|e| format!("threshold on {text}: {e}"))?;
    }
    Ok(cond)
}

/// The wait before retry attempt `attempt + 1`: `base * factor^(attempt - 1)`, at most
/// `cap`. Computed in floating point and clamped before it becomes a `Duration`, so
/// many attempts with a big factor cannot overflow.
pub fn backoff(base: Duration, factor: f64, attempt: i64, cap: Duration) -> Duration {
    let exponent = (attempt - 1).clamp(0, i32::MAX as i64) as i32;
    let secs = base.as_secs_f64() * factor.powi(exponent);
    // NaN (0 * inf) and anything at or past the cap wait the cap.
    if secs.is_nan() || secs >= cap.as_secs_f64() { cap } else { Duration::from_secs_f64(secs) }
}

/// `retry`'s options, read and checked (shared with `volley check`).
pub struct RetryOptions {
    /// Calls at most (>= 1).
    pub attempts: i64,
    /// The first wait.
    pub base: Duration,
    /// Each wait is the previous one times this (>= 1).
    pub factor: f64,
    /// The longest wait.
    pub cap: Duration,
    /// Statuses that are retried.
    pub statuses: Vec<i64>,
    /// Whether a network error (status 0) is retried.
    pub on_network_error: bool,
    /// Whether a Retry-After header sets the wait.
    pub honour_retry_after: bool,
}

impl RetryOptions {
    /// Reads `retry`'s options map, with the defaults the docs give.
    pub fn read(options: &Map) -> Result<RetryOptions, Box<EvalAltResult>> {
        let o = Opts::new(
            options,
            "retry",
            &["attempts", "base", "factor", "cap", "statuses", "on_network_error", "retry_after"],
        )?;
        let attempts = o.int("attempts")?.unwrap_or(3);
        if attempts < 1 {
            return Err(format!("retry: option `attempts` must be at least 1, got {attempts}").into());
        }
        let base = o.duration("base")?.unwrap_or(Duration::from_millis(500));
        let factor = o.float("factor")?.unwrap_or(2.0);
        if !(factor.is_finite() && factor >= 1.0) {
            return Err(format!("retry: option `factor` must be a number >= 1, got {factor}").into());
        }
        Ok(RetryOptions {
            attempts,
            base,
            factor,
            cap: o.duration("cap")?.unwrap_or(Duration::from_secs(30)),
            statuses: o.int_list("statuses")?.unwrap_or_else(|| vec![429, 503]),
            on_network_error: o.bool("on_network_error")?.unwrap_or(true),
            honour_retry_after: o.bool("retry_after")?.unwrap_or(true),
        })
    }
}

/// `sleep(min, max)`'s two bounds, checked (shared with `volley check`).
pub fn sleep_range(min: &Dynamic, max: &Dynamic) -> Result<(Duration, Duration), Box<EvalAltResult>> {
    let (lo, hi) = (opts::to_duration(min, "sleep: min")?, opts::to_duration(max, "sleep: max")?);
    if hi < lo {
        return Err(format!("sleep: max ({hi:?}) is below min ({lo:?})").into());
    }
    Ok((lo, hi))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_then_stops_at_the_cap_without_overflow() {
        let (base, cap) = (Duration::from_millis(500), Duration::from_secs(30));
        assert_eq!(backoff(base, 2.0, 1, cap), Duration::from_millis(500));
        assert_eq!(backoff(base, 2.0, 3, cap), Duration::from_secs(2));
        assert_eq!(backoff(base, 10.0, 30, cap), cap);
        assert_eq!(backoff(base, 1e300, 30, cap), cap);
        assert_eq!(backoff(base, 10.0, i64::MAX, cap), cap);
        assert_eq!(backoff(Duration::ZERO, f64::MAX, 1000, cap), cap, "0 * inf is NaN: wait the cap");
        let huge_cap = Duration::from_secs(u64::MAX);
        assert_eq!(backoff(Duration::from_secs(1), 1e300, 30, huge_cap), huge_cap);
    }

    #[test]
    fn expectations_need_an_operator_and_a_number() {
        assert_eq!(expectation("< 300"), Ok(("<", 300.0)));
        assert_eq!(expectation(" >= 0.95 "), Ok((">=", 0.95)));
        for bad in ["less than 5", "about 1", "<", "< NaN", "< inf", ""] {
            let e = expectation(bad).unwrap_err();
            assert!(e.starts_with(&format!("expect: invalid condition {bad:?}")), "{e}");
        }
    }
}
