//! The JSON BuildKit reads: exec-form arrays (`CMD ["a", "b"]`) and `{"syntax": ...}` files.
//!
//! BuildKit decodes with Go's `encoding/json` into `[]any` / `map[string]any`, and the exact
//! outcome decides between exec form, shell-form fallback and a hard error. We need that
//! outcome, not a JSON value, so this is a small validating reader rather than `serde_json`:
//! Go turns lone UTF-16 surrogates (`"\ud800"`) into U+FFFD where serde_json fails, rejects
//! numbers that overflow a float64 (which makes BuildKit fall back to shell form instead of
//! reporting "not a string array"), and limits nesting to 10000 levels. The reader keeps an
//! explicit stack, so hostile nesting cannot overflow ours.

/// Why a text is not an exec-form (JSON string array) argument list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecFormError {
    /// The text does not start with `[`: it is shell form.
    NotJsonArray,
    /// The text starts with `[` but is not valid JSON: BuildKit falls back to shell form.
    Invalid(String),
    /// Valid JSON array with an element that is not a string: a hard error in BuildKit.
    NotStringArray,
}

impl std::fmt::Display for ExecFormError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotJsonArray => f.write_str("not a JSON array"),
            Self::Invalid(message) => f.write_str(message),
            Self::NotStringArray => f.write_str(NOT_STRING_ARRAY),
        }
    }
}

impl std::error::Error for ExecFormError {}

/// BuildKit's text for a JSON array holding something other than strings.
pub(crate) const NOT_STRING_ARRAY: &str =
    "when using JSON array syntax, arrays must be comprised of strings only";

/// Go's `encoding/json` nesting limit.
const MAX_DEPTH: usize = 10_000;

/// Parses exec-form arguments the way BuildKit's `parseJSON` does: leading whitespace is
/// skipped, the text must start with `[`, be valid JSON and hold only strings.
pub fn parse_exec_form(text: &str) -> Result<Vec<String>, ExecFormError> {
    let text = text.trim_start_matches(super::gotext::is_space);
    if !text.starts_with('[') {
        return Err(ExecFormError::NotJsonArray);
    }
    match parse_top(text).map_err(ExecFormError::Invalid)? {
        Top::Array(items) => items
            .into_iter()
            .map(|item| item.ok_or(ExecFormError::NotStringArray))
            .collect(),
        Top::Object(_) | Top::Scalar => Err(ExecFormError::NotJsonArray),
    }
}

/// The string value of `key` in a JSON object document, as Go's `json.Unmarshal` into a
/// `map[string]any` followed by a string type assertion finds it (the last duplicate wins).
pub(crate) fn object_string_member(text: &str, key: &str) -> Option<String> {
    match parse_top(text).ok()? {
        Top::Object(members) => members
            .into_iter()
            .rev()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v),
        Top::Array(_) | Top::Scalar => None,
    }
}

/// What a valid document holds at its top level; `None` for members that are not strings.
enum Top {
    Array(Vec<Option<String>>),
    Object(Vec<(String, Option<String>)>),
    Scalar,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Expect {
    Value,
    ValueOrEnd,
    Key,
    KeyOrEnd,
    After,
}

struct Reader<'a> {
    text: &'a str,
    pos: usize,
}

