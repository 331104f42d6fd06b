//! Metrics: sinks (counter, gauge, rate, trend), series keyed by metric name and tags,
//! per-thread stores drained into one run aggregate, and thresholds. Depends on
//! nothing internal.

pub mod aggregate;
pub mod series;
pub mod sink;
pub mod threshold;

pub use aggregate::{Aggregate, GroupRow, IntervalRow, ThresholdStatus};
pub use series::{DefineError, Metric, Registry, Store, Str, Tags, builtin};
pub use sink::{MetricKind, Sink, Stat, StatError};
pub use threshold::{Condition, Op, Selector, ThresholdError, Verdict};
