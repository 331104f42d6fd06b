//! The HTTP/1.1 fast path: each VU owns one connection per origin (`scheme://host:port`),
//! driven by `hyper::client::conn::http1` on its worker, as oha does. No shared pool, no
//! middleware: about half reqwest's CPU per request. Used for `http://` URLs; `https://`
//! and redirects go through reqwest (see `script::http_exec`). Knows nothing of Rhai or VUs:
//! the caller keeps the connections.

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use std::time::{Duration, Instant};

/// Bytes read from a connection at a time.
const READ_BUFFER: usize = 4096;

/// A VU's idle connection to one origin.
pub type Conn = SendRequest<Full<Bytes>>;

/// A response body read with a limit: the bytes kept, and how many arrived in all.
#[derive(Debug, Default)]
pub struct Body {
    /// The first bytes of the body, at most the limit.
    pub kept: Bytes,
    /// Every body byte received (kept or not).
    pub size: u64,
}

impl Body {
    /// Whether bytes were received and not kept.
    pub fn truncated(&self) -> bool {
        self.size > self.kept.len() as u64
    }
}

/// Reads a body to its end, keeping at most `keep` bytes: the rest is counted and
/// dropped as it arrives, so a 100 MB download costs a buffer, not 100 MB.
pub async fn read_body<B>(mut body: B, keep: usize) -> Result<Body, B::Error>
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
{
    let mut first: Option<Bytes> = None;
    let mut more: Vec<u8> = Vec::new();
    let mut size: u64 = 0;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else { continue };
        size += data.len() as u64;
        let held = first.as_ref().map_or(0, Bytes::len) + more.len();
        let room = keep.saturating_sub(held);
        if room == 0 {
            continue;
        }
        let part = if data.len() > room { data.slice(..room) } else { data };
        match &first {
            // The usual case: the body in one frame, kept without a copy.
            None => first = Some(part),
            Some(_) => more.extend_from_slice(&part),
        }
    }
    let kept = match first {
        None => Bytes::new(),
        Some(f) if more.is_empty() => f,
        Some(f) => {
            let mut all = Vec::with_capacity(f.len() + more.len());
            all.extend_from_slice(&f);
            all.extend_from_slice(&more);
            all.into()
        }
    };
    Ok(Body { kept, size })
}

/// What a fast-path exchange returns to `http_exec`.
pub struct Exchange {
    /// The response head and body, or the error kind and message.
    pub result: Result<(hyper::http::response::Parts, Body), (&'static str, String)>,
    /// Time from send to the last byte.
    pub duration: Duration,
    /// The connection, to keep for the next request when it is still usable.
    pub conn: Option<Conn>,
}

/// The kind of a network error found in an error's source chain (an I/O error, or a
/// connection hyper saw closed), if any. Shared with the reqwest path.
pub fn network_kind(e: &(dyn std::error::Error + 'static)) -> Option<&'static str> {
    let mut source = Some(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind as K;
            match io.kind() {
                K::ConnectionRefused => return Some("refused"),
                K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof => return Some("reset"),
                K::TimedOut => return Some("timeout"),
                _ => {}
            }
        }
        if let Some(h) = s.downcast_ref::<hyper::Error>()
            && (h.is_incomplete_message() || h.is_closed() || h.is_canceled())
        {
            return Some("reset");
        }
        // TLS failures arrive as a rustls error, directly or inside an io::Error.
        let inner_tls = s
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some());
        if s.downcast_ref::<rustls::Error>().is_some() || inner_tls {
            return Some("tls");
        }
        source = s.source();
    }
    None
}

fn classify(e: &(dyn std::error::Error + 'static)) -> &'static str {
    network_kind(e).unwrap_or("other")
}

fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        parts.push(s.to_string());
        source = s.source();
    }
    parts.join(": ")
}

async fn dial(host: String, port: u16) -> Result<Conn, (&'static str, String)> {
    let stream = tokio::net::TcpStream::connect((host.as_str(), port)).await.map_err(|e| {
        let kind = match e.kind() {
            std::io::ErrorKind::ConnectionRefused => "refused",
            std::io::ErrorKind::TimedOut => "timeout",
            _ if e.to_string().contains("lookup") || e.to_string().contains("resolve") => "dns",
            _ => "connect",
        };
        (kind, format!("cannot connect to {host}:{port}: {e}"))
    })?;
    let _ = stream.set_nodelay(true);
    // Reads of 4 KiB: a VU's connection holds one read buffer the size of a read, and
    // with 10,000 VUs hyper's adaptive 8 KiB start was 40 MB of mostly empty buffers.
    let (sender, connection) = hyper::client::conn::http1::Builder::new()
        .read_buf_exact_size(Some(READ_BUFFER))
        .handshake(hyper_util::rt::TokioIo::new(stream))
        .await
        .map_err(|e| (classify(&e), chain(&e)))?;
    // The connection task lives on this thread's runtime (workers and the top level are
    // current-thread runtimes); it ends when the sender drops.
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// Sends one request on the VU's connection (dialled if needed) within `timeout`.
pub async fn exchange(
    reused: Option<Conn>,
    host: String,
    port: u16,
    request: hyper::Request<Full<Bytes>>,
    timeout: Duration,
    keep_body: usize,
) -> Exchange {
    let start = Instant::now();
    let work = async move {
        // A kept connection the server has closed meanwhile is replaced by a new one.
        let reusable = match reused {
            Some(mut c) => c.ready().await.is_ok().then_some(c),
            None => None,
        };
        let mut conn = match reusable {
            Some(c) => c,
            None => dial(host, port).await?,
        };
        let response = conn.send_request(request).await.map_err(|e| (classify(&e), chain(&e)))?;
        let (parts, body) = response.into_parts();
        let body = read_body(body, keep_body).await.map_err(|e| (classify(&e), chain(&e)))?;
        let keep =
            parts.headers.get(hyper::header::CONNECTION).is_none_or(|v| !v.as_bytes().eq_ignore_ascii_case(b"close"));
        Ok::<_, (&'static str, String)>(((parts, body), keep.then_some(conn)))
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(Ok((response, conn))) => Exchange { result: Ok(response), duration: start.elapsed(), conn },
        Ok(Err(e)) => Exchange { result: Err(e), duration: start.elapsed(), conn: None },
        Err(_) => Exchange {
            result: Err((
                "timeout",
                format!("no complete response within {}", crate::duration::format_duration(timeout)),
            )),
            duration: start.elapsed(),
            conn: None,
        },
    }
}
