//! Tag expressions of `volley run --tags` (`pz and not slow`): never a panic, and an
//! expression that parses can be evaluated.
#![no_main]
mod checks {
    include!("checks.rs");
}

libfuzzer_sys::fuzz_target!(|text: &str| checks::tagexpr(text));
