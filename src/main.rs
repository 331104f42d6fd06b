//! The `volley` binary: parse the command line, run, map the result to an exit code.

use clap::Parser;

fn main() {
    let cli = volley::cli::Cli::parse();
    std::process::exit(volley::cli::execute(cli));
}
