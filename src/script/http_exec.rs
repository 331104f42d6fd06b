//! Sending HTTP requests for scripts: per-thread reqwest clients, per-target settings,
//! the request future, error classification, cookies and the samples each call records.

use super::bridge;
use super::context::{self, ThreadCtx};
use super::response::Response;
use crate::metrics::{Str, Tags, builtin};
use crate::proto::http::Body;
use rhai::{EvalAltResult, ImmutableString};
use std::rc::Rc;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

/// The default request timeout (k6's).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Settings for requests to one target (or all, as defaults).
#[derive(Debug, Clone, Default)]
pub struct TargetOptions {
    /// Skip TLS certificate verification.
    pub insecure: Option<bool>,
    /// Request timeout.
    pub timeout: Option<Duration>,
    /// Headers added to every request (a call's own headers win).
    pub headers: Vec<(String, String)>,
    /// Response body bytes kept for the script (the rest is counted, not kept).
    pub max_body: Option<usize>,
    /// Keep no response body at all (k6's `discardResponseBodies`).
    pub discard_body: Option<bool>,
}

/// Response body bytes kept by default: larger bodies are counted in `data_received`
/// and cut, with `r.truncated` set.
pub const DEFAULT_MAX_BODY: usize = 10 * 1024 * 1024;

/// Run-wide HTTP settings: defaults, and per-target ones keyed by URL prefix.
///
/// Set rarely (`http::defaults`, `http::target`) and read on every request, by every
/// worker: a reader takes no lock. Each thread keeps its own copy of the table and
/// fetches it again only when `version` says it changed (one load of a line nobody
/// writes meanwhile, where a shared `RwLock`'s read side writes its count on every
/// request, moving that line between cores).
#[derive(Debug)]
pub struct HttpSettings {
    /// Tells apart the settings of runs in one process (a thread's copy names its own).
    id: u64,
    /// The defaults, and each target's options by prefix, longest first.
    table: RwLock<Arc<SettingsTable>>,
    /// Bumped after each change; 0 while nothing was set (most runs): no table to read.
    version: std::sync::atomic::AtomicU64,
}

type SettingsTable = (TargetOptions, Vec<(String, TargetOptions)>);

impl Default for HttpSettings {
    fn default() -> Self {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        HttpSettings {
            id: NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            table: RwLock::default(),
            version: std::sync::atomic::AtomicU64::new(0),
        }
    }
}

thread_local! {
    /// This thread's copy of one run's settings: (settings id, version, table).
    static SETTINGS: std::cell::RefCell<Option<(u64, u64, Arc<SettingsTable>)>> =
        const { std::cell::RefCell::new(None) };
}

impl HttpSettings {
    /// Replaces the defaults.
    pub fn set_defaults(&self, opts: TargetOptions) {
        self.change(|table| table.0 = opts);
    }

    /// Sets the options of one target (URL prefix); the longest matching prefix wins.
    pub fn set_target(&self, prefix: String, opts: TargetOptions) {
        self.change(|table| {
            table.1.retain(|(p, _)| *p != prefix);
            table.1.push((prefix, opts));
            table.1.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        });
    }

    /// Changes a new copy of the table, then publishes its version: a reader that sees
    /// the new version finds the new table (or a newer one).
    fn change(&self, edit: impl FnOnce(&mut SettingsTable)) {
        let mut table = self.table.write().unwrap_or_else(|e| e.into_inner());
        let mut next = SettingsTable::clone(&table);
        edit(&mut next);
        *table = Arc::new(next);
        self.version.fetch_add(1, std::sync::atomic::Ordering::Release);
    }

    /// The effective options for a URL: the target's over the defaults.
    pub fn resolve(&self, url: &str) -> TargetOptions {
        let version = self.version.load(std::sync::atomic::Ordering::Acquire);
        if version == 0 {
            return TargetOptions::default();
        }
        SETTINGS.with(|copy| {
            let mut copy = copy.borrow_mut();
            let table = match &mut *copy {
                Some((id, v, table)) if *id == self.id && *v == version => table,
                stale => {
                    let table = self.table.read().unwrap_or_else(|e| e.into_inner()).clone();
                    &stale.insert((self.id, version, table)).2
                }
            };
            let mut out = table.0.clone();
            if let Some((_, t)) = table.1.iter().find(|(p, _)| url.starts_with(p.as_str())) {
                out.insecure = t.insecure.or(out.insecure);
                out.timeout = t.timeout.or(out.timeout);
                out.max_body = t.max_body.or(out.max_body);
                out.discard_body = t.discard_body.or(out.discard_body);
                out.headers.extend(t.headers.iter().cloned());
            }
            out
        })
    }
}