fn parse_top(text: &str) -> Result<Top, String> {
    let mut r = Reader { text, pos: 0 };
    let mut stack: Vec<u8> = Vec::new();
    let mut top = Top::Scalar;
    let mut pending_key = String::new();
    let mut expect = Expect::Value;
    loop {
        r.skip_ws();
        match expect {
            Expect::Value | Expect::ValueOrEnd => {
                let c = r.peek().ok_or_else(unexpected_end)?;
                if expect == Expect::ValueOrEnd && c == b']' {
                    r.pos += 1;
                    stack.pop();
                    expect = Expect::After;
                    continue;
                }
                let depth = stack.len();
                let value: Option<String> = match c {
                    b'[' | b'{' => {
                        r.pos += 1;
                        if depth == 0 {
                            top = if c == b'[' {
                                Top::Array(Vec::new())
                            } else {
                                Top::Object(Vec::new())
                            };
                        } else if depth == 1 {
                            record(&mut top, &mut pending_key, None);
                        }
                        stack.push(c);
                        if stack.len() > MAX_DEPTH {
                            return Err("exceeded max depth".to_string());
                        }
                        expect = if c == b'[' {
                            Expect::ValueOrEnd
                        } else {
                            Expect::KeyOrEnd
                        };
                        continue;
                    }
                    b'"' => Some(r.string()?),
                    b'-' | b'0'..=b'9' => {
                        r.number()?;
                        None
                    }
                    b't' => r.literal("true").map(|()| None)?,
                    b'f' => r.literal("false").map(|()| None)?,
                    b'n' => r.literal("null").map(|()| None)?,
                    _ => return Err(r.invalid("looking for beginning of value")),
                };
                if depth == 1 {
                    record(&mut top, &mut pending_key, value);
                }
                expect = Expect::After;
            }
            Expect::Key | Expect::KeyOrEnd => {
                let c = r.peek().ok_or_else(unexpected_end)?;
                if expect == Expect::KeyOrEnd && c == b'}' {
                    r.pos += 1;
                    stack.pop();
                    expect = Expect::After;
                    continue;
                }
                if c != b'"' {
                    return Err(r.invalid("looking for beginning of object key string"));
                }
                let key = r.string()?;
                if stack.len() == 1 {
                    pending_key = key;
                }
                r.skip_ws();
                if r.peek() != Some(b':') {
                    return Err(r.invalid("after object key"));
                }
                r.pos += 1;
                expect = Expect::Value;
            }
            Expect::After => match stack.last() {
                None => {
                    if r.pos != r.text.len() {
                        return Err(r.invalid("after top-level value"));
                    }
                    return Ok(top);
                }
                Some(&open) => {
                    let c = r.peek().ok_or_else(unexpected_end)?;
                    let close = if open == b'[' { b']' } else { b'}' };
                    r.pos += 1;
                    if c == b',' {
                        expect = if open == b'[' {
                            Expect::Value
                        } else {
                            Expect::Key
                        };
                    } else if c == close {
                        stack.pop();
                    } else {
                        r.pos -= 1;
                        return Err(r.invalid("after array element or object value"));
                    }
                }
            },
        }
    }
}

fn record(top: &mut Top, pending_key: &mut String, value: Option<String>) {
    match top {
        Top::Array(items) => items.push(value),
        Top::Object(members) => members.push((std::mem::take(pending_key), value)),
        Top::Scalar => {}
    }
}

fn unexpected_end() -> String {
    "unexpected end of JSON input".to_string()
}

