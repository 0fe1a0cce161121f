//! [`Error`]: everything that can fail in snapshots, layer diffs and extraction.

use std::io;
use std::path::PathBuf;

/// Errors from `hoist-snapshot`. Each variant names the object it failed on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A filesystem call on a path failed.
    #[error("failed to {action} {path}: {source}")]
    Io {
        /// What was being done ("create directory", "read metadata", ...).
        action: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Reading the layer stream (tar or its compression) failed.
    #[error("failed to read layer: {source}")]
    ReadLayer {
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Writing the layer stream (tar, compressor or output) failed.
    #[error("failed to write layer: {source}")]
    WriteLayer {
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// One entry of a layer tar could not be read or placed.
    #[error("layer entry {entry}: {reason}")]
    Entry {
        /// The entry's path as written in the tar.
        entry: String,
        /// What is wrong with it.
        reason: String,
    },
    /// One entry of a layer tar could not be placed because of a filesystem error.
    #[error("layer entry {entry}: failed to {action}: {source}")]
    EntryIo {
        /// The entry's path as written in the tar.
        entry: String,
        /// What was being done.
        action: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A path inside a tree could not be put into a layer tar.
    #[error("cannot put {path} into a layer: {reason}")]
    Unrepresentable {
        /// The path on disk.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A snapshot key or id does not exist.
    #[error("snapshot {key} does not exist")]
    NotFound {
        /// The key or id.
        key: String,
    },
    /// A snapshot key is already in use.
    #[error("snapshot {key} already exists")]
    AlreadyExists {
        /// The key.
        key: String,
    },
    /// A snapshot key is not a plain name.
    #[error("invalid snapshot key {key:?}: keys are non-empty names of [A-Za-z0-9._-] not starting with '.'")]
    InvalidKey {
        /// The key.
        key: String,
    },
    /// The snapshot's metadata file is unreadable.
    #[error("snapshot metadata {path} is corrupt: {source}")]
    Metadata {
        /// The metadata file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// A mount or unmount failed.
    #[error("failed to {action} {target}: {source}")]
    Mount {
        /// "mount overlay on", "unmount", ...
        action: &'static str,
        /// The mount point.
        target: PathBuf,
        /// The errno.
        #[source]
        source: io::Error,
    },
    /// The operation is not possible with this backend or these inputs.
    #[error("{0}")]
    Unsupported(String),
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An [`Error::Io`] for `action` on `path`.
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io {
            action,
            path,
            source,
        }
    }

    /// An [`Error::EntryIo`] for `action` on the tar entry `entry`.
    pub(crate) fn entry_io<'a>(
        action: &'static str,
        entry: &'a str,
    ) -> impl FnOnce(io::Error) -> Self + 'a {
        move |source| Self::EntryIo {
            entry: entry.to_owned(),
            action,
            source,
        }
    }
}
