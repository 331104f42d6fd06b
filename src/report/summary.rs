//! The end-of-run summary printed to stdout: phases, requests per name with latency
//! percentiles, checks, thresholds, assertions, script errors, and the verdict.

use crate::duration::format_duration;
use crate::engine::{ExitCode, RunReport};
use crate::script::core::fmt_num;

fn ms(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.1}s", v / 1000.0)
    } else if v >= 100.0 {
        format!("{v:.0}ms")
    } else {
        format!("{v:.2}ms")
    }
}

fn mark(passed: bool) -> &'static str {
    if passed { "✓" } else { "✗" }
}

/// Renders the summary.
pub fn render(r: &RunReport) -> String {
    let mut out = String::new();
    let scaled = if r.time_scale != 1.0 {
        format!(" · time scale {} (durations and counts shortened)", fmt_num(r.time_scale))
    } else {
        String::new()
    };
    let made_by = match r.agents.len() {
        0 => format!("{} workers", r.workers),
        1 => "1 agent".to_string(),
        n => format!("{n} agents"),
    };
    out.push_str(&format!(
        "\nvolley {} · {} · {} · {made_by}{scaled}\n",
        env!("CARGO_PKG_VERSION"),
        r.script,
        format_duration(r.elapsed),
    ));
    if let Some(load) = super::load_line(r) {
        out.push_str(&format!("load: {load}\n"));
    }
    if !r.phases.is_empty() {
        out.push_str("\nphases\n");
        for p in &r.phases {
            let mut dropped = if p.dropped > 0 { format!(", {} dropped", p.dropped) } else { String::new() };
            if let Some(why) = &p.stopped {
                dropped.push_str(&format!(", stopped early: {why}"));
            }
            if let Some(o) = &p.overridden {
                dropped.push_str(&format!(" [{o}]"));
            }
            out.push_str(&format!(
                "  {:<20} {:<22} {:>8} {:>9} iterations{dropped}, up to {} VUs\n",
                p.name,
                p.executor,
                format_duration(p.elapsed),
                p.iterations,
                p.vus_max
            ));
            for lost in &p.lost_agents {
                out.push_str(&format!("  {:<20} ! {lost}\n", ""));
            }
        }
    }
    if !r.requests.is_empty() {
        let width = r.requests.iter().map(|q| q.method.len() + q.name.len() + 1).max().unwrap_or(8).clamp(8, 48);
        out.push_str(&format!(
            "\n{:<width$} {:>8} {:>7} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}\n",
            "requests", "count", "fail%", "req/s", "mean", "min", "p50", "p90", "p95", "p99", "p99.9", "max"
        ));
        for q in &r.requests {
            let label: String = format!("{} {}", q.method, q.name).chars().take(width).collect();
            let fail = if q.logical > 0 { 100.0 * q.failures as f64 / q.logical as f64 } else { 0.0 };
            out.push_str(&format!(
                "{label:<width$} {:>8} {:>6.2}% {:>8.1} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}\n",
                q.count,
                fail,
                q.rps,
                ms(q.mean),
                ms(q.min),
                ms(q.p50),
                ms(q.p90),
                ms(q.p95),
                ms(q.p99),
                ms(q.p999),
                ms(q.max)
            ));
        }
        let errors = error_kinds(r);
        if !errors.is_empty() {
            out.push_str(&format!("  failures by kind: {}\n", errors.join(", ")));
        }
    }
    let metrics = super::metrics::summarise(r);
    if !metrics.is_empty() {
        out.push_str("\nmetrics\n");
        let width = metrics.iter().map(|m| m.name.len()).max().unwrap_or(8).max(8);
        for m in &metrics {
            out.push_str(&format!("  {:<width$}  {}\n", m.name, m.line()));
        }
        if r.requests.is_empty() {
            let errors = error_kinds(r);
            if !errors.is_empty() {
                out.push_str(&format!("  failures by kind: {}\n", errors.join(", ")));
            }
        }
    }
    for w in &r.warnings {
        out.push_str(&format!("\nwarning: {w}\n"));
    }
    if !r.figures.is_empty() {
        out.push_str("\nfigures\n");
        let width = r.figures.iter().map(|f| f.name.chars().count()).max().unwrap_or(8).max(8);
        for f in &r.figures {
            // A long list or table (a resource series) is shortened here; the files
            // (--out json/md/html, --json) carry it whole.
            let text = f.text();
            let shown = if text.chars().count() > 160 {
                format!("{}… (in full in --out json/md/html)", text.chars().take(120).collect::<String>())
            } else {
                text
            };
            out.push_str(&format!("  {:<width$}  {shown}\n", f.name));
        }
    }
    for (title, tag, rows) in [("groups", "group", &r.groups), ("tasks", "task", &r.tasks)] {
        if rows.is_empty() {
            continue;
        }
        out.push_str(&format!("\n{title}\n"));
        out.push_str(&table(&super::breakdown_header(tag), &super::breakdown_cells(rows, tag)));
    }
    if !r.checks.is_empty() {
        out.push_str("\nchecks\n");
        for c in &r.checks {
            let total = c.passes + c.fails;
            out.push_str(&format!(
                "  {} {:<40} {}/{} ({:.2}%)\n",
                mark(c.fails == 0),
                c.name,
                c.passes,
                total,
                100.0 * c.passes as f64 / total.max(1) as f64
            ));
        }
    }
    if !r.thresholds.is_empty() {
        out.push_str("\nthresholds\n");
        for t in &r.thresholds {
            let observed = match (&t.observed, &t.error) {
                (_, Some(e)) => e.clone(),
                (Some(v), None) => format!("observed {}", fmt_num(*v)),
                (None, None) => "no data".into(),
            };
            let detail = t.detail.as_ref().map(|d| format!(" — {d}")).unwrap_or_default();
            out.push_str(&format!(
                "  {} {} {}   ({observed}{detail}) {}\n",
                mark(t.passed),
                t.selector,
                t.condition,
                t.origin
            ));
        }
    }
    if !r.assertions.is_empty() {
        out.push_str("\nassertions\n");
        for a in &r.assertions {
            let detail = a.detail.as_ref().map(|d| format!("   ({d})")).unwrap_or_default();
            out.push_str(&format!("  {} {}{detail}   {}\n", mark(a.passed), a.message, a.origin));
        }
    }
    if !r.iteration_errors.is_empty() {
        out.push_str("\nscript errors inside iterations\n");
        for e in &r.iteration_errors {
            out.push_str(&format!("  {} iteration{}:\n", e.count, if e.count == 1 { "" } else { "s" }));
            for line in e.rendered.lines() {
                out.push_str(&format!("    {line}\n"));
            }
        }
    }
    if let Some(b) = &r.baseline {
        out.push_str(&format!("\nbaseline\n{}", b.rendered));
    }
    if let Some(e) = &r.script_error {
        out.push('\n');
        out.push_str(e);
    }
    if let Some(a) = &r.aborted {
        out.push_str(&format!("\nstopped: {}\n", a.describe()));
    }
    let verdict = match r.exit {
        ExitCode::Passed if r.skipped.is_some() => format!("SKIPPED: {}", r.skipped.as_deref().unwrap_or_default()),
        ExitCode::Passed => "PASSED".to_string(),
        ExitCode::Failed => {
            let t = r.thresholds.iter().filter(|t| !t.passed).count();
            let a = r.assertions.iter().filter(|a| !a.passed).count();
            let base = if r.baseline.as_ref().is_some_and(|b| b.regressed) { ", worse than the baseline" } else { "" };
            let stopped = match &r.aborted {
                Some(x) => {
                    format!(", the run was stopped at {}s by {} {}", fmt_num(x.at_s.round()), x.selector, x.condition)
                }
                None => String::new(),
            };
            format!("FAILED: {t} threshold(s) and {a} assertion(s) failed{base}{stopped}")
        }
        ExitCode::ScriptError => "SCRIPT ERROR".to_string(),
        ExitCode::Interrupted => "INTERRUPTED: results up to the interruption".to_string(),
        ExitCode::Usage => "USAGE ERROR".to_string(),
    };
    out.push_str(&format!("\nresult: {verdict} (exit {})\n", r.exit.code()));
    out
}

/// A table with a left-aligned first column and right-aligned others, indented by 2.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| -> String {
        let parts: Vec<String> = cells
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (c, w))| if i == 0 { format!("{c:<w$}") } else { format!("{c:>w$}") })
            .collect();
        format!("  {}\n", parts.join("  "))
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// Failed logical requests by kind ("status 503: 12", "timeout: 3"), most frequent first.
pub fn error_kinds(r: &RunReport) -> Vec<String> {
    let mut list: Vec<(String, u64)> = crate::engine::judge::failure_kinds(&r.aggregate, &[]).into_iter().collect();
    list.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    list.into_iter().map(|(k, n)| format!("{k}: {n}")).collect()
}
