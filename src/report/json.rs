//! `--out json=FILE`: the full result of one run, schema `volley.run/1` (README,
//! "Reports"). Per request name it carries the HDR histogram (V2 + deflate, base64) so
//! distributed runs can merge exact percentiles later; `volley compare` reads it back.

use super::{Output, RunMeta};
use crate::engine::RunReport;
use crate::metrics::{Sink, Stat};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// The schema name and version.
pub const SCHEMA: &str = "volley.run/1";

/// The percentiles every latency table carries (Locust's set).
pub const PERCENTILES: &[f64] = &[50.0, 66.0, 75.0, 80.0, 90.0, 95.0, 98.0, 99.0, 99.9, 100.0];

/// The document.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunDoc {
    /// Always [`SCHEMA`].
    pub schema: String,
    /// volley's version.
    pub volley_version: String,
    /// Script id.
    pub id: String,
    /// Script path.
    pub script: String,
    /// System under test (`BASE_URL`).
    pub target: Option<String>,
    /// Start, RFC 3339 UTC.
    pub started_at: String,
    /// Wall time in seconds.
    pub elapsed_s: f64,
    /// Time scale.
    pub time_scale: f64,
    /// Worker threads.
    pub workers: usize,
    /// passed, failed, skipped, error or interrupted.
    pub verdict: String,
    /// The process exit code of this run.
    pub exit_code: i32,
    /// Totals over every request.
    pub totals: Totals,
    /// Per (name, method).
    pub requests: Vec<RequestStats>,
    /// Threshold verdicts.
    pub thresholds: Vec<serde_json::Value>,
    /// Assertions.
    pub assertions: Vec<serde_json::Value>,
    /// Checks.
    pub checks: Vec<serde_json::Value>,
    /// Phases.
    pub phases: Vec<serde_json::Value>,
    /// Failed requests by kind (`status 503`, `timeout`).
    pub errors_by_kind: BTreeMap<String, u64>,
    /// Script errors in iterations: rendered diagnostic and count.
    pub iteration_errors: Vec<serde_json::Value>,
    /// One row per second.
    pub history: Vec<serde_json::Value>,
    /// Every metric of the run (built-in, protocol and custom) by name: kind, unit,
    /// protocol, description and statistics (HDR histogram for trends).
    #[serde(default)]
    pub metrics: BTreeMap<String, super::metrics::MetricSummary>,
    /// Figures the script reported (`report(name, value)`), by name.
    #[serde(default)]
    pub figures: serde_json::Map<String, serde_json::Value>,
    /// The comparison with `--baseline`, when one was judged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<serde_json::Value>,
    /// Warnings raised during the run (e.g. too many distinct request names).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Results per group (`group(name, ...)`), when the script has groups.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<serde_json::Value>,
    /// Results per weighted task, when a phase has tasks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<serde_json::Value>,
    /// The threshold with `abort_on_fail` that stopped the run: selector, condition,
    /// observed, at_s, origin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aborted: Option<serde_json::Value>,
    /// How the load was set from outside the script: `level`, `overrides`, `seed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load: Option<serde_json::Value>,
}

/// Run totals.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Totals {
    /// Requests sent.
    pub requests: u64,
    /// Logical requests failed.
    pub failures: u64,
    /// failures / logical requests.
    pub error_rate: f64,
    /// Requests per second.
    pub rps: f64,
    /// Latency in ms: `mean`, `min`, `max`, `p50` ... `p100` (keys as in [`pct_key`]).
    pub latency_ms: BTreeMap<String, f64>,
}

/// One request name's statistics.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RequestStats {
    /// `name` tag.
    pub name: String,
    /// Method.
    pub method: String,
    /// Requests sent.
    pub count: u64,
    /// Logical requests failed.
    pub failures: u64,
    /// Logical requests.
    pub logical: u64,
    /// failures / logical.
    pub error_rate: f64,
    /// Requests per second.
    pub rps: f64,
    /// Latency in ms, keys as in [`Totals::latency_ms`].
    pub latency_ms: BTreeMap<String, f64>,
    /// excellent, good, acceptable or poor (README, "Grades").
    #[serde(default)]
    pub grade: Option<String>,
    /// The HDR histogram of latency in microseconds (values x1000 of ms), V2 deflate
    /// serialized, base64 (standard alphabet).
    pub hdr_histogram: Option<String>,
}

