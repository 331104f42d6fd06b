//! `phase(...)` on the engine side: validate the executor options, apply the time scale,
//! run the plan on the workers (bursts one at a time), and build the result map the
//! script inspects. Each phase's summary is kept for the report.

use super::worker::{PhaseJob, TaskJob, WorkerPool, WorkerReport};
use crate::executor::{BurstPlan, Executor, Plan, SharedIterations};
use crate::metrics::{Aggregate, Sink, Stat, Str, Tags};
use crate::script::call::IterationFn;
use crate::script::context::{PhaseRequest, PhaseRunner, RunShared, Task};
use crate::script::core::sink_to_map;
use rhai::{Array, Dynamic, EvalAltResult, Map};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// What the report keeps of a phase.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PhaseSummary {
    /// The phase's name.
    pub name: String,
    /// The executor.
    pub executor: String,
    /// Wall time (`elapsed_s` in JSON, as the README documents).
    #[serde(rename = "elapsed_s", serialize_with = "secs")]
    pub elapsed: Duration,
    /// Iterations completed.
    pub iterations: u64,
    /// Iterations dropped (open models).
    #[serde(rename = "dropped_iterations")]
    pub dropped: u64,
    /// Most iterations running at once.
    pub vus_max: u64,
    /// Why the script stopped it early (`stop_phase`), if it did.
    pub stopped: Option<String>,
    /// The load overrides applied to it (`level smoke`, `--vus 5`), if any.
    pub overridden: Option<String>,
    /// Agents lost while it ran (distributed runs), described; their results until
    /// then are kept.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub lost_agents: Vec<String>,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1000.0).round() / 1000.0)
}

/// What a phase's iterations run: one function, or weighted tasks.
struct Work {
    func: rhai::FnPtr,
    tasks: Vec<Task>,
}

/// Where a run's load is made: this process's worker threads, or agents.
pub enum Load {
    /// Worker threads in this process.
    Local(WorkerPool),
    /// Agents on other processes or machines (`--agent`, `--local-agents`).
    Agents(crate::distributed::Agents),
}

/// The engine's phase runner.
pub struct Phases {
    load: Load,
    shared: Arc<RunShared>,
    /// The scenario, to check that tasks named by function exist.
    ast: Arc<rhai::AST>,
    /// Phases run so far, in order.
    pub done: Mutex<Vec<PhaseSummary>>,
    /// The phase running now: name, start, nominal duration (for the live view).
    pub current: Mutex<Option<(String, Instant, Duration)>>,
    /// Agents lost during the running phase.
    lost: Mutex<Vec<String>>,
}

fn option_errors(errors: Vec<crate::executor::OptionError>, name: &str) -> Box<EvalAltResult> {
    // The same text `volley check` gives (one formatter for both).
    match crate::executor::describe_errors(name, &errors) {
        (msg, None) => msg.into(),
        (msg, Some(hint)) => format!("{msg}; hint: {hint}").into(),
    }
}

impl Phases {
    /// A runner over started workers.
    pub fn new(load: Load, shared: Arc<RunShared>, ast: Arc<rhai::AST>) -> Phases {
        Phases { load, shared, ast, done: Mutex::new(Vec::new()), current: Mutex::new(None), lost: Mutex::default() }
    }

    /// Applies the load level's and the command line's overrides to a phase's options;
    /// returns what was applied, for the report.
    fn apply_overrides(&self, req: &mut PhaseRequest) -> Result<Option<String>, Box<EvalAltResult>> {
        let level = self.shared.level.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let (Some(name), None) = (&self.shared.level_name, &level) {
            return Err(format!(
                "--level {name}: no levels are defined; hint: define them before the first phase with levels(#{{ {name}: #{{ vus: 1, duration: \"10s\" }} }}), or pass --levels FILE"
            )
            .into());
        }
        let mut applied = Vec::new();
        if let Some(l) = level.filter(|l| !l.overrides.is_empty()) {
            req.options = l.overrides.apply(&req.options);
            applied.push(format!("level {}", l.name));
        }
        let cli = &self.shared.overrides;
        if cli.applies_to(&req.name) {
            req.options = cli.apply(&req.options);
            let text = cli.describe();
            applied.push(text.split(" (").next().unwrap_or(&text).to_string());
        }
        Ok((!applied.is_empty()).then(|| applied.join(", ")))
    }

