//! One run from start to verdict: load -> workers -> top level -> judge -> report.

use super::judge::{self, CheckResult, RequestRow, ThresholdResult};
use super::phase::{PhaseSummary, Phases};
use super::progress::{ProgressMode, Ticker};
use super::worker::WorkerPool;
use crate::metrics::{Aggregate, Tags};
use crate::script::context::{self, IterationError, RunShared, ThreadCtx, VuCtx};
use crate::script::diagnostics;
use crate::script::http::HttpClients;
use crate::script::judge::Assertion;
use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// Exit codes (the README's table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum ExitCode {
    /// Everything passed.
    Passed = 0,
    /// A usage or configuration error.
    Usage = 2,
    /// A threshold or assertion failed.
    Failed = 99,
    /// The script has an error.
    ScriptError = 107,
    /// Interrupted (Ctrl-C / SIGTERM); the summary was still written.
    Interrupted = 130,
}

impl ExitCode {
    /// The process exit status.
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// What to run and how.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// The scenario file.
    pub script: PathBuf,
    /// `-e KEY=VALUE` values.
    pub env: HashMap<String, String>,
    /// Worker threads (default: one per core).
    pub workers: usize,
    /// Multiplies phases' durations and counts (`--time-scale`).
    pub time_scale: f64,
    /// Live view.
    pub progress: ProgressMode,
}

/// Everything a run produced, for the summary and other outputs.
pub struct RunReport {
    /// The script as named on the command line.
    pub script: String,
    /// Wall-clock start.
    pub started_at: SystemTime,
    /// Wall time of the whole run.
    pub elapsed: Duration,
    /// Worker threads used.
    pub workers: usize,
    /// The time scale (1 = unscaled).
    pub time_scale: f64,
    /// Phases in order.
    pub phases: Vec<PhaseSummary>,
    /// Threshold verdicts.
    pub thresholds: Vec<ThresholdResult>,
    /// Assertions in order.
    pub assertions: Vec<Assertion>,
    /// Checks by name.
    pub checks: Vec<CheckResult>,
    /// Requests by method and name.
    pub requests: Vec<RequestRow>,
    /// Script errors inside iterations.
    pub iteration_errors: Vec<IterationError>,
    /// A script error that ended the top level (rendered).
    pub script_error: Option<String>,
    /// Whether the run was interrupted.
    pub interrupted: bool,
    /// Why the script skipped itself (`skip(reason)`), if it did.
    pub skipped: Option<String>,
    /// The verdict.
    pub exit: ExitCode,
    /// The run's aggregate, for outputs.
    pub aggregate: Aggregate,
}

/// A run that could not start: a rendered diagnostic and its exit code.
#[derive(Debug)]
pub struct LoadFailure {
    /// The rendered diagnostic.
    pub rendered: String,
    /// 2 for an unreadable file, 107 for a script error.
    pub exit: ExitCode,
}

static ACTIVE: Mutex<Option<Arc<RunShared>>> = Mutex::new(None);

/// Interrupts the run in progress (the Ctrl-C handler calls this). Returns false when
/// no run is active.
pub fn interrupt_active() -> bool {
    match ACTIVE.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
        Some(shared) => {
            shared.stop.interrupt();
            true
        }
        None => false,
    }
}

