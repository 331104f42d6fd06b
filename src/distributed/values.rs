//! Script values across the wire: what a phase function captured (`|| http::get(url)`
//! captures `url`) travels from the coordinator to the agents as JSON. Plain data travels
//! exactly (unit, booleans, integers, floats, strings, characters, arrays, maps, blobs),
//! as do functions (by name, with their own captures) and custom metrics (by name and
//! kind). Anything else (a response, an open WebSocket, a timestamp) cannot exist on
//! another machine: encoding it is an error naming the variable and the path inside it.
//!
//! Imports only the script's types; the agent side resolves functions against its own
//! compiled copy of the script ([`Functions`]).

use crate::metrics::MetricKind;
use crate::script::metrics::CustomMetric;
use base64::Engine as _;
use rhai::{Array, Blob, Dynamic, FnPtr, ImmutableString, Map};
use serde_json::{Value, json};

/// The key that marks a value that is not a plain JSON one.
const TAG: &str = "$volley";

/// A value that cannot be sent to an agent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {what} cannot be sent to agents; hint: {hint}")]
pub struct ValueError {
    /// Where: `captured variable `conn``, then `.field[2]` inside it.
    pub path: String,
    /// What it is.
    pub what: String,
    /// What to do instead.
    pub hint: String,
}

/// Names of the captured variables of a function (its first parameters), for messages.
pub trait CaptureNames {
    /// The parameter names of the script function `name`, if it is one.
    fn params_of(&self, name: &str) -> Option<Vec<String>>;
}

impl CaptureNames for rhai::AST {
    fn params_of(&self, name: &str) -> Option<Vec<String>> {
        self.iter_functions().find(|f| f.name == name).map(|f| f.params.iter().map(|p| p.to_string()).collect())
    }
}

/// Encodes a phase's function: its name and the values it captured.
pub fn encode_fn(f: &FnPtr, names: &dyn CaptureNames, path: &str) -> Result<Value, ValueError> {
    let params = names.params_of(f.fn_name()).unwrap_or_default();
    let mut curry = Vec::new();
    for (i, v) in f.curry().iter().enumerate() {
        let at = match params.get(i) {
            Some(p) => format!("{path}: captured variable `{p}`"),
            None => format!("{path}: captured value {}", i + 1),
        };
        curry.push(encode(v, names, &at)?);
    }
    Ok(json!({ TAG: "fn", "name": f.fn_name(), "curry": curry }))
}

/// Encodes one value; `path` names it in errors.
pub fn encode(v: &Dynamic, names: &dyn CaptureNames, path: &str) -> Result<Value, ValueError> {
    if v.is_shared() {
        return encode(&v.flatten_clone(), names, path);
    }
    if v.is_unit() {
        return Ok(Value::Null);
    }
    if let Ok(b) = v.as_bool() {
        return Ok(Value::Bool(b));
    }
    if let Ok(i) = v.as_int() {
        return Ok(json!(i));
    }
    if let Ok(f) = v.as_float() {
        return Ok(if f.is_finite() { json!(f) } else { json!({ TAG: "float", "value": f.to_string() }) });
    }
    if let Ok(c) = v.as_char() {
        return Ok(json!({ TAG: "char", "value": c.to_string() }));
    }
    if let Some(s) = v.read_lock::<ImmutableString>() {
        return Ok(Value::String(s.to_string()));
    }
    if let Some(a) = v.read_lock::<Array>() {
        let items: Result<Vec<Value>, ValueError> =
            a.iter().enumerate().map(|(i, x)| encode(x, names, &format!("{path}[{i}]"))).collect();
        return Ok(Value::Array(items?));
    }
    if let Some(m) = v.read_lock::<Map>() {
        let mut out = serde_json::Map::new();
        for (k, x) in m.iter() {
            out.insert(k.to_string(), encode(x, names, &format!("{path}.{k}"))?);
        }
        // A script map that happens to use the marker key is wrapped, never misread.
        return Ok(if out.contains_key(TAG) { json!({ TAG: "map", "entries": out }) } else { Value::Object(out) });
    }
    if let Some(b) = v.read_lock::<Blob>() {
        return Ok(json!({ TAG: "blob", "base64": base64::engine::general_purpose::STANDARD.encode(&*b) }));
    }
    if let Some(f) = v.read_lock::<FnPtr>() {
        return encode_fn(&f, names, path);
    }
    if let Some(m) = v.read_lock::<CustomMetric>() {
        return Ok(json!({ TAG: "metric", "name": &*m.0.name, "kind": m.0.kind }));
    }
    let what = match v.type_name() {
        n if n.ends_with("Response") => "an HTTP response".to_string(),
        n if n.ends_with("WebSocket") => "an open WebSocket".to_string(),
        n if n.ends_with("EventSource") => "an open event stream".to_string(),
        n if n.ends_with("Message") => "an AMQP message".to_string(),
        n if n.contains("Instant") || n == "timestamp" => "a timestamp".to_string(),
        n => format!("a value of type {n}"),
    };
    Err(ValueError {
        path: path.to_string(),
        what,
        hint: "capture plain data (strings, numbers, arrays, maps) and create the rest inside the phase function"
            .into(),
    })
}

/// Resolves function names on the agent: the script's own functions (closures have
/// generated names, the same on every machine that compiles the same source), then the
/// imported modules'.
pub struct Functions<'a> {
    /// The compiled script.
    pub ast: &'a rhai::AST,
    /// Its imported modules.
    pub modules: &'a [rhai::Shared<rhai::Module>],
}

