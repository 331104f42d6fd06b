//! Suites: finding scripts under paths, reading their header (id, title, tags, nominal
//! duration, purpose) without running them, and selecting them by tag expression or id.

use crate::tagexpr::TagExpr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What a script's header says about it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ScriptMeta {
    /// The file.
    pub path: PathBuf,
    /// `// id: PZ-14953` (the file name when absent).
    pub id: String,
    /// `// title: ...`.
    pub title: String,
    /// `// tags: load, alerts`.
    pub tags: Vec<String>,
    /// `// duration: 5m`: nominal, unscaled.
    #[serde(serialize_with = "ser_duration")]
    pub duration: Option<Duration>,
    /// `// purpose: ...`.
    pub purpose: String,
}

fn ser_duration<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_f64(d.as_secs_f64()),
        None => s.serialize_none(),
    }
}

/// A problem with a header line.
#[derive(Debug, Clone, PartialEq)]
pub struct MetaError {
    /// The file.
    pub path: String,
    /// 1-based line.
    pub line: usize,
    /// What was wrong.
    pub message: String,
}

impl std::fmt::Display for MetaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Line 0: the file itself could not be read; the message names it.
        match self.line {
            0 => write!(f, "{}", self.message),
            line => write!(f, "{}:{line}: {}", self.path, self.message),
        }
    }
}

impl std::error::Error for MetaError {}

const KEYS: &[&str] = &["id", "title", "tags", "duration", "purpose"];

/// Reads the leading `// key: value` comment block of a script.
pub fn read_meta(path: &Path) -> Result<ScriptMeta, MetaError> {
    // The script reader: UTF-8 only, a byte-order mark accepted.
    let text = crate::script::modules::read_text(path).map_err(|e| MetaError {
        path: path.display().to_string(),
        line: 0,
        message: format!("{e}; hint: {}", e.hint()),
    })?;
    parse_meta(path, &text)
}

/// Parses a header from a script's text.
pub fn parse_meta(path: &Path, text: &str) -> Result<ScriptMeta, MetaError> {
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let mut meta = ScriptMeta {
        path: path.to_path_buf(),
        id: stem,
        title: String::new(),
        tags: Vec::new(),
        duration: None,
        purpose: String::new(),
    };
    for (i, line) in text.lines().enumerate() {
        let Some(comment) = line.trim_start().strip_prefix("//") else { break };
        let Some((key, value)) = comment.trim().split_once(':') else { continue };
        let (key, value) = (key.trim(), value.trim());
        let err = |message: String| MetaError { path: path.display().to_string(), line: i + 1, message };
        match key {
            "id" => meta.id = value.to_string(),
            "title" => meta.title = value.to_string(),
            "purpose" => meta.purpose = value.to_string(),
            "tags" => {
                meta.tags = value.split(',').map(|t| t.trim().to_string()).filter(|t| !t.is_empty()).collect();
                // Every tag must be selectable by a `--tags` expression.
                for t in &meta.tags {
                    let word = t.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
                    if !word || matches!(t.as_str(), "and" | "or" | "not") {
                        return Err(err(format!(
                            "tag {t:?} cannot be selected with --tags; tags are words of letters, digits, - and _ (not and/or/not), separated by commas"
                        )));
                    }
                }
            }
            "duration" => {
                meta.duration =
                    Some(crate::duration::parse_duration(value).map_err(|e| err(format!("header `duration`: {e}")))?)
            }
            k if k.chars().all(|c| c.is_ascii_lowercase() || c == '_') && !k.is_empty() => {
                let hint = crate::script::opts::did_you_mean(k, KEYS.iter().copied())
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
                if hint.is_empty() {
                    continue; // an ordinary comment that happens to contain a colon
                }
                return Err(err(format!("unknown header key `{k}`{hint}; header keys are {}", KEYS.join(", "))));
            }
            _ => {}
        }
    }
    Ok(meta)
}

/// Every `.rhai` script under the given files and directories (directories recursively,
/// sorted by path; `stdlib` directories are modules, not scripts, and are skipped).
pub fn discover(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found = Vec::new();
            walk(p, &mut found).map_err(|e| format!("cannot read directory {}: {e}", p.display()))?;
            found.sort();
            out.extend(found);
        } else if p.exists() {
            out.push(p.clone());
        } else {
            return Err(format!("no such file or directory: {}", p.display()));
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "stdlib" && !n.to_string_lossy().starts_with('.')) {
                walk(&path, out)?;
            }
        } else if path.extension().is_some_and(|e| e == "rhai") {
            out.push(path);
        }
    }
    Ok(())
}

/// Which scripts to run: a tag expression and/or ids (either matching selects).
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// `--tags "load or performance"`.
    pub tags: Option<TagExpr>,
    /// `--id PZ-14802` (repeatable).
    pub ids: Vec<String>,
}

