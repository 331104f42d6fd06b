//! `volley convert`: a HAR recorded from the simulator becomes a script that `volley
//! check` accepts and that replays against the simulator; bad input gets a clear error
//! (issue 18).

use std::process::Command;
use volley::sim::{SimConfig, SimHandle};

const FIXTURE: &str = "tests/fixtures/har/sim_journey.har";

fn volley() -> Command {
    Command::new(env!("CARGO_BIN_EXE_volley"))
}

fn text(out: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn a_recording_from_the_simulator_converts_checks_and_replays() {
    let out = volley().args(["convert", FIXTURE]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let script = String::from_utf8(out.stdout).unwrap();
    // What a QA engineer would have written: the base URL from the environment, no
    // cookies or browser headers, JSON bodies as maps, think time, recorded statuses.
    assert!(script.contains("let base = env(\"BASE_URL\", \"http://127.0.0.1:18099\");"), "{script}");
    assert!(
        script.contains("http::defaults(#{ headers: #{ accept: \"application/json, text/plain, */*\" } });"),
        "{script}"
    );
    assert!(
        script
            .contains("http::post(`${base}/prisma/api/auth/login`, #{ password: \"volley\", username: \"volley\" });"),
        "{script}"
    );
    assert!(script.contains("check(r, \"POST /prisma/api/auth/login is 201\", r.status == 201);"), "{script}");
    assert!(
        script.contains("    sleep(\"1.2s\");\n    let r = http::post(`${base}/focus-server/configure`, #{\n"),
        "{script}"
    );
    let lower = script.to_lowercase();
    for absent in ["cookie:", "access-token", "user-agent", "sec-ch-ua", "main.js", "styles.css", "favicon"] {
        assert!(!lower.contains(absent), "{absent} in\n{script}");
    }
    assert!(script.contains("(6 requests, 3 static assets left out)"), "{script}");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journey.rhai");
    let out = volley().args(["convert", FIXTURE, "-o"]).arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), script, "-o writes what stdout shows");
    let out = volley().arg("check").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("no problems"), "{}", text(&out));

    // Replayed against a fresh simulator: every check holds (the login cookie came from
    // the VU's jar) and the simulator saw each endpoint once.
    let mut config = SimConfig::default();
    config.latency.base_ms = 0.0;
    config.latency.jitter_ms = 0.0;
    let sim = SimHandle::start(config, "127.0.0.1:0".parse().unwrap()).unwrap();
    let out = volley()
        .args(["run", "--progress", "off"])
        .arg(&path)
        .args(["-e", &format!("BASE_URL={}", sim.base_url())])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("checks              100.00% (6 of 6)"), "{}", text(&out));
    let stats = crate::support::sim_stats(sim.local_addr());
    let by = &stats["requests"]["by_endpoint"];
    for endpoint in ["ack", "channels", "live_metadata", "configure", "login"] {
        assert_eq!(by[endpoint]["total"], 1, "{endpoint}: {stats}");
    }
    assert_eq!(by["alert_query"]["by_status"]["200"], 1, "the login cookie reached the alert query: {stats}");
    assert_eq!(stats["jobs"]["created"], 1, "{stats}");
}

#[test]
fn bad_recordings_get_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let f = |name: &str, body: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, body).unwrap();
        p
    };
    let full = std::fs::read_to_string(FIXTURE).unwrap();
    let cases = [
        (f("cut.har", &full.as_bytes()[..full.len() / 2]), "the JSON ends early (truncated file?)"),
        (f("page.har", b"<html><body>not json</body></html>"), "cut"),
        (f("other.har", br#"{"schema": "volley.run/1"}"#), "not a HAR file: no top-level `log`"),
        (f("bin.har", &[0xff, 0xfe, 0x00, 0x01]), "not text (a HAR file is UTF-8 JSON)"),
        (
            f("url.har", br#"{"log": {"entries": [{"request": {"method": "GET", "url": "nope"}}]}}"#),
            "log.entries[0].request.url: invalid URL \"nope\"",
        ),
    ];
    for (path, expected) in &cases {
        let out = volley().arg("convert").arg(path).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        let expected = if *expected == "cut" { "line 1, column 1: not JSON: expected value" } else { expected };
        assert!(text(&out).contains(expected), "{}", text(&out));
        assert!(text(&out).contains("hint: ") || path.ends_with("bin.har"), "{}", text(&out));
        assert!(out.stdout.is_empty(), "nothing on stdout on error");
    }
    let out = volley().args(["convert", "missing.har"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("cannot read missing.har"), "{}", text(&out));
}
