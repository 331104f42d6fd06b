//! The built-in simulator of the systems under test: the Focus Server, the alerts API
//! and (with a real RabbitMQ, or in memory) the alert path, behaving like a finite
//! server: latency growing with load, a rate limit, an in-flight cap, a live-job cap
//! with expiry, injected errors and dropped connections, and exact counters of what it
//! received at `GET /sim/stats`. See `docs/simulator.md`.
//!
//! [`SimHandle::start`] runs it on its own thread and tokio runtime, so it can be started
//! from plain code, from tests and from inside another runtime alike.
//!
//! Layout: `config` settings and presets; `limits` rate limiter, in-flight gauge,
//! latency model and fault switches; `stats` counters; `focus` and `alerts` the two
//! APIs; `amqp` the report transport; `server` the HTTP pipeline; `http` helpers;
//! `streams` the streaming service (WebSocket and SSE).
//! Imports nothing from the rest of volley.

mod alerts;
mod amqp;
mod config;
mod configure;
mod control;
mod error;
mod focus;
mod http;
mod limits;
mod server;
mod stats;
mod streams;

use std::net::SocketAddr;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::watch;

pub use config::{
    AlertsConfig, EndpointLatency, FaultsConfig, FocusConfig, LatencyConfig, LimitsConfig, PRESETS, SimConfig,
    StreamsConfig, redact_url,
};
pub use error::SimError;
pub use stats::Endpoint;

/// How long stopping waits for open requests and the broker before giving up.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// A running simulator. Dropping it stops it (like [`SimHandle::stop`]).
#[derive(Debug)]
pub struct SimHandle {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
}

impl SimHandle {
    /// Starts the simulator on `listen` (`127.0.0.1:0` picks a free port) on a thread
    /// that owns a 2-worker tokio runtime. Returns once the socket is listening and,
    /// with `amqp_url`, the broker topology is declared.
    pub fn start(config: SimConfig, listen: SocketAddr) -> Result<SimHandle, SimError> {
        config.validate("settings")?;
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<SocketAddr, SimError>>();
        let (stop_tx, stop_rx) = watch::channel(false);
        let thread = std::thread::Builder::new()
            .name("volley-sim".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("volley-sim-worker")
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(SimError::Startup(format!("tokio runtime: {e}"))));
                        return;
                    }
                };
                runtime.block_on(async move {
                    match server::prepare(config, listen).await {
                        Ok(ready) => {
                            let _ = ready_tx.send(Ok(ready.addr));
                            ready.serve(stop_rx).await;
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                        }
                    }
                });
                runtime.shutdown_timeout(SHUTDOWN_GRACE);
            })
            .map_err(|e| SimError::Startup(format!("cannot spawn the simulator thread: {e}")))?;
        match ready_rx.recv() {
            Ok(Ok(addr)) => Ok(SimHandle { addr, stop: stop_tx, thread: Some(thread) }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                let _ = thread.join();
                Err(SimError::Startup("the simulator thread exited while starting".into()))
            }
        }
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Base URL of the Focus Server API.
    pub fn focus_url(&self) -> String {
        format!("{}/focus-server", self.base_url())
    }

    /// Base URL of the alerts API.
    pub fn alerts_url(&self) -> String {
        format!("{}/prisma/api", self.base_url())
    }

    /// `ws://127.0.0.1:PORT/stream/ws`: the streaming service's WebSocket.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/stream/ws", self.addr)
    }

    /// `http://127.0.0.1:PORT/stream/sse`: the streaming service's SSE endpoint.
    pub fn sse_url(&self) -> String {
        format!("{}/stream/sse", self.base_url())
    }

    /// Stops serving, lets open requests finish (bounded) and closes the broker link.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}
