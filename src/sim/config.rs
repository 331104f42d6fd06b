//! Simulator settings: the [`SimConfig`] tree, the named presets, loading a TOML file
//! on top of a preset, and validation that names the offending key and value.
//!
//! Imports nothing else from the simulator except [`SimError`] and the endpoint names
//! (for per-endpoint latency keys).

use std::collections::BTreeMap;
use std::fmt::Display;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::error::SimError;
use super::stats::Endpoint;

/// The names accepted by `--preset` and the `preset` key, in documentation order.
pub const PRESETS: [&str; 4] = ["healthy", "degraded", "overloaded", "throttled"];

/// The longest time any setting may give, in seconds (a year): larger values are
/// configuration mistakes, and they would overflow when added to an instant.
pub const MAX_SECONDS: f64 = 365.0 * 24.0 * 3600.0;

/// Seconds of a setting as a Duration, clamped to [0, [`MAX_SECONDS`]] (so adding it to
/// an instant cannot overflow even if validation were skipped, or for values derived
/// from unbounded counts).
pub(super) fn secs(v: f64) -> std::time::Duration {
    std::time::Duration::try_from_secs_f64(v.clamp(0.0, MAX_SECONDS)).unwrap_or_default()
}

/// Every setting of the simulator. `Default` is the `healthy` preset; a TOML file only
/// needs the keys it changes. Durations carry their unit in the key name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimConfig {
    /// The preset these settings started from (informational once loaded).
    pub preset: String,
    /// Seed of every random draw (latency jitter, injected errors, dropped connections):
    /// the same seed and the same request order give the same answers.
    pub seed: u64,
    /// RabbitMQ URL; `None` runs the alert path in memory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amqp_url: Option<String>,
    /// Response latency model.
    pub latency: LatencyConfig,
    /// Capacity limits: in-flight cap, push-to-rabbit rate limit, live jobs.
    pub limits: LimitsConfig,
    /// Injected faults: errors, dropped and refused connections.
    pub faults: FaultsConfig,
    /// Focus Server behaviour.
    pub focus: FocusConfig,
    /// Alerts API and alert path behaviour.
    pub alerts: AlertsConfig,
    /// The streaming service (WebSocket and SSE).
    pub streams: StreamsConfig,
}

/// Latency = `base_ms + U(0, jitter_ms) + growth_ms_per_in_flight * max(0, in_flight -
/// growth_starts_at_in_flight)`, where `in_flight` counts requests being served.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LatencyConfig {
    /// Fixed part of every response time, in milliseconds.
    pub base_ms: f64,
    /// Uniform random extra in `[0, jitter_ms)`.
    pub jitter_ms: f64,
    /// Extra milliseconds per request in flight above `growth_starts_at_in_flight`.
    pub growth_ms_per_in_flight: f64,
    /// Requests in flight served without slowdown.
    pub growth_starts_at_in_flight: u32,
    /// Per-endpoint overrides of `base_ms` / `jitter_ms`, keyed by endpoint name.
    pub endpoints: BTreeMap<String, EndpointLatency>,
}

/// Per-endpoint latency override; an absent field falls back to the global value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointLatency {
    /// Overrides `latency.base_ms` for this endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_ms: Option<f64>,
    /// Overrides `latency.jitter_ms` for this endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jitter_ms: Option<f64>,
}

/// Capacity limits. Zero means "no limit" for every cap and rate here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Requests served at once; above it the answer is 503 with `Retry-After: 1`.
    pub max_in_flight: u32,
    /// Token-bucket refill rate of push-to-rabbit, requests per second.
    pub push_rate_per_s: f64,
    /// Token-bucket size: requests accepted at once after an idle period.
    pub push_burst: u32,
    /// Live (running) jobs at once; above it `POST /configure` answers 503.
    pub max_live_jobs: u32,
    /// A running job is removed this long after its creation (nobody streams from it).
    pub job_idle_expiry_s: f64,
    /// A cancelled job stays visible in `/metadata` this long.
    pub job_finished_ttl_s: f64,
    /// Every this many push-to-rabbit requests, the last `throttle_streak` of them get a
    /// 429 (0 = off): streaks of consecutive 429s that a retry rule alone cannot absorb.
    pub throttle_every: u32,
    /// Length of each 429 streak.
    pub throttle_streak: u32,
    /// `Retry-After` of the odd-numbered streaks (1st, 3rd, ...), in seconds; the
    /// even-numbered ones carry no `Retry-After`, so both client paths run.
    pub throttle_retry_after_s: f64,
}

