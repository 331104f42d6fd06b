//! `--dashboard [ADDR]`: a live page in the browser while a run goes (Locust's web UI,
//! k6's dashboard). A live output like `prometheus=...?live=1`: the run's ticker sends
//! each closed second's row to a listener with `try_send`, so the page never slows a VU.
//! The server (axum, its own thread and runtime) pushes a snapshot of the page's data
//! over SSE at every row; the charts are SVG drawn here with the HTML report's
//! [`super::html::line_chart`]. Nothing is fetched from the network: the page is embedded.
//!
//! A per-run token (random, printed with the URL) is needed by Stop, and by everything
//! when the server listens off loopback. The page never carries script source,
//! environment values or secrets: the script's path, figures from the metric stream, and
//! at the end the verdict and the HTML report (without the target, and with script
//! errors by their key instead of their source excerpt).

use super::RunMeta;
use super::html::{Line, line_chart};
use crate::engine::RunReport;
use crate::engine::progress::IntervalListener;
use crate::metrics::IntervalRow;
use crate::script::context::Stop;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The default address of `--dashboard`.
pub const DEFAULT_ADDR: &str = "127.0.0.1:5665";

/// The embedded page (inline CSS and script, no network).
const PAGE: &str = include_str!("dashboard.html");

/// Parses `--dashboard ADDR` (`HOST:PORT`, `:PORT` or `PORT`).
pub fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    let s = s.trim();
    let full = if let Some(port) = s.strip_prefix(':') {
        format!("127.0.0.1:{port}")
    } else if s.parse::<u16>().is_ok() {
        format!("127.0.0.1:{s}")
    } else {
        s.to_string()
    };
    let full = full.replacen("localhost:", "127.0.0.1:", 1);
    full.parse().map_err(|_| {
        format!(
            "expected an address such as {DEFAULT_ADDR}, :8089 or 0.0.0.0:5665, got {s:?}; hint: put the script \
             before --dashboard, or write --dashboard=ADDR"
        )
    })
}

/// The figures of one run, as the page shows them.
#[derive(Debug, Clone, Default, serde::Serialize)]
struct RunView {
    /// 1 for the first run of the dashboard, then 2, 3... (watch mode).
    run: u64,
    id: String,
    script: String,
    /// `running`, `finished` or `not started`.
    state: &'static str,
    elapsed_s: f64,
    requests: u64,
    failures: u64,
    iterations: u64,
    vus: u64,
    /// The last closed second's figures; at the end, the whole run's.
    rps: f64,
    failures_per_s: f64,
    p50_ms: Option<f64>,
    p95_ms: Option<f64>,
    p99_ms: Option<f64>,
    /// Every metric counted so far (custom and protocol ones included): name, total, last second.
    metrics: Vec<(String, f64, f64)>,
    /// The phase running now (live).
    phase: Option<String>,
    /// The phases seen running so far, in order (live).
    timeline: Vec<PhaseSpan>,
    /// Per request name and per phase, live: totals so far and the last second's figures.
    live: Vec<LiveGroup>,
    /// SVG charts.
    charts: Vec<String>,
    /// Set when the run ends.
    verdict: Option<String>,
    exit: Option<i32>,
    /// The request table (Locust's columns), thresholds, phases, errors and outputs at the end.
    table: Vec<crate::engine::judge::RequestRow>,
    thresholds: Vec<ThresholdView>,
    phases: Vec<PhaseView>,
    errors: Vec<(String, u64)>,
    outputs: Vec<String>,
    #[serde(skip)]
    rows: Vec<IntervalRow>,
    #[serde(skip)]
    totals: BTreeMap<String, f64>,
}

/// A phase on the live timeline: from when to when it was seen running.
#[derive(Debug, Clone, Default, serde::Serialize)]
struct PhaseSpan {
    name: String,
    from_s: f64,
    until_s: f64,
}

/// One request name or phase, live.
#[derive(Debug, Clone, Default, serde::Serialize)]
struct LiveGroup {
    /// `name` or `phase`.
    group: &'static str,
    key: String,
    requests: u64,
    failures: u64,
    /// The last second's rate and latency percentiles.
    rps: f64,
    p50_ms: Option<f64>,
    p95_ms: Option<f64>,
    p99_ms: Option<f64>,
}

