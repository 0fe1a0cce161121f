//! Reading the regular expressions patternmatcher writes, in Go's `regexp` syntax, and
//! rewriting them for the `regex` crate.
//!
//! Why not hand the text to `regex` directly: patternmatcher copies class syntax and
//! `\` escapes from the pattern into the expression unchanged, so Go's reading of them is
//! the behaviour to reproduce, and the two syntaxes disagree on exactly those parts. In
//! Go, `[[]` is a class holding `[`, `&&` and `--` in a class are plain characters, `\<`
//! is a literal `<`, `\d`/`\s`/`\w`/`\b` are ASCII-only, `\123` is octal and `\Q…\E` quotes;
//! in `regex` these are nested classes, set operations, word-boundary assertions, Unicode
//! classes and errors. So this module parses the Go syntax that can occur (literals,
//! escapes, `.`, `^`, `$`, groups, `*` `+` `?` with the lazy `?` suffix, classes with ranges,
//! POSIX `[:name:]`, Perl `\d\s\w` and one-letter `\pX` groups) and writes an equivalent
//! expression in which every literal is escaped and every class range is spelled as
//! `\x{…}` code points, leaving nothing to either dialect's quirks. What Go would reject
//! is rejected here with Go's reason.
//!
//! Matching semantics carried over: `^`/`$` anchor the whole text, `.` and `*`-free
//! negated classes behave as in Go (`.` excludes `\n`, `[^/]` includes it), and `\b`/`\B`
//! are ASCII word boundaries.

use std::fmt::Write as _;

/// Rewrites the Go expression `go` for the `regex` crate, or says why Go rejects it.
pub(crate) fn to_rust(go: &str) -> Result<String, String> {
    let mut parser = Parser {
        chars: go.chars().collect(),
        at: 0,
        out: String::with_capacity(go.len() * 2),
        groups: Vec::new(),
        last_atom: None,
        last_was_repeat: false,
    };
    parser.run()?;
    Ok(parser.out)
}

struct Parser {
    chars: Vec<char>,
    at: usize,
    out: String,
    /// Where each open group starts in `out`.
    groups: Vec<usize>,
    /// Where the last thing a repetition operator may apply to starts in `out`.
    last_atom: Option<usize>,
    /// The previous token was a repetition operator (`a**` is an error in Go).
    last_was_repeat: bool,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    fn peek_at(&self, offset: usize) -> Option<char> {
        self.chars.get(self.at + offset).copied()
    }

    fn rest_from(&self, start: usize) -> String {
        self.chars[start..self.at.min(self.chars.len())]
            .iter()
            .collect()
    }

    fn run(&mut self) -> Result<(), String> {
        while let Some(c) = self.peek() {
            let start = self.out.len();
            let mut repeat = false;
            match c {
                '(' => {
                    if self.peek_at(1) == Some('?') {
                        return Err("group flags `(?` are not supported".to_owned());
                    }
                    self.at += 1;
                    self.groups.push(start);
                    self.out.push_str("(?:");
                    self.last_atom = None;
                }
                ')' => {
                    self.at += 1;
                    let open = self
                        .groups
                        .pop()
                        .ok_or_else(|| "unexpected ): `)`".to_owned())?;
                    self.out.push(')');
                    self.last_atom = Some(open);
                }
                '|' => {
                    self.at += 1;
                    self.out.push('|');
                    self.last_atom = None;
                }
                '*' | '+' | '?' => {
                    self.repeat(c)?;
                    repeat = true;
                }
                // Assertions may be repeated in Go (`^*`), pointless as that is.
                '^' => {
                    self.at += 1;
                    self.out.push_str(r"\A");
                    self.last_atom = Some(start);
                }
                '$' => {
                    self.at += 1;
                    self.out.push_str(r"\z");
                    self.last_atom = Some(start);
                }
                '.' => {
                    self.at += 1;
                    self.out.push_str(r"[^\n]");
                    self.last_atom = Some(start);
                }
                '[' => {
                    self.class()?;
                    self.last_atom = Some(start);
                }
                '\\' => self.escape()?,
                c => {
                    self.at += 1;
                    push_literal(&mut self.out, c);
                    self.last_atom = Some(start);
                }
            }
            self.last_was_repeat = repeat;
        }
        if !self.groups.is_empty() {
            return Err("missing closing ): the group is never closed".to_owned());
        }
        Ok(())
    }

