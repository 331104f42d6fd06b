//! Judging at the end of a run: every declared threshold against the aggregate, the
//! checks grouped by name, and per-request rows for the summary.

use super::live::{LiveJudge, WindowOutcome};
use super::phase::PhaseSummary;
use crate::metrics::series::Role;
use crate::metrics::{Aggregate, Sink, Stat};
use crate::script::judge::DeclaredThreshold;
use std::collections::BTreeMap;
use std::time::Duration;

/// Failed logical operations by kind among the series matching `filters`, over every
/// protocol: HTTP's as `status 503`, `timeout`, ...; another protocol's prefixed with
/// its name (`amqp nack`, `amqp broker_lost`).
pub fn failure_kinds(agg: &Aggregate, filters: &[(String, String)]) -> BTreeMap<String, u64> {
    let mut kinds = BTreeMap::new();
    let protocols: BTreeMap<String, &'static str> =
        crate::metrics::series::builtin::descs().into_iter().map(|d| (d.metric.name.to_string(), d.protocol)).collect();
    for metric in agg.names_with(Role::Failed) {
        let protocol = protocols.get(&metric).copied().unwrap_or("");
        for (tags, sink) in agg.series_of(&metric) {
            let Sink::Rate(rate) = sink else { continue };
            if rate.trues == 0 || !tags.contains_all(filters) {
                continue;
            }
            let what = match (tags.get("error"), tags.get("status")) {
                (Some(e), _) => e.to_string(),
                (None, Some(status)) => format!("status {status}"),
                (None, None) => "failed".to_string(),
            };
            let kind = if protocol == "http" { what } else { format!("{protocol} {what}") };
            *kinds.entry(kind).or_default() += rate.trues;
        }
    }
    kinds
}

/// One threshold condition's verdict.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ThresholdResult {
    /// The selector, e.g. `http_req_duration{phase:peak}`.
    pub selector: String,
    /// The condition, e.g. `p(95) < 300`.
    pub condition: String,
    /// Whether it held.
    pub passed: bool,
    /// The measured value (None: no data).
    pub observed: Option<f64>,
    /// Where it was declared.
    pub origin: String,
    /// Why it could not be evaluated, if so.
    pub error: Option<String>,
    /// The test case it belongs to.
    pub case: Option<String>,
    /// For a sliding-window condition: how its windows fared ("2 of 40 30s windows
    /// violated it, the first ending at 35s").
    pub detail: Option<String>,
}

/// A windowed condition's verdict from its windows.
fn windowed(
    c: &crate::metrics::Condition,
    outcome: Option<&WindowOutcome>,
) -> (bool, Option<f64>, Option<String>, Option<String>) {
    let len = c.window.map(crate::duration::format_duration).unwrap_or_default();
    match outcome {
        Some(o) if o.late => (
            false,
            None,
            Some(format!(
                "declared after its metric was recorded, so its {len} windows were not watched; hint: declare it before the phases"
            )),
            None,
        ),
        Some(o) if o.judged > 0 => {
            let detail = match o.first_violation_s {
                Some(at) => format!(
                    "{} of {} {len} windows violated it, the first ending at {}s; worst {}",
                    o.violated,
                    o.judged,
                    crate::script::core::fmt_num(at.round()),
                    o.worst.map(crate::script::core::fmt_num).unwrap_or_default()
                ),
                None => format!(
                    "all {} {len} windows held; worst {}",
                    o.judged,
                    o.worst.map(crate::script::core::fmt_num).unwrap_or_default()
                ),
            };
            (o.violated == 0, o.worst, None, Some(detail))
        }
        Some(_) => (false, None, Some("no data: nothing was recorded for this selection".to_string()), None),
        None => (
            false,
            None,
            Some(format!("a window ({len}) is judged during the run: declare it with threshold() in the script")),
            None,
        ),
    }
}

