//! Static checks of a compiled scenario, without traffic: every call whose arguments are
//! literals goes through the same validator `volley run` uses (phase options with the
//! machine's capacity, thresholds, `expect`, `stats`, durations, retry options), so the
//! messages are the same; plus calls to functions that exist nowhere or with the wrong
//! number of arguments, and `phase()` reachable from a phase's function. Every problem
//! is reported, with its position on the offending value.

use super::Loaded;
use super::diagnostics::{Diagnostic, split_hint};
use crate::executor::{Executor, capacity};
use rhai::{AST, ASTNode, Dynamic, Expr, FnCallExpr, Position, Stmt};
use std::collections::{HashMap, HashSet};

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
    Diagnostic { message, file: Some(file.to_string()), position: pos, hint, chain: Vec::new(), focus: Box::default() }
}

/// A diagnostic from an error text phrased as natives phrase them ("message; hint: ...").
fn diag_text(file: &str, pos: Position, text: &str) -> Diagnostic {
    let (message, hint) = split_hint(text);
    diag(file, pos, message, hint)
}

/// A key read from a variable at the top level (`p.key`, or `p.key.sub`): the variable,
/// the key and where it is, and the key under it with its place.
type ResultRead = (String, String, Position, Option<(String, Position)>);

/// The variable of the loop that runs the node at the end of `path` on each of its
/// passes: a `for` over a literal array or range of at least two items, which nothing
/// leaves early (`break`, `continue`, `return`, `throw`), with no branch between it and
/// the node. `None` when the node may run once only.
fn repeated_by_loop(path: &[ASTNode]) -> Option<String> {
    let mut var = None;
    for node in path {
        match node {
            ASTNode::Stmt(Stmt::For(f, _)) => {
                if literal_passes(&f.2.expr)? < 2 || leaves_early(&f.2.body) {
                    return None;
                }
                var.get_or_insert_with(|| f.0.name.to_string());
            }
            ASTNode::Stmt(Stmt::If(..) | Stmt::Switch(..) | Stmt::While(..) | Stmt::Do(..) | Stmt::TryCatch(..))
            | ASTNode::Expr(Expr::And(..) | Expr::Or(..) | Expr::Coalesce(..)) => return None,
            _ => {}
        }
    }
    var
}

/// How many items a literal array or integer range (`0..3`, `1..=2`) has.
fn literal_passes(e: &Expr) -> Option<usize> {
    let span = |from: rhai::INT, to: rhai::INT| usize::try_from(to.saturating_sub(from)).unwrap_or(0);
    match e {
        Expr::Array(items, _) => Some(items.len()),
        Expr::FnCall(call, _) if call.namespace.is_empty() && (call.name == ".." || call.name == "..=") => {
            match call.args.as_slice() {
                [Expr::IntegerConstant(from, _), Expr::IntegerConstant(to, _)] => {
                    Some(span(*from, *to) + usize::from(call.name == "..=" && to >= from))
                }
                _ => None,
            }
        }
        Expr::DynamicConstant(d, _) => {
            if let Ok(a) = d.as_array_ref() {
                Some(a.len())
            } else if let Some(r) = d.read_lock::<std::ops::Range<rhai::INT>>() {
                Some(span(r.start, r.end))
            } else {
                d.read_lock::<std::ops::RangeInclusive<rhai::INT>>()
                    .map(|r| span(*r.start(), *r.end()) + usize::from(r.end() >= r.start()))
            }
        }
        _ => None,
    }
}

/// Whether a loop's body may leave a pass before its end.
fn leaves_early(body: &rhai::StmtBlock) -> bool {
    let mut leaves = false;
    for stmt in body.iter() {
        stmt.walk(&mut Vec::new(), &mut |path: &[ASTNode]| {
            leaves |= matches!(path.last(), Some(ASTNode::Stmt(Stmt::BreakLoop(..) | Stmt::Return(..))));
            !leaves
        });
    }
    leaves
}

/// Where an expression starts (a call's position is its name, a literal's its first
/// character).
fn at(e: &Expr) -> Position {
    e.start_position()
}