/// Runs a scenario to its verdict.
pub fn run(config: &RunConfig) -> Result<RunReport, LoadFailure> {
    let loaded = crate::script::load(&config.script).map_err(|(d, sources)| LoadFailure {
        rendered: d.render(&sources),
        exit: if d.file.is_none() { ExitCode::Usage } else { ExitCode::ScriptError },
    })?;
    let started_at = SystemTime::now();
    let started = Instant::now();
    let shared = Arc::new(RunShared::new(config.script.clone(), config.env.clone(), config.time_scale));
    {
        let (sources, name, functions) = (loaded.sources.clone(), loaded.name.clone(), loaded.functions.clone());
        let render = move |e: &rhai::EvalAltResult| diagnostics::from_eval_error(e, &name, &functions).render(&sources);
        let _ = shared.render_error.set(Box::new(render));
    }
    *ACTIVE.lock().unwrap_or_else(|e| e.into_inner()) = Some(shared.clone());

    let workers = config.workers.max(1);
    let pool = WorkerPool::start(workers, shared.clone(), loaded.engine.clone(), loaded.ast.clone()).map_err(|e| {
        LoadFailure { rendered: format!("error: cannot start {workers} worker threads: {e}\n"), exit: ExitCode::Usage }
    })?;
    let phases = Arc::new(Phases::new(pool, shared.clone()));
    *shared.runner.lock().unwrap_or_else(|e| e.into_inner()) = Some(phases.clone());
    let ticker = Ticker::start(shared.clone(), phases.clone(), config.progress);

    // The top level runs on this thread; natives block on a small runtime here.
    let blocking = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| LoadFailure {
        rendered: format!("error: cannot start the runtime: {e}\n"),
        exit: ExitCode::Usage,
    })?;
    let thread = Rc::new(ThreadCtx {
        shared: shared.clone(),
        store: RefCell::default(),
        http: HttpClients::new(),
        blocking: Some(blocking),
    });
    context::install_thread(thread.clone());
    let top = VuCtx::new(0, Tags::default());
    context::set_current_vu(&top);
    let outcome = loaded.engine.run_ast(&loaded.ast);
    context::set_current_vu(std::ptr::null());
    if let Some(rt) = thread.blocking.as_ref() {
        rt.block_on(crate::script::amqp_conn::close_thread());
    }
    thread.flush();
    context::uninstall_thread();
    drop(thread);

    ticker.stop();
    let phase_summaries = phases.shutdown();
    // Break the cycle shared -> runner -> shared so the run's state is freed.
    *shared.runner.lock().unwrap_or_else(|e| e.into_inner()) = None;
    drop(phases);
    *ACTIVE.lock().unwrap_or_else(|e| e.into_inner()) = None;
    let elapsed = started.elapsed();

    let interrupted = shared.stop.is_interrupted();
    let skipped = shared.skipped.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let script_error = match &outcome {
        Err(e) if !super::vu::is_interrupted(e) && !is_skip(e) => {
            Some(diagnostics::from_eval_error(e, &loaded.name, &loaded.functions).render(&loaded.sources))
        }
        _ => None,
    };
    let aggregate = std::mem::take(&mut *shared.aggregate.lock().unwrap_or_else(|e| e.into_inner()));
    let judge = std::mem::take(&mut *shared.judge.lock().unwrap_or_else(|e| e.into_inner()));
    let thresholds = judge::thresholds(&aggregate, &judge.thresholds, &phase_summaries, elapsed);
    let iteration_errors = std::mem::take(&mut *shared.iteration_errors.lock().unwrap_or_else(|e| e.into_inner()));
    let failed = thresholds.iter().any(|t| !t.passed) || judge.assertions.iter().any(|a| !a.passed);
    let exit = if interrupted {
        ExitCode::Interrupted
    } else if script_error.is_some() || shared.had_script_error.load(Ordering::Relaxed) {
        ExitCode::ScriptError
    } else if failed {
        ExitCode::Failed
    } else {
        ExitCode::Passed
    };
    Ok(RunReport {
        script: loaded.name.clone(),
        started_at,
        elapsed,
        workers,
        time_scale: config.time_scale,
        phases: phase_summaries,
        checks: judge::checks(&aggregate),
        requests: judge::requests(&aggregate, elapsed),
        thresholds,
        assertions: judge.assertions,
        iteration_errors,
        script_error,
        interrupted,
        skipped,
        exit,
        aggregate,
    })
}

fn is_skip(e: &rhai::EvalAltResult) -> bool {
    matches!(e, rhai::EvalAltResult::ErrorTerminated(token, _) if token.to_string() == crate::script::bridge::SKIPPED_TOKEN)
}
