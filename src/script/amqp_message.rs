//! The message scripts receive from `amqp::consume` and `amqp::get`: body, JSON,
//! headers, properties, and the timing (`sent_ms`, `received_ms`, `e2e_ms`).

use super::amqp_ops::{self, Received};
use rhai::plugin::*;
use rhai::{Dynamic, EvalAltResult, ImmutableString, Map};
use std::sync::Arc;

/// A message taken from a queue by `amqp::consume` or `amqp::get`.
#[derive(Debug, Clone)]
pub struct Message(pub Arc<Received>);

/// Fields and methods of a received message.
#[export_module]
pub mod message_api {
    use super::*;

    /// The body as text (invalid UTF-8 replaced).
    /// ```rhai
    /// print(m.body);
    /// ```
    #[rhai_fn(global, get = "body", pure)]
    pub fn body(m: &mut Message) -> ImmutableString {
        String::from_utf8_lossy(&m.0.body).into_owned().into()
    }

    /// Parses the body as JSON.
    /// ```rhai
    /// let order = m.json();
    /// print(order.id);
    /// ```
    #[rhai_fn(global, name = "json", pure, return_raw)]
    pub fn json(m: &mut Message) -> Result<Dynamic, Box<EvalAltResult>> {
        let value: serde_json::Value = serde_json::from_slice(&m.0.body).map_err(|e| {
            let text = String::from_utf8_lossy(&m.0.body);
            let shown: String = text.chars().take(80).collect();
            format!(
                "message.json(): the body of a message from {:?} is not JSON: {e}; it starts with {shown:?}",
                m.0.routing_key
            )
        })?;
        rhai::serde::to_dynamic(value)
    }

    /// The message's headers (the `volley-sent-at` stamp included).
    /// ```rhai
    /// print(m.headers.source);
    /// ```
    #[rhai_fn(global, get = "headers", pure)]
    pub fn headers(m: &mut Message) -> Map {
        m.0.headers.as_ref().map(amqp_ops::from_table).unwrap_or_default()
    }

    /// The routing key it was published with.
    /// ```rhai
    /// if m.routing_key == "alert.fire" { print("fired"); }
    /// ```
    #[rhai_fn(global, get = "routing_key", pure)]
    pub fn routing_key(m: &mut Message) -> ImmutableString {
        m.0.routing_key.as_str().into()
    }

    /// The exchange it was published to ("" = default exchange).
    /// ```rhai
    /// print(m.exchange);
    /// ```
    #[rhai_fn(global, get = "exchange", pure)]
    pub fn exchange(m: &mut Message) -> ImmutableString {
        m.0.exchange.as_str().into()
    }

    /// Whether the broker delivered it before (to a consumer that did not ack).
    /// ```rhai
    /// if m.redelivered { print("seen before"); }
    /// ```
    #[rhai_fn(global, get = "redelivered", pure)]
    pub fn redelivered(m: &mut Message) -> bool {
        m.0.redelivered
    }

    /// The content type property ("" when unset).
    /// ```rhai
    /// if m.content_type == "application/json" { print(m.json()); }
    /// ```
    #[rhai_fn(global, get = "content_type", pure)]
    pub fn content_type(m: &mut Message) -> ImmutableString {
        m.0.content_type.as_str().into()
    }

    /// The message id property ("" when unset).
    /// ```rhai
    /// print(m.message_id);
    /// ```
    #[rhai_fn(global, get = "message_id", pure)]
    pub fn message_id(m: &mut Message) -> ImmutableString {
        m.0.message_id.as_str().into()
    }

    /// The correlation id property ("" when unset).
    /// ```rhai
    /// print(m.correlation_id);
    /// ```
    #[rhai_fn(global, get = "correlation_id", pure)]
    pub fn correlation_id(m: &mut Message) -> ImmutableString {
        m.0.correlation_id.as_str().into()
    }

    /// When it was published by `amqp::publish`, in epoch ms (-1.0 when not stamped).
    /// ```rhai
    /// print(iso_time(m.sent_ms));
    /// ```
    #[rhai_fn(global, get = "sent_ms", pure)]
    pub fn sent_ms(m: &mut Message) -> f64 {
        m.0.sent_us().map(|us| us as f64 / 1000.0).unwrap_or(-1.0)
    }

    /// When it was received, in epoch ms: compare with `now_ms()` taken before an
    /// HTTP call to time "request -> message observed".
    /// ```rhai
    /// let t0 = now_ms();
    /// http::post(`${base}/alert`, #{ level: 3 });
    /// let m = amqp::consume("alerts", 1, "10s")[0];
    /// metrics::trend("alert_path_ms").add(m.received_ms - t0);
    /// ```
    #[rhai_fn(global, get = "received_ms", pure)]
    pub fn received_ms(m: &mut Message) -> f64 {
        m.0.received_us as f64 / 1000.0
    }

    /// Publish-to-receive latency in ms (-1.0 when the message was not stamped).
    /// ```rhai
    /// check(m, "fresh", m.e2e_ms < 100.0);
    /// ```
    #[rhai_fn(global, get = "e2e_ms", pure)]
    pub fn e2e_ms(m: &mut Message) -> f64 {
        m.0.sent_us().map(|s| (m.0.received_us - s).max(0) as f64 / 1000.0).unwrap_or(-1.0)
    }

    /// A one-line description, e.g. `Message(orders, 42 bytes)`.
    /// ```rhai
    /// print(m);
    /// ```
    #[rhai_fn(global, name = "to_string", name = "to_debug", pure)]
    pub fn describe(m: &mut Message) -> String {
        format!("Message({}, {} bytes)", m.0.routing_key, m.0.body.len())
    }
}
