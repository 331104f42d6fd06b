//! Where a native function finds its run: the run-wide state ([`RunShared`]), the
//! current thread's recorder and HTTP clients ([`ThreadCtx`]), and the virtual user it
//! runs for ([`VuCtx`]). Threads and VUs are published through thread-locals, set by the
//! worker before each coroutine resume, because Rhai calls natives without our context.

use super::http::{HttpClients, HttpSettings};
use super::judge::Judge;
use crate::metrics::{Aggregate, Metric, Store, Str, Tags};
use rhai::{Dynamic, EvalAltResult, FnPtr, Position};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Instant;

/// A flag other threads can wait on: set once, read cheaply, awaited without polling.
#[derive(Debug)]
pub struct Flag {
    set: AtomicBool,
    tx: tokio::sync::watch::Sender<bool>,
}

impl Default for Flag {
    fn default() -> Self {
        Flag { set: AtomicBool::new(false), tx: tokio::sync::watch::channel(false).0 }
    }
}

impl Flag {
    /// Sets the flag (idempotent) and wakes everything waiting on it.
    pub fn raise(&self) {
        self.set.store(true, Ordering::SeqCst);
        self.tx.send_replace(true);
    }

    /// Clears the flag.
    pub fn lower(&self) {
        self.set.store(false, Ordering::SeqCst);
        self.tx.send_replace(false);
    }

    /// Whether the flag is set.
    pub fn is_raised(&self) -> bool {
        self.set.load(Ordering::Relaxed)
    }

    /// Completes when the flag is set.
    pub fn wait(&self) -> impl std::future::Future<Output = ()> + 'static {
        let mut rx = self.tx.subscribe();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    }
}

/// How a run is being stopped: Ctrl-C or SIGTERM stop now, keep results, print the
/// summary.
#[derive(Debug, Default)]
pub struct Stop(Flag);

impl Stop {
    /// Requests an interruption (idempotent); wakes everything waiting on [`Stop::wait`].
    pub fn interrupt(&self) {
        self.0.raise();
    }

    /// Whether the run was interrupted.
    pub fn is_interrupted(&self) -> bool {
        self.0.is_raised()
    }

    /// Completes when the run is interrupted.
    pub fn wait(&self) -> impl std::future::Future<Output = ()> + 'static {
        self.0.wait()
    }

    /// Clears the flag, so the handle can stop the next run (after a threshold's
    /// `abort_on_fail` stopped this one: the next script of a suite still runs).
    pub fn clear(&self) {
        self.0.lower();
    }
}

/// A phase stopped early by the script (`stop_phase(reason)`): no new iterations start,
/// running ones finish. Reset at the start of every phase.
#[derive(Debug, Default)]
pub struct PhaseStop {
    flag: Flag,
    reason: Mutex<Option<String>>,
}

impl PhaseStop {
    /// Clears the flag (a new phase starts).
    pub fn reset(&self) {
        *self.reason.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.flag.lower();
    }

    /// Stops the running phase; the first reason wins.
    pub fn stop(&self, reason: &str) {
        self.reason.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert_with(|| reason.to_string());
        self.flag.raise();
    }

    /// Whether the running phase was stopped.
    pub fn is_stopped(&self) -> bool {
        self.flag.is_raised()
    }

    /// Why it was stopped.
    pub fn reason(&self) -> Option<String> {
        self.reason.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Completes when the running phase is stopped.
    pub fn wait(&self) -> impl std::future::Future<Output = ()> + 'static {
        self.flag.wait()
    }
}

/// A request from the script to run a phase, handed to the engine.
pub struct PhaseRequest {
    /// The phase's name (its `phase` tag).
    pub name: String,
    /// The executor options, as JSON.
    pub options: serde_json::Map<String, serde_json::Value>,
    /// The function every iteration calls.
    pub func: FnPtr,
    /// Where `phase(...)` was called, for errors.
    pub position: Position,
    /// Weighted tasks (`phase(name, options, #{ browse: 7, buy: 3 })`): each iteration
    /// runs one, chosen by weight; empty when the phase has one function.
    pub tasks: Vec<Task>,
}

