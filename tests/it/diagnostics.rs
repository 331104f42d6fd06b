//! Diagnostics for broken scripts: exact text (snapshots) and exit codes. None panics.

use volley::engine::{self, ExitCode, RunConfig};

/// Runs a fixture and returns (exit code, the diagnostic text).
fn diagnose(name: &str) -> (ExitCode, String) {
    let config = RunConfig {
        script: format!("tests/fixtures/diag/{name}.rhai").into(),
        env: Default::default(),
        workers: 1,
        time_scale: 1.0,
        progress: engine::progress::ProgressMode::Off,
    };
    match engine::run(&config) {
        Err(f) => (f.exit, f.rendered),
        Ok(r) => {
            let mut text = r.script_error.clone().unwrap_or_default();
            for e in &r.iteration_errors {
                text.push_str(&format!("[{} iteration(s)]\n{}", e.count, e.rendered));
            }
            (r.exit, text)
        }
    }
}

macro_rules! diag_test {
    ($name:ident, $exit:expr) => {
        #[test]
        fn $name() {
            let (exit, text) = diagnose(stringify!($name));
            assert_eq!(exit, $exit, "{text}");
            insta::assert_snapshot!(stringify!($name), text);
        }
    };
}

diag_test!(parse_missing_semicolon, ExitCode::ScriptError);
diag_test!(unknown_function, ExitCode::ScriptError);
diag_test!(bad_executor, ExitCode::ScriptError);
diag_test!(bad_url, ExitCode::ScriptError);
diag_test!(scope_variable, ExitCode::ScriptError);
diag_test!(module_runtime_error, ExitCode::ScriptError);
diag_test!(bad_threshold, ExitCode::ScriptError);
diag_test!(bad_duration, ExitCode::ScriptError);
diag_test!(missing_env, ExitCode::ScriptError);
diag_test!(missing_module, ExitCode::ScriptError);
diag_test!(metric_kind_conflict, ExitCode::ScriptError);

#[test]
fn a_missing_script_is_a_usage_error() {
    let (exit, text) = diagnose("does_not_exist");
    assert_eq!(exit, ExitCode::Usage);
    assert!(text.starts_with("error: cannot read tests/fixtures/diag/does_not_exist.rhai: "), "{text}");
}
