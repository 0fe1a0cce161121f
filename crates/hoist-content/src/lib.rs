//! The local content store: an OCI image layout of verified blobs, with names and GC.
//!
//! Principal types:
//! - [`StateDir`]: where hoist keeps its state (`/var/lib/hoist`, `$XDG_DATA_HOME/hoist`,
//!   or `--root`);
//! - [`ContentStore`]: blobs under `<root>/content/blobs/<alg>/<hex>`, written only through
//!   an [`Ingest`] that hashes while writing and verifies digest and size before an atomic,
//!   fsynced rename; names (`index.json` `org.opencontainers.image.ref.name` entries)
//!   updated under an exclusive file lock; garbage collection ([`GcOptions`], [`GcReport`]);
//! - [`Error`]: the one error type.
//!
//! The store is safe to share between threads and between processes: blob writes go through
//! unique temp files and `rename(2)`, and every read-modify-write of `index.json` (and GC)
//! holds an `flock(2)` on `<root>/content.lock`.

mod error;
mod gc;
mod ingest;
mod lock;
mod names;
mod state_dir;
mod store;

pub use error::{Error, Result};
pub use gc::{GcOptions, GcReport};
pub use ingest::{Expected, Ingest, Written};
pub use state_dir::{Environment, StateDir, SYSTEM_ROOT};
pub use store::ContentStore;
