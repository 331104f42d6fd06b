//! volley's integration tests: one binary, a module per area.

mod amqp;
mod bench;
mod canary;
mod cli;
mod compare;
mod convert;
mod core;
mod dashboard;
mod diagnostics;
mod distributed;
mod engine;
mod examples;
mod fuzz;
mod load;
mod merge;
mod pz;
mod reports;
mod sim;
mod stacks;
mod suite;
mod support;
mod tls;
mod trust;
mod watch;
mod ws;