/// Injected faults; all can also be changed at run time with `POST /sim/fault`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultsConfig {
    /// Fraction of requests answered with `error_status` (after the latency).
    pub error_rate: f64,
    /// Status of injected errors (500..=599).
    pub error_status: u16,
    /// Fraction of requests whose connection is closed without any response.
    pub drop_rate: f64,
    /// Close every connection at once, before any response.
    pub refuse_connections: bool,
    /// Streams (WebSocket and SSE): end each connection after the server has sent this
    /// many messages on it (0 = never). A WebSocket is cut without a close frame unless
    /// `stream_close_code` is set; an SSE response ends (clients reconnect).
    pub stream_drop_after: u64,
    /// WebSocket close code sent when `stream_drop_after` ends a connection (1000-4999);
    /// 0 cuts the connection without a close frame.
    pub stream_close_code: u16,
    /// Streams: every message the server sends waits this long first (a slow server).
    pub stream_delay_ms: f64,
}

/// The streaming service (`/stream/ws` and `/stream/sse`); a connection's query string
/// may override the rate (`?rate=5`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StreamsConfig {
    /// Messages per second pushed on each WebSocket with a subscription, and events per
    /// second on each SSE stream.
    pub push_rate_per_s: f64,
    /// The `retry:` (ms) the SSE endpoint announces at the start of each stream.
    pub sse_retry_ms: u64,
}

impl Default for StreamsConfig {
    fn default() -> Self {
        StreamsConfig { push_rate_per_s: 1.0, sse_retry_ms: 1000 }
    }
}

/// Focus Server behaviour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FocusConfig {
    /// Answer 404 to every `DELETE /job/{id}` and cancel nothing, as the real server does.
    pub delete_job_returns_404: bool,
    /// `highest_channel` of `/channels`; `channels.max` of `/configure` may not exceed it.
    pub number_of_channels: u32,
    /// Pulse repetition rate in Hz (sets frequency resolution and `lines_dt`).
    pub prr_hz: f64,
    /// First stream port handed out; later jobs get the lowest free port above it.
    pub first_stream_port: u16,
    /// Host written into `stream_url`.
    pub stream_host: String,
}

/// Alerts API and alert path behaviour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertsConfig {
    /// The only site id the alerts API answers for (404 otherwise).
    pub site_id: String,
    /// Login user name.
    pub username: String,
    /// Login password.
    pub password: String,
    /// Time between consuming an alert and storing it, in milliseconds.
    pub processing_delay_ms: f64,
    /// Stored alerts kept; the oldest are forgotten beyond it.
    pub max_stored_alerts: u32,
    /// Exchange alerts are published to (topic, durable).
    pub exchange: String,
    /// Routing key of alert reports.
    pub routing_key: String,
    /// Also process messages on the queue that this simulator did not publish (for
    /// example direct publishes); off by default so counts stay exact on a shared broker.
    pub process_foreign_messages: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            preset: "healthy".into(),
            seed: 1,
            amqp_url: None,
            latency: LatencyConfig::default(),
            limits: LimitsConfig::default(),
            faults: FaultsConfig::default(),
            focus: FocusConfig::default(),
            alerts: AlertsConfig::default(),
            streams: StreamsConfig::default(),
        }
    }
}

impl Default for LatencyConfig {
    fn default() -> Self {
        LatencyConfig {
            base_ms: 2.0,
            jitter_ms: 3.0,
            growth_ms_per_in_flight: 0.05,
            growth_starts_at_in_flight: 100,
            endpoints: BTreeMap::from([(
                Endpoint::Configure.name().to_string(),
                EndpointLatency { base_ms: Some(5.0), jitter_ms: Some(10.0) },
            )]),
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_in_flight: 500,
            push_rate_per_s: 200.0,
            push_burst: 300,
            // PZ-14807 creates up to 1500 jobs in 30 s, all alive for 50 s.
            max_live_jobs: 2000,
            job_idle_expiry_s: 50.0,
            job_finished_ttl_s: 120.0,
            throttle_every: 0,
            throttle_streak: 5,
            throttle_retry_after_s: 1.0,
        }
    }
}

