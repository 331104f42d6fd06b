//! Static checks of a compiled scenario, without traffic: executor options, thresholds,
//! durations and environment lookups given as literals, and calls to functions that
//! exist nowhere. Every problem is reported, with its position.

use super::Loaded;
use super::diagnostics::Diagnostic;
use crate::executor::Executor;
use crate::metrics::threshold::{Condition, Selector};
use rhai::{ASTNode, Dynamic, Expr, Position};
use std::collections::HashSet;

/// Functions the Rhai language itself provides beyond registered ones.
const LANGUAGE: &[&str] = &[
    "print",
    "debug",
    "type_of",
    "Fn",
    "call",
    "curry",
    "is_def_var",
    "is_def_fn",
    "is_shared",
    "eval",
    "throw",
    "this",
];

fn literal_str(e: &Expr) -> Option<String> {
    e.get_literal_value(None).and_then(|d| d.into_immutable_string().ok()).map(|s| s.to_string())
}

fn diag(file: &str, pos: Position, message: String, hint: Option<String>) -> Diagnostic {
    Diagnostic { message, file: Some(file.to_string()), position: pos, hint, chain: Vec::new() }
}

/// Checks a phase's options map: fully when every value is a literal; otherwise only
/// the keys that are literals and the ones that are missing.
fn check_phase(file: &str, pos: Position, name: &str, options: &Expr, out: &mut Vec<Diagnostic>) {
    let Expr::Map(entries, _) = options else { return };
    let mut literal = serde_json::Map::new();
    let mut dynamic_keys = HashSet::new();
    for (key, value) in &entries.0 {
        if key.name == "iteration_timeout" {
            if let Some(v) =
                value.get_literal_value(None).and_then(|v| rhai::serde::from_dynamic::<serde_json::Value>(&v).ok())
                && let Err(e) = crate::executor::iteration_timeout(&v)
            {
                out.push(diag(
                    file,
                    pos,
                    format!("phase {name:?}: iteration_timeout: {e}"),
                    Some(crate::duration::DURATION_HINT.into()),
                ));
            }
            continue;
        }
        match value.get_literal_value(None).and_then(|v| rhai::serde::from_dynamic::<serde_json::Value>(&v).ok()) {
            Some(v) => {
                literal.insert(key.name.to_string(), v);
            }
            None => {
                dynamic_keys.insert(key.name.to_string());
            }
        }
    }
    if dynamic_keys.contains("executor") {
        return;
    }
    if let Err(errors) = Executor::from_options(&literal) {
        let root = |k: &str| k.split(['[', '.']).next().unwrap_or(k).to_string();
        let errors: Vec<_> = errors.into_iter().filter(|e| !dynamic_keys.contains(&root(&e.key))).collect();
        if !errors.is_empty() {
            let mut message = format!(
                "phase {name:?}: invalid options ({} problem{})",
                errors.len(),
                if errors.len() == 1 { "" } else { "s" }
            );
            let hints: Vec<String> = errors.iter().filter_map(|e| e.hint.clone()).collect();
            for e in &errors {
                message.push_str(&format!("\n  - {e}"));
            }
            out.push(diag(file, pos, message, (!hints.is_empty()).then(|| hints.join("; "))));
        }
    }
}

fn check_threshold(file: &str, pos: Position, args: &[Expr], out: &mut Vec<Diagnostic>) {
    if let Some(sel) = args.first().and_then(literal_str)
        && let Err(e) = Selector::parse(&sel)
    {
        out.push(diag(file, pos, e.to_string(), e.hint.clone()));
    }
    let conditions: Vec<String> = match args.get(1) {
        Some(e) => match e.get_literal_value(None) {
            Some(v) if v.is_array() => v
                .cast::<rhai::Array>()
                .into_iter()
                .filter_map(|c| c.into_immutable_string().ok())
                .map(|s| s.to_string())
                .collect(),
            Some(v) => v.into_immutable_string().ok().map(|s| vec![s.to_string()]).unwrap_or_default(),
            None => Vec::new(),
        },
        None => Vec::new(),
    };
    for c in conditions {
        if let Err(e) = Condition::parse(&c) {
            out.push(diag(file, pos, e.to_string(), e.hint.clone()));
        }
    }
}

fn check_duration(file: &str, pos: Position, what: &str, arg: Option<&Expr>, out: &mut Vec<Diagnostic>) {
    if let Some(text) = arg.and_then(literal_str)
        && let Err(e) = crate::duration::parse_duration(&text)
    {
        out.push(diag(file, pos, format!("{what}: {e}"), Some(crate::duration::DURATION_HINT.into())));
    }
}

/// Checks one loaded scenario; returns every problem found.
pub fn check(loaded: &Loaded) -> Vec<Diagnostic> {
    let file = loaded.name.as_str();
    let known: HashSet<&str> = loaded.functions.iter().map(String::as_str).collect();
    let script_fns: HashSet<String> = loaded.ast.iter_functions().map(|f| f.name.to_string()).collect();
    let mut out = Vec::new();
    loaded.ast.walk(&mut |path: &[ASTNode]| {
        // A call used as a statement is a `Stmt::FnCall`, inside an expression an `Expr::FnCall`.
        let (call, pos) = match path.last() {
            Some(ASTNode::Expr(Expr::FnCall(call, pos))) => (&**call, pos),
            Some(ASTNode::Stmt(rhai::Stmt::FnCall(call, pos))) => (&**call, pos),
            _ => return true,
        };
        if call.op_token.is_some() {
            return true;
        }
        let ns = call.namespace.to_string();
        let name = call.name.as_str();
        let full = if ns.is_empty() { name.to_string() } else { format!("{ns}::{name}") };
        let exists =
            known.contains(full.as_str()) || (ns.is_empty() && (script_fns.contains(name) || LANGUAGE.contains(&name)));
        if !exists && !name.starts_with("anon$") {
            let hint = super::opts::did_you_mean(&full, known.iter().copied())
                .map(|s| format!("did you mean `{s}`?"))
                .unwrap_or_else(|| "see `volley check --list-functions` for every function".into());
            out.push(diag(file, *pos, format!("unknown function: {full}"), Some(hint)));
            return true;
        }
        match (full.as_str(), call.args.as_slice()) {
            ("phase", [name, options, ..]) => {
                check_phase(file, *pos, &literal_str(name).unwrap_or_default(), options, &mut out)
            }
            ("threshold", args) => check_threshold(file, *pos, args, &mut out),
            ("sleep", [d]) | ("sleep", [d, _]) => check_duration(file, *pos, "sleep", Some(d), &mut out),
            ("scale", [d]) if d.get_literal_value(None).is_some_and(|v: Dynamic| v.is_string()) => {
                check_duration(file, *pos, "scale", Some(d), &mut out)
            }
            _ => {}
        }
        true
    });
    out
}
