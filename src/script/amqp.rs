//! `amqp::*`: RabbitMQ (AMQP 0-9-1) from scripts, on lapin. Each thread (worker or top
//! level) dials one connection lazily and VUs borrow channels from its pools, so
//! thousands of VUs share a connection per worker. Publishing stamps a `volley-sent-at`
//! header that consuming turns into `amqp_e2e_latency`. Publish failures are values
//! and samples (like HTTP network errors); topology and consume errors throw.

use super::amqp_ops::{self, Bodies, Publish};
use super::bridge;
use super::context::{self, ThreadCtx};
use super::opts::{Opts, to_duration};
use crate::metrics::Str;
use crate::proto::amqp::{self as amqp_conn, AmqpError, DEFAULT_URL};
use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, ExchangeKind};
use rhai::plugin::*;
use rhai::{Array, Dynamic, EvalAltResult, Map, NativeCallContext};
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

pub const PUBLISH_OPTIONS: &[&str] = &[
    "headers",
    "persistent",
    "confirm",
    "content_type",
    "name",
    "mandatory",
    "timeout",
    "tags",
    "message_id",
    "correlation_id",
];
pub const MANY_OPTIONS: &[&str] = &[
    "headers",
    "persistent",
    "confirm",
    "content_type",
    "name",
    "mandatory",
    "timeout",
    "tags",
    "message_id",
    "correlation_id",
    "window",
];
pub const QUEUE_OPTIONS: &[&str] = &["durable", "exclusive", "auto_delete", "arguments"];
pub const EXCHANGE_OPTIONS: &[&str] = &["durable", "auto_delete", "internal", "arguments"];
pub const CONSUME_OPTIONS: &[&str] = &["name", "tags"];
/// How long a publisher confirm may take unless `timeout` says otherwise.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(30);
/// Confirms in flight for `publish_many` unless `window` says otherwise.
const DEFAULT_WINDOW: i64 = 100;

pub use super::amqp_message::Message;

/// The broker URL of this run: `amqp::url(...)`, else `AMQP_URL` (`-e` first, then the
/// process environment), else [`DEFAULT_URL`].
fn broker_url(thread: &ThreadCtx) -> String {
    let set = thread.shared.amqp_url.read().unwrap_or_else(|e| e.into_inner()).clone();
    set.or_else(|| thread.shared.env.get("AMQP_URL").cloned())
        .or_else(|| std::env::var("AMQP_URL").ok())
        .unwrap_or_else(|| DEFAULT_URL.to_string())
}

fn current() -> Result<(Rc<ThreadCtx>, Rc<amqp_conn::Amqp>), Box<EvalAltResult>> {
    let thread = context::thread()?;
    let url = broker_url(&thread);
    let amqp = amqp_conn::for_thread(Arc::as_ptr(&thread.shared) as *const () as usize, &url);
    Ok((thread, amqp))
}

/// Runs an operation whose failure is a script error naming the function.
fn op<T: 'static, F: Future<Output = Result<T, AmqpError>> + 'static>(
    ctx: &NativeCallContext,
    what: &str,
    f: impl FnOnce(Rc<amqp_conn::Amqp>) -> F,
) -> Result<T, Box<EvalAltResult>> {
    let go = || {
        let (_, amqp) = current()?;
        let fut = f(amqp);
        bridge::wait(fut)?.map_err(|e| format!("amqp::{what}: {e}").into())
    };
    go().map_err(|e| crate::script::at(ctx, e))
}

/// A plain channel for one topology call (returned to the pool if still healthy).
async fn with_channel<T, F: Future<Output = Result<T, lapin::Error>>>(
    amqp: &amqp_conn::Amqp,
    doing: &str,
    f: impl FnOnce(lapin::Channel) -> F,
) -> Result<T, AmqpError> {
    let lease = amqp.lease(false).await?;
    let out = f(lease.channel.clone()).await.map_err(|e| amqp.error(doing, &e));
    amqp.release(lease);
    out
}

fn body_bytes(body: &Dynamic, what: &str) -> Result<(Vec<u8>, &'static str), Box<EvalAltResult>> {
    Ok(if body.is_string() {
        (body.to_string().into_bytes(), "text/plain")
    } else if body.is_blob() {
        (body.clone().cast::<rhai::Blob>(), "application/octet-stream")
    } else {
        let json = serde_json::to_vec(body).map_err(|e| format!("{what}: the body cannot be sent as JSON: {e}"))?;
        (json, "application/json")
    })
}

