//! `volley run SCRIPT`: run a scenario, print the summary, exit with the verdict.

use crate::engine::progress::ProgressMode;
use crate::engine::{self, ExitCode, RunConfig};
use crate::script::context::Stop;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

/// Options of `volley run`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Scenario files or directories (every .rhai inside, in path order; stdlib/ skipped).
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Run only scripts whose tags match, e.g. "load or performance", "alerts and not slow".
    #[arg(long, value_name = "EXPR", value_parser = parse_tags)]
    pub tags: Option<crate::tagexpr::TagExpr>,
    /// Run only the script with this id, e.g. PZ-14802 (repeatable).
    #[arg(long = "id", value_name = "ID")]
    pub ids: Vec<String>,
    /// Write JUnit XML (one test case per script id or test_case).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Write every result as JSON (schema volley.suite/1, see the README).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write an output of each run: json=FILE (schema volley.run/1), html=FILE, csv=PREFIX
    /// (PREFIX_stats.csv, PREFIX_failures.csv, PREFIX_stats_history.csv), md=FILE,
    /// prometheus=http://GATEWAY:9091[?job=J&instance=I&live=1] (repeatable). In a suite the script id goes into the name: run.json -> run-PZ-1.json.
    #[arg(long = "out", value_name = "KIND=TARGET", value_parser = crate::report::parse_out)]
    pub outs: Vec<crate::report::OutSpec>,
    /// Compare the run with an earlier result (--out json=FILE) and fail (exit 99) when
    /// it is worse beyond --max-regression / --max-error-increase. In a suite, only the
    /// script with the baseline's id is compared.
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,
    #[command(flatten)]
    pub limits: super::compare::LimitArgs,
    /// Thresholds (and grading bands) from a TOML SLO file, judged with the script's own.
    #[arg(long, value_name = "FILE")]
    pub slo: Option<PathBuf>,
    /// The SLO file's environment whose thresholds override the defaults, e.g. production.
    #[arg(long, value_name = "NAME", requires = "slo")]
    pub environment: Option<String>,
    /// POST a JSON verdict (Slack-compatible `text` field) to URL when a run fails its
    /// thresholds or assertions.
    #[arg(long, value_name = "URL", value_parser = webhook_url)]
    pub notify: Option<String>,
    /// Set a value scripts read with env("KEY"), e.g. -e BASE_URL=http://127.0.0.1:8080 (repeatable).
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub env: Vec<(String, String)>,
    /// Worker threads (default: two per core).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub workers: Option<u16>,
    /// Multiply every phase's durations and counts by F (rates unchanged), e.g. 0.1 in CI.
    #[arg(long, value_name = "F", default_value_t = 1.0, value_parser = parse_scale)]
    pub time_scale: f64,
    /// Live view: a redrawn line on a terminal, plain lines every 10 s in logs, or off.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,
    /// Start the built-in simulator in-process on an ephemeral port and point the script
    /// at it (sets BASE_URL, FOCUS_URL, ALERTS_URL unless given with -e).
    #[arg(long)]
    pub sim: bool,
    /// The simulator's preset with --sim: healthy, degraded, overloaded or throttled.
    #[arg(long, value_name = "NAME", default_value = "healthy", requires = "sim")]
    pub sim_preset: String,
    /// The seed of the simulator's random draws with --sim (the same seed gives the
    /// same faults for the same requests).
    #[arg(long, value_name = "N", default_value_t = 1, requires = "sim")]
    pub sim_seed: u64,
    /// The seed of the script's random choices (rand, pick, pick_weighted, uuid, weighted
    /// tasks, sleep(min, max)): each VU's stream comes from it, so the same seed gives the
    /// same choices whatever the scheduling. Not the simulator's (--sim-seed).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Override the VUs of every phase (or of --phase NAME), e.g. --vus 5.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub vus: Option<u64>,
    /// Override the duration of every phase (or of --phase NAME), e.g. --duration 30s.
    #[arg(long, value_name = "DURATION")]
    pub duration: Option<String>,
    /// Run every phase (or --phase NAME) as N iterations shared by its VUs.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..), conflicts_with = "rate")]
    pub iterations: Option<u64>,
    /// Run every phase (or --phase NAME) at R iterations per second.
    #[arg(long, value_name = "R")]
    pub rate: Option<f64>,
    /// Apply --vus, --duration, --iterations, --rate to this phase only.
    #[arg(long, value_name = "NAME")]
    pub phase: Option<String>,
    /// Run at a named load level (smoke, light, medium, heavy, stress, ...) defined by the
    /// script's levels(...) or by --levels FILE.
    #[arg(long, value_name = "NAME")]
    pub level: Option<String>,
    /// A TOML file of load levels ([smoke] vus = 1, duration = "10s", [smoke.thresholds]
    /// ...); it wins over the script's levels(...).
    #[arg(long, value_name = "FILE", requires = "level")]
    pub levels: Option<PathBuf>,
    /// Serve a live dashboard in the browser during the run (default 127.0.0.1:5665; a
    /// free port with :0). The URL printed carries the run's token, which Stop needs, and
    /// everything needs when ADDR is not loopback (e.g. 0.0.0.0:5665).
    #[arg(
        long,
        value_name = "ADDR",
        num_args = 0..=1,
        default_missing_value = crate::report::dashboard::DEFAULT_ADDR,
        value_parser = crate::report::dashboard::parse_addr
    )]
    pub dashboard: Option<std::net::SocketAddr>,
    /// Make the load on an agent (`volley agent`) at HOST:PORT instead of this process
    /// (repeatable: agent i runs execution segment i). Results are merged exactly.
    #[arg(long = "agent", value_name = "HOST:PORT", conflicts_with = "local_agents")]
    pub agents: Vec<String>,
    /// Start N agent processes on this machine and make the load on them.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub local_agents: Option<u16>,
    /// The token agents and coordinator share (the agents' --token).
    #[arg(long, env = "VOLLEY_TOKEN", hide_env_values = true, value_name = "T")]
    pub token: Option<String>,
    /// How long to wait for every agent to answer before failing the run.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_wait)]
    pub agent_wait: std::time::Duration,
    /// Write each agent's own results (volley.run/1 JSON, `agent-N-of-M.json`) here;
    /// `volley merge` of them gives the run's figures.
    #[arg(long, value_name = "DIR")]
    pub agent_out: Option<PathBuf>,
}

