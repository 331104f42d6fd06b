//! Reading option maps passed by scripts (`#{ timeout: "5s", headers: #{...} }`), with
//! errors that name the option, quote the value and suggest the right key.

use crate::duration::{DURATION_HINT, parse_duration};
use rhai::{Dynamic, EvalAltResult, Map};
use std::time::Duration;

/// The closest candidate to `word`, if close enough to be a likely typo.
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// "a", "a and b", "a, b and c".
fn and_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// A typed view of an options map.
pub struct Opts<'a> {
    map: &'a Map,
    what: &'a str,
}

fn err(msg: String) -> Box<EvalAltResult> {
    msg.into()
}

/// Describes a value for an error message: its type and, for short ones, the value.
pub fn describe(value: &Dynamic) -> String {
    let text = value.to_string();
    if value.is_string() {
        format!("the string {text:?}")
    } else if text.len() <= 40 {
        format!("{} {text}", super::signatures::plain_type(value.type_name()))
    } else {
        super::signatures::plain_type(value.type_name())
    }
}

/// Converts a script value to a duration: a string like "500ms", or a number of seconds.
pub fn to_duration(value: &Dynamic, what: &str) -> Result<Duration, Box<EvalAltResult>> {
    if let Some(s) = value.read_lock::<rhai::ImmutableString>() {
        return parse_duration(&s).map_err(|e| err(format!("{what}: {e}; hint: {DURATION_HINT}")));
    }
    let secs = if let Ok(i) = value.as_int() {
        i as f64
    } else if let Ok(f) = value.as_float() {
        f
    } else {
        return Err(err(format!("{what}: expected a duration, got {}; hint: {DURATION_HINT}", describe(value))));
    };
    crate::duration::from_seconds(secs)
        .map_err(|reason| err(format!("{what}: {reason}, got {secs}; hint: {DURATION_HINT}")))
}

