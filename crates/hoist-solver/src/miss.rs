//! What the solver knows of a vertex's key when it looks the key up: [`KeyFacts`], handed to
//! [`Op::explain_miss`](crate::Op::explain_miss) before a vertex runs and to
//! [`Op::key_used`](crate::Op::key_used) on a hit, so an op can remember what each of its
//! steps was made of and say why one missed the cache. The solver keeps no such record
//! itself: what makes two vertices of different builds "the same step" is the op's business.

use std::sync::Arc;

use crate::digest::{CacheKey, Digest};

/// The parts a vertex's cache key was computed from, in the encoding of
/// [`CacheMap`](crate::CacheMap).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFacts {
    /// The key.
    pub key: CacheKey,
    /// The op's own share ([`CacheMap::digest`](crate::CacheMap::digest)).
    pub digest: Digest,
    /// Each input's share, in input order.
    pub inputs: Vec<InputFacts>,
    /// Why the vertex must run whatever the cache holds, if it must.
    pub forced: Option<Forced>,
}

/// One input's share of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputFacts {
    /// The input vertex's name.
    pub name: Arc<str>,
    /// What it contributed.
    pub share: KeyShare,
    /// The input ran in this solve (rather than coming from the cache). Known only by the
    /// time a vertex runs; `false` in the facts of a hit.
    pub ran: bool,
}

/// What an input contributes to a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyShare {
    /// The input's cache key.
    Key(CacheKey),
    /// A checksum of the part of the input's result the op reads
    /// ([`CacheMap::content`](crate::CacheMap::content)).
    Content(Digest),
}

/// Why a vertex runs whatever the cache holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forced {
    /// The solve's [`no_cache`](crate::SolverBuilder::no_cache).
    NoCache,
    /// The vertex's [`ignore_cache`](crate::VertexOptions::ignore_cache).
    IgnoreCache,
    /// Input `index` was forced (its key is part of this one).
    Input(usize),
}