impl Default for FaultsConfig {
    fn default() -> Self {
        FaultsConfig {
            error_rate: 0.0,
            error_status: 500,
            drop_rate: 0.0,
            refuse_connections: false,
            stream_drop_after: 0,
            stream_close_code: 0,
            stream_delay_ms: 0.0,
        }
    }
}

impl Default for FocusConfig {
    fn default() -> Self {
        FocusConfig {
            delete_job_returns_404: false,
            number_of_channels: 2222,
            prr_hz: 2000.0,
            first_stream_port: 50051,
            stream_host: "127.0.0.1".into(),
        }
    }
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            site_id: "prisma-210-1000".into(),
            username: "volley".into(),
            password: "volley".into(),
            processing_delay_ms: 20.0,
            max_stored_alerts: 100_000,
            exchange: "prisma".into(),
            routing_key: "Algorithm.AlertReport.MLGround".into(),
            process_foreign_messages: false,
        }
    }
}

impl SimConfig {
    /// The settings of a named preset (`healthy`, `degraded`, `overloaded`).
    pub fn preset(name: &str) -> Result<SimConfig, SimError> {
        let mut c = SimConfig::default();
        match name {
            "healthy" => {}
            "degraded" => {
                // /configure above its latency limits (p95 < 300 ms); everything else
                // (40-140 ms) clearly within the alert limits, so that latency verdicts
                // do not hinge on a few milliseconds; 2 % injected 500s.
                c.latency.base_ms = 40.0;
                c.latency.jitter_ms = 100.0;
                c.latency.growth_ms_per_in_flight = 2.0;
                c.latency.growth_starts_at_in_flight = 20;
                c.latency.endpoints = BTreeMap::from([(
                    Endpoint::Configure.name().to_string(),
                    EndpointLatency { base_ms: Some(150.0), jitter_ms: Some(250.0) },
                )]);
                c.limits.max_in_flight = 200;
                c.limits.push_rate_per_s = 50.0;
                c.limits.push_burst = 100;
                c.limits.max_live_jobs = 500;
                c.faults.error_rate = 0.02;
                c.alerts.processing_delay_ms = 300.0;
            }
            "overloaded" => {
                c.latency.base_ms = 20.0;
                c.latency.jitter_ms = 30.0;
                c.latency.growth_ms_per_in_flight = 25.0;
                c.latency.growth_starts_at_in_flight = 4;
                c.latency.endpoints = BTreeMap::from([(
                    Endpoint::Configure.name().to_string(),
                    EndpointLatency { base_ms: Some(60.0), jitter_ms: Some(60.0) },
                )]);
                c.limits.max_in_flight = 40;
                c.limits.push_rate_per_s = 5.0;
                c.limits.push_burst = 10;
                c.limits.max_live_jobs = 25;
                // Overload shows as limits (429, 503, the job cap, slow answers), not as
                // random faults: its verdicts do not hinge on a few unlucky draws.
                c.faults.error_rate = 0.0;
                // Above the 1 s end-to-end limit of PZ-14962 on its own.
                c.alerts.processing_delay_ms = 1200.0;
            }
            "throttled" => {
                // Healthy, except that every 150th push-to-rabbit request ends a streak
                // of 5 consecutive 429s: the catalog's smart backoff (5 x 429 -> pause
                // 10 s) must run, with Retry-After (1 s) and without, in turn.
                c.limits.throttle_every = 150;
                c.limits.throttle_streak = 5;
                c.limits.throttle_retry_after_s = 1.0;
            }
            other => {
                return Err(SimError::UnknownPreset { name: other.to_string(), known: PRESETS.join(", ") });
            }
        }
        c.preset = name.to_string();
        Ok(c)
    }

    /// Loads a TOML file: its `preset` key (default `healthy`) gives the starting
    /// values and every other key overrides one of them.
    pub fn from_toml_file(path: &Path) -> Result<SimConfig, SimError> {
        Self::from_toml_file_over(path, None)
    }

    /// Like [`SimConfig::from_toml_file`], with the preset chosen on the command line;
    /// a different `preset` key in the file is an error.
    pub fn from_toml_file_over(path: &Path, preset: Option<&str>) -> Result<SimConfig, SimError> {
        let text = std::fs::read_to_string(path)
            .map_err(|cause| SimError::ReadConfig { path: path.display().to_string(), cause })?;
        Self::from_toml_str(&text, &path.display().to_string(), preset)
    }

