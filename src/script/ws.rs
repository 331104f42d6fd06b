//! `ws::*`: WebSocket load from scripts. `ws::connect` returns a `WebSocket` whose
//! calls (`send`, `recv`, `ping`, `close`) each wait like an HTTP call does (one wait
//! of the VU through the coroutine bridge, no callbacks into Rhai). Every call records
//! its samples (the `ws_*` metrics) with the VU's tags plus `name`; a connection that
//! fails or that the server ends is a value (`ws.open`, `ws.error`) and a counted
//! failure by kind, so the run goes on. Script mistakes (a non-ws URL, a bad option,
//! sending on a closed socket) are errors with the script position.
//!
//! The methods and properties of `WebSocket` are in `ws_socket.rs`.
//!
//! Also the pieces `sse.rs` shares: URL checks, the VU's cookies for a stream URL, and
//! the `volley-sent-at` stamp read from JSON messages.

use super::bridge;
use super::context::{self, ThreadCtx};
use super::opts::{Opts, describe, to_duration};
use crate::metrics::{Metric, Str, Tags, builtin};
use crate::proto::ws::{self as client, Received, WsError};
use rhai::plugin::*;
use rhai::{Dynamic, EvalAltResult, Map, NativeCallContext};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `ws::connect`'s options.
pub const CONNECT_OPTIONS: &[&str] = &["headers", "subprotocols", "timeout", "name", "tags", "insecure"];
/// How long a handshake may take unless `timeout` (or the target's) says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// How long `recv()` without an argument waits.
pub const DEFAULT_RECV: Duration = Duration::from_secs(10);
/// How long `close()` waits for the server's close frame.
const CLOSE_WAIT: Duration = Duration::from_secs(5);
/// The JSON member with a message's send time (µs since the epoch), as AMQP's header.
pub const SENT_AT: &str = "volley-sent-at";

/// Checks a stream URL's scheme: `schemes` are the accepted ones (`ws`/`wss`, or
/// `http`/`https` for SSE). Shared with `volley check`.
pub fn check_url(what: &str, url: &str, schemes: &[&str]) -> Result<url::Url, String> {
    let example =
        if schemes[0] == "ws" { "ws://HOST:PORT/path or wss://..." } else { "http://HOST:PORT/path or https://..." };
    let parsed = url::Url::parse(url)
        .map_err(|e| format!("{what}: invalid URL {url:?}: {e}; hint: write a full URL such as {example}"))?;
    if !schemes.contains(&parsed.scheme()) {
        let hint = match (schemes[0], parsed.scheme()) {
            ("ws", "http" | "https") => {
                format!("WebSocket URLs start with ws:// or wss:// (the same host and path: {})", to_ws(url))
            }
            ("http", "ws" | "wss") => "SSE streams are plain HTTP: use http:// or https://".to_string(),
            _ => format!("use a URL such as {example}"),
        };
        return Err(format!("{what}: unsupported scheme {:?} in {url:?}; hint: {hint}", parsed.scheme()));
    }
    Ok(parsed)
}

fn to_ws(url: &str) -> String {
    url.replacen("https://", "wss://", 1).replacen("http://", "ws://", 1)
}

/// The http(s) URL a ws(s) URL shares cookies and target settings with.
fn as_http(url: &url::Url) -> url::Url {
    let mut u = url.clone();
    let scheme = if url.scheme() == "wss" { "https" } else { "http" };
    let _ = u.set_scheme(scheme);
    u
}

/// Reads and checks `ws::connect`'s URL and options without a run (for `volley check`).
pub fn check_connect(url: Option<&str>, options: &Map) -> Result<(), String> {
    let text = |e: Box<EvalAltResult>| super::signatures::runtime_text(&e.to_string()).to_string();
    if let Some(url) = url {
        check_url("ws::connect", url, &["ws", "wss"])?;
    }
    Spec::read(options).map(|_| ()).map_err(text)
}

/// What a script asked `ws::connect` for, checked.
struct Spec {
    headers: Vec<(String, String)>,
    subprotocols: Vec<String>,
    timeout: Option<Duration>,
    name: Option<String>,
    tags: Vec<(String, String)>,
    insecure: Option<bool>,
}

