//! The crate's one error type. Every message names the remote with its credentials masked
//! and never holds a secret: git's stderr is scrubbed of the remote's credentials and of
//! the auth header before it is kept ([`crate::Auth`]).

use std::path::PathBuf;

/// What went wrong reading or fetching a git source.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The string is no git URL at all (a local path, an http URL without `.git`).
    #[error("{url} is not a git URL: {reason}")]
    NotGit { url: String, reason: String },
    /// A git URL written wrong (its query disagrees with its fragment, say).
    #[error("invalid git URL {url}: {reason}")]
    InvalidUrl { url: String, reason: String },
    /// A ref that git would read as an option or that cannot name a ref.
    #[error("invalid git ref {reference:?} for {remote}")]
    InvalidRef { remote: String, reference: String },
    /// A git command failed; `stderr` is git's, scrubbed of secrets.
    #[error("cannot {action} {reference} of {remote}: git {command} failed: {stderr}")]
    Git {
        /// What was being done (`fetch`, `list the refs`, `check out`).
        action: &'static str,
        remote: String,
        /// The ref (`HEAD` for the default branch).
        reference: String,
        /// The git subcommand (`fetch`, `ls-remote`).
        command: String,
        stderr: String,
    },
    /// The remote has no such branch, tag or ref.
    #[error("repository {remote} does not contain ref {reference}")]
    RefNotFound { remote: String, reference: String },
    /// A commit that is not in the repository (a SHA ref no fetch brings).
    #[error("commit {commit} is not in {remote}: {detail}")]
    CommitNotFound {
        remote: String,
        commit: String,
        detail: String,
    },
    /// The ref resolved to another commit than the pinned checksum (`ADD --checksum`).
    #[error("{remote}#{reference}: expected checksum to match {expected}, got {actual}")]
    ChecksumMismatch {
        remote: String,
        reference: String,
        expected: String,
        actual: String,
    },
    /// A checksum that is not a hex commit SHA (or a prefix of one).
    #[error("invalid checksum {checksum:?} for git source {remote}: expected a hex commit SHA")]
    InvalidChecksum { remote: String, checksum: String },
    /// The subdir asked for is no directory of the checkout.
    #[error("subdir {subdir:?} of {remote}#{reference}: {reason}")]
    Subdir {
        remote: String,
        reference: String,
        subdir: String,
        reason: String,
    },
    /// The git program could not be started.
    #[error("cannot run git (is it installed?): {0}")]
    Spawn(#[source] std::io::Error),
    /// A file operation failed.
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io {
            action,
            path,
            source,
        }
    }
}

/// The result type of the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