#[derive(Debug, Clone, serde::Serialize)]
struct ThresholdView {
    criterion: String,
    passed: bool,
    observed: Option<f64>,
}

#[derive(Debug, Clone, serde::Serialize)]
struct PhaseView {
    name: String,
    executor: String,
    elapsed_s: f64,
    iterations: u64,
    vus_max: u64,
}

/// What the page shows: the current run and the one before it (watch mode).
#[derive(Debug, Default, serde::Serialize)]
struct PageData {
    current: Option<RunView>,
    previous: Option<RunView>,
    /// The HTML report of the current run once it has ended (also served at `/report`).
    report: Option<String>,
}

struct Shared {
    token: String,
    /// Everything needs the token (bound off loopback).
    guarded: bool,
    page: Mutex<PageData>,
    report_html: Mutex<Option<String>>,
    stop: Mutex<Option<Arc<Stop>>>,
    events: tokio::sync::broadcast::Sender<String>,
}

impl Shared {
    fn publish(&self) {
        let json = {
            let page = self.page.lock().unwrap_or_else(|e| e.into_inner());
            serde_json::to_string(&*page).unwrap_or_default()
        };
        let _ = self.events.send(json);
    }

    fn snapshot(&self) -> String {
        serde_json::to_string(&*self.page.lock().unwrap_or_else(|e| e.into_inner())).unwrap_or_default()
    }

    /// Whether a request may read the page: off loopback with the token, on loopback
    /// when its `Host` is local (or it has the token).
    fn may_read(&self, headers: &HeaderMap, query: &HashMap<String, String>) -> bool {
        if self.guarded {
            self.authorised(headers, query)
        } else {
            local_host(headers) || self.authorised(headers, query)
        }
    }

    fn authorised(&self, headers: &HeaderMap, query: &HashMap<String, String>) -> bool {
        let given =
            headers.get("x-volley-token").and_then(|v| v.to_str().ok()).or(query.get("token").map(String::as_str));
        given.is_some_and(|t| t.len() == self.token.len() && t.bytes().zip(self.token.bytes()).all(|(a, b)| a == b))
    }
}

