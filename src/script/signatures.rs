//! What each script-facing function takes: parameter lists from the engine's metadata,
//! argument types in the words scripts know (`string`, not `&str | ImmutableString |
//! String`), and the messages for a call no version accepts ("sleep takes 1 or 2
//! arguments, got 3"). Used by runtime diagnostics and by `volley check`.

use rhai::Engine;
use std::collections::HashMap;

/// "`pick` is defined in this script with 1 or 2 parameter(s)": the hint for a call to a
/// script function with the wrong number of arguments.
pub fn script_arity_hint(name: &str, defined: &[usize]) -> String {
    let counts: Vec<String> = defined.iter().map(usize::to_string).collect();
    format!("`{name}` is defined in this script with {} parameter(s)", counts.join(" or "))
}

/// A runtime error's text without Rhai's "Runtime error: " prefix.
pub fn runtime_text(text: &str) -> &str {
    text.strip_prefix("Runtime error: ").unwrap_or(text)
}

/// "sleep takes 1 or 2 arguments, got 3".
pub fn arity_message(name: &str, accepted: &[usize], got: usize) -> String {
    let mut counts: Vec<usize> = accepted.to_vec();
    counts.sort_unstable();
    counts.dedup();
    let list = match counts.as_slice() {
        [] => "no".to_string(),
        [one] => one.to_string(),
        [init @ .., last] => {
            format!("{} or {last}", init.iter().map(usize::to_string).collect::<Vec<_>>().join(", "))
        }
    };
    let noun = if counts.as_slice() == [1] { "argument" } else { "arguments" };
    format!("{name} takes {list} {noun}, got {got}")
}

/// Rhai's spelling of argument types, as scripts know them: `string`, not
/// `&str | ImmutableString | String`.
pub fn plain_type(t: &str) -> String {
    let t = t.trim().trim_start_matches("&mut ").trim_start_matches("rhai::");
    match t {
        "&str | ImmutableString | String" | "ImmutableString" | "&str" | "String" | "string" => "string",
        "i64" | "INT" | "int" => "int",
        "f64" | "FLOAT" | "float" => "float",
        "Dynamic" => "any",
        "Map" | "map" => "map",
        "Array" | "array" => "array",
        "FnPtr" | "Fn" => "Fn",
        "()" => "()",
        // Our types under the names scripts see (`register_type_with_name`).
        "Message" => "AmqpMessage",
        "CustomMetric" => "Metric",
        // An unregistered type is named by its Rust path: keep the last part.
        other => return other.rsplit("::").next().unwrap_or(other).to_string(),
    }
    .to_string()
}

/// The argument types of a "name (t1, t2)" signature from Rhai, in plain words.
pub(crate) fn argument_types(sig: &str) -> Vec<String> {
    let inner = sig.split_once('(').map(|(_, r)| r.trim_end_matches(')')).unwrap_or("");
    if inner.trim().is_empty() {
        return Vec::new();
    }
    inner.split(", ").map(plain_type).collect()
}

/// Signatures of every built-in script function, by name: each a list of
/// `name: type` parameters. Built once: the registry does not change while running.
fn builtin_signatures() -> &'static HashMap<String, Vec<Vec<String>>> {
    static SIGNATURES: std::sync::LazyLock<HashMap<String, Vec<Vec<String>>>> =
        std::sync::LazyLock::new(|| function_signatures(&super::build_engine()));
    &SIGNATURES
}

/// The message and hint for a call of a built-in function with a number of arguments
/// none of its versions takes (shared with `volley check`).
pub fn arity_problem(name: &str, got: usize) -> Option<(String, String)> {
    let versions = builtin_signatures().get(name)?;
    let counts: Vec<usize> = versions.iter().map(Vec::len).collect();
    if counts.contains(&got) {
        return None;
    }
    Some((arity_message(name, &counts, got), format!("it is called as {}", listing(name, versions))))
}

/// The most arguments any version of a built-in function takes (0 when unknown).
pub fn most_arguments(name: &str) -> usize {
    builtin_signatures().get(name).into_iter().flatten().map(Vec::len).max().unwrap_or(0)
}

/// "sleep(duration: string) or sleep(seconds: float)", shortest first, then by text.
fn listing(name: &str, versions: &[Vec<String>]) -> String {
    let mut calls: Vec<(usize, String)> =
        versions.iter().map(|params| (params.len(), format!("{name}({})", params.join(", ")))).collect();
    calls.sort();
    calls.dedup();
    calls.into_iter().map(|(_, c)| c).collect::<Vec<_>>().join(" or ")
}

/// The message and hint for a call no overload of a known function accepts, and the
/// argument to point at when one is to blame.
pub(crate) fn no_overload(name: &str, sig: &str) -> Option<(String, String, Option<usize>)> {
    let versions = builtin_signatures().get(name)?;
    let args = argument_types(sig);
    if let Some((message, hint)) = arity_problem(name, args.len()) {
        return Some((message, hint, None));
    }
    // The same words (and argument) `volley check` finds for literal arguments.
    let known: Vec<Option<&str>> = args.iter().map(|t| Some(t.as_str())).collect();
    if let Some((arg, message, hint)) = type_problem(name, &known) {
        return Some((message, hint, arg));
    }
    Some((
        format!("{name} cannot take ({})", args.join(", ")),
        format!("it is called as {}", listing(name, versions)),
        None,
    ))
}

