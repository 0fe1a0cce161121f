//! Character classes and string quoting with the exact meaning BuildKit's Go code gives them.
//!
//! Variable names are made of what Go calls letters (general category `L`) and decimal
//! digits (`Nd`), which is narrower than Rust's `char::is_alphabetic` / `is_numeric`
//! (those also take `Nl`, `No` and combining marks). Error messages quote the word the way
//! Go's `%q` does. The Unicode tables come from the `regex` crate we already depend on,
//! rather than from a hand-copied table.

use std::sync::LazyLock;

use regex::Regex;

/// A word character: Go's `unicode.IsLetter || unicode.IsDigit || '_'`, anchored.
static NAME_CHAR: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(r"^[\p{L}\p{Nd}_]$").ok());
/// A decimal digit: Go's `unicode.IsDigit`.
static DIGIT: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(r"^\p{Nd}$").ok());
/// A printable character for `%q`: Go's `strconv.IsPrint` minus the ASCII space.
static PRINTABLE: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^[\p{L}\p{M}\p{N}\p{P}\p{S}]$").ok());

fn class_matches(class: &LazyLock<Option<Regex>>, ch: char) -> bool {
    let mut buf = [0u8; 4];
    class
        .as_ref()
        .is_some_and(|re| re.is_match(ch.encode_utf8(&mut buf)))
}

/// Go's `unicode.IsDigit`: general category `Nd`, any script.
pub(crate) fn is_digit(ch: char) -> bool {
    if ch.is_ascii() {
        return ch.is_ascii_digit();
    }
    class_matches(&DIGIT, ch)
}

/// A character that may continue a variable name: Go letter, Go digit or `_`.
pub(crate) fn is_name_char(ch: char) -> bool {
    if ch.is_ascii() {
        return ch.is_ascii_alphanumeric() || ch == '_';
    }
    class_matches(&NAME_CHAR, ch)
}

/// The POSIX special parameters (`$@`, `$*`, `$#`, `$?`, `$-`, `$$`, `$!`, `$0`): one
/// character each, never set in a Dockerfile.
pub(crate) fn is_special_param(ch: char) -> bool {
    matches!(ch, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0')
}

/// How Go prints a rune that is not there (`string(rune(-1))`, `%c` of EOF): U+FFFD.
pub(crate) fn go_char(ch: Option<char>) -> char {
    ch.unwrap_or(char::REPLACEMENT_CHARACTER)
}

/// `s` quoted as Go's `%q` / `strconv.Quote` does, for error messages that must read like
/// BuildKit's (`failed to process "he${PWD": ...`).
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' | '\\' => {
                out.push('\\');
                out.push(ch);
            }
            ' ' => out.push(' '),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_ascii() || class_matches(&PRINTABLE, c) => out.push(c),
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_take_letters_and_decimal_digits_of_any_script() {
        assert!(is_name_char('한'));
        assert!(is_name_char('_'));
        assert!(is_name_char('٣')); // ARABIC-INDIC DIGIT THREE, Nd
        assert!(!is_name_char('Ⅻ')); // ROMAN NUMERAL TWELVE is Nl: not a Go letter or digit
        assert!(!is_name_char('\u{345}')); // a combining mark Rust calls alphabetic
        assert!(!is_name_char('.'));
        assert!(is_digit('٣'));
        assert!(!is_digit('²')); // No, not Nd
    }

    #[test]
    fn quoting_follows_go_percent_q() {
        assert_eq!(go_quote(r#"he"l\lo"#), r#""he\"l\\lo""#);
        assert_eq!(go_quote("a\tb\nc\u{0}d\u{7f}"), r#""a\tb\nc\x00d\x7f""#);
        assert_eq!(go_quote("한국어 ok"), "\"한국어 ok\"");
        assert_eq!(go_quote("\u{a0}\u{200b}"), r#""\u00a0\u200b""#);
        assert_eq!(go_quote("\u{e0001}"), r#""\U000e0001""#);
    }
}
