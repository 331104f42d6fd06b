//! Series: a metric name plus a tag set. Each thread records into its own [`Store`]
//! (no locks, no atomics on the hot path) and periodically drains it into the run's
//! [`crate::metrics::Aggregate`].

use super::sink::{MetricKind, Sink};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};

/// A shared immutable string (metric names, tag keys and values).
pub type Str = Arc<str>;

/// A sorted, de-duplicated set of `key:value` tags, cheap to clone and hash: the hash
/// is computed once, when the set is built (every sample of a request looks its series
/// up by these tags, and hashing the strings each time was ~3% of CPU per request).
#[derive(Clone)]
pub struct Tags(Arc<TagSet>);

struct TagSet {
    hash: u64,
    pairs: Box<[(Str, Str)]>,
}

impl PartialEq for Tags {
    fn eq(&self, other: &Tags) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || (self.0.hash == other.0.hash && self.0.pairs == other.0.pairs)
    }
}

impl Eq for Tags {}

impl std::hash::Hash for Tags {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.0.hash);
    }
}

impl Default for Tags {
    fn default() -> Tags {
        Tags::new(Vec::new())
    }
}

impl Tags {
    /// Builds a tag set; a later duplicate key wins.
    pub fn new(mut pairs: Vec<(Str, Str)>) -> Tags {
        // Stable sort keeps insertion order among equal keys, so "last wins" below.
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out: Vec<(Str, Str)> = Vec::with_capacity(pairs.len());
        for (k, v) in pairs {
            match out.last_mut() {
                Some(last) if last.0 == k => last.1 = v,
                _ => out.push((k, v)),
            }
        }
        let hash = std::hash::BuildHasher::hash_one(&rustc_hash::FxBuildHasher, &out);
        Tags(Arc::new(TagSet { hash, pairs: out.into_boxed_slice() }))
    }

    /// The value of a tag.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.pairs.iter().find(|(k, _)| &**k == key).map(|(_, v)| &**v)
    }

    /// This set plus more tags (theirs win).
    pub fn with(&self, more: impl IntoIterator<Item = (Str, Str)>) -> Tags {
        let mut v: Vec<(Str, Str)> = self.0.pairs.to_vec();
        v.extend(more);
        Tags::new(v)
    }

    /// Whether two tag sets are the same allocation (a cheap identity for caches).
    pub fn same(&self, other: &Tags) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// The address of the set, an identity while a clone of it is kept.
    pub fn id(&self) -> usize {
        Arc::as_ptr(&self.0) as usize
    }

    /// The pairs, sorted by key.
    pub fn pairs(&self) -> &[(Str, Str)] {
        &self.0.pairs
    }

    /// Whether every filter `(key, value)` is present.
    pub fn contains_all(&self, filters: &[(String, String)]) -> bool {
        filters.iter().all(|(k, v)| self.get(k) == Some(v.as_str()))
    }
}

impl fmt::Debug for Tags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Tags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, (k, v)) in self.0.pairs.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{k}:{v}")?;
        }
        f.write_str("}")
    }
}

/// A metric: its name and kind. Built-ins are in [`builtin`]; custom ones come from
/// [`define`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Metric {
    /// The metric's name, e.g. `http_req_duration`.
    pub name: Str,
    /// Its kind.
    pub kind: MetricKind,
}

/// What a metric stands for in a protocol, so the live view, history, phase results and
/// reports can summarise any protocol without knowing its names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Operations sent (HTTP requests, AMQP publishes, ...): the "requests" of a row.
    Requests,
    /// Share of logical operations that failed, tagged by `error` (or `status`).
    Failed,
    /// Service time of an operation in ms: the latency percentiles of a row.
    Latency,
    /// Anything else.
    Other,
}

/// A metric's description: everything a report needs to show it.
#[derive(Clone, Debug)]
pub struct Desc {
    /// The metric.
    pub metric: Metric,
    /// Unit of its values (`ms`, `B`, or empty for a count or a share).
    pub unit: &'static str,
    /// The protocol that records it (`http`, `amqp`, ...), or `core`.
    pub protocol: &'static str,
    /// What it stands for.
    pub role: Role,
    /// One line for humans.
    pub doc: &'static str,
}

/// The built-in metrics every run records.
pub mod builtin {
    use super::{Desc, Metric, MetricKind, Role, Str};
    use std::sync::LazyLock;

