//! Reading a phase's options map: key aliases, unknown-key detection with "did you mean",
//! and typed values (whole numbers, rates, durations, stages) that record every problem
//! instead of stopping at the first. Used only by the profile files of this module;
//! imports nothing but `duration` and serde_json.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Map, Value};

use super::OptionError;
use crate::duration::{DURATION_HINT, from_seconds, parse_duration};

/// k6's camelCase spellings, accepted as aliases of our snake_case keys.
const ALIASES: &[(&str, &str)] = &[
    ("preAllocatedVUs", "pre_allocated_vus"),
    ("maxVUs", "max_vus"),
    ("startVUs", "start_vus"),
    ("timeUnit", "time_unit"),
    ("startRate", "start_rate"),
    ("gracefulStop", "graceful_stop"),
    ("gracefulRampDown", "graceful_ramp_down"),
    ("maxDuration", "max_duration"),
];

/// Keys of one stage map, for every staged profile.
const STAGE_KEYS: &[&str] = &["duration", "target"];

/// The canonical key for `key` when it is a known alias, else `key` itself.
pub(crate) fn canonical(key: &str) -> &str {
    ALIASES.iter().find(|(alias, _)| *alias == key).map_or(key, |(_, canon)| canon)
}

/// Formats a user value for a message: JSON text, shortened when long.
pub(crate) fn quote(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 40 {
        let short: String = text.chars().take(37).collect();
        format!("{short}...")
    } else {
        text
    }
}

/// Edit distance between two strings, by characters: insertions, deletions,
/// substitutions and swaps of neighbours each cost 1 (optimal string alignment), so
/// `pasue` is one edit from `pause`.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

/// Lowercase without `_` and `-`, so `maxVus`, `max-vus` and `max_vus` compare equal.
fn fold(s: &str) -> String {
    s.chars().filter(|c| *c != '_' && *c != '-').flat_map(char::to_lowercase).collect()
}

/// The candidate closest to `input`, when it is close enough to be a likely typo.
pub(crate) fn did_you_mean<'c>(input: &str, candidates: &[&'c str]) -> Option<&'c str> {
    let folded = fold(input);
    // Why a third of the length: catches one or two slips in a short word without
    // suggesting `vus` for `rate`.
    let limit = (folded.chars().count() / 3).max(1);
    candidates
        .iter()
        .map(|c| (edit_distance(&folded, &fold(c)), *c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// A hint listing `valid`, led by a suggestion for `input` when one is close.
pub(crate) fn suggestion_hint(input: &str, valid: &[&str], what: &str) -> String {
    let list = valid.join(", ");
    match did_you_mean(input, valid) {
        Some(best) => format!("did you mean `{best}`? {what}: {list}"),
        None => format!("{what}: {list}"),
    }
}

/// What a stage's `target` is: a VU count or an arrival rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TargetKind {
    /// A whole number of VUs, >= 0.
    Vus,
    /// A number of iterations per time unit, >= 0, fractional allowed.
    Rate,
}

/// A stage as read from the options, before the profile turns it into its own type.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct RawStage {
    pub duration: Duration,
    pub target: f64,
}

/// One profile's view of the options map: values by canonical key, and the problems
/// found so far.
pub(crate) struct Reader<'a> {
    executor: &'static str,
    /// Canonical key -> (key as the user wrote it, value).
    values: BTreeMap<&'static str, (&'a str, &'a Value)>,
    errors: Vec<OptionError>,
}

