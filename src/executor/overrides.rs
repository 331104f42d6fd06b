//! Load overrides for quick experiments (k6's `--vus`, `--duration`, `--iterations`,
//! plus `--rate`): applied to a phase's options map before it is validated, so every
//! override is checked like the script's own options. Pure data, no clock.
//!
//! What each override does to a profile (the README's table):
//! - `vus`: `vus` of constant-vus / shared-iterations / per-vu-iterations; the peak of a
//!   ramping-vus (every stage scaled); `max_vus` of arrival-rate profiles; a burst's `size`.
//! - `duration`: `duration` of constant profiles; the total of a ramping profile's
//!   stages (each stage scaled); `max_duration` of iteration-based profiles and bursts.
//! - `iterations`: `iterations` of shared-iterations / per-vu-iterations; any other
//!   profile becomes shared-iterations (with its VUs).
//! - `rate`: `rate` of constant-arrival-rate; the peak of a ramping-arrival-rate; any
//!   other profile becomes constant-arrival-rate (for its duration, its VUs as
//!   `max_vus`).

use serde_json::{Map, Value};

use super::options::canonical;
use crate::duration::parse_duration;

/// Overrides of phases' load, from the command line or a load level.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Overrides {
    /// VUs (see the module's table).
    pub vus: Option<u64>,
    /// Duration, as written (`"30s"`).
    pub duration: Option<String>,
    /// Iterations.
    pub iterations: Option<u64>,
    /// Iterations per second.
    pub rate: Option<f64>,
    /// Only the phase of this name (None: every phase).
    pub phase: Option<String>,
}

fn dur_secs(v: &Value) -> Option<f64> {
    match v {
        Value::String(s) => parse_duration(s).ok().map(|d| d.as_secs_f64()),
        Value::Number(n) => n.as_f64(),
        _ => None,
    }
}

fn dur_value(secs: f64) -> Value {
    Value::String(format!("{}ms", (secs * 1000.0).round().max(0.0) as u64))
}

fn num(v: Option<&Value>) -> Option<f64> {
    v.and_then(Value::as_f64)
}

impl Overrides {
    /// Whether nothing is overridden.
    pub fn is_empty(&self) -> bool {
        self.vus.is_none() && self.duration.is_none() && self.iterations.is_none() && self.rate.is_none()
    }

    /// The overrides as given on the command line: `--vus 5 --duration 10s`, with
    /// `(phase peak)` when limited to one phase.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(v) = self.vus {
            parts.push(format!("--vus {v}"));
        }
        if let Some(d) = &self.duration {
            parts.push(format!("--duration {d}"));
        }
        if let Some(i) = self.iterations {
            parts.push(format!("--iterations {i}"));
        }
        if let Some(r) = self.rate {
            parts.push(format!("--rate {r}"));
        }
        let scope = match &self.phase {
            Some(p) => format!(" (phase {p})"),
            None => " (every phase)".to_string(),
        };
        format!("{}{scope}", parts.join(" "))
    }

    /// Checks the values (a duration that parses, counts above 0).
    pub fn validate(&self) -> Result<(), String> {
        if let Some(d) = &self.duration {
            let parsed = parse_duration(d).map_err(|e| format!("--duration {d:?}: {e}"))?;
            if parsed.is_zero() {
                return Err(format!("--duration {d:?}: must be above 0"));
            }
        }
        if self.vus == Some(0) {
            return Err("--vus must be at least 1".into());
        }
        if self.iterations == Some(0) {
            return Err("--iterations must be at least 1".into());
        }
        if let Some(r) = self.rate
            && !(r.is_finite() && r > 0.0)
        {
            return Err(format!("--rate must be a number above 0, got {r}"));
        }
        if self.rate.is_some() && self.iterations.is_some() {
            return Err("--rate and --iterations cannot be combined: a rate runs for a duration".into());
        }
        Ok(())
    }

    /// Whether the overrides apply to the phase `name`.
    pub fn applies_to(&self, name: &str) -> bool {
        !self.is_empty() && self.phase.as_deref().is_none_or(|p| p == name)
    }

    /// Applies the overrides to a phase's options (keys made canonical first).
    pub fn apply(&self, options: &Map<String, Value>) -> Map<String, Value> {
        let mut o: Map<String, Value> = options.iter().map(|(k, v)| (canonical(k).to_string(), v.clone())).collect();
        let executor = o.get("executor").and_then(Value::as_str).unwrap_or("").to_string();
        let duration = self.duration.as_deref().and_then(|d| parse_duration(d).ok()).map(|d| d.as_secs_f64());
        let arrival = matches!(executor.as_str(), "constant-arrival-rate" | "ramping-arrival-rate");
        if let Some(rate) = self.rate {
            if executor == "ramping-arrival-rate" {
                scale_targets(&mut o, rate, false);
            } else if executor == "constant-arrival-rate" {
                o.insert("rate".into(), Value::from(rate));
            } else {
                o = convert(&o, "constant-arrival-rate", self.vus);
                o.insert("rate".into(), Value::from(rate));
            }
        } else if let Some(n) = self.iterations {
            if !matches!(executor.as_str(), "shared-iterations" | "per-vu-iterations") {
                o = convert(&o, "shared-iterations", self.vus);
            }
            o.insert("iterations".into(), Value::from(n));
        }
        let executor = o.get("executor").and_then(Value::as_str).unwrap_or("").to_string();
        if let Some(n) = self.vus {
            match executor.as_str() {
                "ramping-vus" => scale_targets(&mut o, n as f64, true),
                "constant-arrival-rate" | "ramping-arrival-rate" => {
                    o.insert("max_vus".into(), Value::from(n));
                    if num(o.get("pre_allocated_vus")).is_some_and(|p| p > n as f64) || arrival {
                        o.insert("pre_allocated_vus".into(), Value::from(n));
                    }
                }
                "bursts" => {
                    o.insert("size".into(), Value::from(n));
                }
                _ => {
                    o.insert("vus".into(), Value::from(n));
                }
            }
        }
        if let Some(secs) = duration {
            match executor.as_str() {
                "ramping-vus" | "ramping-arrival-rate" => scale_stage_durations(&mut o, secs),
                "shared-iterations" | "per-vu-iterations" | "bursts" => {
                    o.insert("max_duration".into(), dur_value(secs));
                }
                _ => {
                    o.insert("duration".into(), dur_value(secs));
                }
            }
        }
        o
    }
}

