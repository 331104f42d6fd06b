//! `volley agent`: waits for a coordinator, proves and checks the shared token, receives
//! the script and runs the phase segments it is sent, streaming its drained samples
//! back every second. It never runs the script's top level. When it hears nothing from
//! its coordinator for [`COORDINATOR_SILENCE`], it stops its load: no orphan load.

use super::bundle::{self, RunSetup};
use super::values::Functions;
use super::wire::{self, PROTOCOL, PhaseOrder, Samples, ToAgent, ToCoordinator, WireError};
use crate::engine::worker::{Lanes, PhaseJob, TaskJob, WorkerPool, WorkerReport};
use crate::executor::Plan;
use crate::executor::segment::{Segment, SegmentPlan};
use crate::metrics::{Str, Tags};
use crate::script::call::IterationFn;
use crate::script::context::{self, Busy, RunShared, Stop, ThreadCtx};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// An agent that hears nothing from its coordinator for this long stops its load (the
/// coordinator pings every second).
pub const COORDINATOR_SILENCE: Duration = Duration::from_secs(3);
/// How long a coordinator gets to answer the challenge.
const HANDSHAKE: Duration = Duration::from_secs(10);
/// How long an agent that joined waits for the run to begin (the coordinator waits for
/// its other agents first, up to its `--agent-wait`).
const JOINING: Duration = Duration::from_secs(3600);

/// How an agent runs.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Where to listen.
    pub listen: String,
    /// The shared token.
    pub token: String,
    /// Worker threads (None: the coordinator's choice, else two per core).
    pub workers: Option<usize>,
    /// Exit after one run (a Kubernetes Job's pod).
    pub once: bool,
}

/// Serves coordinators one at a time until `stop` (or after one run with `once`).
/// Prints `volley agent: listening on ADDR` on stdout once bound.
pub fn serve(config: &AgentConfig, stop: &Arc<Stop>) -> Result<(), String> {
    if config.token.is_empty() {
        return Err(
            "an agent needs a token: --token T or VOLLEY_TOKEN; hint: the coordinator passes the same one".into()
        );
    }
    let listener = TcpListener::bind(&config.listen).map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    println!("volley agent: listening on {addr}");
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let busy = Arc::new(AtomicBool::new(false));
    let (done_tx, done_rx) = mpsc::channel::<bool>();
    while !stop.is_interrupted() {
        if config.once
            && let Ok(true) = done_rx.try_recv()
        {
            return Ok(());
        }
        let (conn, peer) = match listener.accept() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            Err(e) => return Err(format!("accept on {addr}: {e}")),
        };
        let _ = conn.set_nonblocking(false);
        // Each connection proves the token on its own thread: a silent or foreign
        // connection holds nothing up; only an authenticated coordinator takes the agent.
        let (config, busy, done_tx, stop) = (config.clone(), busy.clone(), done_tx.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut took = false;
            let ran = session(conn, &config, &stop, &busy, &mut took);
            if let Err(e) = &ran {
                eprintln!("volley agent: coordinator {peer}: {e}");
            }
            if took {
                busy.store(false, Ordering::Release);
                eprintln!("volley agent: run from {peer} ended");
                // A run that began counts as served (`--once` exits), however it ended.
                let _ = done_tx.send(true);
            }
        });
    }
    // Ctrl-C: the running session stops its load and sends its last samples first.
    let deadline = Instant::now() + Duration::from_secs(15);
    while busy.load(Ordering::Acquire) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

fn refuse(conn: &mut TcpStream, reason: String) -> Result<bool, String> {
    let _ = wire::send(conn, &ToCoordinator::Refused { reason: reason.clone() });
    Err(reason)
}