fn table(opts: &Opts, key: &str) -> Result<FieldTable, Box<EvalAltResult>> {
    Ok(opts.map(key)?.map(|m| amqp_ops::to_table(&m)).unwrap_or_default())
}

/// Builds a publish from the script's options; the body's type sets the default
/// content type.
fn prepare(exchange: &str, routing_key: &str, content_type: &str, opts: &Opts) -> Result<Publish, Box<EvalAltResult>> {
    let mut properties = BasicProperties::default()
        .with_content_type(opts.string("content_type")?.unwrap_or_else(|| content_type.to_string()).into());
    if opts.bool("persistent")?.unwrap_or(false) {
        properties = properties.with_delivery_mode(2);
    }
    if let Some(id) = opts.string("message_id")? {
        properties = properties.with_message_id(id.into());
    }
    if let Some(id) = opts.string("correlation_id")? {
        properties = properties.with_correlation_id(id.into());
    }
    let mut extra: Vec<(Str, Str)> =
        vec![("exchange".into(), exchange.into()), ("routing_key".into(), routing_key.into())];
    if let Some(name) = opts.string("name")? {
        extra.push(("name".into(), name.as_str().into()));
    }
    extra.extend(opts.string_pairs("tags")?.into_iter().map(|(k, v)| (k.as_str().into(), v.as_str().into())));
    Ok(Publish {
        exchange: exchange.to_string(),
        routing_key: routing_key.to_string(),
        properties,
        headers: table(opts, "headers")?,
        confirm: opts.bool("confirm")?.unwrap_or(true),
        // A confirmed publish that no queue received is not a published message: the
        // broker acks unroutable messages unless they are mandatory (a queue lost with
        // a broker restart once counted 332 "confirmed" publishes into nothing).
        mandatory: opts.bool("mandatory")?.unwrap_or(true),
        timeout: opts.duration("timeout")?.unwrap_or(CONFIRM_TIMEOUT),
        tags: context::vu_tags(extra)?,
    })
}

fn publish_impl(
    ctx: &NativeCallContext,
    exchange: &str,
    routing_key: &str,
    body: Dynamic,
    options: &Map,
) -> Result<Map, Box<EvalAltResult>> {
    let go = || {
        let what = "amqp::publish";
        let opts = Opts::new(options, what, PUBLISH_OPTIONS)?;
        let (bytes, content_type) = body_bytes(&body, what)?;
        let p = prepare(exchange, routing_key, content_type, &opts)?;
        let (thread, amqp) = current()?;
        let (tags, confirm) = (p.tags.clone(), p.confirm);
        let (outcome, took) = bridge::wait(amqp_ops::publish_one(amqp, p, bytes))?;
        amqp_ops::record_publish(&thread, &tags, &outcome, took, confirm);
        let mut out = Map::new();
        out.insert("ok".into(), outcome.is_ok().into());
        out.insert("duration_ms".into(), (took.as_secs_f64() * 1000.0).into());
        let (kind, message) = match &outcome {
            Ok(()) => ("", String::new()),
            Err(e) => (e.kind, e.message.clone()),
        };
        out.insert("error".into(), kind.into());
        out.insert("error_message".into(), message.into());
        Ok(out)
    };
    go().map_err(|e| crate::script::at(ctx, e))
}

