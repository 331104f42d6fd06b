//! Baseline and canary: two results side by side (`volley compare`, `run --baseline`),
//! single runs (`volley.run/1`) or whole suites test by test (`volley.suite/1`), and
//! whether B is worse than A beyond the margin *and* beyond noise (README, "Comparing
//! results"): an absolute floor per statistic, a minimum sample count per percentile,
//! and a 95% confidence interval on the percentile difference (bootstrap on the HDR
//! histograms; order-statistic interval when only a percentile table is known).

pub mod noise;

use super::json::RunDoc;
use noise::Cdf;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// How much worse B may be, and what counts as noise.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Relative increase of p50/p95/p99 and decrease of throughput allowed (0.1 = 10%).
    pub max_regression: f64,
    /// Increase of the error rate allowed, in absolute terms (0.01 = one percentage point).
    pub max_error_increase: f64,
    /// Latency changes up to this many ms are "same", whatever their share.
    pub floor_ms: f64,
    /// Throughput drops up to this many requests/s are "same".
    pub floor_rps: f64,
    /// A percentile p is judged only when both sides have this many samples beyond it
    /// (n·(1 − p) ≥ min_tail: 10 means p50 needs 20 samples, p95 200, p99 1,000).
    pub min_tail: u64,
    /// Confidence of the interval that must exclude "no change" (0.95).
    pub confidence: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_regression: 0.10,
            max_error_increase: 0.01,
            floor_ms: 1.0,
            floor_rps: 1.0,
            min_tail: 10,
            confidence: 0.95,
        }
    }
}

/// Parses a percentage, `10%` or `10`.
pub fn parse_percent(s: &str) -> Result<f64, String> {
    let t = s.trim().trim_end_matches('%');
    match t.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v / 100.0),
        _ => Err(format!("expected a percentage such as 10%, got {s:?}")),
    }
}

/// Parses a confidence level, `95%` (between 50% and 99.9%).
pub fn parse_confidence(s: &str) -> Result<f64, String> {
    match parse_percent(s)? {
        v if (0.5..=0.999).contains(&v) => Ok(v),
        _ => Err(format!("expected a confidence between 50% and 99.9%, such as 95%, got {s:?}")),
    }
}

/// What one figure did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// Within the floor, the margin or the noise.
    Same,
    /// Better beyond the margin, with confidence.
    Better,
    /// Worse beyond the margin, with confidence.
    Worse,
    /// Too few samples to judge this percentile.
    TooFewSamples,
}

/// One compared figure.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Row {
    /// The suite test id (empty for single runs).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub test: String,
    /// `all requests` or `GET /users`.
    pub scope: String,
    /// `p95 ms`, `req/s`, `error rate`.
    pub figure: &'static str,
    /// A's value.
    pub a: f64,
    /// B's value.
    pub b: f64,
    /// The verdict on this figure.
    pub change: Change,
    /// How it was decided: the confidence interval, the floor, the sample counts.
    pub note: String,
}

impl Row {
    /// Whether this figure is worse beyond the limits.
    pub fn regressed(&self) -> bool {
        self.change == Change::Worse
    }

    /// The change, as shown: relative for latency and throughput, points for errors.
    pub fn delta(&self) -> String {
        if self.figure == "error rate" {
            format!("{:+.2} pp", (self.b - self.a) * 100.0)
        } else if self.a == 0.0 {
            "n/a".into()
        } else {
            format!("{:+.1}%", (self.b - self.a) / self.a * 100.0)
        }
    }
}

/// A suite test whose verdict changed, or that only one side has.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TestChange {
    /// Test id.
    pub test: String,
    /// A's verdict (None: not in A).
    pub a: Option<String>,
    /// B's verdict (None: not in B).
    pub b: Option<String>,
    /// passed (or skipped) in A, failed or error in B.
    pub regressed: bool,
}

/// The comparison.
#[derive(Debug, Clone)]
pub struct Comparison {
    /// `run` or `suite`.
    pub kind: &'static str,
    /// Every figure.
    pub rows: Vec<Row>,
    /// Suite tests whose verdict changed or that one side lacks.
    pub tests: Vec<TestChange>,
    /// The limits used.
    pub limits: Limits,
}

impl Comparison {
    /// Whether B is worse than A beyond the limits.
    pub fn regressed(&self) -> bool {
        self.rows.iter().any(Row::regressed) || self.tests.iter().any(|t| t.regressed)
    }
}