impl<'a> Reader<'a> {
    /// Sorts the keys of `opts` into the ones `executor` accepts (`allowed`, canonical
    /// names) and errors for the rest. `executor` itself is expected in `allowed`.
    pub fn new(executor: &'static str, allowed: &[&'static str], opts: &'a Map<String, Value>) -> Self {
        let mut reader = Reader { executor, values: BTreeMap::new(), errors: Vec::new() };
        for (key, value) in opts {
            let canon = canonical(key);
            let Some(known) = allowed.iter().find(|k| **k == canon) else {
                reader.errors.push(unknown_key(executor, key, allowed));
                continue;
            };
            if let Some((first, _)) = reader.values.get(known) {
                reader.errors.push(OptionError::bad_key(
                    key,
                    format!("given twice, as `{first}` and `{key}`"),
                    Some("keep one of them".to_string()),
                ));
                continue;
            }
            reader.values.insert(known, (key.as_str(), value));
        }
        reader
    }

    /// Records a problem found outside the typed readers.
    pub fn push(&mut self, error: OptionError) {
        self.errors.push(error);
    }

    /// The key as the user wrote it (an alias, perhaps), for messages.
    pub fn written(&self, key: &'static str) -> &str {
        self.values.get(key).map_or(key, |(written, _)| written)
    }

    /// Whether the user set `key` (under any spelling).
    pub fn given(&self, key: &'static str) -> bool {
        self.values.contains_key(key)
    }

    fn take(&mut self, key: &'static str, default_given: bool) -> Option<(String, &'a Value)> {
        match self.values.get(key) {
            Some((written, value)) => Some((written.to_string(), value)),
            None => {
                if !default_given {
                    self.errors.push(self.missing(key));
                }
                None
            }
        }
    }

    fn missing(&self, key: &str) -> OptionError {
        let hint = match key {
            "duration" => Some(DURATION_HINT.to_string()),
            "rate" => Some("iterations started per time_unit (default 1s), e.g. rate: 50".to_string()),
            "stages" => Some("e.g. stages: [#{ duration: \"30s\", target: 10 }]".to_string()),
            _ => None,
        };
        OptionError::new(key, format!("is required by {}", self.executor), hint)
    }

    fn record<T>(&mut self, result: Result<T, OptionError>) -> Option<T> {
        result.map_err(|e| self.errors.push(e)).ok()
    }

    /// A whole number >= `min`; `default` when absent (None: required).
    pub fn count(&mut self, key: &'static str, default: Option<u64>, min: u64) -> Option<u64> {
        match self.take(key, default.is_some()) {
            Some((written, value)) => self.record(count(&written, value, min)),
            None => default,
        }
    }

    /// A number of iterations per second, read as `key` per `time_unit`; >= 0, or > 0
    /// when `positive`. `default` when absent (None: required).
    pub fn rate(&mut self, key: &'static str, default: Option<f64>, positive: bool) -> Option<f64> {
        match self.take(key, default.is_some()) {
            Some((written, value)) => self.record(rate(&written, value, positive)),
            None => default,
        }
    }

    /// A duration (text or seconds); > 0 when `positive`. `default` when absent
    /// (None: required).
    pub fn duration(&mut self, key: &'static str, default: Option<Duration>, positive: bool) -> Option<Duration> {
        match self.take(key, default.is_some()) {
            Some((written, value)) => self.record(duration(&written, value, positive)),
            None => default,
        }
    }

    /// `graceful_stop`, which every executor accepts (default 30s, like k6).
    pub fn graceful_stop(&mut self) -> Option<Duration> {
        self.duration("graceful_stop", Some(super::DEFAULT_GRACEFUL_STOP), false)
    }

    /// A non-empty list of `#{duration, target}` maps with a total duration > 0.
    pub fn stages(&mut self, key: &'static str, kind: TargetKind) -> Option<Vec<RawStage>> {
        let (written, value) = self.take(key, false)?;
        let Value::Array(items) = value else {
            self.errors.push(OptionError::new(
                &written,
                format!("expected a list of stages, got {}", quote(value)),
                Some("e.g. stages: [#{ duration: \"30s\", target: 10 }]".to_string()),
            ));
            return None;
        };
        if items.is_empty() {
            self.errors.push(OptionError::new(
                &written,
                "needs at least one stage",
                Some("e.g. stages: [#{ duration: \"30s\", target: 10 }]".to_string()),
            ));
            return None;
        }
        let before = self.errors.len();
        let mut stages = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            let path = format!("{written}[{index}]");
            if let Some(stage) = self.stage(&path, item, kind) {
                stages.push(stage);
            }
        }
        if self.errors.len() > before {
            return None;
        }
        // Each stage is at most MAX_SECONDS long, but their sum is what plans add to
        // instants: bound it too.
        let total = stages.iter().try_fold(Duration::ZERO, |sum, s| sum.checked_add(s.duration));
        if total.is_none_or(|t| t.as_secs_f64() >= crate::duration::MAX_SECONDS) {
            self.errors.push(OptionError::new(
                &written,
                "the stages last too long in total",
                Some(format!("the whole phase must be shorter than {:e} seconds", crate::duration::MAX_SECONDS)),
            ));
            return None;
        }
        if stages.iter().all(|s| s.duration.is_zero()) {
            self.errors.push(OptionError::new(
                &written,
                "the stages last 0s in total",
                Some("give at least one stage a duration longer than 0".to_string()),
            ));
            return None;
        }
        Some(stages)
    }

    fn stage(&mut self, path: &str, item: &Value, kind: TargetKind) -> Option<RawStage> {
        let Value::Object(map) = item else {
            self.errors.push(OptionError::new(
                path,
                format!("expected a map with duration and target, got {}", quote(item)),
                Some("e.g. #{ duration: \"30s\", target: 10 }".to_string()),
            ));
            return None;
        };
        for key in map.keys().filter(|k| !STAGE_KEYS.contains(&k.as_str())) {
            self.errors.push(OptionError::bad_key(
                &format!("{path}.{key}"),
                "unknown stage option",
                Some(suggestion_hint(key, STAGE_KEYS, "stage options")),
            ));
        }
        let field = |name: &str| (format!("{path}.{name}"), map.get(name));
        let (duration_key, duration_value) = field("duration");
        let stage_duration = match duration_value {
            Some(value) => self.record(duration(&duration_key, value, false)),
            None => self.stage_missing(&duration_key),
        };
        let (target_key, target_value) = field("target");
        let target = match (target_value, kind) {
            (Some(value), TargetKind::Vus) => self.record(count(&target_key, value, 0)).map(|v| v as f64),
            (Some(value), TargetKind::Rate) => self.record(rate(&target_key, value, false)),
            (None, _) => self.stage_missing(&target_key),
        };
        Some(RawStage { duration: stage_duration?, target: target? })
    }

    fn stage_missing<T>(&mut self, key: &str) -> Option<T> {
        self.errors.push(OptionError::new(key, "is required in every stage", None));
        None
    }

    /// The profile built from the values read, or every problem recorded.
    pub fn finish<T>(self, built: Option<T>) -> Result<T, Vec<OptionError>> {
        match built {
            Some(value) if self.errors.is_empty() => Ok(value),
            // A None without a recorded error would be a bug in a profile; say so rather
            // than return an empty error list.
            _ if self.errors.is_empty() => Err(vec![OptionError::new(
                "executor",
                format!("{} could not be built from these options", self.executor),
                None,
            )]),
            _ => Err(self.errors),
        }
    }
}

