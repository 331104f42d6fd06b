//! Running one iteration of a VU as a stackful coroutine on a pooled stack. The
//! coroutine calls the phase's function; whenever a native hands it a future, the
//! coroutine suspends and this driver awaits the future, then resumes it with the
//! output. Dropping the driver mid-iteration unwinds the coroutine (interruption).

use super::stack::VuStack;
use super::worker::Worker;
use crate::metrics::builtin;
use crate::script::bridge::{INTERRUPTED_TOKEN, TIMED_OUT_TOKEN};
use crate::script::call::IterationFn;
use crate::script::context::{self, VuCtx, VuYielder};
use corosensei::{Coroutine, CoroutineResult};
use rhai::{Dynamic, EvalAltResult};
use std::panic::AssertUnwindSafe;
use std::rc::Rc;
use std::time::Instant;

/// How an iteration ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The function returned.
    Completed,
    /// The function raised a script error.
    Failed,
    /// The run was interrupted while it ran.
    Interrupted,
    /// The phase's `iteration_timeout` stopped it.
    TimedOut,
}

/// Counts an iteration as interrupted unless it finished: the driver future may be
/// dropped at any await (end of phase, Ctrl-C).
struct Guard<'a> {
    worker: &'a Worker,
    vu: &'a VuCtx,
    finished: bool,
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        self.worker.thread.busy.end();
        if !self.finished {
            let tags = self.vu.tags.borrow().clone();
            self.worker.thread.record(&builtin::INTERRUPTED_ITERATIONS, &tags, 1.0);
        }
    }
}

/// Runs one iteration of `func` for `vu`, scheduled at `scheduled` (latency of the
/// iteration is measured from there, so a late start is not hidden).
pub async fn run_iteration(worker: &Rc<Worker>, vu: &Rc<VuCtx>, func: &IterationFn, scheduled: Instant) -> Ended {
    vu.iteration.set(vu.iteration.get() + 1);
    vu.scheduled_start.set(scheduled);
    worker.thread.busy.begin();
    let mut guard = Guard { worker, vu, finished: false };

    // The stack returns to the pool when `co` is dropped, however the iteration ends.
    let stack = worker.stacks.borrow().take();
    let stack = match stack {
        Ok(s) => s,
        Err(e) => {
            let err: EvalAltResult = format!(
                "cannot allocate a VU stack ({e}); with hundreds of thousands of VUs raise vm.max_map_count (sysctl -w vm.max_map_count=262144)"
            )
            .into();
            worker.thread.shared.record_iteration_error(&err);
            guard.finished = true;
            return Ended::Failed;
        }
    };
    let (engine, ast): (&rhai::Engine, &rhai::AST) = (&worker.engine, &worker.ast);
    let vu_ref: &VuCtx = vu;
    // The coroutine borrows the engine, the AST, the function and the VU rather than
    // cloning them per iteration: a clone of the function copies its captured values
    // into a new allocation, and the `Arc`s of engine and AST are shared by every
    // worker, so counting their references moved one cache line between cores twice
    // per iteration.
    // SAFETY: what the function borrows outlives `co`: `co` is a local of this future,
    // dropped (unwinding the coroutine) before it returns or when the future is dropped,
    // and the borrowed values are this future's arguments. The worker never forgets a
    // future (tokio drops a task's future when the task ends or is aborted).
    let mut co: Coroutine<(), context::VuFuture, Result<Dynamic, Box<EvalAltResult>>, VuStack> = unsafe {
        Coroutine::with_stack_unchecked(stack, move |yielder: &VuYielder, ()| {
            vu_ref.yielder.set(yielder as *const VuYielder);
            func.call(engine, ast)
        })
    };
    let vu_ptr: *const VuCtx = Rc::as_ptr(vu);

    let result = loop {
        context::set_current_vu(vu_ptr);
        vu.running_since.set(Instant::now());
        let step = std::panic::catch_unwind(AssertUnwindSafe(|| co.resume(())));
        context::set_current_vu(std::ptr::null());
        match step {
            // The future leaves its output in the suspended frame (`bridge::wait_for`).
            Ok(CoroutineResult::Yield(fut)) => fut.await,
            Ok(CoroutineResult::Return(r)) => break Some(r),
            Err(panic) => {
                worker.thread.shared.record_internal_error("a native function", panic.as_ref());
                break None;
            }
        }
    };
    vu.yielder.set(std::ptr::null());
    let Some(result) = result else {
        guard.finished = true;
        return Ended::Failed;
    };
    drop(co);

    // Borrowed, not cloned: the set is shared by the phase's VUs on every worker.
    let tags = vu.tags.borrow();
    let thread = &worker.thread;
    let ended = match &result {
        Ok(_) => Ended::Completed,
        Err(e) if is_interrupted(e) => Ended::Interrupted,
        // Stopped in script code at the phase's `iteration_timeout`: counted as the timer
        // counts an iteration it stops (a timeout, and interrupted).
        Err(e) if has_token(e, TIMED_OUT_TOKEN) => {
            thread.record(&builtin::ITERATION_TIMEOUTS, &tags, 1.0);
            thread.record(&builtin::INTERRUPTED_ITERATIONS, &tags, 1.0);
            guard.finished = true;
            return Ended::TimedOut;
        }
        Err(e) => {
            thread.record(&builtin::ITERATION_ERRORS, &tags, 1.0);
            thread.shared.record_iteration_error(e);
            Ended::Failed
        }
    };
    if ended == Ended::Interrupted {
        thread.record(&builtin::INTERRUPTED_ITERATIONS, &tags, 1.0);
    } else {
        let took = scheduled.elapsed().as_secs_f64() * 1000.0;
        thread.record_all(&tags, &[(&builtin::ITERATIONS, 1.0), (&builtin::ITERATION_DURATION, took)]);
    }
    guard.finished = true;
    ended
}

/// Whether an error is the run's interruption rather than a script problem.
pub fn is_interrupted(e: &EvalAltResult) -> bool {
    has_token(e, INTERRUPTED_TOKEN)
}

/// Whether an error is a termination carrying `token`.
fn has_token(e: &EvalAltResult, token: &str) -> bool {
    match e {
        EvalAltResult::ErrorTerminated(t, _) => t.to_string() == token,
        EvalAltResult::ErrorInFunctionCall(_, _, inner, _) | EvalAltResult::ErrorInModule(_, inner, _) => {
            has_token(inner, token)
        }
        _ => false,
    }
}
