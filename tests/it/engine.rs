//! The engine against a real local HTTP server: load models, counts equal to what the
//! server saw, judging, retries, network faults, cookies, JSON, custom metrics.

use crate::support::{self, run, script};
use std::time::Duration;
use volley::engine::ExitCode;
use volley::metrics::{Sink, Stat};

fn summary(r: &volley::engine::RunReport) -> String {
    volley::report::summary::render(r)
}

fn count(r: &volley::engine::RunReport, metric: &str, filters: &[(&str, &str)]) -> f64 {
    let f: Vec<(String, String)> = filters.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    r.aggregate.query(metric, &f).and_then(|s| s.stat(Stat::Count, Duration::ZERO).ok().flatten()).unwrap_or(0.0)
}

#[test]
fn closed_models_run_exactly_the_planned_iterations() {
    let server = support::start();
    let (_d, path) = script(
        r#"
        let base = env("BASE_URL");
        let sh = phase("shared", #{ executor: "shared-iterations", vus: 5, iterations: 50 }, || {
            http::get(`${base}/ok`, #{ name: "ok" });
        });
        let per_vu = phase("per-vu", #{ executor: "per-vu-iterations", vus: 3, iterations: 4 }, || {
            http::get(`${base}/status/201`);
        });
        expect(sh.iterations, "== 50", "shared iterations");
        expect(sh.requests, "== 50", "shared requests");
        expect(per_vu.iterations, "== 12", "per-vu iterations");
        expect(sh.success_rate, "== 1", "shared success");
        expect(sh.vus_max, "<= 5", "shared vus");
        "#,
    );
    let r = run(&path, &server.base);
    assert_eq!(r.exit, ExitCode::Passed, "{}", summary(&r));
    assert_eq!(server.count("/ok"), 50);
    assert_eq!(server.count("/status/201"), 12);
    let row = r.requests.iter().find(|q| q.name == "ok").unwrap();
    assert_eq!((row.count, row.failures), (50, 0));
}

#[test]
fn constant_vus_loop_for_the_duration() {
    let server = support::start();
    let (_d, path) = script(
        r#"
        let base = env("BASE_URL");
        let p = phase("steady", #{ executor: "constant-vus", vus: 4, duration: "1s" }, || {
            http::get(`${base}/ok`);
            sleep("100ms");
        });
        // 4 VUs x ~10 iterations each. The upper bound is what a fast machine can reach;
        // the lower bound and the elapsed time are generous for a slow, loaded one.
        expect(p.iterations, ">= 5", "iterations");
        expect(p.iterations, "<= 44", "iterations");
        expect(p.elapsed_s, "< 20", "elapsed");
        "#,
    );
    let r = run(&path, &server.base);
    assert_eq!(r.exit, ExitCode::Passed, "{}", summary(&r));
    assert_eq!(server.count("/ok") as f64, count(&r, "http_reqs", &[("phase", "steady")]));
}

#[test]
fn open_model_keeps_its_rate_and_counts_what_the_server_saw() {
    let server = support::start();
    let (_d, path) = script(
        r#"
        let base = env("BASE_URL");
        let p = phase("open", #{ executor: "constant-arrival-rate", rate: 50, duration: "2s" }, || {
            http::get(`${base}/ok`);
        });
        expect(p.iterations + p.dropped_iterations, "== 100", "arrivals scheduled");
        expect(p.iterations, ">= 95", "iterations started");
        // 2 s of arrivals; the bound only catches a phase that does not end on time.
        expect(p.elapsed_s, "< 15", "elapsed");
        "#,
    );
    let r = run(&path, &server.base);
    assert_eq!(r.exit, ExitCode::Passed, "{}", summary(&r));
    assert_eq!(server.count("/ok") as f64, count(&r, "http_reqs", &[]));
}