    /// Parses TOML text; `origin` names the text in errors (usually the file path).
    pub fn from_toml_str(text: &str, origin: &str, preset: Option<&str>) -> Result<SimConfig, SimError> {
        let parse_error = |e: toml::de::Error| {
            let (line, column) = e.span().map(|span| line_column(text, span.start)).unwrap_or((0, 0));
            SimError::ParseConfig { origin: origin.to_string(), line, column, message: e.message().to_string() }
        };
        // Deserializing the text itself reports unknown keys and wrong types with their
        // position; the merge below then cannot fail on them.
        let as_healthy: SimConfig = toml::from_str(text).map_err(parse_error)?;
        let table: toml::Table = toml::from_str(text).map_err(parse_error)?;
        let file_preset = table.get("preset").and_then(|v| v.as_str());
        let base_name = match (preset, file_preset) {
            (Some(cli), Some(file)) if cli != file => {
                return Err(SimError::InvalidSetting {
                    origin: origin.to_string(),
                    key: "preset".into(),
                    value: format!("{file:?}"),
                    hint: format!("--preset {cli} was also given: drop one of them"),
                });
            }
            (Some(name), _) | (None, Some(name)) => name.to_string(),
            (None, None) => "healthy".to_string(),
        };
        let config = if base_name == "healthy" {
            as_healthy
        } else {
            let base = SimConfig::preset(&base_name).map_err(|_| SimError::InvalidSetting {
                origin: origin.to_string(),
                key: "preset".into(),
                value: format!("{base_name:?}"),
                hint: format!("known presets: {}", PRESETS.join(", ")),
            })?;
            let mut merged = toml::Table::try_from(&base).map_err(|e| SimError::ParseConfig {
                origin: origin.to_string(),
                line: 0,
                column: 0,
                message: e.to_string(),
            })?;
            merge(&mut merged, table);
            merged.insert("preset".into(), toml::Value::String(base_name));
            toml::Value::Table(merged).try_into().map_err(parse_error)?
        };
        config.validate(origin)?;
        Ok(config)
    }