    /// A task named after a script function must name one without parameters.
    fn check_tasks(&self, phase: &str, tasks: &[Task]) -> Result<(), Box<EvalAltResult>> {
        for t in tasks.iter().filter(|t| t.func.fn_name() == t.name && !t.func.is_curried()) {
            if self.ast.iter_functions().any(|f| f.name == t.name && f.params.is_empty()) {
                continue;
            }
            let names: Vec<&str> =
                self.ast.iter_functions().filter(|f| !f.name.starts_with("anon$")).map(|f| f.name).collect();
            let hint = match crate::script::opts::did_you_mean(&t.name, names.iter().copied()) {
                Some(s) => format!("did you mean `{s}`? "),
                None => String::new(),
            };
            return Err(format!(
                "phase {phase:?}: task {:?} names no function of this script without parameters; hint: {hint}define `fn {}() {{ ... }}` or give #{{ weight: N, run: || ... }}",
                t.name, t.name
            )
            .into());
        }
        Ok(())
    }

    /// The busy-VU sample of the second that just ended.
    pub fn take_busy_peak(&self) -> u64 {
        match &self.load {
            Load::Local(pool) => pool.take_busy_peak(),
            Load::Agents(agents) => agents.take_busy_peak(),
        }
    }

    /// Stops the workers (or ends the run on the agents, returning each agent's own
    /// results: label and aggregate).
    pub fn shutdown(&self) -> (Vec<PhaseSummary>, Vec<(String, Aggregate)>) {
        let parts = match &self.load {
            Load::Local(pool) => {
                pool.shutdown();
                Vec::new()
            }
            Load::Agents(agents) => agents.finish(),
        };
        (self.done.lock().unwrap_or_else(|e| e.into_inner()).clone(), parts)
    }

    fn dispatch(
        &self,
        plan: Plan,
        tags: Tags,
        work: &Work,
        max_vus: u64,
        timeout: Option<Duration>,
    ) -> Result<Vec<WorkerReport>, Box<EvalAltResult>> {
        let pool = match &self.load {
            Load::Local(pool) => pool,
            Load::Agents(agents) => {
                let tasks: Vec<(String, f64, rhai::FnPtr)> =
                    work.tasks.iter().map(|t| (t.name.clone(), t.weight, t.func.clone())).collect();
                let name = tags.get("phase").unwrap_or_default().to_string();
                let parts = crate::distributed::coordinator::PhaseParts {
                    name: &name,
                    plan: &plan,
                    tags: &tags,
                    func: &work.func,
                    tasks: &tasks,
                    timeout,
                    names: &*self.ast,
                };
                let (reports, lost) = agents.run(parts)?;
                self.lost.lock().unwrap_or_else(|e| e.into_inner()).extend(lost);
                return Ok(reports);
            }
        };
        let (tx, rx) = mpsc::channel();
        let participants = pool.len().min(max_vus.max(1) as usize);
        let tasks = work
            .tasks
            .iter()
            .map(|t| TaskJob {
                func: IterationFn::new(t.func.clone(), &self.ast),
                tags: tags.with([(Str::from("task"), Str::from(t.name.as_str()))]),
            })
            .collect();
        let job = PhaseJob {
            tags,
            plan,
            func: IterationFn::new(work.func.clone(), &self.ast),
            tasks,
            task_weights: work.tasks.iter().map(|t| t.weight).collect(),
            // A few ms ahead so every worker starts the schedule at the same instant.
            start: Instant::now() + Duration::from_millis(5),
            participants,
            claimed: AtomicU64::new(0),
            iteration_timeout: timeout,
            done: tx,
            lanes: crate::engine::worker::Lanes::default(),
        };
        Ok(pool.run(job, rx))
    }

