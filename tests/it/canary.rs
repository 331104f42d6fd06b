//! `volley canary`: one script against two targets at once, judged by the rules of
//! `volley compare` (issue 18).

use crate::support;
use std::process::Command;

fn text(out: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

const SCRIPT: &str = "let base = env(\"BASE_URL\");\nlet ms = env(\"MS\");\n\
    phase(\"p\", #{ executor: \"shared-iterations\", vus: 2, iterations: 40 }, || { http::get(`${base}/slow?ms=${ms}`, #{ name: \"slow\" }); });\n";

#[test]
fn a_canary_runs_beside_the_baseline_and_is_judged_by_the_compare_rules() {
    let (stable, canary) = (support::start(), support::start());
    let (_dir, path) = support::script(SCRIPT);
    // On a slow, loaded machine two runs of a 5 ms request differ by tens of ms and one
    // side may stall alone: latency within 50 ms and throughput within 80% are noise
    // here, while 200 ms requests are judged worse.
    let run = |canary_ms: &str, json: bool| {
        Command::new(env!("CARGO_BIN_EXE_volley"))
            .arg("canary")
            .arg(&path)
            .args(["-e", &format!("BASE_URL={}", stable.base), "-e", "MS=5"])
            .args(["--canary", &format!("BASE_URL={}", canary.base), "--canary", &format!("MS={canary_ms}")])
            .args(["--floor-ms", "50", "--max-regression", "80%"])
            .args(if json { &["--json"][..] } else { &[][..] })
            .output()
            .unwrap()
    };
    let out = run("5", false);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!((stable.count("/slow"), canary.count("/slow")), (40, 40), "each target got its run");
    assert!(text(&out).contains(&format!("B = canary (BASE_URL={} MS=5)", canary.base)), "{}", text(&out));
    assert!(text(&out).contains("verdict: B is within the margin of A"), "{}", text(&out));

    let out = run("200", true);
    assert_eq!(out.status.code(), Some(99), "{}", text(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["verdict"], "worse");
    let worse: Vec<(&str, &str)> = doc["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["change"] == "worse")
        .map(|r| (r["scope"].as_str().unwrap(), r["figure"].as_str().unwrap()))
        .collect();
    assert!(worse.contains(&("GET slow", "p50 ms")) && worse.contains(&("all requests", "p50 ms")), "{worse:?}");
}
