//! Diagnostics: Rhai parse and runtime errors rendered with file:line:col, the source
//! line, a caret, what was wrong, a hint, and the call chain back to the script.

use rhai::{EvalAltResult, ParseError, Position};
use std::collections::HashMap;
use std::sync::Mutex;

/// Source files read on demand for snippets (scripts and imported modules).
#[derive(Default)]
pub struct Sources {
    files: Mutex<HashMap<String, Option<(String, String)>>>,
    dirs: Vec<std::path::PathBuf>,
}

impl Sources {
    /// Registers a file's text (the main script, already read).
    pub fn insert(&self, name: &str, text: String) {
        self.files.lock().unwrap_or_else(|e| e.into_inner()).insert(name.to_string(), Some((name.to_string(), text)));
    }

    /// Sources that also find modules named by import path (`"lib/focus"`) in `dirs`.
    pub fn with_dirs(dirs: Vec<std::path::PathBuf>) -> Sources {
        Sources { files: Mutex::default(), dirs }
    }

    /// The file behind a source name (a module's import path maps to its .rhai file)
    /// and its text.
    fn file(&self, name: &str) -> Option<(String, String)> {
        let mut files = self.files.lock().unwrap_or_else(|e| e.into_inner());
        files
            .entry(name.to_string())
            .or_insert_with(|| {
                let mut candidates = vec![std::path::PathBuf::from(name)];
                for dir in &self.dirs {
                    candidates.push(dir.join(format!("{name}.rhai")));
                    candidates.push(dir.join(name));
                }
                candidates
                    .into_iter()
                    .find_map(|p| super::modules::read_text(&p).ok().map(|t| (p.display().to_string(), t)))
            })
            .clone()
    }

    /// The path to show for a source name.
    pub fn display_name(&self, name: &str) -> String {
        self.file(name).map(|(path, _)| path).unwrap_or_else(|| name.to_string())
    }

    /// The text of a source (the script, or a module by import path).
    pub fn text(&self, name: &str) -> Option<String> {
        self.file(name).map(|(_, text)| text)
    }

    fn line(&self, name: &str, line: usize) -> Option<String> {
        let (_, text) = self.file(name)?;
        text.lines().nth(line.checked_sub(1)?).map(str::to_string)
    }
}

/// A rendered problem: `error: ...`, location, snippet, hint, call chain.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    /// What was wrong (first line).
    pub message: String,
    /// File name, when known.
    pub file: Option<String>,
    /// Position in the file.
    pub position: Position,
    /// A suggestion.
    pub hint: Option<String>,
    /// Outer frames: "called from ..." lines.
    pub chain: Vec<String>,
    /// What to point at more precisely than `position` once the source line is known
    /// (boxed: most diagnostics have none, and `Result`s carry diagnostics).
    pub focus: Box<Focus>,
}

/// A refinement of a runtime error's position, applied when the source is at hand:
/// natives only know where their call starts, the message says which value was wrong.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Focus {
    /// The position is exact.
    #[default]
    Exact,
    /// Point at the first of these texts (a quoted value, an option key) found at or
    /// after the position: `spanning` ones also on the lines below (an options map
    /// written over several lines), the others on the call's line only.
    Text {
        /// Searched from the position over the next lines.
        spanning: Vec<String>,
        /// Searched on the call's line.
        same_line: Vec<String>,
    },
    /// Point at the call's argument with this index (0-based), when on the same line.
    Argument(usize),
    /// No function `name` takes `got` arguments: if the file defines `fn name(...)`, say
    /// how many it takes.
    ScriptFunction {
        /// The function called.
        name: String,
        /// Arguments given.
        got: usize,
    },
    /// `.prop` was read from `()`: name the property before it, which is missing.
    MissingProperty(String),
    /// Script code that never ended (an endless loop stopped by the busy limit, or
    /// recursion past the limit): Rhai hands such errors up without the position where
    /// they happened. Point at the file's one loop, or at a function's call of itself.
    Runaway {
        /// Recursion (else a loop).
        recursion: bool,
    },
}

