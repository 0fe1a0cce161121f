//! BuildKit's Dockerfile build checks (its `linter` package): [`Rule`]s with their names,
//! descriptions and documentation URLs, the [`CheckConfig`] of a `# check=` directive (or
//! the `BUILDKIT_DOCKERFILE_CHECK` build arg), and [`lint`]: the [`LintWarning`]s of a
//! parsed Dockerfile as BuildKit's Dockerfile frontend reports them
//! (`<Rule>: <message> (line N)`), in its order.
//!
//! The rules: [`NO_EMPTY_CONTINUATION`] (from the parser's warnings),
//! [`STAGE_NAME_CASING`], [`FROM_AS_CASING`] and [`MAINTAINER_DEPRECATED`] (per
//! instruction, as BuildKit checks them while typing instructions: every `FROM` and
//! `MAINTAINER` of the file, reached or not); [`JSON_ARGS_RECOMMENDED`] is the frontend's
//! (only stages it dispatches), filtered by [`keep_enabled`]. A `# check=skip=…` comment
//! right above an instruction skips rules for that instruction only, as BuildKit's.

use crate::ast::{Dockerfile, LineSpan, Node};
use crate::error::{Error, Result};
use crate::parser::{parse_directive, split_directive, EMPTY_CONTINUATION_URL};

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

/// BuildKit's `StageNameCasing`.
pub const STAGE_NAME_CASING: Rule = Rule {
    name: "StageNameCasing",
    description: "Stage names should be lowercase",
    url: "https://docs.docker.com/go/dockerfile/rule/stage-name-casing/",
};

/// BuildKit's `FromAsCasing`.
pub const FROM_AS_CASING: Rule = Rule {
    name: "FromAsCasing",
    description: "The 'as' keyword should match the case of the 'from' keyword",
    url: "https://docs.docker.com/go/dockerfile/rule/from-as-casing/",
};

/// BuildKit's `MaintainerDeprecated`.
pub const MAINTAINER_DEPRECATED: Rule = Rule {
    name: "MaintainerDeprecated",
    description: "The MAINTAINER instruction is deprecated, use a label instead to define an \
                  image author",
    url: "https://docs.docker.com/go/dockerfile/rule/maintainer-deprecated/",
};

/// BuildKit's `JSONArgsRecommended`: found by the frontend while it dispatches a stage
/// (a shell-form `CMD`/`ENTRYPOINT` with no `SHELL` in the image config),
/// [`json_args_recommended`].
pub const JSON_ARGS_RECOMMENDED: Rule = Rule {
    name: "JSONArgsRecommended",
    description: "JSON arguments recommended for ENTRYPOINT/CMD to prevent unintended behavior \
                  related to OS signals",
    url: "https://docs.docker.com/go/dockerfile/rule/json-args-recommended/",
};

/// The [`JSON_ARGS_RECOMMENDED`] finding for the instruction `keyword` (as written: `CMD`)
/// at `span`.
pub fn json_args_recommended(keyword: &str, span: LineSpan) -> LintWarning {
    LintWarning {
        rule: JSON_ARGS_RECOMMENDED,
        message: format!(
            "JSON arguments recommended for {keyword} to prevent unintended behavior related \
             to OS signals"
        ),
        span,
    }
}

/// Of `findings` made outside [`lint`] (the frontend's, while it dispatches stages), those
/// `config` leaves on, a `check=` comment above each one's instruction included.
pub fn keep_enabled(
    dockerfile: &Dockerfile,
    config: &CheckConfig,
    findings: Vec<LintWarning>,
) -> Vec<LintWarning> {
    findings
        .into_iter()
        .filter(|finding| {
            let comments = dockerfile
                .children
                .iter()
                .find(|node| node.span.start == finding.span.start)
                .map(|node| node.prev_comment.as_slice())
                .unwrap_or_default();
            !config.merged_with_comments(comments).skips(&finding.rule)
        })
        .collect()
}

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

