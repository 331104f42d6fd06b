//! `amqp::*` against the real RabbitMQ on 127.0.0.1:5672 (guest/guest; `.ci/ensure-rabbitmq`
//! starts it). Queues get unique names and are deleted. The broker-lost test connects
//! through a TCP proxy the test kills, never by stopping the shared broker.

use crate::support::{run_with, script};
use std::sync::Arc;
use std::time::Duration;
use volley::engine::{ExitCode, RunReport};
use volley::metrics::Stat;

const BROKER: &str = "127.0.0.1:5672";

fn summary(r: &RunReport) -> String {
    volley::report::summary::render(r)
}

fn stat(r: &RunReport, metric: &str, filters: &[(&str, &str)], s: Stat) -> f64 {
    let f: Vec<(String, String)> = filters.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    r.aggregate.query(metric, &f).and_then(|x| x.stat(s, Duration::ZERO).ok().flatten()).unwrap_or(0.0)
}

fn unique(prefix: &str) -> String {
    format!("volley-test-{prefix}-{}", uuid::Uuid::new_v4().simple())
}

fn run(text: &str, env: &[(&str, &str)]) -> RunReport {
    let (_d, path) = script(text);
    run_with(&path, env, 1.0)
}

#[test]
fn published_with_confirms_all_arrive_and_are_consumed() {
    let q = unique("roundtrip");
    let r = run(
        r#"
        let q = amqp::declare_queue(env("Q"));
        let n = 300;
        phase("publish", #{ executor: "shared-iterations", vus: 6, iterations: n }, || {
            let r = amqp::publish("", q, #{ n: vu_iteration() }, #{ headers: #{ source: "it" }, name: "one" });
            check(r, "confirmed", r.ok);
        });
        let s = amqp::publish_many("", q, 200, #{ bulk: true }, #{ window: 50, name: "many" });
        expect(s.published, "== 200", "publish_many published");
        expect(s.failed, "== 0", "publish_many failed");
        expect(amqp::queue_depth(q), "== 500", "depth after publishing");
        let got = [];
        phase("consume", #{ executor: "per-vu-iterations", vus: 2, iterations: 1 }, || {
            let msgs = amqp::consume(q, 250, "10s", #{ name: "drain" });
            check(msgs, "got 250", msgs.len() == 250);
            check(msgs, "stamped", msgs.all(|m| m.e2e_ms >= 0.0 && m.sent_ms > 0.0));
            check(msgs, "headers", msgs.all(|m| m.headers.source == "it" || m.json().bulk == true));
        });
        expect(amqp::queue_depth(q), "== 0", "depth after consuming");
        assert(amqp::get(q) == (), "nothing left to get");
        amqp::publish("", q, "last");
        let m = amqp::get(q);
        assert(m.body == "last" && m.routing_key == q && m.content_type == "text/plain", "get");
        amqp::delete_queue(q);
        threshold("amqp_publish_failed", "rate == 0");
        threshold("amqp_e2e_latency", "count == 501");
        "#,
        &[("Q", q.as_str())],
    );
    assert_eq!(r.exit, ExitCode::Passed, "{}", summary(&r));
    assert_eq!(stat(&r, "amqp_published", &[], Stat::Count), 501.0);
    assert_eq!(stat(&r, "amqp_published", &[("name", "many")], Stat::Count), 200.0);
    assert_eq!(stat(&r, "amqp_publish_duration", &[("routing_key", &q)], Stat::Count), 501.0);
    assert_eq!(stat(&r, "amqp_consumed", &[("queue", &q)], Stat::Count), 501.0);
    assert_eq!(stat(&r, "amqp_consumed", &[("phase", "consume"), ("name", "drain")], Stat::Count), 500.0);
    assert_eq!(stat(&r, "amqp_e2e_latency", &[], Stat::Count), 501.0);
    assert!(stat(&r, "amqp_e2e_latency", &[], Stat::Max) > 0.0);
}

#[test]
fn a_missing_queue_is_an_error_value_and_the_thread_keeps_working() {
    let q = unique("present");
    let r = run(
        r#"
        let missing = env("Q") + "-missing";
        expect(amqp::queue_depth(missing), "== -1", "depth of a missing queue");
        let i = amqp::queue_info(missing);
        assert(!i.ok, "info ok");
        assert(i.error == "not_found" && i.error_message.contains("NOT_FOUND"), `info error: ${i.error_message}`);
        // The connection and the pooled channels survived the broker closing that channel.
        let q = amqp::declare_queue(env("Q"));
        assert(amqp::publish("", q, "x").ok, "publish after the error");
        expect(amqp::queue_depth(q), "== 1", "depth after the error");
        let unroutable = amqp::publish("", missing, "x", #{ mandatory: true });
        assert(unroutable.error == "unroutable", `mandatory publish to nowhere: ${unroutable}`);
        amqp::delete_queue(q);
        "#,
        &[("Q", q.as_str())],
    );
    assert_eq!(r.exit, ExitCode::Passed, "{}", summary(&r));
}

#[test]
fn an_unreachable_broker_names_the_url_without_the_password_and_how_to_start_it() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("amqp://guest:s3cret@127.0.0.1:{port}/%2f");
    let r = run(
        r#"
        assert(!amqp::available(), "available");
        let p = amqp::publish("", "q", "x");
        assert(p.error == "refused", `publish error: ${p.error_message}`);
        amqp::declare_queue("q");
        "#,
        &[("AMQP_URL", url.as_str())],
    );
    assert_eq!(r.exit, ExitCode::ScriptError, "{}", summary(&r));
    let err = r.script_error.clone().unwrap_or_default();
    assert!(err.contains(&format!("cannot connect to RabbitMQ at amqp://guest:***@127.0.0.1:{port}/%2f")), "{err}");
    assert!(err.contains("Connection refused") && err.contains(".ci/ensure-rabbitmq"), "{err}");
    assert!(!err.contains("s3cret"), "{err}");
    assert_eq!(stat(&r, "amqp_publish_failed", &[("error", "refused")], Stat::Count), 1.0);
}

/// A TCP proxy to the broker that the test can cut: every connection is dropped and
/// new ones are refused.
struct Proxy {
    port: u16,
    cut: Arc<tokio::sync::Notify>,
    _rt: tokio::runtime::Runtime,
}

impl Proxy {
    fn start() -> Proxy {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(tokio::sync::Notify::new());
        let stop = cut.clone();
        rt.spawn(async move {
            let mut tasks = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((mut client, _)) = accepted else { break };
                        tasks.spawn(async move {
                            if let Ok(mut upstream) = tokio::net::TcpStream::connect(BROKER).await {
                                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                            }
                        });
                    }
                    () = stop.notified() => break,
                }
            }
            // Dropping the listener refuses new connections; aborting drops the open ones.
            tasks.abort_all();
        });
        Proxy { port, cut, _rt: rt }
    }

    fn cut(&self) {
        self.cut.notify_one();
    }
}

