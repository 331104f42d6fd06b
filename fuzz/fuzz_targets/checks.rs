// The fuzz targets' checks, one function a target. The libFuzzer binaries
// (fuzz_targets/*.rs) call them, and so does volley's corpus replay test
// (tests/it/fuzz.rs), which keeps them compiling on stable in every CI run and replays
// the committed corpora through them. Plain items (no inner attributes): both sides
// `include!` this file.

/// Durations and sizes as users write them: never a panic, and a parsed duration
/// printed by volley parses back to itself.
pub fn duration(text: &str) {
    if let Ok(d) = volley::duration::parse_duration(text) {
        let shown = volley::duration::format_duration(d);
        let again = volley::duration::parse_duration(&shown);
        assert!(again.is_ok(), "{text:?} -> {d:?} -> {shown:?} does not parse back: {again:?}");
    }
    let _ = volley::size::parse_size(text);
    if let Ok(secs) = text.trim().parse::<f64>() {
        let _ = volley::duration::from_seconds(secs);
    }
}

/// Loading a script and `volley check` on it, with every diagnostic rendered (carets,
/// wide characters, positions past the end): never a panic, a hang or a stack overflow.
/// `path` is where the script is written (a file of the caller's own).
pub fn script_check(path: &std::path::Path, bytes: &[u8]) {
    std::fs::write(path, bytes).expect("the script is written");
    match volley::script::load(path) {
        Ok(loaded) => {
            for d in volley::script::check::check(&loaded) {
                let _ = d.render(&loaded.sources);
            }
        }
        Err((d, sources)) => {
            let _ = d.render(&sources);
        }
    }
}

/// SLO files (TOML thresholds, environments, grades): never a panic, whatever the text
/// and the environment asked for.
pub fn slo(text: &str) {
    let _ = volley::engine::slo::parse(text, "fuzz.toml", None);
    let _ = volley::engine::slo::parse(text, "fuzz.toml", Some("staging"));
}

/// Tag expressions of `volley run --tags` (`pz and not slow`): never a panic, and an
/// expression that parses can be evaluated.
pub fn tagexpr(text: &str) {
    if let Ok(e) = volley::tagexpr::TagExpr::parse(text) {
        let _ = e.matches(&["pz".to_string(), "amqp".to_string(), "smoke".to_string()]);
    }
}

/// Threshold conditions (`p(95) < 300`) and selectors (`http_req_duration{name:x}`):
/// never a panic, and a parsed condition's text parses again.
pub fn threshold(text: &str) {
    use volley::metrics::{Condition, Selector};
    if let Ok(c) = Condition::parse(text) {
        let shown = c.to_string();
        assert!(Condition::parse(&shown).is_ok(), "{text:?} -> {shown:?} does not parse back");
    }
    let _ = Selector::parse(text);
}