/// Which checks run and whether a finding fails the build: BuildKit's check options
/// (`skip=all`, `skip=Rule1,Rule2`, `error=true`, `experimental=…`, joined by `;`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckConfig {
    pub skip_all: bool,
    pub skip: Vec<String>,
    /// `error=true`: the build fails when a check found something.
    pub error: bool,
}

impl CheckConfig {
    /// BuildKit's `ParseLintOptions`; the error names the offending option.
    pub fn parse(options: &str) -> Result<CheckConfig> {
        CheckConfig::parse_options(options).map_err(|message| Error::Check { message })
    }

    fn parse_options(options: &str) -> std::result::Result<CheckConfig, String> {
        let options = options.trim();
        let mut config = CheckConfig::default();
        if options.is_empty() {
            return Ok(config);
        }
        for part in options.splitn(3, ';') {
            let Some((key, value)) = part.split_once('=') else {
                return Err(format!("invalid check option {part:?}"));
            };
            let list = |value: &str| -> Vec<String> {
                value.split(',').map(|r| r.trim().to_owned()).collect()
            };
            match key.trim() {
                "skip" => match value.trim() {
                    "all" => config.skip_all = true,
                    rules => config.skip = list(rules),
                },
                // No experimental rules here: nothing to enable.
                "experimental" => {}
                "error" => {
                    config.error = crate::go_bool::parse(value.trim()).ok_or_else(|| {
                        format!(
                            "failed to parse check option {part:?}: strconv.ParseBool: parsing \
                             {:?}: invalid syntax",
                            value.trim()
                        )
                    })?;
                }
                other => return Err(format!("invalid check option {other:?}")),
            }
        }
        Ok(config)
    }

    /// The `# check=` directive of a Dockerfile's text (its first word, as BuildKit reads
    /// it); the default config when there is none.
    pub fn from_directive(text: &str) -> Result<CheckConfig> {
        match parse_directive("check", text) {
            Some(directive) => {
                CheckConfig::parse_options(&directive.value).map_err(|reason| Error::Check {
                    message: format!("failed to parse check options: {reason}"),
                })
            }
            None => Ok(CheckConfig::default()),
        }
    }

    fn skips(&self, rule: &Rule) -> bool {
        self.skip_all || self.skip.iter().any(|s| s == rule.name)
    }

    /// This config with the skips of a `check=` comment above an instruction added (an
    /// unparsable one changes nothing, as BuildKit).
    fn merged_with_comments(&self, comments: &[String]) -> CheckConfig {
        let mut merged = self.clone();
        let directive = comments.iter().find_map(|comment| {
            let (name, value) = split_directive(comment)?;
            name.eq_ignore_ascii_case("check").then_some(value)
        });
        if let Some(value) = directive {
            let first = value.split(' ').next().unwrap_or("");
            if let Ok(other) = CheckConfig::parse_options(first) {
                merged.skip_all |= other.skip_all;
                merged.skip.extend(other.skip);
            }
        }
        merged
    }
}

/// The findings of the checks `config` leaves on, in BuildKit's order: the parser's empty
/// continuation lines, then per instruction in file order.
pub fn lint(dockerfile: &Dockerfile, config: &CheckConfig) -> Vec<LintWarning> {
    let mut found = Vec::new();
    let mut report = |config: &CheckConfig, rule: Rule, message: String, span: LineSpan| {
        if !config.skips(&rule) {
            found.push(LintWarning {
                rule,
                message,
                span,
            });
        }
    };
    for warning in &dockerfile.warnings {
        if warning.url == NO_EMPTY_CONTINUATION.url {
            report(
                config,
                NO_EMPTY_CONTINUATION,
                "Empty continuation line".to_owned(),
                warning.span,
            );
        }
    }
    for node in &dockerfile.children {
        let config = config.merged_with_comments(&node.prev_comment);
        match node.keyword.as_str() {
            "maintainer" => report(
                &config,
                MAINTAINER_DEPRECATED,
                "Maintainer instruction is deprecated in favor of using label".to_owned(),
                node.span,
            ),
            "from" => {
                if let Some(name) = stage_name_not_lowercase(node) {
                    report(
                        &config,
                        STAGE_NAME_CASING,
                        format!("Stage name '{name}' should be lowercase"),
                        node.span,
                    );
                }
                if let Some(as_word) = as_casing_mismatch(node) {
                    report(
                        &config,
                        FROM_AS_CASING,
                        format!(
                            "'{as_word}' and '{}' keywords' casing do not match",
                            node.keyword_original
                        ),
                        node.span,
                    );
                }
            }
            _ => {}
        }
    }
    found
}