    /// `*`, `+` or `?` (with an optional lazy `?`) applied to the last atom.
    fn repeat(&mut self, op: char) -> Result<(), String> {
        let start = self.at;
        self.at += 1;
        let lazy = self.peek() == Some('?');
        if lazy {
            self.at += 1;
        }
        if self.last_was_repeat {
            return Err(format!(
                "invalid nested repetition operator: `{}`",
                self.rest_from(start.saturating_sub(1))
            ));
        }
        let atom = self
            .last_atom
            .ok_or_else(|| format!("missing argument to repetition operator: `{op}`"))?;
        self.out.insert_str(atom, "(?:");
        self.out.push(')');
        self.out.push(op);
        if lazy {
            self.out.push('?');
        }
        Ok(())
    }

    /// An escape outside a class: assertions, `\Q…\E`, Unicode and Perl classes, or one
    /// escaped character.
    fn escape(&mut self) -> Result<(), String> {
        let out_start = self.out.len();
        let Some(c) = self.peek_at(1) else {
            return Err("trailing backslash at end of expression".to_owned());
        };
        match c {
            'A' | 'z' | 'b' | 'B' => {
                self.at += 2;
                self.out.push_str(match c {
                    'A' => r"\A",
                    'z' => r"\z",
                    'b' => r"(?-u:\b)",
                    _ => r"(?-u:\B)",
                });
                self.last_atom = Some(out_start);
            }
            'C' => return Err(r"invalid escape sequence: `\C`".to_owned()),
            'Q' => {
                self.at += 2;
                while let Some(q) = self.peek() {
                    if q == '\\' && self.peek_at(1) == Some('E') {
                        self.at += 2;
                        break;
                    }
                    self.at += 1;
                    self.last_atom = Some(self.out.len());
                    push_literal(&mut self.out, q);
                }
            }
            'p' | 'P' => {
                let item = self.unicode_class()?;
                self.out.push_str(&item);
                self.last_atom = Some(out_start);
            }
            'd' | 's' | 'w' | 'D' | 'S' | 'W' => {
                self.at += 2;
                self.out.push_str(&perl_class(c));
                self.last_atom = Some(out_start);
            }
            _ => {
                let literal = self.escaped_char()?;
                push_literal(&mut self.out, literal);
                self.last_atom = Some(out_start);
            }
        }
        Ok(())
    }

    /// `\pX` or `\PX`: a one-letter Unicode general category. The braced form cannot
    /// occur (patternmatcher escapes `{`), so `\p{` is reported as Go would report `\p\{`.
    fn unicode_class(&mut self) -> Result<String, String> {
        let start = self.at;
        let sign = self.peek_at(1).unwrap_or('p');
        self.at += 2;
        let Some(name) = self.peek() else {
            return Err(format!(
                "invalid character class range: `{}`",
                self.rest_from(start)
            ));
        };
        self.at += 1;
        if matches!(name, 'C' | 'L' | 'M' | 'N' | 'P' | 'S' | 'Z') {
            Ok(format!(r"\{sign}{name}"))
        } else {
            Err(format!(
                "invalid character class range: `{}`",
                self.rest_from(start)
            ))
        }
    }

    /// One `\`-escaped character (Go's `parseEscape`), the backslash at `self.at`.
    fn escaped_char(&mut self) -> Result<char, String> {
        let start = self.at;
        self.at += 1;
        let Some(c) = self.peek() else {
            return Err("trailing backslash at end of expression".to_owned());
        };
        self.at += 1;
        let invalid = |p: &Self| format!("invalid escape sequence: `{}`", p.rest_from(start));
        match c {
            c if c.is_ascii() && !c.is_ascii_alphanumeric() => Ok(c),
            '1'..='7' if !matches!(self.peek(), Some('0'..='7')) => Err(invalid(self)),
            '0'..='7' => {
                let mut value = c as u32 - '0' as u32;
                for _ in 0..2 {
                    match self.peek() {
                        Some(d @ '0'..='7') => {
                            value = value * 8 + (d as u32 - '0' as u32);
                            self.at += 1;
                        }
                        _ => break,
                    }
                }
                char::from_u32(value).ok_or_else(|| invalid(self))
            }
            'x' => {
                let hi = self.peek().and_then(|d| d.to_digit(16));
                let lo = self.peek_at(1).and_then(|d| d.to_digit(16));
                match (hi, lo) {
                    (Some(hi), Some(lo)) => {
                        self.at += 2;
                        char::from_u32(hi * 16 + lo).ok_or_else(|| invalid(self))
                    }
                    _ => {
                        self.at = (self.at + 2).min(self.chars.len());
                        Err(invalid(self))
                    }
                }
            }
            'a' => Ok('\u{7}'),
            'f' => Ok('\u{c}'),
            'n' => Ok('\n'),
            'r' => Ok('\r'),
            't' => Ok('\t'),
            'v' => Ok('\u{b}'),
            _ => Err(invalid(self)),
        }
    }

