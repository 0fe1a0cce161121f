//! The local content store: an OCI image layout of verified blobs, with names and GC.
//!
//! Principal types:
//! - [`StateDir`]: where hoist keeps its state (`/var/lib/hoist`, `$XDG_DATA_HOME/hoist`,
//!   or `--root`);
//! - [`ContentStore`]: blobs under `<root>/content/blobs/<alg>/<hex>`, written only through
//!   an [`Ingest`] that hashes while writing and verifies digest and size before an atomic,
//!   fsynced rename; names (`index.json` `org.opencontainers.image.ref.name` entries)
//!   updated under an exclusive file lock; garbage collection ([`GcOptions`], [`GcReport`])
//!   that keeps what names, live [`Lease`]s and named leases
//!   ([`ContentStore::set_named_lease`]) reach;
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
//! assert_eq!(ingest.commit()?, Written::Stored);
//!
//! // Store a small JSON document and name it.
//! let manifest = store.put_bytes(MediaType::OciManifest, br#"{"schemaVersion":2}"#)?;
//! store.set_name("example.com/app:v1", &manifest)?;
//! assert_eq!(store.get_name("example.com/app:v1")?, Some(manifest));
//! # Ok(())
//! # }
//! ```

mod error;
mod gc;
mod ingest;
mod lease;
mod lock;
mod named_lease;
mod names;
mod state_dir;
mod store;

pub use error::{Error, Result};
pub use gc::{GcOptions, GcReport};
pub use ingest::{Expected, Ingest, Written};
pub use lease::Lease;
pub use state_dir::{Environment, StateDir, SYSTEM_ROOT};
pub use store::ContentStore;
