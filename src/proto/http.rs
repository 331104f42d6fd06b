//! The HTTP/1.1 fast path for `http://` URLs: each VU owns one connection per origin
//! (`host:port`), and the VU's own task writes its request and reads the response. There
//! is no connection task, no channel between the two and no buffer held by an idle
//! connection: an exchange borrows a buffer from its thread's pool and gives it back.
//! Response heads are parsed by `httparse` (hyper's parser); bodies are framed as RFC 9112
//! §6.3 says (no body for HEAD, 1xx, 204 and 304; chunked; `Content-Length`; or up to the
//! close). `https://` and redirects go through reqwest (see `script::http_exec`). Knows
//! nothing of Rhai or VUs: the caller keeps the connections.

use bytes::Bytes;
use hyper::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Version, header};
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io::Write as _;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Sleep;

/// Bytes a pooled buffer starts with (a request head, or a read).
const BUFFER: usize = 8 * 1024;
/// Buffers larger than this (grown by a large head or body) are not pooled.
const POOLED_MAX: usize = 64 * 1024;
/// Idle buffers a thread keeps.
const POOL_LEN: usize = 256;
/// Request bodies up to this size are sent in the same write as the head.
const INLINE_BODY: usize = 16 * 1024;
/// The largest response head accepted.
const MAX_HEAD: usize = 256 * 1024;
/// Response headers parsed without a second attempt.
const HEADERS: usize = 64;
/// The most response headers accepted.
const MAX_HEADERS: usize = 1024;

thread_local! {
    /// Buffers of finished exchanges, for the thread's next ones.
    static BUFFERS: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

fn take_buffer() -> Vec<u8> {
    BUFFERS.with(|b| b.borrow_mut().pop()).unwrap_or_else(|| Vec::with_capacity(BUFFER))
}

fn give_buffer(mut buf: Vec<u8>) {
    if buf.capacity() > POOLED_MAX {
        return;
    }
    buf.clear();
    BUFFERS.with(|b| {
        let mut pool = b.borrow_mut();
        if pool.len() < POOL_LEN {
            pool.push(buf);
        }
    });
}

/// A failed exchange: the error kind reports count, and what happened.
pub type Failure = (&'static str, String);

/// A VU's idle connection to one origin.
#[derive(Debug)]
pub struct Conn {
    stream: TcpStream,
    /// The timer of the connection's requests, kept armed between them (see [`Deadline`]).
    timer: Pin<Box<Sleep>>,
    /// The connection's place in its worker's outbox, reused by its requests.
    out: Rc<Outgoing>,
}

/// How far the outbox got with a queued request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sending {
    /// Waiting for the outbox's next round.
    Queued,
    /// Written in full.
    Sent,
    /// This many bytes written (maybe none: the socket was full); its VU writes the rest.
    Partial(usize),
    /// The send failed with this error number.
    Failed(i32),
    /// Taken back by its VU: the socket became readable before the request left, or the
    /// exchange ended (timed out, or its VU stopped). The outbox skips it.
    Withdrawn,
}

/// A request waiting in its worker's outbox, and what became of it.
#[derive(Debug)]
struct Outgoing {
    /// The connection's socket. Valid while the entry is queued: an exchange that ends
    /// while its request is queued withdraws the request as it drops the connection, and
    /// the outbox (on the same thread) runs only after that.
    fd: RawFd,
    /// The request's bytes, lent to the outbox until it is sent.
    wire: RefCell<Vec<u8>>,
    state: Cell<Sending>,
    /// When the outbox sent it.
    sent_at: Cell<Instant>,
    /// The VU to wake when its request was not sent in full.
    waker: RefCell<Option<Waker>>,
}

impl Outgoing {
    fn new(stream: &TcpStream) -> Rc<Outgoing> {
        Rc::new(Outgoing {
            fd: stream.as_raw_fd(),
            wire: RefCell::default(),
            state: Cell::new(Sending::Withdrawn),
            sent_at: Cell::new(Instant::now()),
            waker: RefCell::default(),
        })
    }

    /// Takes the request back if it is still queued; says whether it was.
    fn withdraw(&self) -> bool {
        let queued = self.state.get() == Sending::Queued;
        if queued {
            self.state.set(Sending::Withdrawn);
        }
        queued
    }

    /// Sends the request (once, without blocking) unless its VU took it back; says
    /// whether it made the system call.
    fn send(&self) -> bool {
        if self.state.get() != Sending::Queued {
            return false;
        }
        // Stamped per request: the last of a round leaves a few hundred µs after the first.
        self.sent_at.set(Instant::now());
        let state = {
            let wire = self.wire.borrow();
            // SAFETY: `fd` is the open socket of the exchange that queued this entry and
            // still waits on it (see `fd`); `wire` is a live buffer of `wire.len()` bytes.
            let n = unsafe {
                libc::send(self.fd, wire.as_ptr().cast(), wire.len(), libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT)
            };
            if n >= 0 {
                if n as usize == wire.len() { Sending::Sent } else { Sending::Partial(n as usize) }
            } else {
                let e = std::io::Error::last_os_error();
                match e.kind() {
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted => Sending::Partial(0),
                    _ => Sending::Failed(e.raw_os_error().unwrap_or(libc::EIO)),
                }
            }
        };
        self.state.set(state);
        if state != Sending::Sent
            && let Some(waker) = self.waker.take()
        {
            waker.wake();
        }
        true
    }
}

/// A worker's requests waiting to leave together at the end of its current round (see
/// [`exchange`]): the outbox task sends them one after the other, with no task of a VU
/// polled in between; the VU that queues the [`ROUND`]th sends them at once.
struct Outbox {
    /// Whether the thread runs [`run_outbox`].
    running: Cell<bool>,
    queue: RefCell<Vec<Rc<Outgoing>>>,
    /// The queue's other buffer, swapped in while a batch is sent.
    spare: RefCell<Vec<Rc<Outgoing>>>,
    /// The outbox task, while it waits for requests.
    waker: RefCell<Option<Waker>>,
    /// Send system calls made (for tests).
    sent: Cell<u64>,
}

thread_local! {
    static OUTBOX: Outbox = const {
        Outbox {
            running: Cell::new(false),
            queue: RefCell::new(Vec::new()),
            spare: RefCell::new(Vec::new()),
            waker: RefCell::new(None),
            sent: Cell::new(0),
        }
    };
}

/// The most requests that wait in an outbox: tokio's event interval, the tasks a worker
/// polls between two looks at its sockets. When many VUs wake at once (10,000 VUs
/// started together, each sleeping 1 s between requests), the outbox task would
/// otherwise run only after all of them, holding the first request back for thousands
/// of script runs.
const ROUND: usize = 61;

/// Sends the requests waiting in the thread's outbox.
fn flush() {
    OUTBOX.with(|o| {
        let mut batch = o.spare.take();
        std::mem::swap(&mut *o.queue.borrow_mut(), &mut batch);
        let sent = batch.drain(..).filter(|out| out.send()).count();
        o.sent.set(o.sent.get() + sent as u64);
        *o.spare.borrow_mut() = batch;
    });
}

/// Runs the calling thread's outbox until the task is dropped; spawned once per worker
/// on its `LocalSet`. Without it, a request that would wait for the round's end yields
/// to the other tasks and then sends itself.
pub async fn run_outbox() {
    /// Stops the outbox: requests still queued are handed back to their VUs.
    struct Stop;
    impl Drop for Stop {
        fn drop(&mut self) {
            // Dropped with the thread's other locals, the queue may be gone already.
            let queued = OUTBOX
                .try_with(|o| {
                    o.running.set(false);
                    o.waker.take();
                    std::mem::take(&mut *o.queue.borrow_mut())
                })
                .unwrap_or_default();
            for out in queued {
                if out.withdraw()
                    && let Some(waker) = out.waker.take()
                {
                    waker.wake();
                }
            }
        }
    }
    OUTBOX.with(|o| o.running.set(true));
    let _stop = Stop;
    loop {
        std::future::poll_fn(|cx| {
            OUTBOX.with(|o| {
                if o.queue.borrow().is_empty() {
                    *o.waker.borrow_mut() = Some(cx.waker().clone());
                    Poll::Pending
                } else {
                    Poll::Ready(())
                }
            })
        })
        .await;
        flush();
    }
}

/// Sends `buf` through the worker's outbox at the end of the current round; returns when
/// it was sent, or `None` when the server closed the connection before the request
/// left (nothing was sent: the caller sends it on a new connection). The bytes come back
/// in `buf`.
async fn send_batched(
    stream: &mut TcpStream,
    out: &mut Rc<Outgoing>,
    buf: &mut Vec<u8>,
) -> Result<Option<Instant>, Failure> {
    // Still in the queue from an exchange that ended early: a new entry.
    if Rc::strong_count(out) > 1 {
        *out = Outgoing::new(stream);
    }
    let entry: &Outgoing = out;
    *entry.wire.borrow_mut() = std::mem::take(buf);
    entry.state.set(Sending::Queued);
    let queued = OUTBOX.with(|o| {
        let mut queue = o.queue.borrow_mut();
        queue.push(out.clone());
        let queued = queue.len();
        drop(queue);
        if queued == 1
            && let Some(waker) = o.waker.take()
        {
            waker.wake();
        }
        queued
    });
    if queued >= ROUND {
        flush();
    }
    /// Withdraws the request if the exchange ends while it is queued.
    struct Withdraw<'a>(&'a Outgoing);
    impl Drop for Withdraw<'_> {
        fn drop(&mut self) {
            self.0.withdraw();
        }
    }
    let withdraw = Withdraw(entry);
    let state = std::future::poll_fn(|cx| match entry.state.get() {
        Sending::Queued => {
            // Readable before the request left: the server closed or spoke first; the
            // VU sends it itself and reads what comes.
            if stream.poll_read_ready(cx).is_ready() {
                entry.withdraw();
                return Poll::Ready(Sending::Withdrawn);
            }
            let mut waker = entry.waker.borrow_mut();
            if !waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *waker = Some(cx.waker().clone());
            }
            Poll::Pending
        }
        done => Poll::Ready(done),
    })
    .await;
    drop(withdraw);
    entry.waker.take();
    *buf = entry.wire.take();
    match state {
        Sending::Sent => Ok(Some(entry.sent_at.get())),
        Sending::Partial(n) => {
            stream.write_all(&buf[n..]).await.map_err(|e| io_failure("sending the request", &e))?;
            Ok(Some(entry.sent_at.get()))
        }
        Sending::Failed(errno) => Err(io_failure("sending the request", &std::io::Error::from_raw_os_error(errno))),
        Sending::Queued | Sending::Withdrawn if !still_open(stream) => Ok(None),
        Sending::Queued | Sending::Withdrawn => {
            let at = Instant::now();
            stream.write_all(buf).await.map_err(|e| io_failure("sending the request", &e))?;
            Ok(Some(at))
        }
    }
}

