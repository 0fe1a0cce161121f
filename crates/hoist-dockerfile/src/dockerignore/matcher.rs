//! Deciding whether a path is ignored: [`PatternMatcher`] and its parent-aware variants.
//!
//! Every method walks the patterns in order, and the **last pattern that matches decides**:
//! an ordinary pattern marks the path ignored, an exclusion (`!pattern`) re-includes it. As
//! upstream, a pattern is only consulted when it could change the answer (ordinary ones
//! while the path is not ignored, exclusions while it is), so a malformed pattern that is
//! never consulted never errors.
//!
//! Paths are `/`-separated and relative to the context root; the methods do not clean
//! them (the free functions [`matches`] and [`matches_or_parent_matches`] do).

use super::clean;
use super::pattern::Pattern;
use crate::{Error, Result};

/// A compiled list of `.dockerignore` patterns (moby/patternmatcher's `PatternMatcher`).
///
/// ```
/// use hoist_dockerfile::dockerignore::PatternMatcher;
///
/// let pm = PatternMatcher::new(["docs", "!docs/README.md"])?;
/// assert!(pm.matches_or_parent_matches("docs/guide.md")?);
/// assert!(!pm.matches_or_parent_matches("docs/README.md")?);
/// # Ok::<(), hoist_dockerfile::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct PatternMatcher {
    patterns: Vec<Pattern>,
    exclusions: bool,
}

/// What matching a directory found, handed to
/// [`PatternMatcher::matches_using_parent_results`] for its children so their parents are
/// not matched again. `MatchInfo::default()` means "nothing known about the parents".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MatchInfo {
    /// For each pattern, whether it matched the directory or one of its parents.
    parent_matched: Vec<bool>,
}

impl PatternMatcher {
    /// Builds a matcher from patterns as read by
    /// [`read_ignore_file`](super::read_ignore_file).
    ///
    /// Each pattern is trimmed (blank ones are dropped), cleaned like Go's
    /// `filepath.Clean`, split from its leading `!`, and syntax-checked. A bare `!` or a
    /// malformed glob (`[`, `a\`, `[]a]`) is an [`Error::Pattern`] naming it. A pattern
    /// whose character class the regular-expression engine rejects (`[Local-Only]`) is
    /// accepted here and reported when it is consulted, as upstream does.
    pub fn new<I>(patterns: I) -> Result<Self>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let mut parsed = Vec::new();
        for text in patterns {
            if let Some(pattern) = Pattern::parse(text.as_ref())? {
                parsed.push(pattern);
            }
        }
        let exclusions = parsed.iter().any(Pattern::is_exclusion);
        Ok(PatternMatcher {
            patterns: parsed,
            exclusions,
        })
    }

    /// True when any pattern is an exclusion (`!pattern`). Context walkers use this to
    /// know whether an ignored directory may still hold included files.
    pub fn exclusions(&self) -> bool {
        self.exclusions
    }

    /// The patterns kept (blank ones dropped), in order.
    pub fn patterns(&self) -> &[Pattern] {
        &self.patterns
    }

    /// Upstream's deprecated `Matches`: `path` matches a pattern when it does itself, or
    /// when its leading directories, taken with as many elements as the pattern has, do.
    /// Only that one ancestor is tried, which upstream calls a bug and keeps for
    /// compatibility; use [`matches_or_parent_matches`](Self::matches_or_parent_matches).
    pub fn matches(&self, path: &str) -> Result<bool> {
        let parent = clean::dir(path);
        let parent_elements: Vec<&str> = parent.split('/').collect();
        self.decide(|pattern| {
            if pattern.matches_path(path)? {
                return Ok(true);
            }
            if parent == "." || pattern.elements() > parent_elements.len() {
                return Ok(false);
            }
            let ancestor = parent_elements[..pattern.elements()].join("/");
            // Upstream ignores errors from the ancestor check.
            Ok(pattern.matches_path(&ancestor).unwrap_or(false))
        })
    }

    /// Whether `path` is ignored: a pattern matches when it matches `path` or any of its
    /// parent directories (`docs` ignores `docs/a/b.md`). The method to use for one path.
    pub fn matches_or_parent_matches(&self, path: &str) -> Result<bool> {
        let parents = Parents::of(path);
        self.decide(|pattern| pattern_or_parent_matches(pattern, path, &parents))
    }

    /// Upstream's deprecated `MatchesUsingParentResult`: `parent_matched` is whether the
    /// parent directory was ignored, and starts the decision. It misjudges exclusions below
    /// an ignored directory (docker/buildx#850); use
    /// [`matches_using_parent_results`](Self::matches_using_parent_results).
    pub fn matches_using_parent_result(&self, path: &str, parent_matched: bool) -> Result<bool> {
        let mut matched = parent_matched;
        for pattern in &self.patterns {
            if pattern.is_exclusion() != matched {
                continue;
            }
            if pattern.matches_path(path)? {
                matched = !pattern.is_exclusion();
            }
        }
        Ok(matched)
    }

    /// Whether `path` is ignored, reusing what matching its parent directory found: a
    /// walker passes the [`MatchInfo`] returned for a directory when it matches that
    /// directory's entries, so each pattern is tried against each path once. With
    /// `MatchInfo::default()` the parents are matched here, as in
    /// [`matches_or_parent_matches`](Self::matches_or_parent_matches).
    ///
    /// Errors with [`Error::MatchInfoMismatch`] when `parent` came from another matcher.
    pub fn matches_using_parent_results(
        &self,
        path: &str,
        parent: &MatchInfo,
    ) -> Result<(bool, MatchInfo)> {
        let known = &parent.parent_matched;
        if !known.is_empty() && known.len() != self.patterns.len() {
            return Err(Error::MatchInfoMismatch {
                expected: self.patterns.len(),
                found: known.len(),
            });
        }
        let parents = if known.is_empty() {
            Parents::of(path)
        } else {
            Parents::none()
        };
        let mut matched = false;
        let mut info = MatchInfo {
            parent_matched: vec![false; self.patterns.len()],
        };
        for (i, pattern) in self.patterns.iter().enumerate() {
            // A pattern that matched the parent matches the child: no need to recheck.
            let mut hit = known.get(i).copied().unwrap_or(false);
            if !hit {
                if pattern.is_exclusion() != matched {
                    continue;
                }
                hit = pattern_or_parent_matches(pattern, path, &parents)?;
            }
            info.parent_matched[i] = hit;
            if hit {
                matched = !pattern.is_exclusion();
            }
        }
        Ok((matched, info))
    }

    /// The shared loop: the last consulted pattern that matches decides.
    fn decide(&self, mut pattern_matches: impl FnMut(&Pattern) -> Result<bool>) -> Result<bool> {
        let mut matched = false;
        for pattern in &self.patterns {
            // Skip patterns that cannot change the answer.
            if pattern.is_exclusion() != matched {
                continue;
            }
            if pattern_matches(pattern)? {
                matched = !pattern.is_exclusion();
            }
        }
        Ok(matched)
    }
}

