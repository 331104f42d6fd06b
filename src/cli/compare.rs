//! `volley compare A.json B.json`: two run results side by side; exit 99 when B is
//! worse than A beyond the margin (a baseline or canary gate in CI).

use crate::engine::ExitCode;
use crate::report::compare::{self, Limits};
use std::path::PathBuf;

/// Options of `volley compare`.
#[derive(Debug, clap::Args)]
pub struct CompareArgs {
    /// The baseline result (`--out json=FILE`, schema volley.run/1).
    #[arg(value_name = "A.json")]
    pub a: PathBuf,
    /// The candidate result.
    #[arg(value_name = "B.json")]
    pub b: PathBuf,
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// The margins, shared with `volley run --baseline`.
#[derive(Debug, Clone, clap::Args)]
pub struct LimitArgs {
    /// How much higher p50/p95/p99 and lower throughput B may be, e.g. 10%.
    #[arg(long, value_name = "PCT", default_value = "10%", value_parser = compare::parse_percent)]
    pub max_regression: f64,
    /// How many percentage points higher B's error rate may be, e.g. 1%.
    #[arg(long, value_name = "PCT", default_value = "1%", value_parser = compare::parse_percent)]
    pub max_error_increase: f64,
}

impl LimitArgs {
    /// As limits.
    pub fn limits(&self) -> Limits {
        Limits { max_regression: self.max_regression, max_error_increase: self.max_error_increase }
    }
}

/// Runs `volley compare`.
pub fn execute(args: CompareArgs) -> i32 {
    let (a, b) = match (crate::report::json::read(&args.a), crate::report::json::read(&args.b)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("error: {e}");
            return ExitCode::Usage.code();
        }
    };
    let c = compare::compare(&a, &b, args.limits.limits());
    print!("{}", compare::render(&c, &args.a.display().to_string(), &args.b.display().to_string()));
    if c.regressed() { ExitCode::Failed.code() } else { ExitCode::Passed.code() }
}
