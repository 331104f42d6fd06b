//! `volley merge`: several saved `volley.run/1` results of one script, made side by side
//! (one per machine or per execution segment), merged into one result as exact as a
//! single run's: counts add, percentiles come from the merged HDR histograms (never
//! averaged), and thresholds are judged again on the whole. Reads and writes only
//! [`RunDoc`]s; imports metrics (sinks, conditions) and the judge's SLO loader.
//!
//! What cannot be merged exactly is said, not guessed: per-second percentiles of the
//! history rows (no histograms are saved per second) are left empty, and groups and
//! tasks (no histograms saved) are left out with a warning.

use super::json::{PERCENTILES, RequestStats, RunDoc, Totals, decode_hdr, pct_key};
use super::metrics::MetricSummary;
use crate::metrics::sink::{Counter, Gauge, Rate, TREND_SCALE, Trend};
use crate::metrics::{Condition, Selector, Sink, Stat};
use crate::script::judge::DeclaredThreshold;
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

fn bad(file: &str, what: impl Into<String>) -> MergeError {
    MergeError::Bad { file: file.to_string(), what: what.into() }
}

/// A trend sink from a saved histogram and its exact mean, min and max.
fn trend(file: &str, hdr: &str, mean: Option<f64>, min: Option<f64>, max: Option<f64>) -> Result<Sink, MergeError> {
    let mut hist = decode_hdr(hdr).map_err(|e| bad(file, e))?;
    // A decoded histogram does not grow: without this, adding a part with larger
    // values fails (and `Sink::merge` ignores the failure), losing its samples.
    hist.auto(true);
    let n = hist.len() as f64;
    let lo = hist.min() as f64 / TREND_SCALE;
    let hi = hist.max() as f64 / TREND_SCALE;
    let t = Trend {
        sum: mean.unwrap_or_else(|| hist.mean() / TREND_SCALE) * n,
        min: if n > 0.0 { min.unwrap_or(lo) } else { f64::INFINITY },
        max: if n > 0.0 { max.unwrap_or(hi) } else { f64::NEG_INFINITY },
        hist,
    };
    Ok(Sink::Trend(Box::new(t)))
}

/// A metric summary back into a sink (a trend from its histogram).
fn sink_of(file: &str, name: &str, m: &MetricSummary) -> Result<Sink, MergeError> {
    let stat = |k: &str| m.stat(k);
    Ok(match m.kind.as_str() {
        "counter" => Sink::Counter(Counter { sum: stat("count").unwrap_or(0.0) }),
        "rate" => {
            Sink::Rate(Rate { trues: stat("trues").unwrap_or(0.0) as u64, total: stat("total").unwrap_or(0.0) as u64 })
        }
        "gauge" => match stat("value") {
            Some(v) => Sink::Gauge(Gauge { last: v, min: stat("min").unwrap_or(v), max: stat("max").unwrap_or(v) }),
            None => Sink::new(crate::metrics::MetricKind::Gauge),
        },
        "trend" => match &m.hdr_histogram {
            Some(h) => trend(file, h, stat("avg"), stat("min"), stat("max"))?,
            None if stat("count").unwrap_or(0.0) == 0.0 => Sink::new(crate::metrics::MetricKind::Trend),
            None => return Err(bad(file, format!("metric `{name}` has samples but no HDR histogram to merge"))),
        },
        other => return Err(bad(file, format!("metric `{name}` has an unknown kind `{other}`"))),
    })
}

/// Folds `b` into `a`. Segments run side by side, so gauges add their last values
/// (10 VUs on each of 3 machines are 30 VUs); their min and max are the parts' extremes.
fn fold(a: &mut Sink, b: &Sink) {
    match (a, b) {
        (Sink::Gauge(x), Sink::Gauge(y)) if y.min.is_finite() => {
            if x.min.is_finite() {
                x.last += y.last;
            } else {
                x.last = y.last;
            }
            x.min = x.min.min(y.min);
            x.max = x.max.max(y.max);
        }
        (a, b) => a.merge(b),
    }
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { (a as f64 / b as f64 * 1e6).round() / 1e6 }
}

/// The latency table of a trend (keys as in `volley.run/1`).
fn latency(sink: &Sink) -> BTreeMap<String, f64> {
    let get = |st: Stat| sink.stat(st, Duration::ZERO).ok().flatten();
    let mut m = BTreeMap::new();
    for (k, st) in [("mean", Stat::Avg), ("min", Stat::Min), ("max", Stat::Max)] {
        if let Some(v) = get(st) {
            m.insert(k.to_string(), round3(v));
        }
    }
    for p in PERCENTILES {
        if let Some(v) = get(Stat::Percentile(*p)) {
            m.insert(pct_key(*p), round3(v));
        }
    }
    m
}

