//! `volley run SCRIPT`: run a scenario, print the summary, exit with the verdict.

use crate::engine::progress::ProgressMode;
use crate::engine::{self, ExitCode, RunConfig};
use std::collections::HashMap;
use std::path::PathBuf;

/// Options of `volley run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The scenario (.rhai).
    pub script: PathBuf,
    /// Set a value scripts read with env("KEY"), e.g. -e BASE_URL=http://127.0.0.1:8080 (repeatable).
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub env: Vec<(String, String)>,
    /// Worker threads (default: one per core).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub workers: Option<u16>,
    /// Multiply every phase's durations and counts by F (rates unchanged), e.g. 0.1 in CI.
    #[arg(long, value_name = "F", default_value_t = 1.0, value_parser = parse_scale)]
    pub time_scale: f64,
    /// Live view: a redrawn line on a terminal, plain lines every 10 s in logs, or off.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

fn parse_scale(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(f) if f.is_finite() && f > 0.0 => Ok(f),
        _ => Err(format!("expected a number > 0 such as 0.1, got {s:?}")),
    }
}

/// Default worker count: one per core.
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)
}

/// Raises the open-files limit to the hard limit (each VU connection is a descriptor).
pub fn raise_nofile() {
    if let Ok((soft, hard)) = rlimit::getrlimit(rlimit::Resource::NOFILE)
        && soft < hard
    {
        let _ = rlimit::setrlimit(rlimit::Resource::NOFILE, hard, hard);
    }
}

/// Runs `volley run`.
pub fn execute(args: RunArgs) -> i32 {
    install_signal_handler();
    raise_nofile();
    let config = RunConfig {
        script: args.script,
        env: args.env.into_iter().collect::<HashMap<_, _>>(),
        workers: args.workers.map(usize::from).unwrap_or_else(default_workers),
        time_scale: args.time_scale,
        progress: args.progress,
    };
    match engine::run(&config) {
        Ok(report) => {
            print!("{}", crate::report::summary::render(&report));
            report.exit.code()
        }
        Err(failure) => {
            eprint!("{}", failure.rendered);
            failure.exit.code()
        }
    }
}

/// Installs the Ctrl-C / SIGTERM handler: the first signal interrupts the run (the
/// summary is still printed), a second one exits at once.
pub fn install_signal_handler() {
    let _ = ctrlc::set_handler(|| {
        static SEEN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        if SEEN.swap(true, std::sync::atomic::Ordering::SeqCst) || !engine::interrupt_active() {
            std::process::exit(ExitCode::Interrupted.code());
        }
        eprintln!("\nvolley: interrupted, finishing up (Ctrl-C again to quit at once)");
    });
}
