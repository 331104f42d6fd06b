//! What the script asked to be judged: thresholds (`threshold(...)`) and assertions
//! (`assert(...)`, `expect(...)`). Checks are samples of the `checks` metric instead.

use crate::metrics::threshold::{Condition, Selector};

/// A threshold as declared, with where it came from.
#[derive(Debug, Clone)]
pub struct DeclaredThreshold {
    /// Which series it judges.
    pub selector: Selector,
    /// Its conditions (all must pass).
    pub conditions: Vec<Condition>,
    /// `file:line` of the declaration (or the SLO file).
    pub origin: String,
    /// The test case it belongs to (`test_case(name)`), if any.
    pub case: Option<String>,
    /// `abort_on_fail: true`: judged every second, and the run stops when it fails.
    pub abort_on_fail: bool,
    /// `delay`: how long into the run before `abort_on_fail` may stop it.
    pub delay: std::time::Duration,
    /// The selection had samples when the threshold was declared: its sliding windows
    /// could not be watched from the start.
    pub recorded_before: bool,
}

/// Why a threshold with `abort_on_fail` stopped the run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Abort {
    /// The threshold's selector, e.g. `http_req_duration{phase:peak}`.
    pub selector: String,
    /// The condition that failed, e.g. `p(95) < 300`.
    pub condition: String,
    /// The value that failed it (None: the condition could not be evaluated).
    pub observed: Option<f64>,
    /// Seconds since the run started when it failed.
    pub at_s: f64,
    /// Where the threshold was declared.
    pub origin: String,
}

impl Abort {
    /// One line for summaries and reports: "threshold http_req_duration p(95) < 300
    /// failed at 12s (observed 512.3); the run was stopped".
    pub fn describe(&self) -> String {
        let observed = self.observed.map(|v| format!(" (observed {})", super::core::fmt_num(v))).unwrap_or_default();
        format!(
            "threshold {} {} failed at {}s{observed} ({}): the run was stopped (abort_on_fail)",
            self.selector,
            self.condition,
            super::core::fmt_num((self.at_s * 10.0).round() / 10.0),
            self.origin
        )
    }
}

/// One assertion's outcome.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Assertion {
    /// The script's message.
    pub message: String,
    /// Whether it held.
    pub passed: bool,
    /// Measured vs required, when known (from `expect`).
    pub detail: Option<String>,
    /// `file:line` of the call.
    pub origin: String,
    /// The test case it belongs to (`test_case(name)`), if any.
    pub case: Option<String>,
}

/// The run's thresholds and assertions.
#[derive(Debug, Default)]
pub struct Judge {
    /// Declared thresholds, in order.
    pub thresholds: Vec<DeclaredThreshold>,
    /// Assertions, in the order they ran.
    pub assertions: Vec<Assertion>,
}