impl Reader<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn invalid(&self, context: &str) -> String {
        match self.text[self.pos..].chars().next() {
            Some(c) => format!("invalid character {c:?} {context}"),
            None => unexpected_end(),
        }
    }

    fn literal(&mut self, word: &str) -> Result<(), String> {
        if self.text[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(self.invalid("in literal"))
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
        self.pos - start
    }

    /// A JSON number; Go's decoder into `any` also fails when it overflows a float64.
    fn number(&mut self) -> Result<(), String> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.invalid("in numeric literal")),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err(self.invalid("after decimal point in numeric literal"));
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(self.invalid("in exponent of numeric literal"));
            }
        }
        let literal = &self.text[start..self.pos];
        match literal.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(()),
            _ => Err(format!(
                "json: cannot unmarshal number {literal} into Go value of type float64"
            )),
        }
    }

    fn hex4(&self, at: usize) -> Option<u32> {
        let digits = self.text.as_bytes().get(at..at + 4)?;
        let text = std::str::from_utf8(digits).ok()?;
        if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u32::from_str_radix(text, 16).ok()
    }

    /// A JSON string starting at the opening quote, decoded as Go decodes it.
    fn string(&mut self) -> Result<String, String> {
        self.pos += 1;
        let mut out = String::new();
        let mut run = self.pos;
        loop {
            let Some(c) = self.peek() else {
                return Err(unexpected_end());
            };
            match c {
                b'"' => {
                    out.push_str(&self.text[run..self.pos]);
                    self.pos += 1;
                    return Ok(out);
                }
                0..=0x1f => return Err(self.invalid("in string literal")),
                b'\\' => {
                    out.push_str(&self.text[run..self.pos]);
                    self.pos += 1;
                    let Some(e) = self.peek() else {
                        return Err(unexpected_end());
                    };
                    self.pos += 1;
                    match e {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let Some(unit) = self.hex4(self.pos) else {
                                return Err(self.invalid("in \\u hexadecimal character escape"));
                            };
                            self.pos += 4;
                            out.push(self.decode_unit(unit));
                        }
                        _ => {
                            self.pos -= 1;
                            return Err(self.invalid("in string escape code"));
                        }
                    }
                    run = self.pos;
                }
                _ => self.pos += 1,
            }
        }
    }

    /// One `\uXXXX` unit: a surrogate pair is joined when a valid low half follows as
    /// another `\u` escape (which is then consumed), any other surrogate becomes U+FFFD.
    fn decode_unit(&mut self, unit: u32) -> char {
        if !(0xd800..0xe000).contains(&unit) {
            return char::from_u32(unit).unwrap_or('\u{fffd}');
        }
        let bytes = self.text.as_bytes();
        if (0xd800..0xdc00).contains(&unit)
            && bytes.get(self.pos) == Some(&b'\\')
            && bytes.get(self.pos + 1) == Some(&b'u')
        {
            if let Some(low) = self.hex4(self.pos + 2) {
                if (0xdc00..0xe000).contains(&low) {
                    self.pos += 6;
                    let joined = 0x10000 + ((unit - 0xd800) << 10) + (low - 0xdc00);
                    return char::from_u32(joined).unwrap_or('\u{fffd}');
                }
            }
        }
        '\u{fffd}'
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_form_basics() {
        assert_eq!(
            parse_exec_form(r#"["a", "b"]"#),
            Ok(vec!["a".into(), "b".into()])
        );
        assert_eq!(parse_exec_form("  []"), Ok(vec![]));
        assert_eq!(parse_exec_form("a"), Err(ExecFormError::NotJsonArray));
        assert!(matches!(
            parse_exec_form("[\"a\""),
            Err(ExecFormError::Invalid(_))
        ));
        assert_eq!(parse_exec_form("[1]"), Err(ExecFormError::NotStringArray));
        assert_eq!(
            parse_exec_form("[[\"a\"]]"),
            Err(ExecFormError::NotStringArray)
        );
    }

    #[test]
    fn go_quirks() {
        assert_eq!(
            parse_exec_form(r#"["\ud800"]"#),
            Ok(vec!["\u{fffd}".into()])
        );
        assert_eq!(
            parse_exec_form(r#"["\ud83d\ude00"]"#),
            Ok(vec!["😀".into()])
        );
        assert_eq!(
            parse_exec_form(r#"["\ud83dx\udc00"]"#),
            Ok(vec!["\u{fffd}x\u{fffd}".into()])
        );
        // an overflowing number is a decode error, so not "not a string array"
        assert!(matches!(
            parse_exec_form("[\"a\", 1e400]"),
            Err(ExecFormError::Invalid(_))
        ));
        assert!(matches!(
            parse_exec_form("[01]"),
            Err(ExecFormError::Invalid(_))
        ));
        assert!(matches!(
            parse_exec_form("[\"a\"] x"),
            Err(ExecFormError::Invalid(_))
        ));
        assert!(matches!(
            parse_exec_form("[\"a\",]"),
            Err(ExecFormError::Invalid(_))
        ));
    }

    #[test]
    fn nesting_limit() {
        let ok = format!("[{}{}]", "[".repeat(9_999), "]".repeat(9_999));
        assert_eq!(parse_exec_form(&ok), Err(ExecFormError::NotStringArray));
        let deep = format!("[{}{}]", "[".repeat(10_000), "]".repeat(10_000));
        assert!(matches!(
            parse_exec_form(&deep),
            Err(ExecFormError::Invalid(_))
        ));
        let huge = "[".repeat(200_000);
        assert!(matches!(
            parse_exec_form(&huge),
            Err(ExecFormError::Invalid(_))
        ));
    }

    #[test]
    fn object_members() {
        let doc = r#"{"syntax": "foo", "bar": ["abc"], "syntax": "baz"}"#;
        assert_eq!(object_string_member(doc, "syntax").as_deref(), Some("baz"));
        assert_eq!(object_string_member(r#"{"syntax": 1}"#, "syntax"), None);
        assert_eq!(
            object_string_member(r#"{"a": {"syntax": "x"}}"#, "syntax"),
            None
        );
        assert_eq!(object_string_member(r#"{"syntax": "foo""#, "syntax"), None);
    }
}