/// A running dashboard: serves the page until dropped or [`Dashboard::close`]d.
pub struct Dashboard {
    shared: Arc<Shared>,
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// The thread that turns the current run's rows into figures.
    rows: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Dashboard {
    /// Binds `addr` and starts serving (its own thread and runtime).
    pub fn start(addr: SocketAddr) -> Result<Dashboard, String> {
        let token = new_token();
        let (events, _) = tokio::sync::broadcast::channel(16);
        let shared = Arc::new(Shared {
            token,
            guarded: !addr.ip().is_loopback(),
            page: Mutex::default(),
            report_html: Mutex::default(),
            stop: Mutex::default(),
            events,
        });
        let listener = std::net::TcpListener::bind(addr).map_err(|e| {
            format!("--dashboard: cannot listen on {addr}: {e}; hint: another address, e.g. --dashboard 127.0.0.1:0")
        })?;
        listener.set_nonblocking(true).map_err(|e| format!("--dashboard: {e}"))?;
        let addr = listener.local_addr().map_err(|e| format!("--dashboard: {e}"))?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("--dashboard: cannot start its runtime: {e}"))?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app = router(shared.clone());
        let thread = std::thread::Builder::new()
            .name("volley-dashboard".into())
            .spawn(move || {
                rt.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else { return };
                    let _ = axum::serve(listener, app)
                        .with_graceful_shutdown(async move {
                            let _ = rx.await;
                        })
                        .await;
                });
            })
            .map_err(|e| format!("--dashboard: cannot start its thread: {e}"))?;
        Ok(Dashboard { shared, addr, shutdown: Some(tx), thread: Some(thread), rows: Mutex::default() })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The per-run token (Stop, and everything off loopback, need it).
    pub fn token(&self) -> &str {
        &self.shared.token
    }

    /// The URL to open, with the token.
    pub fn url(&self) -> String {
        let host = if self.addr.ip().is_unspecified() { "127.0.0.1".to_string() } else { self.addr.ip().to_string() };
        let host = if self.addr.is_ipv6() && !self.addr.ip().is_unspecified() { format!("[{host}]") } else { host };
        format!("http://{host}:{}/?token={}", self.addr.port(), self.shared.token)
    }

    /// What Stop interrupts until a run begins (`volley run`: its stop handle, so a
    /// press before the script is loaded stops the run too).
    pub fn stop_with(&self, stop: Arc<Stop>) {
        *self.shared.stop.lock().unwrap_or_else(|e| e.into_inner()) = Some(stop);
    }

    /// A new run starts on the page (the current one becomes the previous one): returns
    /// the listener to give the run. `stop` is what the Stop button interrupts.
    pub fn begin_run(&self, id: &str, script: &str, stop: Arc<Stop>) -> IntervalListener {
        {
            let mut page = self.shared.page.lock().unwrap_or_else(|e| e.into_inner());
            let run = page.current.as_ref().map_or(1, |c| c.run + 1);
            if let Some(mut done) = page.current.take() {
                done.charts.clear();
                page.previous = Some(done);
            }
            page.current = Some(RunView {
                run,
                id: id.to_string(),
                script: script.to_string(),
                state: "running",
                ..RunView::default()
            });
            page.report = None;
        }
        *self.shared.stop.lock().unwrap_or_else(|e| e.into_inner()) = Some(stop);
        *self.shared.report_html.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.shared.publish();
        let (tx, rx) = std::sync::mpsc::sync_channel::<IntervalRow>(64);
        let shared = self.shared.clone();
        let forwarder = std::thread::Builder::new().name("volley-dashboard-rows".into()).spawn(move || {
            while let Ok(row) = rx.recv() {
                {
                    let mut page = shared.page.lock().unwrap_or_else(|e| e.into_inner());
                    let PageData { current, previous, .. } = &mut *page;
                    if let Some(view) = current.as_mut().filter(|v| v.state == "running") {
                        view.add(row, previous.as_ref());
                    }
                }
                shared.publish();
            }
        });
        *self.rows.lock().unwrap_or_else(|e| e.into_inner()) = forwarder.ok();
        tx
    }

    /// Waits (at most 2 s) until the rows of the run are on the page: the run has
    /// dropped its listeners, so the thread ends once it has read the last rows.
    fn drain_rows(&self) {
        let Some(t) = self.rows.lock().unwrap_or_else(|e| e.into_inner()).take() else { return };
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while !t.is_finished() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The run ended: the page shows its verdict, table, thresholds and the HTML report.
    /// `report` is borrowed mutably only to render the page's copy of the HTML report
    /// without script source; it is left as it was.
    pub fn finish_run(&self, report: &mut RunReport, meta: &RunMeta, outputs: Vec<String>) {
        self.drain_rows();
        let safe_meta = RunMeta { target: None, ..meta.clone() };
        let rendered: Vec<String> =
            report.iteration_errors.iter_mut().map(|e| std::mem::replace(&mut e.rendered, e.key.clone())).collect();
        let script_error = report.script_error.take();
        report.script_error = script_error.as_deref().map(without_source);
        let html = super::html::render(report, &safe_meta);
        report.script_error = script_error;
        for (e, r) in report.iteration_errors.iter_mut().zip(rendered) {
            e.rendered = r;
        }
        {
            let mut page = self.shared.page.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(view) = page.current.as_mut() {
                view.finish(report, outputs);
            }
            page.report = Some(html.clone());
        }
        *self.shared.report_html.lock().unwrap_or_else(|e| e.into_inner()) = Some(html);
        *self.shared.stop.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.shared.publish();
    }

    /// The run could not start (its diagnostic is on the terminal, not on the page: it
    /// quotes the script).
    pub fn fail_run(&self) {
        self.drain_rows();
        {
            let mut page = self.shared.page.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(view) = page.current.as_mut() {
                view.state = "not started";
                view.verdict = Some("error".into());
            }
        }
        *self.shared.stop.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.shared.publish();
    }

    /// Stops serving; pages that are open keep what they last received. Waits half a
    /// second for the last update to reach the pages that are connected.
    pub fn close(mut self) {
        if self.shared.events.receiver_count() > 0 {
            std::thread::sleep(Duration::from_millis(500));
        }
        self.shut();
    }

    fn shut(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            // An empty message ends the SSE streams, so the graceful shutdown does not
            // wait for the pages to go away.
            let _ = self.shared.events.send(String::new());
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            // SSE streams end when their sender does; the shutdown waits for them, so
            // do not wait for ever.
            let deadline = std::time::Instant::now() + Duration::from_secs(1);
            while !t.is_finished() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        self.shut();
    }
}