impl Functions<'_> {
    fn pointer(&self, name: &str) -> Result<FnPtr, String> {
        let own = self.ast.iter_fn_def().find(|f| f.name == name).cloned();
        let from_module = || {
            self.modules
                .iter()
                .find_map(|m| m.iter_script_fn_info().find(|(.., n, _, _)| *n == name).map(|(.., f)| f.clone()))
        };
        match own.or_else(from_module) {
            Some(def) => Ok(FnPtr::from(def)),
            None => FnPtr::new(name).map_err(|_| {
                format!("the function `{name}` is not in this agent's copy of the script (is it the same script?)")
            }),
        }
    }

    /// Decodes a function encoded by [`encode_fn`].
    pub fn decode_fn(&self, v: &Value) -> Result<FnPtr, String> {
        let name = v.get("name").and_then(Value::as_str).ok_or("a function without a name")?;
        let mut f = self.pointer(name)?;
        let curry = v.get("curry").and_then(Value::as_array).cloned().unwrap_or_default();
        let values: Result<Vec<Dynamic>, String> = curry.iter().map(|c| self.decode(c)).collect();
        f.set_curry(values?);
        Ok(f)
    }

    /// Decodes a value encoded by [`encode`]; custom metrics are defined in the agent's
    /// run by `define`.
    pub fn decode(&self, v: &Value) -> Result<Dynamic, String> {
        Ok(match v {
            Value::Null => Dynamic::UNIT,
            Value::Bool(b) => Dynamic::from_bool(*b),
            Value::Number(n) => match n.as_i64() {
                Some(i) => Dynamic::from_int(i),
                None => Dynamic::from_float(n.as_f64().unwrap_or(f64::NAN)),
            },
            Value::String(s) => Dynamic::from(s.clone()),
            Value::Array(a) => {
                let items: Result<Array, String> = a.iter().map(|x| self.decode(x)).collect();
                Dynamic::from_array(items?)
            }
            Value::Object(o) => match o.get(TAG).and_then(Value::as_str) {
                None => self.decode_map(o)?,
                Some(tag) => self.decode_tagged(tag, v)?,
            },
        })
    }

    fn decode_map(&self, o: &serde_json::Map<String, Value>) -> Result<Dynamic, String> {
        let mut m = Map::new();
        for (k, x) in o {
            m.insert(k.as_str().into(), self.decode(x)?);
        }
        Ok(Dynamic::from_map(m))
    }

    fn decode_tagged(&self, tag: &str, v: &Value) -> Result<Dynamic, String> {
        let text = |key: &str| v.get(key).and_then(Value::as_str).unwrap_or_default().to_string();
        Ok(match tag {
            "fn" => Dynamic::from(self.decode_fn(v)?),
            "float" => Dynamic::from_float(text("value").parse::<f64>().map_err(|e| e.to_string())?),
            "char" => Dynamic::from_char(text("value").chars().next().ok_or("an empty character")?),
            "blob" => Dynamic::from_blob(
                base64::engine::general_purpose::STANDARD.decode(text("base64")).map_err(|e| e.to_string())?,
            ),
            "map" => match v.get("entries") {
                Some(Value::Object(o)) => self.decode_map(o)?,
                _ => return Err("a wrapped map without entries".into()),
            },
            "metric" => {
                let kind: MetricKind = serde_json::from_value(v.get("kind").cloned().unwrap_or_default())
                    .map_err(|e| format!("metric {}: {e}", text("name")))?;
                let metric = crate::script::context::define(&text("name"), kind).map_err(|e| e.to_string())?;
                Dynamic::from(CustomMetric(metric))
            }
            other => return Err(format!("an unknown value tag {other:?} (is the coordinator the same version?)")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoNames;
    impl CaptureNames for NoNames {
        fn params_of(&self, _: &str) -> Option<Vec<String>> {
            None
        }
    }

    fn round_trip(v: Dynamic) -> Dynamic {
        let engine = rhai::Engine::new();
        let ast = engine.compile("1").unwrap();
        let f = Functions { ast: &ast, modules: &[] };
        f.decode(&encode(&v, &NoNames, "x").unwrap()).unwrap()
    }

    #[test]
    fn plain_data_travels_exactly() {
        let mut m = Map::new();
        m.insert("int".into(), Dynamic::from_int(7));
        m.insert("float".into(), Dynamic::from_float(2.0));
        m.insert("inf".into(), Dynamic::from_float(f64::INFINITY));
        m.insert("c".into(), Dynamic::from_char('é'));
        m.insert("s".into(), Dynamic::from("text"));
        m.insert("blob".into(), Dynamic::from_blob(vec![0, 255, 7]));
        m.insert(TAG.into(), Dynamic::from("a script's own key"));
        m.insert("list".into(), Dynamic::from_array(vec![Dynamic::UNIT, Dynamic::from_bool(true)]));
        let back = round_trip(Dynamic::from_map(m.clone()));
        assert_eq!(format!("{:?}", back), format!("{:?}", Dynamic::from_map(m)));
        let back = back.cast::<Map>();
        assert!(back["int"].is_int());
        assert!(back["float"].is_float());
    }

    #[test]
    fn a_value_that_cannot_travel_is_named_by_its_path() {
        let mut m = Map::new();
        m.insert("at".into(), Dynamic::from(std::time::Instant::now()));
        let list = Dynamic::from_array(vec![Dynamic::from_map(m)]);
        let e = encode(&list, &NoNames, "phase \"load\": captured variable `cfg`").unwrap_err();
        assert_eq!(e.path, "phase \"load\": captured variable `cfg`[0].at");
        assert_eq!(e.what, "a timestamp");
        assert!(e.to_string().contains("cannot be sent to agents; hint:"), "{e}");
    }
}
