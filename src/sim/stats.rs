//! What the simulator received and did, as exact atomic counters: requests by endpoint
//! and status, connection faults, the alert pipeline and the job lifecycle. Rendered as
//! the JSON of `GET /sim/stats`; cleared by `POST /sim/reset`.
//!
//! Depends on nothing else in the simulator.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde_json::{Map, Value, json};

/// The endpoints the simulator tells apart in its counters and latency settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /focus-server/configure`
    Configure,
    /// `DELETE /focus-server/job/{id}`
    JobDelete,
    /// `GET /focus-server/ack`
    Ack,
    /// `GET /focus-server/channels`
    Channels,
    /// `GET /focus-server/live_metadata`
    LiveMetadata,
    /// `GET /focus-server/metadata/{id}`
    Metadata,
    /// `POST /prisma/api/auth/login`
    Login,
    /// `POST /prisma/api/{site}/api/push-to-rabbit`
    PushToRabbit,
    /// `GET /prisma/api/{site}/api/alert`
    AlertQuery,
    /// `DELETE /prisma/api/{site}/api/alert/delete`
    AlertDelete,
    /// Any other path (answered 404).
    Other,
}

const ENDPOINTS: [Endpoint; 11] = [
    Endpoint::Configure,
    Endpoint::JobDelete,
    Endpoint::Ack,
    Endpoint::Channels,
    Endpoint::LiveMetadata,
    Endpoint::Metadata,
    Endpoint::Login,
    Endpoint::PushToRabbit,
    Endpoint::AlertQuery,
    Endpoint::AlertDelete,
    Endpoint::Other,
];

impl Endpoint {
    /// Stable name used in `/sim/stats` and in `latency.endpoints` keys.
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::Configure => "configure",
            Endpoint::JobDelete => "job_delete",
            Endpoint::Ack => "ack",
            Endpoint::Channels => "channels",
            Endpoint::LiveMetadata => "live_metadata",
            Endpoint::Metadata => "metadata",
            Endpoint::Login => "login",
            Endpoint::PushToRabbit => "push_to_rabbit",
            Endpoint::AlertQuery => "alert_query",
            Endpoint::AlertDelete => "alert_delete",
            Endpoint::Other => "other",
        }
    }

    /// The endpoint with this [`Endpoint::name`].
    pub fn from_name(name: &str) -> Option<Endpoint> {
        ENDPOINTS.into_iter().find(|e| e.name() == name)
    }

    /// All names, for hints.
    pub fn names() -> Vec<&'static str> {
        ENDPOINTS.iter().map(|e| e.name()).collect()
    }

    /// Dense index for per-endpoint arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    /// Number of endpoints (array size).
    pub const COUNT: usize = ENDPOINTS.len();
}

/// Statuses 100..=599 get their own counter; anything else is not produced.
const STATUS_SLOTS: usize = 600;

/// Per-endpoint request counters.
struct EndpointCounters {
    by_status: Box<[AtomicU64]>,
    dropped: AtomicU64,
}

/// Counters of the alert pipeline (counted per alert, not per request).
#[derive(Default)]
pub struct AlertCounters {
    /// Alerts in 201 answers of push-to-rabbit.
    pub accepted: AtomicU64,
    /// Alerts handed to the broker and confirmed (or queued in memory).
    pub published: AtomicU64,
    /// Alerts whose publish failed (the request got 503).
    pub publish_failed: AtomicU64,
    /// Messages taken by the processing stage and accepted for processing.
    pub processed: AtomicU64,
    /// Alerts written to the store.
    pub stored: AtomicU64,
    /// Alerts removed through the delete endpoint.
    pub deleted: AtomicU64,
    /// Messages on the queue that another publisher sent (skipped unless configured).
    pub foreign_skipped: AtomicU64,
    /// Messages whose body was not a valid alert report.
    pub invalid_messages: AtomicU64,
}

/// Counters of the job lifecycle.
#[derive(Default)]
pub struct JobCounters {
    /// Jobs created by `/configure`.
    pub created: AtomicU64,
    /// Jobs removed by idle expiry.
    pub expired: AtomicU64,
    /// Jobs cancelled by `DELETE /job/{id}`.
    pub cancelled: AtomicU64,
    /// `/configure` requests refused by the live-job cap.
    pub rejected_at_limit: AtomicU64,
}

