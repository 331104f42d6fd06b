//! Durations and sizes as users write them: never a panic, and a parsed duration
//! printed by volley parses back to itself.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(d) = volley::duration::parse_duration(text) {
        let shown = volley::duration::format_duration(d);
        let again = volley::duration::parse_duration(&shown);
        assert!(again.is_ok(), "{text:?} -> {d:?} -> {shown:?} does not parse back: {again:?}");
    }
    let _ = volley::size::parse_size(text);
    if let Ok(secs) = text.trim().parse::<f64>() {
        let _ = volley::duration::from_seconds(secs);
    }
});
