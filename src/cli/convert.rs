//! `volley convert recording.har > scenario.rhai`: a browser recording as a script.

use crate::convert::har;
use crate::engine::ExitCode;
use std::path::PathBuf;

/// Options of `volley convert`.
#[derive(Debug, clap::Args)]
pub struct ConvertArgs {
    /// The recording: a HAR file (Chrome / Firefox network panel, "Save all as HAR").
    #[arg(value_name = "RECORDING.har")]
    pub input: PathBuf,
    /// Write the script to this file instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Keep static assets (stylesheets, scripts, images, fonts, media).
    #[arg(long)]
    pub include_static: bool,
    /// Shortest recorded gap written as think time, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 0.1)]
    pub min_think: f64,
}

/// Runs `volley convert`.
pub fn execute(args: ConvertArgs) -> i32 {
    let file = args.input.display().to_string();
    let text = match std::fs::read(&args.input) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(t) => t,
            Err(_) => {
                eprintln!("error: {file}: not text (a HAR file is UTF-8 JSON)");
                return ExitCode::Usage.code();
            }
        },
        Err(e) => {
            eprintln!("error: cannot read {file}: {e}");
            return ExitCode::Usage.code();
        }
    };
    let opts = har::Options { include_static: args.include_static, min_think_s: args.min_think };
    let script = match har::convert(&file, &text, &opts) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::Usage.code();
        }
    };
    match &args.output {
        Some(path) => match std::fs::write(path, script) {
            Ok(()) => eprintln!("volley: {} written", path.display()),
            Err(e) => {
                eprintln!("error: cannot write {}: {e}", path.display());
                return ExitCode::Usage.code();
            }
        },
        None => print!("{script}"),
    }
    ExitCode::Passed.code()
}