/// A diagnostic without its source excerpt: the message, the position and the hint stay,
/// the quoted lines (`14 |     let r = ...`) and carets go.
fn without_source(rendered: &str) -> String {
    let quoted = |l: &str| {
        let t = l.trim_start().trim_start_matches(|c: char| c.is_ascii_digit());
        t.trim_start().starts_with('|')
    };
    rendered.lines().filter(|l| !quoted(l)).collect::<Vec<_>>().join("\n")
}

/// Whether a request's `Host` names this machine (loopback binding): a page of another
/// site that rebinds its name to 127.0.0.1 is refused.
fn local_host(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else { return true };
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// 128 random bits as hex.
fn new_token() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..4).map(|_| format!("{:08x}", rng.random::<u32>())).collect()
}

impl RunView {
    fn add(&mut self, row: IntervalRow, previous: Option<&RunView>) {
        let span = (row.t_s - self.elapsed_s).max(1e-3);
        self.elapsed_s = row.t_s;
        self.requests += row.requests;
        self.failures += row.failures;
        self.iterations += row.iterations;
        self.vus = row.vus;
        self.rps = row.requests as f64 / span;
        self.failures_per_s = row.failures as f64 / span;
        (self.p50_ms, self.p95_ms, self.p99_ms) = (row.p50_ms, row.p95_ms, row.p99_ms);
        for (name, n) in &row.counts {
            *self.totals.entry(name.clone()).or_default() += n;
        }
        if row.phase.is_some() {
            self.phase = row.phase.clone();
        }
        if !row.errors.is_empty() {
            self.errors = row.errors.iter().map(|(k, n)| (k.clone(), *n)).collect();
        }
        // The phases so far: each phase from the first second it was seen running.
        if let Some(name) = &row.phase {
            match self.timeline.last_mut() {
                Some(p) if &p.name == name => p.until_s = row.t_s,
                _ => self.timeline.push(PhaseSpan {
                    name: name.clone(),
                    from_s: (row.t_s - span).max(0.0),
                    until_s: row.t_s,
                }),
            }
        }
        // Each threshold's standing on the run so far (the verdict comes at the end).
        if !row.thresholds.is_empty() {
            self.thresholds = row
                .thresholds
                .iter()
                .map(|t| ThresholdView { criterion: t.criterion.clone(), passed: t.passed, observed: t.observed })
                .collect();
        }
        // Groups not seen this second keep their totals and show no rate.
        for g in &mut self.live {
            (g.rps, g.p50_ms, g.p95_ms, g.p99_ms) = (0.0, None, None, None);
        }
        for g in &row.groups {
            let i = match self.live.iter().position(|l| l.group == g.group && l.key == g.key) {
                Some(i) => i,
                None => {
                    self.live.push(LiveGroup { group: g.group, key: g.key.clone(), ..LiveGroup::default() });
                    self.live.len() - 1
                }
            };
            let l = &mut self.live[i];
            l.requests += g.requests;
            l.failures += g.failures;
            l.rps = g.requests as f64 / span;
            (l.p50_ms, l.p95_ms, l.p99_ms) = (g.p50_ms, g.p95_ms, g.p99_ms);
        }
        self.live.sort_by(|a, b| (a.group, &a.key).cmp(&(b.group, &b.key)));
        self.metrics = self
            .totals
            .iter()
            .map(|(name, total)| (name.clone(), *total, row.counts.get(name).copied().unwrap_or(0.0) / span))
            .collect();
        self.rows.push(row);
        self.charts = charts(&self.rows, previous.map(|p| p.rows.as_slice()));
    }

