//! One run from start to verdict: load -> workers -> top level -> judge -> report.

use super::judge::{self, BreakdownRow, CheckResult, RequestRow, ThresholdResult};
use super::phase::{Load, PhaseSummary, Phases};
use super::progress::{IntervalListener, ProgressMode, Ticker};
use super::worker::WorkerPool;
use crate::metrics::{Aggregate, Tags};
use crate::script::context::{self, IterationError, RunShared, Stop, ThreadCtx, VuCtx};
use crate::script::diagnostics;
use crate::script::judge::{Abort, Assertion};
use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

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
    /// Worker threads (default: two per core).
    pub workers: usize,
    /// Multiplies phases' durations and counts (`--time-scale`).
    pub time_scale: f64,
    /// Live view.
    pub progress: ProgressMode,
    /// The run's stop handle: the caller keeps a clone to interrupt it (Ctrl-C, a save
    /// in watch mode).
    pub stop: Arc<Stop>,
    /// Live outputs: each closed one-second row is sent to these.
    pub listeners: Vec<IntervalListener>,
    /// `--seed`: makes every VU's random choices reproducible.
    pub seed: Option<u64>,
    /// `--vus`, `--duration`, `--iterations`, `--rate` (with `--phase`).
    pub overrides: crate::executor::Overrides,
    /// `--level NAME`: the load level asked for.
    pub level_name: Option<String>,
    /// The level chosen from `--levels FILE` (None: the script's `levels(...)` decides).
    pub level: Option<crate::script::levels::Level>,
    /// Agents that make the load (None: this process's workers).
    pub agents: Option<crate::distributed::AgentsConfig>,
}

impl RunConfig {
    /// A configuration with defaults: two workers per core, unscaled, no live view.
    pub fn new(script: impl Into<PathBuf>) -> RunConfig {
        RunConfig {
            script: script.into(),
            env: HashMap::new(),
            workers: default_workers(),
            time_scale: 1.0,
            progress: ProgressMode::Off,
            stop: Arc::default(),
            listeners: Vec::new(),
            seed: None,
            overrides: crate::executor::Overrides::default(),
            level_name: None,
            level: None,
            agents: None,
        }
    }
}

/// Default worker count: two per core. A VU never leaves its worker (its coroutine
/// lives on that thread), so while the kernel runs something else on a worker's core
/// (the server under test on the same machine, the simulator, another build), one
/// worker per core would leave that worker's VUs waiting, though the other core may be
/// idle. With two, the core's other worker runs meanwhile. Measured against nginx on the
/// same 2-core machine, 4 workers instead of 2: CPU per request at 1,000 connections
/// 12.9 -> 11.6 us and requests/s +19%; at 5,000 connections 21.3 -> 20.7 us and +15%;
/// unchanged at 1 and 50 connections, for 10,000 VUs' memory and the open model.
pub fn default_workers() -> usize {
    2 * std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
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
    /// The verdict (see [`RunReport::judge`]).
    pub exit: ExitCode,
    /// Whether a script error ended an iteration.
    pub had_script_error: bool,
    /// The run's aggregate, for outputs.
    pub aggregate: Aggregate,
    /// Every metric the run knows, described (built-ins and the script's own).
    pub metrics: Vec<crate::metrics::series::Desc>,
    /// The comparison with `--baseline`, when one was asked for (part of the verdict).
    pub baseline: Option<Baseline>,
    /// Figures the script reported with `report(name, value)`, in order.
    pub figures: Vec<crate::script::figures::Figure>,
    /// Warnings raised during the run (e.g. too many distinct request names).
    pub warnings: Vec<String>,
    /// Results per group (`group(name, ...)`), by name.
    pub groups: Vec<BreakdownRow>,
    /// Results per weighted task, by name.
    pub tasks: Vec<BreakdownRow>,
    /// The threshold with `abort_on_fail` that stopped the run, if one did.
    pub aborted: Option<Abort>,
    /// The command line's load overrides, described (`--vus 5 (every phase)`).
    pub overrides: Option<String>,
    /// The load level (`--level`).
    pub level: Option<String>,
    /// `--seed`, when given.
    pub seed: Option<u64>,
    /// Each agent's own results in a distributed run: label and aggregate.
    pub agents: Vec<(String, Aggregate)>,
}

