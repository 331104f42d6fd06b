//! [`SimError`]: everything that can stop the simulator from starting. Request-level
//! problems are not errors here: they become JSON 4xx responses.

use thiserror::Error;

/// Why the simulator could not be configured or started. Each message repeats the
/// offending input and, where one helps, ends with a hint.
#[derive(Debug, Error)]
pub enum SimError {
    /// `--preset` or `preset =` named no preset.
    #[error("unknown simulator preset \"{name}\"\nhint: known presets: {known}")]
    UnknownPreset {
        /// The name given.
        name: String,
        /// Comma-separated known names.
        known: String,
    },
    /// The config file could not be read.
    #[error("cannot read simulator config {path}: {cause}")]
    ReadConfig {
        /// The path given.
        path: String,
        /// The I/O error.
        cause: std::io::Error,
    },
    /// The config file is not valid TOML or has an unknown key or a wrong type.
    #[error("{origin}:{line}:{column}: {message}\nhint: see docs/simulator.md for the config keys")]
    ParseConfig {
        /// The file (or other source) of the text.
        origin: String,
        /// 1-based line, 0 when unknown.
        line: usize,
        /// 1-based column, 0 when unknown.
        column: usize,
        /// The parser's message (names the key).
        message: String,
    },
    /// A setting has a value out of range.
    #[error("{origin}: invalid value {value} for `{key}`\nhint: {hint}")]
    InvalidSetting {
        /// Where the value came from (a file, "flags", "preset").
        origin: String,
        /// Dotted key, e.g. `limits.push_burst`.
        key: String,
        /// The offending value as written.
        value: String,
        /// How to fix it.
        hint: String,
    },
    /// The listen address could not be bound.
    #[error(
        "cannot listen on {addr}: {cause}\nhint: pick another address with --listen (127.0.0.1:0 picks a free port)"
    )]
    Bind {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// The OS error.
        cause: std::io::Error,
    },
    /// The broker could not be reached or refused the login.
    #[error(
        "cannot connect to RabbitMQ at {url}: {cause}\nhint: start RabbitMQ (rabbitmq-server -detached) or run without --amqp to keep the alert path in memory"
    )]
    BrokerConnect {
        /// The URL with its password hidden.
        url: String,
        /// The client's error text.
        cause: String,
    },
    /// The broker was reached but declaring the topology failed.
    #[error("RabbitMQ at {url}: {step} failed: {cause}")]
    BrokerSetup {
        /// The URL with its password hidden.
        url: String,
        /// What was being declared (e.g. "exchange.declare prisma").
        step: String,
        /// The client's error text.
        cause: String,
    },
    /// The simulator's thread or runtime could not be created, or it died while starting.
    #[error("cannot start the simulator: {0}")]
    Startup(String),
}