#[test]
fn open_model_drops_iterations_instead_of_delaying_them() {
    let server = support::start();
    let (_d, path) = script(
        r#"
        let base = env("BASE_URL");
        let p = phase("saturated", #{ executor: "constant-arrival-rate", rate: 40, duration: "1s", max_vus: 2 }, || {
            http::get(`${base}/slow?ms=300`);
        });
        expect(p.dropped_iterations, ">= 20", "dropped");
        expect(p.iterations + p.dropped_iterations, "== 40", "arrivals");
        // Latency from the scheduled start: with free VUs a start is on time.
        expect(p.iteration_duration.min, ">= 300", "iteration time includes the server's 300ms");
        "#,
    );
    let r = run(&path, &server.base);
    assert_eq!(r.exit, ExitCode::Passed, "{}", summary(&r));
}

#[test]
fn ramping_arrival_rate_follows_its_stages() {
    let server = support::start();
    let (_d, path) = script(
        r#"
        let base = env("BASE_URL");
        let p = phase("ramp", #{ executor: "ramping-arrival-rate", start_rate: 0, stages: [#{ duration: "2s", target: 40 }] }, || {
            http::get(`${base}/ok`);
        });
        // The integral of a 0 -> 40/s ramp over 2 s is 40.
        expect(p.iterations + p.dropped_iterations, "== 40", "arrivals");
        "#,
    );
    let r = run(&path, &server.base);
    assert_eq!(r.exit, ExitCode::Passed, "{}", summary(&r));
}

#[test]
fn bursts_report_each_burst() {
    let server = support::start();
    let (_d, path) = script(
        r#"
        let base = env("BASE_URL");
        let p = phase("burst", #{ executor: "bursts", bursts: 3, size: 10, pause: "100ms" }, || {
            http::get(`${base}/slow?ms=1000`);
        });
        expect(p.bursts.len(), "== 3", "bursts");
        for b in p.bursts {
            expect(b.requests, "== 10", `burst ${b.burst} requests`);
            expect(b.success_rate, "== 1", `burst ${b.burst} success`);
            // 10 concurrent iterations of a 1 s call: about 1 s, while one after another
            // they would take at least 10 s; the gap leaves room for a slow machine.
            expect(b.duration_ms, ">= 1000", `burst ${b.burst} waited for its calls`);
            expect(b.duration_ms, "< 5000", `burst ${b.burst} ran concurrently`);
        }
        let b2 = stats("http_reqs{phase:burst,burst:2}");
        expect(b2.count, "== 10", "stats() of one burst");
        "#,
    );
    let r = run(&path, &server.base);
    assert_eq!(r.exit, ExitCode::Passed, "{}", summary(&r));
    assert_eq!(server.count("/slow"), 30);
}