/// The scenario parsed again without the optimizer: it folds a map of literals into one
/// constant, which hides each option's position.
fn unoptimized(loaded: &Loaded) -> Option<AST> {
    // Parsing needs no registered functions, only the same limits.
    super::diagnostics::parse_as_written(&loaded.sources.text(&loaded.name)?)
}

/// A script run as the scenario that has nothing to run: no statement at its top level
/// (an empty file, comments only, or functions nobody calls). `volley run` refuses it
/// rather than pass without load; `volley check` reports an empty one in the same
/// words (to it, a file of functions only may be a module).
pub fn runs_nothing(loaded: &Loaded) -> Option<Diagnostic> {
    if !loaded.ast.statements().is_empty() {
        return None;
    }
    // The optimizer may drop statements that do nothing (`let x = 1;`): ask the text.
    let reparsed = unoptimized(loaded)?;
    if !reparsed.statements().is_empty() {
        return None;
    }
    let mut defined: Vec<String> =
        reparsed.iter_functions().map(|f| f.name.to_string()).filter(|n| !n.starts_with("anon$")).collect();
    defined.sort();
    let message = match defined.as_slice() {
        [] => "the script runs nothing: it has no statements".to_string(),
        names => format!("the script runs nothing: it defines {} but calls none of them", names.join(", ")),
    };
    let hint = "a scenario calls phase(name, options, || { ... }) at its top level, e.g. phase(\"smoke\", #{ executor: \"shared-iterations\", vus: 1, iterations: 1 }, || { http::get(env(\"BASE_URL\")); })";
    Some(diag(&loaded.name, Position::NONE, message, Some(hint.into())))
}

/// The names of every phase the script can run, when they are all known before it runs:
/// each `phase(...)` call (at the top level or in a function) names its phase with a
/// literal, and the script imports no module (which could run phases of its own). None
/// otherwise. For refusing a `--phase NAME` that names none of them before any load.
pub fn literal_phase_names(loaded: &Loaded) -> Option<Vec<String>> {
    let ast = unoptimized(loaded)?;
    if !super::modules::imports(&ast).is_empty() {
        return None;
    }
    let mut names = Vec::new();
    let mut known = true;
    ast.walk(&mut |path: &[ASTNode]| {
        let call = match path.last() {
            Some(ASTNode::Expr(Expr::FnCall(call, _))) | Some(ASTNode::Stmt(Stmt::FnCall(call, _))) => call,
            _ => return true,
        };
        if call.namespace.is_empty() && call.name == "phase" {
            match call.args.first().and_then(literal_str) {
                Some(name) => names.push(name),
                None => known = false,
            }
        }
        known
    });
    known.then_some(names)
}

/// The expression a key path such as `stages[1].duration` names inside `options`, as
/// deep as the literal goes.
fn locate<'a>(options: &'a Expr, key: &str) -> &'a Expr {
    let mut current = options;
    let mut rest = key;
    while !rest.is_empty() {
        let (segment, index, next) = match rest.strip_prefix('[') {
            Some(r) => {
                let end = r.find(']').unwrap_or(r.len());
                (None, r[..end].parse::<usize>().ok(), r.get(end + 1..).unwrap_or(""))
            }
            None => {
                let r = rest.strip_prefix('.').unwrap_or(rest);
                let end = r.find(['[', '.']).unwrap_or(r.len());
                (Some(&r[..end]), None, &r[end..])
            }
        };
        let found = match (current, segment, index) {
            (Expr::Map(m, _), Some(k), _) => m.0.iter().find(|(id, _)| id.name == k).map(|(_, v)| v),
            (Expr::Array(items, _), _, Some(i)) => items.get(i),
            _ => None,
        };
        match found {
            Some(e) => current = e,
            None => break,
        }
        rest = next;
    }
    current
}

