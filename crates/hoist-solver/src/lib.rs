//! A generic DAG scheduler: cache keys, once-per-key execution, bounded parallelism,
//! cancellation and progress events. It knows nothing of containers; the build engine plugs
//! its ops in, and the tests use integer ops.
//!
//! Principal types:
//! - [`Op`]: what a vertex does: its definition bytes, its [`CacheMap`] and `exec`;
//! - [`Vertex`]: an op, its inputs (other `Arc<Vertex>`es), a name and [`VertexOptions`];
//!   identified by a [`Digest`] over the definition and the input digests;
//! - [`Solver`] (built with [`SolverBuilder`]): evaluates one or many targets together;
//! - [`CacheStore`]: results by [`CacheKey`] across solves; [`MemoryCacheStore`] keeps them
//!   in memory;
//! - [`Event`] / [`EventKind`]: progress (rendering it is the front end's business);
//! - [`KeyFacts`]: what a key was made of, handed to [`Op::explain_miss`] before a vertex
//!   runs (its answer is the [`EventKind::CacheMiss`] reason) and to [`Op::key_used`] on a
//!   hit;
//! - [`Error`]: the one error type.
//!
//! # Design
//!
//! **Identity and keys.** A vertex's digest says *what it is* (op definition + input
//! digests); its cache key says *what it produces*: `sha256(op cache digest, for each input
//! either its cache key or a checksum of the part of its result the op reads)`. The cache
//! digest is the definition's digest unless the op resolves something first (an image tag to
//! a manifest digest). Keying an input by content (BuildKit's content-based cache map
//! selectors) lets a `COPY src/ .` miss only when files under `src/` change. See
//! [`CacheMap`] for the exact encoding.
//!
//! **Once per key.** Within one [`Solver`], each vertex digest is evaluated once and each
//! cache key runs at most once, however many graphs or concurrent `solve` calls ask for it:
//! the first asker spawns a task and everyone awaits its shared outcome. So N per-platform
//! graphs solved together run their platform-independent vertices once. A vertex whose key
//! another vertex already produced reports [`EventKind::Cached`].
//!
//! **Order of work.** A vertex computes its key first, then looks it up in the
//! [`CacheStore`]; only on a miss are its inputs evaluated, so a cache hit near the targets
//! skips everything below it. With its inputs ready, it claims its key in the store
//! ([`CacheStore::claim`]) and looks it up once more before running: a store shared by
//! several processes makes the second one wait for the first's run and use its result. Ops run under a semaphore of `parallelism` permits, held only
//! while `exec` runs, never while waiting for inputs: no graph can deadlock the scheduler.
//!
//! **Failure and cancellation.** An error fails every dependent without running it, carrying
//! the failing vertex ([`Error::vertex`]). Cancelling (a [`CancellationToken`]) stops ops
//! from starting and drops running ones; everything unfinished fails with
//! [`Error::Cancelled`].
//!
//! **No cache.** `no_cache` (global) and [`VertexOptions::ignore_cache`] (per vertex) force a
//! run instead of a lookup; the fresh result is saved and still shared by key. Being forced
//! propagates to dependents that key on the forced vertex's cache key, not to those that key
//! on its content.
//!
//! [`CancellationToken`]: tokio_util::sync::CancellationToken

mod cache;
mod digest;
mod error;
mod miss;
mod progress;
mod solver;
mod vertex;

pub use cache::{CacheStore, Claim, MemoryCacheStore};
pub use digest::{CacheKey, Digest};
pub use error::{BoxError, Error, SharedError};
pub use miss::{Forced, InputFacts, KeyFacts, KeyShare};
pub use progress::{Event, EventKind, LogStream, Warning, WarningSource};
pub use solver::{Solver, SolverBuilder};
pub use tokio_util::sync::CancellationToken;
pub use vertex::{CacheMap, ExecContext, Op, SourceLines, Vertex, VertexInfo, VertexOptions};
