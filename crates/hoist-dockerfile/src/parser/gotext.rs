//! Go's text semantics that BuildKit's parser leans on, so our output matches it byte for byte.
//!
//! BuildKit is written in Go, and several of its parser steps call Go library functions whose
//! exact behaviour shows in the AST: `unicode.IsSpace`, `unicode.IsLetter`/`IsDigit`,
//! `strings.ToLower` (rune by rune, no special casing), `strings.TrimSpace` and
//! `strconv.Quote` (used by the AST dump and by some error messages). Rust's own helpers differ
//! in small ways (`char::is_alphabetic` is not the `L` category, `str::to_lowercase` applies
//! final-sigma rules, `{:?}` escapes differently), so the few we need are spelled out here.

use std::fmt::Write as _;

use unicode_general_category::{get_general_category, GeneralCategory as Gc};

/// Go's `unicode.IsSpace`: the Unicode `White_Space` property, which is what Rust's
/// `char::is_whitespace` tests too.
pub(crate) fn is_space(c: char) -> bool {
    c.is_whitespace()
}

/// Go's `unicode.IsSpace(rune(b))` applied to a single byte, as BuildKit does in its
/// byte-wise scanners (flag extraction, HEALTHCHECK): bytes 0x85 and 0xA0 count as spaces.
pub(crate) fn is_space_byte(b: u8) -> bool {
    matches!(b, b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ' | 0x85 | 0xa0)
}

/// Go's `strings.TrimSpace`.
pub(crate) fn trim_space(s: &str) -> &str {
    s.trim_matches(is_space)
}

/// Go's `unicode.IsLetter`: general category `L`.
pub(crate) fn is_letter(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphabetic();
    }
    matches!(
        get_general_category(c),
        Gc::UppercaseLetter
            | Gc::LowercaseLetter
            | Gc::TitlecaseLetter
            | Gc::ModifierLetter
            | Gc::OtherLetter
    )
}

/// Go's `unicode.IsDigit`: general category `Nd`.
pub(crate) fn is_digit(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_digit();
    }
    get_general_category(c) == Gc::DecimalNumber
}

/// Go's `strconv.IsPrint`: letters, marks, numbers, punctuation, symbols and the ASCII space.
pub(crate) fn is_print(c: char) -> bool {
    if c.is_ascii() {
        return (' '..='~').contains(&c);
    }
    matches!(
        get_general_category(c),
        Gc::UppercaseLetter
            | Gc::LowercaseLetter
            | Gc::TitlecaseLetter
            | Gc::ModifierLetter
            | Gc::OtherLetter
            | Gc::NonspacingMark
            | Gc::SpacingMark
            | Gc::EnclosingMark
            | Gc::DecimalNumber
            | Gc::LetterNumber
            | Gc::OtherNumber
            | Gc::ConnectorPunctuation
            | Gc::DashPunctuation
            | Gc::OpenPunctuation
            | Gc::ClosePunctuation
            | Gc::InitialPunctuation
            | Gc::FinalPunctuation
            | Gc::OtherPunctuation
            | Gc::MathSymbol
            | Gc::CurrencySymbol
            | Gc::ModifierSymbol
            | Gc::OtherSymbol
    )
}

/// Go's `strings.ToLower`: every rune mapped on its own by `unicode.ToLower`. Where Rust's
/// mapping yields several characters (only U+0130) Go keeps the first.
pub(crate) fn to_lower(s: &str) -> String {
    if s.is_ascii() {
        return s.to_ascii_lowercase();
    }
    s.chars()
        .map(|c| c.to_lowercase().next().unwrap_or(c))
        .collect()
}

/// Go's `strconv.Quote`.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    push_quoted(&mut out, s);
    out
}

/// Appends `strconv.Quote(s)` to `out`.
pub(crate) fn push_quoted(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if is_print(c) => out.push(c),
            '\u{07}' => out.push_str("\\a"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{0b}' => out.push_str("\\v"),
            c if c < ' ' || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c if u32::from(c) < 0x10000 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => {
                let _ = write!(out, "\\U{:08x}", u32::from(c));
            }
        }
    }
    out.push('"');
}

/// The text of `bytes` when BuildKit's byte-wise code may have cut a character in two: valid
/// UTF-8 is kept as is, a cut character becomes U+FFFD (Go would keep the raw bytes).
pub(crate) fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_matches_go() {
        assert_eq!(quote("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(quote("\u{7}\u{8}\u{c}\n\r\t\u{b}"), r#""\a\b\f\n\r\t\v""#);
        assert_eq!(quote("\u{0}\u{1f}\u{7f}"), r#""\x00\x1f\x7f""#);
        assert_eq!(quote("♥ é ☃"), "\"♥ é ☃\"");
        assert_eq!(quote("\u{a0}\u{ad}\u{2028}"), r#""\u00a0\u00ad\u2028""#);
        assert_eq!(quote("\u{e0000}"), r#""\U000e0000""#);
        assert_eq!(quote("😀"), "\"😀\"");
    }

    #[test]
    fn lower_is_rune_by_rune() {
        assert_eq!(to_lower("RUN"), "run");
        assert_eq!(to_lower("MA\u{130}NTAINER"), "maintainer");
        assert_eq!(to_lower("ΣΑΣ"), "σασ");
        assert_eq!(to_lower("WOR\u{212a}DIR"), "workdir");
    }

    #[test]
    fn categories() {
        assert!(is_letter('é') && !is_letter('1') && !is_letter('_'));
        assert!(is_digit('٣') && !is_digit('²'));
        assert!(is_space_byte(0xa0) && !is_space_byte(0xc3));
        assert_eq!(trim_space("\u{a0} x \u{85}"), "x");
    }
}