/// A call of a built-in function with arguments of known types (`None`: an argument
/// whose type only the run knows) that no version with as many parameters accepts, as
/// run would refuse it: the argument to point at (the first no version takes; None:
/// only the combination is wrong), the message and the hint. A parameter without a
/// type, or of type `any`, takes everything.
pub fn type_problem(name: &str, types: &[Option<&str>]) -> Option<(Option<usize>, String, String)> {
    let versions = builtin_signatures().get(name)?;
    let same_count: Vec<&Vec<String>> = versions.iter().filter(|v| v.len() == types.len()).collect();
    let takes = |param: &str, t: &str| match param.rsplit_once(": ") {
        Some((_, "any")) | None => true,
        Some((_, wanted)) => wanted == t,
    };
    let accepts = |version: &Vec<String>| version.iter().zip(types).all(|(param, t)| t.is_none_or(|t| takes(param, t)));
    if same_count.is_empty() || same_count.iter().any(|v| accepts(v)) {
        return None;
    }
    let hint = format!("it is called as {}", listing(name, versions));
    let blamed = types.iter().enumerate().find_map(|(i, t)| {
        let t = (*t)?;
        same_count.iter().all(|v| !takes(&v[i], t)).then_some((i, t))
    });
    let message = match blamed {
        Some((i, t)) => format!("{name}'s argument {} cannot be {} {t}", i + 1, article(t)),
        None => {
            let shown: Vec<&str> = types.iter().map(|t| t.unwrap_or("_")).collect();
            format!("{name} cannot take ({})", shown.join(", "))
        }
    };
    Some((blamed.map(|(i, _)| i), message, hint))
}

/// "a string", "an int", "an array".
fn article(t: &str) -> &'static str {
    match t.chars().next() {
        Some('a' | 'e' | 'i' | 'o' | 'u') => "an",
        _ => "a",
    }
}

/// Every script-facing function's parameter lists (`sleep` -> [["duration: string"],
/// ["min: any", "max: any"], ...]), by the name scripts call it (`http::get`), from the
/// engine's metadata. Methods and property getters are left out: they are not called
/// by name.
pub fn function_signatures(engine: &Engine) -> HashMap<String, Vec<Vec<String>>> {
    let json = engine.gen_fn_metadata_to_json(false).unwrap_or_default();
    let doc: serde_json::Value = serde_json::from_str(&json).unwrap_or_default();
    let mut out: HashMap<String, Vec<Vec<String>>> = HashMap::new();
    let mut collect = |functions: &serde_json::Value, ns: &str| {
        for f in functions.as_array().into_iter().flatten() {
            let Some(name) = f["name"].as_str() else { continue };
            if f["thisType"].is_string() || name.starts_with("get$") || name.starts_with("set$") {
                continue;
            }
            let params: Vec<String> = f["params"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| {
                    let n = p["name"].as_str().unwrap_or("_").trim_start_matches('_');
                    match p["type"].as_str() {
                        Some(t) => format!("{n}: {}", plain_type(t)),
                        None => n.to_string(),
                    }
                })
                .collect();
            let full = if ns.is_empty() { name.to_string() } else { format!("{ns}::{name}") };
            out.entry(full).or_default().push(params);
        }
    };
    collect(&doc["functions"], "");
    if let Some(modules) = doc["modules"].as_object() {
        for (name, m) in modules {
            collect(&m["functions"], name);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arity_messages_read_as_sentences() {
        assert_eq!(arity_message("sleep", &[1, 2, 1], 3), "sleep takes 1 or 2 arguments, got 3");
        assert_eq!(arity_message("env", &[1], 0), "env takes 1 argument, got 0");
        assert_eq!(arity_message("f", &[0, 1, 3], 2), "f takes 0, 1 or 3 arguments, got 2");
    }

    #[test]
    fn rust_type_names_never_reach_the_user() {
        assert_eq!(
            argument_types("sleep (&str | ImmutableString | String, i64, f64, Map)"),
            ["string", "int", "float", "map"]
        );
        assert_eq!(argument_types("now_ms ()"), Vec::<String>::new());
        assert_eq!(argument_types("stop (volley::script::resources::Sampler)"), ["Sampler"]);
    }

    #[test]
    fn literal_argument_types_no_version_takes_are_named() {
        let (arg, message, hint) = type_problem("http::get", &[None, Some("string")]).unwrap();
        assert_eq!((arg, message.as_str()), (Some(1), "http::get's argument 2 cannot be a string"));
        assert!(hint.starts_with("it is called as http::get(url: string"), "{hint}");
        let (arg, message, _) = type_problem("threshold", &[Some("string"), Some("int")]).unwrap();
        assert_eq!((arg, message.as_str()), (Some(1), "threshold's argument 2 cannot be an int"));
        // Types only the run knows, and types some version takes, are not problems.
        assert_eq!(type_problem("http::get", &[None, None]), None);
        assert_eq!(type_problem("http::get", &[Some("string"), Some("map")]), None);
        assert_eq!(type_problem("threshold", &[Some("string"), Some("array")]), None);
        // Another count of arguments is the arity check's.
        assert_eq!(type_problem("http::get", &[Some("int"), None, None, None, None]), None);
    }
}