/// The value `env("NAME", default)` has in a run without `-e NAME=...`: its literal
/// default, when the process does not set NAME either (then it is only known at run
/// time).
fn env_default(e: &Expr) -> Option<Dynamic> {
    let Expr::FnCall(call, _) = e else { return None };
    let [name, default] = call.args.as_slice() else { return None };
    if !call.namespace.is_empty() || call.name != "env" {
        return None;
    }
    let name = literal_str(name)?;
    if std::env::var_os(&name).is_some() {
        return None;
    }
    literal(default)
}

/// Where the key at the end of `path` (`stages[1].traget`, `vu`) is written.
fn locate_key(options: &Expr, path: &str) -> Option<Position> {
    let (parent, key) = match path.rfind('.') {
        Some(i) => (locate(options, &path[..i]), &path[i + 1..]),
        None => (options, path),
    };
    match parent {
        Expr::Map(entries, _) => entries.0.iter().find(|(k, _)| k.name == key).map(|(k, _)| k.pos),
        _ => None,
    }
}

/// Checks a phase's options map: fully when every value is a literal; otherwise only
/// the keys that are literals and the ones that are missing.
fn check_phase(
    file: &str,
    call: Position,
    name: &str,
    options: &Expr,
    limits: &capacity::Limits,
    out: &mut Vec<Diagnostic>,
) {
    let to_json = |e: &Expr| {
        let value = e.get_literal_value(None).or_else(|| env_default(e))?;
        rhai::serde::from_dynamic::<serde_json::Value>(&value).ok()
    };
    let mut literal = serde_json::Map::new();
    let mut dynamic_keys = HashSet::new();
    match options {
        Expr::Map(entries, _) => {
            for (key, value) in &entries.0 {
                match to_json(value) {
                    Some(v) => {
                        literal.insert(key.name.to_string(), v);
                    }
                    None => {
                        dynamic_keys.insert(key.name.to_string());
                    }
                }
            }
        }
        other => match to_json(other) {
            Some(serde_json::Value::Object(m)) => literal = m,
            _ => return,
        },
    }
    // Not a load-profile option: the engine reads it before the profile (as run does).
    if let Some(v) = literal.remove("iteration_timeout")
        && let Err(e) = crate::executor::iteration_timeout(&v)
    {
        let pos = at(locate(options, "iteration_timeout"));
        out.push(diag(file, pos, format!("phase {name:?}: iteration_timeout: {e}"), None));
    }
    if dynamic_keys.contains("executor") {
        return;
    }
    let Err(errors) = Executor::validate_with(&literal, limits) else { return };
    let root = |k: &str| k.split(['[', '.']).next().unwrap_or(k).to_string();
    let mut errors: Vec<_> = errors.into_iter().filter(|e| !dynamic_keys.contains(&root(&e.key))).collect();
    // The profile could not be built (values known only at run time): an absurd literal
    // VU count is still worth flagging.
    if errors.is_empty()
        && let Some((vus, key)) = capacity::literal_demand(&literal)
    {
        errors = capacity::check(vus, key, limits);
    }
    let Some(first) = errors.first() else { return };
    // A key that should not be there: point at it; a missing key: at the map; else at
    // the value.
    let key_pos = if first.about_key { locate_key(options, &first.key) } else { None };
    let pos = match key_pos {
        Some(p) => p,
        None if literal.contains_key(&root(&first.key)) => match locate(options, &first.key) {
            // The value came from `env(NAME, default)`: point at the default.
            Expr::FnCall(call, _) if call.name == "env" && call.args.len() == 2 => at(&call.args[1]),
            e => at(e),
        },
        None => at(options),
    };
    let pos = if pos.is_none() { call } else { pos };
    let (message, hint) = crate::executor::describe_errors(name, &errors);
    out.push(diag(file, pos, message, hint));
}