/// Whether `pattern` matches `path` or one of `parents` (errors only from `path` itself,
/// as upstream).
fn pattern_or_parent_matches(pattern: &Pattern, path: &str, parents: &Parents) -> Result<bool> {
    if pattern.matches_path(path)? {
        return Ok(true);
    }
    Ok(parents
        .iter()
        .any(|parent| pattern.matches_path(parent).unwrap_or(false)))
}

/// The parent directories of a path, outermost first (`a/b/c` → `a`, `a/b`), computed as
/// upstream does: Go's `filepath.Dir`, then every leading run of its elements. None when
/// the path is at the root (`Dir` is `.`).
struct Parents {
    dir: String,
    ends: Vec<usize>,
}

impl Parents {
    fn of(path: &str) -> Self {
        let dir = clean::dir(path);
        if dir == "." {
            return Parents::none();
        }
        let mut ends: Vec<usize> = dir.match_indices('/').map(|(at, _)| at).collect();
        ends.push(dir.len());
        Parents { dir, ends }
    }

    fn none() -> Self {
        Parents {
            dir: String::new(),
            ends: Vec::new(),
        }
    }

    fn iter(&self) -> impl Iterator<Item = &str> {
        self.ends.iter().map(|&end| &self.dir[..end])
    }
}

/// Upstream's package function `Matches`: builds a matcher from `patterns`, cleans `path`
/// (`.` never matches: the whole context cannot be ignored) and applies the deprecated
/// [`PatternMatcher::matches`].
pub fn matches<I>(path: &str, patterns: I) -> Result<bool>
where
    I: IntoIterator,
    I::Item: AsRef<str>,
{
    let matcher = PatternMatcher::new(patterns)?;
    let path = clean::clean(path);
    if path == "." {
        return Ok(false);
    }
    matcher.matches(&path)
}

/// Upstream's package function `MatchesOrParentMatches`: builds a matcher from `patterns`,
/// cleans `path` (`.` never matches) and applies
/// [`PatternMatcher::matches_or_parent_matches`].
pub fn matches_or_parent_matches<I>(path: &str, patterns: I) -> Result<bool>
where
    I: IntoIterator,
    I::Item: AsRef<str>,
{
    let matcher = PatternMatcher::new(patterns)?;
    let path = clean::clean(path);
    if path == "." {
        return Ok(false);
    }
    matcher.matches_or_parent_matches(&path)
}
