//! `http::*`: HTTP requests from scripts. Bodies from maps and arrays are sent as JSON;
//! each VU has its own cookie jar; every call records `http_reqs`, `http_req_duration`,
//! `http_req_failed`, `data_sent` and `data_received`, tagged by phase, name, method and
//! status. Network faults never throw: they return a response with status 0 and `error`.

use super::context;
use super::http_exec::{self, DEFAULT_TIMEOUT, Prepared};
pub use super::http_exec::{HttpClients, HttpSettings, TargetOptions};
use super::opts::Opts;
use super::response::Response;
use rhai::plugin::*;
use rhai::{Dynamic, EvalAltResult, Map, NativeCallContext};

/// The options of a request (`http::get(url, #{ ... })`).
pub const REQUEST_OPTIONS: &[&str] =
    &["headers", "query", "timeout", "name", "tags", "insecure", "expect", "body", "max_body", "discard_body"];
/// The options of `http::defaults` and `http::target`.
pub const TARGET_OPTIONS: &[&str] = &["headers", "timeout", "insecure", "max_body", "discard_body"];

fn bad_url(url: &str, reason: impl std::fmt::Display) -> Box<EvalAltResult> {
    let url = crate::secret::redact_url(url);
    format!(
        "invalid URL {url:?}: {reason}; hint: URLs start with http:// or https://, e.g. \"http://127.0.0.1:8080/ack\""
    )
    .into()
}

thread_local! {
    /// Parsed URLs by text, with their default request names: scripts request the same
    /// few URLs over and over, and URL parsing (with IDNA) was ~2.5% of CPU per request.
    static URLS: std::cell::RefCell<rustc_hash::FxHashMap<String, (url::Url, rhai::ImmutableString)>> =
        std::cell::RefCell::default();
}

/// The parsed URL and its default name (see [`http_exec::default_name`]).
fn parse_url(url: &str) -> Result<(url::Url, rhai::ImmutableString), Box<EvalAltResult>> {
    if let Some(u) = URLS.with(|c| c.borrow().get(url).cloned()) {
        return Ok(u);
    }
    let parsed = url::Url::parse(url).map_err(|e| bad_url(url, e))?;
    let name: rhai::ImmutableString = http_exec::default_name(&parsed).into();
    URLS.with(|c| {
        let mut cache = c.borrow_mut();
        // Bounded: scripts with ids in URLs would otherwise grow it without end.
        if cache.len() >= 4096 {
            cache.clear();
        }
        cache.insert(url.to_string(), (parsed.clone(), name.clone()));
    });
    Ok((parsed, name))
}

/// The name messages give a request function (`http::get`).
fn function_name(method: &str) -> std::borrow::Cow<'static, str> {
    match method {
        "GET" => "http::get".into(),
        "POST" => "http::post".into(),
        "PUT" => "http::put".into(),
        "PATCH" => "http::patch".into(),
        "DELETE" => "http::delete".into(),
        "HEAD" => "http::head".into(),
        other => format!("http::{}", other.to_ascii_lowercase()).into(),
    }
}

pub fn target_options(opts: &Opts) -> Result<TargetOptions, Box<EvalAltResult>> {
    Ok(TargetOptions {
        insecure: opts.bool("insecure")?,
        timeout: opts.duration("timeout")?,
        headers: opts.string_pairs("headers")?,
        max_body: max_body(opts)?,
        discard_body: opts.bool("discard_body")?,
    })
}

/// The `max_body` option: bytes as a whole number or a size such as "512KB" or "10MB",
/// at most what a script string can hold.
/// Reads every request option as a request does (for `volley check` on literal maps).
pub fn request_option_values(opts: &Opts) -> Result<(), Box<EvalAltResult>> {
    opts.string_pairs("headers")?;
    opts.string_pairs("query")?;
    opts.string_pairs("tags")?;
    opts.string("name")?;
    opts.duration("timeout")?;
    opts.bool("insecure")?;
    opts.bool("discard_body")?;
    opts.int_list("expect")?;
    max_body(opts)?;
    Ok(())
}