    fn run_bursts(
        &self,
        plan: &BurstPlan,
        tags: &Tags,
        work: &Work,
        timeout: Option<Duration>,
    ) -> Result<(Vec<WorkerReport>, Array), Box<EvalAltResult>> {
        let mut reports = Vec::new();
        let mut bursts = Array::new();
        for b in 0..plan.bursts {
            if self.shared.stop.is_interrupted() || self.shared.phase_stop.is_stopped() {
                break;
            }
            let burst_tags = tags.with([(Str::from("burst"), Str::from((b + 1).to_string().as_str()))]);
            // One burst = `size` VUs sharing `size` iterations: all start at once.
            let closed = SharedIterations {
                vus: plan.size,
                iterations: plan.size,
                max_duration: plan.max_duration,
                graceful_stop: plan.graceful_stop,
            }
            .plan();
            let started = Instant::now();
            reports.extend(self.dispatch(Plan::Closed(closed), burst_tags.clone(), work, plan.size, timeout)?);
            let elapsed = started.elapsed();
            let agg = self.shared.aggregate.lock().unwrap_or_else(|e| e.into_inner());
            let mut m = results_for(&agg, &burst_tags, elapsed);
            m.insert("burst".into(), Dynamic::from_int((b + 1) as i64));
            m.insert("duration_ms".into(), Dynamic::from_float(elapsed.as_secs_f64() * 1000.0));
            drop(agg);
            bursts.push(Dynamic::from_map(m));
            if b + 1 < plan.bursts && !plan.pause.is_zero() {
                let stop = &self.shared.stop;
                let until = Instant::now() + plan.pause;
                while Instant::now() < until && !stop.is_interrupted() {
                    std::thread::sleep((until - Instant::now()).min(Duration::from_millis(50)));
                }
            }
        }
        Ok((reports, bursts))
    }
}