/// `p50`, `p99.9`, `p100`.
pub fn pct_key(p: f64) -> String {
    format!("p{p}")
}

/// A trend's latency table: mean, min, max and the [`PERCENTILES`] (`p50` ... `p100`).
pub fn latency(sink: &Sink) -> BTreeMap<String, f64> {
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

/// Rounded to 3 decimals, as the documents carry figures.
pub fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// A trend's HDR histogram, V2 deflate serialized, base64 (standard alphabet).
pub fn hdr_base64(sink: &Sink) -> Option<String> {
    let Sink::Trend(t) = sink else { return None };
    let mut buf = Vec::new();
    let mut ser = hdrhistogram::serialization::V2DeflateSerializer::new();
    hdrhistogram::serialization::Serializer::serialize(&mut ser, &t.hist, &mut buf).ok()?;
    Some(base64::engine::general_purpose::STANDARD.encode(buf))
}

/// Decodes a [`RequestStats::hdr_histogram`] back into a histogram.
pub fn decode_hdr(text: &str) -> Result<hdrhistogram::Histogram<u64>, String> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(text).map_err(|e| format!("bad base64: {e}"))?;
    let mut hist: hdrhistogram::Histogram<u64> = hdrhistogram::serialization::Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| format!("bad HDR histogram: {e:?}"))?;
    // A decoded histogram has a fixed range: merging a part with larger values into it
    // would fail. Grow like the ones a run records into.
    hist.auto(true);
    Ok(hist)
}

fn to_values<T: Serialize>(items: &[T]) -> Vec<serde_json::Value> {
    items.iter().filter_map(|i| serde_json::to_value(i).ok()).collect()
}

/// Builds the document.
pub fn document(report: &RunReport, meta: &RunMeta) -> RunDoc {
    let agg = &report.aggregate;
    let secs = report.elapsed.as_secs_f64().max(1e-9);
    let durations = super::request_durations(agg);
    let requests = report
        .requests
        .iter()
        .map(|r| {
            let sink = durations.get(&(r.name.clone(), r.method.clone()));
            RequestStats {
                name: r.name.clone(),
                method: r.method.clone(),
                count: r.count,
                failures: r.failures,
                logical: r.logical,
                error_rate: ratio(r.failures, r.logical),
                rps: round3(r.rps),
                grade: Some(meta.bands.grade_row(r).as_str().to_string()),
                latency_ms: sink.map(latency).unwrap_or_default(),
                hdr_histogram: sink.and_then(hdr_base64),
            }
        })
        .collect();
    let all = agg.query("http_req_duration", &[]);
    let (failures, logical) = match agg.query("http_req_failed", &[]) {
        Some(Sink::Rate(r)) => (r.trues, r.total),
        _ => (0, 0),
    };
    let count = all.as_ref().and_then(|s| s.stat(Stat::Count, Duration::ZERO).ok().flatten()).unwrap_or(0.0) as u64;
    let started: time::OffsetDateTime = report.started_at.into();
    RunDoc {
        schema: SCHEMA.into(),
        volley_version: meta.version.clone(),
        id: meta.id.clone(),
        script: meta.script.clone(),
        target: meta.target.clone(),
        started_at: started.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
        elapsed_s: round3(report.elapsed.as_secs_f64()),
        time_scale: report.time_scale,
        workers: report.workers,
        verdict: super::verdict_word(report).into(),
        exit_code: report.exit.code(),
        totals: Totals {
            requests: count,
            failures,
            error_rate: ratio(failures, logical),
            rps: round3(count as f64 / secs),
            latency_ms: all.as_ref().map(latency).unwrap_or_default(),
        },
        requests,
        thresholds: to_values(&report.thresholds),
        assertions: to_values(&report.assertions),
        checks: to_values(&report.checks),
        phases: to_values(&report.phases),
        errors_by_kind: crate::engine::judge::failure_kinds(agg, &[]),
        iteration_errors: report
            .iteration_errors
            .iter()
            .map(|e| serde_json::json!({ "count": e.count, "rendered": e.rendered }))
            .collect(),
        history: to_values(&agg.history()),
        metrics: super::metrics::summarise(report).into_iter().map(|m| (m.name.clone(), m)).collect(),
        figures: report.figures.iter().map(|f| (f.name.clone(), f.value.clone())).collect(),
        baseline: report
            .baseline
            .as_ref()
            .map(|b| serde_json::json!({ "file": b.file, "regressed": b.regressed, "comparison": b.rendered })),
        warnings: report.warnings.clone(),
        groups: to_values(&report.groups),
        tasks: to_values(&report.tasks),
        aborted: report.aborted.as_ref().and_then(|a| serde_json::to_value(a).ok()),
        load: super::load_line(report)
            .map(|_| serde_json::json!({ "level": report.level, "overrides": report.overrides, "seed": report.seed })),
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { (a as f64 / b as f64 * 1e6).round() / 1e6 }
}

/// Reads a `volley.run/1` file, checking the schema.
pub fn read(path: &std::path::Path) -> Result<RunDoc, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let doc: RunDoc = serde_json::from_str(&text)
        .map_err(|e| format!("{}: not a volley run result (schema {SCHEMA}): {e}", path.display()))?;
    if doc.schema != SCHEMA {
        return Err(format!("{}: schema {:?}, expected {SCHEMA}", path.display(), doc.schema));
    }
    Ok(doc)
}

