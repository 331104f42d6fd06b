//! Worker threads (two per core by default), each with a current-thread tokio runtime,
//! its own HTTP clients, metric store and stack pool. VUs never move between workers
//! (coroutines must not change threads). The orchestrator sends phases; each worker
//! runs its share and reports back after draining its samples into the aggregate.

use super::stack::StackPool;
use super::vu::{self, Ended};
use crate::executor::{ClosedPlan, Iterations, OpenPlan, Plan};
use crate::metrics::{Tags, builtin};
use crate::script::call::IterationFn;
use crate::script::context::{self, Busy, RunShared, ThreadCtx, VuCtx};
use crate::script::random;
use rhai::{AST, Engine};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// One phase (or one burst) as every worker receives it.
pub struct PhaseJob {
    /// Tags of every sample (phase, burst).
    pub tags: Tags,
    /// What to run.
    pub plan: Plan,
    /// The iteration function.
    pub func: IterationFn,
    /// Weighted tasks: each iteration runs one of them instead of `func`.
    pub tasks: Vec<TaskJob>,
    /// The tasks' weights, in the same order (drawn from on every iteration).
    pub task_weights: Vec<f64>,
    /// The common start instant (slightly in the future so workers start together).
    pub start: Instant,
    /// How many workers take part (at most the plan's VU count).
    pub participants: usize,
    /// Iterations claimed so far (shared-iterations).
    pub claimed: AtomicU64,
    /// The phase's `iteration_timeout`: a longer iteration is stopped.
    pub iteration_timeout: Option<Duration>,
    /// Where each worker reports when done.
    pub done: mpsc::Sender<WorkerReport>,
    /// The plan's VUs and arrivals this process runs (all of them, or an agent's
    /// execution segment).
    pub lanes: Lanes,
}

/// Which of a plan's numbered VUs and arrivals this process runs: `first`,
/// `first + step`, `first + 2 * step`, ... A single process runs all of them (0, 1); an
/// agent runs its execution segment's (see [`crate::executor::segment`]). The workers
/// deal these out among themselves the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lanes {
    /// The first number.
    pub first: u64,
    /// The distance between two numbers.
    pub step: u64,
}

impl Default for Lanes {
    fn default() -> Self {
        Lanes { first: 0, step: 1 }
    }
}

impl Lanes {
    /// Worker `worker` of `participants`: its numbers are this process's numbers dealt
    /// out by worker (`first + step * worker`, every `step * participants`).
    fn of_worker(self, worker: u64, participants: u64) -> Lanes {
        Lanes { first: self.first + self.step * worker, step: self.step * participants }
    }
}

/// One weighted task as the workers run it.
pub struct TaskJob {
    /// What it runs.
    pub func: IterationFn,
    /// The phase's tags plus `task`.
    pub tags: Tags,
}

/// A worker's account of one phase.
#[derive(Debug, Default, Clone)]
pub struct WorkerReport {
    /// Iterations completed (successfully or with a script error).
    pub iterations: u64,
    /// Open-model iterations that could not start.
    pub dropped: u64,
    /// Most iterations this worker ran at once.
    pub max_concurrent: u64,
}

enum Command {
    Phase(Arc<PhaseJob>),
    Shutdown,
}

/// A worker's thread-local state, shared by its tasks.
pub struct Worker {
    /// Index among the workers.
    pub index: usize,
    /// The thread's context (store, HTTP clients).
    pub thread: Rc<ThreadCtx>,
    /// The engine (shared across workers).
    pub engine: Arc<Engine>,
    /// The compiled scenario.
    pub ast: Arc<AST>,
    /// Reusable coroutine stacks.
    pub stacks: RefCell<StackPool>,
}

/// The worker threads of a run.
pub struct WorkerPool {
    senders: Vec<tokio::sync::mpsc::UnboundedSender<Command>>,
    handles: std::sync::Mutex<Vec<std::thread::JoinHandle<()>>>,
    /// Per-worker running iterations.
    pub active: Vec<Arc<Busy>>,
}

