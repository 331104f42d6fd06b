//! The text `volley merge` prints.

use crate::report::json::RunDoc;
use std::collections::BTreeMap;

/// The text printed by `volley merge`.
pub fn render(doc: &RunDoc, files: &[String]) -> String {
    use std::fmt::Write as _;
    let mut out = format!("merged {} results of {} ({}):\n", files.len(), doc.id, doc.script);
    for f in files {
        let _ = writeln!(out, "  {f}");
    }
    let ms = |m: &BTreeMap<String, f64>, k: &str| m.get(k).map(|v| format!("{v:.2}ms")).unwrap_or_else(|| "-".into());
    let t = &doc.totals;
    let _ = writeln!(
        out,
        "\nrequests {}  failed {} ({:.2}%)  {:.1}/s over {}s  p50 {}  p95 {}  p99 {}",
        t.requests,
        t.failures,
        t.error_rate * 100.0,
        t.rps,
        doc.elapsed_s,
        ms(&t.latency_ms, "p50"),
        ms(&t.latency_ms, "p95"),
        ms(&t.latency_ms, "p99")
    );
    for r in &doc.requests {
        let _ = writeln!(
            out,
            "  {} {}: {} requests, {} failed, p50 {}, p95 {}, p99 {}",
            r.method,
            r.name,
            r.count,
            r.failures,
            ms(&r.latency_ms, "p50"),
            ms(&r.latency_ms, "p95"),
            ms(&r.latency_ms, "p99")
        );
    }
    if !doc.errors_by_kind.is_empty() {
        let kinds: Vec<String> = doc.errors_by_kind.iter().map(|(k, n)| format!("{k}: {n}")).collect();
        let _ = writeln!(out, "errors: {}", kinds.join(", "));
    }
    if !doc.thresholds.is_empty() {
        let _ = writeln!(out, "\nthresholds (judged on the merge):");
        for t in &doc.thresholds {
            let mark = if t["passed"] == true { "✓" } else { "✗" };
            let observed = match (t["observed"].as_f64(), t["error"].as_str()) {
                (_, Some(e)) => e.to_string(),
                (Some(v), None) => format!("observed {}", crate::script::core::fmt_num((v * 1000.0).round() / 1000.0)),
                (None, None) => "no data".into(),
            };
            let _ = writeln!(
                out,
                "  {mark} {} {}  ({observed}; {})",
                t["selector"].as_str().unwrap_or_default(),
                t["condition"].as_str().unwrap_or_default(),
                t["origin"].as_str().unwrap_or_default()
            );
        }
    }
    for a in doc.assertions.iter().filter(|a| a["passed"] == false) {
        let _ = writeln!(
            out,
            "  ✗ assertion {:?} failed ({}, {})",
            a["message"].as_str().unwrap_or_default(),
            a["origin"].as_str().unwrap_or_default(),
            a["file"].as_str().unwrap_or_default()
        );
    }
    for w in &doc.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    let _ = writeln!(out, "\nresult: {} (exit code {})", doc.verdict.to_uppercase(), doc.exit_code);
    out
}