#[test]
fn thresholds_and_assertions_set_the_exit_code() {
    let server = support::start();
    let (_d, pass) = script(
        r#"
        let base = env("BASE_URL");
        phase("p", #{ executor: "shared-iterations", vus: 2, iterations: 10 }, || { http::get(`${base}/ok`); });
        threshold("http_req_duration{phase:p}", ["p(95) < 5000", "max < 10000"]);
        threshold("http_req_failed", "rate == 0");
        threshold("http_reqs{phase:p}", "count == 10");
        "#,
    );
    let r = run(&pass, &server.base);
    assert_eq!(r.exit, ExitCode::Passed, "{}", summary(&r));
    assert_eq!(r.thresholds.len(), 4);

    let (_d, fail) = script(
        r#"
        let base = env("BASE_URL");
        phase("p", #{ executor: "shared-iterations", vus: 2, iterations: 10 }, || { http::get(`${base}/status/500`); });
        threshold("http_req_failed{phase:p}", "rate < 0.1");
        threshold("http_req_duration{phase:nonexistent}", "p(95) < 300");
        "#,
    );
    let r = run(&fail, &server.base);
    assert_eq!(r.exit, ExitCode::Failed, "{}", summary(&r));
    assert_eq!(r.thresholds[0].observed, Some(1.0));
    assert!(r.thresholds[1].error.as_deref().unwrap().starts_with("no data"));

    let (_d, assertion) = script("assert(1 > 2, \"arithmetic\");\nassert(true, \"fine\");\n");
    let r = run(&assertion, &server.base);
    assert_eq!(r.exit, ExitCode::Failed);
    assert_eq!(r.assertions.iter().filter(|a| !a.passed).count(), 1);
}

#[test]
fn script_errors_exit_107_and_keep_results() {
    let server = support::start();
    let (_d, path) = script(
        r#"
        let base = env("BASE_URL");
        phase("p", #{ executor: "shared-iterations", vus: 1, iterations: 3 }, || {
            http::get(`${base}/ok`);
            throw "boom";
        });
        "#,
    );
    let r = run(&path, &server.base);
    assert_eq!(r.exit, ExitCode::ScriptError, "{}", summary(&r));
    assert_eq!(r.iteration_errors.len(), 1);
    assert_eq!(r.iteration_errors[0].count, 3);
    assert_eq!(server.count("/ok"), 3);
    assert_eq!(count(&r, "iteration_errors", &[]), 3.0);
}

#[test]
fn retry_honours_retry_after_and_counts_the_request_once() {
    let server = support::start();
    let (_d, path) = script(
        r#"
        let base = env("BASE_URL");
        let p = phase("p", #{ executor: "shared-iterations", vus: 1, iterations: 1 }, || {
            let r = retry(#{ attempts: 5, base: "60s", cap: "60s", statuses: [429] }, || http::get(`${base}/flaky`));
            check(r, "finally 200", r.status == 200);
        });
        expect(p.requests, "== 3", "attempts on the wire");
        expect(p.logical_requests, "== 1", "logical requests");
        expect(p.success_rate, "== 1", "success rate counts the final outcome");
        // Retry-After: 0.05 beats the 60 s backoff (two of them without it).
        expect(p.elapsed_s, "< 30", "Retry-After honoured");
        let a = stats("retry_attempts");
        expect(a.max, "== 3", "attempts recorded");
        "#,
    );
    let r = run(&path, &server.base);
    assert_eq!(r.exit, ExitCode::Passed, "{}", summary(&r));
}

#[test]
fn network_faults_are_failed_requests_with_a_kind() {
    let server = support::start();
    // A port nothing listens on: bind, read the port, close.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let (_d, path) = script(&format!(
        r#"
        let base = env("BASE_URL");
        let p = phase("faults", #{{ executor: "shared-iterations", vus: 2, iterations: 4 }}, || {{
            let r = http::get("http://{closed}/x", #{{ name: "refused" }});
            check(r, "refused", r.status == 0 && r.error == "refused");
            let t = http::get(`${{base}}/slow?ms=800`, #{{ timeout: "100ms", name: "timeout" }});
            check(t, "timeout", t.status == 0 && t.error == "timeout");
        }});
        expect(p.failed, "== 8", "failed requests");
        expect(p.errors.refused, "== 4", "refused");
        expect(p.errors.timeout, "== 4", "timeouts");
        "#
    ));
    let r = run(&path, &server.base);
    assert_eq!(r.exit, ExitCode::Passed, "{}", summary(&r));
    assert!(r.checks.iter().all(|c| c.fails == 0), "{}", summary(&r));
}

