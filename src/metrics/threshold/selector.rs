//! Metric selectors, the keys of a thresholds table: `http_req_duration` or
//! `http_req_duration{phase:peak,name:configure}`, a metric name plus tag filters.

use super::ThresholdError;
use std::fmt;
use std::str::FromStr;

const NAME_HINT: &str = "metric names are letters, digits and `_`, not starting with a digit, \
                         optionally followed by tag filters: `http_req_duration{phase:peak}`";
const FILTER_HINT: &str = "write each filter as `tag:value`, e.g. `{phase:peak,name:configure}`";

/// `http_req_duration{phase:peak,name:configure}`: a metric name and tag filters. A
/// sample matches when it has every filter's tag with that value (and maybe more tags).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Selector {
    /// The metric name, `[A-Za-z_][A-Za-z0-9_]*`.
    pub metric: String,
    /// `(tag, value)` pairs in the order written; no tag appears twice.
    pub filters: Vec<(String, String)>,
}

impl Selector {
    /// Parses `name` or `name{tag:value,...}`. Spaces around the name, tags and values
    /// are ignored; values may contain anything except `,` and `}` (so `:` is fine:
    /// `{url:http://sim/configure}`).
    pub fn parse(input: &str) -> Result<Selector, ThresholdError> {
        let chars: Vec<char> = input.chars().collect();
        let err = |column: usize, message: String, hint: &str| ThresholdError::at(input, column, message, hint);
        let text = |from: usize, to: usize| chars[from..to].iter().collect::<String>();
        let start = chars.iter().take_while(|c| c.is_whitespace()).count();
        let trailing = chars.iter().rev().take_while(|c| c.is_whitespace()).count();
        // All blank: both counts are the whole input; point at its end.
        let end = (chars.len() - trailing).max(start);
        let mut pos = start;
        while pos < end && (chars[pos].is_ascii_alphanumeric() || chars[pos] == '_') {
            pos += 1;
        }
        let metric = text(start, pos);
        if metric.is_empty() {
            let message = match chars.get(pos) {
                Some('{') if pos < end => "missing metric name before \"{\"".to_string(),
                Some(c) if pos < end => format!("unexpected {c:?} in metric name"),
                _ => "missing metric name".to_string(),
            };
            return Err(err(pos, message, NAME_HINT));
        }
        if chars[start].is_ascii_digit() {
            return Err(err(start, format!("metric name {metric:?} starts with a digit"), NAME_HINT));
        }
        let name_end = pos;
        while pos < end && chars[pos].is_whitespace() {
            pos += 1;
        }
        if pos == end {
            return Ok(Selector { metric, filters: Vec::new() });
        }
        if chars[pos] != '{' {
            let c = chars[name_end];
            let message = if c.is_whitespace() {
                format!("unexpected {:?} after metric name", text(pos, end))
            } else {
                format!("unexpected {c:?} in metric name")
            };
            return Err(err(if c.is_whitespace() { pos } else { name_end }, message, NAME_HINT));
        }
        let open = pos;
        let Some(close) = (open + 1..end).find(|&i| chars[i] == '}') else {
            return Err(err(open, "unclosed \"{\"".into(), "close the tag filters with `}`"));
        };
        if close + 1 < end {
            let rest = text(close + 1, end);
            return Err(err(
                close + 1,
                format!("unexpected {rest:?} after \"}}\""),
                "the tag filters end at the first `}`; nothing may follow them",
            ));
        }
        if chars[open + 1..close].iter().all(|c| c.is_whitespace()) {
            return Err(err(
                open,
                "empty tag filters \"{}\"".into(),
                "remove the braces, or add filters like `{phase:peak}`",
            ));
        }
        let mut filters: Vec<(String, String)> = Vec::new();
        let mut piece_start = open + 1;
        for i in open + 1..=close {
            if i < close && chars[i] != ',' {
                continue;
            }
            // One filter is chars[piece_start..i]; `first` is its first non-space char.
            let first = (piece_start..i).find(|&j| !chars[j].is_whitespace()).unwrap_or(i);
            if first == i {
                let message = "empty tag filter".to_string();
                return Err(err(i, message, "remove the extra `,`; filters are separated by one `,`"));
            }
            let Some(colon) = (piece_start..i).find(|&j| chars[j] == ':') else {
                let filter = text(first, i).trim_end().to_string();
                return Err(err(first, format!("tag filter {filter:?} has no \":\""), FILTER_HINT));
            };
            let tag = text(piece_start, colon).trim().to_string();
            let value = text(colon + 1, i).trim().to_string();
            if tag.is_empty() {
                return Err(err(colon, "missing tag name before \":\"".into(), FILTER_HINT));
            }
            if let Some(bad) = (first..colon).find(|&j| {
                let c = chars[j];
                c == '{' || (c.is_whitespace() && chars[j..colon].iter().any(|c| !c.is_whitespace()))
            }) {
                return Err(err(bad, format!("invalid tag name {tag:?}"), FILTER_HINT));
            }
            if value.is_empty() {
                return Err(err(colon + 1, format!("tag {tag:?} has no value"), FILTER_HINT));
            }
            if filters.iter().any(|(t, _)| *t == tag) {
                return Err(err(
                    first,
                    format!("tag {tag:?} is filtered twice"),
                    "a sample has one value per tag, so this selector could never match",
                ));
            }
            filters.push((tag, value));
            piece_start = i + 1;
        }
        Ok(Selector { metric, filters })
    }

    /// Whether a sample with these tags matches: it has every filter's tag with that
    /// value. The metric name is the caller's to compare.
    pub fn matches(&self, tags: &[(impl AsRef<str>, impl AsRef<str>)]) -> bool {
        self.filters.iter().all(|(tag, value)| tags.iter().any(|(t, v)| t.as_ref() == tag && v.as_ref() == value))
    }
}

impl fmt::Display for Selector {
    /// Canonical text without spaces, filters in the order written:
    /// `http_req_duration{phase:peak,name:configure}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.metric)?;
        if !self.filters.is_empty() {
            f.write_str("{")?;
            for (i, (tag, value)) in self.filters.iter().enumerate() {
                let sep = if i == 0 { "" } else { "," };
                write!(f, "{sep}{tag}:{value}")?;
            }
            f.write_str("}")?;
        }
        Ok(())
    }
}

impl FromStr for Selector {
    type Err = ThresholdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Selector::parse(s)
    }
}
