//! `volley run --dashboard`: the live page over real sockets, driven in Debian's chromium
//! by playwright-core (tests/browser/dashboard.mjs), and its token rules over plain HTTP.

use crate::support::{self, script};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const SCENARIO: &str = r#"
let base = env("BASE_URL");
threshold("http_req_duration", "p(95) < 5000");
phase("steady", #{ executor: "constant-vus", vus: 2, duration: "90s" }, || {
    http::get(`${base}/ok`);
    sleep(0.02);
});
"#;

/// A run with `--dashboard 127.0.0.1:0` and its HTML and JSON outputs.
struct Run {
    child: Child,
    url: String,
    stderr: mpsc::Receiver<String>,
    html: PathBuf,
    json: PathBuf,
}

fn start(dir: &Path, script: &Path, base: &str, addr: &str) -> Run {
    let (html, json) = (dir.join("out/run.html"), dir.join("out/run.json"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_volley"))
        .args(["run", "--progress", "off", "--dashboard", addr])
        .arg(script)
        .args(["-e", &format!("BASE_URL={base}"), "-e", "SECRET_TOKEN=hunter2-do-not-show"])
        .arg("--out")
        .arg(format!("html={}", html.display()))
        .arg("--out")
        .arg(format!("json={}", json.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let rx = stderr_lines(&mut child);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    let url = loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("no dashboard URL printed; stderr: {seen:?}"));
        if let Some(at) = line.find("dashboard on http://") {
            break line[at + "dashboard on ".len()..].split_whitespace().next().unwrap().to_string();
        }
        seen.push(line);
    };
    Run { child, url, stderr: rx, html, json }
}

impl Run {
    /// Waits (bounded) for the exit code; kills the run if it does not end.
    fn wait(&mut self, within: Duration) -> (Option<i32>, String) {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(100));
                let text: Vec<String> = self.stderr.try_iter().collect();
                return (status.code(), text.join("\n"));
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("the run did not end within {within:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn host_port(&self) -> String {
        self.url.trim_start_matches("http://").split('/').next().unwrap().to_string()
    }

    fn token(&self) -> String {
        self.url.split("token=").nth(1).unwrap().to_string()
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.0 request; returns the status code and the body.
fn http(host_port: &str, method: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(host_port).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut extra: String = headers.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        extra.push_str(&format!("Host: {host_port}\r\n"));
    }
    write!(s, "{method} {path} HTTP/1.0\r\nContent-Length: 0\r\n{extra}\r\n").unwrap();
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    let code = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (code, body)
}

#[test]
fn the_dashboard_runs_live_in_chromium_and_its_stop_button_ends_the_run_with_130() {
    let Some(chromium) = support::required_tool("chromium") else { return };
    let Some(node) = support::required_tool("node") else { return };
    let browser_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let installed = browser_dir.join("node_modules/playwright-core");
    if !installed.is_dir() {
        // A fresh clone: install the one package (pinned by package-lock.json).
        let _ = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&browser_dir)
            .status();
    }
    let found = installed.is_dir().then(|| installed.clone());
    let ci = std::env::var("CI").ok();
    let Some(_) = support::tool_decision("playwright-core (npm ci in tests/browser)", found, ci.as_deref())
        .unwrap_or_else(|e| panic!("{e}"))
    else {
        return;
    };
    let server = support::start();
    let (dir, path) = script(SCENARIO);
    let mut run = start(dir.path(), &path, &server.base, "127.0.0.1:0");
    let shot = dir.path().join("dashboard.png");
    let out = Command::new(node)
        .current_dir(&browser_dir)
        .arg("dashboard.mjs")
        .arg(&run.url)
        .arg(&chromium)
        .arg(&shot)
        .output()
        .unwrap();
    let seen = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "the browser test failed: {seen}{}", String::from_utf8_lossy(&out.stderr));
    let seen: serde_json::Value = serde_json::from_str(seen.trim()).unwrap();
    assert!(seen["second"].as_u64().unwrap() > seen["first"].as_u64().unwrap(), "{seen}");
    assert!(seen["polylines"].as_u64().unwrap() >= 3, "{seen}");
    assert_eq!(seen["state"], "running", "{seen}");
    // Live per request name and per phase, with the running phase named.
    assert_eq!(seen["phase"], "steady", "{seen}");
    assert!(seen["timeline"].as_str().unwrap().starts_with("steady 0–"), "{seen}");
    let live = seen["live"].as_array().unwrap();
    let row = |group: &str, key: &str| live.iter().find(|r| r[0] == group && r[1] == key).cloned();
    let ok = row("name", "/ok").unwrap_or_else(|| panic!("no live row for /ok: {seen}"));
    assert!(ok[2].as_str().unwrap().parse::<u64>().unwrap() > 0, "{seen}");
    assert!(row("phase", "steady").is_some(), "{seen}");
    // The threshold's standing while the run goes.
    let t = &seen["thresholds"][0];
    assert_eq!(t[0], "http_req_duration p(95) < 5000", "{seen}");
    assert_eq!(t[1], "holding", "{seen}");
    assert_eq!(seen["verdict"], "INTERRUPTED (exit 130)", "{seen}");
    assert!(seen["report"].as_str().unwrap().contains("INTERRUPTED"), "{seen}");
    assert_eq!(seen["errors"], serde_json::json!([]), "{seen}");
    let (code, stderr) = run.wait(Duration::from_secs(60));
    assert_eq!(code, Some(130), "{stderr}");
    assert!(stderr.contains("stopped from the dashboard"), "{stderr}");
    assert!(run.html.is_file() && run.json.is_file(), "reports not written: {stderr}");
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&run.json).unwrap()).unwrap();
    assert_eq!(doc["exit_code"], 130, "{doc}");
    assert!(std::fs::metadata(&shot).unwrap().len() > 10_000, "no screenshot");
    // The screenshot is a CI artifact: the test's temp dir is kept.
    eprintln!("dashboard screenshot kept at {}", shot.display());
    let _ = dir.keep();
}

