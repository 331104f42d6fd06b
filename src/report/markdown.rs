//! `--out md=FILE`: the verdict and the metric tables in GitHub-flavoured Markdown, for
//! pasting into a deployment report.

use super::{Output, RunMeta};
use crate::engine::RunReport;
use crate::script::core::fmt_num;
use std::fmt::Write as _;
use std::path::PathBuf;

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn ms(v: f64) -> String {
    format!("{:.1}", v)
}

/// Renders the report.
pub fn render(report: &RunReport, meta: &RunMeta) -> String {
    let mut out = String::new();
    let verdict = super::verdict_word(report);
    let icon = match verdict {
        "passed" => "✅",
        "skipped" => "⏭️",
        _ => "❌",
    };
    writeln!(out, "# {} — {icon} {}\n", cell(&meta.id), verdict.to_uppercase()).ok();
    writeln!(out, "| Run | |\n|---|---|").ok();
    writeln!(out, "| Script | `{}` |", cell(&meta.script)).ok();
    if let Some(t) = &meta.target {
        writeln!(out, "| Target | {} |", cell(t)).ok();
    }
    let started: time::OffsetDateTime = report.started_at.into();
    let started = started.format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
    writeln!(out, "| Started | {started} |").ok();
    writeln!(out, "| Duration | {:.1} s |", report.elapsed.as_secs_f64()).ok();
    writeln!(out, "| Time scale | {} |", fmt_num(meta.time_scale)).ok();
    writeln!(out, "| volley | {} |", cell(&meta.version)).ok();
    writeln!(out, "| Exit code | {} |", report.exit.code()).ok();
    if let Some(load) = super::load_line(report) {
        writeln!(out, "| Load | {} |", cell(&load)).ok();
    }
    if let Some(a) = &report.aborted {
        writeln!(out, "| Stopped | ❌ {} |", cell(&a.describe())).ok();
    }

    if !report.thresholds.is_empty() || !report.assertions.is_empty() {
        writeln!(out, "\n## Criteria\n\n| | Criterion | Measured | Source |\n|---|---|---|---|").ok();
        for t in &report.thresholds {
            let mut measured = match (&t.observed, &t.error) {
                (_, Some(e)) => e.clone(),
                (Some(v), None) => fmt_num(*v),
                (None, None) => "no data".into(),
            };
            if let Some(d) = &t.detail {
                measured.push_str(&format!(" ({d})"));
            }
            writeln!(
                out,
                "| {} | `{} {}` | {} | {} |",
                if t.passed { "✅" } else { "❌" },
                cell(&t.selector),
                cell(&t.condition),
                cell(&measured),
                cell(&t.origin)
            )
            .ok();
        }
        for a in &report.assertions {
            writeln!(
                out,
                "| {} | {} | {} | {} |",
                if a.passed { "✅" } else { "❌" },
                cell(&a.message),
                cell(a.detail.as_deref().unwrap_or("")),
                cell(&a.origin)
            )
            .ok();
        }
    }

    if !report.requests.is_empty() {
        writeln!(
            out,
            "\n## Requests\n\n| Request | Count | Failures | Error rate | req/s | avg ms | p50 ms | p95 ms | p99 ms | max ms | Grade |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
        )
        .ok();
        for r in &report.requests {
            let rate = if r.logical == 0 { 0.0 } else { r.failures as f64 / r.logical as f64 * 100.0 };
            writeln!(
                out,
                "| {} {} | {} | {} | {rate:.2}% | {:.1} | {} | {} | {} | {} | {} | {} |",
                cell(&r.method),
                cell(&r.name),
                r.count,
                r.failures,
                r.rps,
                ms(r.mean),
                ms(r.p50),
                ms(r.p95),
                ms(r.p99),
                ms(r.max),
                meta.bands.grade_row(r).as_str()
            )
            .ok();
        }
    }

    for (title, tag, rows) in [("Groups", "group", &report.groups), ("Tasks", "task", &report.tasks)] {
        if rows.is_empty() {
            continue;
        }
        let header = super::breakdown_header(tag);
        let align: Vec<&str> = header.iter().enumerate().map(|(i, _)| if i == 0 { "---" } else { "---:" }).collect();
        writeln!(out, "\n## {title}\n\n| {} |\n|{}|", header.join(" | "), align.join("|")).ok();
        for row in super::breakdown_cells(rows, tag) {
            let row: Vec<String> = row.iter().map(|c| cell(c)).collect();
            writeln!(out, "| {} |", row.join(" | ")).ok();
        }
    }

    if !report.checks.is_empty() {
        writeln!(out, "\n## Checks\n\n| Check | Passed | Failed |\n|---|---:|---:|").ok();
        for c in &report.checks {
            writeln!(out, "| {} | {} | {} |", cell(&c.name), c.passes, c.fails).ok();
        }
    }

    if !report.warnings.is_empty() {
        writeln!(out, "\n## Warnings\n").ok();
        for w in &report.warnings {
            writeln!(out, "- {}", cell(w)).ok();
        }
    }
    if !report.figures.is_empty() {
        writeln!(out, "\n## Figures\n\n| Figure | Value | Reported at |\n|---|---|---|").ok();
        for f in &report.figures {
            writeln!(out, "| {} | {} | {} |", cell(&f.name), cell(&f.text()), cell(&f.origin)).ok();
        }
    }
    let metrics = super::metrics::summarise(report);
    if !metrics.is_empty() {
        writeln!(out, "\n## Metrics\n\n| Metric | Kind | Protocol | Figures |\n|---|---|---|---|").ok();
        for m in &metrics {
            writeln!(out, "| `{}` | {} | {} | {} |", cell(&m.name), m.kind, cell(&m.protocol), cell(&m.line())).ok();
        }
    }
    if let Some(b) = &report.baseline {
        let word = if b.regressed { "❌ worse than the baseline" } else { "✅ within the margins" };
        writeln!(
            out,
            "\n## Baseline: {word}\n\nCompared with `{}`.\n\n```\n{}\n```",
            cell(&b.file),
            b.rendered.trim_end()
        )
        .ok();
    }
    if !report.iteration_errors.is_empty() {
        writeln!(out, "\n## Script errors inside iterations\n").ok();
        for e in &report.iteration_errors {
            writeln!(out, "{} iteration(s):\n\n```\n{}\n```", e.count, e.rendered.trim_end()).ok();
        }
    }
    let kinds = crate::engine::judge::failure_kinds(&report.aggregate, &[]);
    if !kinds.is_empty() {
        writeln!(out, "\n## Errors by kind\n\n| Kind | Count |\n|---|---:|").ok();
        for (k, n) in kinds {
            writeln!(out, "| {} | {n} |", cell(&k)).ok();
        }
    }
    if let Some(e) = &report.script_error {
        writeln!(out, "\n## Script error\n\n```\n{}\n```", e.trim_end()).ok();
    }
    out
}

/// `--out md=FILE`.
pub struct MarkdownOutput {
    /// The file.
    pub path: PathBuf,
}

impl Output for MarkdownOutput {
    fn finish(&self, report: &RunReport, meta: &RunMeta) -> Result<Vec<String>, String> {
        super::write_file(&self.path, &render(report, meta))?;
        Ok(vec![self.path.display().to_string()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixture;

    #[test]
    fn the_markdown_report_has_the_verdict_and_tables() {
        insta::assert_snapshot!(render(&fixture::report(), &fixture::meta()));
    }
}
