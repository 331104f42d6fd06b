//! `volley bench`: rounds after warm-up, pytest-benchmark statistics, the saved history
//! and `--compare` with the noise rules of `volley compare` (issue 18).

use crate::support;
use std::process::Command;

fn volley() -> Command {
    Command::new(env!("CARGO_BIN_EXE_volley"))
}

fn text(out: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

const SCRIPT: &str = "fn bench() {\n    let r = http::get(`${env(\"BASE_URL\")}/slow?ms=${env(\"MS\")}`, #{ name: \"slow\" });\n    check(r, \"200\", r.status == 200);\n}\n";

#[test]
fn bench_times_rounds_saves_history_and_compares() {
    let server = support::start();
    let (dir, path) = support::script(SCRIPT);
    let storage = dir.path().join("history");
    let bench = |ms: &str, extra: &[&str]| {
        volley()
            .arg("bench")
            .arg(&path)
            .args(["-e", &format!("BASE_URL={}", server.base), "-e", &format!("MS={ms}")])
            .args(["--rounds", "40", "--warmup", "3", "--storage"])
            .arg(&storage)
            .args(extra)
            .output()
            .unwrap()
    };
    let out = bench("2", &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(server.count("/slow"), 43, "3 warm-up rounds and 40 measured");
    let t = text(&out);
    assert!(t.contains("benchmark: 40 rounds after 3 warm-up rounds (times in ms)"), "{t}");
    assert!(t.contains("outliers       ops/s     rounds"), "{t}");
    assert!(t.lines().any(|l| l.starts_with("bench() ") && l.ends_with(" 40")), "{t}");
    assert!(t.lines().any(|l| l.starts_with("GET slow ") && l.ends_with(" 40")), "{t}");
    let first = storage.join("0001.json");
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&first).unwrap()).unwrap();
    assert_eq!(doc["schema"], "volley.bench/1");
    let slow = doc["benchmarks"].as_array().unwrap().iter().find(|b| b["name"] == "GET slow").unwrap();
    let s = &slow["stats"];
    assert_eq!(s["rounds"], 40);
    let f = |k: &str| s[k].as_f64().unwrap();
    assert!(f("min") >= 2.0 && f("min") <= f("q1") && f("q1") <= f("median") && f("median") <= f("q3"), "{s}");
    assert!(f("q3") <= f("max") && (f("iqr") - (f("q3") - f("q1"))).abs() < 1e-9, "{s}");
    assert!((f("ops") - 1000.0 / f("mean")).abs() < 1e-6, "{s}");

    // Differences under 100 ms are noise here: on a slow, loaded machine a 2 ms request
    // can take ~120 ms in one run and not in the next, while 300 ms rounds are at least
    // 150 ms slower than such a baseline.
    const FLOOR: [&str; 2] = ["--floor-ms", "100"];
    // Slower rounds against the latest saved result: worse, exit 99.
    let out = bench("300", &["--compare", FLOOR[0], FLOOR[1]]);
    assert_eq!(out.status.code(), Some(99), "{}", text(&out));
    assert!(text(&out).contains("A = ") && text(&out).contains("0001.json"), "{}", text(&out));
    let worse = |l: &str| l.starts_with("GET slow") && l.contains("p50 ms") && l.contains("WORSE");
    assert!(text(&out).lines().any(worse), "{}", text(&out));
    assert!(storage.join("0002.json").exists());
    // Fast again against the first (fast) file, not saved: within the margin.
    let out = bench("2", &["--compare", first.to_str().unwrap(), "--no-save", FLOOR[0], FLOOR[1]]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("verdict: B is within the margin of A"), "{}", text(&out));
    assert!(!storage.join("0003.json").exists());
}

#[test]
fn bench_explains_what_it_needs() {
    let (dir, path) = support::script("let x = 1;\n");
    let out = volley().arg("bench").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("defines no `fn bench()`"), "{}", text(&out));
    let (_d2, ok) = support::script(SCRIPT);
    let empty = dir.path().join("none");
    let out = volley().arg("bench").arg(&ok).arg("--storage").arg(&empty).arg("--compare").output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("--compare: no saved result in"), "{}", text(&out));
}
