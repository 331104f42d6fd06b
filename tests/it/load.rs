//! Issue 14: randomness and `--seed`, weighted tasks, groups, thresholds that stop a
//! run (`abort_on_fail`) and sliding windows, load overrides and levels — against real
//! servers over 127.0.0.1.

use crate::support::{self, script};
use std::collections::BTreeSet;
use volley::engine::{self, ExitCode, RunConfig, RunReport};
use volley::executor::Overrides;

fn config(path: &std::path::Path, env: &[(&str, &str)]) -> RunConfig {
    let mut c = RunConfig::new(path);
    c.env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    c.workers = 2;
    c
}

fn run(c: &RunConfig) -> RunReport {
    match engine::run(c) {
        Ok(r) => r,
        Err(f) => panic!("run failed to start: {}", f.rendered),
    }
}

fn summary(r: &RunReport) -> String {
    volley::report::summary::render(r)
}

/// Every VU's choices, as the names of the checks it recorded.
const CHOICES: &str = r#"
phase("draw", #{ executor: "per-vu-iterations", vus: 4, iterations: 25 }, || {
    let choice = `${vu_id()}/${vu_iteration()}: ${rand_int(0, 1000000)} ${pick(["a", "b", "c"])} ${pick_weighted(#{ x: 1, y: 2 })} ${uuid()} ${random_string(6)} ${rand_float(0.0, 1.0)}`;
    check((), choice, true);
    sleep(rand_float(0.0, 0.003));
});
"#;

fn choices(seed: Option<u64>, workers: usize) -> BTreeSet<String> {
    let (_d, path) = script(CHOICES);
    let mut c = config(&path, &[]);
    c.seed = seed;
    c.workers = workers;
    let r = run(&c);
    assert_eq!(r.exit, ExitCode::Passed, "{}", summary(&r));
    r.checks.iter().map(|c| c.name.clone()).collect()
}

#[test]
fn a_seed_reproduces_every_vus_choices_whatever_the_scheduling() {
    let one = choices(Some(42), 1);
    assert_eq!(one.len(), 100, "one check per iteration");
    assert_eq!(one, choices(Some(42), 2), "same seed, other worker count: same choices");
    assert_ne!(one, choices(Some(43), 2), "another seed: other choices");
    assert_ne!(choices(None, 2), choices(None, 2), "no seed: fresh choices");
    assert_eq!(
        volley::report::load_line(&{
            let (_d, path) = script("rand();");
            let mut c = config(&path, &[]);
            c.seed = Some(7);
            run(&c)
        }),
        Some("seed 7".to_string())
    );
}

#[test]
fn random_mistakes_are_errors_at_the_call() {
    for (text, message) in [
        ("rand_int(5, 1);", "rand_int: max (1) is below min (5)"),
        ("pick([]);", "pick: the array is empty"),
        ("pick_weighted(#{ a: -1 });", "the weight of \"a\" must be a number >= 0"),
        ("random_string(-2);", "random_string: length must be between 0"),
    ] {
        let (_d, path) = script(text);
        let r = run(&config(&path, &[]));
        assert_eq!(r.exit, ExitCode::ScriptError, "{text}");
        let e = r.script_error.unwrap_or_default();
        assert!(e.contains(message) && e.contains("scenario.rhai:1:"), "{text}: {e}");
    }
}

#[test]
fn the_mix_example_splits_70_30_within_2_points_over_2000_iterations() {
    let sim = volley::sim::SimHandle::start(volley::sim::SimConfig::default(), "127.0.0.1:0".parse().unwrap()).unwrap();
    let focus = sim.focus_url();
    let mut c = config(std::path::Path::new("examples/mix.rhai"), &[("FOCUS_URL", &focus)]);
    c.seed = Some(42);
    let r = run(&c);
    assert_eq!(r.exit, ExitCode::Passed, "{}", summary(&r));
    let count = |name: &str| r.requests.iter().find(|q| q.name == name).map_or(0, |q| q.count);
    let (ack, channels) = (count("ack"), count("channels"));
    assert_eq!(ack + channels, 2000);
    let share = ack as f64 / 2000.0;
    assert!((share - 0.70).abs() <= 0.02, "ack share {share}");
    // One group per endpoint, with the same counts.
    let groups: Vec<(&str, u64, u64)> = r.groups.iter().map(|g| (g.name.as_str(), g.count, g.requests)).collect();
    assert_eq!(groups, [("ack", ack, ack), ("channels", channels, channels)]);
}