/// A request's timeout on its connection's timer. Arming a timer and taking it down
/// again for every request was most of a runtime's timer work per request; instead the
/// timer stays armed for the deadline of an earlier request, which is never later than
/// this one's (the same timeout, started earlier). When it goes off before this
/// request's deadline, it is re-armed once for that deadline: one re-arm per timeout
/// period per connection, not one per request. A shorter deadline re-arms it at once.
struct Deadline<'a, F> {
    timer: Pin<&'a mut Sleep>,
    at: tokio::time::Instant,
    work: Pin<&'a mut F>,
}

impl<'a, F: Future> Deadline<'a, F> {
    fn new(mut timer: Pin<&'a mut Sleep>, at: tokio::time::Instant, work: Pin<&'a mut F>) -> Self {
        if timer.deadline() > at || timer.is_elapsed() {
            timer.as_mut().reset(at);
        }
        Deadline { timer, at, work }
    }
}

impl<F: Future> Future for Deadline<'_, F> {
    /// `None` when the deadline passed first.
    type Output = Option<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Poll::Ready(out) = self.work.as_mut().poll(cx) {
            return Poll::Ready(Some(out));
        }
        let at = self.at;
        if self.timer.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        if tokio::time::Instant::now() >= at {
            return Poll::Ready(None);
        }
        // Armed for an earlier request's deadline: wait for this one's.
        self.timer.as_mut().reset(at);
        match self.timer.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(()) => Poll::Ready(None),
        }
    }
}

impl Conn {
    /// Whether the connection can carry another request: the server has neither closed
    /// it nor sent anything unasked. Costs no system call unless the socket became
    /// readable since the last response (a read that did not fill its buffer tells the
    /// runtime the socket was drained).
    fn is_open(&self) -> bool {
        still_open(&self.stream)
    }
}

/// [`Conn::is_open`] for a connection's stream.
fn still_open(stream: &TcpStream) -> bool {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    match stream.poll_read_ready(&mut cx) {
        Poll::Pending => true,
        Poll::Ready(Err(_)) => false,
        Poll::Ready(Ok(())) => {
            let mut probe = [0u8; 1];
            matches!(stream.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
        }
    }
}

/// A request ready for the wire: its head (and a small body) encoded once.
pub struct Request {
    wire: Vec<u8>,
    body: Bytes,
    head_method: bool,
    close: bool,
}

impl Request {
    /// Encodes `method target HTTP/1.1`, `headers`, then each of `defaults` whose name
    /// `headers` lacks (Host, User-Agent, ...), then `content-length` when the request has
    /// a body (or is a POST, PUT or PATCH) and sets none. A `transfer-encoding` header is
    /// not supported here ([`Request::supports`]).
    pub fn new(
        method: &Method,
        target: &str,
        headers: &HeaderMap,
        defaults: &[(HeaderName, &HeaderValue)],
        body: Bytes,
    ) -> Request {
        let mut wire = take_buffer();
        wire.extend_from_slice(method.as_str().as_bytes());
        wire.push(b' ');
        wire.extend_from_slice(if target.is_empty() { b"/" } else { target.as_bytes() });
        wire.extend_from_slice(b" HTTP/1.1\r\n");
        let mut put = |name: &HeaderName, value: &HeaderValue| {
            wire.extend_from_slice(name.as_str().as_bytes());
            wire.extend_from_slice(b": ");
            wire.extend_from_slice(value.as_bytes());
            wire.extend_from_slice(b"\r\n");
        };
        for (name, value) in headers {
            put(name, value);
        }
        for (name, value) in defaults {
            if !headers.contains_key(name) {
                put(name, value);
            }
        }
        let wants_length = !body.is_empty() || matches!(*method, Method::POST | Method::PUT | Method::PATCH);
        if wants_length && !headers.contains_key(header::CONTENT_LENGTH) {
            let _ = write!(wire, "content-length: {}\r\n", body.len());
        }
        wire.extend_from_slice(b"\r\n");
        let body = if body.len() <= INLINE_BODY {
            wire.extend_from_slice(&body);
            Bytes::new()
        } else {
            body
        };
        let close = headers.get_all(header::CONNECTION).iter().any(|v| has_token(v.as_bytes(), b"close"));
        Request { wire, body, head_method: *method == Method::HEAD, close }
    }

    /// Whether a request with these headers can take the fast path: a caller-set
    /// `transfer-encoding` asks for body encoding this path does not do.
    pub fn supports(headers: &HeaderMap) -> bool {
        !headers.contains_key(header::TRANSFER_ENCODING)
    }
}

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

/// Response headers as received. The fast path keeps the head's bytes and where each
/// header lies in them, with no per-header allocation; a script that reads headers
/// searches them by name (any case). Responses from reqwest carry its `HeaderMap`.
#[derive(Debug, Clone)]
pub struct Headers {
    repr: Repr,
}

#[derive(Debug, Clone)]
enum Repr {
    Map(HeaderMap),
    /// The head's bytes, where each header lies in them, the headers' size (see
    /// [`Headers::size`]) and whether one is `Set-Cookie`, all found as it was parsed.
    Raw {
        head: Bytes,
        spans: Vec<Span>,
        size: u64,
        set_cookie: bool,
    },
}

/// The headers of a [`Headers`] as bytes, in the order received. A plain enum: the
/// chain of two flattened options it replaces cost ~200 instructions per header
/// (callgrind), paid on every response to find its framing.
pub enum Pairs<'a> {
    /// From reqwest's map.
    Map(header::Iter<'a, HeaderValue>),
    /// From the fast path's head.
    Raw(&'a [u8], std::slice::Iter<'a, Span>),
}

impl<'a> Iterator for Pairs<'a> {
    type Item = (&'a [u8], &'a [u8]);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Pairs::Map(it) => it.next().map(|(k, v)| (k.as_str().as_bytes(), v.as_bytes())),
            Pairs::Raw(head, it) => it.next().map(|s| (part(head, s.name), part(head, s.value))),
        }
    }
}

