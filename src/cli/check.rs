//! `volley check PATH...`: compile every script and the modules it imports, validate
//! what can be known without traffic, and report every problem in every file at once.
//! `--list-functions` prints every script-facing function with its documentation.

use crate::script::{self, check, diagnostics::Diagnostic};
use std::path::PathBuf;
use std::time::Instant;

/// Options of `volley check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Files or directories to check.
    #[arg(value_name = "PATH", required_unless_present = "list_functions")]
    pub paths: Vec<PathBuf>,
    /// Print every script-facing function with its signature and example, then exit.
    #[arg(long)]
    pub list_functions: bool,
}

/// Runs `volley check`; exit 0 when clean, 107 when a problem was found, 2 on bad paths
/// and on files that cannot be read as text (as `volley run` does).
pub fn execute(args: CheckArgs) -> i32 {
    if args.list_functions {
        print!("{}", list_functions());
        return 0;
    }
    let started = Instant::now();
    let scripts = match crate::suite::discover(&args.paths) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let mut problems = 0;
    let mut unreadable = false;
    let mut modules_checked = std::collections::BTreeSet::new();
    // The headers read, for ids shared between scripts.
    let mut metas = Vec::new();
    let mut runs_nothing = Vec::new();
    for path in &scripts {
        let mut diags: Vec<Diagnostic> = Vec::new();
        // One error for a file that is not text, not one per reader.
        let text = match script::modules::read_text(path) {
            Ok(text) => text,
            Err(e) => {
                eprintln!("{}", Diagnostic::plain(e.to_string(), Some(e.hint().into())).render(&Default::default()));
                unreadable = true;
                problems += 1;
                continue;
            }
        };
        match crate::suite::parse_meta(path, &text) {
            Ok(meta) => metas.push(meta),
            Err(e) => diags.push(Diagnostic::plain(
                e.to_string(),
                Some("the header is `// key: value` lines: id, title, tags, duration, purpose".into()),
            )),
        }
        let sources = match script::load(path) {
            Ok(loaded) => {
                // Said at the end, unless another script imports it. A file of functions
                // only is a module to `check` (`volley check stdlib/`); run it as a
                // scenario and `run` says it runs nothing.
                if let Some(d) = check::runs_nothing(&loaded).filter(|_| loaded.ast.iter_functions().next().is_none()) {
                    runs_nothing.push((path.clone(), d.render(&loaded.sources)));
                }
                diags.extend(check::check(&loaded));
                for module in script::imported_files(&loaded) {
                    if modules_checked.insert(module.clone()) {
                        match script::load(&module) {
                            Ok(m) => diags.extend(check::check(&m)),
                            Err((d, _)) => diags.push(d),
                        }
                    }
                }
                loaded.sources
            }
            Err((d, sources)) => {
                diags.push(d);
                sources
            }
        };
        for d in &diags {
            eprint!("{}", d.render(&sources));
            eprintln!();
        }
        problems += diags.len();
    }
    for (path, rendered) in runs_nothing {
        let imported = modules_checked.iter().any(|m: &std::path::PathBuf| {
            m == &path
                || std::fs::canonicalize(m).ok().zip(std::fs::canonicalize(&path).ok()).is_some_and(|(a, b)| a == b)
        });
        if !imported {
            eprintln!("{rendered}");
            problems += 1;
        }
    }
    // Scripts checked together run together: their ids must differ.
    for dup in crate::suite::duplicate_ids(&metas) {
        eprintln!("{}", Diagnostic::plain(dup, None).render(&Default::default()));
        problems += 1;
    }
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let verdict = if problems == 0 { "no problems".to_string() } else { format!("{problems} problem(s)") };
    eprintln!("checked {} script(s) and {} module(s) in {ms:.0} ms: {verdict}", scripts.len(), modules_checked.len());
    match (unreadable, problems) {
        (true, _) => 2,
        (false, 0) => 0,
        (false, _) => 107,
    }
}

/// Every script-facing function: signature, then its doc comment (with the example).
pub fn list_functions() -> String {
    let engine = script::build_engine();
    let json = engine.gen_fn_metadata_to_json(false).unwrap_or_default();
    let doc: serde_json::Value = serde_json::from_str(&json).unwrap_or_default();
    let mut entries: Vec<(String, String)> = Vec::new();
    let mut collect = |functions: &serde_json::Value, ns: &str| {
        for f in functions.as_array().into_iter().flatten() {
            let sig = f["signature"].as_str().unwrap_or_default();
            let sig = if ns.is_empty() || sig.starts_with(&format!("{ns}::")) {
                sig.to_string()
            } else {
                format!("{ns}::{sig}")
            };
            let comments: Vec<String> = f["docComments"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c.as_str())
                .flat_map(|c| {
                    c.lines()
                        .map(|l| {
                            l.trim()
                                .trim_start_matches("///")
                                .trim_start_matches("/**")
                                .trim_end_matches("*/")
                                .to_string()
                        })
                        .collect::<Vec<_>>()
                })
                .collect();
            if !comments.is_empty() {
                entries.push((sig, comments.join("\n    ")));
            }
        }
    };
    collect(&doc["functions"], "");
    if let Some(modules) = doc["modules"].as_object() {
        for (name, m) in modules {
            collect(&m["functions"], name);
        }
    }
    entries.sort();
    entries.dedup();
    let mut out = String::new();
    for (sig, docs) in &entries {
        out.push_str(&format!("{sig}\n    {docs}\n\n"));
    }
    out.push_str(&format!("{} functions\n", entries.len()));
    out
}