    /// Checks value ranges; `origin` says where the values came from (a file, "flags").
    pub fn validate(&self, origin: &str) -> Result<(), SimError> {
        let bad = |key: &str, value: &dyn Display, hint: &str| SimError::InvalidSetting {
            origin: origin.to_string(),
            key: key.to_string(),
            value: value.to_string(),
            hint: hint.to_string(),
        };
        let non_negative = |key: &str, v: f64| {
            if v.is_finite() && v >= 0.0 { Ok(()) } else { Err(bad(key, &v, "use a finite number >= 0")) }
        };
        // Times: finite, >= 0 and at most MAX_SECONDS, so every conversion to a
        // Duration and every `Instant + Duration` stays in range.
        let seconds = |key: &str, v: f64| {
            if v.is_finite() && (0.0..=MAX_SECONDS).contains(&v) {
                Ok(())
            } else {
                Err(bad(key, &v, &format!("use a number of seconds from 0 to {MAX_SECONDS} (a year)")))
            }
        };
        let millis = |key: &str, v: f64| seconds(key, v / 1000.0);
        let fraction = |key: &str, v: f64| {
            if (0.0..=1.0).contains(&v) { Ok(()) } else { Err(bad(key, &v, "use a fraction between 0.0 and 1.0")) }
        };
        let l = &self.latency;
        millis("latency.base_ms", l.base_ms)?;
        millis("latency.jitter_ms", l.jitter_ms)?;
        millis("latency.growth_ms_per_in_flight", l.growth_ms_per_in_flight)?;
        for (name, e) in &l.endpoints {
            if Endpoint::from_name(name).is_none() {
                return Err(bad(
                    &format!("latency.endpoints.{name}"),
                    &format!("{name:?}"),
                    &format!("endpoint names: {}", Endpoint::names().join(", ")),
                ));
            }
            if let Some(v) = e.base_ms {
                millis(&format!("latency.endpoints.{name}.base_ms"), v)?;
            }
            if let Some(v) = e.jitter_ms {
                millis(&format!("latency.endpoints.{name}.jitter_ms"), v)?;
            }
        }
        non_negative("limits.push_rate_per_s", self.limits.push_rate_per_s)?;
        if self.limits.push_rate_per_s > 0.0 && self.limits.push_burst == 0 {
            return Err(bad(
                "limits.push_burst",
                &0,
                "a rate limit needs a burst of at least 1 (or set push_rate_per_s = 0 for no limit)",
            ));
        }
        seconds("limits.job_idle_expiry_s", self.limits.job_idle_expiry_s)?;
        seconds("limits.job_finished_ttl_s", self.limits.job_finished_ttl_s)?;
        seconds("limits.throttle_retry_after_s", self.limits.throttle_retry_after_s)?;
        let l = &self.limits;
        if l.throttle_every > 0 && !(1..l.throttle_every).contains(&l.throttle_streak) {
            return Err(bad(
                "limits.throttle_streak",
                &l.throttle_streak,
                &format!("a streak is 1 to throttle_every - 1 = {} requests long", l.throttle_every - 1),
            ));
        }
        fraction("faults.error_rate", self.faults.error_rate)?;
        fraction("faults.drop_rate", self.faults.drop_rate)?;
        millis("faults.stream_delay_ms", self.faults.stream_delay_ms)?;
        let code = self.faults.stream_close_code;
        if code != 0 && !(1000..=4999).contains(&code) {
            return Err(bad("faults.stream_close_code", &code, "use a WebSocket close code from 1000 to 4999, or 0"));
        }
        non_negative("streams.push_rate_per_s", self.streams.push_rate_per_s)?;
        if self.streams.push_rate_per_s > 10_000.0 {
            return Err(bad("streams.push_rate_per_s", &self.streams.push_rate_per_s, "at most 10000 per connection"));
        }
        if !(500..=599).contains(&self.faults.error_status) {
            return Err(bad("faults.error_status", &self.faults.error_status, "injected errors use a 5xx status"));
        }
        if self.focus.number_of_channels == 0 {
            return Err(bad("focus.number_of_channels", &0, "use at least 1"));
        }
        if !(self.focus.prr_hz.is_finite() && self.focus.prr_hz > 0.0) {
            return Err(bad("focus.prr_hz", &self.focus.prr_hz, "use a rate > 0"));
        }
        if self.focus.first_stream_port == 0 {
            return Err(bad("focus.first_stream_port", &0, "use a port from 1 to 65535"));
        }
        millis("alerts.processing_delay_ms", self.alerts.processing_delay_ms)?;
        for (key, value) in [
            ("alerts.site_id", &self.alerts.site_id),
            ("alerts.username", &self.alerts.username),
            ("alerts.exchange", &self.alerts.exchange),
            ("alerts.routing_key", &self.alerts.routing_key),
        ] {
            if value.is_empty() || value.contains('/') && key == "alerts.site_id" {
                return Err(bad(key, &format!("{value:?}"), "use a non-empty name without '/'"));
            }
        }
        if let Some(url) = &self.amqp_url
            && !(url.starts_with("amqp://") || url.starts_with("amqps://"))
        {
            return Err(bad(
                "amqp_url",
                &format!("{:?}", redact_url(url)),
                "AMQP URLs look like amqp://guest:guest@127.0.0.1:5672/%2f",
            ));
        }
        Ok(())
    }

    /// The settings as TOML (the AMQP and login passwords hidden), for printing at start-up.
    pub fn to_toml_redacted(&self) -> String {
        toml::to_string_pretty(&self.redacted()).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }

    /// A copy safe to show: the AMQP URL's password and the login password are `***`.
    pub fn redacted(&self) -> SimConfig {
        let mut shown = self.clone();
        shown.amqp_url = shown.amqp_url.as_deref().map(redact_url);
        shown.alerts.password = "***".into();
        shown
    }
}

/// `amqp://user:secret@host/` -> `amqp://user:***@host/` (one implementation, in
/// [`crate::proto::amqp::redact`]).
pub use crate::proto::amqp::redact as redact_url;

/// Deep merge of TOML tables: keys of `over` replace those of `base`, tables recurse.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(key, v);
            }
        }
    }
}

