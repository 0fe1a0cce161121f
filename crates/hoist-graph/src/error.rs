//! The crate's one error type.

/// What can go wrong while building a graph.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An op refers to an input index the vertex does not have.
    #[error("{op} op refers to input {index} but the vertex has {count} inputs")]
    InputOutOfRange {
        op: &'static str,
        index: usize,
        count: usize,
    },
    /// An input names a vertex of another graph.
    #[error("input vertex {index} is not in this graph of {count} vertices")]
    UnknownVertex { index: usize, count: usize },
    /// The definition could not be serialised (a bug: every field serialises).
    #[error("failed to encode the definition of a {op} op: {source}")]
    Encode {
        op: &'static str,
        source: serde_json::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
