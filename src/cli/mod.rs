//! Command-line subcommands: one file per subcommand, each with its clap `Args` and an
//! `execute` function.

pub mod sim;
