//! The AMQP operations `amqp::*` runs for a script: publishing (one message, or many
//! with pipelined confirms), consuming, getting, queue inspection and topology, the
//! conversions between script values and AMQP field tables, and the samples they record.
//! Futures here run on the calling thread's runtime through `bridge::wait`.

use super::context::ThreadCtx;
use crate::metrics::{Str, Tags, builtin};
use crate::proto::amqp::{Amqp, AmqpError};
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicPublishOptions, BasicQosOptions};
use lapin::types::{AMQPValue, FieldArray, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Confirmation};
use rhai::{Dynamic, ImmutableString, Map};
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The header carrying the publish time (epoch microseconds) for end-to-end latency.
pub const SENT_AT_HEADER: &str = "volley-sent-at";
/// Unacknowledged deliveries a consume call lets the broker push ahead.
const PREFETCH_MAX: usize = 1000;
/// Deliveries acknowledged together (one `multiple` ack) while consuming.
const ACK_EVERY: usize = 250;

/// Microseconds since the Unix epoch.
pub fn epoch_us() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0)
}

/// A publish prepared from the script's arguments.
#[derive(Clone)]
pub struct Publish {
    /// Target exchange ("" = the default exchange).
    pub exchange: String,
    /// Routing key.
    pub routing_key: String,
    /// Properties without the send-time header (added per message).
    pub properties: BasicProperties,
    /// Headers of every message.
    pub headers: FieldTable,
    /// Wait for the broker's confirm.
    pub confirm: bool,
    /// Return unroutable messages (counted as `unroutable` failures).
    pub mandatory: bool,
    /// How long a confirm may take.
    pub timeout: Duration,
    /// Tags of the samples (VU tags, exchange, routing_key, name).
    pub tags: Tags,
}

impl Publish {
    fn properties(&self) -> BasicProperties {
        let mut headers = self.headers.clone();
        headers.insert(SENT_AT_HEADER.into(), AMQPValue::LongLongInt(epoch_us()));
        self.properties.clone().with_headers(headers)
    }

    fn options(&self) -> BasicPublishOptions {
        BasicPublishOptions { mandatory: self.mandatory, ..Default::default() }
    }
}

/// Records one publish outcome: `amqp_published` or a failure, `amqp_publish_failed`,
/// and with confirms `amqp_publish_duration`.
pub fn record_publish(thread: &ThreadCtx, tags: &Tags, outcome: &Result<(), AmqpError>, took: Duration, confirm: bool) {
    match outcome {
        Ok(()) => {
            thread.record(&builtin::AMQP_PUBLISHED, tags, 1.0);
            thread.record(&builtin::AMQP_PUBLISH_FAILED, tags, 0.0);
            if confirm {
                thread.record(&builtin::AMQP_PUBLISH_DURATION, tags, took.as_secs_f64() * 1000.0);
            }
        }
        Err(e) => {
            let tags = tags.with([(Str::from("error"), Str::from(e.kind))]);
            thread.record(&builtin::AMQP_PUBLISH_FAILED, &tags, 1.0);
        }
    }
}

async fn settle(confirm: lapin::PublisherConfirm, timeout: Duration) -> Result<(), AmqpError> {
    match tokio::time::timeout(timeout, confirm).await {
        Err(_) => Err(AmqpError::new("timeout", format!("no publisher confirm within {}", fmt_duration(timeout)))),
        Ok(Err(e)) => Err(AmqpError::new(crate::proto::amqp::classify(&e), format!("waiting for the confirm: {e}"))),
        Ok(Ok(Confirmation::Nack(_))) => Err(AmqpError::new("nack", "the broker refused the message (basic.nack)")),
        Ok(Ok(Confirmation::Ack(Some(returned)))) => Err(AmqpError::new(
            "unroutable",
            format!(
                "the message was returned: {} {} (no queue is bound for this exchange and routing key); hint: declare the queue (or bind it) before publishing; a non-durable queue is gone after a broker restart and an exclusive or auto-delete one with its connection or consumer; `mandatory: false` publishes with no receiver",
                returned.reply_code, returned.reply_text
            ),
        )),
        Ok(Ok(_)) => Ok(()),
    }
}

