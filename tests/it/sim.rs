//! The simulator over real HTTP (and a real RabbitMQ on 127.0.0.1:5672): every endpoint,
//! every limit and fault, and `/sim/stats` agreeing with what the client sent.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use volley::sim::{SimConfig, SimError, SimHandle};

const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
const SITE: &str = "prisma-210-1000";

fn ephemeral() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// Settings without latency or jitter, so tests are fast and exact.
fn quick() -> SimConfig {
    let mut c = SimConfig::default();
    c.latency.base_ms = 0.0;
    c.latency.jitter_ms = 0.0;
    c.latency.growth_ms_per_in_flight = 0.0;
    c.latency.endpoints.clear();
    c.alerts.processing_delay_ms = 0.0;
    c
}

fn start(config: SimConfig) -> SimHandle {
    SimHandle::start(config, ephemeral()).expect("simulator starts")
}

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().timeout(Duration::from_secs(15)).build().unwrap()
}

struct Reply {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

async fn send(c: &reqwest::Client, method: Method, url: &str, body: Option<&Value>, cookie: Option<&str>) -> Reply {
    let mut rb = c.request(method, url);
    if let Some(b) = body {
        rb = rb.header("content-type", "application/json").body(serde_json::to_vec(b).unwrap());
    }
    if let Some(token) = cookie {
        rb = rb.header("cookie", format!("access-token={token}"));
    }
    let r = rb.send().await.expect("request answered");
    let status = r.status();
    let headers = r.headers().clone();
    let bytes = r.bytes().await.unwrap();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("{url}: body is not JSON ({e}): {}", String::from_utf8_lossy(&bytes)));
    Reply { status, headers, body }
}

fn job_payload() -> Value {
    json!({"displayTimeAxisDuration":10, "nfftSelection":1024, "displayInfo":{"height":1000},
           "channels":{"min":1,"max":50}, "frequencyRange":{"min":0,"max":1000},
           "start_time":null, "end_time":null, "view_type":"0"})
}

fn alert(id: &str) -> Value {
    json!({"alertsAmount": 1, "dofM": 1500, "classId": 104, "severity": 2, "alertIds": [id]})
}

