//! `volley merge`: several saved `volley.run/1` results of one script, made side by side
//! (one per machine or per execution segment), merged into one result as exact as a
//! single run's: counts add, percentiles come from the merged HDR histograms (never
//! averaged), and thresholds are judged again on the whole. Reads and writes only
//! [`RunDoc`]s; imports metrics (sinks, conditions) and the declared-threshold type.
//!
//! What cannot be merged exactly is said, not guessed: per-second percentiles of the
//! history rows (no histograms are saved per second) are left empty, and groups and
//! tasks (no histograms saved) are left out with a warning.
//!
//! `parts` turns saved figures back into sinks and merges each section of the document;
//! `judge` judges thresholds on the merge and sets the verdict; `render` prints it.

mod judge;
mod parts;
mod render;

pub use judge::{Judged, declared_in, grade, judge};
pub use render::render;

use super::json::{RunDoc, SCHEMA};
use crate::metrics::Sink;
use parts::RequestAcc;
use std::collections::BTreeMap;
use std::time::Duration;

/// Why documents cannot be merged.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MergeError {
    /// Nothing to merge.
    #[error("nothing to merge; hint: give two or more results written with `volley run --out json=FILE`")]
    Empty,
    /// Results of different scripts.
    #[error(
        "{file}: a result of script `{id}` ({script}), but {first} is of `{first_id}`; hint: merge only results of the same script (one per machine or segment)"
    )]
    DifferentScripts {
        /// The offending file.
        file: String,
        /// Its script id.
        id: String,
        /// Its script path.
        script: String,
        /// The first file.
        first: String,
        /// The first file's script id.
        first_id: String,
    },
    /// A histogram that does not decode, or a metric whose kind differs between files.
    #[error("{file}: {what}")]
    Bad {
        /// The offending file.
        file: String,
        /// What is wrong.
        what: String,
    },
}

/// One input: the file name (for messages) and its document.
pub struct Input {
    /// The path as given.
    pub file: String,
    /// The document.
    pub doc: RunDoc,
}

pub(crate) fn bad(file: &str, what: impl Into<String>) -> MergeError {
    MergeError::Bad { file: file.to_string(), what: what.into() }
}

/// The merged sinks thresholds are judged on.
pub struct Merged {
    /// The merged document (verdict not yet set: see [`judge`]).
    pub doc: RunDoc,
    metrics: BTreeMap<String, Sink>,
    requests: BTreeMap<(String, String), RequestAcc>,
    elapsed: Duration,
}