fn fmt_duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// Publishes one message; with confirms, waits for the broker's answer.
pub async fn publish_one(amqp: Rc<Amqp>, p: Publish, body: Vec<u8>) -> (Result<(), AmqpError>, Duration) {
    let lease = match amqp.lease(p.confirm).await {
        Ok(l) => l,
        Err(e) => return (Err(e), Duration::ZERO),
    };
    let started = Instant::now();
    let sent = lease
        .channel
        .basic_publish(p.exchange.as_str().into(), p.routing_key.as_str().into(), p.options(), &body, p.properties())
        .await;
    let outcome = match sent {
        Err(e) => Err(amqp.error("publishing", &e)),
        Ok(confirm) if p.confirm => settle(confirm, p.timeout).await.map_err(|e| amqp.refine(e)),
        Ok(_) => Ok(()),
    };
    let took = started.elapsed();
    amqp.release(lease);
    (outcome, took)
}

/// The bodies of a `publish_many` call.
pub enum Bodies {
    /// One body per message.
    List(Vec<Vec<u8>>),
    /// The same body `count` times.
    Repeat(Vec<u8>, usize),
}

impl Bodies {
    fn len(&self) -> usize {
        match self {
            Bodies::List(v) => v.len(),
            Bodies::Repeat(_, n) => *n,
        }
    }

    fn get(&self, i: usize) -> &[u8] {
        match self {
            Bodies::List(v) => &v[i],
            Bodies::Repeat(b, _) => b,
        }
    }
}

/// What a `publish_many` call did.
#[derive(Debug, Default)]
pub struct ManySummary {
    /// Messages published (and confirmed, with confirms).
    pub published: u64,
    /// Messages that failed.
    pub failed: u64,
    /// Failures by kind.
    pub errors: BTreeMap<&'static str, u64>,
    /// The first failure's message.
    pub first_error: Option<String>,
    /// Wall time of the whole call (until the last confirm).
    pub duration: Duration,
}

impl ManySummary {
    fn fail(&mut self, thread: &ThreadCtx, tags: &Tags, e: &AmqpError, n: u64) {
        self.failed += n;
        *self.errors.entry(e.kind).or_default() += n;
        self.first_error.get_or_insert_with(|| e.message.clone());
        let tags = tags.with([(Str::from("error"), Str::from(e.kind))]);
        for _ in 0..n {
            thread.record(&builtin::AMQP_PUBLISH_FAILED, &tags, 1.0);
        }
    }
}

/// Publishes many messages on one channel, keeping up to `window` confirms in flight;
/// each message's confirm latency is recorded when its confirm is seen. A lost channel
/// fails the rest of the batch (counted, with the cause) rather than retrying each.
pub async fn publish_many(
    amqp: Rc<Amqp>,
    thread: Rc<ThreadCtx>,
    p: Publish,
    bodies: Bodies,
    window: usize,
) -> ManySummary {
    let started = Instant::now();
    let mut summary = ManySummary::default();
    let total = bodies.len();
    let lease = match amqp.lease(p.confirm).await {
        Ok(l) => l,
        Err(e) => {
            summary.fail(&thread, &p.tags, &e, total as u64);
            summary.duration = started.elapsed();
            return summary;
        }
    };
    let ok = |summary: &mut ManySummary, took: Duration| {
        summary.published += 1;
        record_publish(&thread, &p.tags, &Ok(()), took, p.confirm);
    };
    let mut inflight: VecDeque<(Instant, lapin::PublisherConfirm)> = VecDeque::with_capacity(window);
    let (exchange, key): (ShortString, ShortString) = (p.exchange.as_str().into(), p.routing_key.as_str().into());
    for i in 0..total {
        let sent_at = Instant::now();
        let sent = lease
            .channel
            .basic_publish(exchange.clone(), key.clone(), p.options(), bodies.get(i), p.properties())
            .await;
        match sent {
            Err(e) => {
                let e = amqp.error("publishing", &e);
                summary.fail(&thread, &p.tags, &e, (total - i) as u64);
                break;
            }
            Ok(confirm) if p.confirm => inflight.push_back((sent_at, confirm)),
            Ok(_) => ok(&mut summary, sent_at.elapsed()),
        }
        while inflight.len() >= window.max(1) {
            if let Some((at, confirm)) = inflight.pop_front() {
                match settle(confirm, p.timeout).await {
                    Ok(()) => ok(&mut summary, at.elapsed()),
                    Err(e) => summary.fail(&thread, &p.tags, &amqp.refine(e), 1),
                }
            }
        }
    }
    while let Some((at, confirm)) = inflight.pop_front() {
        match settle(confirm, p.timeout).await {
            Ok(()) => ok(&mut summary, at.elapsed()),
            Err(e) => summary.fail(&thread, &p.tags, &amqp.refine(e), 1),
        }
    }
    amqp.release(lease);
    summary.duration = started.elapsed();
    summary
}

