//! Baseline and canary: two `volley.run/1` results side by side, and whether the second
//! is worse than the first by more than a margin (`volley compare`, `run --baseline`).

use super::json::{RunDoc, pct_key};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// How much worse B may be.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Relative increase of p50/p95/p99 and decrease of throughput allowed (0.1 = 10%).
    pub max_regression: f64,
    /// Increase of the error rate allowed, in absolute terms (0.01 = one percentage point).
    pub max_error_increase: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_regression: 0.10, max_error_increase: 0.01 }
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

/// One compared figure.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// `all requests` or `GET /users`.
    pub scope: String,
    /// `p95 ms`, `req/s`, `error rate`.
    pub figure: &'static str,
    /// A's value.
    pub a: f64,
    /// B's value.
    pub b: f64,
    /// Whether this change is beyond the limits.
    pub regressed: bool,
}

impl Row {
    /// The change, as shown: relative for latency and throughput, points for errors.
    pub fn change(&self) -> String {
        if self.figure == "error rate" {
            format!("{:+.2} pp", (self.b - self.a) * 100.0)
        } else if self.a == 0.0 {
            "n/a".into()
        } else {
            format!("{:+.1}%", (self.b - self.a) / self.a * 100.0)
        }
    }
}

/// The comparison.
#[derive(Debug, Clone)]
pub struct Comparison {
    /// Every figure.
    pub rows: Vec<Row>,
    /// The limits used.
    pub limits: Limits,
}

impl Comparison {
    /// Whether B is worse than A beyond the limits.
    pub fn regressed(&self) -> bool {
        self.rows.iter().any(|r| r.regressed)
    }
}

fn figures(
    rows: &mut Vec<Row>,
    scope: &str,
    a: (&BTreeMap<String, f64>, f64, f64),
    b: (&BTreeMap<String, f64>, f64, f64),
    limits: Limits,
) {
    for (p, figure) in [(50.0, "p50 ms"), (95.0, "p95 ms"), (99.0, "p99 ms")] {
        let (Some(&va), Some(&vb)) = (a.0.get(&pct_key(p)), b.0.get(&pct_key(p))) else { continue };
        let regressed = vb > va * (1.0 + limits.max_regression) && vb - va > 1e-9;
        rows.push(Row { scope: scope.into(), figure, a: va, b: vb, regressed });
    }
    let regressed = a.1 > 0.0 && b.1 < a.1 * (1.0 - limits.max_regression);
    rows.push(Row { scope: scope.into(), figure: "req/s", a: a.1, b: b.1, regressed });
    let regressed = b.2 - a.2 > limits.max_error_increase + 1e-12;
    rows.push(Row { scope: scope.into(), figure: "error rate", a: a.2, b: b.2, regressed });
}

/// Compares B against A: the totals, then every request name both have.
pub fn compare(a: &RunDoc, b: &RunDoc, limits: Limits) -> Comparison {
    let mut rows = Vec::new();
    let (ta, tb) = (&a.totals, &b.totals);
    figures(
        &mut rows,
        "all requests",
        (&ta.latency_ms, ta.rps, ta.error_rate),
        (&tb.latency_ms, tb.rps, tb.error_rate),
        limits,
    );
    for ra in &a.requests {
        let Some(rb) = b.requests.iter().find(|r| r.name == ra.name && r.method == ra.method) else { continue };
        let scope = format!("{} {}", ra.method, ra.name);
        figures(
            &mut rows,
            &scope,
            (&ra.latency_ms, ra.rps, ra.error_rate),
            (&rb.latency_ms, rb.rps, rb.error_rate),
            limits,
        );
    }
    Comparison { rows, limits }
}

fn fmt(figure: &str, v: f64) -> String {
    if figure == "error rate" { format!("{:.2}%", v * 100.0) } else { format!("{v:.1}") }
}

/// The side-by-side table and the verdict line.
pub fn render(c: &Comparison, a_name: &str, b_name: &str) -> String {
    let mut out = String::new();
    let scope_w = c.rows.iter().map(|r| r.scope.chars().count()).max().unwrap_or(0).max(5);
    writeln!(out, "A = {a_name}\nB = {b_name}\n").ok();
    writeln!(out, "{:scope_w$}  {:<10} {:>10} {:>10} {:>10}", "scope", "figure", "A", "B", "change").ok();
    for r in &c.rows {
        writeln!(
            out,
            "{:scope_w$}  {:<10} {:>10} {:>10} {:>10}{}",
            r.scope,
            r.figure,
            fmt(r.figure, r.a),
            fmt(r.figure, r.b),
            r.change(),
            if r.regressed { "  WORSE" } else { "" }
        )
        .ok();
    }
    let margin = format!(
        "latency +{:.0}%, throughput -{:.0}%, error rate +{:.2} pp",
        c.limits.max_regression * 100.0,
        c.limits.max_regression * 100.0,
        c.limits.max_error_increase * 100.0
    );
    let worse: Vec<String> =
        c.rows.iter().filter(|r| r.regressed).map(|r| format!("{} {} {}", r.scope, r.figure, r.change())).collect();
    if worse.is_empty() {
        writeln!(out, "\nverdict: B is within the margin of A ({margin})").ok();
    } else {
        writeln!(out, "\nverdict: B is worse than A beyond the margin ({margin}): {}", worse.join(", ")).ok();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{fixture, json};

    #[test]
    fn the_same_run_is_within_the_margin_and_a_slower_one_is_not() {
        let a = json::document(&fixture::report(), &fixture::meta());
        let c = compare(&a, &a, Limits::default());
        assert!(!c.regressed());
        let mut b = a.clone();
        b.totals.latency_ms.insert("p95".into(), a.totals.latency_ms["p95"] * 1.25);
        b.requests[0].error_rate = a.requests[0].error_rate + 0.02;
        b.requests[1].rps = a.requests[1].rps * 0.95;
        let c = compare(&a, &b, Limits::default());
        let worse: Vec<(&str, &str)> =
            c.rows.iter().filter(|r| r.regressed).map(|r| (r.scope.as_str(), r.figure)).collect();
        assert_eq!(worse, vec![("all requests", "p95 ms"), ("POST login", "error rate")]);
        insta::assert_snapshot!(render(&c, "a.json", "b.json"));
        let loose = compare(&a, &b, Limits { max_regression: 0.3, max_error_increase: 0.05 });
        assert!(!loose.regressed());
    }

    #[test]
    fn percentages_parse() {
        assert_eq!(parse_percent("10%").unwrap(), 0.1);
        assert_eq!(parse_percent("5").unwrap(), 0.05);
        assert!(parse_percent("ten").is_err());
    }
}