/// Counters of the streaming service (`/stream/ws`, `/stream/sse`). Messages are
/// counted when written to the socket (out) or read from it (in); pings and pongs are
/// not messages.
#[derive(Default)]
pub struct StreamCounters {
    /// WebSocket connections open now.
    pub ws_open: AtomicU64,
    /// WebSocket connections accepted (handshake answered 101).
    pub ws_total: AtomicU64,
    /// WebSocket handshakes refused (injected error status or connection dropped).
    pub ws_rejected: AtomicU64,
    /// Text and binary messages received.
    pub ws_msgs_in: AtomicU64,
    /// Text and binary messages sent (pushes, echoes, acknowledgements).
    pub ws_msgs_out: AtomicU64,
    /// Payload bytes received.
    pub ws_bytes_in: AtomicU64,
    /// Payload bytes sent.
    pub ws_bytes_out: AtomicU64,
    /// Pings received (each answered with a pong).
    pub ws_pings: AtomicU64,
    /// Subscribe requests.
    pub ws_subscribes: AtomicU64,
    /// Unsubscribe requests.
    pub ws_unsubscribes: AtomicU64,
    /// Connections ended by `faults.stream_drop_after` (cut or closed with a code).
    pub ws_dropped: AtomicU64,
    /// Connections the client closed with a close frame.
    pub ws_closed_by_client: AtomicU64,
    /// SSE streams open now.
    pub sse_open: AtomicU64,
    /// SSE streams started (reconnections included).
    pub sse_total: AtomicU64,
    /// SSE requests refused (injected error status or connection dropped).
    pub sse_rejected: AtomicU64,
    /// SSE streams started with a `Last-Event-ID` (a client resuming).
    pub sse_resumed: AtomicU64,
    /// SSE events sent.
    pub sse_events_out: AtomicU64,
    /// SSE event bytes sent.
    pub sse_bytes_out: AtomicU64,
    /// SSE streams ended by `faults.stream_drop_after`.
    pub sse_dropped: AtomicU64,
}

impl StreamCounters {
    fn counters(&self) -> [(&'static str, &'static str, &AtomicU64); 19] {
        [
            ("ws", "open", &self.ws_open),
            ("ws", "total", &self.ws_total),
            ("ws", "rejected", &self.ws_rejected),
            ("ws", "msgs_in", &self.ws_msgs_in),
            ("ws", "msgs_out", &self.ws_msgs_out),
            ("ws", "bytes_in", &self.ws_bytes_in),
            ("ws", "bytes_out", &self.ws_bytes_out),
            ("ws", "pings", &self.ws_pings),
            ("ws", "subscribes", &self.ws_subscribes),
            ("ws", "unsubscribes", &self.ws_unsubscribes),
            ("ws", "dropped", &self.ws_dropped),
            ("ws", "closed_by_client", &self.ws_closed_by_client),
            ("sse", "open", &self.sse_open),
            ("sse", "total", &self.sse_total),
            ("sse", "rejected", &self.sse_rejected),
            ("sse", "resumed", &self.sse_resumed),
            ("sse", "events_out", &self.sse_events_out),
            ("sse", "bytes_out", &self.sse_bytes_out),
            ("sse", "dropped", &self.sse_dropped),
        ]
    }

    /// The `streams` part of `/sim/stats`: `{"ws": {...}, "sse": {...}}`.
    pub fn json(&self) -> Value {
        let mut out = json!({"ws": {}, "sse": {}});
        for (proto, name, c) in self.counters() {
            out[proto][name] = json!(c.load(Relaxed));
        }
        out
    }

    /// Zeroes the counters (the open-connection gauges keep counting what is open).
    pub fn reset(&self) {
        for (_, name, c) in self.counters() {
            if name != "open" {
                c.store(0, Relaxed);
            }
        }
    }
}

/// All counters; shared by every connection task.
pub struct Stats {
    endpoints: Vec<EndpointCounters>,
    /// Connections closed at accept time by `refuse_connections`.
    pub refused_connections: AtomicU64,
    /// Requests answered 429 by the push-to-rabbit rate limiter.
    pub rate_limited: AtomicU64,
    /// Requests answered 503 by the in-flight cap.
    pub over_in_flight_cap: AtomicU64,
    /// Requests answered with an injected error.
    pub injected_errors: AtomicU64,
    /// Highest number of requests in flight seen.
    pub max_in_flight_seen: AtomicU64,
    /// When the last push-to-rabbit request arrived, microseconds since start (0 = none).
    last_push_us: AtomicU64,
    /// Longest time between two consecutive push-to-rabbit requests, microseconds:
    /// shows that a client's smart backoff really paused all sending.
    max_push_gap_us: AtomicU64,
    /// Alert pipeline counters.
    pub alerts: AlertCounters,
    /// Job lifecycle counters.
    pub jobs: JobCounters,
    /// Streaming service counters.
    pub streams: StreamCounters,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            endpoints: (0..Endpoint::COUNT)
                .map(|_| EndpointCounters {
                    by_status: (0..STATUS_SLOTS).map(|_| AtomicU64::new(0)).collect(),
                    dropped: AtomicU64::new(0),
                })
                .collect(),
            refused_connections: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
            over_in_flight_cap: AtomicU64::new(0),
            injected_errors: AtomicU64::new(0),
            max_in_flight_seen: AtomicU64::new(0),
            last_push_us: AtomicU64::new(0),
            max_push_gap_us: AtomicU64::new(0),
            alerts: AlertCounters::default(),
            jobs: JobCounters::default(),
            streams: StreamCounters::default(),
        }
    }
}