fn parse_wait(s: &str) -> Result<std::time::Duration, String> {
    crate::duration::parse_duration(s).map_err(|e| e.to_string())
}

impl RunArgs {
    /// The load overrides the command line asks for, checked.
    pub fn overrides(&self) -> Result<crate::executor::Overrides, String> {
        let o = crate::executor::Overrides {
            vus: self.vus,
            duration: self.duration.clone(),
            iterations: self.iterations,
            rate: self.rate,
            phase: self.phase.clone(),
        };
        o.validate()?;
        if o.phase.is_some() && o.is_empty() {
            return Err(
                "--phase NAME limits --vus, --duration, --iterations or --rate to one phase: give one of them".into()
            );
        }
        Ok(o)
    }

    /// The level chosen from `--levels FILE`, if one was given.
    pub fn file_level(&self) -> Result<Option<crate::script::levels::Level>, String> {
        let (Some(file), Some(name)) = (&self.levels, &self.level) else { return Ok(None) };
        let text = std::fs::read_to_string(file).map_err(|e| format!("--levels {}: {e}", file.display()))?;
        let table: toml::Table = toml::from_str(&text).map_err(|e| format!("--levels {}: {e}", file.display()))?;
        let json = serde_json::to_value(table).map_err(|e| format!("--levels {}: {e}", file.display()))?;
        let serde_json::Value::Object(table) = json else { return Ok(None) };
        let origin = file.display().to_string();
        for (level, v) in &table {
            crate::script::levels::read_level(level, v, &origin).map_err(|e| format!("--levels {origin}: {e}"))?;
        }
        crate::script::levels::choose(&table, name, &origin).map(Some).map_err(|e| format!("--levels {origin}: {e}"))
    }
}