/// 1-based line and column of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_healthy_and_every_preset_validates() {
        assert_eq!(SimConfig::default(), SimConfig::preset("healthy").unwrap());
        for name in PRESETS {
            let c = SimConfig::preset(name).unwrap();
            assert_eq!(c.preset, name);
            c.validate("preset").unwrap();
        }
        let o = SimConfig::preset("overloaded").unwrap();
        assert_eq!(o.limits.max_live_jobs, 25);
        let e = SimConfig::preset("fast").unwrap_err().to_string();
        assert!(e.contains("\"fast\"") && e.contains("overloaded"), "{e}");
    }

    #[test]
    fn file_keys_override_the_files_preset() {
        let text = "preset = \"overloaded\"\n[limits]\nmax_live_jobs = 7\n";
        let c = SimConfig::from_toml_str(text, "sim.toml", None).unwrap();
        assert_eq!(c.preset, "overloaded");
        assert_eq!(c.limits.max_live_jobs, 7);
        assert_eq!(c.limits.push_rate_per_s, 5.0, "unset keys keep the preset's value");
        let c = SimConfig::from_toml_str("[faults]\nerror_rate = 0.5\n", "s", None).unwrap();
        assert_eq!(c.limits.max_live_jobs, 2000);
        assert_eq!(c.faults.error_rate, 0.5);
        let c = SimConfig::from_toml_str("", "s", Some("degraded")).unwrap();
        assert_eq!(c, SimConfig::preset("degraded").unwrap());
    }

    #[test]
    fn stream_settings_load_from_a_file_and_are_checked() {
        let text = "[streams]\npush_rate_per_s = 5.0\nsse_retry_ms = 20\n[faults]\nstream_drop_after = 3\n";
        let c = SimConfig::from_toml_str(text, "s.toml", None).unwrap();
        assert_eq!((c.streams.push_rate_per_s, c.streams.sse_retry_ms, c.faults.stream_drop_after), (5.0, 20, 3));
        for (bad, key) in [
            ("[streams]\npush_rate_per_s = -1.0\n", "streams.push_rate_per_s"),
            ("[streams]\npush_rate_per_s = 20000.0\n", "streams.push_rate_per_s"),
            ("[faults]\nstream_close_code = 999\n", "faults.stream_close_code"),
            ("[faults]\nstream_delay_ms = -5.0\n", "faults.stream_delay_ms"),
        ] {
            let e = SimConfig::from_toml_str(bad, "s.toml", None).unwrap_err().to_string();
            assert!(e.contains(key) && e.contains("hint"), "{bad}: {e}");
        }
    }

    #[test]
    fn unknown_key_names_file_line_and_column() {
        let text = "[limits]\nmax_live_jobs = 3\nmax_jobs = 4\n";
        let e = SimConfig::from_toml_str(text, "sim.toml", None).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("sim.toml:3:1"), "{msg}");
        assert!(msg.contains("max_jobs"), "{msg}");
    }

    #[test]
    fn wrong_type_and_bad_range_are_reported_with_the_value() {
        let e =
            SimConfig::from_toml_str("[limits]\nmax_in_flight = \"many\"\n", "a.toml", None).unwrap_err().to_string();
        assert!(e.contains("a.toml:2:17"), "{e}");
        let e = SimConfig::from_toml_str("[faults]\nerror_rate = 1.5\n", "a.toml", None).unwrap_err().to_string();
        assert!(e.contains("faults.error_rate") && e.contains("1.5") && e.contains("hint"), "{e}");
        let e = SimConfig::from_toml_str("[latency.endpoints.nope]\nbase_ms = 1\n", "a", None).unwrap_err().to_string();
        assert!(e.contains("latency.endpoints.nope") && e.contains("configure"), "{e}");
        let e = SimConfig::from_toml_str("preset = \"calm\"\n", "a", None).unwrap_err().to_string();
        assert!(e.contains("\"calm\"") && e.contains("healthy"), "{e}");
        let e = SimConfig::from_toml_str("preset = \"degraded\"\n", "a", Some("overloaded")).unwrap_err().to_string();
        assert!(e.contains("--preset overloaded"), "{e}");
    }

    #[test]
    fn redaction_hides_only_the_password() {
        assert_eq!(redact_url("amqp://guest:guest@127.0.0.1:5672/%2f"), "amqp://guest:***@127.0.0.1:5672/%2f");
        assert_eq!(redact_url("amqp://127.0.0.1:5672"), "amqp://127.0.0.1:5672");
        let c = SimConfig { amqp_url: Some("amqp://u:p4ss@h/".into()), ..SimConfig::default() };
        let shown = c.to_toml_redacted();
        assert!(shown.contains("u:***@h") && !shown.contains("p4ss"), "{shown}");
    }
}