impl WorkerPool {
    /// Starts `count` workers.
    pub fn start(
        count: usize,
        shared: Arc<RunShared>,
        engine: Arc<Engine>,
        ast: Arc<AST>,
    ) -> std::io::Result<WorkerPool> {
        let mut pool = WorkerPool { senders: Vec::new(), handles: Default::default(), active: Vec::new() };
        for index in 0..count.max(1) {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            let active = Arc::new(Busy::default());
            let (shared, engine, ast, a) = (shared.clone(), engine.clone(), ast.clone(), active.clone());
            let handle = std::thread::Builder::new().name(format!("volley-worker-{index}")).spawn(move || {
                // A panic that escapes a worker (not a VU's: those are caught per
                // iteration) must fail the run, never let it pass with fewer VUs.
                let run = shared.clone();
                let died = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    worker_main(index, shared, engine, ast, a, rx)
                }));
                if let Err(panic) = died {
                    run.record_internal_error(&format!("worker {index}"), panic.as_ref());
                }
            })?;
            pool.senders.push(tx);
            pool.handles.get_mut().unwrap_or_else(|e| e.into_inner()).push(handle);
            pool.active.push(active);
        }
        Ok(pool)
    }

    /// Number of workers.
    pub fn len(&self) -> usize {
        self.senders.len()
    }

    /// Whether there are no workers.
    pub fn is_empty(&self) -> bool {
        self.senders.is_empty()
    }

    /// The most iterations that ran at once on each worker since the last call, summed
    /// (the VU gauge's sample for the second that just ended).
    pub fn take_busy_peak(&self) -> u64 {
        self.active.iter().map(|a| a.take_peak()).sum()
    }

    /// Runs a job on every worker and waits for all reports.
    pub fn run(&self, job: PhaseJob, reports: mpsc::Receiver<WorkerReport>) -> Vec<WorkerReport> {
        let job = Arc::new(job);
        let mut sent = 0;
        for tx in &self.senders {
            if tx.send(Command::Phase(job.clone())).is_ok() {
                sent += 1;
            }
        }
        drop(job);
        (0..sent).filter_map(|_| reports.recv().ok()).collect()
    }

    /// Stops the workers and waits for them (they drain their samples first).
    pub fn shutdown(&self) {
        for tx in &self.senders {
            let _ = tx.send(Command::Shutdown);
        }
        let handles = std::mem::take(&mut *self.handles.lock().unwrap_or_else(|e| e.into_inner()));
        for h in handles {
            let _ = h.join();
        }
    }
}

fn worker_main(
    index: usize,
    shared: Arc<RunShared>,
    engine: Arc<Engine>,
    ast: Arc<AST>,
    active: Arc<Busy>,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Command>,
) {
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("volley: worker {index} could not start its runtime: {e}");
            return;
        }
    };
    let mut thread = ThreadCtx::new(shared, None);
    thread.busy = active;
    let thread = Rc::new(thread);
    context::install_thread(thread.clone());
    let worker = Rc::new(Worker { index, thread: thread.clone(), engine, ast, stacks: RefCell::default() });
    let last = thread.clone();
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let flusher = {
            let thread = thread.clone();
            tokio::task::spawn_local(async move {
                // Just after each second of the run, so the ticker finds it complete.
                let started = thread.shared.started;
                let first = started + Duration::from_millis(50) + Duration::from_secs(started.elapsed().as_secs() + 1);
                let mut tick = tokio::time::interval_at(first.into(), Duration::from_millis(1000));
                loop {
                    tick.tick().await;
                    thread.flush();
                }
            })
        };
        let outbox = tokio::task::spawn_local(crate::proto::http::run_outbox());
        while let Some(cmd) = rx.recv().await {
            match cmd {
                Command::Phase(job) => {
                    let report = run_job(&worker, &job).await;
                    worker.thread.flush();
                    let _ = job.done.send(report);
                }
                Command::Shutdown => break,
            }
        }
        flusher.abort();
        outbox.abort();
        crate::proto::close_thread().await;
    });
    last.flush();
    context::uninstall_thread();
}

/// Tracks a set of local tasks: how many are alive, and aborting them all.
#[derive(Default)]
struct TaskGroup {
    handles: RefCell<Vec<tokio::task::AbortHandle>>,
    alive: Cell<usize>,
    max_alive: Cell<usize>,
    idle: Notify,
}

impl TaskGroup {
    fn spawn(self: &Rc<Self>, fut: impl std::future::Future<Output = ()> + 'static) {
        self.alive.set(self.alive.get() + 1);
        self.max_alive.set(self.max_alive.get().max(self.alive.get()));
        let group = self.clone();
        let handle = tokio::task::spawn_local(async move {
            struct Done(Rc<TaskGroup>);
            impl Drop for Done {
                fn drop(&mut self) {
                    self.0.alive.set(self.0.alive.get() - 1);
                    if self.0.alive.get() == 0 {
                        self.0.idle.notify_waiters();
                    }
                }
            }
            let _done = Done(group);
            fut.await;
        });
        let mut handles = self.handles.borrow_mut();
        // Pruning on every spawn would scan every handle per iteration: only when the
        // finished ones outnumber the live ones.
        if handles.len() > 2 * self.alive.get() + 64 {
            handles.retain(|h| !h.is_finished());
        }
        handles.push(handle.abort_handle());
    }

    async fn idle(&self) {
        while self.alive.get() > 0 {
            let notified = self.idle.notified();
            if self.alive.get() == 0 {
                break;
            }
            notified.await;
        }
    }