/// Property names of the values volley hands to scripts besides a phase's result
/// ([`super::validate::PHASE_RESULT_KEYS`]: a burst's, stats, responses), offered with
/// those as "did you mean" for a missing property along with the script's own words.
const KNOWN_PROPERTIES: &[&str] = &[
    "burst",
    "duration_ms",
    "avg",
    "min",
    "med",
    "max",
    "p90",
    "p95",
    "p99",
    "p999",
    "count",
    "rate",
    "passes",
    "fails",
    "value",
    "status",
    "ok",
    "headers",
    "body",
    "error",
    "error_message",
    "url",
];

/// Display columns of `text`'s first `chars` characters: wide characters (emoji, CJK)
/// take two cells, combining marks none; tabs are kept so the caret lines up.
fn caret_pad(text: &str, chars: usize) -> String {
    use unicode_width::UnicodeWidthChar;
    let mut pad = String::new();
    for c in text.chars().take(chars) {
        match c {
            '\t' => pad.push('\t'),
            c => pad.push_str(&" ".repeat(c.width().unwrap_or(0))),
        }
    }
    pad
}

/// Where `needle` starts in `line` at or after character `from`, in characters.
fn find_from(line: &str, from: usize, needle: &str) -> Option<usize> {
    let byte_from = line.char_indices().nth(from).map_or(line.len(), |(i, _)| i);
    line[byte_from..].find(needle).map(|i| line[..byte_from + i].chars().count())
}

/// The parameter counts of every `fn name(...)` written in `text`.
fn defined_arities(text: &str, name: &str) -> Vec<usize> {
    let pattern = format!("fn {name}(");
    let mut out = Vec::new();
    for (at, _) in text.match_indices(&pattern) {
        let preceded_ok = text[..at].chars().next_back().is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
        let params = &text[at + pattern.len()..];
        let Some(close) = params.find(')') else { continue };
        if preceded_ok {
            let list = params[..close].trim();
            out.push(if list.is_empty() { 0 } else { list.split(',').count() });
        }
    }
    out
}