impl RunReport {
    /// Agent `i`'s own results as a report of their own (a distributed run's part, for
    /// `--agent-out`): its figures, the run's phases; no verdict of its own. Takes the
    /// agent's aggregate out of this report.
    pub fn agent_part(&mut self, i: usize) -> RunReport {
        let aggregate = std::mem::take(&mut self.agents[i].1);
        // The phases as this agent ran them: its iterations and drops.
        let phases = self
            .phases
            .iter()
            .map(|p| {
                let filter = [("phase".to_string(), p.name.clone())];
                let count = |metric: &str| {
                    aggregate
                        .query(metric, &filter)
                        .and_then(|s| s.stat(crate::metrics::Stat::Count, Duration::ZERO).ok().flatten())
                        .unwrap_or(0.0) as u64
                };
                PhaseSummary { iterations: count("iterations"), dropped: count("dropped_iterations"), ..p.clone() }
            })
            .collect();
        let requests = judge::requests(&aggregate, self.elapsed);
        RunReport {
            script: self.script.clone(),
            started_at: self.started_at,
            elapsed: self.elapsed,
            workers: self.workers,
            time_scale: self.time_scale,
            phases,
            thresholds: Vec::new(),
            assertions: Vec::new(),
            checks: judge::checks(&aggregate),
            requests,
            iteration_errors: Vec::new(),
            script_error: None,
            interrupted: self.interrupted,
            skipped: None,
            exit: ExitCode::Passed,
            had_script_error: false,
            groups: judge::breakdown(&aggregate, "group"),
            tasks: judge::breakdown(&aggregate, "task"),
            aggregate,
            metrics: self.metrics.clone(),
            baseline: None,
            figures: Vec::new(),
            warnings: Vec::new(),
            aborted: None,
            overrides: self.overrides.clone(),
            level: self.level.clone(),
            seed: self.seed,
            agents: Vec::new(),
        }
    }
}

/// The comparison of a run with an earlier result, as judged.
#[derive(Debug, Clone)]
pub struct Baseline {
    /// The baseline file as given.
    pub file: String,
    /// The comparison table, rendered.
    pub rendered: String,
    /// Whether the run is worse beyond the margins.
    pub regressed: bool,
}

impl RunReport {
    /// Computes the exit code from everything judged: interrupted, then script errors,
    /// then failed thresholds (script and SLO file), assertions and the baseline. The
    /// one place the verdict is decided; call it again after adding criteria.
    pub fn judge(&mut self) {
        let failed = self.thresholds.iter().any(|t| !t.passed)
            || self.aborted.is_some()
            || self.assertions.iter().any(|a| !a.passed)
            || self.baseline.as_ref().is_some_and(|b| b.regressed);
        self.exit = if self.interrupted {
            ExitCode::Interrupted
        } else if self.script_error.is_some() || self.had_script_error {
            ExitCode::ScriptError
        } else if failed {
            ExitCode::Failed
        } else {
            ExitCode::Passed
        };
    }
}

/// A run that could not start: a rendered diagnostic and its exit code.
#[derive(Debug)]
pub struct LoadFailure {
    /// The rendered diagnostic.
    pub rendered: String,
    /// 2 for an unreadable file, 107 for a script error.
    pub exit: ExitCode,
}

