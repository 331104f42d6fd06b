//! `metrics::*`: custom metrics defined by scripts (counter, gauge, rate, trend), recorded
//! with the VU's tags like the built-in ones, and usable in thresholds.

use super::context;
use crate::metrics::{Metric, MetricKind};
use rhai::plugin::*;
use rhai::{EvalAltResult, Map, NativeCallContext};

/// A handle to a custom metric.
#[derive(Debug, Clone)]
pub struct CustomMetric(pub Metric);

fn make(name: &str, kind: MetricKind) -> Result<CustomMetric, Box<EvalAltResult>> {
    context::define(name, kind).map(CustomMetric)
}

fn add(m: &CustomMetric, value: f64, tags: Option<Map>) -> Result<(), Box<EvalAltResult>> {
    if !value.is_finite() {
        return Err(format!("metric {}: cannot record {value}", m.0.name).into());
    }
    let thread = context::thread()?;
    let extra = tags.unwrap_or_default().into_iter().map(|(k, v)| (k.as_str().into(), v.to_string().as_str().into()));
    let tags = context::vu_tags(extra)?;
    thread.record(&m.0, &tags, value);
    Ok(())
}

/// The `metrics` module.
#[export_module]
pub mod metrics_api {
    use super::*;

    /// A counter (a growing sum). Thresholds: `count`, `rate` (per second).
    /// ```rhai
    /// let sent = metrics::counter("alerts_sent");
    /// sent.add(1);
    /// ```
    #[rhai_fn(name = "counter", return_raw)]
    pub fn counter(ctx: NativeCallContext, name: &str) -> Result<CustomMetric, Box<EvalAltResult>> {
        make(name, MetricKind::Counter).map_err(|e| crate::script::at(&ctx, e))
    }

    /// A gauge (last value). Thresholds: `value`.
    /// ```rhai
    /// let depth = metrics::gauge("queue_depth");
    /// depth.add(42);
    /// ```
    #[rhai_fn(name = "gauge", return_raw)]
    pub fn gauge(ctx: NativeCallContext, name: &str) -> Result<CustomMetric, Box<EvalAltResult>> {
        make(name, MetricKind::Gauge).map_err(|e| crate::script::at(&ctx, e))
    }

    /// A rate (share of true samples). Thresholds: `rate`.
    /// ```rhai
    /// let stored = metrics::rate("alert_stored");
    /// stored.add(found);
    /// ```
    #[rhai_fn(name = "rate", return_raw)]
    pub fn rate(ctx: NativeCallContext, name: &str) -> Result<CustomMetric, Box<EvalAltResult>> {
        make(name, MetricKind::Rate).map_err(|e| crate::script::at(&ctx, e))
    }

    /// A trend (distribution; HDR histogram). Thresholds: `avg`, `min`, `max`, `med`, `p(N)`.
    /// ```rhai
    /// let e2e = metrics::trend("alert_e2e_ms");
    /// e2e.add(now_ms() - t0);
    /// ```
    #[rhai_fn(name = "trend", return_raw)]
    pub fn trend(ctx: NativeCallContext, name: &str) -> Result<CustomMetric, Box<EvalAltResult>> {
        make(name, MetricKind::Trend).map_err(|e| crate::script::at(&ctx, e))
    }

    /// Records a number (or `true`/`false` for rates).
    /// ```rhai
    /// metrics::trend("t").add(12.5);
    /// ```
    #[rhai_fn(global, name = "add", return_raw)]
    pub fn add_value(m: &mut CustomMetric, value: Dynamic) -> Result<(), Box<EvalAltResult>> {
        add(m, number(m, &value)?, None)
    }

    /// Records a value with extra tags.
    /// ```rhai
    /// metrics::trend("per_type_ms").add(r.duration_ms, #{ class: "SC" });
    /// ```
    #[rhai_fn(global, name = "add", return_raw)]
    pub fn add_tagged(m: &mut CustomMetric, value: Dynamic, tags: Map) -> Result<(), Box<EvalAltResult>> {
        add(m, number(m, &value)?, Some(tags))
    }

    /// The metric's name.
    /// ```rhai
    /// print(metrics::counter("c").name);
    /// ```
    #[rhai_fn(global, get = "name", pure)]
    pub fn name(m: &mut CustomMetric) -> String {
        m.0.name.to_string()
    }
}

fn number(m: &CustomMetric, value: &Dynamic) -> Result<f64, Box<EvalAltResult>> {
    if let Ok(b) = value.as_bool() {
        return Ok(if b { 1.0 } else { 0.0 });
    }
    value
        .as_float()
        .or_else(|_| value.as_int().map(|i| i as f64))
        .map_err(|_| format!("metric {}: expected a number, got {}", m.0.name, super::opts::describe(value)).into())
}
