//! `volley canary SCRIPT --canary KEY=VALUE`: the same script against the baseline and
//! the canary at the same time, then `volley compare`'s rules on the two results.

use super::compare::LimitArgs;
use crate::engine::{self, ExitCode, RunReport};
use crate::report::compare;
use std::collections::HashMap;
use std::path::PathBuf;

/// Options of `volley canary`.
#[derive(Debug, clap::Args)]
pub struct CanaryArgs {
    /// The scenario, run twice at once.
    pub script: PathBuf,
    /// Variables of both runs (`env("KEY")`), e.g. -e BASE_URL=http://stable:8080.
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE", value_parser = super::run::parse_key_value)]
    pub env: Vec<(String, String)>,
    /// What the canary run sets differently, e.g. --canary BASE_URL=http://canary:8080.
    #[arg(long, value_name = "KEY=VALUE", value_parser = super::run::parse_key_value, required = true)]
    pub canary: Vec<(String, String)>,
    /// Print the comparison as JSON (schema volley.compare/1).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub limits: LimitArgs,
}

fn describe(env: &HashMap<String, String>, keys: &[(String, String)]) -> String {
    keys.iter()
        .map(|(k, _)| format!("{k}={}", env.get(k).map_or("(unset)", String::as_str)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `volley canary`.
pub fn execute(args: CanaryArgs) -> i32 {
    let base_env: HashMap<String, String> = args.env.iter().cloned().collect();
    let mut canary_env = base_env.clone();
    canary_env.extend(args.canary.iter().cloned());
    let config = |env: HashMap<String, String>| engine::RunConfig {
        env,
        progress: engine::progress::ProgressMode::Off,
        ..engine::RunConfig::new(&args.script)
    };
    let (a_cfg, b_cfg) = (config(base_env.clone()), config(canary_env.clone()));
    // Both at once, so both see the same time of day, the same neighbours, the same
    // background load: what differs is the canary.
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| engine::run(&a_cfg));
        let b = s.spawn(|| engine::run(&b_cfg));
        (a.join(), b.join())
    });
    let (a, b) = match (a, b) {
        (Ok(Ok(a)), Ok(Ok(b))) => (a, b),
        (Ok(Err(f)), _) | (_, Ok(Err(f))) => {
            eprintln!("{}", f.rendered);
            return f.exit.code();
        }
        _ => {
            eprintln!("error: internal error: a run panicked (a bug in volley: please report it)");
            return ExitCode::ScriptError.code();
        }
    };
    let doc = |r: &RunReport, env: &HashMap<String, String>| {
        let meta = crate::report::RunMeta {
            id: args.script.file_stem().and_then(|s| s.to_str()).unwrap_or("script").to_string(),
            script: args.script.display().to_string(),
            target: env.get("BASE_URL").map(|u| crate::secret::redact_url(u).into_owned()),
            time_scale: 1.0,
            version: env!("CARGO_PKG_VERSION").to_string(),
            bands: Default::default(),
        };
        crate::report::json::document(r, &meta)
    };
    let c = compare::compare(&doc(&a, &base_env), &doc(&b, &canary_env), args.limits.limits());
    let a_name = format!("baseline ({})", describe(&base_env, &args.canary));
    let b_name = format!("canary ({})", describe(&canary_env, &args.canary));
    if args.json {
        println!("{}", serde_json::to_string_pretty(&compare::to_json(&c, &a_name, &b_name)).unwrap_or_default());
    } else {
        print!("{}", compare::render(&c, &a_name, &b_name));
    }
    for (name, r) in [("baseline", &a), ("canary", &b)] {
        if let Some(e) = &r.script_error {
            eprintln!("{name}: {e}");
            return ExitCode::ScriptError.code();
        }
    }
    if c.regressed() { ExitCode::Failed.code() } else { ExitCode::Passed.code() }
}
