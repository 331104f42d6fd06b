//! The AMQP plumbing behind `amqp::*`: one lapin connection per thread (worker or top
//! level), dialled lazily on that thread's runtime, pools of plain and confirm-mode
//! channels that VUs borrow for one call, reconnection with backoff, the connection's
//! last error (from its event stream) and error classification. Knows nothing of Rhai.

use futures_util::StreamExt;
use lapin::options::ConfirmSelectOptions;
use lapin::{Channel, Connection, ConnectionProperties, Event};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The broker URL used when neither `amqp::url(...)` nor `AMQP_URL` says otherwise.
pub const DEFAULT_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
/// How to get a broker, appended to connection errors.
pub const START_HINT: &str =
    "hint: is RabbitMQ running? start it with `.ci/ensure-rabbitmq` or `rabbitmq-server -detached`, or set AMQP_URL";
/// Idle channels kept per kind and thread; more are closed when returned. A VU holds a
/// channel only during one call, so this bounds channels, not VUs.
const POOL_MAX: usize = 64;
/// How long dialling the broker may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// First and largest wait between failed connection attempts: a lost broker costs one
/// dial per backoff period on each thread, not one per call.
const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// The kinds of [`AmqpError`], as failed publishes are tagged (`error`).
pub const ERROR_KINDS: &[&str] = &[
    "refused",
    "connect",
    "connection_lost",
    "not_found",
    "access_refused",
    "precondition_failed",
    "nack",
    "unroutable",
    "timeout",
    "io",
    "other",
];

/// An AMQP failure: a kind for tags and counts, and the full message.
#[derive(Debug, Clone, PartialEq)]
pub struct AmqpError {
    /// `refused`, `connect`, `connection_lost`, `not_found`, `access_refused`,
    /// `precondition_failed`, `nack`, `unroutable`, `timeout`, `io`, `other`.
    pub kind: &'static str,
    /// What happened, with the broker's reason when known.
    pub message: String,
}

impl std::fmt::Display for AmqpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl AmqpError {
    /// An error of a given kind.
    pub fn new(kind: &'static str, message: impl Into<String>) -> AmqpError {
        AmqpError { kind, message: message.into() }
    }
}

/// Classifies a lapin error into the kinds reports count.
pub fn classify(e: &lapin::Error) -> &'static str {
    use lapin::ErrorKind as K;
    match e.kind() {
        K::IOError(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => "refused",
        K::IOError(_) => "io",
        K::InvalidChannelState(..) | K::InvalidConnectionState(..) | K::MissingHeartbeatError => "connection_lost",
        K::ProtocolError(_) => {
            let text = e.to_string();
            if text.contains("NOT_FOUND") {
                "not_found"
            } else if text.contains("ACCESS_REFUSED") {
                "access_refused"
            } else if text.contains("PRECONDITION_FAILED") {
                "precondition_failed"
            } else if e.is_amqp_hard_error() {
                "connection_lost"
            } else {
                "other"
            }
        }
        _ => "other",
    }
}

/// The URL as it may be shown: the password replaced by `***` ([`crate::secret::redact_url`]).
pub fn redact(url: &str) -> String {
    crate::secret::redact_url(url).into_owned()
}

/// This thread's connection and channel pools for one run.
pub struct Amqp {
    url: String,
    conn: RefCell<Option<Rc<Connection>>>,
    /// Bumped on every new connection: channels of an older one are not pooled again.
    generation: Cell<u64>,
    /// One dial at a time: VUs arriving meanwhile wait for its outcome.
    dialling: tokio::sync::Mutex<()>,
    plain: RefCell<Vec<Channel>>,
    confirm: RefCell<Vec<Channel>>,
    /// No new dial before this instant (set after a failed one).
    retry_at: Cell<Option<Instant>>,
    backoff: Cell<Duration>,
    /// Why the last dial failed, returned while backing off.
    dial_error: RefCell<Option<AmqpError>>,
    /// The last `Event::Error` of the current connection: the broker's real reason when
    /// a call only sees "invalid channel state".
    last_event_error: Arc<Mutex<Option<String>>>,
    /// Whether this thread ever connected (a first failure is "unreachable at start").
    ever_connected: Cell<bool>,
}

