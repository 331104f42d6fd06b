//! Load profiles ("executors", in k6's word): each one reads a phase's options, reports
//! every problem with them at once, and describes what it wants as pure data — a VU count
//! over time ([`ClosedPlan`]), a rate over time with exact arrival times ([`OpenPlan`]),
//! or a series of bursts ([`BurstPlan`]). No clock, no runtime, no Rhai: the engine turns
//! a plan into VUs, and tests check plans as values.
//!
//! One file per profile; `options` holds the shared option reader; `capacity` what the
//! machine can hold (it alone reads the machine: `/proc`, `getrlimit`). Imports only
//! `crate::duration`, serde_json, thiserror (and rlimit, in `capacity`).

mod bursts;
pub mod capacity;
mod closed;
mod constant_arrival_rate;
mod constant_vus;
mod open;
mod options;
pub mod overrides;
mod per_vu_iterations;
mod ramping_arrival_rate;
mod ramping_vus;
pub mod segment;
mod shared_iterations;

use std::time::Duration;

use serde_json::{Map, Value};

pub use bursts::{BurstPlan, Bursts};
pub use closed::{ClosedPlan, Iterations, VuStage};
pub use constant_arrival_rate::ConstantArrivalRate;
pub use constant_vus::ConstantVus;
pub use open::{OpenPlan, RateStage};
pub use overrides::Overrides;
pub use per_vu_iterations::PerVuIterations;
pub use ramping_arrival_rate::RampingArrivalRate;
pub use ramping_vus::RampingVus;
pub use shared_iterations::SharedIterations;

/// The `executor` names, in the order they are listed in messages.
pub const NAMES: [&str; 7] = [
    SharedIterations::NAME,
    PerVuIterations::NAME,
    ConstantVus::NAME,
    RampingVus::NAME,
    ConstantArrivalRate::NAME,
    RampingArrivalRate::NAME,
    Bursts::NAME,
];

/// The canonical option keys of the executor called `name`.
pub(crate) fn keys_of(name: &str) -> Option<&'static [&'static str]> {
    Some(match name {
        SharedIterations::NAME => SharedIterations::KEYS,
        PerVuIterations::NAME => PerVuIterations::KEYS,
        ConstantVus::NAME => ConstantVus::KEYS,
        RampingVus::NAME => RampingVus::KEYS,
        ConstantArrivalRate::NAME => ConstantArrivalRate::KEYS,
        RampingArrivalRate::NAME => RampingArrivalRate::KEYS,
        Bursts::NAME => Bursts::KEYS,
        _ => return None,
    })
}

/// One problem with the options, located by key path, e.g. `stages[1].duration`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct OptionError {
    /// Where the problem is: the key as the user wrote it, with a path into lists and maps.
    pub key: String,
    /// What is wrong, quoting the offending value.
    pub message: String,
    /// How to fix it, when there is something useful to say.
    pub hint: Option<String>,
    /// The key itself is the problem (unknown, or given twice), not its value: `check`
    /// points at the key.
    pub about_key: bool,
}

impl OptionError {
    pub(crate) fn new(key: &str, message: impl Into<String>, hint: Option<String>) -> Self {
        OptionError { key: key.to_string(), message: message.into(), hint, about_key: false }
    }

    /// An error about the key itself (unknown, or given twice).
    pub(crate) fn bad_key(key: &str, message: impl Into<String>, hint: Option<String>) -> Self {
        OptionError { about_key: true, ..OptionError::new(key, message, hint) }
    }
}

/// A phase's load profile, parsed and validated.
#[derive(Debug, Clone, PartialEq)]
pub enum Executor {
    /// A fixed number of iterations shared among VUs.
    SharedIterations(SharedIterations),
    /// A fixed number of iterations for each VU.
    PerVuIterations(PerVuIterations),
    /// A fixed number of VUs looping for a duration.
    ConstantVus(ConstantVus),
    /// A VU count following stages.
    RampingVus(RampingVus),
    /// Iterations started at a fixed rate.
    ConstantArrivalRate(ConstantArrivalRate),
    /// Iterations started at a rate following stages.
    RampingArrivalRate(RampingArrivalRate),
    /// Groups of concurrent iterations with pauses between them.
    Bursts(Bursts),
}

/// What an executor asks the engine to do, as data.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Plan {
    /// VUs loop over iterations; their number follows the plan.
    Closed(ClosedPlan),
    /// Iterations start at the plan's arrival times, each on a free VU.
    Open(OpenPlan),
    /// Groups of iterations start together.
    Bursts(BurstPlan),
}