/// One side of a compared scope: samples, percentile table, histogram when known.
struct Side {
    n: u64,
    /// (percentile, ms), sorted, min as 0 and max as 100.
    table: Vec<(f64, f64)>,
    cdf: Option<Cdf>,
    rps: f64,
    failures: u64,
    logical: u64,
    error_rate: f64,
}

impl Side {
    fn pct(&self, p: f64) -> Option<f64> {
        self.table.iter().find(|(q, _)| *q == p).map(|(_, v)| *v)
    }
}

fn table_from_map(m: &BTreeMap<String, f64>) -> Vec<(f64, f64)> {
    let mut t: Vec<(f64, f64)> = m
        .iter()
        .filter_map(|(k, v)| match k.as_str() {
            "min" => Some((0.0, *v)),
            "max" => Some((100.0, *v)),
            k => k.strip_prefix('p')?.parse().ok().map(|p| (p, *v)),
        })
        .collect();
    t.sort_by(|x, y| x.0.total_cmp(&y.0));
    t.dedup_by(|x, y| x.0 == y.0);
    t
}

fn cdf_of(text: Option<&String>) -> Option<Cdf> {
    text.and_then(|t| super::json::decode_hdr(t).ok()).map(|h| Cdf::from_hdr(&h))
}

fn z(limits: &Limits) -> f64 {
    noise::z_for(limits.confidence)
}

fn latency_row(p: f64, a: &Side, b: &Side, limits: &Limits) -> Option<(f64, f64, Change, String)> {
    let (va, vb) = (a.pct(p)?, b.pct(p)?);
    let need = (limits.min_tail as f64 / (1.0 - p / 100.0)).ceil() as u64;
    if a.n < need || b.n < need {
        let note = format!("too few samples for p{p}: {} and {}, needs {need}", a.n, b.n);
        return Some((va, vb, Change::TooFewSamples, note));
    }
    let d = vb - va;
    let margin = limits.floor_ms.max(limits.max_regression * va);
    let conf = limits.confidence * 100.0;
    let (lo, hi, how) = match (&a.cdf, &b.cdf) {
        (Some(ca), Some(cb)) => {
            let (lo, hi) = noise::bootstrap_diff(ca, cb, p, limits.confidence);
            (lo, hi, "bootstrap")
        }
        _ => {
            let (ia, ib) = (
                noise::table_interval(&a.table, a.n, p, z(limits))?,
                noise::table_interval(&b.table, b.n, p, z(limits))?,
            );
            // B - A: B's low end against A's high end and the other way round, the two
            // half-widths combined as independent errors.
            let lo = d - ((ia.1 - va).powi(2) + (vb - ib.0).powi(2)).sqrt();
            let hi = d + ((va - ia.0).powi(2) + (ib.1 - vb).powi(2)).sqrt();
            (lo, hi, "order-statistic")
        }
    };
    let ci = format!("{conf:.0}% CI {lo:+.2}..{hi:+.2} ms ({how})");
    let change = if d > margin && lo > 0.0 {
        Change::Worse
    } else if d < -margin && hi < 0.0 {
        Change::Better
    } else {
        Change::Same
    };
    let note = if d.abs() <= margin {
        format!("{d:+.2} ms within ±{margin:.2} ms; {ci}")
    } else if change == Change::Same {
        format!("noise: {ci}")
    } else {
        ci
    };
    Some((va, vb, change, note))
}

