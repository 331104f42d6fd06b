//! The run's aggregate: every thread's drained samples folded into run totals, plus
//! one summary row per second of the run for the live view and the reports. Outputs
//! read only this.
//!
//! Samples arrive in per-second batches (see [`crate::metrics::Store`]), so a row holds
//! exactly the samples of its second whenever the thread that recorded them drains:
//! the rows add up to the totals, including the last partial second.

use super::series::{Desc, Role, Str, Tags, builtin};
use super::sink::{Sink, Stat};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// One second of the run, summarised (what the live view and history charts need).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct IntervalRow {
    /// Seconds since the run started, at the end of the interval (the run's end for
    /// the last, partial second).
    pub t_s: f64,
    /// Operations sent in the interval, over every protocol (HTTP requests, AMQP
    /// publishes, ...).
    pub requests: u64,
    /// Logical operations that failed in the interval.
    pub failures: u64,
    /// VUs busy: the most iterations running at once in the interval.
    pub vus: u64,
    /// Iterations completed in the interval.
    pub iterations: u64,
    /// Latency percentiles of the interval's operations (ms), when there were any.
    pub p50_ms: Option<f64>,
    /// See `p50_ms`.
    pub p95_ms: Option<f64>,
    /// See `p50_ms`.
    pub p99_ms: Option<f64>,
    /// Every metric counted in the interval: a counter's sum, a rate's non-zero samples,
    /// a trend's number of samples.
    pub counts: BTreeMap<String, f64>,
    /// The interval per phase and per request name, on the rows sent to live outputs
    /// (the history keeps them apart: [`Aggregate::group_history`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<GroupRow>,
    /// The phase running when the interval was closed (live outputs only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Every threshold judged on the run so far, at the end of the interval (live
    /// outputs only; the verdict is the one at the run's end).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub thresholds: Vec<ThresholdStatus>,
    /// Failed operations so far by kind (`status 503`, `timeout`, `amqp nack`), at the
    /// end of the interval (live outputs only).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub errors: BTreeMap<String, u64>,
}

/// A threshold's standing during the run.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ThresholdStatus {
    /// `selector condition`, e.g. `http_req_duration p(95) < 300`.
    pub criterion: String,
    /// Whether it holds on the run so far.
    pub passed: bool,
    /// The measured value so far (None: no data yet).
    pub observed: Option<f64>,
}

/// One second of one phase or one request name (for per-phase and per-name charts).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct GroupRow {
    /// Seconds since the run started, at the end of the interval.
    pub t_s: f64,
    /// `phase` or `name`: which tag `key` is a value of.
    pub group: &'static str,
    /// The phase's or request's name.
    pub key: String,
    /// Operations sent in the interval.
    pub requests: u64,
    /// Logical operations that failed in the interval.
    pub failures: u64,
    /// Latency percentiles of the interval (ms).
    pub p50_ms: Option<f64>,
    /// See `p50_ms`.
    pub p95_ms: Option<f64>,
    /// See `p50_ms`.
    pub p99_ms: Option<f64>,
}

/// One second's running totals of one phase or request name.
#[derive(Default)]
struct GroupAcc {
    requests: u64,
    failures: u64,
    durations: Option<Sink>,
}