    fn finish(&mut self, report: &RunReport, outputs: Vec<String>) {
        self.state = "finished";
        self.verdict = Some(super::verdict_word(report).to_string());
        self.exit = Some(report.exit.code());
        self.elapsed_s = report.elapsed.as_secs_f64();
        // The figures become the run's: rates over its length, HTTP latency over every
        // request (watch mode shows them beside the next run's).
        let secs = self.elapsed_s.max(1e-3);
        (self.rps, self.failures_per_s) = (self.requests as f64 / secs, self.failures as f64 / secs);
        if let Some(sink) = report.aggregate.query("http_req_duration", &[]) {
            let p = |q: f64| sink.stat(crate::metrics::Stat::Percentile(q), Duration::ZERO).ok().flatten();
            (self.p50_ms, self.p95_ms, self.p99_ms) = (p(50.0), p(95.0), p(99.0));
        }
        self.table = report.requests.clone();
        self.thresholds = report
            .thresholds
            .iter()
            .map(|t| ThresholdView {
                criterion: format!("{} {}", t.selector, t.condition),
                passed: t.passed,
                observed: t.observed,
            })
            .collect();
        self.phases = report
            .phases
            .iter()
            .map(|p| PhaseView {
                name: p.name.clone(),
                executor: p.executor.clone(),
                elapsed_s: p.elapsed.as_secs_f64(),
                iterations: p.iterations,
                vus_max: p.vus_max,
            })
            .collect();
        self.errors = crate::engine::judge::failure_kinds(&report.aggregate, &[]).into_iter().collect();
        self.errors.extend(report.iteration_errors.iter().map(|e| (e.key.clone(), e.count)));
        self.outputs = outputs;
    }
}

/// The live charts: throughput, VUs, latency (with the previous run's lines, in watch
/// mode), bytes, and every other metric counted per second (custom and protocol ones).
fn charts(rows: &[IntervalRow], previous: Option<&[IntervalRow]>) -> Vec<String> {
    let rate = |rows: &[IntervalRow], f: &dyn Fn(&IntervalRow) -> f64| -> Vec<(f64, f64)> {
        let mut prev = 0.0;
        rows.iter()
            .map(|r| {
                let span = (r.t_s - prev).max(1e-3);
                prev = r.t_s;
                (r.t_s, f(r) / span)
            })
            .collect()
    };
    let pts = |rows: &[IntervalRow], f: &dyn Fn(&IntervalRow) -> Option<f64>| -> Vec<(f64, f64)> {
        rows.iter().filter_map(|r| f(r).map(|v| (r.t_s, v))).collect()
    };
    let line = |label: &str, points| Line { label: label.to_string(), points: thin(points) };
    let mut throughput = vec![
        line("requests/s", rate(rows, &|r| r.requests as f64)),
        line("failures/s", rate(rows, &|r| r.failures as f64)),
    ];
    let mut latency = vec![
        line("p50", pts(rows, &|r| r.p50_ms)),
        line("p95", pts(rows, &|r| r.p95_ms)),
        line("p99", pts(rows, &|r| r.p99_ms)),
    ];
    if let Some(prev) = previous.filter(|p| !p.is_empty()) {
        throughput.push(line("prev. req/s", rate(prev, &|r| r.requests as f64)));
        latency.push(line("prev. p95", pts(prev, &|r| r.p95_ms)));
    }
    // Figures shown in the charts above are left out; bytes get a chart of their own.
    const SHOWN: &[&str] = &["http_reqs", "http_req_duration", "http_req_failed", "iterations", "iteration_duration"];
    let mut names: Vec<&String> = rows.iter().flat_map(|r| r.counts.keys()).collect();
    names.sort();
    names.dedup();
    let per_second = |n: &String, scale: f64| rate(rows, &|r| r.counts.get(n).copied().unwrap_or(0.0) / scale);
    let data: Vec<Line> =
        names.iter().filter(|n| n.starts_with("data_")).map(|n| line(n, per_second(n, 1000.0))).collect();
    let other: Vec<Line> = names
        .iter()
        .filter(|n| !n.starts_with("data_") && !SHOWN.contains(&n.as_str()))
        .take(8)
        .map(|n| line(n, per_second(n, 1.0)))
        .collect();
    vec![
        line_chart("Throughput", "per second", &throughput),
        line_chart("Virtual users", "VUs", &[line("VUs", pts(rows, &|r| Some(r.vus as f64)))]),
        line_chart("Latency", "ms", &latency),
        line_chart("Data transferred", "kB/s", &data),
        line_chart("Other metrics per second", "per second", &other),
    ]
}

