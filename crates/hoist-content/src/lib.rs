//! The local content store: an OCI image layout of verified blobs, with names and GC.
//!
//! Principal types:
//! - [`ContentStore`]: blobs under `<root>/content/blobs/<alg>/<hex>` (`root` is a plain
//!   directory the caller chooses), written only through an [`Ingest`] that hashes while
//!   writing, once, to the store's own temp file, and verifies digest and size (known from
//!   the start, [`ContentStore::begin`], or at the end, [`ContentStore::writer`] and
//!   [`Ingest::commit`]) before an atomic, fsynced rename; blobs are read back through
//!   [`ContentStore::open_blob`], never by path; names (`index.json` `org.opencontainers.image.ref.name` entries)
//!   updated under an exclusive file lock; garbage collection ([`GcOptions`], [`GcReport`])
//!   that keeps what names, live [`Lease`]s and named leases
//!   ([`ContentStore::set_named_lease`]) reach;
//! - [`write_atomic`]: the one durable replace of a small file (temp file, fsync, rename,
//!   fsync of the directory), used by the store and by the engine's records;
//! - [`Error`]: the one error type.
//!
//! The store is safe to share between threads and between processes: blob writes go through
//! unique temp files and `rename(2)`, and every read-modify-write of `index.json` (and GC)
//! holds an `flock(2)` on `<root>/content.lock`.
//!
//! ```
//! use std::io::Write;
//! use hoist_content::{ContentStore, Written};
//! use hoist_oci::{Descriptor, MediaType};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let tmp = tempfile::tempdir()?;
//! let store = ContentStore::open(tmp.path())?;
//!
//! // Stream a blob whose descriptor is known (a layer being pulled, say).
//! let layer = vec![0u8; 1024];
//! let expected = Descriptor::of_bytes(MediaType::OciLayer, &layer);
//! let mut ingest = store.begin(&expected)?;
//! ingest.write_all(&layer)?;
//! assert_eq!(ingest.commit(None)?.written, Written::Stored);
//!
//! // Stream a blob made on the fly (a layer being built): its digest comes at the end.
//! let mut writer = store.writer()?;
//! writer.write_all(b"a tar, say")?;
//! let stored = writer.commit(None)?;
//! assert_eq!(stored.descriptor(MediaType::OciLayer), Descriptor::of_bytes(MediaType::OciLayer, b"a tar, say"));
//!
//! // Store a small JSON document and name it.
//! let manifest = store.put_bytes(MediaType::OciManifest, br#"{"schemaVersion":2}"#)?;
//! store.set_name("example.com/app:v1", &manifest)?;
//! assert_eq!(store.get_name("example.com/app:v1")?, Some(manifest));
//! # Ok(())
//! # }
//! ```

mod atomic_file;
mod error;
mod gc;
mod ingest;
mod lease;
mod lock;
mod named_lease;
mod names;
mod sink;
mod store;

pub use atomic_file::{write_atomic, write_atomic_with, Durability};
pub use error::{Error, Result};
pub use gc::{GarbageUsage, GcOptions, GcReport};
pub use ingest::{Committed, Expected, Ingest, Written};
pub use lease::Lease;
pub use store::ContentStore;
