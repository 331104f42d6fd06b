//! HAR (HTTP Archive 1.2, Chrome / Firefox "Save all as HAR") to a readable volley
//! scenario: one request per entry with method, URL (the page's origin as
//! `env("BASE_URL")`), the headers that matter (never cookies: each VU has a jar),
//! bodies (JSON as Rhai maps), think time from the recorded gaps, checks on the recorded
//! statuses; static assets left out unless asked for.

use super::rhai_text;
use serde_json::Value;
use std::fmt::Write as _;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// What went wrong, with where: the file, and the JSON line/column (syntax) or the
/// path inside the document (`log.entries[3].request.url`).
#[derive(Debug, Clone, PartialEq)]
pub struct HarError {
    /// The file as given.
    pub file: String,
    /// `line 12, column 4` or `log.entries[3].request.url` (empty: the whole file).
    pub at: String,
    /// What was wrong.
    pub message: String,
    /// What to do about it.
    pub hint: String,
}

impl std::fmt::Display for HarError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.at.is_empty() {
            write!(f, "{}: {}", self.file, self.message)?;
        } else {
            write!(f, "{}: {}: {}", self.file, self.at, self.message)?;
        }
        if !self.hint.is_empty() {
            write!(f, "\nhint: {}", self.hint)?;
        }
        Ok(())
    }
}

impl std::error::Error for HarError {}

/// Conversion choices.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Keep stylesheets, scripts, images, fonts and media.
    pub include_static: bool,
    /// Shortest recorded gap written as think time, in seconds (0.1 when zero).
    pub min_think_s: f64,
}

/// One recorded request, as far as the script needs it.
#[derive(Debug, Clone)]
struct Entry {
    started: OffsetDateTime,
    time_ms: f64,
    method: String,
    url: url::Url,
    headers: Vec<(String, String)>,
    body: Option<Body>,
    status: u16,
}

#[derive(Debug, Clone)]
enum Body {
    Json(Value),
    Text { mime: String, text: String },
}

struct Ctx<'a> {
    file: &'a str,
}

impl Ctx<'_> {
    fn err(&self, at: impl Into<String>, message: impl Into<String>, hint: impl Into<String>) -> HarError {
        HarError { file: self.file.into(), at: at.into(), message: message.into(), hint: hint.into() }
    }

    fn field<'v>(&self, v: &'v Value, path: &str, key: &str) -> Result<&'v Value, HarError> {
        v.get(key).ok_or_else(|| {
            self.err(path, format!("missing `{key}`"), "HAR 1.2 requires it; was the file edited or cut short?")
        })
    }

    fn str<'v>(&self, v: &'v Value, path: &str, key: &str) -> Result<&'v str, HarError> {
        self.field(v, path, key)?
            .as_str()
            .ok_or_else(|| self.err(format!("{path}.{key}"), "expected a string", "HAR 1.2 stores it as a string"))
    }
}

const STATIC_TYPES: &[&str] = &["stylesheet", "script", "image", "font", "media", "manifest", "texttrack", "ping"];
const STATIC_EXT: &[&str] = &[
    ".css", ".js", ".mjs", ".map", ".png", ".jpg", ".jpeg", ".gif", ".svg", ".ico", ".webp", ".avif", ".woff",
    ".woff2", ".ttf", ".otf", ".eot", ".mp4", ".webm", ".mp3",
];

/// Headers a script should not send: cookies (the VU jar has them), what the client
/// sets itself, browser fingerprints and caching.
fn header_matters(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    !(n.starts_with(':')
        || n.starts_with("sec-")
        || matches!(
            n.as_str(),
            "cookie"
                | "host"
                | "content-length"
                | "connection"
                | "keep-alive"
                | "accept-encoding"
                | "accept-language"
                | "user-agent"
                | "referer"
                | "origin"
                | "cache-control"
                | "pragma"
                | "if-none-match"
                | "if-modified-since"
                | "upgrade-insecure-requests"
                | "dnt"
                | "priority"
                | "te"
                | "transfer-encoding"
        ))
}

fn is_static(entry: &Value, url: &url::Url) -> bool {
    if let Some(t) = entry.get("_resourceType").and_then(Value::as_str) {
        return STATIC_TYPES.contains(&t);
    }
    let path = url.path().to_ascii_lowercase();
    if STATIC_EXT.iter().any(|e| path.ends_with(e)) {
        return true;
    }
    let mime = entry.pointer("/response/content/mimeType").and_then(Value::as_str).unwrap_or_default();
    ["text/css", "javascript", "image/", "font/", "video/", "audio/"].iter().any(|m| mime.contains(m))
}