impl Stats {
    /// Counts one answered request.
    pub fn record(&self, endpoint: Endpoint, status: u16) {
        let slot = usize::from(status).min(STATUS_SLOTS - 1);
        // Relaxed: counters are independent; readers only need each value to be exact.
        self.endpoints[endpoint.index()].by_status[slot].fetch_add(1, Relaxed);
    }

    /// Counts one request whose connection was closed without a response.
    pub fn record_dropped(&self, endpoint: Endpoint) {
        self.endpoints[endpoint.index()].dropped.fetch_add(1, Relaxed);
    }

    /// Notes a push-to-rabbit request arriving `since_start` after the simulator started.
    pub fn note_push(&self, since_start: std::time::Duration) {
        let now = (since_start.as_micros() as u64).max(1);
        let last = self.last_push_us.swap(now, Relaxed);
        if last > 0 {
            self.max_push_gap_us.fetch_max(now.saturating_sub(last), Relaxed);
        }
    }

    /// The longest gap between consecutive push requests, in milliseconds.
    pub fn max_push_gap_ms(&self) -> f64 {
        self.max_push_gap_us.load(Relaxed) as f64 / 1000.0
    }

    /// Sets every counter to zero.
    pub fn reset(&self) {
        for e in &self.endpoints {
            for c in e.by_status.iter() {
                c.store(0, Relaxed);
            }
            e.dropped.store(0, Relaxed);
        }
        self.streams.reset();
        let a = &self.alerts;
        let j = &self.jobs;
        for c in [
            &self.refused_connections,
            &self.rate_limited,
            &self.over_in_flight_cap,
            &self.injected_errors,
            &self.max_in_flight_seen,
            &self.last_push_us,
            &self.max_push_gap_us,
            &a.accepted,
            &a.published,
            &a.publish_failed,
            &a.processed,
            &a.stored,
            &a.deleted,
            &a.foreign_skipped,
            &a.invalid_messages,
            &j.created,
            &j.expired,
            &j.cancelled,
            &j.rejected_at_limit,
        ] {
            c.store(0, Relaxed);
        }
    }

    /// The `requests` part of `/sim/stats`: totals, by status, and by endpoint.
    pub fn requests_json(&self) -> Value {
        let mut total = 0u64;
        let mut dropped_total = 0u64;
        let mut by_status_total: Vec<u64> = vec![0; STATUS_SLOTS];
        let mut by_endpoint = Map::new();
        for endpoint in ENDPOINTS {
            let counters = &self.endpoints[endpoint.index()];
            let mut by_status = Map::new();
            let mut endpoint_total = 0u64;
            for (status, c) in counters.by_status.iter().enumerate() {
                let n = c.load(Relaxed);
                if n > 0 {
                    by_status.insert(status.to_string(), json!(n));
                    by_status_total[status] += n;
                    endpoint_total += n;
                }
            }
            let dropped = counters.dropped.load(Relaxed);
            if endpoint_total + dropped > 0 {
                by_endpoint.insert(
                    endpoint.name().into(),
                    json!({
                        "total": endpoint_total + dropped,
                        "by_status": by_status,
                        "dropped": dropped,
                    }),
                );
            }
            total += endpoint_total + dropped;
            dropped_total += dropped;
        }
        let by_status: Map<String, Value> = by_status_total
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(s, n)| (s.to_string(), json!(n)))
            .collect();
        json!({
            "total": total,
            "dropped": dropped_total,
            "by_status": by_status,
            "by_endpoint": by_endpoint,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for e in ENDPOINTS {
            assert_eq!(Endpoint::from_name(e.name()), Some(e));
        }
        assert_eq!(Endpoint::from_name("nope"), None);
    }

    #[test]
    fn counts_and_resets() {
        let s = Stats::default();
        s.record(Endpoint::Ack, 200);
        s.record(Endpoint::Ack, 200);
        s.record(Endpoint::PushToRabbit, 429);
        s.record_dropped(Endpoint::Ack);
        let j = s.requests_json();
        assert_eq!(j["total"], 4);
        assert_eq!(j["by_status"]["200"], 2);
        assert_eq!(j["by_endpoint"]["ack"]["total"], 3);
        assert_eq!(j["by_endpoint"]["ack"]["dropped"], 1);
        assert_eq!(j["by_endpoint"]["push_to_rabbit"]["by_status"]["429"], 1);
        s.reset();
        assert_eq!(s.requests_json()["total"], 0);
    }
}