fn publish_many_impl(
    ctx: &NativeCallContext,
    exchange: &str,
    routing_key: &str,
    bodies: Result<Array, (i64, Dynamic)>,
    options: &Map,
) -> Result<Map, Box<EvalAltResult>> {
    let go = || {
        let what = "amqp::publish_many";
        let opts = Opts::new(options, what, MANY_OPTIONS)?;
        let window = opts.int("window")?.unwrap_or(DEFAULT_WINDOW);
        if !(1..=65_535).contains(&window) {
            return Err(format!("{what}: option `window` must be between 1 and 65535, got {window}").into());
        }
        let (bodies, content_type) = match bodies {
            Ok(list) => {
                let mut out = Vec::with_capacity(list.len());
                let mut ct = "application/octet-stream";
                for b in &list {
                    let (bytes, t) = body_bytes(b, what)?;
                    ct = t;
                    out.push(bytes);
                }
                (Bodies::List(out), ct)
            }
            Err((count, body)) => {
                if count < 0 {
                    return Err(format!("{what}: the count must not be negative, got {count}").into());
                }
                let (bytes, ct) = body_bytes(&body, what)?;
                (Bodies::Repeat(bytes, count as usize), ct)
            }
        };
        let p = prepare(exchange, routing_key, content_type, &opts)?;
        let (thread, amqp) = current()?;
        let s = bridge::wait(amqp_ops::publish_many(amqp, thread, p, bodies, window as usize))?;
        let mut out = Map::new();
        let secs = s.duration.as_secs_f64();
        out.insert("ok".into(), (s.failed == 0).into());
        out.insert("published".into(), (s.published as i64).into());
        out.insert("failed".into(), (s.failed as i64).into());
        out.insert("duration_ms".into(), (secs * 1000.0).into());
        let rate = if secs > 0.0 { s.published as f64 / secs } else { 0.0 };
        out.insert("rate_per_s".into(), rate.into());
        let errors: Map = s.errors.iter().map(|(k, v)| ((*k).into(), Dynamic::from_int(*v as i64))).collect();
        out.insert("errors".into(), errors.into());
        out.insert("error_message".into(), s.first_error.unwrap_or_default().into());
        Ok(out)
    };
    go().map_err(|e| crate::script::at(ctx, e))
}

fn consume_impl(
    ctx: &NativeCallContext,
    queue: &str,
    n: i64,
    timeout: Dynamic,
    options: &Map,
) -> Result<Array, Box<EvalAltResult>> {
    let go = || {
        let what = "amqp::consume";
        let opts = Opts::new(options, what, CONSUME_OPTIONS)?;
        if n < 0 {
            return Err(format!("{what}: the message count must not be negative, got {n}").into());
        }
        let timeout = to_duration(&timeout, &format!("{what}: timeout"))?;
        let mut extra: Vec<(Str, Str)> = vec![("queue".into(), queue.into())];
        if let Some(name) = opts.string("name")? {
            extra.push(("name".into(), name.as_str().into()));
        }
        extra.extend(opts.string_pairs("tags")?.into_iter().map(|(k, v)| (k.as_str().into(), v.as_str().into())));
        let tags = context::vu_tags(extra)?;
        if n == 0 {
            return Ok(Array::new());
        }
        let (thread, amqp) = current()?;
        let got = bridge::wait(amqp_ops::consume(amqp, queue.to_string(), n as usize, timeout))?
            .map_err(|e| format!("{what}: {e}"))?;
        amqp_ops::record_consumed(&thread, &tags, &got);
        Ok(got.into_iter().map(|m| Dynamic::from(Message(Arc::new(m)))).collect())
    };
    go().map_err(|e| crate::script::at(ctx, e))
}

fn queue_info_impl(queue: &str) -> Result<Map, Box<EvalAltResult>> {
    let (_, amqp) = current()?;
    let name = queue.to_string();
    // A passive declare of a missing queue makes the broker close the channel: use a
    // channel of its own, never returned to the pool on failure.
    let info = bridge::wait(async move {
        let lease = amqp.lease(false).await?;
        let options = QueueDeclareOptions { passive: true, ..Default::default() };
        match lease.channel.queue_declare(name.as_str().into(), options, FieldTable::default()).await {
            Ok(q) => {
                amqp.release(lease);
                Ok((q.message_count() as i64, q.consumer_count() as i64))
            }
            Err(e) => Err(amqp.error(&format!("queue {name:?}"), &e)),
        }
    })?;
    let mut out = Map::new();
    let (ok, depth, consumers, kind, message) = match info {
        Ok((d, c)) => (true, d, c, "", String::new()),
        Err(e) if e.kind == "not_found" => (
            false,
            -1,
            -1,
            e.kind,
            format!(
                "{}; hint: the queue does not exist (any more): a non-durable queue is gone after a broker restart, an exclusive one when the connection that declared it closes, an auto-delete one when its last consumer leaves; declare it durable, or again after a reconnect",
                e.message
            ),
        ),
        Err(e) => (false, -1, -1, e.kind, e.message),
    };
    out.insert("ok".into(), ok.into());
    out.insert("depth".into(), depth.into());
    out.insert("consumers".into(), consumers.into());
    out.insert("error".into(), kind.into());
    out.insert("error_message".into(), message.into());
    Ok(out)
}