fn check_threshold(file: &str, args: &[Expr], out: &mut Vec<Diagnostic>) {
    let text = args.first().and_then(literal_str);
    // A bad or dynamic selector does not hide bad conditions: every problem is reported.
    let selector = text
        .as_deref()
        .and_then(|t| super::validate::selector(t).map_err(|e| out.push(diag_text(file, at(&args[0]), &e))).ok());
    let text = text.unwrap_or_default();
    // `#{ abort_on_fail: true, delay: "10s" }`, checked as run reads it.
    if let Some(options) = args.get(2)
        && let Some(m) = literal(options).and_then(|v| v.try_cast::<rhai::Map>())
        && let Err(e) = super::thresholds::threshold_options(&m)
    {
        out.push(diag_text(file, at(options), super::signatures::runtime_text(&e.to_string())));
    }
    let Some(conditions) = args.get(1) else { return };
    // One condition, or a list of them: each checked where it is written.
    let items: Vec<&Expr> = match conditions {
        Expr::Array(items, _) => items.iter().collect(),
        e => vec![e],
    };
    for item in items {
        let texts: Vec<String> = match item.get_literal_value(None) {
            Some(v) if v.is_array() => v.cast::<rhai::Array>().iter().map(|c| c.to_string()).collect(),
            Some(v) if v.is_string() => vec![v.to_string()],
            _ => continue,
        };
        for c in texts {
            if let Err(e) = super::validate::threshold_condition(&text, selector.as_ref(), &c) {
                out.push(diag_text(file, at(item), &e));
            }
        }
    }
}

/// Checks a phase's weighted tasks written as a map: the weights, and that a task named
/// by function names a function of the script without parameters.
fn check_tasks(
    file: &str,
    map: &Expr,
    tasks: &rhai::StaticVec<(rhai::Ident, Expr)>,
    script_arity: &HashMap<String, Vec<usize>>,
    out: &mut Vec<Diagnostic>,
) {
    let mut weights = rhai::Map::new();
    for (key, value) in tasks.iter() {
        let weight = match value {
            Expr::Map(inner, _) => match inner.0.iter().find(|(k, _)| k.name == "weight") {
                Some((_, w)) => literal(w),
                None => Some(Dynamic::from_int(1)),
            },
            other => {
                let named = script_arity.get(key.name.as_str()).is_some_and(|p| p.contains(&0));
                if !named {
                    let names = script_arity.keys().map(String::as_str);
                    let hint = match super::opts::did_you_mean(&key.name, names) {
                        Some(s) => format!("did you mean `{s}`? "),
                        None => String::new(),
                    };
                    out.push(diag(
                        file,
                        key.pos,
                        format!("task {:?} names no function of this script without parameters", key.name),
                        Some(format!(
                            "{hint}define `fn {}() {{ ... }}` or give #{{ weight: N, run: || ... }}",
                            key.name
                        )),
                    ));
                }
                literal(other)
            }
        };
        match weight {
            Some(w) => {
                weights.insert(key.name.as_str().into(), w);
            }
            None => return,
        }
    }
    if let Err(e) = super::random::weights(&weights, "phase(): tasks") {
        out.push(diag_text(file, at(map), &e));
    }
}

/// The type an argument has whatever the run does (`string`, `int`, `map`, ...), as
/// the function signatures spell it; None when only the run knows it.
fn expr_type(e: &Expr) -> Option<&'static str> {
    Some(match e {
        Expr::StringConstant(..) | Expr::InterpolatedString(..) => "string",
        Expr::IntegerConstant(..) => "int",
        Expr::FloatConstant(..) => "float",
        Expr::BoolConstant(..) => "bool",
        Expr::CharConstant(..) => "char",
        Expr::Array(..) => "array",
        Expr::Map(..) => "map",
        Expr::Unit(..) => "()",
        Expr::DynamicConstant(v, _) => match v.type_name() {
            "string" | "ImmutableString" => "string",
            "i64" => "int",
            "f64" => "float",
            "bool" => "bool",
            "array" => "array",
            "map" => "map",
            _ => return None,
        },
        _ => return None,
    })
}

/// A literal argument as a script value, when it is one.
fn literal(e: &Expr) -> Option<Dynamic> {
    e.get_literal_value(None).filter(|v| !v.is_fnptr())
}

