//! HTTP plumbing shared by the handlers: JSON responses, the JSON error shape, reading a
//! bounded JSON body, cookies and query strings. Knows nothing about the endpoints.

use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER};
use hyper::{Response, StatusCode};
use serde_json::{Value, json};

/// Every response the simulator sends.
pub type Resp = Response<Full<Bytes>>;

/// Largest request body accepted (the biggest real payload is well under 1 KiB).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A JSON response.
pub fn json(status: StatusCode, value: &Value) -> Resp {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// A request the simulator refuses: becomes `{"error": message, "status": code, ...}`.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The status to answer.
    pub status: StatusCode,
    /// Human-readable reason, naming the offending input.
    pub message: String,
    /// The request field at fault, if one.
    pub field: Option<String>,
    /// Extra JSON members (e.g. every validation problem).
    pub extra: Option<(&'static str, Value)>,
    /// `Retry-After` seconds, for 429 and 503.
    pub retry_after: Option<Duration>,
}

impl ApiError {
    /// An error with a status and message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError { status, message: message.into(), field: None, extra: None, retry_after: None }
    }

    /// 400 naming a field.
    pub fn bad_field(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        let field = field.into();
        let message = message.into();
        ApiError { field: Some(field), ..ApiError::new(StatusCode::BAD_REQUEST, message) }
    }

    /// Adds `Retry-After`.
    pub fn retry_after(mut self, after: Duration) -> ApiError {
        self.retry_after = Some(after);
        self
    }

    /// The JSON response.
    pub fn into_response(self) -> Resp {
        let mut body = json!({"error": self.message, "status": self.status.as_u16()});
        if let Some(field) = self.field {
            body["field"] = json!(field);
        }
        if let Some((key, value)) = self.extra {
            body[key] = value;
        }
        let mut r = json(self.status, &body);
        if let Some(after) = self.retry_after {
            // Whole seconds, rounded up, at least 1: clients sleep on this value.
            let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
            r.headers_mut().insert(RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        r
    }
}

/// Reads the body (at most [`MAX_BODY_BYTES`]) and parses it as JSON.
pub async fn read_json(body: Incoming) -> Result<Value, ApiError> {
    let bytes = Limited::new(body, MAX_BODY_BYTES)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, format!("request body larger than {MAX_BODY_BYTES} bytes"))
            } else {
                ApiError::new(StatusCode::BAD_REQUEST, format!("cannot read request body: {e}"))
            }
        })?
        .to_bytes();
    if bytes.is_empty() {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "request body is empty: a JSON object is expected"));
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("invalid JSON body: {e}")))
}

/// The value of cookie `name` in the `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(hyper::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"'))
}

/// The decoded value of query parameter `name`.
pub fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query?.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_and_query_parsing() {
        let mut h = HeaderMap::new();
        h.insert(hyper::header::COOKIE, HeaderValue::from_static("a=1; access-token=xyz; b=2"));
        assert_eq!(cookie(&h, "access-token"), Some("xyz"));
        assert_eq!(cookie(&h, "c"), None);
        assert_eq!(
            query_param(Some("startTime=2025-01-01T00%3A00%3A00Z&x=1"), "startTime").as_deref(),
            Some("2025-01-01T00:00:00Z")
        );
        assert_eq!(query_param(None, "x"), None);
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        let r = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "slow down")
            .retry_after(Duration::from_millis(1200))
            .into_response();
        assert_eq!(r.headers()[RETRY_AFTER], "2");
        let r =
            ApiError::new(StatusCode::TOO_MANY_REQUESTS, "x").retry_after(Duration::from_millis(10)).into_response();
        assert_eq!(r.headers()[RETRY_AFTER], "1");
    }
}