/// At most [`MAX_POINTS`] points per line, each the highest of its stretch (peaks stay
/// visible): a snapshot of an hour's run (3,600 rows) is about 37 KB.
fn thin(points: Vec<(f64, f64)>) -> Vec<(f64, f64)> {
    if points.len() <= MAX_POINTS {
        return points;
    }
    let k = points.len().div_ceil(MAX_POINTS);
    points.chunks(k).filter_map(|c| c.iter().copied().reduce(|a, b| (b.0, a.1.max(b.1)))).collect()
}

/// See [`thin`].
const MAX_POINTS: usize = 300;

type Q = Query<HashMap<String, String>>;

fn router(shared: Arc<Shared>) -> axum::Router {
    axum::Router::new()
        .route("/", get(page))
        .route("/events", get(events))
        .route("/api/state", get(state))
        .route("/api/stop", post(stop))
        .route("/report", get(report))
        .with_state(shared)
}

fn denied() -> Response {
    (StatusCode::UNAUTHORIZED, "volley dashboard: this needs the token printed with the URL (?token=...)\n")
        .into_response()
}

async fn page(State(s): State<Arc<Shared>>, headers: HeaderMap, Query(q): Q) -> Response {
    if !s.may_read(&headers, &q) {
        return denied();
    }
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, "no-store")], PAGE).into_response()
}

async fn state(State(s): State<Arc<Shared>>, headers: HeaderMap, Query(q): Q) -> Response {
    if !s.may_read(&headers, &q) {
        return denied();
    }
    ([(header::CONTENT_TYPE, "application/json")], s.snapshot()).into_response()
}

async fn report(State(s): State<Arc<Shared>>, headers: HeaderMap, Query(q): Q) -> Response {
    if !s.may_read(&headers, &q) {
        return denied();
    }
    match s.report_html.lock().unwrap_or_else(|e| e.into_inner()).clone() {
        Some(html) => ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response(),
        None => (StatusCode::NOT_FOUND, "the run has not ended yet\n").into_response(),
    }
}

async fn stop(State(s): State<Arc<Shared>>, headers: HeaderMap, Query(q): Q) -> Response {
    if !s.authorised(&headers, &q) {
        return denied();
    }
    match s.stop.lock().unwrap_or_else(|e| e.into_inner()).clone() {
        Some(stop) => {
            if !stop.is_interrupted() {
                eprintln!("\nvolley: stopped from the dashboard, finishing up");
            }
            stop.interrupt();
            (StatusCode::ACCEPTED, "stopping\n").into_response()
        }
        None => (StatusCode::CONFLICT, "no run is going\n").into_response(),
    }
}

