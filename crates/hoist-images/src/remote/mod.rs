//! [`Remote`]: the registry operations the `imagetools` and `manifest` commands need
//! (resolve, fetch manifests and small blobs, copy blobs between repositories, push
//! manifests), as a trait so their logic is unit-tested against an in-memory registry
//! (`memory::MemoryRemote`: in this crate's tests, and for other crates' tests with the
//! `testing` feature) and run against real ones through `hoist_registry::RegistryClient`
//! ([`ClientRemote`]).

use hoist_oci::{Descriptor, MediaType, Reference};

use crate::error::Result;

mod client;
#[cfg(any(test, feature = "testing"))]
pub mod memory;

pub use client::ClientRemote;

/// A manifest or index as fetched: its descriptor and its exact bytes.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// Media type, digest and size of `bytes`.
    pub descriptor: Descriptor,
    /// The bytes exactly as the registry holds them.
    pub bytes: Vec<u8>,
}

/// Registry operations. Repositories are [`Reference`]s whose tag and digest are ignored.
// The futures are awaited where they are made (never spawned), so they need no `Send` bound.
#[allow(async_fn_in_trait)]
pub trait Remote {
    /// The manifest or index `reference` names (by tag or digest).
    async fn resolve(&self, reference: &Reference) -> Result<Fetched>;

    /// The manifest or index `descriptor` points at, from `repository`.
    async fn fetch_manifest(
        &self,
        repository: &Reference,
        descriptor: &Descriptor,
    ) -> Result<Fetched>;

    /// A small blob (an image config) of `repository`, verified, at most `limit` bytes.
    async fn fetch_blob_bytes(
        &self,
        repository: &Reference,
        descriptor: &Descriptor,
        limit: u64,
    ) -> Result<Vec<u8>>;

    /// Makes the blob `descriptor` of `from` present in `to`: nothing when it is there,
    /// a cross-repository mount within one registry, else a copy of the bytes.
    async fn copy_blob(
        &self,
        from: &Reference,
        to: &Reference,
        descriptor: &Descriptor,
    ) -> Result<()>;

    /// Pushes manifest or index bytes under `reference`'s tag (or by digest).
    async fn push_manifest(
        &self,
        reference: &Reference,
        bytes: Vec<u8>,
        media_type: &MediaType,
    ) -> Result<Descriptor>;
}

/// Image configs larger than this are refused (they are JSON of a few KiB).
pub const MAX_CONFIG_SIZE: u64 = 8 * 1024 * 1024;