/// What a caught panic says (its message, or "unknown panic").
pub fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// Runs a scenario to its verdict.
pub fn run(config: &RunConfig) -> Result<RunReport, LoadFailure> {
    let loaded = {
        // Ctrl-C stops a module's top level that never ends.
        let _loading = context::LoadingGuard::enter(Some(config.stop.clone()));
        crate::script::load(&config.script)
    }
    .map_err(|(d, sources)| LoadFailure {
        rendered: d.render(&sources),
        exit: if config.stop.is_interrupted() {
            ExitCode::Interrupted
        } else if d.file.is_none() {
            ExitCode::Usage
        } else {
            ExitCode::ScriptError
        },
    })?;
    if let Some(d) = crate::script::check::runs_nothing(&loaded) {
        return Err(LoadFailure { rendered: d.render(&loaded.sources), exit: ExitCode::ScriptError });
    }
    let names = context::NameCap::from_env(&config.env)
        .map_err(|e| LoadFailure { rendered: format!("error: {e}\n"), exit: ExitCode::Usage })?;
    let started_at = SystemTime::now();
    let mut shared = RunShared::new(config.script.clone(), config.env.clone(), config.time_scale, config.stop.clone());
    shared.names = names;
    shared.seed = config.seed;
    shared.overrides = config.overrides.clone();
    shared.level_name = config.level_name.clone();
    if let Some(level) = &config.level {
        crate::script::levels::declare(&shared, level);
        *shared.level.get_mut().unwrap_or_else(|e| e.into_inner()) = Some(level.clone());
    }
    let shared = Arc::new(shared);
    let started = shared.started;
    {
        let (sources, name, functions) = (loaded.sources.clone(), loaded.name.clone(), loaded.functions.clone());
        let render = move |e: &rhai::EvalAltResult| diagnostics::from_eval_error(e, &name, &functions).render(&sources);
        let _ = shared.render_error.set(Box::new(render));
    }

    let workers = config.workers.max(1);
    let load = match &config.agents {
        None => {
            Load::Local(WorkerPool::start(workers, shared.clone(), loaded.engine.clone(), loaded.ast.clone()).map_err(
                |e| LoadFailure {
                    rendered: format!("error: cannot start {workers} worker threads: {e}\n"),
                    exit: ExitCode::Usage,
                },
            )?)
        }
        Some(agents) => {
            Load::Agents(crate::distributed::Agents::connect(agents, shared.clone()).map_err(|e| LoadFailure {
                rendered: format!("error: {e}\n"),
                exit: if shared.stop.is_interrupted() { ExitCode::Interrupted } else { ExitCode::Usage },
            })?)
        }
    };
    let phases = Arc::new(Phases::new(load, shared.clone(), loaded.ast.clone()));
    *shared.runner.lock().unwrap_or_else(|e| e.into_inner()) = Some(phases.clone());
    let ticker = Ticker::start(shared.clone(), phases.clone(), config.progress, config.listeners.clone());

    // The top level runs on this thread; natives block on a small runtime here.
    let blocking = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| LoadFailure {
        rendered: format!("error: cannot start the runtime: {e}\n"),
        exit: ExitCode::Usage,
    })?;
    let thread = Rc::new(ThreadCtx::new(shared.clone(), Some(blocking)));
    context::install_thread(thread.clone());
    let top = VuCtx::new(0, Tags::default());
    context::set_current_vu(&top);
    // A panic at the top level (a bug in a native function) fails the run with the
    // summary of what ran, never a crash and never a pass.
    let outcome = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| loaded.engine.run_ast(&loaded.ast))) {
        Ok(outcome) => outcome,
        Err(panic) => {
            shared.record_internal_error("the script's top level", panic.as_ref());
            Ok(())
        }
    };
    context::set_current_vu(std::ptr::null());
    if let Some(rt) = thread.blocking.as_ref() {
        rt.block_on(crate::proto::close_thread());
    }
    thread.flush();
    context::uninstall_thread();
    drop(thread);

    // The busy VUs since the ticker's last sample belong to the run's last seconds.
    let (unsampled, mut live) = ticker.stop().unwrap_or_else(|panic| {
        shared.record_internal_error("the live view and history ticker", panic.as_ref());
        (0, super::live::LiveJudge::default())
    });
    let busy = phases.take_busy_peak();
    super::progress::record_busy(
        &mut shared.aggregate.lock().unwrap_or_else(|e| e.into_inner()),
        unsampled,
        busy,
        None,
    );
    let (phase_summaries, agent_parts) = phases.shutdown();
    // Break the cycle shared -> runner -> shared so the run's state is freed.
    *shared.runner.lock().unwrap_or_else(|e| e.into_inner()) = None;
    drop(phases);
    let elapsed = started.elapsed();

    let aborted = shared.aborted.lock().unwrap_or_else(|e| e.into_inner()).clone();
    // A threshold's abort stops the run like Ctrl-C does, but the verdict is its failure.
    let interrupted = shared.stop.is_interrupted() && aborted.is_none();
    if aborted.is_some() {
        shared.stop.clear();
    }
    let skipped = shared.skipped.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let script_error = match &outcome {
        Err(e) if !super::vu::is_interrupted(e) && !is_skip(e) => {
            Some(diagnostics::from_eval_error(e, &loaded.name, &loaded.functions).render(&loaded.sources))
        }
        _ => None,
    };
    let metrics = shared.registry.descs();
    let report_metrics = metrics.clone();
    let mut aggregate = std::mem::take(&mut *shared.aggregate.lock().unwrap_or_else(|e| e.into_inner()));
    aggregate.describe(&metrics);
    // The rows still open: the last seconds, the partial one, everything before an
    // interrupt. The live outputs get them too.
    for row in aggregate.finish(elapsed) {
        for tx in &config.listeners {
            let _ = tx.try_send(row.clone());
        }
    }
    live.finish(&shared, &aggregate, elapsed);
    let judge = std::mem::take(&mut *shared.judge.lock().unwrap_or_else(|e| e.into_inner()));
    let mut thresholds = judge::thresholds(&aggregate, &judge.thresholds, &phase_summaries, elapsed, Some(&live));
    if let Some(a) = &aborted {
        mark_abort(&mut thresholds, a);
    }
    let iteration_errors = std::mem::take(&mut *shared.iteration_errors.lock().unwrap_or_else(|e| e.into_inner()));
    let phase_names: Vec<String> = phase_summaries.iter().map(|p| p.name.clone()).collect();
    let mut report = RunReport {
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
        exit: ExitCode::Passed,
        had_script_error: shared.had_script_error.load(Ordering::Relaxed),
        aggregate,
        metrics,
        baseline: None,
        figures: std::mem::take(&mut *shared.figures.lock().unwrap_or_else(|e| e.into_inner())),
        warnings: std::mem::take(&mut *shared.warnings.lock().unwrap_or_else(|e| e.into_inner())),
        groups: Vec::new(),
        tasks: Vec::new(),
        aborted,
        overrides: (!config.overrides.is_empty()).then(|| {
            let text = config.overrides.describe();
            match &config.overrides.phase {
                Some(p) if !phase_names.contains(p) => format!("{text}: no phase of that name ran"),
                _ => text,
            }
        }),
        level: config.level_name.clone(),
        seed: config.seed,
        agents: agent_parts
            .into_iter()
            .map(|(label, mut agg)| {
                agg.describe(&report_metrics);
                let _ = agg.finish(elapsed);
                (label, agg)
            })
            .collect(),
    };
    report.groups = judge::breakdown(&report.aggregate, "group");
    report.tasks = judge::breakdown(&report.aggregate, "task");
    report.judge();
    Ok(report)
}

/// The threshold that stopped the run failed, whatever the whole run measures at its
/// end (a p95 that recovered after the abort does not pass).
fn mark_abort(thresholds: &mut [ThresholdResult], a: &Abort) {
    let at = crate::script::core::fmt_num((a.at_s * 10.0).round() / 10.0);
    let observed = a.observed.map(|v| format!(" (observed {})", crate::script::core::fmt_num(v))).unwrap_or_default();
    for t in
        thresholds.iter_mut().filter(|t| t.selector == a.selector && t.condition == a.condition && t.origin == a.origin)
    {
        t.passed = false;
        let note = format!("stopped the run at {at}s{observed}");
        t.detail = Some(match t.detail.take() {
            Some(d) => format!("{note}; {d}"),
            None => note,
        });
    }
}

fn is_skip(e: &rhai::EvalAltResult) -> bool {
    matches!(e, rhai::EvalAltResult::ErrorTerminated(token, _) if token.to_string() == crate::script::bridge::SKIPPED_TOKEN)
}
