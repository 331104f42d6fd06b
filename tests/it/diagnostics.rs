//! Diagnostics for broken scripts: exact text (snapshots) and exit codes. None panics.

use volley::engine::{self, ExitCode, RunConfig};
use volley::script;

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
        ..volley::engine::RunConfig::new("")
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

/// Runs `volley check`'s checks on a fixture: every diagnostic, rendered.
fn check_fixture(name: &str) -> Vec<String> {
    let path = std::path::PathBuf::from(format!("tests/fixtures/diag/{name}.rhai"));
    match script::load(&path) {
        Ok(loaded) => script::check::check(&loaded).iter().map(|d| d.render(&loaded.sources)).collect(),
        Err((d, sources)) => vec![d.render(&sources)],
    }
}

/// What a user reads in a diagnostic, without where it points: the message lines and
/// the hint.
fn essentials(rendered: &str) -> (String, String) {
    let start = rendered.find("error: ").unwrap_or(0);
    let message: Vec<&str> = rendered[start..].lines().take_while(|l| !l.starts_with(" --> ")).collect();
    let hint = rendered.lines().find(|l| l.starts_with("hint: ")).unwrap_or("").to_string();
    (message.join("\n"), hint)
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

// Issue 11: mistakes `volley run` rejects and `volley check` must report, with the same
// message (options maps of literals, the normal case, were not validated by check).
diag_test!(phase_negative_rate, ExitCode::ScriptError);
diag_test!(phase_missing_duration, ExitCode::ScriptError);
diag_test!(phase_bad_stages, ExitCode::ScriptError);
diag_test!(phase_rate_text, ExitCode::ScriptError);
diag_test!(phase_duration_no_unit, ExitCode::ScriptError);
diag_test!(phase_duration_negative, ExitCode::ScriptError);
diag_test!(phase_vu_for_vus, ExitCode::ScriptError);
diag_test!(phase_in_helper, ExitCode::ScriptError);
diag_test!(expect_words, ExitCode::ScriptError);
diag_test!(stats_bad_selector, ExitCode::ScriptError);
diag_test!(sleep_negative, ExitCode::ScriptError);
diag_test!(sleep_absurd, ExitCode::ScriptError);
diag_test!(sleep_arity, ExitCode::ScriptError);
diag_test!(missing_property, ExitCode::ScriptError);
diag_test!(emoji_before_error, ExitCode::ScriptError);
diag_test!(import_self, ExitCode::ScriptError);
diag_test!(import_cycle, ExitCode::ScriptError);
diag_test!(module_throws, ExitCode::ScriptError);
diag_test!(import_cycle_dynamic, ExitCode::ScriptError);
diag_test!(phase_iteration_timeout_negative, ExitCode::ScriptError);
diag_test!(phase_max_vus_below_pre, ExitCode::ScriptError);
diag_test!(phase_env_default_bad, ExitCode::ScriptError);
diag_test!(script_fn_arity, ExitCode::ScriptError);
diag_test!(recursion_without_end, ExitCode::ScriptError);
diag_test!(recursion_mutual, ExitCode::ScriptError);
diag_test!(closure_parameters, ExitCode::ScriptError);

/// Fixtures whose problem is visible without running: check must report what run does.
const CHECK_SEES: &[&str] = &[
    "bad_executor",
    "bad_duration",
    "bad_threshold",
    "bad_expect_condition",
    "threshold_stat_for_kind",
    "sleep_range_reversed",
    "retry_option_typo",
    "phase_inside_iteration",
    "http_option_typo",
    "http_option_wrong_type",
    "amqp_option_typo",
    "http_max_body_too_large",
    "phase_negative_rate",
    "phase_missing_duration",
    "phase_bad_stages",
    "phase_rate_text",
    "phase_duration_no_unit",
    "phase_duration_negative",
    "phase_vu_for_vus",
    "phase_in_helper",
    "phase_iteration_timeout_negative",
    "phase_max_vus_below_pre",
    "phase_env_default_bad",
    "script_fn_arity",
    "expect_words",
    "stats_bad_selector",
    "sleep_negative",
    "sleep_absurd",
    "sleep_arity",
    "emoji_before_error",
    "import_self",
    "import_cycle",
    "module_throws",
    "missing_module",
    "module_syntax_error",
    "argument_wrong_type",
    "threshold_number_condition",
    "phase_run_twice",
    "phase_rate_absurd",
];

#[test]
fn check_reports_what_run_rejects_with_the_same_message() {
    for name in CHECK_SEES {
        let (_, run) = diagnose(name);
        let check = check_fixture(name);
        assert!(!check.is_empty(), "{name}: check found nothing, run said:\n{run}");
        let want = essentials(&run);
        assert!(
            check.iter().any(|c| essentials(c) == want),
            "{name}: run said\n{run}\ncheck said\n{}",
            check.join("\n")
        );
    }
}

#[test]
fn check_points_at_the_offending_value() {
    let mut text = String::new();
    for name in CHECK_SEES {
        for d in check_fixture(name) {
            text.push_str(&d);
        }
    }
    insta::assert_snapshot!("check_sees", text);
}

#[test]
fn a_clean_script_has_no_check_problems_even_with_a_bom_and_fractional_units() {
    assert_eq!(check_fixture("bom_and_fraction"), Vec::<String>::new());
    let (exit, text) = diagnose("bom_and_fraction");
    assert_eq!(exit, ExitCode::Passed, "{text}");
}

#[test]
fn a_script_that_runs_nothing_is_an_error_in_run_and_check_alike() {
    let bin = env!("CARGO_BIN_EXE_volley");
    for (name, message, check_code) in [
        ("empty_script", "error: the script runs nothing: it has no statements", 107),
        // To `check`, a file of functions only is a module (`volley check stdlib/`).
        ("functions_only", "error: the script runs nothing: it defines smoke but calls none of them", 0),
    ] {
        let (exit, text) = diagnose(name);
        assert_eq!(exit, ExitCode::ScriptError, "{text}");
        assert!(text.starts_with(message), "{text}");
        assert!(text.contains(&format!("tests/fixtures/diag/{name}.rhai")), "{text}");
        assert!(text.contains("hint: a scenario calls phase(name, options"), "{text}");
        let path = format!("tests/fixtures/diag/{name}.rhai");
        let check = std::process::Command::new(bin).args(["check", &path]).output().unwrap();
        let stderr = String::from_utf8_lossy(&check.stderr);
        assert_eq!(check.status.code(), Some(check_code), "{stderr}");
        assert_eq!(stderr.contains(message), check_code != 0, "{stderr}");
    }
    // A module is not a scenario: checked beside the script that imports it, it is fine.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("helpers.rhai"), "fn pause() { sleep(0.01); }\n").unwrap();
    std::fs::write(
        dir.path().join("main.rhai"),
        "import \"helpers\" as h;\nphase(\"p\", #{ executor: \"shared-iterations\", vus: 1, iterations: 1 }, || { h::pause(); });\n",
    )
    .unwrap();
    let check = std::process::Command::new(bin).arg("check").arg(dir.path()).output().unwrap();
    assert_eq!(check.status.code(), Some(0), "{}", String::from_utf8_lossy(&check.stderr));
}

#[test]
fn check_names_a_misspelled_key_of_a_phase_result() {
    // Run reads it as () without a word; check points at it.
    let found = check_fixture("phase_result_typo");
    assert_eq!(found.len(), 4, "{found:?}");
    let (message, hint) = essentials(&found[0]);
    assert_eq!(message, "error: a phase's result has no `sucess_rate` (reading it gives ())");
    assert!(hint.starts_with("hint: did you mean `success_rate`? it has name, executor"), "{hint}");
    assert!(found[0].contains("phase_result_typo.rhai:2:21"), "{}", found[0]);
    // The keys of its distributions and of its checks are fixed too; the median is `med`.
    for (i, (at, message, hint)) in [
        (
            "phase_result_typo.rhai:4:28",
            "error: a phase result's `latency` has no `p50` (reading it gives ())",
            "hint: did you mean `med`? it has avg, min, med, max, p90, p95, p99, p999, count",
        ),
        (
            "phase_result_typo.rhai:5:25",
            "error: a phase result's `iteration_duration` has no `p955` (reading it gives ())",
            "hint: did you mean `p95`? it has avg, min, med",
        ),
        (
            "phase_result_typo.rhai:6:16",
            "error: a phase result's `checks` has no `rates` (reading it gives ())",
            "hint: did you mean `rate`? it has rate, passes, fails, count",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let (m, h) = essentials(&found[i + 1]);
        assert_eq!(m, message, "{}", found[i + 1]);
        assert!(h.starts_with(hint), "{h}");
        assert!(found[i + 1].contains(at), "{}", found[i + 1]);
    }
    // Parameters, block variables and closures named like it, and a phase in a closure
    // beside the same name at the top level, are other values: nothing to say.
    assert_eq!(check_fixture("phase_result_not_a_typo"), Vec::<String>::new());
}

#[test]
fn check_names_a_phase_that_a_loop_runs_twice_by_the_same_name() {
    // Run refuses the second pass after the first one's load; check says so before.
    let found = check_fixture("phase_in_loop");
    assert_eq!(found.len(), 1, "{found:?}");
    let (message, hint) = essentials(&found[0]);
    assert_eq!(
        message,
        "error: phase \"load\" runs on every pass of the loop: the second pass is refused (phase \"load\" was already run)"
    );
    assert_eq!(hint, "hint: give each pass its own name, e.g. phase(`load-${step}`, ...)");
    assert!(found[0].contains("phase_in_loop.rhai:3:5"), "{}", found[0]);
    let (exit, text) = diagnose("phase_in_loop");
    assert_eq!(exit, ExitCode::ScriptError, "{text}");
    assert!(text.contains("phase \"load\" was already run"), "{text}");
    // One pass, a name per pass, a branch, a loop left early: nothing to say.
    assert_eq!(check_fixture("phase_in_loop_once"), Vec::<String>::new());
}

#[test]
fn retry_backoff_past_any_duration_stops_at_the_cap() {
    let (exit, text) = diagnose("retry_huge_backoff");
    assert_eq!(exit, ExitCode::Passed, "{text}");
}

#[test]
fn a_binary_file_is_one_not_utf8_error_with_the_same_exit_code_in_check_and_run() {
    let (exit, text) = diagnose("binary_script");
    assert_eq!(exit, ExitCode::Usage, "{text}");
    assert!(text.starts_with("error: cannot read tests/fixtures/diag/binary_script.rhai: not UTF-8 text"), "{text}");
    let bin = env!("CARGO_BIN_EXE_volley");
    let check =
        std::process::Command::new(bin).args(["check", "tests/fixtures/diag/binary_script.rhai"]).output().unwrap();
    let run = std::process::Command::new(bin).args(["run", "tests/fixtures/diag/binary_script.rhai"]).output().unwrap();
    let check_err = String::from_utf8_lossy(&check.stderr);
    assert_eq!(check.status.code(), Some(ExitCode::Usage.code()), "{check_err}");
    assert_eq!(run.status.code(), check.status.code(), "{}", String::from_utf8_lossy(&run.stderr));
    assert_eq!(check_err.matches("error:").count(), 1, "{check_err}");
    assert!(check_err.contains("not UTF-8 text"), "{check_err}");
}

#[test]
fn absurd_vu_counts_are_refused_before_the_phase_starts() {
    // The numbers in the message are this machine's limits: assert the shape, not them.
    let (exit, text) = diagnose("absurd_vus");
    assert_eq!(exit, ExitCode::ScriptError, "{text}");
    assert!(text.contains("vus: 4294967296 VUs need"), "{text}");
    if cfg!(target_os = "linux") {
        assert!(text.contains("vm.max_map_count"), "{text}");
    }
    let check = check_fixture("absurd_vus");
    assert_eq!(check.len(), 1, "{check:?}");
    // Available memory moves between the two calls: compare the lines that do not.
    let stable =
        |t: &str| essentials(t).0.lines().filter(|l| !l.contains(" of memory ")).collect::<Vec<_>>().join("\n");
    assert_eq!(stable(&check[0]), stable(&text));
    assert!(check[0].contains("absurd_vus.rhai:1:46"), "the caret is on the count: {}", check[0]);
    // Also when another option is only known at run time.
    let check = check_fixture("absurd_vus_dynamic_duration");
    assert_eq!(check.len(), 1, "{check:?}");
    assert_eq!(stable(&check[0]), stable(&text));
}

#[test]
fn a_check_that_throws_is_a_failed_check_counted_with_its_error() {
    let (exit, text) = diagnose("check_throws");
    // Failed (the threshold and the expectations judge the failed checks), not a script error.
    assert_eq!(exit, ExitCode::Failed, "{text}");
    insta::assert_snapshot!("check_throws", text);
}
