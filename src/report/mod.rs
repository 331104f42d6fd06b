//! Outputs of a run. Each reads the finished [`crate::engine::RunReport`] (built from
//! the one aggregate), never raw samples. `--out KIND=TARGET` picks them; every file
//! output implements [`Output`].

pub mod compare;
pub mod csv;
pub mod dashboard;
pub mod grade;
pub mod html;
pub mod json;
pub mod junit;
pub mod markdown;
pub mod merge;
pub mod metrics;
pub mod notify;
pub mod prometheus;
pub mod push;
pub mod suite;
pub mod summary;

use crate::engine::RunReport;
use crate::metrics::{Aggregate, Sink};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What a report says about the run besides the numbers.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RunMeta {
    /// The script's id (`PZ-14802`), or its file stem.
    pub id: String,
    /// The script's path as given.
    pub script: String,
    /// The system under test (`BASE_URL`), when set.
    pub target: Option<String>,
    /// The time scale (1 = unscaled).
    pub time_scale: f64,
    /// volley's version.
    pub version: String,
    /// Grading bands for request names.
    pub bands: grade::Bands,
}

/// One output of a finished run (`--out KIND=TARGET`).
pub trait Output {
    /// Writes the output; returns what was written (paths or URLs), for the log line.
    fn finish(&self, report: &RunReport, meta: &RunMeta) -> Result<Vec<String>, String>;
}

/// The kinds `--out` accepts.
pub const KINDS: &[&str] = &["json", "csv", "md", "html", "prometheus"];

/// A parsed `--out KIND=TARGET`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutSpec {
    /// `json`, `csv`, `md`, `html` or `prometheus`.
    pub kind: String,
    /// A file (json, md, html), a file prefix (csv) or a Pushgateway URL (prometheus).
    pub target: String,
}

/// Parses `KIND=TARGET`, e.g. `json=run.json`, naming the problem and the valid kinds.
pub fn parse_out(s: &str) -> Result<OutSpec, String> {
    let Some((kind, target)) = s.split_once('=') else {
        return Err(format!("expected KIND=TARGET such as json=run.json, got {s:?}; kinds: {}", KINDS.join(", ")));
    };
    let kind = kind.trim().to_ascii_lowercase();
    if !KINDS.contains(&kind.as_str()) {
        let hint = match crate::script::opts::did_you_mean(&kind, KINDS.iter().copied()) {
            Some(k) => format!("did you mean `{k}`?"),
            None => format!("kinds: {}", KINDS.join(", ")),
        };
        return Err(format!("unknown output kind `{kind}` in {s:?}; hint: {hint}"));
    }
    if target.trim().is_empty() {
        return Err(format!("output `{kind}` needs a target, e.g. {kind}=results/run"));
    }
    if kind == "prometheus" {
        prometheus::Gateway::parse(target)?;
    }
    Ok(OutSpec { kind, target: target.to_string() })
}

impl OutSpec {
    /// The output for one script: in a suite, file targets get the script id inserted
    /// before the extension (`report.md` -> `report-PZ-14802.md`, `results/run` ->
    /// `results/run-PZ-14802`).
    pub fn for_script(&self, id: Option<&str>) -> Box<dyn Output> {
        if self.kind == "prometheus" {
            // Checked by parse_out; the script id is the default instance label.
            let gateway = prometheus::Gateway::parse(&self.target).unwrap_or_else(|_| prometheus::Gateway {
                base: self.target.clone(),
                job: "volley".into(),
                instance: None,
                live: false,
            });
            return Box::new(prometheus::PrometheusOutput { gateway });
        }
        let target = match id {
            Some(id) => insert_id(&self.target, id),
            None => self.target.clone(),
        };
        let path = PathBuf::from(target);
        match self.kind.as_str() {
            "json" => Box::new(json::JsonOutput { path }),
            "csv" => Box::new(csv::CsvOutput { prefix: path }),
            "html" => Box::new(html::HtmlOutput { path }),
            _ => Box::new(markdown::MarkdownOutput { path }),
        }
    }
}

/// Starts the live outputs of one run (`prometheus=URL?live=1`) with the listeners to
/// give the run; stop them after it.
pub fn start_live(
    specs: &[OutSpec],
    id: &str,
) -> Vec<(prometheus::LivePush, crate::engine::progress::IntervalListener)> {
    specs
        .iter()
        .filter(|s| s.kind == "prometheus")
        .filter_map(|s| prometheus::Gateway::parse(&s.target).ok())
        .filter(|g| g.live)
        .map(|g| prometheus::LivePush::start(&g, id))
        .collect()
}

