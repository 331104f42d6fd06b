//! `--out html=FILE`: one self-contained page (inline CSS and SVG charts drawn here, no
//! scripts, no network) with run metadata, the verdict, charts over time (requests/s,
//! failures/s, VUs, latency p50/p95/p99; p95 and requests/s per phase and per request
//! name), the stats table with grades, thresholds and checks with verdicts, and errors
//! by kind.

use super::{Output, RunMeta};
use crate::engine::RunReport;
use crate::script::core::fmt_num;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

const COLORS: &[&str] = &["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#65a30d"];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// One line of a chart.
pub struct Line {
    /// Legend label.
    pub label: String,
    /// (seconds, value) points.
    pub points: Vec<(f64, f64)>,
}

/// A "nice" step for about `n` ticks over `max`.
fn nice_step(max: f64, n: f64) -> f64 {
    let raw = (max / n).max(1e-9);
    let mag = 10f64.powf(raw.log10().floor());
    let norm = raw / mag;
    let nice = if norm <= 1.0 {
        1.0
    } else if norm <= 2.0 {
        2.0
    } else if norm <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

/// An SVG line chart: axes with ticks, one polyline per line, a legend.
pub fn line_chart(title: &str, unit: &str, lines: &[Line]) -> String {
    let (w, h, left, right, top, bottom) = (560.0, 260.0, 56.0, 12.0, 28.0, 54.0);
    let (pw, ph) = (w - left - right, h - top - bottom);
    let all = || lines.iter().flat_map(|l| l.points.iter());
    let max_x = all().map(|p| p.0).fold(1.0f64, f64::max);
    let max_y = all().map(|p| p.1).fold(0.0f64, f64::max);
    let step_y = nice_step(if max_y > 0.0 { max_y } else { 1.0 }, 4.0);
    let top_y = (max_y / step_y).ceil().max(1.0) * step_y;
    let step_x = nice_step(max_x, 6.0);
    let x = |v: f64| left + v / max_x * pw;
    let y = |v: f64| top + ph - v / top_y * ph;
    let mut s = String::new();
    write!(
        s,
        r#"<svg class="chart" data-title="{t}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="{t}">"#,
        t = esc(title)
    )
    .ok();
    write!(s, r##"<text x="{left}" y="18" class="ct">{}</text>"##, esc(title)).ok();
    let mut v = 0.0;
    while v <= top_y + 1e-9 {
        write!(
            s,
            r##"<line x1="{left}" x2="{}" y1="{y0:.1}" y2="{y0:.1}" stroke="#e5e7eb"/><text x="{}" y="{:.1}" class="tk" text-anchor="end">{}</text>"##,
            left + pw,
            left - 4.0,
            y(v) + 4.0,
            fmt_num((v * 1000.0).round() / 1000.0),
            y0 = y(v)
        )
        .ok();
        v += step_y;
    }
    let mut t = 0.0;
    while t <= max_x + 1e-9 {
        write!(
            s,
            r##"<line x1="{x0:.1}" x2="{x0:.1}" y1="{}" y2="{}" stroke="#9ca3af"/><text x="{x0:.1}" y="{}" class="tk" text-anchor="middle">{}s</text>"##,
            top + ph,
            top + ph + 4.0,
            top + ph + 16.0,
            fmt_num(t),
            x0 = x(t)
        )
        .ok();
        t += step_x;
    }
    write!(s, r##"<text x="{}" y="18" class="tk" text-anchor="end">{}</text>"##, left + pw, esc(unit)).ok();
    write!(s, r##"<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#9ca3af"/>"##).ok();
    for (i, line) in lines.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let pts: Vec<String> = line.points.iter().map(|(a, b)| format!("{:.1},{:.1}", x(*a), y(*b))).collect();
        if pts.len() == 1 {
            write!(s, r#"<circle cx="{}" r="3" fill="{color}" cy="{}"/>"#, x(line.points[0].0), y(line.points[0].1))
                .ok();
        } else {
            write!(s, r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#, pts.join(" ")).ok();
        }
        let (lx, ly) = (left + (i % 4) as f64 * 130.0, h - 20.0 + (i / 4) as f64 * 14.0);
        write!(
            s,
            r#"<rect x="{lx}" y="{}" width="10" height="10" fill="{color}"/><text x="{}" y="{ly}" class="lg">{}</text>"#,
            ly - 9.0,
            lx + 14.0,
            esc(&truncate(&line.label, 18))
        )
        .ok();
    }
    s.push_str("</svg>");
    s
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n { s.to_string() } else { s.chars().take(n - 1).collect::<String>() + "…" }
}

fn per_group(report: &RunReport, group: &str, value: impl Fn(&crate::metrics::GroupRow) -> Option<f64>) -> Vec<Line> {
    let mut by: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for r in report.aggregate.group_history().into_iter().filter(|r| r.group == group) {
        if let Some(v) = value(&r) {
            by.entry(r.key).or_default().push((r.t_s, v));
        }
    }
    by.into_iter().map(|(label, points)| Line { label, points }).collect()
}

/// The charts, in page order.
pub fn charts(report: &RunReport) -> Vec<String> {
    let h = report.aggregate.history();
    let pts = |f: &dyn Fn(&crate::metrics::IntervalRow) -> Option<f64>| -> Vec<(f64, f64)> {
        h.iter().filter_map(|r| f(r).map(|v| (r.t_s, v))).collect()
    };
    let rate = |f: fn(&crate::metrics::IntervalRow) -> u64| -> Vec<(f64, f64)> {
        let mut prev = 0.0;
        h.iter()
            .map(|r| {
                let span = (r.t_s - prev).max(1e-3);
                prev = r.t_s;
                (r.t_s, f(r) as f64 / span)
            })
            .collect()
    };
    let line = |label: &str, points| Line { label: label.to_string(), points };
    vec![
        line_chart(
            "Throughput",
            "per second",
            &[line("requests/s", rate(|r| r.requests)), line("failures/s", rate(|r| r.failures))],
        ),
        line_chart("Virtual users", "VUs", &[line("VUs", pts(&|r| Some(r.vus as f64)))]),
        line_chart(
            "Latency",
            "ms",
            &[line("p50", pts(&|r| r.p50_ms)), line("p95", pts(&|r| r.p95_ms)), line("p99", pts(&|r| r.p99_ms))],
        ),
        line_chart("p95 latency per phase", "ms", &per_group(report, "phase", |r| r.p95_ms)),
        line_chart("p95 latency per request", "ms", &per_group(report, "name", |r| r.p95_ms)),
        line_chart("Requests/s per request", "per second", &per_group(report, "name", |r| Some(r.requests as f64))),
        line_chart("p99 latency per request", "ms", &per_group(report, "name", |r| r.p99_ms)),
        line_chart("Failures/s per request", "per second", &per_group(report, "name", |r| Some(r.failures as f64))),
    ]
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#111827;background:#fff}\
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:24px 0 8px;border-bottom:1px solid #e5e7eb}\
.badge{display:inline-block;padding:2px 10px;border-radius:12px;color:#fff;font-weight:600}\
.passed{background:#16a34a}.failed,.error,.interrupted{background:#dc2626}.skipped{background:#6b7280}\
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(560px,1fr));gap:12px}\
table{border-collapse:collapse;margin:4px 0}td,th{border:1px solid #e5e7eb;padding:3px 8px;text-align:right}\
td:first-child,th:first-child{text-align:left}.ok{color:#16a34a}.ko{color:#dc2626}\
.ct{font-weight:600;font-size:13px}.tk{font-size:10px;fill:#4b5563}.lg{font-size:11px}\
.g-excellent{color:#16a34a}.g-good{color:#2563eb}.g-acceptable{color:#d97706}.g-poor{color:#dc2626}\
dl{display:grid;grid-template-columns:max-content auto;gap:2px 12px;margin:0}dt{color:#6b7280}";

/// Renders the page.
pub fn render(report: &RunReport, meta: &RunMeta) -> String {
    let verdict = super::verdict_word(report);
    let mut o = String::new();
    writeln!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>volley {} {}</title><style>{STYLE}</style></head><body>",
        esc(&meta.id),
        verdict
    )
    .ok();
    write!(o, "<h1>{} <span class=\"badge {verdict}\">{}</span></h1>\n<dl>", esc(&meta.id), verdict.to_uppercase())
        .ok();
    let started: time::OffsetDateTime = report.started_at.into();
    let started = started.format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
    for (k, v) in [
        ("Script", meta.script.clone()),
        ("Target", meta.target.clone().unwrap_or_else(|| "-".into())),
        ("Started", started),
        ("Duration", format!("{:.1} s", report.elapsed.as_secs_f64())),
        ("Time scale", fmt_num(meta.time_scale)),
        ("Workers", report.workers.to_string()),
        ("volley", meta.version.clone()),
        ("Exit code", report.exit.code().to_string()),
    ]
    .into_iter()
    .chain(super::load_line(report).map(|l| ("Load", l)))
    .chain(report.aborted.as_ref().map(|a| ("Stopped", a.describe())))
    {
        write!(o, "<dt>{k}</dt><dd>{}</dd>", esc(&v)).ok();
    }
    o.push_str("</dl>\n<h2>Over time</h2>\n<div class=\"charts\">\n");
    for c in charts(report) {
        o.push_str(&c);
        o.push('\n');
    }
    o.push_str("</div>\n");

    o.push_str("<h2>Requests</h2>\n<table><tr><th>Request</th><th>Count</th><th>Failures</th><th>req/s</th><th>avg</th><th>min</th><th>p50</th><th>p90</th><th>p95</th><th>p99</th><th>max</th><th>Grade</th></tr>\n");
    for r in &report.requests {
        let g = meta.bands.grade_row(r).as_str();
        writeln!(
            o,
            "<tr><td>{} {}</td><td>{}</td><td>{}</td><td>{:.1}</td><td>{:.1}</td><td>{:.1}</td><td>{:.1}</td><td>{:.1}</td><td>{:.1}</td><td>{:.1}</td><td>{:.1}</td><td class=\"g-{g}\">{g}</td></tr>",
            esc(&r.method),
            esc(&r.name),
            r.count,
            r.failures,
            r.rps,
            r.mean,
            r.min,
            r.p50,
            r.p90,
            r.p95,
            r.p99,
            r.max
        )
        .ok();
    }
    o.push_str("</table><p>Latencies in ms.</p>\n");

    if !report.thresholds.is_empty() || !report.assertions.is_empty() {
        o.push_str(
            "<h2>Criteria</h2>\n<table><tr><th>Criterion</th><th>Verdict</th><th>Measured</th><th>Source</th></tr>\n",
        );
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
                o,
                "<tr><td>{} {}</td><td class=\"{}\">{}</td><td>{}</td><td>{}</td></tr>",
                esc(&t.selector),
                esc(&t.condition),
                if t.passed { "ok" } else { "ko" },
                if t.passed { "passed" } else { "failed" },
                esc(&measured),
                esc(&t.origin)
            )
            .ok();
        }
        for a in &report.assertions {
            writeln!(
                o,
                "<tr><td>{}</td><td class=\"{}\">{}</td><td>{}</td><td>{}</td></tr>",
                esc(&a.message),
                if a.passed { "ok" } else { "ko" },
                if a.passed { "passed" } else { "failed" },
                esc(a.detail.as_deref().unwrap_or("")),
                esc(&a.origin)
            )
            .ok();
        }
        o.push_str("</table>\n");
    }
    for (title, tag, rows) in [("Groups", "group", &report.groups), ("Tasks", "task", &report.tasks)] {
        if rows.is_empty() {
            continue;
        }
        let head: String = super::breakdown_header(tag).iter().map(|h| format!("<th>{h}</th>")).collect();
        writeln!(o, "<h2>{title}</h2>\n<table><tr>{head}</tr>").ok();
        for row in super::breakdown_cells(rows, tag) {
            let cells: String = row.iter().map(|c| format!("<td>{}</td>", esc(c))).collect();
            writeln!(o, "<tr>{cells}</tr>").ok();
        }
        o.push_str("</table>\n");
    }
    if !report.checks.is_empty() {
        o.push_str("<h2>Checks</h2>\n<table><tr><th>Check</th><th>Passed</th><th>Failed</th></tr>\n");
        for c in &report.checks {
            let cls = if c.fails == 0 { "ok" } else { "ko" };
            writeln!(o, "<tr><td>{}</td><td>{}</td><td class=\"{cls}\">{}</td></tr>", esc(&c.name), c.passes, c.fails)
                .ok();
        }
        o.push_str("</table>\n");
    }
    if !report.warnings.is_empty() {
        o.push_str("<h2>Warnings</h2>\n<ul class=\"warnings\">\n");
        for w in &report.warnings {
            writeln!(o, "<li>{}</li>", esc(w)).ok();
        }
        o.push_str("</ul>\n");
    }
    if !report.figures.is_empty() {
        o.push_str("<h2>Figures</h2>\n<table><tr><th>Figure</th><th>Value</th><th>Reported at</th></tr>\n");
        for f in &report.figures {
            writeln!(o, "<tr><td>{}</td><td>{}</td><td>{}</td></tr>", esc(&f.name), esc(&f.text()), esc(&f.origin))
                .ok();
        }
        o.push_str("</table>\n");
    }
    let metrics = super::metrics::summarise(report);
    if !metrics.is_empty() {
        o.push_str("<h2>Metrics</h2>\n<table><tr><th>Metric</th><th>Kind</th><th>Protocol</th><th>Figures</th></tr>\n");
        for m in &metrics {
            writeln!(
                o,
                "<tr><td title=\"{}\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&m.description),
                esc(&m.name),
                esc(&m.kind),
                esc(&m.protocol),
                esc(&m.line())
            )
            .ok();
        }
        o.push_str("</table>\n");
    }
    if let Some(b) = &report.baseline {
        let (cls, word) = if b.regressed { ("ko", "worse than the baseline") } else { ("ok", "within the margins") };
        writeln!(
            o,
            "<h2>Baseline</h2>\n<p class=\"{cls}\">{word} ({})</p>\n<pre>{}</pre>",
            esc(&b.file),
            esc(&b.rendered)
        )
        .ok();
    }
    if !report.iteration_errors.is_empty() {
        o.push_str("<h2>Script errors inside iterations</h2>\n");
        for e in &report.iteration_errors {
            writeln!(o, "<p>{} iteration(s):</p>\n<pre>{}</pre>", e.count, esc(&e.rendered)).ok();
        }
    }
    let kinds = crate::engine::judge::failure_kinds(&report.aggregate, &[]);
    o.push_str("<h2>Errors by kind</h2>\n");
    if kinds.is_empty() {
        o.push_str("<p>None.</p>\n");
    } else {
        o.push_str("<table><tr><th>Kind</th><th>Count</th></tr>\n");
        for (k, n) in kinds {
            writeln!(o, "<tr><td>{}</td><td>{n}</td></tr>", esc(&k)).ok();
        }
        o.push_str("</table>\n");
    }
    if let Some(e) = &report.script_error {
        writeln!(o, "<h2>Script error</h2>\n<pre>{}</pre>", esc(e)).ok();
    }
    o.push_str("</body></html>\n");
    o
}

/// `--out html=FILE`.
pub struct HtmlOutput {
    /// The file.
    pub path: PathBuf,
}

impl Output for HtmlOutput {
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
    fn the_page_is_self_contained_with_charts_and_tables() {
        let page = render(&fixture::report(), &fixture::meta());
        assert_eq!(page.matches("<svg class=\"chart\"").count(), 8);
        for title in ["Throughput", "Virtual users", "Latency", "p95 latency per phase", "p95 latency per request"] {
            assert!(page.contains(&format!("data-title=\"{title}\"")), "{title}");
        }
        // Nothing to fetch: no scripts, stylesheets, images or fonts from elsewhere.
        for banned in ["<script", "<link", "<img", "@import", "src=", "url("] {
            assert!(!page.contains(banned), "{banned}");
        }
        assert!(page.contains("<span class=\"badge failed\">FAILED</span>"));
        assert!(page.contains("<td class=\"g-acceptable\">acceptable</td>"));
        assert!(page.contains("<td>status 503</td><td>5</td>"));
        assert!(page.contains("scripts/pz_1_demo.rhai:5"));
    }

    #[test]
    fn ticks_are_round_numbers() {
        assert_eq!(nice_step(100.0, 4.0), 50.0);
        assert_eq!(nice_step(7.0, 6.0), 2.0);
        assert_eq!(nice_step(0.9, 4.0), 0.5);
    }
}