/// One weighted task of a phase.
#[derive(Clone)]
pub struct Task {
    /// Its name (the `task` tag of what it records).
    pub name: String,
    /// Its relative weight (>= 0).
    pub weight: f64,
    /// What it runs.
    pub func: FnPtr,
}

/// The engine side of `phase(...)`: runs it on the workers and returns the result map.
pub trait PhaseRunner: Send + Sync {
    /// Runs a phase to completion (or interruption).
    fn run_phase(&self, request: PhaseRequest) -> Result<Dynamic, Box<EvalAltResult>>;
}

/// A script error raised inside an iteration, counted by where it happened.
#[derive(Debug, Clone)]
pub struct IterationError {
    /// What identifies the error (message, position and call chain).
    pub key: String,
    /// The rendered diagnostic (with source line and caret).
    pub rendered: String,
    /// How many iterations hit it.
    pub count: u64,
}

/// Renders a script error with its source context.
pub type RenderError = Box<dyn Fn(&EvalAltResult) -> String + Send + Sync>;

/// State shared by every thread of one run.
pub struct RunShared {
    /// The scenario file.
    pub script_path: PathBuf,
    /// `-e KEY=VALUE` overrides, looked up before the process environment.
    pub env: HashMap<String, String>,
    /// Run totals: every thread drains its [`Store`] in here.
    pub aggregate: Mutex<Aggregate>,
    /// When the run started: seconds of the history count from here.
    pub started: Instant,
    /// Ctrl-C and friends (the caller keeps a handle to interrupt the run).
    pub stop: Arc<Stop>,
    /// `stop_phase(reason)` for the running phase.
    pub phase_stop: PhaseStop,
    /// `skip(reason)`: the script could not run (e.g. no broker).
    pub skipped: Mutex<Option<String>>,
    /// Data files read by `data::*`, parsed once and shared by every VU.
    pub data: Mutex<HashMap<PathBuf, Dynamic>>,
    /// `test_case(name)`: the test case assertions and thresholds belong to.
    pub current_case: Mutex<Option<String>>,
    /// Checks, thresholds and assertions declared by the script.
    pub judge: Mutex<Judge>,
    /// HTTP defaults and per-target settings.
    pub http: HttpSettings,
    /// `--time-scale`: phases' durations and counts are multiplied by it.
    pub time_scale: f64,
    /// Script errors inside iterations, by message (first 100 distinct kept).
    pub iteration_errors: Mutex<Vec<IterationError>>,
    /// Set when a script error ended the run or an iteration.
    pub had_script_error: AtomicBool,
    /// The engine's phase runner (set once the workers are up).
    /// Cleared at the end of the run: the runner holds this state too.
    pub runner: Mutex<Option<Arc<dyn PhaseRunner>>>,
    /// Renders a Rhai error with source context (set by the loader).
    pub render_error: OnceLock<RenderError>,
    /// The broker URL set by `amqp::url(...)` (else `AMQP_URL`, else the default).
    pub amqp_url: RwLock<Option<String>>,
    /// The metrics this run knows (built-ins and the script's own).
    pub registry: crate::metrics::Registry,
    /// Figures the script reported (`report(name, value)`), in order.
    pub figures: Mutex<Vec<super::figures::Figure>>,
    /// Distinct operation names per protocol, capped (see [`NameCap`]).
    pub names: NameCap,
    /// Warnings about the run (printed once when raised, kept for every report).
    pub warnings: Mutex<Vec<String>>,
    /// `--seed`: each VU's random stream is derived from it (None: from OS entropy).
    pub seed: Option<u64>,
    /// Why a threshold with `abort_on_fail` stopped the run, once one did.
    pub aborted: Mutex<Option<super::judge::Abort>>,
    /// `--vus`, `--duration`, `--iterations`, `--rate` (`--phase`): the command line's
    /// load overrides.
    pub overrides: crate::executor::Overrides,
    /// `--level NAME`: the load level asked for.
    pub level_name: Option<String>,
    /// The chosen level, once its table is known (`--levels FILE` or `levels(...)`).
    pub level: Mutex<Option<super::levels::Level>>,
    /// The top level's configuration calls, for agents to replay (distributed runs).
    pub setup: Mutex<Vec<super::setup::SetupCall>>,
    /// On an agent: drained samples wait here to be sent to the coordinator instead of
    /// going into the aggregate.
    pub outbox: Option<Mutex<Vec<crate::metrics::series::Batch>>>,
}