impl Spec {
    fn read(options: &Map) -> Result<Spec, Box<EvalAltResult>> {
        let what = "ws::connect";
        let o = Opts::new(options, what, CONNECT_OPTIONS)?;
        let subprotocols = match o.get("subprotocols") {
            None => Vec::new(),
            Some(v) if v.is_string() => vec![v.to_string()],
            Some(v) => {
                let wrong = || -> Box<EvalAltResult> {
                    format!(
                        "{what}: option `subprotocols` expects a list of strings like [\"chat\"], got {}",
                        describe(v)
                    )
                    .into()
                };
                let list = v.clone().try_cast::<rhai::Array>().ok_or_else(wrong)?;
                list.iter()
                    .map(|p| if p.is_string() { Ok(p.to_string()) } else { Err(wrong()) })
                    .collect::<Result<_, _>>()?
            }
        };
        Ok(Spec {
            headers: o.string_pairs("headers")?,
            subprotocols,
            timeout: o.duration("timeout")?,
            name: o.string("name")?,
            tags: o.string_pairs("tags")?,
            insecure: o.bool("insecure")?,
        })
    }
}

/// The VU's cookies for a URL, as a `Cookie` header value.
pub fn cookies_for(url: &url::Url) -> Result<Option<String>, Box<EvalAltResult>> {
    context::with_vu(|vu| {
        let jar = vu.cookies.borrow();
        let jar = jar.as_deref()?;
        let pairs: Vec<String> = jar.get_request_values(url).map(|(n, v)| format!("{n}={v}")).collect();
        (!pairs.is_empty()).then(|| pairs.join("; "))
    })
}

/// Keeps `Set-Cookie` values in the VU's jar.
pub fn keep_cookies(url: &url::Url, set_cookies: &[String]) {
    if set_cookies.is_empty() {
        return;
    }
    let _ = context::with_vu(|vu| {
        let mut jar = vu.cookies.borrow_mut();
        let jar = jar.get_or_insert_with(Box::default);
        for v in set_cookies {
            let _ = jar.parse(v, url);
        }
    });
}

fn epoch_us() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_micros() as f64)
}

