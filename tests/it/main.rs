//! volley's integration tests: one binary, a module per area.

mod amqp;
mod cli;
mod diagnostics;
mod engine;
mod examples;
mod sim;
mod support;
mod tls;
