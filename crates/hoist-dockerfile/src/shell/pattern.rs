//! Shell glob patterns for `${V#p}`, `${V##p}`, `${V%p}`, `${V%%p}`, `${V/p/r}`, `${V//p/r}`.
//!
//! As in BuildKit, a pattern knows `*` (any string), `?` (one character) and backslash
//! escapes of `*`, `?` and `\` (a backslash before `}` or `/` only protected that character
//! from ending the expansion and is dropped); there are no bracket expressions. A pattern is
//! translated into a regular expression and matched leftmost-first, so "shortest" and
//! "longest" are lazy and greedy stars. Suffix removal reverses both the pattern (keeping each
//! escape in front of its character) and the value, and removes a prefix instead.
//! `${V//p/r}` expands `$0` / `${0}` in the replacement to the matched text and `$$` to `$`,
//! because BuildKit hands the replacement to Go's `Regexp.ReplaceAllString`.

use regex::Regex;

use super::chars;

/// The regular expression text for a glob `pattern`. `greedy` picks longest-match stars,
/// `anchored` matches at the start only. Fails on a backslash before anything but `*`, `?`,
/// `\`, `}` or `/` (including a trailing backslash), with Go's message.
pub(crate) fn glob_to_regex(pattern: &str, greedy: bool, anchored: bool) -> Result<String, String> {
    let mut out = String::with_capacity(pattern.len() + 4);
    if anchored {
        out.push('^');
    }
    let star = if greedy { ".*" } else { ".*?" };
    // Go's text/scanner drops a byte-order mark at the very start of its input.
    let mut chars = pattern
        .strip_prefix('\u{feff}')
        .unwrap_or(pattern)
        .chars()
        .peekable();
    while let Some(ch) = chars.next() {
        match ch {
            '*' => out.push_str(star),
            '?' => out.push('.'),
            '\\' => {
                if matches!(chars.peek(), Some('}' | '/')) {
                    continue;
                }
                let escaped = chars.next();
                match escaped {
                    Some(c @ ('*' | '?' | '\\')) => {
                        out.push('\\');
                        out.push(c);
                    }
                    other => return Err(format!("invalid escape '\\{}'", chars::go_char(other))),
                }
            }
            '[' | ']' | '{' | '}' | '.' | '+' | '(' | ')' | '|' | '^' | '$' => {
                out.push('\\');
                out.push(ch);
            }
            // Everything else is literal in a regex outside a class (no `x` flag is set).
            c => out.push(c),
        }
    }
    Ok(out)
}

/// The compiled regex for a glob, or `invalid pattern (p) in substitution: why`.
fn compile(pattern: &str, greedy: bool, anchored: bool) -> Result<Regex, String> {
    glob_to_regex(pattern, greedy, anchored)
        .and_then(|text| Regex::new(&text).map_err(|e| e.to_string()))
        .map_err(|why| format!("invalid pattern ({pattern}) in substitution: {why}"))
}

/// `${V#p}` / `${V##p}`: `value` without the shortest (longest when `greedy`) prefix
/// matching `pattern`, or unchanged when none matches.
pub(crate) fn trim_prefix(pattern: &str, value: &str, greedy: bool) -> Result<String, String> {
    let re = compile(pattern, greedy, true)?;
    Ok(match re.find(value) {
        Some(m) => value[m.end()..].to_owned(),
        None => value.to_owned(),
    })
}

/// `${V%p}` / `${V%%p}`: `value` without the shortest (longest when `greedy`) suffix
/// matching `pattern`. A failing pattern is reported reversed, as BuildKit does.
pub(crate) fn trim_suffix(pattern: &str, value: &str, greedy: bool) -> Result<String, String> {
    let reversed_value: String = value.chars().rev().collect();
    let trimmed = trim_prefix(&reverse_pattern(pattern), &reversed_value, greedy)?;
    Ok(trimmed.chars().rev().collect())
}

/// Reverses a glob, keeping each backslash in front of the character it escapes
/// (`a\*c` → `c\*a`). A backslash that ends the pattern stays a lone unit.
pub(crate) fn reverse_pattern(pattern: &str) -> String {
    let mut units: Vec<(char, Option<char>)> = Vec::with_capacity(pattern.len());
    let mut chars = pattern.chars().peekable();
    while let Some(ch) = chars.next() {
        if ch == '\\' {
            if let Some(next) = chars.next() {
                units.push((ch, Some(next)));
                continue;
            }
        }
        units.push((ch, None));
    }
    let mut out = String::with_capacity(pattern.len());
    for (first, second) in units.into_iter().rev() {
        out.push(first);
        out.extend(second);
    }
    out
}