/// One thread's HTTP clients: verifying, and (built on first use) not verifying TLS.
pub struct HttpClients {
    secure: OnceLock<reqwest::Client>,
    insecure: OnceLock<reqwest::Client>,
}

fn build_client(insecure: bool) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let builder = reqwest::Client::builder()
        .tcp_nodelay(true)
        .user_agent(USER_AGENT)
        .pool_idle_timeout(Duration::from_secs(90))
        .redirect(reqwest::redirect::Policy::limited(10))
        .tls_danger_accept_invalid_certs(insecure);
    // Building only fails when the TLS backend cannot initialise; fall back to a client
    // without our tuning rather than aborting the run.
    builder.build().unwrap_or_else(|_| reqwest::Client::new())
}

impl HttpClients {
    /// Clients for one thread.
    pub fn new() -> HttpClients {
        HttpClients { secure: OnceLock::new(), insecure: OnceLock::new() }
    }

    /// The client (built on first use: loading the system's root certificates costs
    /// ~1.5M instructions per thread, and plain-http runs never need it).
    pub(crate) fn get(&self, insecure: bool) -> &reqwest::Client {
        if insecure {
            self.insecure.get_or_init(|| build_client(true))
        } else {
            self.secure.get_or_init(|| build_client(false))
        }
    }
}

impl Default for HttpClients {
    fn default() -> Self {
        HttpClients::new()
    }
}

/// A request prepared by `http::*`.
pub struct Prepared {
    /// Method.
    pub method: reqwest::Method,
    /// Full URL.
    pub url: url::Url,
    /// Headers (without Cookie and Host, added when sending).
    pub headers: reqwest::header::HeaderMap,
    /// Body bytes (empty = none).
    pub body: bytes::Bytes,
    /// Timeout of the whole exchange.
    pub timeout: Duration,
    /// Use the non-verifying client.
    pub insecure: bool,
    /// The `name` tag.
    pub name: ImmutableString,
    /// Extra tags from the call.
    pub tags: Vec<(Str, Str)>,
    /// Statuses that count as success; empty = 200-399.
    pub expect: Vec<i64>,
    /// Approximate bytes on the wire for the request.
    pub bytes_sent: u64,
    /// Response body bytes to keep (0 with `discard_body`).
    pub keep_body: usize,
}

/// What came back from the network.
struct Outcome {
    status: u16,
    /// Headers as received.
    headers: crate::proto::http::Headers,
    /// Set-Cookie values, for the VU's jar.
    set_cookies: Vec<String>,
    body: ImmutableString,
    /// Body bytes received, kept or not.
    body_size: u64,
    /// Whether body bytes were received and not kept.
    truncated: bool,
    error: Option<(&'static str, String)>,
    duration: Duration,
    bytes_received: u64,
    /// The URL answered (its Rhai string, made once: `url.to_string()` went through the
    /// formatter on every request).
    url: ImmutableString,
}

/// Classifies a network error into the kinds reports count.
pub fn classify(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        return "timeout";
    }
    if let Some(kind) = crate::proto::http::network_kind(e) {
        return kind;
    }
    // Neither the resolver's failure nor a certificate rejected by the TLS connector
    // reaches us as a type we can name (both are boxed inside io errors); their
    // messages are stable: read the Display chain, never a Debug dump.
    let chain = error_chain(e).to_ascii_lowercase();
    if e.is_connect() && chain.contains("dns error") {
        "dns"
    } else if chain.contains("certificate") || chain.contains("tls") || chain.contains("handshake") {
        "tls"
    } else if e.is_connect() {
        "connect"
    } else {
        "other"
    }
}

