//! `threshold(...)`: thresholds in k6 syntax declared by the script, with the options
//! `abort_on_fail` and `delay`, and conditions over sliding windows (`... over 30s`).
//! The engine judges them (every second for `abort_on_fail` and windows, and at the end).

use super::context;
use super::core::{current_case, origin};
use super::judge::DeclaredThreshold;
use super::opts;
use super::validate::threshold_condition;
use rhai::plugin::*;
use rhai::{Array, EvalAltResult, Map, NativeCallContext};
use std::time::Duration;

/// Threshold functions (global).
#[export_module]
pub mod thresholds_api {
    use super::*;

    /// Declares a threshold judged at the end of the run (k6 syntax). A condition
    /// ending with `over 30s` is judged over every 30-second window of the run.
    /// ```rhai
    /// threshold("http_req_duration{phase:peak}", "p(95) < 300");
    /// ```
    #[rhai_fn(name = "threshold", return_raw)]
    pub fn threshold(ctx: NativeCallContext, selector: &str, condition: &str) -> Result<(), Box<EvalAltResult>> {
        declare_threshold(&ctx, selector, &[condition.to_string()], &Map::new())
    }

    /// Declares a threshold with options: `abort_on_fail: true` judges it every second
    /// and stops the run gracefully when it fails (exit 99, reports say which threshold
    /// stopped it and when); `delay: "10s"` waits that long into the run first. A
    /// condition may end with `over 30s`: it then fails when any 30-second window of
    /// the run violates it.
    /// ```rhai
    /// threshold("http_req_failed", "rate < 0.05", #{ abort_on_fail: true, delay: "10s" });
    /// threshold("http_req_duration", "p(95) < 300 over 30s", #{ abort_on_fail: true });
    /// ```
    #[rhai_fn(name = "threshold", return_raw)]
    pub fn threshold_options(
        ctx: NativeCallContext,
        selector: &str,
        condition: &str,
        options: Map,
    ) -> Result<(), Box<EvalAltResult>> {
        declare_threshold(&ctx, selector, &[condition.to_string()], &options)
    }

    /// Several conditions on one selection, with options (see above).
    /// ```rhai
    /// threshold("http_req_duration", ["p(95) < 300", "p(99) < 800 over 10s"], #{ abort_on_fail: true });
    /// ```
    #[rhai_fn(name = "threshold", return_raw)]
    pub fn threshold_list_options(
        ctx: NativeCallContext,
        selector: &str,
        conditions: Array,
        options: Map,
    ) -> Result<(), Box<EvalAltResult>> {
        let list: Vec<String> = conditions.iter().map(|c| c.to_string()).collect();
        declare_threshold(&ctx, selector, &list, &options)
    }

    /// Declares several conditions on one metric selection.
    /// ```rhai
    /// threshold("http_req_duration", ["avg < 200", "p(95) < 300", "p(99) < 500"]);
    /// ```
    #[rhai_fn(name = "threshold", return_raw)]
    pub fn threshold_list(ctx: NativeCallContext, selector: &str, conditions: Array) -> Result<(), Box<EvalAltResult>> {
        let list: Vec<String> = conditions.iter().map(|c| c.to_string()).collect();
        declare_threshold(&ctx, selector, &list, &Map::new())
    }
}

/// A threshold's options (`abort_on_fail`, `delay`), read and checked (shared with
/// `volley check`).
pub fn threshold_options(options: &Map) -> Result<(bool, Duration), Box<EvalAltResult>> {
    let o = opts::Opts::new(options, "threshold", &["abort_on_fail", "delay"])?;
    let abort = o.bool("abort_on_fail")?.unwrap_or(false);
    let delay = o.duration("delay")?.unwrap_or(Duration::ZERO);
    if !abort && !delay.is_zero() {
        return Err("threshold: `delay` only applies with `abort_on_fail: true`; hint: add abort_on_fail: true, or remove delay".into());
    }
    Ok((abort, delay))
}

fn declare_threshold(
    ctx: &NativeCallContext,
    selector: &str,
    conditions: &[String],
    options: &Map,
) -> Result<(), Box<EvalAltResult>> {
    let sel = super::validate::selector(selector)?;
    let parsed =
        conditions.iter().map(|c| threshold_condition(selector, Some(&sel), c)).collect::<Result<Vec<_>, _>>()?;
    let (abort_on_fail, delay) = threshold_options(options)?;
    let thread = context::thread()?;
    thread.flush();
    let recorded_before = parsed.iter().any(|c| c.window.is_some()) && {
        let agg = thread.shared.aggregate.lock().unwrap_or_else(|e| e.into_inner());
        agg.query(&sel.metric, &sel.filters).is_some_and(|s| !s.is_empty())
    };
    thread.shared.judge.lock().unwrap_or_else(|e| e.into_inner()).thresholds.push(DeclaredThreshold {
        selector: sel,
        conditions: parsed,
        origin: origin(ctx),
        case: current_case()?,
        abort_on_fail,
        delay,
        recorded_before,
    });
    Ok(())
}
