//! The streaming service, in the spirit of a market-data feed: `GET /stream/ws` (a
//! WebSocket with subscribe / unsubscribe, echo, server push at a rate and ping/pong)
//! and `GET /stream/sse` (Server-Sent Events at a rate, resumable with
//! `Last-Event-ID`). Both obey the fault switches (refused and dropped handshakes,
//! injected error statuses, `stream_drop_after`, `stream_delay_ms`) and count what they
//! did in `stats.streams`.
//!
//! WebSocket protocol (JSON text frames):
//! - `{"type":"subscribe","topic":"prices"}` -> `{"type":"subscribed","topic":"prices"}`;
//!   from then on the server pushes `{"type":"event","topic":..,"seq":N,"volley-sent-at":µs}`
//!   at the connection's rate, cycling through its topics;
//! - `{"type":"unsubscribe","topic":"prices"}` -> `{"type":"unsubscribed",..}`;
//! - any other message (text or binary) is echoed as is.
//!
//! Query parameters: `rate` (messages or events per second, default
//! `streams.push_rate_per_s`), `count` (stop pushing after this many; 0 = no limit),
//! `topics` (WebSocket: subscribe at once, comma-separated).

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Either, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONNECTION, CONTENT_TYPE, HeaderValue, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, UPGRADE};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use sse_stream::{Sse, SseBody};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use super::http::{ApiError, query_param};
use super::server::{Body, DropConnection, State};

/// The sent-at stamp pushed messages carry: microseconds since the Unix epoch, the
/// convention of volley's AMQP `volley-sent-at` header.
pub const SENT_AT: &str = "volley-sent-at";

fn epoch_us() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

/// What a connection's query string asks for.
struct Params {
    rate: f64,
    count: u64,
    topics: Vec<String>,
}

fn params(state: &State, query: Option<&str>) -> Result<Params, ApiError> {
    let number = |name: &str| -> Result<Option<f64>, ApiError> {
        match query_param(query, name) {
            None => Ok(None),
            Some(v) => match v.parse::<f64>() {
                Ok(n) if n.is_finite() && (0.0..=10_000.0).contains(&n) => Ok(Some(n)),
                _ => Err(ApiError::bad_field(name, format!("{name} must be a number from 0 to 10000, got {v:?}"))),
            },
        }
    };
    let topics = query_param(query, "topics")
        .map(|t| t.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect())
        .unwrap_or_default();
    Ok(Params {
        rate: number("rate")?.unwrap_or(state.config.streams.push_rate_per_s),
        count: number("count")?.unwrap_or(0.0) as u64,
        topics,
    })
}

/// A ticker at `rate` per second (none at rate 0), first tick one period from now.
fn ticker(rate: f64) -> Option<tokio::time::Interval> {
    (rate > 0.0).then(|| {
        let period = Duration::from_secs_f64(1.0 / rate);
        let mut t = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        // A slow connection (stream_delay_ms) does not catch up with a burst.
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    })
}