fn max_body(opts: &Opts) -> Result<Option<usize>, Box<EvalAltResult>> {
    let Some(value) = opts.get("max_body") else { return Ok(None) };
    let bytes = if let Ok(n) = value.as_int() {
        u64::try_from(n).map_err(|_| format!("{}: option `max_body` cannot be negative, got {n}", opts.what()))?
    } else if let Some(text) = value.read_lock::<rhai::ImmutableString>() {
        crate::size::parse_size(&text).map_err(|e| {
            format!(
                "{}: option `max_body`: {e}; hint: a number of bytes or a size such as \"512KB\" or \"10MB\"",
                opts.what()
            )
        })?
    } else {
        return Err(format!(
            "{}: option `max_body` expects a number of bytes or a size such as \"10MB\", got {}",
            opts.what(),
            super::opts::describe(value)
        )
        .into());
    };
    if bytes > MAX_STRING as u64 {
        return Err(format!(
            "{}: option `max_body` {bytes} bytes is over the {} MiB a script string can hold; hint: use `discard_body: true` to count a large body without keeping it",
            opts.what(),
            MAX_STRING / (1024 * 1024)
        )
        .into());
    }
    Ok(Some(bytes as usize))
}

use super::MAX_STRING;

/// What a request's options map asks for, read once. `#{}` (most requests pass no
/// options) gives the default, all empty, without looking each key up: the ten lookups
/// cost about 1,000 instructions per request (callgrind).
#[derive(Debug, Default)]
struct RequestOptions {
    query: Vec<(String, String)>,
    body: Option<Dynamic>,
    name: Option<String>,
    tags: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    timeout: Option<std::time::Duration>,
    insecure: Option<bool>,
    expect: Option<Vec<i64>>,
    discard_body: Option<bool>,
    max_body: Option<usize>,
}

impl RequestOptions {
    fn read(options: &Map, what: &str) -> Result<RequestOptions, Box<EvalAltResult>> {
        if options.is_empty() {
            return Ok(RequestOptions::default());
        }
        RequestOptions::lookup(&Opts::new(options, what, REQUEST_OPTIONS)?)
    }

    fn lookup(opts: &Opts) -> Result<RequestOptions, Box<EvalAltResult>> {
        Ok(RequestOptions {
            query: opts.string_pairs("query")?,
            body: opts.get("body").cloned(),
            name: opts.string("name")?,
            tags: opts.string_pairs("tags")?,
            headers: opts.string_pairs("headers")?,
            timeout: opts.duration("timeout")?,
            insecure: opts.bool("insecure")?,
            expect: opts.int_list("expect")?,
            discard_body: opts.bool("discard_body")?,
            max_body: max_body(opts)?,
        })
    }
}