/// Starts the simulator for `--sim` and returns it with the values to give the script.
pub fn start_sim(
    preset: &str,
    seed: u64,
    amqp_url: Option<&str>,
) -> Result<(crate::sim::SimHandle, Vec<(String, String)>), String> {
    let mut config = crate::sim::SimConfig::preset(preset).map_err(|e| e.to_string())?;
    config.seed = seed;
    config.amqp_url = amqp_url.map(str::to_string);
    let listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let sim = crate::sim::SimHandle::start(config, listen).map_err(|e| format!("cannot start the simulator: {e}"))?;
    let env = vec![
        ("BASE_URL".to_string(), sim.base_url()),
        ("FOCUS_URL".to_string(), sim.focus_url()),
        ("ALERTS_URL".to_string(), sim.alerts_url()),
    ];
    Ok((sim, env))
}

/// The default broker URL.
pub const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// Whether something listens at an AMQP URL's host and port (300 ms at most).
pub fn broker_answers(amqp_url: &str) -> bool {
    let Ok(url) = url::Url::parse(amqp_url) else { return false };
    let host = url.host_str().unwrap_or("127.0.0.1").to_string();
    let port = url.port().unwrap_or(5672);
    use std::net::ToSocketAddrs;
    let Ok(mut addrs) = (host.as_str(), port).to_socket_addrs() else { return false };
    addrs
        .next()
        .is_some_and(|a| std::net::TcpStream::connect_timeout(&a, std::time::Duration::from_millis(300)).is_ok())
}

/// Parses a `--tags` expression, pointing at the problem.
pub fn parse_tags(s: &str) -> Result<crate::tagexpr::TagExpr, String> {
    crate::tagexpr::TagExpr::parse(s).map_err(|e| format!("{e}\n{}", e.render_caret()))
}

/// `KEY=VALUE` of `-e` and `--canary`.
pub(crate) fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

fn parse_scale(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(f) if f.is_finite() && f > 0.0 => Ok(f),
        _ => Err(format!("expected a number > 0 such as 0.1, got {s:?}")),
    }
}

/// Raises the open-files limit to the hard limit (each VU connection is a descriptor).
pub fn raise_nofile() {
    if let Ok((soft, hard)) = rlimit::getrlimit(rlimit::Resource::NOFILE)
        && soft < hard
    {
        let _ = rlimit::setrlimit(rlimit::Resource::NOFILE, hard, hard);
    }
}

/// Runs `volley run`.
pub fn execute(args: RunArgs) -> i32 {
    let stop = Arc::new(Stop::default());
    install_signal_handler();
    set_signal_target(Some(stop.clone()));
    raise_nofile();
    let scripts = match select(&args) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let (_sim, env) = match prepare_env(&args) {
        Ok(v) => v,
        Err(code) => return code,
    };
    // A report that cannot be written is found now, not after a long run.
    let files = args.junit.iter().chain(&args.json).map(|p| (p.clone(), false));
    // CSV's target is a prefix of file names (`out/run` -> `out/run_stats.csv`).
    let outs = args.outs.iter().filter(|o| o.kind != "prometheus").map(|o| (PathBuf::from(&o.target), o.kind == "csv"));
    for (path, prefix) in files.chain(outs) {
        if let Err(e) = writable(&path, prefix) {
            eprintln!("error: {e}");
            return ExitCode::Usage.code();
        }
    }
    // `--phase NAME` that no selected script can run is refused before any load, when
    // every script names its phases with literals (else it is found after the run).
    if let Some(phase) = &args.phase
        && let Some(e) = phase_known_missing(phase, &scripts)
    {
        eprintln!("error: {e}");
        return ExitCode::Usage.code();
    }
    let dashboard = match start_dashboard(&args) {
        Ok(d) => d,
        Err(code) => return code,
    };
    if let Some(d) = &dashboard {
        d.stop_with(stop.clone());
    }
    let started = std::time::Instant::now();
    let outcome = run_scripts(&args, scripts, &env, &stop, dashboard.as_ref());
    if let Some(d) = dashboard {
        d.close();
    }
    let outcome = match outcome {
        Ok(r) => r,
        Err(code) => return code,
    };
    let mut output_failed = outcome.output_failed;
    for e in write_outputs(&args.junit, &args.json, &outcome.results, args.time_scale, started.elapsed()) {
        eprintln!("error: {e}");
        output_failed = true;
    }
    let unmatched = unmatched_phase(args.phase.as_deref(), &outcome.results);
    if let Some(e) = &unmatched {
        eprintln!("error: {e}");
    }
    // A lost report fails a run that passed; a failed, broken or interrupted run keeps
    // its own code. `--phase` naming no phase is a usage error whatever the thresholds
    // said of a load that was not the one asked for (a broken or interrupted run keeps
    // its code).
    match suite_exit(&outcome.results) {
        0 if output_failed => ExitCode::Usage.code(),
        code if unmatched.is_some() && (code == 0 || code == ExitCode::Failed.code()) => ExitCode::Usage.code(),
        code => code,
    }
}

