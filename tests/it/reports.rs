//! `--out` outputs written by the binary, `volley compare`, SLO files.

use crate::support::{self, script};
use std::process::Command;

fn volley() -> Command {
    Command::new(env!("CARGO_BIN_EXE_volley"))
}

fn text(out: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

pub const SCENARIO: &str = r#"
let base = env("BASE_URL");
phase("p", #{ executor: "shared-iterations", vus: 2, iterations: 20 }, || {
    http::get(`${base}/ok`);
    http::get(`${base}/status/503`);
});
threshold("http_req_duration", "p(95) < 5000");
"#;

#[test]
fn json_csv_and_markdown_outputs_are_written() {
    let server = support::start();
    let (dir, path) = script(SCENARIO);
    let (json, csv, md) = (dir.path().join("out/run.json"), dir.path().join("out/res"), dir.path().join("run.md"));
    let out = volley()
        .args(["run", "--progress", "off"])
        .arg(&path)
        .args(["-e", &format!("BASE_URL={}", server.base)])
        .arg("--out")
        .arg(format!("json={}", json.display()))
        .arg("--out")
        .arg(format!("csv={}", csv.display()))
        .arg("--out")
        .arg(format!("md={}", md.display()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(doc["schema"], "volley.run/1");
    assert_eq!(doc["totals"]["requests"], 40);
    assert_eq!(doc["totals"]["failures"], 20);
    assert_eq!(doc["errors_by_kind"]["status 503"], 20);
    assert_eq!(doc["requests"].as_array().unwrap().len(), 2);
    let hdr = doc["requests"][0]["hdr_histogram"].as_str().unwrap();
    assert_eq!(volley::report::json::decode_hdr(hdr).unwrap().len(), 20);

    let stats = std::fs::read_to_string(dir.path().join("out/res_stats.csv")).unwrap();
    assert!(stats.starts_with("Type,Name,Request Count,Failure Count,Median Response Time,"), "{stats}");
    assert!(stats.lines().last().unwrap().starts_with(",Aggregated,40,20,"), "{stats}");
    let failures = std::fs::read_to_string(dir.path().join("out/res_failures.csv")).unwrap();
    assert!(failures.contains(",status 503,20"), "{failures}");
    let history = std::fs::read_to_string(dir.path().join("out/res_stats_history.csv")).unwrap();
    assert!(history.starts_with("Timestamp,User Count,"), "{history}");
    let md = std::fs::read_to_string(&md).unwrap();
    assert!(md.contains("✅ PASSED") && md.contains("| Request | Count |"), "{md}");
}

#[test]
fn an_unknown_output_kind_suggests_the_right_one() {
    let out = volley().args(["run", "--out", "jsno=x.json", "x.rhai"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("unknown output kind `jsno`"), "{}", text(&out));
    assert!(text(&out).contains("did you mean `json`?"), "{}", text(&out));
}

fn run_json(server: &support::TestServer, path: &std::path::Path, json: &std::path::Path, extra: &[&str]) -> i32 {
    let out = volley()
        .args(["run", "--progress", "off"])
        .arg(path)
        .args(["-e", &format!("BASE_URL={}", server.base)])
        .arg("--out")
        .arg(format!("json={}", json.display()))
        .args(extra)
        .output()
        .unwrap();
    out.status.code().unwrap_or(-1)
}

#[test]
fn compare_fails_when_b_is_worse_beyond_the_margin() {
    let server = support::start();
    let fast = "let base = env(\"BASE_URL\");\nphase(\"p\", #{ executor: \"shared-iterations\", vus: 2, iterations: 20 }, || { http::get(`${base}/slow?ms=5`); });\n";
    let slow = fast.replace("ms=5", "ms=60");
    let (dir, fast_path) = script(fast);
    let slow_path = dir.path().join("slow.rhai");
    std::fs::write(&slow_path, slow).unwrap();
    let (a, b) = (dir.path().join("a.json"), dir.path().join("b.json"));
    assert_eq!(run_json(&server, &fast_path, &a, &[]), 0);
    assert_eq!(run_json(&server, &slow_path, &b, &[]), 0);

    let out = volley().arg("compare").arg(&a).arg(&a).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("verdict: B is within the margin of A"), "{}", text(&out));
    let out = volley().arg("compare").arg(&a).arg(&b).args(["--max-regression", "20%"]).output().unwrap();
    assert_eq!(out.status.code(), Some(99), "{}", text(&out));
    assert!(text(&out).contains("all requests  p95 ms"), "{}", text(&out));
    assert!(text(&out).contains("verdict: B is worse than A beyond the margin (latency +20%"), "{}", text(&out));
    // Faster is never worse.
    let out = volley().arg("compare").arg(&b).arg(&a).args(["--max-regression", "20%"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // --baseline at the end of a run.
    let c = dir.path().join("c.json");
    assert_eq!(run_json(&server, &slow_path, &c, &["--baseline", a.to_str().unwrap()]), 99);
    assert_eq!(run_json(&server, &fast_path, &c, &["--baseline", b.to_str().unwrap(), "--max-error-increase", "0"]), 0);

    let out = volley().arg("compare").arg(&a).arg("Cargo.toml").output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

#[test]
fn slo_files_add_thresholds_per_environment_with_their_origin() {
    let server = support::start();
    let (dir, path) = script(SCENARIO);
    let slo = dir.path().join("slo.toml");
    std::fs::write(
        &slo,
        "[thresholds]\nhttp_req_failed = \"rate < 0.9\"\n\n\
         [environments.staging.thresholds]\nhttp_req_failed = \"rate < 0.6\"\n\n\
         [environments.production.thresholds]\nhttp_req_failed = \"rate < 0.01\"\n",
    )
    .unwrap();
    let json = dir.path().join("r.json");
    let run = |env: &str| {
        let mut cmd = volley();
        cmd.args(["run", "--progress", "off"])
            .arg(&path)
            .args(["-e", &format!("BASE_URL={}", server.base)])
            .arg("--slo")
            .arg(&slo)
            .arg("--out")
            .arg(format!("json={}", json.display()));
        if !env.is_empty() {
            cmd.args(["--environment", env]);
        }
        cmd.output().unwrap()
    };
    let out = run("staging");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("grades (p95 / errors"), "{}", text(&out));
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let t = doc["thresholds"].as_array().unwrap();
    assert_eq!(t.len(), 2, "script's own and the SLO file's: {t:?}");
    assert_eq!(t[1]["origin"], "slo.toml [staging]");
    assert_eq!(t[1]["condition"], "rate < 0.6");
    let grades: Vec<&str> = doc["requests"].as_array().unwrap().iter().map(|r| r["grade"].as_str().unwrap()).collect();
    assert_eq!(grades, ["excellent", "poor"], "/ok, then /status/503");

    let out = run("production");
    assert_eq!(out.status.code(), Some(99), "{}", text(&out));
    assert!(text(&out).contains("slo.toml [production]"), "{}", text(&out));
    let out = run("");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = run("prod");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("did you mean `production`?"), "{}", text(&out));
}

const TWO_PHASES: &str = r#"
let base = env("BASE_URL");
phase("warm", #{ executor: "constant-vus", vus: 2, duration: "2s" }, || {
    http::get(`${base}/slow?ms=20`, #{ name: "slow" });
    http::get(`${base}/ok`, #{ name: "ok" });
});
phase("peak", #{ executor: "constant-vus", vus: 4, duration: "2s" }, || {
    http::get(`${base}/slow?ms=40`, #{ name: "slow" });
    http::get(`${base}/status/503`, #{ name: "broken" });
});
threshold("http_req_duration", "p(95) < 5000");
"#;

#[test]
fn the_html_report_renders_in_headless_chromium() {
    let server = support::start();
    let (dir, path) = script(TWO_PHASES);
    let html = dir.path().join("report.html");
    let out = volley()
        .args(["run", "--progress", "off"])
        .arg(&path)
        .args(["-e", &format!("BASE_URL={}", server.base)])
        .arg("--out")
        .arg(format!("html={}", html.display()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let page = std::fs::read_to_string(&html).unwrap();
    assert_eq!(page.matches("<svg class=\"chart\"").count(), 8);
    assert!(page.contains("<polyline"), "charts have lines");
    assert!(!page.contains("<script") && !page.contains("<link"), "self-contained");

    // Under CI=true a missing Chromium fails the test instead of skipping this part.
    let Some(chromium) = support::required_tool("chromium") else { return };
    let shot = std::env::var("VOLLEY_SCREENSHOT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| dir.path().join("report.png"));
    let url = format!("file://{}", html.display());
    let headless = |extra: &[&str]| {
        // coreutils' timeout: a wedged browser fails the test instead of hanging it.
        Command::new("timeout")
            .arg("60")
            .arg(&chromium)
            .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"])
            .arg(format!("--user-data-dir={}", dir.path().join("profile").display()))
            .args(extra)
            .arg(&url)
            .output()
            .unwrap()
    };
    let out = headless(&[&format!("--screenshot={}", shot.display()), "--window-size=1200,2000"]);
    let png = std::fs::read(&shot).unwrap_or_else(|e| panic!("no screenshot ({e}): {}", text(&out)));
    assert!(png.starts_with(b"\x89PNG") && png.len() > 20_000, "{} bytes", png.len());
    let dom = headless(&["--dump-dom"]);
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert_eq!(dom.matches("class=\"chart\"").count(), 8, "the rendered page has the charts");
}

/// A local HTTP receiver: records (request line, body) and answers 200, or with
/// `stall` accepts connections and never answers.
struct Receiver {
    url: String,
    got: std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>,
}

fn receiver(stall: bool) -> Receiver {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let g = got.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            if stall {
                held.push(stream);
                continue;
            }
            let mut reader = BufReader::new(stream);
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let mut len = 0;
            loop {
                let mut h = String::new();
                reader.read_line(&mut h).unwrap();
                if h.trim().is_empty() {
                    break;
                }
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; len];
            reader.read_exact(&mut body).unwrap();
            g.lock().unwrap().push((line.trim().to_string(), String::from_utf8_lossy(&body).into_owned()));
            let _ = reader.get_mut().write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
        }
    });
    Receiver { url, got }
}

const STEADY: &str = r#"
let base = env("BASE_URL");
phase("steady", #{ executor: "constant-vus", vus: 2, duration: "3s" }, || {
    http::get(`${base}/slow?ms=10`);
});
threshold("http_req_failed", "rate == 0");
"#;

fn run_steady(server: &support::TestServer, path: &std::path::Path, extra: &[String]) -> (serde_json::Value, f64) {
    let json = path.with_file_name(format!("r{}.json", extra.len()));
    let started = std::time::Instant::now();
    let out = volley()
        .args(["run", "--progress", "off"])
        .arg(path)
        .args(["-e", &format!("BASE_URL={}", server.base)])
        .arg("--out")
        .arg(format!("json={}", json.display()))
        .args(extra)
        .output()
        .unwrap();
    let wall = started.elapsed().as_secs_f64();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    (serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap(), wall)
}

#[test]
fn prometheus_pushes_at_the_end_and_every_interval_to_a_pushgateway() {
    let server = support::start();
    let gateway = receiver(false);
    let (_d, path) = script(STEADY);
    let target = format!("prometheus={}?job=ci&instance=it&live=1", gateway.url);
    run_steady(&server, &path, &["--out".into(), target]);
    let got = gateway.got.lock().unwrap().clone();
    assert!(got.iter().all(|(line, _)| line == "POST /metrics/job/ci/instance/it HTTP/1.1"), "{got:?}");
    let live = got.iter().filter(|(_, body)| body.contains("volley_vus 2")).count();
    assert!(live >= 2, "one push a second: {got:?}");
    let last = &got.last().unwrap().1;
    assert!(last.contains("volley_thresholds_passed 1\n"), "{last}");
    assert!(last.contains("volley_threshold_violations 0\n"), "{last}");
    assert!(last.contains("volley_http_req_duration_seconds{request=\"all\",quantile=\"0.95\"}"), "{last}");

    // What was pushed is valid exposition text: promtool says nothing about a live push
    // or the final one. Under CI=true a missing promtool fails the test.
    let Some(promtool) = support::required_tool("promtool") else { return };
    let first_live = got.iter().find(|(_, body)| body.contains("volley_vus 2")).map(|(_, b)| b.clone()).unwrap();
    for body in [first_live, last.clone()] {
        volley::report::prometheus::promtool_check(&promtool, &body).unwrap();
    }
}

#[test]
fn a_stalled_receiver_does_not_slow_the_vus() {
    let server = support::start();
    let (_d, path) = script(STEADY);
    let (free, _) = run_steady(&server, &path, &[]);
    let stalled = receiver(true);
    let (slowed, wall) = run_steady(
        &server,
        &path,
        &[
            "--out".into(),
            format!("prometheus={}?live=1", stalled.url),
            "--notify".into(),
            format!("{}/hook", stalled.url),
        ],
    );
    let (a, b) = (free["totals"]["requests"].as_f64().unwrap(), slowed["totals"]["requests"].as_f64().unwrap());
    // Two runs on a loaded machine differ a lot: only a gross slowdown counts.
    assert!(b >= a * 0.2, "requests with a stalled gateway {b} vs without {a}");
    let elapsed = slowed["elapsed_s"].as_f64().unwrap();
    assert!(elapsed < 10.0, "a 3 s phase took {elapsed} s");
    // After the run, the end-of-run push gives up after its 3 s timeout; the live pusher
    // is not waited for. The rest of the bound is start-up and reports on a slow machine.
    assert!(wall - elapsed < 3.0 + 5.0, "wall {wall} s for a run of {elapsed} s");
    // A Pushgateway that does not answer is a warning, not a usage error (exit 0 above).
}

#[test]
fn notify_posts_a_slack_compatible_verdict_when_thresholds_fail() {
    let server = support::start();
    let hook = receiver(false);
    let (_d, path) = script(SCENARIO.replace("p(95) < 5000", "p(95) < 0.0001").as_str());
    let out = volley()
        .args(["run", "--progress", "off"])
        .arg(&path)
        .args(["-e", &format!("BASE_URL={}", server.base), "--notify", &format!("{}/hook", hook.url)])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(99), "{}", text(&out));
    let got = hook.got.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].0, "POST /hook HTTP/1.1");
    let msg: serde_json::Value = serde_json::from_str(&got[0].1).unwrap();
    let said = msg["text"].as_str().unwrap();
    assert!(said.contains("FAILED") && said.contains("http_req_duration p(95) < 0.0001"), "{said}");
    assert_eq!(msg["exit_code"], 99);
    // The webhook's path (its token, for Slack) is not printed.
    assert!(text(&out).contains("failure notified to http://127.0.0.1:"), "{}", text(&out));
    assert!(!text(&out).contains("/hook"), "{}", text(&out));
    // Not a URL: refused before the run.
    for bad in ["notaurl", "ftp://h/x"] {
        let out = volley().args(["run", "--progress", "off"]).arg(&path).args(["--notify", bad]).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", text(&out));
        assert!(text(&out).contains("--notify"), "{bad}: {}", text(&out));
    }
}

#[test]
fn in_a_suite_file_targets_get_the_script_id() {
    let server = support::start();
    let dir = tempfile::tempdir().unwrap();
    for id in ["R-1", "R-2"] {
        let body = format!(
            "// id: {id}\n// title: {id}\n// tags: load\n// duration: 1s\nhttp::get(`${{env(\"BASE_URL\")}}/ok`);\n"
        );
        std::fs::write(dir.path().join(format!("{}.rhai", id.to_lowercase())), body).unwrap();
    }
    let out_dir = dir.path().join("out");
    let out = volley()
        .args(["run", "--progress", "off"])
        .arg(dir.path())
        .args(["-e", &format!("BASE_URL={}", server.base)])
        .arg("--out")
        .arg(format!("json={}", out_dir.join("run.json").display()))
        .arg("--out")
        .arg(format!("csv={}", out_dir.join("res").display()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let mut names: Vec<String> =
        std::fs::read_dir(&out_dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "res-R-1_failures.csv",
            "res-R-1_metrics.csv",
            "res-R-1_stats.csv",
            "res-R-1_stats_history.csv",
            "res-R-2_failures.csv",
            "res-R-2_metrics.csv",
            "res-R-2_stats.csv",
            "res-R-2_stats_history.csv",
            "run-R-1.json",
            "run-R-2.json"
        ]
    );
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("run-R-2.json")).unwrap()).unwrap();
    assert_eq!(doc["id"], "R-2");
}
