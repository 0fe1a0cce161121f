//! The one error type of `hoist-oci`.

use std::path::PathBuf;

/// Everything that can go wrong in `hoist-oci`. Messages are lowercase and name the object.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// go-digest `ErrDigestInvalidFormat`.
    #[error("invalid checksum digest format: {digest:?}")]
    DigestFormat { digest: String },
    /// go-digest `ErrDigestInvalidLength`.
    #[error("invalid checksum digest length: {digest:?}")]
    DigestLength { digest: String },
    /// go-digest `ErrDigestUnsupported`.
    #[error("unsupported digest algorithm: {digest:?}")]
    DigestUnsupported { digest: String },
    /// Content did not hash to the digest it was expected to have.
    #[error("digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch { expected: String, actual: String },
    /// Content did not have the size it was expected to have.
    #[error("size mismatch for {digest}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        digest: String,
        expected: u64,
        actual: u64,
    },

    /// A media type string that is not `type/subtype`.
    #[error("invalid media type {media_type:?}")]
    MediaType { media_type: String },

    /// An image reference that does not parse (distribution/reference errors).
    #[error("invalid reference {reference:?}: {reason}")]
    Reference {
        reference: String,
        reason: ReferenceErrorKind,
    },

    /// A platform specifier that does not parse.
    #[error("invalid platform specifier {specifier:?}: {reason}")]
    Platform { specifier: String, reason: String },

    /// A JSON document that does not decode into the expected type.
    #[error("invalid {kind} document: {source}")]
    Json {
        kind: &'static str,
        #[source]
        source: serde_json::Error,
    },
    /// A JSON document that decodes but breaks a rule of its schema.
    #[error("invalid {kind} document: {reason}")]
    Invalid { kind: &'static str, reason: String },

    /// Reading or writing an image layout or archive failed.
    #[error("failed to {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An image layout or archive is malformed.
    #[error("invalid {format} at {path}: {reason}")]
    Archive {
        format: &'static str,
        path: PathBuf,
        reason: String,
    },
}

/// Why a reference failed to parse; the texts are distribution/reference's error strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReferenceErrorKind {
    /// `ErrReferenceInvalidFormat`.
    InvalidFormat,
    /// `ErrTagInvalidFormat`.
    TagInvalidFormat,
    /// `ErrDigestInvalidFormat`.
    DigestInvalidFormat,
    /// `ErrNameContainsUppercase`.
    NameContainsUppercase,
    /// `ErrNameEmpty`.
    NameEmpty,
    /// `ErrNameTooLong`.
    NameTooLong,
    /// `ErrNameNotCanonical`.
    NameNotCanonical,
    /// A digest that matched the grammar but failed go-digest validation.
    Digest(DigestErrorKind),
    /// A 64-hex repository name, which would be ambiguous with an image ID.
    HexRepositoryName,
    /// A malformed `FamiliarMatch` pattern (Go's `path.ErrBadPattern`).
    BadPattern,
}

/// The go-digest error a digest inside a reference produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestErrorKind {
    /// `ErrDigestInvalidFormat`.
    InvalidFormat,
    /// `ErrDigestInvalidLength`.
    InvalidLength,
    /// `ErrDigestUnsupported`.
    Unsupported,
}

impl std::fmt::Display for ReferenceErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::InvalidFormat => "invalid reference format",
            Self::TagInvalidFormat => "invalid tag format",
            Self::DigestInvalidFormat => "invalid digest format",
            Self::NameContainsUppercase => "repository name must be lowercase",
            Self::NameEmpty => "repository name must have at least one component",
            Self::NameTooLong => "repository name must not be more than 255 characters",
            Self::NameNotCanonical => "repository name must be canonical",
            Self::Digest(DigestErrorKind::InvalidFormat) => "invalid checksum digest format",
            Self::Digest(DigestErrorKind::InvalidLength) => "invalid checksum digest length",
            Self::Digest(DigestErrorKind::Unsupported) => "unsupported digest algorithm",
            Self::HexRepositoryName => "cannot specify 64-byte hexadecimal strings",
            Self::BadPattern => "syntax error in pattern",
        })
    }
}

impl Error {
    /// The go-digest error kind, when this is a digest parse error.
    pub fn digest_kind(&self) -> Option<DigestErrorKind> {
        match self {
            Self::DigestFormat { .. } => Some(DigestErrorKind::InvalidFormat),
            Self::DigestLength { .. } => Some(DigestErrorKind::InvalidLength),
            Self::DigestUnsupported { .. } => Some(DigestErrorKind::Unsupported),
            _ => None,
        }
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
