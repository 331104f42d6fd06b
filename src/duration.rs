//! Durations as QA engineers write them: `"50ms"`, `"2m"`, `"1h30m"`, `"0.5 sec"`, or a
//! bare number of seconds: one grammar, bounded so that no user value overflows. Shared
//! by executors, script primitives and the CLI; depends on nothing.

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

/// The longest duration accepted anywhere (10^12 s, ~31,700 years): long enough for any
/// test, short enough that adding it to an `Instant` or summing stages cannot overflow.
pub const MAX_SECONDS: f64 = 1e12;

/// Units and their length in nanoseconds. The spellings are humantime's, so `"10 sec"`
/// and `"0.5 sec"` mean what they say; a month is 30.44 days and a year 365.25 days.
const UNITS: &[(&[&str], f64)] = &[
    (&["ns", "nsec", "nsecs", "nanosecond", "nanoseconds"], 1.0),
    (&["us", "µs", "usec", "usecs", "microsecond", "microseconds"], 1e3),
    (&["ms", "msec", "msecs", "millisecond", "milliseconds"], 1e6),
    (&["s", "sec", "secs", "second", "seconds"], 1e9),
    (&["m", "min", "mins", "minute", "minutes"], 60e9),
    (&["h", "hr", "hrs", "hour", "hours"], 3600e9),
    (&["d", "day", "days"], 86_400e9),
    (&["w", "week", "weeks"], 604_800e9),
    (&["M", "month", "months"], 2_630_016e9),
    (&["y", "year", "years"], 31_557_600e9),
];

/// Parses one grammar everywhere: a bare number of seconds (`"10"`, `"0.5"`), or terms of
/// a number (whole or decimal) and a unit, optionally spaced: `"50ms"`, `"1.5s"`,
/// `"1h30m"`, `"0.5 sec"`, `"2 minutes 30 seconds"`.
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let text = input.trim();
    let err = |reason: String| DurationError { input: input.to_string(), reason };
    if text.is_empty() {
        return Err(err("it is empty".into()));
    }
    if text.starts_with('-') {
        return Err(err("durations cannot be negative".into()));
    }
    if let Ok(secs) = text.parse::<f64>()
        && !text.chars().any(|c| c.is_alphabetic() && c != 'e' && c != 'E')
    {
        return from_seconds(secs).map_err(err);
    }
    let mut nanos: f64 = 0.0;
    let mut rest = text;
    while !rest.is_empty() {
        let number_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let number = &rest[..number_len];
        let value: f64 = match number.parse() {
            Ok(v) => v,
            Err(_) if number.is_empty() => {
                let found: String = rest.chars().take_while(|c| !c.is_whitespace()).collect();
                return Err(err(format!("expected a number, found {found:?}")));
            }
            Err(_) => return Err(err(format!("{number:?} is not a number"))),
        };
        rest = rest[number_len..].trim_start();
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.' || c.is_whitespace()).unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        if unit.is_empty() {
            return Err(err(format!("{number} has no unit; write e.g. {number}s or {number}ms")));
        }
        let Some((_, unit_nanos)) = UNITS.iter().find(|(names, _)| names.contains(&unit)) else {
            return Err(err(format!(
                "unknown unit {unit:?} (units: ns, us, ms, s, m, h, d, w, M, y, and long forms such as sec, min, hours)"
            )));
        };
        nanos += value * unit_nanos;
        rest = rest[unit_len..].trim_start();
    }
    from_seconds(nanos / 1e9).map_err(err)
}

/// A number of seconds as a duration, rounded to the nanosecond; the reason when it is
/// negative, not finite or longer than [`MAX_SECONDS`].
pub fn from_seconds(secs: f64) -> Result<Duration, String> {
    if secs.is_nan() || secs.is_infinite() && secs > 0.0 {
        return Err("it is not a finite number of seconds".into());
    }
    if secs < 0.0 {
        return Err("durations cannot be negative".into());
    }
    if secs >= MAX_SECONDS {
        return Err(format!("it is too long (at most {MAX_SECONDS:e} seconds)"));
    }
    // Why whole seconds apart: `0.3` as f64 is 0.2999..., and from_secs_f64 would
    // truncate it to 299.999999ms.
    let whole = secs.trunc();
    let nanos = ((secs - whole) * 1e9).round() as u64;
    Ok(Duration::from_secs(whole as u64) + Duration::from_nanos(nanos))
}

/// Turns a number of seconds into a duration when it is finite, not negative and not
/// longer than [`MAX_SECONDS`].
pub fn seconds(secs: f64) -> Option<Duration> {
    from_seconds(secs).ok()
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
    fn one_grammar_for_whole_and_decimal_numbers() {
        assert_eq!(parse_duration("10 sec").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("0.5 sec").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1.5 minutes").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1h 30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("2 minutes 30 seconds").unwrap(), Duration::from_secs(150));
        assert_eq!(parse_duration("0.3s").unwrap(), Duration::from_millis(300));
        assert_eq!(parse_duration("250us").unwrap(), Duration::from_micros(250));
        assert_eq!(parse_duration("1d").unwrap(), Duration::from_secs(86_400));
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let reason = |s: &str| parse_duration(s).unwrap_err().reason;
        assert_eq!(reason("-5s"), "durations cannot be negative");
        assert_eq!(reason("-3"), "durations cannot be negative");
        assert_eq!(reason("1h2"), "2 has no unit; write e.g. 2s or 2ms");
        assert_eq!(reason("s"), "expected a number, found \"s\"");
        assert_eq!(reason("1..5s"), "\"1..5\" is not a number");
        assert!(reason("5 parsecs").starts_with("unknown unit \"parsecs\""));
        assert_eq!(reason("9223372036854775807s"), "it is too long (at most 1e12 seconds)");
        assert_eq!(reason("1e300"), "it is too long (at most 1e12 seconds)");
        assert_eq!(reason("inf"), "expected a number, found \"inf\"");
    }

    #[test]
    fn no_input_panics_and_every_success_is_bounded() {
        // Every string of up to 4 characters over an alphabet of digits, units, signs,
        // separators and a multi-byte character: 14^4 + ... inputs.
        let alphabet: Vec<char> = "09.smhMyµ -e,".chars().chain(['日']).collect();
        let mut inputs = vec![String::new()];
        for _ in 0..4 {
            let next: Vec<String> =
                inputs.iter().flat_map(|s| alphabet.iter().map(move |c| format!("{s}{c}"))).collect();
            for input in &next {
                if let Ok(d) = parse_duration(input) {
                    assert!(d.as_secs_f64() < MAX_SECONDS, "{input:?} gave {d:?}");
                }
            }
            inputs = next;
        }
        for huge in ["99999999999999999999999y", "1e308", "18446744073709551615s", "0.000000000000000001ns"] {
            let _ = parse_duration(huge);
        }
    }

    #[test]
    fn seconds_are_bounded_and_rounded() {
        assert_eq!(from_seconds(0.3), Ok(Duration::from_millis(300)));
        assert_eq!(from_seconds(-1.0).unwrap_err(), "durations cannot be negative");
        assert!(from_seconds(f64::NAN).is_err());
        assert!(from_seconds(f64::INFINITY).is_err());
        assert!(from_seconds(f64::NEG_INFINITY).is_err());
        assert!(from_seconds(1e12).is_err());
        assert!(from_seconds(999_999_999_999.0).is_ok());
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
