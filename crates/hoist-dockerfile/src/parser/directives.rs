//! Parser directives: `# syntax=`, `# escape=` and `# check=` at the top of a Dockerfile.
//!
//! As in BuildKit, directives are `#` comments of the form `name=value` read from the first
//! line on; the first line that is not one (an instruction, another comment, a blank line)
//! ends them for good. Names are case-insensitive, only the three known names count, and each
//! may appear once. [`detect_syntax`] also accepts `//` comments, a leading JSON object and a
//! leading `#!` line, for frontends that are not Dockerfiles.

use super::gotext::is_space;
use crate::ast::LineSpan;
use crate::{Error, Result};

/// The directive names BuildKit knows.
const KNOWN: [&str; 3] = ["syntax", "escape", "check"];

/// One parser directive as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    /// The name, lower-cased (`escape`).
    pub name: String,
    /// The value with surrounding blanks removed (`` ` ``).
    pub value: String,
    /// The 1-based line it is on.
    pub line: usize,
}

/// Reads directives line by line, with BuildKit's rules (`DirectiveParser`).
#[derive(Debug, Clone)]
pub struct DirectiveParser {
    line: usize,
    prefix: &'static str,
    seen: Vec<String>,
    done: bool,
}

impl Default for DirectiveParser {
    fn default() -> Self {
        Self::new()
    }
}

impl DirectiveParser {
    /// A parser for `#` directives starting at line 1.
    pub fn new() -> Self {
        Self::with_prefix("#", 0)
    }

    /// A parser for directives behind `prefix` (`#` or `//`) whose first line is
    /// `lines_before + 1`.
    fn with_prefix(prefix: &'static str, lines_before: usize) -> Self {
        Self {
            line: lines_before,
            prefix,
            seen: Vec::new(),
            done: false,
        }
    }

    /// True once a line that is not a directive has been seen.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Reads the next line (without its line ending). `Ok(None)` when it is not a directive;
    /// an error when a directive is repeated. The message is BuildKit's.
    pub fn parse_line(&mut self, line: &str) -> std::result::Result<Option<Directive>, String> {
        self.line += 1;
        if self.done {
            return Ok(None);
        }
        let Some(rest) = line.strip_prefix(self.prefix) else {
            self.done = true;
            return Ok(None);
        };
        let Some((name, value)) = split_directive(rest.trim_start_matches(is_space)) else {
            self.done = true;
            return Ok(None);
        };
        let name = name.to_ascii_lowercase();
        if !KNOWN.contains(&name.as_str()) {
            self.done = true;
            return Ok(None);
        }
        if self.seen.contains(&name) {
            return Err(format!("only one {name} parser directive can be used"));
        }
        self.seen.push(name.clone());
        Ok(Some(Directive {
            name,
            value: value.to_string(),
            line: self.line,
        }))
    }

    /// Reads directives from the top of `text` until the first line that is not one.
    pub fn parse_all(&mut self, text: &str) -> std::result::Result<Vec<Directive>, String> {
        match self.collect(text) {
            (found, None) => Ok(found),
            (_, Some(err)) => Err(err),
        }
    }

    /// Like `parse_all`, but keeps what was read before an error (as BuildKit's callers do).
    fn collect(&mut self, text: &str) -> (Vec<Directive>, Option<String>) {
        let mut found = Vec::new();
        for line in scan_lines(text) {
            if self.done {
                break;
            }
            match self.parse_line(line) {
                Ok(Some(d)) => found.push(d),
                Ok(None) => {}
                Err(e) => return (found, Some(e)),
            }
        }
        (found, None)
    }
}

/// Lines as Go's `bufio.ScanLines` yields them: split on `\n`, one trailing `\r` dropped, no
/// empty last line after a final newline.
fn scan_lines(text: &str) -> impl Iterator<Item = &str> {
    let body = text.strip_suffix('\n').unwrap_or(text);
    let pieces = if text.is_empty() {
        None
    } else {
        Some(body.split('\n'))
    };
    pieces
        .into_iter()
        .flatten()
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
}

/// Matches `^([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$` (RE2's `\s` is `[\t\n\f\r ]`).
pub(crate) fn split_directive(text: &str) -> Option<(&str, &str)> {
    let re_space = |c: char| matches!(c, '\t' | '\n' | '\u{c}' | '\r' | ' ');
    let mut chars = text.char_indices();
    if !chars.next()?.1.is_ascii_alphabetic() {
        return None;
    }
    let name_end = text
        .char_indices()
        .find(|(_, c)| !c.is_ascii_alphanumeric())
        .map_or(text.len(), |(i, _)| i);
    let (name, rest) = text.split_at(name_end);
    let rest = rest.trim_start_matches(re_space).strip_prefix('=')?;
    if rest.is_empty() || rest.contains('\n') {
        return None;
    }
    let value = rest.trim_start_matches(re_space);
    let value = if value.is_empty() {
        // `\s*` gives back one blank so that `.+?` can match.
        let last = rest.chars().last()?;
        &rest[rest.len() - last.len_utf8()..]
    } else {
        value.trim_end_matches(re_space)
    };
    Some((name, value))
}

