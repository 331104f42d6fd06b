//! `sse::*`: Server-Sent Events from scripts. `sse::open` returns an `EventSource`
//! whose `next(timeout)` waits for the next event like an HTTP call waits (through the
//! coroutine bridge). When the server ends or breaks the stream, the next `next`
//! reconnects after the `retry` delay with `Last-Event-ID`, as a browser's EventSource
//! does; every reconnection and failure is counted (`sse_*` metrics, failures by kind).

use super::bridge;
use super::context::{self, ThreadCtx};
use super::opts::{Opts, to_duration};
use super::ws::{check_url, cookies_for, keep_cookies, stamped_latency_ms};
use crate::metrics::{Metric, Str, Tags, builtin};
use crate::proto::sse::{self as client, EventStream, Opened, SseError};
use rhai::plugin::*;
use rhai::{Dynamic, EvalAltResult, Map, NativeCallContext};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `sse::open`'s options.
pub const OPEN_OPTIONS: &[&str] =
    &["headers", "timeout", "name", "tags", "insecure", "reconnect", "retry", "last_event_id"];
/// The reconnection delay until the server sends `retry:`.
pub const DEFAULT_RETRY: Duration = Duration::from_secs(1);
/// How long `next()` without an argument waits.
pub const DEFAULT_NEXT: Duration = Duration::from_secs(10);

/// What a script asked `sse::open` for, checked.
struct Spec {
    headers: Vec<(String, String)>,
    timeout: Option<Duration>,
    name: Option<String>,
    tags: Vec<(String, String)>,
    insecure: Option<bool>,
    reconnect: bool,
    retry: Duration,
    last_event_id: Option<String>,
}

impl Spec {
    fn read(options: &Map) -> Result<Spec, Box<EvalAltResult>> {
        let o = Opts::new(options, "sse::open", OPEN_OPTIONS)?;
        Ok(Spec {
            headers: o.string_pairs("headers")?,
            timeout: o.duration("timeout")?,
            name: o.string("name")?,
            tags: o.string_pairs("tags")?,
            insecure: o.bool("insecure")?,
            reconnect: o.bool("reconnect")?.unwrap_or(true),
            retry: o.duration("retry")?.unwrap_or(DEFAULT_RETRY),
            last_event_id: o.string("last_event_id")?,
        })
    }
}

/// Reads and checks `sse::open`'s URL and options without a run (for `volley check`).
pub fn check_open(url: Option<&str>, options: &Map) -> Result<(), String> {
    if let Some(url) = url {
        check_url("sse::open", url, &["http", "https"])?;
    }
    Spec::read(options).map(|_| ()).map_err(|e| super::signatures::runtime_text(&e.to_string()).to_string())
}

#[derive(Default)]
struct State {
    /// No more events: closed by the script, 204 from the server, or a failure with
    /// reconnection off.
    finished: bool,
    connected_once: bool,
    status: i64,
    error: String,
    error_message: String,
    last_event_id: Option<String>,
    retry: Duration,
    reconnect_at: Option<Instant>,
    reconnects: i64,
    last_event: Option<Instant>,
}

/// One event source, shared by the script values that refer to it.
pub struct Source {
    stream: tokio::sync::Mutex<Option<EventStream>>,
    state: Mutex<State>,
    tags: Tags,
    url: url::Url,
    headers: Vec<(String, String)>,
    timeout: Duration,
    insecure: bool,
    reconnect: bool,
}

/// An SSE stream as scripts hold it (`let s = sse::open(...)`).
#[derive(Clone)]
pub struct EventSource(Arc<Source>);

impl Source {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn record(&self, thread: &ThreadCtx, metric: &Metric, value: f64) {
        thread.record(metric, &self.tags, value);
    }

    fn failed(&self, thread: &ThreadCtx, e: &SseError) {
        let tags = self.tags.with([(Str::from("error"), Str::from(e.kind.as_str()))]);
        thread.record(&builtin::SSE_FAILED, &tags, 1.0);
        let mut s = self.state();
        s.error = e.kind.clone();
        s.error_message = e.message.clone();
        if self.reconnect {
            s.reconnect_at = Some(Instant::now() + s.retry);
        } else {
            s.finished = true;
        }
    }