fn figures(rows: &mut Vec<Row>, test: &str, scope: &str, a: &Side, b: &Side, limits: &Limits) {
    let mut push = |figure, va, vb, change, note| {
        rows.push(Row { test: test.into(), scope: scope.into(), figure, a: va, b: vb, change, note })
    };
    for (p, figure) in [(50.0, "p50 ms"), (95.0, "p95 ms"), (99.0, "p99 ms")] {
        if let Some((va, vb, change, note)) = latency_row(p, a, b, limits) {
            push(figure, va, vb, change, note);
        }
    }
    let drop = a.rps - b.rps;
    let (change, note) = if drop <= limits.floor_rps || b.rps >= a.rps * (1.0 - limits.max_regression) {
        (Change::Same, format!("within -{:.0}% and {} req/s", limits.max_regression * 100.0, limits.floor_rps))
    } else if a.n == 0 || b.n == 0 {
        (Change::Worse, "no request counts: margin only".to_string())
    } else if noise::throughput_lower(a.rps, a.n, b.rps, b.n, z(limits)) {
        (Change::Worse, format!("{} vs {} requests, {:.0}% confidence", a.n, b.n, limits.confidence * 100.0))
    } else {
        (Change::Same, format!("noise: {} vs {} requests", a.n, b.n))
    };
    push("req/s", a.rps, b.rps, change, note);
    let rise = b.error_rate - a.error_rate;
    let (change, note) = if rise <= limits.max_error_increase + 1e-12 {
        (Change::Same, format!("within +{:.2} pp", limits.max_error_increase * 100.0))
    } else if a.logical == 0 || b.logical == 0 {
        (Change::Worse, "no request counts: margin only".to_string())
    } else if noise::error_rate_higher(a.failures, a.logical, b.failures, b.logical, z(limits)) {
        let note = format!("{} of {} vs {} of {}", a.failures, a.logical, b.failures, b.logical);
        (Change::Worse, format!("{note}, {:.0}% confidence", limits.confidence * 100.0))
    } else {
        (Change::Same, format!("noise: {} of {} vs {} of {}", a.failures, a.logical, b.failures, b.logical))
    };
    push("error rate", a.error_rate, b.error_rate, change, note);
}

fn run_sides(doc: &RunDoc) -> Vec<(String, Side)> {
    let t = &doc.totals;
    let logical: u64 = doc.requests.iter().map(|r| r.logical).sum();
    let mut out = vec![(
        "all requests".to_string(),
        Side {
            n: t.requests,
            table: table_from_map(&t.latency_ms),
            cdf: cdf_of(doc.metrics.get("http_req_duration").and_then(|m| m.hdr_histogram.as_ref())),
            rps: t.rps,
            failures: t.failures,
            logical,
            error_rate: t.error_rate,
        },
    )];
    for r in &doc.requests {
        let side = Side {
            n: r.count,
            table: table_from_map(&r.latency_ms),
            cdf: cdf_of(r.hdr_histogram.as_ref()),
            rps: r.rps,
            failures: r.failures,
            logical: r.logical,
            error_rate: r.error_rate,
        };
        out.push((format!("{} {}", r.method, r.name), side));
    }
    out
}

fn pair(rows: &mut Vec<Row>, test: &str, a: Vec<(String, Side)>, b: Vec<(String, Side)>, limits: &Limits) {
    for (scope, sa) in &a {
        if let Some((_, sb)) = b.iter().find(|(s, _)| s == scope) {
            figures(rows, test, scope, sa, sb, limits);
        }
    }
}

/// Compares B against A: the totals, then every request name both have.
pub fn compare(a: &RunDoc, b: &RunDoc, limits: Limits) -> Comparison {
    let mut rows = Vec::new();
    pair(&mut rows, "", run_sides(a), run_sides(b), &limits);
    Comparison { kind: "run", rows, tests: Vec::new(), limits }
}

/// Latency rows (p50/p95/p99, same rules) for two HDR histograms of µs, e.g. two
/// `volley bench` results of one benchmark.
pub fn compare_histograms(
    scope: &str,
    a: &hdrhistogram::Histogram<u64>,
    b: &hdrhistogram::Histogram<u64>,
    limits: Limits,
) -> Vec<Row> {
    let side = |h: &hdrhistogram::Histogram<u64>| {
        let cdf = Cdf::from_hdr(h);
        let table = [0.0, 50.0, 95.0, 99.0, 100.0].iter().map(|p| (*p, cdf.percentile(*p))).collect();
        Side { n: cdf.n, table, cdf: Some(cdf), rps: 0.0, failures: 0, logical: 0, error_rate: 0.0 }
    };
    let (sa, sb) = (side(a), side(b));
    let mut rows = Vec::new();
    for (p, figure) in [(50.0, "p50 ms"), (95.0, "p95 ms"), (99.0, "p99 ms")] {
        if let Some((va, vb, change, note)) = latency_row(p, &sa, &sb, &limits) {
            rows.push(Row { test: String::new(), scope: scope.into(), figure, a: va, b: vb, change, note });
        }
    }
    rows
}

/// A `volley.suite/1` document, as far as comparing needs it.
#[derive(Debug, Clone, Deserialize)]
pub struct SuiteDoc {
    /// `volley.suite/1`.
    pub schema: String,
    /// One entry per script.
    pub tests: Vec<SuiteTest>,
}

