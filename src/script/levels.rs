//! Named load levels (`--level smoke|light|medium|heavy|stress`): a table of levels,
//! each with load overrides (`vus`, `duration`, `iterations`, `rate`) and optional
//! thresholds, defined by the script with `levels(#{ ... })` or by a TOML file
//! (`--levels FILE`). The chosen level overrides every phase's load (the command
//! line's own overrides win) and declares its thresholds; reports name it.

use super::context;
use crate::executor::Overrides;
use rhai::plugin::*;
use rhai::{Dynamic, EvalAltResult, Map, NativeCallContext};
use serde_json::Value;

/// The usual level names, for hints (any name may be defined).
pub const USUAL: &[&str] = &["smoke", "light", "medium", "heavy", "stress"];

/// One load level.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Level {
    /// Its name.
    pub name: String,
    /// The load it sets.
    pub overrides: Overrides,
    /// Its thresholds: (selector, conditions).
    pub thresholds: Vec<(String, Vec<String>)>,
    /// Where it was defined (`file:line` of `levels(...)`, or the TOML file).
    pub origin: String,
}

const KEYS: &[&str] = &["vus", "duration", "iterations", "rate", "thresholds"];

fn whole(v: &Value, what: &str) -> Result<u64, String> {
    v.as_u64().filter(|n| *n > 0).ok_or_else(|| format!("{what} must be a whole number above 0, got {v}"))
}

/// Reads one level's table (shared by `levels()`, `--levels FILE` and `volley check`).
pub fn read_level(name: &str, value: &Value, origin: &str) -> Result<Level, String> {
    let what = format!("level {name:?}");
    let Value::Object(m) = value else {
        return Err(format!("{what}: expected a map such as #{{ vus: 10, duration: \"1m\" }}, got {value}"));
    };
    for key in m.keys() {
        if !KEYS.contains(&key.as_str()) {
            let hint = match crate::script::opts::did_you_mean(key, KEYS.iter().copied()) {
                Some(k) => format!("did you mean `{k}`? "),
                None => String::new(),
            };
            return Err(format!("{what}: unknown key `{key}`; hint: {hint}a level has {}", KEYS.join(", ")));
        }
    }
    let mut o = Overrides::default();
    if let Some(v) = m.get("vus") {
        o.vus = Some(whole(v, &format!("{what}: vus"))?);
    }
    if let Some(v) = m.get("iterations") {
        o.iterations = Some(whole(v, &format!("{what}: iterations"))?);
    }
    if let Some(v) = m.get("rate") {
        o.rate = Some(v.as_f64().ok_or_else(|| format!("{what}: rate must be a number, got {v}"))?);
    }
    if let Some(v) = m.get("duration") {
        o.duration = Some(match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => format!("{n}s"),
            other => return Err(format!("{what}: duration must look like \"30s\", got {other}")),
        });
    }
    o.validate().map_err(|e| format!("{what}: {}", e.replace("--", "")))?;
    let mut thresholds = Vec::new();
    if let Some(t) = m.get("thresholds") {
        let Value::Object(t) = t else {
            return Err(format!(
                "{what}: thresholds must map a metric selection to conditions, e.g. #{{ \"http_req_duration\": \"p(95) < 100\" }}"
            ));
        };
        for (selector, conds) in t {
            let list: Vec<String> = match conds {
                Value::String(s) => vec![s.clone()],
                Value::Array(a) => {
                    a.iter().map(|c| c.as_str().map(str::to_string).unwrap_or_else(|| c.to_string())).collect()
                }
                other => {
                    return Err(format!("{what}: thresholds.{selector}: expected a condition or a list, got {other}"));
                }
            };
            let sel = super::validate::selector(selector).map_err(|e| format!("{what}: {e}"))?;
            for c in &list {
                super::validate::threshold_condition(selector, Some(&sel), c).map_err(|e| format!("{what}: {e}"))?;
            }
            thresholds.push((selector.clone(), list));
        }
    }
    Ok(Level { name: name.to_string(), overrides: o, thresholds, origin: origin.to_string() })
}

/// Picks `wanted` from a table of levels, or says which levels there are.
pub fn choose(table: &serde_json::Map<String, Value>, wanted: &str, origin: &str) -> Result<Level, String> {
    match table.get(wanted) {
        Some(v) => read_level(wanted, v, origin),
        None => {
            let names: Vec<&str> = table.keys().map(String::as_str).collect();
            let hint = match crate::script::opts::did_you_mean(wanted, names.iter().copied()) {
                Some(n) => format!("did you mean `{n}`? "),
                None => String::new(),
            };
            Err(format!("--level {wanted}: no such level; hint: {hint}the levels are {}", names.join(", ")))
        }
    }
}

