//! The command line: clap definitions and one file per subcommand.

pub mod agent;
pub mod bench;
pub mod canary;
pub mod check;
pub mod compare;
pub mod convert;
pub mod k8s;
pub mod list;
pub mod merge;
pub mod run;
pub mod sim;
pub mod watch;

use clap::{Parser, Subcommand};

/// volley: load and performance testing with Rhai scenarios.
#[derive(Debug, Parser)]
#[command(name = "volley", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a scenario and judge it (exit 0 passed, 99 failed, 107 script error, 130 interrupted).
    Run(Box<run::RunArgs>),
    /// Compile scripts and their modules and report every problem found without traffic.
    Check(check::CheckArgs),
    /// Run, then re-run on every save of the script or a module it imports.
    Watch(Box<watch::WatchArgs>),
    /// Compare two run results (--out json=FILE); exit 99 when B is worse than A beyond the margin.
    Compare(compare::CompareArgs),
    /// Time a script's `fn bench()` over rounds: pytest-benchmark statistics, saved history, --compare.
    Bench(Box<bench::BenchArgs>),
    /// Run a script against the baseline and a canary at once and compare them (exit 99 when the canary is worse).
    Canary(Box<canary::CanaryArgs>),
    /// Turn a browser recording (HAR) into a scenario script.
    Convert(convert::ConvertArgs),
    /// Merge results of one script made side by side (--out json=FILE of each machine or segment)
    /// and judge thresholds on the whole; exit 99 when one fails.
    Merge(merge::MergeArgs),
    /// Make load for a coordinator (`volley run SCRIPT --agent HOST:PORT --token T`).
    Agent(agent::AgentArgs),
    /// Print the Kubernetes manifests of a distributed run (coordinator Job, agents'
    /// Indexed Job, Services, the script as a ConfigMap, the token as a Secret).
    K8s(Box<k8s::K8sArgs>),
    /// List scripts (id, title, tags, nominal duration) without running them.
    List(list::ListArgs),
    /// Start the built-in simulator of the Focus Server, alerts API and alert path.
    Sim(Box<sim::SimArgs>),
}

/// Runs the parsed command line and returns the process exit code.
pub fn execute(cli: Cli) -> i32 {
    match cli.command {
        Command::Run(args) => run::execute(*args),
        Command::Compare(args) => compare::execute(args),
        Command::Bench(args) => bench::execute(*args),
        Command::Canary(args) => canary::execute(*args),
        Command::Convert(args) => convert::execute(args),
        Command::Merge(args) => merge::execute(args),
        Command::List(args) => list::execute(args),
        Command::Agent(args) => agent::execute(args),
        Command::K8s(args) => k8s::execute(*args),
        Command::Check(args) => check::execute(args),
        Command::Watch(args) => watch::execute(*args),
        Command::Sim(args) => match sim::execute(*args) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("error: {e:#}");
                2
            }
        },
    }
}
