//! Classifying a cleaned pattern and writing its regular expression, as patternmatcher
//! does before the first match.
//!
//! A pattern is scanned once, character by character, and becomes one of:
//!
//! - [`Kind::Exact`]: no wildcard at all; the path must equal the pattern (`abc.def`,
//!   `a(b)c/def`).
//! - [`Kind::Prefix`]: ends in `**` and had no wildcard before it (`dir/**`, `abc**`); the
//!   path must start with the pattern minus the `**`.
//! - [`Kind::Suffix`]: starts with `**` and has no other wildcard (`**`, `**/dir`,
//!   `**file`); the path must end with the pattern minus the `**`, and `**/foo` also
//!   matches `foo` itself.
//! - [`Kind::Regex`]: anything else, through a regular expression written in Go's syntax
//!   (the one upstream feeds to Go's `regexp`): `*` → `[^/]*`, `?` → `[^/]`, `**` followed by
//!   more → `(.*/)?` (a `/` right after `**` is eaten), a trailing `**` → `.*`, `\x` → `\x`,
//!   the regexp metacharacters `.+()|{}$` escaped, and everything else — `[`, `]`, `^`
//!   included — copied as is. That last rule is why class syntax ends up interpreted by
//!   the regexp engine, and why `go_regex` reads Go's syntax rather than ours.
//!
//! The classification is not only an optimisation: `**file` matches `dir/myfile` as a
//! suffix, which its regular expression `^(.*/)?file$` would not.

/// How a pattern is matched; see the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    Exact,
    Prefix,
    Suffix,
    /// The regular expression in Go syntax, anchored with `^` and `$`.
    Regex(String),
}

/// Characters that are regexp metacharacters but mean nothing special in a pattern.
fn is_regex_only_meta(c: char) -> bool {
    matches!(c, '.' | '+' | '(' | ')' | '|' | '{' | '}' | '$')
}

/// Classifies `pattern` (already cleaned, without its `!`) and writes its regular
/// expression when it needs one.
pub(crate) fn classify(pattern: &str) -> Kind {
    // Upstream scans with Go's `text/scanner`, which skips a byte-order mark at the start.
    let pattern = pattern.strip_prefix('\u{feff}').unwrap_or(pattern);
    let mut regex = String::from("^");
    let mut kind = KindSoFar::Exact;
    let mut chars = pattern.chars().peekable();
    let mut first = true;
    while let Some(c) = chars.next() {
        match c {
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                // `**/` is treated as `**`: the slash is eaten.
                if chars.peek() == Some(&'/') {
                    chars.next();
                }
                if chars.peek().is_none() {
                    if kind == KindSoFar::Exact {
                        kind = KindSoFar::Prefix;
                    } else {
                        regex.push_str(".*");
                        kind = KindSoFar::Regex;
                    }
                } else {
                    // Any number of directories, including none.
                    regex.push_str("(.*/)?");
                    kind = KindSoFar::Regex;
                }
                if first {
                    kind = KindSoFar::Suffix;
                }
            }
            '*' => {
                regex.push_str("[^/]*");
                kind = KindSoFar::Regex;
            }
            '?' => {
                regex.push_str("[^/]");
                kind = KindSoFar::Regex;
            }
            '\\' => match chars.next() {
                Some(escaped) => {
                    regex.push('\\');
                    regex.push(escaped);
                    kind = KindSoFar::Regex;
                }
                // The syntax check rejects a trailing backslash before we get here;
                // upstream keeps it as an escaped backslash.
                None => regex.push('\\'),
            },
            c if is_regex_only_meta(c) => {
                regex.push('\\');
                regex.push(c);
            }
            '[' | ']' => {
                regex.push(c);
                kind = KindSoFar::Regex;
            }
            c => regex.push(c),
        }
        first = false;
    }
    match kind {
        KindSoFar::Exact => Kind::Exact,
        KindSoFar::Prefix => Kind::Prefix,
        KindSoFar::Suffix => Kind::Suffix,
        KindSoFar::Regex => {
            regex.push('$');
            Kind::Regex(regex)
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KindSoFar {
    Exact,
    Prefix,
    Suffix,
    Regex,
}

#[cfg(test)]
mod tests {
    use super::{classify, Kind};

    fn regex(source: &str) -> Kind {
        Kind::Regex(source.to_owned())
    }

    #[test]
    fn classifies_wildcards_escapes_and_metacharacters() {
        let cases = [
            ("a?c/*.md", regex("^a[^/]c/[^/]*\\.md$")),
            ("abc**", Kind::Prefix),
            ("docs/**", Kind::Prefix),
            ("**", Kind::Suffix),
            ("**.txt", Kind::Suffix),
            ("**/a/**", regex("^(.*/)?a/.*$")),
            ("x/**/y", regex("^x/(.*/)?y$")),
            (r"a\*b", regex(r"^a\*b$")),
            ("a^b", Kind::Exact),
            ("a+b{1}", Kind::Exact),
            ("[ab]", regex("^[ab]$")),
            ("a]b", regex("^a]b$")),
            ("\u{feff}*.go", regex("^[^/]*\\.go$")),
            ("\u{feff}**", Kind::Suffix),
        ];
        for (pattern, want) in cases {
            assert_eq!(classify(pattern), want, "classify({pattern:?})");
        }
    }

    /// Upstream's `TestCompile` table: how each pattern is classified and, for regular
    /// expressions, the exact Go expression written (for `/` separators).
    #[test]
    fn internal_compile_conformance() {
        let Some(dir) = hoist_testkit::conformance_dir("moby-patternmatcher-dockerignore") else {
            return;
        };
        let path = dir.join("matches.json");
        let text = std::fs::read_to_string(&path).unwrap();
        let data: serde_json::Value = serde_json::from_str(&text).unwrap();
        let cases = data
            .pointer("/internal_compile/cases")
            .and_then(|v| v.as_array())
            .unwrap();
        let mut failures = Vec::new();
        for case in cases {
            let pattern = case["pattern"].as_str().unwrap();
            let want = match case["match_type"].as_str().unwrap() {
                "exactMatch" => Kind::Exact,
                "prefixMatch" => Kind::Prefix,
                "suffixMatch" => Kind::Suffix,
                "regexpMatch" => regex(case["regexp_slash"].as_str().unwrap()),
                other => panic!("unknown match type {other}"),
            };
            let got = classify(pattern);
            if got != want {
                failures.push(format!("{pattern:?}: want {want:?}, got {got:?}"));
            }
        }
        eprintln!(
            "moby-patternmatcher compile: {}/{} passed",
            cases.len() - failures.len(),
            cases.len()
        );
        assert!(
            failures.is_empty(),
            "failing cases:\n{}",
            failures.join("\n")
        );
    }
}
