//! The one error type of `hoist-solver`.

use std::sync::Arc;

use crate::digest::CacheKey;
use crate::vertex::VertexInfo;

/// An error from an op, a content checksum or a cache store, shared between every waiter.
pub type SharedError = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// A boxed error, as returned by [`CacheStore`](crate::CacheStore) methods and content
/// checksum functions.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can make a solve fail.
///
/// Errors are `Clone` because one failure is reported to every vertex and every solve that
/// depends on it. Each variant naming a vertex names the vertex where the failure happened,
/// not the target that was requested: a dependent fails with its input's error unchanged.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The op of a vertex returned an error.
    #[error("vertex {vertex} failed: {source}")]
    Op {
        vertex: VertexInfo,
        #[source]
        source: SharedError,
    },
    /// The op could not compute its cache map (for example, a source could not be resolved).
    #[error("failed to compute the cache key of vertex {vertex}: {source}")]
    CacheMap {
        vertex: VertexInfo,
        #[source]
        source: SharedError,
    },
    /// The op's cache map names an input the vertex does not have.
    #[error("the cache map of vertex {vertex} selects content of input {input}, but the vertex has {inputs} inputs")]
    CacheMapInput {
        vertex: VertexInfo,
        input: usize,
        inputs: usize,
    },
    /// Computing the checksum of the content an op selects from an input failed.
    #[error("failed to checksum input {input} of vertex {vertex}: {source}")]
    ContentChecksum {
        vertex: VertexInfo,
        input: usize,
        #[source]
        source: SharedError,
    },
    /// Looking a result up in the cache store failed.
    #[error("failed to look up cache key {key} for vertex {vertex}: {source}")]
    CacheLoad {
        vertex: VertexInfo,
        key: CacheKey,
        #[source]
        source: SharedError,
    },
    /// Saving a result to the cache store failed.
    #[error("failed to save the result of vertex {vertex} under cache key {key}: {source}")]
    CacheSave {
        vertex: VertexInfo,
        key: CacheKey,
        #[source]
        source: SharedError,
    },
    /// The op of a vertex panicked.
    #[error("vertex {vertex} panicked: {message}")]
    Panicked { vertex: VertexInfo, message: String },
    /// The solve was cancelled before this vertex could finish.
    #[error("solve cancelled")]
    Cancelled,
    /// A string was not a `sha256:<hex>` digest.
    #[error("invalid digest {digest:?}: expected sha256:<64 lowercase hex digits>")]
    InvalidDigest { digest: String },
}

impl Error {
    /// The vertex where the failure happened, when there is one.
    pub fn vertex(&self) -> Option<&VertexInfo> {
        match self {
            Self::Op { vertex, .. }
            | Self::CacheMap { vertex, .. }
            | Self::CacheMapInput { vertex, .. }
            | Self::ContentChecksum { vertex, .. }
            | Self::CacheLoad { vertex, .. }
            | Self::CacheSave { vertex, .. }
            | Self::Panicked { vertex, .. } => Some(vertex),
            Self::Cancelled | Self::InvalidDigest { .. } => None,
        }
    }

    /// Whether the solve failed because it was cancelled.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, Self::Cancelled)
    }
}
