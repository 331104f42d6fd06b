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
