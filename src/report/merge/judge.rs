//! Thresholds judged on the merge (the parts' own, each once, and an SLO file's), the
//! one verdict, and grades.

use super::{Input, Merged};
use crate::metrics::sink::{Counter, Rate};
use crate::metrics::{Condition, Selector, Sink};
use crate::report::json::RunDoc;
use crate::script::judge::DeclaredThreshold;

impl Merged {
    /// The merged sink a selector reads, or why the saved results cannot answer it.
    /// Whole metrics come from `metrics`; `http_req_duration`, `http_reqs` and
    /// `http_req_failed` filtered by `name` and `method` come from the request table.
    pub fn sink(&self, selector: &Selector) -> Result<Option<Sink>, String> {
        if selector.filters.is_empty() {
            return Ok(self.metrics.get(&selector.metric).cloned());
        }
        let by_request = ["http_req_duration", "http_reqs", "http_req_failed"].contains(&selector.metric.as_str());
        let known = selector.filters.iter().all(|(k, _)| k == "name" || k == "method");
        if !(by_request && known) {
            return Err(format!(
                "`{selector}` cannot be judged on merged results: saved results keep per-tag figures only for http_req_duration, http_reqs and http_req_failed by `name` and `method`; hint: judge it in a distributed run, or select the whole metric"
            ));
        }
        let mut out: Option<Sink> = None;
        for ((name, method), a) in &self.requests {
            let matches = selector.filters.iter().all(|(k, v)| if k == "name" { v == name } else { v == method });
            if !matches {
                continue;
            }
            let part = match selector.metric.as_str() {
                "http_reqs" => Some(Sink::Counter(Counter { sum: a.count as f64 })),
                "http_req_failed" => Some(Sink::Rate(Rate { trues: a.failures, total: a.logical })),
                _ => a.latency.clone(),
            };
            match (&mut out, part) {
                (Some(acc), Some(p)) => acc.merge(&p),
                (slot @ None, Some(p)) => *slot = Some(p),
                _ => {}
            }
        }
        Ok(out)
    }
}

/// A threshold to judge on the merge: the selector and condition as text and where it
/// was declared.
#[derive(Debug, Clone, PartialEq)]
pub struct Judged {
    /// Selector text.
    pub selector: String,
    /// Condition text.
    pub condition: String,
    /// Origin.
    pub origin: String,
    /// The test case it belongs to, if any.
    pub case: Option<String>,
}

/// The thresholds the inputs declared (each once), to be judged again on the whole.
pub fn declared_in(inputs: &[Input]) -> Vec<Judged> {
    let mut out: Vec<Judged> = Vec::new();
    for t in inputs.iter().flat_map(|i| &i.doc.thresholds) {
        let j = Judged {
            selector: t["selector"].as_str().unwrap_or_default().to_string(),
            condition: t["condition"].as_str().unwrap_or_default().to_string(),
            origin: t["origin"].as_str().unwrap_or_default().to_string(),
            case: t["case"].as_str().map(str::to_string),
        };
        if !out.contains(&j) {
            out.push(j);
        }
    }
    out
}

/// Judges the inputs' own thresholds and the SLO file's on the merge and sets the one
/// verdict: failed when a threshold or an assertion failed; an input that ended in a
/// script error or was interrupted carries that over.
pub fn judge(merged: &mut Merged, inputs: &[Input], slo: &[DeclaredThreshold]) {
    let mut results = Vec::new();
    let mut push = |j: Judged, verdict: Result<(bool, Option<f64>), String>| {
        let (passed, observed, error) = match verdict {
            Ok((p, o)) => (p, o, None),
            Err(e) => (false, None, Some(e)),
        };
        results.push(serde_json::json!({
            "selector": j.selector, "condition": j.condition, "passed": passed, "observed": observed,
            "origin": j.origin, "error": error, "case": j.case, "detail": null,
        }));
    };
    let evaluate = |sel: &Selector, c: &Condition| -> Result<(bool, Option<f64>), String> {
        if c.window.is_some() {
            return Err("a sliding window is judged during the run and cannot be judged on merged results".into());
        }
        match merged.sink(sel)? {
            None => Err("no data: nothing was recorded for this selection".into()),
            Some(s) => c.evaluate(&s, merged.elapsed).map(|v| (v.passed, v.observed)).map_err(|e| e.message),
        }
    };
    for j in declared_in(inputs) {
        let parsed = Selector::parse(&j.selector)
            .map_err(|e| e.message)
            .and_then(|s| Condition::parse(&j.condition).map(|c| (s, c)).map_err(|e| e.message));
        let verdict = parsed.and_then(|(s, c)| evaluate(&s, &c));
        push(j, verdict);
    }
    for t in slo {
        for c in &t.conditions {
            let j = Judged {
                selector: t.selector.to_string(),
                condition: c.to_string(),
                origin: t.origin.clone(),
                case: t.case.clone(),
            };
            push(j, evaluate(&t.selector, c));
        }
    }
    let failed = results.iter().any(|r| r["passed"] == false)
        || merged.doc.assertions.iter().any(|a| a.get("passed").and_then(|p| p.as_bool()) == Some(false));
    let carried = ["error", "interrupted"].iter().find(|w| inputs.iter().any(|i| i.doc.verdict == **w));
    let (verdict, code) = match carried {
        Some(&"error") => ("error", crate::engine::ExitCode::ScriptError),
        Some(_) => ("interrupted", crate::engine::ExitCode::Interrupted),
        None if failed => ("failed", crate::engine::ExitCode::Failed),
        None => ("passed", crate::engine::ExitCode::Passed),
    };
    merged.doc.thresholds = results;
    merged.doc.verdict = verdict.into();
    merged.doc.exit_code = code.code();
}

/// Grades the merged request rows with `bands`.
pub fn grade(doc: &mut RunDoc, bands: &crate::report::grade::Bands) {
    for r in &mut doc.requests {
        let p95 = r.latency_ms.get("p95").copied().unwrap_or(0.0);
        r.grade = Some(bands.grade(p95, r.error_rate).as_str().to_string());
    }
}