/// Where one header's name and value lie in the head (byte offsets).
#[derive(Debug, Clone, Copy)]
pub struct Span {
    name: (u32, u32),
    value: (u32, u32),
}

/// The bytes of a span (offset, length) of a head.
fn part(head: &[u8], (at, len): (u32, u32)) -> &[u8] {
    &head[at as usize..(at + len) as usize]
}

impl Default for Headers {
    fn default() -> Self {
        Headers { repr: Repr::Map(HeaderMap::new()) }
    }
}

impl From<HeaderMap> for Headers {
    fn from(map: HeaderMap) -> Self {
        Headers { repr: Repr::Map(map) }
    }
}

impl Headers {
    /// Every header, in the order received: (name, value).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        // httparse accepts only token characters in names: ASCII.
        self.pairs().map(|(name, value)| (std::str::from_utf8(name).unwrap_or(""), value))
    }

    /// Every header as bytes, in the order received.
    pub fn pairs(&self) -> Pairs<'_> {
        match &self.repr {
            Repr::Map(map) => Pairs::Map(map.iter()),
            Repr::Raw { head, spans, .. } => Pairs::Raw(head, spans.iter()),
        }
    }

    /// The values of header `name` (any case), in the order received.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.pairs().filter(move |(n, _)| n.eq_ignore_ascii_case(name.as_bytes())).map(|(_, v)| v)
    }

    /// The first value of header `name` (any case).
    pub fn get<'a>(&'a self, name: &'a str) -> Option<&'a [u8]> {
        self.get_all(name).next()
    }

    /// The `Set-Cookie` values, in the order received. A parsed head knows without a
    /// search when it has none.
    pub fn set_cookies(&self) -> impl Iterator<Item = &[u8]> {
        let none = matches!(self.repr, Repr::Raw { set_cookie: false, .. });
        self.get_all("set-cookie").take(if none { 0 } else { usize::MAX })
    }

    /// The headers' size on the wire: each name and value, plus `": "` and CRLF.
    pub fn size(&self) -> u64 {
        match &self.repr {
            Repr::Raw { size, .. } => *size,
            Repr::Map(map) => map_size(map),
        }
    }

    /// The distinct header names, lowercase, in the order first received.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for (n, _) in self.iter() {
            if !names.iter().any(|seen| seen.eq_ignore_ascii_case(n)) {
                names.push(n.to_ascii_lowercase());
            }
        }
        names
    }
}

/// The size of a header map on the wire: each name and value, plus `": "` and CRLF
/// (what `data_sent` and `data_received` count for headers).
pub fn map_size(map: &HeaderMap) -> u64 {
    map.iter().map(|(k, v)| (k.as_str().len() + v.len() + 4) as u64).sum()
}

/// Collects body bytes, keeping at most `keep`: the rest is counted and dropped as it
/// arrives, so a 100 MB download costs a buffer, not 100 MB.
struct Sink {
    kept: Vec<u8>,
    size: u64,
    keep: usize,
}

impl Sink {
    fn new(keep: usize, expected: Option<u64>) -> Sink {
        let capacity = expected.map_or(0, |n| n.min(keep as u64) as usize);
        Sink { kept: Vec::with_capacity(capacity), size: 0, keep }
    }

    fn push(&mut self, data: &[u8]) {
        self.size += data.len() as u64;
        let room = self.keep.saturating_sub(self.kept.len());
        if room > 0 {
            self.kept.extend_from_slice(&data[..data.len().min(room)]);
        }
    }

    fn body(self) -> Body {
        Body { kept: self.kept.into(), size: self.size }
    }
}

