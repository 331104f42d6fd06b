//! `volley bench`: pytest-benchmark statistics of timed rounds, the saved history
//! (`.volley/benchmarks/NNNN.json`, schema `volley.bench/1`) and the wrapper script that
//! runs a script's `fn bench()` over warm-up and measured rounds.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The schema of a saved benchmark file.
pub const SCHEMA: &str = "volley.bench/1";

/// pytest-benchmark's figures for one timed thing, in ms (ops in operations per second).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Measured rounds.
    pub rounds: u64,
    /// Fastest round.
    pub min: f64,
    /// Slowest round.
    pub max: f64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Sample standard deviation (n − 1).
    pub stddev: f64,
    /// Median.
    pub median: f64,
    /// First quartile (nearest rank).
    pub q1: f64,
    /// Third quartile (nearest rank).
    pub q3: f64,
    /// q3 − q1.
    pub iqr: f64,
    /// Rounds more than one standard deviation from the mean.
    pub outliers_stddev: u64,
    /// Rounds beyond 1.5 IQR outside the quartiles (Tukey's fences).
    pub outliers_iqr: u64,
    /// Operations per second: 1000 / mean.
    pub ops: f64,
}

impl Stats {
    /// From (value ms, count) pairs in any order; None when there are none.
    pub fn from_weighted(points: &[(f64, u64)]) -> Option<Stats> {
        let mut pts: Vec<(f64, u64)> = points.iter().copied().filter(|p| p.1 > 0).collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        let n: u64 = pts.iter().map(|p| p.1).sum();
        if n == 0 {
            return None;
        }
        let mean = pts.iter().map(|(v, c)| v * *c as f64).sum::<f64>() / n as f64;
        let var = if n > 1 {
            pts.iter().map(|(v, c)| (v - mean).powi(2) * *c as f64).sum::<f64>() / (n - 1) as f64
        } else {
            0.0
        };
        let stddev = var.sqrt();
        let at_rank = |k: u64| {
            let mut seen = 0;
            for (v, c) in &pts {
                seen += c;
                if seen >= k {
                    return *v;
                }
            }
            pts[pts.len() - 1].0
        };
        let rank = |q: f64| ((q * n as f64).ceil() as u64).clamp(1, n);
        let median = if n % 2 == 1 { at_rank(n / 2 + 1) } else { (at_rank(n / 2) + at_rank(n / 2 + 1)) / 2.0 };
        let (q1, q3) = (at_rank(rank(0.25)), at_rank(rank(0.75)));
        let iqr = q3 - q1;
        let count = |f: &dyn Fn(f64) -> bool| pts.iter().filter(|(v, _)| f(*v)).map(|p| p.1).sum::<u64>();
        Some(Stats {
            rounds: n,
            min: pts[0].0,
            max: pts[pts.len() - 1].0,
            mean,
            stddev,
            median,
            q1,
            q3,
            iqr,
            outliers_stddev: count(&|v| (v - mean).abs() > stddev),
            outliers_iqr: count(&|v| v < q1 - 1.5 * iqr || v > q3 + 1.5 * iqr),
            ops: if mean > 0.0 { 1000.0 / mean } else { 0.0 },
        })
    }

    /// From an HDR histogram of µs (volley's trend encoding), with the exact min, max
    /// and sum when known.
    pub fn from_hdr(h: &hdrhistogram::Histogram<u64>, exact: Option<(f64, f64, f64)>) -> Option<Stats> {
        let pts: Vec<(f64, u64)> = h
            .iter_recorded()
            .map(|v| (h.highest_equivalent(v.value_iterated_to()) as f64 / 1000.0, v.count_at_value()))
            .collect();
        let mut s = Stats::from_weighted(&pts)?;
        if let Some((min, max, sum)) = exact {
            (s.min, s.max, s.mean) = (min, max, sum / s.rounds as f64);
            s.ops = if s.mean > 0.0 { 1000.0 / s.mean } else { 0.0 };
        }
        Some(s)
    }
}

/// One benchmark of a saved file: `bench()` itself or a request name inside it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Benchmark {
    /// `bench()` or `GET users`.
    pub name: String,
    /// The figures.
    pub stats: Stats,
    /// The rounds' HDR histogram (µs, V2 deflate, base64), for `--compare`.
    pub hdr_histogram: Option<String>,
}

/// A saved run of `volley bench`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchDoc {
    /// [`SCHEMA`].
    pub schema: String,
    /// The script.
    pub script: String,
    /// Start, RFC 3339 UTC.
    pub started_at: String,
    /// Warm-up rounds (not measured).
    pub warmup: u64,
    /// Measured rounds.
    pub rounds: u64,
    /// Every benchmark.
    pub benchmarks: Vec<Benchmark>,
}