/// A message as received, before it becomes a script value.
#[derive(Debug, Clone)]
pub struct Received {
    /// Payload.
    pub body: Vec<u8>,
    /// Headers (the send-time header included).
    pub headers: Option<FieldTable>,
    /// The exchange it was published to.
    pub exchange: String,
    /// Its routing key.
    pub routing_key: String,
    /// Whether the broker delivered it before.
    pub redelivered: bool,
    /// Content type property.
    pub content_type: String,
    /// Message id property.
    pub message_id: String,
    /// Correlation id property.
    pub correlation_id: String,
    /// When it was received (epoch microseconds).
    pub received_us: i64,
}

impl Received {
    fn from_delivery(d: &lapin::message::Delivery) -> Received {
        let prop = |v: &Option<ShortString>| v.as_ref().map(|s| s.to_string()).unwrap_or_default();
        Received {
            body: d.data.clone(),
            headers: d.properties.headers().clone(),
            exchange: d.exchange.to_string(),
            routing_key: d.routing_key.to_string(),
            redelivered: d.redelivered,
            content_type: prop(d.properties.content_type()),
            message_id: prop(d.properties.message_id()),
            correlation_id: prop(d.properties.correlation_id()),
            received_us: epoch_us(),
        }
    }

    /// The send time stamped by `amqp::publish` (epoch microseconds), if any.
    pub fn sent_us(&self) -> Option<i64> {
        match self.headers.as_ref()?.inner().get(SENT_AT_HEADER)? {
            AMQPValue::LongLongInt(v) => Some(*v),
            AMQPValue::Timestamp(v) => Some(*v as i64),
            AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).trim().parse().ok(),
            _ => None,
        }
    }
}

/// Records `amqp_consumed` and, for stamped messages, `amqp_e2e_latency`.
pub fn record_consumed(thread: &ThreadCtx, tags: &Tags, messages: &[Received]) {
    for m in messages {
        thread.record(&builtin::AMQP_CONSUMED, tags, 1.0);
        if let Some(sent) = m.sent_us() {
            thread.record(&builtin::AMQP_E2E_LATENCY, tags, (m.received_us - sent).max(0) as f64 / 1000.0);
        }
    }
}

/// Takes up to `n` messages from a queue, waiting at most `timeout` in total; they are
/// acknowledged. Messages the broker pushed beyond `n` are requeued (the consume
/// channel is closed, not pooled).
pub async fn consume(amqp: Rc<Amqp>, queue: String, n: usize, timeout: Duration) -> Result<Vec<Received>, AmqpError> {
    use futures_util::StreamExt;
    let lease = amqp.lease(false).await?;
    let ch = lease.channel.clone();
    let prefetch = n.clamp(1, PREFETCH_MAX) as u16;
    ch.basic_qos(prefetch, BasicQosOptions::default()).await.map_err(|e| amqp.error("setting the prefetch", &e))?;
    let mut consumer = ch
        .basic_consume(queue.as_str().into(), "".into(), BasicConsumeOptions::default(), FieldTable::default())
        .await
        .map_err(|e| amqp.error(&format!("consuming from queue {queue:?}"), &e))?;
    let deadline = tokio::time::Instant::now() + timeout;
    let mut got = Vec::with_capacity(n.min(100_000));
    let mut unacked: Option<lapin::Acker> = None;
    let mut pending = 0;
    let mut failure = None;
    while got.len() < n {
        match tokio::time::timeout_at(deadline, consumer.next()).await {
            Err(_) | Ok(None) => break,
            Ok(Some(Err(e))) => {
                failure = Some(amqp.error(&format!("consuming from queue {queue:?}"), &e));
                break;
            }
            Ok(Some(Ok(d))) => {
                got.push(Received::from_delivery(&d));
                unacked = Some(d.acker.clone());
                pending += 1;
                if pending >= ACK_EVERY
                    && let Some(acker) = unacked.take()
                {
                    pending = 0;
                    if let Err(e) = acker.ack(BasicAckOptions { multiple: true }).await {
                        failure = Some(amqp.error("acknowledging", &e));
                        break;
                    }
                }
            }
        }
    }
    if failure.is_none()
        && let Some(acker) = unacked.take()
        && let Err(e) = acker.ack(BasicAckOptions { multiple: true }).await
    {
        failure = Some(amqp.error("acknowledging", &e));
    }
    drop(consumer);
    let _ = ch.close(200, "consume done".into()).await;
    match failure {
        Some(e) if got.is_empty() => Err(e),
        _ => Ok(got),
    }
}