/// What a fast-path exchange returns to `http_exec`.
pub struct Exchange {
    /// The response head and body, or the error kind and message.
    pub result: Result<(Head, Body), Failure>,
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

fn io_failure(doing: &str, e: &std::io::Error) -> Failure {
    (network_kind(e).unwrap_or("other"), format!("{doing}: {e}"))
}

fn invalid(what: impl std::fmt::Display) -> Failure {
    ("other", format!("invalid HTTP response: {what}"))
}

async fn dial(host: &str, port: u16) -> Result<TcpStream, Failure> {
    let stream = TcpStream::connect((host, port)).await.map_err(|e| {
        let kind = match e.kind() {
            std::io::ErrorKind::ConnectionRefused => "refused",
            std::io::ErrorKind::TimedOut => "timeout",
            _ if e.to_string().contains("lookup") || e.to_string().contains("resolve") => "dns",
            _ => "connect",
        };
        (kind, format!("cannot connect to {host}:{port}: {e}"))
    })?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// Sends one request on the VU's connection (dialled if needed) within `timeout`,
/// keeping at most `keep_body` bytes of the response body.
///
/// With `together`, the request leaves at the end of the worker's current round, after
/// the other VUs that are ready have run their scripts. Requests then go out together,
/// so a server that was idle is woken once per round rather than once per request; on a
/// virtual machine each such wake-up is an interrupt across cores that costs the sender
/// about as much as the request itself. On a kept connection the request waits in the
/// worker's outbox ([`run_outbox`]), which sends the round's requests one after the
/// other; the VU's task is next polled for the response. Otherwise the VU yields to the
/// others first. A round is at most 61 tasks (tokio's event interval), and an outbox
/// holds at most [`ROUND`] requests: the VU that queues the last sends them all. The
/// duration is measured from the request's own send. Alone on its worker, a VU sends at
/// once (waiting would only cost a look at the sockets).
pub async fn exchange(
    together: bool,
    reused: Option<Conn>,
    host: std::rc::Rc<str>,
    port: u16,
    request: Request,
    timeout: Duration,
    keep_body: usize,
) -> Exchange {
    let Request { wire, body, head_method, close } = request;
    let outbox = together && body.is_empty() && OUTBOX.with(|o| o.running.get());
    if together && !(outbox && reused.is_some()) {
        tokio::task::yield_now().await;
    }
    // A kept connection the server has closed meanwhile is replaced by a new one.
    let reused = reused.filter(Conn::is_open);
    let batched = outbox && reused.is_some();
    let start = Cell::new(Instant::now());
    let at = tokio::time::Instant::from_std(start.get() + timeout);
    let mut buf = wire;
    let (reused, mut timer, mut out) = match reused {
        Some(c) => (Some(c.stream), c.timer, Some(c.out)),
        None => (None, Box::pin(tokio::time::sleep_until(at)), None),
    };
    let work = async {
        let mut stream = match reused {
            Some(s) => s,
            // Boxed: dialling is rare, and its future would widen every exchange's.
            None => Box::pin(dial(&host, port)).await?,
        };
        let mut sent = false;
        if let Some(out) = out.as_mut().filter(|_| batched) {
            match send_batched(&mut stream, out, &mut buf).await? {
                Some(at) => {
                    start.set(at);
                    sent = true;
                }
                // Closed by the server while the request waited: a new connection.
                None => {
                    stream = Box::pin(dial(&host, port)).await?;
                    *out = Outgoing::new(&stream);
                }
            }
        }
        if !sent {
            stream.write_all(&buf).await.map_err(|e| io_failure("sending the request", &e))?;
        }
        if !body.is_empty() {
            stream.write_all(&body).await.map_err(|e| io_failure("sending the request body", &e))?;
        }
        buf.clear();
        let (parts, body, reusable) = read_response(&mut stream, &mut buf, head_method, keep_body).await?;
        Ok::<_, Failure>(((parts, body), (reusable && !close).then_some(stream)))
    };
    let outcome = {
        let work = std::pin::pin!(work);
        Deadline::new(timer.as_mut(), at, work).await
    };
    give_buffer(buf);
    let duration = start.get().elapsed();
    match outcome {
        Some(Ok((response, stream))) => {
            let conn = stream.map(|stream| {
                let out = out.unwrap_or_else(|| Outgoing::new(&stream));
                Conn { stream, timer, out }
            });
            Exchange { result: Ok(response), duration, conn }
        }
        Some(Err(e)) => Exchange { result: Err(e), duration, conn: None },
        None => Exchange {
            result: Err((
                "timeout",
                format!("no complete response within {}", crate::duration::format_duration(timeout)),
            )),
            duration,
            conn: None,
        },
    }
}

/// Reads more bytes into `buf`; 0 at the end of the stream.
async fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<usize, Failure> {
    if buf.capacity() - buf.len() < 1024 {
        buf.reserve(BUFFER);
    }
    stream.read_buf(buf).await.map_err(|e| io_failure("reading the response", &e))
}

/// Whether a comma-separated header value holds `token` (case-insensitive).
fn has_token(value: &[u8], token: &[u8]) -> bool {
    value.split(|&b| b == b',').any(|t| is_named(t.trim_ascii(), token))
}

/// A response head.
#[derive(Debug, Clone)]
pub struct Head {
    /// The status.
    pub status: StatusCode,
    /// HTTP/1.0 or HTTP/1.1.
    pub version: Version,
    /// The headers, as received.
    pub headers: Headers,
    /// What its headers say of the body's delimitation and the connection.
    framing: HeaderFraming,
}

/// Parses a response head at the start of `buf`: `None` while it is incomplete, else the
/// head and its length.
fn parse_head(buf: &[u8]) -> Result<Option<(Head, usize)>, Failure> {
    let mut few = [httparse::EMPTY_HEADER; HEADERS];
    let mut response = httparse::Response::new(&mut few);
    match response.parse(buf) {
        Ok(httparse::Status::Complete(used)) => Ok(Some((head_of(&response, buf, used)?, used))),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            let mut many = vec![httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut response = httparse::Response::new(&mut many);
            match response.parse(buf) {
                Ok(httparse::Status::Complete(used)) => Ok(Some((head_of(&response, buf, used)?, used))),
                Ok(httparse::Status::Partial) => Ok(None),
                Err(e) => Err(invalid(format!("{e} (at most {MAX_HEADERS} headers)"))),
            }
        }
        Err(e) => Err(invalid(e)),
    }
}

/// The head httparse found in `buf[..used]`: its bytes copied once, and where each
/// header lies in them.
fn head_of(response: &httparse::Response<'_, '_>, buf: &[u8], used: usize) -> Result<Head, Failure> {
    let code = response.code.unwrap_or(0);
    let status = StatusCode::from_u16(code).map_err(|_| invalid(format!("status {code}")))?;
    let version = if response.version == Some(0) { Version::HTTP_10 } else { Version::HTTP_11 };
    let start = buf.as_ptr() as usize;
    let at = |part: &[u8]| ((part.as_ptr() as usize - start) as u32, part.len() as u32);
    // One walk over the parsed headers records where each lies and what the framing
    // ones say (a second walk over the spans cost ~400 instructions per response).
    let mut framing = HeaderFraming::default();
    let mut spans = Vec::with_capacity(response.headers.len());
    let (mut size, mut set_cookie) = (0u64, false);
    for h in response.headers.iter() {
        let name = h.name.as_bytes();
        framing.read(name, h.value);
        set_cookie |= is_named(name, b"set-cookie");
        size += (name.len() + h.value.len() + 4) as u64;
        spans.push(Span { name: at(name), value: at(h.value) });
    }
    let head = Bytes::copy_from_slice(&buf[..used]);
    let headers = Headers { repr: Repr::Raw { head, spans, size, set_cookie } };
    Ok(Head { status, version, headers, framing })
}

/// How a response body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Empty,
    Length(u64),
    Chunked,
    UntilClose,
}

/// What a response's headers say of its delimitation and connection, gathered as the
/// head is parsed.
#[derive(Debug, Clone, Default)]
struct HeaderFraming {
    /// The first malformed framing header: the response fails only when this is its
    /// final head (an interim 1xx head is skipped whatever it says, as it always was).
    invalid: Option<Failure>,
    /// The `Content-Length`, when given.
    length: Option<u64>,
    /// Whether `Transfer-Encoding` was sent, and whether its last coding is `chunked`.
    transfer_encoding: Option<bool>,
    /// `Connection: close` was sent.
    close: bool,
    /// `Connection: keep-alive` was sent.
    keep_alive: bool,
}

impl HeaderFraming {
    /// Takes in one header (the later of repeated `Transfer-Encoding`s wins; repeated
    /// `Content-Length`s must agree), keeping the first fault.
    fn read(&mut self, name: &[u8], value: &[u8]) {
        if let Err(fault) = self.take_in(name, value) {
            self.invalid.get_or_insert(fault);
        }
    }

    fn take_in(&mut self, name: &[u8], value: &[u8]) -> Result<(), Failure> {
        if is_named(name, b"content-length") {
            for part in value.split(|&b| b == b',') {
                let n = std::str::from_utf8(part.trim_ascii())
                    .ok()
                    .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|t| t.parse::<u64>().ok())
                    .ok_or_else(|| invalid(format!("content-length {:?}", String::from_utf8_lossy(value))))?;
                if self.length.is_some_and(|l| l != n) {
                    return Err(invalid("content-length given twice with different values"));
                }
                self.length = Some(n);
            }
        } else if is_named(name, b"transfer-encoding") {
            let last = value.rsplit(|&b| b == b',').next().unwrap_or_default();
            self.transfer_encoding = Some(is_named(last.trim_ascii(), b"chunked"));
        } else if is_named(name, b"connection") {
            self.close |= has_token(value, b"close");
            self.keep_alive |= has_token(value, b"keep-alive");
        }
        Ok(())
    }

    /// How the body of a final response with this status is delimited (RFC 9112 §6.3),
    /// or the fault of its framing headers.
    fn framing(&self, status: StatusCode, head_method: bool) -> Result<Framing, Failure> {
        if let Some(fault) = &self.invalid {
            return Err(fault.clone());
        }
        let s = status.as_u16();
        Ok(if head_method || (100..200).contains(&s) || s == 204 || s == 304 {
            Framing::Empty
        } else if let Some(chunked) = self.transfer_encoding {
            if chunked { Framing::Chunked } else { Framing::UntilClose }
        } else {
            self.length.map_or(Framing::UntilClose, Framing::Length)
        })
    }
}

