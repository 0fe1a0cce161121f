//! Printing where an error is, the way buildx prints BuildKit's source locations:
//!
//! ```text
//! Dockerfile:3
//! --------------------
//!    1 |     FROM alpine
//!    2 |
//!    3 | >>> RUN --mount=type=nope true
//!    4 |     CMD ["sh"]
//! --------------------
//! ERROR: unsupported mount type "nope"
//! ```
//!
//! The offending lines are marked `>>>`; around them come up to four lines of context for a
//! one-line span (two for longer ones), shared between before and after.

use std::fmt::Write as _;

use crate::ast::LineSpan;
use crate::Error;

/// The source excerpt for `span` of the file `filename` whose text is `source`, followed by
/// `ERROR: <error>`. Errors without a span (or with one outside the text) print the message
/// alone.
pub fn error_context(filename: &str, source: &str, error: &Error) -> String {
    let excerpt = match error {
        Error::Instruction { span, .. } => source_excerpt(filename, source, *span),
        Error::Parse { line, .. } => source_excerpt(
            filename,
            source,
            LineSpan {
                start: *line,
                end: *line,
            },
        ),
        _ => String::new(),
    };
    format!("{excerpt}ERROR: {error}\n")
}

/// The `FILE:LINE`, dashes, numbered lines and dashes block (empty when `span` is not
/// within `source`).
pub fn source_excerpt(filename: &str, source: &str, span: LineSpan) -> String {
    let lines: Vec<&str> = source.split('\n').collect();
    let first = span.start;
    if first < 1 || first > lines.len() {
        return String::new();
    }
    let last_marked = span.end.max(span.start);
    let mut start = first;
    let mut end = last_marked.min(lines.len());
    let pad = if end == start { 4 } else { 2 };
    // Widen one line at a time on each side while there is room, as buildx does.
    let mut padded = 0;
    while padded < pad {
        if start > 1 {
            start -= 1;
            padded += 1;
        }
        if end != lines.len() {
            end += 1;
            padded += 1;
        }
        padded += 1;
    }
    let mut out = format!("{filename}:{first}\n--------------------\n");
    for number in start..=end {
        let marker = if (first..=last_marked).contains(&number) {
            ">>>"
        } else {
            "   "
        };
        let text = lines[number - 1].trim_end_matches('\r');
        let _ = writeln!(out, " {number:>3} | {marker} {text}");
    }
    out.push_str("--------------------\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_span_gets_context() {
        let source = "FROM alpine\n\nRUN nope\nCMD [\"sh\"]\n";
        let out = source_excerpt("Dockerfile", source, LineSpan { start: 3, end: 3 });
        assert_eq!(
            out,
            "Dockerfile:3\n--------------------\n   1 |     FROM alpine\n   2 |     \n   3 | >>> RUN nope\n   4 |     CMD [\"sh\"]\n   5 |     \n--------------------\n"
        );
    }

    #[test]
    fn out_of_range_span_prints_nothing() {
        assert_eq!(
            source_excerpt("Dockerfile", "FROM a\n", LineSpan { start: 9, end: 9 }),
            ""
        );
        assert_eq!(
            source_excerpt("Dockerfile", "FROM a\n", LineSpan { start: 0, end: 0 }),
            ""
        );
    }

    #[test]
    fn error_is_appended() {
        let err = Error::Instruction {
            span: LineSpan { start: 1, end: 2 },
            message: "unknown instruction: FOO".to_string(),
        };
        let out = error_context("Dockerfile", "FOO \\\n  bar\nFROM x", &err);
        assert_eq!(
            out,
            "Dockerfile:1\n--------------------\n   1 | >>> FOO \\\n   2 | >>>   bar\n   3 |     FROM x\n--------------------\nERROR: unknown instruction: FOO\n"
        );
    }
}
