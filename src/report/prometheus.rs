//! `--out prometheus=URL`: the run's figures in the Prometheus text exposition format,
//! pushed to a Pushgateway (`POST URL/metrics/job/<job>/instance/<instance>`) at the
//! end, and with `?live=1` also once a second during the run from a thread of its own
//! (fed by the ticker through a bounded channel: a stalled gateway loses rows, it never
//! slows the VUs). Query parameters: `job` (default `volley`), `instance` (default the
//! script id), `live`.

use super::{Output, RunMeta};
use crate::engine::RunReport;
use crate::metrics::{IntervalRow, Sink, Stat};
use std::fmt::Write as _;
use std::time::Duration;

/// Where to push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gateway {
    /// `http://host:9091` (no trailing slash, no query).
    pub base: String,
    /// The `job` grouping label.
    pub job: String,
    /// The `instance` grouping label (None: the script id).
    pub instance: Option<String>,
    /// Also push every interval.
    pub live: bool,
}

impl Gateway {
    /// Parses `http://host:9091?job=j&instance=i&live=1`.
    pub fn parse(target: &str) -> Result<Gateway, String> {
        let mut u = url::Url::parse(target).map_err(|e| format!("invalid Pushgateway URL {target:?}: {e}"))?;
        if u.scheme() != "http" {
            return Err(format!("invalid Pushgateway URL {target:?}: only http:// is supported"));
        }
        let (mut job, mut instance, mut live) = ("volley".to_string(), None, false);
        for (k, v) in u.query_pairs() {
            match &*k {
                "job" => job = v.into_owned(),
                "instance" => instance = Some(v.into_owned()),
                "live" => live = !matches!(&*v, "0" | "false" | "no"),
                other => {
                    return Err(format!(
                        "Pushgateway URL {target:?}: unknown parameter `{other}` (job, instance, live)"
                    ));
                }
            }
        }
        u.set_query(None);
        Ok(Gateway { base: u.as_str().trim_end_matches('/').to_string(), job, instance, live })
    }

    /// The push URL for a script.
    pub fn url(&self, id: &str) -> String {
        let seg = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>().replace('+', "%20");
        format!("{}/metrics/job/{}/instance/{}", self.base, seg(&self.job), seg(self.instance.as_deref().unwrap_or(id)))
    }
}

fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn num(v: f64) -> String {
    // Microsecond resolution is all a latency carries; it also keeps float noise
    // (0.08403100000000001) out of the text.
    if v.is_finite() { format!("{}", (v * 1e6).round() / 1e6) } else { "NaN".into() }
}

struct Text(String);

impl Text {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}").ok();
    }
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], v: f64) {
        let l: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", label(v))).collect();
        if l.is_empty() {
            writeln!(self.0, "{name} {}", num(v)).ok();
        } else {
            writeln!(self.0, "{name}{{{}}} {}", l.join(","), num(v)).ok();
        }
    }
}