/// `report.html` + `PZ-1` -> `report-PZ-1.html`; `results/run` -> `results/run-PZ-1`.
pub fn insert_id(target: &str, id: &str) -> String {
    let path = Path::new(target);
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let name = match path.extension() {
        Some(ext) => format!("{stem}-{id}.{}", ext.to_string_lossy()),
        None => format!("{stem}-{id}"),
    };
    path.with_file_name(name).to_string_lossy().into_owned()
}

/// Writes a file, creating its directory.
pub fn write_file(path: &Path, text: &str) -> Result<(), String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// `http_req_duration` merged per (name, method), as the request table groups it.
pub fn request_durations(agg: &Aggregate) -> BTreeMap<(String, String), Sink> {
    let mut out: BTreeMap<(String, String), Sink> = BTreeMap::new();
    for (tags, sink) in agg.series_of("http_req_duration") {
        let key = (tags.get("name").unwrap_or("").to_string(), tags.get("method").unwrap_or("").to_string());
        match out.get_mut(&key) {
            Some(acc) => acc.merge(sink),
            None => {
                out.insert(key, sink.clone());
            }
        }
    }
    out
}

/// How the load was set from outside the script, in one line ("level smoke · --vus 5
/// (every phase) · seed 42"); `None` when nothing was.
pub fn load_line(report: &RunReport) -> Option<String> {
    let mut parts = Vec::new();
    if let Some(l) = &report.level {
        parts.push(format!("level {l}"));
    }
    if let Some(o) = &report.overrides {
        parts.push(format!("overrides {o}"));
    }
    if let Some(s) = report.seed {
        parts.push(format!("seed {s}"));
    }
    (!parts.is_empty()).then(|| parts.join(" · "))
}

/// The columns of a per-group or per-task table (`tag` is `group` or `task`).
pub fn breakdown_header(tag: &str) -> Vec<&'static str> {
    if tag == "group" {
        vec!["group", "calls", "requests", "failed", "checks", "avg", "p95", "http p95"]
    } else {
        vec!["task", "iterations", "share", "requests", "failed", "errors", "checks", "avg", "p95", "http p95"]
    }
}

/// The cells of a per-group or per-task table, as text (durations in ms).
pub fn breakdown_cells(rows: &[crate::engine::judge::BreakdownRow], tag: &str) -> Vec<Vec<String>> {
    let ms = |v: Option<f64>| v.map(|v| format!("{v:.2}ms")).unwrap_or_else(|| "-".into());
    rows.iter()
        .map(|r| {
            let checks = if r.checks_passed + r.checks_failed > 0 {
                format!("{}/{}", r.checks_passed, r.checks_passed + r.checks_failed)
            } else {
                "-".into()
            };
            let mut cells = vec![r.name.clone(), r.count.to_string()];
            if tag != "group" {
                cells.push(format!("{:.1}%", r.share * 100.0));
            }
            cells.push(r.requests.to_string());
            cells.push(r.failed.to_string());
            if tag != "group" {
                cells.push(r.errors.to_string());
            }
            cells.extend([checks, ms(r.duration_avg_ms), ms(r.duration_p95_ms), ms(r.http_p95_ms)]);
            cells
        })
        .collect()
}

/// A run's overall verdict word.
pub fn verdict_word(report: &RunReport) -> &'static str {
    use crate::engine::ExitCode;
    match report.exit {
        ExitCode::Passed if report.skipped.is_some() => "skipped",
        ExitCode::Passed => "passed",
        ExitCode::Failed => "failed",
        ExitCode::ScriptError | ExitCode::Usage => "error",
        ExitCode::Interrupted => "interrupted",
    }
}

/// Shared test fixtures: a small, deterministic report.
#[cfg(test)]
pub(crate) mod fixture {
    use crate::engine::judge::{self, CheckResult, ThresholdResult};
    use crate::engine::{ExitCode, RunReport};
    use crate::metrics::{Aggregate, Store, Str, Tags, builtin};
    use std::time::{Duration, UNIX_EPOCH};

    fn tags(pairs: &[(&str, &str)]) -> Tags {
        Tags::new(pairs.iter().map(|(k, v)| (Str::from(*k), Str::from(*v))).collect())
    }