fn declare_queue_impl(ctx: &NativeCallContext, name: &str, options: &Map) -> Result<String, Box<EvalAltResult>> {
    let opts = Opts::new(options, "amqp::declare_queue", QUEUE_OPTIONS).map_err(|e| crate::script::at(ctx, e))?;
    let flags = QueueDeclareOptions {
        durable: opts.bool("durable").map_err(|e| crate::script::at(ctx, e))?.unwrap_or(false),
        exclusive: opts.bool("exclusive").map_err(|e| crate::script::at(ctx, e))?.unwrap_or(false),
        auto_delete: opts.bool("auto_delete").map_err(|e| crate::script::at(ctx, e))?.unwrap_or(false),
        ..Default::default()
    };
    let args = table(&opts, "arguments").map_err(|e| crate::script::at(ctx, e))?;
    let name = name.to_string();
    op(ctx, "declare_queue", move |amqp| async move {
        let doing = format!("declaring queue {name:?}");
        with_channel(&amqp, &doing, |ch| async move {
            ch.queue_declare(name.as_str().into(), flags, args).await.map(|q| q.name().to_string())
        })
        .await
    })
}

fn declare_exchange_impl(
    ctx: &NativeCallContext,
    name: &str,
    kind: &str,
    options: &Map,
) -> Result<(), Box<EvalAltResult>> {
    let at = |e| crate::script::at(ctx, e);
    let opts = Opts::new(options, "amqp::declare_exchange", EXCHANGE_OPTIONS).map_err(at)?;
    let kind = match kind {
        "direct" => ExchangeKind::Direct,
        "fanout" => ExchangeKind::Fanout,
        "topic" => ExchangeKind::Topic,
        "headers" => ExchangeKind::Headers,
        other if other.starts_with("x-") => ExchangeKind::Custom(other.to_string()),
        other => {
            return Err(at(format!(
                "amqp::declare_exchange: unknown exchange kind {other:?}; hint: use \"direct\", \"fanout\", \"topic\", \"headers\" or a plugin's \"x-...\" kind"
            )
            .into()));
        }
    };
    let flags = ExchangeDeclareOptions {
        durable: opts.bool("durable").map_err(at)?.unwrap_or(false),
        auto_delete: opts.bool("auto_delete").map_err(at)?.unwrap_or(false),
        internal: opts.bool("internal").map_err(at)?.unwrap_or(false),
        ..Default::default()
    };
    let args = table(&opts, "arguments").map_err(at)?;
    let name = name.to_string();
    op(ctx, "declare_exchange", move |amqp| async move {
        let doing = format!("declaring exchange {name:?}");
        with_channel(
            &amqp,
            &doing,
            |ch| async move { ch.exchange_declare(name.as_str().into(), kind, flags, args).await },
        )
        .await
    })
}

/// The `amqp` module.
#[export_module]
pub mod amqp_api {
    use super::*;

    /// Sets the broker URL for the whole run (before the first AMQP call; default
    /// `AMQP_URL`, else `amqp://guest:guest@127.0.0.1:5672/%2f`).
    /// ```rhai
    /// amqp::url("amqp://guest:guest@rabbit.lab:5672/%2f");
    /// ```
    #[rhai_fn(name = "url", return_raw)]
    pub fn set_url(ctx: NativeCallContext, url: &str) -> Result<(), Box<EvalAltResult>> {
        let set = || {
            url.parse::<lapin::uri::AMQPUri>().map_err(|e| {
                format!(
                    "amqp::url: invalid URL {:?}: {e}; hint: amqp://USER:PASSWORD@HOST:5672/%2f",
                    amqp_conn::redact(url)
                )
            })?;
            let thread = context::thread()?;
            *thread.shared.amqp_url.write().unwrap_or_else(|e| e.into_inner()) = Some(url.to_string());
            crate::script::setup::record(
                &thread.shared,
                crate::script::setup::SetupCall::AmqpUrl { url: url.to_string() },
            );
            Ok(())
        };
        set().map_err(|e| crate::script::at(&ctx, e))
    }

    /// The broker URL in use, password hidden.
    /// ```rhai
    /// print(`broker: ${amqp::url()}`);
    /// ```
    #[rhai_fn(name = "url", return_raw)]
    pub fn get_url() -> Result<String, Box<EvalAltResult>> {
        Ok(amqp_conn::redact(&broker_url(&*context::thread()?)))
    }