/// One coordinator's run. Sets `took` once the authenticated coordinator has taken this
/// agent (its run began).
fn session(
    mut conn: TcpStream,
    config: &AgentConfig,
    stop: &Arc<Stop>,
    busy: &AtomicBool,
    took: &mut bool,
) -> Result<bool, String> {
    let _ = conn.set_nodelay(true);
    conn.set_read_timeout(Some(HANDSHAKE)).map_err(|e| e.to_string())?;
    let nonce = wire::nonce();
    let version = env!("CARGO_PKG_VERSION").to_string();
    wire::send(
        &mut conn,
        &ToCoordinator::Challenge { nonce: nonce.clone(), version: version.clone(), protocol: PROTOCOL },
    )
    .map_err(|e| e.to_string())?;
    let hello: ToAgent = wire::recv(&mut conn).map_err(|e| format!("no hello: {e}"))?;
    let ToAgent::Hello { proof, nonce: theirs, version: their_version, protocol } = hello else {
        return refuse(&mut conn, "expected a hello first".into());
    };
    if protocol != PROTOCOL || their_version != version {
        return refuse(
            &mut conn,
            format!(
                "version mismatch: this agent is volley {version} (protocol {PROTOCOL}), the coordinator {their_version} (protocol {protocol}); hint: run the same volley build on every machine"
            ),
        );
    }
    if !wire::verify(&config.token, "coordinator", &nonce, &proof) {
        return refuse(
            &mut conn,
            "wrong token; hint: coordinator and agents need the same --token (or VOLLEY_TOKEN)".into(),
        );
    }
    if busy.swap(true, Ordering::AcqRel) {
        return refuse(&mut conn, "busy with another coordinator's run".into());
    }
    *took = true;
    wire::send(&mut conn, &ToCoordinator::Proof { proof: wire::proof(&config.token, "agent", &theirs) })
        .map_err(|e| e.to_string())?;
    // Until the coordinator has every agent, it may take as long as its --agent-wait.
    conn.set_read_timeout(Some(JOINING)).map_err(|e| e.to_string())?;
    let setup = match wire::recv::<ToAgent>(&mut conn) {
        Ok(ToAgent::Setup(s)) => s,
        Ok(_) => return refuse(&mut conn, "expected the run's setup".into()),
        Err(e) => return Err(format!("no setup: {e}")),
    };
    let dir = std::env::temp_dir().join(format!(
        "volley-agent-{}-{}",
        std::process::id(),
        wire::nonce().get(..8).unwrap_or("x")
    ));
    let result = run_session(conn, config, &setup, &dir, stop);
    let _ = std::fs::remove_dir_all(&dir);
    result.map(|()| true)
}

/// What the reader, the shipper and phase threads share.
struct Session {
    shared: Arc<RunShared>,
    writer: Mutex<TcpStream>,
    pool: WorkerPool,
    busy: Vec<Arc<Busy>>,
    loaded: crate::script::Loaded,
    ended: AtomicBool,
    /// The phase running, to report `stop_phase` once.
    phase: AtomicU64,
    stop_reported: AtomicU64,
    /// A `stop_phase` from the coordinator for a phase not started here yet.
    pending_stop: Mutex<Option<(u64, String)>>,
    /// This agent's copy of the script's directory, and the coordinator's path of it:
    /// messages name the coordinator's files.
    paths: (String, String),
}

impl Session {
    fn send(&self, msg: &ToCoordinator) -> bool {
        wire::send(&mut *self.writer.lock().unwrap_or_else(|e| e.into_inner()), msg).is_ok()
    }

    /// A message in the coordinator's terms (its paths, not this agent's copy).
    fn theirs(&self, text: String) -> String {
        if self.paths.0.is_empty() { text } else { text.replace(&self.paths.0, &self.paths.1) }
    }

    /// Everything drained since the last call, as one message.
    fn samples(&self) -> Samples {
        let shared = &self.shared;
        let batches = shared.outbox.as_ref().map(|o| std::mem::take(&mut *o.lock().unwrap_or_else(|e| e.into_inner())));
        let errors = std::mem::take(&mut *shared.iteration_errors.lock().unwrap_or_else(|e| e.into_inner()));
        let warnings = std::mem::take(&mut *shared.warnings.lock().unwrap_or_else(|e| e.into_inner()));
        Samples {
            batches: wire::encode_batches(&batches.unwrap_or_default()),
            busy: self.busy.iter().map(|b| b.take_peak()).sum(),
            errors: errors
                .into_iter()
                .map(|e| WireError { key: self.theirs(e.key), rendered: self.theirs(e.rendered), count: e.count })
                .collect(),
            warnings: warnings.into_iter().map(|w| self.theirs(w)).collect(),
            metrics: shared.registry.custom().into_iter().map(|m| (m.name.to_string(), m.kind)).collect(),
            script_error: shared.had_script_error.load(Ordering::Relaxed),
        }
    }

    /// Sends what was drained (and a `stop_phase` of this phase, once). The writer is
    /// held from draining to sending, so what one call drained never overtakes what an
    /// earlier one sent, nor the `PhaseDone` that follows it.
    fn ship(&self) -> bool {
        let mut w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let phase = self.phase.load(Ordering::Acquire);
        if phase != 0
            && self.stop_reported.load(Ordering::Acquire) != phase
            && let Some(reason) = self.shared.phase_stop.reason()
        {
            self.stop_reported.store(phase, Ordering::Release);
            if wire::send(&mut *w, &ToCoordinator::PhaseStopped { id: phase, reason }).is_err() {
                return false;
            }
        }
        wire::send(&mut *w, &ToCoordinator::Samples(Box::new(self.samples()))).is_ok()
    }

