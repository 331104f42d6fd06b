//! Secrets kept out of what volley shows: messages, the terminal and every report.
//!
//! A password in a URL (`http://qa:secret@host/`), a token in a query
//! (`?access_token=...`), the value of an `Authorization` header or of a variable named
//! `API_TOKEN` are replaced by `***` wherever volley writes text a person or a CI log
//! may read. Pure functions over text; no dependency on the rest of the crate.

use std::borrow::Cow;

/// What a hidden value is shown as.
pub const MASK: &str = "***";

/// Whether a name (an environment variable, a header, a query parameter) says its value
/// is a secret: `API_TOKEN`, `ALERTS_PASSWORD`, `Authorization`, `Cookie`, `x-api-key`,
/// `client_secret`, `sig`, ...
pub fn is_secret_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    const PARTS: &[&str] = &[
        "pass",
        "pwd",
        "secret",
        "token",
        "apikey",
        "api_key",
        "api-key",
        "auth",
        "cookie",
        "session",
        "credential",
        "private",
        "signature",
    ];
    const WHOLE: &[&str] = &["key", "sig", "code"];
    PARTS.iter().any(|p| lower.contains(p)) || WHOLE.contains(&lower.as_str())
}

/// A URL as it may be shown: the password of its user info (`user:***@`), a user info
/// without a password (often a token: `***@`), and the values of secret-looking query
/// parameters (`token=***`) hidden. Anything else is left as written, even when the URL
/// is malformed (an error message quotes what the script gave).
pub fn redact_url(url: &str) -> Cow<'_, str> {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return Cow::Borrowed(url);
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let mut out: Option<String> = None;
    if let Some(at) = authority.rfind('@') {
        let userinfo = &authority[..at];
        let shown = match userinfo.find(':') {
            Some(colon) => format!("{}:{MASK}", &userinfo[..colon]),
            None => MASK.to_string(),
        };
        out = Some(format!("{}{shown}{}", &url[..scheme_end], &rest[at..]));
    }
    let whole = out.as_deref().unwrap_or(url);
    match redact_query(whole) {
        Cow::Owned(q) => Cow::Owned(q),
        Cow::Borrowed(_) => out.map_or(Cow::Borrowed(url), Cow::Owned),
    }
}

/// The values of secret-looking query parameters hidden (`?token=***&page=2`).
fn redact_query(url: &str) -> Cow<'_, str> {
    let Some(q) = url.find('?') else { return Cow::Borrowed(url) };
    let end = url[q..].find('#').map_or(url.len(), |i| q + i);
    let mut changed = false;
    let pairs: Vec<String> = url[q + 1..end]
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, value)) if !value.is_empty() && is_secret_name(name) => {
                changed = true;
                format!("{name}={MASK}")
            }
            _ => pair.to_string(),
        })
        .collect();
    if !changed {
        return Cow::Borrowed(url);
    }
    Cow::Owned(format!("{}?{}{}", &url[..q], pairs.join("&"), &url[end..]))
}

/// Free text (an error message, a report line) with every URL in it redacted as
/// [`redact_url`] does. A URL runs from its scheme to the next space, quote, bracket or
/// end of text.
pub fn redact_text(text: &str) -> Cow<'_, str> {
    if !text.contains("://") {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut changed = false;
    while let Some(sep) = rest.find("://") {
        // The scheme: the letters (and + - .) right before "://".
        let start = rest[..sep]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
            .map_or(0, |i| i + 1);
        let end = rest[sep..]
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '`' | '<' | '>' | ')' | ']' | '}' | ','))
            .map_or(rest.len(), |i| sep + i);
        out.push_str(&rest[..start]);
        let url = &rest[start..end];
        let shown = redact_url(url);
        changed |= shown != url;
        out.push_str(&shown);
        rest = &rest[end..];
    }
    out.push_str(rest);
    if changed { Cow::Owned(out) } else { Cow::Borrowed(text) }
}

