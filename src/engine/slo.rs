//! SLO files: thresholds kept outside the script, with per-environment overrides
//! (`--slo slo.toml --environment production`), and optional grading bands. Their
//! thresholds are judged after the run like the script's own, with the origin
//! `slo.toml [production]` (or `[default]` for the base table).
//!
//! ```toml
//! [thresholds]
//! http_req_duration = "p(95) < 500"
//! "http_req_failed" = ["rate < 0.01"]
//!
//! [environments.production.thresholds]     # replaces the same selector, adds others
//! http_req_duration = "p(95) < 300"
//!
//! [grades]                                  # optional, see report::grade
//! excellent = { p95_ms = 100, error_rate = 0.001 }
//! ```

use crate::metrics::{Condition, Selector};
use crate::report::grade::{Band, Bands};
use crate::script::judge::DeclaredThreshold;
use std::path::Path;

/// A loaded SLO file for one environment.
#[derive(Debug)]
pub struct Slo {
    /// Thresholds, in file order (base, then the environment's new ones).
    pub thresholds: Vec<DeclaredThreshold>,
    /// Grading bands (defaults unless `[grades]` says otherwise).
    pub bands: Bands,
}

fn conditions(v: &toml::Value) -> Option<Vec<String>> {
    match v {
        toml::Value::String(s) => Some(vec![s.clone()]),
        toml::Value::Array(a) => a.iter().map(|x| x.as_str().map(str::to_string)).collect(),
        _ => None,
    }
}

fn table<'a>(v: &'a toml::Value, key: &str) -> Option<&'a toml::Table> {
    v.get(key).and_then(toml::Value::as_table)
}

/// Loads `path` for `environment`, reporting every bad line at once.
pub fn load(path: &Path, environment: Option<&str>) -> Result<Slo, String> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read SLO file {file}: {e}"))?;
    parse(&text, &file, environment)
}

