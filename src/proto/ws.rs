//! The WebSocket client behind `ws::*`, on tokio-tungstenite: dialling with headers,
//! subprotocols, cookies and a timeout (TLS verified, or not for `insecure` targets),
//! one [`Session`] per socket with receive, send, ping and the closing handshake, and
//! failures classified into the kinds reports count. Knows nothing of Rhai or VUs:
//! the script layer owns the sessions and records the samples.

use futures_util::{SinkExt, StreamExt};
use std::collections::VecDeque;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http as tungstenite_http;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsLibError, Message};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

/// The kinds failed WebSocket operations are tagged with (`error`).
pub const ERROR_KINDS: &[&str] =
    &["status NNN", "refused", "reset", "closed NNNN", "protocol", "timeout", "tls", "dns", "connect"];

/// A WebSocket failure: its kind (`refused`, `status 403`, `closed 1011`, ...) and what
/// happened.
#[derive(Debug, Clone, PartialEq)]
pub struct WsError {
    /// The kind, as failures are tagged and counted.
    pub kind: String,
    /// The full message.
    pub message: String,
    /// The server's close code when it closed the connection.
    pub close_code: Option<u16>,
}

impl WsError {
    fn new(kind: impl Into<String>, message: impl Into<String>) -> WsError {
        WsError { kind: kind.into(), message: message.into(), close_code: None }
    }
}

/// Classifies a tungstenite error into the kinds reports count.
pub fn classify(e: &WsLibError) -> WsError {
    use tokio_tungstenite::tungstenite::error::ProtocolError as P;
    let kind = match e {
        WsLibError::Http(resp) => return WsError::new(format!("status {}", resp.status().as_u16()), e.to_string()),
        // Refused, reset, timeout, and TLS failures (a rustls error inside the io::Error).
        WsLibError::Io(io) => match super::http::network_kind(io) {
            Some(kind) => kind,
            None if io.to_string().contains("lookup") || io.to_string().contains("resolve") => "dns",
            None => "connect",
        },
        WsLibError::Tls(_) => "tls",
        // The server closed the TCP connection (mid-session, or before answering the upgrade).
        WsLibError::Protocol(P::ResetWithoutClosingHandshake | P::HandshakeIncomplete)
        | WsLibError::ConnectionClosed => "reset",
        WsLibError::AlreadyClosed => "reset",
        WsLibError::Url(_) => "connect",
        _ => "protocol",
    };
    WsError::new(kind, e.to_string())
}

/// How to dial.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// Extra request headers.
    pub headers: Vec<(String, String)>,
    /// Subprotocols offered (`Sec-WebSocket-Protocol`).
    pub subprotocols: Vec<String>,
    /// The `Cookie` header, from the caller's jar.
    pub cookie: Option<String>,
    /// Limit for TCP, TLS and the handshake together.
    pub timeout: Duration,
    /// Skip TLS certificate verification (`wss://` to a self-signed server).
    pub insecure: bool,
}

/// A successful handshake.
pub struct Connected {
    /// The open session.
    pub session: Session,
    /// The handshake's status (101).
    pub status: u16,
    /// The subprotocol the server chose, if any.
    pub protocol: Option<String>,
    /// `Set-Cookie` values of the handshake response.
    pub set_cookies: Vec<String>,
}

/// A message received.
#[derive(Debug, Clone, PartialEq)]
pub enum Received {
    /// A text frame.
    Text(String),
    /// A binary frame.
    Binary(Vec<u8>),
}