/// One script of a suite document.
#[derive(Debug, Clone, Deserialize)]
pub struct SuiteTest {
    /// Script id.
    pub id: String,
    /// passed, failed, skipped, error, interrupted.
    pub verdict: String,
    /// Request rows (absent when it did not start).
    #[serde(default)]
    pub requests: Option<Vec<SuiteRequest>>,
}

/// One request row of a suite test.
#[derive(Debug, Clone, Deserialize)]
#[allow(missing_docs)]
pub struct SuiteRequest {
    pub method: String,
    pub name: String,
    pub count: u64,
    pub failures: u64,
    pub logical: u64,
    pub rps: f64,
    pub min: f64,
    pub max: f64,
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub p999: f64,
}

fn suite_sides(t: &SuiteTest) -> Vec<(String, Side)> {
    let rows = t.requests.as_deref().unwrap_or_default();
    rows.iter()
        .map(|r| {
            let table = vec![
                (0.0, r.min),
                (50.0, r.p50),
                (90.0, r.p90),
                (95.0, r.p95),
                (99.0, r.p99),
                (99.9, r.p999),
                (100.0, r.max),
            ];
            let error_rate = if r.logical == 0 { 0.0 } else { r.failures as f64 / r.logical as f64 };
            let side =
                Side { n: r.count, table, cdf: None, rps: r.rps, failures: r.failures, logical: r.logical, error_rate };
            (format!("{} {}", r.method, r.name), side)
        })
        .collect()
}

/// Compares two suites test by test (matched by id): verdicts, then each request name.
pub fn compare_suites(a: &SuiteDoc, b: &SuiteDoc, limits: Limits) -> Comparison {
    let mut rows = Vec::new();
    let mut tests = Vec::new();
    for ta in &a.tests {
        let Some(tb) = b.tests.iter().find(|t| t.id == ta.id) else {
            tests.push(TestChange { test: ta.id.clone(), a: Some(ta.verdict.clone()), b: None, regressed: false });
            continue;
        };
        if ta.verdict != tb.verdict {
            let good = |v: &str| v == "passed" || v == "skipped";
            let regressed = good(&ta.verdict) && !good(&tb.verdict);
            tests.push(TestChange {
                test: ta.id.clone(),
                a: Some(ta.verdict.clone()),
                b: Some(tb.verdict.clone()),
                regressed,
            });
        }
        pair(&mut rows, &ta.id, suite_sides(ta), suite_sides(tb), &limits);
    }
    for tb in b.tests.iter().filter(|tb| !a.tests.iter().any(|ta| ta.id == tb.id)) {
        tests.push(TestChange { test: tb.id.clone(), a: None, b: Some(tb.verdict.clone()), regressed: false });
    }
    Comparison { kind: "suite", rows, tests, limits }
}

/// A result file: one run or one suite.
#[derive(Debug, Clone)]
pub enum Doc {
    /// `volley.run/1` (`--out json=FILE`).
    Run(Box<RunDoc>),
    /// `volley.suite/1` (`--json FILE` of a suite run).
    Suite(SuiteDoc),
}

/// Reads a result file, telling a run from a suite by its `schema`.
pub fn read(path: &std::path::Path) -> Result<Doc, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        format!("{}: not JSON ({e}); expected a volley result (volley.run/1 or volley.suite/1)", path.display())
    })?;
    match value.get("schema").and_then(|s| s.as_str()) {
        Some(super::json::SCHEMA) => super::json::read(path).map(|d| Doc::Run(Box::new(d))),
        Some("volley.suite/1") => serde_json::from_value(value)
            .map(Doc::Suite)
            .map_err(|e| format!("{}: not a volley suite result (schema volley.suite/1): {e}", path.display())),
        other => Err(format!(
            "{}: schema {}, expected volley.run/1 (--out json=FILE) or volley.suite/1 (suite --json FILE)",
            path.display(),
            other.map_or("missing".to_string(), |s| format!("{s:?}"))
        )),
    }
}

/// Compares two result files of the same kind.
pub fn compare_docs(a: &Doc, b: &Doc, limits: Limits) -> Result<Comparison, String> {
    match (a, b) {
        (Doc::Run(a), Doc::Run(b)) => Ok(compare(a, b, limits)),
        (Doc::Suite(a), Doc::Suite(b)) => Ok(compare_suites(a, b, limits)),
        (Doc::Run(_), Doc::Suite(_)) => Err("A is a single run and B a suite: compare like with like".into()),
        (Doc::Suite(_), Doc::Run(_)) => Err("A is a suite and B a single run: compare like with like".into()),
    }
}

