//! Threshold conditions (`p(95) < 300`) and selectors (`http_req_duration{name:x}`):
//! never a panic, and a parsed condition's text parses again.
#![no_main]
use libfuzzer_sys::fuzz_target;
use volley::metrics::{Condition, Selector};

fuzz_target!(|text: &str| {
    if let Ok(c) = Condition::parse(text) {
        let shown = c.to_string();
        assert!(Condition::parse(&shown).is_ok(), "{text:?} -> {shown:?} does not parse back");
    }
    let _ = Selector::parse(text);
});