fn parse_entry(ctx: &Ctx, e: &Value, path: &str) -> Result<Option<Entry>, HarError> {
    let req = ctx.field(e, path, "request")?;
    let rpath = format!("{path}.request");
    let method = ctx.str(req, &rpath, "method")?.to_ascii_uppercase();
    let url_text = ctx.str(req, &rpath, "url")?;
    let url = url::Url::parse(url_text).map_err(|err| {
        ctx.err(
            format!("{rpath}.url"),
            format!("invalid URL {url_text:?}: {err}"),
            "URLs are absolute: http://host/path",
        )
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        // data:, blob:, chrome-extension:, ws: — nothing an HTTP script can replay.
        return Ok(None);
    }
    let started_text = ctx.str(e, path, "startedDateTime")?;
    let started = OffsetDateTime::parse(started_text, &Rfc3339).map_err(|err| {
        ctx.err(
            format!("{path}.startedDateTime"),
            format!("invalid date {started_text:?}: {err}"),
            "HAR dates are ISO 8601, e.g. 2026-11-30T16:00:00.000Z",
        )
    })?;
    let time_ms = e.get("time").and_then(Value::as_f64).unwrap_or(0.0).max(0.0);
    let headers = match req.get("headers") {
        Some(Value::Array(hs)) => hs
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let hp = format!("{rpath}.headers[{i}]");
                Ok((ctx.str(h, &hp, "name")?.to_string(), ctx.str(h, &hp, "value")?.to_string()))
            })
            .collect::<Result<Vec<_>, HarError>>()?,
        Some(_) => return Err(ctx.err(format!("{rpath}.headers"), "expected an array", "HAR 1.2: [{name, value}]")),
        None => Vec::new(),
    };
    let body = match req.get("postData") {
        Some(pd) => {
            let mime = pd.get("mimeType").and_then(Value::as_str).unwrap_or_default().to_string();
            let mut text = pd.get("text").and_then(Value::as_str).unwrap_or_default().to_string();
            // Firefox may record a form as `params` only.
            if let (true, Some(Value::Array(params))) = (text.is_empty(), pd.get("params")) {
                let pairs = params.iter().filter_map(|p| Some((p.get("name")?.as_str()?, p.get("value")?.as_str()?)));
                text = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish();
            }
            match serde_json::from_str::<Value>(&text) {
                Ok(v) if mime.contains("json") && (v.is_object() || v.is_array()) => Some(Body::Json(v)),
                _ if text.is_empty() => None,
                _ => Some(Body::Text { mime, text }),
            }
        }
        None => None,
    };
    let resp = ctx.field(e, path, "response")?;
    let status = resp
        .get("status")
        .and_then(Value::as_u64)
        .ok_or_else(|| ctx.err(format!("{path}.response.status"), "missing or not a number", "HAR 1.2 requires it"))?;
    Ok(Some(Entry { started, time_ms, method, url, headers, body, status: status as u16 }))
}

/// The recorded entries to replay, in order, and how many static assets were left out.
fn entries(ctx: &Ctx, text: &str, opts: &Options) -> Result<(Vec<Entry>, usize), HarError> {
    let text = text.trim_start_matches('\u{feff}');
    let doc: Value = serde_json::from_str(text).map_err(|e| {
        let what = match e.classify() {
            serde_json::error::Category::Eof => "the JSON ends early (truncated file?)".to_string(),
            _ => format!("not JSON: {e}"),
        };
        ctx.err(
            format!("line {}, column {}", e.line(), e.column()),
            what,
            "save the recording again with \"Save all as HAR\"",
        )
    })?;
    let log = doc.get("log").ok_or_else(|| {
        ctx.err(
            "",
            "not a HAR file: no top-level `log`",
            "export from the browser's network panel: \"Save all as HAR\"",
        )
    })?;
    let list = match ctx.field(log, "log", "entries")? {
        Value::Array(a) => a,
        _ => return Err(ctx.err("log.entries", "expected an array", "HAR 1.2: log.entries is a list of requests")),
    };
    let mut out = Vec::new();
    let mut skipped = 0;
    for (i, e) in list.iter().enumerate() {
        let path = format!("log.entries[{i}]");
        let Some(entry) = parse_entry(ctx, e, &path)? else { continue };
        if !opts.include_static && is_static(e, &entry.url) {
            skipped += 1;
            continue;
        }
        out.push(entry);
    }
    out.sort_by_key(|e| e.started);
    if out.is_empty() {
        let why = if skipped > 0 { format!(" ({skipped} static assets left out)") } else { String::new() };
        return Err(ctx.err("log.entries", format!("no requests to convert{why}"), "--include-static keeps assets"));
    }
    Ok((out, skipped))
}