#[test]
fn each_vu_keeps_its_cookies_and_json_round_trips() {
    let server = support::start();
    let (_d, path) = script(
        r#"
        let base = env("BASE_URL");
        phase("p", #{ executor: "per-vu-iterations", vus: 3, iterations: 3 }, || {
            if vu_iteration() == 0 {
                let l = http::post(`${base}/login`, #{ username: "volley" }, #{ expect: [201] });
                check(l, "login 201", l.status == 201);
            }
            let me = http::get(`${base}/whoami`);
            check(me, "cookie reused", me.status == 200);
            let e = http::post(`${base}/echo`, #{ n: vu_id(), list: [1, 2] });
            check(e, "json echo", e.json().got.list[1] == 2);
        });
        let top = http::get(`${base}/whoami`);
        assert(top.status == 401, "the top level has its own jar");
        "#,
    );
    let r = run(&path, &server.base);
    assert_eq!(r.exit, ExitCode::Passed, "{}", summary(&r));
    assert!(r.checks.iter().all(|c| c.fails == 0 && c.passes > 0), "{}", summary(&r));
}

#[test]
fn custom_metrics_feed_thresholds() {
    let server = support::start();
    let (_d, path) = script(
        r#"
        let t = metrics::trend("e2e_ms");
        let c = metrics::counter("alerts");
        let ok = metrics::rate("stored");
        phase("p", #{ executor: "shared-iterations", vus: 2, iterations: 20 }, || {
            t.add(10 + vu_iteration(), #{ kind: "SC" });
            c.add(1);
            ok.add(true);
        });
        threshold("e2e_ms{kind:SC}", ["max < 100", "count == 20"]);
        threshold("alerts", "count == 20");
        threshold("stored", "rate == 1");
        "#,
    );
    let r = run(&path, &server.base);
    assert_eq!(r.exit, ExitCode::Passed, "{}", summary(&r));
    match r.aggregate.query("e2e_ms", &[]) {
        Some(Sink::Trend(t)) => assert_eq!(t.count(), 20),
        other => panic!("no trend: {other:?}"),
    }
}

#[test]
fn modules_imported_at_the_top_are_visible_in_phases() {
    let server = support::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("stdlib")).unwrap();
    std::fs::write(
        dir.path().join("stdlib/health.rhai"),
        "fn ping(base) { http::get(`${base}/ok`, #{ name: \"ping\" }) }\n",
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("scripts")).unwrap();
    let path = dir.path().join("scripts/uses_stdlib.rhai");
    std::fs::write(
        &path,
        "import \"health\" as health;\nlet base = env(\"BASE_URL\");\nphase(\"p\", #{ executor: \"shared-iterations\", vus: 2, iterations: 6 }, || {\n    let r = health::ping(base);\n    check(r, \"200\", r.status == 200);\n});\n",
    )
    .unwrap();
    let r = run(&path, &server.base);
    assert_eq!(r.exit, ExitCode::Passed, "{}", summary(&r));
    assert_eq!(server.count("/ok"), 6);
}

/// Regression: Rhai's own `sleep(FLOAT)` blocks the thread; ours must suspend only the
/// VU, so 40 VUs sleeping 1 s each finish together (about 1 s), not one after another
/// (40 s, or 20 s on two blocked worker threads).
#[test]
fn numeric_sleeps_do_not_block_other_vus() {
    let server = support::start();
    let (_d, path) = script(
        r#"
        let p = phase("sleepers", #{ executor: "per-vu-iterations", vus: 40, iterations: 1 }, || {
            sleep(1.0);
            sleep(0);
            sleep("10ms");
        });
        expect(p.iterations, "== 40", "iterations");
        expect(p.elapsed_s, ">= 1", "the numeric sleep waited");
        expect(p.elapsed_s, "< 10", "40 concurrent 1 s sleeps take about 1 s, not 20-40 s");
        "#,
    );
    let r = run(&path, &server.base);
    assert_eq!(r.exit, ExitCode::Passed, "{}", summary(&r));
}

