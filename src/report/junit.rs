//! JUnit XML for CI: one `<testcase>` per PZ id (or per `test_case` inside a script),
//! failures listing the failed criteria with measured vs required values.

use super::suite::{ScriptResult, Verdict};
use std::fmt::Write;

/// Escapes text for XML attributes and content.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 forbids most control characters (terminal colours, NUL).
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\r' | '\t') => {}
            c => out.push(c),
        }
    }
    out
}

/// The properties of a script's first test case: its figures (`report(name, value)`),
/// how the load was set (level, overrides, seed), the threshold that stopped it, its
/// custom metrics, and a line per group and per task.
fn properties(report: &crate::engine::RunReport) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = report.figures.iter().map(|f| (f.name.clone(), f.text())).collect();
    if let Some(load) = super::load_line(report) {
        out.push(("load".into(), load));
    }
    if let Some(a) = &report.aborted {
        out.push(("stopped".into(), a.describe()));
    }
    out.extend(report.warnings.iter().map(|w| ("warning".to_string(), w.clone())));
    // The script's own metrics (`metrics::*`), as the summary shows them.
    for m in super::metrics::summarise(report).into_iter().filter(|m| m.protocol == "custom") {
        out.push((format!("metric {}", m.name), m.line()));
    }
    for (tag, rows) in [("group", &report.groups), ("task", &report.tasks)] {
        let header = super::breakdown_header(tag);
        for cells in super::breakdown_cells(rows, tag) {
            let text: Vec<String> = header.iter().zip(&cells).skip(1).map(|(h, c)| format!("{h} {c}")).collect();
            out.push((format!("{tag} {}", cells[0]), text.join(", ")));
        }
    }
    out
}

/// Renders the suite as JUnit XML.
pub fn render(results: &[ScriptResult], suite_name: &str, time_scale: f64) -> String {
    let cases: Vec<_> = results.iter().flat_map(|r| r.cases.iter().map(move |c| (r, c))).collect();
    let count = |v: Verdict| cases.iter().filter(|(_, c)| c.verdict == v).count();
    let total_time: f64 = results.iter().map(|r| r.elapsed.as_secs_f64()).sum();
    let totals = format!(
        "name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{total_time:.3}\"",
        escape(suite_name),
        cases.len(),
        count(Verdict::Failed),
        count(Verdict::Error) + count(Verdict::Interrupted),
        count(Verdict::Skipped)
    );
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(out, "<testsuites {totals}>");
    let _ = writeln!(out, "  <testsuite {totals}>");
    let _ = writeln!(out, "    <properties><property name=\"time_scale\" value=\"{time_scale}\"/></properties>");
    let mut with_figures: Vec<&str> = Vec::new();
    for (r, c) in cases {
        let name = if c.name == r.meta.id { format!("{} {}", r.meta.id, r.meta.title) } else { c.name.clone() };
        // The script's figures (`report(name, value)`) go on its first test case.
        let mut props = String::new();
        if !with_figures.contains(&r.meta.id.as_str()) {
            with_figures.push(&r.meta.id);
            let list = r.report.as_ref().map(properties).unwrap_or_default();
            if !list.is_empty() {
                props.push_str("\n      <properties>");
                for (name, value) in list {
                    let _ =
                        write!(props, "\n        <property name=\"{}\" value=\"{}\"/>", escape(&name), escape(&value));
                }
                props.push_str("\n      </properties>");
            }
        }
        let _ = write!(
            out,
            "    <testcase name=\"{}\" classname=\"{}\" file=\"{}\" time=\"{:.3}\"",
            escape(name.trim()),
            escape(&r.meta.tags.join(".")),
            escape(&r.meta.path.display().to_string()),
            r.elapsed.as_secs_f64()
        );
        if !props.is_empty() {
            out.push('>');
            out.push_str(&props);
        }
        let open = if props.is_empty() { ">" } else { "" };
        match c.verdict {
            Verdict::Passed if props.is_empty() => out.push_str("/>\n"),
            Verdict::Passed => out.push_str("\n    </testcase>\n"),
            Verdict::Skipped => {
                let reason = r.report.as_ref().and_then(|p| p.skipped.clone()).unwrap_or_default();
                let _ = writeln!(out, "{open}\n      <skipped message=\"{}\"/>\n    </testcase>", escape(&reason));
            }
            Verdict::Failed => {
                let message = c.failures.join("; ");
                let _ = writeln!(
                    out,
                    "{open}\n      <failure message=\"{}\" type=\"criteria\">{}</failure>\n    </testcase>",
                    escape(&message),
                    escape(&c.failures.join("\n"))
                );
            }
            Verdict::Error | Verdict::Interrupted => {
                let detail = r
                    .load_error
                    .clone()
                    .or_else(|| r.report.as_ref().and_then(|p| p.script_error.clone()))
                    .or_else(|| r.report.as_ref().and_then(|p| p.iteration_errors.first().map(|e| e.rendered.clone())))
                    .unwrap_or_else(|| "interrupted".into());
                let first = detail.lines().next().unwrap_or_default().to_string();
                let _ = writeln!(
                    out,
                    "{open}\n      <error message=\"{}\" type=\"script\">{}</error>\n    </testcase>",
                    escape(&first),
                    escape(&detail)
                );
            }
        }
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn escapes_markup_and_drops_control_characters() {
        assert_eq!(
            escape("p(95) < 300 & \"x\" 'y' \u{1b}[31m"),
            "p(95) &lt; 300 &amp; &quot;x&quot; &apos;y&apos; [31m"
        );
    }
}
