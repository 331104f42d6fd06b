//! `volley sim`: runs the built-in simulator in the foreground until Ctrl-C.
//!
//! Settings are layered: the preset (`--preset`, default `healthy`), then the TOML file
//! (`--config`), then individual flags.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;

use crate::sim::{SimConfig, SimHandle, redact_url};

/// Flags of `volley sim`.
#[derive(Debug, Clone, clap::Args)]
pub struct SimArgs {
    /// Address to listen on (127.0.0.1:0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    pub listen: SocketAddr,
    /// RabbitMQ URL: push-to-rabbit publishes real messages (otherwise in memory).
    #[arg(long, value_name = "URL")]
    pub amqp: Option<String>,
    /// TOML file of settings (see docs/simulator.md); its keys override the preset.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Named settings: healthy (default), degraded, overloaded, throttled.
    #[arg(long, value_name = "NAME")]
    pub preset: Option<String>,
    /// latency.base_ms: fixed part of every response time.
    #[arg(long, value_name = "MS")]
    pub latency_ms: Option<f64>,
    /// latency.jitter_ms: uniform random extra latency.
    #[arg(long, value_name = "MS")]
    pub jitter_ms: Option<f64>,
    /// limits.max_in_flight: requests served at once before 503 (0 = no cap).
    #[arg(long, value_name = "N")]
    pub max_in_flight: Option<u32>,
    /// limits.push_rate_per_s: push-to-rabbit token refill rate (0 = no limit).
    #[arg(long, value_name = "PER_S")]
    pub push_rate: Option<f64>,
    /// limits.push_burst: push-to-rabbit token bucket size.
    #[arg(long, value_name = "N")]
    pub push_burst: Option<u32>,
    /// limits.max_live_jobs: running jobs at once before 503 (0 = no cap).
    #[arg(long, value_name = "N")]
    pub max_live_jobs: Option<u32>,
    /// limits.job_idle_expiry_s: a job is removed this long after creation (0 = never).
    #[arg(long, value_name = "SECONDS")]
    pub job_expiry_s: Option<f64>,
    /// faults.error_rate: fraction of requests answered with an injected 500.
    #[arg(long, value_name = "FRACTION")]
    pub error_rate: Option<f64>,
    /// faults.drop_rate: fraction of requests whose connection is closed unanswered.
    #[arg(long, value_name = "FRACTION")]
    pub drop_rate: Option<f64>,
    /// alerts.processing_delay_ms: time from consuming an alert to storing it.
    #[arg(long, value_name = "MS")]
    pub processing_delay_ms: Option<f64>,
    /// focus.delete_job_returns_404: answer 404 to DELETE /job/{id}, as the real server.
    #[arg(long)]
    pub delete_job_404: bool,
    /// alerts.username accepted by the login.
    #[arg(long, value_name = "NAME")]
    pub username: Option<String>,
    /// alerts.password accepted by the login.
    #[arg(long, value_name = "PASSWORD")]
    pub password: Option<String>,
    /// alerts.site_id served by the alerts API.
    #[arg(long, value_name = "ID")]
    pub site_id: Option<String>,
    /// seed: seed of every random draw (jitter, injected errors, drops).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// streams.push_rate_per_s: messages per second on each subscribed WebSocket and
    /// events per second on each SSE stream (a connection's `?rate=` overrides it).
    #[arg(long, value_name = "PER_S")]
    pub stream_rate: Option<f64>,
    /// faults.stream_drop_after: end each stream after the server sent this many messages.
    #[arg(long, value_name = "N")]
    pub stream_drop_after: Option<u64>,
}

impl SimArgs {
    /// The settings these flags select (preset, then file, then flags), validated.
    pub fn to_config(&self) -> anyhow::Result<SimConfig> {
        let mut c = match &self.config {
            Some(path) => SimConfig::from_toml_file_over(path, self.preset.as_deref())?,
            None => SimConfig::preset(self.preset.as_deref().unwrap_or("healthy"))?,
        };
        if let Some(url) = &self.amqp {
            c.amqp_url = Some(url.clone());
        }
        let set = |slot: &mut f64, v: Option<f64>| {
            if let Some(v) = v {
                *slot = v;
            }
        };
        set(&mut c.latency.base_ms, self.latency_ms);
        set(&mut c.latency.jitter_ms, self.jitter_ms);
        set(&mut c.limits.push_rate_per_s, self.push_rate);
        set(&mut c.limits.job_idle_expiry_s, self.job_expiry_s);
        set(&mut c.faults.error_rate, self.error_rate);
        set(&mut c.faults.drop_rate, self.drop_rate);
        set(&mut c.alerts.processing_delay_ms, self.processing_delay_ms);
        set(&mut c.streams.push_rate_per_s, self.stream_rate);
        if let Some(v) = self.stream_drop_after {
            c.faults.stream_drop_after = v;
        }
        if self.latency_ms.is_some() || self.jitter_ms.is_some() {
            // A global latency flag means "every endpoint": drop per-endpoint overrides.
            c.latency.endpoints.clear();
        }
        if let Some(v) = self.max_in_flight {
            c.limits.max_in_flight = v;
        }
        if let Some(v) = self.push_burst {
            c.limits.push_burst = v;
        }
        if let Some(v) = self.max_live_jobs {
            c.limits.max_live_jobs = v;
        }
        if self.delete_job_404 {
            c.focus.delete_job_returns_404 = true;
        }
        if let Some(v) = &self.username {
            c.alerts.username = v.clone();
        }
        if let Some(v) = &self.password {
            c.alerts.password = v.clone();
        }
        if let Some(v) = &self.site_id {
            c.alerts.site_id = v.clone();
        }
        if let Some(v) = self.seed {
            c.seed = v;
        }
        c.validate("command-line flags")?;
        Ok(c)
    }
}

/// Runs `volley sim`: starts the simulator, prints where it is and how it is set, and
/// serves until Ctrl-C.
pub fn execute(args: SimArgs) -> anyhow::Result<()> {
    let config = args.to_config()?;
    let handle = SimHandle::start(config.clone(), args.listen)?;
    let base = handle.base_url();
    let alert_path = match &config.amqp_url {
        Some(url) => format!(
            "RabbitMQ {} (exchange {}, routing key {})",
            redact_url(url),
            config.alerts.exchange,
            config.alerts.routing_key
        ),
        None => "in memory (no --amqp)".to_string(),
    };
    println!("volley sim: listening on {base} (preset {}, seed {})", config.preset, config.seed);
    println!("  focus server  {}", handle.focus_url());
    println!(
        "  alerts API    {}  (site {}, login {}, password hidden)",
        handle.alerts_url(),
        config.alerts.site_id,
        config.alerts.username,
    );
    println!("  alert path    {alert_path}");
    println!("  streams       {}  and  {}", handle.ws_url(), handle.sse_url());
    println!("  stats         {base}/sim/stats  (POST {base}/sim/reset clears them)");
    println!("\nactive settings:\n{}", config.to_toml_redacted());
    println!("press Ctrl-C to stop");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot build the signal runtime")?;
    runtime.block_on(tokio::signal::ctrl_c()).context("cannot listen for Ctrl-C")?;
    println!("volley sim: stopping");
    handle.stop();
    println!("volley sim: stopped");
    Ok(())
}