#[test]
fn redirects_are_followed_once_and_connections_are_kept_per_vu() {
    let server = support::start();
    let (_d, path) = script(
        r#"
        let base = env("BASE_URL");
        let r = http::get(`${base}/redirect`);
        expect(r.status, "== 200", "redirect followed");
        assert(r.body == "ok", "final body");
        let s = http::post(`${base}/see-other`, #{ a: 1 });
        assert(s.body == "GET", `303 turns POST into GET (got ${s.body})`);
        phase("keepalive", #{ executor: "per-vu-iterations", vus: 2, iterations: 5 }, || {
            let port = http::get(`${base}/conn`).body;
            if vu_iteration() == 0 {
                metrics::gauge(`first_port_vu${vu_id()}`).add(parse_int(port));
            } else {
                let same = stats(`first_port_vu${vu_id()}`).value == parse_int(port);
                check(port, "same connection as the first iteration", same);
            }
        });
        threshold("checks", "rate == 1");
        "#,
    );
    let r = run(&path, &server.base);
    assert_eq!(r.exit, ExitCode::Passed, "{}", summary(&r));
    assert_eq!(server.count("/redirect"), 1);
    assert_eq!(server.count("/ok"), 1);
    assert_eq!(server.count("/see-other"), 1);
    assert_eq!(server.count("/echo-method"), 1);
    // Two hops on the wire for each redirected call.
    assert_eq!(count(&r, "http_reqs", &[("status", "302")]), 1.0);
}

#[test]
fn ramping_vus_follow_their_stages() {
    let server = support::start();
    let (_d, path) = script(
        r#"
        let base = env("BASE_URL");
        let p = phase("ramp", #{ executor: "ramping-vus", start_vus: 0, stages: [
            #{ duration: "1s", target: 6 }, #{ duration: "2s", target: 6 }, #{ duration: "500ms", target: 0 }
        ] }, || {
            http::get(`${base}/ok`);
            sleep("100ms");
        });
        // The 2 s plateau lets the VUs overlap even when the machine pauses.
        expect(p.vus_max, ">= 4", "VUs ramped up");
        expect(p.vus_max, "<= 6", "never above the target");
        // At most ~16.5 VU-seconds at 10 iterations/s each (3 up, 12 on the plateau,
        // 1.5 down); the lower bound and the elapsed time are generous for a slow machine.
        expect(p.iterations, ">= 10", "iterations");
        expect(p.iterations, "<= 200", "iterations");
        expect(p.elapsed_s, "< 20", "ends with its stages");
        "#,
    );
    let r = run(&path, &server.base);
    assert_eq!(r.exit, ExitCode::Passed, "{}", summary(&r));
}

#[test]
fn data_files_are_read_once_and_shared_by_vus() {
    let server = support::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    std::fs::write(dir.path().join("data/users.csv"), "name,role\nann,admin\n\"bob, jr\",viewer\n").unwrap();
    std::fs::write(dir.path().join("data/config.json"), r#"{"paths": ["/ok", "/status/201"]}"#).unwrap();
    let path = dir.path().join("scenario.rhai");
    std::fs::write(
        &path,
        r#"
        let base = env("BASE_URL");
        let users = data::csv("data/users.csv");
        assert(users.len() == 2 && users[1].name == "bob, jr", "CSV quoting");
        phase("p", #{ executor: "per-vu-iterations", vus: 4, iterations: 2 }, || {
            let cfg = data::json("data/config.json");
            let u = data::csv("data/users.csv")[vu_id() % 2];
            http::get(`${base}${cfg.paths[vu_iteration()]}`, #{ tags: #{ role: u.role } });
        });
        threshold("http_reqs{role:admin}", "count == 4");
        "#,
    )
    .unwrap();
    let r = run(&path, &server.base);
    assert_eq!(r.exit, ExitCode::Passed, "{}", summary(&r));
    assert_eq!((server.count("/ok"), server.count("/status/201")), (4, 4));
}

#[test]
fn iteration_timeout_stops_slow_iterations_and_the_vu_goes_on() {
    let server = support::start();
    let (_d, path) = script(
        r#"
        let base = env("BASE_URL");
        // The timeout is far above a normal iteration on a slow machine and far below the
        // slow one's sleep.
        let p = phase("p", #{ executor: "per-vu-iterations", vus: 2, iterations: 3, iteration_timeout: "3s" }, || {
            if vu_iteration() == 1 { sleep("120s"); }
            http::get(`${base}/ok`);
        });
        expect(p.timed_out_iterations, "== 2", "one slow iteration per VU stopped");
        expect(p.iterations, "== 4", "the other iterations ran");
        expect(p.elapsed_s, "< 60", "nobody waited 120 s");
        "#,
    );
    let r = run(&path, &server.base);
    assert_eq!(r.exit, ExitCode::Passed, "{}", summary(&r));
    assert_eq!(server.count("/ok"), 4);
}

