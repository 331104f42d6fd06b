//! `report(name, value)`: a named figure the script computed (a cleanup time, an
//! achieved rate, per-type results, a table), recorded in the run and shown in the
//! summary and written by every output (`figures` in `volley.run/1` and the suite JSON,
//! JUnit properties, Markdown, HTML, Prometheus for numbers).

use super::context;
use rhai::plugin::*;
use rhai::{Dynamic, EvalAltResult, NativeCallContext};

/// One recorded figure.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Figure {
    /// Its name, as the script gave it.
    pub name: String,
    /// Its value: a number, text, true/false, a list or a map (nested as JSON).
    pub value: serde_json::Value,
    /// Where it was reported (`file:line`).
    pub origin: String,
}

impl Figure {
    /// The value as one line of text: numbers as the summary prints them, text as is,
    /// lists and maps as compact JSON.
    pub fn text(&self) -> String {
        text_of(&self.value)
    }
}

/// A figure value as one line of text (numbers inside lists and maps rounded to three
/// decimals for reading; the JSON outputs keep them whole).
pub fn text_of(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Number(n) => n.as_f64().map(crate::script::core::fmt_num).unwrap_or_else(|| n.to_string()),
        serde_json::Value::String(s) => s.clone(),
        other => rounded(other).to_string(),
    }
}

fn rounded(value: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Number(n) if n.is_f64() => n
            .as_f64()
            .and_then(|f| serde_json::Number::from_f64((f * 1000.0).round() / 1000.0))
            .map(Value::Number)
            .unwrap_or_else(|| value.clone()),
        Value::Array(a) => Value::Array(a.iter().map(rounded).collect()),
        Value::Object(o) => Value::Object(o.iter().map(|(k, v)| (k.clone(), rounded(v))).collect()),
        other => other.clone(),
    }
}

fn to_json(value: &Dynamic) -> Result<serde_json::Value, String> {
    if value.is_unit() {
        return Ok(serde_json::Value::Null);
    }
    if let Ok(i) = value.as_int() {
        return Ok(i.into());
    }
    if let Ok(f) = value.as_float() {
        return serde_json::Number::from_f64(f)
            .map(serde_json::Value::Number)
            .ok_or_else(|| format!("{f} is not a finite number"));
    }
    if let Ok(b) = value.as_bool() {
        return Ok(b.into());
    }
    if value.is_string() {
        return Ok(value.clone().into_string().unwrap_or_default().into());
    }
    if value.is_array() {
        let list = value.clone().into_array().unwrap_or_default();
        return list.iter().map(to_json).collect::<Result<Vec<_>, _>>().map(serde_json::Value::Array);
    }
    if value.is_map() {
        let map = value.clone().cast::<rhai::Map>();
        let mut out = serde_json::Map::new();
        for (k, v) in &map {
            out.insert(k.to_string(), to_json(v)?);
        }
        return Ok(serde_json::Value::Object(out));
    }
    Err(format!(
        "a {} cannot be reported; use a number, text, true/false, a list or a map",
        super::signatures::plain_type(value.type_name())
    ))
}

/// The `report` function.
#[export_module]
pub mod figures_api {
    use super::*;

    /// Records a named figure of the run (a number, text, true/false, a list or a map),
    /// shown in the summary and written by every output. Reporting a name again
    /// replaces its value.
    /// ```rhai
    /// report("cleanup_s", 12.5);
    /// report("per_type", #{ fire: #{ sent: 10, ok: 10 }, clear: #{ sent: 5, ok: 4 } });
    /// ```
    #[rhai_fn(name = "report", return_raw)]
    pub fn report(ctx: NativeCallContext, name: &str, value: Dynamic) -> Result<(), Box<EvalAltResult>> {
        let fail = |m: String| crate::script::at(&ctx, m.into());
        if name.trim().is_empty() {
            return Err(fail("report: the figure needs a name, e.g. report(\"cleanup_s\", 1.5)".into()));
        }
        let value = to_json(&value).map_err(|e| fail(format!("report({name:?}): {e}")))?;
        let origin = crate::script::core::origin(&ctx);
        let thread = context::thread().map_err(|e| crate::script::at(&ctx, e))?;
        let mut figures = thread.shared.figures.lock().unwrap_or_else(|e| e.into_inner());
        match figures.iter_mut().find(|f| f.name == name) {
            Some(f) => {
                f.value = value;
                f.origin = origin;
            }
            None => figures.push(Figure { name: name.to_string(), value, origin }),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_become_json_and_one_line_of_text() {
        let mut m = rhai::Map::new();
        m.insert("sent".into(), Dynamic::from_int(10));
        m.insert("rate".into(), Dynamic::from_float(9.512345));
        let v = to_json(&Dynamic::from_map(m)).unwrap();
        assert_eq!(text_of(&v), r#"{"rate":9.512,"sent":10}"#);
        assert_eq!(v["rate"], 9.512345, "the JSON keeps the value whole");
        assert_eq!(text_of(&to_json(&Dynamic::from_float(1.25)).unwrap()), "1.25");
        assert_eq!(text_of(&to_json(&Dynamic::from("ok")).unwrap()), "ok");
        assert!(to_json(&Dynamic::from_float(f64::NAN)).is_err());
    }
}
