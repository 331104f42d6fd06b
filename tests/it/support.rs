//! A small in-process HTTP server for engine tests (ephemeral 127.0.0.1 port), counting
//! what it received so tests compare volley's numbers with the server's.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Default)]
pub struct Seen {
    pub requests: AtomicU64,
    pub by_path: Mutex<HashMap<String, u64>>,
    pub flaky: AtomicU64,
}

pub struct TestServer {
    pub base: String,
    pub seen: Arc<Seen>,
    _rt: tokio::runtime::Runtime,
}

impl TestServer {
    pub fn count(&self, path: &str) -> u64 {
        self.seen.by_path.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

async fn count(State(seen): State<Arc<Seen>>, req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    seen.requests.fetch_add(1, Ordering::SeqCst);
    *seen.by_path.lock().unwrap().entry(req.uri().path().to_string()).or_default() += 1;
    next.run(req).await
}

pub fn start() -> TestServer {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let seen = Arc::new(Seen::default());
    let app = Router::new()
        .route("/ok", any(|| async { "ok" }))
        .route(
            "/status/{code}",
            any(|Path(code): Path<u16>| async move { StatusCode::from_u16(code).unwrap_or(StatusCode::OK) }),
        )
        .route(
            "/slow",
            get(|Query(q): Query<HashMap<String, u64>>| async move {
                tokio::time::sleep(Duration::from_millis(q.get("ms").copied().unwrap_or(100))).await;
                "slow"
            }),
        )
        .route("/redirect", any(|| async { (StatusCode::FOUND, [("location", "/ok")]) }))
        .route("/see-other", post(|| async { (StatusCode::SEE_OTHER, [("location", "/echo-method")]) }))
        .route("/echo-method", any(|method: axum::http::Method| async move { method.to_string() }))
        .route(
            "/conn",
            get(|axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>| async move {
                peer.port().to_string()
            }),
        )
        .route("/echo", post(|Json(v): Json<serde_json::Value>| async move { Json(serde_json::json!({ "got": v })) }))
        .route("/login", post(|| async { ([("set-cookie", "access-token=secret-1; Path=/")], StatusCode::CREATED) }))
        .route(
            "/whoami",
            get(|headers: HeaderMap| async move {
                let cookie = headers.get("cookie").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
                if cookie.contains("access-token=secret-1") {
                    (StatusCode::OK, cookie)
                } else {
                    (StatusCode::UNAUTHORIZED, cookie)
                }
            }),
        )
        .route("/item/{id}", get(|| async { "item" }))
        .route(
            "/bytes/{n}",
            // n bytes of 'x', sent in 64 KiB chunks (a large download).
            get(|Path(n): Path<usize>| async move {
                let chunks = (0..n.div_ceil(65536)).map(move |i| {
                    let len = (n - i * 65536).min(65536);
                    Ok::<_, std::convert::Infallible>(axum::body::Bytes::from(vec![b'x'; len]))
                });
                axum::body::Body::from_stream(futures_util::stream::iter(chunks))
            }),
        )
        .route(
            "/flaky",
            // 429 with Retry-After: 0.05 on the first two calls of every three.
            get(|State(seen): State<Arc<Seen>>| async move {
                let n = seen.flaky.fetch_add(1, Ordering::SeqCst);
                if n % 3 < 2 {
                    (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "0.05")], "slow down").into_response()
                } else {
                    (StatusCode::OK, "finally").into_response()
                }
            }),
        )
        .layer(axum::middleware::from_fn_with_state(seen.clone(), count))
        .with_state(seen.clone());
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(async move {
        let _ = axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>()).await;
    });
    TestServer { base: format!("http://{addr}"), seen, _rt: rt }
}

/// Writes a script into a fresh temp dir and returns (dir guard, path).
pub fn script(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scenario.rhai");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

/// Runs a script with BASE_URL set.
pub fn run(path: &std::path::Path, base: &str) -> volley::engine::RunReport {
    run_with(path, &[("BASE_URL", base)], 1.0)
}

pub fn run_with(path: &std::path::Path, env: &[(&str, &str)], time_scale: f64) -> volley::engine::RunReport {
    let config = volley::engine::RunConfig {
        script: path.to_path_buf(),
        env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        workers: 2,
        time_scale,
        progress: volley::engine::progress::ProgressMode::Off,
        stop: Default::default(),
        listeners: Vec::new(),
        ..volley::engine::RunConfig::new("")
    };
    match volley::engine::run(&config) {
        Ok(r) => r,
        Err(f) => panic!("run failed to start: {}", f.rendered),
    }
}

/// What to do about an external tool a test needs (Chromium, promtool), given where it
/// was found and the `CI` variable: use it; skip that part locally with a printed note;
/// or, under CI, fail, so that a green CI always means the test ran.
pub fn tool_decision(name: &str, found: Option<PathBuf>, ci: Option<&str>) -> Result<Option<PathBuf>, String> {
    let under_ci = ci.is_some_and(|v| !v.is_empty() && v != "false" && v != "0");
    match found {
        Some(path) => Ok(Some(path)),
        None if under_ci => Err(format!(
            "{name} is not installed, and CI={} requires every test to run (.ci/run installs it)",
            ci.unwrap_or("")
        )),
        None => {
            eprintln!(
                "skipped the {name} part: {name} is not installed (.ci/run installs it; under CI=true this fails)"
            );
            Ok(None)
        }
    }
}

/// The external tool `name` (looked up in /usr/bin, then on PATH), or None to skip that
/// part of a test locally. Panics under `CI=true` when it is missing.
pub fn required_tool(name: &str) -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join(name)).collect::<Vec<_>>())
        .unwrap_or_default();
    let found = std::iter::once(PathBuf::from("/usr/bin").join(name)).chain(on_path).find(|p| p.is_file());
    tool_decision(name, found, std::env::var("CI").ok().as_deref()).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn a_missing_tool_fails_under_ci_and_skips_locally() {
    let found = Some(PathBuf::from("/usr/bin/chromium"));
    assert_eq!(tool_decision("chromium", found.clone(), Some("true")), Ok(found.clone()));
    assert_eq!(tool_decision("chromium", found.clone(), None), Ok(found));
    let e = tool_decision("promtool", None, Some("true")).unwrap_err();
    assert!(e.starts_with("promtool is not installed, and CI=true requires every test to run"), "{e}");
    assert!(tool_decision("promtool", None, Some("1")).is_err());
    assert_eq!(tool_decision("promtool", None, None), Ok(None));
    assert_eq!(tool_decision("promtool", None, Some("false")), Ok(None));
}

/// The simulator's `GET /sim/stats`, over a plain HTTP/1.0 connection.
pub fn sim_stats(addr: std::net::SocketAddr) -> serde_json::Value {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    c.write_all(b"GET /sim/stats HTTP/1.0\r\nHost: sim\r\n\r\n").unwrap();
    let mut reply = String::new();
    c.read_to_string(&mut reply).unwrap();
    let body = reply.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str(body).unwrap_or_else(|e| panic!("stats are not JSON ({e}): {reply}"))
}