    /// Whether the broker can be reached (connects if needed; never throws; a failed
    /// attempt is remembered for a moment, so calling it often is cheap).
    /// ```rhai
    /// if !amqp::available() { print("SKIP: no RabbitMQ"); return; }
    /// ```
    #[rhai_fn(name = "available")]
    pub fn available() -> bool {
        let Ok((_, amqp)) = current() else { return false };
        matches!(bridge::wait(async move { amqp.connection().await.is_ok() }), Ok(true))
    }

    /// Declares a queue (idempotent) and returns its name; `""` asks the broker for a
    /// generated name.
    /// ```rhai
    /// let q = amqp::declare_queue("orders");
    /// ```
    #[rhai_fn(name = "declare_queue", return_raw)]
    pub fn declare_queue(ctx: NativeCallContext, name: &str) -> Result<String, Box<EvalAltResult>> {
        declare_queue_impl(&ctx, name, &Map::new())
    }

    /// Declares a queue with options: `durable`, `exclusive`, `auto_delete` (all false
    /// by default) and `arguments` (e.g. `#{ "x-message-ttl": 60000 }`). An exclusive
    /// queue belongs to one connection, i.e. one thread: use it from the top level only.
    /// ```rhai
    /// let q = amqp::declare_queue("alerts", #{ durable: true, arguments: #{ "x-max-length": 100000 } });
    /// ```
    #[rhai_fn(name = "declare_queue", return_raw)]
    pub fn declare_queue_with(ctx: NativeCallContext, name: &str, options: Map) -> Result<String, Box<EvalAltResult>> {
        declare_queue_impl(&ctx, name, &options)
    }

    /// Declares an exchange of a kind: `direct`, `fanout`, `topic`, `headers`.
    /// ```rhai
    /// amqp::declare_exchange("events", "topic");
    /// ```
    #[rhai_fn(name = "declare_exchange", return_raw)]
    pub fn declare_exchange(ctx: NativeCallContext, name: &str, kind: &str) -> Result<(), Box<EvalAltResult>> {
        declare_exchange_impl(&ctx, name, kind, &Map::new())
    }

    /// Declares an exchange with options: `durable`, `auto_delete`, `internal`, `arguments`.
    /// ```rhai
    /// amqp::declare_exchange("events", "topic", #{ durable: true });
    /// ```
    #[rhai_fn(name = "declare_exchange", return_raw)]
    pub fn declare_exchange_with(
        ctx: NativeCallContext,
        name: &str,
        kind: &str,
        options: Map,
    ) -> Result<(), Box<EvalAltResult>> {
        declare_exchange_impl(&ctx, name, kind, &options)
    }

    /// Binds a queue to an exchange with a routing key (a pattern for topic exchanges).
    /// ```rhai
    /// amqp::bind("alerts", "events", "alert.#");
    /// ```
    #[rhai_fn(name = "bind", return_raw)]
    pub fn bind(
        ctx: NativeCallContext,
        queue: &str,
        exchange: &str,
        routing_key: &str,
    ) -> Result<(), Box<EvalAltResult>> {
        let (queue, exchange, key) = (queue.to_string(), exchange.to_string(), routing_key.to_string());
        op(&ctx, "bind", move |amqp| async move {
            let doing = format!("binding queue {queue:?} to exchange {exchange:?} with {key:?}");
            with_channel(&amqp, &doing, |ch| async move {
                let (q, x, k) = (queue.as_str().into(), exchange.as_str().into(), key.as_str().into());
                ch.queue_bind(q, x, k, QueueBindOptions::default(), FieldTable::default()).await
            })
            .await
        })
    }

    /// Publishes a message with a publisher confirm and returns
    /// `#{ ok, error, error_message, duration_ms }`; failures are values, not
    /// exceptions. Maps and arrays are sent as JSON, strings as text, blobs as bytes.
    /// ```rhai
    /// let r = amqp::publish("", "orders", #{ id: 1, item: "book" });
    /// check(r, "published", r.ok);
    /// ```
    #[rhai_fn(name = "publish", return_raw)]
    pub fn publish(
        ctx: NativeCallContext,
        exchange: &str,
        routing_key: &str,
        body: Dynamic,
    ) -> Result<Map, Box<EvalAltResult>> {
        publish_impl(&ctx, exchange, routing_key, body, &Map::new())
    }

