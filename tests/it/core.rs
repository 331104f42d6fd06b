//! Issue 10, "one run, one value": each defect the old core had, as a test. A run owns
//! its metric registry and stop handle, its history adds up to its totals, protocols
//! and custom metrics reach every report, and the verdict is decided once.

use crate::support::{self, run, run_with, script};
use std::process::Command;
use std::time::Duration;
use volley::engine::{ExitCode, RunConfig, RunReport};
use volley::metrics::Stat;

fn total(r: &RunReport, metric: &str) -> u64 {
    r.aggregate.query(metric, &[]).and_then(|s| s.stat(Stat::Count, Duration::ZERO).ok().flatten()).unwrap_or(0.0)
        as u64
}

/// The history's rows add up exactly to the run's totals, one row per second.
fn assert_history_exact(r: &RunReport) {
    let rows = r.aggregate.history();
    let requests: u64 = rows.iter().map(|h| h.requests).sum();
    let iterations: u64 = rows.iter().map(|h| h.iterations).sum();
    assert_eq!(requests, total(r, "http_reqs"), "history {rows:?}");
    assert_eq!(iterations, total(r, "iterations"), "history {rows:?}");
    let seconds = r.elapsed.as_secs_f64().ceil().max(1.0) as usize;
    assert!(rows.len() >= seconds, "{} rows for {:?}", rows.len(), r.elapsed);
    let last = rows.last().unwrap();
    assert!((last.t_s - r.elapsed.as_secs_f64()).abs() < 1e-6 || last.t_s > r.elapsed.as_secs_f64(), "{last:?}");
    for (i, w) in rows.windows(2).enumerate() {
        assert!(w[0].t_s < w[1].t_s, "row {i} out of order: {rows:?}");
    }
}

fn volley() -> Command {
    Command::new(env!("CARGO_BIN_EXE_volley"))
}