impl PhaseRunner for Phases {
    fn run_phase(&self, mut req: PhaseRequest) -> Result<Dynamic, Box<EvalAltResult>> {
        // Not a load-profile option: the engine enforces it on every iteration.
        let timeout = match req.options.remove("iteration_timeout") {
            None => None,
            Some(v) => Some(
                crate::executor::iteration_timeout(&v)
                    .map_err(|e| format!("phase {:?}: iteration_timeout: {e}", req.name))?,
            ),
        };
        if self.done.lock().unwrap_or_else(|e| e.into_inner()).iter().any(|p| p.name == req.name) {
            return Err(crate::script::validate::phase_already_run(&req.name).into());
        }
        self.check_tasks(&req.name, &req.tasks)?;
        let overridden = self.apply_overrides(&mut req)?;
        // This machine's limits bind the VUs it runs: none on a coordinator (its agents
        // run them).
        let limits = match &self.load {
            Load::Local(_) => crate::executor::capacity::Limits::of_this_machine(),
            Load::Agents(_) => crate::executor::capacity::Limits::default(),
        };
        let mut executor = Executor::validate_with(&req.options, &limits).map_err(|e| option_errors(e, &req.name))?;
        let (vus, _) = crate::executor::capacity::vu_demand(&executor, &req.options);
        for w in crate::executor::capacity::warnings(vus, &limits) {
            self.shared.warn(format!("phase {:?}: {w}", req.name));
        }
        if self.shared.time_scale != 1.0 {
            executor = executor.scaled(self.shared.time_scale);
        }
        if self.shared.stop.is_interrupted() {
            return Err(crate::script::bridge::interrupted());
        }
        let tags = Tags::new(vec![(Str::from("phase"), Str::from(req.name.as_str()))]);
        self.shared.phase_stop.reset();
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((req.name.clone(), Instant::now(), executor.nominal_duration()));
        let started = Instant::now();
        let work = Work { func: req.func.clone(), tasks: req.tasks.clone() };
        self.lost.lock().unwrap_or_else(|e| e.into_inner()).clear();
        let ran = match executor.plan() {
            Plan::Bursts(b) => self.run_bursts(&b, &tags, &work, timeout).map(|(r, list)| (r, Some(list))),
            plan => self.dispatch(plan, tags.clone(), &work, executor.max_vus(), timeout).map(|r| (r, None)),
        };
        let (reports, bursts) = match ran {
            Ok(v) => v,
            Err(e) => {
                *self.current.lock().unwrap_or_else(|e| e.into_inner()) = None;
                return Err(e);
            }
        };
        let elapsed = started.elapsed();
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = None;

        let (mut iterations, mut dropped) =
            (reports.iter().map(|r| r.iterations).sum(), reports.iter().map(|r| r.dropped).sum());
        if let Load::Agents(_) = &self.load {
            // From the merged samples: an agent lost mid-phase sent no report, but its
            // iterations until then are counted.
            let agg = self.shared.aggregate.lock().unwrap_or_else(|e| e.into_inner());
            let filter = [("phase".to_string(), req.name.clone())];
            iterations = count(&agg, "iterations", &filter) as u64;
            dropped = count(&agg, "dropped_iterations", &filter) as u64;
        }
        let summary = PhaseSummary {
            name: req.name.clone(),
            executor: executor.name().to_string(),
            elapsed,
            iterations,
            dropped,
            vus_max: reports.iter().map(|r| r.max_concurrent).sum(),
            stopped: self.shared.phase_stop.reason(),
            overridden,
            lost_agents: std::mem::take(&mut *self.lost.lock().unwrap_or_else(|e| e.into_inner())),
        };
        let agg = self.shared.aggregate.lock().unwrap_or_else(|e| e.into_inner());
        let mut result = results_for(&agg, &tags, elapsed);
        if !req.tasks.is_empty() {
            let tasks: Map = req
                .tasks
                .iter()
                .map(|t| {
                    let task_tags = tags.with([(Str::from("task"), Str::from(t.name.as_str()))]);
                    (t.name.as_str().into(), Dynamic::from_map(results_for(&agg, &task_tags, elapsed)))
                })
                .collect();
            result.insert("tasks".into(), Dynamic::from_map(tasks));
        }
        drop(agg);
        result.insert("name".into(), req.name.clone().into());
        result.insert("executor".into(), summary.executor.clone().into());
        result.insert("vus_max".into(), Dynamic::from_int(summary.vus_max as i64));
        result.insert("stopped".into(), summary.stopped.clone().unwrap_or_default().into());
        let lost: Array = summary.lost_agents.iter().map(|l| Dynamic::from(l.clone())).collect();
        result.insert("lost_agents".into(), Dynamic::from_array(lost));
        if let Some(list) = bursts {
            result.insert("bursts".into(), Dynamic::from_array(list));
        }
        self.done.lock().unwrap_or_else(|e| e.into_inner()).push(summary);
        if self.shared.stop.is_interrupted() {
            return Err(crate::script::bridge::interrupted());
        }
        Ok(Dynamic::from_map(result))
    }
}

fn count(agg: &Aggregate, metric: &str, filters: &[(String, String)]) -> f64 {
    agg.query(metric, filters).and_then(|s| s.stat(Stat::Count, Duration::ZERO).ok().flatten()).unwrap_or(0.0)
}

