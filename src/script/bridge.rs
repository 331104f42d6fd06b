//! The one place that knows VUs are coroutines: [`wait`] runs a future to completion
//! for a native function. Inside a VU it suspends the coroutine and hands the future to
//! the worker, which resumes the VU with the output; at the script's top level it blocks
//! on the orchestrating thread's runtime. Either way the script sees a plain call.

use super::context::{self, VuFuture, VuYielder};
use rhai::{Dynamic, EvalAltResult, Position};
use std::future::Future;

/// The token a terminated evaluation carries when the run was interrupted.
pub const INTERRUPTED_TOKEN: &str = "volley:interrupted";

/// The token a terminated evaluation carries when its iteration ran past the phase's
/// `iteration_timeout` in script code (an awaited native is stopped by the timer; code
/// that never waits by this token).
pub const TIMED_OUT_TOKEN: &str = "volley:iteration-timed-out";

/// The token of `skip(reason)`.
pub const SKIPPED_TOKEN: &str = "volley:skipped";

/// The error natives return when the run was interrupted while they waited.
pub fn interrupted() -> Box<EvalAltResult> {
    EvalAltResult::ErrorTerminated(Dynamic::from(INTERRUPTED_TOKEN), Position::NONE).into()
}

/// Suspends the running VU until the worker has run `fut`. Not generic and never
/// inlined, so a suspended VU's stack holds one small frame here.
#[inline(never)]
fn suspend(yielder: *const VuYielder, fut: VuFuture) {
    // SAFETY: the yielder belongs to the coroutine running right now on this thread
    // (the driver publishes it before every resume); it lives as long as the coroutine.
    // The driver restarts the VU's runaway-loop clock (`running_since`) as it resumes.
    unsafe { &*yielder }.suspend(fut)
}

/// Runs `fut` to completion for the calling script, as if it were blocking. Inside a
/// VU the future goes to the heap at once: the VU's stack (whose touched pages are
/// most of a waiting VU's memory) holds neither it nor the blocking path's frame.
#[inline]
pub fn wait<T: 'static>(fut: impl Future<Output = T> + 'static) -> Result<T, Box<EvalAltResult>> {
    wait_for(move || fut)
}

/// [`wait`] for the future `make` returns, built where it is boxed: a hot path's
/// caller (an HTTP request) then holds only what `make` captured, not the future.
///
/// Inside a VU the output comes back through `slot`, in this (suspended) frame: the
/// future writes it there as it completes, so no box carries it to the worker and
/// back (one allocation and a few cold cache lines less per wait).
#[inline]
pub fn wait_for<T: 'static, F: Future<Output = T> + 'static>(
    make: impl FnOnce() -> F + 'static,
) -> Result<T, Box<EvalAltResult>> {
    let yielder = context::with_vu(|vu| vu.yielder.get())?;
    if !yielder.is_null() {
        let mut slot: Option<T> = None;
        suspend(yielder, boxed_into(make, &raw mut slot));
        return slot.ok_or_else(|| "internal error: a VU was resumed before its wait was over".into());
    }
    wait_blocking_made(make)
}

/// [`wait_blocking`] for the future `make` returns, made in this frame. Never inlined:
/// made in [`wait_for`]'s caller, the future (an HTTP exchange's is over 1 KB) would
/// widen that caller's frame on every VU's stack, for a path VUs never take.
#[inline(never)]
fn wait_blocking_made<T: 'static, F: Future<Output = T> + 'static>(
    make: impl FnOnce() -> F + 'static,
) -> Result<T, Box<EvalAltResult>> {
    wait_blocking(make())
}

/// Puts the future `make` will return on the heap for the worker; its output goes to
/// `out`. Only what `make` captured is written now: the future itself is built in its
/// place in the box at the first poll ([`Deliver`]), so the box's lines are not first
/// copied whole from a stack temporary (an exchange's future is ~1 KB, most of it
/// untouched until its later states). Never inlined: boxing stays out of the native's
/// frame, which stays on the VU's stack while it is suspended.
#[inline(never)]
fn boxed_into<T: 'static, M: FnOnce() -> F + 'static, F: Future<Output = T> + 'static>(
    make: M,
    out: *mut Option<T>,
) -> VuFuture {
    let mut boxed = Box::<Deliver<M, F>>::new_uninit();
    let at = boxed.as_mut_ptr();
    // SAFETY: `at` points to the fresh allocation; every field but `fut` (which stays
    // uninitialised while the state is `Made`) is written before `assume_init`.
    let boxed = unsafe {
        (&raw mut (*at).state).write(State::Made(make));
        (&raw mut (*at).out).write(out);
        boxed.assume_init()
    };
    Box::into_pin(boxed)
}

/// Where a [`Deliver`] is.
enum State<M> {
    /// Not polled yet: the maker; `fut` is uninitialised.
    Made(M),
    /// `fut` holds the running future.
    Running,
    /// The output has been delivered (or the maker panicked); `fut` is uninitialised.
    Done,
}

/// A future built in place at its first poll, whose output is written to `out`.
struct Deliver<M, F: Future> {
    state: State<M>,
    fut: std::mem::MaybeUninit<F>,
    out: *mut Option<F::Output>,
}