/// The end-of-run exposition: latency p50/p95/p99, throughput, error rate per request
/// name and overall (`request="all"`), thresholds passed and the violation count.
pub fn exposition(report: &RunReport) -> String {
    let mut t = Text(String::new());
    let secs = report.elapsed.as_secs_f64().max(1e-9);
    let agg = &report.aggregate;
    let durations = super::request_durations(agg);
    let all = agg.query("http_req_duration", &[]);
    let mut rows: Vec<(String, Option<&Sink>, f64, u64, u64)> = vec![];
    let (failures, logical) = match agg.query("http_req_failed", &[]) {
        Some(Sink::Rate(r)) => (r.trues, r.total),
        _ => (0, 0),
    };
    let count = report.requests.iter().map(|r| r.count).sum::<u64>();
    rows.push(("all".into(), all.as_ref(), count as f64 / secs, failures, logical));
    for r in &report.requests {
        let sink = durations.get(&(r.name.clone(), r.method.clone()));
        rows.push((format!("{} {}", r.method, r.name), sink, r.rps, r.failures, r.logical));
    }
    t.family("volley_http_req_duration_seconds", "summary", "HTTP request latency over the run.");
    for (req, sink, ..) in &rows {
        let Some(sink) = sink else { continue };
        let stat = |st: Stat| sink.stat(st, Duration::ZERO).ok().flatten();
        for (q, p) in [("0.5", 50.0), ("0.95", 95.0), ("0.99", 99.0)] {
            if let Some(v) = stat(Stat::Percentile(p)) {
                t.sample("volley_http_req_duration_seconds", &[("request", req), ("quantile", q)], v / 1000.0);
            }
        }
        let count = stat(Stat::Count).unwrap_or(0.0);
        let sum = stat(Stat::Avg).unwrap_or(0.0) * count / 1000.0;
        t.sample("volley_http_req_duration_seconds_sum", &[("request", req)], sum);
        t.sample("volley_http_req_duration_seconds_count", &[("request", req)], count);
    }
    t.family("volley_http_requests_per_second", "gauge", "HTTP requests per second over the run.");
    for (req, _, rps, ..) in &rows {
        t.sample("volley_http_requests_per_second", &[("request", req)], *rps);
    }
    t.family("volley_http_error_ratio", "gauge", "Share of logical HTTP requests that failed (0 to 1).");
    for (req, _, _, f, l) in &rows {
        t.sample("volley_http_error_ratio", &[("request", req)], if *l == 0 { 0.0 } else { *f as f64 / *l as f64 });
    }
    let metrics = super::metrics::summarise(report);
    if !metrics.is_empty() {
        t.family(
            "volley_metric",
            "gauge",
            "Every metric of the run (built-in, protocol, custom) by name and statistic, in its own unit.",
        );
        for m in &metrics {
            for (stat, v) in &m.stats {
                t.sample("volley_metric", &[("metric", &m.name), ("stat", stat), ("unit", &m.unit)], *v);
            }
        }
    }
    let numbers: Vec<_> = report.figures.iter().filter_map(|f| f.value.as_f64().map(|v| (&f.name, v))).collect();
    if !numbers.is_empty() {
        t.family("volley_figure", "gauge", "Numeric figures the script reported with report(name, value).");
        for (name, v) in numbers {
            t.sample("volley_figure", &[("name", name)], v);
        }
    }
    let violations = report.thresholds.iter().filter(|t| !t.passed).count()
        + report.assertions.iter().filter(|a| !a.passed).count()
        + usize::from(report.baseline.as_ref().is_some_and(|b| b.regressed));
    t.family(
        "volley_thresholds_passed",
        "gauge",
        "1 when every threshold, assertion and the baseline held (the SLO passed), else 0.",
    );
    t.sample("volley_thresholds_passed", &[], if violations == 0 { 1.0 } else { 0.0 });
    t.family("volley_threshold_violations", "gauge", "Thresholds, assertions and baseline comparisons that failed.");
    t.sample("volley_threshold_violations", &[], violations as f64);
    t.family("volley_run_duration_seconds", "gauge", "Wall time of the run.");
    t.sample("volley_run_duration_seconds", &[], report.elapsed.as_secs_f64());
    t.family(
        "volley_run_exit_code",
        "gauge",
        "The run's exit code (0 passed, 99 failed, 107 script error, 130 interrupted).",
    );
    t.sample("volley_run_exit_code", &[], f64::from(report.exit.code()));
    t.0
}

/// One interval's exposition (the live push).
pub fn interval_exposition(row: &IntervalRow) -> String {
    let mut t = Text(String::new());
    t.family("volley_vus", "gauge", "Virtual users running.");
    t.sample("volley_vus", &[], row.vus as f64);
    t.family("volley_interval_requests_per_second", "gauge", "HTTP requests completed in the last second.");
    t.sample("volley_interval_requests_per_second", &[], row.requests as f64);
    t.family("volley_interval_failures_per_second", "gauge", "Failed HTTP requests in the last second.");
    t.sample("volley_interval_failures_per_second", &[], row.failures as f64);
    t.family("volley_interval_http_req_duration_seconds", "gauge", "HTTP latency percentile of the last second.");
    for (p, v) in [("50", row.p50_ms), ("95", row.p95_ms), ("99", row.p99_ms)] {
        if let Some(v) = v {
            t.sample("volley_interval_http_req_duration_seconds", &[("percentile", p)], v / 1000.0);
        }
    }
    t.0
}

