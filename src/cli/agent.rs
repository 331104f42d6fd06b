//! `volley agent`: make load for a coordinator (`volley run --agent HOST:PORT`).

use clap::Args;
use std::sync::Arc;

/// Options of `volley agent`.
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// Where to listen for the coordinator (use 0.0.0.0:7700 to accept other machines).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7700")]
    pub listen: String,
    /// The token shared with the coordinator (required; never sent over the wire).
    #[arg(long, env = "VOLLEY_TOKEN", hide_env_values = true, value_name = "T")]
    pub token: Option<String>,
    /// Worker threads (default: what the coordinator asks, else two per core).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub workers: Option<u16>,
    /// Exit after one run (for a Kubernetes Job's pods and local agents).
    #[arg(long)]
    pub once: bool,
}

/// Runs an agent until Ctrl-C (or one run with --once).
pub fn execute(args: AgentArgs) -> i32 {
    let stop = Arc::new(crate::script::context::Stop::default());
    super::run::install_signal_handler();
    super::run::set_signal_target(Some(stop.clone()));
    super::run::raise_nofile();
    let config = crate::distributed::agent::AgentConfig {
        listen: args.listen,
        token: args.token.unwrap_or_default(),
        workers: args.workers.map(usize::from),
        once: args.once,
    };
    match crate::distributed::agent::serve(&config, &stop) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            2
        }
    }
}