    fn abort_all(&self) {
        for h in self.handles.borrow_mut().drain(..) {
            h.abort();
        }
    }
}

async fn run_job(worker: &Rc<Worker>, job: &Arc<PhaseJob>) -> WorkerReport {
    if worker.index >= job.participants {
        return WorkerReport::default();
    }
    let group = Rc::new(TaskGroup::default());
    let counters = Rc::new(Counters::default());
    let (duration, graceful) = match &job.plan {
        Plan::Closed(p) => (p.duration, p.graceful_stop),
        Plan::Open(p) => (p.duration, p.graceful_stop),
        Plan::Bursts(b) => (b.max_duration, b.graceful_stop),
    };
    let scheduler: std::pin::Pin<Box<dyn std::future::Future<Output = ()>>> = match &job.plan {
        Plan::Closed(p) => {
            Box::pin(schedule_closed(worker.clone(), job.clone(), p.clone(), group.clone(), counters.clone()))
        }
        Plan::Open(p) => {
            Box::pin(schedule_open(worker.clone(), job.clone(), p.clone(), group.clone(), counters.clone()))
        }
        // The orchestrator turns bursts into closed jobs, one per burst.
        Plan::Bursts(_) => Box::pin(async {}),
    };
    let stop = worker.thread.shared.stop.wait();
    let hard_deadline = tokio::time::Instant::from_std(job.start + duration + graceful);
    tokio::select! {
        () = async { scheduler.await; group.idle().await } => {}
        () = tokio::time::sleep_until(hard_deadline) => group.abort_all(),
        () = stop => group.abort_all(),
    }
    // Let aborted tasks unwind (their guards count interrupted iterations).
    group.idle().await;
    WorkerReport {
        iterations: counters.iterations.get(),
        dropped: counters.dropped.get(),
        max_concurrent: group.max_alive.get() as u64,
    }
}

#[derive(Default)]
struct Counters {
    iterations: Cell<u64>,
    dropped: Cell<u64>,
}

/// Runs one iteration, stopping it at the phase's `iteration_timeout` (the dropped
/// iteration unwinds and is counted as interrupted, and in `iteration_timeouts`).
async fn iterate(worker: &Rc<Worker>, vu: &Rc<VuCtx>, job: &PhaseJob, scheduled: Instant) -> Ended {
    let func = choose(worker, vu, job);
    let Some(limit) = job.iteration_timeout else {
        return vu::run_iteration(worker, vu, func, scheduled).await;
    };
    // The timer stops an iteration that waits; the deadline one that computes. Cleared
    // however the iteration ends (aborted at the phase's end included).
    struct Deadline<'a>(&'a VuCtx);
    impl Drop for Deadline<'_> {
        fn drop(&mut self) {
            self.0.deadline.set(None);
        }
    }
    vu.deadline.set(Some(Instant::now() + limit));
    let _deadline = Deadline(vu);
    match tokio::time::timeout(limit, vu::run_iteration(worker, vu, func, scheduled)).await {
        Ok(ended) => ended,
        Err(_) => {
            let tags = vu.tags.borrow().clone();
            worker.thread.record(&builtin::ITERATION_TIMEOUTS, &tags, 1.0);
            Ended::TimedOut
        }
    }
}

/// What the VU's next iteration runs: the phase's function, or a task drawn by weight
/// from the VU's random stream. Sets the VU's tags for the iteration (a group left by
/// an interrupted iteration does not leak into the next one).
fn choose<'a>(worker: &Worker, vu: &VuCtx, job: &'a PhaseJob) -> &'a IterationFn {
    if job.tasks.is_empty() {
        set_tags(vu, &job.tags);
        return &job.func;
    }
    let i = random::with_vu_rng(vu, worker.thread.shared.seed, |r| random::draw_index(r, &job.task_weights));
    let task = &job.tasks[i];
    set_tags(vu, &task.tags);
    &task.func
}

/// Gives the VU these tags, unless it has them already: the set is shared by the
/// phase's VUs on every worker, and replacing it with itself counted two references
/// on a line the other cores use, on every iteration.
fn set_tags(vu: &VuCtx, tags: &Tags) {
    if !vu.tags.borrow().same(tags) {
        *vu.tags.borrow_mut() = tags.clone();
    }
}

fn count(counters: &Counters, ended: Ended) {
    if matches!(ended, Ended::Completed | Ended::Failed) {
        counters.iterations.set(counters.iterations.get() + 1);
    }
}