/// Checks a call to a primitive whose literal arguments can be validated as run would.
fn check_call(file: &str, name: &str, args: &[Expr], out: &mut Vec<Diagnostic>) {
    let eval_text = |e: Box<rhai::EvalAltResult>| super::signatures::runtime_text(&e.to_string()).to_string();
    if let Some(spec) = super::validate::options_of(name, args.len())
        && let Some(Expr::Map(entries, _)) = args.get(spec.index)
    {
        // Each key on its own, so one mistake does not hide the next; values that are
        // literals are read by the primitive's own code, the others at run time.
        for (key, value) in entries.0.iter() {
            let mut single = rhai::Map::new();
            let literal_value = literal(value);
            single.insert(key.name.as_str().into(), literal_value.clone().unwrap_or(Dynamic::UNIT));
            match super::opts::Opts::new(&single, spec.what, spec.allowed) {
                Err(e) => out.push(diag_text(file, key.pos, &eval_text(e))),
                Ok(opts) if literal_value.is_some() => {
                    if let Err(e) = (spec.values)(&opts) {
                        out.push(diag_text(file, at(value), &eval_text(e)));
                    }
                }
                Ok(_) => {}
            }
        }
    }
    let mut fail = |e: &Expr, text: String| out.push(diag_text(file, at(e), &text));
    match (name, args) {
        ("sleep", [d]) => {
            if let Some(v) = literal(d)
                && let Err(e) = super::opts::to_duration(&v, "sleep")
            {
                fail(d, eval_text(e));
            }
        }
        ("sleep", [lo, hi]) => {
            if let (Some(a), Some(b)) = (literal(lo), literal(hi))
                && let Err(e) = super::validate::sleep_range(&a, &b)
            {
                // Point at the bound that is wrong; for a reversed range, at max.
                let bad_min = super::opts::to_duration(&a, "sleep: min").is_err();
                fail(if bad_min { lo } else { hi }, eval_text(e));
            }
        }
        ("scale", [d]) => {
            if let Some(v) = literal(d).filter(Dynamic::is_string)
                && let Err(e) = super::opts::to_duration(&v, "scale")
            {
                fail(d, eval_text(e));
            }
        }
        ("expect", [_, condition, ..]) => {
            if let Some(c) = literal_str(condition)
                && let Err(e) = super::validate::expectation(&c)
            {
                fail(condition, e);
            }
        }
        ("stats", [selector]) => {
            if let Some(s) = literal_str(selector)
                && let Err(e) = super::validate::stats_selector(&s)
            {
                fail(selector, e);
            }
        }
        ("rand_int", [lo, hi]) => {
            if let (Some(a), Some(b)) =
                (literal(lo).and_then(|v| v.as_int().ok()), literal(hi).and_then(|v| v.as_int().ok()))
                && let Err(e) = super::random::int_range(a, b)
            {
                fail(hi, e);
            }
        }
        ("rand_float", [lo, hi]) => {
            let num =
                |e: &Expr| literal(e).and_then(|v| v.as_float().ok().or_else(|| v.as_int().ok().map(|i| i as f64)));
            if let (Some(a), Some(b)) = (num(lo), num(hi))
                && let Err(e) = super::random::float_range(a, b)
            {
                fail(hi, e);
            }
        }
        ("pick", [items]) => {
            if let Expr::Array(list, _) = items
                && list.is_empty()
            {
                fail(items, "pick: the array is empty; hint: pick needs at least one element".into());
            }
        }
        ("pick_weighted", [choices]) => {
            if let Some(m) = literal(choices).and_then(|v| v.try_cast::<rhai::Map>())
                && let Err(e) = super::random::weights(&m, "pick_weighted")
            {
                fail(choices, e);
            }
        }
        ("random_string", [n]) => {
            if let Some(n_value) = literal(n).and_then(|v| v.as_int().ok())
                && let Err(e) = super::random::string_length(n_value)
            {
                fail(n, e);
            }
        }
        ("group", [name, ..]) => {
            if let Some(text) = literal_str(name)
                && let Err(e) = super::group::group_name(&text)
            {
                fail(name, e);
            }
        }
        ("levels", [table]) => {
            if let Some(m) = literal(table).and_then(|v| v.try_cast::<rhai::Map>())
                && let Ok(serde_json::Value::Object(levels)) = rhai::serde::from_dynamic(&Dynamic::from_map(m))
            {
                for (name, v) in &levels {
                    if let Err(e) = super::levels::read_level(name, v, "") {
                        fail(table, e);
                    }
                }
            }
        }
        ("ws::connect" | "sse::open", [url, rest @ ..]) => {
            let validate = if name == "ws::connect" { super::ws::check_connect } else { super::sse::check_open };
            if let Some(u) = literal_str(url)
                && let Err(e) = validate(Some(&u), &rhai::Map::new())
            {
                fail(url, e);
            }
            if let Some(options) = rest.first()
                && let Some(m) = literal(options).and_then(|v| v.try_cast::<rhai::Map>())
                && let Err(e) = validate(None, &m)
            {
                fail(options, e);
            }
        }
        ("retry", [options, ..]) => {
            if let Some(m) = literal(options).and_then(|v| v.try_cast::<rhai::Map>())
                && let Err(e) = super::validate::RetryOptions::read(&m)
            {
                fail(options, eval_text(e));
            }
        }
        _ => {}
    }
}

