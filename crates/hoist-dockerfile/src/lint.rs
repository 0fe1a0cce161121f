//! BuildKit's Dockerfile build checks (its `linter` package): [`Rule`]s with their names,
//! descriptions and documentation URLs, and [`LintWarning`]s as BuildKit's Dockerfile
//! frontend reports them (`<Rule>: <message> (line N)`).
//!
//! Today the only rule is [`NO_EMPTY_CONTINUATION`], which BuildKit reports from the
//! parser's warnings ([`lint_parser_warnings`]).

use crate::ast::{Dockerfile, LineSpan};
use crate::parser::EMPTY_CONTINUATION_URL;

/// A build check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// The rule's name (`NoEmptyContinuation`), as `# check=skip=` names it.
    pub name: &'static str,
    /// What the rule asks for; BuildKit sends it as the warning's detail.
    pub description: &'static str,
    pub url: &'static str,
}

/// BuildKit's `NoEmptyContinuation`.
pub const NO_EMPTY_CONTINUATION: Rule = Rule {
    name: "NoEmptyContinuation",
    description: "Empty continuation lines will become errors in a future release",
    url: EMPTY_CONTINUATION_URL,
};

/// One rule's finding at some lines of the Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LintWarning {
    pub rule: Rule,
    /// The rule's message for this finding (`Empty continuation line`).
    pub message: String,
    pub span: LineSpan,
}

impl LintWarning {
    /// The one line BuildKit shows: `<Rule>: <message> (line N)`, N the first line (left
    /// out when there is none).
    pub fn short(&self) -> String {
        let mut short = format!("{}: {}", self.rule.name, self.message);
        if self.span.start > 0 {
            short.push_str(&format!(" (line {})", self.span.start));
        }
        short
    }
}

/// The parser's warnings as build checks, as BuildKit's Dockerfile frontend turns them:
/// each empty continuation line a [`NO_EMPTY_CONTINUATION`] at the line the instruction
/// ended on.
pub fn lint_parser_warnings(dockerfile: &Dockerfile) -> Vec<LintWarning> {
    dockerfile
        .warnings
        .iter()
        .filter(|w| w.url == NO_EMPTY_CONTINUATION.url)
        .map(|w| LintWarning {
            rule: NO_EMPTY_CONTINUATION,
            message: "Empty continuation line".to_owned(),
            span: w.span,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_continuation_is_reported_at_the_line_its_instruction_ends() {
        // BuildKit's testNoEmptyContinuation: the warning is on line 6.
        let text = "\nFROM scratch\n# warning: empty continuation line\nCOPY Dockerfile \\\n\n.\nCOPY Dockerfile \\\n.\n";
        let dockerfile = crate::parser::parse_bytes(text.as_bytes()).unwrap();
        let warnings = lint_parser_warnings(&dockerfile);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert_eq!(
            warnings[0].short(),
            "NoEmptyContinuation: Empty continuation line (line 6)"
        );
        assert_eq!(warnings[0].span, LineSpan { start: 6, end: 6 });
        assert_eq!(
            warnings[0].rule.url,
            "https://docs.docker.com/go/dockerfile/rule/no-empty-continuation/"
        );
    }

    #[test]
    fn a_finding_without_a_line_has_no_line_suffix() {
        let warning = LintWarning {
            rule: NO_EMPTY_CONTINUATION,
            message: "Empty continuation line".to_owned(),
            span: LineSpan { start: 0, end: 0 },
        };
        assert_eq!(
            warning.short(),
            "NoEmptyContinuation: Empty continuation line"
        );
    }
}
