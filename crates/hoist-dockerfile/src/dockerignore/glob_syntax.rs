//! The syntax check patternmatcher runs on every pattern when the matcher is built.
//!
//! Upstream calls Go's `filepath.Match(pattern, ".")` only for its error, so a pattern is
//! rejected up front exactly when `filepath.Match` (on Unix) calls it malformed:
//!
//! - a `\` must be followed by a character (it escapes it);
//! - a `[` opens a class that must be closed by a `]`, optionally negated with `^`, made of
//!   characters or `lo-hi` ranges, where neither end may be an unescaped `-` or `]` (so
//!   `[]a]`, `[-]`, `[x-]`, `[a-b-c]` are all errors), and `\` escapes inside it too.
//!
//! Ranges are not checked for order here (`[z-a]` passes), and `*`, `?` and `[` are
//! ordinary characters inside a class. Some patterns that pass this check still fail
//! later, when they are compiled to a regular expression (see `compile`).

/// Checks `pattern` the way Go's `filepath.Match` does; the error says what is wrong.
pub(crate) fn check(pattern: &str) -> Result<(), String> {
    let mut chars = pattern.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        match c {
            // The guard consumes the escaped character, so an escaped `[` opens nothing.
            '\\' if chars.next().is_none() => {
                return Err("trailing backslash escapes nothing".to_owned());
            }
            '[' => check_class(&mut chars, at)?,
            _ => {}
        }
    }
    Ok(())
}

type Chars<'a> = std::iter::Peekable<std::str::CharIndices<'a>>;

/// Checks one `[...]` class whose `[` was at byte `open`, consuming it up to its `]`.
fn check_class(chars: &mut Chars<'_>, open: usize) -> Result<(), String> {
    let unterminated = || format!("character class opened at byte {open} is not closed");
    if chars.peek().map(|&(_, c)| c) == Some('^') {
        chars.next();
    }
    let mut ranges = 0usize;
    loop {
        match chars.peek().map(|&(_, c)| c) {
            Some(']') if ranges > 0 => {
                chars.next();
                return Ok(());
            }
            None => return Err(unterminated()),
            _ => {}
        }
        class_char(chars, open)?;
        if chars.peek().is_none() {
            return Err(unterminated());
        }
        if chars.peek().map(|&(_, c)| c) == Some('-') {
            chars.next();
            class_char(chars, open)?;
            if chars.peek().is_none() {
                return Err(unterminated());
            }
        }
        ranges += 1;
    }
}

/// One possibly escaped character of a class (an end of a range).
fn class_char(chars: &mut Chars<'_>, open: usize) -> Result<(), String> {
    match chars.next() {
        None => Err(format!(
            "character class opened at byte {open} is not closed"
        )),
        Some((at, c @ ('-' | ']'))) => Err(format!(
            "unescaped '{c}' at byte {at} in the character class opened at byte {open}"
        )),
        Some((_, '\\')) => match chars.next() {
            Some(_) => Ok(()),
            None => Err(format!(
                "character class opened at byte {open} ends with a backslash"
            )),
        },
        Some(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn accepts_what_go_filepath_match_accepts() {
        for pattern in [
            "abc",
            "a*b?c",
            "ab[c]",
            "ab[^b-d]",
            r"a\*b",
            r"[\]a]",
            r"[\-]",
            r"[x\-]",
            r"[\-x]",
            "[a-ζ]*",
            "[Local-Only]",
            "[z-a]",
            "[*]",
            "[[]",
            "a]b",
            "**/x",
        ] {
            assert!(check(pattern).is_ok(), "{pattern:?} should pass");
        }
    }

    #[test]
    fn rejects_what_go_filepath_match_rejects() {
        for pattern in [
            "[]a]", "[-]", "[x-]", "[-x]", "\\", "[a-b-c]", "[", "[^", "[^bc", "a[", "a\\", "[\\",
            "[a\\", "[]", "[^]", "[a-", "[a-\\",
        ] {
            assert!(check(pattern).is_err(), "{pattern:?} should fail");
        }
    }
}
