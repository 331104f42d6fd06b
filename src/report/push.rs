//! A minimal HTTP/1.1 POST over `std::net` with hard timeouts, for the Pushgateway and
//! webhook outputs: they run off the VU threads and must give up on a stalled receiver
//! instead of holding the run (no async runtime needed for one request).

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Connect, write and read timeout of one POST.
pub const TIMEOUT: Duration = Duration::from_secs(3);

/// POSTs `body` to an `http://` URL; Ok(status) on any HTTP answer.
pub fn post(url: &str, content_type: &str, body: &str) -> Result<u16, String> {
    let u = url::Url::parse(url).map_err(|e| format!("invalid URL {url:?}: {e}"))?;
    if u.scheme() != "http" {
        return Err(format!("{url}: only http:// is supported here"));
    }
    let host = u.host_str().ok_or_else(|| format!("{url}: no host"))?;
    let port = u.port_or_known_default().unwrap_or(80);
    let addr = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("{url}: {e}"))?
        .next()
        .ok_or_else(|| format!("{url}: no address"))?;
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT).map_err(|e| format!("{url}: {e}"))?;
    stream.set_write_timeout(Some(TIMEOUT)).ok();
    stream.set_read_timeout(Some(TIMEOUT)).ok();
    let path = match u.query() {
        Some(q) => format!("{}?{q}", u.path()),
        None => u.path().to_string(),
    };
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: volley/{}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        env!("CARGO_PKG_VERSION"),
        body.len()
    );
    stream
        .write_all(head.as_bytes())
        .and_then(|_| stream.write_all(body.as_bytes()))
        .map_err(|e| format!("{url}: {e}"))?;
    let mut buf = [0u8; 64];
    let n = stream.read(&mut buf).map_err(|e| match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
            format!("{url}: no answer within {} s", TIMEOUT.as_secs())
        }
        _ => format!("{url}: no answer: {e}"),
    })?;
    let line = String::from_utf8_lossy(&buf[..n]);
    line.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("{url}: not an HTTP answer: {line:?}"))
}