async fn events(State(s): State<Arc<Shared>>, headers: HeaderMap, Query(q): Q) -> Response {
    if !s.may_read(&headers, &q) {
        return denied();
    }
    let first = s.snapshot();
    let rx = s.events.subscribe();
    let stream = futures_util::stream::unfold((Some(first), rx), |(first, mut rx)| async move {
        if let Some(data) = first {
            return Some((Ok::<Event, std::convert::Infallible>(Event::default().data(data)), (None, rx)));
        }
        loop {
            match rx.recv().await {
                Ok(data) if data.is_empty() => return None,
                Ok(data) => return Some((Ok(Event::default().data(data)), (None, rx))),
                // A slow page skips to the newest snapshot.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_with_a_hint() {
        assert_eq!(parse_addr("127.0.0.1:5665").unwrap(), "127.0.0.1:5665".parse().unwrap());
        assert_eq!(parse_addr(":8089").unwrap(), "127.0.0.1:8089".parse().unwrap());
        assert_eq!(parse_addr("8089").unwrap(), "127.0.0.1:8089".parse().unwrap());
        assert_eq!(parse_addr("localhost:1").unwrap(), "127.0.0.1:1".parse().unwrap());
        let e = parse_addr("script.rhai").unwrap_err();
        assert!(e.contains("put the script before --dashboard"), "{e}");
    }

    #[test]
    fn rows_make_figures_and_charts_and_the_previous_run_is_kept() {
        let d = Dashboard::start("127.0.0.1:0".parse().unwrap()).unwrap();
        assert_eq!(d.token().len(), 32);
        assert!(d.url().ends_with(&format!("/?token={}", d.token())));
        let row = |t: f64, n: u64| IntervalRow {
            t_s: t,
            requests: n,
            failures: 1,
            vus: 3,
            p95_ms: Some(12.0),
            counts: [("ws_msgs".to_string(), 4.0)].into(),
            ..IntervalRow::default()
        };
        let mut view = RunView::default();
        view.add(row(1.0, 10), None);
        view.add(row(2.0, 30), None);
        assert_eq!((view.requests, view.failures, view.vus), (40, 2, 3));
        assert_eq!(view.rps, 30.0);
        assert_eq!(view.metrics, vec![("ws_msgs".to_string(), 8.0, 4.0)]);
        assert_eq!(view.charts.len(), 5);
        assert!(view.charts[4].contains("ws_msgs"), "{}", view.charts[4]);
        assert!(view.charts[0].contains("<polyline"), "{}", view.charts[0]);
        let with_prev = charts(&view.rows, Some(&view.rows));
        assert!(with_prev[0].contains("prev. req/s"));
        d.close();
    }

    #[test]
    fn diagnostics_lose_their_source_and_foreign_hosts_are_refused() {
        let d = "error: http::post: invalid URL\n --> a.rhai:14:19\n   |\n14 |     let r = http::post(x);\n   |                   ^\nhint: URLs start with http://";
        assert_eq!(
            without_source(d),
            "error: http::post: invalid URL\n --> a.rhai:14:19\nhint: URLs start with http://"
        );
        let host = |h: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::HOST, h.parse().unwrap());
            local_host(&m)
        };
        assert!(host("127.0.0.1:5665") && host("localhost:5665") && host("[::1]:5665") && host("localhost"));
        assert!(!host("evil.example:5665") && !host("10.0.0.2:5665"));
    }

    #[test]
    fn live_rows_carry_errors_by_kind_phases_names_and_thresholds() {
        let mut view = RunView::default();
        let mut row = |t: f64, phase: &str, errors: &[(&str, u64)]| {
            let mut r = IntervalRow { t_s: t, requests: 10, phase: Some(phase.into()), ..IntervalRow::default() };
            r.errors = errors.iter().map(|(k, n)| (k.to_string(), *n)).collect();
            r.groups = vec![crate::metrics::GroupRow {
                t_s: t,
                group: "name",
                key: "/ok".into(),
                requests: 10,
                p95_ms: Some(4.0),
                ..Default::default()
            }];
            r.thresholds = vec![crate::metrics::ThresholdStatus {
                criterion: "http_req_failed rate < 0.1".into(),
                passed: t < 3.0,
                observed: Some(0.05 * t),
            }];
            view.add(r, None);
        };
        row(1.0, "warm", &[]);
        row(2.0, "warm", &[("status 503", 2)]);
        row(3.0, "peak", &[("status 503", 5), ("timeout", 1)]);
        assert_eq!(view.errors, vec![("status 503".to_string(), 5), ("timeout".to_string(), 1)]);
        let spans: Vec<(&str, f64, f64)> =
            view.timeline.iter().map(|p| (p.name.as_str(), p.from_s, p.until_s)).collect();
        assert_eq!(spans, vec![("warm", 0.0, 2.0), ("peak", 2.0, 3.0)]);
        assert_eq!(view.phase.as_deref(), Some("peak"));
        assert_eq!((view.live[0].key.as_str(), view.live[0].requests, view.live[0].p95_ms), ("/ok", 30, Some(4.0)));
        assert!(!view.thresholds[0].passed);
    }

    #[test]
    fn long_runs_are_thinned_keeping_peaks() {
        let mut points: Vec<(f64, f64)> = (1..=3600).map(|t| (t as f64, 1.0)).collect();
        points[1800].1 = 50.0;
        let thinned = thin(points);
        assert!(thinned.len() <= MAX_POINTS, "{}", thinned.len());
        assert_eq!(thinned.last().unwrap().0, 3600.0);
        assert!(thinned.iter().any(|p| p.1 == 50.0));
        assert_eq!(thin(vec![(1.0, 2.0)]), vec![(1.0, 2.0)]);
    }
}