    /// `stop_phase` from the coordinator: now if the phase runs here, else when it starts.
    fn stop_phase(&self, id: u64, reason: String) {
        if self.phase.load(Ordering::Acquire) == id {
            self.stop_reported.store(id, Ordering::Release);
            self.shared.phase_stop.stop(&reason);
        } else {
            *self.pending_stop.lock().unwrap_or_else(|e| e.into_inner()) = Some((id, reason));
        }
    }
}

fn run_session(
    mut conn: TcpStream,
    config: &AgentConfig,
    setup: &RunSetup,
    dir: &std::path::Path,
    stop: &Arc<Stop>,
) -> Result<(), String> {
    let (main, dirs) = match bundle::unpack(setup, dir) {
        Ok(v) => v,
        Err(e) => return refuse(&mut conn, e).map(|_| ()),
    };
    let loaded = match crate::script::load_from(&main, dirs, setup.name.clone()) {
        Ok(l) => l,
        Err((d, sources)) => return refuse(&mut conn, d.render(&sources)).map(|_| ()),
    };
    let names = match context::NameCap::from_env(&setup.env) {
        Ok(n) => n,
        Err(e) => return refuse(&mut conn, e).map(|_| ()),
    };
    let run_stop = Arc::new(Stop::default());
    let mut shared = RunShared::new(main.clone(), setup.env.clone(), setup.time_scale, run_stop.clone());
    // Seconds count from the coordinator's start, so batches land in the right rows.
    shared.started = Instant::now().checked_sub(Duration::from_millis(setup.elapsed_ms)).unwrap_or_else(Instant::now);
    shared.names = names;
    shared.seed = setup.seed;
    shared.outbox = Some(Mutex::new(Vec::new()));
    let shared = Arc::new(shared);
    {
        let (sources, name, functions) = (loaded.sources.clone(), loaded.name.clone(), loaded.functions.clone());
        let render = move |e: &rhai::EvalAltResult| {
            crate::script::diagnostics::from_eval_error(e, &name, &functions).render(&sources)
        };
        let _ = shared.render_error.set(Box::new(render));
    }
    let workers = config.workers.or(setup.workers).unwrap_or_else(crate::engine::run::default_workers).max(1);
    let pool = match WorkerPool::start(workers, shared.clone(), loaded.engine.clone(), loaded.ast.clone()) {
        Ok(p) => p,
        Err(e) => return refuse(&mut conn, format!("cannot start {workers} worker threads: {e}")).map(|_| ()),
    };
    let writer = conn.try_clone().map_err(|e| e.to_string())?;
    let session = Arc::new(Session {
        busy: pool.active.clone(),
        shared: shared.clone(),
        writer: Mutex::new(writer),
        pool,
        loaded,
        ended: AtomicBool::new(false),
        phase: AtomicU64::new(0),
        stop_reported: AtomicU64::new(0),
        pending_stop: Mutex::new(None),
        paths: (dir.join("0").display().to_string(), setup.origin_dir.clone()),
    });
    session.send(&ToCoordinator::Ready { workers });
    eprintln!(
        "volley agent: running {} for {}",
        setup.name,
        conn.peer_addr().map(|a| a.to_string()).unwrap_or_default()
    );

    // The shipper: each second, just after the workers drain theirs.
    let shipper = {
        let session = session.clone();
        std::thread::spawn(move || {
            let started = session.shared.started;
            let mut next = started + Duration::from_millis(150) + Duration::from_secs(started.elapsed().as_secs() + 1);
            while !session.ended.load(Ordering::Acquire) {
                let now = Instant::now();
                if now < next {
                    std::thread::sleep((next - now).min(Duration::from_millis(100)));
                    continue;
                }
                next += Duration::from_secs(1);
                if !session.ship() {
                    break;
                }
            }
        })
    };

    // The coordinator pings once every agent has joined; from its first message on,
    // silence means it is gone.
    let mut heard = false;
    let mut phases: Vec<std::thread::JoinHandle<()>> = Vec::new();
    let outcome = loop {
        if stop.is_interrupted() {
            run_stop.interrupt();
            break Ok(());
        }
        let received = wire::recv::<ToAgent>(&mut conn);
        if !heard && received.is_ok() {
            heard = true;
            conn.set_read_timeout(Some(COORDINATOR_SILENCE)).map_err(|e| e.to_string())?;
        }
        match received {
            Ok(ToAgent::Phase(order)) => {
                let session = session.clone();
                phases.retain(|h| !h.is_finished());
                phases.push(std::thread::spawn(move || run_phase(&session, *order)));
            }
            Ok(ToAgent::StopPhase { id, reason }) => session.stop_phase(id, reason),
            Ok(ToAgent::Interrupt) => run_stop.interrupt(),
            Ok(ToAgent::Ping) => {}
            Ok(ToAgent::End) => break Ok(()),
            Ok(other) => break Err(format!("unexpected message {other:?}")),
            Err(e) => {
                // No orphan load: a coordinator that is gone or silent stops the run.
                run_stop.interrupt();
                break Err(format!("coordinator lost ({e}); load stopped"));
            }
        }
    };
    run_stop.interrupt();
    for h in phases {
        let _ = h.join();
    }
    session.ended.store(true, Ordering::Release);
    let _ = shipper.join();
    session.pool.shutdown();
    // What the workers drained while stopping, then goodbye.
    session.ship();
    outcome
}

