//! The Server-Sent Events client behind `sse::*`: one GET with `Accept:
//! text/event-stream` (and `Last-Event-ID` when resuming) on the thread's HTTP client,
//! its body parsed into events by `sse-stream`, failures classified into the kinds
//! reports count. Knows nothing of Rhai or VUs: reconnection and samples are the
//! script layer's.

use futures_util::StreamExt;
use std::pin::Pin;
use std::time::Duration;

/// The kinds failed SSE operations are tagged with (`error`).
pub const ERROR_KINDS: &[&str] = &["status NNN", "refused", "reset", "closed", "protocol", "timeout", "tls", "connect"];

/// An SSE failure: its kind and what happened.
#[derive(Debug, Clone, PartialEq)]
pub struct SseError {
    /// `status 503`, `refused`, `reset`, `closed`, `protocol`, `timeout`, ...
    pub kind: String,
    /// The full message.
    pub message: String,
}

impl SseError {
    fn new(kind: impl Into<String>, message: impl Into<String>) -> SseError {
        SseError { kind: kind.into(), message: message.into() }
    }
}

fn classify(e: &reqwest::Error) -> SseError {
    let kind = if e.is_timeout() {
        "timeout"
    } else {
        super::http::network_kind(e).unwrap_or(if e.is_connect() { "connect" } else { "reset" })
    };
    SseError::new(kind, e.to_string())
}

/// One event block as parsed (fields not inherited from earlier blocks).
pub use sse_stream::Sse as Event;

type Events = Pin<Box<dyn futures_util::Stream<Item = Result<Event, sse_stream::Error>> + Send>>;

/// An open event stream.
pub struct EventStream {
    events: Events,
}

/// A request's outcome when the server answered.
pub enum Opened {
    /// 200 with `text/event-stream`: the stream, and the response's `Set-Cookie` values.
    Stream(EventStream, Vec<String>),
    /// 204: the server has nothing more (an EventSource stops reconnecting).
    NoContent,
}

/// Opens a stream: GET `url` with `headers` (and `Last-Event-ID`), at most `timeout`
/// for the response head.
pub async fn open(
    client: &reqwest::Client,
    url: &str,
    headers: &[(String, String)],
    last_event_id: Option<&str>,
    timeout: Duration,
) -> Result<Opened, SseError> {
    let mut req = client.get(url).header("accept", "text/event-stream").header("cache-control", "no-cache");
    for (k, v) in headers {
        req = req.header(k.as_str(), v.as_str());
    }
    if let Some(id) = last_event_id {
        req = req.header("last-event-id", id);
    }
    // Boxed, as the WebSocket dial: a VU builds this future on its coroutine stack.
    let response = match tokio::time::timeout(timeout, Box::pin(req.send())).await {
        Err(_) => {
            let waited = crate::duration::format_duration(timeout);
            return Err(SseError::new("timeout", format!("no response within {waited}")));
        }
        Ok(Err(e)) => return Err(classify(&e)),
        Ok(Ok(r)) => r,
    };
    let status = response.status().as_u16();
    if status == 204 {
        return Ok(Opened::NoContent);
    }
    if status != 200 {
        return Err(SseError::new(format!("status {status}"), format!("the server answered {status}, not 200")));
    }
    let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    if !content_type.starts_with("text/event-stream") {
        return Err(SseError::new(
            "protocol",
            format!("the response is {content_type:?}, not text/event-stream: is this an SSE endpoint?"),
        ));
    }
    let set_cookies =
        response.headers().get_all("set-cookie").iter().filter_map(|v| v.to_str().ok().map(str::to_string)).collect();
    let chunks = futures_util::stream::unfold(response, |mut r| async move {
        match r.chunk().await {
            Ok(Some(bytes)) => Some((Ok(bytes), r)),
            Ok(None) => None,
            Err(e) => Some((Err(e), r)),
        }
    });
    let events: Events = Box::pin(sse_stream::SseStream::from_bytes_stream(chunks));
    Ok(Opened::Stream(EventStream { events }, set_cookies))
}

impl EventStream {
    /// The next event block; `Ok(None)` when the server ended the stream.
    pub async fn next(&mut self) -> Result<Option<Event>, SseError> {
        match self.events.next().await {
            None => Ok(None),
            Some(Ok(e)) => Ok(Some(e)),
            Some(Err(sse_stream::Error::Body(e))) => {
                let kind = super::http::network_kind(e.as_ref()).unwrap_or("reset");
                Err(SseError::new(kind, format!("the stream broke: {e}")))
            }
            Some(Err(e)) => Err(SseError::new("protocol", e.to_string())),
        }
    }
}