async fn tick(t: &mut Option<tokio::time::Interval>) {
    match t {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Decrements an open-connection gauge when the connection ends, however it ends.
struct OpenGuard<'a>(&'a AtomicU64);

impl Drop for OpenGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

/// Handles `/stream/ws` and `/stream/sse` (the fault switches apply to the handshake).
pub async fn handle(state: Arc<State>, req: Request<Incoming>) -> Result<Response<Body>, DropConnection> {
    let path = req.uri().path().to_string();
    let s = &state.stats.streams;
    let rejected = if path == "/stream/sse" { &s.sse_rejected } else { &s.ws_rejected };
    if state.faults.refuse() || state.faults.draw_drop(&state.draws) {
        rejected.fetch_add(1, Relaxed);
        return Err(DropConnection);
    }
    let answer = |r: super::http::Resp| Ok(r.map(Either::Left));
    if let Some(status) = state.faults.draw_error(&state.draws) {
        rejected.fetch_add(1, Relaxed);
        state.stats.injected_errors.fetch_add(1, Relaxed);
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return answer(ApiError::new(status, "injected error (faults.error_rate)").into_response());
    }
    let p = match params(&state, req.uri().query()) {
        Ok(p) => p,
        Err(e) => return answer(e.into_response()),
    };
    match path.as_str() {
        "/stream/ws" => websocket(state, req, p).map_or_else(|e| answer(e.into_response()), Ok),
        "/stream/sse" => Ok(sse(state, &req, p)),
        _ => answer(
            ApiError::new(StatusCode::NOT_FOUND, format!("no such stream {path}: use /stream/ws or /stream/sse"))
                .into_response(),
        ),
    }
}

fn websocket(state: Arc<State>, mut req: Request<Incoming>, p: Params) -> Result<Response<Body>, ApiError> {
    let headers = req.headers();
    let is_upgrade =
        headers.get(UPGRADE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let Some(key) = headers.get(SEC_WEBSOCKET_KEY).filter(|_| is_upgrade) else {
        return Err(ApiError::new(
            StatusCode::UPGRADE_REQUIRED,
            "/stream/ws is a WebSocket endpoint: connect with ws://HOST:PORT/stream/ws",
        ));
    };
    let accept = derive_accept_key(key.as_bytes());
    // The first subprotocol offered, if any, is accepted.
    let protocol = headers
        .get("sec-websocket-protocol")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(|v| v.trim().to_string());
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else { return };
        let ws = WebSocketStream::from_raw_socket(
            TokioIo::new(upgraded),
            Role::Server,
            // Small buffers (tungstenite allocates 128 KiB per socket up front by
            // default): 10,000 feed connections stay well under a gigabyte.
            Some(
                WebSocketConfig::default()
                    .max_message_size(Some(1 << 20))
                    .read_buffer_size(4 * 1024)
                    .write_buffer_size(0),
            ),
        )
        .await;
        session(state, ws, p).await;
    });
    let mut r = Response::new(Either::Left(Full::new(Bytes::new())));
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(SEC_WEBSOCKET_ACCEPT, v);
    }
    if let Some(v) = protocol.and_then(|p| HeaderValue::from_str(&p).ok()) {
        h.insert("sec-websocket-protocol", v);
    }
    Ok(r)
}

type Ws = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// A subscribe or unsubscribe request, if the text is one.
fn control_message(text: &str) -> Option<(bool, String)> {
    if !text.starts_with('{') || !text.contains("subscribe") {
        return None;
    }
    let v: Value = serde_json::from_str(text).ok()?;
    let topic = v.get("topic")?.as_str()?.to_string();
    match v.get("type")?.as_str()? {
        "subscribe" => Some((true, topic)),
        "unsubscribe" => Some((false, topic)),
        _ => None,
    }
}

/// One WebSocket connection: reads, echoes, acknowledges and pushes until the client
/// closes, the connection fails or a fault ends it.
async fn session(state: Arc<State>, mut ws: Ws, p: Params) {
    let s = &state.stats.streams;
    s.ws_total.fetch_add(1, Relaxed);
    s.ws_open.fetch_add(1, Relaxed);
    let _open = OpenGuard(&s.ws_open);
    let mut topics = p.topics;
    let mut ticker = ticker(p.rate);
    let (mut pushed, mut sent) = (0u64, 0u64);
    loop {
        let may_push = !topics.is_empty() && (p.count == 0 || pushed < p.count);
        let reply = tokio::select! {
            incoming = ws.next() => match incoming {
                Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) => {
                    s.ws_msgs_in.fetch_add(1, Relaxed);
                    s.ws_bytes_in.fetch_add(m.len() as u64, Relaxed);
                    let control = match &m {
                        Message::Text(t) => control_message(t.as_str()),
                        _ => None,
                    };
                    match control {
                        Some((true, topic)) => {
                            s.ws_subscribes.fetch_add(1, Relaxed);
                            let ack = json!({"type": "subscribed", "topic": topic}).to_string();
                            if !topics.contains(&topic) {
                                topics.push(topic);
                            }
                            Message::text(ack)
                        }
                        Some((false, topic)) => {
                            s.ws_unsubscribes.fetch_add(1, Relaxed);
                            topics.retain(|t| *t != topic);
                            Message::text(json!({"type": "unsubscribed", "topic": topic}).to_string())
                        }
                        None => m,
                    }
                }
                Some(Ok(Message::Ping(_))) => {
                    s.ws_pings.fetch_add(1, Relaxed);
                    // tungstenite queued the pong: send it now.
                    if ws.flush().await.is_err() {
                        return;
                    }
                    continue;
                }
                Some(Ok(Message::Close(_))) => {
                    s.ws_closed_by_client.fetch_add(1, Relaxed);
                    // Completes the closing handshake (the reply is queued).
                    let _ = ws.flush().await;
                    return;
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return,
            },
            () = tick(&mut ticker), if may_push => {
                pushed += 1;
                let topic = &topics[(pushed as usize - 1) % topics.len()];
                let body = json!({"type": "event", "topic": topic, "seq": pushed, SENT_AT: epoch_us()});
                Message::text(body.to_string())
            }
        };
        let delay = state.faults.stream_delay();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let len = reply.len() as u64;
        if ws.send(reply).await.is_err() {
            return;
        }
        s.ws_msgs_out.fetch_add(1, Relaxed);
        s.ws_bytes_out.fetch_add(len, Relaxed);
        sent += 1;
        let (drop_after, code) = state.faults.stream_drop();
        if drop_after > 0 && sent >= drop_after {
            s.ws_dropped.fetch_add(1, Relaxed);
            if code > 0 {
                let frame = CloseFrame { code: code.into(), reason: "simulator fault: stream_drop_after".into() };
                let _ = ws.close(Some(frame)).await;
            }
            // Dropping the socket without a close frame: the client sees a reset.
            return;
        }
    }
}