/// The `name` tags a protocol may create: each distinct name is a row in every table
/// and a histogram per second, so 100,000 URLs with ids in them would take gigabytes.
/// Past the limit (`VOLLEY_MAX_NAMES`, default [`NameCap::DEFAULT_LIMIT`]) new names
/// are recorded as [`NameCap::OVERFLOW`], with one warning.
#[derive(Debug)]
pub struct NameCap {
    limit: usize,
    seen: Mutex<HashMap<&'static str, rustc_hash::FxHashSet<Str>>>,
}

impl NameCap {
    /// Distinct names per protocol kept by default.
    pub const DEFAULT_LIMIT: usize = 1000;
    /// The name that stands for every name past the limit.
    pub const OVERFLOW: &'static str = "{overflow}";

    /// A cap of `limit` names per protocol.
    pub fn new(limit: usize) -> NameCap {
        NameCap { limit: limit.max(1), seen: Mutex::new(HashMap::new()) }
    }

    /// The cap from `VOLLEY_MAX_NAMES` (a positive integer), else the default.
    pub fn from_env(env: &HashMap<String, String>) -> Result<NameCap, String> {
        let raw = env.get("VOLLEY_MAX_NAMES").cloned().or_else(|| std::env::var("VOLLEY_MAX_NAMES").ok());
        match raw {
            None => Ok(NameCap::new(Self::DEFAULT_LIMIT)),
            Some(v) => match v.trim().parse::<usize>() {
                Ok(n) if n > 0 => Ok(NameCap::new(n)),
                _ => Err(format!(
                    "VOLLEY_MAX_NAMES={v:?} is not a positive whole number; hint: e.g. VOLLEY_MAX_NAMES=5000"
                )),
            },
        }
    }

    /// The limit in force.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Admits `name` for `protocol`: the name itself while there is room (or when it
    /// was admitted before), else `None` (the caller records [`NameCap::OVERFLOW`]).
    /// The second value is true the first time the limit is hit.
    fn admit(&self, protocol: &'static str, name: &str) -> (Option<Str>, bool) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let names = seen.entry(protocol).or_default();
        if let Some(n) = names.get(name) {
            return (Some(n.clone()), false);
        }
        if names.len() < self.limit {
            let n: Str = name.into();
            names.insert(n.clone());
            return (Some(n), false);
        }
        let first = names.insert(Str::from(Self::OVERFLOW));
        (None, first)
    }
}

impl RunShared {
    /// Fresh run state.
    pub fn new(script_path: PathBuf, env: HashMap<String, String>, time_scale: f64, stop: Arc<Stop>) -> RunShared {
        let started = Instant::now();
        RunShared {
            script_path,
            env,
            aggregate: Mutex::new(Aggregate::starting_at(started)),
            started,
            stop,
            phase_stop: PhaseStop::default(),
            skipped: Mutex::new(None),
            current_case: Mutex::new(None),
            data: Mutex::new(HashMap::new()),
            judge: Mutex::new(Judge::default()),
            http: HttpSettings::default(),
            time_scale,
            iteration_errors: Mutex::new(Vec::new()),
            had_script_error: AtomicBool::new(false),
            runner: Mutex::new(None),
            render_error: OnceLock::new(),
            amqp_url: RwLock::new(None),
            registry: crate::metrics::Registry::new(),
            figures: Mutex::new(Vec::new()),
            names: NameCap::new(NameCap::DEFAULT_LIMIT),
            warnings: Mutex::new(Vec::new()),
            seed: None,
            aborted: Mutex::new(None),
            overrides: crate::executor::Overrides::default(),
            level_name: None,
            level: Mutex::new(None),
            setup: Mutex::new(Vec::new()),
            outbox: None,
        }
    }

