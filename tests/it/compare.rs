//! `volley compare` of suite results test by test, its noise rules on real runs, its
//! JSON output and its errors (issue 18).

use crate::support;
use std::path::Path;
use std::process::Command;

fn volley() -> Command {
    Command::new(env!("CARGO_BIN_EXE_volley"))
}

fn text(out: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn script(id: &str, ms: u32) -> String {
    format!(
        "// id: {id}\n// title: {id} latency\n// tags: api\nlet base = env(\"BASE_URL\");\n\
         phase(\"p\", #{{ executor: \"shared-iterations\", vus: 2, iterations: 40 }}, || {{ http::get(`${{base}}/slow?ms={ms}`, #{{ name: \"slow\" }}); }});\n"
    )
}

/// Runs the suite in `dir` and writes its `--json` document to `json`.
fn suite(server: &support::TestServer, dir: &Path, json: &Path) {
    let out = volley()
        .args(["run", "--progress", "off"])
        .arg(dir)
        .args(["-e", &format!("BASE_URL={}", server.base)])
        .arg(format!("--json={}", json.display()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn suites_compare_test_by_test_and_only_a_real_shift_is_worse() {
    let server = support::start();
    let dir = tempfile::tempdir().unwrap();
    let (fast, slow) = (dir.path().join("fast"), dir.path().join("slow"));
    for (d, ms) in [(&fast, 5), (&slow, 80)] {
        std::fs::create_dir_all(d).unwrap();
        std::fs::write(d.join("pz_1_steady.rhai"), script("PZ-1", 5)).unwrap();
        std::fs::write(d.join("pz_2_moving.rhai"), script("PZ-2", ms)).unwrap();
    }
    let (a, a2, b) = (dir.path().join("a.json"), dir.path().join("a2.json"), dir.path().join("b.json"));
    suite(&server, &fast, &a);
    suite(&server, &fast, &a2);
    suite(&server, &slow, &b);

    // Last night against tonight, same code: the same. The floor is raised to 10 ms
    // because on a shared machine (other builds, the whole suite in parallel) two runs
    // 40 requests apart really do differ by a few ms; the 75 ms shift below is not.
    let out = volley().args(["compare", "--floor-ms", "10"]).arg(&a).arg(&a2).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("test PZ-1") && text(&out).contains("test PZ-2"), "{}", text(&out));
    assert!(text(&out).contains("verdict: B is within the margin of A"), "{}", text(&out));

    // One test slowed down: that test's p50 is worse, the other test is not.
    let out = volley().arg("compare").arg(&a).arg(&b).output().unwrap();
    assert_eq!(out.status.code(), Some(99), "{}", text(&out));
    let verdict = text(&out).lines().find(|l| l.starts_with("verdict:")).unwrap_or_default().to_string();
    assert!(verdict.contains("PZ-2: GET slow p50 ms"), "{}", text(&out));
    assert!(!verdict.contains("PZ-1"), "{}", text(&out));
    // 40 samples: p95 and p99 are not judged.
    assert!(text(&out).contains("too few samples for p99: 40 and 40, needs 1000"), "{}", text(&out));

    let out = volley().arg("compare").arg("--json").arg(&a).arg(&b).output().unwrap();
    assert_eq!(out.status.code(), Some(99), "{}", text(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["schema"], "volley.compare/1");
    assert_eq!((doc["kind"].as_str(), doc["verdict"].as_str()), (Some("suite"), Some("worse")));
    let worse: Vec<(&str, &str)> = doc["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["change"] == "worse")
        .map(|r| (r["test"].as_str().unwrap(), r["figure"].as_str().unwrap()))
        .collect();
    // Two VUs in a closed loop: slower requests also mean fewer of them per second.
    assert_eq!(worse, vec![("PZ-2", "p50 ms"), ("PZ-2", "req/s")]);
    assert_eq!(doc["rules"]["confidence"], 0.95);

    // Faster is never worse.
    let out = volley().arg("compare").arg(&b).arg(&a).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn compare_explains_files_it_cannot_use() {
    let dir = tempfile::tempdir().unwrap();
    let f = |name: &str, body: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, body).unwrap();
        p
    };
    let suite = f("s.json", r#"{"schema": "volley.suite/1", "tests": []}"#);
    let run = f("r.json", r#"{"schema": "volley.run/1"}"#);
    let cut = f("cut.json", r#"{"schema": "volley.suite/1", "tests": [{"id": "#);
    let other = f("o.json", r#"{"name": "x"}"#);
    let cases = [
        (&suite, &cut, "cut.json: not JSON (EOF while parsing"),
        (&suite, &other, "o.json: schema missing, expected volley.run/1 (--out json=FILE) or volley.suite/1"),
        (&suite, &run, "r.json: not a volley run result (schema volley.run/1): missing field"),
    ];
    for (a, b, expected) in cases {
        let out = volley().arg("compare").arg(a).arg(b).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        assert!(text(&out).contains(expected), "{}", text(&out));
    }
    let out = volley().arg("compare").arg(&suite).arg(&suite).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = volley().args(["compare", "--confidence", "10%"]).arg(&suite).arg(&suite).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("expected a confidence between 50% and 99.9%"), "{}", text(&out));
}