/// State of one SSE stream.
struct SseStream {
    state: Arc<State>,
    ticker: Option<tokio::time::Interval>,
    /// The id of the last event sent (or resumed from).
    seq: u64,
    count: u64,
    sent: u64,
    retry_first: Option<u64>,
}

impl Drop for SseStream {
    fn drop(&mut self) {
        self.state.stats.streams.sse_open.fetch_sub(1, Relaxed);
    }
}

fn sse(state: Arc<State>, req: &Request<Incoming>, p: Params) -> Response<Body> {
    let s = &state.stats.streams;
    let resume = req.headers().get("last-event-id").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse().ok());
    if resume.is_some() {
        s.sse_resumed.fetch_add(1, Relaxed);
    }
    let seq: u64 = resume.unwrap_or(0);
    if p.count > 0 && seq >= p.count {
        // Everything was sent: 204 tells an EventSource to stop reconnecting.
        let mut r = Response::new(Either::Left(Full::new(Bytes::new())));
        *r.status_mut() = StatusCode::NO_CONTENT;
        return r;
    }
    s.sse_total.fetch_add(1, Relaxed);
    s.sse_open.fetch_add(1, Relaxed);
    let retry = state.config.streams.sse_retry_ms;
    let stream = SseStream { ticker: ticker(p.rate), seq, count: p.count, sent: 0, retry_first: Some(retry), state };
    let events = futures_util::stream::unfold(stream, |mut st| async move {
        if let Some(retry) = st.retry_first.take() {
            return Some((Ok::<Sse, Infallible>(Sse::default().retry(retry)), st));
        }
        if st.count > 0 && st.seq >= st.count {
            return None;
        }
        let (drop_after, _) = st.state.faults.stream_drop();
        if drop_after > 0 && st.sent >= drop_after {
            st.state.stats.streams.sse_dropped.fetch_add(1, Relaxed);
            return None;
        }
        tick(&mut st.ticker).await;
        let delay = st.state.faults.stream_delay();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        st.seq += 1;
        st.sent += 1;
        let data = json!({"seq": st.seq, SENT_AT: epoch_us()}).to_string();
        let s = &st.state.stats.streams;
        s.sse_events_out.fetch_add(1, Relaxed);
        s.sse_bytes_out.fetch_add(data.len() as u64, Relaxed);
        Some((Ok(Sse::default().event("tick").id(st.seq.to_string()).data(data)), st))
    });
    let body = SseBody::new(events).map_err(|e| -> Box<dyn std::error::Error + Send + Sync> { Box::new(e) });
    let mut r = Response::new(Either::Right(body.boxed_unsync()));
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    r.headers_mut().insert("cache-control", HeaderValue::from_static("no-cache"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_messages_are_recognised_and_anything_else_is_echoed() {
        assert_eq!(control_message(r#"{"type":"subscribe","topic":"prices"}"#), Some((true, "prices".into())));
        assert_eq!(control_message(r#"{"type":"unsubscribe","topic":"x"}"#), Some((false, "x".into())));
        assert_eq!(control_message(r#"{"type":"subscribe"}"#), None);
        assert_eq!(control_message("hello subscribe"), None);
    }
}
