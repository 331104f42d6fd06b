//! The fuzz targets' committed corpora replayed through their checks (the same code the
//! libFuzzer binaries run, `fuzz/fuzz_targets/checks.rs`): every input found while
//! fuzzing stays free of panics, and the checks keep compiling on stable.

#[allow(dead_code)]
mod checks {
    include!("../../fuzz/fuzz_targets/checks.rs");
}

use std::path::{Path, PathBuf};

/// The inputs of one target's corpus, by file name (sorted, so a failure repeats).
fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .collect();
    files.sort();
    assert!(files.len() >= 100, "{}: only {} inputs; the corpus is committed", dir.display(), files.len());
    files.into_iter().map(|p| (p.clone(), std::fs::read(&p).expect("a corpus file"))).collect()
}

/// Runs `check` on every input of `target` (as text where libFuzzer would: inputs that
/// are not UTF-8 never reach a `&str` target).
fn replay_text(target: &str, check: fn(&str)) -> usize {
    let mut ran = 0;
    for (path, bytes) in corpus(target) {
        if let Ok(text) = std::str::from_utf8(&bytes) {
            let outcome = std::panic::catch_unwind(|| check(text));
            assert!(outcome.is_ok(), "{target}: {} panics", path.display());
            ran += 1;
        }
    }
    ran
}

#[test]
fn the_text_corpora_replay_without_a_panic() {
    for (target, check) in [
        ("duration", checks::duration as fn(&str)),
        ("slo", checks::slo),
        ("tagexpr", checks::tagexpr),
        ("threshold", checks::threshold),
    ] {
        let ran = replay_text(target, check);
        assert!(ran >= 100, "{target}: only {ran} UTF-8 inputs replayed");
    }
}

#[test]
fn the_script_corpus_loads_and_checks_without_a_panic() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("scenario.rhai");
    let inputs = corpus("script_check");
    for (file, bytes) in &inputs {
        let outcome = std::panic::catch_unwind(|| checks::script_check(&path, bytes));
        assert!(outcome.is_ok(), "script_check: {} panics", file.display());
    }
}