    /// Publishes with options: `headers` (map), `persistent` (delivery mode 2),
    /// `confirm` (default true; false only hands the message to the client),
    /// `mandatory` (default true: a message no queue receives is a failure `unroutable`;
    /// false for a fanout with no listener), `timeout` (of the confirm, default 30s),
    /// `content_type`, `message_id`, `correlation_id`, `name` and `tags` (for metrics).
    /// ```rhai
    /// let r = amqp::publish("events", "alert.fire", #{ level: 3 }, #{ headers: #{ source: "pz" }, persistent: true, name: "alert" });
    /// if !r.ok { print(`${r.error}: ${r.error_message}`); }
    /// ```
    #[rhai_fn(name = "publish", return_raw)]
    pub fn publish_with(
        ctx: NativeCallContext,
        exchange: &str,
        routing_key: &str,
        body: Dynamic,
        options: Map,
    ) -> Result<Map, Box<EvalAltResult>> {
        publish_impl(&ctx, exchange, routing_key, body, &options)
    }

    /// Publishes each body of an array on one channel with pipelined confirms (100 in
    /// flight) and returns `#{ ok, published, failed, errors, error_message, duration_ms, rate_per_s }`.
    /// ```rhai
    /// let s = amqp::publish_many("", "orders", [#{ id: 1 }, #{ id: 2 }]);
    /// ```
    #[rhai_fn(name = "publish_many", return_raw)]
    pub fn publish_many(
        ctx: NativeCallContext,
        exchange: &str,
        routing_key: &str,
        bodies: Array,
    ) -> Result<Map, Box<EvalAltResult>> {
        publish_many_impl(&ctx, exchange, routing_key, Ok(bodies), &Map::new())
    }

    /// Publishes an array of bodies with the options of `publish` plus `window`
    /// (confirms in flight, 1-65535, default 100).
    /// ```rhai
    /// let s = amqp::publish_many("", "orders", bodies, #{ window: 500, persistent: true });
    /// ```
    #[rhai_fn(name = "publish_many", return_raw)]
    pub fn publish_many_with(
        ctx: NativeCallContext,
        exchange: &str,
        routing_key: &str,
        bodies: Array,
        options: Map,
    ) -> Result<Map, Box<EvalAltResult>> {
        publish_many_impl(&ctx, exchange, routing_key, Ok(bodies), &options)
    }

    /// Publishes the same body `count` times with pipelined confirms.
    /// ```rhai
    /// let s = amqp::publish_many("", "orders", 10000, #{ item: "book" });
    /// print(`${s.rate_per_s} msg/s`);
    /// ```
    #[rhai_fn(name = "publish_many", return_raw)]
    pub fn publish_many_count(
        ctx: NativeCallContext,
        exchange: &str,
        routing_key: &str,
        count: i64,
        body: Dynamic,
    ) -> Result<Map, Box<EvalAltResult>> {
        publish_many_impl(&ctx, exchange, routing_key, Err((count, body)), &Map::new())
    }

    /// Publishes the same body `count` times, with options (see above).
    /// ```rhai
    /// let s = amqp::publish_many("", "orders", 10000, "x", #{ window: 1000 });
    /// ```
    #[rhai_fn(name = "publish_many", return_raw)]
    pub fn publish_many_count_with(
        ctx: NativeCallContext,
        exchange: &str,
        routing_key: &str,
        count: i64,
        body: Dynamic,
        options: Map,
    ) -> Result<Map, Box<EvalAltResult>> {
        publish_many_impl(&ctx, exchange, routing_key, Err((count, body)), &options)
    }

    /// Takes up to `n` messages from a queue, waiting at most `timeout` ("5s" or
    /// seconds) in all; returns the messages that arrived (acknowledged). Records
    /// `amqp_consumed` and, for messages sent by `amqp::publish`, `amqp_e2e_latency`.
    /// ```rhai
    /// let msgs = amqp::consume("orders", 10, "5s");
    /// for m in msgs { print(m.json().id); }
    /// ```
    #[rhai_fn(name = "consume", return_raw)]
    pub fn consume(ctx: NativeCallContext, queue: &str, n: i64, timeout: Dynamic) -> Result<Array, Box<EvalAltResult>> {
        consume_impl(&ctx, queue, n, timeout, &Map::new())
    }

    /// Consumes with options: `name` and `tags` for the samples.
    /// ```rhai
    /// let msgs = amqp::consume("alerts", 1, "10s", #{ name: "alert-path" });
    /// ```
    #[rhai_fn(name = "consume", return_raw)]
    pub fn consume_with(
        ctx: NativeCallContext,
        queue: &str,
        n: i64,
        timeout: Dynamic,
        options: Map,
    ) -> Result<Array, Box<EvalAltResult>> {
        consume_impl(&ctx, queue, n, timeout, &options)
    }