/// Function names an expression refers to: closures and `Fn("name")` pointers.
fn referenced_fns(e: &Expr, script_fns: &HashSet<String>) -> Vec<String> {
    let mut out = Vec::new();
    e.walk(&mut Vec::new(), &mut |path: &[ASTNode]| {
        if let Some(ASTNode::Expr(node)) = path.last() {
            out.extend(fn_ref(node, script_fns));
        }
        true
    });
    out
}

/// The script function one node refers to or calls, if any.
fn fn_ref(node: &Expr, script_fns: &HashSet<String>) -> Option<String> {
    match node {
        Expr::DynamicConstant(v, _) if v.is_fnptr() => v.clone().try_cast::<rhai::FnPtr>().map(|f| f.fn_name().into()),
        Expr::FnCall(call, _) if call.namespace.is_empty() && call.name == "Fn" => {
            call.args.first().and_then(literal_str)
        }
        Expr::FnCall(call, _) if call.namespace.is_empty() && script_fns.contains(call.name.as_str()) => {
            Some(call.name.to_string())
        }
        _ => None,
    }
}

/// What the walk remembers of one call for the checks that need the whole script.
struct PhaseCall {
    owner: Option<String>,
    position: Position,
}

/// Where a script function's body lies, as (line, column) pairs.
struct Body {
    name: String,
    start: (usize, usize),
    end: (usize, usize),
}

fn line_col(pos: Position) -> (usize, usize) {
    (pos.line().unwrap_or(0), pos.position().unwrap_or(0))
}

