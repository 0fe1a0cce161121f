//! The one error type of `hoist-content`.

use std::path::{Path, PathBuf};

use hoist_oci::Digest;

/// Everything that can go wrong in the content store. Messages are lowercase and name the
/// blob (by digest), the name or the path involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file-system operation failed.
    #[error("failed to {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Reading the content of a blob being ingested failed.
    #[error("failed to read the content of blob {digest}: {source}")]
    ReadContent {
        digest: Digest,
        #[source]
        source: std::io::Error,
    },
    /// The bytes written did not hash to the expected digest; nothing was stored.
    #[error("blob digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch { expected: Digest, actual: Digest },
    /// The bytes written were not as many as expected; nothing was stored.
    #[error("blob {digest} size mismatch: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        digest: Digest,
        expected: u64,
        actual: u64,
    },
    /// More bytes were written than expected; the ingest was abandoned.
    #[error("blob {digest} size mismatch: expected {expected} bytes, got more")]
    TooLarge { digest: Digest, expected: u64 },
    /// A write to the ingest's temp file failed earlier, so the ingest cannot be committed.
    #[error("cannot commit blob {digest}: an earlier write to its temp file failed")]
    IngestBroken { digest: Digest },
    /// The digest's algorithm is one hoist cannot compute, so the content cannot be verified.
    #[error("cannot verify blob {digest}: unsupported digest algorithm")]
    UnsupportedAlgorithm { digest: Digest },
    /// The blob is not in the store.
    #[error("blob {digest} not found in the content store")]
    NotFound { digest: Digest },
    /// A file under `blobs/` is not named after a valid digest (reported, never deleted).
    #[error("unexpected file in the content store: {path}")]
    StrayFile { path: PathBuf },
    /// `index.json` does not parse or is not an image index.
    #[error("invalid image index {path}: {reason}")]
    InvalidIndex { path: PathBuf, reason: String },
    /// A descriptor could not be turned into JSON or read back from it.
    #[error("invalid descriptor for name {name:?}: {source}")]
    InvalidDescriptor {
        name: String,
        #[source]
        source: serde_json::Error,
    },
    /// A name that cannot be stored as `org.opencontainers.image.ref.name`.
    #[error("invalid image name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },
    /// A named lease whose name cannot be a file name in `named-leases/`.
    #[error("invalid named lease {name:?}: use 1 to 200 of [A-Za-z0-9._-], not starting with '.'")]
    InvalidLeaseName { name: String },
}

impl Error {
    pub(crate) fn io(action: &'static str, path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