impl Executor {
    /// Parses and validates a phase's options (the script's map converted to JSON).
    /// Reports every problem at once, each located by key.
    pub fn from_options(opts: &Map<String, Value>) -> Result<Executor, Vec<OptionError>> {
        let listed = || format!("executors: {}", NAMES.join(", "));
        let name = match opts.get("executor") {
            Some(Value::String(name)) => name.as_str(),
            Some(other) => {
                let message = format!("expected the name of an executor, got {}", options::quote(other));
                return Err(with_unknown_keys(opts, OptionError::new("executor", message, Some(listed()))));
            }
            None => {
                return Err(with_unknown_keys(opts, OptionError::new("executor", "is required", Some(listed()))));
            }
        };
        match name {
            SharedIterations::NAME => SharedIterations::read(opts).map(Executor::SharedIterations),
            PerVuIterations::NAME => PerVuIterations::read(opts).map(Executor::PerVuIterations),
            ConstantVus::NAME => ConstantVus::read(opts).map(Executor::ConstantVus),
            RampingVus::NAME => RampingVus::read(opts).map(Executor::RampingVus),
            ConstantArrivalRate::NAME => ConstantArrivalRate::read(opts).map(Executor::ConstantArrivalRate),
            RampingArrivalRate::NAME => RampingArrivalRate::read(opts).map(Executor::RampingArrivalRate),
            Bursts::NAME => Bursts::read(opts).map(Executor::Bursts),
            unknown => {
                let hint = match options::did_you_mean(unknown, &NAMES) {
                    Some(best) => format!("did you mean `{best}`? {}", listed()),
                    None => listed(),
                };
                let message = format!("unknown executor {}", options::quote(&Value::from(unknown)));
                Err(with_unknown_keys(opts, OptionError::new("executor", message, Some(hint))))
            }
        }
    }

    /// Parses and validates a phase's options as `volley run` and `volley check` both do:
    /// the profile's options ([`Executor::from_options`]), then whether this machine can
    /// hold the VUs it asks for ([`capacity`]). Every problem is reported at once.
    pub fn validate(opts: &Map<String, Value>) -> Result<Executor, Vec<OptionError>> {
        Executor::validate_with(opts, &capacity::Limits::of_this_machine())
    }

    /// [`Executor::validate`] against given machine limits.
    pub fn validate_with(opts: &Map<String, Value>, limits: &capacity::Limits) -> Result<Executor, Vec<OptionError>> {
        let executor = Executor::from_options(opts)?;
        let (vus, key) = capacity::vu_demand(&executor, opts);
        let errors = capacity::check(vus, key, limits);
        if errors.is_empty() { Ok(executor) } else { Err(errors) }
    }

    /// The executor's name as scripts write it, e.g. `"constant-arrival-rate"`.
    pub fn name(&self) -> &'static str {
        match self {
            Executor::SharedIterations(_) => SharedIterations::NAME,
            Executor::PerVuIterations(_) => PerVuIterations::NAME,
            Executor::ConstantVus(_) => ConstantVus::NAME,
            Executor::RampingVus(_) => RampingVus::NAME,
            Executor::ConstantArrivalRate(_) => ConstantArrivalRate::NAME,
            Executor::RampingArrivalRate(_) => RampingArrivalRate::NAME,
            Executor::Bursts(_) => Bursts::NAME,
        }
    }

    /// What the executor asks the engine to do.
    pub fn plan(&self) -> Plan {
        match self {
            Executor::SharedIterations(e) => Plan::Closed(e.plan()),
            Executor::PerVuIterations(e) => Plan::Closed(e.plan()),
            Executor::ConstantVus(e) => Plan::Closed(e.plan()),
            Executor::RampingVus(e) => Plan::Closed(e.plan()),
            Executor::ConstantArrivalRate(e) => Plan::Open(e.plan()),
            Executor::RampingArrivalRate(e) => Plan::Open(e.plan()),
            Executor::Bursts(e) => Plan::Bursts(e.plan()),
        }
    }

    /// Time-scaling for CI (`--time-scale F`, typically 0 < F <= 1): every duration and
    /// every iteration or burst count is multiplied by `factor` (counts rounded, at least
    /// 1; durations rounded to the nanosecond, at least 1ms unless they were zero); rates,
    /// VU counts and burst sizes are unchanged. shared-iterations keeps at least one
    /// iteration per VU so the result still validates. A factor that is not a finite
    /// number > 0 leaves the executor unchanged.
    pub fn scaled(&self, factor: f64) -> Executor {
        if !(factor.is_finite() && factor > 0.0) {
            return self.clone();
        }
        match self {
            Executor::SharedIterations(e) => Executor::SharedIterations(e.scaled(factor)),
            Executor::PerVuIterations(e) => Executor::PerVuIterations(e.scaled(factor)),
            Executor::ConstantVus(e) => Executor::ConstantVus(e.scaled(factor)),
            Executor::RampingVus(e) => Executor::RampingVus(e.scaled(factor)),
            Executor::ConstantArrivalRate(e) => Executor::ConstantArrivalRate(e.scaled(factor)),
            Executor::RampingArrivalRate(e) => Executor::RampingArrivalRate(e.scaled(factor)),
            Executor::Bursts(e) => Executor::Bursts(e.scaled(factor)),
        }
    }

    /// Nominal duration (for `volley list` and progress), without graceful stops: the
    /// stages' length, the `duration`, `max_duration` for iteration-based executors, and
    /// for bursts the longest they can take (every burst running to `max_duration`).
    pub fn nominal_duration(&self) -> Duration {
        match self {
            Executor::SharedIterations(e) => e.max_duration,
            Executor::PerVuIterations(e) => e.max_duration,
            Executor::ConstantVus(e) => e.duration,
            Executor::RampingVus(e) => e.plan().duration,
            Executor::ConstantArrivalRate(e) => e.duration,
            Executor::RampingArrivalRate(e) => e.plan().duration,
            Executor::Bursts(e) => e.plan().nominal_duration(),
        }
    }

    /// The most VUs this executor can have at once.
    pub fn max_vus(&self) -> u64 {
        match self {
            Executor::SharedIterations(e) => e.vus,
            Executor::PerVuIterations(e) => e.vus,
            Executor::ConstantVus(e) => e.vus,
            Executor::RampingVus(e) => e.plan().max_vus,
            Executor::ConstantArrivalRate(e) => e.max_vus,
            Executor::RampingArrivalRate(e) => e.max_vus,
            Executor::Bursts(e) => e.size,
        }
    }
}