    macro_rules! metrics {
        ($($id:ident = $name:literal, $kind:ident, $unit:literal, $proto:literal, $role:ident, $doc:literal;)*) => {
            $(
                #[doc = $doc]
                pub static $id: LazyLock<Metric> =
                    LazyLock::new(|| Metric { name: Str::from($name), kind: MetricKind::$kind });
            )*
            /// Every built-in metric with its description, for `--list-metrics` and docs.
            pub fn all() -> Vec<(&'static Metric, &'static str)> {
                vec![$((&*$id, $doc)),*]
            }
            /// Every built-in metric's full description, in table order.
            pub fn descs() -> Vec<Desc> {
                vec![$(Desc { metric: (*$id).clone(), unit: $unit, protocol: $proto, role: Role::$role, doc: $doc }),*]
            }
        };
    }

    metrics! {
        HTTP_REQS = "http_reqs", Counter, "", "http", Requests, "HTTP requests sent (every attempt, retries included)";
        HTTP_REQ_DURATION = "http_req_duration", Trend, "ms", "http", Latency, "HTTP service time in ms: from sending the request to the last byte of the body";
        HTTP_REQ_FAILED = "http_req_failed", Rate, "", "http", Failed, "Share of logical HTTP requests that failed (unexpected status or network error); a retried call counts once, with its final outcome";
        ITERATIONS = "iterations", Counter, "", "core", Other, "Iterations completed";
        ITERATION_DURATION = "iteration_duration", Trend, "ms", "core", Other, "Iteration time in ms; in open models measured from the scheduled start, so queueing delay is not hidden";
        DROPPED_ITERATIONS = "dropped_iterations", Counter, "", "core", Other, "Iterations an open model could not start because max_vus were busy";
        INTERRUPTED_ITERATIONS = "interrupted_iterations", Counter, "", "core", Other, "Iterations cut off by the end of a phase, a timeout or Ctrl-C";
        ITERATION_ERRORS = "iteration_errors", Counter, "", "core", Other, "Iterations that ended with a script error";
        ITERATION_TIMEOUTS = "iteration_timeouts", Counter, "", "core", Other, "Iterations stopped by the phase's iteration_timeout (also counted as interrupted)";
        VUS = "vus", Gauge, "", "core", Other, "Virtual users busy: the most iterations running at once in each second";
        CHECKS = "checks", Rate, "", "core", Other, "Share of checks that passed";
        GROUP_DURATION = "group_duration", Trend, "ms", "core", Other, "Time in ms spent inside each group(name, ...) call; tagged by `group`";
        DATA_SENT = "data_sent", Counter, "B", "http", Other, "Bytes sent (request line, headers and body)";
        DATA_RECEIVED = "data_received", Counter, "B", "http", Other, "Bytes received (status line, headers and body)";
        RETRY_ATTEMPTS = "retry_attempts", Trend, "", "core", Other, "Attempts per retry() call (1 = no retry needed)";
        AMQP_PUBLISHED = "amqp_published", Counter, "", "amqp", Requests, "AMQP messages published (confirmed by the broker when confirms are on)";
        AMQP_PUBLISH_FAILED = "amqp_publish_failed", Rate, "", "amqp", Failed, "Share of AMQP publishes that failed (nack, unroutable, timeout, broker lost, ...); tagged by `error`";
        AMQP_PUBLISH_DURATION = "amqp_publish_duration", Trend, "ms", "amqp", Latency, "AMQP publisher-confirm latency in ms: from publishing to seeing the broker's ack";
        AMQP_CONSUMED = "amqp_consumed", Counter, "", "amqp", Other, "AMQP messages consumed (amqp::consume and amqp::get)";
        AMQP_E2E_LATENCY = "amqp_e2e_latency", Trend, "ms", "amqp", Other, "AMQP end-to-end latency in ms: from amqp::publish (volley-sent-at header) to the message being consumed";
        WS_CONNECTING = "ws_connecting", Trend, "ms", "ws", Latency, "WebSocket connecting time in ms: TCP, TLS and the upgrade handshake";
        WS_SESSIONS = "ws_sessions", Counter, "", "ws", Requests, "WebSocket sessions opened (handshake answered 101)";
        WS_SESSION_DURATION = "ws_session_duration", Trend, "ms", "ws", Other, "WebSocket session length in ms: from the handshake to the close, whoever closed";
        WS_FAILED = "ws_failed", Rate, "", "ws", Failed, "WebSocket failures by kind (`error` tag: status NNN, refused, reset, closed NNNN, protocol, timeout, ...): one sample per connection attempt and one failed sample per session the server or the network ended";
        WS_MSGS_SENT = "ws_msgs_sent", Counter, "", "ws", Other, "WebSocket messages sent (text and binary)";
        WS_MSGS_RECEIVED = "ws_msgs_received", Counter, "", "ws", Other, "WebSocket messages received (text and binary)";
        WS_BYTES_SENT = "ws_bytes_sent", Counter, "B", "ws", Other, "WebSocket payload bytes sent";
        WS_BYTES_RECEIVED = "ws_bytes_received", Counter, "B", "ws", Other, "WebSocket payload bytes received";
        WS_PING = "ws_ping", Trend, "ms", "ws", Other, "WebSocket ping round trip in ms (ws.ping())";
        WS_MSG_GAP = "ws_msg_gap", Trend, "ms", "ws", Other, "Time in ms between two messages received on one WebSocket";
        WS_MSG_LATENCY = "ws_msg_latency", Trend, "ms", "ws", Other, "WebSocket message latency in ms, for JSON messages carrying a volley-sent-at stamp (µs since the epoch, as AMQP's header)";
        SSE_CONNECTING = "sse_connecting", Trend, "ms", "sse", Latency, "SSE connecting time in ms: from the request to the response head";
        SSE_SESSIONS = "sse_sessions", Counter, "", "sse", Requests, "SSE streams opened (reconnections included)";
        SSE_FAILED = "sse_failed", Rate, "", "sse", Failed, "SSE failures by kind (`error` tag: status NNN, refused, reset, closed, timeout, ...): one sample per connection attempt and one failed sample per stream the server or the network ended";
        SSE_RECONNECTS = "sse_reconnects", Counter, "", "sse", Other, "SSE reconnections after the server ended a stream (sent with Last-Event-ID)";
        SSE_EVENTS = "sse_events", Counter, "", "sse", Other, "SSE events received (blocks with data)";
        SSE_BYTES_RECEIVED = "sse_bytes_received", Counter, "B", "sse", Other, "SSE event data bytes received";
        SSE_EVENT_GAP = "sse_event_gap", Trend, "ms", "sse", Other, "Time in ms between two events received on one SSE stream";
        SSE_EVENT_LATENCY = "sse_event_latency", Trend, "ms", "sse", Other, "SSE event latency in ms, for JSON data carrying a volley-sent-at stamp (µs since the epoch)";
    }
}