    /// A `[...]` class (Go's `parseClass`), the `[` at `self.at`.
    fn class(&mut self) -> Result<(), String> {
        let start = self.at;
        self.at += 1;
        let mut rust = String::from("[");
        if self.peek() == Some('^') {
            self.at += 1;
            rust.push('^');
        }
        let missing = |p: &Self| format!("missing closing ]: `{}`", p.rest_from(start));
        let mut first = true;
        loop {
            match self.peek() {
                None => return Err(missing(self)),
                // `]` right after `[` or `[^` is a literal.
                Some(']') if !first => {
                    self.at += 1;
                    break;
                }
                _ => {}
            }
            first = false;
            if self.peek() == Some('[') && self.peek_at(1) == Some(':') {
                if let Some(item) = self.posix_class()? {
                    rust.push_str(&item);
                    continue;
                }
            }
            if self.peek() == Some('\\') {
                match self.peek_at(1) {
                    Some('p' | 'P') => {
                        let item = self.unicode_class()?;
                        rust.push_str(&item);
                        continue;
                    }
                    Some(c @ ('d' | 's' | 'w' | 'D' | 'S' | 'W')) => {
                        self.at += 2;
                        rust.push_str(&perl_class(c));
                        continue;
                    }
                    _ => {}
                }
            }
            let range_start = self.at;
            let lo = self.class_char(start)?;
            let mut hi = lo;
            if self.peek() == Some('-') && self.peek_at(1).is_some_and(|c| c != ']') {
                self.at += 1;
                hi = self.class_char(start)?;
                if hi < lo {
                    return Err(format!(
                        "invalid character class range: `{}`",
                        self.rest_from(range_start)
                    ));
                }
            }
            push_range(&mut rust, lo, hi);
        }
        rust.push(']');
        self.out.push_str(&rust);
        Ok(())
    }

    /// One end of a class range: a character or an escape.
    fn class_char(&mut self, class_start: usize) -> Result<char, String> {
        match self.peek() {
            None => Err(format!(
                "missing closing ]: `{}`",
                self.rest_from(class_start)
            )),
            Some('\\') => self.escaped_char(),
            Some(c) => {
                self.at += 1;
                Ok(c)
            }
        }
    }

    /// `[:name:]` or `[:^name:]` inside a class. `None` (nothing consumed) when no `:]`
    /// follows, in which case Go reads the `[` as a literal.
    fn posix_class(&mut self) -> Result<Option<String>, String> {
        let body_start = self.at + 2;
        let Some(len) = self.chars[body_start..]
            .windows(2)
            .position(|w| w == [':', ']'])
        else {
            return Ok(None);
        };
        let name: String = self.chars[body_start..body_start + len].iter().collect();
        self.at = body_start + len + 2;
        let (negated, bare) = match name.strip_prefix('^') {
            Some(bare) => (true, bare),
            None => (false, name.as_str()),
        };
        let ranges: &[(char, char)] = match bare {
            "alnum" => &[('0', '9'), ('A', 'Z'), ('a', 'z')],
            "alpha" => &[('A', 'Z'), ('a', 'z')],
            "ascii" => &[('\0', '\u{7f}')],
            "blank" => &[('\t', '\t'), (' ', ' ')],
            "cntrl" => &[('\0', '\u{1f}'), ('\u{7f}', '\u{7f}')],
            "digit" => &[('0', '9')],
            "graph" => &[('!', '~')],
            "lower" => &[('a', 'z')],
            "print" => &[(' ', '~')],
            "punct" => &[('!', '/'), (':', '@'), ('[', '`'), ('{', '~')],
            "space" => &[('\t', '\r'), (' ', ' ')],
            "upper" => &[('A', 'Z')],
            "word" => &[('0', '9'), ('A', 'Z'), ('a', 'z'), ('_', '_')],
            "xdigit" => &[('0', '9'), ('A', 'F'), ('a', 'f')],
            _ => return Err(format!("invalid character class range: `[:{name}:]`")),
        };
        Ok(Some(class_of(ranges, negated)))
    }
}

/// Go's ASCII-only Perl classes `\d \s \w` and their negations, as a `regex` class.
fn perl_class(c: char) -> String {
    let ranges: &[(char, char)] = match c.to_ascii_lowercase() {
        'd' => &[('0', '9')],
        's' => &[('\t', '\n'), ('\u{c}', '\r'), (' ', ' ')],
        _ => &[('0', '9'), ('A', 'Z'), ('a', 'z'), ('_', '_')],
    };
    class_of(ranges, c.is_ascii_uppercase())
}

