//! The `Response` type scripts receive from `http::*` calls.

use rhai::plugin::*;
use rhai::{Dynamic, EvalAltResult, ImmutableString, Map};

/// An HTTP response as the script sees it. On a network error, `status` is 0 and
/// `error` names the kind: `timeout`, `refused`, `reset`, `dns`, `tls`, `connect`, `other`.
#[derive(Debug, Clone, Default)]
pub struct Response {
    /// Status code; 0 when no response arrived.
    pub status: i64,
    /// Whether the status is an expected one (200-399 unless `expect` said otherwise).
    pub ok: bool,
    /// The response headers as received; the script's map (lowercase names, repeats
    /// joined with ", ") is built when a script asks for it.
    pub headers: crate::proto::http::Headers,
    /// The body as text (invalid UTF-8 replaced), at most `max_body` bytes of it.
    pub body: ImmutableString,
    /// Whether the body was longer than `max_body` (or discarded) and was cut.
    pub truncated: bool,
    /// Body bytes received, kept or not.
    pub body_size: i64,
    /// Service time in milliseconds (send to last byte).
    pub duration_ms: f64,
    /// Network error kind, or "" when a response arrived.
    pub error: ImmutableString,
    /// The network error's message, or "".
    pub error_message: ImmutableString,
    /// The final URL.
    pub url: ImmutableString,
    /// The request's name tag.
    pub name: ImmutableString,
}

/// A header value as text (invalid UTF-8 replaced; the usual ASCII value without a scan
/// of lossy chunks).
pub fn header_text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// The headers as the script sees them: lowercase names, repeated headers joined with
/// ", ".
pub fn header_map(headers: &crate::proto::http::Headers) -> Map {
    let mut map = Map::new();
    for name in headers.names() {
        let values: Vec<String> = headers.get_all(&name).map(header_text).collect();
        map.insert(name.as_str().into(), ImmutableString::from(values.join(", ")).into());
    }
    map
}

/// Response fields and methods.
#[export_module]
pub mod response_api {
    use super::Response;

    /// Status code, 0 on a network error.
    /// ```rhai
    /// let r = http::get(`${base}/ack`);
    /// if r.status == 200 { print("up"); }
    /// ```
    #[rhai_fn(get = "status", pure)]
    pub fn status(r: &mut Response) -> i64 {
        r.status
    }

    /// Whether the status was expected (200-399, or the call's `expect` list).
    /// ```rhai
    /// check(r, "ok", r.ok);
    /// ```
    #[rhai_fn(get = "ok", pure)]
    pub fn ok(r: &mut Response) -> bool {
        r.ok
    }

    /// Response headers (lowercase names).
    /// ```rhai
    /// let wait = r.headers["retry-after"];
    /// ```
    #[rhai_fn(get = "headers", pure)]
    pub fn headers(r: &mut Response) -> Map {
        super::header_map(&r.headers)
    }

    /// The body as a string.
    /// ```rhai
    /// print(r.body);
    /// ```
    #[rhai_fn(get = "body", pure)]
    pub fn body(r: &mut Response) -> ImmutableString {
        r.body.clone()
    }

    /// Whether the body was cut: longer than `max_body` (10 MB by default), or dropped by
    /// `discard_body: true`. `data_received` still counts every byte.
    /// ```rhai
    /// let r = http::get(`${base}/export`, #{ max_body: "1MB" });
    /// if r.truncated { print(`kept 1 MB of ${r.body_size} bytes`); }
    /// ```
    #[rhai_fn(get = "truncated", pure)]
    pub fn truncated(r: &mut Response) -> bool {
        r.truncated
    }

    /// Body bytes received, whether kept in `body` or not.
    /// ```rhai
    /// let r = http::get(`${base}/export`, #{ discard_body: true });
    /// check(r, "export is not empty", r.body_size > 0);
    /// ```
    #[rhai_fn(get = "body_size", pure)]
    pub fn body_size(r: &mut Response) -> i64 {
        r.body_size
    }

    /// Service time in milliseconds.
    /// ```rhai
    /// if r.duration_ms > 300.0 { print("slow"); }
    /// ```
    #[rhai_fn(get = "duration_ms", pure)]
    pub fn duration_ms(r: &mut Response) -> f64 {
        r.duration_ms
    }

    /// Network error kind (`timeout`, `refused`, `reset`, `dns`, `tls`, `connect`, `other`), or "".
    /// ```rhai
    /// if r.error == "timeout" { print("timed out"); }
    /// ```
    #[rhai_fn(get = "error", pure)]
    pub fn error(r: &mut Response) -> ImmutableString {
        r.error.clone()
    }

    /// The network error's full message, or "".
    /// ```rhai
    /// if r.status == 0 { print(r.error_message); }
    /// ```
    #[rhai_fn(get = "error_message", pure)]
    pub fn error_message(r: &mut Response) -> ImmutableString {
        r.error_message.clone()
    }

    /// The URL requested.
    /// ```rhai
    /// print(r.url);
    /// ```
    #[rhai_fn(get = "url", pure)]
    pub fn url(r: &mut Response) -> ImmutableString {
        r.url.clone()
    }

    /// One header by name (any case), or "" when absent.
    /// ```rhai
    /// let ct = r.header("Content-Type");
    /// ```
    #[rhai_fn(pure)]
    pub fn header(r: &mut Response, name: &str) -> ImmutableString {
        let values: Vec<String> = r.headers.get_all(name).map(header_text).collect();
        values.join(", ").into()
    }

    /// Parses the body as JSON into maps, arrays and values.
    /// ```rhai
    /// let job = http::post(`${base}/configure`, payload).json();
    /// print(job.job_id);
    /// ```
    #[rhai_fn(pure, return_raw)]
    pub fn json(r: &mut Response) -> Result<Dynamic, Box<EvalAltResult>> {
        if r.truncated {
            return Err(format!(
                "response.json(): the body of {} was cut at {} of {} bytes, so it cannot be parsed; hint: raise the request's `max_body` (e.g. #{{ max_body: \"50MB\" }}), or do not set `discard_body`",
                r.url,
                r.body.len(),
                r.body_size
            )
            .into());
        }
        let value: serde_json::Value = serde_json::from_str(&r.body).map_err(|e| {
            let shown: String = r.body.chars().take(80).collect();
            let more = if r.body.chars().count() > 80 { "..." } else { "" };
            format!(
                "response.json(): the body of {} ({}) is not JSON: {e}; it starts with {shown:?}{more}",
                r.url, r.status
            )
        })?;
        rhai::serde::to_dynamic(value)
    }

    /// A one-line description, e.g. `Response(201, 12.3ms)`.
    /// ```rhai
    /// print(r);
    /// ```
    #[rhai_fn(global, name = "to_string", name = "to_debug", pure)]
    pub fn describe(r: &mut Response) -> String {
        if r.status == 0 {
            format!("Response(0, {}: {})", r.error, r.error_message)
        } else {
            format!("Response({}, {:.1}ms)", r.status, r.duration_ms)
        }
    }
}
