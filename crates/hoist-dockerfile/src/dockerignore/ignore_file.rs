//! Reading a `.dockerignore` file into patterns ([`read_ignore_file`]) and knowing which
//! file to read for a given Dockerfile ([`ignore_file_candidates`]).
//!
//! # Which ignore file applies
//!
//! BuildKit's Dockerfile frontend (`frontend/dockerui`, as driven by buildx and
//! `docker build`) reads the Dockerfile from the directory that holds it and, in the same
//! request, tries `<Dockerfile name>.dockerignore` **beside the Dockerfile**
//! (`build/app.Dockerfile` → `build/app.Dockerfile.dockerignore`). When that file exists
//! it is used and the context's `.dockerignore` is not read at all; only when it is absent
//! does the frontend read `.dockerignore` at the **root of the context**. The two files
//! are never merged. Details that follow from how it is done:
//!
//! - the name is the Dockerfile's name as given, plus `.dockerignore`; when `Dockerfile`
//!   is missing and BuildKit falls back to a lowercase `dockerfile`, the ignore file it
//!   looks for is still `Dockerfile.dockerignore`;
//! - the per-Dockerfile file sits beside the Dockerfile even when the Dockerfile lives
//!   outside the context;
//! - a Dockerfile read from standard input (`-f -`) has no directory of its own, so only
//!   the context's `.dockerignore` can apply;
//! - an empty per-Dockerfile file still wins (it ignores nothing) with the frontend built
//!   into BuildKit; a frontend image reached over gRPC receives an empty file as no bytes
//!   and falls back to the context's file — an accident of the wire format we do not copy;
//! - ignore files only filter local contexts: a Git or URL context is used whole;
//! - a named local context (`--build-context name=dir`) is filtered by its own root
//!   `.dockerignore` ([`DOCKERIGNORE`]), never by a per-Dockerfile file;
//! - a file that cannot be read into patterns fails the build
//!   (`failed parsing <name>: …`), as does a malformed pattern when it is used.
//!
//! The legacy (non-BuildKit) builder only ever read the context's `.dockerignore`.

use super::clean;
use crate::{Error, Result};

/// The name of the context-wide ignore file.
pub const DOCKERIGNORE: &str = ".dockerignore";

/// The suffix that makes a Dockerfile's own ignore file (`app.Dockerfile.dockerignore`).
pub const DOCKERIGNORE_SUFFIX: &str = ".dockerignore";

/// The longest line Go's `bufio.Scanner` (which upstream reads with) accepts, in bytes.
const MAX_LINE: usize = 64 * 1024 - 1;

/// Turns the text of a `.dockerignore` into patterns for
/// [`PatternMatcher::new`](super::PatternMatcher::new), as moby/patternmatcher's
/// `ignorefile.ReadAll` does:
///
/// - lines end at `\n`, a `\r` before it is dropped, and a UTF-8 BOM at the start is
///   removed;
/// - a line whose first character is `#` is a comment (checked *before* trimming, so
///   `  # x` is a pattern);
/// - every other line is trimmed of surrounding whitespace, and dropped when blank;
/// - a leading `!` is kept and what follows it is trimmed again (`! /a` → `!a`);
/// - the rest is cleaned like Go's `filepath.Clean` and a leading `/` is removed
///   (`/test2` → `test2`, `./a/../b/` → `b`), so patterns are relative to the context.
///
/// A bare `!` is kept (and rejected by `PatternMatcher::new`). A file with no patterns,
/// or no file at all, gives an empty list. A line of 64 KiB or more is an
/// [`Error::IgnoreFile`], as upstream's line scanner refuses it.
pub fn read_ignore_file(text: &str) -> Result<Vec<String>> {
    let mut patterns = Vec::new();
    for (index, raw) in lines(text).enumerate() {
        // Measured as the scanner does: with any `\r`, and with the BOM on line 1.
        if raw.len() > MAX_LINE {
            return Err(Error::IgnoreFile {
                line: index + 1,
                message: format!(
                    "the line is {} bytes long, more than the {MAX_LINE} allowed",
                    raw.len()
                ),
            });
        }
        let raw = match index {
            0 => raw.strip_prefix('\u{feff}').unwrap_or(raw),
            _ => raw,
        };
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.starts_with('#') {
            continue;
        }
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let (invert, rest) = match line.strip_prefix('!') {
            Some(rest) => (true, rest.trim()),
            None => (false, line),
        };
        let mut pattern = String::new();
        if !rest.is_empty() {
            let cleaned = clean::clean(rest);
            pattern = match cleaned.strip_prefix('/') {
                Some(relative) if !relative.is_empty() => relative.to_owned(),
                _ => cleaned,
            };
        }
        if invert {
            pattern.insert(0, '!');
        }
        patterns.push(pattern);
    }
    Ok(patterns)
}

/// The lines as Go's `bufio.ScanLines` yields them (with any `\r` still attached): split
/// at `\n`, no empty line after a final `\n`.
fn lines(text: &str) -> impl Iterator<Item = &str> {
    let body = text.strip_suffix('\n').unwrap_or(text);
    let empty = text.is_empty();
    body.split('\n').filter(move |_| !empty)
}

/// Where an ignore-file candidate lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IgnoreFileLocation {
    /// `<Dockerfile>.dockerignore`, in the Dockerfile's directory.
    BesideDockerfile,
    /// `.dockerignore` at the root of the build context.
    ContextRoot,
}

/// One file to try, in [`ignore_file_candidates`]'s order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgnoreFileCandidate {
    pub location: IgnoreFileLocation,
    /// For [`IgnoreFileLocation::BesideDockerfile`], the path of the Dockerfile (as given,
    /// cleaned) with `.dockerignore` appended; for [`IgnoreFileLocation::ContextRoot`],
    /// `.dockerignore`, relative to the context.
    pub path: String,
}

/// The ignore files to try for the Dockerfile at `dockerfile` (the `-f` value, relative to
/// the context or absolute; empty means `Dockerfile`; `-` means standard input), in
/// order: **the first that exists is the only one used**, even if it is empty. See the
/// module docs for where this comes from.
///
/// ```
/// use hoist_dockerfile::dockerignore::{ignore_file_candidates, IgnoreFileLocation};
///
/// let found = ignore_file_candidates("build/app.Dockerfile");
/// assert_eq!(found[0].path, "build/app.Dockerfile.dockerignore");
/// assert_eq!(found[1].location, IgnoreFileLocation::ContextRoot);
/// assert_eq!(found[1].path, ".dockerignore");
/// ```
pub fn ignore_file_candidates(dockerfile: &str) -> Vec<IgnoreFileCandidate> {
    let root = IgnoreFileCandidate {
        location: IgnoreFileLocation::ContextRoot,
        path: DOCKERIGNORE.to_owned(),
    };
    if dockerfile == "-" {
        return vec![root];
    }
    let dockerfile = if dockerfile.is_empty() {
        "Dockerfile".to_owned()
    } else {
        clean::clean(dockerfile)
    };
    vec![
        IgnoreFileCandidate {
            location: IgnoreFileLocation::BesideDockerfile,
            path: format!("{dockerfile}{DOCKERIGNORE_SUFFIX}"),
        },
        root,
    ]
}
