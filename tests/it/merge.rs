//! `volley merge` (issue 17): results made side by side merge exactly and are judged on
//! the whole.

use crate::support;
use std::path::Path;
use std::process::{Command, Output};

fn volley() -> Command {
    Command::new(env!("CARGO_BIN_EXE_volley"))
}

const SCRIPT: &str = r#"
let base = env("BASE_URL");
let ms = env("MS");
phase("p", #{ executor: "shared-iterations", vus: 2, iterations: 20 }, || {
    http::get(`${base}/slow?ms=${ms}`, #{ name: "slow" });
    http::get(`${base}/status/503`, #{ name: "down" });
});
"#;

fn run(script: &Path, base: &str, ms: u32, out: &Path) -> Output {
    volley()
        .args(["run", "--progress", "off"])
        .arg(script)
        .args(["-e", &format!("BASE_URL={base}"), "-e", &format!("MS={ms}")])
        .arg(format!("--out=json={}", out.display()))
        .output()
        .unwrap()
}

fn doc(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn hist(text: &serde_json::Value) -> hdrhistogram::Histogram<u64> {
    volley::report::json::decode_hdr(text.as_str().unwrap()).unwrap()
}

#[test]
fn two_runs_merge_to_the_servers_counts_and_the_percentiles_of_all_samples() {
    let server = support::start();
    let (dir, script) = support::script(SCRIPT);
    let (a, b, merged) = (dir.path().join("a.json"), dir.path().join("b.json"), dir.path().join("m.json"));
    // A fast part and a slow part: a p95 averaged over the parts would be far off.
    run(&script, &server.base, 2, &a);
    run(&script, &server.base, 60, &b);
    let slo = dir.path().join("slo.toml");
    std::fs::write(
        &slo,
        "[thresholds]\nhttp_reqs = \"count == 80\"\n\"http_req_duration{name:slow}\" = \"p(95) < 30\"\n",
    )
    .unwrap();
    let out = volley()
        .arg("merge")
        .args([&a, &b])
        .arg("--slo")
        .arg(&slo)
        .arg(format!("--out=json={}", merged.display()))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    // The fast part alone passes `p(95) < 30` for `slow`; the whole does not.
    assert_eq!(out.status.code(), Some(99), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("result: FAILED (exit code 99)"), "{stdout}");
    let (da, db, m) = (doc(&a), doc(&b), doc(&merged));
    assert_eq!(m["schema"], "volley.run/1");
    assert_eq!(m["verdict"], "failed");

    // Counts: the server's, and the sum of the parts.
    let served = server.count("/slow") + server.count("/status/503");
    assert_eq!(served, 80);
    assert_eq!(m["totals"]["requests"], served);
    assert_eq!(m["totals"]["failures"], 40);
    assert_eq!(m["errors_by_kind"]["status 503"], 40);
    let slow = m["requests"].as_array().unwrap().iter().find(|r| r["name"] == "slow").unwrap().clone();
    assert_eq!(slow["count"], server.count("/slow"));

    // Percentiles: those of one HDR histogram holding every sample of both parts.
    let part = |d: &serde_json::Value| {
        d["requests"].as_array().unwrap().iter().find(|r| r["name"] == "slow").unwrap()["hdr_histogram"].clone()
    };
    let mut all = hist(&part(&da));
    all.auto(true);
    all.add(hist(&part(&db))).unwrap();
    assert_eq!(all.len(), 40);
    assert_eq!(hist(&slow["hdr_histogram"]).len(), 40);
    let (min, max) = (slow["latency_ms"]["min"].as_f64().unwrap(), slow["latency_ms"]["max"].as_f64().unwrap());
    for p in [50.0, 95.0, 99.0] {
        let expected = (all.value_at_quantile(p / 100.0) as f64 / 1000.0).clamp(min, max);
        let got = slow["latency_ms"][format!("p{p}")].as_f64().unwrap();
        assert!((got - (expected * 1000.0).round() / 1000.0).abs() < 1e-9, "p{p}: {got} vs {expected}");
    }
    assert!(slow["latency_ms"]["p95"].as_f64().unwrap() >= 60.0, "{slow}");
    // The merged whole-run trend holds both parts' samples too.
    assert_eq!(hist(&m["metrics"]["http_req_duration"]["hdr_histogram"]).len(), 80);

    // Thresholds judged on the whole: the SLO file's, and the scripts' (none here).
    let th = m["thresholds"].as_array().unwrap();
    assert_eq!(th.len(), 2, "{th:?}");
    let by = |sel: &str| th.iter().find(|t| t["selector"] == sel).unwrap().clone();
    let count = by("http_reqs");
    assert_eq!((count["passed"].clone(), count["observed"].clone()), (true.into(), 80.0.into()));
    let p95 = by("http_req_duration{name:slow}");
    assert_eq!(p95["passed"], false);
    let observed = p95["observed"].as_f64().unwrap();
    assert!((observed - slow["latency_ms"]["p95"].as_f64().unwrap()).abs() < 0.001, "{p95}");
}

#[test]
fn merge_refuses_other_documents_and_other_scripts() {
    let server = support::start();
    let (dir, script) = support::script(SCRIPT);
    let other = dir.path().join("other.rhai");
    std::fs::write(&other, SCRIPT).unwrap();
    let (a, b, junk) = (dir.path().join("a.json"), dir.path().join("b.json"), dir.path().join("junk.json"));
    run(&script, &server.base, 1, &a);
    run(&other, &server.base, 1, &b);
    std::fs::write(&junk, "{\"hello\": 1}").unwrap();
    let merge = |files: &[&Path], extra: &[&str]| {
        let out = volley().arg("merge").args(files).args(extra).output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).to_string())
    };
    let (code, err) = merge(&[&a, &junk], &[]);
    assert_eq!(code, Some(2));
    assert!(err.contains("junk.json: not a volley run result (schema volley.run/1)"), "{err}");
    let (code, err) = merge(&[&a, &b], &[]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("b.json: a result of script `other`") && err.contains("merge only results of the same script"),
        "{err}"
    );
    let (code, err) = merge(&[&a, &a], &["--out", "md=x.md"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("volley merge writes `json=FILE`"), "{err}");
    // The same script twice passes when nothing is judged.
    let (code, err) = merge(&[&a, &a], &[]);
    assert_eq!(code, Some(0), "{err}");
}