/// A metric's statistics in display order (as `report::metrics` writes them).
fn stats_of(sink: &Sink, elapsed: Duration) -> Vec<(String, f64)> {
    let get = |s: Stat| sink.stat(s, elapsed).ok().flatten();
    let picks: Vec<(&str, Option<f64>)> = match sink {
        Sink::Counter(_) => vec![("count", get(Stat::Count)), ("rate", get(Stat::Rate))],
        Sink::Rate(r) => {
            vec![("rate", get(Stat::Rate)), ("trues", Some(r.trues as f64)), ("total", Some(r.total as f64))]
        }
        Sink::Gauge(_) => vec![("value", get(Stat::Value)), ("min", get(Stat::Min)), ("max", get(Stat::Max))],
        Sink::Trend(_) => {
            let mut v = vec![("count", get(Stat::Count)), ("avg", get(Stat::Avg)), ("min", get(Stat::Min))];
            for (k, p) in [("p50", 50.0), ("p90", 90.0), ("p95", 95.0), ("p99", 99.0), ("p99.9", 99.9)] {
                v.push((k, get(Stat::Percentile(p))));
            }
            v.push(("max", get(Stat::Max)));
            v
        }
    };
    picks.into_iter().filter_map(|(k, v)| v.map(|v| (k.to_string(), v))).collect()
}

/// Per (name, method): counts and the latency sink.
struct RequestAcc {
    count: u64,
    failures: u64,
    logical: u64,
    latency: Option<Sink>,
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
    let mut warnings: Vec<String> = Vec::new();
    let elapsed_s = inputs.iter().map(|i| i.doc.elapsed_s).fold(0.0, f64::max);
    let elapsed = Duration::from_secs_f64(elapsed_s.max(0.0));

    // Every metric, by name.
    let mut metrics: BTreeMap<String, Sink> = BTreeMap::new();
    let mut described: BTreeMap<String, MetricSummary> = BTreeMap::new();
    for i in inputs {
        for (name, m) in &i.doc.metrics {
            let sink = sink_of(&i.file, name, m)?;
            match metrics.get_mut(name) {
                Some(acc) if acc.kind() != sink.kind() => {
                    return Err(bad(
                        &i.file,
                        format!(
                            "metric `{name}` is a {} here but a {} in {}; hint: merge results of the same script and volley version",
                            sink.kind().as_str(),
                            acc.kind().as_str(),
                            first.file
                        ),
                    ));
                }
                Some(acc) => fold(acc, &sink),
                None => {
                    metrics.insert(name.clone(), sink);
                    described.insert(name.clone(), m.clone());
                }
            }
        }
    }

    // Every request name.
    let mut requests: BTreeMap<(String, String), RequestAcc> = BTreeMap::new();
    for i in inputs {
        for r in &i.doc.requests {
            let sink = match &r.hdr_histogram {
                Some(h) => Some(trend(
                    &i.file,
                    h,
                    r.latency_ms.get("mean").copied(),
                    r.latency_ms.get("min").copied(),
                    r.latency_ms.get("max").copied(),
                )?),
                None => None,
            };
            let acc = requests.entry((r.name.clone(), r.method.clone())).or_insert(RequestAcc {
                count: 0,
                failures: 0,
                logical: 0,
                latency: None,
            });
            acc.count += r.count;
            acc.failures += r.failures;
            acc.logical += r.logical;
            match (&mut acc.latency, sink) {
                (Some(a), Some(b)) => a.merge(&b),
                (slot @ None, Some(b)) => *slot = Some(b),
                _ => {}
            }
        }
    }

    let secs = elapsed_s.max(1e-9);
    let doc_requests: Vec<RequestStats> = requests
        .iter()
        .map(|((name, method), a)| RequestStats {
            name: name.clone(),
            method: method.clone(),
            count: a.count,
            failures: a.failures,
            logical: a.logical,
            error_rate: ratio(a.failures, a.logical),
            rps: round3(a.count as f64 / secs),
            latency_ms: a.latency.as_ref().map(latency).unwrap_or_default(),
            grade: None,
            hdr_histogram: a.latency.as_ref().and_then(super::json::hdr_base64),
        })
        .collect();

    let total_requests: u64 = inputs.iter().map(|i| i.doc.totals.requests).sum();
    let total_failures: u64 = inputs.iter().map(|i| i.doc.totals.failures).sum();
    let logical = match metrics.get("http_req_failed") {
        Some(Sink::Rate(r)) => r.total,
        _ => requests.values().map(|a| a.logical).sum(),
    };
    let totals = Totals {
        requests: total_requests,
        failures: total_failures,
        error_rate: ratio(total_failures, logical),
        rps: round3(total_requests as f64 / secs),
        latency_ms: metrics.get("http_req_duration").map(latency).unwrap_or_default(),
    };

