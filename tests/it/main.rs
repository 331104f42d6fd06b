//! volley's integration tests: one binary, a module per area.

mod amqp;
mod cli;
mod core;
mod diagnostics;
mod engine;
mod examples;
mod load;
mod merge;
mod pz;
mod reports;
mod sim;
mod suite;
mod support;
mod tls;
mod trust;
mod watch;
mod ws;