/// The agent's part of one phase: its segment of the plan, dealt over its workers.
fn run_phase(session: &Session, order: PhaseOrder) {
    let shared = &session.shared;
    // Natives that define metrics (a captured custom metric) need a thread context.
    let thread = std::rc::Rc::new(ThreadCtx::new(shared.clone(), None));
    context::install_thread(thread.clone());
    let report = match prepare(session, &order) {
        Ok(None) => WorkerReport::default(),
        Ok(Some(job)) => {
            shared.phase_stop.reset();
            session.phase.store(order.id, Ordering::Release);
            let pending = session.pending_stop.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some((id, reason)) = pending.filter(|(id, _)| *id == order.id) {
                session.stop_phase(id, reason);
            }
            let (tx, rx) = mpsc::channel();
            let job = PhaseJob { done: tx, ..job };
            let reports = session.pool.run(job, rx);
            WorkerReport {
                iterations: reports.iter().map(|r| r.iterations).sum(),
                dropped: reports.iter().map(|r| r.dropped).sum(),
                max_concurrent: reports.iter().map(|r| r.max_concurrent).sum(),
            }
        }
        Err(e) => {
            shared.record_iteration_error(&session.theirs(e).into());
            WorkerReport::default()
        }
    };
    thread.flush();
    context::uninstall_thread();
    // Everything this phase drained goes out before it is reported done.
    session.ship();
    session.send(&ToCoordinator::PhaseDone {
        id: order.id,
        iterations: report.iterations,
        dropped: report.dropped,
        max_concurrent: report.max_concurrent,
        // Stopped here (Ctrl-C on this agent, its coordinator silent), not on request.
        interrupted: shared.stop.is_interrupted(),
    });
}

/// The job for this agent's segment, or None when the segment is idle.
fn prepare(session: &Session, order: &PhaseOrder) -> Result<Option<PhaseJob>, String> {
    let shared = &session.shared;
    crate::script::setup::replay(shared, &order.setup).map_err(|e| e.to_string())?;
    let segment = Segment::new(order.segment.0, order.segment.1).map_err(|e| e.to_string())?;
    let (plan, lanes, max_vus) = match (segment.split(&order.plan), &order.plan) {
        (SegmentPlan::Closed(c), _) => {
            let mut p = c.whole().clone();
            p.iterations = c.iterations;
            (Plan::Closed(p), Lanes { first: segment.index(), step: segment.count() }, c.max_vus)
        }
        (SegmentPlan::Open(o), Plan::Open(whole)) => {
            let mut p = o.whole().clone();
            p.max_vus = o.max_vus;
            p.pre_allocated_vus = o.pre_allocated_vus;
            let step = segment.count().min(whole.max_vus).max(1);
            (Plan::Open(p), Lanes { first: segment.index(), step }, o.max_vus)
        }
        _ => return Err("bursts reach agents one burst at a time, as closed plans".into()),
    };
    if max_vus == 0 {
        return Ok(None);
    }
    let functions = Functions { ast: &session.loaded.ast, modules: &session.loaded.modules };
    let tags = Tags::new(order.tags.iter().map(|(k, v)| (Str::from(k.as_str()), Str::from(v.as_str()))).collect());
    let func = IterationFn::new(functions.decode_fn(&order.func)?, &session.loaded.ast);
    let mut tasks = Vec::new();
    let mut weights = Vec::new();
    for (name, weight, f) in &order.tasks {
        tasks.push(TaskJob {
            func: IterationFn::new(functions.decode_fn(f)?, &session.loaded.ast),
            tags: tags.with([(Str::from("task"), Str::from(name.as_str()))]),
        });
        weights.push(*weight);
    }
    let start_at = shared.started + Duration::from_millis(order.start_ms);
    let (done, _) = mpsc::channel();
    Ok(Some(PhaseJob {
        tags,
        plan,
        func,
        tasks,
        task_weights: weights,
        start: start_at.max(Instant::now() + Duration::from_millis(2)),
        participants: session.pool.len().min(max_vus as usize),
        claimed: AtomicU64::new(0),
        iteration_timeout: order.iteration_timeout_ns.map(Duration::from_nanos),
        done,
        lanes,
    }))
}