fn origin(u: &url::Url) -> String {
    u.origin().ascii_serialization()
}

/// The URL of a request as a Rhai expression using the origin's variable.
fn url_expr(var: &str, u: &url::Url) -> String {
    let mut rest = u.path().to_string();
    if let Some(q) = u.query() {
        rest.push('?');
        rest.push_str(q);
    }
    if rest.contains('`') || rest.contains("${") {
        format!("{var} + {}", rhai_text::string(&rest))
    } else {
        format!("`${{{var}}}{rest}`")
    }
}

fn request_headers(e: &Entry) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> =
        e.headers.iter().filter(|(n, _)| header_matters(n)).map(|(n, v)| (n.to_ascii_lowercase(), v.clone())).collect();
    // JSON bodies are sent as JSON by volley; a recorded content-type would repeat it.
    if matches!(e.body, Some(Body::Json(_))) {
        headers.retain(|(n, _)| n != "content-type");
    }
    if let Some(Body::Text { mime, .. }) = &e.body
        && !mime.is_empty()
        && !headers.iter().any(|(n, _)| n == "content-type")
    {
        headers.push(("content-type".into(), mime.clone()));
    }
    headers.sort();
    headers.dedup_by(|a, b| a.0 == b.0);
    headers
}

fn header_map<'a>(headers: impl IntoIterator<Item = &'a (String, String)>) -> String {
    let hs: Vec<String> =
        headers.into_iter().map(|(n, v)| format!("{}: {}", rhai_text::key(n), rhai_text::string(v))).collect();
    format!("#{{ {} }}", hs.join(", "))
}

