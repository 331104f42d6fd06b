//! Durations and sizes as users write them: never a panic, and a parsed duration
//! printed by volley parses back to itself.
#![no_main]
mod checks {
    include!("checks.rs");
}

libfuzzer_sys::fuzz_target!(|text: &str| checks::duration(text));
