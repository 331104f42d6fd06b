//! Distributed runs: one test across many machines, judged on the exact whole.
//!
//! A coordinator (`volley run SCRIPT --agent HOST:PORT ...`) runs the script's top level
//! once. Each `phase()` is split into execution segments
//! ([`crate::executor::segment`]), one per agent (`volley agent`); the agents run the
//! same script, shipped to them by the coordinator, and stream their drained metric
//! batches back every second. The coordinator merges them into the run's aggregate the
//! way it merges its own threads' batches, so every figure, threshold and report is the
//! one a single machine would compute. Coordinator and agents prove knowledge of a
//! shared token to each other (HMAC challenges; the token never crosses the wire).
//!
//! - [`wire`]: frames, messages, batches on the wire, the token proofs;
//! - [`values`]: captured script values across the wire;
//! - [`bundle`]: the script, modules and data files shipped to agents;
//! - [`agent`] and [`coordinator`]: the two sides; [`local`]: agent processes on this
//!   machine (`--local-agents N`); [`k8s`]: Kubernetes manifests (`volley k8s`).
//!
//! Depends on the engine's worker pool and the script layer; nothing depends on it but
//! the engine's phase runner and the command line.

pub mod agent;
pub mod bundle;
pub mod coordinator;
pub mod k8s;
pub mod local;
pub mod values;
pub mod wire;

pub use coordinator::{Agents, AgentsConfig};
