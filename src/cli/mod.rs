//! The command line: clap definitions and one file per subcommand.

pub mod run;

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
    Run(run::RunArgs),
}

/// Runs the parsed command line and returns the process exit code.
pub fn execute(cli: Cli) -> i32 {
    match cli.command {
        Command::Run(args) => run::execute(args),
    }
}
