//! Writing Rhai source text: string literals, map literals from JSON, durations.

use serde_json::Value;

/// A double-quoted Rhai string literal.
pub fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn is_ident(k: &str) -> bool {
    let mut chars = k.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !matches!(
            k,
            "fn" | "let"
                | "const"
                | "if"
                | "else"
                | "while"
                | "loop"
                | "for"
                | "in"
                | "do"
                | "until"
                | "return"
                | "throw"
                | "try"
                | "catch"
                | "true"
                | "false"
                | "switch"
                | "import"
                | "export"
                | "as"
                | "private"
                | "this"
                | "global"
                | "break"
                | "continue"
                | "Fn"
                | "call"
                | "curry"
                | "type_of"
                | "print"
                | "debug"
                | "eval"
        )
}

/// A map key: bare when it is an identifier, quoted otherwise.
pub fn key(k: &str) -> String {
    if is_ident(k) { k.to_string() } else { string(k) }
}

/// A JSON value as a Rhai literal: objects as `#{ ... }`, null as `()`. Short values on
/// one line, longer ones indented from `indent`.
pub fn value(v: &Value, indent: usize) -> String {
    let flat = flat(v);
    if flat.len() + indent <= 96 {
        return flat;
    }
    let pad = " ".repeat(indent + 4);
    let close = " ".repeat(indent);
    match v {
        Value::Object(m) if !m.is_empty() => {
            let items: Vec<String> =
                m.iter().map(|(k, v)| format!("{pad}{}: {}", key(k), value(v, indent + 4))).collect();
            format!("#{{\n{},\n{close}}}", items.join(",\n"))
        }
        Value::Array(a) if !a.is_empty() => {
            let items: Vec<String> = a.iter().map(|v| format!("{pad}{}", value(v, indent + 4))).collect();
            format!("[\n{},\n{close}]", items.join(",\n"))
        }
        _ => flat,
    }
}

fn flat(v: &Value) -> String {
    match v {
        Value::Null => "()".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i.to_string(),
            // Rhai floats need a decimal point.
            (None, Some(f)) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{f:.1}"),
            (None, Some(f)) => f.to_string(),
            (None, None) => n.to_string(),
        },
        Value::String(s) => string(s),
        Value::Array(a) => format!("[{}]", a.iter().map(flat).collect::<Vec<_>>().join(", ")),
        Value::Object(m) if m.is_empty() => "#{}".into(),
        Value::Object(m) => {
            format!(
                "#{{ {} }}",
                m.iter().map(|(k, v)| format!("{}: {}", key(k), flat(v))).collect::<Vec<_>>().join(", ")
            )
        }
    }
}

/// A duration in seconds as volley writes it: `"250ms"`, `"1.5s"`.
pub fn duration(secs: f64) -> String {
    // Think time to 10 ms below a second, 0.1 s above: a recording's gaps are not exact.
    if secs < 1.0 { format!("\"{}ms\"", (secs * 100.0).round() as u64 * 10) } else { format!("\"{:.1}s\"", secs) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_rhai() {
        assert_eq!(string("a\"b\\c\n"), r#""a\"b\\c\n""#);
        assert_eq!(key("view_type"), "view_type");
        assert_eq!(key("content-type"), "\"content-type\"");
        assert_eq!(key("let"), "\"let\"");
        let v = serde_json::json!({"a": null, "b": [1, 2.0, 2.5], "c": {"d": "x"}});
        assert_eq!(value(&v, 0), r#"#{ a: (), b: [1, 2.0, 2.5], c: #{ d: "x" } }"#);
        assert_eq!(duration(0.25), "\"250ms\"");
        assert_eq!(duration(1.54), "\"1.5s\"");
    }
}
