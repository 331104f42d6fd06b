//! The live view: once a second, close the aggregate's interval and show one line —
//! redrawn in place on a terminal, a plain line every 10 s otherwise (CI logs).

use super::live::LiveJudge;
use super::phase::Phases;
use crate::duration::format_duration;
use crate::script::context::RunShared;
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How long after a second ends its row is closed: the workers drain 50 ms after each
/// second of the run, so 250 ms leaves them time on a busy machine. A thread that
/// drains later still has its counts added to the right row.
const TICK_LAG: Duration = Duration::from_millis(250);

/// Records the busy-VU sample of one second (tagged with the running phase).
pub fn record_busy(agg: &mut crate::metrics::Aggregate, second: u64, busy: u64, phase: Option<&str>) {
    let mut store = crate::metrics::Store::new(agg.started());
    let tags = match phase {
        Some(name) => crate::metrics::Tags::new(vec![("phase".into(), name.into())]),
        None => crate::metrics::Tags::default(),
    };
    store.add_at(second, &crate::metrics::builtin::VUS, &tags, busy as f64);
    agg.merge(store.drain());
}

/// The live line: redrawn on a terminal, a plain line every 10 s otherwise.
struct LiveLine {
    mode: ProgressMode,
    tty: bool,
    last_plain: Instant,
    total_reqs: u64,
    total_fail: u64,
    recent: std::collections::VecDeque<u64>,
}

impl LiveLine {
    fn new(mode: ProgressMode, tty: bool) -> LiveLine {
        LiveLine { mode, tty, last_plain: Instant::now(), total_reqs: 0, total_fail: 0, recent: Default::default() }
    }

    fn show(&mut self, row: &crate::metrics::IntervalRow, current: Option<&(String, Instant, Duration)>) {
        self.total_reqs += row.requests;
        self.total_fail += row.failures;
        self.recent.push_back(row.requests);
        if self.recent.len() > 3 {
            self.recent.pop_front();
        }
        if self.mode == ProgressMode::Off {
            return;
        }
        let rate = self.recent.iter().sum::<u64>() as f64 / self.recent.len() as f64;
        let phase = match current {
            Some((name, started, nominal)) => format!(
                "{name} {}/{}",
                format_duration(Duration::from_secs(started.elapsed().as_secs())),
                format_duration(*nominal)
            ),
            None => "top level".to_string(),
        };
        let p95 = row.p95_ms.map(|v| format!("{v:.1}ms")).unwrap_or_else(|| "-".into());
        let (reqs, failed) = (self.total_reqs, self.total_fail);
        let fail = if reqs > 0 { 100.0 * failed as f64 / reqs as f64 } else { 0.0 };
        let line = format!("{phase}  vus {}  req/s {rate:.0}  p95 {p95}  requests {reqs}  failed {fail:.2}%", row.vus);
        if self.tty {
            eprint!("\r\x1b[2K{line}");
            let _ = std::io::stderr().flush();
        } else if self.last_plain.elapsed() >= Duration::from_secs(10) {
            self.last_plain = Instant::now();
            eprintln!("[{:>5.0}s] {line}", row.t_s);
        }
    }

    fn clear(&self) {
        if self.tty {
            eprint!("\r\x1b[2K");
        }
    }
}

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

/// Where the closed one-second rows of a run go besides the live view (live outputs
/// such as the Prometheus push). The ticker uses `try_send`: a listener that falls
/// behind loses rows, it never slows the ticker or the VUs.
pub type IntervalListener = std::sync::mpsc::SyncSender<crate::metrics::IntervalRow>;

/// The ticker thread.
pub struct Ticker {
    done: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<(u64, LiveJudge)>>,
}

