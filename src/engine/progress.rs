//! The live view: once a second, close the aggregate's interval and show one line —
//! redrawn in place on a terminal, a plain line every 10 s otherwise (CI logs).

use super::phase::Phases;
use crate::duration::format_duration;
use crate::script::context::RunShared;
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressMode {
    /// A redrawn line on a terminal, plain lines every 10 s otherwise.
    Auto,
    /// Plain lines every 10 s.
    Plain,
    /// Nothing.
    Off,
}

static INTERVAL_LISTENERS: std::sync::Mutex<Vec<std::sync::mpsc::SyncSender<crate::metrics::IntervalRow>>> =
    std::sync::Mutex::new(Vec::new());

/// Sends every closed one-second interval of the runs that follow to `tx` (live
/// outputs such as the Prometheus push). The ticker uses `try_send`: a listener that
/// falls behind loses rows, it never slows the ticker or the VUs.
pub fn listen_intervals(tx: std::sync::mpsc::SyncSender<crate::metrics::IntervalRow>) {
    INTERVAL_LISTENERS.lock().unwrap_or_else(|e| e.into_inner()).push(tx);
}

/// Drops every interval listener (their receivers see the channel close).
pub fn clear_interval_listeners() {
    INTERVAL_LISTENERS.lock().unwrap_or_else(|e| e.into_inner()).clear();
}

/// The ticker thread.
pub struct Ticker {
    done: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Ticker {
    /// Starts ticking.
    pub fn start(shared: Arc<RunShared>, phases: Arc<Phases>, mode: ProgressMode) -> Ticker {
        let done = Arc::new(AtomicBool::new(false));
        let d = done.clone();
        let tty = mode == ProgressMode::Auto && std::io::stderr().is_terminal();
        let handle = std::thread::Builder::new()
            .name("volley-ticker".into())
            .spawn(move || {
                let mut next = Instant::now() + Duration::from_secs(1);
                let mut last_plain = Instant::now();
                let (mut total_reqs, mut total_fail) = (0u64, 0u64);
                // Workers drain once a second, not in step with this tick: average the
                // last few seconds so the rate shown does not jump.
                let mut recent: std::collections::VecDeque<u64> = std::collections::VecDeque::new();
                while !d.load(Ordering::Relaxed) {
                    std::thread::park_timeout(Duration::from_millis(100));
                    if Instant::now() < next {
                        continue;
                    }
                    next += Duration::from_secs(1);
                    let running = phases.running();
                    let current = phases.current.lock().unwrap_or_else(|e| e.into_inner()).clone();
                    let row = {
                        let mut agg = shared.aggregate.lock().unwrap_or_else(|e| e.into_inner());
                        let mut store = crate::metrics::Store::default();
                        let tags = match &current {
                            Some((name, ..)) => crate::metrics::Tags::new(vec![("phase".into(), name.as_str().into())]),
                            None => crate::metrics::Tags::default(),
                        };
                        store.add(&crate::metrics::builtin::VUS, &tags, running as f64);
                        agg.merge(store.drain());
                        agg.close_interval(running)
                    };
                    for tx in INTERVAL_LISTENERS.lock().unwrap_or_else(|e| e.into_inner()).iter() {
                        let _ = tx.try_send(row.clone());
                    }
                    total_reqs += row.requests;
                    total_fail += row.failures;
                    recent.push_back(row.requests);
                    if recent.len() > 3 {
                        recent.pop_front();
                    }
                    let rate = recent.iter().sum::<u64>() as f64 / recent.len() as f64;
                    if mode == ProgressMode::Off {
                        continue;
                    }
                    let phase = match current {
                        Some((name, started, nominal)) => {
                            format!(
                                "{name} {}/{}",
                                format_duration(Duration::from_secs(started.elapsed().as_secs())),
                                format_duration(nominal)
                            )
                        }
                        None => "top level".to_string(),
                    };
                    let p95 = row.p95_ms.map(|v| format!("{v:.1}ms")).unwrap_or_else(|| "-".into());
                    let fail = if total_reqs > 0 { 100.0 * total_fail as f64 / total_reqs as f64 } else { 0.0 };
                    let line = format!(
                        "{phase}  vus {}  req/s {rate:.0}  p95 {p95}  requests {total_reqs}  failed {fail:.2}%",
                        row.vus
                    );
                    if tty {
                        eprint!("\r\x1b[2K{line}");
                        let _ = std::io::stderr().flush();
                    } else if last_plain.elapsed() >= Duration::from_secs(10) {
                        last_plain = Instant::now();
                        eprintln!("[{:>5.0}s] {line}", row.t_s);
                    }
                }
                if tty {
                    eprint!("\r\x1b[2K");
                }
            })
            .ok();
        Ticker { done, handle }
    }

    /// Stops ticking and clears the line.
    pub fn stop(mut self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            h.thread().unpark();
            let _ = h.join();
        }
    }
}