/// One second not yet summarised: a sink per metric (tags merged) and per group.
#[derive(Default)]
struct Bucket {
    metrics: HashMap<Str, Sink>,
    groups: BTreeMap<(&'static str, Str), GroupAcc>,
}

/// Run totals per series, and the per-second history.
pub struct Aggregate {
    series: HashMap<Str, HashMap<Tags, Sink>>,
    /// Each metric's role and protocol, from its description.
    described: HashMap<Str, (Role, &'static str)>,
    open: BTreeMap<u64, Bucket>,
    /// Seconds below this one are summarised into `rows`.
    closed_next: u64,
    rows: BTreeMap<u64, IntervalRow>,
    group_rows: BTreeMap<(u64, &'static str, String), GroupRow>,
    started: Instant,
    ended: Option<Duration>,
}

fn count_of(sink: &Sink) -> f64 {
    match sink {
        Sink::Counter(c) => c.sum,
        Sink::Rate(r) => r.trues as f64,
        Sink::Trend(t) => t.count() as f64,
        Sink::Gauge(_) => 0.0,
    }
}

/// Adds a sample batch to an operations count and a failures count, by the metric's role.
fn count_operations(role: Role, sink: &Sink, requests: &mut u64, failures: &mut u64) {
    match role {
        Role::Requests => *requests += count_of(sink) as u64,
        Role::Failed => *failures += count_of(sink) as u64,
        _ => {}
    }
}

fn percentile(sink: Option<&Sink>, p: f64) -> Option<f64> {
    sink.and_then(|s| s.stat(Stat::Percentile(p), Duration::ZERO).ok().flatten())
}

impl Aggregate {
    /// An empty aggregate whose clock starts now.
    pub fn new() -> Aggregate {
        Aggregate::starting_at(Instant::now())
    }

    /// An empty aggregate whose seconds count from `started`.
    pub fn starting_at(started: Instant) -> Aggregate {
        Aggregate {
            series: HashMap::new(),
            described: builtin::descs().into_iter().map(|d| (d.metric.name, (d.role, d.protocol))).collect(),
            open: BTreeMap::new(),
            closed_next: 0,
            rows: BTreeMap::new(),
            group_rows: BTreeMap::new(),
            started,
            ended: None,
        }
    }

    /// When the run started.
    pub fn started(&self) -> Instant {
        self.started
    }

    fn role(&self, name: &str) -> Role {
        self.described.get(name).map_or(Role::Other, |d| d.0)
    }

    /// The protocol that records a metric (`http`, `amqp`, `core`, `custom`, ...).
    pub fn protocol(&self, name: &str) -> &'static str {
        self.described.get(name).map_or("custom", |d| d.1)
    }

    /// Folds one thread's drained batches in.
    pub fn merge(&mut self, drained: Vec<super::series::Batch>) {
        for (second, samples) in drained {
            for (name, tags, sink) in samples {
                self.merge_second(second, &name, &tags, &sink);
                let by_tags = self.series.entry(name).or_default();
                match by_tags.get_mut(&tags) {
                    Some(s) => s.merge(&sink),
                    None => {
                        by_tags.insert(tags, sink);
                    }
                }
            }
        }
    }

    fn merge_second(&mut self, second: u64, name: &Str, tags: &Tags, sink: &Sink) {
        let role = self.role(name);
        if second < self.closed_next {
            // A thread drained late: its counts still go into their second's row
            // (percentiles of that row were computed without them).
            let row = self
                .rows
                .entry(second)
                .or_insert_with(|| IntervalRow { t_s: (second + 1) as f64, ..Default::default() });
            add_counts(row, name, role, sink);
            for group in ["phase", "name"] {
                let Some(key) = tags.get(group) else { continue };
                let g = self.group_rows.entry((second, group, key.to_string())).or_insert_with(|| GroupRow {
                    t_s: (second + 1) as f64,
                    group,
                    key: key.to_string(),
                    ..Default::default()
                });
                count_operations(role, sink, &mut g.requests, &mut g.failures);
            }
            return;
        }
        let bucket = self.open.entry(second).or_default();
        match bucket.metrics.get_mut(name) {
            Some(s) => s.merge(sink),
            None => {
                bucket.metrics.insert(name.clone(), sink.clone());
            }
        }
        if role == Role::Other {
            return;
        }
        for group in ["phase", "name"] {
            let Some(key) = tags.get(group) else { continue };
            let acc = match bucket.groups.get_mut(&(group, Str::from(key))) {
                Some(acc) => acc,
                None => bucket.groups.entry((group, Str::from(key))).or_default(),
            };
            count_operations(role, sink, &mut acc.requests, &mut acc.failures);
            if role == Role::Latency {
                match &mut acc.durations {
                    Some(d) => d.merge(sink),
                    None => acc.durations = Some(sink.clone()),
                }
            }
        }
    }

    /// Summarises every second up to and including `last` into rows (seconds without
    /// samples get an empty row) and returns the new rows, oldest first.
    pub fn close_through(&mut self, last: u64) -> Vec<IntervalRow> {
        let mut out = Vec::new();
        while self.closed_next <= last {
            let second = self.closed_next;
            let bucket = self.open.remove(&second).unwrap_or_default();
            let row = self.summarise(second, bucket);
            out.push(row);
            self.closed_next += 1;
        }
        out
    }

    fn summarise(&mut self, second: u64, bucket: Bucket) -> IntervalRow {
        let t_s = (second + 1) as f64;
        let mut row = self.rows.remove(&second).unwrap_or_default();
        row.t_s = t_s;
        let mut latency: Option<Sink> = None;
        for (name, sink) in &bucket.metrics {
            let role = self.role(name);
            add_counts(&mut row, name, role, sink);
            if role == Role::Latency {
                match &mut latency {
                    Some(l) => l.merge(sink),
                    None => latency = Some(sink.clone()),
                }
            }
            if **name == *builtin::VUS.name
                && let Sink::Gauge(g) = sink
                && g.min.is_finite()
            {
                row.vus = row.vus.max(g.max as u64);
            }
        }
        row.p50_ms = percentile(latency.as_ref(), 50.0);
        row.p95_ms = percentile(latency.as_ref(), 95.0);
        row.p99_ms = percentile(latency.as_ref(), 99.0);
        let mut groups = Vec::with_capacity(bucket.groups.len());
        for ((group, key), acc) in bucket.groups {
            let p = |q: f64| percentile(acc.durations.as_ref(), q);
            let g = GroupRow {
                t_s,
                group,
                key: key.to_string(),
                requests: acc.requests,
                failures: acc.failures,
                p50_ms: p(50.0),
                p95_ms: p(95.0),
                p99_ms: p(99.0),
            };
            groups.push(g.clone());
            self.group_rows.insert((second, group, key.to_string()), g);
        }
        self.rows.insert(second, row.clone());
        row.groups = groups;
        row
    }

    /// Ends the history at `elapsed` (the run's wall time): every second up to the last,
    /// partial one gets its row, and the last row ends at `elapsed`. Returns the rows
    /// that were still open.
    pub fn finish(&mut self, elapsed: Duration) -> Vec<IntervalRow> {
        let secs = elapsed.as_secs_f64();
        let mut last = (secs.ceil() as u64).max(1) - 1;
        if let Some((&s, _)) = self.open.last_key_value() {
            last = last.max(s);
        }
        let mut out = self.close_through(last);
        self.ended = Some(elapsed);
        if let Some(row) = self.rows.get_mut(&last)
            && secs > last as f64
            && secs < (last + 1) as f64
        {
            row.t_s = secs;
            if let Some(r) = out.last_mut() {
                r.t_s = secs;
            }
            for ((s, _, _), g) in self.group_rows.iter_mut() {
                if *s == last {
                    g.t_s = secs;
                }
            }
        }
        out
    }

    /// The per-second history (every summarised second, in order).
    pub fn history(&self) -> Vec<IntervalRow> {
        self.rows.values().cloned().collect()
    }

    /// Per-second rows per phase and per request name (only those with traffic), in
    /// time order.
    pub fn group_history(&self) -> Vec<GroupRow> {
        self.group_rows.values().cloned().collect()
    }

    /// Every series of a metric whose tags contain all `filters`, merged; `None` when
    /// no series matched.
    pub fn query(&self, metric: &str, filters: &[(String, String)]) -> Option<Sink> {
        let mut out: Option<Sink> = None;
        for (tags, sink) in self.series.get(metric)? {
            if tags.contains_all(filters) {
                match &mut out {
                    Some(acc) => acc.merge(sink),
                    None => out = Some(sink.clone()),
                }
            }
        }
        out
    }

    /// Names of recorded metrics with a role, sorted.
    pub fn names_with(&self, role: Role) -> Vec<String> {
        let mut v: Vec<String> = self.series.keys().filter(|n| self.role(n) == role).map(|n| n.to_string()).collect();
        v.sort();
        v
    }

    /// Like [`Aggregate::query`], grouped by the value of one tag (series without it are
    /// left out).
    pub fn group_by(&self, metric: &str, key: &str, filters: &[(String, String)]) -> BTreeMap<String, Sink> {
        let mut out: BTreeMap<String, Sink> = BTreeMap::new();
        let Some(by_tags) = self.series.get(metric) else { return out };
        for (tags, sink) in by_tags {
            let (true, Some(value)) = (tags.contains_all(filters), tags.get(key)) else { continue };
            match out.get_mut(value) {
                Some(acc) => acc.merge(sink),
                None => {
                    out.insert(value.to_string(), sink.clone());
                }
            }
        }
        out
    }

    /// Distinct tag sets of a metric matching `filters` (for grouping by several tags).
    pub fn series_of(&self, metric: &str) -> Vec<(&Tags, &Sink)> {
        self.series.get(metric).map(|m| m.iter().collect()).unwrap_or_default()
    }

    /// Why [`Aggregate::query`] found nothing, for a threshold's "no data" verdict: the
    /// metric was never recorded (with the closest recorded or known name), or no sample
    /// carried a filter's tag value (with the values that were recorded).
    pub fn why_empty(&self, metric: &str, filters: &[(String, String)]) -> String {
        let Some(by_tags) = self.series.get(metric) else {
            let mut names: Vec<&str> = self.series.keys().map(|n| &**n).collect();
            names.extend(self.described.keys().map(|n| &**n));
            names.sort_unstable();
            names.dedup();
            // A metric volley knows was simply not recorded: no other name is meant.
            if self.described.contains_key(metric) {
                return format!("no data: no `{metric}` sample was recorded (nothing in the script recorded one)");
            }
            return match closest(metric, &names) {
                Some(near) => format!("no data: no `{metric}` sample was recorded; hint: did you mean `{near}`?"),
                None => {
                    let mut recorded: Vec<&str> = self.series.keys().map(|n| &**n).collect();
                    recorded.sort_unstable();
                    format!(
                        "no data: no metric is named `{metric}`; hint: the run recorded {}",
                        if recorded.is_empty() { "nothing".to_string() } else { recorded.join(", ") }
                    )
                }
            };
        };
        // The first filter that no sample of the metric satisfies (with those before it).
        for (i, (key, value)) in filters.iter().enumerate() {
            let before = &filters[..i];
            let mut values: Vec<&str> =
                by_tags.keys().filter(|t| t.contains_all(before)).filter_map(|t| t.get(key)).collect();
            values.sort_unstable();
            values.dedup();
            if values.contains(&value.as_str()) {
                continue;
            }
            if values.is_empty() {
                let mut keys: Vec<&str> = by_tags.keys().flat_map(|t| t.pairs().iter().map(|(k, _)| &**k)).collect();
                keys.sort_unstable();
                keys.dedup();
                let hint = match closest(key, &keys) {
                    Some(near) => format!("did you mean `{near}`?"),
                    None => format!("its tags are {}", if keys.is_empty() { "none".into() } else { keys.join(", ") }),
                };
                return format!("no data: no `{metric}` sample has a `{key}` tag; hint: {hint}");
            }
            let hint = match closest(value, &values) {
                Some(near) => format!("did you mean `{key}:{near}`?"),
                None => format!("recorded values: {}", shorten(&values)),
            };
            return format!("no data: no `{metric}` sample has {key}={value}; hint: {hint}");
        }
        "no data: nothing was recorded for this selection".to_string()
    }

    /// Learns the descriptions of the run's metrics (custom ones included).
    pub fn describe(&mut self, descs: &[Desc]) {
        for d in descs {
            self.described.insert(d.metric.name.clone(), (d.role, d.protocol));
        }
    }
}

/// The candidate closest to `word`, if close enough to be a likely typo.
fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .filter(|c| **c != word)
        .map(|c| (strsim::jaro_winkler(&word.to_lowercase(), &c.to_lowercase()), *c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// At most ten values, joined, with how many more there were.
fn shorten(values: &[&str]) -> String {
    let shown = values.iter().take(10).copied().collect::<Vec<_>>().join(", ");
    match values.len() {
        n if n > 10 => format!("{shown} (and {} more)", n - 10),
        _ => shown,
    }
}

fn add_counts(row: &mut IntervalRow, name: &Str, role: Role, sink: &Sink) {
    let n = count_of(sink);
    count_operations(role, sink, &mut row.requests, &mut row.failures);
    if **name == *builtin::ITERATIONS.name {
        row.iterations += n as u64;
    }
    if !matches!(sink, Sink::Gauge(_)) {
        *row.counts.entry(name.to_string()).or_default() += n;
    }
}

impl Default for Aggregate {
    fn default() -> Self {
        Aggregate::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::series::{Store, builtin};

    fn tags(pairs: &[(&str, &str)]) -> Tags {
        Tags::new(pairs.iter().map(|(k, v)| (Str::from(*k), Str::from(*v))).collect())
    }

    #[test]
    fn query_merges_matching_series_from_several_threads() {
        let mut agg = Aggregate::new();
        for worker in 0..2 {
            let mut store = Store::default();
            for i in 0..10 {
                let status = if i % 5 == 0 { "500" } else { "200" };
                let t = tags(&[("phase", "peak"), ("status", status), ("w", if worker == 0 { "0" } else { "1" })]);
                store.add(&builtin::HTTP_REQ_DURATION, &t, (i + 1) as f64);
            }
            agg.merge(store.drain());
        }
        let peak = agg.query("http_req_duration", &[("phase".into(), "peak".into())]).unwrap();
        assert_eq!(peak.stat(Stat::Count, Duration::ZERO).unwrap(), Some(20.0));
        let errors = agg.query("http_req_duration", &[("status".into(), "500".into())]).unwrap();
        assert_eq!(errors.stat(Stat::Count, Duration::ZERO).unwrap(), Some(4.0));
        assert!(agg.query("http_req_duration", &[("phase".into(), "other".into())]).is_none());
        let by_status = agg.group_by("http_req_duration", "status", &[]);
        assert_eq!(by_status.keys().collect::<Vec<_>>(), vec!["200", "500"]);
    }

    #[test]
    fn intervals_summarise_and_reset() {
        let mut agg = Aggregate::new();
        let mut store = Store::default();
        let t = tags(&[]);
        for _ in 0..3 {
            store.add(&builtin::HTTP_REQS, &t, 1.0);
            store.add(&builtin::HTTP_REQ_FAILED, &t, 0.0);
        }
        store.add(&builtin::HTTP_REQ_FAILED, &t, 1.0);
        store.add(&builtin::VUS, &t, 7.0);
        agg.merge(store.drain());
        let rows = agg.close_through(1);
        assert_eq!((rows[0].requests, rows[0].failures, rows[0].vus), (3, 1, 7));
        assert_eq!(rows[1].requests, 0);
        assert_eq!(agg.history().len(), 2);
    }

    #[test]
    fn intervals_are_also_kept_per_phase_and_per_name() {
        let mut agg = Aggregate::new();
        let mut store = Store::default();
        for (phase, name, ms) in [("warm", "a", 10.0), ("warm", "b", 20.0), ("peak", "a", 30.0)] {
            let t = tags(&[("phase", phase), ("name", name)]);
            store.add(&builtin::HTTP_REQS, &t, 1.0);
            store.add(&builtin::HTTP_REQ_FAILED, &t, if name == "b" { 1.0 } else { 0.0 });
            store.add(&builtin::HTTP_REQ_DURATION, &t, ms);
        }
        agg.merge(store.drain());
        agg.close_through(0);
        let history = agg.group_history();
        let rows: Vec<(&str, &str, u64, u64, Option<f64>)> = history
            .iter()
            .map(|r| (r.group, r.key.as_str(), r.requests, r.failures, r.p50_ms.map(f64::round)))
            .collect();
        assert_eq!(
            rows,
            [
                ("name", "a", 2, 0, Some(10.0)),
                ("name", "b", 1, 1, Some(20.0)),
                ("phase", "peak", 1, 0, Some(30.0)),
                ("phase", "warm", 2, 1, Some(10.0)),
            ]
        );
    }

    #[test]
    fn an_empty_selection_says_which_name_or_tag_matched_nothing() {
        let mut agg = Aggregate::new();
        let mut store = Store::default();
        for phase in ["warmup", "steady"] {
            store.add(&builtin::HTTP_REQ_DURATION, &tags(&[("phase", phase), ("status", "200")]), 5.0);
        }
        agg.merge(store.drain());
        let why = |metric: &str, filters: &[(&str, &str)]| {
            let f: Vec<(String, String)> = filters.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            assert!(agg.query(metric, &f).is_none());
            agg.why_empty(metric, &f)
        };
        assert_eq!(
            why("http_req_duraton", &[]),
            "no data: no `http_req_duraton` sample was recorded; hint: did you mean `http_req_duration`?"
        );
        assert_eq!(why("checks", &[]), "no data: no `checks` sample was recorded (nothing in the script recorded one)");
        // A metric volley knows, close to one recorded, was just not recorded.
        assert_eq!(
            why("http_req_failed", &[]),
            "no data: no `http_req_failed` sample was recorded (nothing in the script recorded one)"
        );
        assert_eq!(why("zzz", &[]), "no data: no metric is named `zzz`; hint: the run recorded http_req_duration");
        assert_eq!(
            why("http_req_duration", &[("phase", "steadyy")]),
            "no data: no `http_req_duration` sample has phase=steadyy; hint: did you mean `phase:steady`?"
        );
        assert_eq!(
            why("http_req_duration", &[("phase", "peak")]),
            "no data: no `http_req_duration` sample has phase=peak; hint: recorded values: steady, warmup"
        );
        assert_eq!(
            why("http_req_duration", &[("phse", "steady")]),
            "no data: no `http_req_duration` sample has a `phse` tag; hint: did you mean `phase`?"
        );
        // Each filter holds on its own, not together.
        assert_eq!(
            why("http_req_duration", &[("phase", "steady"), ("status", "500")]),
            "no data: no `http_req_duration` sample has status=500; hint: recorded values: 200"
        );
    }
}
