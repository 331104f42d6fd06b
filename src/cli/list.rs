//! `volley list PATH...`: id, title, tags and nominal duration of every script, read from
//! the headers without running anything.

use crate::duration::format_duration;
use std::path::PathBuf;

/// Options of `volley list`.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Files or directories.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Only scripts whose tags match, e.g. "load or performance".
    #[arg(long, value_name = "EXPR", value_parser = super::run::parse_tags)]
    pub tags: Option<crate::tagexpr::TagExpr>,
    /// Only the script with this id (repeatable).
    #[arg(long = "id", value_name = "ID")]
    pub ids: Vec<String>,
}

/// Runs `volley list`.
pub fn execute(args: ListArgs) -> i32 {
    let selection = crate::suite::Selection { tags: args.tags, ids: args.ids };
    let scripts = match crate::suite::select(&args.paths, &selection) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let width = scripts.iter().map(|m| m.title.chars().count()).max().unwrap_or(5).clamp(5, 50);
    println!("{:<14} {:<width$} {:>8}  tags", "id", "title", "duration");
    let mut total = std::time::Duration::ZERO;
    for m in &scripts {
        let d = m.duration.map(format_duration).unwrap_or_else(|| "-".into());
        total += m.duration.unwrap_or_default();
        let title: String = m.title.chars().take(width).collect();
        println!("{:<14} {title:<width$} {d:>8}  {}", m.id, m.tags.join(", "));
    }
    println!("\n{} script(s), nominal duration {}", scripts.len(), format_duration(total));
    0
}