impl<'a> Opts<'a> {
    /// Checks that every key is one of `allowed`, suggesting the closest for typos.
    /// Every unknown key is named at once, not only the first.
    pub fn new(map: &'a Map, what: &'a str, allowed: &[&str]) -> Result<Opts<'a>, Box<EvalAltResult>> {
        let unknown: Vec<(&str, Option<&str>)> = map
            .keys()
            .filter(|k| !allowed.contains(&k.as_str()))
            .map(|k| (k.as_str(), did_you_mean(k, allowed.iter().copied())))
            .collect();
        let valid = || format!("valid options: {}", allowed.join(", "));
        match unknown.as_slice() {
            [] => Ok(Opts { map, what }),
            [(key, near)] => {
                let hint = near.map_or_else(valid, |s| format!("did you mean `{s}`?"));
                Err(err(format!("{what}: unknown option `{key}`; hint: {hint}")))
            }
            many => {
                let keys: Vec<String> = many.iter().map(|(k, _)| format!("`{k}`")).collect();
                let near: Option<Vec<String>> = many.iter().map(|(_, n)| n.map(|s| format!("`{s}`"))).collect();
                let hint = near.map_or_else(valid, |n| format!("did you mean {}?", and_list(&n)));
                Err(err(format!("{what}: unknown options {}; hint: {hint}", and_list(&keys))))
            }
        }
    }

    /// What the options belong to (`http::get`), for messages.
    pub fn what(&self) -> &str {
        self.what
    }

    /// The raw value of a key.
    pub fn get(&self, key: &str) -> Option<&Dynamic> {
        self.map.get(key).filter(|v| !v.is_unit())
    }

    fn wrong(&self, key: &str, expected: &str, value: &Dynamic) -> Box<EvalAltResult> {
        err(format!("{}: option `{key}` expects {expected}, got {}", self.what, describe(value)))
    }

    /// A string option.
    pub fn string(&self, key: &str) -> Result<Option<String>, Box<EvalAltResult>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) if v.is_string() => Ok(Some(v.to_string())),
            Some(v) => Err(self.wrong(key, "a string", v)),
        }
    }

    /// A boolean option.
    pub fn bool(&self, key: &str) -> Result<Option<bool>, Box<EvalAltResult>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v.as_bool().map(Some).map_err(|_| self.wrong(key, "true or false", v)),
        }
    }

    /// A whole-number option.
    pub fn int(&self, key: &str) -> Result<Option<i64>, Box<EvalAltResult>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v.as_int().map(Some).map_err(|_| self.wrong(key, "a whole number", v)),
        }
    }

    /// A number option (integers accepted).
    pub fn float(&self, key: &str) -> Result<Option<f64>, Box<EvalAltResult>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_float()
                .or_else(|_| v.as_int().map(|i| i as f64))
                .map(Some)
                .map_err(|_| self.wrong(key, "a number", v)),
        }
    }

    /// A duration option ("500ms", "2m", or seconds).
    pub fn duration(&self, key: &str) -> Result<Option<Duration>, Box<EvalAltResult>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => to_duration(v, &format!("{}: option `{key}`", self.what)).map(Some),
        }
    }

    /// A map option.
    pub fn map(&self, key: &str) -> Result<Option<Map>, Box<EvalAltResult>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => {
                v.clone().try_cast::<Map>().map(Some).ok_or_else(|| self.wrong(key, "a map like #{ key: value }", v))
            }
        }
    }

    /// A list of whole numbers (a single number is accepted as a list of one).
    pub fn int_list(&self, key: &str) -> Result<Option<Vec<i64>>, Box<EvalAltResult>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) if v.is_int() => Ok(Some(vec![v.as_int().unwrap_or_default()])),
            Some(v) => {
                let arr = v
                    .clone()
                    .try_cast::<rhai::Array>()
                    .ok_or_else(|| self.wrong(key, "a list of numbers like [429, 503]", v))?;
                arr.iter()
                    .map(|x| x.as_int().map_err(|_| self.wrong(key, "a list of whole numbers", x)))
                    .collect::<Result<Vec<_>, _>>()
                    .map(Some)
            }
        }
    }

    /// A map of strings (headers, query, tags): values are converted with `to_string`.
    pub fn string_pairs(&self, key: &str) -> Result<Vec<(String, String)>, Box<EvalAltResult>> {
        Ok(self
            .map(key)?
            .map(|m| m.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
            .unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_get_a_suggestion() {
        let mut m = Map::new();
        m.insert("timout".into(), Dynamic::from("5s"));
        let e = Opts::new(&m, "http::get", &["timeout", "headers"]).err().unwrap();
        assert_eq!(e.to_string(), "Runtime error: http::get: unknown option `timout`; hint: did you mean `timeout`?");
    }

    #[test]
    fn every_unknown_key_is_named_at_once() {
        let mut m = Map::new();
        m.insert("timout".into(), Dynamic::from("5s"));
        m.insert("header".into(), Dynamic::from(1_i64));
        let e = Opts::new(&m, "http::get", &["timeout", "headers"]).err().unwrap();
        assert_eq!(
            e.to_string(),
            "Runtime error: http::get: unknown options `header` and `timout`; hint: did you mean `headers` and `timeout`?"
        );
        m.insert("zzz".into(), Dynamic::from(1_i64));
        let e = Opts::new(&m, "http::get", &["timeout", "headers"]).err().unwrap();
        assert!(
            e.to_string()
                .ends_with("unknown options `header`, `timout` and `zzz`; hint: valid options: timeout, headers"),
            "{e}"
        );
    }

    #[test]
    fn wrong_types_quote_the_value() {
        let mut m = Map::new();
        m.insert("timeout".into(), Dynamic::from("soon"));
        m.insert("insecure".into(), Dynamic::from(3_i64));
        let o = Opts::new(&m, "http::get", &["timeout", "insecure"]).unwrap();
        let e = o.duration("timeout").unwrap_err().to_string();
        assert!(e.contains("option `timeout`: invalid duration \"soon\""), "{e}");
        let e = o.bool("insecure").unwrap_err().to_string();
        assert!(e.ends_with("option `insecure` expects true or false, got int 3"), "{e}");
    }

    #[test]
    fn durations_from_numbers_and_strings() {
        assert_eq!(to_duration(&Dynamic::from(2_i64), "x").unwrap(), Duration::from_secs(2));
        assert_eq!(to_duration(&Dynamic::from(0.25_f64), "x").unwrap(), Duration::from_millis(250));
        assert_eq!(to_duration(&Dynamic::from("50ms"), "x").unwrap(), Duration::from_millis(50));
        assert!(to_duration(&Dynamic::from(-1_i64), "x").is_err());
    }
}