    /// Adds a warning about the run: printed now on stderr, and listed by every report.
    pub fn warn(&self, text: String) {
        eprintln!("warning: {text}");
        self.warnings.lock().unwrap_or_else(|e| e.into_inner()).push(text);
    }

    /// Folds a drained store into the aggregate.
    pub fn absorb(&self, store: &mut Store) {
        if !store.is_empty() {
            let drained = store.drain();
            match &self.outbox {
                Some(out) => out.lock().unwrap_or_else(|e| e.into_inner()).extend(drained),
                None => self.aggregate.lock().unwrap_or_else(|e| e.into_inner()).merge(drained),
            }
        }
    }

    /// Records a panic caught at `place` as an internal error: the run fails (exit 107)
    /// and the summary shows it with the other script errors.
    pub fn record_internal_error(&self, place: &str, panic: &(dyn std::any::Any + Send)) {
        let what = crate::engine::panic_text(panic);
        let err: EvalAltResult =
            format!("internal error in {place}: {what} (a bug in volley: please report it)").into();
        self.record_iteration_error(&err);
    }

    /// Counts a script error raised inside an iteration. The diagnostic is rendered
    /// only the first time an error is seen (a failing script fails every iteration).
    pub fn record_iteration_error(&self, err: &EvalAltResult) {
        self.had_script_error.store(true, Ordering::Relaxed);
        self.count_error(format!("{err:?}"), err, "");
    }

    /// Counts an error raised while evaluating the check `name` (a function in
    /// `check(value, #{ name: |v| ... })`): the check counts as failed, the error is
    /// counted by message with the iteration errors, and the run is not a script error
    /// (a response that is not JSON is the system under test's failure, not the script's).
    pub fn record_check_error(&self, name: &str, err: &EvalAltResult) {
        self.count_error(format!("check {name:?}: {err:?}"), err, &format!("check {name:?} failed with an error: "));
    }

    fn count_error(&self, key: String, err: &EvalAltResult, prefix: &str) {
        let mut errors = self.iteration_errors.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = errors.iter_mut().find(|e| e.key == key) {
            e.count += 1;
        } else if errors.len() < 100 {
            let rendered = match self.render_error.get() {
                Some(render) => render(err),
                None => err.to_string(),
            };
            let rendered = crate::secret::redact_text(&rendered).into_owned();
            let rendered = match rendered.strip_prefix("error: ") {
                Some(rest) if !prefix.is_empty() => format!("error: {prefix}{rest}"),
                _ => rendered,
            };
            errors.push(IterationError { key, rendered, count: 1 });
        }
    }
}

/// One thread's side of a run: where its samples go and its HTTP clients.
pub struct ThreadCtx {
    /// The run.
    pub shared: Arc<RunShared>,
    /// This thread's samples since the last drain.
    pub store: RefCell<Store>,
    /// This thread's HTTP clients (one pool per thread: connections stay on the runtime
    /// that dialled them).
    pub http: HttpClients,
    /// On the orchestrating thread (outside VUs), the runtime natives block on.
    pub blocking: Option<tokio::runtime::Runtime>,
    /// Names this thread has had admitted by the run's [`NameCap`], per protocol: the
    /// hot path finds a known name here without a lock or an allocation.
    names: RefCell<HashMap<&'static str, rustc_hash::FxHashSet<Str>>>,
    /// Iterations running on this thread (a worker's driver counts them): the live view
    /// reads the peak, and a request sent while others run waits for the end of the
    /// round (see [`crate::proto::http::exchange`]).
    pub busy: Arc<Busy>,
}