    /// Opens (or reopens) the stream; false when there is nothing to read (yet).
    fn connect(self: &Arc<Self>, thread: &ThreadCtx, deadline: Instant) -> Result<bool, Box<EvalAltResult>> {
        let (reconnect_at, last_id, again) = {
            let s = self.state();
            (s.reconnect_at, s.last_event_id.clone(), s.connected_once)
        };
        if let Some(at) = reconnect_at {
            let until = at.min(deadline);
            let now = Instant::now();
            if until > now {
                let pause = until - now;
                // Built inside the future: a timer needs the runtime that polls it.
                bridge::wait(async move { tokio::time::sleep(pause).await })?;
            }
            if at > deadline {
                return Ok(false);
            }
        }
        let client = thread.http.get(self.insecure).clone();
        let (url, headers, timeout) = (self.url.to_string(), self.headers.clone(), self.timeout);
        let mut headers = headers;
        if let Some(c) = cookies_for(&self.url)? {
            headers.push(("cookie".into(), c));
        }
        let started = Instant::now();
        let opened =
            bridge::wait(async move { client::open(&client, &url, &headers, last_id.as_deref(), timeout).await })?;
        let took = started.elapsed();
        self.state().reconnect_at = None;
        match opened {
            Ok(Opened::Stream(stream, set_cookies)) => {
                keep_cookies(&self.url, &set_cookies);
                self.record(thread, &builtin::SSE_CONNECTING, took.as_secs_f64() * 1000.0);
                self.record(thread, &builtin::SSE_SESSIONS, 1.0);
                self.record(thread, &builtin::SSE_FAILED, 0.0);
                if again {
                    self.record(thread, &builtin::SSE_RECONNECTS, 1.0);
                }
                {
                    let mut s = self.state();
                    s.connected_once = true;
                    s.status = 200;
                    s.reconnects += i64::from(again);
                }
                let me = self.clone();
                bridge::wait(async move { *me.stream.lock().await = Some(stream) })?;
                Ok(true)
            }
            Ok(Opened::NoContent) => {
                let mut s = self.state();
                s.status = 204;
                s.finished = true;
                Ok(false)
            }
            Err(e) => {
                self.state().status = e.kind.strip_prefix("status ").and_then(|s| s.parse().ok()).unwrap_or(0);
                self.failed(thread, &e);
                Ok(false)
            }
        }
    }
}

fn open_impl(ctx: &NativeCallContext, url: &str, options: &Map) -> Result<EventSource, Box<EvalAltResult>> {
    let go = || {
        let parsed = check_url("sse::open", url, &["http", "https"])?;
        let spec = Spec::read(options)?;
        let thread = context::thread()?;
        let target = thread.shared.http.resolve(parsed.as_str());
        let mut headers = target.headers.clone();
        headers.extend(spec.headers);
        let name = spec.name.unwrap_or_else(|| super::http_exec::default_name(&parsed));
        let mut extra: Vec<(Str, Str)> = vec![("name".into(), name.as_str().into())];
        extra.extend(spec.tags.iter().map(|(k, v)| (k.as_str().into(), v.as_str().into())));
        let source = Arc::new(Source {
            stream: tokio::sync::Mutex::new(None),
            state: Mutex::new(State { retry: spec.retry, last_event_id: spec.last_event_id, ..State::default() }),
            tags: context::vu_tags(extra)?,
            url: parsed,
            headers,
            timeout: spec.timeout.or(target.timeout).unwrap_or(super::ws::DEFAULT_TIMEOUT),
            insecure: spec.insecure.or(target.insecure).unwrap_or(false),
            reconnect: spec.reconnect,
        });
        let deadline = Instant::now() + source.timeout;
        source.connect(&thread, deadline)?;
        Ok(EventSource(source))
    };
    go().map_err(|e| crate::script::at(ctx, e))
}