/// Builds the request for `method url` with an optional body and options.
#[inline(never)]
fn prepare(method: &str, url: &str, body: Dynamic, options: &Map) -> Result<Prepared, Box<EvalAltResult>> {
    let what = function_name(method);
    let opts = RequestOptions::read(options, &what)?;
    let (mut parsed, default_name) = parse_url(url)?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(bad_url(url, format!("unsupported scheme `{}`", parsed.scheme())));
    }
    for (k, v) in &opts.query {
        parsed.query_pairs_mut().append_pair(k, v);
    }
    let target = thread_settings(url)?;
    let method_value = match method {
        "GET" => Ok(reqwest::Method::GET),
        "POST" => Ok(reqwest::Method::POST),
        other => reqwest::Method::from_bytes(other.to_ascii_uppercase().as_bytes()),
    }
    .map_err(|_| {
        format!("http::request: invalid method {method:?}; hint: use GET, POST, PUT, PATCH, DELETE, HEAD or OPTIONS")
    })?;
    let body = match opts.body {
        Some(b) if body.is_unit() => b,
        _ => body,
    };
    let (bytes, content_type): (Vec<u8>, Option<&str>) = if body.is_unit() {
        (Vec::new(), None)
    } else if body.is_string() {
        (body.to_string().into_bytes(), Some("text/plain; charset=utf-8"))
    } else if body.is_blob() {
        (body.cast::<rhai::Blob>(), Some("application/octet-stream"))
    } else {
        let json = serde_json::to_vec(&body).map_err(|e| format!("{what}: the body cannot be sent as JSON: {e}"))?;
        (json, Some("application/json"))
    };
    // The default name is the path's: a `query` option does not change it.
    let name = match opts.name {
        Some(n) => n.into(),
        None => default_name,
    };
    let tags = opts.tags.into_iter().map(|(k, v)| (k.as_str().into(), v.as_str().into())).collect();
    let mut headers = reqwest::header::HeaderMap::new();
    let mut set_header = |k: &str, v: &str| -> Result<(), Box<EvalAltResult>> {
        let name = reqwest::header::HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| format!("{what}: invalid header name {k:?}"))?;
        let value = reqwest::header::HeaderValue::from_str(v).map_err(|_| {
            let problem =
                crate::secret::describe_bad_header_value(v).unwrap_or_else(|| "a character it may not hold".into());
            // The value itself is shown only when its name says it is no secret.
            if crate::secret::is_secret_name(k) {
                format!("{what}: invalid value for header {k} (not shown: it may be a secret): {problem}")
            } else {
                format!("{what}: invalid value for header {k}: {v:?}: {problem}")
            }
        })?;
        headers.insert(name, value);
        Ok(())
    };
    if let Some(ct) = content_type {
        set_header("content-type", ct)?;
    }
    for (k, v) in target.headers.iter().chain(opts.headers.iter()) {
        set_header(k, v)?;
    }
    let timeout = opts.timeout.or(target.timeout).unwrap_or(DEFAULT_TIMEOUT);
    let insecure = opts.insecure.or(target.insecure).unwrap_or(false);
    let header_bytes = crate::proto::http::map_size(&headers);
    let bytes_sent = (method.len() + parsed.as_str().len() + 12 + bytes.len()) as u64 + header_bytes;
    Ok(Prepared {
        method: method_value,
        url: parsed,
        headers,
        body: bytes.into(),
        timeout,
        insecure,
        name,
        tags,
        expect: opts.expect.unwrap_or_default(),
        bytes_sent,
        keep_body: if opts.discard_body.or(target.discard_body).unwrap_or(false) {
            0
        } else {
            opts.max_body.or(target.max_body).unwrap_or(http_exec::DEFAULT_MAX_BODY)
        },
    })
}

fn thread_settings(url: &str) -> Result<TargetOptions, Box<EvalAltResult>> {
    Ok(context::thread()?.shared.http.resolve(url))
}

fn run(
    ctx: &NativeCallContext,
    method: &str,
    url: &str,
    body: Dynamic,
    options: &Map,
) -> Result<Response, Box<EvalAltResult>> {
    let go = || {
        let prepared = prepare(method, url, body, options)?;
        let thread = context::thread()?;
        http_exec::execute(&thread, prepared)
    };
    go().map_err(|e| crate::script::at(ctx, e))
}

/// The `http` module.
#[export_module]
pub mod http_api {
    use super::*;

    /// GET a URL.
    /// ```rhai
    /// let r = http::get("http://127.0.0.1:8080/focus-server/ack");
    /// check(r, "healthy", r.status == 200);
    /// ```
    #[rhai_fn(name = "get", return_raw)]
    pub fn get(ctx: NativeCallContext, url: &str) -> Result<Response, Box<EvalAltResult>> {
        run(&ctx, "GET", url, Dynamic::UNIT, &Map::new())
    }

