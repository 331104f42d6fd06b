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
    /// Start the built-in simulator in-process on an ephemeral port and point the script
    /// at it (sets BASE_URL, FOCUS_URL, ALERTS_URL unless given with -e).
    #[arg(long)]
    pub sim: bool,
    /// The simulator's preset with --sim: healthy, degraded or overloaded.
    #[arg(long, value_name = "NAME", default_value = "healthy", requires = "sim")]
    pub sim_preset: String,
}

/// Starts the simulator for `--sim` and returns it with the values to give the script.
pub fn start_sim(preset: &str) -> Result<(crate::sim::SimHandle, Vec<(String, String)>), String> {
    let config = crate::sim::SimConfig::preset(preset).map_err(|e| e.to_string())?;
    let listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let sim = crate::sim::SimHandle::start(config, listen).map_err(|e| format!("cannot start the simulator: {e}"))?;
    let env = vec![
        ("BASE_URL".to_string(), sim.base_url()),
        ("FOCUS_URL".to_string(), sim.focus_url()),
        ("ALERTS_URL".to_string(), sim.alerts_url()),
    ];
    Ok((sim, env))
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
    let mut env: HashMap<String, String> = HashMap::new();
    let _sim = if args.sim {
        match start_sim(&args.sim_preset) {
            Ok((sim, values)) => {
                eprintln!("volley: simulator ({}) on {}", args.sim_preset, sim.base_url());
                env.extend(values);
                Some(sim)
            }
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::Usage.code();
            }
        }
    } else {
        None
    };
    env.extend(args.env);
    let config = RunConfig {
        script: args.script,
        env,
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