/// The phase's length: `duration`, its stages' total, or `max_duration`.
fn length_of(o: &Map<String, Value>) -> Option<f64> {
    if let Some(d) = o.get("duration").and_then(dur_secs) {
        return Some(d);
    }
    if let Some(Value::Array(stages)) = o.get("stages") {
        return Some(stages.iter().filter_map(|s| s.get("duration").and_then(dur_secs)).sum());
    }
    o.get("max_duration").and_then(dur_secs)
}

/// The most VUs the phase uses, as far as its options say.
fn vus_of(o: &Map<String, Value>) -> Option<f64> {
    let stages = o.get("stages").and_then(Value::as_array).into_iter().flatten();
    let peak =
        stages.filter_map(|s| num(s.get("target"))).fold(None, |m: Option<f64>, t| Some(m.map_or(t, |m| m.max(t))));
    let executor = o.get("executor").and_then(Value::as_str).unwrap_or("");
    let staged_vus = if executor == "ramping-vus" { peak } else { None };
    num(o.get("vus")).or(num(o.get("max_vus"))).or(staged_vus).or(num(o.get("size")))
}

/// A new profile for the phase, keeping its VUs and length.
fn convert(o: &Map<String, Value>, to: &str, vus: Option<u64>) -> Map<String, Value> {
    let mut n = Map::new();
    n.insert("executor".into(), Value::from(to));
    let vus = vus.map(|v| v as f64).or_else(|| vus_of(o)).unwrap_or(1.0).max(1.0).round() as u64;
    match to {
        "constant-arrival-rate" => {
            n.insert("duration".into(), dur_value(length_of(o).unwrap_or(30.0)));
            n.insert("pre_allocated_vus".into(), Value::from(vus));
            n.insert("max_vus".into(), Value::from(vus));
        }
        _ => {
            n.insert("vus".into(), Value::from(vus));
            if let Some(d) = length_of(o) {
                n.insert("max_duration".into(), dur_value(d));
            }
        }
    }
    n
}