    /// GET with options: `headers`, `query`, `timeout`, `name`, `tags`, `insecure`, `expect`.
    /// ```rhai
    /// let r = http::get(`${base}/alert`, #{ query: #{ startTime: t0 }, timeout: "5s", name: "alerts" });
    /// ```
    #[rhai_fn(name = "get", return_raw)]
    pub fn get_with(ctx: NativeCallContext, url: &str, options: Map) -> Result<Response, Box<EvalAltResult>> {
        run(&ctx, "GET", url, Dynamic::UNIT, &options)
    }

    /// POST a body: a map or array is sent as JSON, a string as text.
    /// ```rhai
    /// let r = http::post(`${base}/configure`, #{ view_type: "0" });
    /// ```
    #[rhai_fn(name = "post", return_raw)]
    pub fn post(ctx: NativeCallContext, url: &str, body: Dynamic) -> Result<Response, Box<EvalAltResult>> {
        run(&ctx, "POST", url, body, &Map::new())
    }

    /// POST with options.
    /// ```rhai
    /// let r = http::post(`${base}/login`, #{ username: "volley", password: "volley" }, #{ name: "login", expect: [201] });
    /// ```
    #[rhai_fn(name = "post", return_raw)]
    pub fn post_with(
        ctx: NativeCallContext,
        url: &str,
        body: Dynamic,
        options: Map,
    ) -> Result<Response, Box<EvalAltResult>> {
        run(&ctx, "POST", url, body, &options)
    }

    /// PUT a body.
    /// ```rhai
    /// let r = http::put(`${base}/item/1`, #{ name: "x" });
    /// ```
    #[rhai_fn(name = "put", return_raw)]
    pub fn put(ctx: NativeCallContext, url: &str, body: Dynamic) -> Result<Response, Box<EvalAltResult>> {
        run(&ctx, "PUT", url, body, &Map::new())
    }

    /// PUT with options.
    /// ```rhai
    /// let r = http::put(`${base}/item/1`, #{ name: "x" }, #{ timeout: "2s" });
    /// ```
    #[rhai_fn(name = "put", return_raw)]
    pub fn put_with(
        ctx: NativeCallContext,
        url: &str,
        body: Dynamic,
        options: Map,
    ) -> Result<Response, Box<EvalAltResult>> {
        run(&ctx, "PUT", url, body, &options)
    }

    /// PATCH a body.
    /// ```rhai
    /// let r = http::patch(`${base}/item/1`, #{ name: "y" });
    /// ```
    #[rhai_fn(name = "patch", return_raw)]
    pub fn patch(ctx: NativeCallContext, url: &str, body: Dynamic) -> Result<Response, Box<EvalAltResult>> {
        run(&ctx, "PATCH", url, body, &Map::new())
    }

    /// PATCH with options.
    /// ```rhai
    /// let r = http::patch(`${base}/item/1`, #{ name: "y" }, #{ name: "rename" });
    /// ```
    #[rhai_fn(name = "patch", return_raw)]
    pub fn patch_with(
        ctx: NativeCallContext,
        url: &str,
        body: Dynamic,
        options: Map,
    ) -> Result<Response, Box<EvalAltResult>> {
        run(&ctx, "PATCH", url, body, &options)
    }

    /// DELETE a URL.
    /// ```rhai
    /// let r = http::delete(`${base}/job/${id}`);
    /// ```
    #[rhai_fn(name = "delete", return_raw)]
    pub fn delete(ctx: NativeCallContext, url: &str) -> Result<Response, Box<EvalAltResult>> {
        run(&ctx, "DELETE", url, Dynamic::UNIT, &Map::new())
    }

    /// DELETE with options (`body` sends a body).
    /// ```rhai
    /// let r = http::delete(`${alerts}/alert/delete`, #{ body: #{ alertIds: ids }, expect: [200, 404] });
    /// ```
    #[rhai_fn(name = "delete", return_raw)]
    pub fn delete_with(ctx: NativeCallContext, url: &str, options: Map) -> Result<Response, Box<EvalAltResult>> {
        run(&ctx, "DELETE", url, Dynamic::UNIT, &options)
    }

