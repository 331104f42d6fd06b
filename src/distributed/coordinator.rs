//! The coordinator's side: it dials the agents, proves and checks the token, ships the
//! run, then for each phase sends every live agent its execution segment and merges
//! what they stream back into the run's aggregate, so phase results, thresholds, the
//! live view and every report are computed on the whole, exactly. An agent lost
//! mid-phase is reported and the phase finishes with the others; later phases are
//! split over the agents still alive.

use super::bundle::{self, RunSetup};
use super::values::{self, CaptureNames};
use super::wire::{self, PROTOCOL, PhaseOrder, Samples, ToAgent, ToCoordinator};
use crate::engine::worker::WorkerReport;
use crate::executor::Plan;
use crate::metrics::{Aggregate, Tags};
use crate::script::context::{IterationError, RunShared};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// An agent that sends nothing for this long is lost (agents send every second).
pub const AGENT_SILENCE: Duration = Duration::from_secs(10);
/// A write to an agent that does not drain its socket for this long fails (a stopped
/// agent must not block the coordinator, nor the pings to the others).
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Which agents a run uses.
#[derive(Debug, Clone)]
pub struct AgentsConfig {
    /// `HOST:PORT` of each agent; agent `i` runs segment `i`.
    pub addrs: Vec<String>,
    /// The shared token.
    pub token: String,
    /// How long to wait for every agent to answer before failing the run.
    pub wait: Duration,
    /// Worker threads each agent should use (None: the agent's choice).
    pub workers: Option<usize>,
}

/// One agent as the coordinator sees it.
struct Link {
    /// `n/N` and its address, for messages.
    label: String,
    writer: Mutex<TcpStream>,
    alive: AtomicBool,
    /// The most iterations it ran at once since the last sample.
    busy: AtomicU64,
    /// Its samples alone (its per-agent result file).
    aggregate: Mutex<Aggregate>,
    /// Whether its loss was reported (once).
    reported: AtomicBool,
}

impl Link {
    /// Sends a message; a failed or timed-out write (see [`WRITE_TIMEOUT`]) marks the
    /// agent dead and closes its socket, so its reader reports it lost and nothing waits
    /// on it.
    fn send(&self, msg: &ToAgent) -> bool {
        if !self.alive.load(Ordering::Acquire) {
            return false;
        }
        let mut w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let sent = wire::send(&mut *w, msg).is_ok();
        if !sent {
            self.alive.store(false, Ordering::Release);
            let _ = w.shutdown(std::net::Shutdown::Both);
        }
        sent
    }
}

enum Event {
    Done { agent: usize, id: u64, report: WorkerReport, interrupted: bool },
    Lost { agent: usize, reason: String },
}