fn error_chain(e: &reqwest::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

/// From a response head: the Set-Cookie values (for the VU's jar) and the approximate
/// size on the wire.
fn read_head(headers: &crate::proto::http::Headers) -> (Vec<String>, u64) {
    let set_cookies = headers.set_cookies().map(super::response::header_text).collect();
    (set_cookies, 17 + headers.size())
}

/// The body as text, with at most one copy (valid UTF-8, the usual case, is taken as is).
fn body_text(body: bytes::Bytes) -> ImmutableString {
    match String::from_utf8(Vec::from(body)) {
        Ok(text) => text.into(),
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned().into(),
    }
}

fn failed(kind: &'static str, message: String, duration: Duration, url: ImmutableString) -> Outcome {
    // Clients' messages quote the URL, user info and all.
    let message = match crate::secret::redact_text(&message) {
        std::borrow::Cow::Borrowed(_) => message,
        std::borrow::Cow::Owned(shown) => shown,
    };
    Outcome {
        status: 0,
        headers: Default::default(),
        set_cookies: Vec::new(),
        body: ImmutableString::new(),
        body_size: 0,
        truncated: false,
        error: Some((kind, message)),
        duration,
        bytes_received: 0,
        url,
    }
}

/// Reads a reqwest body to its end, keeping at most `keep` bytes.
async fn read_reqwest_body(response: &mut reqwest::Response, keep: usize) -> reqwest::Result<Body> {
    let mut kept: Vec<u8> = Vec::new();
    let mut size: u64 = 0;
    while let Some(chunk) = response.chunk().await? {
        size += chunk.len() as u64;
        let room = keep.saturating_sub(kept.len());
        kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
    }
    Ok(Body { kept: kept.into(), size })
}

/// Sends through reqwest (https, redirects).
async fn send(client: reqwest::Client, request: reqwest::Request, keep_body: usize) -> Outcome {
    let url = ImmutableString::from(request.url().as_str());
    let start = Instant::now();
    let response = match client.execute(request).await {
        Ok(r) => r,
        Err(e) => return failed(classify(&e), error_chain(&e), start.elapsed(), url),
    };
    let status = response.status().as_u16();
    let headers = crate::proto::http::Headers::from(response.headers().clone());
    let (set_cookies, header_bytes) = read_head(&headers);
    let url = ImmutableString::from(response.url().as_str());
    let mut response = response;
    match read_reqwest_body(&mut response, keep_body).await {
        Ok(body) => Outcome {
            status,
            bytes_received: header_bytes + body.size,
            headers,
            set_cookies,
            body_size: body.size,
            truncated: body.truncated(),
            body: body_text(body.kept),
            error: None,
            duration: start.elapsed(),
            url,
        },
        // The status line arrived but the body did not: a failed request.
        Err(e) => {
            Outcome { bytes_received: header_bytes, ..failed(classify(&e), error_chain(&e), start.elapsed(), url) }
        }
    }
}

fn is_redirect(status: u16) -> bool {
    matches!(status, 301 | 302 | 303 | 307 | 308)
}

/// Sends through reqwest for the calling VU. Never inlined: reqwest's future is large,
/// and built on the VU's stack it would widen `execute`'s frame for every request.
#[inline(never)]
fn send_slow(
    client: reqwest::Client,
    request: reqwest::Request,
    keep_body: usize,
) -> Result<Outcome, Box<EvalAltResult>> {
    bridge::wait(send(client, request, keep_body))
}

/// Sends on the VU's own HTTP/1.1 connection (plain http). Never inlined, like
/// [`send_slow`]: each VU's stack stays as shallow as the path it takes.
#[inline(never)]
fn send_fast(
    thread: &ThreadCtx,
    prepared: &Prepared,
    cookie: Option<&reqwest::header::HeaderValue>,
) -> Result<Outcome, Box<EvalAltResult>> {
    let url = &prepared.url;
    let host = url.host_str().unwrap_or("127.0.0.1");
    let port = url.port_or_known_default().unwrap_or(80);
    let target = &url[url::Position::BeforePath..url::Position::AfterQuery];
    let host_header = reqwest::header::HeaderValue::from_str(&url[url::Position::BeforeHost..url::Position::AfterPort])
        .map_err(|e| format!("invalid host in URL {url}: {e}"))?;
    let agent = reqwest::header::HeaderValue::from_static(USER_AGENT);
    let no_cookie = reqwest::header::HeaderValue::from_static("");
    let defaults = [
        (reqwest::header::HOST, &host_header),
        (reqwest::header::USER_AGENT, &agent),
        (reqwest::header::COOKIE, cookie.unwrap_or(&no_cookie)),
    ];
    // Without a cookie, only Host and User-Agent (no allocation per request).
    let defaults = if cookie.is_some() { &defaults[..] } else { &defaults[..2] };
    let request =
        crate::proto::http::Request::new(&prepared.method, target, &prepared.headers, defaults, prepared.body.clone());
    let (host, reused) = take_conn(host, port);
    let (dial_host, timeout, keep_body) = (host.clone(), prepared.timeout, prepared.keep_body);
    let together = thread.busy.running() > 1;
    let exchange = bridge::wait_for(move || {
        crate::proto::http::exchange(together, reused, dial_host, port, request, timeout, keep_body)
    })?;
    if let Some(conn) = exchange.conn {
        keep_conn(host, port, conn);
    }
    Ok(match exchange.result {
        Ok((parts, body)) => {
            let (set_cookies, header_bytes) = read_head(&parts.headers);
            let headers = parts.headers;
            Outcome {
                status: parts.status.as_u16(),
                bytes_received: header_bytes + body.size,
                headers,
                set_cookies,
                body_size: body.size,
                truncated: body.truncated(),
                body: body_text(body.kept),
                error: None,
                duration: exchange.duration,
                url: url.as_str().into(),
            }
        }
        Err((kind, message)) => failed(kind, message, exchange.duration, url.as_str().into()),
    })
}

const USER_AGENT: &str = concat!("volley/", env!("CARGO_PKG_VERSION"));

/// Sends a prepared request for the calling VU (suspending it) and records its samples.
pub fn execute(thread: &ThreadCtx, prepared: Prepared) -> Result<Response, Box<EvalAltResult>> {
    // This frame stays on the VU's stack while the request is out: it holds little,
    // and the work before and after the exchange happens in frames of their own.
    let cookie = request_cookie(&prepared.url)?;
    let fast = if prepared.url.scheme() == "http" && crate::proto::http::Request::supports(&prepared.headers) {
        Some(send_fast(thread, &prepared, cookie.as_ref())?)
    } else {
        None
    };
    complete(thread, prepared, cookie, fast)
}

/// The VU's cookies for a URL, as a Cookie header (a login cookie is reused across
/// iterations).
#[inline(never)]
fn request_cookie(url: &url::Url) -> Result<Option<reqwest::header::HeaderValue>, Box<EvalAltResult>> {
    let cookie = context::with_vu(|vu| {
        let jar = vu.cookies.borrow();
        let Some(jar) = jar.as_deref() else { return String::new() };
        let pairs: Vec<String> = jar.get_request_values(url).map(|(n, v)| format!("{n}={v}")).collect();
        pairs.join("; ")
    })?;
    Ok(if cookie.is_empty() { None } else { reqwest::header::HeaderValue::from_str(&cookie).ok() })
}

/// Finishes a request: through reqwest when the fast path did not answer it (https, a
/// redirect), then the VU's cookies, the samples and the script's response.
#[inline(never)]
fn complete(
    thread: &ThreadCtx,
    prepared: Prepared,
    cookie: Option<reqwest::header::HeaderValue>,
    fast: Option<Outcome>,
) -> Result<Response, Box<EvalAltResult>> {
    let Prepared { method, url, mut headers, body, timeout, insecure, name, tags, expect, bytes_sent, keep_body } =
        prepared;
    let mut hop: Option<Outcome> = None;
    let outcome = match fast {
        Some(o) if o.error.is_some() || !is_redirect(o.status) => o,
        first => {
            // https, or a redirect answered on the fast path: reqwest (TLS, redirect
            // policy), continuing from the Location so the server sees no repeat.
            let (mut method, mut url, mut body) = (method.clone(), url.clone(), body.clone());
            if let Some(o) = first {
                let location = o.headers.get("location").map(super::response::header_text).unwrap_or_default();
                url = url.join(&location).map_err(|e| format!("redirect to an invalid Location {location:?}: {e}"))?;
                if matches!(o.status, 301..=303) && method != reqwest::Method::HEAD {
                    method = reqwest::Method::GET;
                    body = bytes::Bytes::new();
                    headers.remove(reqwest::header::CONTENT_TYPE);
                }
                hop = Some(o);
            }
            if let Some(c) = cookie {
                headers.entry(reqwest::header::COOKIE).or_insert(c);
            }
            let mut request = reqwest::Request::new(method, url);
            *request.headers_mut() = headers;
            *request.timeout_mut() = Some(timeout);
            if !body.is_empty() {
                *request.body_mut() = Some(body.into());
            }
            send_slow(thread.http.get(insecure).clone(), request, keep_body)?
        }
    };
    if !outcome.set_cookies.is_empty() {
        context::with_vu(|vu| {
            let mut jar = vu.cookies.borrow_mut();
            let jar = jar.get_or_insert_with(Box::default);
            for v in &outcome.set_cookies {
                let _ = jar.parse(v, &url);
            }
        })?;
    }

    let ok = outcome.error.is_none()
        && if expect.is_empty() {
            (200..400).contains(&outcome.status)
        } else {
            expect.contains(&(outcome.status as i64))
        };
    let error_kind = outcome.error.as_ref().map(|(kind, _)| *kind);
    let (tags, name) = if tags.is_empty() {
        request_tags(thread, &method, name, outcome.status, error_kind)?
    } else {
        let tags = tagged(thread, &method, &name, outcome.status, error_kind, tags)?;
        (tags, name)
    };
    let duration_ms = outcome.duration.as_secs_f64() * 1000.0;
    if let Some(h) = &hop {
        // The redirect answered on the fast path is a request of its own on the wire.
        let hop_tags = tags.with([(Str::from("status"), Str::from(h.status.to_string().as_str()))]);
        thread.record(&builtin::HTTP_REQS, &hop_tags, 1.0);
        thread.record(&builtin::HTTP_REQ_DURATION, &hop_tags, h.duration.as_secs_f64() * 1000.0);
        thread.record(&builtin::DATA_RECEIVED, &hop_tags, h.bytes_received as f64);
    }
    let samples: [(&crate::metrics::Metric, f64); 5] = [
        (&builtin::HTTP_REQS, 1.0),
        (&builtin::HTTP_REQ_DURATION, duration_ms),
        (&builtin::DATA_SENT, bytes_sent as f64),
        (&builtin::DATA_RECEIVED, outcome.bytes_received as f64),
        (&builtin::HTTP_REQ_FAILED, if ok { 0.0 } else { 1.0 }),
    ];
    // Inside `retry(...)` the outcome (`http_req_failed`) waits for the retry's verdict.
    if defer_outcome(&tags, !ok)? {
        thread.record_all(&tags, &samples[..4]);
    } else {
        thread.record_all(&tags, &samples);
    }

    let (error, error_message) = outcome.error.map(|(k, m)| (k.into(), m.into())).unwrap_or_default();
    Ok(Response {
        status: outcome.status as i64,
        ok,
        headers: outcome.headers,
        truncated: outcome.truncated,
        body_size: outcome.body_size as i64,
        body: outcome.body,
        duration_ms,
        error,
        error_message,
        url: outcome.url,
        name,
    })
}

/// The tags of a request's samples: the VU's, then method, name, status and error kind,
/// then the call's own `tags`.
fn tagged(
    thread: &ThreadCtx,
    method: &reqwest::Method,
    name: &str,
    status: u16,
    error: Option<&'static str>,
    extra_tags: Vec<(Str, Str)>,
) -> Result<Tags, Box<EvalAltResult>> {
    let mut extra: Vec<(Str, Str)> = vec![
        ("method".into(), method.as_str().into()),
        ("name".into(), thread.name_tag("http", name)),
        ("status".into(), status.to_string().into()),
    ];
    if let Some(kind) = error {
        extra.push(("error".into(), kind.into()));
    }
    extra.extend(extra_tags);
    context::vu_tags(extra)
}

/// What a request's tags are built from, when the call has no `tags` of its own.
#[derive(Hash, PartialEq, Eq)]
struct TagKey {
    run: usize,
    vu_tags: usize,
    method: reqwest::Method,
    name: ImmutableString,
    status: u16,
    error: Option<&'static str>,
}

thread_local! {
    /// Tag sets of recent requests: a VU looping over a few endpoints gets the same
    /// few tag sets, without building (sorting, allocating) one per request.
    static REQUEST_TAGS: std::cell::RefCell<rustc_hash::FxHashMap<TagKey, (Tags, Tags)>> =
        std::cell::RefCell::default();
}

/// [`tagged`] for a call without `tags`, from the thread's cache; gives `name` back.
fn request_tags(
    thread: &ThreadCtx,
    method: &reqwest::Method,
    name: ImmutableString,
    status: u16,
    error: Option<&'static str>,
) -> Result<(Tags, ImmutableString), Box<EvalAltResult>> {
    // The VU's tags are borrowed for the lookup and cloned only to fill the cache: they
    // are shared by every VU of the phase on every worker, so counting a reference per
    // request moved their line between cores.
    let (key, found) = context::with_vu(|vu| {
        let vu_tags = vu.tags.borrow();
        let key = TagKey {
            run: Arc::as_ptr(&thread.shared) as usize,
            vu_tags: vu_tags.id(),
            method: method.clone(),
            name,
            status,
            error,
        };
        // The entry keeps the VU's tag set alive, so its address cannot be reused by another.
        let hit = REQUEST_TAGS.with(|c| c.borrow().get(&key).filter(|(v, _)| v.same(&vu_tags)).map(|(_, t)| t.clone()));
        // The request's tags, or (missed) the VU's, to build them from.
        (key, hit.ok_or_else(|| vu_tags.clone()))
    })?;
    let vu_tags = match found {
        Ok(tags) => return Ok((tags, key.name)),
        Err(vu_tags) => vu_tags,
    };
    let tags = tagged(thread, method, &key.name, status, error, Vec::new())?;
    REQUEST_TAGS.with(|c| {
        let mut cache = c.borrow_mut();
        if cache.len() >= 4096 {
            cache.clear();
        }
        let name = key.name.clone();
        cache.insert(key, (vu_tags, tags.clone()));
        Ok((tags, name))
    })
}

/// Keeps a logical request's outcome for the verdict of the `retry(...)` it runs in;
/// false outside a retry (the caller records it now).
fn defer_outcome(tags: &Tags, failed: bool) -> Result<bool, Box<EvalAltResult>> {
    context::with_vu(|vu| {
        let deferred = vu.retry_depth.get() > 0;
        if deferred {
            vu.pending_outcomes.borrow_mut().push((tags.clone(), failed));
        }
        deferred
    })
}

/// The default `name` tag of a URL: its path, with id-like segments replaced by `{id}`
/// so one endpoint is one row, not thousands. See [`is_id_like`].
pub fn default_name(url: &url::Url) -> String {
    let segments: Vec<&str> = url.path().split('/').map(|s| if is_id_like(s) { "{id}" } else { s }).collect();
    segments.join("/")
}

/// Whether a path segment looks like an identifier rather than a resource name:
/// a number (`123`), a UUID or long hex (`3f2a9c1e`, 8+ hex characters with a digit),
/// a token mixing letters and 3+ digits (`tok123x`, `a1b2c3`), or a long base64-like
/// token with a digit (`dGVzdDEyMw`, 16+ characters). `v2`, `oauth2`, `sha1`, `users`
/// and `live_metadata` stay as they are.
pub fn is_id_like(s: &str) -> bool {
    if s.is_empty() {
        return false;
    }
    let digits = s.bytes().filter(u8::is_ascii_digit).count();
    if digits == s.len() {
        return true;
    }
    if digits == 0 {
        return false;
    }
    let token = s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'=' | b'~' | b'.' | b'+'));
    if !token {
        return false;
    }
    let hex = s.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    (hex && s.len() >= 8) || (digits >= 3 && s.len() >= 5) || s.len() >= 16
}

