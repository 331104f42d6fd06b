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
                    .find_map(|p| std::fs::read_to_string(&p).ok().map(|t| (p.display().to_string(), t)))
            })
            .clone()
    }

    /// The path to show for a source name.
    pub fn display_name(&self, name: &str) -> String {
        self.file(name).map(|(path, _)| path).unwrap_or_else(|| name.to_string())
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
}

impl Diagnostic {
    /// A diagnostic without a position.
    pub fn plain(message: impl Into<String>, hint: Option<String>) -> Diagnostic {
        Diagnostic { message: message.into(), file: None, position: Position::NONE, hint, chain: Vec::new() }
    }

    /// Renders like a compiler: message, `--> file:line:col`, the line with a caret, hint.
    pub fn render(&self, sources: &Sources) -> String {
        let mut out = format!("error: {}\n", self.message);
        if let Some(file) = &self.file {
            match (self.position.line(), self.position.position()) {
                (Some(line), col) => {
                    let col = col.unwrap_or(1);
                    out.push_str(&format!(" --> {}:{line}:{col}\n", sources.display_name(file)));
                    if let Some(text) = sources.line(file, line) {
                        let gutter = " ".repeat(line.to_string().len());
                        let pad: String = text
                            .chars()
                            .take(col.saturating_sub(1))
                            .map(|c| if c == '\t' { '\t' } else { ' ' })
                            .collect();
                        out.push_str(&format!("{gutter} |\n{line} | {text}\n{gutter} | {pad}^\n"));
                    }
                }
                (None, _) => out.push_str(&format!(" --> {}\n", sources.display_name(file))),
            }
        }
        for frame in &self.chain {
            out.push_str(&format!("  = {frame}\n"));
        }
        if let Some(hint) = &self.hint {
            out.push_str(&format!("hint: {hint}\n"));
        }
        out
    }
}

/// Splits "message; hint: text" (how natives phrase hints) into its parts.
fn split_hint(text: &str) -> (String, Option<String>) {
    match text.split_once("; hint: ") {
        Some((m, h)) => (m.to_string(), Some(h.to_string())),
        None => (text.to_string(), None),
    }
}

fn describe_fn(name: &str) -> String {
    if name.starts_with("anon$") { "a closure".to_string() } else { format!("`{name}`") }
}

/// Turns a parse error into a diagnostic (`text` is the file's source).
pub fn from_parse_error(err: &ParseError, file: &str, text: &str) -> Diagnostic {
    let message = err.err_type().to_string();
    let past_end = err.position().line().is_some_and(|l| l > text.lines().count());
    let hint = match err.err_type() {
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
    };
    Diagnostic {
        message: format!("syntax error: {message}"),
        file: Some(file.to_string()),
        position: err.position(),
        hint,
        chain: Vec::new(),
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
                if let EvalAltResult::ErrorParsing(_, _) = &**inner {
                    file = path.clone();
                }
                current = inner;
            }
            _ => break,
        }
    }
    chain.reverse();
    let position = current.position();
    let text = current.to_string();
    let text = text.strip_suffix(&format!(" ({position})")).unwrap_or(&text).to_string();
    let text = text.strip_prefix("Runtime error: ").unwrap_or(&text).to_string();
    let (mut message, mut hint) = split_hint(&text);
    match current {
        EvalAltResult::ErrorFunctionNotFound(sig, _) => {
            let name = sig.split([' ', '(']).next().unwrap_or(sig);
            let names = known_fns.iter().map(String::as_str);
            hint = Some(match super::opts::did_you_mean(name, names) {
                Some(s) if s != name => format!("did you mean `{s}`?"),
                _ if known_fns.iter().any(|f| f == name) => {
                    "the function exists, but not with these argument types; see `volley check --list-functions`"
                        .to_string()
                }
                _ => "see `volley check --list-functions` for every function".to_string(),
            });
            message = format!("unknown function: {sig}");
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
        }
        EvalAltResult::ErrorTooManyOperations(_) => {
            hint = hint
                .or(Some("a loop that never waits blocks its worker; add a sleep, or an exit condition".to_string()));
        }
        EvalAltResult::ErrorModuleNotFound(name, _) => {
            message = format!("module \"{name}\" not found");
            hint = Some("import paths are relative to the script's directory or to stdlib/, without .rhai (e.g. import \"focus\" as focus;)".to_string());
        }
        EvalAltResult::ErrorStackOverflow(_) => {
            hint = Some("recursion is limited to 32 levels in volley scripts".to_string());
        }
        _ => {}
    }
    if message.is_empty() {
        message = "script error".to_string();
    }
    Diagnostic { message, file: Some(file), position, hint, chain }
}

fn location(file: &str, pos: Position) -> String {
    match (pos.line(), pos.position()) {
        (Some(l), Some(c)) => format!("{file}:{l}:{c}"),
        (Some(l), None) => format!("{file}:{l}"),
        _ => file.to_string(),
    }
}