/// Where argument `index` of the call starting at character `call` of `line` begins,
/// in characters: after the call's `(` and `index` commas outside brackets and strings.
fn argument_start(line: &str, call: usize, index: usize) -> Option<usize> {
    let chars: Vec<char> = line.chars().collect();
    let open = (call..chars.len()).find(|&i| chars[i] == '(')?;
    let (mut depth, mut commas, mut quote) = (0usize, 0usize, None::<char>);
    let mut i = open + 1;
    if index == 0 {
        return (i..chars.len()).find(|&j| !chars[j].is_whitespace());
    }
    while i < chars.len() {
        let c = chars[i];
        match (quote, c) {
            (Some(_), '\\') => i += 1,
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '`' | '\'') => quote = Some(c),
            (None, '(' | '[' | '{') => depth += 1,
            (None, ')' | ']' | '}') if depth == 0 => return None,
            (None, ')' | ']' | '}') => depth -= 1,
            (None, ',') if depth == 0 => {
                commas += 1;
                if commas == index {
                    return (i + 1..chars.len()).find(|&j| !chars[j].is_whitespace());
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// The identifier that ends just before character `end` of `line` (skipping a `.`), and
/// where it starts.
fn ident_before(line: &str, end: usize) -> Option<(String, usize)> {
    let chars: Vec<char> = line.chars().take(end).collect();
    let mut stop = chars.len();
    while stop > 0 && (chars[stop - 1] == '.' || chars[stop - 1].is_whitespace()) {
        stop -= 1;
    }
    let mut start = stop;
    while start > 0 && (chars[start - 1].is_alphanumeric() || chars[start - 1] == '_') {
        start -= 1;
    }
    (start < stop).then(|| (chars[start..stop].iter().collect(), start))
}

impl Diagnostic {
    /// A diagnostic without a position.
    pub fn plain(message: impl Into<String>, hint: Option<String>) -> Diagnostic {
        Diagnostic {
            message: message.into(),
            file: None,
            position: Position::NONE,
            hint,
            chain: Vec::new(),
            focus: Box::default(),
        }
    }

    /// The diagnostic with its focus applied to the source: the caret moved onto the
    /// offending value, a missing property named.
    fn focused(&self, sources: &Sources) -> Diagnostic {
        let mut d = self.clone();
        d.focus = Box::default();
        if let (Focus::Runaway { recursion }, Some(file), true) = (&*self.focus, &self.file, self.position.is_none()) {
            let text = sources.text(file).unwrap_or_default();
            let (sites, what) = if *recursion { (self_calls(&text), "a call") } else { (loops(&text), "a loop") };
            match sites.as_slice() {
                [(pos, what)] => {
                    d.position = *pos;
                    let about = if *recursion {
                        format!("{what}, and every call went deeper")
                    } else {
                        "this loop never waited".to_string()
                    };
                    d.hint = Some(format!("{about}; {}", d.hint.clone().unwrap_or_default()));
                }
                [] => {}
                many => {
                    let lines: Vec<String> = many.iter().filter_map(|(p, _)| p.line()).map(|l| l.to_string()).collect();
                    d.hint = Some(format!(
                        "{what} on one of lines {} of {} never ended; {}",
                        lines.join(", "),
                        sources.display_name(file),
                        d.hint.clone().unwrap_or_default()
                    ));
                }
            }
            return d;
        }
        let (Some(file), Some(line_no)) = (&self.file, self.position.line()) else { return d };
        let Some(line) = sources.line(file, line_no) else { return d };
        let col = self.position.position().unwrap_or(1);
        match &*self.focus {
            Focus::Exact => {}
            Focus::Text { spanning, same_line } => {
                // Why 40 lines: an options map is rarely longer, and further away the
                // text is more likely someone else's.
                let below = (line_no + 1..line_no + 40).map_while(|n| sources.line(file, n).map(|l| (n, l)));
                let lines: Vec<(usize, String)> = std::iter::once((line_no, line.clone())).chain(below).collect();
                let found = spanning
                    .iter()
                    .find_map(|needle| {
                        lines.iter().find_map(|(n, text)| {
                            let from = if *n == line_no { col - 1 } else { 0 };
                            find_from(text, from, needle).map(|at| (*n, at))
                        })
                    })
                    .or_else(|| same_line.iter().find_map(|n| find_from(&line, col - 1, n)).map(|at| (line_no, at)));
                if let Some((n, at)) = found {
                    d.position = Position::new(n as u16, (at + 1) as u16);
                }
            }
            Focus::Argument(index) => {
                // `x.f()` has no argument written between its brackets (the first is `x`):
                // the call's own position stays.
                if let Some(at) = argument_start(&line, col - 1, *index)
                    && line.chars().nth(at).is_some_and(|c| c != ')')
                {
                    d.position = Position::new(line_no as u16, (at + 1) as u16);
                }
            }
            Focus::ScriptFunction { name, got } => {
                let text = sources.text(file).unwrap_or_default();
                let defined: Vec<usize> = defined_arities(&text, name);
                if !defined.is_empty() {
                    d.message = super::signatures::arity_message(name, &defined, *got);
                    d.hint = Some(super::signatures::script_arity_hint(name, &defined));
                }
            }
            Focus::Runaway { .. } => {}
            Focus::MissingProperty(prop) => {
                if let Some((missing, at)) = ident_before(&line, col - 1) {
                    d.message =
                        format!("property `{missing}` does not exist here (it is (), so `.{prop}` cannot be read)");
                    d.position = Position::new(line_no as u16, (at + 1) as u16);
                    let text = sources.text(file).unwrap_or_default();
                    let words: std::collections::BTreeSet<&str> = text
                        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                        .filter(|w| w.len() > 1)
                        .chain(KNOWN_PROPERTIES.iter().chain(super::validate::PHASE_RESULT_KEYS).copied())
                        .filter(|w| *w != missing)
                        .collect();
                    let hint = match super::opts::did_you_mean(&missing, words.iter().copied()) {
                        Some(best) => format!("did you mean `{best}`? "),
                        None => String::new(),
                    };
                    d.hint = Some(format!(
                        "{hint}a map returns () for a key it does not have; `type_of(x)` and `x.keys()` show what a value holds"
                    ));
                }
            }
        }
        d
    }

    /// Renders like a compiler: message, `--> file:line:col`, the line with a caret, hint.
    pub fn render(&self, sources: &Sources) -> String {
        let focused = self.focused(sources);
        let this = &focused;
        let mut out = format!("error: {}\n", this.message);
        if let Some(file) = &this.file {
            match (this.position.line(), this.position.position()) {
                (Some(line), col) => {
                    let col = col.unwrap_or(1);
                    out.push_str(&format!(" --> {}:{line}:{col}\n", sources.display_name(file)));
                    if let Some(text) = sources.line(file, line) {
                        let gutter = " ".repeat(line.to_string().len());
                        let pad = caret_pad(&text, col.saturating_sub(1));
                        out.push_str(&format!("{gutter} |\n{line} | {text}\n{gutter} | {pad}^\n"));
                    }
                }
                (None, _) => out.push_str(&format!(" --> {}\n", sources.display_name(file))),
            }
        }
        for frame in &this.chain {
            out.push_str(&format!("  = {frame}\n"));
        }
        if let Some(hint) = &this.hint {
            out.push_str(&format!("hint: {hint}\n"));
        }
        out
    }
}

/// Splits "message; hint: text" (how natives phrase hints) into its parts.
pub(crate) fn split_hint(text: &str) -> (String, Option<String>) {
    match text.split_once("; hint: ") {
        Some((m, h)) => (m.to_string(), Some(h.to_string())),
        None => (text.to_string(), None),
    }
}

fn describe_fn(name: &str) -> String {
    if name.starts_with("anon$") { "a closure".to_string() } else { format!("`{name}`") }
}

/// How to fix a syntax error (`past_end`: it was found after the file's last line).
fn parse_hint(err: &rhai::ParseErrorType, past_end: bool) -> Option<String> {
    match err {
        _ if past_end => {
            Some("the file ended before the statement did: check that every `{`, `(` and `[` is closed".to_string())
        }
        rhai::ParseErrorType::MissingToken(tok, _) if tok == ";" => Some("statements end with `;`".to_string()),
        rhai::ParseErrorType::UnknownOperator(op) if op == "=>" => {
            Some("map literals are written #{ key: value }".to_string())
        }
        rhai::ParseErrorType::MissingToken(tok, _) if tok == "}" || tok == ")" || tok == "]" => {
            Some(format!("a `{tok}` is missing: check the brackets opened before this point"))
        }
        _ => None,
    }
}

/// Turns a parse error into a diagnostic (`text` is the file's source).
pub fn from_parse_error(err: &ParseError, file: &str, text: &str) -> Diagnostic {
    let message = err.err_type().to_string();
    let past_end = err.position().line().is_some_and(|l| l > text.lines().count());
    let hint = parse_hint(err.err_type(), past_end);
    Diagnostic {
        message: format!("syntax error: {message}"),
        file: Some(file.to_string()),
        position: err.position(),
        hint,
        chain: Vec::new(),
        focus: Box::default(),
    }
}

/// Turns a runtime error (possibly nested in function calls and modules) into a
/// diagnostic pointing at the innermost position, with the chain back to the script.
pub fn from_eval_error(err: &EvalAltResult, main_file: &str, known_fns: &[String]) -> Diagnostic {
    let mut file = main_file.to_string();
    let mut chain = Vec::new();
    let mut current = err;
    loop {
        match current {
            EvalAltResult::ErrorInFunctionCall(name, source, inner, pos) => {
                if pos.is_none() && name.starts_with("anon$") {
                    chain.push("in the phase's function".to_string());
                } else {
                    chain.push(format!("in {} called at {}", describe_fn(name), location(&file, *pos)));
                }
                if !source.is_empty() {
                    file = source.clone();
                }
                current = inner;
            }
            EvalAltResult::ErrorInModule(path, inner, pos) => {
                chain.push(format!("in module \"{path}\" imported at {}", location(&file, *pos)));
                // Whatever went wrong inside the module is positioned in the module's file.
                file = path.clone();
                current = inner;
            }
            _ => break,
        }
    }
    chain.reverse();
    let chain = collapse_repeats(chain);
    let position = current.position();
    let text = current.to_string();
    let text = text.strip_suffix(&format!(" ({position})")).unwrap_or(&text).to_string();
    let text = super::signatures::runtime_text(&text).to_string();
    let (mut message, mut hint) = split_hint(&text);
    let mut focus = Focus::Exact;
    match current {
        EvalAltResult::ErrorFunctionNotFound(sig, _) => {
            let name = sig.split([' ', '(']).next().unwrap_or(sig);
            let args = super::signatures::argument_types(sig);
            let names = known_fns.iter().map(String::as_str);
            match (super::opts::did_you_mean(name, names), super::signatures::no_overload(name, sig)) {
                (_, Some((m, h, arg))) => {
                    if let Some(i) = arg {
                        focus = Focus::Argument(i);
                    } else if m.contains(" takes ") {
                        focus = Focus::Argument(super::signatures::most_arguments(name));
                    }
                    message = m;
                    hint = Some(h);
                }
                // A closure called with another number of arguments than it was written
                // with: Rhai names it by its internal name.
                _ if name.starts_with("anon$") => {
                    let n = args.len();
                    message = format!(
                        "a closure given here is called with {n} argument{}, but it was written with another number of parameters",
                        if n == 1 { "" } else { "s" }
                    );
                    let example = match n {
                        0 => "|| { ... }".to_string(),
                        1 => "|x| { ... }".to_string(),
                        n => format!("|{}| {{ ... }}", (1..=n).map(|i| format!("a{i}")).collect::<Vec<_>>().join(", ")),
                    };
                    hint = Some(format!(
                        "write the closure with {n} parameter{}: {example}",
                        if n == 1 { "" } else { "s" }
                    ));
                }
                (Some(s), None) if s != name => {
                    message = format!("unknown function: {name} ({})", args.join(", "));
                    hint = Some(format!("did you mean `{s}`?"));
                    focus = Focus::ScriptFunction { name: name.to_string(), got: args.len() };
                }
                _ if known_fns.iter().any(|f| f == name) => {
                    message = format!("{name} cannot take ({})", args.join(", "));
                    hint = Some(
                        "the function exists, but not with these argument types; see `volley check --list-functions`"
                            .to_string(),
                    );
                }
                _ => {
                    message = format!("unknown function: {name} ({})", args.join(", "));
                    hint = Some("see `volley check --list-functions` for every function".to_string());
                    // Perhaps the script's own function, called with the wrong count.
                    focus = Focus::ScriptFunction { name: name.to_string(), got: args.len() };
                }
            }
        }
        EvalAltResult::ErrorDotExpr(text, _) if text.ends_with("a getter is not registered for type '()'") => {
            if let Some(prop) = text.strip_prefix("Unknown property '").and_then(|t| t.split('\'').next()) {
                focus = Focus::MissingProperty(prop.to_string());
            }
        }
        EvalAltResult::ErrorRuntime(..) => {
            let (spanning, same_line) = focus_candidates(&message);
            focus = Focus::Text { spanning, same_line };
        }
        EvalAltResult::ErrorVariableNotFound(name, _) => {
            hint = Some(format!(
                "`{name}` is not defined here; functions declared with `fn` cannot see top-level variables: pass `{name}` as a parameter or use a closure `|| ...`"
            ));
        }
        EvalAltResult::ErrorTerminated(token, _) if token.to_string() == super::bridge::INTERRUPTED_TOKEN => {
            message = "interrupted".to_string();
        }
        EvalAltResult::ErrorTerminated(token, _) => {
            message = token.to_string();
            hint = hint
                .or(Some("a loop that never waits blocks its worker; add a sleep, or an exit condition".to_string()));
            focus = Focus::Runaway { recursion: false };
        }
        EvalAltResult::ErrorTooManyOperations(_) => {
            hint = hint
                .or(Some("a loop that never waits blocks its worker; add a sleep, or an exit condition".to_string()));
            focus = Focus::Runaway { recursion: false };
        }
        EvalAltResult::ErrorModuleNotFound(name, _) => {
            focus = Focus::Text { spanning: Vec::new(), same_line: vec![format!("\"{name}\"")] };
            message = format!("module \"{name}\" not found");
            hint = Some("import paths are relative to the script's directory or to stdlib/, without .rhai (e.g. import \"focus\" as focus;)".to_string());
        }
        EvalAltResult::ErrorDataTooLarge(what, _) => {
            let lower = what.to_ascii_lowercase();
            let limit = if lower.contains("array") {
                format!("an array holds at most {} items", super::MAX_ARRAY)
            } else if lower.contains("map") {
                format!("a map holds at most {} entries", super::MAX_MAP)
            } else {
                format!("a string holds at most {} MiB", super::MAX_STRING / (1024 * 1024))
            };
            message = format!("{what} is over volley's limit: {limit}");
            hint = Some("keep large data out of script values: give requests a `max_body` or `discard_body: true`, and build strings and arrays in bounded pieces".to_string());
        }
        // A module's syntax error, read as the script's own are.
        EvalAltResult::ErrorParsing(err, _) => {
            message = format!("syntax error: {err}");
            hint = parse_hint(err, false);
        }
        EvalAltResult::ErrorStackOverflow(_) => {
            hint = Some("recursion is limited to 32 levels in volley scripts".to_string());
            focus = Focus::Runaway { recursion: true };
        }
        _ => {}
    }
    if message.is_empty() {
        message = "script error".to_string();
    }
    Diagnostic { message, file: Some(file), position, hint, chain, focus: Box::new(focus) }
}

/// What a native's error message names, most precise first. For a list of option
/// problems (`  - stages[1].traget: ...`), the first problem's quoted value, its key's
/// last part then its first (`traget:`, `stages:`), then the map: these may be on the
/// lines below the call. Then each quoted value of the message, on the call's line.
fn focus_candidates(message: &str) -> (Vec<String>, Vec<String>) {
    let mut spanning = Vec::new();
    let (head, problems) = match message.split_once("\n  - ") {
        Some((head, rest)) => (head, Some(rest)),
        None => (message, None),
    };
    if let Some(rest) = problems {
        let first = rest.lines().next().unwrap_or("");
        spanning.extend(quoted(first));
        let path = first.split(": ").next().unwrap_or("");
        let word = |s: &str| -> String { s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect() };
        let last = word(path.rsplit(['.', ']']).next().unwrap_or(""));
        for key in [last, word(path)] {
            if !key.is_empty() && !spanning.contains(&format!("{key}:")) {
                spanning.push(format!("{key}:"));
                spanning.push(format!("{key} :"));
            }
        }
        // A missing option has nothing to point at but the map that lacks it.
        spanning.push("#{".to_string());
    }
    // Values quoted after the subject (`phase "p": ...`, `sleep: ...`) come first.
    let mut same_line = head.split_once(": ").map(|(_, rest)| quoted(rest)).unwrap_or_default();
    for q in quoted(head) {
        if !same_line.contains(&q) {
            same_line.push(q);
        }
    }
    (spanning, same_line)
}

/// A file's text parsed as written (no optimizer folding), for finding statements.
pub(crate) fn parse_as_written(text: &str) -> Option<rhai::AST> {
    let mut engine = rhai::Engine::new_raw();
    engine.set_max_expr_depths(super::MAX_EXPR_DEPTH, super::MAX_FN_EXPR_DEPTH);
    engine.set_optimization_level(rhai::OptimizationLevel::None);
    engine.compile(text).ok()
}

/// Where the script functions of `text` recurse: each call of a function from one it
/// leads back to (itself, or through others), with what to say of it.
fn self_calls(text: &str) -> Vec<(Position, String)> {
    let Some(ast) = parse_as_written(text) else { return Vec::new() };
    /// (line, column), comparable.
    type At = (usize, usize);
    let at = |p: Position| -> At { (p.line().unwrap_or(0), p.position().unwrap_or(0)) };
    let bodies: Vec<(String, At, At)> = ast
        .iter_fn_def()
        .map(|f| (f.name.to_string(), at(f.body.start_position()), at(f.body.end_position())))
        .collect();
    // Calls between script functions: (caller, callee, where).
    let mut calls: Vec<(String, String, Position)> = Vec::new();
    ast.walk(&mut |path: &[rhai::ASTNode]| {
        let (call, pos) = match path.last() {
            Some(rhai::ASTNode::Expr(rhai::Expr::FnCall(c, p)))
            | Some(rhai::ASTNode::Stmt(rhai::Stmt::FnCall(c, p))) => (c, *p),
            _ => return true,
        };
        let here = at(pos);
        // The innermost body around the call is its caller.
        let caller = bodies.iter().filter(|(_, s, e)| *s <= here && here <= *e).max_by_key(|(_, s, _)| *s);
        if let Some((caller, _, _)) = caller
            && call.namespace.is_empty()
            && bodies.iter().any(|(name, _, _)| name == call.name.as_str())
        {
            calls.push((caller.clone(), call.name.to_string(), pos));
        }
        true
    });
    // Whether `from` leads to `to` through calls.
    let leads = |from: &str, to: &str| {
        let mut seen: Vec<&str> = vec![from];
        let mut todo = vec![from];
        while let Some(f) = todo.pop() {
            for (_, callee, _) in calls.iter().filter(|(caller, _, _)| caller == f) {
                if callee == to {
                    return true;
                }
                if !seen.contains(&callee.as_str()) {
                    seen.push(callee);
                    todo.push(callee);
                }
            }
        }
        false
    };
    let recursive: Vec<&(String, String, Position)> =
        calls.iter().filter(|(caller, callee, _)| caller == callee || leads(callee, caller)).collect();
    // One cycle of functions calling each other (`a` -> `b` -> `a`): its first call says
    // it. Several separate ones: each is a candidate.
    let one_cycle = recursive.iter().all(|(a, _, _)| recursive.iter().all(|(b, _, _)| a == b || leads(a, b)));
    let shown = if one_cycle { &recursive[..recursive.len().min(1)] } else { &recursive[..] };
    shown
        .iter()
        .map(|(caller, callee, pos)| {
            let what = if caller == callee {
                format!("`{caller}` calls itself here")
            } else {
                format!("`{caller}` calls `{callee}` here, which leads back to `{caller}`")
            };
            (*pos, what)
        })
        .collect()
}

/// Where `text`'s loops (`loop`, `while`, `do`, `for`) start.
fn loops(text: &str) -> Vec<(Position, String)> {
    let Some(ast) = parse_as_written(text) else { return Vec::new() };
    let mut out = Vec::new();
    ast.walk(&mut |path: &[rhai::ASTNode]| {
        if let Some(rhai::ASTNode::Stmt(
            rhai::Stmt::While(_, pos) | rhai::Stmt::Do(_, _, pos) | rhai::Stmt::For(_, pos),
        )) = path.last()
        {
            out.push((*pos, String::new()));
        }
        true
    });
    out
}

/// Runs of the same frame (deep recursion, nested imports) shown once, with a count.
fn collapse_repeats(chain: Vec<String>) -> Vec<String> {
    let mut out: Vec<(String, usize)> = Vec::new();
    for frame in chain {
        match out.last_mut() {
            Some((last, n)) if *last == frame => *n += 1,
            _ => out.push((frame, 1)),
        }
    }
    out.into_iter().map(|(f, n)| if n == 1 { f } else { format!("{f} ({n} times)") }).collect()
}

fn location(file: &str, pos: Position) -> String {
    match (pos.line(), pos.position()) {
        (Some(l), Some(c)) => format!("{file}:{l}:{c}"),
        (Some(l), None) => format!("{file}:{l}"),
        _ => file.to_string(),
    }
}

/// Every `"quoted"` part of a message, with its quotes.
fn quoted(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find('"') {
        let after = &rest[start + 1..];
        let Some(end) = after.find('"') else { break };
        if end > 0 {
            out.push(format!("\"{}\"", &after[..end]));
        }
        rest = &after[end + 1..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_functions_are_found_with_their_parameters() {
        let text = "fn login(user, password) { 1 }\nfn ping() {}\nfn xlogin(a) {}\n";
        assert_eq!(defined_arities(text, "login"), [2]);
        assert_eq!(defined_arities(text, "ping"), [0]);
        assert_eq!(defined_arities(text, "nope"), Vec::<usize>::new());
    }

    #[test]
    fn the_caret_counts_display_cells() {
        assert_eq!(caret_pad("ab", 2), "  ");
        assert_eq!(caret_pad("🚀x", 2), "   ", "an emoji takes two cells");
        assert_eq!(caret_pad("日本", 2), "    ");
        assert_eq!(caret_pad("\tx", 2), "\t ");
        assert_eq!(caret_pad("e\u{301}x", 3), "  ", "a combining accent takes none");
    }

    #[test]
    fn arguments_are_found_outside_brackets_and_strings() {
        let line = r#"    sleep("a, b", [1, 2], #{ x: (1, 2) }, "3s");"#;
        assert_eq!(argument_start(line, 4, 0), Some(10));
        assert_eq!(argument_start(line, 4, 1), Some(18));
        assert_eq!(argument_start(line, 4, 2), Some(26));
        assert_eq!(argument_start(line, 4, 3), Some(42));
        assert_eq!(argument_start(line, 4, 4), None);
    }

    #[test]
    fn focus_prefers_the_option_key_then_quoted_values() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let m = "phase \"p\": invalid options (1 problem)\n  - rate: must not be negative, got -5";
        assert_eq!(focus_candidates(m), (s(&["rate:", "rate :", "#{"]), s(&["\"p\""])));
        let m = "phase \"p\": invalid options (2 problems)\n  - executor: unknown executor \"x\"\n  - a: \"b\"";
        assert_eq!(focus_candidates(m), (s(&["\"x\"", "executor:", "executor :", "#{"]), s(&["\"p\""])));
        let m = "phase \"p\": invalid options (1 problem)\n  - stages[1].traget: unknown stage option";
        assert_eq!(focus_candidates(m).0, s(&["traget:", "traget :", "stages:", "stages :", "#{"]));
        assert_eq!(focus_candidates("sleep: invalid duration \"5 parsecs\": no"), (s(&[]), s(&["\"5 parsecs\""])));
        let m = "phase \"p\": iteration_timeout: invalid duration \"-1s\": no";
        assert_eq!(focus_candidates(m).1, s(&["\"-1s\"", "\"p\""]));
    }
}