fn epoch_ms() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

fn next_impl(
    ctx: &NativeCallContext,
    es: &EventSource,
    timeout: Option<Dynamic>,
) -> Result<Dynamic, Box<EvalAltResult>> {
    let go = || {
        let timeout = match timeout {
            Some(t) => to_duration(&t, "sse.next: timeout")?,
            None => DEFAULT_NEXT,
        };
        let source = es.0.clone();
        let thread = context::thread()?;
        let deadline = Instant::now() + timeout;
        loop {
            if source.state().finished {
                return Ok(Dynamic::UNIT);
            }
            let me = source.clone();
            let has_stream = bridge::wait(async move { me.stream.lock().await.is_some() })?;
            if !has_stream && !source.connect(&thread, deadline)? {
                if Instant::now() >= deadline {
                    return Ok(Dynamic::UNIT);
                }
                continue;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let me = source.clone();
            let read = bridge::wait(async move {
                let mut guard = me.stream.lock().await;
                let Some(stream) = guard.as_mut() else { return Ok(Ok(None)) };
                let out = tokio::time::timeout(left, stream.next()).await;
                if matches!(out, Ok(Ok(None)) | Ok(Err(_))) {
                    *guard = None;
                }
                out
            })?;
            let event = match read {
                Err(_) => return Ok(Dynamic::UNIT),
                Ok(Ok(Some(e))) => e,
                Ok(Ok(None)) => {
                    let e = SseError { kind: "closed".into(), message: "the server ended the stream".into() };
                    source.failed(&thread, &e);
                    continue;
                }
                Ok(Err(e)) => {
                    source.failed(&thread, &e);
                    continue;
                }
            };
            let now = Instant::now();
            let (id, previous) = {
                let mut s = source.state();
                if let Some(id) = &event.id {
                    s.last_event_id = Some(id.clone());
                }
                if let Some(ms) = event.retry {
                    s.retry = Duration::from_millis(ms);
                }
                if event.data.is_none() {
                    continue;
                }
                (s.last_event_id.clone(), s.last_event.replace(now))
            };
            let data = event.data.unwrap_or_default();
            source.record(&thread, &builtin::SSE_EVENTS, 1.0);
            source.record(&thread, &builtin::SSE_BYTES_RECEIVED, data.len() as f64);
            if let Some(previous) = previous {
                source.record(&thread, &builtin::SSE_EVENT_GAP, (now - previous).as_secs_f64() * 1000.0);
            }
            if let Some(ms) = stamped_latency_ms(&data) {
                source.record(&thread, &builtin::SSE_EVENT_LATENCY, ms);
            }
            let mut out = Map::new();
            out.insert("event".into(), event.event.unwrap_or_else(|| "message".into()).into());
            out.insert("data".into(), data.into());
            out.insert("id".into(), id.map_or(Dynamic::UNIT, Dynamic::from));
            out.insert("retry".into(), event.retry.map_or(Dynamic::UNIT, |r| Dynamic::from_int(r as i64)));
            out.insert("received_ms".into(), epoch_ms().into());
            return Ok(out.into());
        }
    };
    go().map_err(|e| crate::script::at(ctx, e))
}

/// The `sse` module.
#[export_module]
pub mod sse_api {
    use super::*;

    /// Opens an SSE stream (`GET` with `Accept: text/event-stream`) and waits for the
    /// response head. A failure is counted (`sse_failed`) and retried by `next`.
    /// ```rhai
    /// let s = sse::open("http://127.0.0.1:8080/stream/sse");
    /// ```
    #[rhai_fn(name = "open", return_raw)]
    pub fn open(ctx: NativeCallContext, url: &str) -> Result<EventSource, Box<EvalAltResult>> {
        open_impl(&ctx, url, &Map::new())
    }

    /// Opens an SSE stream with options: `headers`, `timeout` (connecting), `name`,
    /// `tags`, `insecure`, `reconnect` (default true), `retry` (the delay before a
    /// reconnection until the server sends one, default 1 s), `last_event_id` (resume
    /// after this id).
    /// ```rhai
    /// let s = sse::open("http://127.0.0.1:8080/stream/sse?rate=10", #{ name: "ticks", retry: "200ms" });
    /// ```
    #[rhai_fn(name = "open", return_raw)]
    pub fn open_with(ctx: NativeCallContext, url: &str, options: Map) -> Result<EventSource, Box<EvalAltResult>> {
        open_impl(&ctx, url, &options)
    }
}

/// Methods and properties of `EventSource`.
#[export_module]
pub mod stream_api {
    use super::*;

    /// The next event as `#{ event, data, id, retry, received_ms }` (`received_ms`:
    /// milliseconds since the Unix epoch), or `()` when none came within `timeout` or
    /// the stream is finished. Reconnects (with `Last-Event-ID`) when the server ended
    /// the stream.
    /// ```rhai
    /// let e = s.next("2s");
    /// if e != () { print(`${e.id}: ${e.data}`); }
    /// ```
    #[rhai_fn(name = "next", return_raw)]
    pub fn next(ctx: NativeCallContext, s: &mut EventSource, timeout: Dynamic) -> Result<Dynamic, Box<EvalAltResult>> {
        next_impl(&ctx, s, Some(timeout))
    }

    /// The next event, waiting at most 10 s.
    /// ```rhai
    /// let e = s.next();
    /// ```
    #[rhai_fn(name = "next", return_raw)]
    pub fn next_default(ctx: NativeCallContext, s: &mut EventSource) -> Result<Dynamic, Box<EvalAltResult>> {
        next_impl(&ctx, s, None)
    }

    /// Closes the stream; `next` returns `()` from then on.
    /// ```rhai
    /// s.close();
    /// ```
    #[rhai_fn(name = "close", return_raw)]
    pub fn close(s: &mut EventSource) -> Result<(), Box<EvalAltResult>> {
        s.0.state().finished = true;
        let me = s.0.clone();
        bridge::wait(async move { me.stream.lock().await.take() })?;
        Ok(())
    }

    /// Whether events may still come (false after `close()`, a 204 from the server, or
    /// a failure with `reconnect: false`).
    /// ```rhai
    /// while s.open { let e = s.next("1s"); }
    /// ```
    #[rhai_fn(get = "open", pure)]
    pub fn open(s: &mut EventSource) -> bool {
        !s.0.state().finished
    }

    /// The last response's status (200, 204, or the refusing status; 0 when no answer).
    /// ```rhai
    /// check(s, "streaming", s.status == 200);
    /// ```
    #[rhai_fn(get = "status", pure)]
    pub fn status(s: &mut EventSource) -> i64 {
        s.0.state().status
    }

    /// The kind of the last failure (`refused`, `status 503`, `closed`, `reset`, ...),
    /// `""` if none.
    /// ```rhai
    /// print(s.error);
    /// ```
    #[rhai_fn(get = "error", pure)]
    pub fn error(s: &mut EventSource) -> String {
        s.0.state().error.clone()
    }

    /// The last failure in full, `""` if none.
    /// ```rhai
    /// print(s.error_message);
    /// ```
    #[rhai_fn(get = "error_message", pure)]
    pub fn error_message(s: &mut EventSource) -> String {
        s.0.state().error_message.clone()
    }

    /// How many times the stream was reopened after the server ended it.
    /// ```rhai
    /// print(`${s.reconnects} reconnections`);
    /// ```
    #[rhai_fn(get = "reconnects", pure)]
    pub fn reconnects(s: &mut EventSource) -> i64 {
        s.0.state().reconnects
    }

    /// The id of the last event (sent as `Last-Event-ID` on reconnection), `()` if none.
    /// ```rhai
    /// print(s.last_event_id);
    /// ```
    #[rhai_fn(get = "last_event_id", pure)]
    pub fn last_event_id(s: &mut EventSource) -> Dynamic {
        s.0.state().last_event_id.clone().map_or(Dynamic::UNIT, Dynamic::from)
    }
}
