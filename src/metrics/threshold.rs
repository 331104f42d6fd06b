//! Thresholds in k6 syntax: a metric selector (`http_req_duration{phase:peak}`, see
//! [`Selector`]) and conditions on one statistic of its sink (`p(95) < 300`, see
//! [`Condition`]). Parsing and judging only: no clock, no script engine. Thresholds read
//! a [`Sink`]'s summary and nothing else; this module imports only `metrics::sink` and
//! `crate::duration` (for a window's length). A condition may end with `over 30s`: a
//! sliding window, judged from once-a-second snapshots ([`Windows`]).
//!
//! Every parse error is a [`ThresholdError`] that quotes the input, points at the
//! offending character and, where we can guess, says what was probably meant.

mod selector;
mod window;

pub use selector::Selector;
pub use window::{Windows, window_of};

use super::sink::{MetricKind, Sink, Stat, StatError};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// The statistics a condition may name, as listed in hints.
const STATS: &str = "avg, min, max, med, p(N), count, rate, value";
/// The comparison operators, as listed in hints.
const OPS: &str = "<, <=, >, >=, ==, !=";
/// The statistic names other than `p(N)`, in the order suggestions prefer them.
const STAT_NAMES: [&str; 7] = ["avg", "min", "max", "med", "count", "rate", "value"];

/// A threshold (selector or condition) that could not be parsed or does not fit its
/// metric. `Display` quotes the input: `invalid threshold "p(95) <> 300": unknown
/// operator "<>"`; [`ThresholdError::render_caret`] points into it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid threshold {input:?}: {message}")]
pub struct ThresholdError {
    /// The text as the user wrote it.
    pub input: String,
    /// What is wrong, quoting the offending part.
    pub message: String,
    /// 0-based char offset into `input` of the offending part, when there is one.
    pub column: Option<usize>,
    /// What the user probably meant, or what is allowed.
    pub hint: Option<String>,
}

impl ThresholdError {
    fn at(input: &str, column: usize, message: impl Into<String>, hint: impl Into<String>) -> Self {
        ThresholdError {
            input: input.to_string(),
            message: message.into(),
            column: Some(column),
            hint: Some(hint.into()),
        }
    }

    /// Renders the input, a caret under the offending char and the hint, one per line
    /// (the caret line is left out without a column, the hint line without a hint):
    ///
    /// ```text
    /// p(95) <> 300
    ///       ^
    /// hint: did you mean `!=`? operators are <, <=, >, >=, ==, !=
    /// ```
    pub fn render_caret(&self) -> String {
        render_caret(&self.input, self.column, self.hint.as_deref())
    }
}

/// Shared by selector and condition errors: control chars become spaces so the caret
/// stays aligned; tabs are kept on both lines for the same reason.
fn render_caret(input: &str, column: Option<usize>, hint: Option<&str>) -> String {
    let shown: String = input.chars().map(|c| if c.is_control() && c != '\t' { ' ' } else { c }).collect();
    let mut lines = vec![shown];
    if let Some(column) = column {
        let pad: String = input
            .chars()
            .chain(std::iter::repeat(' '))
            .take(column)
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        lines.push(format!("{pad}^"));
    }
    if let Some(hint) = hint {
        lines.push(format!("hint: {hint}"));
    }
    lines.join("\n")
}

/// A comparison operator of a condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `==` (also written `===`)
    Eq,
    /// `!=`
    Ne,
}