#[test]
fn weighted_tasks_and_groups_are_reported_per_task_and_per_group() {
    let server = support::start();
    let (_d, path) = script(
        r#"
let base = env("BASE_URL");
fn browse() {
    let b = env("BASE_URL");
    group("catalog", || { http::get(`${b}/ok`, #{ name: "catalog" }); });
}
let shop = phase("shop", #{ executor: "per-vu-iterations", vus: 4, iterations: 100 }, #{
    browse: 3,
    buy: #{ weight: 1, run: || {
        group("checkout", || {
            let r = http::get(`${base}/status/503`, #{ name: "pay" });
            check(r, "paid", r.status == 200);
            group("receipt", || { http::get(`${base}/ok`, #{ name: "receipt" }); });
        });
    } },
});
assert(shop.tasks.browse.iterations + shop.tasks.buy.iterations == 400, "every iteration ran one task");
assert(shop.tasks.buy.failed == shop.tasks.buy.iterations, "every buy failed");
"#,
    );
    let mut c = config(&path, &[("BASE_URL", &server.base)]);
    c.seed = Some(1);
    let r = run(&c);
    assert_eq!(r.exit, ExitCode::Passed, "{}", summary(&r));
    let task = |n: &str| r.tasks.iter().find(|t| t.name == n).unwrap_or_else(|| panic!("{n}: {:?}", r.tasks)).clone();
    let (browse, buy) = (task("browse"), task("buy"));
    assert_eq!(browse.count + buy.count, 400);
    // The server saw what each task reports.
    assert_eq!(browse.requests, server.count("/ok") - buy.count, "{browse:?}");
    assert_eq!(buy.requests, 2 * buy.count);
    assert_eq!(server.count("/status/503"), buy.count);
    assert_eq!((buy.failed, browse.failed), (buy.count, 0));
    assert!((browse.share - 0.75).abs() < 0.08, "{browse:?}");
    let group =
        |n: &str| r.groups.iter().find(|g| g.name == n).unwrap_or_else(|| panic!("{n}: {:?}", r.groups)).clone();
    assert_eq!(group("catalog").count, browse.count);
    assert_eq!(group("checkout").count, buy.count);
    assert_eq!((group("checkout").checks_passed, group("checkout").checks_failed), (0, buy.count));
    assert_eq!(group("checkout::receipt").requests, buy.count, "a nested group is named after its parents");
    assert_eq!(group("checkout").requests, 2 * buy.count, "the parent counts its nested group's requests");
    let text = summary(&r);
    assert!(text.contains("\ngroups\n") && text.contains("checkout::receipt") && text.contains("\ntasks\n"), "{text}");
}

#[test]
fn a_task_that_names_no_function_is_an_error_with_a_hint() {
    let (_d, path) = script(
        "fn browse() {}\nphase(\"shop\", #{ executor: \"shared-iterations\", vus: 1, iterations: 1 }, #{ brwose: 1 });\n",
    );
    let r = run(&config(&path, &[]));
    assert_eq!(r.exit, ExitCode::ScriptError);
    let e = r.script_error.unwrap_or_default();
    assert!(e.contains("task \"brwose\" names no function") && e.contains("did you mean `browse`?"), "{e}");
}

/// Counts, not durations, decide the whole run's median: 40 fast requests (well under
/// 1 s even on a slow, loaded machine) outnumber 4 slow ones (1.5 s each, so at least
/// 1.5 s however fast the machine). The slow phase lasts at least 6 s, so some 2 s
/// windows hold only slow requests.
const SLOW_AFTER_FAST: &str = r#"
let base = env("BASE_URL");
phase("fast", #{ executor: "per-vu-iterations", vus: 2, iterations: 20 }, || { http::get(`${base}/ok`); });
phase("slow", #{ executor: "per-vu-iterations", vus: 1, iterations: 4 }, || { http::get(`${base}/slow?ms=1500`); });
"#;

#[test]
fn a_sliding_window_fails_when_any_window_violates_it() {
    let server = support::start();
    // Declared before the load: windows are judged while the run goes.
    let text = format!(
        "threshold(\"http_req_duration\", \"p(50) < 1000\");\nthreshold(\"http_req_duration\", [\"p(50) < 1000 over 2s\", \"p(95) < 10000 over 2s\"]);\n{SLOW_AFTER_FAST}\nthreshold(\"http_reqs\", \"count > 0 over 2s\");\n"
    );
    let (_d, path) = script(&text);
    let r = run(&config(&path, &[("BASE_URL", &server.base)]));
    assert_eq!(r.exit, ExitCode::Failed, "{}", summary(&r));
    let t = |c: &str| r.thresholds.iter().find(|t| t.condition == c).unwrap_or_else(|| panic!("{c}")).clone();
    // Over the whole run the slow second phase hides among ten times more fast requests.
    assert!(t("p(50) < 1000").passed, "{:?}", t("p(50) < 1000"));
    let window = t("p(50) < 1000 over 2s");
    assert!(!window.passed, "{window:?}");
    assert!(window.observed.is_some_and(|v| v >= 1000.0), "{window:?}\n{}", summary(&r));
    let detail = window.detail.clone().unwrap_or_default();
    assert!(detail.contains("2s windows violated it, the first ending at"), "{detail}");
    let loose = t("p(95) < 10000 over 2s");
    assert!(loose.passed && loose.detail.as_deref().unwrap_or("").starts_with("all "), "{loose:?}");
    assert!(summary(&r).contains("p(50) < 1000 over 2s"));
    // Declared after the load: its windows were never watched, and it says so.
    let late = t("count > 0 over 2s");
    assert!(!late.passed && late.error.as_deref().unwrap_or("").contains("declare it before the phases"), "{late:?}");
}

#[test]
fn abort_on_fail_stops_the_run_gracefully_with_exit_99_and_says_why() {
    let server = support::start();
    let (_d, path) = script(
        r#"
let base = env("BASE_URL");
threshold("http_req_duration", "p(95) < 50", #{ abort_on_fail: true });
let p = phase("slow", #{ executor: "constant-vus", vus: 2, duration: "60s" }, || { http::get(`${base}/slow?ms=120`); });
print("never reached");
"#,
    );
    let r = run(&config(&path, &[("BASE_URL", &server.base)]));
    assert_eq!(r.exit, ExitCode::Failed, "{}", summary(&r));
    assert!(!r.interrupted, "an abort is a failure, not an interruption");
    let a = r.aborted.clone().expect("the threshold stopped the run");
    assert_eq!((a.selector.as_str(), a.condition.as_str()), ("http_req_duration", "p(95) < 50"));
    assert!(a.observed.unwrap() >= 50.0, "{a:?}");
    // Stopped soon after the violation (judged each second), far before the 60 s; the
    // bound leaves room for a slow, loaded machine.
    let stop_s = r.elapsed.as_secs_f64();
    assert!(stop_s - a.at_s < 20.0, "violation at {}s, stopped at {stop_s}s", a.at_s);
    assert!(r.phases[0].elapsed.as_secs() < 30, "{:?}", r.phases[0]);
    assert!(!r.thresholds[0].passed);
    // Every report says which threshold stopped the run and when.
    let meta = volley::report::RunMeta { id: "abort".into(), ..Default::default() };
    let why = "threshold http_req_duration p(95) < 50 failed at";
    let text = summary(&r);
    assert!(text.contains(why) && text.contains("the run was stopped"), "{text}");
    assert!(volley::report::markdown::render(&r, &meta).contains(why));
    assert!(volley::report::html::render(&r, &meta).contains(&why.replace('<', "&lt;")));
    let doc = serde_json::to_value(volley::report::json::document(&r, &meta)).unwrap();
    assert_eq!(doc["aborted"]["condition"], "p(95) < 50", "{doc:#}");
    assert_eq!(doc["exit_code"], 99);
    assert!(volley::report::csv::run_facts(&r).contains("stopped_by,http_req_duration p(95) < 50\n"));
}

#[test]
fn abort_waits_for_its_delay() {
    let server = support::start();
    let (_d, path) = script(
        r#"
let base = env("BASE_URL");
threshold("http_req_failed", "rate < 0.5", #{ abort_on_fail: true, delay: "2s" });
phase("failing", #{ executor: "constant-vus", vus: 1, duration: "30s" }, || { http::get(`${base}/status/500`); sleep(0.05); });
"#,
    );
    let r = run(&config(&path, &[("BASE_URL", &server.base)]));
    assert_eq!(r.exit, ExitCode::Failed, "{}", summary(&r));
    let a = r.aborted.expect("aborted");
    assert!(a.at_s >= 2.0, "not before the delay: {a:?}");
    assert!(r.elapsed.as_secs() < 20);
}

#[test]
fn threshold_options_are_checked() {
    for (text, message) in [
        ("threshold(\"http_reqs\", \"count > 1\", #{ abort_on_fial: true });", "abort_on_fial"),
        (
            "threshold(\"http_reqs\", \"count > 1\", #{ delay: \"5s\" });",
            "`delay` only applies with `abort_on_fail: true`",
        ),
        ("threshold(\"http_req_duration\", \"p(95) < 300 over soon\");", "invalid window \"soon\""),
        ("threshold(\"http_req_duration\", \"p(95) < 300 over 500ms\");", "whole seconds"),
    ] {
        let (_d, path) = script(text);
        let r = run(&config(&path, &[]));
        assert_eq!(r.exit, ExitCode::ScriptError, "{text}");
        let e = r.script_error.unwrap_or_default();
        assert!(e.contains(message), "{text}: {e}");
    }
}

const TWO_PHASES: &str = r#"
let base = env("BASE_URL");
phase("warm", #{ executor: "constant-vus", vus: 3, duration: "30s" }, || { http::get(`${base}/ok`); sleep(0.01); });
phase("peak", #{ executor: "constant-arrival-rate", rate: 50, duration: "30s", max_vus: 10 }, || { http::get(`${base}/ok`); });
"#;

#[test]
fn overrides_apply_to_every_phase_or_to_one() {
    let server = support::start();
    let (_d, path) = script(TWO_PHASES);
    let mut c = config(&path, &[("BASE_URL", &server.base)]);
    c.overrides = Overrides { iterations: Some(7), vus: Some(2), ..Default::default() };
    let r = run(&c);
    assert_eq!(r.exit, ExitCode::Passed, "{}", summary(&r));
    let iterations: Vec<u64> = r.phases.iter().map(|p| p.iterations).collect();
    assert_eq!(iterations, [7, 7]);
    assert_eq!(server.count("/ok"), 14);
    assert!(r.phases.iter().all(|p| p.executor == "shared-iterations" && p.vus_max <= 2), "{:?}", r.phases);
    assert_eq!(r.overrides.as_deref(), Some("--vus 2 --iterations 7 (every phase)"));
    assert!(summary(&r).contains("load: overrides --vus 2 --iterations 7 (every phase)"));

    let (_d, path) = script(TWO_PHASES);
    let mut c = config(&path, &[("BASE_URL", &server.base)]);
    c.overrides = Overrides { duration: Some("1s".into()), ..Default::default() };
    let r = run(&c);
    assert!(r.elapsed.as_secs() < 15, "both phases shortened to 1s: {:?}", r.phases);

    let (_d, path) = script(TWO_PHASES);
    let mut c = config(&path, &[("BASE_URL", &server.base)]);
    c.overrides =
        Overrides { duration: Some("1s".into()), rate: Some(20.0), phase: Some("peak".into()), ..Default::default() };
    c.stop = Default::default();
    // Only `peak` is overridden: `warm` must be shortened otherwise, so run it with iterations.
    let text = TWO_PHASES.replace(
        "#{ executor: \"constant-vus\", vus: 3, duration: \"30s\" }",
        "#{ executor: \"shared-iterations\", vus: 1, iterations: 3 }",
    );
    std::fs::write(&path, text).unwrap();
    let r = run(&c);
    assert_eq!(r.exit, ExitCode::Passed, "{}", summary(&r));
    assert_eq!(r.phases[0].overridden, None);
    assert_eq!(r.phases[0].iterations, 3);
    assert_eq!(r.phases[1].overridden.as_deref(), Some("--duration 1s --rate 20"));
    assert!((15..=25).contains(&r.phases[1].iterations), "{:?}", r.phases[1]);
}

const LEVELS: &str = r#"
let base = env("BASE_URL");
let level = levels(#{
    smoke:  #{ vus: 1, iterations: 2, thresholds: #{ "http_req_duration": "p(95) < 1000" } },
    stress: #{ vus: 4, iterations: 40, thresholds: #{ "http_req_duration": ["p(95) < 5000", "max < 10000"] } },
});
phase("main", #{ executor: "constant-vus", vus: 50, duration: "10m" }, || { http::get(`${base}/ok`); });
report("level", level);
"#;

#[test]
fn a_load_level_sets_the_load_and_its_thresholds() {
    let server = support::start();
    for (name, iterations, thresholds) in [("smoke", 2, 1), ("stress", 40, 2)] {
        let (_d, path) = script(LEVELS);
        let mut c = config(&path, &[("BASE_URL", &server.base)]);
        c.level_name = Some(name.into());
        let r = run(&c);
        assert_eq!(r.exit, ExitCode::Passed, "{}", summary(&r));
        assert_eq!(r.phases[0].iterations, iterations);
        assert_eq!(r.thresholds.len(), thresholds);
        assert!(r.thresholds[0].origin.ends_with(&format!("(level {name})")), "{:?}", r.thresholds);
        assert_eq!(r.level.as_deref(), Some(name));
        assert!(summary(&r).contains(&format!("load: level {name}")));
        assert_eq!(r.figures[0].value, serde_json::json!(name));
    }
    let (_d, path) = script(LEVELS);
    let mut c = config(&path, &[("BASE_URL", &server.base)]);
    c.level_name = Some("stres".into());
    let r = run(&c);
    assert_eq!(r.exit, ExitCode::ScriptError);
    let e = r.script_error.unwrap_or_default();
    assert!(e.contains("--level stres: no such level") && e.contains("did you mean `stress`?"), "{e}");
}

#[test]
fn a_level_without_a_table_is_an_error_before_any_load() {
    let server = support::start();
    let (_d, path) = script(TWO_PHASES);
    let mut c = config(&path, &[("BASE_URL", &server.base)]);
    c.level_name = Some("smoke".into());
    let r = run(&c);
    assert_eq!(r.exit, ExitCode::ScriptError);
    assert!(r.script_error.unwrap_or_default().contains("--level smoke: no levels are defined"));
    assert_eq!(server.count("/ok"), 0);
}

#[test]
fn the_command_line_takes_seed_overrides_and_a_levels_file() {
    let server = support::start();
    let (dir, path) = script(TWO_PHASES);
    let file = dir.path().join("levels.toml");
    std::fs::write(&file, "[smoke]\nvus = 1\niterations = 3\n\n[smoke.thresholds]\nhttp_reqs = \"count == 6\"\n")
        .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_volley"))
        .args(["run", "--progress", "off", "--seed", "5", "--level", "smoke", "--levels"])
        .arg(&file)
        .arg(&path)
        .args(["-e", &format!("BASE_URL={}", server.base)])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("load: level smoke · seed 5"), "{stdout}");
    assert!(stdout.contains("✓ http_reqs count == 6"), "{stdout}");
    assert_eq!(server.count("/ok"), 6);
    for (args, message) in [
        (vec!["--vus", "0"], "--vus"),
        (vec!["--duration", "soon"], "--duration \"soon\""),
        (vec!["--rate", "5", "--iterations", "3"], "cannot be used with"),
        (vec!["--phase", "peak"], "--phase NAME limits"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_volley"))
            .args(["run", "--progress", "off"])
            .args(&args)
            .arg(&path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
}

#[test]
fn a_phase_override_that_names_no_phase_fails_the_run_with_the_phases_that_ran() {
    let server = support::start();
    // `warm`'s name is only known at run time: the mismatch is found after the run.
    let (_d, path) = script(
        r#"
let base = env("BASE_URL");
phase(env("FIRST", "warm"), #{ executor: "shared-iterations", vus: 1, iterations: 2 }, || { http::get(`${base}/ok`); });
phase("peak", #{ executor: "shared-iterations", vus: 1, iterations: 3 }, || { http::get(`${base}/ok`); });
"#,
    );
    // `volley run --phase NAME --iterations 1 SCRIPT`: (exit code, stderr).
    let run = |phase: &str, script: &std::path::Path| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_volley"))
            .args(["run", "--progress", "off", "--phase", phase, "--iterations", "1"])
            .arg(script)
            .args(["-e", &format!("BASE_URL={}", server.base)])
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (code, stderr) = run("peek", &path);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("error: --phase \"peek\": no phase of that name ran, so the load overrides applied to nothing; hint: did you mean --phase peak? the phases that ran: peak, warm"),
        "{stderr}"
    );
    // The phases ran as written: the override applied to nothing.
    assert_eq!(server.count("/ok"), 5);
    // A failed threshold does not hide it: the load was not the one asked for.
    let failing = path.with_file_name("failing.rhai");
    let text = std::fs::read_to_string(&path).unwrap() + "threshold(\"http_reqs\", \"count > 1000\");\n";
    std::fs::write(&failing, text).unwrap();
    let (code, stderr) = run("peek", &failing);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--phase \"peek\": no phase of that name ran"), "{stderr}");
    assert_eq!(server.count("/ok"), 10);
    // Naming a phase that runs applies it, and passes.
    let (code, stderr) = run("peak", &path);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(server.count("/ok"), 10 + 2 + 1);
    // With every phase named by a literal, the mismatch is refused before any load.
    let literal = path.with_file_name("literal.rhai");
    std::fs::write(&literal, std::fs::read_to_string(&path).unwrap().replace("env(\"FIRST\", \"warm\")", "\"warm\""))
        .unwrap();
    let (code, stderr) = run("peek", &literal);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("error: --phase \"peek\": the script has no phase of that name, so the load overrides would apply to nothing; hint: did you mean --phase peak? its phases: peak, warm"),
        "{stderr}"
    );
    assert_eq!(server.count("/ok"), 13, "nothing ran");
}

#[test]
fn check_knows_the_new_functions_and_their_mistakes() {
    let (_d, path) = script(CHECK_ME);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_volley")).arg("check").arg(&path).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stderr), String::from_utf8_lossy(&out.stdout));
    for expected in [
        "scenario.rhai:2:21",
        "rand_int: max (1) is below min (5)",
        "scenario.rhai:3:14",
        "pick: the array is empty",
        "scenario.rhai:4:23",
        "the weight of \"a\" must be a number >= 0",
        "scenario.rhai:5:23",
        "random_string: length must be between 0",
        "scenario.rhai:6:7",
        "contains \"::\"",
        "scenario.rhai:7:37",
        "did you mean `abort_on_fail`?",
        "scenario.rhai:8:37",
        "`delay` only applies with `abort_on_fail: true`",
        "scenario.rhai:9:32",
        "it must be whole seconds",
        "scenario.rhai:10:8",
        "did you mean `vus`?",
        "scenario.rhai:11:77",
        "task \"brwose\" names no function",
        "did you mean `browse`?",
        "10 problem(s)",
    ] {
        assert!(text.contains(expected), "{expected}:\n{text}");
    }
    assert!(!text.contains("unknown function"), "rand, rand_float, uuid, level are known:\n{text}");
    let (_d, path) = script(GOOD);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_volley")).arg("check").arg(&path).output().unwrap();
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}

const GOOD: &str = r#"
fn browse() { group("catalog", || { sleep(rand_float(0.0, 0.1)); }); }
let level = levels(#{ smoke: #{ vus: 1, duration: "10s", thresholds: #{ "http_req_duration": "p(95) < 100" } } });
threshold("http_req_duration", "p(95) < 300 over 30s", #{ abort_on_fail: true, delay: "10s" });
threshold("http_req_failed", ["rate < 0.01", "rate < 0.05 over 10s"], #{ abort_on_fail: true });
phase("shop", #{ executor: "constant-vus", vus: 2, duration: "1s" }, #{ browse: 7, buy: #{ weight: 3, run: || { print(uuid()); } } });
print(`${rand()} ${rand_int(1, 6)} ${pick([1, 2])} ${pick_weighted(#{ a: 70, b: 30 })} ${random_string(8)} ${level()}`);
"#;

const CHECK_ME: &str = r#"fn browse() {}
let x = rand_int(5, 1);
let y = pick([]);
let z = pick_weighted(#{ a: -1, b: 2 });
let s = random_string(-3);
group("a::b", || {});
threshold("http_reqs", "count > 1", #{ abort_on_fial: true });
threshold("http_reqs", "count > 1", #{ delay: "5s" });
threshold("http_req_duration", "p(95) < 300 over 0.5s");
levels(#{ smoke: #{ vu: 1 } });
phase("shop", #{ executor: "shared-iterations", vus: 1, iterations: 1 }, #{ brwose: 1, browse: 2 });
let ok = rand() + rand_float(0.0, 1.0);
print(uuid());
print(level());
"#;

#[test]
fn custom_metrics_groups_and_tasks_reach_every_report() {
    let (dir, path) = script(
        r#"
let t = metrics::trend("order_ms");
let c = metrics::counter("orders_placed");
let g = metrics::gauge("queue_depth");
let r = metrics::rate("order_ok");
phase("p", #{ executor: "per-vu-iterations", vus: 2, iterations: 10 }, #{
    buy: #{ weight: 1, run: || { group("checkout", || { t.add(rand_float(1.0, 5.0)); c.add(1); g.add(3); r.add(true); }); } },
});
"#,
    );
    let out = dir.path().join("out");
    let o = |kind: &str, target: &str| format!("{kind}={}", out.join(target).display());
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_volley"))
        .args(["run", "--progress", "off", "--seed", "9"])
        .arg(&path)
        .args(["--out", &o("json", "r.json"), "--out", &o("csv", "r"), "--out", &o("md", "r.md")])
        .args(["--out", &o("html", "r.html"), "--junit"])
        .arg(out.join("j.xml"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&status.stdout).to_string();
    assert_eq!(status.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&status.stderr));
    let read = |f: &str| std::fs::read_to_string(out.join(f)).unwrap();
    let csv = format!("{}{}{}", read("r_metrics.csv"), read("r_groups.csv"), read("r_tasks.csv"));
    for (name, text) in [
        ("summary", stdout),
        ("json", read("r.json")),
        ("csv", csv),
        ("md", read("r.md")),
        ("html", read("r.html")),
        ("junit", read("j.xml")),
    ] {
        for metric in ["order_ms", "orders_placed", "queue_depth", "order_ok", "checkout", "buy"] {
            assert!(text.contains(metric), "{name} lacks {metric}:\n{text}");
        }
    }
    let doc: serde_json::Value = serde_json::from_str(&read("r.json")).unwrap();
    assert_eq!(doc["metrics"]["orders_placed"]["stats"]["count"], 20.0, "{doc:#}");
    assert_eq!(doc["tasks"][0]["count"], 20);
    assert_eq!(doc["groups"][0]["name"], "checkout");
    assert_eq!(doc["load"]["seed"], 9);
}

#[test]
fn list_functions_documents_the_new_functions_with_examples() {
    let out =
        std::process::Command::new(env!("CARGO_BIN_EXE_volley")).args(["check", "--list-functions"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for f in [
        "rand(",
        "rand_int(",
        "rand_float(",
        "pick(",
        "pick_weighted(",
        "uuid(",
        "random_string(",
        "group(",
        "levels(",
        "level(",
        "phase(name: &str, options: Map, tasks: Map)",
        "threshold(selector: &str, condition: &str, options: Map)",
    ] {
        let entry = text.split("\n\n").find(|e| e.starts_with(f)).unwrap_or_else(|| panic!("{f} missing"));
        assert!(entry.contains("```rhai"), "{f} has no example:\n{entry}");
    }
}

#[test]
fn after_an_abort_the_next_script_of_a_suite_still_runs() {
    let server = support::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.rhai"),
        "let b = env(\"BASE_URL\");\nthreshold(\"http_req_failed\", \"rate < 0.5\", #{ abort_on_fail: true });\nphase(\"x\", #{ executor: \"constant-vus\", vus: 1, duration: \"30s\" }, || { http::get(`${b}/status/500`); sleep(0.05); });\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("b.rhai"),
        "http::get(`${env(\"BASE_URL\")}/ok`);\nthreshold(\"http_reqs\", \"count == 1\");\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_volley"))
        .args(["run", "--progress", "off"])
        .arg(dir.path())
        .args(["-e", &format!("BASE_URL={}", server.base)])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(99), "{stdout}");
    assert_eq!(server.count("/ok"), 1, "b ran after a was stopped:\n{stdout}");
    assert!(stdout.contains("stopped: threshold http_req_failed rate < 0.5 failed at"), "{stdout}");
}
