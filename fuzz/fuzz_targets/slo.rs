//! SLO files (TOML thresholds, environments, grades): never a panic, whatever the text
//! and the environment asked for.
#![no_main]
mod checks {
    include!("checks.rs");
}

libfuzzer_sys::fuzz_target!(|text: &str| checks::slo(text));