#[test]
fn a_metric_may_change_kind_between_two_runs_in_one_process() {
    // Defect 1: the registry was process-wide; a watch re-run failed "already a counter".
    let (_d, a) = script(r#"let x = metrics::counter("x"); x.add(1); threshold("x", "count == 1");"#);
    let (_e, b) = script(r#"let x = metrics::trend("x"); x.add(5.0); threshold("x", "max == 5");"#);
    for path in [&a, &b, &a] {
        let r = run_with(path, &[], 1.0);
        assert_eq!(r.exit, ExitCode::Passed, "{}", volley::report::summary::render(&r));
    }
}

#[test]
fn a_suite_may_use_one_metric_name_with_two_kinds() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.rhai"), "let x = metrics::counter(\"x\"); x.add(1);\n").unwrap();
    std::fs::write(dir.path().join("b.rhai"), "let x = metrics::rate(\"x\"); x.add(true);\n").unwrap();
    let out = volley().args(["run", "--progress", "off"]).arg(dir.path()).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{text}");
}

#[test]
fn two_runs_in_parallel_in_one_process_do_not_see_each_other() {
    let server = support::start();
    let body = |n: u32| {
        format!(
            "let base = env(\"BASE_URL\");\nlet m = metrics::counter(\"mine\");\nphase(\"p\", #{{ executor: \"shared-iterations\", vus: 2, iterations: {n} }}, || {{ http::get(`${{base}}/ok`); m.add(1); }});\n"
        )
    };
    let (_d, a) = script(&body(30));
    let (_e, b) = script(&body(70));
    let base = server.base.clone();
    let base2 = base.clone();
    let ta = std::thread::spawn(move || run(&a, &base));
    let tb = std::thread::spawn(move || run(&b, &base2));
    let (ra, rb) = (ta.join().unwrap(), tb.join().unwrap());
    assert_eq!((total(&ra, "http_reqs"), total(&ra, "mine")), (30, 30));
    assert_eq!((total(&rb, "http_reqs"), total(&rb, "mine")), (70, 70));
    assert_eq!(server.count("/ok"), 100);
    assert_history_exact(&ra);
    assert_history_exact(&rb);
}

#[test]
fn history_is_exact_for_a_closed_run_with_top_level_requests() {
    // Defect 3: 100 requests gave a history of 90; top-level requests never got a row.
    let server = support::start();
    let (_d, path) = script(
        r#"
        let base = env("BASE_URL");
        for i in 0..7 { http::get(`${base}/ok`, #{ name: "setup" }); }
        phase("p", #{ executor: "shared-iterations", vus: 4, iterations: 100 }, || {
            http::get(`${base}/slow?ms=15`, #{ name: "work" });
        });
        for i in 0..3 { http::get(`${base}/ok`, #{ name: "cleanup" }); }
        "#,
    );
    let r = run(&path, &server.base);
    assert_eq!(r.exit, ExitCode::Passed);
    assert_eq!(total(&r, "http_reqs"), 110);
    assert_history_exact(&r);
}

#[test]
fn history_is_exact_for_a_sub_second_run() {
    let server = support::start();
    let (_d, path) = script(
        r#"
        let base = env("BASE_URL");
        phase("p", #{ executor: "shared-iterations", vus: 2, iterations: 10 }, || { http::get(`${base}/ok`); });
        "#,
    );
    let r = run(&path, &server.base);
    assert_eq!(total(&r, "http_reqs"), 10);
    assert_history_exact(&r);
    let rows = r.aggregate.history();
    assert_eq!(rows.last().unwrap().t_s, r.elapsed.as_secs_f64(), "the last row ends with the run");
}

#[test]
fn history_is_exact_for_an_open_run_and_shows_busy_vus() {
    // Defect 6: an open model showed `vus 0` while iterations ran.
    let server = support::start();
    let (_d, path) = script(
        r#"
        let base = env("BASE_URL");
        phase("open", #{ executor: "constant-arrival-rate", rate: 40, duration: "2500ms", pre_allocated_vus: 4, max_vus: 8 }, || {
            http::get(`${base}/slow?ms=20`);
        });
        "#,
    );
    let r = run(&path, &server.base);
    assert_eq!(r.exit, ExitCode::Passed, "{}", volley::report::summary::render(&r));
    // Every scheduled arrival either ran or was dropped (a slow machine may keep all 8
    // VUs busy); each iteration made one request.
    let (iterations, dropped) = (total(&r, "iterations"), total(&r, "dropped_iterations"));
    assert_eq!(iterations + dropped, 100, "iterations {iterations}, dropped {dropped}");
    assert_eq!(total(&r, "http_reqs"), iterations);
    assert!(iterations >= 20, "iterations {iterations}, dropped {dropped}");
    assert_history_exact(&r);
    let rows = r.aggregate.history();
    let busy: Vec<u64> = rows.iter().filter(|h| h.requests > 0).map(|h| h.vus).collect();
    assert!(busy.iter().all(|&v| v >= 1), "every second with requests had a busy VU: {busy:?}");
}

#[test]
fn history_is_exact_for_an_interrupted_run() {
    let server = support::start();
    let (_d, path) = script(
        r#"
        let base = env("BASE_URL");
        phase("long", #{ executor: "constant-vus", vus: 3, duration: "60s" }, || {
            http::get(`${base}/slow?ms=10`);
        });
        "#,
    );
    let mut config = RunConfig::new(&path);
    config.env.insert("BASE_URL".into(), server.base.clone());
    config.workers = 2;
    let stop = config.stop.clone();
    let watcher = {
        let seen = server.seen.clone();
        std::thread::spawn(move || {
            // Interrupt once the server has seen 150 requests (bounded wait).
            for _ in 0..2000 {
                if seen.requests.load(std::sync::atomic::Ordering::SeqCst) >= 150 {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            stop.interrupt();
        })
    };
    let r = volley::engine::run(&config).unwrap_or_else(|f| panic!("{}", f.rendered));
    watcher.join().unwrap();
    assert_eq!(r.exit, ExitCode::Interrupted);
    // Requests in flight at the interrupt reached the server but are not counted (their
    // iterations were interrupted): at most one per VU.
    let (sent, seen) = (total(&r, "http_reqs"), server.count("/slow"));
    assert!(sent >= 140 && sent <= seen && seen - sent <= 3, "volley {sent}, server {seen}");
    assert_history_exact(&r);
}

#[test]
fn live_listeners_get_every_row_of_their_run() {
    let server = support::start();
    let (_d, path) = script(
        r#"
        let base = env("BASE_URL");
        phase("p", #{ executor: "constant-vus", vus: 2, duration: "1500ms" }, || { http::get(`${base}/slow?ms=10`); });
        "#,
    );
    let (tx, rx) = std::sync::mpsc::sync_channel(100);
    let mut config = RunConfig::new(&path);
    config.env.insert("BASE_URL".into(), server.base.clone());
    config.listeners.push(tx);
    let r = volley::engine::run(&config).unwrap_or_else(|f| panic!("{}", f.rendered));
    drop(config);
    let rows: Vec<_> = rx.iter().collect();
    assert_eq!(rows.len(), r.aggregate.history().len());
    assert_eq!(rows.iter().map(|h| h.requests).sum::<u64>(), total(&r, "http_reqs"));
}

#[test]
fn custom_and_protocol_metrics_reach_the_summary_and_every_file() {
    // Defect 2: custom metrics appeared only as a threshold's `observed`; an AMQP-only
    // run had no latency table and its failures were in no `errors_by_kind`.
    let (dir, path) = script(
        r#"
        amqp::url("amqp://guest:guest@127.0.0.1:9/%2f");
        let t = metrics::trend("alert_e2e_ms");
        let c = metrics::counter("alerts_sent");
        phase("p", #{ executor: "shared-iterations", vus: 1, iterations: 6 }, || {
            t.add(12.5);
            c.add(2);
            let r = amqp::publish("", "volley-core-test", #{ n: 1 });
        });
        "#,
    );
    let (json, md, html, csv) =
        (dir.path().join("r.json"), dir.path().join("r.md"), dir.path().join("r.html"), dir.path().join("r"));
    let out = volley()
        .args(["run", "--progress", "off"])
        .arg(&path)
        .arg("--out")
        .arg(format!("json={}", json.display()))
        .arg("--out")
        .arg(format!("md={}", md.display()))
        .arg("--out")
        .arg(format!("html={}", html.display()))
        .arg("--out")
        .arg(format!("csv={}", csv.display()))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(stdout.contains("alert_e2e_ms"), "{stdout}");
    assert!(stdout.contains("alerts_sent") && stdout.contains("count 12"), "{stdout}");
    assert!(stdout.contains("amqp_publish_failed") && stdout.contains("100.00% (6 of 6)"), "{stdout}");
    assert!(stdout.contains("failures by kind: amqp "), "{stdout}");

    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(doc["metrics"]["alert_e2e_ms"]["kind"], "trend");
    assert_eq!(doc["metrics"]["alert_e2e_ms"]["stats"]["count"], 6.0);
    assert_eq!(doc["metrics"]["alert_e2e_ms"]["stats"]["p50"], 12.5);
    assert!(doc["metrics"]["alert_e2e_ms"]["hdr_histogram"].is_string());
    assert_eq!(doc["metrics"]["alerts_sent"]["stats"]["count"], 12.0);
    assert_eq!(doc["metrics"]["amqp_publish_failed"]["stats"]["trues"], 6.0);
    let errors: u64 = doc["errors_by_kind"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(errors, 6, "{}", doc["errors_by_kind"]);
    let history_sum: f64 =
        doc["history"].as_array().unwrap().iter().map(|h| h["counts"]["alerts_sent"].as_f64().unwrap_or(0.0)).sum();
    assert_eq!(history_sum, 12.0);

    for file in [&md, &html] {
        let text = std::fs::read_to_string(file).unwrap();
        assert!(text.contains("alert_e2e_ms") && text.contains("alerts_sent"), "{}", file.display());
        assert!(text.contains("amqp_publish_failed"), "{}", file.display());
    }
    let metrics_csv = std::fs::read_to_string(dir.path().join("r_metrics.csv")).unwrap();
    assert!(metrics_csv.contains("alerts_sent,counter,,custom,count,12"), "{metrics_csv}");
    assert!(metrics_csv.contains("alert_e2e_ms,trend,,custom,p50,12.5"), "{metrics_csv}");
}

#[test]
fn phases_in_the_run_json_use_the_documented_names() {
    // Defect 5: `elapsed: {secs, nanos}` and `dropped` instead of the README's names.
    let (dir, path) = script(r#"phase("p", #{ executor: "shared-iterations", vus: 1, iterations: 3 }, || { });"#);
    let json = dir.path().join("r.json");
    let out = volley()
        .args(["run", "--progress", "off"])
        .arg(&path)
        .arg("--out")
        .arg(format!("json={}", json.display()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let p = &doc["phases"][0];
    assert!(p["elapsed_s"].is_f64(), "{p}");
    assert_eq!(p["dropped_iterations"], 0, "{p}");
    assert_eq!(p["iterations"], 3, "{p}");
    assert!(p.get("elapsed").is_none() && p.get("dropped").is_none(), "{p}");
}

#[test]
fn the_baseline_is_part_of_the_one_verdict_every_output_reads() {
    // Defect 4: exit 99 for a regression while `--out md` said "PASSED, exit code 0".
    let server = support::start();
    let fast = "let base = env(\"BASE_URL\");\nphase(\"p\", #{ executor: \"shared-iterations\", vus: 2, iterations: 20 }, || { http::get(`${base}/slow?ms=5`); });\n";
    let (dir, fast_path) = script(fast);
    let slow_path = dir.path().join("slow.rhai");
    std::fs::write(&slow_path, fast.replace("ms=5", "ms=80")).unwrap();
    let (a, b, md, junit) =
        (dir.path().join("a.json"), dir.path().join("b.json"), dir.path().join("b.md"), dir.path().join("j.xml"));
    let run = |script: &std::path::Path, extra: &[String]| {
        volley()
            .args(["run", "--progress", "off"])
            .arg(script)
            .args(["-e", &format!("BASE_URL={}", server.base)])
            .args(extra)
            .output()
            .unwrap()
    };
    assert_eq!(run(&fast_path, &[format!("--out=json={}", a.display())]).status.code(), Some(0));
    let out = run(
        &slow_path,
        &[
            format!("--out=json={}", b.display()),
            format!("--out=md={}", md.display()),
            format!("--junit={}", junit.display()),
            format!("--baseline={}", a.display()),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(99), "{stdout}");
    assert!(stdout.contains("result: FAILED") && stdout.contains("worse than the baseline"), "{stdout}");
    let md = std::fs::read_to_string(&md).unwrap();
    assert!(md.contains("FAILED") && md.contains("| Exit code | 99 |"), "{md}");
    assert!(md.contains("## Baseline: ❌ worse than the baseline"), "{md}");
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&b).unwrap()).unwrap();
    assert_eq!(doc["exit_code"], 99);
    assert_eq!(doc["verdict"], "failed");
    assert_eq!(doc["baseline"]["regressed"], true);
    let junit = std::fs::read_to_string(&junit).unwrap();
    assert!(junit.contains("<failure"), "{junit}");
}

#[test]
fn reported_figures_reach_the_summary_and_every_output() {
    // Issue 12: catalog "report" figures reached only the terminal.
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("pz_1_fig.rhai");
    std::fs::write(
        &script,
        "// PZ-1: figures\n// tags: demo\nreport(\"cleanup_s\", 1.5);\nreport(\"per_type\", #{ fire: #{ sent: 10, ok: 9 } });\nreport(\"note\", \"queue was new\");\nreport(\"cleanup_s\", 2.25);\n",
    )
    .unwrap();
    let f = |n: &str| dir.path().join(n);
    let out = volley()
        .args(["run", "--progress", "off"])
        .arg(&script)
        .arg(format!("--out=json={}", f("r.json").display()))
        .arg(format!("--out=md={}", f("r.md").display()))
        .arg(format!("--out=html={}", f("r.html").display()))
        .arg(format!("--junit={}", f("j.xml").display()))
        .arg(format!("--json={}", f("s.json").display()))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains(
            "figures\n  cleanup_s  2.25\n  per_type   {\"fire\":{\"ok\":9,\"sent\":10}}\n  note       queue was new\n"
        ),
        "{stdout}"
    );
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(f("r.json")).unwrap()).unwrap();
    assert_eq!(doc["figures"]["cleanup_s"], 2.25);
    assert_eq!(doc["figures"]["per_type"]["fire"]["ok"], 9);
    let suite: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(f("s.json")).unwrap()).unwrap();
    assert_eq!(suite["tests"][0]["figures"]["note"], "queue was new", "{suite}");
    let junit = std::fs::read_to_string(f("j.xml")).unwrap();
    assert!(junit.contains("<property name=\"cleanup_s\" value=\"2.25\"/>"), "{junit}");
    assert!(junit.contains("<property name=\"per_type\" value=\"{&quot;fire&quot;"), "{junit}");
    for file in ["r.md", "r.html"] {
        let text = std::fs::read_to_string(f(file)).unwrap();
        assert!(text.contains("Figures") && text.contains("cleanup_s") && text.contains("2.25"), "{file}: {text}");
    }
}

#[test]
fn stats_of_a_known_metric_with_no_samples_reads_zero() {
    // Issue 11: `stats("amqp_published").count` was empty instead of 0.
    let (_d, path) = script(
        r#"
        let m = metrics::counter("never");
        expect(stats("amqp_published").count, "== 0", "no publishes");
        expect(stats("never").count, "== 0", "custom, never added");
        expect(stats("http_reqs{phase:none}").count, "== 0", "filtered");
        "#,
    );
    let r = run_with(&path, &[], 1.0);
    assert_eq!(r.exit, ExitCode::Passed, "{}", volley::report::summary::render(&r));
}
