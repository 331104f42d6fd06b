//! `--notify URL`: when a run fails its thresholds or assertions, POST a JSON verdict
//! whose `text` field is a one-paragraph summary (Slack incoming webhooks, Mattermost
//! and most chat bridges show it as is); the other fields are for programs.

use super::RunMeta;
use crate::engine::{ExitCode, RunReport};
use crate::script::core::fmt_num;

/// The message, or None when there is nothing to notify (the run did not fail).
pub fn message(report: &RunReport, meta: &RunMeta) -> Option<serde_json::Value> {
    if report.exit != ExitCode::Failed {
        return None;
    }
    let mut failures: Vec<String> = report
        .thresholds
        .iter()
        .filter(|t| !t.passed)
        .map(|t| {
            let measured = match (&t.observed, &t.error) {
                (_, Some(e)) => e.clone(),
                (Some(v), None) => format!("measured {}", fmt_num(*v)),
                (None, None) => "no data".into(),
            };
            format!("{} {} ({measured}; {})", t.selector, t.condition, t.origin)
        })
        .collect();
    failures.extend(report.assertions.iter().filter(|a| !a.passed).map(|a| match &a.detail {
        Some(d) => format!("{} ({d})", a.message),
        None => a.message.clone(),
    }));
    let criteria = report.thresholds.len() + report.assertions.len();
    let target = meta.target.as_deref().map(|t| format!(" against {t}")).unwrap_or_default();
    let text = format!(
        ":x: volley: {} FAILED{target}: {} of {criteria} criteria failed: {}",
        meta.id,
        failures.len(),
        failures.join("; ")
    );
    Some(serde_json::json!({
        "text": text,
        "id": meta.id,
        "script": meta.script,
        "target": meta.target,
        "verdict": "failed",
        "exit_code": report.exit.code(),
        "failures": failures,
    }))
}

/// Sends the message when the run failed; returns whether one was sent.
pub fn notify(url: &str, report: &RunReport, meta: &RunMeta) -> Result<bool, String> {
    let Some(msg) = message(report, meta) else { return Ok(false) };
    match super::push::post(url, "application/json", &msg.to_string())? {
        s if (200..300).contains(&s) => Ok(true),
        s => Err(format!("{url}: the webhook answered {s}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixture;

    #[test]
    fn a_failed_run_gets_a_slack_compatible_text() {
        let msg = message(&fixture::report(), &fixture::meta()).unwrap();
        assert_eq!(
            msg["text"],
            ":x: volley: PZ-1 FAILED against http://127.0.0.1:8080: 1 of 2 criteria failed: \
             http_req_failed rate < 0.01 (measured 0.0333; scripts/pz_1_demo.rhai:5)"
        );
        let mut passed = fixture::report();
        passed.exit = ExitCode::Passed;
        assert!(message(&passed, &fixture::meta()).is_none());
    }
}