/// Takes one message if the queue has one (acknowledged), without waiting.
pub async fn get(amqp: Rc<Amqp>, queue: String) -> Result<Option<Received>, AmqpError> {
    let lease = amqp.lease(false).await?;
    let got = lease.channel.basic_get(queue.as_str().into(), BasicGetOptions { no_ack: false }).await;
    let out = match got {
        Err(e) => Err(amqp.error(&format!("getting from queue {queue:?}"), &e)),
        Ok(None) => Ok(None),
        Ok(Some(m)) => {
            let r = Received::from_delivery(&m.delivery);
            match m.delivery.acker.ack(BasicAckOptions::default()).await {
                Ok(_) => Ok(Some(r)),
                Err(e) => Err(amqp.error("acknowledging", &e)),
            }
        }
    };
    amqp.release(lease);
    out
}

/// Converts a script value to an AMQP header value.
pub fn to_amqp(value: &Dynamic) -> AMQPValue {
    if value.is_unit() {
        AMQPValue::Void
    } else if let Ok(b) = value.as_bool() {
        AMQPValue::Boolean(b)
    } else if let Ok(i) = value.as_int() {
        AMQPValue::LongLongInt(i)
    } else if let Ok(f) = value.as_float() {
        AMQPValue::Double(f)
    } else if let Some(m) = value.read_lock::<Map>() {
        AMQPValue::FieldTable(to_table(&m))
    } else if let Some(a) = value.read_lock::<rhai::Array>() {
        AMQPValue::FieldArray(FieldArray::from(a.iter().map(to_amqp).collect::<Vec<_>>()))
    } else {
        AMQPValue::LongString(LongString::from(value.to_string()))
    }
}

/// Converts a script map to an AMQP field table.
pub fn to_table(map: &Map) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in map {
        t.insert(k.as_str().into(), to_amqp(v));
    }
    t
}

/// Converts an AMQP value to a script value.
pub fn from_amqp(value: &AMQPValue) -> Dynamic {
    match value {
        AMQPValue::Boolean(b) => (*b).into(),
        AMQPValue::ShortShortInt(i) => (*i as i64).into(),
        AMQPValue::ShortShortUInt(i) => (*i as i64).into(),
        AMQPValue::ShortInt(i) => (*i as i64).into(),
        AMQPValue::ShortUInt(i) => (*i as i64).into(),
        AMQPValue::LongInt(i) => (*i as i64).into(),
        AMQPValue::LongUInt(i) => (*i as i64).into(),
        AMQPValue::LongLongInt(i) => (*i).into(),
        AMQPValue::Timestamp(t) => (*t as i64).into(),
        AMQPValue::Float(f) => (*f as f64).into(),
        AMQPValue::Double(f) => (*f).into(),
        AMQPValue::DecimalValue(d) => (d.value as f64 / 10f64.powi(d.scale as i32)).into(),
        AMQPValue::ShortString(s) => ImmutableString::from(s.as_str()).into(),
        AMQPValue::LongString(s) => ImmutableString::from(String::from_utf8_lossy(s.as_bytes()).as_ref()).into(),
        AMQPValue::ByteArray(b) => Dynamic::from_blob(b.as_slice().to_vec()),
        AMQPValue::FieldArray(a) => Dynamic::from_array(a.as_slice().iter().map(from_amqp).collect()),
        AMQPValue::FieldTable(t) => Dynamic::from_map(from_table(t)),
        AMQPValue::Void => Dynamic::UNIT,
    }
}

/// Converts an AMQP field table to a script map.
pub fn from_table(table: &FieldTable) -> Map {
    table.inner().iter().map(|(k, v)| (k.as_str().into(), from_amqp(v))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_round_trip() {
        let mut m = Map::new();
        m.insert("s".into(), "x".into());
        m.insert("i".into(), Dynamic::from_int(7));
        m.insert("b".into(), Dynamic::TRUE);
        m.insert("f".into(), Dynamic::from_float(1.5));
        let back = from_table(&to_table(&m));
        assert_eq!(back["s"].to_string(), "x");
        assert_eq!(back["i"].as_int().unwrap(), 7);
        assert!(back["b"].as_bool().unwrap());
        assert_eq!(back["f"].as_float().unwrap(), 1.5);
    }

    #[test]
    fn the_send_stamp_is_read_back() {
        let mut headers = FieldTable::default();
        headers.insert(SENT_AT_HEADER.into(), AMQPValue::LongLongInt(1_000));
        let r = Received {
            body: vec![],
            headers: Some(headers),
            exchange: String::new(),
            routing_key: String::new(),
            redelivered: false,
            content_type: String::new(),
            message_id: String::new(),
            correlation_id: String::new(),
            received_us: 3_000,
        };
        assert_eq!(r.sent_us(), Some(1_000));
    }
}