/// Evaluates every threshold. A selector filtered by phase measures counter rates over
/// that phase's wall time; otherwise over the whole run. Conditions over a sliding
/// window (`over 30s`) take their verdict from the live judge (`None`: SLO files,
/// which are judged after the run).
pub fn thresholds(
    agg: &Aggregate,
    declared: &[DeclaredThreshold],
    phases: &[PhaseSummary],
    run: Duration,
    live: Option<&LiveJudge>,
) -> Vec<ThresholdResult> {
    let mut out = Vec::new();
    for (ti, t) in declared.iter().enumerate() {
        let elapsed = t
            .selector
            .filters
            .iter()
            .find(|(k, _)| k == "phase")
            .and_then(|(_, v)| phases.iter().find(|p| &p.name == v))
            .map(|p| p.elapsed)
            .unwrap_or(run);
        let sink = agg.query(&t.selector.metric, &t.selector.filters);
        for (ci, c) in t.conditions.iter().enumerate() {
            let (passed, observed, error, detail) = match &sink {
                _ if c.window.is_some() => windowed(c, live.and_then(|l| l.outcome(ti, ci))),
                None => (false, None, Some(agg.why_empty(&t.selector.metric, &t.selector.filters)), None),
                Some(s) => match c.evaluate(s, elapsed) {
                    Ok(v) => (v.passed, v.observed, None, None),
                    Err(e) => (false, None, Some(e.message.clone()), None),
                },
            };
            out.push(ThresholdResult {
                selector: t.selector.to_string(),
                condition: c.to_string(),
                passed,
                observed,
                origin: t.origin.clone(),
                error,
                case: t.case.clone(),
                detail,
            });
        }
    }
    out
}

/// A check's totals.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CheckResult {
    /// The check's name.
    pub name: String,
    /// Times it passed.
    pub passes: u64,
    /// Times it failed.
    pub fails: u64,
}

/// Checks grouped by name.
pub fn checks(agg: &Aggregate) -> Vec<CheckResult> {
    agg.group_by("checks", "check", &[])
        .into_iter()
        .filter_map(|(name, sink)| match sink {
            Sink::Rate(r) => Some(CheckResult { name, passes: r.trues, fails: r.total - r.trues }),
            _ => None,
        })
        .collect()
}

/// One row of the per-request table.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RequestRow {
    /// Method.
    pub method: String,
    /// The `name` tag.
    pub name: String,
    /// Requests sent (attempts).
    pub count: u64,
    /// Logical requests that failed.
    pub failures: u64,
    /// Logical requests (a retried call counts once).
    pub logical: u64,
    /// Requests per second over the run.
    pub rps: f64,
    /// Latency statistics in ms: mean, min, max, p50, p90, p95, p99, p99.9.
    pub mean: f64,
    /// See `mean`.
    pub min: f64,
    /// See `mean`.
    pub max: f64,
    /// See `mean`.
    pub p50: f64,
    /// See `mean`.
    pub p90: f64,
    /// See `mean`.
    pub p95: f64,
    /// See `mean`.
    pub p99: f64,
    /// See `mean`.
    pub p999: f64,
}

/// Requests grouped by method and name.
pub fn requests(agg: &Aggregate, run: Duration) -> Vec<RequestRow> {
    let mut durations: BTreeMap<(String, String), Sink> = BTreeMap::new();
    let mut failed: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
    for (tags, sink) in agg.series_of("http_req_duration") {
        let key = (tags.get("name").unwrap_or("").to_string(), tags.get("method").unwrap_or("").to_string());
        match durations.get_mut(&key) {
            Some(acc) => acc.merge(sink),
            None => {
                durations.insert(key, sink.clone());
            }
        }
    }
    for (tags, sink) in agg.series_of("http_req_failed") {
        if let Sink::Rate(r) = sink {
            let key = (tags.get("name").unwrap_or("").to_string(), tags.get("method").unwrap_or("").to_string());
            let e = failed.entry(key).or_default();
            e.0 += r.trues;
            e.1 += r.total;
        }
    }
    let z = Duration::ZERO;
    let get = |s: &Sink, st: Stat| s.stat(st, z).ok().flatten().unwrap_or(0.0);
    durations
        .into_iter()
        .map(|((name, method), s)| {
            let (failures, logical) = failed.get(&(name.clone(), method.clone())).copied().unwrap_or_default();
            let count = get(&s, Stat::Count) as u64;
            RequestRow {
                rps: count as f64 / run.as_secs_f64().max(1e-9),
                mean: get(&s, Stat::Avg),
                min: get(&s, Stat::Min),
                max: get(&s, Stat::Max),
                p50: get(&s, Stat::Percentile(50.0)),
                p90: get(&s, Stat::Percentile(90.0)),
                p95: get(&s, Stat::Percentile(95.0)),
                p99: get(&s, Stat::Percentile(99.0)),
                p999: get(&s, Stat::Percentile(99.9)),
                method,
                name,
                count,
                failures,
                logical,
            }
        })
        .collect()
}