/// What is wrong with a header value that cannot be sent, without showing it: the first
/// character a header may not hold and where it is (`a line break (\n) at character 18
/// of 18`). None when every character is allowed.
pub fn describe_bad_header_value(value: &str) -> Option<String> {
    let count = value.chars().count();
    // As the `http` crate checks a value: no control character but the tab.
    let (i, c) = value.chars().enumerate().find(|(_, c)| *c != '\t' && (*c < ' ' || *c == '\u{7f}'))?;
    let what = match c {
        '\n' => "a line break (\\n)".to_string(),
        '\r' => "a carriage return (\\r)".to_string(),
        c => format!("a control character (U+{:04X})", c as u32),
    };
    let hint = if matches!(c, '\n' | '\r') && i + 1 == count {
        "; hint: trim it (a value read from a file or an environment variable often ends in a newline): `value.trim()`"
    } else {
        ""
    };
    Some(format!("{what} at character {} of {count}{hint}", i + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_keeps_its_user_and_host_and_loses_its_password() {
        assert_eq!(redact_url("amqp://guest:guest@127.0.0.1:5672/%2f"), "amqp://guest:***@127.0.0.1:5672/%2f");
        assert_eq!(redact_url("http://qa:Pa55word@127.0.0.1:18555"), "http://qa:***@127.0.0.1:18555");
        assert_eq!(redact_url("http://TOKEN123@host/x"), "http://***@host/x");
        assert_eq!(redact_url("http://127.0.0.1:8080/a@b"), "http://127.0.0.1:8080/a@b");
        assert_eq!(redact_url("http://127.0.0.1:8080"), "http://127.0.0.1:8080");
        assert!(matches!(redact_url("http://127.0.0.1:8080/x?page=2"), Cow::Borrowed(_)));
        // Malformed (a space in the host) but still hidden.
        assert_eq!(redact_url("http://admin:hunter2PW@127.0.0.1:18555 /x"), "http://admin:***@127.0.0.1:18555 /x");
    }

    #[test]
    fn secret_query_values_are_hidden_and_others_kept() {
        assert_eq!(
            redact_url("https://h/api?page=2&access_token=abc&sig=zz#top"),
            "https://h/api?page=2&access_token=***&sig=***#top"
        );
        assert_eq!(redact_url("http://u:p@h/?apiKey=1&q=x"), "http://u:***@h/?apiKey=***&q=x");
        assert_eq!(redact_url("http://h/?token="), "http://h/?token=");
    }

    #[test]
    fn every_url_in_a_text_is_redacted() {
        let text = "error sending request for url (http://qa:Pa55@127.0.0.1:1/x): refused; see \"amqp://g:g@h/\"";
        assert_eq!(
            redact_text(text),
            "error sending request for url (http://qa:***@127.0.0.1:1/x): refused; see \"amqp://g:***@h/\""
        );
        assert!(matches!(redact_text("GET http://127.0.0.1:8080/ack: 500"), Cow::Borrowed(_)));
        assert!(matches!(redact_text("no urls here"), Cow::Borrowed(_)));
    }

    #[test]
    fn secret_names_by_their_parts() {
        for name in ["API_TOKEN", "ALERTS_PASSWORD", "Authorization", "Cookie", "x-api-key", "client_secret", "sig"] {
            assert!(is_secret_name(name), "{name}");
        }
        for name in ["BASE_URL", "RATE", "content-type", "page", "VUS"] {
            assert!(!is_secret_name(name), "{name}");
        }
    }

    #[test]
    fn a_bad_header_value_is_described_without_being_shown() {
        let said = describe_bad_header_value("Bearer TOKVALUE99\n").unwrap();
        assert!(said.starts_with("a line break (\\n) at character 18 of 18; hint: trim it"), "{said}");
        assert!(!said.contains("TOKVALUE99"));
        assert_eq!(describe_bad_header_value("a\u{1}b").unwrap(), "a control character (U+0001) at character 2 of 3");
        assert_eq!(describe_bad_header_value("ok value\twith tab, caf\u{e9}"), None);
    }
}
