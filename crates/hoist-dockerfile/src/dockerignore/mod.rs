//! `.dockerignore` files and the patterns in them, with moby/patternmatcher's semantics
//! (what BuildKit, buildx and the Docker CLI use) — which are **not** gitignore's.
//!
//! - [`read_ignore_file`] turns the file's text into patterns (comments, blank lines,
//!   `!`, trimming, cleaning, leading `/` removal), as `ignorefile.ReadAll` does.
//! - [`PatternMatcher`] compiles them; [`PatternMatcher::matches_or_parent_matches`] says
//!   whether one path is ignored, and [`PatternMatcher::matches_using_parent_results`]
//!   does the same while walking a tree, reusing each directory's [`MatchInfo`].
//! - [`ignore_file_candidates`] says which file applies to a Dockerfile:
//!   `<Dockerfile>.dockerignore` beside it wins over the context's `.dockerignore`.
//!
//! # Pattern semantics
//!
//! Paths are `/`-separated and relative to the context root. Patterns are anchored at the
//! root (`foo` is only `./foo`, never `a/foo`; that takes `**/foo`), and a pattern that
//! matches a directory matches everything below it. The last matching pattern decides,
//! and `!pattern` re-includes. Within a path element `*` matches any run of characters
//! and `?` one character, neither crossing `/`; `**` matches any number of directories,
//! including none; `[a-z]`, `[^a-z]` are classes and `\` escapes the next character.
//! Patterns are cleaned like Go's `filepath.Clean` (`a//b/./c/` → `a/b/c`).
//!
//! # How matching is done, and why with `regex`
//!
//! As upstream, each pattern is classified once: exact text, prefix (`dir/**`), suffix
//! (`**/name`, `**name`) or regular expression; the first three are plain string
//! comparisons and are part of the semantics (`**file` matches `a/myfile`). The rest go
//! through the `regex` crate, which gives linear-time matching with no backtracking blow-up
//! on patterns like `a*b*c*d*e*`. Upstream writes those expressions by copying class
//! syntax and escapes from the pattern, so Go's regexp dialect decides what `[[]` or `\d`
//! means; `go_regex` reads that dialect and rewrites it in escaped, unambiguous `regex`
//! syntax, rather than a hand-written glob engine that would have to re-derive those
//! quirks.

mod clean;
mod compile;
mod glob_syntax;
mod go_regex;
mod ignore_file;
mod matcher;
mod pattern;

pub use ignore_file::{
    ignore_file_candidates, read_ignore_file, IgnoreFileCandidate, IgnoreFileLocation,
    DOCKERIGNORE, DOCKERIGNORE_SUFFIX,
};
pub use matcher::{matches, matches_or_parent_matches, MatchInfo, PatternMatcher};
pub use pattern::Pattern;
