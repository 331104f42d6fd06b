//! Threshold conditions (`p(95) < 300`) and selectors (`http_req_duration{name:x}`):
//! never a panic, and a parsed condition's text parses again.
#![no_main]
mod checks {
    include!("checks.rs");
}

libfuzzer_sys::fuzz_target!(|text: &str| checks::threshold(text));