/// `--phase NAME` when every selected script's phases are known before running
/// ([`crate::script::check::literal_phase_names`]) and none is NAME: the message.
fn phase_known_missing(phase: &str, scripts: &[crate::suite::ScriptMeta]) -> Option<String> {
    let mut names = Vec::new();
    for meta in scripts {
        // A script that does not load is reported by its run.
        let loaded = crate::script::load(&meta.path).ok()?;
        names.extend(crate::script::check::literal_phase_names(&loaded)?);
    }
    if names.iter().any(|n| n == phase) {
        return None;
    }
    names.sort();
    names.dedup();
    Some(phase_mismatch(phase, &names, false))
}

/// "--phase \"x\": ..." with the phases there are (`ran`: that ran) and the closest.
fn phase_mismatch(phase: &str, names: &[String], ran: bool) -> String {
    let (what, would, listed) = if ran {
        ("no phase of that name ran", "applied", "the phases that ran")
    } else {
        ("the script has no phase of that name", "would apply", "its phases")
    };
    let hint = match (crate::script::opts::did_you_mean(phase, names.iter().map(String::as_str)), names.is_empty()) {
        (_, true) if ran => "the script ran no phase at all".to_string(),
        (_, true) => "the script has no phase at all".to_string(),
        (Some(near), false) => format!("did you mean --phase {near}? {listed}: {}", names.join(", ")),
        (None, false) => format!("{listed}: {}", names.join(", ")),
    };
    format!("--phase {phase:?}: {what}, so the load overrides {would} to nothing; hint: {hint}")
}

/// `--phase NAME` that no selected script ran a phase of (its overrides applied to
/// nothing): the message, with the phases that did run and the closest of them. None
/// when a script ran it, or when no script ran to its end (interrupted, not started).
fn unmatched_phase(phase: Option<&str>, results: &[crate::report::suite::ScriptResult]) -> Option<String> {
    let phase = phase?;
    let reports: Vec<&engine::RunReport> =
        results.iter().filter_map(|r| r.report.as_ref()).filter(|r| !r.interrupted && r.skipped.is_none()).collect();
    if reports.is_empty() || reports.iter().any(|r| r.phases.iter().any(|p| p.name == phase)) {
        return None;
    }
    let mut ran: Vec<String> = reports.iter().flat_map(|r| r.phases.iter().map(|p| p.name.clone())).collect();
    ran.sort();
    ran.dedup();
    Some(phase_mismatch(phase, &ran, true))
}