/// Iterations running on one worker: now, and the most at once since the last sample.
/// The VU gauge reads the peak, so an open model whose iterations last a few ms shows
/// the VUs it kept busy rather than the 0 it happens to have at the sampling instant.
#[derive(Debug, Default)]
pub struct Busy {
    now: AtomicU64,
    peak: AtomicU64,
}

impl Busy {
    /// An iteration starts.
    pub fn begin(&self) {
        let now = self.now.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak.fetch_max(now, Ordering::Relaxed);
    }

    /// An iteration ends.
    pub fn end(&self) {
        self.now.fetch_sub(1, Ordering::Relaxed);
    }

    /// Iterations running now.
    pub fn running(&self) -> u64 {
        self.now.load(Ordering::Relaxed)
    }

    /// The most iterations running at once since the last call (then restarts from now).
    pub fn take_peak(&self) -> u64 {
        let now = self.now.load(Ordering::Relaxed);
        self.peak.swap(now, Ordering::Relaxed).max(now)
    }
}

impl ThreadCtx {
    /// This thread's side of a run.
    pub fn new(shared: Arc<RunShared>, blocking: Option<tokio::runtime::Runtime>) -> ThreadCtx {
        let store = RefCell::new(Store::new(shared.started));
        ThreadCtx { shared, store, http: HttpClients::new(), blocking, names: RefCell::default(), busy: Arc::default() }
    }

    /// The `name` tag to record for an operation of `protocol` named `name`: the name
    /// itself, or [`NameCap::OVERFLOW`] once the run has seen its limit of distinct
    /// names (warning once, with how to fix it).
    pub fn name_tag(&self, protocol: &'static str, name: &str) -> Str {
        if let Some(n) = self.names.borrow().get(protocol).and_then(|set| set.get(name)) {
            return n.clone();
        }
        let (admitted, first_overflow) = self.shared.names.admit(protocol, name);
        if first_overflow {
            self.shared.warn(format!(
                "more than {} distinct {protocol} names (the latest: {name:?}); later new names are recorded as \"{}\"; \
                 hint: give such calls a `name` option (e.g. #{{ name: \"item\" }}) or raise VOLLEY_MAX_NAMES",
                self.shared.names.limit(),
                NameCap::OVERFLOW
            ));
        }
        match admitted {
            Some(n) => {
                self.names.borrow_mut().entry(protocol).or_default().insert(n.clone());
                n
            }
            None => Str::from(NameCap::OVERFLOW),
        }
    }

    /// Records one sample into this thread's store. On the orchestrating thread (the
    /// script's top level: setup, cleanup) the sample goes to the aggregate at once, so
    /// it reaches the live view and its second's row like the VUs' samples.
    pub fn record(&self, metric: &Metric, tags: &Tags, value: f64) {
        self.store.borrow_mut().add(metric, tags, value);
        if self.blocking.is_some() {
            self.flush();
        }
    }

    /// Records several samples with the same tags, at one reading of the clock (the
    /// samples of one request).
    pub fn record_all(&self, tags: &Tags, samples: &[(&Metric, f64)]) {
        {
            let mut store = self.store.borrow_mut();
            let second = store.now();
            for (metric, value) in samples {
                store.add_at(second, metric, tags, *value);
            }
        }
        if self.blocking.is_some() {
            self.flush();
        }
    }

    /// Drains this thread's store into the run aggregate.
    pub fn flush(&self) {
        self.shared.absorb(&mut self.store.borrow_mut());
    }
}

/// The type of futures a VU hands to its worker. Its output goes to a slot in the
/// suspended VU's own frame ([`crate::script::bridge`]), not through the worker.
pub type VuFuture = std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>;
/// The coroutine yielder of a VU.
pub type VuYielder = corosensei::Yielder<(), VuFuture>;