fn push(url: &str, text: &str) -> Result<(), String> {
    match super::push::post(url, "text/plain; version=0.0.4", text)? {
        s if (200..300).contains(&s) => Ok(()),
        s => Err(format!("{url}: the Pushgateway answered {s}")),
    }
}

/// `--out prometheus=URL`: the end-of-run push.
pub struct PrometheusOutput {
    /// Where.
    pub gateway: Gateway,
}

impl Output for PrometheusOutput {
    fn finish(&self, report: &RunReport, meta: &RunMeta) -> Result<Vec<String>, String> {
        let url = self.gateway.url(&meta.id);
        push(&url, &exposition(report))?;
        Ok(vec![url])
    }
}

/// The live push during a run: a thread of its own reading intervals from the ticker.
pub struct LivePush {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl LivePush {
    /// Starts pushing every interval sent to the returned listener (give it to the
    /// run's [`crate::engine::RunConfig::listeners`]); the thread ends when the run
    /// drops the listener.
    pub fn start(gateway: &Gateway, id: &str) -> (LivePush, crate::engine::progress::IntervalListener) {
        // Two rows of slack: a gateway slower than one push a second loses rows.
        let (tx, rx) = std::sync::mpsc::sync_channel::<IntervalRow>(2);
        let url = gateway.url(id);
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let _ = std::thread::Builder::new().name("volley-prometheus".into()).spawn(move || {
            let mut warned = false;
            for row in rx {
                if stopped.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                if let Err(e) = push(&url, &interval_exposition(&row))
                    && !warned
                {
                    warned = true;
                    eprintln!("volley: live Prometheus push failed (the run goes on): {e}");
                }
            }
        });
        (LivePush { stop }, tx)
    }

    /// Stops pushing without waiting: rows still queued are dropped and a push in
    /// flight ends on its own timeout (the end-of-run push follows right away).
    pub fn stop(self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Runs `promtool check metrics` on an exposition text: `Err` with what promtool said
/// unless it accepts the text without a remark (the tests' check of every text volley
/// pushes).
pub fn promtool_check(promtool: &std::path::Path, text: &str) -> Result<(), String> {
    use std::io::Write;
    let mut child = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", promtool.display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(text.as_bytes()).map_err(|e| format!("cannot write to promtool: {e}"))?;
    }
    let out = child.wait_with_output().map_err(|e| format!("promtool: {e}"))?;
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if out.status.success() && said.trim().is_empty() { Ok(()) } else { Err(format!("promtool: {said}\n{text}")) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixture;

    #[test]
    fn the_exposition_is_stable() {
        insta::assert_snapshot!(exposition(&fixture::report()));
    }

    #[test]
    fn texts_pass_promtool_check_metrics() {
        let promtool = std::path::Path::new("/usr/bin/promtool");
        if !promtool.exists() {
            // Under CI a green run must mean this ran.
            let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
            assert!(!ci, "promtool is not installed, and CI=true requires every test to run (.ci/run installs it)");
            eprintln!("skipped: /usr/bin/promtool is not installed (.ci/run installs it)");
            return;
        }
        let row = IntervalRow { t_s: 1.0, requests: 10, failures: 1, vus: 2, p50_ms: Some(3.0), ..Default::default() };
        for text in [exposition(&fixture::report()), interval_exposition(&row)] {
            promtool_check(promtool, &text).unwrap();
        }
    }

    #[test]
    fn gateway_urls_carry_job_and_instance() {
        let g = Gateway::parse("http://127.0.0.1:9091/").unwrap();
        assert_eq!(g.url("PZ-1"), "http://127.0.0.1:9091/metrics/job/volley/instance/PZ-1");
        let g = Gateway::parse("http://gw:9091?job=nightly&instance=ci 7&live=1").unwrap();
        assert!(g.live);
        assert_eq!(g.url("PZ-1"), "http://gw:9091/metrics/job/nightly/instance/ci%207");
        assert!(Gateway::parse("http://gw:9091?jb=x").unwrap_err().contains("unknown parameter `jb`"));
        assert!(Gateway::parse("https://gw").is_err());
    }
}
