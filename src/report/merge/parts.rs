//! Saved figures back into sinks (a trend from its HDR histogram), and each section of
//! the document merged: metrics, request rows, totals, checks, history, figures.

use super::{Input, MergeError, bad};
use crate::metrics::sink::{Counter, Gauge, Rate, TREND_SCALE, Trend};
use crate::metrics::{Sink, Stat};
use crate::report::json::{RequestStats, RunDoc, Totals, decode_hdr, hdr_base64};
use crate::report::metrics::MetricSummary;
use std::collections::BTreeMap;
use std::time::Duration;

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

pub(super) use crate::report::json::round3;

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { (a as f64 / b as f64 * 1e6).round() / 1e6 }
}

use crate::report::json::latency;

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
#[derive(Default)]
pub(crate) struct RequestAcc {
    /// Requests sent.
    pub(super) count: u64,
    /// Logical requests failed.
    pub(super) failures: u64,
    /// Logical requests.
    pub(super) logical: u64,
    /// Latency, from the merged histograms.
    pub(super) latency: Option<Sink>,
}

/// Merged sinks by metric name.
pub(super) type Sinks = BTreeMap<String, Sink>;

/// Each metric's description (the first file's summary of it), by name.
pub(super) type Described = BTreeMap<String, MetricSummary>;

/// Every metric by name, merged, with the first description seen of each.
pub(super) fn metrics(inputs: &[Input]) -> Result<(Sinks, Described), MergeError> {
    let mut metrics: BTreeMap<String, Sink> = BTreeMap::new();
    let mut described: BTreeMap<String, MetricSummary> = BTreeMap::new();
    for i in inputs {
        for (name, m) in &i.doc.metrics {
            let sink = sink_of(&i.file, name, m)?;
            match metrics.get_mut(name) {
                Some(acc) if acc.kind() != sink.kind() => {
                    let what = format!(
                        "metric `{name}` is a {} here but a {} in {}; hint: merge results of the same script and volley version",
                        sink.kind().as_str(),
                        acc.kind().as_str(),
                        inputs[0].file
                    );
                    return Err(bad(&i.file, what));
                }
                Some(acc) => fold(acc, &sink),
                None => {
                    metrics.insert(name.clone(), sink);
                    described.insert(name.clone(), m.clone());
                }
            }
        }
    }
    Ok((metrics, described))
}

/// Every request name (and method), merged.
pub(super) fn requests(inputs: &[Input]) -> Result<BTreeMap<(String, String), RequestAcc>, MergeError> {
    let mut requests: BTreeMap<(String, String), RequestAcc> = BTreeMap::new();
    for i in inputs {
        for r in &i.doc.requests {
            let stat = |k: &str| r.latency_ms.get(k).copied();
            let sink = match &r.hdr_histogram {
                Some(h) => Some(trend(&i.file, h, stat("mean"), stat("min"), stat("max"))?),
                None => None,
            };
            let acc = requests.entry((r.name.clone(), r.method.clone())).or_default();
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
    Ok(requests)
}

/// The request table of the merged document (grades are set later).
pub(super) fn request_rows(requests: &BTreeMap<(String, String), RequestAcc>, elapsed_s: f64) -> Vec<RequestStats> {
    let secs = elapsed_s.max(1e-9);
    requests
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
            hdr_histogram: a.latency.as_ref().and_then(hdr_base64),
        })
        .collect()
}

/// Totals over every request.
pub(super) fn totals(
    inputs: &[Input],
    metrics: &BTreeMap<String, Sink>,
    requests: &BTreeMap<(String, String), RequestAcc>,
    elapsed_s: f64,
) -> Totals {
    let total_requests: u64 = inputs.iter().map(|i| i.doc.totals.requests).sum();
    let total_failures: u64 = inputs.iter().map(|i| i.doc.totals.failures).sum();
    let logical = match metrics.get("http_req_failed") {
        Some(Sink::Rate(r)) => r.total,
        _ => requests.values().map(|a| a.logical).sum(),
    };
    Totals {
        requests: total_requests,
        failures: total_failures,
        error_rate: ratio(total_failures, logical),
        rps: round3(total_requests as f64 / elapsed_s.max(1e-9)),
        latency_ms: metrics.get("http_req_duration").map(latency).unwrap_or_default(),
    }
}

/// The `metrics` section: each merged sink summarised again.
pub(super) fn summaries(
    metrics: &BTreeMap<String, Sink>,
    described: &BTreeMap<String, MetricSummary>,
    elapsed: Duration,
) -> BTreeMap<String, MetricSummary> {
    metrics
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
                hdr_histogram: hdr_base64(sink),
            };
            (name.clone(), summary)
        })
        .collect()
}

/// Failed requests by kind, added up.
pub(super) fn errors_by_kind(inputs: &[Input]) -> BTreeMap<String, u64> {
    let mut out: BTreeMap<String, u64> = BTreeMap::new();
    for (k, n) in inputs.iter().flat_map(|i| &i.doc.errors_by_kind) {
        *out.entry(k.clone()).or_default() += n;
    }
    out
}

/// The parts' warnings (each once), plus what the merge itself has to say: groups and
/// tasks left out, a file given twice, different volley versions.
pub(super) fn warnings(inputs: &[Input]) -> Vec<String> {
    let mut warnings: Vec<String> = Vec::new();
    let first = &inputs[0];
    if inputs.iter().any(|i| !i.doc.groups.is_empty() || !i.doc.tasks.is_empty()) {
        warnings.push(
            "groups and tasks are not merged (their histograms are not saved); see each file for them".to_string(),
        );
    }
    for (n, i) in inputs.iter().enumerate() {
        // Parts of one distributed run share their start and wall time, and may make as
        // many requests each: only identical latency histograms as well mean a copy.
        let key = |d: &RunDoc| {
            let hists: Vec<Option<String>> = d.requests.iter().map(|r| r.hdr_histogram.clone()).collect();
            (d.started_at.clone(), d.elapsed_s, d.totals.requests, hists)
        };
        if let Some(j) = inputs[..n].iter().find(|j| key(&j.doc) == key(&i.doc)) {
            warnings.push(format!(
                "{} looks like a copy of {} (same start, wall time, requests and latencies): its figures are counted twice",
                i.file, j.file
            ));
        }
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
    warnings
}

/// Each input's entries of a list (phases, assertions), with a `file` key naming it.
pub(super) fn tagged(inputs: &[Input], list: impl Fn(&RunDoc) -> &Vec<serde_json::Value>) -> Vec<serde_json::Value> {
    inputs
        .iter()
        .flat_map(|i| {
            list(&i.doc).iter().cloned().map(|mut v| {
                if let Some(o) = v.as_object_mut() {
                    o.insert("file".into(), i.file.clone().into());
                }
                v
            })
        })
        .collect()
}

pub(super) fn checks(inputs: &[Input]) -> Vec<serde_json::Value> {
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

pub(super) fn iteration_errors(inputs: &[Input]) -> Vec<serde_json::Value> {
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
pub(super) fn history(inputs: &[Input]) -> Vec<serde_json::Value> {
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
pub(super) fn figures(inputs: &[Input]) -> serde_json::Map<String, serde_json::Value> {
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