/// Polls `queue`'s depth directly on the broker until it reaches `depth`, `done` is set,
/// or 60 s pass; then cuts the proxy. Returns the depth it saw last.
fn cut_at_depth(
    queue: String,
    depth: u32,
    cut: Arc<tokio::sync::Notify>,
    done: Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<u32> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let seen = rt.block_on(async {
            use lapin::options::QueueDeclareOptions;
            let url = format!("amqp://guest:guest@{BROKER}/%2f");
            let connection = lapin::Connection::connect(&url, lapin::ConnectionProperties::default())
                .await
                .expect("RabbitMQ on 127.0.0.1:5672");
            let channel = connection.create_channel().await.unwrap();
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            let mut seen = 0;
            while seen < depth
                && std::time::Instant::now() < deadline
                && !done.load(std::sync::atomic::Ordering::SeqCst)
            {
                let passive = QueueDeclareOptions { passive: true, ..Default::default() };
                seen = channel
                    .queue_declare(queue.as_str().into(), passive, Default::default())
                    .await
                    .unwrap()
                    .message_count();
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let _ = connection.close(200, "done".into()).await;
            seen
        });
        cut.notify_one();
        seen
    })
}

#[test]
fn losing_the_broker_mid_publish_gives_counted_failures_and_the_run_reports() {
    let q = unique("lost");
    // The queue is made directly on the broker; the run publishes through the proxy.
    let setup = run(r#"amqp::declare_queue(env("Q"));"#, &[("Q", q.as_str())]);
    assert_eq!(setup.exit, ExitCode::Passed, "{}", summary(&setup));
    let proxy = Proxy::start();
    let url = format!("amqp://guest:guest@127.0.0.1:{}/%2f", proxy.port);
    // Cut once 40 publishes reached the queue, however slow the machine; the phase then
    // stops itself once 20 publishes failed for the loss (or after 60 s, which fails).
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let cutter = cut_at_depth(q.clone(), 40, proxy.cut.clone(), done.clone());
    let r = run(
        r#"
        let q = env("Q");
        let p = phase("publish", #{ executor: "constant-vus", vus: 4, duration: "60s" }, || {
            let r = amqp::publish("", q, "x", #{ timeout: "2s" });
            if !r.ok { print(`${r.error}: ${r.error_message}`); }
            let lost = 0;
            for e in ["connection_lost", "refused", "io"] { lost += stats(`amqp_publish_failed{error:${e}}`).passes; }
            if lost >= 20 { stop_phase("enough publishes failed after the cut"); }
            sleep("20ms");
        });
        let s = amqp::publish_many("", q, 10, "y");
        expect(s.failed, "== 10", "publish_many after the loss");
        "#,
        &[("Q", q.as_str()), ("AMQP_URL", url.as_str())],
    );
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let depth_at_cut = cutter.join().unwrap();
    proxy.cut();
    assert!(depth_at_cut >= 40, "the queue held {depth_at_cut} messages when the proxy was cut\n{}", summary(&r));
    assert_eq!(r.exit, ExitCode::Passed, "{}", summary(&r));
    let published = stat(&r, "amqp_published", &[], Stat::Count);
    let failed = stat(&r, "amqp_publish_failed", &[("error", "connection_lost")], Stat::Count)
        + stat(&r, "amqp_publish_failed", &[("error", "refused")], Stat::Count)
        + stat(&r, "amqp_publish_failed", &[("error", "io")], Stat::Count);
    let all_failed = stat(&r, "amqp_publish_failed", &[], Stat::Count);
    assert!(published > 20.0, "published before the cut: {published}\n{}", summary(&r));
    assert!(failed > 10.0, "failures after the cut: {failed} of {all_failed}\n{}", summary(&r));
    // Reconnecting is paced by a backoff: far fewer dials than failed calls, and every
    // failed call is counted.
    let cleanup = run(
        r#"
        let q = env("Q");
        print(`depth ${amqp::queue_depth(q)}`);
        amqp::delete_queue(q);
        "#,
        &[("Q", q.as_str())],
    );
    assert_eq!(cleanup.exit, ExitCode::Passed, "{}", summary(&cleanup));
}

#[test]
fn the_roundtrip_example_passes() {
    let r = run_with(std::path::Path::new("examples/amqp_roundtrip.rhai"), &[("MESSAGES", "200"), ("VUS", "4")], 1.0);
    assert_eq!(r.exit, ExitCode::Passed, "{}", summary(&r));
    assert_eq!(stat(&r, "amqp_published", &[], Stat::Count), 200.0);
    assert_eq!(stat(&r, "amqp_consumed", &[], Stat::Count), 200.0);
}

#[test]
fn a_wrong_password_is_access_refused_and_counted_in_errors_by_kind() {
    // Issue 11: a refused login was reported as kind `connect`; publish failures were in
    // no report's errors by kind.
    let r = run(
        r#"
        amqp::url("amqp://guest:not-the-password@127.0.0.1:5672/%2f");
        let r = amqp::publish("", "volley-test-never", #{ a: 1 });
        assert(!r.ok, "refused");
        assert(r.error == "access_refused", `kind access_refused, got ${r.error}`);
        assert(r.error_message.contains("user or password"), r.error_message);
        assert(!r.error_message.contains("not-the-password"), "the password is never shown");
        "#,
        &[],
    );
    assert_eq!(r.exit, ExitCode::Passed, "{}", summary(&r));
    let kinds = volley::engine::judge::failure_kinds(&r.aggregate, &[]);
    assert_eq!(kinds.get("amqp access_refused"), Some(&1), "{kinds:?}");
}

#[test]
fn a_publish_no_queue_receives_is_unroutable_by_default_and_a_lost_queue_is_explained() {
    // Issue 11: after the broker lost a non-durable queue, 332 publishes were counted as
    // confirmed and `queue_depth` said -1 with no reason. The broker acks a message no
    // queue receives unless it is mandatory: now it is by default.
    let q = format!("volley.test.lost.{}", std::process::id());
    let r = run(
        r#"
        let q = amqp::declare_queue(env("Q"));
        for i in 0..10 { assert(amqp::publish("", q, `m${i}`).ok, "published while the queue exists"); }
        expect(amqp::queue_depth(q), "== 10", "depth before the loss");
        amqp::delete_queue(q);  // as a broker restart does to a non-durable queue
        let lost = 0;
        for i in 0..5 {
            let p = amqp::publish("", q, `m${i}`);
            if p.error == "unroutable" && p.error_message.contains("declare the queue") { lost += 1; }
        }
        expect(lost, "== 5", "publishes into nothing are failures");
        let fanout = amqp::publish("", q, "x", #{ mandatory: false });
        assert(fanout.ok, "mandatory: false publishes with no receiver");
        let i = amqp::queue_info(q);
        assert(i.depth == -1 && i.error == "not_found", `${i}`);
        assert(i.error_message.contains("non-durable queue is gone after a broker restart"), i.error_message);
        "#,
        &[("Q", q.as_str())],
    );
    assert_eq!(r.exit, ExitCode::Passed, "{}", summary(&r));
    assert_eq!(stat(&r, "amqp_published", &[], Stat::Count), 11.0);
    let kinds = volley::engine::judge::failure_kinds(&r.aggregate, &[]);
    assert_eq!(kinds.get("amqp unroutable"), Some(&5), "{kinds:?}");
}
