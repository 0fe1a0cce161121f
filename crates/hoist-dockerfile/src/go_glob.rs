//! Go's `path/filepath.Match` for one path component: the wildcard grammar BuildKit's file
//! copies use for `COPY`/`ADD` sources (fsutil resolves each component with it).
//!
//! ```text
//! pattern  := { term }
//! term     := '*'                 any run of characters but '/'
//!           | '?'                 one character but '/'
//!           | '[' [ '^' ] { range } ']'   a class, never empty
//!           | '\' c               the character c
//!           | c                   the character c (not '*', '?', '\', '[')
//! range    := c | '\' c | lo '-' hi
//! ```
//!
//! It differs from `.dockerignore` patterns (moby/patternmatcher, [`crate::dockerignore`]):
//! there a `*` inside a class is turned into a wildcard, here `[*]` is a literal `*`.

use std::fmt;

/// The pattern is malformed (Go's `filepath.ErrBadPattern`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadPattern {
    pub pattern: String,
}

impl fmt::Display for BadPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "syntax error in pattern {:?}", self.pattern)
    }
}

impl std::error::Error for BadPattern {}

/// Whether `name` (one component, no `/`) matches `pattern` entirely. A malformed pattern
/// is an error whether or not it would have matched, as in Go.
pub fn matches(pattern: &str, name: &str) -> Result<bool, BadPattern> {
    let bad = || BadPattern {
        pattern: pattern.to_owned(),
    };
    let p: Vec<char> = pattern.chars().collect();
    let terms = parse(&p).ok_or_else(bad)?;
    let n: Vec<char> = name.chars().collect();
    Ok(match_terms(&terms, &n))
}

/// One term of a parsed pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Term {
    Star,
    Any,
    Char(char),
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

fn parse(p: &[char]) -> Option<Vec<Term>> {
    let mut terms = Vec::new();
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            '*' => {
                if terms.last() != Some(&Term::Star) {
                    terms.push(Term::Star);
                }
                i += 1;
            }
            '?' => {
                terms.push(Term::Any);
                i += 1;
            }
            '\\' => {
                terms.push(Term::Char(*p.get(i + 1)?));
                i += 2;
            }
            '[' => {
                i += 1;
                let negated = p.get(i) == Some(&'^');
                if negated {
                    i += 1;
                }
                let mut ranges = Vec::new();
                loop {
                    if p.get(i) == Some(&']') && !ranges.is_empty() {
                        i += 1;
                        break;
                    }
                    let (lo, next) = class_char(p, i)?;
                    i = next;
                    let mut hi = lo;
                    if p.get(i) == Some(&'-') {
                        let (h, next) = class_char(p, i + 1)?;
                        if h < lo {
                            return None;
                        }
                        hi = h;
                        i = next;
                    }
                    ranges.push((lo, hi));
                }
                terms.push(Term::Class { negated, ranges });
            }
            c => {
                terms.push(Term::Char(c));
                i += 1;
            }
        }
    }
    Some(terms)
}

/// A character of a class at `i` (escaped or not) and the index after it; `-` and `]` must
/// be escaped there, and the pattern must not end.
fn class_char(p: &[char], i: usize) -> Option<(char, usize)> {
    match *p.get(i)? {
        '-' | ']' => None,
        '\\' => Some((*p.get(i + 1)?, i + 2)),
        c => Some((c, i + 1)),
    }
}

fn match_terms(terms: &[Term], n: &[char]) -> bool {
    let Some((term, rest)) = terms.split_first() else {
        return n.is_empty();
    };
    match (term, n.split_first()) {
        // A star takes any run of characters up to a separator, shortest first.
        (Term::Star, _) => (0..=n.len())
            .take_while(|&i| i == 0 || n[i - 1] != '/')
            .any(|i| match_terms(rest, &n[i..])),
        (_, Some((&c, n_rest))) => one_char(term, c) && match_terms(rest, n_rest),
        (_, None) => false,
    }
}

/// Whether the one-character term `term` takes `c`.
fn one_char(term: &Term, c: char) -> bool {
    match term {
        Term::Any => c != '/',
        Term::Char(want) => c == *want,
        Term::Class { negated, ranges } => {
            c != '/' && ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated
        }
        // Stars take runs, in `match_terms`.
        Term::Star => false,
    }
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn go_filepath_match_cases() {
        // (pattern, name, matches) as Go's filepath.Match answers them.
        let cases = [
            ("abc", "abc", true),
            ("*", "abc", true),
            ("*c", "abc", true),
            ("a*", "a", true),
            ("a*", "abc", true),
            ("a*b*c*d*e*/f", "axbxcxdxe/f", true),
            ("a*b?c*x", "abxbbxdbxebxczzx", true),
            ("a*b?c*x", "abxbbxdbxebxczzy", false),
            ("ab[c]", "abc", true),
            ("ab[b-d]", "abc", true),
            ("ab[e-g]", "abc", false),
            ("ab[^c]", "abc", false),
            ("ab[^b-d]", "abc", false),
            ("ab[^e-g]", "abc", true),
            ("a\\*b", "a*b", true),
            ("a\\*b", "ab", false),
            ("a?b", "a☺b", true),
            ("a[^a]b", "a☺b", true),
            ("a???b", "a☺b", false),
            ("[a-ζ]*", "α", true),
            ("*[a-ζ]", "A", false),
            ("a?b", "a/b", false),
            ("a*b", "a/b", false),
            ("[\\]a]", "]", true),
            ("[\\-]", "-", true),
            ("[x\\-]", "x", true),
            ("[x\\-]", "-", true),
            ("[x\\-]", "z", false),
            ("[\\-x]", "a", false),
            // The literal star of BuildKit's COPY, which .dockerignore patterns get wrong.
            ("star[*].txt", "star*.txt", true),
            ("star[*].txt", "starX.txt", false),
        ];
        for (pattern, name, want) in cases {
            assert_eq!(matches(pattern, name), Ok(want), "{pattern:?} {name:?}");
        }
    }

    #[test]
    fn malformed_patterns_are_errors() {
        for pattern in [
            "[]a]", "[-]", "[x-]", "[-x]", "\\", "[a-b-c]", "[", "[^", "[^bc", "a[", "[z-a]",
        ] {
            assert!(matches(pattern, "a").is_err(), "{pattern:?}");
        }
    }
}
