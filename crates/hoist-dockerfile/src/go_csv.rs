//! One record of Go's `encoding/csv` (default reader: no lazy quotes, no trimming), the
//! grammar BuildKit reads `RUN --mount`/`--device` options in and buildx reads `-o` outputs
//! in: fields split on commas; a field that starts with `"` is quoted, `""` inside it is a
//! quote, and the closing quote must end the field. [`quote`] is the writer's side.

use std::fmt;

/// Why a record is not CSV. Displayed in Go's words: the first two are `csv.ErrQuote`,
/// the last `csv.ErrBareQuote`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CsvError {
    /// A quoted field is not closed.
    Unterminated,
    /// A quoted field's closing quote is followed by this instead of a comma.
    AfterQuote(char),
    /// A `"` inside a field that did not start with one.
    BareQuote,
}

impl fmt::Display for CsvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CsvError::Unterminated | CsvError::AfterQuote(_) => {
                "extraneous or missing \" in quoted-field"
            }
            CsvError::BareQuote => "bare \" in non-quoted-field",
        })
    }
}

impl std::error::Error for CsvError {}

/// Splits one CSV record into its fields (an empty record is one empty field).
pub fn fields(record: &str) -> Result<Vec<String>, CsvError> {
    let mut fields = Vec::new();
    let mut chars = record.chars().peekable();
    loop {
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err(CsvError::Unterminated),
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                }
            }
            match chars.next() {
                None => {
                    fields.push(field);
                    return Ok(fields);
                }
                Some(',') => fields.push(field),
                Some(c) => return Err(CsvError::AfterQuote(c)),
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        fields.push(field);
                        return Ok(fields);
                    }
                    Some(',') => break,
                    Some('"') => return Err(CsvError::BareQuote),
                    Some(c) => field.push(c),
                }
            }
            fields.push(field);
        }
    }
}

/// `value` as one CSV field: quoted (inner quotes doubled) when it holds a comma or a quote.
pub fn quote(value: &str) -> String {
    if value.contains([',', '"']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_split_as_go_encoding_csv_does() {
        let ok = |record: &str| fields(record).unwrap_or_else(|e| panic!("{record}: {e}"));
        assert_eq!(ok(""), [""]);
        assert_eq!(ok("a,b,,c"), ["a", "b", "", "c"]);
        assert_eq!(ok("a,"), ["a", ""]);
        assert_eq!(ok(r#""x,y",z"#), ["x,y", "z"]);
        assert_eq!(ok(r#""say ""hi""""#), [r#"say "hi""#]);
        assert_eq!(ok(r#"type=image,"name=a,b""#), ["type=image", "name=a,b"]);
        assert_eq!(fields(r#""open"#), Err(CsvError::Unterminated));
        assert_eq!(fields(r#""a"b"#), Err(CsvError::AfterQuote('b')));
        assert_eq!(fields(r#"a"b"#), Err(CsvError::BareQuote));
        assert_eq!(
            CsvError::BareQuote.to_string(),
            "bare \" in non-quoted-field"
        );
        assert_eq!(
            CsvError::AfterQuote('b').to_string(),
            "extraneous or missing \" in quoted-field"
        );
        for value in ["plain", "a,b", r#"say "hi""#] {
            assert_eq!(ok(&quote(value)), [value], "{value}");
        }
    }
}