    let doc_metrics = metrics
        .iter()
        .map(|(name, sink)| {
            let d = &described[name];
            let summary = MetricSummary {
                name: name.clone(),
                kind: d.kind.clone(),
                unit: d.unit.clone(),
                protocol: d.protocol.clone(),
                description: d.description.clone(),
                stats: stats_of(sink, elapsed),
                hdr_histogram: super::json::hdr_base64(sink),
            };
            (name.clone(), summary)
        })
        .collect();

    let mut errors_by_kind: BTreeMap<String, u64> = BTreeMap::new();
    for i in inputs {
        for (k, n) in &i.doc.errors_by_kind {
            *errors_by_kind.entry(k.clone()).or_default() += n;
        }
    }

    if inputs.iter().any(|i| !i.doc.groups.is_empty() || !i.doc.tasks.is_empty()) {
        warnings.push(
            "groups and tasks are not merged (their histograms are not saved); see each file for them".to_string(),
        );
    }
    for i in inputs {
        if i.doc.volley_version != first.doc.volley_version {
            warnings.push(format!(
                "{} was written by volley {}, {} by {}",
                i.file, i.doc.volley_version, first.file, first.doc.volley_version
            ));
        }
        for w in &i.doc.warnings {
            if !warnings.contains(w) {
                warnings.push(w.clone());
            }
        }
    }

    let doc = RunDoc {
        schema: super::json::SCHEMA.into(),
        volley_version: env!("CARGO_PKG_VERSION").into(),
        id: first.doc.id.clone(),
        script: first.doc.script.clone(),
        target: first.doc.target.clone(),
        started_at: inputs.iter().map(|i| i.doc.started_at.clone()).min().unwrap_or_default(),
        elapsed_s: round3(elapsed_s),
        time_scale: first.doc.time_scale,
        workers: inputs.iter().map(|i| i.doc.workers).sum(),
        verdict: String::new(),
        exit_code: 0,
        totals,
        requests: doc_requests,
        thresholds: Vec::new(),
        assertions: inputs.iter().flat_map(|i| i.doc.assertions.iter().cloned()).collect(),
        checks: merge_checks(inputs),
        phases: inputs
            .iter()
            .flat_map(|i| {
                i.doc.phases.iter().cloned().map(|mut p| {
                    if let Some(o) = p.as_object_mut() {
                        o.insert("file".into(), i.file.clone().into());
                    }
                    p
                })
            })
            .collect(),
        errors_by_kind,
        iteration_errors: merge_iteration_errors(inputs),
        history: merge_history(inputs),
        metrics: doc_metrics,
        figures: merge_figures(inputs),
        baseline: None,
        warnings,
        groups: Vec::new(),
        tasks: Vec::new(),
        aborted: inputs.iter().find_map(|i| i.doc.aborted.clone()),
        load: first.doc.load.clone(),
    };
    Ok(Merged { doc, metrics, requests, elapsed })
}

fn merge_checks(inputs: &[Input]) -> Vec<serde_json::Value> {
    let mut by_name: Vec<(String, u64, u64)> = Vec::new();
    for c in inputs.iter().flat_map(|i| &i.doc.checks) {
        let name = c["name"].as_str().unwrap_or_default().to_string();
        let (p, f) = (c["passes"].as_u64().unwrap_or(0), c["fails"].as_u64().unwrap_or(0));
        match by_name.iter_mut().find(|e| e.0 == name) {
            Some(e) => (e.1, e.2) = (e.1 + p, e.2 + f),
            None => by_name.push((name, p, f)),
        }
    }
    by_name
        .into_iter()
        .map(|(name, passes, fails)| serde_json::json!({ "name": name, "passes": passes, "fails": fails }))
        .collect()
}

fn merge_iteration_errors(inputs: &[Input]) -> Vec<serde_json::Value> {
    let mut by_text: Vec<(String, u64)> = Vec::new();
    for e in inputs.iter().flat_map(|i| &i.doc.iteration_errors) {
        let text = e["rendered"].as_str().unwrap_or_default().to_string();
        let n = e["count"].as_u64().unwrap_or(0);
        match by_text.iter_mut().find(|x| x.0 == text) {
            Some(x) => x.1 += n,
            None => by_text.push((text, n)),
        }
    }
    by_text.into_iter().map(|(rendered, count)| serde_json::json!({ "count": count, "rendered": rendered })).collect()
}