/// `--notify URL`: an http(s) URL with a host, refused at the start rather than after
/// the run whose failure it was to tell.
fn webhook_url(text: &str) -> Result<String, String> {
    match url::Url::parse(text) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(text.to_string()),
        Ok(u) => Err(format!("expected an http:// or https:// URL, got a {}: URL", u.scheme())),
        Err(e) => {
            Err(format!("not a URL ({e}); hint: the webhook's full address, e.g. https://hooks.slack.com/services/..."))
        }
    }
}

/// A webhook URL as it may be shown: its scheme and host, without the path that holds
/// its token.
fn webhook_origin(url: &str) -> String {
    url::Url::parse(url).map(|u| u.origin().ascii_serialization()).unwrap_or_else(|_| "the webhook".into())
}

/// Whether a report can be written at `path`: its directory exists or can be made, and
/// `path` is not a directory (unless it is a `prefix` of file names). Creates the
/// directory (as writing it would).
fn writable(path: &std::path::Path, prefix: bool) -> Result<(), String> {
    if !prefix && path.is_dir() {
        return Err(format!("cannot write a report to {}: it is a directory", path.display()));
    }
    let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) else { return Ok(()) };
    // The nearest part of the path that exists must be a directory.
    if let Some(file) = dir.ancestors().find(|a| a.exists()).filter(|a| !a.is_dir()) {
        return Err(format!(
            "cannot write a report to {}: {} is a file, not a directory",
            path.display(),
            file.display()
        ));
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("cannot write a report to {}: cannot create {}: {e}", path.display(), dir.display()))?;
    let probe = dir.join(format!(".volley-write-check-{}", std::process::id()));
    std::fs::write(&probe, b"")
        .map_err(|e| format!("cannot write a report to {}: {} is not writable: {e}", path.display(), dir.display()))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// Starts `--dashboard` when asked and prints its URL (with the token).
pub fn start_dashboard(args: &RunArgs) -> Result<Option<crate::report::dashboard::Dashboard>, i32> {
    let Some(addr) = args.dashboard else { return Ok(None) };
    match crate::report::dashboard::Dashboard::start(addr) {
        Ok(d) => {
            let reach = if addr.ip().is_loopback() { "" } else { " (not loopback: every request needs the token)" };
            eprintln!("volley: dashboard on {}{reach}", d.url());
            Ok(Some(d))
        }
        Err(e) => {
            eprintln!("error: {e}");
            Err(ExitCode::Usage.code())
        }
    }
}

/// The scripts `args` selects, or the exit code of a usage error (already printed).
pub fn select(args: &RunArgs) -> Result<Vec<crate::suite::ScriptMeta>, i32> {
    let selection = crate::suite::Selection { tags: args.tags.clone(), ids: args.ids.clone() };
    match crate::suite::select(&args.paths, &selection) {
        Ok(s) if s.is_empty() => {
            eprintln!("error: no scripts selected; hint: `volley list PATH` shows ids and tags");
            Err(ExitCode::Usage.code())
        }
        Ok(s) => Ok(s),
        Err(e) => {
            eprintln!("error: {e}");
            Err(ExitCode::Usage.code())
        }
    }
}

/// Starts the simulator when asked and gathers the scripts' environment (`-e` wins).
pub fn prepare_env(args: &RunArgs) -> Result<(Option<crate::sim::SimHandle>, HashMap<String, String>), i32> {
    let user_env: HashMap<String, String> = args.env.iter().cloned().collect();
    let mut env: HashMap<String, String> = HashMap::new();
    let sim = if args.sim {
        let amqp = user_env
            .get("AMQP_URL")
            .cloned()
            .or_else(|| std::env::var("AMQP_URL").ok())
            .unwrap_or_else(|| DEFAULT_AMQP_URL.to_string());
        let broker = broker_answers(&amqp).then_some(amqp.as_str());
        match start_sim(&args.sim_preset, args.sim_seed, broker) {
            Ok((sim, values)) => {
                let path = if broker.is_some() {
                    "alert path through RabbitMQ"
                } else {
                    "alert path in memory (no broker answered)"
                };
                eprintln!(
                    "volley: simulator ({}, seed {}) on {}, {path}",
                    args.sim_preset,
                    args.sim_seed,
                    sim.base_url()
                );
                env.extend(values);
                if broker.is_some() {
                    env.insert("AMQP_URL".into(), amqp.clone());
                }
                Some(sim)
            }
            Err(e) => {
                eprintln!("error: {e}");
                return Err(ExitCode::Usage.code());
            }
        }
    } else {
        None
    };
    env.extend(user_env);
    Ok((sim, env))
}

