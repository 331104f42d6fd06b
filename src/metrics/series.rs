//! Series: a metric name plus a tag set. Each thread records into its own [`Store`]
//! (no locks, no atomics on the hot path) and periodically drains it into the run's
//! [`crate::metrics::Aggregate`].

use super::sink::{MetricKind, Sink};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, LazyLock, RwLock};

/// A shared immutable string (metric names, tag keys and values).
pub type Str = Arc<str>;

/// A sorted, de-duplicated set of `key:value` tags, cheap to clone and hash.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Tags(Arc<[(Str, Str)]>);

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
        Tags(out.into())
    }

    /// The value of a tag.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| &**k == key).map(|(_, v)| &**v)
    }

    /// This set plus more tags (theirs win).
    pub fn with(&self, more: impl IntoIterator<Item = (Str, Str)>) -> Tags {
        let mut v: Vec<(Str, Str)> = self.0.to_vec();
        v.extend(more);
        Tags::new(v)
    }

    /// The pairs, sorted by key.
    pub fn pairs(&self) -> &[(Str, Str)] {
        &self.0
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
        for (i, (k, v)) in self.0.iter().enumerate() {
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

/// The built-in metrics every run records.
pub mod builtin {
    use super::{Metric, MetricKind, Str};
    use std::sync::LazyLock;

    macro_rules! metrics {
        ($($id:ident = $name:literal, $kind:ident, $doc:literal;)*) => {
            $(
                #[doc = $doc]
                pub static $id: LazyLock<Metric> =
                    LazyLock::new(|| Metric { name: Str::from($name), kind: MetricKind::$kind });
            )*
            /// Every built-in metric with its description, for `--list-metrics` and docs.
            pub fn all() -> Vec<(&'static Metric, &'static str)> {
                vec![$((&*$id, $doc)),*]
            }
        };
    }

    metrics! {
        HTTP_REQS = "http_reqs", Counter, "HTTP requests sent (every attempt, retries included)";
        HTTP_REQ_DURATION = "http_req_duration", Trend, "HTTP service time in ms: from sending the request to the last byte of the body";
        HTTP_REQ_FAILED = "http_req_failed", Rate, "Share of logical HTTP requests that failed (unexpected status or network error); a retried call counts once, with its final outcome";
        ITERATIONS = "iterations", Counter, "Iterations completed";
        ITERATION_DURATION = "iteration_duration", Trend, "Iteration time in ms; in open models measured from the scheduled start, so queueing delay is not hidden";
        DROPPED_ITERATIONS = "dropped_iterations", Counter, "Iterations an open model could not start because max_vus were busy";
        INTERRUPTED_ITERATIONS = "interrupted_iterations", Counter, "Iterations cut off by the end of a phase, a timeout or Ctrl-C";
        ITERATION_ERRORS = "iteration_errors", Counter, "Iterations that ended with a script error";
        ITERATION_TIMEOUTS = "iteration_timeouts", Counter, "Iterations stopped by the phase's iteration_timeout (also counted as interrupted)";
        VUS = "vus", Gauge, "Virtual users running an iteration";
        CHECKS = "checks", Rate, "Share of checks that passed";
        DATA_SENT = "data_sent", Counter, "Bytes sent (request line, headers and body)";
        DATA_RECEIVED = "data_received", Counter, "Bytes received (status line, headers and body)";
        RETRY_ATTEMPTS = "retry_attempts", Trend, "Attempts per retry() call (1 = no retry needed)";
        AMQP_PUBLISHED = "amqp_published", Counter, "AMQP messages published (confirmed by the broker when confirms are on)";
        AMQP_PUBLISH_FAILED = "amqp_publish_failed", Rate, "Share of AMQP publishes that failed (nack, unroutable, timeout, broker lost, ...); tagged by `error`";
        AMQP_PUBLISH_DURATION = "amqp_publish_duration", Trend, "AMQP publisher-confirm latency in ms: from publishing to seeing the broker's ack";
        AMQP_CONSUMED = "amqp_consumed", Counter, "AMQP messages consumed (amqp::consume and amqp::get)";
        AMQP_E2E_LATENCY = "amqp_e2e_latency", Trend, "AMQP end-to-end latency in ms: from amqp::publish (volley-sent-at header) to the message being consumed";
    }
}

static REGISTRY: LazyLock<RwLock<HashMap<String, MetricKind>>> =
    LazyLock::new(|| RwLock::new(builtin::all().into_iter().map(|(m, _)| (m.name.to_string(), m.kind)).collect()));

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

/// Defines (or looks up) a custom metric; the same name always has the same kind.
pub fn define(name: &str, kind: MetricKind) -> Result<Metric, DefineError> {
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(DefineError::BadName(name.to_string()));
    }
    if let Some(existing) = REGISTRY.read().unwrap_or_else(|e| e.into_inner()).get(name) {
        return if *existing == kind {
            Ok(Metric { name: name.into(), kind })
        } else {
            Err(DefineError::KindConflict { name: name.into(), existing: existing.as_str(), wanted: kind.as_str() })
        };
    }
    let mut reg = REGISTRY.write().unwrap_or_else(|e| e.into_inner());
    let existing = *reg.entry(name.to_string()).or_insert(kind);
    if existing != kind {
        return Err(DefineError::KindConflict {
            name: name.into(),
            existing: existing.as_str(),
            wanted: kind.as_str(),
        });
    }
    Ok(Metric { name: name.into(), kind })
}

/// The kind of a known metric.
pub fn kind_of(name: &str) -> Option<MetricKind> {
    REGISTRY.read().unwrap_or_else(|e| e.into_inner()).get(name).copied()
}

/// One thread's samples since the last drain: metric name -> tags -> sink.
#[derive(Default)]
pub struct Store {
    series: rustc_hash::FxHashMap<Str, rustc_hash::FxHashMap<Tags, Sink>>,
}

impl Store {
    /// Records one sample.
    pub fn add(&mut self, metric: &Metric, tags: &Tags, value: f64) {
        // Two lookups by reference: no allocation once a series exists.
        let by_tags = match self.series.get_mut(&metric.name) {
            Some(m) => m,
            None => self.series.entry(metric.name.clone()).or_default(),
        };
        match by_tags.get_mut(tags) {
            Some(sink) => sink.add(value),
            None => {
                let mut sink = Sink::new(metric.kind);
                sink.add(value);
                by_tags.insert(tags.clone(), sink);
            }
        }
    }

    /// Whether nothing was recorded since the last drain.
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// Takes everything recorded so far, leaving the store empty.
    pub fn drain(&mut self) -> Vec<(Str, Tags, Sink)> {
        let mut out = Vec::new();
        for (name, by_tags) in self.series.drain() {
            for (tags, sink) in by_tags {
                out.push((name.clone(), tags, sink));
            }
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
        let mut drained = s.drain();
        drained.sort_by_key(|(_, tags, _)| tags.to_string());
        assert_eq!(drained.len(), 2);
        assert!(matches!(&drained[0].2, Sink::Counter(c) if c.sum == 2.0));
        assert!(s.is_empty());
    }

    #[test]
    fn custom_metrics_keep_one_kind() {
        assert!(define("alert_e2e_ms", MetricKind::Trend).is_ok());
        assert!(define("alert_e2e_ms", MetricKind::Trend).is_ok());
        let e = define("alert_e2e_ms", MetricKind::Counter).unwrap_err();
        assert_eq!(e.to_string(), "metric \"alert_e2e_ms\" is already a trend, it cannot also be a counter");
        assert!(matches!(define("http_reqs", MetricKind::Trend), Err(DefineError::KindConflict { .. })));
        assert!(matches!(define("9lives", MetricKind::Trend), Err(DefineError::BadName(_))));
    }
}
