//! One `.dockerignore` pattern, cleaned, syntax-checked and compiled ([`Pattern`]).

use std::fmt;

use super::{clean, compile, glob_syntax, go_regex};
use crate::{Error, Result};

/// One pattern of a [`PatternMatcher`](super::PatternMatcher): a path glob, possibly an
/// exclusion (`!pattern`, which re-includes what earlier patterns excluded).
///
/// Built by [`PatternMatcher::new`](super::PatternMatcher::new), which trims it, cleans it
/// like Go's `filepath.Clean` and checks its syntax like Go's `filepath.Match`. Its text
/// is kept as cleaned, without the `!`.
#[derive(Debug, Clone)]
pub struct Pattern {
    /// The pattern as the user wrote it (trimmed), for error messages.
    original: String,
    /// Cleaned, without the leading `!`.
    cleaned: String,
    exclusion: bool,
    /// How many `/`-separated elements the cleaned pattern has (for the legacy matcher).
    elements: usize,
    compiled: Compiled,
}

/// How a pattern is matched; see `compile` for where each kind comes from.
#[derive(Debug, Clone)]
enum Compiled {
    Exact,
    /// The text the path must start with (the pattern without its trailing `**`).
    Prefix(String),
    /// The bytes the path must end with: the pattern without its first two bytes (its
    /// leading `**`, except after a byte-order mark, where upstream cuts inside the mark).
    Suffix(Vec<u8>),
    Regex(regex::Regex),
    /// Passed the syntax check but its regular expression does not compile
    /// (`[Local-Only]`: `l-O` is a reversed range). As upstream, this is reported each time
    /// the pattern is consulted, not when the matcher is built.
    Invalid(String),
}

impl Pattern {
    /// Parses one pattern as `PatternMatcher::new` does. `None` for a blank pattern, which
    /// is dropped.
    pub(super) fn parse(text: &str) -> Result<Option<Self>> {
        let original = text.trim();
        if original.is_empty() {
            return Ok(None);
        }
        let mut cleaned = clean::clean(original);
        let exclusion = cleaned.starts_with('!');
        if exclusion {
            if cleaned == "!" {
                return Err(Error::Pattern {
                    pattern: original.to_owned(),
                    message: "illegal exclusion pattern: \"!\" excludes nothing".to_owned(),
                });
            }
            cleaned.remove(0);
        }
        glob_syntax::check(&cleaned).map_err(|message| Error::Pattern {
            pattern: original.to_owned(),
            message: format!("syntax error in pattern: {message}"),
        })?;
        let compiled = match compile::classify(&cleaned) {
            compile::Kind::Exact => Compiled::Exact,
            compile::Kind::Prefix => Compiled::Prefix(
                cleaned
                    .strip_suffix("**")
                    .unwrap_or(cleaned.as_str())
                    .to_owned(),
            ),
            compile::Kind::Suffix => {
                Compiled::Suffix(cleaned.as_bytes().get(2..).unwrap_or_default().to_vec())
            }
            compile::Kind::Regex(go) => match go_regex::to_rust(&go) {
                Ok(source) => match regex::Regex::new(&source) {
                    Ok(regex) => Compiled::Regex(regex),
                    Err(err) => Compiled::Invalid(format!("regular expression {go}: {err}")),
                },
                Err(reason) => Compiled::Invalid(format!("regular expression {go}: {reason}")),
            },
        };
        Ok(Some(Pattern {
            original: original.to_owned(),
            elements: cleaned.split('/').count(),
            cleaned,
            exclusion,
            compiled,
        }))
    }

    /// The cleaned pattern, without its `!` (`"!/docs/"` → `"/docs"`).
    pub fn as_str(&self) -> &str {
        &self.cleaned
    }

    /// True for an exclusion (`!pattern`), which re-includes what it matches.
    pub fn is_exclusion(&self) -> bool {
        self.exclusion
    }

    /// How many `/`-separated elements the cleaned pattern has.
    pub(super) fn elements(&self) -> usize {
        self.elements
    }

    /// Whether `path` itself matches (no parent directories considered). Errors when the
    /// pattern's regular expression is malformed.
    pub(super) fn matches_path(&self, path: &str) -> Result<bool> {
        Ok(match &self.compiled {
            Compiled::Exact => path == self.cleaned,
            Compiled::Prefix(prefix) => path.starts_with(prefix.as_str()),
            Compiled::Suffix(suffix) => {
                path.as_bytes().ends_with(suffix)
                    // `**/foo` also matches `foo` at the root.
                    || suffix.strip_prefix(b"/") == Some(path.as_bytes())
            }
            Compiled::Regex(regex) => regex.is_match(path),
            Compiled::Invalid(reason) => {
                return Err(Error::Pattern {
                    pattern: self.original.clone(),
                    message: format!("syntax error in pattern: {reason}"),
                })
            }
        })
    }
}

impl fmt::Display for Pattern {
    /// The cleaned pattern, with its `!` when it is an exclusion.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.exclusion {
            f.write_str("!")?;
        }
        f.write_str(&self.cleaned)
    }
}