/// Runs the scripts in order, printing each summary (and the suite table for several).
/// A script that cannot start ends a single-script run with its exit code.
pub fn run_scripts(
    args: &RunArgs,
    scripts: Vec<crate::suite::ScriptMeta>,
    env: &HashMap<String, String>,
    stop: &Arc<Stop>,
    dashboard: Option<&crate::report::dashboard::Dashboard>,
) -> Result<Outcome, i32> {
    let workers = args.workers.map(usize::from).unwrap_or_else(crate::engine::run::default_workers);
    let suite = scripts.len() > 1;
    let mut results = Vec::new();
    let (overrides, file_level) = match args.overrides().and_then(|o| Ok((o, args.file_level()?))) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: {e}");
            return Err(ExitCode::Usage.code());
        }
    };
    let mut output_failed = false;
    let slo = match args.slo.as_deref().map(|p| engine::slo::load(p, args.environment.as_deref())).transpose() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: --slo: {e}");
            return Err(ExitCode::Usage.code());
        }
    };
    let bands = slo.as_ref().map(|s| s.bands).unwrap_or_default();
    let baseline = match args.baseline.as_deref().map(crate::report::json::read).transpose() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: --baseline: {e}");
            return Err(ExitCode::Usage.code());
        }
    };
    for meta in scripts {
        if suite {
            println!("\n━━ {} {} ({})", meta.id, meta.title, meta.path.display());
        }
        let (live, mut listeners): (Vec<_>, Vec<_>) =
            crate::report::start_live(&args.outs, &meta.id).into_iter().unzip();
        if let Some(d) = dashboard {
            listeners.push(d.begin_run(&meta.id, &meta.path.display().to_string(), stop.clone()));
        }
        let (agents, mut local) = match agents_for(args, workers) {
            Ok(v) => v,
            Err(e) => {
                eprintln!("error: {e}");
                return Err(ExitCode::Usage.code());
            }
        };
        let config = RunConfig {
            agents,
            script: meta.path.clone(),
            env: env.clone(),
            workers,
            time_scale: args.time_scale,
            progress: args.progress,
            stop: stop.clone(),
            listeners,
            seed: args.seed,
            overrides: overrides.clone(),
            level_name: args.level.clone(),
            level: file_level.clone(),
        };
        let outcome = engine::run(&config);
        drop(config);
        if let Some(l) = local.as_mut() {
            l.stop();
        }
        live.into_iter().for_each(crate::report::prometheus::LivePush::stop);
        let result = match outcome {
            Ok(mut report) => {
                let run_meta = crate::report::RunMeta {
                    id: meta.id.clone(),
                    script: meta.path.display().to_string(),
                    target: env.get("BASE_URL").map(|u| crate::secret::redact_url(u).into_owned()),
                    time_scale: args.time_scale,
                    version: env!("CARGO_PKG_VERSION").to_string(),
                    bands,
                };
                // One verdict: the SLO file's thresholds and the baseline join the
                // script's criteria before anything is printed or written.
                if let Some(slo) = &slo {
                    let extra = engine::judge::thresholds(
                        &report.aggregate,
                        &slo.thresholds,
                        &report.phases,
                        report.elapsed,
                        None,
                    );
                    report.thresholds.extend(extra);
                }
                if let Some(base) = baseline.as_ref().filter(|b| !suite || b.id == meta.id) {
                    let doc = crate::report::json::document(&report, &run_meta);
                    let c = crate::report::compare::compare(base, &doc, args.limits.limits());
                    let file = args.baseline.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
                    let rendered = crate::report::compare::render(&c, &file, "this run");
                    report.baseline = Some(engine::Baseline { file, rendered, regressed: c.regressed() });
                }
                report.judge();
                print!("{}", crate::report::summary::render(&report));
                print!("{}", bands.render(&report.requests));
                let mut all_written = Vec::new();
                for spec in &args.outs {
                    // A panic while writing one output (a bug) fails the run and leaves
                    // the other outputs to be written.
                    let written = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        spec.for_script(suite.then_some(meta.id.as_str())).finish(&report, &run_meta)
                    }))
                    .unwrap_or_else(|panic| {
                        let what = crate::engine::panic_text(panic.as_ref());
                        Err(format!("internal error: {what} (a bug in volley: please report it)"))
                    });
                    match written {
                        Ok(written) => {
                            eprintln!("volley: {} written to {}", spec.kind, written.join(", "));
                            all_written.extend(written);
                        }
                        // A Pushgateway that is down must not turn a verdict into a usage
                        // error: warn. A file that cannot be written is the user's to fix.
                        Err(e) if spec.kind == "prometheus" => eprintln!("volley: --out prometheus failed: {e}"),
                        Err(e) => {
                            eprintln!("error: --out {}: {e}", spec.kind);
                            output_failed = true;
                        }
                    }
                }
                if let Some(dir) = &args.agent_out {
                    match write_agent_parts(dir, &mut report, &run_meta) {
                        Ok(files) if !files.is_empty() => {
                            eprintln!("volley: each agent's results written to {}", files.join(", "));
                        }
                        Ok(_) => {}
                        Err(e) => {
                            eprintln!("error: --agent-out: {e}");
                            output_failed = true;
                        }
                    }
                }
                if let Some(d) = dashboard {
                    d.finish_run(&mut report, &run_meta, all_written);
                }
                if let Some(url) = &args.notify {
                    match crate::report::notify::notify(url, &report, &run_meta) {
                        // A webhook's path is its secret (Slack's is): the origin only.
                        Ok(true) => eprintln!("volley: failure notified to {}", webhook_origin(url)),
                        Ok(false) => {}
                        Err(e) => eprintln!(
                            "volley: --notify failed: {}",
                            e.replace(url.as_str(), &format!("{}/***", webhook_origin(url)))
                        ),
                    }
                }
                crate::report::suite::ScriptResult::from_report(meta, report)
            }
            Err(failure) => {
                eprint!("{}", failure.rendered);
                if let Some(d) = dashboard {
                    d.fail_run();
                }
                if !suite {
                    return Err(failure.exit.code());
                }
                crate::report::suite::ScriptResult::not_started(meta, failure.rendered)
            }
        };
        let interrupted = result.verdict == crate::report::suite::Verdict::Interrupted;
        results.push(result);
        if interrupted {
            break;
        }
    }
    if suite {
        print!("{}", crate::report::suite::render_table(&results, args.time_scale));
    }
    Ok(Outcome { results, output_failed })
}

