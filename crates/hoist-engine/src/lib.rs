//! The build engine: hoist-graph vertices run as solver ops against a [`Worker`], with
//! results cached on disk, and [`build`] tying frontend, solver and exporter together.
//!
//! - [`StateDir`]: where hoist keeps its state (`/var/lib/hoist`, `$XDG_DATA_HOME/hoist`,
//!   or `--root`) and how the engine lays it out (content store, `snapshots/`, `engine/`).
//! - [`Worker`]: state dir, content store, snapshotter, RUN executor, registry client.
//! - [`Ref`] / [`LayerRef`]: what every op produces — a committed snapshot and its layers.
//! - [`EngineOp`]: the [`hoist_solver::Op`] over one [`hoist_graph::Vertex`] (image and
//!   local sources, exec, file ops, merge); see the `ops` module docs.
//! - [`DiskCacheStore`]: cache key → [`Ref`] records in the state dir, safe for two
//!   processes, so a second build reuses every step and writes no blob.
//! - [`disk_usage`] / [`prune`]: what the cache holds ([`CacheUsage`] per record) and
//!   removing records least recently used first ([`PruneOptions`] → [`PruneReport`]) with
//!   their snapshots and blobs, safely next to running builds.
//! - [`build`]`(`[`Worker`]`, `[`BuildRequest`]`, events) -> `[`BuildResult`].
//! - [`Error`]: the one error type.
//!
//! ```text
//! Dockerfile ─parse─► plan ─► pull base images ─► convert (per platform) ─► graph
//!   ─► solver (DiskCacheStore) ─► EngineOp::exec ─► snapshots + uncompressed layers in the store
//!   ─► PlatformImage(s) ─► hoist-export
//! ```

mod build;
mod cache;
mod error;
mod ops;
mod prune;
mod state_dir;
mod use_lease;
mod worker;

pub use build::{build, BuildRequest, BuildResult};
pub use cache::{CacheRecord, DiskCacheStore};
pub use error::{Error, Result};
pub use ops::{EngineOp, LocalContexts};
pub use prune::{disk_usage, prune, CacheUsage, PruneOptions, PruneReport, UsageKind};
pub use state_dir::{Environment, StateDir, SYSTEM_ROOT};
pub use worker::{LayerRef, Ref, Worker};