/// Takes the VU's idle connection to an origin, if any, with the host name it keeps
/// (shared, so a request to a kept origin allocates no name).
fn take_conn(host: &str, port: u16) -> (Rc<str>, Option<crate::proto::http::Conn>) {
    let kept = context::with_vu(|vu| {
        let mut conns = vu.conns.borrow_mut();
        let at = conns.iter().position(|(h, p, _)| *p == port && &**h == host)?;
        Some(conns.swap_remove(at))
    });
    match kept.ok().flatten() {
        Some((host, _, conn)) => (host, Some(conn)),
        None => (Rc::from(host), None),
    }
}

/// Gives a connection back to the VU for its next request to the origin.
fn keep_conn(host: Rc<str>, port: u16, conn: crate::proto::http::Conn) {
    let _ = context::with_vu(|vu| vu.conns.borrow_mut().push((host, port, conn)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names_fold_ids() {
        let u = url::Url::parse("http://h/focus-server/job/3f2a9c1e-1111-4a4a-9b9b-0123456789ab?x=1").unwrap();
        assert_eq!(default_name(&u), "/focus-server/job/{id}");
        let u = url::Url::parse("http://h/users/123/orders").unwrap();
        assert_eq!(default_name(&u), "/users/{id}/orders");
        let u = url::Url::parse("http://h/").unwrap();
        assert_eq!(default_name(&u), "/");
        let u = url::Url::parse("http://h/item/tok123x").unwrap();
        assert_eq!(default_name(&u), "/item/{id}");
    }

    #[test]
    fn id_like_segments_are_tokens_and_numbers_not_words() {
        for id in [
            "123",
            "3f2a9c1e",
            "0123456789abcdef0",
            "tok123x",
            "a1b2c3",
            "dGVzdDEyMw9xxxxxxx",
            "AbCdEfGh1JkLmNoPq",
            "sess_9f8e7d",
        ] {
            assert!(is_id_like(id), "{id} should be folded");
        }
        for word in [
            "",
            "users",
            "v2",
            "oauth2",
            "sha1",
            "live_metadata",
            "api",
            "focus-server",
            "h264",
            "index.html",
            "deadbeef",
        ] {
            assert!(!is_id_like(word), "{word} should stay");
        }
    }

    #[test]
    fn target_settings_override_defaults_by_longest_prefix() {
        let s = HttpSettings::default();
        s.set_defaults(TargetOptions { timeout: Some(Duration::from_secs(5)), ..Default::default() });
        s.set_target("https://a".into(), TargetOptions { insecure: Some(true), ..Default::default() });
        s.set_target("https://a/x".into(), TargetOptions { insecure: Some(false), ..Default::default() });
        assert_eq!(s.resolve("https://a/y").insecure, Some(true));
        assert_eq!(s.resolve("https://a/x/1").insecure, Some(false));
        assert_eq!(s.resolve("https://b").insecure, None);
        assert_eq!(s.resolve("https://a/y").timeout, Some(Duration::from_secs(5)));
        // A change after this thread read the table is seen at its next request.
        s.set_target("https://a".into(), TargetOptions { insecure: Some(false), ..Default::default() });
        assert_eq!(s.resolve("https://a/y").insecure, Some(false));
        // Another run's settings in the same thread are not this thread's copy.
        let other = HttpSettings::default();
        assert_eq!(other.resolve("https://a/y").insecure, None);
        other.set_target("https://a".into(), TargetOptions { insecure: Some(true), ..Default::default() });
        assert_eq!(other.resolve("https://a/y").insecure, Some(true));
        assert_eq!(s.resolve("https://a/y").insecure, Some(false));
    }

    #[test]
    fn other_threads_see_a_change_of_the_settings() {
        let s = Arc::new(HttpSettings::default());
        s.set_target("http://h".into(), TargetOptions { timeout: Some(Duration::from_secs(1)), ..Default::default() });
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let (back_tx, back) = std::sync::mpsc::channel::<Option<Duration>>();
        let reader = {
            let s = s.clone();
            std::thread::spawn(move || {
                while rx.recv().is_ok() {
                    back_tx.send(s.resolve("http://h/x").timeout).unwrap();
                }
            })
        };
        tx.send(()).unwrap();
        assert_eq!(back.recv().unwrap(), Some(Duration::from_secs(1)));
        s.set_target("http://h".into(), TargetOptions { timeout: Some(Duration::from_secs(2)), ..Default::default() });
        tx.send(()).unwrap();
        assert_eq!(back.recv().unwrap(), Some(Duration::from_secs(2)));
        drop(tx);
        reader.join().unwrap();
    }
}
