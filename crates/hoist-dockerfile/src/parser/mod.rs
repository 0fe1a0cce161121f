//! The Dockerfile parser: text → [`Dockerfile`], exactly as BuildKit's
//! `frontend/dockerfile/parser` reads it.
//!
//! - [`parse`] / [`parse_bytes`]: the whole file, with parser directives, comments, line
//!   continuations (with the `# escape=` character), empty-continuation warnings, heredocs and
//!   the physical line span of every instruction.
//! - [`Directives`], [`DirectiveParser`], [`detect_syntax`], [`parse_directive`]: the
//!   `# syntax=` / `# escape=` / `# check=` block at the top.
//! - [`parse_heredoc`], [`heredocs_from_line`], [`chomp_heredoc_content`]: heredoc helpers.
//! - [`parse_exec_form`], [`parse_words`]: argument splitting shared with later stages.
//! - [`Dockerfile::dump`]: BuildKit's AST dump, used by the conformance tests.
//!
//! Module map: `lines` (physical lines), `directives`, `line_parsers` (keyword, flags and
//! per-instruction arguments), `json` (exec form), `heredoc` + `heredoc_words` (heredoc
//! markers), `dump`, `gotext` (the Go library semantics BuildKit's output depends on).
//!
//! Where we differ from BuildKit, on purpose:
//!
//! - Text that is not UTF-8 is rejected by [`parse_bytes`]; Go carries the raw bytes along.
//! - BuildKit's byte-wise steps (flag extraction, the HEALTHCHECK type word, the first byte of
//!   a comment line) can cut a multi-byte character; Go keeps the broken bytes, we write
//!   U+FFFD there. Only text with U+0085/U+00A0-style bytes in those places is affected.
//! - `${...}` nested deeper than 200 levels on a heredoc line makes that line heredoc-free
//!   (Go recurses without limit); a heredoc file descriptor above `u32::MAX` saturates.
//! - Errors carry the 1-based line of the offending text (BuildKit sometimes reports the
//!   line before it).

mod directives;
mod dump;
mod gotext;
mod heredoc;
mod heredoc_words;
mod json;
mod line_parsers;
mod lines;

pub(crate) use directives::split_directive;
pub use directives::{
    detect_syntax, parse_directive, DetectedDirective, Directive, DirectiveParser, Directives,
};
pub use heredoc::{chomp_heredoc_content, heredocs_from_line, parse_heredoc};
pub use json::{parse_exec_form, ExecFormError};
pub use line_parsers::parse_words;
pub use lines::MAX_LINE_LEN;

use crate::ast::{Dockerfile, LineSpan, Node, Warning};
use crate::{Error, Result};
use gotext::{is_space, trim_space};
use lines::Lines;

/// The link BuildKit gives for the empty-continuation-line warning.
pub const EMPTY_CONTINUATION_URL: &str =
    "https://docs.docker.com/go/dockerfile/rule/no-empty-continuation/";

/// Parses a Dockerfile given as bytes: a UTF-8 byte-order mark is dropped, and text that is
/// not UTF-8 is rejected with the line of the first bad byte.
pub fn parse_bytes(bytes: &[u8]) -> Result<Dockerfile> {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    match std::str::from_utf8(bytes) {
        Ok(text) => parse(text),
        Err(e) => {
            let at = e.valid_up_to();
            let line = bytes[..at].iter().filter(|b| **b == b'\n').count() + 1;
            Err(Error::Parse {
                line,
                message: format!("dockerfile is not valid UTF-8 (byte offset {at})"),
            })
        }
    }
}

/// Parses a Dockerfile. Fails like BuildKit on a file with no instructions, an invalid or
/// repeated directive, ENV/LABEL without a value, a JSON array holding non-strings, an
/// unterminated heredoc, or a line of [`MAX_LINE_LEN`] bytes or more.
pub fn parse(text: &str) -> Result<Dockerfile> {
    Parser::new(text).run()
}