/// A custom metric that cannot be defined.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DefineError {
    /// The name is not `[A-Za-z_][A-Za-z0-9_]*`.
    #[error("invalid metric name {0:?}: use letters, digits and _ (not starting with a digit)")]
    BadName(String),
    /// The name exists with another kind.
    #[error("metric {name:?} is already a {existing}, it cannot also be a {wanted}")]
    KindConflict {
        /// The metric's name.
        name: String,
        /// The kind it has.
        existing: &'static str,
        /// The kind asked for.
        wanted: &'static str,
    },
}

/// The metrics one run knows: the built-ins plus what its script defined. Owned by the
/// run (never process-wide), so a watch re-run or the next script of a suite may give a
/// name another kind.
#[derive(Debug)]
pub struct Registry {
    kinds: RwLock<HashMap<String, MetricKind>>,
    custom: RwLock<Vec<Metric>>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry::new()
    }
}

impl Registry {
    /// The built-in metrics only.
    pub fn new() -> Registry {
        Registry {
            kinds: RwLock::new(builtin::all().into_iter().map(|(m, _)| (m.name.to_string(), m.kind)).collect()),
            custom: RwLock::new(Vec::new()),
        }
    }

    /// Defines (or looks up) a custom metric; within a run a name always has one kind.
    pub fn define(&self, name: &str, kind: MetricKind) -> Result<Metric, DefineError> {
        let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(DefineError::BadName(name.to_string()));
        }
        let conflict = |existing: MetricKind| DefineError::KindConflict {
            name: name.into(),
            existing: existing.as_str(),
            wanted: kind.as_str(),
        };
        if let Some(existing) = self.kinds.read().unwrap_or_else(|e| e.into_inner()).get(name) {
            return if *existing == kind { Ok(Metric { name: name.into(), kind }) } else { Err(conflict(*existing)) };
        }
        let mut reg = self.kinds.write().unwrap_or_else(|e| e.into_inner());
        let existing = *reg.entry(name.to_string()).or_insert_with(|| {
            self.custom.write().unwrap_or_else(|e| e.into_inner()).push(Metric { name: name.into(), kind });
            kind
        });
        if existing != kind {
            return Err(conflict(existing));
        }
        Ok(Metric { name: name.into(), kind })
    }

    /// Every metric of the run described: built-ins first, then the script's own in
    /// the order they were defined.
    pub fn descs(&self) -> Vec<Desc> {
        let mut out = builtin::descs();
        for m in self.custom.read().unwrap_or_else(|e| e.into_inner()).iter() {
            let unit = "";
            out.push(Desc {
                metric: m.clone(),
                unit,
                protocol: "custom",
                role: Role::Other,
                doc: "defined by the script",
            });
        }
        out
    }

    /// The script's own metrics, in the order they were defined.
    pub fn custom(&self) -> Vec<Metric> {
        self.custom.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The kind of a known metric.
    pub fn kind_of(&self, name: &str) -> Option<MetricKind> {
        self.kinds.read().unwrap_or_else(|e| e.into_inner()).get(name).copied()
    }
}