/// Whether `name` is `lower` (ASCII lowercase) in any case: lowercases one side only.
fn is_named(name: &[u8], lower: &[u8]) -> bool {
    name.len() == lower.len() && name.iter().zip(lower).all(|(a, b)| a.to_ascii_lowercase() == *b)
}

/// Reads a response (skipping 1xx interim ones) and its body; says whether the
/// connection can carry another request.
async fn read_response(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    head_method: bool,
    keep: usize,
) -> Result<(Head, Body, bool), Failure> {
    let (head, used) = loop {
        match parse_head(buf)? {
            Some((head, used)) if head.status.is_informational() && head.status != StatusCode::SWITCHING_PROTOCOLS => {
                buf.drain(..used);
            }
            Some(done) => break done,
            None => {
                if buf.len() >= MAX_HEAD {
                    return Err(invalid(format!("a head larger than {} KiB", MAX_HEAD / 1024)));
                }
                if fill(stream, buf).await? == 0 {
                    let when = if buf.is_empty() { "before responding" } else { "in the middle of the response head" };
                    return Err(("reset", format!("the server closed the connection {when}")));
                }
            }
        }
    };
    let framing = head.framing.framing(head.status, head_method || head.status == StatusCode::SWITCHING_PROTOCOLS)?;
    let mut sink = Sink::new(keep, if let Framing::Length(n) = framing { Some(n) } else { None });
    let clean = match framing {
        Framing::Empty => buf.len() == used,
        Framing::Length(n) => read_length(stream, buf, used, n, &mut sink).await?,
        Framing::Chunked => Box::pin(read_chunked(stream, buf, used, &mut sink)).await?,
        Framing::UntilClose => {
            sink.push(&buf[used..]);
            loop {
                buf.clear();
                if fill(stream, buf).await? == 0 {
                    break false;
                }
                sink.push(buf);
            }
        }
    };
    let persistent = match head.version {
        Version::HTTP_11 => !head.framing.close,
        _ => head.framing.keep_alive,
    };
    let reusable = clean && persistent && head.status != StatusCode::SWITCHING_PROTOCOLS;
    Ok((head, sink.body(), reusable))
}

/// Reads a `Content-Length` body whose first bytes are `buf[from..]`; true when nothing
/// followed it.
async fn read_length(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    from: usize,
    length: u64,
    sink: &mut Sink,
) -> Result<bool, Failure> {
    let mut pos = from;
    let mut left = length;
    loop {
        let take = ((buf.len() - pos) as u64).min(left) as usize;
        sink.push(&buf[pos..pos + take]);
        pos += take;
        left -= take as u64;
        if left == 0 {
            return Ok(pos == buf.len());
        }
        buf.clear();
        pos = 0;
        if fill(stream, buf).await? == 0 {
            return Err((
                "reset",
                format!("the server closed the connection {} bytes into a {length}-byte body", length - left),
            ));
        }
    }
}

