//! Thresholds judged while the run goes: once a second (from the ticker, after it
//! closes a second) every condition with `abort_on_fail` is judged over the run so far,
//! and every `... over 30s` condition over the window that just ended. A failing
//! `abort_on_fail` condition stops the run through its `Stop` (gracefully: the reports
//! are still written) and records why; the verdict is then exit 99, not 130.

use crate::metrics::threshold::{Op, Windows};
use crate::metrics::{Aggregate, Condition};
use crate::script::context::RunShared;
use crate::script::judge::{Abort, DeclaredThreshold};
use std::time::Duration;

/// How one windowed condition fared over the run.
#[derive(Debug, Clone, Default)]
pub struct WindowOutcome {
    /// Windows judged.
    pub judged: u64,
    /// Windows that violated the condition.
    pub violated: u64,
    /// The worst value of any window (the highest for `<`, the lowest for `>`).
    pub worst: Option<f64>,
    /// When the first violating window ended (seconds since the start).
    pub first_violation_s: Option<f64>,
    /// The selection had samples before the threshold was declared: its windows were
    /// not watched from the start.
    pub late: bool,
}

impl WindowOutcome {
    fn record(&mut self, op: Op, observed: f64, passed: bool, at_s: f64) {
        self.judged += 1;
        let worse = match (self.worst, op) {
            (None, _) => true,
            (Some(w), Op::Lt | Op::Le) => observed > w,
            (Some(w), Op::Gt | Op::Ge) => observed < w,
            (Some(_), _) => !passed,
        };
        if worse {
            self.worst = Some(observed);
        }
        if !passed {
            self.violated += 1;
            self.first_violation_s.get_or_insert(at_s);
        }
    }
}

/// One declared threshold as watched during the run.
struct Watched {
    declared: DeclaredThreshold,
    /// Snapshots for its windowed conditions (None: it has none).
    windows: Option<Windows>,
    /// Per condition, its windows' outcome (windowed conditions only).
    outcomes: Vec<WindowOutcome>,
}

/// The run's live judge, owned by the ticker thread and handed back at the end.
#[derive(Default)]
pub struct LiveJudge {
    watched: Vec<Watched>,
    /// The last second judged.
    last_second: Option<u64>,
}

impl LiveJudge {
    /// Judges the second that just closed (`second`, counted from 0). `elapsed` is the
    /// run's time at its end.
    pub fn tick(&mut self, shared: &RunShared, second: u64, elapsed: Duration) {
        self.adopt(shared);
        if self.watched.is_empty() {
            return;
        }
        self.last_second = Some(second);
        let at_s = elapsed.as_secs_f64();
        let mut abort = None;
        {
            let agg = shared.aggregate.lock().unwrap_or_else(|e| e.into_inner());
            for w in &mut self.watched {
                if let Some(a) = judge_one(w, &agg, second, elapsed, at_s) {
                    abort.get_or_insert(a);
                }
            }
        }
        if let Some(a) = abort {
            let mut slot = shared.aborted.lock().unwrap_or_else(|e| e.into_inner());
            if slot.is_none() && !shared.stop.is_interrupted() {
                // On the live view's stream: the user sees at once why the run ends.
                eprintln!("\nvolley: {}; finishing up", a.describe());
                *slot = Some(a);
                drop(slot);
                shared.stop.interrupt();
            }
        }
    }

    /// Judges the run's last, partial second (after the ticker stopped), and a window
    /// condition of a run shorter than its window over the whole run.
    pub fn finish(&mut self, shared: &RunShared, agg: &Aggregate, elapsed: Duration) {
        self.adopt(shared);
        let second = elapsed.as_secs_f64().ceil().max(1.0) as u64 - 1;
        let at_s = elapsed.as_secs_f64();
        for w in &mut self.watched {
            let Some(windows) = &mut w.windows else { continue };
            if self.last_second.is_none_or(|s| s < second) {
                windows.push(second, agg.query(&w.declared.selector.metric, &w.declared.selector.filters));
            }
            for (c, outcome) in w.declared.conditions.iter().zip(w.outcomes.iter_mut()) {
                let Some(len) = c.window else { continue };
                let sink = match windows.last(len) {
                    Some(s) if self.last_second.is_none_or(|s| s < second) => Some(s),
                    // Never a full window: the whole run is the one window.
                    None if outcome.judged == 0 => agg.query(&w.declared.selector.metric, &w.declared.selector.filters),
                    _ => None,
                };
                let span = if outcome.judged == 0 { elapsed.min(len) } else { len };
                if let Some(sink) = sink
                    && let Ok(v) = c.evaluate(&sink, span)
                    && let Some(observed) = v.observed
                {
                    outcome.record(c.op, observed, v.passed, at_s);
                }
            }
        }
    }

    /// The outcome of a windowed condition: (threshold's index in declaration order,
    /// condition's index).
    pub fn outcome(&self, threshold: usize, condition: usize) -> Option<&WindowOutcome> {
        self.watched.get(threshold).and_then(|w| w.outcomes.get(condition))
    }

    /// Starts watching thresholds declared since the last tick.
    fn adopt(&mut self, shared: &RunShared) {
        let judge = shared.judge.lock().unwrap_or_else(|e| e.into_inner());
        for declared in judge.thresholds.iter().skip(self.watched.len()) {
            let longest = declared.conditions.iter().filter_map(|c| c.window).max();
            let late = longest.is_some() && declared.recorded_before;
            self.watched.push(Watched {
                windows: longest.map(Windows::new),
                outcomes: vec![WindowOutcome { late, ..Default::default() }; declared.conditions.len()],
                declared: declared.clone(),
            });
        }
    }
}

/// Judges one threshold at the end of `second`; returns why to abort, if it must.
fn judge_one(w: &mut Watched, agg: &Aggregate, second: u64, elapsed: Duration, at_s: f64) -> Option<Abort> {
    let d = &w.declared;
    let needs_total = d.abort_on_fail && d.conditions.iter().any(|c| c.window.is_none());
    if w.windows.is_none() && !needs_total {
        return None;
    }
    let total = agg.query(&d.selector.metric, &d.selector.filters);
    let may_abort = d.abort_on_fail && elapsed >= d.delay;
    let mut abort = None;
    if let Some(windows) = &mut w.windows {
        windows.push(second, total.clone());
    }
    for (c, outcome) in d.conditions.iter().zip(w.outcomes.iter_mut()) {
        let (sink, span) = match c.window {
            Some(len) => (w.windows.as_ref().and_then(|ws| ws.last(len)), len),
            None if d.abort_on_fail => (total.clone(), elapsed),
            None => continue,
        };
        // No data is no violation yet: traffic may not have started.
        let Some(sink) = sink else { continue };
        let Ok(v) = c.evaluate(&sink, span) else { continue };
        let Some(observed) = v.observed else { continue };
        if c.window.is_some() {
            outcome.record(c.op, observed, v.passed, at_s);
        }
        if !v.passed && may_abort && abort.is_none() {
            abort = Some(abort_of(d, c, observed, at_s));
        }
    }
    abort
}

fn abort_of(d: &DeclaredThreshold, c: &Condition, observed: f64, at_s: f64) -> Abort {
    Abort {
        selector: d.selector.to_string(),
        condition: c.to_string(),
        observed: Some(observed),
        at_s,
        origin: d.origin.clone(),
    }
}
