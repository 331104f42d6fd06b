//! Suite results: one entry per script (and per test case inside it), the end-of-suite
//! table, and the JSON document (`--json`, schema `volley.suite/1`, in the README).

use crate::engine::{ExitCode, RunReport};
use crate::metrics::{Sink, Stat};
use crate::script::core::fmt_num;
use crate::suite::ScriptMeta;
use std::time::Duration;

/// How a script (or test case) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// All criteria held.
    Passed,
    /// A criterion failed.
    Failed,
    /// The script skipped itself (e.g. no broker).
    Skipped,
    /// A script error.
    Error,
    /// Ctrl-C.
    Interrupted,
}

/// One test case: the whole script, or one `test_case(...)` section of it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CaseResult {
    /// The case's name (the script's id, or the `test_case` name).
    pub name: String,
    /// Its verdict.
    pub verdict: Verdict,
    /// Failed criteria, each with measured vs required.
    pub failures: Vec<String>,
    /// Criteria judged (passed and failed).
    pub criteria: usize,
}

/// One script's result.
pub struct ScriptResult {
    /// The header.
    pub meta: ScriptMeta,
    /// The run (None when it could not start).
    pub report: Option<RunReport>,
    /// Why it could not start (rendered diagnostic).
    pub load_error: Option<String>,
    /// The verdict.
    pub verdict: Verdict,
    /// Its test cases.
    pub cases: Vec<CaseResult>,
    /// Wall time.
    pub elapsed: Duration,
}

impl ScriptResult {
    /// Builds the result of a finished run.
    pub fn from_report(meta: ScriptMeta, report: RunReport) -> ScriptResult {
        let verdict = match report.exit {
            ExitCode::Passed if report.skipped.is_some() => Verdict::Skipped,
            ExitCode::Passed => Verdict::Passed,
            ExitCode::Failed => Verdict::Failed,
            ExitCode::Interrupted => Verdict::Interrupted,
            ExitCode::ScriptError | ExitCode::Usage => Verdict::Error,
        };
        let mut names: Vec<Option<String>> = Vec::new();
        for c in report.assertions.iter().map(|a| &a.case).chain(report.thresholds.iter().map(|t| &t.case)) {
            if !names.contains(c) {
                names.push(c.clone());
            }
        }
        if names.is_empty() {
            names.push(None);
        }
        let cases = names
            .into_iter()
            .enumerate()
            .map(|(i, case)| {
                let mut failures = Vec::new();
                let mut criteria = 0;
                // The baseline belongs to the whole script: its first test case carries it.
                if let Some(b) = report.baseline.as_ref().filter(|_| i == 0) {
                    criteria += 1;
                    if b.regressed {
                        failures.push(format!("worse than the baseline {}", b.file));
                    }
                }
                // So is the threshold that stopped the run (abort_on_fail).
                if let Some(a) = report.aborted.as_ref().filter(|_| i == 0) {
                    failures.push(a.describe());
                }
                for a in report.assertions.iter().filter(|a| a.case == case) {
                    criteria += 1;
                    if !a.passed {
                        failures.push(match &a.detail {
                            Some(d) => format!("{}: {d}", a.message),
                            None => a.message.clone(),
                        });
                    }
                }
                for t in report.thresholds.iter().filter(|t| t.case == case) {
                    criteria += 1;
                    if !t.passed {
                        let observed = match (&t.observed, &t.error) {
                            (_, Some(e)) => e.clone(),
                            (Some(v), None) => format!("measured {}", fmt_num(*v)),
                            (None, None) => "no data".into(),
                        };
                        failures.push(format!("threshold {} {}: {observed}", t.selector, t.condition));
                    }
                }
                let case_verdict = match verdict {
                    Verdict::Failed if failures.is_empty() => Verdict::Passed,
                    v => v,
                };
                CaseResult { name: case.unwrap_or_else(|| meta.id.clone()), verdict: case_verdict, failures, criteria }
            })
            .collect();
        let elapsed = report.elapsed;
        ScriptResult { meta, report: Some(report), load_error: None, verdict, cases, elapsed }
    }

    /// A script that could not start.
    pub fn not_started(meta: ScriptMeta, rendered: String) -> ScriptResult {
        let cases = vec![CaseResult {
            name: meta.id.clone(),
            verdict: Verdict::Error,
            failures: vec![rendered.clone()],
            criteria: 0,
        }];
        ScriptResult {
            meta,
            report: None,
            load_error: Some(rendered),
            verdict: Verdict::Error,
            cases,
            elapsed: Duration::ZERO,
        }
    }