/// `--out json=FILE`.
pub struct JsonOutput {
    /// The file.
    pub path: PathBuf,
}

impl Output for JsonOutput {
    fn finish(&self, report: &RunReport, meta: &RunMeta) -> Result<Vec<String>, String> {
        let doc = document(report, meta);
        let text = serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())? + "\n";
        super::write_file(&self.path, &text)?;
        Ok(vec![self.path.display().to_string()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixture;

    #[test]
    fn the_document_round_trips_and_carries_mergeable_histograms() {
        let report = fixture::report();
        let doc = document(&report, &fixture::meta());
        let text = serde_json::to_string_pretty(&doc).unwrap();
        let back: RunDoc = serde_json::from_str(&text).unwrap();
        assert_eq!(back.schema, "volley.run/1");
        assert_eq!((back.totals.requests, back.totals.failures), (150, 5));
        assert_eq!(back.verdict, "failed");
        assert_eq!(back.errors_by_kind.get("status 503"), Some(&5));
        let login = back.requests.iter().find(|r| r.name == "login").unwrap();
        let mut hist = decode_hdr(login.hdr_histogram.as_ref().unwrap()).unwrap();
        assert_eq!(hist.len(), 100);
        // A histogram read back grows: a merged part's larger values are not lost.
        let mut bigger = hdrhistogram::Histogram::<u64>::new(3).unwrap();
        bigger.record(3_600_000_000).unwrap();
        hist.add(&bigger).unwrap();
        assert_eq!(hist.len(), 101);
        assert_eq!(login.latency_ms["p100"], 109.0);
        // Everything but the opaque histograms is stable: snapshot it.
        let mut value = serde_json::to_value(&doc).unwrap();
        for r in value["requests"].as_array_mut().unwrap() {
            r["hdr_histogram"] = serde_json::json!("<base64>");
        }
        for h in value["history"].as_array_mut().unwrap() {
            h["t_s"] = serde_json::json!(0.0);
        }
        for m in value["metrics"].as_object_mut().unwrap().values_mut() {
            if m.get("hdr_histogram").is_some() {
                let hist = decode_hdr(m["hdr_histogram"].as_str().unwrap()).unwrap();
                assert_eq!(hist.len(), 150);
                m["hdr_histogram"] = serde_json::json!("<base64>");
            }
        }
        insta::assert_snapshot!(serde_json::to_string_pretty(&value).unwrap());
    }
}