/// Every declared threshold judged on the run so far (as the end of the run would,
/// with windows from the live judge).
fn thresholds_so_far(shared: &RunShared, live: &LiveJudge, elapsed: Duration) -> Vec<crate::metrics::ThresholdStatus> {
    let declared = shared.judge.lock().unwrap_or_else(|e| e.into_inner()).thresholds.clone();
    if declared.is_empty() {
        return Vec::new();
    }
    let agg = shared.aggregate.lock().unwrap_or_else(|e| e.into_inner());
    super::judge::thresholds(&agg, &declared, &[], elapsed, Some(live))
        .into_iter()
        .map(|t| crate::metrics::ThresholdStatus {
            criterion: format!("{} {}", t.selector, t.condition),
            passed: t.passed,
            observed: t.observed,
        })
        .collect()
}

impl Ticker {
    /// Starts ticking: a little after each second of the run ends (the workers drain
    /// just after it), sample the busy VUs, close the second's row, send it to the
    /// listeners and show the live line.
    pub fn start(
        shared: Arc<RunShared>,
        phases: Arc<Phases>,
        mode: ProgressMode,
        listeners: Vec<IntervalListener>,
    ) -> Ticker {
        let done = Arc::new(AtomicBool::new(false));
        let d = done.clone();
        let tty = mode == ProgressMode::Auto && std::io::stderr().is_terminal();
        let handle = std::thread::Builder::new()
            .name("volley-ticker".into())
            .spawn(move || {
                let mut live = LiveLine::new(mode, tty);
                let mut judge = LiveJudge::default();
                let mut second = 0u64;
                while !d.load(Ordering::Relaxed) {
                    let due = shared.started + Duration::from_secs(second + 1) + TICK_LAG;
                    let now = Instant::now();
                    if now < due {
                        std::thread::park_timeout((due - now).min(Duration::from_millis(100)));
                        continue;
                    }
                    let current = phases.current.lock().unwrap_or_else(|e| e.into_inner()).clone();
                    let rows = {
                        let mut agg = shared.aggregate.lock().unwrap_or_else(|e| e.into_inner());
                        record_busy(&mut agg, second, phases.take_busy_peak(), current.as_ref().map(|c| c.0.as_str()));
                        agg.close_through(second)
                    };
                    // Thresholds with abort_on_fail or a window, over the closed second.
                    judge.tick(&shared, second, Duration::from_secs(second + 1));
                    second += 1;
                    // Live outputs (the dashboard) show every threshold's standing and the
                    // failures so far by kind.
                    let (standing, errors) = if listeners.is_empty() {
                        (Vec::new(), Default::default())
                    } else {
                        let errors = super::judge::failure_kinds(
                            &shared.aggregate.lock().unwrap_or_else(|e| e.into_inner()),
                            &[],
                        );
                        (thresholds_so_far(&shared, &judge, Duration::from_secs(second)), errors)
                    };
                    let last = rows.len().saturating_sub(1);
                    for (i, mut row) in rows.into_iter().enumerate() {
                        row.phase = current.as_ref().map(|c| c.0.to_string());
                        if i == last {
                            row.thresholds = standing.clone();
                            row.errors = errors.clone();
                        }
                        for tx in &listeners {
                            let _ = tx.try_send(row.clone());
                        }
                        live.show(&row, current.as_ref());
                    }
                }
                live.clear();
                (second, judge)
            })
            .ok();
        Ticker { done, handle }
    }

    /// Stops ticking and clears the line.
    /// Returns the first second whose busy-VU sample was not taken yet, and the live
    /// judge (windowed thresholds' outcomes). A panic of the ticker thread (a bug) comes
    /// back as `Err`: the rows it did not close are closed by the run's end, and the run
    /// records an internal error.
    pub fn stop(mut self) -> Result<(u64, LiveJudge), Box<dyn std::any::Any + Send>> {
        self.done.store(true, Ordering::Relaxed);
        match self.handle.take() {
            Some(h) => {
                h.thread().unpark();
                h.join()
            }
            None => Ok((0, LiveJudge::default())),
        }
    }
}