/// What a run of the selected scripts produced.
pub struct Outcome {
    /// One result per script, in order.
    pub results: Vec<crate::report::suite::ScriptResult>,
    /// An `--out` file could not be written.
    pub output_failed: bool,
}

/// Writes `--junit` and `--json`: each is tried, whatever became of the other; returns
/// what could not be written.
fn write_outputs(
    junit: &Option<PathBuf>,
    json: &Option<PathBuf>,
    results: &[crate::report::suite::ScriptResult],
    time_scale: f64,
    elapsed: std::time::Duration,
) -> Vec<String> {
    let mut failed = Vec::new();
    if let Some(path) = junit
        && let Err(e) = crate::report::write_file(path, &crate::report::junit::render(results, "volley", time_scale))
    {
        failed.push(e);
    }
    if let Some(path) = json {
        let doc = crate::report::suite::to_json(results, time_scale, elapsed);
        if let Err(e) =
            crate::report::write_file(path, &(serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n"))
        {
            failed.push(e);
        }
    }
    failed
}

/// The exit code of a suite: interrupted, then script errors, then failures.
fn suite_exit(results: &[crate::report::suite::ScriptResult]) -> i32 {
    use crate::report::suite::Verdict;
    let any = |v: Verdict| results.iter().any(|r| r.verdict == v);
    if let [only] = results
        && let Some(r) = only.report.as_ref()
    {
        return r.exit.code();
    }
    let code = if any(Verdict::Interrupted) {
        ExitCode::Interrupted
    } else if any(Verdict::Error) {
        ExitCode::ScriptError
    } else if any(Verdict::Failed) {
        ExitCode::Failed
    } else {
        ExitCode::Passed
    };
    code.code()
}

static CTRL_C: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The run a signal stops. Signals are process-wide, so the handler needs one place to
/// look; it holds only a stop handle, never run state.
static SIGNAL_TARGET: std::sync::Mutex<Option<Arc<Stop>>> = std::sync::Mutex::new(None);

/// Whether the user pressed Ctrl-C (or sent SIGTERM).
pub fn stop_requested() -> bool {
    CTRL_C.load(std::sync::atomic::Ordering::SeqCst)
}

/// Makes Ctrl-C / SIGTERM stop `stop`'s run (None: exit at once).
pub fn set_signal_target(stop: Option<Arc<Stop>>) {
    *SIGNAL_TARGET.lock().unwrap_or_else(|e| e.into_inner()) = stop;
}

/// Installs the Ctrl-C / SIGTERM handler: the first signal interrupts the run (the
/// summary is still printed), a second one exits at once.
pub fn install_signal_handler() {
    let _ = ctrlc::set_handler(|| {
        let target = SIGNAL_TARGET.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match target {
            Some(stop) if !CTRL_C.swap(true, std::sync::atomic::Ordering::SeqCst) => {
                stop.interrupt();
                eprintln!("\nvolley: interrupted, finishing up (Ctrl-C again to quit at once)");
            }
            _ => std::process::exit(ExitCode::Interrupted.code()),
        }
    });
}

/// The agents a run uses: `--agent` addresses, or `--local-agents N` started here (kept
/// alive by the returned handle).
fn agents_for(
    args: &RunArgs,
    workers: usize,
) -> Result<(Option<crate::distributed::AgentsConfig>, Option<crate::distributed::local::LocalAgents>), String> {
    if let Some(n) = args.local_agents {
        let n = usize::from(n);
        let each = args.workers.map(usize::from).unwrap_or_else(|| (workers / n).max(1));
        let local = crate::distributed::local::LocalAgents::spawn(n, each)?;
        let config = crate::distributed::AgentsConfig {
            addrs: local.addrs.clone(),
            token: local.token.clone(),
            wait: args.agent_wait,
            workers: Some(each),
        };
        return Ok((Some(config), Some(local)));
    }
    if args.agents.is_empty() {
        return Ok((None, None));
    }
    let token = args.token.clone().filter(|t| !t.is_empty()).ok_or(
        "--agent needs the agents' token: --token T or VOLLEY_TOKEN; hint: the same one each `volley agent` was started with",
    )?;
    let config = crate::distributed::AgentsConfig {
        addrs: args.agents.clone(),
        token,
        wait: args.agent_wait,
        workers: args.workers.map(usize::from),
    };
    Ok((Some(config), None))
}

/// Writes each agent's own results as a volley.run/1 document.
fn write_agent_parts(
    dir: &std::path::Path,
    report: &mut engine::RunReport,
    meta: &crate::report::RunMeta,
) -> Result<Vec<String>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let count = report.agents.len();
    let mut written = Vec::new();
    for i in 0..count {
        let part = report.agent_part(i);
        let doc = crate::report::json::document(&part, meta);
        let path = dir.join(format!("agent-{}-of-{count}.json", i + 1));
        let text = serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())?;
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        written.push(path.display().to_string());
    }
    Ok(written)
}