/// A channel borrowed for one call; give it back with [`Amqp::release`].
pub struct Lease {
    /// The channel.
    pub channel: Channel,
    confirm: bool,
    generation: u64,
}

thread_local! {
    static STATE: RefCell<Option<(usize, Rc<Amqp>)>> = const { RefCell::new(None) };
}

/// This thread's AMQP state for the run `run_id` and `url`; a different run or URL
/// starts afresh (the old connection is closed when dropped).
pub fn for_thread(run_id: usize, url: &str) -> Rc<Amqp> {
    STATE.with(|s| {
        let mut s = s.borrow_mut();
        match &*s {
            Some((id, amqp)) if *id == run_id && amqp.url == url => amqp.clone(),
            _ => {
                let amqp = Rc::new(Amqp::new(url.to_string()));
                *s = Some((run_id, amqp.clone()));
                amqp
            }
        }
    })
}

/// Closes this thread's connection, if any (end of a run, on the thread's runtime).
pub async fn close_thread() {
    let state = STATE.with(|s| s.borrow_mut().take());
    if let Some((_, amqp)) = state {
        amqp.plain.borrow_mut().clear();
        amqp.confirm.borrow_mut().clear();
        let conn = amqp.conn.borrow_mut().take();
        if let Some(conn) = conn
            && conn.status().connected()
        {
            let _ = tokio::time::timeout(Duration::from_secs(2), conn.close(200, "volley run ended".into())).await;
        }
    }
}

impl Amqp {
    fn new(url: String) -> Amqp {
        Amqp {
            url,
            conn: RefCell::new(None),
            generation: Cell::new(0),
            dialling: tokio::sync::Mutex::new(()),
            plain: RefCell::default(),
            confirm: RefCell::default(),
            retry_at: Cell::new(None),
            backoff: Cell::new(BACKOFF_MIN),
            dial_error: RefCell::new(None),
            last_event_error: Arc::default(),
            ever_connected: Cell::new(false),
        }
    }

    /// The broker URL (with its password).
    pub fn url(&self) -> &str {
        &self.url
    }

    fn live(&self) -> Option<Rc<Connection>> {
        self.conn.borrow().as_ref().filter(|c| c.status().connected()).cloned()
    }