/// `error`, plus an error for every key no executor accepts: when the executor itself is
/// wrong, typos elsewhere are still worth reporting in the same run.
fn with_unknown_keys(opts: &Map<String, Value>, error: OptionError) -> Vec<OptionError> {
    let mut all_keys: Vec<&'static str> = NAMES.iter().filter_map(|n| keys_of(n)).flatten().copied().collect();
    all_keys.sort_unstable();
    all_keys.dedup();
    let mut errors = vec![error];
    for key in opts.keys().filter(|k| !all_keys.contains(&options::canonical(k))) {
        let hint = options::did_you_mean(key, &all_keys).map(|best| format!("did you mean `{best}`?"));
        errors.push(OptionError::bad_key(key, "unknown option for any executor", hint));
    }
    errors
}

/// `d` times `factor`, rounded to the nanosecond; a non-zero duration stays at least 1ms
/// (or itself, when already shorter).
pub(crate) fn scale_duration(d: Duration, factor: f64) -> Duration {
    if d.is_zero() {
        return d;
    }
    let nanos = (d.as_nanos() as f64 * factor).round().min(u64::MAX as f64);
    Duration::from_nanos(nanos as u64).max(Duration::from_millis(1).min(d))
}

/// `n` times `factor`, rounded, at least 1.
pub(crate) fn scale_count(n: u64, factor: f64) -> u64 {
    ((n as f64 * factor).round().min(u64::MAX as f64) as u64).max(1)
}

/// The graceful stop every executor accepts, k6's default 30s.
pub(crate) const DEFAULT_GRACEFUL_STOP: Duration = Duration::from_secs(30);

#[cfg(test)]
mod tests;

/// The text of a phase's option errors as scripts see them: the message (one line per
/// problem) and the hints joined, or None.
pub fn describe_errors(phase: &str, errors: &[OptionError]) -> (String, Option<String>) {
    let mut message = format!(
        "phase {phase:?}: invalid options ({} problem{})",
        errors.len(),
        if errors.len() == 1 { "" } else { "s" }
    );
    // One problem keeps its hint as it is. Several: their "did you mean"s together, each
    // for its key, then each other hint once (unknown keys share the list of valid ones).
    let mut means: Vec<String> = Vec::new();
    let mut hints: Vec<String> = Vec::new();
    for e in errors {
        message.push_str(&format!("\n  - {e}"));
        let Some(h) = &e.hint else { continue };
        let (mean, rest) = match h.strip_prefix("did you mean ").filter(|_| errors.len() > 1) {
            Some(rest) => match rest.split_once("? ") {
                Some((near, rest)) => (Some(near), Some(rest)),
                None => (Some(rest.trim_end_matches('?')), None),
            },
            None => (None, Some(h.as_str())),
        };
        if let Some(near) = mean {
            means.push(format!("{near} for {}", e.key));
        }
        if let Some(rest) = rest.filter(|r| !hints.iter().any(|h| h == r)) {
            hints.push(rest.to_string());
        }
    }
    let hint = match (means.is_empty(), hints.is_empty()) {
        (true, true) => None,
        (true, false) => Some(hints.join("; ")),
        (false, true) => Some(format!("did you mean {}?", means.join(", "))),
        (false, false) => Some(format!("did you mean {}? {}", means.join(", "), hints.join("; "))),
    };
    (message, hint)
}

/// The `iteration_timeout` phase option (engine-enforced, not part of a load profile).
/// Reads `iteration_timeout`: "30s", "500ms", or seconds.
pub fn iteration_timeout(value: &serde_json::Value) -> Result<Duration, String> {
    let d = match value {
        serde_json::Value::String(s) => crate::duration::parse_duration(s).map_err(|e| e.to_string())?,
        serde_json::Value::Number(n) => crate::duration::from_seconds(n.as_f64().unwrap_or(f64::NAN))
            .map_err(|reason| format!("{reason}, got {n}"))?,
        other => return Err(format!("expected a duration such as \"30s\", got {other}")),
    };
    if d.is_zero() {
        return Err("must be more than 0".into());
    }
    Ok(d)
}