impl<M: FnOnce() -> F, F: Future> Future for Deliver<M, F> {
    type Output = ();

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        // SAFETY: `fut` is structurally pinned: it is built in place, polled through a
        // pinned reference, and dropped in place, never moved; the other fields are
        // plain data, free to move.
        let this = unsafe { self.get_unchecked_mut() };
        if matches!(this.state, State::Made(_)) {
            // `Done` while the maker runs: should it panic, `Drop` finds no future to drop.
            if let State::Made(make) = std::mem::replace(&mut this.state, State::Done) {
                this.fut.write(make());
                this.state = State::Running;
            }
        }
        if !matches!(this.state, State::Running) {
            return std::task::Poll::Ready(());
        }
        // SAFETY: `Running` means `fut` is initialised; it is pinned (see above).
        let fut = unsafe { std::pin::Pin::new_unchecked(this.fut.assume_init_mut()) };
        let std::task::Poll::Ready(output) = fut.poll(cx) else { return std::task::Poll::Pending };
        // `Done` first: should the future's destructor panic, `Drop` must not drop it
        // a second time.
        this.state = State::Done;
        // SAFETY: `fut` is initialised and done; it is dropped where it is, once.
        unsafe { this.fut.assume_init_drop() };
        // SAFETY: `out` is the slot of the `wait_for` frame that suspended the VU for
        // this future. The worker polls the future only while that VU is suspended
        // there, and resumes it right after this write; when the VU is dropped instead
        // (interruption), the future is dropped unfinished and never writes.
        // A plain write: the slot holds `None` (set before the VU suspended, written
        // only here, once), so there is nothing to drop, and reading the slot's cold
        // line first only stalled (perf: most of this function's samples).
        unsafe { this.out.write(Some(output)) };
        std::task::Poll::Ready(())
    }
}

impl<M, F: Future> Drop for Deliver<M, F> {
    fn drop(&mut self) {
        if matches!(self.state, State::Running) {
            // SAFETY: `Running` means `fut` is initialised; dropped in place, once.
            unsafe { self.fut.assume_init_drop() };
        }
    }
}

/// [`wait`] outside a VU: blocks on the orchestrating thread's runtime until `fut` is
/// done or the run is interrupted.
#[inline(never)]
fn wait_blocking<T: 'static>(fut: impl Future<Output = T> + 'static) -> Result<T, Box<EvalAltResult>> {
    let thread = context::thread()?;
    let Some(rt) = thread.blocking.as_ref() else {
        return Err("internal error: no runtime to wait on outside a VU".into());
    };
    let stop = thread.shared.stop.wait();
    let out = rt.block_on(async move {
        tokio::select! {
            out = fut => Ok(out),
            () = stop => Err(interrupted()),
        }
    });
    context::with_vu(|vu| vu.running_since.set(std::time::Instant::now()))?;
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;
    use std::task::{Context, Poll, Waker};

    /// A future that is pending `pending` times, then yields 7; counts its drops.
    struct Counted {
        pending: u32,
        drops: Rc<Cell<u32>>,
    }

    impl Future for Counted {
        type Output = u32;
        fn poll(mut self: std::pin::Pin<&mut Self>, _: &mut Context<'_>) -> Poll<u32> {
            if self.pending == 0 {
                return Poll::Ready(7);
            }
            self.pending -= 1;
            Poll::Pending
        }
    }

    impl Drop for Counted {
        fn drop(&mut self) {
            self.drops.set(self.drops.get() + 1);
        }
    }

    fn counted(pending: u32) -> (Rc<Cell<u32>>, Rc<Cell<u32>>, impl FnOnce() -> Counted + 'static) {
        let (made, drops) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
        let (m, d) = (made.clone(), drops.clone());
        (made, drops, move || {
            m.set(m.get() + 1);
            Counted { pending, drops: d }
        })
    }

    #[test]
    fn the_output_lands_in_the_slot_and_the_future_is_built_once_and_dropped_once() {
        let (made, drops, make) = counted(2);
        let mut slot: Option<u32> = None;
        let mut fut = boxed_into(make, &raw mut slot);
        let mut cx = Context::from_waker(Waker::noop());
        assert_eq!(made.get(), 0, "nothing is built before the first poll");
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        assert_eq!((made.get(), drops.get()), (1, 0));
        assert!(fut.as_mut().poll(&mut cx).is_ready());
        // Dropped where it ran, as it finished: its resources go before the VU resumes.
        assert_eq!(drops.get(), 1);
        drop(fut);
        assert_eq!((made.get(), drops.get()), (1, 1));
        assert_eq!(slot, Some(7));
    }

    #[test]
    fn a_wait_dropped_unfinished_never_writes_and_drops_what_it_holds() {
        // Dropped before its first poll: the maker is dropped, never called.
        let (made, drops, make) = counted(0);
        let mut slot: Option<u32> = None;
        drop(boxed_into(make, &raw mut slot));
        assert_eq!((made.get(), drops.get(), slot), (0, 0, None));

        // Dropped while running (an interrupted VU): the future is dropped once.
        let (made, drops, make) = counted(5);
        let mut fut = boxed_into(make, &raw mut slot);
        assert!(fut.as_mut().poll(&mut Context::from_waker(Waker::noop())).is_pending());
        drop(fut);
        assert_eq!((made.get(), drops.get(), slot), (1, 1, None));
    }
}
