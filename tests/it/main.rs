//! volley's integration tests: one binary, a module per area.

mod cli;
mod diagnostics;
mod engine;
mod examples;
mod pz;
mod sim;
mod support;
mod tls;