/// The result map of a phase (or one burst) from the aggregate, filtered by `tags`.
pub fn results_for(agg: &Aggregate, tags: &Tags, elapsed: Duration) -> Map {
    let filters: Vec<(String, String)> = tags.pairs().iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let secs = elapsed.as_secs_f64().max(1e-9);
    let mut m = Map::new();
    let requests = count(agg, "http_reqs", &filters);
    let iterations = count(agg, "iterations", &filters);
    let iteration_errors = count(agg, "iteration_errors", &filters);
    let (logical, failed) = match agg.query("http_req_failed", &filters) {
        Some(Sink::Rate(r)) => (r.total, r.trues),
        _ => (0, 0),
    };
    let success_rate = if logical > 0 {
        (logical - failed) as f64 / logical as f64
    } else if iterations > 0.0 {
        (iterations - iteration_errors) / iterations
    } else {
        0.0
    };
    m.insert("elapsed_s".into(), Dynamic::from_float(elapsed.as_secs_f64()));
    m.insert("iterations".into(), Dynamic::from_int(iterations as i64));
    m.insert("dropped_iterations".into(), Dynamic::from_int(count(agg, "dropped_iterations", &filters) as i64));
    m.insert("interrupted_iterations".into(), Dynamic::from_int(count(agg, "interrupted_iterations", &filters) as i64));
    m.insert("iteration_errors".into(), Dynamic::from_int(iteration_errors as i64));
    m.insert("timed_out_iterations".into(), Dynamic::from_int(count(agg, "iteration_timeouts", &filters) as i64));
    m.insert("requests".into(), Dynamic::from_int(requests as i64));
    m.insert("logical_requests".into(), Dynamic::from_int(logical as i64));
    m.insert("failed".into(), Dynamic::from_int(failed as i64));
    m.insert("success_rate".into(), Dynamic::from_float(success_rate));
    m.insert("rps".into(), Dynamic::from_float(requests / secs));
    m.insert("iterations_per_s".into(), Dynamic::from_float(iterations / secs));
    let latency = agg.query("http_req_duration", &filters).map(|s| sink_to_map(&s, elapsed)).unwrap_or_default();
    m.insert("latency".into(), Dynamic::from_map(latency));
    let iter = agg.query("iteration_duration", &filters).map(|s| sink_to_map(&s, elapsed)).unwrap_or_default();
    m.insert("iteration_duration".into(), Dynamic::from_map(iter));
    let checks = agg.query("checks", &filters).map(|s| sink_to_map(&s, elapsed)).unwrap_or_default();
    m.insert("checks".into(), Dynamic::from_map(checks));
    let errors: Map = super::judge::failure_kinds(agg, &filters)
        .into_iter()
        .map(|(k, n)| (k.into(), Dynamic::from_int(n as i64)))
        .collect();
    m.insert("errors".into(), Dynamic::from_map(errors));
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `volley check` names a misspelled key of a phase's result from this list.
    #[test]
    fn every_key_of_a_phase_result_is_known_to_check() {
        let keys = crate::script::validate::PHASE_RESULT_KEYS;
        let m = results_for(&Aggregate::new(), &Tags::new(Vec::new()), Duration::from_secs(1));
        for key in m.keys() {
            assert!(keys.contains(&key.as_str()), "{key} is missing from PHASE_RESULT_KEYS");
        }
        // The keys of its distributions and of its checks, with data in them.
        for (kind, known) in [
            (crate::metrics::MetricKind::Trend, crate::script::validate::TREND_RESULT_KEYS),
            (crate::metrics::MetricKind::Rate, crate::script::validate::RATE_RESULT_KEYS),
        ] {
            let mut sink = Sink::new(kind);
            sink.add(1.0);
            let mut written: Vec<String> =
                sink_to_map(&sink, Duration::from_secs(1)).keys().map(|k| k.to_string()).collect();
            let mut known: Vec<&str> = known.to_vec();
            written.sort();
            known.sort_unstable();
            assert_eq!(written, known, "{kind:?}");
        }
        // The keys run_phase adds to them.
        let text = include_str!("phase.rs");
        for line in text.lines().filter(|l| l.trim_start().starts_with("result.insert(\"")) {
            let key = line.split('"').nth(1).unwrap_or_default();
            assert!(keys.contains(&key), "{key} is missing from PHASE_RESULT_KEYS");
        }
    }
}