/// History rows of the same second (by the second they end in) add their counts; their
/// percentiles are left empty, as no per-second histograms are saved.
fn merge_history(inputs: &[Input]) -> Vec<serde_json::Value> {
    let mut rows: BTreeMap<u64, serde_json::Map<String, serde_json::Value>> = BTreeMap::new();
    for row in inputs.iter().flat_map(|i| &i.doc.history) {
        let t = row["t_s"].as_f64().unwrap_or(0.0);
        let second = t.ceil().max(0.0) as u64;
        let acc = rows.entry(second).or_insert_with(|| {
            let mut m = serde_json::Map::new();
            m.insert("t_s".into(), 0.0.into());
            for k in ["requests", "failures", "vus", "iterations"] {
                m.insert(k.into(), 0u64.into());
            }
            for k in ["p50_ms", "p95_ms", "p99_ms"] {
                m.insert(k.into(), serde_json::Value::Null);
            }
            m.insert("counts".into(), serde_json::Value::Object(Default::default()));
            m
        });
        let prev_t = acc["t_s"].as_f64().unwrap_or(0.0);
        acc.insert("t_s".into(), prev_t.max(t).into());
        for k in ["requests", "failures", "vus", "iterations"] {
            let n = acc[k].as_u64().unwrap_or(0) + row[k].as_u64().unwrap_or(0);
            acc.insert(k.into(), n.into());
        }
        if let (Some(serde_json::Value::Object(counts)), Some(add)) = (acc.get_mut("counts"), row["counts"].as_object())
        {
            for (k, v) in add {
                let n = counts.get(k).and_then(|x| x.as_f64()).unwrap_or(0.0) + v.as_f64().unwrap_or(0.0);
                counts.insert(k.clone(), n.into());
            }
        }
    }
    rows.into_values().map(serde_json::Value::Object).collect()
}

/// Figures equal in every file are kept; differing ones become the list of values, one
/// per file.
fn merge_figures(inputs: &[Input]) -> serde_json::Map<String, serde_json::Value> {
    let mut out = serde_json::Map::new();
    let mut names: Vec<&String> = inputs.iter().flat_map(|i| i.doc.figures.keys()).collect();
    names.sort();
    names.dedup();
    for name in names {
        let values: Vec<serde_json::Value> =
            inputs.iter().map(|i| i.doc.figures.get(name).cloned().unwrap_or(serde_json::Value::Null)).collect();
        let same = values.windows(2).all(|w| w[0] == w[1]);
        out.insert(name.clone(), if same { values[0].clone() } else { serde_json::Value::Array(values) });
    }
    out
}

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
}

/// The thresholds the inputs declared (each once), to be judged again on the whole.
pub fn declared_in(inputs: &[Input]) -> Vec<Judged> {
    let mut out: Vec<Judged> = Vec::new();
    for t in inputs.iter().flat_map(|i| &i.doc.thresholds) {
        let j = Judged {
            selector: t["selector"].as_str().unwrap_or_default().to_string(),
            condition: t["condition"].as_str().unwrap_or_default().to_string(),
            origin: t["origin"].as_str().unwrap_or_default().to_string(),
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
    let mut push =
        |selector: String, condition: String, origin: String, verdict: Result<(bool, Option<f64>), String>| {
            let (passed, observed, error) = match verdict {
                Ok((p, o)) => (p, o, None),
                Err(e) => (false, None, Some(e)),
            };
            results.push(serde_json::json!({
                "selector": selector, "condition": condition, "passed": passed, "observed": observed,
                "origin": origin, "error": error, "case": null, "detail": null,
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
        push(j.selector, j.condition, j.origin, verdict);
    }
    for t in slo {
        for c in &t.conditions {
            push(t.selector.to_string(), c.to_string(), t.origin.clone(), evaluate(&t.selector, c));
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
pub fn grade(doc: &mut RunDoc, bands: &super::grade::Bands) {
    for r in &mut doc.requests {
        let p95 = r.latency_ms.get("p95").copied().unwrap_or(0.0);
        r.grade = Some(bands.grade(p95, r.error_rate).as_str().to_string());
    }
}

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
                (Some(v), None) => format!("observed {}", crate::script::core::fmt_num(round3(v))),
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
    for w in &doc.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    let _ = writeln!(out, "\nresult: {} (exit code {})", doc.verdict.to_uppercase(), doc.exit_code);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
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
    fn gauges_add_their_last_values() {
        let inputs = [input("a.json"), input("b.json")];
        let m = merge(&inputs).unwrap();
        assert_eq!(m.doc.metrics["vus"].stat("value"), Some(20.0));
    }
}