/// The kind of a built-in metric (for checks made without a run).
pub fn builtin_kind(name: &str) -> Option<MetricKind> {
    builtin::all().into_iter().find(|(m, _)| &*m.name == name).map(|(m, _)| m.kind)
}

/// Samples of one second of the run (seconds counted from the run's start).
pub type Batch = (u64, Vec<(Str, Tags, Sink)>);

/// One thread's samples since the last drain: (metric name, tags) -> sink, cut into
/// one batch per second of the run, so the history can be exact whenever a thread
/// drains.
pub struct Store {
    origin: std::time::Instant,
    second: u64,
    series: hashbrown::HashMap<(Str, Tags), Sink, rustc_hash::FxBuildHasher>,
    sealed: Vec<Batch>,
}

/// A series key by reference, for lookups without building (and dropping) a key. It
/// hashes as the `(Str, Tags)` it stands for.
#[derive(Hash)]
struct SeriesRef<'a>(&'a Str, &'a Tags);

impl hashbrown::Equivalent<(Str, Tags)> for SeriesRef<'_> {
    fn equivalent(&self, key: &(Str, Tags)) -> bool {
        // A series' name is a clone of its metric's: the pointers match, and comparing
        // the bytes (a `memcmp` call per sample) is left for names built apart.
        (Arc::ptr_eq(self.0, &key.0) || *self.0 == key.0) && *self.1 == key.1
    }
}

impl Default for Store {
    fn default() -> Self {
        Store::new(std::time::Instant::now())
    }
}

impl Store {
    /// An empty store whose seconds count from `origin` (the run's start).
    pub fn new(origin: std::time::Instant) -> Store {
        Store { origin, second: 0, series: Default::default(), sealed: Vec::new() }
    }

    /// Records one sample, in the second of the run it happens in.
    pub fn add(&mut self, metric: &Metric, tags: &Tags, value: f64) {
        let second = self.now();
        self.add_at(second, metric, tags, value);
    }

    /// The second of the run it is now.
    pub fn now(&self) -> u64 {
        self.origin.elapsed().as_secs()
    }

    /// Records one sample in a given second of the run.
    pub fn add_at(&mut self, second: u64, metric: &Metric, tags: &Tags, value: f64) {
        if second != self.second {
            if !self.series.is_empty() {
                let batch = self.take_series();
                self.sealed.push((self.second, batch));
            }
            self.second = second;
        }
        match self.series.get_mut(&SeriesRef(&metric.name, tags)) {
            Some(sink) => sink.add(value),
            None => {
                let mut sink = Sink::new(metric.kind);
                sink.add(value);
                self.series.insert((metric.name.clone(), tags.clone()), sink);
            }
        }
    }

    fn take_series(&mut self) -> Vec<(Str, Tags, Sink)> {
        self.series.drain().map(|((name, tags), sink)| (name, tags, sink)).collect()
    }