/// Checks one loaded scenario; returns every problem found.
pub fn check(loaded: &Loaded) -> Vec<Diagnostic> {
    let file = loaded.name.as_str();
    let reparsed = unoptimized(loaded);
    let ast: &AST = reparsed.as_ref().unwrap_or(&loaded.ast);
    let known: HashSet<&str> = loaded.functions.iter().map(String::as_str).collect();
    let script_fns: HashSet<String> = ast.iter_functions().map(|f| f.name.to_string()).collect();
    let mut script_arity: HashMap<String, Vec<usize>> = HashMap::new();
    for f in ast.iter_functions() {
        script_arity.entry(f.name.to_string()).or_default().push(f.params.len());
    }
    let mut out = Vec::new();
    // The machine's limits, read once for every phase of the script.
    let limits = capacity::Limits::of_this_machine();
    let mut phase_roots: Vec<String> = Vec::new();
    let mut phase_calls: Vec<PhaseCall> = Vec::new();
    let mut unconditional_phases: Vec<String> = Vec::new();
    let mut edges: HashMap<Option<String>, Vec<String>> = HashMap::new();

    // Which function a node belongs to: the innermost body around its position (closures
    // are functions of their own, written inside their parent's body).
    let bodies: Vec<Body> = ast
        .iter_fn_def()
        .map(|f| Body {
            name: f.name.to_string(),
            start: line_col(f.body.start_position()),
            end: line_col(f.body.end_position()),
        })
        .collect();
    let owner_of = |pos: Position| -> Option<String> {
        let p = line_col(pos);
        bodies.iter().filter(|b| b.start <= p && p <= b.end).max_by_key(|b| b.start).map(|b| b.name.clone())
    };
    // The script's own statements (the walk goes on into function bodies): what runs
    // once, from the top.
    let tops: HashSet<*const Stmt> = ast.statements().iter().map(|s| s as *const Stmt).collect();
    let in_main =
        |path: &[ASTNode]| matches!(path.first(), Some(ASTNode::Stmt(s)) if tops.contains(&(*s as *const Stmt)));
    // Keys read from a phase's result (`let p = phase(...)` at the top level, then
    // `p.key` there): names declared any other way in the main script (a block's `let`,
    // a `for` variable) are left alone, as is everything inside functions and closures.
    let mut results: HashSet<String> = HashSet::new();
    let mut redeclared: HashSet<String> = HashSet::new();
    let mut reads: Vec<ResultRead> = Vec::new();
    ast.walk(&mut |path: &[ASTNode]| {
        if let Some(ASTNode::Expr(node)) = path.last()
            && let Some(f) = fn_ref(node, &script_fns)
        {
            edges.entry(owner_of(node.position())).or_default().push(f);
        }
        if in_main(path) {
            match path.last() {
                Some(ASTNode::Stmt(Stmt::Var(var, _, _))) => {
                    let is_phase = matches!(&var.1, Expr::FnCall(c, _) if c.namespace.is_empty() && c.name == "phase");
                    let name = var.0.name.to_string();
                    if is_phase && path.len() == 1 {
                        results.insert(name);
                    } else {
                        redeclared.insert(name);
                    }
                }
                Some(ASTNode::Stmt(Stmt::For(f, _))) => {
                    redeclared.insert(f.0.name.to_string());
                    redeclared.extend(f.1.iter().map(|i| i.name.to_string()));
                }
                Some(ASTNode::Expr(Expr::Dot(dot, _, _))) => {
                    // `p.key`, or the first two keys of `p.key.sub` and `p.key.sub.more`.
                    let (first, second) = match &dot.rhs {
                        Expr::Dot(rest, _, _) => (
                            &rest.lhs,
                            Some(match &rest.rhs {
                                Expr::Dot(more, _, _) => &more.lhs,
                                e => e,
                            }),
                        ),
                        e => (e, None),
                    };
                    if let (Expr::Variable(v, _, _), Expr::Property(prop, pos)) = (&dot.lhs, first) {
                        let sub = match second {
                            Some(Expr::Property(sub, at)) => Some((sub.2.to_string(), *at)),
                            _ => None,
                        };
                        reads.push((v.1.to_string(), prop.2.to_string(), *pos, sub));
                    }
                }
                _ => {}
            }
        }
        // A call used as a statement is a `Stmt::FnCall`, inside an expression an `Expr::FnCall`.
        let (call, pos): (&FnCallExpr, Position) = match path.last() {
            Some(ASTNode::Expr(Expr::FnCall(call, pos))) => (call, *pos),
            Some(ASTNode::Stmt(Stmt::FnCall(call, pos))) => (call, *pos),
            _ => return true,
        };
        if call.op_token.is_some() {
            return true;
        }
        let ns = call.namespace.to_string();
        let name = call.name.as_str();
        let full = if ns.is_empty() { name.to_string() } else { format!("{ns}::{name}") };
        let script_fn = ns.is_empty() && script_fns.contains(name);
        let exists = known.contains(full.as_str()) || script_fn || (ns.is_empty() && LANGUAGE.contains(&name));
        if !exists && !name.starts_with("anon$") {
            let hint = super::opts::did_you_mean(&full, known.iter().copied())
                .map(|s| format!("did you mean `{s}`?"))
                .unwrap_or_else(|| "see `volley check --list-functions` for every function".into());
            out.push(diag(file, pos, format!("unknown function: {full}"), Some(hint)));
            return true;
        }
        if script_fn
            && let Some(params) = script_arity.get(name)
            && !params.contains(&call.args.len())
        {
            let message = super::signatures::arity_message(name, params, call.args.len());
            out.push(diag(file, pos, message, Some(super::signatures::script_arity_hint(name, params))));
            return true;
        }
        if !script_fn && let Some((message, hint)) = super::signatures::arity_problem(&full, call.args.len()) {
            // Point at the first argument too many, or at the call when there are too few.
            let most = super::signatures::most_arguments(&full);
            out.push(diag(file, call.args.get(most).map_or(pos, at), message, Some(hint)));
            return true;
        }
        if !script_fn {
            let types: Vec<Option<&str>> = call.args.iter().map(expr_type).collect();
            if let Some((arg, message, hint)) = super::signatures::type_problem(&full, &types) {
                out.push(diag(file, arg.and_then(|i| call.args.get(i)).map_or(pos, at), message, Some(hint)));
                return true;
            }
        }
        match (full.as_str(), call.args.as_slice()) {
            ("phase", [name, options, rest @ ..]) => {
                check_phase(file, pos, &literal_str(name).unwrap_or_default(), options, &limits, &mut out);
                phase_calls.push(PhaseCall { owner: owner_of(pos), position: pos });
                // Run on every pass of the script, not in a branch or loop: a name run
                // twice is refused at run time, after the first one's load.
                let conditional = !in_main(path)
                    || path.iter().any(|n| {
                        matches!(
                            n,
                            ASTNode::Stmt(
                                Stmt::If(..)
                                    | Stmt::Switch(..)
                                    | Stmt::While(..)
                                    | Stmt::Do(..)
                                    | Stmt::For(..)
                                    | Stmt::TryCatch(..)
                            )
                        )
                    });
                if in_main(path)
                    && let (Some(name), Some(var)) = (literal_str(name), repeated_by_loop(path))
                {
                    out.push(diag(
                        file,
                        pos,
                        format!(
                            "phase {name:?} runs on every pass of the loop: the second pass is refused (phase {name:?} was already run)"
                        ),
                        Some(format!("give each pass its own name, e.g. phase(`{name}-${{{var}}}`, ...)")),
                    ));
                }
                if let (false, Some(name)) = (conditional, literal_str(name)) {
                    match unconditional_phases.iter().find(|n| **n == name) {
                        Some(_) => out.push(diag_text(file, pos, &super::validate::phase_already_run(&name))),
                        None => unconditional_phases.push(name),
                    }
                }
                if let Some(func) = rest.first() {
                    phase_roots.extend(referenced_fns(func, &script_fns));
                    if let Expr::Map(tasks, _) = func {
                        check_tasks(file, func, &tasks.0, &script_arity, &mut out);
                        // Tasks named by function run inside iterations too.
                        phase_roots.extend(tasks.0.iter().map(|(k, _)| k.name.to_string()));
                    }
                }
            }
            ("threshold", args) => check_threshold(file, args, &mut out),
            (name, args) => check_call(file, name, args, &mut out),
        }
        true
    });

    for (var, key, pos, sub) in reads {
        if !results.contains(&var) || redeclared.contains(&var) {
            continue;
        }
        if let Some(text) = super::validate::phase_result_typo(&key) {
            out.push(diag_text(file, pos, &text));
        } else if let Some((sub, at)) = sub
            && let Some(text) = super::validate::phase_result_sub_typo(&key, &sub)
        {
            out.push(diag_text(file, at, &text));
        }
    }
    // phase() in any function a phase's function can reach runs inside an iteration.
    let mut reachable: HashSet<String> = HashSet::new();
    let mut todo = phase_roots;
    while let Some(f) = todo.pop() {
        if reachable.insert(f.clone()) {
            todo.extend(edges.get(&Some(f)).into_iter().flatten().cloned());
        }
    }
    for call in phase_calls {
        if call.owner.as_ref().is_some_and(|o| reachable.contains(o)) {
            out.push(diag_text(file, call.position, super::validate::PHASE_AT_TOP_LEVEL));
        }
    }
    out.sort_by_key(|d| (d.position.line(), d.position.position()));
    out
}