#[test]
fn stop_needs_the_token_and_the_page_carries_no_script_or_environment() {
    let server = support::start();
    let (dir, path) = script(SCENARIO);
    let mut run = start(dir.path(), &path, &server.base, "127.0.0.1:0");
    let hp = run.host_port();
    let (code, page) = http(&hp, "GET", "/", &[]);
    assert_eq!(code, 200);
    assert!(page.contains("EventSource") && !page.contains("<script src"), "the page is not self-contained");
    // A figure moves between two reads of the state.
    let requests = |hp: &str| -> u64 {
        let (_, body) = http(hp, "GET", "/api/state", &[]);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["current"]["requests"].as_u64().unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let first = loop {
        let n = requests(&hp);
        if n > 0 || Instant::now() > deadline {
            break n;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(first > 0, "no requests on the dashboard");
    let (_, state) = http(&hp, "GET", "/api/state", &[]);
    for secret in ["hunter2", "http::get", "constant-vus", &server.base] {
        assert!(!state.contains(secret), "the dashboard shows {secret:?}: {state}");
    }
    // Another site's page that rebinds its name to 127.0.0.1 reads nothing.
    assert_eq!(http(&hp, "GET", "/api/state", &[("Host", "evil.example:5665")]).0, 401);
    assert_eq!(http(&hp, "POST", "/api/stop", &[]).0, 401);
    assert_eq!(http(&hp, "POST", "/api/stop", &[("x-volley-token", "0000")]).0, 401);
    assert!(run.child.try_wait().unwrap().is_none(), "a stop without the token ended the run");
    assert_eq!(http(&hp, "POST", "/api/stop", &[("x-volley-token", &run.token())]).0, 202);
    let (code, stderr) = run.wait(Duration::from_secs(60));
    assert_eq!(code, Some(130), "{stderr}");
    assert!(run.html.is_file() && run.json.is_file(), "reports not written: {stderr}");
}

#[test]
fn off_loopback_every_request_needs_the_token() {
    let server = support::start();
    let (dir, path) = script(SCENARIO);
    let mut run = start(dir.path(), &path, &server.base, "0.0.0.0:0");
    let port = run.host_port().rsplit(':').next().unwrap().to_string();
    let hp = format!("127.0.0.1:{port}");
    for p in ["/", "/events", "/api/state", "/report"] {
        assert_eq!(http(&hp, "GET", p, &[]).0, 401, "{p} without the token");
    }
    assert_eq!(http(&hp, "GET", &format!("/api/state?token={}", run.token()), &[]).0, 200);
    // Stop works from the moment the URL is printed, before the script is even loaded.
    assert_eq!(http(&hp, "POST", "/api/stop", &[("x-volley-token", &run.token())]).0, 202);
    assert_eq!(run.wait(Duration::from_secs(60)).0, Some(130));
}

#[test]
fn a_bad_dashboard_address_is_a_usage_error_with_a_hint() {
    let out = Command::new(env!("CARGO_BIN_EXE_volley"))
        .args(["run", "--dashboard", "nowhere.rhai", "x.rhai"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("put the script before --dashboard"), "{err}");
}

/// The dashboard's state (GET /api/state).
fn state(hp: &str) -> serde_json::Value {
    let (code, body) = http(hp, "GET", "/api/state", &[]);
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// Polls the state until `done` holds (bounded).
fn wait_state(hp: &str, what: &str, done: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = state(hp);
        if done(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "{what} not seen within 30 s: {s}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn watch_keeps_one_dashboard_across_re_runs_with_the_previous_run_beside() {
    let server = support::start();
    let body = |n: u32| {
        format!(
            "let base = env(\"BASE_URL\");\nphase(\"p\", #{{ executor: \"shared-iterations\", vus: 2, iterations: {n} }}, || {{ http::get(`${{base}}/ok`); http::get(`${{base}}/status/503`); }});\n"
        )
    };
    let (dir, path) = script(&body(20));
    let mut child = Command::new(env!("CARGO_BIN_EXE_volley"))
        .args(["watch", "--progress", "off", "--dashboard", "127.0.0.1:0"])
        .arg(&path)
        .args(["-e", &format!("BASE_URL={}", server.base)])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let rx = stderr_lines(&mut child);
    let mut seen = Vec::new();
    let url = loop {
        let line = rx.recv_timeout(Duration::from_secs(30)).unwrap_or_else(|_| panic!("no URL: {seen:?}"));
        if let Some(at) = line.find("dashboard on http://") {
            break line[at + "dashboard on ".len()..].split_whitespace().next().unwrap().to_string();
        }
        seen.push(line);
    };
    let hp = url.trim_start_matches("http://").split('/').next().unwrap().to_string();
    let first = wait_state(&hp, "the first run's verdict", |s| s["current"]["verdict"] == "passed");
    assert_eq!(first["current"]["run"], 1);
    assert_eq!(first["current"]["requests"], 40, "{first}");
    let kinds = first["current"]["errors"].to_string();
    assert!(kinds.contains("503") && kinds.contains("20"), "errors by kind: {kinds}");
    assert!(first["previous"].is_null());
    // Let the watcher settle on the files before the save (as an editor would, later).
    std::thread::sleep(Duration::from_millis(500));
    let tmp = path.with_extension("rhai.tmp~");
    std::fs::write(&tmp, body(30)).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    let second = wait_state(&hp, "the second run's verdict", |s| {
        s["current"]["run"] == 2 && s["current"]["verdict"] == "passed"
    });
    assert_eq!(second["current"]["requests"], 60, "{second}");
    assert_eq!(second["previous"]["run"], 1, "{second}");
    assert_eq!(second["previous"]["requests"], 40, "{second}");
    // Beside the new figures: the previous run's, over that whole run.
    assert!(second["previous"]["p95_ms"].as_f64().is_some_and(|v| v > 0.0), "{second}");
    assert!(second["previous"]["rps"].as_f64().is_some_and(|v| v > 0.0), "{second}");
    let throughput = second["current"]["charts"][0].as_str().unwrap();
    assert!(throughput.contains("prev. req/s"), "{throughput}");
    assert_eq!(server.count("/ok"), 50);
    let _ = child.kill();
    let _ = child.wait();
    drop(dir);
}

/// The child's stderr, line by line, read on a thread of its own.
fn stderr_lines(child: &mut Child) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    rx
}