    /// Whether nothing was recorded since the last drain.
    pub fn is_empty(&self) -> bool {
        self.series.is_empty() && self.sealed.is_empty()
    }

    /// Takes everything recorded so far, one batch per second, leaving the store empty.
    pub fn drain(&mut self) -> Vec<Batch> {
        let mut out = std::mem::take(&mut self.sealed);
        if !self.series.is_empty() {
            out.push((self.second, self.take_series()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(pairs: &[(&str, &str)]) -> Tags {
        Tags::new(pairs.iter().map(|(k, v)| (Str::from(*k), Str::from(*v))).collect())
    }

    #[test]
    fn tags_are_sorted_and_last_duplicate_wins() {
        let tags = t(&[("phase", "a"), ("method", "GET"), ("phase", "b")]);
        assert_eq!(tags.to_string(), "{method:GET,phase:b}");
        assert!(tags.contains_all(&[("phase".into(), "b".into())]));
        assert!(!tags.contains_all(&[("phase".into(), "a".into())]));
    }

    #[test]
    fn store_groups_by_series_and_drains() {
        let mut s = Store::default();
        let m = &*builtin::HTTP_REQS;
        s.add(m, &t(&[("name", "a")]), 1.0);
        s.add(m, &t(&[("name", "a")]), 1.0);
        s.add(m, &t(&[("name", "b")]), 1.0);
        let mut drained: Vec<_> = s.drain().into_iter().flat_map(|(_, b)| b).collect();
        drained.sort_by_key(|(_, tags, _)| tags.to_string());
        assert_eq!(drained.len(), 2);
        assert!(matches!(&drained[0].2, Sink::Counter(c) if c.sum == 2.0));
        assert!(s.is_empty());
    }

    #[test]
    fn a_series_is_found_by_its_parts_whatever_the_allocation() {
        use std::hash::BuildHasher;
        let h = rustc_hash::FxBuildHasher;
        let (name, tags) = (Str::from("http_reqs"), t(&[("name", "a")]));
        assert_eq!(h.hash_one(SeriesRef(&name, &tags)), h.hash_one((name.clone(), tags.clone())));
        // Equal names and tags in other allocations are the same series.
        let mut s = Store::default();
        let m = Metric { name: Str::from("c"), kind: MetricKind::Counter };
        let again = Metric { name: Str::from("c"), kind: MetricKind::Counter };
        s.add_at(0, &m, &t(&[("name", "a")]), 1.0);
        s.add_at(0, &again, &t(&[("name", "a")]), 2.0);
        s.add_at(0, &again, &t(&[("name", "b")]), 4.0);
        s.add_at(1, &m, &t(&[("name", "a")]), 8.0);
        let drained = s.drain();
        assert_eq!(drained.len(), 2);
        let sum = |(_, batch): &Batch, tag: &str| match batch.iter().find(|(_, t, _)| t.get("name") == Some(tag)) {
            Some((_, _, Sink::Counter(c))) => c.sum,
            _ => 0.0,
        };
        assert_eq!((drained[0].1.len(), sum(&drained[0], "a"), sum(&drained[0], "b")), (2, 3.0, 4.0));
        assert_eq!((drained[1].0, sum(&drained[1], "a")), (1, 8.0));
    }

    #[test]
    fn custom_metrics_keep_one_kind() {
        let reg = Registry::new();
        let define = |n: &str, k| reg.define(n, k);
        assert!(define("alert_e2e_ms", MetricKind::Trend).is_ok());
        assert!(define("alert_e2e_ms", MetricKind::Trend).is_ok());
        let e = define("alert_e2e_ms", MetricKind::Counter).unwrap_err();
        assert_eq!(e.to_string(), "metric \"alert_e2e_ms\" is already a trend, it cannot also be a counter");
        assert!(matches!(define("http_reqs", MetricKind::Trend), Err(DefineError::KindConflict { .. })));
        assert!(matches!(define("9lives", MetricKind::Trend), Err(DefineError::BadName(_))));
    }

    #[test]
    fn two_runs_have_two_registries() {
        // Issue 10, defect 1: a watch re-run (a new run) may change a metric's kind.
        assert!(Registry::new().define("x", MetricKind::Counter).is_ok());
        assert!(Registry::new().define("x", MetricKind::Trend).is_ok());
    }
}