/// An iteration stopped inside a `group` leaves its group behind: the VU's next
/// iterations are tagged with the phase's tags again.
#[test]
fn a_group_left_by_a_stopped_iteration_does_not_tag_the_next_ones() {
    let server = support::start();
    let (_d, path) = script(
        r#"
        let base = env("BASE_URL");
        let p = phase("p", #{ executor: "per-vu-iterations", vus: 2, iterations: 3, iteration_timeout: "3s" }, || {
            if vu_iteration() == 1 {
                group("slow", || { http::get(`${base}/ok`); sleep("120s"); });
            }
            http::get(`${base}/ok`);
        });
        expect(p.timed_out_iterations, "== 2", "one slow iteration per VU stopped");
        threshold("http_reqs{group:slow}", "count == 2");   // the 4 others carry no group
        threshold("http_reqs{phase:p}", "count == 6");
        "#,
    );
    let r = run(&path, &server.base);
    assert_eq!(r.exit, ExitCode::Passed, "{}", summary(&r));
    assert_eq!(server.count("/ok"), 6);
}

/// An iteration that computes without ever waiting is stopped at `iteration_timeout`
/// too, and counted as a timeout, not as a script error.
#[test]
fn iteration_timeout_also_stops_script_code_that_never_waits() {
    let server = support::start();
    let (_d, path) = script(
        r#"
        let base = env("BASE_URL");
        // The timeout is far above a normal iteration on a slow machine. Stopped by the
        // busy limit (10 s) instead, a spinning iteration would be a script error, not a
        // timeout: the counts below and the empty iteration_errors tell the two apart.
        let p = phase("p", #{ executor: "per-vu-iterations", vus: 2, iterations: 2, iteration_timeout: "3s" }, || {
            if vu_iteration() == 1 { let n = 0; while n >= 0 { n += 1; } }
            http::get(`${base}/ok`);
        });
        expect(p.timed_out_iterations, "== 2", "one spinning iteration per VU stopped");
        expect(p.iterations, "== 2", "the other iterations ran");
        expect(p.elapsed_s, "< 60", "the spinning iterations were stopped");
        "#,
    );
    let r = run(&path, &server.base);
    assert_eq!(r.exit, ExitCode::Passed, "{}", summary(&r));
    assert!(r.iteration_errors.is_empty(), "{:?}", r.iteration_errors.iter().map(|e| &e.rendered).collect::<Vec<_>>());
    assert_eq!(server.count("/ok"), 2);
}

/// Regression: a single-stage ramp from 0 VUs used to end before spawning any VU.
#[test]
fn a_single_stage_ramp_from_zero_runs() {
    let server = support::start();
    let (_d, path) = script(
        r#"
        let base = env("BASE_URL");
        let p = phase("up", #{ executor: "ramping-vus", start_vus: 0, stages: [#{ duration: "1s", target: 4 }] }, || {
            http::get(`${base}/ok`);
            sleep("50ms");
        });
        expect(p.iterations, ">= 10", "iterations while ramping up");
        expect(p.vus_max, "<= 4", "never above the target");
        "#,
    );
    let r = run(&path, &server.base);
    assert_eq!(r.exit, ExitCode::Passed, "{}", summary(&r));
}
