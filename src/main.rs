//! Temporary entry point of the `wt-sim` branch: only `volley sim` (the lead replaces
//! this file at merge).

use clap::Parser;

#[derive(Parser)]
#[command(name = "volley", version)]
enum Cli {
    /// Run the built-in simulator of the systems under test.
    Sim(volley::cli::sim::SimArgs),
}

fn main() -> std::process::ExitCode {
    let Cli::Sim(args) = Cli::parse();
    match volley::cli::sim::execute(args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