/// Closed model: this worker's VUs (global indexes `index, index + participants, ...`)
/// loop over iterations while the plan wants them.
async fn schedule_closed(
    worker: Rc<Worker>,
    job: Arc<PhaseJob>,
    plan: ClosedPlan,
    group: Rc<TaskGroup>,
    counters: Rc<Counters>,
) {
    let lanes = job.lanes.of_worker(worker.index as u64, job.participants as u64);
    let local: Vec<u64> = (lanes.first..plan.max_vus).step_by(lanes.step.max(1) as usize).collect();
    let running: Rc<RefCell<Vec<bool>>> = Rc::new(RefCell::new(vec![false; local.len()]));
    let vus: Vec<Rc<VuCtx>> = local.iter().map(|i| Rc::new(VuCtx::new(i + 1, job.tags.clone()))).collect();
    let plan = Rc::new(plan);
    tokio::time::sleep_until(tokio::time::Instant::from_std(job.start)).await;
    let end = job.start + plan.duration;
    loop {
        let now = Instant::now();
        let shared = &worker.thread.shared;
        if now >= end || shared.stop.is_interrupted() || shared.phase_stop.is_stopped() {
            break;
        }
        let target = plan.vus_at(now - job.start);
        for (slot, &global) in local.iter().enumerate() {
            if global < target && !running.borrow()[slot] {
                running.borrow_mut()[slot] = true;
                let (worker, job, plan, vu, running, counters) =
                    (worker.clone(), job.clone(), plan.clone(), vus[slot].clone(), running.clone(), counters.clone());
                group.spawn(async move {
                    vu_loop(&worker, &job, &plan, &vu, global, end, &counters).await;
                    running.borrow_mut()[slot] = false;
                });
            }
        }
        // Nothing left to schedule: every shared iteration is claimed, or the VU count
        // never changes (the VUs end by themselves). Otherwise follow the ramp.
        let all_claimed = matches!(plan.iterations, Iterations::Shared(n) if job.claimed.load(Ordering::Relaxed) >= n);
        if all_claimed || plan.stages.iter().all(|s| s.target == plan.start_vus) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn vu_loop(
    worker: &Rc<Worker>,
    job: &PhaseJob,
    plan: &ClosedPlan,
    vu: &Rc<VuCtx>,
    global: u64,
    end: Instant,
    counters: &Counters,
) {
    loop {
        let now = Instant::now();
        let shared = &worker.thread.shared;
        if now >= end
            || shared.stop.is_interrupted()
            || shared.phase_stop.is_stopped()
            || plan.vus_at(now - job.start) <= global
        {
            return;
        }
        let allowed = match plan.iterations {
            Iterations::Unlimited => true,
            Iterations::Shared(n) => job.claimed.fetch_add(1, Ordering::Relaxed) < n,
            Iterations::PerVu(n) => vu.iteration.get() < n,
        };
        if !allowed {
            return;
        }
        let ended = iterate(worker, vu, job, now).await;
        count(counters, ended);
        if ended == Ended::Interrupted {
            return;
        }
    }
}

/// Open model: this worker starts arrivals `index, index + participants, ...` on
/// schedule; with all its VUs busy an arrival is dropped, never delayed.
async fn schedule_open(
    worker: Rc<Worker>,
    job: Arc<PhaseJob>,
    plan: OpenPlan,
    group: Rc<TaskGroup>,
    counters: Rc<Counters>,
) {
    let parts = job.participants as u64;
    let w = worker.index as u64;
    let lanes = job.lanes.of_worker(w, parts);
    // `plan.max_vus` is this process's (an agent's segment share on an agent).
    let local_max = plan.max_vus / parts + u64::from(w < plan.max_vus % parts);
    let free: Rc<RefCell<Vec<Rc<VuCtx>>>> = Rc::default();
    let created = Cell::new(0u64);
    let mut i = lanes.first;
    while let Some(offset) = plan.arrival(i) {
        let at = job.start + offset;
        let shared = &worker.thread.shared;
        tokio::select! {
            () = tokio::time::sleep_until(tokio::time::Instant::from_std(at)) => {}
            () = shared.phase_stop.wait() => break,
        }
        if shared.stop.is_interrupted() {
            break;
        }
        let busy = created.get() - free.borrow().len() as u64;
        if busy >= local_max {
            counters.dropped.set(counters.dropped.get() + 1);
            worker.thread.record(&builtin::DROPPED_ITERATIONS, &job.tags, 1.0);
        } else {
            let vu = free.borrow_mut().pop().unwrap_or_else(|| {
                created.set(created.get() + 1);
                Rc::new(VuCtx::new(lanes.first + (created.get() - 1) * lanes.step + 1, job.tags.clone()))
            });
            let (worker, job, free, counters) = (worker.clone(), job.clone(), free.clone(), counters.clone());
            group.spawn(async move {
                let ended = iterate(&worker, &vu, &job, at).await;
                count(&counters, ended);
                free.borrow_mut().push(vu);
            });
        }
        i += lanes.step;
    }
}