impl Selection {
    /// Whether a script is selected (everything when nothing was asked).
    pub fn selects(&self, meta: &ScriptMeta) -> bool {
        let by_tags = self.tags.as_ref().map(|t| t.matches(&meta.tags));
        let by_id = (!self.ids.is_empty()).then(|| self.ids.iter().any(|i| i.eq_ignore_ascii_case(&meta.id)));
        match (by_tags, by_id) {
            (None, None) => true,
            (Some(t), None) => t,
            (None, Some(i)) => i,
            (Some(t), Some(i)) => t && i,
        }
    }
}

/// Finds, reads and selects scripts; every header problem is reported at once.
pub fn select(paths: &[PathBuf], selection: &Selection) -> Result<Vec<ScriptMeta>, String> {
    let mut metas = Vec::new();
    let mut errors = Vec::new();
    for path in discover(paths)? {
        match read_meta(&path) {
            Ok(m) if selection.selects(&m) => metas.push(m),
            Ok(_) => {}
            Err(e) => errors.push(e.to_string()),
        }
    }
    errors.extend(duplicate_ids(&metas));
    if !errors.is_empty() {
        return Err(errors.join("\n"));
    }
    Ok(metas)
}

/// Scripts that share an id (compared as ids are selected, ignoring case): one message
/// per id, naming the files. An id names a script's results (report files, JUnit cases,
/// the suite table), so one script's would replace another's.
pub fn duplicate_ids(metas: &[ScriptMeta]) -> Vec<String> {
    let mut by_id: std::collections::BTreeMap<String, Vec<&ScriptMeta>> = Default::default();
    for m in metas {
        by_id.entry(m.id.to_ascii_lowercase()).or_default().push(m);
    }
    by_id
        .values()
        .filter(|same| same.len() > 1)
        .map(|same| {
            let files: Vec<String> = same.iter().map(|m| m.path.display().to_string()).collect();
            format!(
                "{} scripts have the id {}: {}; hint: an id names a script's results (report files, JUnit cases), so each needs its own `// id:` line (without one, the file name is the id)",
                same.len(),
                same[0].id,
                files.join(", ")
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_sharing_an_id_are_named_together() {
        let meta = |path: &str, text: &str| parse_meta(Path::new(path), text).unwrap();
        let metas = [
            meta("dup/a.rhai", "// id: X-1\n"),
            meta("dup/b.rhai", "// id: x-1\n"),
            meta("one/smoke.rhai", ""),
            meta("two/smoke.rhai", ""),
            meta("c.rhai", "// id: X-2\n"),
        ];
        let said = duplicate_ids(&metas);
        assert_eq!(said.len(), 2, "{said:?}");
        assert!(said[0].starts_with("2 scripts have the id smoke: one/smoke.rhai, two/smoke.rhai"), "{}", said[0]);
        assert!(said[1].starts_with("2 scripts have the id X-1: dup/a.rhai, dup/b.rhai; hint:"), "{}", said[1]);
        assert!(duplicate_ids(&metas[2..3]).is_empty());
    }

    #[test]
    fn reads_the_header_block() {
        let text = "// id: PZ-14802\n// title: Peak load\n// tags: load, api\n// duration: 1m\n// purpose: 600 requests\nlet x = 1;\n// id: ignored after code\n";
        let m = parse_meta(Path::new("scripts/focus/pz.rhai"), text).unwrap();
        assert_eq!((m.id.as_str(), m.title.as_str()), ("PZ-14802", "Peak load"));
        assert_eq!(m.tags, ["load", "api"]);
        assert_eq!(m.duration, Some(Duration::from_secs(60)));
    }

    #[test]
    fn header_typos_are_errors_with_the_line() {
        let e = parse_meta(Path::new("a.rhai"), "// id: X\n// tgas: load\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "a.rhai:2: unknown header key `tgas` (did you mean `tags`?); header keys are id, title, tags, duration, purpose"
        );
        let e = parse_meta(Path::new("a.rhai"), "// duration: soon\n").unwrap_err();
        assert!(e.to_string().starts_with("a.rhai:1: header `duration`: invalid duration \"soon\""), "{e}");
    }

    #[test]
    fn tags_must_be_selectable() {
        let e = parse_meta(Path::new("a.rhai"), "// tags: load, high volume\n").unwrap_err();
        assert!(e.to_string().starts_with("a.rhai:1: tag \"high volume\" cannot be selected with --tags"), "{e}");
        assert!(parse_meta(Path::new("a.rhai"), "// tags: load, not\n").is_err());
        assert!(parse_meta(Path::new("a.rhai"), "// tags: load, pz-13771, slow_ci\n").is_ok());
    }

    #[test]
    fn selection_by_tags_and_ids() {
        let m = parse_meta(Path::new("a.rhai"), "// id: PZ-1\n// tags: load, alerts\n").unwrap();
        let tags = |t: &str| Selection { tags: Some(TagExpr::parse(t).unwrap()), ids: vec![] };
        assert!(tags("load or performance").selects(&m));
        assert!(!tags("performance").selects(&m));
        assert!(tags("alerts and not slow").selects(&m));
        assert!(Selection { tags: None, ids: vec!["pz-1".into()] }.selects(&m));
        assert!(!Selection { tags: None, ids: vec!["PZ-2".into()] }.selects(&m));
        assert!(Selection::default().selects(&m));
    }
}