    /// The connection, dialling it if there is none or it was lost (at most once per
    /// backoff period; meanwhile the last dial error is returned).
    pub async fn connection(&self) -> Result<Rc<Connection>, AmqpError> {
        if let Some(c) = self.live() {
            return Ok(c);
        }
        let _guard = self.dialling.lock().await;
        if let Some(c) = self.live() {
            return Ok(c);
        }
        if let Some(at) = self.retry_at.get()
            && Instant::now() < at
            && let Some(e) = self.dial_error.borrow().clone()
        {
            return Err(e);
        }
        let lost = self.conn.borrow_mut().take().is_some();
        self.plain.borrow_mut().clear();
        self.confirm.borrow_mut().clear();
        let dialled = match tokio::time::timeout(
            CONNECT_TIMEOUT,
            Connection::connect(&self.url, ConnectionProperties::default()),
        )
        .await
        {
            Ok(Ok(conn)) => Ok(conn),
            // A wrong password is the broker refusing the login, not a network failure.
            Ok(Err(e)) => {
                let kind = match classify(&e) {
                    k @ ("refused" | "access_refused") => k,
                    _ if e.to_string().contains("ACCESS_REFUSED") => "access_refused",
                    _ => "connect",
                };
                Err((kind, e.to_string()))
            }
            Err(_) => Err(("timeout", format!("no answer within {}s", CONNECT_TIMEOUT.as_secs()))),
        };
        match dialled {
            Ok(conn) => {
                self.retry_at.set(None);
                self.backoff.set(BACKOFF_MIN);
                *self.dial_error.borrow_mut() = None;
                *self.last_event_error.lock().unwrap_or_else(|e| e.into_inner()) = None;
                let mut events = conn.events_listener();
                let last = self.last_event_error.clone();
                tokio::spawn(async move {
                    while let Some(event) = events.next().await {
                        if let Event::Error(e) = event {
                            *last.lock().unwrap_or_else(|e| e.into_inner()) = Some(e.to_string());
                        }
                    }
                });
                let conn = Rc::new(conn);
                *self.conn.borrow_mut() = Some(conn.clone());
                self.generation.set(self.generation.get() + 1);
                self.ever_connected.set(true);
                Ok(conn)
            }
            Err((kind, e)) => {
                let cause = self.last_event_error.lock().unwrap_or_else(|e| e.into_inner()).clone();
                let what = match cause {
                    _ if !(lost || self.ever_connected.get()) => "cannot connect to RabbitMQ at".to_string(),
                    Some(cause) => format!("lost the connection to RabbitMQ ({cause}) and cannot reconnect to"),
                    None => "lost the connection to RabbitMQ and cannot reconnect to".to_string(),
                };
                let hint = if kind == "access_refused" {
                    "hint: the broker refused the user or password in the URL (amqp://USER:PASSWORD@HOST:5672/%2f)"
                } else {
                    START_HINT
                };
                let err = AmqpError::new(kind, format!("{what} {}: {e}; {hint}", redact(&self.url)));
                let backoff = self.backoff.get();
                self.retry_at.set(Some(Instant::now() + backoff));
                self.backoff.set((backoff * 2).min(BACKOFF_MAX));
                *self.dial_error.borrow_mut() = Some(err.clone());
                Err(err)
            }
        }
    }

    /// Borrows a channel (confirm mode or plain) from the pool, or opens one.
    pub async fn lease(&self, confirm: bool) -> Result<Lease, AmqpError> {
        let conn = self.connection().await?;
        let generation = self.generation.get();
        let pool = if confirm { &self.confirm } else { &self.plain };
        loop {
            let idle = pool.borrow_mut().pop();
            match idle {
                Some(channel) if channel.status().connected() => return Ok(Lease { channel, confirm, generation }),
                Some(_) => continue,
                None => break,
            }
        }
        let channel = conn.create_channel().await.map_err(|e| self.error("opening a channel", &e))?;
        if confirm {
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await
                .map_err(|e| self.error("enabling publisher confirms", &e))?;
        }
        Ok(Lease { channel, confirm, generation })
    }

    /// Returns a channel to its pool if it is healthy and of the current connection.
    pub fn release(&self, lease: Lease) {
        if lease.generation != self.generation.get() || !lease.channel.status().connected() {
            return;
        }
        let mut pool = if lease.confirm { self.confirm.borrow_mut() } else { self.plain.borrow_mut() };
        if pool.len() < POOL_MAX {
            pool.push(lease.channel);
        }
    }

    /// An error from a call, with the connection's real cause when the call only saw
    /// a dead channel.
    pub fn error(&self, doing: &str, e: &lapin::Error) -> AmqpError {
        self.refine(AmqpError::new(classify(e), format!("{doing}: {e}")))
    }

    /// Adds the connection's last error (from its event stream) to a failure that only
    /// says the channel or connection is gone.
    pub fn refine(&self, mut e: AmqpError) -> AmqpError {
        if e.kind == "connection_lost" || e.kind == "io" {
            let cause = self.last_event_error.lock().unwrap_or_else(|e| e.into_inner()).clone();
            match cause {
                Some(cause) if !e.message.contains(&cause) => {
                    e.message = format!("{} (connection error: {cause})", e.message);
                }
                Some(_) => {}
                None if self.live().is_none() => {
                    e.message = format!("{} (the connection to RabbitMQ was lost)", e.message)
                }
                None => {}
            }
        }
        e
    }
}