    /// Two request names over 10 s: `login` 100 requests 10..=109 ms with 5 failures
    /// (503), `search` 50 requests 200..=249 ms.
    pub fn report() -> RunReport {
        let mut agg = Aggregate::new();
        let mut store = Store::new(agg.started());
        for i in 0..100u32 {
            let status = if i % 20 == 0 { "503" } else { "200" };
            let t = tags(&[("name", "login"), ("method", "POST"), ("status", status), ("phase", "peak")]);
            store.add(&builtin::HTTP_REQ_DURATION, &t, 10.0 + f64::from(i));
            store.add(&builtin::HTTP_REQS, &t, 1.0);
            store.add(&builtin::HTTP_REQ_FAILED, &t, if status == "503" { 1.0 } else { 0.0 });
        }
        for i in 0..50u32 {
            let t = tags(&[("name", "search"), ("method", "GET"), ("status", "200"), ("phase", "peak")]);
            store.add(&builtin::HTTP_REQ_DURATION, &t, 200.0 + f64::from(i));
            store.add(&builtin::HTTP_REQS, &t, 1.0);
            store.add(&builtin::HTTP_REQ_FAILED, &t, 0.0);
        }
        store.add_at(0, &builtin::VUS, &tags(&[("phase", "peak")]), 10.0);
        agg.merge(store.drain());
        let elapsed = Duration::from_secs(10);
        let _ = agg.finish(elapsed);
        RunReport {
            script: "scripts/pz_1_demo.rhai".into(),
            started_at: UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            elapsed,
            workers: 2,
            time_scale: 1.0,
            phases: Vec::new(),
            thresholds: vec![
                ThresholdResult {
                    selector: "http_req_duration".into(),
                    condition: "p(95) < 300".into(),
                    passed: true,
                    observed: Some(240.0),
                    origin: "scripts/pz_1_demo.rhai:4".into(),
                    error: None,
                    case: None,
                    detail: None,
                },
                ThresholdResult {
                    selector: "http_req_failed".into(),
                    condition: "rate < 0.01".into(),
                    passed: false,
                    observed: Some(0.0333),
                    origin: "scripts/pz_1_demo.rhai:5".into(),
                    error: None,
                    case: None,
                    detail: None,
                },
            ],
            assertions: Vec::new(),
            checks: vec![CheckResult { name: "status is 200".into(), passes: 145, fails: 5 }],
            requests: judge::requests(&agg, elapsed),
            iteration_errors: Vec::new(),
            script_error: None,
            interrupted: false,
            skipped: None,
            exit: ExitCode::Failed,
            had_script_error: false,
            warnings: Vec::new(),
            aggregate: agg,
            metrics: crate::metrics::series::builtin::descs(),
            baseline: None,
            figures: vec![crate::script::figures::Figure {
                name: "cleanup_s".into(),
                value: serde_json::json!(12.5),
                origin: "scripts/pz_1_demo.rhai:9".into(),
            }],
            groups: Vec::new(),
            tasks: Vec::new(),
            aborted: None,
            overrides: None,
            level: None,
            seed: None,
            agents: Vec::new(),
        }
    }

    /// Its metadata.
    pub fn meta() -> super::RunMeta {
        super::RunMeta {
            id: "PZ-1".into(),
            script: "scripts/pz_1_demo.rhai".into(),
            target: Some("http://127.0.0.1:8080".into()),
            time_scale: 1.0,
            version: "0.1.0".into(),
            bands: Default::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_specs_parse_and_unknown_kinds_suggest() {
        assert_eq!(parse_out("json=run.json").unwrap(), OutSpec { kind: "json".into(), target: "run.json".into() });
        let e = parse_out("jsn=run.json").unwrap_err();
        assert_eq!(e, "unknown output kind `jsn` in \"jsn=run.json\"; hint: did you mean `json`?");
        assert!(parse_out("run.json").unwrap_err().starts_with("expected KIND=TARGET"));
        assert!(parse_out("csv=").unwrap_err().contains("needs a target"));
    }

    #[test]
    fn suite_targets_get_the_script_id() {
        assert_eq!(insert_id("report.html", "PZ-14802"), "report-PZ-14802.html");
        assert_eq!(insert_id("results/run", "PZ-1"), "results/run-PZ-1");
        assert_eq!(insert_id("out/run.json", "PZ-1"), "out/run-PZ-1.json");
    }
}