fn fmt(figure: &str, v: f64) -> String {
    if figure == "error rate" { format!("{:.2}%", v * 100.0) } else { format!("{v:.1}") }
}

fn margin_text(l: &Limits) -> String {
    format!(
        "latency +{:.0}% and over {} ms, throughput -{:.0}% and over {} req/s, error rate +{:.2} pp; \
         {:.0}% confidence, {} samples beyond each percentile",
        l.max_regression * 100.0,
        l.floor_ms,
        l.max_regression * 100.0,
        l.floor_rps,
        l.max_error_increase * 100.0,
        l.confidence * 100.0,
        l.min_tail
    )
}

fn word(c: Change) -> &'static str {
    match c {
        Change::Same => "same",
        Change::Better => "better",
        Change::Worse => "WORSE",
        Change::TooFewSamples => "few samples",
    }
}

/// The side-by-side table and the verdict line.
pub fn render(c: &Comparison, a_name: &str, b_name: &str) -> String {
    let mut out = String::new();
    let scope_w = c.rows.iter().map(|r| r.scope.chars().count()).max().unwrap_or(0).max(5);
    writeln!(out, "A = {a_name}\nB = {b_name}").ok();
    let mut test = None;
    for r in &c.rows {
        if test != Some(&r.test) {
            test = Some(&r.test);
            if !r.test.is_empty() {
                writeln!(out, "\ntest {}", r.test).ok();
            }
            writeln!(
                out,
                "\n{:scope_w$}  {:<10} {:>10} {:>10} {:>9}  {:<11} how",
                "scope", "figure", "A", "B", "change", "verdict"
            )
            .ok();
        }
        writeln!(
            out,
            "{:scope_w$}  {:<10} {:>10} {:>10} {:>9}  {:<11} {}",
            r.scope,
            r.figure,
            fmt(r.figure, r.a),
            fmt(r.figure, r.b),
            r.delta(),
            word(r.change),
            r.note
        )
        .ok();
    }
    if !c.tests.is_empty() {
        writeln!(out).ok();
        for t in &c.tests {
            let v = |s: &Option<String>| s.clone().unwrap_or_else(|| "absent".into());
            let mark = if t.regressed { "  WORSE" } else { "" };
            writeln!(out, "test {}: {} -> {}{mark}", t.test, v(&t.a), v(&t.b)).ok();
        }
    }
    let margin = margin_text(&c.limits);
    let mut worse: Vec<String> = c
        .rows
        .iter()
        .filter(|r| r.regressed())
        .map(|r| {
            let test = if r.test.is_empty() { String::new() } else { format!("{}: ", r.test) };
            format!("{test}{} {} {}", r.scope, r.figure, r.delta())
        })
        .collect();
    worse.extend(
        c.tests.iter().filter(|t| t.regressed).map(|t| format!("{} {}", t.test, t.b.as_deref().unwrap_or_default())),
    );
    if worse.is_empty() {
        writeln!(out, "\nverdict: B is within the margin of A ({margin})").ok();
    } else {
        writeln!(out, "\nverdict: B is worse than A beyond the margin ({margin}): {}", worse.join(", ")).ok();
    }
    out
}

/// The comparison as JSON (`volley compare --json`), schema `volley.compare/1`.
pub fn to_json(c: &Comparison, a_name: &str, b_name: &str) -> serde_json::Value {
    let l = &c.limits;
    serde_json::json!({
        "schema": "volley.compare/1",
        "kind": c.kind,
        "a": a_name,
        "b": b_name,
        "verdict": if c.regressed() { "worse" } else { "same" },
        "rules": {
            "max_regression": l.max_regression,
            "max_error_increase": l.max_error_increase,
            "floor_ms": l.floor_ms,
            "floor_rps": l.floor_rps,
            "min_tail_samples": l.min_tail,
            "confidence": l.confidence,
            "interval": "bootstrap on HDR histograms (2000 replicates, seeded); order-statistic interval from the percentile table otherwise",
        },
        "rows": c.rows,
        "tests": c.tests,
    })
}

#[cfg(test)]
mod tests;
