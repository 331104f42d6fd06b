//! Tag expressions of `volley run --tags` (`pz and not slow`): never a panic, and an
//! expression that parses can be evaluated.
#![no_main]
use libfuzzer_sys::fuzz_target;
use volley::tagexpr::TagExpr;

fuzz_target!(|text: &str| {
    if let Ok(e) = TagExpr::parse(text) {
        let _ = e.matches(&["pz".to_string(), "amqp".to_string(), "smoke".to_string()]);
    }
});
