//! `volley compare A.json B.json`: two results side by side, single runs
//! (`--out json=FILE`) or whole suites test by test (`--json FILE`); exit 99 when B is
//! worse than A beyond the margin and beyond noise (a baseline or canary gate in CI).

use crate::engine::ExitCode;
use crate::report::compare::{self, Limits};
use std::path::PathBuf;

/// Options of `volley compare`.
#[derive(Debug, clap::Args)]
pub struct CompareArgs {
    /// The baseline result: volley.run/1 (`--out json=FILE`) or volley.suite/1 (`--json FILE`).
    #[arg(value_name = "A.json")]
    pub a: PathBuf,
    /// The candidate result, of the same kind.
    #[arg(value_name = "B.json")]
    pub b: PathBuf,
    /// Print the comparison as JSON (schema volley.compare/1) instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// The margins and noise rules, shared with `volley run --baseline`.
#[derive(Debug, Clone, clap::Args)]
pub struct LimitArgs {
    /// How much higher p50/p95/p99 and lower throughput B may be, e.g. 10%.
    #[arg(long, value_name = "PCT", default_value = "10%", value_parser = compare::parse_percent)]
    pub max_regression: f64,
    /// How many percentage points higher B's error rate may be, e.g. 1%.
    #[arg(long, value_name = "PCT", default_value = "1%", value_parser = compare::parse_percent)]
    pub max_error_increase: f64,
    /// Latency changes up to this many milliseconds are "same", whatever their share.
    #[arg(long, value_name = "MS", default_value_t = 1.0)]
    pub floor_ms: f64,
    /// Throughput drops up to this many requests per second are "same".
    #[arg(long, value_name = "RPS", default_value_t = 1.0)]
    pub floor_rps: f64,
    /// Judge a percentile only with this many samples beyond it on both sides
    /// (10: p50 needs 20 samples, p95 200, p99 1,000).
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub min_tail: u64,
    /// Confidence the change must have to count (interval on B - A excludes zero).
    #[arg(long, value_name = "PCT", default_value = "95%", value_parser = compare::parse_confidence)]
    pub confidence: f64,
}

impl LimitArgs {
    /// As limits.
    pub fn limits(&self) -> Limits {
        Limits {
            max_regression: self.max_regression,
            max_error_increase: self.max_error_increase,
            floor_ms: self.floor_ms.max(0.0),
            floor_rps: self.floor_rps.max(0.0),
            min_tail: self.min_tail,
            confidence: self.confidence,
        }
    }
}

/// Runs `volley compare`.
pub fn execute(args: CompareArgs) -> i32 {
    let c = match (compare::read(&args.a), compare::read(&args.b)) {
        (Ok(a), Ok(b)) => compare::compare_docs(&a, &b, args.limits.limits()),
        (Err(e), _) | (_, Err(e)) => Err(e),
    };
    let c = match c {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::Usage.code();
        }
    };
    let (a, b) = (args.a.display().to_string(), args.b.display().to_string());
    if args.json {
        println!("{}", serde_json::to_string_pretty(&compare::to_json(&c, &a, &b)).unwrap_or_default());
    } else {
        print!("{}", compare::render(&c, &a, &b));
    }
    if c.regressed() { ExitCode::Failed.code() } else { ExitCode::Passed.code() }
}
