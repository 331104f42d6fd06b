//! The `volley` binary: parse the command line, run, map the result to an exit code.

use clap::Parser;

/// mimalloc: the per-request allocations of HTTP and metrics cost half as much as with glibc.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = volley::cli::Cli::parse();
    std::process::exit(volley::cli::execute(cli));
}
