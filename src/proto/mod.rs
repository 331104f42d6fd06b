//! Protocol clients, with no Rhai: what each protocol brings to a run. The script
//! layer binds them (`script::http`, `script::amqp`); the engine only calls
//! [`close_thread`] when a thread's part of a run ends.
//!
//! Adding a protocol: its client here (`proto/NAME.rs`), one line in [`all`], its
//! bindings file in `src/script/` with one line in `script::registry()`, and its
//! metrics as lines in the `metrics!` table of `src/metrics/series.rs` (unit, protocol,
//! role): the summary, history, errors by kind and every report then show them.

pub mod amqp;
pub mod http;
pub mod sse;
pub mod ws;

use std::future::Future;
use std::pin::Pin;

/// What a protocol registers with the run.
pub struct Protocol {
    /// Its name, as in its metrics' `protocol` and its errors by kind (`amqp nack`).
    pub name: &'static str,
    /// The error kinds its failed operations are tagged with (`error` tag), for docs
    /// and `volley check --list-functions` readers.
    pub error_kinds: &'static [&'static str],
    /// Closes this thread's connections at the end of the thread's part of a run.
    pub close_thread: fn() -> Pin<Box<dyn Future<Output = ()>>>,
}

/// Every protocol, in registration order.
pub fn all() -> [Protocol; 4] {
    [
        Protocol {
            name: "http",
            error_kinds: &["status NNN", "timeout", "refused", "reset", "dns", "tls", "connect", "other"],
            // HTTP connections belong to the VUs and the thread's clients: dropped with them.
            close_thread: || Box::pin(async {}),
        },
        Protocol { name: "amqp", error_kinds: amqp::ERROR_KINDS, close_thread: || Box::pin(amqp::close_thread()) },
        // WebSockets and SSE streams belong to the VUs that opened them: closed with them.
        Protocol { name: "ws", error_kinds: ws::ERROR_KINDS, close_thread: || Box::pin(async {}) },
        Protocol { name: "sse", error_kinds: sse::ERROR_KINDS, close_thread: || Box::pin(async {}) },
    ]
}

/// Runs every protocol's thread teardown (workers and the top level call this).
pub async fn close_thread() {
    for p in all() {
        (p.close_thread)().await;
    }
}