impl Op {
    /// The operator as written in canonical conditions: `<`, `<=`, `>`, `>=`, `==`, `!=`.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Eq => "==",
            Op::Ne => "!=",
        }
    }

    /// Whether `observed <op> limit` holds. NaN never passes.
    pub fn holds(self, observed: f64, limit: f64) -> bool {
        if observed.is_nan() || limit.is_nan() {
            return false;
        }
        match self {
            Op::Lt => observed < limit,
            Op::Le => observed <= limit,
            Op::Gt => observed > limit,
            Op::Ge => observed >= limit,
            Op::Eq => observed == limit,
            Op::Ne => observed != limit,
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome of one condition.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict {
    /// Whether the condition held. A condition over no data did not.
    pub passed: bool,
    /// The statistic's value; `None` when the sink had no data (reports say "no data").
    pub observed: Option<f64>,
}

/// One condition in k6 syntax: `p(95) < 300`, `avg<200`, `rate>=0.99`, `count > 100`,
/// `med<=150`, `max < 10000`, `p(99.9)<800`, `value < 5`. Whitespace is optional;
/// `==`, `===` and `!=` are accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// The statistic read from the sink.
    pub stat: Stat,
    /// How the statistic is compared with the limit.
    pub op: Op,
    /// The limit, in the metric's unit (milliseconds for durations).
    pub limit: f64,
    /// The condition as written, trimmed; quoted by errors and reports.
    pub source: String,
    /// `over 30s`: judged over every sliding window of this length during the run
    /// (failing when any window violates it) instead of over the whole run.
    pub window: Option<Duration>,
}

impl Condition {
    /// Parses one condition. Errors point at the offending char, e.g. for
    /// `p(95) <> 300`: `unknown operator "<>"` at column 6.
    pub fn parse(input: &str) -> Result<Condition, ThresholdError> {
        let mut p = Scanner::new(input);
        p.skip_ws();
        if p.at_end() {
            return Err(ThresholdError::at(
                input,
                p.pos,
                "it is empty",
                "a condition is a statistic, an operator and a number, e.g. `p(95) < 300`",
            ));
        }
        let stat = p.stat()?;
        p.skip_ws();
        let op = p.op(stat)?;
        p.skip_ws();
        let limit = p.limit(op)?;
        p.skip_ws();
        let window = p.window()?;
        if !p.at_end() {
            return Err(p.trailing(limit));
        }
        Ok(Condition { stat, op, limit, source: input.trim().to_string(), window })
    }

    /// Checks that the statistic applies to a metric kind (k6's table: counter `count`,
    /// `rate`; gauge `value`; rate `rate`; trend `avg`, `min`, `max`, `med`, `p(N)`,
    /// `count`). The error names the allowed statistics.
    pub fn validate_for(&self, kind: MetricKind) -> Result<(), ThresholdError> {
        let allowed = match kind {
            MetricKind::Counter => matches!(self.stat, Stat::Count | Stat::Rate),
            MetricKind::Gauge => matches!(self.stat, Stat::Value),
            MetricKind::Rate => matches!(self.stat, Stat::Rate),
            MetricKind::Trend => {
                matches!(self.stat, Stat::Avg | Stat::Min | Stat::Max | Stat::Med | Stat::Percentile(_) | Stat::Count)
            }
        };
        if allowed { Ok(()) } else { Err(self.kind_error(kind)) }
    }

    /// Judges the condition against a sink; `elapsed` is how long the run lasted (for a
    /// counter's per-second rate). No data gives `Verdict { passed: false, observed:
    /// None }`: a threshold over nothing is not a pass. A statistic that does not apply
    /// to the sink's kind is an error, as in [`Condition::validate_for`].
    pub fn evaluate(&self, sink: &Sink, elapsed: Duration) -> Result<Verdict, ThresholdError> {
        self.validate_for(sink.kind())?;
        let observed = sink.stat(self.stat, elapsed).map_err(|e| self.kind_error(e.kind))?;
        Ok(Verdict { passed: observed.is_some_and(|v| self.op.holds(v, self.limit)), observed })
    }

    fn kind_error(&self, kind: MetricKind) -> ThresholdError {
        let hint = match kind {
            MetricKind::Counter => "a counter has `count` (its total) and `rate` (per second)",
            MetricKind::Gauge => "a gauge has `value` (the last value set)",
            MetricKind::Rate => "a rate has `rate`, the share of non-zero samples, e.g. `rate<0.01`",
            MetricKind::Trend => "a trend has avg, min, max, med, p(N) and count",
        };
        let message = StatError { stat: self.stat, kind }.to_string();
        ThresholdError::at(&self.source, 0, message, hint)
    }
}

impl fmt::Display for Condition {
    /// Canonical text: `p(95) < 300`, `p(95) < 300 over 30s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.stat, self.op, self.limit)?;
        if let Some(w) = self.window {
            write!(f, " over {}", crate::duration::format_duration(w))?;
        }
        Ok(())
    }
}