/// The error for a key `executor` does not accept.
fn unknown_key(executor: &str, key: &str, allowed: &[&'static str]) -> OptionError {
    let owners: Vec<&str> = super::NAMES
        .iter()
        .copied()
        .filter(|name| super::keys_of(name).is_some_and(|keys| keys.contains(&canonical(key))))
        .collect();
    let message = if owners.is_empty() {
        format!("unknown option for {executor}")
    } else {
        format!("not an option of {executor} (it belongs to {})", owners.join(", "))
    };
    OptionError::bad_key(key, message, Some(suggestion_hint(key, allowed, &format!("options of {executor}"))))
}

/// A whole number >= `min`; integral floats (`10.0`) are accepted.
pub(crate) fn count(key: &str, value: &Value, min: u64) -> Result<u64, OptionError> {
    let wrong = || OptionError::new(key, format!("expected a whole number, got {}", quote(value)), None);
    let Value::Number(number) = value else {
        return Err(wrong());
    };
    let below = || OptionError::new(key, format!("must be at least {min}, got {}", quote(value)), None);
    let n = if let Some(n) = number.as_u64() {
        n
    } else if number.as_i64().is_some() {
        return Err(below()); // a negative integer
    } else {
        let f = number.as_f64().ok_or_else(wrong)?;
        if f.fract() != 0.0 || !f.is_finite() {
            return Err(wrong());
        }
        if f < 0.0 {
            return Err(below());
        }
        // Why 2^53: beyond it a float no longer names one whole number.
        if f >= 9.007_199_254_740_992e15 {
            return Err(OptionError::new(key, format!("is too large, got {}", quote(value)), None));
        }
        f as u64
    };
    if n < min {
        return Err(below());
    }
    Ok(n)
}

/// A finite number >= 0, or > 0 when `positive`.
pub(crate) fn rate(key: &str, value: &Value, positive: bool) -> Result<f64, OptionError> {
    let Some(f) = value.as_f64().filter(|f| f.is_finite()) else {
        return Err(OptionError::new(key, format!("expected a number, got {}", quote(value)), None));
    };
    match (positive, f) {
        (true, f) if f <= 0.0 => {
            Err(OptionError::new(key, format!("must be greater than 0, got {}", quote(value)), None))
        }
        (false, f) if f < 0.0 => {
            Err(OptionError::new(key, format!("must not be negative, got {}", quote(value)), None))
        }
        _ => Ok(f),
    }
}

/// A duration written as text (`"50ms"`) or as a number of seconds; > 0 when `positive`.
pub(crate) fn duration(key: &str, value: &Value, positive: bool) -> Result<Duration, OptionError> {
    let hint = || Some(DURATION_HINT.to_string());
    let parsed = match value {
        Value::String(text) => parse_duration(text).map_err(|e| OptionError::new(key, e.to_string(), hint()))?,
        Value::Number(n) => {
            let secs = n.as_f64().unwrap_or(f64::NAN);
            from_seconds(secs)
                .map_err(|reason| OptionError::new(key, format!("{reason}, got {}", quote(value)), hint()))?
        }
        _ => {
            return Err(OptionError::new(key, format!("expected a duration, got {}", quote(value)), hint()));
        }
    };
    if positive && parsed.is_zero() {
        return Err(OptionError::new(key, format!("must be longer than 0, got {}", quote(value)), hint()));
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn edit_distance_counts_single_edits() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("rate", "rate"), 0);
        assert_eq!(edit_distance("pasue", "pause"), 1);
    }

    #[test]
    fn suggestions_ignore_case_and_separators() {
        let keys = ["executor", "rate", "time_unit", "max_vus", "pre_allocated_vus"];
        assert_eq!(did_you_mean("maxVus", &keys), Some("max_vus"));
        assert_eq!(did_you_mean("preallocated-vus", &keys), Some("pre_allocated_vus"));
        assert_eq!(did_you_mean("timeunit", &keys), Some("time_unit"));
        assert_eq!(did_you_mean("rat", &keys), Some("rate"));
        assert_eq!(did_you_mean("banana", &keys), None);
    }

    #[test]
    fn counts_accept_integral_floats_only() {
        assert_eq!(count("vus", &json!(10), 1), Ok(10));
        assert_eq!(count("vus", &json!(10.0), 1), Ok(10));
        assert_eq!(count("vus", &json!(2.5), 1).unwrap_err().to_string(), "vus: expected a whole number, got 2.5");
        assert_eq!(count("vus", &json!("10"), 1).unwrap_err().to_string(), "vus: expected a whole number, got \"10\"");
        assert_eq!(count("vus", &json!(-3), 1).unwrap_err().to_string(), "vus: must be at least 1, got -3");
        assert_eq!(count("vus", &json!(-3.0), 1).unwrap_err().to_string(), "vus: must be at least 1, got -3.0");
        assert_eq!(count("vus", &json!(0), 1).unwrap_err().to_string(), "vus: must be at least 1, got 0");
        assert_eq!(count("target", &json!(0), 0), Ok(0));
        assert_eq!(count("vus", &json!(1e300), 1).unwrap_err().to_string(), "vus: is too large, got 1e+300");
    }

    #[test]
    fn durations_take_text_or_seconds() {
        assert_eq!(duration("d", &json!("50ms"), true), Ok(Duration::from_millis(50)));
        assert_eq!(duration("d", &json!(1.5), true), Ok(Duration::from_millis(1500)));
        assert_eq!(duration("d", &json!(0), false), Ok(Duration::ZERO));
        let e = duration("d", &json!("0s"), true).unwrap_err();
        assert_eq!(e.to_string(), "d: must be longer than 0, got \"0s\"");
        assert_eq!(e.hint.as_deref(), Some(DURATION_HINT));
        let e = duration("d", &json!(-2), false).unwrap_err();
        assert_eq!(e.to_string(), "d: durations cannot be negative, got -2");
        let e = duration("d", &json!(1e300), false).unwrap_err();
        assert_eq!(e.to_string(), "d: it is too long (at most 1e12 seconds), got 1e+300");
        let e = duration("d", &json!(true), false).unwrap_err();
        assert_eq!(e.to_string(), "d: expected a duration, got true");
        assert_eq!(e.hint.as_deref(), Some(DURATION_HINT));
        let e = duration("d", &json!("5 parsecs"), false).unwrap_err();
        assert!(e.to_string().starts_with("d: invalid duration \"5 parsecs\""), "{e}");
    }

    #[test]
    fn stages_cannot_add_up_past_the_longest_duration() {
        let stage = json!({"duration": 999_999_999_999u64, "target": 1});
        let opts = json!({"stages": [stage.clone(), stage]});
        let mut r = Reader::new("ramping-vus", &["stages"], opts.as_object().unwrap());
        assert_eq!(r.stages("stages", TargetKind::Vus), None);
        let e = r.finish(Some(())).unwrap_err();
        assert_eq!(e[0].to_string(), "stages: the stages last too long in total");
    }

    #[test]
    fn rates_are_finite_numbers() {
        assert_eq!(rate("rate", &json!(0.1), true), Ok(0.1));
        assert_eq!(rate("rate", &json!(0), true).unwrap_err().to_string(), "rate: must be greater than 0, got 0");
        assert_eq!(rate("r", &json!(-1), false).unwrap_err().to_string(), "r: must not be negative, got -1");
        assert_eq!(rate("r", &json!("fast"), false).unwrap_err().to_string(), "r: expected a number, got \"fast\"");
    }

    #[test]
    fn long_values_are_shortened_in_messages() {
        let long = json!("x".repeat(100));
        let quoted = quote(&long);
        assert_eq!(quoted.chars().count(), 40);
        assert!(quoted.ends_with("..."));
    }
}