/// The latency in ms of a JSON text carrying a `volley-sent-at` stamp, if it does.
pub fn stamped_latency_ms(text: &str) -> Option<f64> {
    if !text.contains(SENT_AT) {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    let sent = v.get(SENT_AT)?.as_f64()?;
    let ms = (epoch_us() - sent) / 1000.0;
    (ms >= 0.0).then_some(ms)
}

/// A socket's state as the script sees it.
#[derive(Default)]
pub(super) struct State {
    pub(super) open: bool,
    /// Closed by the script (`close()`), or never opened.
    closed_here: bool,
    pub(super) status: i64,
    pub(super) protocol: String,
    pub(super) error: String,
    pub(super) error_message: String,
    pub(super) close_code: i64,
    opened: Option<Instant>,
    last_message: Option<Instant>,
}

/// One WebSocket, shared by the script values that refer to it.
pub struct Socket {
    session: tokio::sync::Mutex<Option<client::Session>>,
    state: Mutex<State>,
    tags: Tags,
    pub(super) url: String,
    recv_timeout: Duration,
}

/// A WebSocket as scripts hold it (`let ws = ws::connect(...)`).
#[derive(Clone)]
pub struct WebSocket(pub(super) Arc<Socket>);

impl Socket {
    pub(super) fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn record(&self, thread: &ThreadCtx, metric: &Metric, value: f64) {
        thread.record(metric, &self.tags, value);
    }

    /// Counts one received message: count, bytes, gap and latency.
    fn received(&self, thread: &ThreadCtx, m: &Received) {
        self.record(thread, &builtin::WS_MSGS_RECEIVED, 1.0);
        self.record(thread, &builtin::WS_BYTES_RECEIVED, m.len() as f64);
        let now = Instant::now();
        if let Some(last) = self.state().last_message.replace(now) {
            self.record(thread, &builtin::WS_MSG_GAP, (now - last).as_secs_f64() * 1000.0);
        }
        if let Received::Text(t) = m
            && let Some(ms) = stamped_latency_ms(t)
        {
            self.record(thread, &builtin::WS_MSG_LATENCY, ms);
        }
    }

    /// The session ended: its duration, and a counted failure when it was not ours.
    fn ended(&self, thread: &ThreadCtx, error: Option<&WsError>) {
        let opened = {
            let mut s = self.state();
            if !s.open {
                return;
            }
            s.open = false;
            if let Some(e) = error {
                s.error = e.kind.clone();
                s.error_message = e.message.clone();
                s.close_code = e.close_code.map_or(0, i64::from);
            }
            s.opened
        };
        if let Some(opened) = opened {
            self.record(thread, &builtin::WS_SESSION_DURATION, opened.elapsed().as_secs_f64() * 1000.0);
        }
        if let Some(e) = error {
            let tags = self.tags.with([(Str::from("error"), Str::from(e.kind.as_str()))]);
            thread.record(&builtin::WS_FAILED, &tags, 1.0);
        }
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        // A socket the script did not close (the iteration ended): its session ends now,
        // with a close frame sent in the background when a runtime is at hand.
        let state = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        if !state.open {
            return;
        }
        state.open = false;
        if let (Some(opened), Ok(thread)) = (state.opened, context::thread()) {
            thread.record(&builtin::WS_SESSION_DURATION, &self.tags, opened.elapsed().as_secs_f64() * 1000.0);
        }
        if let (Some(mut session), Ok(rt)) = (self.session.get_mut().take(), tokio::runtime::Handle::try_current()) {
            rt.spawn(async move {
                session.close(1001, Duration::from_secs(1)).await;
            });
        }
    }
}

fn connect_impl(ctx: &NativeCallContext, url: &str, options: &Map) -> Result<WebSocket, Box<EvalAltResult>> {
    let go = || {
        let what = "ws::connect";
        let parsed = check_url(what, url, &["ws", "wss"])?;
        let spec = Spec::read(options)?;
        let thread = context::thread()?;
        let http_url = as_http(&parsed);
        let target = thread.shared.http.resolve(http_url.as_str());
        let mut headers = target.headers.clone();
        headers.extend(spec.headers);
        let timeout = spec.timeout.or(target.timeout).unwrap_or(DEFAULT_TIMEOUT);
        let o = client::ConnectOptions {
            headers,
            subprotocols: spec.subprotocols,
            cookie: cookies_for(&http_url)?,
            timeout,
            insecure: spec.insecure.or(target.insecure).unwrap_or(false),
        };
        let name = spec.name.unwrap_or_else(|| super::http_exec::default_name(&parsed));
        let mut extra: Vec<(Str, Str)> = vec![("name".into(), name.as_str().into())];
        extra.extend(spec.tags.iter().map(|(k, v)| (k.as_str().into(), v.as_str().into())));
        let tags = context::vu_tags(extra)?;
        let target_url = url.to_string();
        let started = Instant::now();
        let result = bridge::wait(async move { client::connect(&target_url, &o).await })?;
        let took = started.elapsed();
        let mut state = State::default();
        let session = match result {
            Ok(c) => {
                keep_cookies(&http_url, &c.set_cookies);
                thread.record(&builtin::WS_CONNECTING, &tags, took.as_secs_f64() * 1000.0);
                thread.record(&builtin::WS_SESSIONS, &tags, 1.0);
                thread.record(&builtin::WS_FAILED, &tags, 0.0);
                state.open = true;
                state.status = i64::from(c.status);
                state.protocol = c.protocol.unwrap_or_default();
                state.opened = Some(Instant::now());
                Some(c.session)
            }
            Err(e) => {
                let failed = tags.with([(Str::from("error"), Str::from(e.kind.as_str()))]);
                thread.record(&builtin::WS_FAILED, &failed, 1.0);
                state.closed_here = true;
                state.status = e.kind.strip_prefix("status ").and_then(|s| s.parse().ok()).unwrap_or(0);
                state.error = e.kind;
                state.error_message = e.message;
                None
            }
        };
        Ok(WebSocket(Arc::new(Socket {
            session: tokio::sync::Mutex::new(session),
            state: Mutex::new(state),
            tags,
            url: url.to_string(),
            recv_timeout: timeout.min(DEFAULT_RECV),
        })))
    };
    go().map_err(|e| crate::script::at(ctx, e))
}

/// The error for sending on a socket that is not open.
fn not_open(socket: &Socket) -> Box<EvalAltResult> {
    let s = socket.state();
    let why = if s.status != 101 && !s.error.is_empty() {
        format!("it never opened ({}: {})", s.error, s.error_message)
    } else if s.closed_here {
        "the script closed it".to_string()
    } else if !s.error.is_empty() {
        format!("it was closed ({})", s.error_message)
    } else {
        "it is closed".to_string()
    };
    format!(
        "ws.send: the WebSocket to {} is not open: {why}; hint: check `ws.open` before sending, or reconnect with ws::connect",
        socket.url
    )
    .into()
}

pub(super) fn send_impl(ctx: &NativeCallContext, ws: &WebSocket, message: Dynamic) -> Result<bool, Box<EvalAltResult>> {
    let go = || {
        let socket = ws.0.clone();
        if !socket.state().open {
            return Err(not_open(&socket));
        }
        enum Out {
            Text(String),
            Binary(Vec<u8>),
        }
        let out = if message.is_string() {
            Out::Text(message.to_string())
        } else if message.is_blob() {
            Out::Binary(message.cast::<rhai::Blob>())
        } else if message.is_unit() || message.is_fnptr() {
            return Err(format!(
                "ws.send: cannot send {}; hint: send a string, a map (sent as JSON) or a blob",
                describe(&message)
            )
            .into());
        } else {
            Out::Text(
                serde_json::to_string(&message)
                    .map_err(|e| format!("ws.send: the message cannot be sent as JSON: {e}"))?,
            )
        };
        let len = match &out {
            Out::Text(t) => t.len(),
            Out::Binary(b) => b.len(),
        };
        let thread = context::thread()?;
        let s2 = socket.clone();
        let result = bridge::wait(async move {
            let mut guard = s2.session.lock().await;
            let Some(session) = guard.as_mut() else {
                return Err(WsError {
                    kind: "reset".into(),
                    message: "the connection is gone".into(),
                    close_code: None,
                });
            };
            match out {
                Out::Text(t) => session.send_text(t).await,
                Out::Binary(b) => session.send_binary(b).await,
            }
        })?;
        match result {
            Ok(()) => {
                socket.record(&thread, &builtin::WS_MSGS_SENT, 1.0);
                socket.record(&thread, &builtin::WS_BYTES_SENT, len as f64);
                Ok(true)
            }
            Err(e) => {
                socket.ended(&thread, Some(&e));
                Ok(false)
            }
        }
    };
    go().map_err(|e| crate::script::at(ctx, e))
}

pub(super) fn recv_impl(
    ctx: &NativeCallContext,
    ws: &WebSocket,
    timeout: Option<Dynamic>,
) -> Result<Dynamic, Box<EvalAltResult>> {
    let go = || {
        let socket = ws.0.clone();
        let timeout = match timeout {
            Some(t) => to_duration(&t, "ws.recv: timeout")?,
            None => socket.recv_timeout,
        };
        if !socket.state().open {
            return Ok(Dynamic::UNIT);
        }
        let thread = context::thread()?;
        let s2 = socket.clone();
        let result = bridge::wait(async move {
            let mut guard = s2.session.lock().await;
            match guard.as_mut() {
                Some(session) => session.recv(timeout).await,
                None => Ok(None),
            }
        })?;
        match result {
            Ok(Some(m)) => {
                socket.received(&thread, &m);
                Ok(match m {
                    Received::Text(t) => t.into(),
                    Received::Binary(b) => Dynamic::from_blob(b),
                })
            }
            Ok(None) => Ok(Dynamic::UNIT),
            Err(e) => {
                socket.ended(&thread, Some(&e));
                Ok(Dynamic::UNIT)
            }
        }
    };
    go().map_err(|e| crate::script::at(ctx, e))
}

pub(super) fn ping_impl(
    ctx: &NativeCallContext,
    ws: &WebSocket,
    timeout: Option<Dynamic>,
) -> Result<Dynamic, Box<EvalAltResult>> {
    let go = || {
        let socket = ws.0.clone();
        let timeout = match timeout {
            Some(t) => to_duration(&t, "ws.ping: timeout")?,
            None => socket.recv_timeout,
        };
        if !socket.state().open {
            return Err(not_open(&socket).to_string().replacen("ws.send", "ws.ping", 1).into());
        }
        let thread = context::thread()?;
        let s2 = socket.clone();
        let result = bridge::wait(async move {
            let mut guard = s2.session.lock().await;
            match guard.as_mut() {
                Some(session) => session.ping(timeout).await,
                None => Ok(None),
            }
        })?;
        match result {
            Ok(Some(rtt)) => {
                let ms = rtt.as_secs_f64() * 1000.0;
                socket.record(&thread, &builtin::WS_PING, ms);
                Ok(ms.into())
            }
            Ok(None) => {
                let tags = socket.tags.with([(Str::from("error"), Str::from("timeout"))]);
                thread.record(&builtin::WS_FAILED, &tags, 1.0);
                Ok(Dynamic::UNIT)
            }
            Err(e) => {
                socket.ended(&thread, Some(&e));
                Ok(Dynamic::UNIT)
            }
        }
    };
    go().map_err(|e| crate::script::at(ctx, e))
}

pub(super) fn close_impl(ctx: &NativeCallContext, ws: &WebSocket, code: i64) -> Result<(), Box<EvalAltResult>> {
    let go = || {
        if !(code == 1000 || (3000..=4999).contains(&code)) {
            return Err(format!(
                "ws.close: invalid close code {code}; hint: use 1000 (normal closure) or an application code from 3000 to 4999"
            )
            .into());
        }
        let socket = ws.0.clone();
        if !socket.state().open {
            return Ok(());
        }
        let thread = context::thread()?;
        let s2 = socket.clone();
        let drained = bridge::wait(async move {
            let mut guard = s2.session.lock().await;
            match guard.take() {
                Some(mut session) => session.close(code as u16, CLOSE_WAIT).await,
                None => Vec::new(),
            }
        })?;
        for m in &drained {
            socket.received(&thread, m);
        }
        socket.state().closed_here = true;
        socket.ended(&thread, None);
        socket.state().close_code = code;
        Ok(())
    };
    go().map_err(|e| crate::script::at(ctx, e))
}

/// The `ws` module.
#[export_module]
pub mod ws_api {
    use super::*;

    /// Opens a WebSocket (`ws://` or `wss://`); waits for the handshake. A failed
    /// connection is a closed socket with `ws.error` set (counted in `ws_failed`), not an
    /// error: check `ws.open`.
    /// ```rhai
    /// let ws = ws::connect("ws://127.0.0.1:8080/stream/ws");
    /// if ws.open { ws.close(); }
    /// ```
    #[rhai_fn(name = "connect", return_raw)]
    pub fn connect(ctx: NativeCallContext, url: &str) -> Result<WebSocket, Box<EvalAltResult>> {
        connect_impl(&ctx, url, &Map::new())
    }

    /// Opens a WebSocket with options: `headers`, `subprotocols` (a list), `timeout`
    /// (the handshake's, default the target's or 60 s; also the default of `recv()`
    /// up to 10 s), `name` (the `name` tag, default the path), `tags`, `insecure`. The
    /// VU's cookies for the URL are sent, and target settings (`http::target`) apply.
    /// ```rhai
    /// let ws = ws::connect("ws://127.0.0.1:8080/stream/ws",
    ///     #{ name: "feed", subprotocols: ["v1.feed"], headers: #{ "x-client": "volley" }, timeout: "5s" });
    /// ```
    #[rhai_fn(name = "connect", return_raw)]
    pub fn connect_with(ctx: NativeCallContext, url: &str, options: Map) -> Result<WebSocket, Box<EvalAltResult>> {
        connect_impl(&ctx, url, &options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_websocket_urls() {
        assert!(check_url("ws::connect", "ws://127.0.0.1:1/x", &["ws", "wss"]).is_ok());
        let e = check_url("ws::connect", "http://127.0.0.1:1/stream/ws", &["ws", "wss"]).unwrap_err();
        assert!(e.contains("unsupported scheme \"http\""), "{e}");
        assert!(e.contains("ws://127.0.0.1:1/stream/ws"), "{e}");
        assert!(check_url("ws::connect", "not a url", &["ws", "wss"]).unwrap_err().contains("invalid URL"));
    }

    #[test]
    fn options_are_checked_without_a_run() {
        let mut m = Map::new();
        m.insert("subprotocol".into(), Dynamic::from("x"));
        let e = check_connect(None, &m).unwrap_err();
        assert!(e.contains("unknown option `subprotocol`") && e.contains("did you mean `subprotocols`?"), "{e}");
        let mut m = Map::new();
        m.insert("subprotocols".into(), Dynamic::from(3_i64));
        assert!(check_connect(None, &m).unwrap_err().contains("a list of strings"));
    }

    #[test]
    fn stamps_give_a_latency() {
        let now = epoch_us();
        let text = format!("{{\"seq\":1,\"{SENT_AT}\":{}}}", now - 5_000.0);
        let ms = stamped_latency_ms(&text).unwrap();
        // At least the 5 ms stamped in the past; the bound only allows for a slow machine.
        assert!((4.0..60000.0).contains(&ms), "{ms}");
        assert_eq!(stamped_latency_ms("{\"seq\":1}"), None);
    }
}