    /// Key figures for the suite table: requests, success rate, p95.
    pub fn key_figures(&self) -> String {
        let Some(r) = &self.report else { return "did not start".into() };
        if let Some(reason) = &r.skipped {
            return reason.clone();
        }
        let mut parts = Vec::new();
        let reqs: u64 = r.requests.iter().map(|q| q.count).sum();
        let (logical, failed): (u64, u64) = r.requests.iter().fold((0, 0), |(l, f), q| (l + q.logical, f + q.failures));
        if reqs > 0 {
            parts.push(format!("{reqs} req"));
            if logical > 0 {
                parts.push(format!("{:.1}% ok", 100.0 * (logical - failed) as f64 / logical as f64));
            }
            if let Some(Sink::Trend(t)) = r.aggregate.query("http_req_duration", &[]).as_ref()
                && let Some(p95) = t.percentile(95.0)
            {
                parts.push(format!("p95 {}ms", fmt_num((p95 * 10.0).round() / 10.0)));
            }
        }
        if let Some(s) = r.aggregate.query("amqp_published", &[])
            && let Ok(Some(n)) = s.stat(Stat::Count, Duration::ZERO)
        {
            parts.push(format!("{n} published"));
        }
        let failed_criteria: usize = self.cases.iter().map(|c| c.failures.len()).sum();
        if failed_criteria > 0 {
            parts.push(format!("{failed_criteria} criteria failed"));
        }
        parts.join(", ")
    }
}

/// The end-of-suite table.
pub fn render_table(results: &[ScriptResult], time_scale: f64) -> String {
    let mut out = String::from("\nsuite summary");
    if time_scale != 1.0 {
        out.push_str(&format!(" (time scale {}: durations and counts shortened)", fmt_num(time_scale)));
    }
    out.push('\n');
    let width = results.iter().map(|r| r.meta.title.chars().count()).max().unwrap_or(10).clamp(10, 44);
    for r in results {
        let verdict = match r.verdict {
            Verdict::Passed => "PASS",
            Verdict::Failed => "FAIL",
            Verdict::Skipped => "SKIP",
            Verdict::Error => "ERROR",
            Verdict::Interrupted => "INTR",
        };
        let title: String = r.meta.title.chars().take(width).collect();
        out.push_str(&format!(
            "  {verdict:<5} {:<14} {title:<width$} {:>8}  {}\n",
            r.meta.id,
            crate::duration::format_duration(r.elapsed),
            r.key_figures()
        ));
        for c in &r.cases {
            for f in &c.failures {
                let first = f.lines().next().unwrap_or_default();
                out.push_str(&format!("          - {}: {first}\n", c.name));
            }
        }
    }
    let count = |v: Verdict| results.iter().filter(|r| r.verdict == v).count();
    out.push_str(&format!(
        "\n{} passed, {} failed, {} skipped, {} errors\n",
        count(Verdict::Passed),
        count(Verdict::Failed),
        count(Verdict::Skipped),
        count(Verdict::Error)
    ));
    out
}

/// The `--json` document.
pub fn to_json(results: &[ScriptResult], time_scale: f64, elapsed: Duration) -> serde_json::Value {
    use serde_json::json;
    let tests: Vec<serde_json::Value> = results
        .iter()
        .map(|r| {
            let rep = r.report.as_ref();
            json!({
                "id": r.meta.id,
                "title": r.meta.title,
                "tags": r.meta.tags,
                "file": r.meta.path.display().to_string(),
                "verdict": r.verdict,
                "duration_s": r.elapsed.as_secs_f64(),
                "skipped_reason": rep.and_then(|p| p.skipped.clone()),
                "error": r.load_error.clone().or_else(|| rep.and_then(|p| p.script_error.clone())),
                "cases": r.cases,
                "phases": rep.map(|p| p.phases.iter().map(|ph| json!({
                    "name": ph.name, "executor": ph.executor, "elapsed_s": ph.elapsed.as_secs_f64(),
                    "iterations": ph.iterations, "dropped_iterations": ph.dropped, "vus_max": ph.vus_max,
                    "stopped": ph.stopped,
                })).collect::<Vec<_>>()),
                "requests": rep.map(|p| &p.requests),
                "checks": rep.map(|p| &p.checks),
                "thresholds": rep.map(|p| &p.thresholds),
                "assertions": rep.map(|p| &p.assertions),
                "figures": rep.map(|p| p.figures.iter().map(|f| (f.name.clone(), f.value.clone())).collect::<serde_json::Map<_, _>>()),
                "iteration_errors": rep.map(|p| p.iteration_errors.iter().map(|e| json!({"count": e.count, "message": e.rendered})).collect::<Vec<_>>()),
            })
        })
        .collect();
    json!({
        "schema": "volley.suite/1",
        "volley_version": env!("CARGO_PKG_VERSION"),
        "time_scale": time_scale,
        "scaled": time_scale != 1.0,
        "duration_s": elapsed.as_secs_f64(),
        "tests": tests,
    })
}