impl Received {
    /// Payload bytes.
    pub fn len(&self) -> usize {
        match self {
            Received::Text(t) => t.len(),
            Received::Binary(b) => b.len(),
        }
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

type Stream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// One open WebSocket.
pub struct Session {
    stream: Stream,
    /// Messages that arrived while waiting for a pong, handed out by the next receives.
    buffered: VecDeque<Received>,
    ping_seq: u64,
}

/// A rustls configuration that accepts any certificate (`insecure` targets).
static INSECURE: LazyLock<Arc<rustls::ClientConfig>> = LazyLock::new(|| {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map(|b| b.dangerous().with_custom_certificate_verifier(Arc::new(AcceptAny(provider))).with_no_client_auth())
        // The default versions always work with ring: this branch is never taken.
        .unwrap_or_else(|_| {
            rustls::ClientConfig::builder().with_root_certificates(rustls::RootCertStore::empty()).with_no_client_auth()
        });
    Arc::new(config)
});

#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Buffers per socket. tungstenite's defaults (128 KiB to read and to write, the read
/// buffer allocated up front) cost ~250 KiB per connection: 2.5 GB at 10,000
/// connections. Feed messages are small; a larger message still arrives whole (the
/// buffer grows as needed, up to the 64 MiB message limit).
fn socket_config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(4 * 1024).write_buffer_size(0)
}

/// Dials `url` (`ws://` or `wss://`) and completes the handshake.
pub async fn connect(url: &str, o: &ConnectOptions) -> Result<Connected, WsError> {
    let mut request = url.into_client_request().map_err(|e| classify(&e))?;
    let headers = request.headers_mut();
    for (k, v) in &o.headers {
        let name = tungstenite_http::HeaderName::from_bytes(k.as_bytes());
        let value = tungstenite_http::HeaderValue::from_str(v);
        if let (Ok(name), Ok(value)) = (name, value) {
            headers.append(name, value);
        }
    }
    if !o.subprotocols.is_empty()
        && let Ok(v) = tungstenite_http::HeaderValue::from_str(&o.subprotocols.join(", "))
    {
        headers.insert("sec-websocket-protocol", v);
    }
    if let Some(c) = o.cookie.as_deref().and_then(|c| tungstenite_http::HeaderValue::from_str(c).ok()) {
        headers.insert(tungstenite_http::header::COOKIE, c);
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let connector = o.insecure.then(|| Connector::Rustls(INSECURE.clone()));
    // Boxed: the dial's state (~10 KB) would otherwise be part of this future, which a VU
    // builds on its coroutine stack before handing it to its worker: stack pages touched
    // once stay resident, ~30 KB per connection at 10,000 connections.
    let dial =
        Box::pin(tokio_tungstenite::connect_async_tls_with_config(request, Some(socket_config()), true, connector));
    let (stream, response) = match tokio::time::timeout(o.timeout, dial).await {
        Err(_) => {
            let waited = crate::duration::format_duration(o.timeout);
            return Err(WsError::new("timeout", format!("no handshake within {waited}")));
        }
        Ok(Err(e)) => return Err(classify(&e)),
        Ok(Ok(ok)) => ok,
    };
    let header = |name: &str| response.headers().get_all(name).iter().filter_map(|v| v.to_str().ok());
    let protocol = header("sec-websocket-protocol").next().map(str::to_string);
    let set_cookies = header("set-cookie").map(str::to_string).collect();
    Ok(Connected {
        session: Session { stream, buffered: VecDeque::new(), ping_seq: 0 },
        status: response.status().as_u16(),
        protocol,
        set_cookies,
    })
}

/// What a close frame from the server means as an error.
fn closed_by_server(frame: Option<CloseFrame>) -> WsError {
    let code = frame.as_ref().map_or(1005, |f| u16::from(f.code));
    let reason = frame.map(|f| f.reason.to_string()).filter(|r| !r.is_empty());
    let message = match reason {
        Some(r) => format!("closed by the server with code {code}: {r}"),
        None => format!("closed by the server with code {code}"),
    };
    WsError { kind: format!("closed {code}"), message, close_code: Some(code) }
}

/// A frame read off the socket, as the session sees it.
enum Frame {
    Data(Received),
    Pong(Vec<u8>),
}

impl Session {
    /// Reads until a data message or a pong; the end of the connection is an error.
    async fn read(&mut self) -> Result<Frame, WsError> {
        loop {
            match self.stream.next().await {
                Some(Ok(Message::Text(t))) => return Ok(Frame::Data(Received::Text(t.to_string()))),
                Some(Ok(Message::Binary(b))) => return Ok(Frame::Data(Received::Binary(b.to_vec()))),
                Some(Ok(Message::Pong(p))) => return Ok(Frame::Pong(p.to_vec())),
                Some(Ok(Message::Close(frame))) => return Err(closed_by_server(frame)),
                // Pings are answered by tungstenite on the next read or write.
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(classify(&e)),
                None => return Err(WsError::new("reset", "the connection ended without a close frame")),
            }
        }
    }

    /// The next message, or `None` when none arrives within `timeout`.
    pub async fn recv(&mut self, timeout: Duration) -> Result<Option<Received>, WsError> {
        if let Some(m) = self.buffered.pop_front() {
            return Ok(Some(m));
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.read()).await {
                Err(_) => return Ok(None),
                Ok(Err(e)) => return Err(e),
                Ok(Ok(Frame::Data(m))) => return Ok(Some(m)),
                Ok(Ok(Frame::Pong(_))) => continue,
            }
        }
    }

    /// Sends a text message.
    pub async fn send_text(&mut self, text: String) -> Result<(), WsError> {
        self.stream.send(Message::text(text)).await.map_err(|e| classify(&e))
    }

    /// Sends a binary message.
    pub async fn send_binary(&mut self, bytes: Vec<u8>) -> Result<(), WsError> {
        self.stream.send(Message::binary(bytes)).await.map_err(|e| classify(&e))
    }

    /// Sends a ping and waits for its pong: the round trip, or `None` after `timeout`.
    /// Messages arriving meanwhile are kept for the next receives.
    pub async fn ping(&mut self, timeout: Duration) -> Result<Option<Duration>, WsError> {
        self.ping_seq += 1;
        let payload = self.ping_seq.to_be_bytes().to_vec();
        let started = Instant::now();
        self.stream.send(Message::Ping(payload.clone().into())).await.map_err(|e| classify(&e))?;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.read()).await {
                Err(_) => return Ok(None),
                Ok(Err(e)) => return Err(e),
                Ok(Ok(Frame::Pong(p))) if p == payload => return Ok(Some(started.elapsed())),
                Ok(Ok(Frame::Pong(_))) => continue,
                Ok(Ok(Frame::Data(m))) => self.buffered.push_back(m),
            }
        }
    }

    /// The closing handshake: sends a close frame with `code` and reads until the
    /// server's, at most `timeout`. Returns the messages that arrived meanwhile (the
    /// server sent them before it saw the close: they count as received).
    pub async fn close(&mut self, code: u16, timeout: Duration) -> Vec<Received> {
        let mut drained: Vec<Received> = self.buffered.drain(..).collect();
        let frame = CloseFrame { code: code.into(), reason: "".into() };
        if self.stream.close(Some(frame)).await.is_err() {
            return drained;
        }
        let drain = async {
            while let Some(Ok(m)) = self.stream.next().await {
                match m {
                    Message::Text(t) => drained.push(Received::Text(t.to_string())),
                    Message::Binary(b) => drained.push(Received::Binary(b.to_vec())),
                    _ => {}
                }
            }
        };
        let _ = tokio::time::timeout(timeout, drain).await;
        drained
    }
}
