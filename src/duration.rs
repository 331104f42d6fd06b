//! Durations as QA engineers write them: `"50ms"`, `"2m"`, `"1h30m"`, or a bare number
//! of seconds. Shared by executors, script primitives and the CLI; depends on nothing.

use std::time::Duration;

/// A duration that could not be parsed, quoting the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {input:?}: {reason}")]
pub struct DurationError {
    /// The text as the user wrote it.
    pub input: String,
    /// What was wrong with it.
    pub reason: String,
}

/// The hint printed under every duration error.
pub const DURATION_HINT: &str = "durations look like 500ms, 30s, 2m, 1h30m, or a number of seconds";

/// Parses `"50ms"`, `"1.5s"`, `"2m"`, `"1h30m"`, `"10"` (seconds).
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let text = input.trim();
    let err = |reason: &str| DurationError { input: input.to_string(), reason: reason.to_string() };
    if text.is_empty() {
        return Err(err("it is empty"));
    }
    if let Ok(secs) = text.parse::<f64>() {
        return seconds(secs).ok_or_else(|| err("it must be a finite number of seconds >= 0"));
    }
    // A decimal number followed by a unit: humantime does not take "1.5s".
    if let Some(split) = text.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        let (num, unit) = text.split_at(split);
        if num.contains('.') {
            let value: f64 = num.parse().map_err(|_| err("the number is not valid"))?;
            let factor = match unit.trim() {
                "ms" => 1e-3,
                "s" => 1.0,
                "m" => 60.0,
                "h" => 3600.0,
                "us" | "µs" => 1e-6,
                other => return Err(err(&format!("unknown unit {other:?}"))),
            };
            return seconds(value * factor).ok_or_else(|| err("it is out of range"));
        }
    }
    humantime::parse_duration(text).map_err(|e| err(&simplify(&e.to_string())))
}

/// Turns a number of seconds into a duration when it is finite and not negative.
pub fn seconds(secs: f64) -> Option<Duration> {
    (secs.is_finite() && secs >= 0.0 && secs < 1e12).then(|| Duration::from_secs_f64(secs))
}

fn simplify(message: &str) -> String {
    match message {
        m if m.contains("unknown time unit") => m.replace("time unit", "unit"),
        m => m.to_string(),
    }
}

/// Formats a duration compactly for reports: `850ms`, `12.5s`, `3m20s`, `1h2m`.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 1.0 {
        return format!("{:.0}µs", ms * 1000.0);
    }
    if ms < 1000.0 {
        return format!("{ms:.0}ms");
    }
    let secs = d.as_secs_f64();
    if secs < 60.0 {
        let s = format!("{secs:.1}");
        return format!("{}s", s.trim_end_matches(".0"));
    }
    let total = d.as_secs();
    let (h, m, s) = (total / 3600, (total % 3600) / 60, total % 60);
    match (h, s) {
        (0, 0) => format!("{m}m"),
        (0, _) => format!("{m}m{s}s"),
        _ => format!("{h}h{m}m"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_usual_forms() {
        assert_eq!(parse_duration("50ms").unwrap(), Duration::from_millis(50));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("10").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("0.5").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration(" 30s ").unwrap(), Duration::from_secs(30));
    }

    #[test]
    fn rejects_with_the_input_quoted() {
        let e = parse_duration("5 parsecs").unwrap_err();
        assert!(e.to_string().starts_with("invalid duration \"5 parsecs\""), "{e}");
        assert!(parse_duration("").is_err());
        assert!(parse_duration("-3").is_err());
        assert!(parse_duration("1.5q").is_err());
    }

    #[test]
    fn formats_compactly() {
        assert_eq!(format_duration(Duration::from_millis(850)), "850ms");
        assert_eq!(format_duration(Duration::from_millis(12_500)), "12.5s");
        assert_eq!(format_duration(Duration::from_secs(200)), "3m20s");
        assert_eq!(format_duration(Duration::from_secs(120)), "2m");
        assert_eq!(format_duration(Duration::from_secs(3720)), "1h2m");
    }
}
