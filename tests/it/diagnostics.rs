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
        stop: Default::default(),
        listeners: Vec::new(),
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
diag_test!(wrong_argument_type, ExitCode::ScriptError);
diag_test!(retry_option_typo, ExitCode::ScriptError);
diag_test!(index_out_of_bounds, ExitCode::ScriptError);
diag_test!(divide_by_zero, ExitCode::ScriptError);
diag_test!(throw_in_phase, ExitCode::ScriptError);
diag_test!(bad_expect_condition, ExitCode::ScriptError);
diag_test!(phase_inside_iteration, ExitCode::ScriptError);
diag_test!(duplicate_phase_name, ExitCode::ScriptError);
diag_test!(unclosed_brace, ExitCode::ScriptError);
diag_test!(map_arrow, ExitCode::ScriptError);
diag_test!(metric_bad_name, ExitCode::ScriptError);
diag_test!(http_option_typo, ExitCode::ScriptError);
diag_test!(threshold_stat_for_kind, ExitCode::ScriptError);
diag_test!(runaway_recursion, ExitCode::ScriptError);
diag_test!(string_too_long, ExitCode::ScriptError);
diag_test!(module_syntax_error, ExitCode::ScriptError);
diag_test!(http_option_wrong_type, ExitCode::ScriptError);
diag_test!(sleep_range_reversed, ExitCode::ScriptError);
diag_test!(metric_value_type, ExitCode::ScriptError);
diag_test!(data_missing_file, ExitCode::ScriptError);
diag_test!(data_outside_dir, ExitCode::ScriptError);
diag_test!(data_ragged_csv, ExitCode::ScriptError);
diag_test!(unknown_global_function, ExitCode::ScriptError);

#[test]
fn a_missing_script_is_a_usage_error() {
    let (exit, text) = diagnose("does_not_exist");
    assert_eq!(exit, ExitCode::Usage);
    assert!(text.starts_with("error: cannot read tests/fixtures/diag/does_not_exist.rhai: "), "{text}");
}