/// Merges the documents. They must be results of the same script; they are taken as
/// parts of one run made side by side (the merged wall time is the longest part's).
pub fn merge(inputs: &[Input]) -> Result<Merged, MergeError> {
    let first = inputs.first().ok_or(MergeError::Empty)?;
    for i in &inputs[1..] {
        if i.doc.id != first.doc.id {
            return Err(MergeError::DifferentScripts {
                file: i.file.clone(),
                id: i.doc.id.clone(),
                script: i.doc.script.clone(),
                first: first.file.clone(),
                first_id: first.doc.id.clone(),
            });
        }
    }
    let elapsed_s = inputs.iter().map(|i| i.doc.elapsed_s).fold(0.0, f64::max);
    let elapsed = Duration::from_secs_f64(elapsed_s.max(0.0));
    let (metrics, described) = parts::metrics(inputs)?;
    let requests = parts::requests(inputs)?;
    let doc = RunDoc {
        schema: SCHEMA.into(),
        volley_version: env!("CARGO_PKG_VERSION").into(),
        id: first.doc.id.clone(),
        script: first.doc.script.clone(),
        target: first.doc.target.clone(),
        started_at: inputs.iter().map(|i| i.doc.started_at.clone()).min().unwrap_or_default(),
        elapsed_s: parts::round3(elapsed_s),
        time_scale: first.doc.time_scale,
        workers: inputs.iter().map(|i| i.doc.workers).sum(),
        verdict: String::new(),
        exit_code: 0,
        totals: parts::totals(inputs, &metrics, &requests, elapsed_s),
        requests: parts::request_rows(&requests, elapsed_s),
        thresholds: Vec::new(),
        assertions: parts::tagged(inputs, |d| &d.assertions),
        checks: parts::checks(inputs),
        phases: parts::tagged(inputs, |d| &d.phases),
        errors_by_kind: parts::errors_by_kind(inputs),
        iteration_errors: parts::iteration_errors(inputs),
        history: parts::history(inputs),
        metrics: parts::summaries(&metrics, &described, elapsed),
        figures: parts::figures(inputs),
        baseline: None,
        warnings: parts::warnings(inputs),
        groups: Vec::new(),
        tasks: Vec::new(),
        aborted: inputs.iter().find_map(|i| i.doc.aborted.clone()),
        load: first.doc.load.clone(),
    };
    Ok(Merged { doc, metrics, requests, elapsed })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{Selector, Stat};
    use crate::report::json::decode_hdr;
    use crate::report::{fixture, json};

    fn input(file: &str) -> Input {
        Input { file: file.into(), doc: json::document(&fixture::report(), &fixture::meta()) }
    }

    #[test]
    fn two_copies_add_their_counts_and_keep_their_percentiles() {
        let inputs = [input("a.json"), input("b.json")];
        let mut m = merge(&inputs).unwrap();
        judge(&mut m, &inputs, &[]);
        let d = &m.doc;
        assert_eq!((d.totals.requests, d.totals.failures), (300, 10));
        assert_eq!(d.errors_by_kind["status 503"], 10);
        assert_eq!(d.metrics["http_reqs"].stat("count"), Some(300.0));
        // The same samples twice: the same percentiles.
        assert_eq!(d.totals.latency_ms, inputs[0].doc.totals.latency_ms);
        let login = d.requests.iter().find(|r| r.name == "login").unwrap();
        assert_eq!((login.count, login.failures, login.logical), (200, 10, 200));
        assert_eq!(decode_hdr(login.hdr_histogram.as_ref().unwrap()).unwrap().len(), 200);
        assert_eq!(d.checks[0]["passes"], 290);
        // The fixture's thresholds are judged again: p(95) < 300 holds, rate < 0.01 fails.
        assert_eq!(d.thresholds.len(), 2);
        assert_eq!(d.thresholds[0]["passed"], true);
        assert_eq!(d.thresholds[1]["passed"], false);
        assert_eq!((d.verdict.as_str(), d.exit_code), ("failed", 99));
        assert_eq!(d.history.iter().map(|r| r["requests"].as_u64().unwrap()).sum::<u64>(), 300);
    }

    #[test]
    fn filtered_selectors_read_the_request_table_or_say_why_not() {
        let inputs = [input("a.json"), input("b.json")];
        let m = merge(&inputs).unwrap();
        let count = |s: &str| m.sink(&Selector::parse(s).unwrap()).unwrap().unwrap().stat(Stat::Count, Duration::ZERO);
        assert_eq!(count("http_reqs{name:login}").unwrap(), Some(200.0));
        assert_eq!(count("http_req_duration{method:GET}").unwrap(), Some(100.0));
        let e = m.sink(&Selector::parse("http_req_duration{phase:peak}").unwrap()).unwrap_err();
        assert!(e.contains("cannot be judged on merged results"), "{e}");
    }

    #[test]
    fn different_scripts_and_nothing_are_refused() {
        let mut other = input("b.json");
        other.doc.id = "PZ-2".into();
        let e = merge(&[input("a.json"), other]).err().unwrap().to_string();
        assert!(e.starts_with("b.json: a result of script `PZ-2`"), "{e}");
        assert!(merge(&[]).is_err());
    }

    #[test]
    fn a_failed_assertion_in_a_part_fails_the_whole_and_copies_are_flagged() {
        let mut b = input("b.json");
        b.doc.thresholds.clear();
        b.doc
            .assertions
            .push(serde_json::json!({ "message": "alerts arrived", "passed": false, "origin": "x.rhai:3" }));
        let mut a = input("a.json");
        a.doc.thresholds.clear();
        let inputs = [a, b];
        let mut m = merge(&inputs).unwrap();
        judge(&mut m, &inputs, &[]);
        assert_eq!((m.doc.verdict.as_str(), m.doc.exit_code), ("failed", 99));
        assert_eq!(m.doc.assertions[0]["file"], "b.json");
        assert!(
            m.doc.warnings.iter().any(|w| w.starts_with("b.json looks like a copy of a.json")),
            "{:?}",
            m.doc.warnings
        );
        let text = render(&m.doc, &["a.json".into(), "b.json".into()]);
        assert!(text.contains("✗ assertion \"alerts arrived\" failed (x.rhai:3, b.json)"), "{text}");
        assert!(text.ends_with("result: FAILED (exit code 99)\n"), "{text}");
        // Without the failed assertion it passes.
        let inputs = [input("a.json"), input("c.json")].map(|mut i| {
            i.doc.thresholds.clear();
            i
        });
        let mut m = merge(&inputs).unwrap();
        judge(&mut m, &inputs, &[]);
        assert_eq!((m.doc.verdict.as_str(), m.doc.exit_code), ("passed", 0));
    }

    #[test]
    fn a_merged_result_merges_again() {
        let inputs = [input("a.json"), input("b.json")];
        let mut ab = merge(&inputs).unwrap();
        judge(&mut ab, &inputs, &[]);
        let text = serde_json::to_string(&ab.doc).unwrap();
        let again = [Input { file: "ab.json".into(), doc: serde_json::from_str(&text).unwrap() }, input("c.json")];
        let abc = merge(&again).unwrap();
        assert_eq!(abc.doc.totals.requests, 450);
        let trend = &abc.doc.metrics["http_req_duration"];
        assert_eq!(decode_hdr(trend.hdr_histogram.as_ref().unwrap()).unwrap().len(), 450);
        assert_eq!(abc.doc.totals.latency_ms, inputs[0].doc.totals.latency_ms);
    }

    #[test]
    fn gauges_add_their_last_values() {
        let inputs = [input("a.json"), input("b.json")];
        let m = merge(&inputs).unwrap();
        assert_eq!(m.doc.metrics["vus"].stat("value"), Some(20.0));
    }
}