/// Levels (global).
#[export_module]
pub mod levels_api {
    use super::*;

    /// Defines the script's load levels; `volley run --level NAME` picks one. Each level
    /// may set `vus`, `duration`, `iterations`, `rate` (applied to every phase, as the
    /// command-line overrides are) and `thresholds`. Returns the chosen level's name
    /// ("" without `--level`). A `--levels FILE` given on the command line wins.
    /// ```rhai
    /// let level = levels(#{
    ///     smoke:  #{ vus: 1,   duration: "10s", thresholds: #{ "http_req_duration": "p(95) < 100" } },
    ///     medium: #{ vus: 20,  duration: "1m",  thresholds: #{ "http_req_duration": "p(95) < 200" } },
    ///     stress: #{ vus: 200, duration: "5m",  thresholds: #{ "http_req_duration": "p(95) < 500" } },
    /// });
    /// ```
    #[rhai_fn(name = "levels", return_raw)]
    pub fn levels(ctx: NativeCallContext, table: Map) -> Result<String, Box<EvalAltResult>> {
        let json: Value = rhai::serde::from_dynamic(&Dynamic::from_map(table))?;
        let Value::Object(table) = json else { return Err("levels: expected a map of levels".into()) };
        let origin = super::super::core::origin(&ctx);
        // Every level is checked, chosen or not: a typo in `stress` shows in a smoke run.
        for (name, v) in &table {
            read_level(name, v, &origin)?;
        }
        let thread = context::thread()?;
        let Some(wanted) = thread.shared.level_name.clone() else { return Ok(String::new()) };
        let mut slot = thread.shared.level.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            let level = choose(&table, &wanted, &origin)?;
            declare(&thread.shared, &level);
            *slot = Some(level);
        }
        Ok(wanted)
    }

    /// The chosen load level's name (`--level`), or "" without one.
    /// ```rhai
    /// if level() == "stress" { print("stress run"); }
    /// ```
    #[rhai_fn(name = "level", return_raw)]
    pub fn level() -> Result<String, Box<EvalAltResult>> {
        Ok(context::thread()?.shared.level_name.clone().unwrap_or_default())
    }
}

/// Declares a chosen level's thresholds with the run's.
pub fn declare(shared: &context::RunShared, level: &Level) {
    let mut judge = shared.judge.lock().unwrap_or_else(|e| e.into_inner());
    for (selector, conditions) in &level.thresholds {
        let Ok(sel) = super::validate::selector(selector) else { continue };
        let conditions = conditions.iter().filter_map(|c| crate::metrics::Condition::parse(c).ok()).collect();
        judge.thresholds.push(super::judge::DeclaredThreshold {
            selector: sel,
            conditions,
            origin: format!("{} (level {})", level.origin, level.name),
            case: None,
            abort_on_fail: false,
            delay: std::time::Duration::ZERO,
            recorded_before: false,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_level_reads_its_load_and_thresholds() {
        let l = read_level(
            "smoke",
            &json!({ "vus": 1, "duration": "10s", "thresholds": { "http_req_duration": "p(95) < 100" } }),
            "x.rhai:3",
        )
        .unwrap();
        assert_eq!(l.overrides.vus, Some(1));
        assert_eq!(l.overrides.duration.as_deref(), Some("10s"));
        assert_eq!(l.thresholds, vec![("http_req_duration".to_string(), vec!["p(95) < 100".to_string()])]);
    }

    #[test]
    fn level_mistakes_are_named() {
        let e = read_level("smoke", &json!({ "vu": 1 }), "").unwrap_err();
        assert!(e.contains("unknown key `vu`") && e.contains("did you mean `vus`?"), "{e}");
        let e = read_level("smoke", &json!({ "vus": 0 }), "").unwrap_err();
        assert!(e.contains("vus must be a whole number above 0"), "{e}");
        let e = read_level("smoke", &json!({ "thresholds": { "http_req_duration": "p95 < 1" } }), "").unwrap_err();
        assert!(e.contains("did you mean `p(95)`"), "{e}");
        let table = json!({ "smoke": {}, "stress": {} });
        let e = choose(table.as_object().unwrap(), "stres", "").unwrap_err();
        assert!(e.contains("did you mean `stress`?") && e.contains("the levels are smoke, stress"), "{e}");
    }
}