impl FromStr for Condition {
    type Err = ThresholdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Condition::parse(s)
    }
}

/// A cursor over the chars of a condition; positions are char offsets into the input.
struct Scanner<'a> {
    input: &'a str,
    chars: Vec<char>,
    pos: usize,
}

impl<'a> Scanner<'a> {
    fn new(input: &'a str) -> Self {
        Scanner { input, chars: input.chars().collect(), pos: 0 }
    }

    fn at_end(&self) -> bool {
        self.pos >= self.chars.len()
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn text(&self, from: usize, to: usize) -> String {
        self.chars[from..to.min(self.chars.len())].iter().collect()
    }

    /// Advances over chars while `keep` holds; returns the start.
    fn take_while(&mut self, keep: impl Fn(char) -> bool) -> usize {
        let start = self.pos;
        while self.peek().is_some_and(&keep) {
            self.pos += 1;
        }
        start
    }

    fn error(&self, column: usize, message: impl Into<String>, hint: impl Into<String>) -> ThresholdError {
        ThresholdError::at(self.input, column, message, hint)
    }

    /// `avg`, `p(95)`, ...
    fn stat(&mut self) -> Result<Stat, ThresholdError> {
        let start = self.take_while(|c| c.is_alphanumeric() || c == '_' || c == '.');
        let word = self.text(start, self.pos);
        if word.is_empty() {
            let found = self.peek().map(String::from).unwrap_or_default();
            return Err(self.error(
                start,
                format!("missing statistic before {found:?}"),
                format!("a condition starts with a statistic: {STATS}"),
            ));
        }
        let stat = match word.as_str() {
            "avg" => Stat::Avg,
            "min" => Stat::Min,
            "max" => Stat::Max,
            "med" => Stat::Med,
            "count" => Stat::Count,
            "rate" => Stat::Rate,
            "value" => Stat::Value,
            "p" if self.peek() == Some('(') => self.percentile()?,
            _ => {
                let hint = match self.suggest_stat(&word) {
                    Some(s) => format!("did you mean `{s}`? statistics are {STATS}"),
                    None => format!("statistics are {STATS}"),
                };
                return Err(self.error(start, format!("unknown statistic {word:?}"), hint));
            }
        };
        Ok(stat)
    }

    /// The `(N)` of `p(N)`, with the cursor on `(`.
    fn percentile(&mut self) -> Result<Stat, ThresholdError> {
        const HINT: &str = "percentiles go from 0 to 100, e.g. `p(95)` or `p(99.9)`";
        let open = self.pos;
        self.pos += 1;
        self.skip_ws();
        let start = self.pos;
        let Some(value) = self.number() else {
            if self.at_end() || self.peek() == Some(')') {
                return Err(self.error(start, "missing percentile in `p()`", HINT));
            }
            self.take_while(|c| c != ')' && !c.is_whitespace());
            let junk = self.text(start, self.pos);
            return Err(self.error(start, format!("invalid percentile {junk:?}"), HINT));
        };
        if !(0.0..=100.0).contains(&value) {
            let text = self.text(start, self.pos);
            return Err(self.error(start, format!("percentile {text} is out of range"), HINT));
        }
        self.skip_ws();
        match self.peek() {
            Some(')') => {
                self.pos += 1;
                Ok(Stat::Percentile(value))
            }
            None => Err(self.error(open, "unclosed \"(\"", "close the percentile: `p(95)`")),
            Some(c) => Err(self.error(self.pos, format!("unexpected {c:?} in percentile"), HINT)),
        }
    }

    /// What an unknown statistic probably meant: `p95` -> `p(95)`, `AVG` -> `avg`,
    /// `median` -> `med`, `mxa` -> `max`.
    fn suggest_stat(&self, word: &str) -> Option<String> {
        let lower = word.to_lowercase();
        if STAT_NAMES.contains(&lower.as_str()) {
            return Some(lower);
        }
        let paren_arg = || {
            if self.peek() != Some('(') {
                return None;
            }
            let rest = self.text(self.pos + 1, self.chars.len());
            rest.find(')').map(|end| rest[..end].trim().to_string())
        };
        if let Some(n) = lower.strip_prefix('p')
            && n.parse::<f64>().is_ok_and(|n| (0.0..=100.0).contains(&n))
        {
            return Some(format!("p({n})"));
        }
        let alias = match lower.as_str() {
            "p" | "percentile" | "pct" | "perc" | "quantile" => {
                return Some(format!("p({})", paren_arg().unwrap_or_else(|| "N".into())));
            }
            "mean" | "average" => "avg",
            "median" => "med",
            "minimum" => "min",
            "maximum" => "max",
            "total" | "sum" | "counter" => "count",
            "last" | "current" | "gauge" => "value",
            _ => "",
        };
        if !alias.is_empty() {
            return Some(alias.to_string());
        }
        let budget = if lower.chars().count() <= 3 { 1 } else { 2 };
        STAT_NAMES
            .iter()
            .map(|name| (edit_distance(&lower, name), *name))
            .filter(|(d, _)| *d <= budget)
            .min_by_key(|(d, _)| *d)
            .map(|(_, name)| name.to_string())
    }

    /// `<`, `<=`, ...; `stat` is only for the error when the operator is missing.
    fn op(&mut self, stat: Stat) -> Result<Op, ThresholdError> {
        let start = self.take_while(|c| matches!(c, '<' | '>' | '=' | '!'));
        let run = self.text(start, self.pos);
        let op = match run.as_str() {
            "<" => Op::Lt,
            "<=" => Op::Le,
            ">" => Op::Gt,
            ">=" => Op::Ge,
            "==" | "===" => Op::Eq,
            "!=" => Op::Ne,
            "" => return Err(self.missing_op(stat)),
            _ => return Err(self.unknown_op(start, &run)),
        };
        Ok(op)
    }

    fn missing_op(&mut self, stat: Stat) -> ThresholdError {
        let start = self.pos;
        let hint = format!("compare with one of {OPS}, e.g. `p(95) < 300`");
        match self.peek() {
            None => self.error(start, format!("missing operator after \"{stat}\""), hint),
            Some(c) if c.is_ascii_digit() || matches!(c, '.' | '+' | '-') => {
                self.take_while(|c| !c.is_whitespace());
                let number = self.text(start, self.pos);
                self.error(start, format!("missing operator before {number:?}"), hint)
            }
            Some(_) => {
                self.take_while(|c| !c.is_whitespace() && !c.is_ascii_digit());
                let word = self.text(start, self.pos);
                self.unknown_op(start, &word)
            }
        }
    }

    fn unknown_op(&self, start: usize, word: &str) -> ThresholdError {
        let meant = match word.to_lowercase().as_str() {
            "=" | "eq" | "is" => Some("=="),
            "lt" => Some("<"),
            // `=<` and `=>` are most likely swapped `<=` and `>=`.
            "=<" | "le" | "lte" => Some("<="),
            "gt" => Some(">"),
            "=>" | "ge" | "gte" => Some(">="),
            "<>" | "!" | "!==" | "=!" | "ne" => Some("!="),
            _ => None,
        };
        let hint = match meant {
            Some(op) => format!("did you mean `{op}`? operators are {OPS}"),
            None => format!("operators are {OPS}"),
        };
        self.error(start, format!("unknown operator {word:?}"), hint)
    }

    /// `over 30s` after the limit (a sliding window), when written.
    fn window(&mut self) -> Result<Option<Duration>, ThresholdError> {
        let start = self.pos;
        let word = self.take_while(|c| c.is_alphabetic());
        if self.text(word, self.pos) != "over" {
            self.pos = start;
            return Ok(None);
        }
        self.skip_ws();
        let at = self.pos;
        let rest = self.text(at, self.chars.len());
        let hint = "a window is a whole number of seconds or more, e.g. `p(95) < 300 over 30s`";
        if rest.trim().is_empty() {
            return Err(self.error(at, "missing window length after \"over\"", hint));
        }
        let d = crate::duration::parse_duration(rest.trim())
            .map_err(|e| self.error(at, format!("invalid window {:?}: {e}", rest.trim()), hint))?;
        if d < Duration::from_secs(1) || d.subsec_nanos() != 0 {
            return Err(self.error(
                at,
                format!("invalid window {:?}: it must be whole seconds, at least 1s", rest.trim()),
                hint,
            ));
        }
        if d > Duration::from_secs(24 * 3600) {
            return Err(self.error(at, format!("invalid window {:?}: at most 24h", rest.trim()), hint));
        }
        self.pos = self.chars.len();
        Ok(Some(d))
    }

    /// The number after the operator.
    fn limit(&mut self, op: Op) -> Result<f64, ThresholdError> {
        let start = self.pos;
        let hint = "the limit is a plain number in the metric's unit, e.g. `p(95) < 300` or `rate < 0.01`";
        if self.at_end() {
            return Err(self.error(start, format!("missing number after \"{op}\""), hint));
        }
        let Some(value) = self.number() else {
            self.take_while(|c| !c.is_whitespace());
            let junk = self.text(start, self.pos);
            return Err(self.error(start, format!("invalid number {junk:?}"), hint));
        };
        if !value.is_finite() {
            let text = self.text(start, self.pos);
            return Err(self.error(start, format!("number {text} is out of range"), hint));
        }
        Ok(value)
    }

    /// A decimal number `[+-]digits[.digits][e[+-]digits]` at the cursor; `None` (cursor
    /// unmoved) when there is none.
    fn number(&mut self) -> Option<f64> {
        let start = self.pos;
        if matches!(self.peek(), Some('+' | '-')) {
            self.pos += 1;
        }
        let int = self.take_while(|c| c.is_ascii_digit());
        let mut digits = self.pos - int;
        if self.peek() == Some('.') {
            self.pos += 1;
            let frac = self.take_while(|c| c.is_ascii_digit());
            digits += self.pos - frac;
        }
        if digits == 0 {
            self.pos = start;
            return None;
        }
        let mantissa_end = self.pos;
        if matches!(self.peek(), Some('e' | 'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some('+' | '-')) {
                self.pos += 1;
            }
            let exp = self.take_while(|c| c.is_ascii_digit());
            if self.pos == exp {
                // `300e` or `5ex`: the `e` is not an exponent; leave it as trailing text.
                self.pos = mantissa_end;
            }
        }
        self.text(start, self.pos).parse().ok()
    }

    /// The error for text after a complete condition, with a hint for units and for
    /// several conditions in one string.
    fn trailing(&self, limit: f64) -> ThresholdError {
        let rest = self.text(self.pos, self.chars.len());
        let rest = rest.trim_end();
        let ms = match rest {
            "ms" => Some(limit),
            "s" | "sec" => Some(limit * 1e3),
            "m" | "min" => Some(limit * 60e3),
            "us" | "µs" => Some(limit / 1e3),
            _ => None,
        };
        let hint = if let Some(ms) = ms {
            format!("durations are compared in milliseconds: write `{ms}`, not `{limit}{rest}`")
        } else if rest == "%" {
            format!("rates are fractions from 0 to 1: write `{}`, not `{limit}%`", limit / 100.0)
        } else {
            "a condition is one statistic, one operator and one number; \
             write each condition as its own string"
                .to_string()
        };
        self.error(self.pos, format!("unexpected {rest:?} after the limit"), hint)
    }
}

/// Levenshtein distance over chars; the words compared are a few letters long.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1).min(row[j] + 1).min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests;
