//! volley: a load and performance testing engine. Scenarios are Rhai scripts; virtual
//! users run as stackful coroutines on worker threads (two per core); samples flow one
//! way from VUs to an aggregator to the outputs.

pub mod allocator;
pub mod bench;
pub mod cli;
pub mod convert;
pub mod distributed;
pub mod duration;
pub mod engine;
pub mod executor;
pub mod metrics;
pub mod proto;
pub mod report;
pub mod script;
pub mod secret;
pub mod sim;
pub mod size;
pub mod suite;
pub mod tagexpr;
