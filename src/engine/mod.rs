//! Orchestration of one run: load the script, start the workers, evaluate the top
//! level (which runs phases), judge thresholds and assertions, and hand the result to
//! the reports. Depends on `executor`, `script`, `report` and `metrics`.

pub mod judge;
pub mod live;
pub mod phase;
pub mod progress;
pub mod run;
pub mod slo;
pub mod stack;
pub mod vu;
pub mod worker;

pub use run::{Baseline, ExitCode, RunConfig, RunReport, panic_text, run};