/// One virtual user: identity, tags, cookie jar, and the coroutine plumbing.
pub struct VuCtx {
    /// 1-based VU number within the phase (0 for the script's top level).
    pub id: u64,
    /// The yielder of the running coroutine; null at the top level (natives block).
    pub yielder: Cell<*const VuYielder>,
    /// Tags every sample of this VU carries (phase, burst, ...).
    pub tags: RefCell<Tags>,
    /// Cookies kept across this VU's iterations (a login cookie is reused).
    /// Created on the first `Set-Cookie` (boxed: 112 bytes that most VUs never use).
    pub cookies: RefCell<Option<Box<cookie_store::CookieStore>>>,
    /// Iterations this VU has started.
    pub iteration: Cell<u64>,
    /// When the running iteration was scheduled to start.
    pub scheduled_start: Cell<Instant>,
    /// Since when the VU has run script code without waiting (runaway-loop guard).
    pub running_since: Cell<Instant>,
    /// When the current iteration's `iteration_timeout` ends, if the phase has one: script
    /// code that never waits is stopped there too.
    pub deadline: Cell<Option<Instant>>,
    /// Nesting of `retry(...)` calls; inside one, failures are recorded by retry.
    pub retry_depth: Cell<u32>,
    /// Outcomes of requests made by the current retry attempt: (tags, failed).
    pub pending_outcomes: RefCell<Vec<(Tags, bool)>>,
    /// This VU's idle HTTP/1.1 connections with their origin (host, port): a VU is a
    /// user with its own connections, as in a browser. A VU talks to few origins, so a
    /// list searched in order (no key to build or hash per request).
    pub conns: RefCell<Vec<(Rc<str>, u16, crate::proto::http::Conn)>>,
    /// This VU's random stream (see `script::random`), created on first use.
    /// Boxed: a `StdRng` is 320 bytes, most VUs never draw, and 50,000 VUs carry one each.
    pub rng: RefCell<Option<Box<rand::rngs::StdRng>>>,
}

impl VuCtx {
    /// A VU with base tags.
    pub fn new(id: u64, tags: Tags) -> VuCtx {
        VuCtx {
            id,
            yielder: Cell::new(std::ptr::null()),
            tags: RefCell::new(tags),
            cookies: RefCell::new(None),
            iteration: Cell::new(0),
            scheduled_start: Cell::new(Instant::now()),
            running_since: Cell::new(Instant::now()),
            deadline: Cell::new(None),
            retry_depth: Cell::new(0),
            pending_outcomes: RefCell::new(Vec::new()),
            conns: RefCell::default(),
            rng: RefCell::new(None),
        }
    }
}

thread_local! {
    static THREAD: RefCell<Option<Rc<ThreadCtx>>> = const { RefCell::new(None) };
    static VU: Cell<*const VuCtx> = const { Cell::new(std::ptr::null()) };
    static LOADING: RefCell<Option<Loading>> = const { RefCell::new(None) };
}

/// Script code run outside a run's context: the top levels of the modules a script
/// imports, evaluated while it loads (for `volley run`, `volley check` and agents).
struct Loading {
    since: Instant,
    stop: Option<Arc<Stop>>,
}

/// While alive, script code this thread runs outside a run is bounded like a VU's: it
/// is stopped after the busy limit without waiting, and by `stop` when given (Ctrl-C).
/// Nested guards keep the outermost one's start and stop.
pub struct LoadingGuard {
    outer: bool,
}

impl LoadingGuard {
    /// Starts bounding this thread's script code outside a run.
    pub fn enter(stop: Option<Arc<Stop>>) -> LoadingGuard {
        LOADING.with(|l| {
            let mut l = l.borrow_mut();
            if l.is_some() {
                return LoadingGuard { outer: false };
            }
            *l = Some(Loading { since: Instant::now(), stop });
            LoadingGuard { outer: true }
        })
    }
}

