//! volley: a load and performance testing engine. Scenarios are Rhai scripts; virtual
//! users run as stackful coroutines on one worker thread per core; samples flow one way
//! from VUs to an aggregator to the outputs.

pub mod cli;
pub mod duration;
pub mod metrics;
pub mod sim;