    /// Takes one message without waiting: the message, or `()` when the queue is empty.
    /// ```rhai
    /// let m = amqp::get("orders");
    /// if m != () { print(m.body); }
    /// ```
    #[rhai_fn(name = "get", return_raw)]
    pub fn get(ctx: NativeCallContext, queue: &str) -> Result<Dynamic, Box<EvalAltResult>> {
        let (thread, _) = current().map_err(|e| crate::script::at(&ctx, e))?;
        let tags =
            context::vu_tags([(Str::from("queue"), Str::from(queue))]).map_err(|e| crate::script::at(&ctx, e))?;
        let queue = queue.to_string();
        let got = op(&ctx, "get", move |amqp| amqp_ops::get(amqp, queue))?;
        Ok(match got {
            Some(m) => {
                amqp_ops::record_consumed(&thread, &tags, std::slice::from_ref(&m));
                Dynamic::from(Message(Arc::new(m)))
            }
            None => Dynamic::UNIT,
        })
    }

    /// Messages ready in a queue, exact (a passive declare on a channel of its own),
    /// or -1 when the queue does not exist or the broker cannot be reached (see
    /// `amqp::queue_info` for the reason).
    /// ```rhai
    /// expect(amqp::queue_depth("orders"), "== 1000", "nothing lost");
    /// ```
    #[rhai_fn(name = "queue_depth", return_raw)]
    pub fn queue_depth(ctx: NativeCallContext, queue: &str) -> Result<i64, Box<EvalAltResult>> {
        let info = queue_info_impl(queue).map_err(|e| crate::script::at(&ctx, e))?;
        Ok(info.get("depth").and_then(|d| d.as_int().ok()).unwrap_or(-1))
    }

    /// A queue's state as a value: `#{ ok, depth, consumers, error, error_message }`;
    /// a missing queue gives `ok: false, error: "not_found"`, not an exception.
    /// ```rhai
    /// let i = amqp::queue_info("orders");
    /// if !i.ok { print(i.error_message); }
    /// ```
    #[rhai_fn(name = "queue_info", return_raw)]
    pub fn queue_info(ctx: NativeCallContext, queue: &str) -> Result<Map, Box<EvalAltResult>> {
        queue_info_impl(queue).map_err(|e| crate::script::at(&ctx, e))
    }

    /// Removes every ready message from a queue; returns how many.
    /// ```rhai
    /// amqp::purge("orders");
    /// ```
    #[rhai_fn(name = "purge", return_raw)]
    pub fn purge(ctx: NativeCallContext, queue: &str) -> Result<i64, Box<EvalAltResult>> {
        let queue = queue.to_string();
        op(&ctx, "purge", move |amqp| async move {
            let doing = format!("purging queue {queue:?}");
            with_channel(&amqp, &doing, |ch| async move {
                ch.queue_purge(queue.as_str().into(), Default::default()).await.map(|n| n as i64)
            })
            .await
        })
    }

    /// Deletes a queue (a missing one is fine); returns how many messages it held.
    /// ```rhai
    /// amqp::delete_queue("orders");
    /// ```
    #[rhai_fn(name = "delete_queue", return_raw)]
    pub fn delete_queue(ctx: NativeCallContext, queue: &str) -> Result<i64, Box<EvalAltResult>> {
        let queue = queue.to_string();
        op(&ctx, "delete_queue", move |amqp| async move {
            let doing = format!("deleting queue {queue:?}");
            with_channel(&amqp, &doing, |ch| async move {
                ch.queue_delete(queue.as_str().into(), QueueDeleteOptions::default()).await.map(|n| n as i64)
            })
            .await
        })
    }

    /// Deletes an exchange (a missing one is fine).
    /// ```rhai
    /// amqp::delete_exchange("events");
    /// ```
    #[rhai_fn(name = "delete_exchange", return_raw)]
    pub fn delete_exchange(ctx: NativeCallContext, name: &str) -> Result<(), Box<EvalAltResult>> {
        let name = name.to_string();
        op(&ctx, "delete_exchange", move |amqp| async move {
            let doing = format!("deleting exchange {name:?}");
            with_channel(&amqp, &doing, |ch| async move {
                ch.exchange_delete(name.as_str().into(), Default::default()).await
            })
            .await
        })
    }
}