/// Scales every stage target (and the start value) so the peak becomes `peak`.
fn scale_targets(o: &mut Map<String, Value>, peak: f64, whole: bool) {
    let Some(Value::Array(stages)) = o.get_mut("stages") else { return };
    let old = stages.iter().filter_map(|s| num(s.get("target"))).fold(0.0, f64::max);
    let factor = if old > 0.0 { peak / old } else { 1.0 };
    let round = |x: f64| if whole { Value::from(x.round() as u64) } else { Value::from(x) };
    for s in stages.iter_mut() {
        if let Some(t) = num(s.get("target"))
            && let Some(m) = s.as_object_mut()
        {
            m.insert("target".into(), if old > 0.0 { round(t * factor) } else { round(peak) });
        }
    }
    for key in ["start_vus", "start_rate"] {
        if let Some(v) = num(o.get(key)) {
            o.insert(key.into(), round((v * factor).min(peak)));
        }
    }
}

/// Scales every stage's duration so the stages last `total` seconds.
fn scale_stage_durations(o: &mut Map<String, Value>, total: f64) {
    let Some(old) = length_of(o).filter(|t| *t > 0.0) else { return };
    let Some(Value::Array(stages)) = o.get_mut("stages") else { return };
    for s in stages.iter_mut() {
        if let Some(d) = s.get("duration").and_then(dur_secs)
            && let Some(m) = s.as_object_mut()
        {
            m.insert("duration".into(), dur_value(d * total / old));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executor::Executor;
    use serde_json::json;

    fn apply(o: &Overrides, options: Value) -> Map<String, Value> {
        let out = o.apply(options.as_object().unwrap());
        // Every result must be a valid profile.
        Executor::validate(&out).unwrap_or_else(|e| panic!("{out:?}: {e:?}"));
        out
    }

    #[test]
    fn vus_and_duration_replace_a_constant_profile() {
        let o = Overrides { vus: Some(3), duration: Some("2s".into()), ..Default::default() };
        let out = apply(&o, json!({ "executor": "constant-vus", "vus": 50, "duration": "5m" }));
        assert_eq!(out["vus"], json!(3));
        assert_eq!(out["duration"], json!("2000ms"));
    }

    #[test]
    fn a_ramp_is_scaled_to_the_new_peak_and_length() {
        let o = Overrides { vus: Some(10), duration: Some("10s".into()), ..Default::default() };
        let out = apply(
            &o,
            json!({ "executor": "ramping-vus", "start_vus": 0, "stages": [
                { "duration": "30s", "target": 100 }, { "duration": "10s", "target": 50 } ] }),
        );
        assert_eq!(
            out["stages"],
            json!([{ "duration": "7500ms", "target": 10 }, { "duration": "2500ms", "target": 5 }])
        );
    }

    #[test]
    fn iterations_and_rate_change_the_profile_when_they_must() {
        let o = Overrides { iterations: Some(20), ..Default::default() };
        let out = apply(&o, json!({ "executor": "constant-vus", "vus": 4, "duration": "1m" }));
        assert_eq!(out["executor"], json!("shared-iterations"));
        assert_eq!(out["vus"], json!(4));
        assert_eq!(out["iterations"], json!(20));
        let o = Overrides { rate: Some(5.0), vus: Some(2), ..Default::default() };
        let out = apply(&o, json!({ "executor": "constant-vus", "vus": 4, "duration": "1m" }));
        assert_eq!(out["executor"], json!("constant-arrival-rate"));
        assert_eq!(out["rate"], json!(5.0));
        assert_eq!(out["max_vus"], json!(2));
        assert_eq!(out["duration"], json!("60000ms"));
        let o = Overrides { rate: Some(50.0), ..Default::default() };
        let out = apply(
            &o,
            json!({ "executor": "ramping-arrival-rate", "startRate": 1, "maxVUs": 10, "stages": [
                { "duration": "10s", "target": 100 } ] }),
        );
        assert_eq!(out["stages"][0]["target"], json!(50.0));
        assert_eq!(out["start_rate"], json!(0.5));
    }

    #[test]
    fn overrides_are_checked_and_described() {
        assert!(Overrides { vus: Some(0), ..Default::default() }.validate().is_err());
        assert!(Overrides { duration: Some("soon".into()), ..Default::default() }.validate().is_err());
        let both = Overrides { rate: Some(1.0), iterations: Some(1), ..Default::default() };
        assert!(both.validate().unwrap_err().contains("cannot be combined"));
        let o = Overrides { vus: Some(5), phase: Some("peak".into()), ..Default::default() };
        assert_eq!(o.describe(), "--vus 5 (phase peak)");
        assert!(o.applies_to("peak") && !o.applies_to("warmup"));
    }
}