/// The parser's state while it walks the file, mirroring BuildKit's `Parse` loop.
struct Parser<'a> {
    lines: Lines<'a>,
    directives: DirectiveParser,
    escape: char,
    /// Physical lines consumed so far.
    current_line: usize,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            lines: Lines::new(text),
            directives: DirectiveParser::new(),
            escape: '\\',
            current_line: 0,
        }
    }

    fn error(line: usize, message: impl Into<String>) -> Error {
        Error::Parse {
            line,
            message: message.into(),
        }
    }

    /// BuildKit's `processLine`: drops the line ending (and leading blanks when asked),
    /// offers the line to the directive parser, and blanks out comments. Returns the line
    /// and whether it was a directive.
    fn process_line(&mut self, raw: &'a str, strip_left: bool) -> Result<(&'a str, bool)> {
        let mut line = trim_newline(raw);
        if strip_left {
            line = line.trim_start_matches(is_space);
        }
        let found = self
            .directives
            .parse_line(line)
            .map_err(|m| Self::error(self.current_line + 1, m))?;
        let mut is_directive = found.is_some();
        if let Some(d) = found.filter(|d| d.name == "escape") {
            self.escape = directives::escape_token(&d.value)
                .map_err(|m| Self::error(self.current_line + 1, m))?;
            is_directive = true;
        }
        Ok((if is_comment(line) { "" } else { line }, is_directive))
    }

    fn run(mut self) -> Result<Dockerfile> {
        let mut children: Vec<Node> = Vec::new();
        let mut warnings = Vec::new();
        let mut comments: Vec<String> = Vec::new();

        while let Some(raw) = self.lines.next_line() {
            let raw = if self.current_line == 0 {
                raw.strip_prefix('\u{feff}').unwrap_or(raw)
            } else {
                raw
            };
            if is_comment(raw) {
                // BuildKit drops the first byte of the raw line, not the `#`.
                let comment = trim_space(&gotext::lossy(&raw.as_bytes()[1..])).to_string();
                if comment.is_empty() {
                    comments.clear();
                } else {
                    comments.push(comment);
                }
            }
            let (first, is_directive) = self.process_line(raw, true)?;
            if is_directive {
                comments.pop();
            }
            self.current_line += 1;
            let start_line = self.current_line;

            let (first, mut end_of_line) = trim_continuation(first, self.escape);
            if end_of_line && first.is_empty() {
                continue;
            }
            let mut line = first.to_string();
            let mut empty_continuation = false;
            while !end_of_line {
                let Some(raw) = self.lines.next_line() else {
                    break;
                };
                let (part, _) = self.process_line(raw, false)?;
                self.current_line += 1;
                if is_comment(raw) {
                    continue;
                }
                if part.trim_start_matches(is_space).is_empty() {
                    empty_continuation = true;
                    continue;
                }
                let (part, eol) = trim_continuation(part, self.escape);
                end_of_line = eol;
                line.push_str(part);
            }

            if empty_continuation {
                warnings.push(Warning {
                    short: format!("Empty continuation line found in: {line}"),
                    detail: vec![
                        "Empty continuation lines will become errors in a future release"
                            .to_string(),
                    ],
                    url: EMPTY_CONTINUATION_URL.to_string(),
                    span: LineSpan {
                        start: self.current_line,
                        end: self.current_line,
                    },
                });
            }

            let mut child = line_parsers::node_from_line(&line, self.escape)
                .map_err(|m| Self::error(start_line, m))?;
            child.prev_comment = std::mem::take(&mut comments);

            if can_contain_heredoc(&child) && line.contains("<<") {
                let docs = heredocs_from_line(&line).map_err(|m| Self::error(start_line, m))?;
                for mut doc in docs {
                    let mut terminated = false;
                    while let Some(body) = self.lines.next_line() {
                        self.current_line += 1;
                        let mut candidate = trim_newline(body);
                        if doc.chomp {
                            candidate = candidate.trim_start_matches('\t');
                        }
                        if candidate == doc.name {
                            terminated = true;
                            break;
                        }
                        doc.content.push_str(body);
                    }
                    if !terminated {
                        return Err(Self::error(start_line, "unterminated heredoc"));
                    }
                    child.heredocs.push(doc);
                }
            }

            let span = LineSpan {
                start: start_line,
                end: self.current_line,
            };
            set_span(&mut child, span);
            children.push(child);
        }

        if children.is_empty() {
            return Err(Self::error(
                self.current_line.max(1),
                "file with no instructions",
            ));
        }
        if self.lines.too_long() {
            return Err(Self::error(
                self.current_line + 1,
                format!(
                    "dockerfile line greater than max allowed size of {}",
                    MAX_LINE_LEN - 1
                ),
            ));
        }
        let span = LineSpan {
            start: children.first().map_or(0, |c| c.span.start),
            end: children.last().map_or(0, |c| c.span.end),
        };
        Ok(Dockerfile {
            children,
            span,
            escape: self.escape,
            warnings,
        })
    }
}

/// Gives `node` and the instructions nested in it (ONBUILD) the same span.
fn set_span(node: &mut Node, span: LineSpan) {
    let mut node = Some(node);
    while let Some(n) = node {
        n.span = span;
        node = n.nested.as_deref_mut();
    }
}

/// RUN, COPY and ADD in shell form may carry heredocs, also behind one ONBUILD.
fn can_contain_heredoc(node: &Node) -> bool {
    let node = if node.keyword == "onbuild" {
        node.nested.as_deref().unwrap_or(node)
    } else {
        node
    };
    matches!(node.keyword.as_str(), "run" | "copy" | "add") && !node.json
}

/// Go's `bytes.TrimRight(line, "\r\n")`.
fn trim_newline(line: &str) -> &str {
    line.trim_end_matches(['\r', '\n'])
}

/// A comment is a line whose first non-blank character is `#`.
fn is_comment(line: &str) -> bool {
    line.trim_start_matches(is_space).starts_with('#')
}

/// Removes a trailing line-continuation escape (plus blanks after it) as BuildKit's
/// continuation regex does: the escape must not itself be escaped. Returns the line and
/// whether the logical line ends here.
fn trim_continuation(line: &str, escape: char) -> (&str, bool) {
    let trimmed = line.trim_end_matches([' ', '\t']);
    if let Some(before) = trimmed.strip_suffix(escape) {
        if before.is_empty() || !before.ends_with(escape) {
            return (before, false);
        }
    }
    (line, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuation() {
        assert_eq!(trim_continuation("a \\  ", '\\'), ("a ", false));
        assert_eq!(trim_continuation("\\", '\\'), ("", false));
        assert_eq!(trim_continuation("a \\\\", '\\'), ("a \\\\", true));
        assert_eq!(trim_continuation("a `", '`'), ("a ", false));
        assert_eq!(trim_continuation("a \\", '`'), ("a \\", true));
    }
}
