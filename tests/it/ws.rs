//! WebSocket and SSE load against the simulator's streaming service over real sockets:
//! what volley counts equals what the simulator counts; a server that drops or closes
//! streams gives failures counted by kind while the run goes on; reconnection with
//! `Last-Event-ID` loses nothing; script mistakes are errors with their position, in
//! `run` and in `volley check`.

use crate::support::{run_with, script};
use serde_json::Value;
use volley::engine::ExitCode;
use volley::engine::judge::failure_kinds;
use volley::metrics::{Sink, Stat};
use volley::sim::{SimConfig, SimHandle};

fn sim(config: SimConfig) -> SimHandle {
    SimHandle::start(config, "127.0.0.1:0".parse().unwrap()).unwrap()
}

/// `/sim/stats` (a blocking GET on a throwaway runtime).
fn stats(sim: &SimHandle) -> Value {
    let url = format!("{}/sim/stats", sim.base_url());
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let body = rt.block_on(async { reqwest::get(url).await.unwrap().text().await.unwrap() });
    serde_json::from_str(&body).unwrap()
}

/// Polls `/sim/stats` until `done` holds (at most 10 s): the server counts a closed
/// connection when its task ends, a moment after the client is done.
fn settled(sim: &SimHandle, done: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..200 {
        let s = stats(sim);
        if done(&s) {
            return s;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    stats(sim)
}

/// A metric's total in a run: a counter's sum, a trend's or a rate's count.
fn total(r: &volley::engine::RunReport, metric: &str) -> u64 {
    match r.aggregate.query(metric, &[]) {
        Some(Sink::Counter(c)) => c.sum as u64,
        Some(s) => s.stat(Stat::Count, std::time::Duration::ZERO).unwrap().unwrap_or(0.0) as u64,
        None => 0,
    }
}

fn run(text: &str, env: &[(&str, &str)]) -> volley::engine::RunReport {
    let (_dir, path) = script(text);
    run_with(&path, env, 1.0)
}

fn summary(r: &volley::engine::RunReport) -> String {
    volley::report::summary::render(r)
}

const FEED: &str = r#"
let url = env("WS_URL");
phase("feed", #{ executor: "per-vu-iterations", vus: 4, iterations: 2 }, || {
    let ws = ws::connect(`${url}?rate=200&count=20`, #{ name: "feed", subprotocols: ["v1.feed"] });
    check(ws, "upgraded", ws.status == 101 && ws.protocol == "v1.feed");
    ws.send(#{ type: "subscribe", topic: "prices" });
    let got = 0;
    while got < 21 {
        let m = ws.recv("5s");
        if m == () { break; }
        got += 1;
    }
    check(got, "21 messages: the ack and 20 pushes", got == 21);
    for i in 0..3 { ws.send(`echo ${i}`); }
    let echoes = 0;
    for i in 0..3 { if ws.recv("5s") == `echo ${i}` { echoes += 1; } }
    check(echoes, "3 echoes", echoes == 3);
    let rtt = ws.ping("5s");
    check(rtt, "pong", type_of(rtt) == "f64");
    ws.close();
    check(ws, "closed", !ws.open && ws.close_code == 1000);
});
// A ping waits at most 5 s (a failed check); the bound only allows for a slow machine.
threshold("ws_ping{name:feed}", "p(95) < 10000");
threshold("ws_failed", "rate == 0");
"#;

#[test]
fn websocket_counts_equal_on_both_sides() {
    let s = sim(SimConfig::default());
    let r = run(FEED, &[("WS_URL", &s.ws_url())]);
    assert_eq!(r.exit, ExitCode::Passed, "{}", summary(&r));
    assert!(r.checks.iter().all(|c| c.fails == 0), "{}", summary(&r));
    let st = settled(&s, |st| st["streams"]["ws"]["open"] == 0);
    let ws = &st["streams"]["ws"];
    assert_eq!(total(&r, "ws_sessions"), 8);
    assert_eq!(ws["total"], 8);
    assert_eq!(ws["closed_by_client"], 8);
    assert_eq!(total(&r, "ws_msgs_received"), ws["msgs_out"].as_u64().unwrap());
    assert_eq!(total(&r, "ws_msgs_received"), 8 * 24);
    assert_eq!(total(&r, "ws_msgs_sent"), ws["msgs_in"].as_u64().unwrap());
    assert_eq!(total(&r, "ws_msgs_sent"), 8 * 4);
    assert_eq!(total(&r, "ws_bytes_received"), ws["bytes_out"].as_u64().unwrap());
    assert_eq!(total(&r, "ws_bytes_sent"), ws["bytes_in"].as_u64().unwrap());
    assert_eq!(total(&r, "ws_ping"), ws["pings"].as_u64().unwrap());
    assert_eq!(total(&r, "ws_session_duration"), 8);
    // Every push carries the sent-at stamp: 20 latencies per session.
    assert_eq!(total(&r, "ws_msg_latency"), 8 * 20);
    assert!(total(&r, "ws_msg_gap") >= 8 * 20);
    assert!(r.thresholds.iter().all(|t| t.passed), "{:?}", r.thresholds);
    let text = summary(&r);
    assert!(text.contains("ws_ping") && text.contains("ws_msgs_received"), "{text}");
}

const UNTIL_DROPPED: &str = r#"
let url = env("WS_URL");
phase("drops", #{ executor: "per-vu-iterations", vus: 3, iterations: 2 }, || {
    let ws = ws::connect(`${url}?rate=200`, #{ name: "feed" });
    ws.send(#{ type: "subscribe", topic: "prices" });
    let n = 0;
    while ws.open && n < 1000 { ws.recv("5s"); n += 1; }
    check(ws, "ended by the server", !ws.open && ws.error != "");
    if ws.open { ws.close(); }
});
"#;

#[test]
fn a_server_that_cuts_connections_gives_reset_failures_and_the_run_goes_on() {
    let mut config = SimConfig::default();
    config.faults.stream_drop_after = 5;
    let s = sim(config);
    let r = run(UNTIL_DROPPED, &[("WS_URL", &s.ws_url())]);
    assert_eq!(r.exit, ExitCode::Passed, "{}", summary(&r));
    assert_eq!(r.phases[0].iterations, 6);
    let kinds = failure_kinds(&r.aggregate, &[]);
    assert_eq!(kinds.get("ws reset"), Some(&6), "{kinds:?}");
    let st = settled(&s, |st| st["streams"]["ws"]["open"] == 0);
    assert_eq!(st["streams"]["ws"]["dropped"], 6);
    // Everything the server sent before cutting arrived: the ack and 4 pushes each.
    assert_eq!(total(&r, "ws_msgs_received"), st["streams"]["ws"]["msgs_out"].as_u64().unwrap());
    assert_eq!(total(&r, "ws_msgs_received"), 6 * 5);
    assert_eq!(total(&r, "ws_session_duration"), 6);
}

#[test]
fn a_server_that_closes_with_a_code_is_counted_by_that_code() {
    let mut config = SimConfig::default();
    config.faults.stream_drop_after = 3;
    config.faults.stream_close_code = 1011;
    let s = sim(config);
    let r = run(UNTIL_DROPPED, &[("WS_URL", &s.ws_url())]);
    assert_eq!(r.exit, ExitCode::Passed, "{}", summary(&r));
    let kinds = failure_kinds(&r.aggregate, &[]);
    assert_eq!(kinds.get("ws closed 1011"), Some(&6), "{kinds:?}");
    assert_eq!(total(&r, "ws_msgs_received"), 6 * 3);
}

#[test]
fn refused_and_rejected_handshakes_are_counted_by_kind() {
    let mut config = SimConfig::default();
    config.faults.error_rate = 1.0;
    config.faults.error_status = 503;
    let s = sim(config);
    // A port nobody listens on: bind one, note it, free it.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let text = r#"
        phase("connect", #{ executor: "per-vu-iterations", vus: 2, iterations: 2 }, || {
            let a = ws::connect(env("WS_URL"), #{ name: "rejected" });
            check(a, "503", !a.open && a.status == 503 && a.error == "status 503");
            let b = ws::connect(env("CLOSED_URL"), #{ name: "refused" });
            check(b, "refused", !b.open && b.status == 0 && b.error == "refused");
        });
    "#;
    let closed_url = format!("ws://{closed}/x");
    let r = run(text, &[("WS_URL", &s.ws_url()), ("CLOSED_URL", &closed_url)]);
    assert_eq!(r.exit, ExitCode::Passed, "{}", summary(&r));
    assert!(r.checks.iter().all(|c| c.fails == 0), "{}", summary(&r));
    let kinds = failure_kinds(&r.aggregate, &[]);
    assert_eq!(kinds.get("ws status 503"), Some(&4), "{kinds:?}");
    assert_eq!(kinds.get("ws refused"), Some(&4), "{kinds:?}");
    assert_eq!(stats(&s)["streams"]["ws"]["rejected"], 4);
    assert_eq!(total(&r, "ws_sessions"), 0);
}

const SSE: &str = r#"
let url = env("SSE_URL");
phase("ticks", #{ executor: "per-vu-iterations", vus: 2, iterations: 1 }, || {
    let s = sse::open(`${url}?rate=200&count=10`, #{ name: "ticks" });
    let ids = [];
    while s.open {
        let e = s.next("5s");
        if e == () { break; }
        ids.push(parse_int(e.id));
        check(e, "a tick", e.event == "tick" && parse_json(e.data).seq == parse_int(e.id));
    }
    check(ids, "every event once, in order", ids == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    check(s, "finished by a 204", s.status == 204 && s.reconnects == 3);
});
"#;

#[test]
fn sse_reconnects_with_last_event_id_and_loses_nothing() {
    let mut config = SimConfig::default();
    config.faults.stream_drop_after = 3;
    config.streams.sse_retry_ms = 20;
    let s = sim(config);
    let r = run(SSE, &[("SSE_URL", &s.sse_url())]);
    assert_eq!(r.exit, ExitCode::Passed, "{}", summary(&r));
    assert!(r.checks.iter().all(|c| c.fails == 0), "{}", summary(&r));
    let st = settled(&s, |st| st["streams"]["sse"]["open"] == 0);
    let sse = &st["streams"]["sse"];
    assert_eq!(total(&r, "sse_events"), 20);
    assert_eq!(sse["events_out"], 20);
    assert_eq!(total(&r, "sse_bytes_received"), sse["bytes_out"].as_u64().unwrap());
    // Per client: 3 streams cut after 3 events, a 4th ends after event 10, then 204.
    assert_eq!(total(&r, "sse_reconnects"), 6);
    assert_eq!(total(&r, "sse_sessions"), sse["total"].as_u64().unwrap());
    assert_eq!(sse["total"], 8);
    assert_eq!(sse["resumed"], 8);
    assert_eq!(sse["dropped"], 6);
    assert_eq!(failure_kinds(&r.aggregate, &[]).get("sse closed"), Some(&8));
    assert_eq!(total(&r, "sse_event_latency"), 20);
}

/// Runs a script expected to stop with a script error; returns the rendered error.
fn script_error(text: &str, env: &[(&str, &str)]) -> String {
    let r = run(text, env);
    assert_eq!(r.exit, ExitCode::ScriptError, "{}", summary(&r));
    let mut out = r.script_error.clone().unwrap_or_default();
    for e in &r.iteration_errors {
        out.push_str(&e.rendered);
    }
    out
}

#[test]
fn script_mistakes_are_errors_with_their_position() {
    let s = sim(SimConfig::default());
    let e = script_error("let x = 1;\nlet ws = ws::connect(\"http://127.0.0.1:1/stream/ws\");\n", &[]);
    assert!(e.contains("ws::connect: unsupported scheme \"http\""), "{e}");
    assert!(e.contains("ws://127.0.0.1:1/stream/ws"), "{e}");
    assert!(e.contains("scenario.rhai:2:"), "{e}");

    let text = "let ws = ws::connect(env(\"WS_URL\"));\nws.close();\nws.send(\"late\");\n";
    let e = script_error(text, &[("WS_URL", &s.ws_url())]);
    assert!(e.contains("ws.send: the WebSocket to") && e.contains("is not open: the script closed it"), "{e}");
    assert!(e.contains("scenario.rhai:3:"), "{e}");

    let text = "\n\nlet ws = ws::connect(env(\"WS_URL\"), #{ timout: \"1s\" });\n";
    let e = script_error(text, &[("WS_URL", &s.ws_url())]);
    assert!(e.contains("unknown option `timout`") && e.contains("did you mean `timeout`?"), "{e}");
    assert!(e.contains("scenario.rhai:3:"), "{e}");

    let e = script_error("let s = sse::open(\"ws://127.0.0.1:1/x\");\n", &[]);
    assert!(e.contains("sse::open: unsupported scheme \"ws\"") && e.contains("use http:// or https://"), "{e}");
}

#[test]
fn check_knows_the_stream_functions_and_their_options() {
    let text = r#"
let a = ws::connect("http://h/ws");
let b = ws::connect("ws://h/ws", #{ subprotocol: "x" });
let c = sse::open("http://h/s", #{ reconect: false });
let d = ws::conect("ws://h/ws");
let ok = ws::connect("ws://h/ws", #{ name: "feed", subprotocols: ["a"], timeout: "2s" });
"#;
    let (_dir, path) = script(text);
    let loaded = volley::script::load(&path).map_err(|(d, _)| d.message).unwrap();
    let found: Vec<(usize, String)> = volley::script::check::check(&loaded)
        .iter()
        .map(|d| (d.position.line().unwrap_or(0), d.render(&loaded.sources)))
        .collect();
    let at = |line: usize, text: &str| found.iter().any(|(l, d)| *l == line && d.contains(text));
    assert!(at(2, "unsupported scheme \"http\""), "{found:#?}");
    assert!(at(3, "did you mean `subprotocols`?"), "{found:#?}");
    assert!(at(4, "did you mean `reconnect`?"), "{found:#?}");
    assert!(at(5, "unknown function: ws::conect"), "{found:#?}");
    assert_eq!(found.len(), 4, "{found:#?}");
}

/// Runs an example against the simulator, shortened by `--time-scale`.
fn run_example(name: &str, env: &[(&str, &str)], scale: f64) -> volley::engine::RunReport {
    let r = run_with(std::path::Path::new(&format!("examples/{name}.rhai")), env, scale);
    assert_eq!(r.exit, ExitCode::Passed, "{name}:\n{}", summary(&r));
    r
}

#[test]
fn example_ws_feed_holds_its_connections_and_counts_every_message() {
    let s = sim(SimConfig::default());
    let r = run_example("ws_feed", &[("WS_URL", &s.ws_url()), ("CONNECTIONS", "20"), ("RATE", "5")], 0.01);
    let st = settled(&s, |st| st["streams"]["ws"]["open"] == 0);
    assert_eq!(total(&r, "ws_sessions"), 20);
    assert_eq!(st["streams"]["ws"]["closed_by_client"], 20);
    assert_eq!(total(&r, "ws_msgs_received"), st["streams"]["ws"]["msgs_out"].as_u64().unwrap());
    // 3 s at 5 messages/s each, give or take the edges.
    assert!(total(&r, "ws_msgs_received") >= 20 * 10, "{}", summary(&r));
    assert_eq!(total(&r, "ws_ping"), 20);
}

#[test]
fn example_sse_subscriber_loses_nothing_when_the_server_drops_streams() {
    let mut config = SimConfig::default();
    config.faults.stream_drop_after = 4;
    config.streams.sse_retry_ms = 50;
    let s = sim(config);
    let r = run_example("sse_subscriber", &[("SSE_URL", &s.sse_url()), ("SUBSCRIBERS", "10"), ("RATE", "20")], 0.05);
    assert!(r.checks.iter().all(|c| c.fails == 0), "{}", summary(&r));
    let st = settled(&s, |st| st["streams"]["sse"]["open"] == 0);
    let reconnects = total(&r, "sse_reconnects");
    assert!(reconnects >= 10, "{}", summary(&r));
    assert_eq!(st["streams"]["sse"]["resumed"].as_u64().unwrap(), reconnects);
    assert!(total(&r, "sse_events") <= st["streams"]["sse"]["events_out"].as_u64().unwrap());
    assert!(total(&r, "sse_events") >= 10 * 20);
}

/// A `wss://` echo server with a self-signed certificate.
fn start_wss_echo() -> (String, tokio::runtime::Runtime) {
    use futures_util::{SinkExt, StreamExt};
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let der = cert.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
    let config = rustls::ServerConfig::builder().with_no_client_auth().with_single_cert(vec![der], key).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let port = listener.local_addr().unwrap().port();
    rt.spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                let Ok(mut ws) = tokio_tungstenite::accept_async(tls).await else { return };
                while let Some(Ok(m)) = ws.next().await {
                    if (m.is_text() || m.is_binary()) && ws.send(m).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (format!("wss://localhost:{port}/echo"), rt)
}

#[test]
fn wss_verifies_certificates_unless_the_target_is_insecure() {
    let (url, _rt) = start_wss_echo();
    let text = r#"
        let url = env("WSS_URL");
        let strict = ws::connect(url);
        check(strict, "verification fails", !strict.open && strict.error == "tls");
        let per_call = ws::connect(url, #{ insecure: true });
        per_call.send("over tls");
        check(per_call, "echo over TLS", per_call.recv("5s") == "over tls");
        per_call.close();
        let https = url;
        https.replace("wss://", "https://");
        http::target(https, #{ insecure: true });
        let per_target = ws::connect(url);
        check(per_target, "insecure per target", per_target.open);
        per_target.close();
    "#;
    let r = run(text, &[("WSS_URL", &url)]);
    assert_eq!(r.exit, ExitCode::Passed, "{}", summary(&r));
    assert!(r.checks.iter().all(|c| c.fails == 0), "{}", summary(&r));
    assert_eq!(failure_kinds(&r.aggregate, &[]).get("ws tls"), Some(&1));
}

#[test]
fn a_server_refusing_connections_is_a_reset_for_both_protocols() {
    let mut config = SimConfig::default();
    config.faults.refuse_connections = true;
    let s = sim(config);
    let text = r#"
        let w = ws::connect(env("WS_URL"), #{ name: "feed" });
        check(w, "ws refused", !w.open && w.error == "reset");
        let e = sse::open(env("SSE_URL"), #{ name: "ticks", reconnect: false });
        check(e, "sse refused", !e.open && e.error == "reset");
        check(e, "nothing to read", e.next("1s") == ());
    "#;
    let r = run(text, &[("WS_URL", &s.ws_url()), ("SSE_URL", &s.sse_url())]);
    assert_eq!(r.exit, ExitCode::Passed, "{}", summary(&r));
    assert!(r.checks.iter().all(|c| c.fails == 0), "{}", summary(&r));
    let kinds = failure_kinds(&r.aggregate, &[]);
    assert_eq!((kinds.get("ws reset"), kinds.get("sse reset")), (Some(&1), Some(&1)), "{kinds:?}");
}

/// POSTs a JSON body to the simulator; returns (status, body).
fn post(sim: &SimHandle, path: &str, body: &str) -> (u16, String) {
    let url = format!("{}{path}", sim.base_url());
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let r = reqwest::Client::new().post(url).body(body.to_string()).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    })
}

#[test]
fn stream_faults_switch_at_run_time_and_a_slow_server_is_slow() {
    let s = sim(SimConfig::default());
    let (status, body) = post(&s, "/sim/fault", r#"{"stream_close_code": 99}"#);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("faults.stream_close_code"), "{body}");
    let (status, body) =
        post(&s, "/sim/fault", r#"{"stream_delay_ms": 30, "stream_drop_after": 4, "stream_close_code": 4001}"#);
    assert_eq!(status, 200, "{body}");
    let text = r#"
        let ws = ws::connect(`${env("WS_URL")}?rate=1000`, #{ name: "slow" });
        ws.send(#{ type: "subscribe", topic: "prices" });
        let n = 0;
        while ws.open { if ws.recv("5s") != () { n += 1; } }
        check(n, "4 messages then the close", n == 4 && ws.error == "closed 4001" && ws.close_code == 4001);
    "#;
    let r = run(text, &[("WS_URL", &s.ws_url())]);
    assert_eq!(r.exit, ExitCode::Passed, "{}", summary(&r));
    assert!(r.checks.iter().all(|c| c.fails == 0), "{}", summary(&r));
    // Each message waited 30 ms at the server: no gap can be shorter.
    let gaps = r.aggregate.query("ws_msg_gap", &[]).unwrap();
    let min = gaps.stat(Stat::Min, std::time::Duration::ZERO).unwrap().unwrap();
    assert!(min >= 25.0, "{min}");
}