async fn login(c: &reqwest::Client, sim: &SimHandle) -> String {
    let r = c
        .post(format!("{}/auth/login", sim.alerts_url()))
        .body(r#"{"username":"volley","password":"volley"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    let token = cookie.strip_prefix("access-token=").expect("cookie access-token");
    token.split(';').next().unwrap().to_string()
}

async fn stats(c: &reqwest::Client, sim: &SimHandle) -> Value {
    send(c, Method::GET, &format!("{}/sim/stats", sim.base_url()), None, None).await.body
}

fn push_url(sim: &SimHandle) -> String {
    format!("{}/{SITE}/api/push-to-rabbit", sim.alerts_url())
}

fn query_url(sim: &SimHandle) -> String {
    format!("{}/{SITE}/api/alert?startTime=2000-01-01T00:00:00Z&endTime=2100-01-01T00:00:00Z", sim.alerts_url())
}

/// Polls `/sim/stats` until `done` holds (at most 10 s).
async fn wait_stats(c: &reqwest::Client, sim: &SimHandle, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = stats(c, sim).await;
        if done(&s) || Instant::now() > deadline {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn every_focus_endpoint_answers_as_documented() {
    let sim = start(quick());
    let c = client();
    let f = sim.focus_url();
    let r = send(&c, Method::GET, &format!("{f}/ack"), None, None).await;
    assert_eq!((r.status, r.body), (StatusCode::OK, json!({})));
    let r = send(&c, Method::GET, &format!("{f}/channels"), None, None).await;
    assert_eq!(r.body, json!({"lowest_channel": 1, "highest_channel": 2222}));
    let r = send(&c, Method::GET, &format!("{f}/live_metadata"), None, None).await;
    for key in [
        "prr",
        "num_samples_per_trace",
        "dtype",
        "dx",
        "fiber_start_meters",
        "fiber_length_meters",
        "sw_version",
        "number_of_channels",
        "fiber_description",
    ] {
        assert!(r.body.get(key).is_some(), "live_metadata lacks {key}");
    }
    let job = send(&c, Method::POST, &format!("{f}/configure"), Some(&job_payload()), None).await;
    assert_eq!(job.status, StatusCode::OK, "{}", job.body);
    for key in [
        "status",
        "frequencies_list",
        "lines_dt",
        "channel_to_stream_index",
        "stream_amount",
        "job_id",
        "frequencies_amount",
        "channel_amount",
        "stream_port",
        "stream_url",
        "view_type",
    ] {
        assert!(job.body.get(key).is_some(), "configure lacks {key}");
    }
    assert_eq!(job.body["stream_port"], 50051);
    assert_eq!(job.body["channel_amount"], 50);
    let id = job.body["job_id"].as_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok());
    let second = send(&c, Method::POST, &format!("{f}/configure"), Some(&job_payload()), None).await;
    assert_eq!(second.body["stream_port"], 50052);
    let meta = send(&c, Method::GET, &format!("{f}/metadata/{id}"), None, None).await;
    assert_eq!(meta.body["status"], "running");
    assert_eq!(meta.body["job_id"], id);
    assert_eq!(meta.body["frequencies_list"], job.body["frequencies_list"]);
    let del = send(&c, Method::DELETE, &format!("{f}/job/{id}"), None, None).await;
    assert_eq!(del.status, StatusCode::OK);
    let meta = send(&c, Method::GET, &format!("{f}/metadata/{id}"), None, None).await;
    assert_eq!(meta.body["status"], "cancelled");
    for path in ["metadata/unknown-id", "job/unknown-id"] {
        let method = if path.starts_with("job") { Method::DELETE } else { Method::GET };
        let r = send(&c, method, &format!("{f}/{path}"), None, None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
        assert!(r.body["error"].as_str().unwrap().contains("unknown-id"), "{}", r.body);
    }
    let s = stats(&c, &sim).await;
    assert_eq!(s["jobs"]["created"], 2);
    assert_eq!(s["jobs"]["live"], 1);
    assert_eq!(s["jobs"]["cancelled"], 1);
}

#[tokio::test]
async fn invalid_requests_get_json_4xx_never_500() {
    let sim = start(quick());
    let c = client();
    let f = sim.focus_url();
    let with = |path: &str, v: Value| {
        let mut p = job_payload();
        let mut slot = &mut p;
        let parts: Vec<&str> = path.split('.').collect();
        for key in &parts[..parts.len() - 1] {
            slot = &mut slot[*key];
        }
        slot[parts[parts.len() - 1]] = v;
        p
    };
    let cases = [
        (with("channels.max", json!(2300)), "channels"),
        (with("channels.min", json!(0)), "channels.min"),
        (with("channels.max", json!("50")), "channels.max"),
        (with("view_type", json!("3")), "view_type"),
        (with("displayInfo.height", json!(0)), "displayInfo.height"),
        (with("frequencyRange.max", json!(1001)), "frequencyRange.max"),
        (with("nfftSelection", json!(-1)), "nfftSelection"),
        (with("start_time", json!(1700000000)), "end_time"),
        (json!({"channels": {"min": 1, "max": 2}, "view_type": "0"}), "displayInfo"),
    ];
    for (body, field) in cases {
        let r = send(&c, Method::POST, &format!("{f}/configure"), Some(&body), None).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(r.body["field"], field, "{}", r.body);
    }
    // Not JSON, empty, too large, wrong method, unknown path.
    let raw = |m: Method, url: String, body: Vec<u8>| {
        let c = c.clone();
        async move {
            let r = c.request(m, url).body(body).send().await.unwrap();
            let status = r.status();
            let v: Value = serde_json::from_slice(&r.bytes().await.unwrap()).expect("JSON error body");
            assert!(v["error"].is_string(), "{v}");
            status
        }
    };
    assert_eq!(raw(Method::POST, format!("{f}/configure"), b"{not json".to_vec()).await, StatusCode::BAD_REQUEST);
    assert_eq!(raw(Method::POST, format!("{f}/configure"), Vec::new()).await, StatusCode::BAD_REQUEST);
    assert_eq!(raw(Method::POST, format!("{f}/configure"), vec![b' '; 70_000]).await, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(raw(Method::GET, format!("{f}/configure"), Vec::new()).await, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(raw(Method::GET, format!("{}/nowhere", sim.base_url()), Vec::new()).await, StatusCode::NOT_FOUND);
    let token = login(&c, &sim).await;
    let bad_alerts = [
        json!({"dofM": 1, "classId": 105, "severity": 1}),
        json!({"dofM": 1, "classId": 103, "severity": 9}),
        json!([1, 2]),
    ];
    for body in bad_alerts {
        let r = send(&c, Method::POST, &push_url(&sim), Some(&body), Some(&token)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}");
    }
    let r = send(&c, Method::GET, &format!("{}/{SITE}/api/alert?startTime=soon", sim.alerts_url()), None, Some(&token))
        .await;
    assert_eq!((r.status, r.body["field"].as_str()), (StatusCode::BAD_REQUEST, Some("startTime")));
    let r = send(
        &c,
        Method::DELETE,
        &format!("{}/{SITE}/api/alert/delete", sim.alerts_url()),
        Some(&json!({})),
        Some(&token),
    )
    .await;
    assert_eq!((r.status, r.body["field"].as_str()), (StatusCode::BAD_REQUEST, Some("alertIds")));
    let r = send(
        &c,
        Method::POST,
        &format!("{}/other-site/api/push-to-rabbit", sim.alerts_url()),
        Some(&alert("x")),
        Some(&token),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let s = stats(&c, &sim).await;
    assert!(s["requests"]["by_status"].get("500").is_none(), "{s}");
    assert_eq!(s["jobs"]["created"], 0);
}

#[tokio::test]
async fn delete_job_can_answer_404_like_the_real_server() {
    let mut config = quick();
    config.focus.delete_job_returns_404 = true;
    let sim = start(config);
    let c = client();
    let job = send(&c, Method::POST, &format!("{}/configure", sim.focus_url()), Some(&job_payload()), None).await;
    let id = job.body["job_id"].as_str().unwrap();
    let r = send(&c, Method::DELETE, &format!("{}/job/{id}", sim.focus_url()), None, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let meta = send(&c, Method::GET, &format!("{}/metadata/{id}", sim.focus_url()), None, None).await;
    assert_eq!(meta.body["status"], "running", "the job was not cancelled");
}

#[tokio::test]
async fn live_job_cap_answers_503_with_retry_after() {
    // The expiry is far away, so the count does not depend on how fast this machine is.
    let mut config = quick();
    config.limits.max_live_jobs = 3;
    config.limits.job_idle_expiry_s = 600.0;
    let sim = start(config);
    let c = client();
    let url = format!("{}/configure", sim.focus_url());
    let mut ok = 0;
    for _ in 0..5 {
        let r = send(&c, Method::POST, &url, Some(&job_payload()), None).await;
        match r.status {
            StatusCode::OK => ok += 1,
            StatusCode::SERVICE_UNAVAILABLE => {
                assert!(r.body["error"].as_str().unwrap().contains("job limit reached"), "{}", r.body);
                let retry_after: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
                assert!((1..=600).contains(&retry_after), "retry-after {retry_after}");
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(ok, 3);
    let s = stats(&c, &sim).await;
    assert_eq!((s["jobs"]["live"].as_u64(), s["jobs"]["rejected_at_limit"].as_u64()), (Some(3), Some(2)));
    assert_eq!(s["requests"]["by_endpoint"]["configure"]["by_status"]["503"], 2);
}

#[tokio::test]
async fn expired_jobs_free_their_slots() {
    // Only a lower bound on time matters here: after the sleep the job has expired,
    // however slow the machine.
    let mut config = quick();
    config.limits.max_live_jobs = 1;
    config.limits.job_idle_expiry_s = 0.3;
    let sim = start(config);
    let c = client();
    let url = format!("{}/configure", sim.focus_url());
    assert_eq!(send(&c, Method::POST, &url, Some(&job_payload()), None).await.status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let r = send(&c, Method::POST, &url, Some(&job_payload()), None).await;
    assert_eq!(r.status, StatusCode::OK, "the expired job freed its slot");
    // The second job has the same short expiry and `/sim/stats` sweeps with the current
    // time, so on a slow machine it may have expired too: only the sum is exact.
    let s = stats(&c, &sim).await;
    let (expired, live) = (s["jobs"]["expired"].as_u64().unwrap(), s["jobs"]["live"].as_u64().unwrap());
    assert_eq!(s["jobs"]["created"].as_u64(), Some(2), "{s}");
    assert!(expired >= 1 && expired + live == 2, "expired {expired}, live {live}: {s}");
    assert_eq!(s["jobs"]["rejected_at_limit"].as_u64(), Some(0));
}

#[tokio::test]
async fn alert_endpoints_need_the_login_cookie() {
    let mut config = quick();
    config.alerts.username = "qa".into();
    config.alerts.password = "s3cret".into();
    let sim = start(config);
    let c = client();
    let login_url = format!("{}/auth/login", sim.alerts_url());
    let r = send(&c, Method::POST, &login_url, Some(&json!({"username": "volley", "password": "volley"})), None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.body["error"].is_string());
    let r = send(&c, Method::POST, &login_url, Some(&json!({"username": "qa"})), None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let delete_url = format!("{}/{SITE}/api/alert/delete", sim.alerts_url());
    for token in [None, Some("forged")] {
        for (m, url, body) in [
            (Method::POST, push_url(&sim), Some(alert("a"))),
            (Method::GET, query_url(&sim), None),
            (Method::DELETE, delete_url.clone(), Some(json!({"alertIds": ["a"]}))),
        ] {
            let r = send(&c, m, &url, body.as_ref(), token).await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{url} with {token:?}");
            assert!(r.body["error"].as_str().unwrap().contains("access-token"));
        }
    }
    let r = send(&c, Method::POST, &login_url, Some(&json!({"username": "qa", "password": "s3cret"})), None).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let token = r.headers["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("access-token=")
        .to_string();
    let r = send(&c, Method::POST, &push_url(&sim), Some(&alert("a")), Some(&token)).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let s = stats(&c, &sim).await;
    assert_eq!(s["requests"]["by_status"]["401"], 7);
}

#[tokio::test]
async fn push_rate_limit_gives_exact_429_count_with_retry_after() {
    let mut config = quick();
    // One token per 1000 s: no refill during the test, so exactly N - burst are refused.
    config.limits.push_rate_per_s = 0.001;
    config.limits.push_burst = 5;
    let sim = start(config);
    let c = client();
    let token = login(&c, &sim).await;
    let url = push_url(&sim);
    let replies = join_all((0..12).map(|i| {
        let (c, url, token) = (c.clone(), url.clone(), token.clone());
        async move { send(&c, Method::POST, &url, Some(&alert(&format!("rl-{i}"))), Some(&token)).await }
    }))
    .await;
    let limited: Vec<&Reply> = replies.iter().filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS).collect();
    assert_eq!(limited.len(), 7);
    assert_eq!(replies.iter().filter(|r| r.status == StatusCode::CREATED).count(), 5);
    for r in &limited {
        let after: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
        assert!(after >= 1, "Retry-After {after}");
        assert!(r.body["error"].as_str().unwrap().contains("rate limit"));
    }
    let s = stats(&c, &sim).await;
    assert_eq!(s["limits"]["rate_limited"], 7);
    assert_eq!(s["requests"]["by_endpoint"]["push_to_rabbit"]["by_status"]["429"], 7);
    assert_eq!(s["alerts"]["accepted"], 5);
}

#[tokio::test]
async fn in_flight_cap_answers_503_above_it() {
    let mut config = quick();
    config.limits.max_in_flight = 4;
    // The admitted requests are held long enough for all 10 to arrive even on a slow,
    // loaded machine (the client's timeout is 15 s).
    config.latency.base_ms = 10000.0;
    let sim = start(config);
    let c = client();
    let url = format!("{}/ack", sim.focus_url());
    let replies = join_all((0..10).map(|_| {
        let (c, url) = (c.clone(), url.clone());
        async move { send(&c, Method::GET, &url, None, None).await }
    }))
    .await;
    let over: Vec<&Reply> = replies.iter().filter(|r| r.status == StatusCode::SERVICE_UNAVAILABLE).collect();
    assert_eq!(over.len(), 6);
    assert_eq!(replies.iter().filter(|r| r.status == StatusCode::OK).count(), 4);
    assert_eq!(over[0].headers["retry-after"], "1");
    assert!(over[0].body["error"].as_str().unwrap().contains("in flight"));
    let s = stats(&c, &sim).await;
    assert_eq!(s["limits"]["over_in_flight_cap"], 6);
    // Refusals leave at once, so the peak is the cap plus refusals still on their way out.
    assert!(s["max_in_flight_seen"].as_u64() >= Some(5), "{s}");
}

#[tokio::test]
async fn latency_has_a_base_and_grows_with_requests_in_flight() {
    let mut config = quick();
    config.latency.base_ms = 100.0;
    config.latency.growth_ms_per_in_flight = 60.0;
    config.latency.growth_starts_at_in_flight = 1;
    let sim = start(config);
    let c = client();
    let url = format!("{}/channels", sim.focus_url());
    let t = Instant::now();
    send(&c, Method::GET, &url, None, None).await;
    let alone = t.elapsed();
    assert!(alone >= Duration::from_millis(100) && alone < Duration::from_secs(5), "{alone:?}");
    let times = join_all((0..8).map(|_| {
        let (c, url) = (c.clone(), url.clone());
        async move {
            let t = Instant::now();
            send(&c, Method::GET, &url, None, None).await;
            t.elapsed()
        }
    }))
    .await;
    // The last of 8 concurrent requests sees 8 in flight: 100 + 7 * 60 = 520 ms.
    let slowest = times.iter().max().unwrap();
    assert!(*slowest >= Duration::from_millis(500), "{times:?}");
}

#[tokio::test]
async fn injected_errors_dropped_and_refused_connections() {
    let mut config = quick();
    config.faults.error_rate = 1.0;
    config.faults.error_status = 502;
    let sim = start(config);
    let c = client();
    let ack = format!("{}/ack", sim.focus_url());
    let fault = format!("{}/sim/fault", sim.base_url());
    let r = send(&c, Method::GET, &ack, None, None).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert!(r.body["error"].as_str().unwrap().contains("injected"));
    let r = send(&c, Method::POST, &fault, Some(&json!({"error_rate": 0.0, "drop_rate": 1.0})), None).await;
    assert_eq!((r.status, r.body["drop_rate"].as_f64()), (StatusCode::OK, Some(1.0)));
    for _ in 0..3 {
        let e = c.get(&ack).send().await.expect_err("connection closed without a response");
        assert!(e.is_request() || e.is_connect(), "{e:?}");
    }
    send(&c, Method::POST, &fault, Some(&json!({"drop_rate": 0.0, "refuse_connections": true})), None).await;
    let fresh = client();
    assert!(fresh.get(&ack).send().await.is_err(), "refused");
    let r = send(&c, Method::POST, &fault, Some(&json!({"drop_rate": 2.0})), None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body["error"].as_str().unwrap().contains("faults.drop_rate"));
    send(&c, Method::POST, &fault, Some(&json!({"refuse_connections": false})), None).await;
    let r = send(&c, Method::GET, &ack, None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    let s = stats(&c, &sim).await;
    assert_eq!(s["limits"]["injected_errors"], 1);
    assert_eq!(s["requests"]["by_endpoint"]["ack"]["dropped"], 3);
    assert_eq!(s["limits"]["refused_connections"], 1);
}

#[tokio::test]
async fn stats_equal_what_was_sent_and_reset_clears_them() {
    let sim = start(quick());
    let c = client();
    let f = sim.focus_url();
    for _ in 0..7 {
        send(&c, Method::GET, &format!("{f}/ack"), None, None).await;
    }
    for _ in 0..3 {
        send(&c, Method::POST, &format!("{f}/configure"), Some(&job_payload()), None).await;
    }
    send(&c, Method::GET, &format!("{f}/metadata/nope"), None, None).await;
    let token = login(&c, &sim).await;
    for i in 0..4 {
        send(&c, Method::POST, &push_url(&sim), Some(&alert(&format!("st-{i}"))), Some(&token)).await;
    }
    let s = stats(&c, &sim).await;
    let e = &s["requests"]["by_endpoint"];
    assert_eq!(e["ack"]["by_status"]["200"], 7);
    assert_eq!(e["configure"]["by_status"]["200"], 3);
    assert_eq!(e["metadata"]["by_status"]["404"], 1);
    assert_eq!(e["login"]["by_status"]["201"], 1);
    assert_eq!(e["push_to_rabbit"]["by_status"]["201"], 4);
    assert_eq!(s["requests"]["total"], 16);
    assert_eq!(s["alerts"]["accepted"], 4);
    assert_eq!(s["jobs"]["created"], 3);
    assert_eq!(s["alert_path"], "memory");
    let r = send(&c, Method::POST, &format!("{}/sim/reset", sim.base_url()), None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    let s = stats(&c, &sim).await;
    assert_eq!(s["requests"]["total"], 0);
    assert_eq!((s["jobs"]["live"].as_u64(), s["alerts"]["in_store"].as_u64()), (Some(0), Some(0)));
    let cfg = send(&c, Method::GET, &format!("{}/sim/config", sim.base_url()), None, None).await;
    assert_eq!(cfg.body["preset"], "healthy");
}

#[tokio::test]
async fn in_memory_alert_path_stores_after_the_processing_delay() {
    let mut config = quick();
    config.alerts.processing_delay_ms = 150.0;
    let sim = start(config);
    let c = client();
    let token = login(&c, &sim).await;
    let body =
        json!({"alertsAmount": 3, "dofM": 800, "classId": 103, "severity": 1, "alertIds": ["m-1", "m-2", "m-3"]});
    let r = send(&c, Method::POST, &push_url(&sim), Some(&body), Some(&token)).await;
    assert_eq!(r.status, StatusCode::CREATED);
    for key in ["ext_id", "class_id", "severity", "distance_m", "start_time"] {
        assert!(r.body.get(key).is_some(), "created alert lacks {key}");
    }
    assert_eq!((r.body["ext_id"].as_str(), r.body["class_id"].as_i64()), (Some("m-1"), Some(103)));
    let s = wait_stats(&c, &sim, |s| s["alerts"]["stored"] == 3).await;
    assert_eq!(s["alerts"]["published"], 3);
    assert_eq!(s["alerts"]["processed"], 3);
    let stored = send(&c, Method::GET, &query_url(&sim), None, Some(&token)).await.body;
    let list = stored.as_array().unwrap();
    assert_eq!(list.len(), 3);
    let parse = |v: &Value| {
        time::OffsetDateTime::parse(v.as_str().unwrap(), &time::format_description::well_known::Rfc3339).unwrap()
    };
    for a in list {
        assert!(a["id"] == a["alert_id"] && a["ext_id"] == a["id"]);
        let waited = parse(&a["stored_at"]) - parse(&a["start_time"]);
        assert!(waited >= time::Duration::milliseconds(149), "{a}");
    }
    let past =
        format!("{}/{SITE}/api/alert?startTime=2000-01-01T00:00:00Z&endTime=2000-01-02T00:00:00", sim.alerts_url());
    assert_eq!(send(&c, Method::GET, &past, None, Some(&token)).await.body, json!([]));
    let del = format!("{}/{SITE}/api/alert/delete", sim.alerts_url());
    let r = send(&c, Method::DELETE, &del, Some(&json!({"alertIds": ["m-1", "m-3", "zzz"]})), Some(&token)).await;
    assert_eq!((r.status, r.body["deleted"].as_u64()), (StatusCode::OK, Some(2)));
    let left = send(&c, Method::GET, &query_url(&sim), None, Some(&token)).await.body;
    assert_eq!(left.as_array().unwrap().len(), 1);
    assert_eq!(left[0]["id"], "m-2");
}

/// A queue of the test's own, bound to the alert routing key, deleted at the end.
struct Observer {
    connection: lapin::Connection,
    channel: lapin::Channel,
    queue: String,
}

impl Observer {
    async fn bind() -> Observer {
        use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
        let connection = lapin::Connection::connect(AMQP_URL, lapin::ConnectionProperties::default())
            .await
            .expect("RabbitMQ on 127.0.0.1:5672 (see shared/notes/rabbitmq-setup.md)");
        let channel = connection.create_channel().await.unwrap();
        channel
            .exchange_declare(
                "prisma".into(),
                lapin::ExchangeKind::Topic,
                ExchangeDeclareOptions { durable: true, ..Default::default() },
                Default::default(),
            )
            .await
            .unwrap();
        let queue = format!("volley-it-sim-{}", uuid::Uuid::new_v4());
        channel.queue_declare(queue.as_str().into(), QueueDeclareOptions::default(), Default::default()).await.unwrap();
        channel
            .queue_bind(
                queue.as_str().into(),
                "prisma".into(),
                "Algorithm.AlertReport.MLGround".into(),
                QueueBindOptions::default(),
                Default::default(),
            )
            .await
            .unwrap();
        Observer { connection, channel, queue }
    }

    /// Deliveries whose `alert_id` starts with `prefix`, until `n` or 10 s.
    async fn collect(&self, prefix: &str, n: usize) -> Vec<lapin::message::Delivery> {
        use lapin::options::{BasicAckOptions, BasicConsumeOptions};
        let mut consumer = self
            .channel
            .basic_consume(self.queue.as_str().into(), "it".into(), BasicConsumeOptions::default(), Default::default())
            .await
            .unwrap();
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while seen.len() < n {
            let Ok(Some(Ok(d))) = tokio::time::timeout_at(deadline, consumer.next()).await else {
                break;
            };
            d.ack(BasicAckOptions::default()).await.unwrap();
            let v: Value = serde_json::from_slice(&d.data).unwrap_or_default();
            if v["alert_id"].as_str().is_some_and(|id| id.starts_with(prefix)) {
                seen.push(d);
            }
        }
        seen
    }

    async fn delete(self) {
        let _ = self.channel.queue_delete(self.queue.as_str().into(), Default::default()).await;
        let _ = self.connection.close(200, "done".into()).await;
    }
}

#[tokio::test]
async fn amqp_alert_path_publishes_processes_and_stores() {
    let observer = Observer::bind().await;
    let mut config = quick();
    config.amqp_url = Some(AMQP_URL.into());
    config.alerts.processing_delay_ms = 50.0;
    let sim = start(config);
    let c = client();
    let token = login(&c, &sim).await;
    let prefix = format!("it-{}-", uuid::Uuid::new_v4().simple());
    const N: usize = 20;
    for i in 0..N {
        let r = send(&c, Method::POST, &push_url(&sim), Some(&alert(&format!("{prefix}{i}"))), Some(&token)).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    }
    let seen = observer.collect(&prefix, N).await;
    assert_eq!(seen.len(), N, "messages on the broker");
    let ids: HashSet<String> = seen
        .iter()
        .map(|d| {
            assert_eq!(d.exchange.as_str(), "prisma");
            assert_eq!(d.routing_key.as_str(), "Algorithm.AlertReport.MLGround");
            assert_eq!(d.properties.content_type().as_ref().map(|s| s.as_str()), Some("application/json"));
            assert_eq!(*d.properties.delivery_mode(), Some(2));
            let v: Value = serde_json::from_slice(&d.data).unwrap();
            let keys: HashSet<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
            let documented: HashSet<&str> =
                ["algorun_id", "alert_id", "class_id", "severity", "distance_m", "alert_time", "time_interval_s"]
                    .into();
            assert_eq!(keys, documented, "{v}");
            assert_eq!(
                (v["class_id"].as_i64(), v["severity"].as_i64(), v["distance_m"].as_i64()),
                (Some(104), Some(2), Some(1500))
            );
            assert_eq!(v["time_interval_s"], 150);
            time::OffsetDateTime::parse(
                v["alert_time"].as_str().unwrap(),
                &time::format_description::well_known::Rfc3339,
            )
            .unwrap();
            v["alert_id"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(ids.len(), N);
    let s = wait_stats(&c, &sim, |s| s["alerts"]["stored"] == N).await;
    assert_eq!(s["alert_path"], "amqp");
    for key in ["accepted", "published", "processed", "stored"] {
        assert_eq!(s["alerts"][key], N, "{key}: {s}");
    }
    let stored = send(&c, Method::GET, &query_url(&sim), None, Some(&token)).await.body;
    let stored_ids: HashSet<String> =
        stored.as_array().unwrap().iter().map(|a| a["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(stored_ids, ids);
    sim.stop();
    observer.delete().await;
}

#[tokio::test]
async fn amqp_direct_publishes_are_processed_only_when_configured() {
    use lapin::options::BasicPublishOptions;
    let mut config = quick();
    config.amqp_url = Some(AMQP_URL.into());
    config.alerts.process_foreign_messages = true;
    let foreign_ok = start(config.clone());
    config.alerts.process_foreign_messages = false;
    let own_only = start(config);
    let observer = Observer::bind().await;
    let id = format!("direct-{}", uuid::Uuid::new_v4().simple());
    let body = json!({"algorun_id": "load-test-1", "alert_id": id, "class_id": 104, "severity": 1,
                      "distance_m": 1000, "alert_time": "2025-11-23T10:00:00", "time_interval_s": 150});
    observer
        .channel
        .basic_publish(
            "prisma".into(),
            "Algorithm.AlertReport.MLGround".into(),
            BasicPublishOptions::default(),
            &serde_json::to_vec(&body).unwrap(),
            lapin::BasicProperties::default().with_delivery_mode(2),
        )
        .await
        .unwrap();
    let c = client();
    let s = wait_stats(&c, &foreign_ok, |s| s["alerts"]["stored"].as_u64() >= Some(1)).await;
    assert!(s["alerts"]["stored"].as_u64() >= Some(1), "{s}");
    let token = login(&c, &foreign_ok).await;
    let stored = send(&c, Method::GET, &query_url(&foreign_ok), None, Some(&token)).await.body;
    assert!(stored.as_array().unwrap().iter().any(|a| a["id"] == id.as_str()), "{stored}");
    let s = wait_stats(&c, &own_only, |s| s["alerts"]["foreign_skipped"].as_u64() >= Some(1)).await;
    assert!(s["alerts"]["foreign_skipped"].as_u64() >= Some(1), "{s}");
    let token = login(&c, &own_only).await;
    let stored = send(&c, Method::GET, &query_url(&own_only), None, Some(&token)).await.body;
    assert!(!stored.as_array().unwrap().iter().any(|a| a["id"] == id.as_str()));
    observer.delete().await;
}

#[test]
fn unreachable_broker_fails_start_with_url_cause_and_hint() {
    let mut config = quick();
    config.amqp_url = Some("amqp://guest:hunter2@127.0.0.1:1/%2f".into());
    let e = SimHandle::start(config, ephemeral()).unwrap_err();
    assert!(matches!(e, SimError::BrokerConnect { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains("amqp://guest:***@127.0.0.1:1/%2f"), "{msg}");
    assert!(!msg.contains("hunter2"), "{msg}");
    assert!(msg.contains("refused") && msg.contains("hint: start RabbitMQ"), "{msg}");
}

#[test]
fn starts_from_a_plain_thread_and_stops_cleanly() {
    let sim = start(quick());
    assert!(sim.base_url().starts_with("http://127.0.0.1:"));
    assert_eq!(sim.focus_url(), format!("{}/focus-server", sim.base_url()));
    assert_eq!(sim.alerts_url(), format!("{}/prisma/api", sim.base_url()));
    let addr = sim.local_addr();
    assert!(std::net::TcpStream::connect(addr).is_ok());
    sim.stop();
    assert!(std::net::TcpStream::connect(addr).is_err(), "port closed after stop");
    let taken = std::net::TcpListener::bind(ephemeral()).unwrap();
    let e = SimHandle::start(quick(), taken.local_addr().unwrap()).unwrap_err();
    assert!(e.to_string().contains("cannot listen on"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_from_inside_another_runtime() {
    let sim = start(quick());
    let r = send(&client(), Method::GET, &format!("{}/ack", sim.focus_url()), None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    drop(sim);
}

#[test]
fn config_file_errors_name_the_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sim.toml");
    std::fs::write(&path, "preset = \"overloaded\"\n\n[limits]\nmax_live_jobs = \"lots\"\n").unwrap();
    let msg = SimConfig::from_toml_file(&path).unwrap_err().to_string();
    assert!(msg.contains(&format!("{}:4:17", path.display())), "{msg}");
    std::fs::write(&path, "preset = \"overloaded\"\n[limits]\nmax_live_jobs = 9\n").unwrap();
    let c = SimConfig::from_toml_file(&path).unwrap();
    assert_eq!((c.limits.max_live_jobs, c.limits.max_in_flight), (9, 40));
    let e = SimConfig::from_toml_file(&dir.path().join("missing.toml")).unwrap_err().to_string();
    assert!(e.contains("missing.toml"), "{e}");
}

#[tokio::test]
async fn healthy_defaults_absorb_the_catalogs_bursts() {
    // PZ-14955: 100 alerts at once; PZ-13771: 50 concurrent job creations.
    let sim = start(SimConfig::default());
    let c = client();
    let token = login(&c, &sim).await;
    let pushes = join_all((0..100).map(|i| {
        let (c, url, token) = (c.clone(), push_url(&sim), token.clone());
        async move { send(&c, Method::POST, &url, Some(&alert(&format!("b-{i}"))), Some(&token)).await.status }
    }))
    .await;
    assert!(pushes.iter().all(|s| *s == StatusCode::CREATED), "{pushes:?}");
    let jobs = join_all((0..50).map(|_| {
        let (c, url) = (c.clone(), format!("{}/configure", sim.focus_url()));
        async move { send(&c, Method::POST, &url, Some(&job_payload()), None).await.status }
    }))
    .await;
    assert!(jobs.iter().all(|s| *s == StatusCode::OK), "{jobs:?}");
}

#[tokio::test]
async fn overloaded_preset_produces_429s_503s_and_a_job_limit() {
    let mut config = SimConfig::preset("overloaded").unwrap();
    // The preset's pushes last ~20 ms alone; held for 5 s here, the 60 concurrent ones
    // surely pile up above the in-flight cap (40) however slowly they arrive, and the
    // 40 admitted ones still reach the rate limiter (burst 10, 5/s) close together.
    config.latency.endpoints.insert(
        volley::sim::Endpoint::PushToRabbit.name().to_string(),
        volley::sim::EndpointLatency { base_ms: Some(5000.0), jitter_ms: None },
    );
    let sim = start(config);
    let c = client();
    let fault = format!("{}/sim/fault", sim.base_url());
    // Injected errors would blur exact counts here; the preset's other limits stay.
    send(&c, Method::POST, &fault, Some(&json!({"error_rate": 0.0})), None).await;
    let token = login(&c, &sim).await;
    let pushes = join_all((0..60).map(|i| {
        let (c, url, token) = (c.clone(), push_url(&sim), token.clone());
        async move { send(&c, Method::POST, &url, Some(&alert(&format!("o-{i}"))), Some(&token)).await.status }
    }))
    .await;
    let count = |s: StatusCode| pushes.iter().filter(|x| **x == s).count();
    assert!(count(StatusCode::TOO_MANY_REQUESTS) >= 1, "{pushes:?}");
    assert!(count(StatusCode::SERVICE_UNAVAILABLE) >= 1, "{pushes:?}");
    let s = stats(&c, &sim).await;
    assert_eq!(s["limits"]["rate_limited"], count(StatusCode::TOO_MANY_REQUESTS));
    assert_eq!(s["limits"]["over_in_flight_cap"], count(StatusCode::SERVICE_UNAVAILABLE));
    let jobs = join_all((0..30).map(|_| {
        let (c, url) = (c.clone(), format!("{}/configure", sim.focus_url()));
        async move { send(&c, Method::POST, &url, Some(&job_payload()), None).await }
    }))
    .await;
    assert_eq!(jobs.iter().filter(|r| r.status == StatusCode::OK).count(), 25);
    let limited = jobs.iter().filter(|r| r.status == StatusCode::SERVICE_UNAVAILABLE).count();
    assert_eq!(limited, 5);
    assert!(
        jobs.iter()
            .filter(|r| r.status != StatusCode::OK)
            .all(|r| r.body["error"].as_str().unwrap().contains("job limit"))
    );
}

#[tokio::test]
async fn throttled_preset_gives_streaks_of_429_with_and_without_retry_after() {
    let mut config = SimConfig::preset("throttled").unwrap();
    config.limits.throttle_every = 8;
    config.limits.throttle_streak = 3;
    let sim = start(config);
    let c = client();
    let token = login(&c, &sim).await;
    let mut answers = Vec::new();
    for i in 0..16 {
        let r = send(&c, Method::POST, &push_url(&sim), Some(&alert(&format!("t-{i}"))), Some(&token)).await;
        answers.push((r.status.as_u16(), r.headers.get("retry-after").map(|v| v.to_str().unwrap().to_string())));
    }
    let expected: Vec<(u16, Option<String>)> = (0..16)
        .map(|i| match (i % 8 >= 5, i / 8) {
            (false, _) => (201, None),
            (true, 0) => (429, Some("1".to_string())),
            (true, _) => (429, None),
        })
        .collect();
    assert_eq!(answers, expected);
    let s = stats(&c, &sim).await;
    assert_eq!(s["limits"]["rate_limited"], 6);
    assert!(s["limits"]["max_push_gap_ms"].as_f64().unwrap() > 0.0);
}

#[tokio::test]
async fn the_same_seed_gives_the_same_faults() {
    let statuses = |seed: u64| async move {
        let mut config = quick();
        config.seed = seed;
        config.faults.error_rate = 0.5;
        let sim = start(config);
        let c = client();
        let mut out = Vec::new();
        for _ in 0..40 {
            out.push(send(&c, Method::GET, &format!("{}/ack", sim.focus_url()), None, None).await.status.as_u16());
        }
        out
    };
    let (a, b, other) = (statuses(7).await, statuses(7).await, statuses(8).await);
    assert_eq!(a, b, "same seed, same answers");
    assert_ne!(a, other, "another seed, other answers");
    assert!(a.contains(&500) && a.contains(&200), "{a:?}");
}

#[tokio::test]
async fn sim_config_hides_the_login_password() {
    let mut config = quick();
    config.alerts.password = "pw-do-not-show".into();
    config.amqp_url = None;
    let sim = start(config);
    let c = client();
    let r = send(&c, Method::GET, &format!("{}/sim/config", sim.base_url()), None, None).await;
    assert_eq!(r.body["alerts"]["password"], "***");
    assert!(!r.body.to_string().contains("pw-do-not-show"), "{}", r.body);
}

#[test]
fn volley_sim_does_not_print_the_password_at_start_up() {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_volley"))
        .args(["sim", "--listen", "127.0.0.1:0", "--password", "pw-do-not-show", "--seed", "42"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut printed = String::new();
    for line in std::io::BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        printed.push_str(&line);
        printed.push('\n');
        if line.contains("press Ctrl-C") {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(printed.contains("seed 42") && printed.contains("password hidden"), "{printed}");
    assert!(!printed.contains("pw-do-not-show"), "{printed}");
}

#[test]
fn durations_beyond_a_year_are_configuration_errors() {
    for (text, key) in [
        ("[limits]\njob_idle_expiry_s = 1e300\n", "limits.job_idle_expiry_s"),
        ("[alerts]\nprocessing_delay_ms = 1e300\n", "alerts.processing_delay_ms"),
        ("[latency]\nbase_ms = inf\n", "latency.base_ms"),
        ("[limits]\nthrottle_every = 5\nthrottle_streak = 5\n", "limits.throttle_streak"),
    ] {
        let e = SimConfig::from_toml_str(text, "s.toml", None).unwrap_err().to_string();
        assert!(e.contains(key) && e.contains("hint"), "{text}: {e}");
    }
}
