//! The one place that knows VUs are coroutines: [`wait`] runs a future to completion
//! for a native function. Inside a VU it suspends the coroutine and hands the future to
//! the worker, which resumes the VU with the output; at the script's top level it blocks
//! on the orchestrating thread's runtime. Either way the script sees a plain call.

use super::context::{self, VuFuture, VuYielder};
use rhai::{Dynamic, EvalAltResult, Position};
use std::any::Any;
use std::future::Future;

/// The token a terminated evaluation carries when the run was interrupted.
pub const INTERRUPTED_TOKEN: &str = "volley:interrupted";

/// The token of `skip(reason)`.
pub const SKIPPED_TOKEN: &str = "volley:skipped";

/// The error natives return when the run was interrupted while they waited.
pub fn interrupted() -> Box<EvalAltResult> {
    EvalAltResult::ErrorTerminated(Dynamic::from(INTERRUPTED_TOKEN), Position::NONE).into()
}

/// Suspends the running VU until the worker has run `fut`; returns its output. Not
/// generic and never inlined, so a suspended VU's stack holds one small frame here.
#[inline(never)]
fn suspend(yielder: *const VuYielder, fut: VuFuture) -> Result<Box<dyn Any>, Box<EvalAltResult>> {
    // SAFETY: the yielder belongs to the coroutine running right now on this thread
    // (the driver publishes it before every resume); it lives as long as the coroutine.
    // The driver restarts the VU's runaway-loop clock (`running_since`) as it resumes.
    Ok(unsafe { &*yielder }.suspend(fut))
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
#[inline]
pub fn wait_for<T: 'static, F: Future<Output = T> + 'static>(
    make: impl FnOnce() -> F + 'static,
) -> Result<T, Box<EvalAltResult>> {
    let yielder = context::with_vu(|vu| vu.yielder.get())?;
    if !yielder.is_null() {
        return suspend(yielder, boxed_from(make))?
            .downcast::<T>()
            .map(|b| *b)
            .map_err(|_| "internal error: a VU was resumed with the wrong value".into());
    }
    wait_blocking(make())
}

/// Moves the future `make` returns to the heap for the worker. Never inlined: the
/// copies boxing makes live in this short frame, not in the native's, which stays on
/// the VU's stack while it is suspended.
#[inline(never)]
fn boxed_from<T: 'static, F: Future<Output = T> + 'static>(make: impl FnOnce() -> F + 'static) -> VuFuture {
    Box::pin(async move { Box::new(make().await) as Box<dyn Any> })
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
