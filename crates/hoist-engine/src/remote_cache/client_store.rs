//! [`ClientStore`]: a content store on another machine that a cache is read from or
//! written to blob by blob — a BuildKit client's `type=local` cache directory, which a
//! daemon reaches through the client's session (containerd's content service; hoistd
//! implements [`BlobStore`] over it). The engine only asks for sizes, reads and writes by
//! digest; every blob read lands in the content store through a verified ingest, so a
//! blob whose bytes do not match its name is refused there.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use hoist_oci::{Descriptor, Digest};
use hoist_solver::BoxError;

/// A blob store the engine reaches by digest.
pub trait BlobStore: Send + Sync {
    /// How progress and errors name it (`/path (the client's directory)`).
    fn describe(&self) -> String;

    /// The size of the blob `digest`, `None` when the store lacks it.
    fn size<'a>(&'a self, digest: &'a Digest) -> BoxFuture<'a, Result<Option<u64>, BoxError>>;

    /// The bytes of the blob `digest`, in order (unverified: the caller checks them).
    fn read<'a>(
        &'a self,
        digest: &'a Digest,
    ) -> BoxFuture<'a, Result<BoxStream<'static, Result<Bytes, BoxError>>, BoxError>>;

    /// Writes `descriptor`'s blob from `content` (its bytes, exactly); the store keeps it
    /// only once they match the descriptor. `false` when it held the blob already.
    fn write<'a>(
        &'a self,
        descriptor: &'a Descriptor,
        content: std::fs::File,
    ) -> BoxFuture<'a, Result<bool, BoxError>>;
}

/// A shared [`BlobStore`]; two are equal when they are the same store.
#[derive(Clone)]
pub struct ClientStore(pub Arc<dyn BlobStore>);

impl ClientStore {
    pub fn new(store: Arc<dyn BlobStore>) -> ClientStore {
        ClientStore(store)
    }
}

impl fmt::Debug for ClientStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ClientStore")
            .field(&self.0.describe())
            .finish()
    }
}

impl PartialEq for ClientStore {
    fn eq(&self, other: &ClientStore) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for ClientStore {}
