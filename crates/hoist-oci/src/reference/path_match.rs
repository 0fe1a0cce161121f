//! Go's `path.Match` shell patterns (`*`, `?`, `[a-z]`, `\` escapes; `*` and `?` never match
//! `/`), used by [`super::Reference::familiar_match`]. Written here because the Rust glob
//! crates treat `**`, `/` and malformed classes differently from Go.

/// The pattern is malformed (Go's `path.ErrBadPattern`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadPattern;

enum Token {
    Star,
    AnyChar,
    Literal(char),
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

/// Whether `name` matches the whole of `pattern`.
pub fn matches(pattern: &str, name: &str) -> Result<bool, BadPattern> {
    let tokens = tokenize(pattern)?;
    let name: Vec<char> = name.chars().collect();
    Ok(match_tokens(&tokens, &name))
}

fn tokenize(pattern: &str) -> Result<Vec<Token>, BadPattern> {
    let mut chars = pattern.chars().peekable();
    let mut tokens = Vec::new();
    while let Some(c) = chars.next() {
        let token = match c {
            '*' => Token::Star,
            '?' => Token::AnyChar,
            '\\' => Token::Literal(chars.next().ok_or(BadPattern)?),
            '[' => {
                let negated = chars.next_if_eq(&'^').is_some();
                let mut ranges = Vec::new();
                loop {
                    if !ranges.is_empty() && chars.next_if_eq(&']').is_some() {
                        break;
                    }
                    let lo = class_char(&mut chars)?;
                    let hi = if chars.next_if_eq(&'-').is_some() {
                        class_char(&mut chars)?
                    } else {
                        lo
                    };
                    ranges.push((lo, hi));
                }
                Token::Class { negated, ranges }
            }
            other => Token::Literal(other),
        };
        tokens.push(token);
    }
    Ok(tokens)
}

fn class_char(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Result<char, BadPattern> {
    match chars.next() {
        None | Some('-') | Some(']') => Err(BadPattern),
        Some('\\') => chars.next().ok_or(BadPattern),
        Some(c) => Ok(c),
    }
}

fn match_tokens(tokens: &[Token], name: &[char]) -> bool {
    let Some((first, rest)) = tokens.split_first() else {
        return name.is_empty();
    };
    match first {
        Token::Star => {
            // Try every run of non-'/' characters, shortest first.
            let mut i = 0;
            loop {
                if match_tokens(rest, &name[i..]) {
                    return true;
                }
                if i >= name.len() || name[i] == '/' {
                    return false;
                }
                i += 1;
            }
        }
        Token::AnyChar => match name.split_first() {
            Some((&c, tail)) if c != '/' => match_tokens(rest, tail),
            _ => false,
        },
        Token::Literal(l) => match name.split_first() {
            Some((&c, tail)) if c == *l => match_tokens(rest, tail),
            _ => false,
        },
        Token::Class { negated, ranges } => match name.split_first() {
            Some((&c, tail)) if c != '/' => {
                let inside = ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi);
                inside != *negated && match_tokens(rest, tail)
            }
            _ => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_path_match_basics() {
        assert_eq!(matches("foo/**/ba[rz]", "foo/a/bar"), Ok(true));
        assert_eq!(matches("foo/**/ba[rz]", "foo/any/bat"), Ok(false));
        assert_eq!(matches("*/foo", "a/b/foo"), Ok(false));
        assert_eq!(matches("a?c", "abc"), Ok(true));
        assert_eq!(matches("[^a]bc", "abc"), Ok(false));
        assert_eq!(matches("[-x]", "foo"), Err(BadPattern));
        assert_eq!(matches("a\\", "a"), Err(BadPattern));
    }
}