    /// Any method, with a body (or `()`) and options.
    /// ```rhai
    /// let r = http::request("OPTIONS", `${base}/ack`, (), #{});
    /// ```
    #[rhai_fn(name = "request", return_raw)]
    pub fn request(
        ctx: NativeCallContext,
        method: &str,
        url: &str,
        body: Dynamic,
        options: Map,
    ) -> Result<Response, Box<EvalAltResult>> {
        run(&ctx, method, url, body, &options)
    }

    /// Defaults for every request of the run: `timeout`, `headers`, `insecure`.
    /// ```rhai
    /// http::defaults(#{ timeout: "15s", headers: #{ "User-Agent": "pz-suite" } });
    /// ```
    #[rhai_fn(name = "defaults", return_raw)]
    pub fn defaults(ctx: NativeCallContext, options: Map) -> Result<(), Box<EvalAltResult>> {
        let set = || {
            let shared = context::thread()?.shared.clone();
            apply_defaults(&shared, &options)?;
            let options = crate::script::setup::map_json(&options);
            crate::script::setup::record(&shared, crate::script::setup::SetupCall::HttpDefaults { options });
            Ok(())
        };
        set().map_err(|e| crate::script::at(&ctx, e))
    }

    /// Settings for every URL starting with a prefix, e.g. TLS verification off for a
    /// server with a self-signed certificate.
    /// ```rhai
    /// http::target("https://focus.lab:8443", #{ insecure: true, timeout: "60s" });
    /// ```
    #[rhai_fn(name = "target", return_raw)]
    pub fn target(ctx: NativeCallContext, prefix: &str, options: Map) -> Result<(), Box<EvalAltResult>> {
        let set = || {
            let shared = context::thread()?.shared.clone();
            apply_target(&shared, prefix, &options)?;
            let options = crate::script::setup::map_json(&options);
            let call = crate::script::setup::SetupCall::HttpTarget { prefix: prefix.to_string(), options };
            crate::script::setup::record(&shared, call);
            Ok(())
        };
        set().map_err(|e| crate::script::at(&ctx, e))
    }
}

/// `http::defaults(options)` on a run (the script's call, or its replay on an agent).
pub fn apply_defaults(shared: &context::RunShared, options: &Map) -> Result<(), Box<EvalAltResult>> {
    let opts = Opts::new(options, "http::defaults", TARGET_OPTIONS)?;
    shared.http.set_defaults(target_options(&opts)?);
    Ok(())
}

/// `http::target(prefix, options)` on a run (the script's call, or its replay).
pub fn apply_target(shared: &context::RunShared, prefix: &str, options: &Map) -> Result<(), Box<EvalAltResult>> {
    url::Url::parse(prefix).map_err(|e| bad_url(prefix, e))?;
    let opts = Opts::new(options, "http::target", TARGET_OPTIONS)?;
    shared.http.set_target(prefix.to_string(), target_options(&opts)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_options_read_as_looking_every_key_up_in_an_empty_map() {
        let empty = Map::new();
        let looked_up = RequestOptions::lookup(&Opts::new(&empty, "http::get", REQUEST_OPTIONS).unwrap()).unwrap();
        let read = RequestOptions::read(&empty, "http::get").unwrap();
        assert_eq!(format!("{read:?}"), format!("{looked_up:?}"));
    }

    #[test]
    fn options_are_read_and_checked() {
        let mut m = Map::new();
        m.insert("timeout".into(), Dynamic::from("2s"));
        m.insert("discard_body".into(), Dynamic::from(true));
        let o = RequestOptions::read(&m, "http::get").unwrap();
        assert_eq!((o.timeout, o.discard_body), (Some(std::time::Duration::from_secs(2)), Some(true)));
        m.insert("timout".into(), Dynamic::from("2s"));
        let e = RequestOptions::read(&m, "http::get").unwrap_err().to_string();
        assert!(e.contains("unknown option `timout`"), "{e}");
    }
}
