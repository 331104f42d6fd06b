//! Loading a script and `volley check` on it, with every diagnostic rendered (carets,
//! wide characters, positions past the end): never a panic, a hang or a stack overflow.
#![no_main]
mod checks {
    include!("checks.rs");
}
use std::path::PathBuf;
use std::sync::OnceLock;

fn script_path() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("volley-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temp dir");
        dir.join("scenario.rhai")
    })
}

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| checks::script_check(script_path(), bytes));