fn class_of(ranges: &[(char, char)], negated: bool) -> String {
    let mut class = String::from(if negated { "[^" } else { "[" });
    for &(lo, hi) in ranges {
        push_range(&mut class, lo, hi);
    }
    class.push(']');
    class
}

fn push_range(out: &mut String, lo: char, hi: char) {
    // Writing to a String cannot fail.
    let _ = write!(out, "\\x{{{:X}}}", u32::from(lo));
    if hi != lo {
        let _ = write!(out, "-\\x{{{:X}}}", u32::from(hi));
    }
}

fn push_literal(out: &mut String, c: char) {
    if c.is_ascii_alphanumeric() || c == '/' || c == '_' || !c.is_ascii() {
        out.push(c);
    } else {
        let _ = write!(out, "\\x{{{:X}}}", u32::from(c));
    }
}

#[cfg(test)]
mod tests {
    use super::to_rust;

    fn rust_matches(go: &str, text: &str) -> bool {
        let source = to_rust(go).unwrap_or_else(|e| panic!("{go:?}: {e}"));
        regex::Regex::new(&source)
            .unwrap_or_else(|e| panic!("{go:?} → {source:?}: {e}"))
            .is_match(text)
    }

    #[test]
    fn translates_what_patternmatcher_writes() {
        let cases = [
            ("^[^/]*$", "abc", true),
            ("^[^/]*$", "a/c", false),
            ("^(.*/)?dir2/[^/]*$", "dir/dir2/file", true),
            ("^(.*/)?dir2/[^/]*$", "dir2/file", true),
            ("^(.*/)?dir2/[^/]*$", "dir/dir2/a/b", false),
            (r"^\.[^/]*$", ".foo", true),
            (r"^\.[^/]*$", "foo", false),
            ("^a[b-d]e$", "ace", true),
            ("^a[^b-d]e$", "ace", false),
            (r"^a\*b$", "a*b", true),
            (r"^a\\$", "a\\", true),
            ("^[a-ζ][^/]*$", "α", true),
            (r"^[\]a]$", "]", true),
            (r"^[x\-]$", "-", true),
            (r"^[\-x]$", "x", true),
        ];
        for (go, text, want) in cases {
            assert_eq!(rust_matches(go, text), want, "{go:?} against {text:?}");
        }
    }

    #[test]
    fn reads_class_syntax_as_go_does() {
        let cases = [
            // `[` inside a class is a literal in Go, a nested class in `regex`.
            ("^[[]$", "[", true),
            // `&&` and `--` are plain characters in Go classes.
            ("^[a&&b]$", "&", true),
            ("^[--/]$", ".", true),
            // A class swallowed what `*` became: `[*]` → `[[^/]*]`.
            ("^[[^/]*]$", "[^/]", true),
            ("^[[^/]*]$", "x]", false),
            ("^[[:alpha:]]$", "q", true),
            ("^[[:^alpha:]]$", "q", false),
            ("^[[:a]$", ":", true),
            (r"^[\d]$", "7", true),
            (r"^\d$", "٣", false),
            (r"^\w+$", "é", false),
            (r"^a\<$", "a<", true),
            (r"^\101$", "A", true),
            (r"^\x41$", "A", true),
            (r"^a\nb$", "a\nb", true),
            (r"^\Qa.b\E$", "a.b", true),
            (r"^\Qa.b\E$", "axb", false),
            (r"^\pL$", "ж", true),
            (r"^[^\PL]$", "ж", true),
            ("^a]b$", "a]b", true),
            ("^a^b$", "a^b", false),
            (r"^x\by$", "xy", false),
            (r"^x\b y$", "x y", true),
            ("^^*a$", "a", true),
        ];
        for (go, text, want) in cases {
            assert_eq!(rust_matches(go, text), want, "{go:?} against {text:?}");
        }
    }

    #[test]
    fn rejects_what_go_rejects() {
        for go in [
            "^[Local-Only]$",
            "^[z-a]$",
            "^[a--b]$",
            r"^\é$",
            r"^\q$",
            r"^\1$",
            r"^\x4$",
            r"^\x\{41\}$",
            r"^\p\{Greek\}$",
            r"^\pX$",
            "^[[:foo:]]$",
            "^[a$",
            "^[",
            "^(a",
            "^a)",
            "^(*)",
            "^a|*",
            "^a**$",
            r"^\C$",
            "\\",
        ] {
            assert!(to_rust(go).is_err(), "{go:?} should be rejected");
        }
    }
}
