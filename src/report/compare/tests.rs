use super::*;
use crate::report::{fixture, json};
use base64::Engine as _;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Latencies in ms: a lognormal body around `median` (sigma 0.4), like a real service.
fn samples(seed: u64, n: usize, median: f64) -> Vec<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let (u1, u2): (f64, f64) = (rng.random::<f64>().max(1e-12), rng.random());
            let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
            median * (0.4 * z).exp()
        })
        .collect()
}

fn hdr(samples: &[f64]) -> String {
    let mut h = hdrhistogram::Histogram::<u64>::new(3).unwrap();
    for s in samples {
        h.record((s * 1000.0).round() as u64).unwrap();
    }
    let mut buf = Vec::new();
    let mut ser = hdrhistogram::serialization::V2DeflateSerializer::new();
    hdrhistogram::serialization::Serializer::serialize(&mut ser, &h, &mut buf).unwrap();
    base64::engine::general_purpose::STANDARD.encode(buf)
}

fn table(samples: &[f64]) -> BTreeMap<String, f64> {
    let cdf = Cdf::from_samples(samples);
    let mut m: BTreeMap<String, f64> =
        json::PERCENTILES.iter().map(|p| (json::pct_key(*p), cdf.percentile(*p))).collect();
    m.insert("min".into(), cdf.percentile(0.0));
    m.insert("max".into(), cdf.percentile(100.0));
    m
}

/// A run document whose one request (`GET users`) and totals have these latencies.
fn doc(samples: &[f64], failures: u64) -> RunDoc {
    let mut d = json::document(&fixture::report(), &fixture::meta());
    let n = samples.len() as u64;
    d.requests.truncate(1);
    let r = &mut d.requests[0];
    (r.method, r.name, r.count, r.logical, r.failures) = ("GET".into(), "users".into(), n, n, failures);
    r.error_rate = failures as f64 / n as f64;
    r.rps = 100.0;
    r.latency_ms = table(samples);
    r.hdr_histogram = Some(hdr(samples));
    d.totals.requests = n;
    d.totals.failures = failures;
    d.totals.error_rate = r.error_rate;
    d.totals.rps = 100.0;
    d.totals.latency_ms = table(samples);
    d.metrics.get_mut("http_req_duration").unwrap().hdr_histogram = Some(hdr(samples));
    d
}

fn changes(c: &Comparison, scope: &str) -> Vec<(&'static str, Change)> {
    c.rows.iter().filter(|r| r.scope == scope).map(|r| (r.figure, r.change)).collect()
}

#[test]
fn the_same_distribution_twice_is_the_same() {
    // Two independent draws of one distribution: p99 moves by several percent by chance.
    let (a, b) = (doc(&samples(1, 3000, 20.0), 0), doc(&samples(2, 3000, 20.0), 0));
    let c = compare(&a, &b, Limits { floor_ms: 0.0, max_regression: 0.0, ..Limits::default() });
    assert!(!c.regressed(), "{}", render(&c, "a", "b"));
    let p99 = c.rows.iter().find(|r| r.figure == "p99 ms").unwrap();
    assert!(p99.note.contains("bootstrap"), "{}", p99.note);
}

#[test]
fn a_real_shift_is_worse_and_the_reverse_is_better() {
    let (a, b) = (doc(&samples(1, 3000, 20.0), 0), doc(&samples(2, 3000, 26.0), 0));
    let c = compare(&a, &b, Limits::default());
    assert_eq!(
        changes(&c, "GET users"),
        vec![
            ("p50 ms", Change::Worse),
            ("p95 ms", Change::Worse),
            ("p99 ms", Change::Worse),
            ("req/s", Change::Same),
            ("error rate", Change::Same)
        ],
        "{}",
        render(&c, "a", "b")
    );
    assert!(render(&c, "a", "b").contains("verdict: B is worse than A beyond the margin (latency +10%"));
    let back = compare(&b, &a, Limits::default());
    assert!(!back.regressed());
    assert_eq!(back.rows[0].change, Change::Better);
}

