//! Load profiles ("executors", in k6's word): each one reads a phase's options, reports
//! every problem with them at once, and describes what it wants as pure data — a VU count
//! over time ([`ClosedPlan`]) or a rate over time with exact arrival times ([`OpenPlan`]).
//! No clock, no runtime, no Rhai: the engine turns a plan into VUs, and tests check plans
//! as values.

mod closed;
mod open;

pub use closed::{ClosedPlan, Iterations, VuStage};
pub use open::{OpenPlan, RateStage};