impl Drop for LoadingGuard {
    fn drop(&mut self) {
        if self.outer {
            let _ = LOADING.try_with(|l| l.borrow_mut().take());
        }
    }
}

/// For script code run outside a run: whether it was interrupted, and how long it has
/// run (None when no [`LoadingGuard`] is alive).
pub fn loading_state() -> Option<(bool, std::time::Duration)> {
    LOADING
        .with(|l| l.borrow().as_ref().map(|l| (l.stop.as_ref().is_some_and(|s| s.is_interrupted()), l.since.elapsed())))
}

/// Installs this thread's context (workers and the orchestrating thread do this once).
pub fn install_thread(ctx: Rc<ThreadCtx>) {
    THREAD.with(|t| *t.borrow_mut() = Some(ctx));
}

/// Removes this thread's context (end of run).
pub fn uninstall_thread() -> Option<Rc<ThreadCtx>> {
    THREAD.with(|t| t.borrow_mut().take())
}

/// Publishes the VU about to run on this thread (the driver calls this before every
/// resume, and clears it after). The pointer must stay valid while it is set.
pub fn set_current_vu(vu: *const VuCtx) {
    VU.with(|c| c.set(vu));
}

fn not_in_run() -> Box<EvalAltResult> {
    "this function needs a running scenario (it was called while checking or outside `volley run`)".into()
}

/// This thread's context, or an error for natives called outside a run.
pub fn thread() -> Result<Rc<ThreadCtx>, Box<EvalAltResult>> {
    THREAD.with(|t| t.borrow().clone()).ok_or_else(not_in_run)
}

/// Runs `f` with the current VU.
pub fn with_vu<R>(f: impl FnOnce(&VuCtx) -> R) -> Result<R, Box<EvalAltResult>> {
    let ptr = VU.with(|c| c.get());
    if ptr.is_null() {
        return Err(not_in_run());
    }
    // SAFETY: the driver (or the orchestrator for the top level) keeps the VuCtx alive
    // for as long as the pointer is published, and only this thread reads it.
    Ok(f(unsafe { &*ptr }))
}

/// Defines (or looks up) a custom metric in the running run's registry.
pub fn define(name: &str, kind: crate::metrics::MetricKind) -> Result<Metric, Box<EvalAltResult>> {
    thread()?.shared.registry.define(name, kind).map_err(|e| e.to_string().into())
}

/// The kind of a metric in the running run (built-ins only outside a run).
pub fn kind_of(name: &str) -> Option<crate::metrics::MetricKind> {
    match THREAD.with(|t| t.borrow().clone()) {
        Some(t) => t.shared.registry.kind_of(name),
        None => crate::metrics::series::builtin_kind(name),
    }
}

/// The tags of the current VU plus extra ones.
pub fn vu_tags(extra: impl IntoIterator<Item = (Str, Str)>) -> Result<Tags, Box<EvalAltResult>> {
    with_vu(|vu| vu.tags.borrow().with(extra))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caught_panic_is_an_internal_error_that_fails_the_run() {
        let shared = RunShared::new("x.rhai".into(), HashMap::new(), 1.0, Arc::default());
        let panic = std::panic::catch_unwind(|| panic!("overflow when adding duration")).unwrap_err();
        shared.record_internal_error("worker 0", panic.as_ref());
        assert!(shared.had_script_error.load(Ordering::Relaxed));
        let errors = shared.iteration_errors.lock().unwrap();
        assert_eq!(errors.len(), 1);
        assert!(errors[0].rendered.contains("internal error in worker 0: overflow when adding duration"), "{errors:?}");
    }

    #[test]
    fn a_vu_stays_small() {
        // 50,000 VUs each hold one: 184 bytes on x86_64 (624 with the random stream and
        // the cookie jar inline). A generous bound, so a new field is a choice, not an
        // accident.
        let size = std::mem::size_of::<VuCtx>();
        assert!(size <= 256, "VuCtx is {size} bytes");
    }
}