/// The agents of a run.
pub struct Agents {
    links: Vec<Arc<Link>>,
    shared: Arc<RunShared>,
    events: Mutex<mpsc::Receiver<Event>>,
    next_phase: AtomicU64,
    /// The phase running on the agents (0 between phases).
    current: Arc<AtomicU64>,
    closing: Arc<AtomicBool>,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

/// The error of an agent that would not join.
fn joining(label: &str, what: impl std::fmt::Display) -> String {
    format!("agent {label}: {what}")
}

fn dial(addr: &str, deadline: Instant, stop: &crate::script::context::Stop) -> Result<TcpStream, String> {
    let mut last = String::from("no address");
    loop {
        if stop.is_interrupted() {
            return Err("interrupted while waiting for it".into());
        }
        let addrs: Vec<_> = match addr.to_socket_addrs() {
            Ok(a) => a.collect(),
            Err(e) => {
                last = format!("cannot resolve: {e}");
                Vec::new()
            }
        };
        for a in addrs {
            match TcpStream::connect_timeout(&a, Duration::from_secs(2)) {
                Ok(s) => return Ok(s),
                Err(e) => last = e.to_string(),
            }
        }
        if Instant::now() >= deadline {
            return Err(last);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn handshake(conn: &mut TcpStream, token: &str, setup: &RunSetup, wait: Duration) -> Result<usize, String> {
    // An agent answers at once; loading the script may take a while on a busy machine.
    let patience = wait.max(Duration::from_secs(10));
    conn.set_read_timeout(Some(patience)).map_err(|e| e.to_string())?;
    conn.set_write_timeout(Some(patience.max(WRITE_TIMEOUT))).map_err(|e| e.to_string())?;
    let _ = conn.set_nodelay(true);
    let version = env!("CARGO_PKG_VERSION").to_string();
    let (nonce, theirs_version, protocol) = match wire::recv::<ToCoordinator>(conn).map_err(|e| e.to_string())? {
        ToCoordinator::Challenge { nonce, version, protocol } => (nonce, version, protocol),
        ToCoordinator::Refused { reason } => return Err(format!("refused: {reason}")),
        _ => return Err("did not send a challenge: not a volley agent?".into()),
    };
    if protocol != PROTOCOL || theirs_version != version {
        return Err(format!(
            "version mismatch: the agent is volley {theirs_version} (protocol {protocol}), this coordinator {version} (protocol {PROTOCOL}); hint: run the same volley build on every machine"
        ));
    }
    let mine = wire::nonce();
    let hello =
        ToAgent::Hello { proof: wire::proof(token, "coordinator", &nonce), nonce: mine.clone(), version, protocol };
    wire::send(conn, &hello).map_err(|e| e.to_string())?;
    match wire::recv::<ToCoordinator>(conn).map_err(|e| format!("no answer to the hello: {e}"))? {
        ToCoordinator::Proof { proof } if wire::verify(token, "agent", &mine, &proof) => {}
        ToCoordinator::Proof { .. } => {
            return Err("could not prove it knows the token (wrong token on the agent?): nothing was sent to it".into());
        }
        ToCoordinator::Refused { reason } => return Err(format!("refused: {reason}")),
        _ => return Err("answered the hello with something else".into()),
    }
    wire::send(conn, &ToAgent::Setup(Box::new(setup.clone()))).map_err(|e| e.to_string())?;
    match wire::recv::<ToCoordinator>(conn).map_err(|e| format!("no answer to the setup: {e}"))? {
        ToCoordinator::Ready { workers } => Ok(workers),
        ToCoordinator::Refused { reason } => Err(format!("could not load the script:\n{reason}")),
        _ => Err("answered the setup with something else".into()),
    }
}

impl Agents {
    /// Dials every agent (retrying until `config.wait` has passed), authenticates it and
    /// ships the run. Any agent that cannot join fails the run, naming it.
    pub fn connect(config: &AgentsConfig, shared: Arc<RunShared>) -> Result<Agents, String> {
        if config.addrs.is_empty() {
            return Err("no agents given".into());
        }
        if config.token.is_empty() {
            return Err("agents need a token: --token T or VOLLEY_TOKEN".into());
        }
        let dirs = crate::script::module_dirs(&shared.script_path);
        let files = bundle::make(&shared.script_path, &dirs).map_err(|e| e.to_string())?;
        let main = shared.script_path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        let count = config.addrs.len();
        let origin_dir = match shared.script_path.parent().map(|p| p.display().to_string()) {
            Some(p) if !p.is_empty() => p,
            _ => ".".to_string(),
        };
        let deadline = Instant::now() + config.wait;
        // Dial in parallel: one slow agent does not delay the others' handshakes.
        let joins: Vec<_> = config
            .addrs
            .iter()
            .enumerate()
            .map(|(i, addr)| {
                let label = format!("{}/{count} ({addr})", i + 1);
                let setup = RunSetup {
                    name: shared.script_path.display().to_string(),
                    main: main.clone(),
                    dirs: files.clone(),
                    env: shared.env.clone(),
                    seed: shared.seed,
                    time_scale: shared.time_scale,
                    elapsed_ms: 0,
                    workers: config.workers,
                    origin_dir: origin_dir.clone(),
                };
                let (addr, token, started, wait) = (addr.clone(), config.token.clone(), shared.started, config.wait);
                let stop = shared.stop.clone();
                std::thread::spawn(move || {
                    let mut conn = dial(&addr, deadline, &stop).map_err(|e| {
                        joining(&label, format!("did not answer within {}: {e}; hint: start it with `volley agent --listen {addr} --token ...`", humantime::format_duration(wait)))
                    })?;
                    let setup = RunSetup { elapsed_ms: started.elapsed().as_millis() as u64, ..setup };
                    let workers = handshake(&mut conn, &token, &setup, wait).map_err(|e| joining(&label, e))?;
                    Ok::<_, String>((label, conn, workers))
                })
            })
            .collect();
        let mut joined = Vec::new();
        let mut errors = Vec::new();
        for j in joins {
            match j.join() {
                Ok(Ok(v)) => joined.push(v),
                Ok(Err(e)) => errors.push(e),
                Err(_) => errors.push("an agent's handshake panicked".into()),
            }
        }
        if !errors.is_empty() {
            for (_, conn, _) in &mut joined {
                let _ = wire::send(conn, &ToAgent::End);
            }
            return Err(errors.join("\n"));
        }
        let (tx, rx) = mpsc::channel();
        let closing = Arc::new(AtomicBool::new(false));
        let current = Arc::new(AtomicU64::new(0));
        let mut links = Vec::new();
        let mut threads = Vec::new();
        for (index, (label, conn, workers)) in joined.into_iter().enumerate() {
            let with = if workers == 1 { "1 worker".to_string() } else { format!("{workers} workers") };
            eprintln!("volley: agent {label} joined with {with}");
            let _ = conn.set_write_timeout(Some(WRITE_TIMEOUT));
            let reader = conn.try_clone().map_err(|e| joining(&label, e))?;
            let link = Arc::new(Link {
                label,
                writer: Mutex::new(conn),
                alive: AtomicBool::new(true),
                reported: AtomicBool::new(false),
                busy: AtomicU64::new(0),
                aggregate: Mutex::new(Aggregate::starting_at(shared.started)),
            });
            let (link2, shared2, tx2, closing2, current2) =
                (link.clone(), shared.clone(), tx.clone(), closing.clone(), current.clone());
            threads.push(std::thread::spawn(move || {
                read_agent(index, reader, &link2, &shared2, &tx2, &closing2, &current2)
            }));
            links.push(link);
        }
        let agents = Agents {
            links,
            shared,
            events: Mutex::new(rx),
            next_phase: AtomicU64::new(1),
            current,
            closing,
            threads: Mutex::new(threads),
        };
        agents.start_heartbeat();
        Ok(agents)
    }

    /// Pings every second and passes Ctrl-C, aborts and `stop_phase` on to the agents:
    /// one thread per agent, so a slow one delays no other.
    fn start_heartbeat(&self) {
        let mut threads = self.threads.lock().unwrap_or_else(|e| e.into_inner());
        for link in &self.links {
            let (link, shared, closing, current) =
                (link.clone(), self.shared.clone(), self.closing.clone(), self.current.clone());
            threads.push(std::thread::spawn(move || {
                let mut interrupted = false;
                let mut last_ping = Instant::now();
                let mut stopped: Option<(u64, String)> = None;
                while !closing.load(Ordering::Acquire) && link.alive.load(Ordering::Acquire) {
                    std::thread::sleep(Duration::from_millis(100));
                    if !interrupted && shared.stop.is_interrupted() {
                        interrupted = true;
                        link.send(&ToAgent::Interrupt);
                    }
                    let phase = current.load(Ordering::Acquire);
                    let stop = shared.phase_stop.reason().filter(|_| phase != 0).map(|r| (phase, r));
                    if let Some((id, reason)) = stop.clone().filter(|s| Some(s) != stopped.as_ref()) {
                        link.send(&ToAgent::StopPhase { id, reason });
                    }
                    stopped = stop;
                    if last_ping.elapsed() >= Duration::from_secs(1) {
                        last_ping = Instant::now();
                        link.send(&ToAgent::Ping);
                    }
                }
            }));
        }
    }

    /// How many agents are still alive.
    pub fn alive(&self) -> usize {
        self.links.iter().filter(|l| l.alive.load(Ordering::Acquire)).count()
    }

    /// The most iterations the agents ran at once since the last call, summed.
    pub fn take_busy_peak(&self) -> u64 {
        self.links.iter().map(|l| l.busy.swap(0, Ordering::AcqRel)).sum()
    }

    /// Runs one phase's plan on the live agents, each its segment. Returns the agents'
    /// reports and the agents lost during it (described).
    pub fn run(&self, order: PhaseParts<'_>) -> Result<(Vec<WorkerReport>, Vec<String>), Box<rhai::EvalAltResult>> {
        // Agents that went away since the last phase are reported before this one.
        self.report_losses(&format!("before phase {:?}", order.name));
        let live: Vec<usize> = (0..self.links.len()).filter(|&i| self.links[i].alive.load(Ordering::Acquire)).collect();
        if live.is_empty() {
            return Err(format!("phase {:?}: every agent was lost; hint: see the warnings above", order.name).into());
        }
        let at = |what: &str| format!("phase {:?}: {what}", order.name);
        let func = values::encode_fn(order.func, order.names, &at("its function")).map_err(|e| e.to_string())?;
        let mut tasks = Vec::new();
        for (name, weight, f) in order.tasks {
            let v = values::encode_fn(f, order.names, &at(&format!("task {name:?}"))).map_err(|e| e.to_string())?;
            tasks.push((name.clone(), *weight, v));
        }
        let id = self.next_phase.fetch_add(1, Ordering::AcqRel);
        self.current.store(id, Ordering::Release);
        let setup = self.shared.setup.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let start_ms = (self.shared.started.elapsed() + Duration::from_millis(20)).as_millis() as u64;
        let mut waiting = Vec::new();
        for (segment, &agent) in live.iter().enumerate() {
            let msg = ToAgent::Phase(Box::new(PhaseOrder {
                id,
                plan: order.plan.clone(),
                segment: (segment as u64, live.len() as u64),
                tags: order.tags.pairs().iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
                func: func.clone(),
                tasks: tasks.clone(),
                iteration_timeout_ns: order.timeout.map(|t| t.as_nanos() as u64),
                setup: setup.clone(),
                start_ms,
            }));
            if self.links[agent].send(&msg) {
                waiting.push(agent);
            }
        }
        let mut reports = Vec::new();
        let mut lost = Vec::new();
        for agent in &live {
            if !waiting.contains(agent) {
                lost.push(self.lose(*agent, "could not be sent the phase".into(), order.name));
            }
        }
        let events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        while !waiting.is_empty() {
            match events.recv() {
                Ok(Event::Done { agent, id: done, report, interrupted }) if done == id => {
                    waiting.retain(|a| *a != agent);
                    reports.push(report);
                    if interrupted && !self.shared.stop.is_interrupted() {
                        let why = "it stopped its load itself (interrupted on the agent, or it stopped hearing this coordinator)";
                        lost.push(self.lose(agent, why.into(), order.name));
                    }
                }
                Ok(Event::Done { .. }) => {}
                Ok(Event::Lost { agent, reason }) => {
                    if waiting.contains(&agent) {
                        waiting.retain(|a| *a != agent);
                        lost.push(self.lose(agent, reason, order.name));
                    }
                }
                Err(_) => break,
            }
        }
        self.current.store(0, Ordering::Release);
        Ok((reports, lost))
    }

    /// Reports agents that went away since the last look (each once).
    fn report_losses(&self, when: &str) {
        let pending: Vec<Event> = self.events.lock().unwrap_or_else(|e| e.into_inner()).try_iter().collect();
        for event in pending {
            if let Event::Lost { agent, reason } = event {
                self.lose(agent, reason, when);
            }
        }
        for (agent, link) in self.links.iter().enumerate() {
            if !link.alive.load(Ordering::Acquire) && !link.reported.load(Ordering::Acquire) {
                self.lose(agent, "its connection failed".into(), when);
            }
        }
    }

    fn lose(&self, agent: usize, reason: String, phase: &str) -> String {
        let link = &self.links[agent];
        link.alive.store(false, Ordering::Release);
        let _ = link.writer.lock().unwrap_or_else(|e| e.into_inner()).shutdown(std::net::Shutdown::Both);
        if link.reported.swap(true, Ordering::AcqRel) {
            return format!("agent {} lost", link.label);
        }
        let when = if phase.starts_with("before ") || phase.starts_with("after ") {
            phase.to_string()
        } else {
            format!("during phase {phase:?}")
        };
        let text = format!("agent {} lost {when}: {reason}", link.label);
        self.shared.warn(format!(
            "{text}; its results until then are kept, the phase finished with the other agents and later phases are split over those still alive"
        ));
        text
    }

    /// Ends the run on every agent and waits for their last samples. Returns each
    /// agent's own aggregate (label, aggregate), for per-agent result files.
    pub fn finish(&self) -> Vec<(String, Aggregate)> {
        // Losses before the end are reported; after `End`, agents leave by design.
        self.report_losses("after the last phase");
        self.closing.store(true, Ordering::Release);
        for l in &self.links {
            l.send(&ToAgent::End);
        }
        // Readers end when the agents close their side after their last samples.
        let readers_done = Instant::now() + Duration::from_secs(10);
        while self.links.iter().any(|l| l.alive.load(Ordering::Acquire)) && Instant::now() < readers_done {
            std::thread::sleep(Duration::from_millis(20));
        }
        for l in &self.links {
            let _ = l.writer.lock().unwrap_or_else(|e| e.into_inner()).shutdown(std::net::Shutdown::Both);
        }
        for t in std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner())) {
            let _ = t.join();
        }
        self.links
            .iter()
            .map(|l| (l.label.clone(), std::mem::take(&mut *l.aggregate.lock().unwrap_or_else(|e| e.into_inner()))))
            .collect()
    }
}

/// One phase as [`Agents::run`] takes it.
pub struct PhaseParts<'a> {
    /// The phase's name.
    pub name: &'a str,
    /// The whole plan.
    pub plan: &'a Plan,
    /// Tags of every sample.
    pub tags: &'a Tags,
    /// The iteration function.
    pub func: &'a rhai::FnPtr,
    /// Weighted tasks: name, weight, function.
    pub tasks: &'a [(String, f64, rhai::FnPtr)],
    /// `iteration_timeout`.
    pub timeout: Option<Duration>,
    /// Where captured variables' names come from.
    pub names: &'a dyn CaptureNames,
}

/// Merges what one agent sends until it goes away.
fn read_agent(
    index: usize,
    mut conn: TcpStream,
    link: &Link,
    shared: &RunShared,
    events: &mpsc::Sender<Event>,
    closing: &AtomicBool,
    current: &AtomicU64,
) {
    let _ = conn.set_read_timeout(Some(AGENT_SILENCE));
    let reason = loop {
        match wire::recv::<ToCoordinator>(&mut conn) {
            Ok(ToCoordinator::Samples(s)) => {
                if let Err(e) = absorb(*s, link, shared) {
                    break format!("sent unreadable samples: {e}");
                }
            }
            Ok(ToCoordinator::PhaseDone { id, iterations, dropped, max_concurrent, interrupted }) => {
                let report = WorkerReport { iterations, dropped, max_concurrent };
                let _ = events.send(Event::Done { agent: index, id, report, interrupted });
            }
            Ok(ToCoordinator::PhaseStopped { id, reason }) => {
                if current.load(Ordering::Acquire) == id && !shared.phase_stop.is_stopped() {
                    shared.phase_stop.stop(&reason);
                }
            }
            Ok(other) => break format!("sent an unexpected message: {other:?}"),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => {
                break format!("silent for {}s", AGENT_SILENCE.as_secs());
            }
            Err(e) => break format!("connection closed ({e})"),
        }
    };
    link.alive.store(false, Ordering::Release);
    if !closing.load(Ordering::Acquire) {
        let _ = events.send(Event::Lost { agent: index, reason });
    }
}

/// Folds one agent's samples into the run.
fn absorb(s: Samples, link: &Link, shared: &RunShared) -> Result<(), String> {
    for (name, kind) in &s.metrics {
        let _ = shared.registry.define(name, *kind);
    }
    let batches = wire::decode_batches(s.batches)?;
    if !batches.is_empty() {
        link.aggregate.lock().unwrap_or_else(|e| e.into_inner()).merge(batches.clone());
        shared.aggregate.lock().unwrap_or_else(|e| e.into_inner()).merge(batches);
    }
    link.busy.fetch_max(s.busy, Ordering::AcqRel);
    if s.script_error {
        shared.had_script_error.store(true, Ordering::Relaxed);
    }
    if !s.errors.is_empty() {
        let mut errors = shared.iteration_errors.lock().unwrap_or_else(|e| e.into_inner());
        for e in s.errors {
            if let Some(x) = errors.iter_mut().find(|x| x.key == e.key) {
                x.count += e.count;
            } else if errors.len() < 100 {
                errors.push(IterationError { key: e.key, rendered: e.rendered, count: e.count });
            }
        }
    }
    for w in s.warnings {
        let known = shared.warnings.lock().unwrap_or_else(|e| e.into_inner()).contains(&w);
        if !known {
            shared.warn(w);
        }
    }
    Ok(())
}
