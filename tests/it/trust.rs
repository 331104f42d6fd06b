//! Issue 11, "trust what it says": limits users can hit by accident (distinct request
//! names, response bodies), panics that must fail a run, and secrets that must never
//! reach any output.

use crate::support::{self, run, run_with, script};
use std::process::Command;
use std::time::Duration;
use volley::engine::ExitCode;
use volley::metrics::Stat;

fn volley() -> Command {
    Command::new(env!("CARGO_BIN_EXE_volley"))
}

/// `volley run PATH`: its exit code and everything it printed.
fn run_cli(path: &std::path::Path) -> (Option<i32>, String) {
    let out = volley().args(["run", "--progress", "off"]).arg(path).output().unwrap();
    (out.status.code(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

fn summary(r: &volley::engine::RunReport) -> String {
    volley::report::summary::render(r)
}

fn count(r: &volley::engine::RunReport, metric: &str, filters: &[(String, String)]) -> f64 {
    r.aggregate.query(metric, filters).and_then(|s| s.stat(Stat::Count, Duration::ZERO).ok().flatten()).unwrap_or(0.0)
}

#[test]
fn distinct_request_names_are_capped_with_one_warning_and_an_overflow_row() {
    let server = support::start();
    let (_d, path) = script(
        r#"
        let base = env("BASE_URL");
        phase("p", #{ executor: "shared-iterations", vus: 4, iterations: 300 }, || {
            http::get(`${base}/item/1`, #{ name: `item-${vu_iteration()}-${vu_id()}` });
        });
        "#,
    );
    let r = run_with(&path, &[("BASE_URL", &server.base), ("VOLLEY_MAX_NAMES", "50")], 1.0);
    assert_eq!(r.exit, ExitCode::Passed, "{}", summary(&r));
    assert_eq!(server.count("/item/1"), 300);
    // Every request is counted: 50 names of their own, the rest in the overflow row.
    assert_eq!(count(&r, "http_reqs", &[]), 300.0);
    let names: Vec<&str> = r.requests.iter().map(|q| q.name.as_str()).collect();
    assert_eq!(names.len(), 51, "{names:?}");
    let overflow = r.requests.iter().find(|q| q.name == "{overflow}").expect("an overflow row");
    assert_eq!(overflow.count, 250, "{names:?}");
    assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
    assert!(r.warnings[0].contains("more than 50 distinct http names") && r.warnings[0].contains("`name` option"));
    assert!(summary(&r).contains("warning: more than 50 distinct http names"), "{}", summary(&r));
}

#[test]
fn id_like_path_segments_share_one_name_by_default() {
    let server = support::start();
    let (_d, path) = script(
        r#"
        let base = env("BASE_URL");
        for i in 0..200 { http::get(`${base}/item/tok${100 + i}x`); }
        "#,
    );
    let r = run(&path, &server.base);
    assert_eq!(r.exit, ExitCode::Passed, "{}", summary(&r));
    let names: Vec<(&str, u64)> = r.requests.iter().map(|q| (q.name.as_str(), q.count)).collect();
    assert_eq!(names, vec![("/item/{id}", 200)]);
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
}

#[test]
fn a_bad_name_limit_is_a_usage_error() {
    let (_d, path) = script("print(1);");
    let out = volley().args(["run", "--progress", "off"]).arg(&path).env("VOLLEY_MAX_NAMES", "lots").output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("VOLLEY_MAX_NAMES=\"lots\" is not a positive whole number"));
}

#[test]
fn bodies_over_max_body_are_counted_but_not_kept_and_can_be_discarded() {
    let server = support::start();
    let (_d, path) = script(
        r#"
        let base = env("BASE_URL");
        let r = http::get(`${base}/bytes/3000000`, #{ max_body: "1MB" });
        assert(r.status == 200 && r.truncated, `cut: ${r.truncated}`);
        assert(r.body.len() == 1000000, `kept ${r.body.len()}`);
        assert(r.body_size == 3000000, `size ${r.body_size}`);

        let r = http::get(`${base}/bytes/3000000`, #{ discard_body: true });
        assert(r.truncated && r.body == "" && r.body_size == 3000000, `discarded: ${r.body.len()}`);

        let r = http::get(`${base}/bytes/300`);
        assert(!r.truncated && r.body.len() == 300 && r.body_size == 300, "small bodies are whole");

        // The default keeps 10 MB; defaults() applies to every later request.
        http::defaults(#{ max_body: 1000 });
        let r = http::get(`${base}/bytes/5000`);
        assert(r.truncated && r.body.len() == 1000, `defaults: ${r.body.len()}`);
        let e = "";
        try { r.json(); } catch (err) { e = `${err}`; }
        assert(e.contains("was cut at 1000 of 5000 bytes") && e.contains("max_body"), e);
        "#,
    );
    let r = run(&path, &server.base);
    assert_eq!(r.exit, ExitCode::Passed, "{}", summary(&r));
    // data_received counts every byte, kept or not.
    let received = count(&r, "data_received", &[]);
    assert!(received >= 6_005_300.0, "data_received {received}");
}

#[test]
fn a_max_body_a_string_cannot_hold_is_refused_at_its_position() {
    let (_d, path) = script("let base = \"http://127.0.0.1:9\";\nhttp::get(`${base}/x`, #{ max_body: \"1GB\" });\n");
    let (code, text) = run_cli(&path);
    assert_eq!(code, Some(107), "{text}");
    assert!(text.contains("option `max_body` 1000000000 bytes is over the 64 MiB"), "{text}");
    assert!(text.contains("scenario.rhai:2:"), "{text}");
    assert!(text.contains("discard_body: true"), "{text}");
}

#[test]
fn a_string_over_the_limit_names_the_limit_and_the_line() {
    let (_d, path) = script("let s = \"x\";\nfor i in 0..40 { s += s; }\n");
    let (code, text) = run_cli(&path);
    assert_eq!(code, Some(107), "{text}");
    assert!(text.contains("over volley's limit") && text.contains("64 MiB"), "{text}");
    assert!(text.contains("scenario.rhai:2:"), "{text}");
}

/// Every output of a run (terminal, JSON, CSV, Markdown, HTML, JUnit) is searched for a
/// password, a bearer token and a session cookie the script used.
#[test]
fn no_output_of_a_run_shows_a_password_token_or_cookie() {
    let server = support::start();
    let (dir, path) = script(
        r#"
        let base = env("BASE_URL");
        http::defaults(#{ headers: #{ Authorization: "Bearer tok-SECRET-bearer-77" } });
        phase("p", #{ executor: "shared-iterations", vus: 2, iterations: 6 }, || {
            let r = http::post(`${base}/login`, #{ username: "qa", password: "pw-SECRET-body-99" });
            check(r, #{ "logged in": |r| r.status == 201 });
            let me = http::get(`${base}/whoami`);
            check(me, #{ "cookie sent": |r| r.status == 200 });
            http::get(`${base}/status/503`, #{ headers: #{ "X-Api-Key": "key-SECRET-header-5" } });
            // Credentials in a URL: the connection is refused, the error is counted.
            http::get("http://qa:pw-SECRET-url-3@127.0.0.1:9/private");
        });
        amqp::url("amqp://guest:amqp-SECRET-pw-4@127.0.0.1:5672/%2f");
        let p = amqp::publish("", "volley.secret.q", "x");
        check(p, #{ "refused": |p| !p.ok });
        "#,
    );
    let out_dir = dir.path().join("out");
    let junit = dir.path().join("junit.xml");
    let out = volley()
        .args(["run", "--progress", "off"])
        .arg(&path)
        .args(["-e", &format!("BASE_URL={}", server.base)])
        .arg("--junit")
        .arg(&junit)
        .args(["--out", &format!("json={}", out_dir.join("run.json").display())])
        .args(["--out", &format!("csv={}", out_dir.join("run").display())])
        .args(["--out", &format!("md={}", out_dir.join("run.md").display())])
        .args(["--out", &format!("html={}", out_dir.join("run.html").display())])
        .output()
        .unwrap();
    let mut texts = vec![
        ("stdout".to_string(), String::from_utf8_lossy(&out.stdout).to_string()),
        ("stderr".to_string(), String::from_utf8_lossy(&out.stderr).to_string()),
        ("junit".to_string(), std::fs::read_to_string(&junit).unwrap()),
    ];
    for entry in std::fs::read_dir(&out_dir).unwrap() {
        let p = entry.unwrap().path();
        texts.push((p.display().to_string(), std::fs::read_to_string(&p).unwrap()));
    }
    assert!(texts.len() >= 3 + 6, "every output was written: {:?}", texts.iter().map(|t| &t.0).collect::<Vec<_>>());
    // The run did what the secrets are for: logged in, sent the cookie, was refused.
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("run.json")).unwrap()).unwrap();
    assert_eq!(doc["totals"]["requests"], 24, "{}", texts[0].1);
    assert_eq!(doc["errors_by_kind"]["refused"], 6, "{}", texts[0].1);
    assert!(texts[0].1.contains("cookie sent"), "{}", texts[0].1);
    for (name, text) in &texts {
        for secret in ["SECRET", "secret-1"] {
            assert!(!text.contains(secret), "{name} shows {secret:?}:\n{text}");
        }
    }
}

/// Secrets that reach volley's own messages: a password in `BASE_URL` (the reports'
/// target), a token that ends in a newline in a header (an error every iteration), a
/// secret variable that is not a number, and a malformed URL with a password. No output
/// shows them; the messages still say what was wrong.
#[test]
fn messages_and_reports_hide_secrets_in_urls_headers_and_variables() {
    let server = support::start();
    let (dir, path) = script(
        r#"
        let base = env("BASE_URL");
        let tok = env("API_TOKEN");
        try { env("DB_PASSWORD", 5); } catch (e) { print(`caught: ${e}`); }
        try { http::get("http://admin:pw-SECRET-badurl-4@127.0.0.1:9 /x"); } catch (e) { print(`caught: ${e}`); }
        phase("p", #{ executor: "shared-iterations", vus: 1, iterations: 2 }, || {
            http::get(`${base}/status/200`);
            http::get(`${base}/status/200`, #{ headers: #{ Authorization: "Bearer " + tok } });
        });
        "#,
    );
    let out_dir = dir.path().join("out");
    let junit = dir.path().join("junit.xml");
    let base = server.base.replacen("http://", "http://qa:pw-SECRET-base-2@", 1);
    let out = volley()
        .args(["run", "--progress", "off"])
        .arg(&path)
        .args(["-e", &format!("BASE_URL={base}")])
        .args(["-e", "API_TOKEN=tok-SECRET-nl-1\n", "-e", "DB_PASSWORD=pw-SECRET-env-3"])
        .arg("--junit")
        .arg(&junit)
        .args(["--out", &format!("json={}", out_dir.join("run.json").display())])
        .args(["--out", &format!("md={}", out_dir.join("run.md").display())])
        .args(["--out", &format!("html={}", out_dir.join("run.html").display())])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let mut texts = vec![
        ("stdout".to_string(), stdout.clone()),
        ("stderr".to_string(), String::from_utf8_lossy(&out.stderr).to_string()),
        ("junit".to_string(), std::fs::read_to_string(&junit).unwrap()),
    ];
    for entry in std::fs::read_dir(&out_dir).unwrap() {
        let p = entry.unwrap().path();
        texts.push((p.display().to_string(), std::fs::read_to_string(&p).unwrap()));
    }
    assert_eq!(texts.len(), 6, "every output was written");
    for (name, text) in &texts {
        assert!(!text.contains("SECRET"), "{name} shows a secret:\n{text}");
    }
    // What was wrong is still said.
    assert!(stdout.contains("environment variable DB_PASSWORD (its value not shown"), "{stdout}");
    assert!(stdout.contains("invalid URL \"http://admin:***@127.0.0.1:9 /x\""), "{stdout}");
    let all = format!("{stdout}{}", texts[1].1);
    assert!(
        all.contains("invalid value for header Authorization (not shown: it may be a secret): a line break"),
        "{all}"
    );
    assert!(all.contains("hint: trim it"), "{all}");
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("run.json")).unwrap()).unwrap();
    assert_eq!(doc["target"], base.replace("pw-SECRET-base-2", "***"), "{}", doc["target"]);
    assert_eq!(doc["totals"]["requests"], 2, "the first GET of each iteration went out: {stdout}");
}
