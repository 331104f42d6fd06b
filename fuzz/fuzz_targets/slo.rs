//! SLO files (TOML thresholds, environments, grades): never a panic, whatever the text
//! and the environment asked for.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let _ = volley::engine::slo::parse(text, "fuzz.toml", None);
    let _ = volley::engine::slo::parse(text, "fuzz.toml", Some("staging"));
});
