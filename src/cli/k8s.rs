//! `volley k8s`: print the Kubernetes manifests of a distributed run.

use clap::Args;
use std::path::PathBuf;

/// Options of `volley k8s`.
#[derive(Debug, Args)]
pub struct K8sArgs {
    /// The scenario.
    #[arg(value_name = "SCRIPT")]
    pub script: PathBuf,
    /// How many agents (pods of the agents' Indexed Job).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub agents: u32,
    /// The container image with volley in it (see the Dockerfile).
    #[arg(long, value_name = "IMAGE")]
    pub image: String,
    /// The namespace of every object.
    #[arg(long, value_name = "NS", default_value = "default")]
    pub namespace: String,
    /// The prefix of every object's name.
    #[arg(long, value_name = "NAME", default_value = "volley")]
    pub name: String,
    /// The shared token (default: a fresh random one, stored in the Secret).
    #[arg(long, env = "VOLLEY_TOKEN", hide_env_values = true, value_name = "T")]
    pub token: Option<String>,
    /// CPU request and limit of each agent.
    #[arg(long, value_name = "CPU", default_value = "1")]
    pub agent_cpu: String,
    /// Memory request and limit of each agent.
    #[arg(long, value_name = "BYTES", default_value = "1Gi")]
    pub agent_memory: String,
    /// Seconds the coordinator's pod stays up after the run, to `kubectl cp` its reports.
    #[arg(long, value_name = "S", default_value_t = 300)]
    pub keep: u64,
    /// Seconds after which Kubernetes stops the run's Jobs whatever happens.
    #[arg(long, value_name = "S", default_value_t = 21_600)]
    pub deadline: u64,
    /// Arguments for the coordinator's `volley run` (after --), e.g. -- --out json=run.json
    #[arg(last = true, value_name = "RUN ARGS")]
    pub run_args: Vec<String>,
}

/// Prints the manifests on stdout.
pub fn execute(args: K8sArgs) -> i32 {
    let make = || -> Result<String, String> {
        let meta =
            std::fs::metadata(&args.script).map_err(|e| format!("cannot read {}: {e}", args.script.display()))?;
        if !meta.is_file() {
            return Err(format!("{} is not a script file", args.script.display()));
        }
        let dirs = crate::script::module_dirs(&args.script);
        let files = crate::distributed::bundle::make(&args.script, &dirs).map_err(|e| e.to_string())?;
        let main = args.script.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        let manifest = crate::distributed::k8s::Manifest {
            main,
            dirs: files,
            agents: args.agents,
            image: args.image.clone(),
            namespace: args.namespace.clone(),
            name: args.name.clone(),
            token: args.token.clone().filter(|t| !t.is_empty()).unwrap_or_else(crate::distributed::wire::nonce),
            agent_cpu: args.agent_cpu.clone(),
            agent_memory: args.agent_memory.clone(),
            run_args: args.run_args.clone(),
            keep_s: args.keep,
            deadline_s: args.deadline,
        };
        let objects = manifest.objects().map_err(|e| e.to_string())?;
        Ok(crate::distributed::k8s::to_yaml(&objects))
    };
    match make() {
        Ok(yaml) => {
            print!("{yaml}");
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            2
        }
    }
}