/// The directives at the top of a Dockerfile.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Directives {
    /// `# syntax=` — the frontend image to build with.
    pub syntax: Option<Directive>,
    /// `# escape=` — `\` or `` ` ``.
    pub escape: Option<Directive>,
    /// `# check=` — build-check settings (`skip=all`, `error=true`).
    pub check: Option<Directive>,
}

impl Directives {
    /// Reads the directives at the top of `text` (a leading byte-order mark is ignored).
    /// Fails, like BuildKit, on a repeated directive or an escape that is neither `\` nor
    /// `` ` ``.
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut parser = DirectiveParser::new();
        let mut out = Self::default();
        for line in scan_lines(text) {
            if parser.is_done() {
                break;
            }
            let line_no = parser.line + 1;
            let found = parser.parse_line(line).map_err(|message| Error::Parse {
                line: line_no,
                message,
            })?;
            let Some(d) = found else { continue };
            match d.name.as_str() {
                "escape" => {
                    escape_token(&d.value).map_err(|message| Error::Parse {
                        line: d.line,
                        message,
                    })?;
                    out.escape = Some(d);
                }
                "syntax" => out.syntax = Some(d),
                _ => out.check = Some(d),
            }
        }
        Ok(out)
    }

    /// The escape character in force: the `escape` directive's, else `\`.
    pub fn escape_char(&self) -> char {
        self.escape
            .as_ref()
            .and_then(|d| escape_token(&d.value).ok())
            .unwrap_or('\\')
    }
}

/// Checks an `escape` directive value; BuildKit's message when it is not `\` or `` ` ``.
pub(crate) fn escape_token(value: &str) -> std::result::Result<char, String> {
    match value {
        "\\" => Ok('\\'),
        "`" => Ok('`'),
        _ => Err(format!(
            "invalid escape token '{value}' does not match ` or \\"
        )),
    }
}

/// A directive found by [`detect_syntax`] or [`parse_directive`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetectedDirective {
    /// The value up to the first space (for `syntax`, the frontend image reference).
    pub value: String,
    /// The whole value, options included (`dockerfile:1 // opts`).
    pub cmdline: String,
    /// Where it is. For a JSON document this is line 0, or 1 after a `#!` line, as BuildKit
    /// reports it.
    pub span: LineSpan,
}

/// Finds the `syntax` directive of a build definition as BuildKit's `DetectSyntax`: `#`
/// directives, then `//` directives, then a JSON object's `"syntax"` string; a leading
/// byte-order mark and a `#!` first line are skipped.
pub fn detect_syntax(text: &str) -> Option<DetectedDirective> {
    find_directive("syntax", text, true)
}

/// Finds directive `name` as BuildKit's `ParseDirective`: only `#` directives count.
pub fn parse_directive(name: &str, text: &str) -> Option<DetectedDirective> {
    find_directive(name, text, false)
}

fn find_directive(key: &str, text: &str, any_format: bool) -> Option<DetectedDirective> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let first_line = text.split('\n').next().unwrap_or("");
    let (text, lines_before) = if first_line.starts_with("#!") {
        (text.get(first_line.len() + 1..).unwrap_or(""), 1)
    } else {
        (text, 0)
    };
    let prefixes: &[&'static str] = if any_format { &["#", "//"] } else { &["#"] };
    for prefix in prefixes {
        let mut parser = DirectiveParser::with_prefix(prefix, lines_before);
        let (found, _) = parser.collect(text);
        if let Some(d) = found.into_iter().find(|d| d.name == key) {
            let value = d.value.split(' ').next().unwrap_or("").to_string();
            return Some(DetectedDirective {
                value,
                span: LineSpan {
                    start: d.line,
                    end: d.line,
                },
                cmdline: d.value,
            });
        }
    }
    if !any_format {
        return None;
    }
    let value = super::json::object_string_member(text, key)?;
    Some(DetectedDirective {
        value: value.clone(),
        cmdline: value,
        span: LineSpan {
            start: lines_before,
            end: lines_before,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split() {
        assert_eq!(split_directive("escape=`"), Some(("escape", "`")));
        assert_eq!(split_directive("Escape =  x y  "), Some(("Escape", "x y")));
        assert_eq!(split_directive("escape=  "), Some(("escape", " ")));
        assert_eq!(split_directive("escape="), None);
        assert_eq!(split_directive("1a=b"), None);
        assert_eq!(split_directive("a-b=c"), None);
    }

    #[test]
    fn directives_stop_at_first_other_line() {
        let d = Directives::parse("# syntax=x\n# Check = skip=all\n\n# escape=`\nFROM a").unwrap();
        assert_eq!(d.syntax.unwrap().value, "x");
        assert_eq!(d.check.unwrap().line, 2);
        assert_eq!(d.escape, None);
        let e = Directives::parse("# escape=`\n# escape=\\\n").unwrap_err();
        assert!(
            e.to_string().contains("only one escape parser directive"),
            "{e}"
        );
        assert!(Directives::parse("# escape=x\n").is_err());
    }
}