#[test]
fn the_floor_and_the_sample_count_silence_noise() {
    // The reported cases: p50 4.5 -> 5.4 ms is under the 1 ms floor; a p99 over 50
    // samples is not judged at all.
    let (a, b) = (doc(&samples(1, 50, 4.5), 0), doc(&samples(2, 50, 5.4), 0));
    let c = compare(&a, &b, Limits::default());
    assert!(!c.regressed(), "{}", render(&c, "a", "b"));
    let users = changes(&c, "GET users");
    assert_eq!(users[0], ("p50 ms", Change::Same));
    assert_eq!(users[1], ("p95 ms", Change::TooFewSamples));
    assert_eq!(users[2], ("p99 ms", Change::TooFewSamples));
    let note = &c.rows.iter().find(|r| r.figure == "p99 ms").unwrap().note;
    assert_eq!(note, "too few samples for p99: 50 and 50, needs 1000");
}

#[test]
fn error_rates_need_the_margin_and_evidence() {
    let s = samples(1, 1000, 20.0);
    let c = compare(&doc(&s, 0), &doc(&s, 5), Limits::default());
    assert!(!c.regressed(), "0.5 pp is within 1 pp");
    let c = compare(&doc(&s, 0), &doc(&s, 50), Limits::default());
    assert_eq!(
        c.rows.iter().filter(|r| r.regressed()).map(|r| r.figure).collect::<Vec<_>>(),
        vec!["error rate", "error rate"]
    );
    // 2 of 40 against 0 of 40 is over the margin but not evidence.
    let few = samples(1, 40, 20.0);
    assert!(!compare(&doc(&few, 0), &doc(&few, 2), Limits::default()).regressed());
}

#[test]
fn suites_compare_test_by_test_from_the_percentile_table() {
    let row = |p50: f64, n: u64, failures: u64| {
        serde_json::json!({"method": "GET", "name": "users", "count": n, "failures": failures, "logical": n,
            "rps": 50.0, "mean": p50, "min": p50 * 0.5, "max": p50 * 4.0, "p50": p50, "p90": p50 * 1.6,
            "p95": p50 * 1.9, "p99": p50 * 2.6, "p999": p50 * 3.5})
    };
    let suite = |t1: serde_json::Value, v2: &str| -> SuiteDoc {
        serde_json::from_value(serde_json::json!({"schema": "volley.suite/1", "volley_version": "0", "tests": [
            {"id": "PZ-1", "verdict": "passed", "requests": [t1], "cases": []},
            {"id": "PZ-2", "verdict": v2, "requests": null},
        ]}))
        .unwrap()
    };
    let a = suite(row(20.0, 5000, 0), "passed");
    let c = compare_suites(&a, &a, Limits::default());
    assert!(!c.regressed(), "{}", render(&c, "a", "b"));
    assert!(c.rows[0].note.contains("order-statistic"), "{}", c.rows[0].note);
    let c = compare_suites(&a, &suite(row(30.0, 5000, 0), "passed"), Limits::default());
    assert!(c.rows.iter().filter(|r| r.test == "PZ-1").all(|r| r.figure.ends_with("ms") == r.regressed()));
    let c = compare_suites(&a, &suite(row(20.0, 5000, 0), "failed"), Limits::default());
    assert_eq!(
        c.tests,
        vec![TestChange { test: "PZ-2".into(), a: Some("passed".into()), b: Some("failed".into()), regressed: true }]
    );
    let text = render(&c, "a", "b");
    assert!(text.contains("test PZ-2: passed -> failed  WORSE") && text.contains("\ntest PZ-1\n"), "{text}");
}

#[test]
fn percentages_parse() {
    assert_eq!(parse_percent("10%").unwrap(), 0.1);
    assert_eq!(parse_percent("5").unwrap(), 0.05);
    assert!(parse_percent("ten").is_err());
    assert_eq!(parse_confidence("95%").unwrap(), 0.95);
    assert!(parse_confidence("20%").is_err());
}