/// `${V/p/r}` (`all` false) or `${V//p/r}` (`all` true): `value` with the first (every)
/// longest match of `pattern` replaced.
pub(crate) fn replace(
    pattern: &str,
    value: &str,
    replacement: &str,
    all: bool,
) -> Result<String, String> {
    let re = compile(pattern, true, false)?;
    if !all {
        return Ok(match re.find(value) {
            Some(m) => format!("{}{replacement}{}", &value[..m.start()], &value[m.end()..]),
            None => value.to_owned(),
        });
    }
    // The regex crate's iterator skips an empty match right after a previous match, which is
    // exactly Go's "empty matches abutting a preceding match are ignored".
    let mut out = String::with_capacity(value.len());
    let mut last = 0;
    for m in re.find_iter(value) {
        out.push_str(&value[last..m.start()]);
        expand_template(&mut out, replacement, m.as_str());
        last = m.end();
    }
    out.push_str(&value[last..]);
    Ok(out)
}

/// Appends `template` to `out` as Go's `Regexp.Expand` does for a regex whose only group is
/// the whole match: `$$` is `$`, `$0` / `${0}` the match, any other `$name` / `${name}` (name
/// of letters, digits, `_`) nothing, and a `$` not followed by a name stays literal.
fn expand_template(out: &mut String, template: &str, whole: &str) {
    let mut rest = template;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        rest = &rest[at + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            out.push('$');
            rest = after;
            continue;
        }
        match template_name(rest) {
            Some((name, after)) => {
                if name == "0" {
                    out.push_str(whole);
                }
                rest = after;
            }
            None => out.push('$'),
        }
    }
    out.push_str(rest);
}

/// The group name after a `$` in a replacement template and the text after it, or `None`
/// when there is none (empty, or `${` without its `}`).
fn template_name(s: &str) -> Option<(&str, &str)> {
    let (body, braced) = match s.strip_prefix('{') {
        Some(body) => (body, true),
        None => (s, false),
    };
    let len = body
        .char_indices()
        .find(|&(_, c)| !chars::is_name_char(c))
        .map_or(body.len(), |(i, _)| i);
    if len == 0 {
        return None;
    }
    let (name, after) = body.split_at(len);
    if braced {
        return after.strip_prefix('}').map(|after| (name, after));
    }
    Some((name, after))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_become_go_style_regexes() {
        assert_eq!(glob_to_regex("*", true, true).unwrap(), "^.*");
        assert_eq!(glob_to_regex("*", false, false).unwrap(), ".*?");
        assert_eq!(glob_to_regex("a\\}b\\/", true, false).unwrap(), "a\\}b/");
        assert_eq!(glob_to_regex("#-&~ x", true, false).unwrap(), "#-&~ x");
        assert!(Regex::new(&glob_to_regex("#-&~ x[", true, false).unwrap()).is_ok());
        assert_eq!(
            glob_to_regex("\\x", true, true).unwrap_err(),
            "invalid escape '\\x'"
        );
        assert_eq!(
            glob_to_regex("\\", true, true).unwrap_err(),
            "invalid escape '\\\u{fffd}'"
        );
    }

    #[test]
    fn suffix_errors_name_the_reversed_pattern() {
        assert_eq!(
            trim_suffix("ab\\x", "v", false).unwrap_err(),
            "invalid pattern (\\xba) in substitution: invalid escape '\\x'"
        );
    }

    #[test]
    fn replace_all_expands_go_templates() {
        assert_eq!(replace("o", "foo", "[$0]", true).unwrap(), "f[o][o]");
        assert_eq!(replace("o", "foo", "${0}$$", true).unwrap(), "fo$o$");
        assert_eq!(replace("o", "foo", "$1$x${x}", true).unwrap(), "f");
        assert_eq!(
            replace("o", "foo", "$ ${ $한 ${0", true).unwrap(),
            "f$ ${  ${0$ ${  ${0"
        );
        // The first-match form takes the replacement literally.
        assert_eq!(replace("o", "foo", "$0", false).unwrap(), "f$0o");
    }

    #[test]
    fn replace_all_skips_empty_matches_after_a_match() {
        assert_eq!(replace("", "ab", "-", true).unwrap(), "-a-b-");
        assert_eq!(replace("*", "ab", "-", true).unwrap(), "-");
        assert_eq!(replace("", "한국", "-", true).unwrap(), "-한-국-");
    }
}
