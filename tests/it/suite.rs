//! Suite runs: selection by tags and ids, `volley list`, the suite exit code, JUnit and
//! JSON outputs, skipped scripts.

use std::process::Command;

fn volley() -> Command {
    Command::new(env!("CARGO_BIN_EXE_volley"))
}

fn stdout(out: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn list_reads_headers_without_running() {
    let out = volley().args(["list", "tests/fixtures/suite"]).output().unwrap();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let rows: Vec<&str> = text.lines().filter(|l| l.starts_with("T-")).collect();
    assert_eq!(rows.len(), 3, "{text}");
    assert!(
        rows[0].starts_with("T-1")
            && rows[0].contains("Always passes")
            && rows[0].contains("2m")
            && rows[0].ends_with("load, fast"),
        "{text}"
    );
    assert!(text.contains("3 script(s), nominal duration 3m30s"), "{text}");
    let out = volley().args(["list", "tests/fixtures/suite", "--tags", "load and not amqp"]).output().unwrap();
    assert_eq!(stdout(&out).lines().filter(|l| l.starts_with("T-")).count(), 1);
    let out = volley().args(["list", "tests/fixtures/suite", "--tags", "load &&"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stdout(&out).contains("invalid tag expression"), "{}", stdout(&out));
}

#[test]
fn a_suite_reports_every_test_and_fails_when_one_fails() {
    let dir = tempfile::tempdir().unwrap();
    let (junit, json) = (dir.path().join("out/junit.xml"), dir.path().join("out/results.json"));
    let out = volley()
        .args(["run", "--progress", "off", "--time-scale", "0.5", "tests/fixtures/suite", "--junit"])
        .arg(&junit)
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(99), "{text}");
    assert!(text.contains("suite summary (time scale 0.5: durations and counts shortened)"), "{text}");
    assert!(text.contains("1 passed, 1 failed, 1 skipped, 0 errors"), "{text}");
    assert!(text.contains("T-2 (2) broken: success rate <tcp & co>: measured 0.81, required >= 0.85"), "{text}");

    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains(r#"<testsuites name="volley" tests="4" failures="1" errors="0" skipped="1""#), "{xml}");
    assert!(xml.contains(r#"<testcase name="T-2 (1) fine""#), "{xml}");
    assert!(
        xml.contains(r#"<failure message="success rate &lt;tcp &amp; co&gt;: measured 0.81, required &gt;= 0.85""#),
        "{xml}"
    );
    assert!(xml.contains(r#"<skipped message="needs RabbitMQ at amqp://127.0.0.1:1"/>"#), "{xml}");

    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(doc["schema"], "volley.suite/1");
    assert_eq!(doc["scaled"], true);
    let verdicts: Vec<&str> = doc["tests"].as_array().unwrap().iter().map(|t| t["verdict"].as_str().unwrap()).collect();
    assert_eq!(verdicts, ["passed", "failed", "skipped"]);
    assert_eq!(doc["tests"][0]["phases"][0]["iterations"], 5, "iterations are scaled by --time-scale");
}

#[test]
fn select_by_id_runs_only_that_script() {
    let out = volley().args(["run", "--progress", "off", "tests/fixtures/suite", "--id", "t-1"]).output().unwrap();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(!text.contains("T-2"), "{text}");
    let out = volley().args(["run", "tests/fixtures/suite", "--id", "PZ-0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stdout(&out).contains("no scripts selected"));
}

/// Two scripts with one id would write their results over each other: `run`, `list`
/// and `check` refuse them, naming both files.
#[test]
fn scripts_that_share_an_id_are_refused_before_running() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.rhai"), "// id: X-1\nprint(\"ran a\");\n").unwrap();
    std::fs::write(dir.path().join("b.rhai"), "// id: X-1\nprint(\"ran b\");\n").unwrap();
    for args in [&["run", "--progress", "off"][..], &["list"][..], &["check"][..]] {
        let out = volley().args(args).arg(dir.path()).output().unwrap();
        let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        let expected = if args[0] == "check" { 107 } else { 2 };
        assert_eq!(out.status.code(), Some(expected), "{args:?}: {all}");
        assert!(
            all.contains("2 scripts have the id X-1:") && all.contains("a.rhai") && all.contains("b.rhai"),
            "{all}"
        );
        assert!(!all.contains("ran a") && !all.contains("ran b"), "{all}");
    }
}