/// Converts the HAR text to a scenario script. `file` names the recording in errors and
/// in the script's header.
pub fn convert(file: &str, text: &str, opts: &Options) -> Result<String, HarError> {
    let ctx = Ctx { file };
    let (list, skipped) = entries(&ctx, text, opts)?;
    // The first request's origin is the base URL; every other origin gets its own.
    let mut origins: Vec<String> = Vec::new();
    for e in &list {
        let o = origin(&e.url);
        if !origins.contains(&o) {
            origins.push(o);
        }
    }
    let vars: Vec<(String, String)> = origins
        .iter()
        .enumerate()
        .map(|(i, _)| {
            if i == 0 {
                ("base".into(), "BASE_URL".into())
            } else {
                (format!("base{}", i + 1), format!("BASE_URL_{}", i + 1))
            }
        })
        .collect();
    let min_think = if opts.min_think_s > 0.0 { opts.min_think_s } else { 0.1 };
    let stem = std::path::Path::new(file).file_stem().and_then(|s| s.to_str()).unwrap_or("recording");
    let mut s = String::new();
    writeln!(s, "// id: {}", stem.to_ascii_uppercase().replace(|c: char| !c.is_ascii_alphanumeric(), "-")).ok();
    writeln!(s, "// title: Recorded journey ({stem})").ok();
    writeln!(s, "// tags: recorded").ok();
    let static_note = if skipped > 0 { format!(", {skipped} static assets left out") } else { String::new() };
    writeln!(s, "// purpose: replay of {file} ({} requests{static_note}); made by `volley convert`", list.len()).ok();
    writeln!(s, "//").ok();
    writeln!(s, "// Cookies are not copied: each VU's cookie jar keeps what the server sets. Think").ok();
    writeln!(s, "// times are the recorded gaps between requests; change the phase for more load.").ok();
    writeln!(s).ok();
    for ((var, env), o) in vars.iter().zip(&origins) {
        writeln!(s, "let {var} = env({}, {});", rhai_text::string(env), rhai_text::string(o)).ok();
    }
    // Headers every request sent alike are set once for the run.
    let headers_of: Vec<Vec<(String, String)>> = list.iter().map(request_headers).collect();
    let common: Vec<(String, String)> = match headers_of.split_first() {
        Some((first, rest)) if !rest.is_empty() => {
            first.iter().filter(|h| rest.iter().all(|hs| hs.contains(h))).cloned().collect()
        }
        _ => Vec::new(),
    };
    if !common.is_empty() {
        writeln!(s, "http::defaults(#{{ headers: {} }});", header_map(&common)).ok();
    }
    writeln!(s).ok();
    writeln!(
        s,
        "let journey = phase(\"journey\", #{{ executor: \"per-vu-iterations\", vus: 1, iterations: 1 }}, || {{"
    )
    .ok();
    for (i, e) in list.iter().enumerate() {
        if i > 0 {
            let prev = &list[i - 1];
            let gap = (e.started - prev.started).as_seconds_f64() - prev.time_ms / 1000.0;
            if gap >= min_think {
                writeln!(s, "    sleep({});", rhai_text::duration(gap)).ok();
            }
        }
        let o = origin(&e.url);
        let var = &vars[origins.iter().position(|x| *x == o).unwrap_or(0)].0;
        let url = url_expr(var, &e.url);
        let headers: Vec<&(String, String)> = headers_of[i].iter().filter(|h| !common.contains(h)).collect();
        let opts = if headers.is_empty() {
            String::new()
        } else {
            format!("#{{ headers: {} }}", header_map(headers.iter().copied()))
        };
        let body = match &e.body {
            Some(Body::Json(v)) => Some(rhai_text::value(v, 4)),
            Some(Body::Text { text, .. }) => Some(rhai_text::string(text)),
            None => None,
        };
        let call = match (e.method.as_str(), body) {
            ("GET", None) => {
                format!("http::get({url}{})", if opts.is_empty() { String::new() } else { format!(", {opts}") })
            }
            ("DELETE", None) => {
                format!("http::delete({url}{})", if opts.is_empty() { String::new() } else { format!(", {opts}") })
            }
            ("POST" | "PUT" | "PATCH", body) => {
                let body = body.unwrap_or_else(|| "\"\"".into());
                let m = e.method.to_ascii_lowercase();
                format!("http::{m}({url}, {body}{})", if opts.is_empty() { String::new() } else { format!(", {opts}") })
            }
            (m, body) => {
                let o = if opts.is_empty() { "#{}".to_string() } else { opts.clone() };
                format!("http::request({}, {url}, {}, {o})", rhai_text::string(m), body.unwrap_or_else(|| "()".into()))
            }
        };
        writeln!(s, "    let r = {call};").ok();
        let label = format!("{} {} is {}", e.method, e.url.path(), e.status);
        writeln!(s, "    check(r, {}, r.status == {});", rhai_text::string(&label), e.status).ok();
    }
    writeln!(s, "}});").ok();
    writeln!(s).ok();
    writeln!(s, "assert(journey.success_rate == 1.0, \"every recorded request answered as recorded\");").ok();
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(url: &str, at: &str, extra: Value) -> Value {
        let mut e = serde_json::json!({
            "startedDateTime": at, "time": 50.0,
            "request": {"method": "GET", "url": url, "headers": [
                {"name": "Cookie", "value": "access-token=abc"}, {"name": "Accept", "value": "application/json"},
                {"name": ":authority", "value": "x"}, {"name": "X-Trace", "value": "t1"}]},
            "response": {"status": 200, "content": {"mimeType": "application/json"}}
        });
        if let (Value::Object(m), Value::Object(x)) = (&mut e, extra) {
            m.extend(x);
        }
        e
    }

    fn har(entries: Vec<Value>) -> String {
        serde_json::json!({"log": {"version": "1.2", "entries": entries}}).to_string()
    }

    #[test]
    fn a_recording_becomes_a_readable_script() {
        let mut post = entry("http://127.0.0.1:8080/api/login", "2026-11-30T10:00:01.000Z", serde_json::json!({}));
        post["request"]["method"] = "POST".into();
        post["request"]["postData"] =
            serde_json::json!({"mimeType": "application/json", "text": "{\"user\":\"a\",\"n\":1}"});
        post["response"]["status"] = 201.into();
        let text = har(vec![
            entry("http://127.0.0.1:8080/app.js", "2026-11-30T10:00:00.000Z", serde_json::json!({})),
            post,
            entry("http://127.0.0.1:8080/api/items?page=2", "2026-11-30T10:00:03.550Z", serde_json::json!({})),
            entry("data:image/png;base64,xx", "2026-11-30T10:00:04.000Z", serde_json::json!({})),
        ]);
        let s = convert("shop.har", &text, &Options::default()).unwrap();
        assert!(s.contains("let base = env(\"BASE_URL\", \"http://127.0.0.1:8080\");"), "{s}");
        assert!(
            s.contains("http::defaults(#{ headers: #{ accept: \"application/json\", \"x-trace\": \"t1\" } });"),
            "{s}"
        );
        assert!(s.contains("http::post(`${base}/api/login`, #{ n: 1, user: \"a\" });"), "{s}");
        assert!(s.contains("check(r, \"POST /api/login is 201\", r.status == 201);"), "{s}");
        assert!(s.contains("    sleep(\"2.5s\");\n    let r = http::get(`${base}/api/items?page=2`"), "{s}");
        assert!(!s.contains("app.js") && !s.to_lowercase().contains("cookie: ") && !s.contains("authority"), "{s}");
        assert!(s.contains("1 static assets left out"), "{s}");
        let all = convert("shop.har", &text, &Options { include_static: true, ..Options::default() }).unwrap();
        assert!(all.contains("${base}/app.js"), "{all}");
    }

    #[test]
    fn forms_other_origins_and_methods() {
        let mut form = entry("http://127.0.0.1:8080/login", "2026-11-30T10:00:00.000Z", serde_json::json!({}));
        form["request"]["method"] = "POST".into();
        form["request"]["postData"] = serde_json::json!({"mimeType": "application/x-www-form-urlencoded",
            "params": [{"name": "user", "value": "a b"}, {"name": "pw", "value": "x&y"}]});
        let mut del = entry("https://api.example.com/items/7", "2026-11-30T10:00:00.050Z", serde_json::json!({}));
        del["request"]["method"] = "DELETE".into();
        del["response"]["status"] = 204.into();
        let mut opt = entry("https://api.example.com/items", "2026-11-30T10:00:00.100Z", serde_json::json!({}));
        opt["request"]["method"] = "OPTIONS".into();
        opt["request"]["headers"] = serde_json::json!([{"name": "Authorization", "value": "Bearer t"}]);
        let s = convert("x.har", &har(vec![form, del, opt]), &Options::default()).unwrap();
        assert!(s.contains("let base2 = env(\"BASE_URL_2\", \"https://api.example.com\");"), "{s}");
        assert!(s.contains("http::post(`${base}/login`, \"user=a+b&pw=x%26y\", #{ headers: #{ accept: \"application/json\", \"content-type\": \"application/x-www-form-urlencoded\", \"x-trace\": \"t1\" } });"), "{s}");
        assert!(s.contains("http::delete(`${base2}/items/7`, #{ headers: #{ accept: \"application/json\", \"x-trace\": \"t1\" } });"), "{s}");
        assert!(
            s.contains(
                "http::request(\"OPTIONS\", `${base2}/items`, (), #{ headers: #{ authorization: \"Bearer t\" } });"
            ),
            "{s}"
        );
        assert!(!s.contains("sleep("), "gaps under 0.1 s are not think time: {s}");
    }

    #[test]
    fn bad_input_says_where_and_what() {
        let e = convert("x.har", "{\"log\": {\"entries\": [", &Options::default()).unwrap_err();
        assert_eq!((e.at.as_str(), e.message.as_str()), ("line 1, column 21", "the JSON ends early (truncated file?)"));
        let e = convert("x.har", "{\"name\": 1}", &Options::default()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "x.har: not a HAR file: no top-level `log`\nhint: export from the browser's network panel: \"Save all as HAR\""
        );
        let mut bad = entry("http://h/a", "2026-11-30T10:00:00Z", serde_json::json!({}));
        bad["request"]["url"] = "not a url".into();
        let e = convert("x.har", &har(vec![bad]), &Options::default()).unwrap_err();
        assert_eq!(e.at, "log.entries[0].request.url");
        let e = convert("x.har", &har(vec![]), &Options::default()).unwrap_err();
        assert_eq!(e.message, "no requests to convert");
    }
}