/// `FROM image AS Name`'s stage name when it is not all lowercase.
fn stage_name_not_lowercase(node: &Node) -> Option<&str> {
    match node.args.as_slice() {
        [_, _, name] if *name != name.to_lowercase() => Some(name),
        _ => None,
    }
}

/// The `AS` word of a `FROM` whose keyword is all lowercase or all uppercase when the `AS`
/// is not cased the same (a mixed-case `From` is another rule's business).
fn as_casing_mismatch(node: &Node) -> Option<&str> {
    let [_, as_word, ..] = node.args.as_slice() else {
        return None;
    };
    if node.args.len() < 3 {
        return None;
    }
    let from = node.keyword_original.as_str();
    let lower = from == from.to_lowercase();
    let upper = from == from.to_uppercase();
    let matches = if lower {
        *as_word == as_word.to_lowercase()
    } else if upper {
        *as_word == as_word.to_uppercase()
    } else {
        true
    };
    (!matches).then_some(as_word.as_str())
}

/// BuildKit's error for a build whose checks found something under `error=true`: the rules
/// that fired, each once, in the order they first did.
pub fn violation_error(warnings: &[LintWarning]) -> Option<Error> {
    let mut rules: Vec<&str> = Vec::new();
    for warning in warnings {
        if !rules.contains(&warning.rule.name) {
            rules.push(warning.rule.name);
        }
    }
    (!rules.is_empty()).then(|| Error::Check {
        message: format!("lint violation found for rules: {}", rules.join(", ")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shorts(text: &str) -> Vec<String> {
        let dockerfile = crate::parser::parse(text).unwrap();
        let config = CheckConfig::from_directive(text).unwrap();
        lint(&dockerfile, &config)
            .iter()
            .map(LintWarning::short)
            .collect()
    }

    #[test]
    fn an_empty_continuation_is_reported_at_the_line_its_instruction_ends() {
        // BuildKit's testNoEmptyContinuation: the warning is on line 6.
        let text = "\nFROM scratch\n# warning: empty continuation line\nCOPY Dockerfile \\\n\n.\nCOPY Dockerfile \\\n.\n";
        let dockerfile = crate::parser::parse(text).unwrap();
        let warnings = lint(&dockerfile, &CheckConfig::default());
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
    fn stage_names_and_as_casing_as_buildkits_checks() {
        // BuildKit's testStageName.
        let text =
            "\n# warning: stage name should be lowercase\n#\nFROM scratch AS BadStageName\n\n\
                    # warning: 'as' should match 'FROM' cmd casing.\n#\nFROM scratch as base2\n\n\
                    FROM scratch AS base3\n";
        assert_eq!(
            shorts(text),
            [
                "StageNameCasing: Stage name 'BadStageName' should be lowercase (line 4)",
                "FromAsCasing: 'as' and 'FROM' keywords' casing do not match (line 8)",
            ]
        );
        let text = "\n# warning: 'AS' should match 'from' cmd casing.\n#\nfrom scratch AS base\n\n\
                    from scratch as base2\n";
        assert_eq!(
            shorts(text),
            ["FromAsCasing: 'AS' and 'from' keywords' casing do not match (line 4)"]
        );
        // A mixed-case keyword is not this rule's.
        assert!(shorts("From scratch AS base\n").is_empty());
    }

    #[test]
    fn maintainer_is_deprecated_unless_skipped_above_it() {
        assert_eq!(
            shorts("\nFROM scratch\nMAINTAINER me@example.org\n"),
            ["MaintainerDeprecated: Maintainer instruction is deprecated in favor of using label (line 3)"]
        );
        assert!(shorts(
            "\nFROM scratch\n# check=skip=MaintainerDeprecated\nMAINTAINER me@example.org\n"
        )
        .is_empty());
        // The comment skips for its instruction only.
        assert_eq!(
            shorts("FROM scratch\n# check=skip=MaintainerDeprecated\nMAINTAINER a\nMAINTAINER b\n")
                .len(),
            1
        );
    }

    #[test]
    fn the_check_directive_skips_rules_or_all_and_can_make_findings_errors() {
        let text = "# check=skip=NoEmptyContinuation\nFROM scratch AS Bad\nCOPY a \\\n\n b\n";
        assert_eq!(
            shorts(text),
            ["StageNameCasing: Stage name 'Bad' should be lowercase (line 2)"]
        );
        assert!(shorts("# check=skip=all\nFROM scratch as Bad\nMAINTAINER x\n").is_empty());
        let text = "# check=error=true\nFROM scratch AS Bad\nMAINTAINER x\n";
        let dockerfile = crate::parser::parse(text).unwrap();
        let config = CheckConfig::from_directive(text).unwrap();
        assert!(config.error);
        let warnings = lint(&dockerfile, &config);
        assert_eq!(
            violation_error(&warnings).unwrap().to_string(),
            "lint violation found for rules: StageNameCasing, MaintainerDeprecated"
        );
        assert!(violation_error(&[]).is_none());
    }

    #[test]
    fn check_options_parse_as_buildkits() {
        assert_eq!(
            CheckConfig::parse("skip=A, B;error=true").unwrap(),
            CheckConfig {
                skip_all: false,
                skip: vec!["A".into(), "B".into()],
                error: true,
            }
        );
        assert_eq!(CheckConfig::parse("").unwrap(), CheckConfig::default());
        assert!(CheckConfig::parse("experimental=all").is_ok());
        let err = CheckConfig::parse("skip").unwrap_err();
        assert_eq!(err.to_string(), "invalid check option \"skip\"");
        let err = CheckConfig::parse("nope=1").unwrap_err();
        assert_eq!(err.to_string(), "invalid check option \"nope\"");
        let err = CheckConfig::from_directive("# check=bad\nFROM scratch\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "failed to parse check options: invalid check option \"bad\""
        );
        assert!(CheckConfig::parse("error=maybe").is_err());
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

    #[test]
    fn json_args_findings_follow_the_config_and_comments() {
        let text = "FROM scratch\nCMD a\n# check=skip=JSONArgsRecommended\nENTRYPOINT b\n";
        let dockerfile = crate::parser::parse(text).unwrap();
        let findings = vec![
            json_args_recommended("CMD", LineSpan { start: 2, end: 2 }),
            json_args_recommended("ENTRYPOINT", LineSpan { start: 4, end: 4 }),
        ];
        let kept = keep_enabled(&dockerfile, &CheckConfig::default(), findings.clone());
        assert_eq!(
            kept.iter().map(LintWarning::short).collect::<Vec<_>>(),
            [
                "JSONArgsRecommended: JSON arguments recommended for CMD to prevent unintended \
              behavior related to OS signals (line 2)"
            ]
        );
        let skip = CheckConfig::parse("skip=JSONArgsRecommended").unwrap();
        assert!(keep_enabled(&dockerfile, &skip, findings).is_empty());
    }
}