/// Reads an SLO file's text (`file` names it in messages) for `environment`.
pub fn parse(text: &str, file: &str, environment: Option<&str>) -> Result<Slo, String> {
    let file = file.to_string();
    let doc: toml::Value = toml::from_str(text).map_err(|e| format!("{file}: {e}"))?;
    let envs = table(&doc, "environments");
    let env_doc = match environment {
        None => None,
        Some(name) => {
            let names: Vec<&str> = envs.map(|t| t.keys().map(String::as_str).collect()).unwrap_or_default();
            match envs.and_then(|t| t.get(name)) {
                Some(v) => Some(v),
                None => {
                    let hint = match crate::script::opts::did_you_mean(name, names.iter().copied()) {
                        Some(n) => format!("did you mean `{n}`?"),
                        None if names.is_empty() => "the file has no [environments.NAME] tables".to_string(),
                        None => format!("environments: {}", names.join(", ")),
                    };
                    return Err(format!("{file}: no environment `{name}`; hint: {hint}"));
                }
            }
        }
    };
    let base_name = Path::new(&file).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or(file.clone());
    // (selector text, conditions, origin), the environment replacing the same selector.
    let mut entries: Vec<(String, toml::Value, String)> = Vec::new();
    if let Some(t) = table(&doc, "thresholds") {
        for (k, v) in t {
            entries.push((k.clone(), v.clone(), format!("{base_name} [default]")));
        }
    }
    if let (Some(env), Some(name)) = (env_doc, environment)
        && let Some(t) = table(env, "thresholds")
    {
        for (k, v) in t {
            let origin = format!("{base_name} [{name}]");
            match entries.iter_mut().find(|e| e.0.trim() == k.trim()) {
                Some(e) => *e = (k.clone(), v.clone(), origin),
                None => entries.push((k.clone(), v.clone(), origin)),
            }
        }
    }
    let mut errors = Vec::new();
    let mut thresholds = Vec::new();
    for (sel, v, origin) in entries {
        let selector = match Selector::parse(&sel) {
            Ok(s) => s,
            Err(e) => {
                errors.push(format!("{origin}: {e}"));
                continue;
            }
        };
        let Some(texts) = conditions(&v) else {
            errors.push(format!("{origin}: `{sel}`: expected a condition string or a list of them"));
            continue;
        };
        let mut conds = Vec::new();
        for t in texts {
            match Condition::parse(&t) {
                Ok(c) => conds.push(c),
                Err(e) => errors.push(format!("{origin}: `{sel}`: {e}")),
            }
        }
        thresholds.push(DeclaredThreshold {
            selector,
            conditions: conds,
            origin,
            case: None,
            abort_on_fail: false,
            delay: std::time::Duration::ZERO,
            recorded_before: false,
        });
    }
    let mut bands = Bands::default();
    for grades in [table(&doc, "grades"), env_doc.and_then(|e| table(e, "grades"))].into_iter().flatten() {
        for (k, v) in grades {
            let band: Result<Band, _> = v.clone().try_into();
            let slot = match k.as_str() {
                "excellent" => &mut bands.excellent,
                "good" => &mut bands.good,
                "acceptable" => &mut bands.acceptable,
                other => {
                    errors.push(format!("{file}: [grades] unknown band `{other}`; bands: excellent, good, acceptable"));
                    continue;
                }
            };
            match band {
                Ok(b) => *slot = b,
                Err(e) => errors.push(format!("{file}: [grades] {k}: expected {{ p95_ms = N, error_rate = R }}: {e}")),
            }
        }
    }
    if errors.is_empty() { Ok(Slo { thresholds, bands }) } else { Err(errors.join("\n")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
[thresholds]
http_req_duration = "p(95) < 500"
http_req_failed = ["rate < 0.05"]

[environments.staging.thresholds]
http_req_duration = "p(95) < 800"

[environments.production.thresholds]
http_req_duration = ["p(95) < 300", "p(99) < 600"]
"http_reqs{name:login}" = "count > 10"

[environments.production.grades]
excellent = { p95_ms = 50, error_rate = 0.0 }
"#;

    fn load_env(env: Option<&str>) -> Result<Slo, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("slo.toml");
        std::fs::write(&path, FILE).unwrap();
        load(&path, env)
    }

    fn summary(slo: &Slo) -> Vec<String> {
        slo.thresholds
            .iter()
            .map(|t| {
                let c: Vec<String> = t.conditions.iter().map(|c| c.to_string()).collect();
                format!("{} {} <- {}", t.selector, c.join(" && "), t.origin)
            })
            .collect()
    }

    #[test]
    fn environments_override_the_same_selector_and_add_others() {
        assert_eq!(
            summary(&load_env(None).unwrap()),
            [
                "http_req_duration p(95) < 500 <- slo.toml [default]",
                "http_req_failed rate < 0.05 <- slo.toml [default]"
            ]
        );
        let prod = load_env(Some("production")).unwrap();
        assert_eq!(
            summary(&prod),
            [
                "http_req_duration p(95) < 300 && p(99) < 600 <- slo.toml [production]",
                "http_req_failed rate < 0.05 <- slo.toml [default]",
                "http_reqs{name:login} count > 10 <- slo.toml [production]",
            ]
        );
        assert_eq!(prod.bands.excellent.p95_ms, 50.0);
        assert_eq!(
            summary(&load_env(Some("staging")).unwrap())[0],
            "http_req_duration p(95) < 800 <- slo.toml [staging]"
        );
        let e = load_env(Some("prod")).unwrap_err();
        assert!(e.ends_with("no environment `prod`; hint: did you mean `production`?"), "{e}");
    }

    #[test]
    fn every_bad_entry_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("slo.toml");
        std::fs::write(
            &path,
            "[thresholds]\nhttp_req_duration = \"p(95) <> 3\"\n\"x{\" = \"count > 1\"\nhttp_reqs = 5\n",
        )
        .unwrap();
        let e = load(&path, None).unwrap_err();
        assert_eq!(e.lines().count(), 3, "{e}");
    }
}