/// The wrapper script: the user's script unchanged (so positions in diagnostics stay
/// right), then a warm-up phase and a measured phase calling its `fn bench()`.
pub fn wrapper(script: &str, warmup: u64, rounds: u64) -> String {
    let mut s = script.to_string();
    if !s.ends_with('\n') {
        s.push('\n');
    }
    if warmup > 0 {
        s.push_str(&format!(
            "phase(\"bench_warmup\", #{{ executor: \"per-vu-iterations\", vus: 1, iterations: {warmup} }}, || {{ bench(); }});\n"
        ));
    }
    s.push_str(&format!(
        "phase(\"bench\", #{{ executor: \"per-vu-iterations\", vus: 1, iterations: {rounds} }}, || {{ bench(); }});\n"
    ));
    s
}

/// The saved files in `dir`, oldest first (`0001.json`, `0002.json`, ...).
pub fn history(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.extension().is_some_and(|x| x == "json")
                        && p.file_stem().and_then(|s| s.to_str()).is_some_and(|s| s.parse::<u32>().is_ok())
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// The next file name in `dir`.
pub fn next_file(dir: &Path) -> PathBuf {
    let last = history(dir).last().and_then(|p| p.file_stem()?.to_str()?.parse::<u32>().ok()).unwrap_or(0);
    dir.join(format!("{:04}.json", last + 1))
}

/// Reads a saved file.
pub fn read(path: &Path) -> Result<BenchDoc, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let doc: BenchDoc = serde_json::from_str(&text)
        .map_err(|e| format!("{}: not a volley benchmark file (schema {SCHEMA}): {e}", path.display()))?;
    if doc.schema != SCHEMA {
        return Err(format!("{}: schema {:?}, expected {SCHEMA}", path.display(), doc.schema));
    }
    Ok(doc)
}

/// The pytest-benchmark table.
pub fn render(doc: &BenchDoc) -> String {
    let w = doc.benchmarks.iter().map(|b| b.name.chars().count()).max().unwrap_or(4).max(4);
    let mut out = format!(
        "benchmark: {} rounds after {} warm-up rounds (times in ms)\n\n{:w$}  {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>11} {:>10}\n",
        doc.rounds, doc.warmup, "name", "min", "max", "mean", "stddev", "median", "iqr", "outliers", "ops/s", "rounds"
    );
    for b in &doc.benchmarks {
        let s = &b.stats;
        out.push_str(&format!(
            "{:w$}  {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9} {:>11.1} {:>10}\n",
            b.name,
            s.min,
            s.max,
            s.mean,
            s.stddev,
            s.median,
            s.iqr,
            format!("{};{}", s.outliers_stddev, s.outliers_iqr),
            s.ops,
            s.rounds
        ));
    }
    out.push_str("\noutliers: rounds beyond 1 stddev from the mean; beyond 1.5 IQR outside the quartiles\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics_match_known_samples() {
        // 1..=10 ms and one slow round of 50 ms: checked by hand (and Python's statistics).
        let mut v: Vec<(f64, u64)> = (1..=10).map(|i| (f64::from(i), 1)).collect();
        v.push((50.0, 1));
        let s = Stats::from_weighted(&v).unwrap();
        assert_eq!((s.rounds, s.min, s.max, s.median), (11, 1.0, 50.0, 6.0));
        assert!((s.mean - 105.0 / 11.0).abs() < 1e-12);
        assert!((s.stddev - 13.721_25).abs() < 1e-4, "{}", s.stddev);
        assert_eq!((s.q1, s.q3, s.iqr), (3.0, 9.0, 6.0));
        assert_eq!((s.outliers_stddev, s.outliers_iqr), (1, 1));
        assert!((s.ops - 1000.0 / (105.0 / 11.0)).abs() < 1e-9);
        let even = Stats::from_weighted(&[(1.0, 1), (2.0, 1), (3.0, 1), (4.0, 1)]).unwrap();
        assert_eq!(even.median, 2.5);
        assert_eq!(Stats::from_weighted(&[]), None);
    }

    #[test]
    fn history_numbers_files_in_order() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(next_file(dir.path()), dir.path().join("0001.json"));
        for n in ["0001.json", "0002.json", "notes.json"] {
            std::fs::write(dir.path().join(n), "{}").unwrap();
        }
        assert_eq!(history(dir.path()).len(), 2);
        assert_eq!(next_file(dir.path()), dir.path().join("0003.json"));
    }
}