/// Reads a chunked body whose first bytes are `buf[from..]` (chunk extensions and
/// trailers are read and ignored); true when nothing followed it.
async fn read_chunked(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    from: usize,
    sink: &mut Sink,
) -> Result<bool, Failure> {
    enum At {
        Size,
        Data(u64),
        DataEnd,
        Trailers,
    }
    let mut at = At::Size;
    let mut pos = from;
    loop {
        // Consume what the buffer holds; stop when more bytes are needed.
        loop {
            let rest = &buf[pos..];
            match at {
                At::Size => match httparse::parse_chunk_size(rest) {
                    Ok(httparse::Status::Complete((used, size))) => {
                        pos += used;
                        at = if size == 0 { At::Trailers } else { At::Data(size) };
                    }
                    Ok(httparse::Status::Partial) if rest.len() <= 1024 => break,
                    _ => return Err(invalid("a malformed chunk size line")),
                },
                At::Data(left) => {
                    let take = (rest.len() as u64).min(left) as usize;
                    sink.push(&rest[..take]);
                    pos += take;
                    if take as u64 == left {
                        at = At::DataEnd;
                    } else {
                        at = At::Data(left - take as u64);
                        break;
                    }
                }
                At::DataEnd => {
                    if rest.len() < 2 {
                        break;
                    }
                    if &rest[..2] != b"\r\n" {
                        return Err(invalid("a chunk not followed by CRLF"));
                    }
                    pos += 2;
                    at = At::Size;
                }
                At::Trailers => {
                    let end = if rest.starts_with(b"\r\n") {
                        Some(2)
                    } else {
                        rest.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
                    };
                    match end {
                        Some(n) => return Ok(pos + n == buf.len()),
                        None if rest.len() > MAX_HEAD => return Err(invalid("trailers larger than 256 KiB")),
                        None => break,
                    }
                }
            }
        }
        buf.drain(..pos);
        pos = 0;
        if fill(stream, buf).await? == 0 {
            return Err(("reset", "the server closed the connection in the middle of a chunked body".into()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    /// A server on 127.0.0.1 that answers each accepted connection's requests with the
    /// given raw responses in turn, written in pieces of `piece` bytes; returns its port
    /// and what it read.
    async fn server(responses: Vec<&'static [u8]>, piece: usize) -> (u16, tokio::task::JoinHandle<Vec<u8>>) {
        let (listener, port) = listen().await;
        let task = tokio::spawn(async move {
            let mut seen = Vec::new();
            let (mut s, _) = listener.accept().await.unwrap();
            for r in responses {
                let mut req = [0u8; 4096];
                let n = s.read(&mut req).await.unwrap();
                seen.extend_from_slice(&req[..n]);
                for part in r.chunks(piece) {
                    s.write_all(part).await.unwrap();
                    s.flush().await.unwrap();
                    tokio::task::yield_now().await;
                }
            }
            // Keep the connection open a moment so "closed" is never the cause.
            tokio::time::sleep(Duration::from_millis(50)).await;
            seen
        });
        (port, task)
    }

    /// A 200 answer with a 2-byte body.
    const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

    /// A listener on 127.0.0.1 and its port.
    async fn listen() -> (TcpListener, u16) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        (listener, port)
    }

    fn get(headers: &HeaderMap) -> Request {
        let host = HeaderValue::from_static("127.0.0.1");
        Request::new(&Method::GET, "/x?y=1", headers, &[(header::HOST, &host)], Bytes::new())
    }

    async fn one(raw: &'static [u8], piece: usize, keep: usize) -> (Exchange, Vec<u8>) {
        let (port, task) = server(vec![raw], piece).await;
        let ex =
            exchange(true, None, "127.0.0.1".into(), port, get(&HeaderMap::new()), Duration::from_secs(5), keep).await;
        (ex, task.await.unwrap())
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
    }

    #[test]
    fn raw_headers_are_found_by_any_case_in_the_order_received() {
        let buf = b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nX-Y: 2\r\nset-cookie: b=2\r\n\r\nbody";
        let (head, used) = parse_head(buf).unwrap().unwrap();
        assert_eq!(&buf[used..], b"body");
        let h = &head.headers;
        assert_eq!(h.get_all("SET-COOKIE").collect::<Vec<_>>(), vec![&b"a=1"[..], &b"b=2"[..]]);
        assert_eq!(h.get("x-y"), Some(&b"2"[..]));
        assert_eq!(h.get("missing"), None);
        assert_eq!(h.names(), vec!["set-cookie", "x-y"]);
        assert_eq!(h.iter().map(|(n, _)| n).collect::<Vec<_>>(), vec!["Set-Cookie", "X-Y", "set-cookie"]);
        assert_eq!(h.set_cookies().collect::<Vec<_>>(), vec![&b"a=1"[..], &b"b=2"[..]]);
        assert_eq!(h.size(), (10 + 3 + 4) + (3 + 1 + 4) + (10 + 3 + 4), "name, value, \": \" and CRLF each");
        let (plain, _) = parse_head(b"HTTP/1.1 200 OK\r\nSet-Cookies: x\r\nCookie: y\r\n\r\n").unwrap().unwrap();
        assert_eq!((plain.headers.set_cookies().count(), plain.headers.size()), (0, (11 + 1 + 4) + (6 + 1 + 4)));
        let mut map = HeaderMap::new();
        map.append(header::SET_COOKIE, HeaderValue::from_static("a=1"));
        map.append(header::SET_COOKIE, HeaderValue::from_static("b=2"));
        let h = Headers::from(map);
        assert_eq!(h.get_all("Set-Cookie").count(), 2, "reqwest's maps answer the same way");
        assert_eq!((h.set_cookies().count(), h.size()), (2, 2 * (10 + 3 + 4)));
        assert_eq!(h.names(), vec!["set-cookie"]);
    }

    #[test]
    fn request_head_is_encoded_once_with_defaults_and_length() {
        let mut h = HeaderMap::new();
        h.insert(header::USER_AGENT, HeaderValue::from_static("mine"));
        let ua = HeaderValue::from_static("volley");
        let host = HeaderValue::from_static("h:1");
        let r = Request::new(
            &Method::POST,
            "/p",
            &h,
            &[(header::HOST, &host), (header::USER_AGENT, &ua)],
            Bytes::from_static(b"abc"),
        );
        assert_eq!(r.wire, b"POST /p HTTP/1.1\r\nuser-agent: mine\r\nhost: h:1\r\ncontent-length: 3\r\n\r\nabc");
        let r = Request::new(&Method::GET, "", &HeaderMap::new(), &[], Bytes::new());
        assert_eq!(r.wire, b"GET / HTTP/1.1\r\n\r\n");
        let r = Request::new(&Method::PUT, "/e", &HeaderMap::new(), &[], Bytes::new());
        assert!(r.wire.ends_with(b"content-length: 0\r\n\r\n"));
        let big = Bytes::from(vec![b'z'; INLINE_BODY + 1]);
        let r = Request::new(&Method::POST, "/b", &HeaderMap::new(), &[], big.clone());
        assert_eq!(r.body, big, "a large body is written after the head, not copied");
        let mut t = HeaderMap::new();
        t.insert(header::TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        assert!(!Request::supports(&t));
    }

    #[test]
    fn framing_headers_are_read_in_any_case_as_the_head_is_parsed() {
        let framing = |head: &[u8], head_method: bool| {
            let (head, _) = parse_head(head).unwrap().unwrap();
            let f = &head.framing;
            (f.framing(head.status, head_method).unwrap(), f.close, f.keep_alive)
        };
        // A fault is kept (the first one) and given only for a final head.
        let fault = |head: &[u8]| {
            let (head, _) = parse_head(head).unwrap().unwrap();
            head.framing.framing(head.status, false).unwrap_err().1
        };
        let ok = |headers: &str| format!("HTTP/1.1 200 OK\r\n{headers}\r\n").into_bytes();
        assert_eq!(framing(&ok("CONTENT-length: 7\r\n"), false), (Framing::Length(7), false, false));
        assert_eq!(framing(&ok("Content-Length: 7, 7\r\ncontent-length: 7\r\n"), false).0, Framing::Length(7));
        assert!(fault(&ok("Content-Length: 7\r\nContent-Length: 8\r\n")).contains("twice"));
        assert!(fault(&ok("Content-Length: +7\r\nContent-Length: 7, 8\r\n")).contains("content-length \"+7\""));
        // The last coding of the last Transfer-Encoding decides; it outranks a length.
        assert_eq!(
            framing(&ok("Transfer-Encoding: gzip, CHUNKED \r\nContent-Length: 3\r\n"), false).0,
            Framing::Chunked
        );
        assert_eq!(
            framing(&ok("Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n"), false).0,
            Framing::UntilClose
        );
        assert_eq!(framing(&ok("Transfer-Encoding: chunkedx\r\n"), false).0, Framing::UntilClose);
        assert_eq!(framing(&ok("X-Other: 1\r\n"), false).0, Framing::UntilClose);
        assert_eq!(framing(&ok("Content-Length: 5\r\n"), true).0, Framing::Empty, "a HEAD answer has no body");
        let no_content = b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n";
        assert_eq!(framing(no_content, false).0, Framing::Empty);
        assert_eq!(framing(&ok("Connection: Keep-Alive, Upgrade\r\n"), false), (Framing::UntilClose, false, true));
        assert_eq!(
            framing(&ok("connection: upgrade\r\nConnection: CLOSE\r\n"), false),
            (Framing::UntilClose, true, false)
        );
        assert_eq!(
            framing(&ok("Connection: closed\r\nX-Connection: close\r\n"), false),
            (Framing::UntilClose, false, false)
        );
        // More headers than the first parse has room for: the second parse reads them alike.
        let many: String = (0..HEADERS + 6).map(|i| format!("X-H{i:02}: v\r\n")).collect();
        let (head, _) =
            parse_head(&ok(&format!("{many}Transfer-Encoding: chunked\r\nSet-Cookie: a=1\r\n"))).unwrap().unwrap();
        assert_eq!(head.framing.framing(head.status, false).unwrap(), Framing::Chunked);
        let size = (HEADERS + 6) as u64 * (5 + 1 + 4) + (17 + 7 + 4) + (10 + 3 + 4);
        assert_eq!((head.headers.size(), head.headers.set_cookies().count()), (size, 1));
        assert!(is_named(b"Content-Type", b"content-type") && !is_named(b"Content-Typ", b"content-type"));
        assert!(!is_named(b"content_type", b"content-type"));
    }

    #[test]
    fn bodies_by_length_chunked_and_close_survive_any_split() {
        rt().block_on(async {
            for piece in [1, 3, 7, 4096] {
                let (ex, seen) = one(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\n\r\nhello", piece, 100).await;
                assert!(seen.starts_with(b"GET /x?y=1 HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n"));
                let (parts, body) = ex.result.unwrap();
                assert_eq!((parts.status.as_u16(), &body.kept[..], body.size), (200, &b"hello"[..], 5));
                assert_eq!(parts.headers.get("X-A"), Some(&b"1"[..]));
                assert!(ex.conn.is_some(), "a complete keep-alive response leaves the connection usable");

                let (ex, _) = one(
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n4;ext=1\r\nwiki\r\n5\r\npedia\r\n0\r\nX-T: 1\r\n\r\n",
                    piece,
                    100,
                )
                .await;
                let (_, body) = ex.result.unwrap();
                assert_eq!(&body.kept[..], b"wikipedia");
                assert!(ex.conn.is_some());

                let (ex, _) = one(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end", piece, 100).await;
                let (_, body) = ex.result.unwrap();
                assert_eq!(&body.kept[..], b"until the end");
                assert!(ex.conn.is_none(), "a body up to the close ends the connection");
            }
        });
    }

    #[test]
    fn interim_empty_and_truncated_responses() {
        rt().block_on(async {
            let (ex, _) =
                one(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n", 2, 100).await;
            let (parts, body) = ex.result.unwrap();
            assert_eq!((parts.status.as_u16(), body.size), (204, 0), "1xx skipped; 204 has no body");
            assert!(ex.conn.is_some());

            // An interim head is skipped whatever its framing headers say.
            let (ex, _) = one(
                b"HTTP/1.1 103 Early Hints\r\nContent-Length: x\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
                5,
                100,
            )
            .await;
            let (parts, body) = ex.result.unwrap();
            assert_eq!((parts.status.as_u16(), &body.kept[..]), (200, &b"ok"[..]));
            assert!(ex.conn.is_some());

            // 101 has no body here, whatever it announces, and its connection is not reused.
            let (ex, _) = one(b"HTTP/1.1 101 Switching Protocols\r\nContent-Length: 5\r\n\r\n", 4096, 100).await;
            let (parts, body) = ex.result.unwrap();
            assert_eq!((parts.status.as_u16(), body.size), (101, 0));
            assert!(ex.conn.is_none());

            let (ex, _) = one(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789", 4096, 4).await;
            let (_, body) = ex.result.unwrap();
            assert_eq!((&body.kept[..], body.size, body.truncated()), (&b"0123"[..], 10, true));

            let (ex, _) = one(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", 4096, 100).await;
            assert!(ex.result.is_ok());
            assert!(ex.conn.is_none(), "HTTP/1.0 without keep-alive closes");
        });
    }

    #[test]
    fn broken_responses_are_failures_of_a_kind() {
        rt().block_on(async {
            let (ex, _) = one(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", 4096, 100).await;
            // The server task ends (closing) after its sleep: the body never completes.
            let (kind, message) = ex.result.unwrap_err();
            assert_eq!(kind, "reset", "{message}");
            assert!(message.contains("5 bytes into a 10-byte body"), "{message}");

            let (ex, _) = one(b"NOT HTTP\r\n\r\n", 4096, 100).await;
            let (kind, message) = ex.result.unwrap_err();
            assert_eq!(kind, "other");
            assert!(message.starts_with("invalid HTTP response"), "{message}");

            let (ex, _) = one(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", 4096, 100).await;
            assert!(ex.result.unwrap_err().1.contains("content-length"));

            let (ex, _) = one(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 4096, 100).await;
            assert!(ex.result.unwrap_err().1.contains("chunk size"));

            let closed = exchange(
                false,
                None,
                "127.0.0.1".into(),
                unused_port().await,
                get(&HeaderMap::new()),
                Duration::from_secs(5),
                10,
            )
            .await;
            assert_eq!(closed.result.unwrap_err().0, "refused");
        });
    }

    async fn unused_port() -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().port()
    }

    #[test]
    fn a_kept_connection_carries_the_next_request_and_a_closed_one_is_redialled() {
        rt().block_on(async {
            let ok = OK;
            let (port, task) = server(vec![ok, ok], 4096).await;
            let h = HeaderMap::new();
            let first = exchange(true, None, "127.0.0.1".into(), port, get(&h), Duration::from_secs(5), 10).await;
            let conn = first.conn.expect("kept");
            let second =
                exchange(false, Some(conn), "127.0.0.1".into(), port, get(&h), Duration::from_secs(5), 10).await;
            assert!(second.result.is_ok());
            let conn = second.conn.expect("kept again");
            let seen = task.await.unwrap();
            assert_eq!(seen.windows(3).filter(|w| w == b"GET").count(), 2, "both on one connection");
            // The server has closed: the stale connection is noticed and replaced.
            tokio::time::sleep(Duration::from_millis(20)).await;
            assert!(!conn.is_open());
            let (port2, task2) = server(vec![ok], 4096).await;
            let third =
                exchange(false, Some(conn), "127.0.0.1".into(), port2, get(&h), Duration::from_secs(5), 10).await;
            assert!(third.result.is_ok(), "{:?}", third.result.err());
            task2.await.unwrap();
        });
    }

    #[test]
    fn a_timer_armed_for_an_earlier_request_neither_cuts_a_later_one_short_nor_delays_a_shorter_one() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
        rt.block_on(async {
            let t0 = tokio::time::Instant::now();
            let secs = |n: u64| t0 + Duration::from_secs(n);
            // Kept armed for an earlier request's deadline (1 s); this one's is 3 s.
            let mut timer = Box::pin(tokio::time::sleep_until(secs(1)));
            let work = std::pin::pin!(async {
                tokio::time::sleep_until(secs(2)).await;
                "answered"
            });
            assert_eq!(Deadline::new(timer.as_mut(), secs(3), work).await, Some("answered"));
            assert_eq!(tokio::time::Instant::now(), secs(2));
            // Still armed for 3 s (no re-arm per request); a request due at 5 s that
            // never ends times out at 5 s, not at 3 s.
            assert_eq!(timer.deadline(), secs(3));
            let never = std::pin::pin!(std::future::pending::<()>());
            assert_eq!(Deadline::new(timer.as_mut(), secs(5), never).await, None);
            assert_eq!(tokio::time::Instant::now(), secs(5));
            // A shorter deadline than the one armed re-arms at once.
            timer.as_mut().reset(secs(60));
            let never = std::pin::pin!(std::future::pending::<()>());
            assert_eq!(Deadline::new(timer.as_mut(), secs(6), never).await, None);
            assert_eq!(tokio::time::Instant::now(), secs(6));
        });
    }

    #[test]
    fn a_silent_server_times_out() {
        rt().block_on(async {
            let (listener, port) = listen().await;
            let hold = tokio::spawn(async move {
                let (s, _) = listener.accept().await.unwrap();
                tokio::time::sleep(Duration::from_secs(2)).await;
                drop(s);
            });
            let ex =
                exchange(true, None, "127.0.0.1".into(), port, get(&HeaderMap::new()), Duration::from_millis(200), 10)
                    .await;
            assert_eq!(ex.result.unwrap_err().0, "timeout");
            assert!(ex.conn.is_none());
            hold.abort();
        });
    }

    /// Sends made by this thread's outbox so far.
    fn outbox_sends() -> u64 {
        OUTBOX.with(|o| o.sent.get())
    }

    /// Runs `test` on a LocalSet whose outbox runs, as a worker's does.
    fn with_outbox<F: Future<Output = ()>>(test: impl FnOnce() -> F) {
        let local = tokio::task::LocalSet::new();
        local.block_on(&rt(), async {
            let outbox = tokio::task::spawn_local(run_outbox());
            test().await;
            outbox.abort();
        });
    }

    /// The next GET on a kept connection, while other VUs run (through the outbox).
    fn next_on(conn: Conn, port: u16) -> impl Future<Output = Exchange> {
        exchange(true, Some(conn), "127.0.0.1".into(), port, get(&HeaderMap::new()), Duration::from_secs(5), 10)
    }

    /// A kept connection to a server that answers one request, then keeps reading (until
    /// the end of the stream, or for `hold`), keeps the connection open until `hold` is
    /// up when `linger`, and returns everything it read.
    async fn kept(hold: Duration, linger: bool) -> (Conn, u16, tokio::task::JoinHandle<Vec<u8>>) {
        let (listener, port) = listen().await;
        let task = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut seen = vec![0u8; 4096];
            let n = s.read(&mut seen).await.unwrap();
            seen.truncate(n);
            s.write_all(OK).await.unwrap();
            let until = tokio::time::Instant::now() + hold;
            let _ = tokio::time::timeout_at(until, s.read_to_end(&mut seen)).await;
            if linger {
                tokio::time::sleep_until(until).await;
            }
            seen
        });
        let first =
            exchange(false, None, "127.0.0.1".into(), port, get(&HeaderMap::new()), Duration::from_secs(5), 10).await;
        (first.conn.expect("kept"), port, task)
    }

    #[test]
    fn requests_of_a_round_leave_through_the_outbox_and_each_vu_reads_its_response() {
        with_outbox(|| async {
            let ok = OK;
            let h = HeaderMap::new();
            let (a, b) = (server(vec![ok, ok], 4096).await, server(vec![ok, ok], 4096).await);
            let first = |port| exchange(false, None, "127.0.0.1".into(), port, get(&h), Duration::from_secs(5), 10);
            let (ca, cb) = tokio::join!(first(a.0), first(b.0));
            let before = outbox_sends();
            let next = |port, conn: Exchange| {
                exchange(true, conn.conn, "127.0.0.1".into(), port, get(&h), Duration::from_secs(5), 10)
            };
            let (ra, rb) = tokio::join!(next(a.0, ca), next(b.0, cb));
            assert_eq!(outbox_sends() - before, 2, "both requests sent by the outbox");
            for r in [ra, rb] {
                let (head, body) = r.result.expect("answered");
                assert_eq!((head.status.as_u16(), &body.kept[..]), (200, &b"ok"[..]));
                assert!(r.conn.is_some(), "still kept");
            }
            for seen in [a.1.await.unwrap(), b.1.await.unwrap()] {
                assert_eq!(seen.windows(3).filter(|w| w == b"GET").count(), 2);
            }
        });
    }

    #[test]
    fn a_request_withdrawn_before_its_round_ends_is_never_sent() {
        with_outbox(|| async {
            let (conn, port, task) = kept(Duration::from_secs(5), false).await;
            let before = outbox_sends();
            {
                let mut ex = std::pin::pin!(next_on(conn, port));
                std::future::poll_fn(|cx| {
                    assert!(ex.as_mut().poll(cx).is_pending());
                    Poll::Ready(())
                })
                .await;
                assert_eq!(OUTBOX.with(|o| o.queue.borrow().len()), 1, "queued");
                // Dropped here, like an interrupted VU's exchange: the connection closes.
            }
            for _ in 0..10 {
                tokio::task::yield_now().await;
            }
            assert_eq!(outbox_sends(), before, "the outbox skipped it");
            let seen = task.await.unwrap();
            assert_eq!(seen.windows(3).filter(|w| w == b"GET").count(), 1, "only the first request arrived");
        });
    }

    #[test]
    fn a_request_the_outbox_sends_in_part_is_finished_by_its_vu() {
        with_outbox(|| async {
            let (listener, port) = listen().await;
            let server = tokio::spawn(async move {
                let (mut s, _) = listener.accept().await.unwrap();
                let ok = OK;
                let mut seen = Vec::new();
                for _ in 0..2 {
                    let start = seen.len();
                    // Slow to read, so the client's socket fills.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    while !seen[start..].ends_with(b"\r\n\r\n") {
                        let mut chunk = vec![0u8; 64 * 1024];
                        let n = s.read(&mut chunk).await.unwrap();
                        assert!(n > 0, "closed mid-request");
                        seen.extend_from_slice(&chunk[..n]);
                    }
                    s.write_all(ok).await.unwrap();
                }
                seen
            });
            let first =
                exchange(false, None, "127.0.0.1".into(), port, get(&HeaderMap::new()), Duration::from_secs(5), 10)
                    .await;
            let mut h = HeaderMap::new();
            // Larger than any socket buffer: one send cannot take it all.
            h.insert("x-big", HeaderValue::from_bytes(&vec![b'a'; 8 << 20]).unwrap());
            let big = get(&h);
            let length = big.wire.len();
            let before = outbox_sends();
            let second = exchange(true, first.conn, "127.0.0.1".into(), port, big, Duration::from_secs(30), 10).await;
            assert_eq!(outbox_sends() - before, 1, "started by the outbox");
            assert_eq!(&second.result.expect("answered").1.kept[..], b"ok");
            let seen = server.await.unwrap();
            let first_len = seen.len() - length;
            assert!(seen[..first_len].ends_with(b"\r\n\r\n") && seen[first_len..].starts_with(b"GET /x?y=1"));
            assert_eq!(seen.len() - first_len, length, "every byte once");
        });
    }

    #[test]
    fn the_vu_that_fills_a_round_sends_it_without_waiting_for_the_outbox_task() {
        with_outbox(|| async {
            let (listener, port) = listen().await;
            let server = tokio::spawn(async move {
                loop {
                    let (mut s, _) = listener.accept().await.unwrap();
                    tokio::spawn(async move {
                        let mut req = [0u8; 4096];
                        while s.read(&mut req).await.is_ok_and(|n| n > 0) {
                            s.write_all(OK).await.unwrap();
                        }
                    });
                }
            });
            let h = HeaderMap::new();
            let mut conns = Vec::new();
            for _ in 0..ROUND {
                let first = exchange(false, None, "127.0.0.1".into(), port, get(&h), Duration::from_secs(5), 10).await;
                conns.push(first.conn.expect("kept"));
            }
            let before = outbox_sends();
            let mut pending: Vec<_> = conns.into_iter().map(|c| Box::pin(next_on(c, port))).collect();
            // All polled in one go, so the outbox task cannot run in between.
            std::future::poll_fn(|cx| {
                for (i, ex) in pending.iter_mut().enumerate() {
                    assert!(ex.as_mut().poll(cx).is_pending());
                    let expected = if i + 1 < ROUND { 0 } else { ROUND as u64 };
                    assert_eq!(outbox_sends() - before, expected, "after {} queued", i + 1);
                }
                Poll::Ready(())
            })
            .await;
            for ex in pending {
                assert_eq!(&ex.await.result.expect("answered").1.kept[..], b"ok");
            }
            assert_eq!(outbox_sends() - before, ROUND as u64, "each sent once");
            server.abort();
        });
    }

    #[test]
    fn a_connection_the_server_closes_while_its_request_waits_is_replaced() {
        rt().block_on(async {
            let (listener, port) = listen().await;
            let (close, closing) = tokio::sync::oneshot::channel::<()>();
            let ok = OK;
            let server = tokio::spawn(async move {
                let (mut first, _) = listener.accept().await.unwrap();
                let mut req = [0u8; 4096];
                assert!(first.read(&mut req).await.unwrap() > 0);
                first.write_all(ok).await.unwrap();
                closing.await.unwrap();
                first.shutdown().await.unwrap();
                let (mut second, _) = listener.accept().await.unwrap();
                let n = second.read(&mut req).await.unwrap();
                second.write_all(ok).await.unwrap();
                let mut after = Vec::new();
                first.read_to_end(&mut after).await.unwrap();
                (req[..n].starts_with(b"GET "), after)
            });
            let h = HeaderMap::new();
            let first = exchange(false, None, "127.0.0.1".into(), port, get(&h), Duration::from_secs(5), 10).await;
            // An outbox that never runs its round: the request waits until the server closes.
            OUTBOX.with(|o| o.running.set(true));
            let mut next = std::pin::pin!(next_on(first.conn.expect("kept"), port));
            std::future::poll_fn(|cx| {
                assert!(next.as_mut().poll(cx).is_pending());
                Poll::Ready(())
            })
            .await;
            close.send(()).unwrap();
            let ex = next.await;
            OUTBOX.with(|o| {
                o.running.set(false);
                o.queue.borrow_mut().clear();
            });
            assert_eq!(&ex.result.expect("answered on a new connection").1.kept[..], b"ok");
            let (second_got_it, first_after) = server.await.unwrap();
            assert!(second_got_it);
            assert!(first_after.is_empty(), "nothing sent on the closed connection");
        });
    }

    #[test]
    fn a_failed_send_by_the_outbox_is_a_failure_of_its_request() {
        with_outbox(|| async {
            let (mut conn, port, task) = kept(Duration::from_secs(5), true).await;
            // Our side shut for writing: the next send fails (EPIPE), the socket is not readable.
            conn.stream.shutdown().await.unwrap();
            let before = outbox_sends();
            let ex = next_on(conn, port).await;
            assert_eq!(outbox_sends() - before, 1);
            let (kind, message) = ex.result.unwrap_err();
            assert_eq!(kind, "reset", "{message}");
            assert!(message.starts_with("sending the request: "), "{message}");
            assert!(ex.conn.is_none());
            task.abort();
        });
    }
}