/// Results of one group or one task (rows of the per-group and per-task tables).
#[derive(Debug, Clone, serde::Serialize)]
pub struct BreakdownRow {
    /// The group (`checkout::pay` when nested) or the task.
    pub name: String,
    /// Calls of the group, or iterations of the task.
    pub count: u64,
    /// Share of the task's iterations among all tasks' (tasks only; groups: 0).
    pub share: f64,
    /// Operations sent inside it, over every protocol.
    pub requests: u64,
    /// Logical operations that failed inside it.
    pub failed: u64,
    /// Iterations that ended with a script error (tasks).
    pub errors: u64,
    /// Checks that passed / failed inside it.
    pub checks_passed: u64,
    /// See `checks_passed`.
    pub checks_failed: u64,
    /// Mean time of the group call or the task iteration (ms).
    pub duration_avg_ms: Option<f64>,
    /// 95th percentile of the same (ms).
    pub duration_p95_ms: Option<f64>,
    /// 95th percentile of the HTTP requests inside it (ms).
    pub http_p95_ms: Option<f64>,
}

/// Each group's value merged with its nested groups' (`a` gets `a::b` and `a::b::c`).
fn roll_up<T: Clone>(exact: &BTreeMap<String, T>, merge: impl Fn(&mut T, &T)) -> BTreeMap<String, T> {
    let mut out = exact.clone();
    for (name, value) in exact {
        let mut parent = name.as_str();
        while let Some((p, _)) = parent.rsplit_once("::") {
            parent = p;
            match out.get_mut(parent) {
                Some(acc) => merge(acc, value),
                None => {
                    out.insert(parent.to_string(), value.clone());
                }
            }
        }
    }
    out
}

/// Results per value of `tag` (`group` or `task`), sorted by name. Groups are timed by
/// `group_duration`, tasks by `iteration_duration`.
pub fn breakdown(agg: &Aggregate, tag: &str) -> Vec<BreakdownRow> {
    let timing = if tag == "group" { "group_duration" } else { "iteration_duration" };
    let mut names: BTreeMap<String, ()> = BTreeMap::new();
    let durations = agg.group_by(timing, tag, &[]);
    names.extend(durations.keys().map(|k| (k.clone(), ())));
    let iterations = agg.group_by("iterations", tag, &[]);
    let mut requests: BTreeMap<String, u64> = BTreeMap::new();
    for metric in agg.names_with(Role::Requests) {
        for (k, s) in agg.group_by(&metric, tag, &[]) {
            *requests.entry(k).or_default() += s.stat(Stat::Count, Duration::ZERO).ok().flatten().unwrap_or(0.0) as u64;
        }
    }
    let mut failed: BTreeMap<String, u64> = BTreeMap::new();
    for metric in agg.names_with(Role::Failed) {
        for (k, s) in agg.group_by(&metric, tag, &[]) {
            if let Sink::Rate(r) = s {
                *failed.entry(k).or_default() += r.trues;
            }
        }
    }
    let errors = agg.group_by("iteration_errors", tag, &[]);
    let mut checks = agg.group_by("checks", tag, &[]);
    let mut http = agg.group_by("http_req_duration", tag, &[]);
    if tag == "group" {
        // A group's results include its nested groups' (`checkout` counts `checkout::pay`).
        requests = roll_up(&requests, |a, b| *a += b);
        failed = roll_up(&failed, |a, b| *a += b);
        checks = roll_up(&checks, |a, b| a.merge(b));
        http = roll_up(&http, |a, b| a.merge(b));
    }
    names.extend(requests.keys().chain(checks.keys()).map(|k| (k.clone(), ())));
    let z = Duration::ZERO;
    let stat = |s: Option<&Sink>, st: Stat| s.and_then(|s| s.stat(st, z).ok().flatten());
    let counts: BTreeMap<&String, u64> = names
        .keys()
        .map(|n| {
            let c = if tag == "group" { durations.get(n) } else { iterations.get(n) };
            (n, stat(c, Stat::Count).unwrap_or(0.0) as u64)
        })
        .collect();
    let total: u64 = counts.values().sum();
    names
        .keys()
        .map(|n| {
            let (passed, all) = match checks.get(n) {
                Some(Sink::Rate(r)) => (r.trues, r.total),
                _ => (0, 0),
            };
            let count = counts.get(n).copied().unwrap_or(0);
            BreakdownRow {
                name: n.clone(),
                count,
                share: if tag == "task" && total > 0 { count as f64 / total as f64 } else { 0.0 },
                requests: requests.get(n).copied().unwrap_or(0),
                failed: failed.get(n).copied().unwrap_or(0),
                errors: stat(errors.get(n), Stat::Count).unwrap_or(0.0) as u64,
                checks_passed: passed,
                checks_failed: all - passed,
                duration_avg_ms: stat(durations.get(n), Stat::Avg),
                duration_p95_ms: stat(durations.get(n), Stat::Percentile(95.0)),
                http_p95_ms: stat(http.get(n), Stat::Percentile(95.0)),
            }
        })
        .collect()
}
