//! The one place that knows VUs are coroutines: [`wait`] runs a future to completion
//! for a native function. Inside a VU it suspends the coroutine and hands the future to
//! the worker, which resumes the VU with the output; at the script's top level it blocks
//! on the orchestrating thread's runtime. Either way the script sees a plain call.

use super::context::{self, VuFuture};
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

/// Moves a native's future to the heap for the worker. Never inlined: the copies
/// boxing makes live in this short frame, not in the native's, which stays on the VU's
/// stack while it is suspended.
#[inline(never)]
fn boxed<T: 'static>(fut: impl Future<Output = T> + 'static) -> VuFuture {
    Box::pin(async move { Box::new(fut.await) as Box<dyn Any> })
}

/// Runs `fut` to completion for the calling script, as if it were blocking.
pub fn wait<T: 'static>(fut: impl Future<Output = T> + 'static) -> Result<T, Box<EvalAltResult>> {
    let yielder = context::with_vu(|vu| vu.yielder.get())?;
    if !yielder.is_null() {
        let boxed = boxed(fut);
        // SAFETY: the yielder belongs to the coroutine running right now on this thread
        // (the driver publishes it before every resume); it lives as long as the coroutine.
        let output = unsafe { &*yielder }.suspend(boxed);
        context::with_vu(|vu| vu.running_since.set(std::time::Instant::now()))?;
        return output
            .downcast::<T>()
            .map(|b| *b)
            .map_err(|_| "internal error: a VU was resumed with the wrong value".into());
    }
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
