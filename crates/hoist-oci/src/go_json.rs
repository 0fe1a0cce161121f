//! JSON bytes as Go's `encoding/json` writes them, so digests of documents hoist writes match
//! what Docker, BuildKit and distribution produce for the same values.
//!
//! - [`to_vec`]: `json.Marshal` (compact).
//! - [`to_vec_indent`]: `json.MarshalIndent(v, prefix, indent)`; no trailing newline.
//!
//! Strings are escaped like Go: `<`, `>`, `&`, U+2028 and U+2029 as `\u003c`-style escapes,
//! control characters as `\n`, `\r`, `\t`, `\b`, `\f` or `\u00XX`. Object keys keep the order
//! of the serialised struct (serde_json's `preserve_order` is on in the workspace), which is
//! why the document structs list their fields in Go's order.

use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result};

/// `json.Marshal(value)`.
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    let value = to_value(value)?;
    let mut out = String::new();
    write_value(&mut out, &value, None, 0);
    Ok(out.into_bytes())
}

/// `json.MarshalIndent(value, prefix, indent)`.
pub fn to_vec_indent<T: Serialize + ?Sized>(
    value: &T,
    prefix: &str,
    indent: &str,
) -> Result<Vec<u8>> {
    let value = to_value(value)?;
    let mut out = String::new();
    write_value(&mut out, &value, Some((prefix, indent)), 0);
    Ok(out.into_bytes())
}

fn to_value<T: Serialize + ?Sized>(value: &T) -> Result<Value> {
    serde_json::to_value(value).map_err(|source| Error::Json {
        kind: "serialised",
        source,
    })
}

fn newline(out: &mut String, layout: Option<(&str, &str)>, depth: usize) {
    if let Some((prefix, indent)) = layout {
        out.push('\n');
        out.push_str(prefix);
        for _ in 0..depth {
            out.push_str(indent);
        }
    }
}

fn write_value(out: &mut String, value: &Value, layout: Option<(&str, &str)>, depth: usize) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            if items.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, layout, depth + 1);
                write_value(out, item, layout, depth + 1);
            }
            newline(out, layout, depth);
            out.push(']');
        }
        Value::Object(map) => {
            if map.is_empty() {
                out.push_str("{}");
                return;
            }
            out.push('{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, layout, depth + 1);
                write_string(out, key);
                out.push(':');
                if layout.is_some() {
                    out.push(' ');
                }
                write_value(out, item, layout, depth + 1);
            }
            newline(out, layout, depth);
            out.push('}');
        }
    }
}

fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_go() {
        let v = serde_json::json!({"a": "<x>&\u{1}\n", "b": [], "c": {}, "d": [1, 2]});
        assert_eq!(
            String::from_utf8(to_vec(&v).unwrap()).unwrap(),
            r#"{"a":"\u003cx\u003e\u0026\u0001\n","b":[],"c":{},"d":[1,2]}"#
        );
        assert_eq!(
            String::from_utf8(to_vec_indent(&v, "", "  ").unwrap()).unwrap(),
            "{\n  \"a\": \"\\u003cx\\u003e\\u0026\\u0001\\n\",\n  \"b\": [],\n  \"c\": {},\n  \"d\": [\n    1,\n    2\n  ]\n}"
        );
    }
}
