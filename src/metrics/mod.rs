//! Metrics: sinks (counter, gauge, rate, trend), series keyed by metric name and tags,
//! per-thread stores that are drained into one aggregator, and thresholds. Depends on
//! nothing internal.

pub mod sink;
pub mod threshold;

pub use sink::{MetricKind, Sink, Stat, StatError};
pub use threshold::{Condition, Op, Selector, ThresholdError, Verdict};
