//! The build engine: hoist-graph vertices run as solver ops against a [`Worker`], with
//! results cached on disk, and [`build`] tying frontend, solver and exporter together.
//!
//! - [`StateDir`]: where hoist keeps its state (`/var/lib/hoist`, `$XDG_DATA_HOME/hoist`,
//!   or `--root`) and how the engine lays it out (content store, `snapshots/`, `engine/`).
//! - [`Worker`]: state dir, content store, snapshotter, RUN executor, registry client.
//! - [`Ref`] / [`LayerRef`]: what every op produces — a committed snapshot and its layers;
//!   [`read_result`]: a solved result's files seen through a [`ResultRoot`] whose paths
//!   never leave it (a gateway client's `ReadFile`/`ReadDir`/`StatFile`).
//! - [`EngineOp`]: the [`hoist_solver::Op`] over one [`hoist_graph::Vertex`] (image and
//!   local sources, exec, file ops, merge); see the `ops` module docs.
//! - [`Secrets`] / [`SecretStore`]: a build's `--secret`s by id and their values, read once
//!   before any step for `RUN --mount=type=secret`; no value reaches a digest, record,
//!   layer or progress line.
//! - [`SshAgents`] / [`SshStore`]: a build's `--ssh` agents, checked and loaded before any
//!   step, each `RUN --mount=type=ssh` served a socket of its own for the step's duration;
//!   [`SshStore::socket_for`] gives host-side clients (git) the user's agent socket.
//! - [`LateInputs`]: secrets and SSH agents a daemon's client gives once the graph is
//!   known, for exactly the ids its `RUN` mounts name ([`WantedInputs`], ARG-built ids too).
//! - [`RunOptions`]: `--add-host`, `--shm-size`, `--ulimit`, `--cgroup-parent` and the
//!   [`Entitlements`] of `--allow`, checked before any step runs.
//! - [`DiskCacheStore`]: cache key → [`Ref`] records in the state dir, safe for two
//!   processes, so a second build reuses every step and writes no blob.
//! - [`CacheOptions`]: `--cache-from` ([`CacheImport`]: registry or OCI layout dir; an
//!   image there is read as inline cache) and `--cache-to` ([`CacheExport`]:
//!   [`CacheDestination`] registry, local or inline, [`CacheMode`] min/max) in
//!   BuildKit's cache format; imported records are a second, read-only store the solver
//!   consults after the state dir's (layers fetched verified, unpacked like an image's);
//!   a failing import or export is a warning (see `remote_cache`).
//! - [`disk_usage`] / [`prune`]: what the cache holds ([`CacheUsage`] per record) and
//!   removing records least recently used first ([`PruneOptions`] → [`PruneReport`]) with
//!   their snapshots and blobs, safely next to running builds; rows for cache mounts and
//!   the bare git repositories of `engine/git/` too, and last-seen step records go with
//!   their keys' records.
//! - [`GcConfig`] / [`gc`]: automatic gc after a build, BuildKit's `[worker.oci]` gc
//!   settings and policies (or its default, a share of the disk) run through the same
//!   prune, keeping what the build used; nothing but a read when nothing exceeds.
//! - [`ContextSource`]: where a build context comes from (a directory, nothing, a tar on
//!   stdin as a [`TarStream`], an http(s) URL, a Git URL); [`is_archive`] tells a tarball
//!   from a Dockerfile by its first [`HEAD_LEN`] bytes, as buildx and BuildKit do.
//! - [`build`]`(`[`Worker`]`, `[`BuildRequest`]`, events) -> `[`BuildResult`]: five stages a
//!   daemon can call one by one — [`prepare_contexts`] (every context a local directory,
//!   held by the [`Prepared`] it returns) → [`load_definition`] (parse, ignore files) → [`resolve`]
//!   (the frontend session, base images config-only and concurrently, images of hoist's
//!   own store and of `oci-layout://` named contexts without a registry) → [`solve`] (every
//!   platform's graph together) → [`export`] (images finished and written); [`Progress`]
//!   carries their steps next to the solver's events.
//! - [`HistoryStore`]: every build's [`BuildRecord`] (request, status, times, step counts,
//!   images, error) and its progress events, kept under `engine/history/<ref>/` for
//!   `hoist history`; [`build`] records each build through a [`Recording`], bounded as
//!   BuildKit's history ([`HistoryLimits`]: 50 records, 48 hours).
//! - [`Error`]: the one error type.
//!
//! What a front end (the `hoist` binary) needs of the crates below is re-exported here, so
//! it depends on the engine alone: [`StateDir`] and [`ContentStore`], [`progress`] (the
//! events [`build`] sends), [`runtime`] (`--runtime` as a [`runtime::Runtime`], and the
//! built-in sandbox's `init_if_requested`) and [`binfmt`] (which platforms this machine
//! executes, QEMU handler registration).
//!
//! ```text
//! prepare_contexts: URL / stdin tar / git ─► <state>/engine/prepared-contexts/<unique>
//! load_definition: Dockerfile ─parse─► AST, .dockerignore
//! resolve: hoist_frontend::solve(MetaResolver: index → manifest → config, all bases at once)
//!   ─► a graph + image config per platform
//! solve: solver (DiskCacheStore) ─► EngineOp::exec (image sources fetch layers here)
//!   ─► snapshots + uncompressed layers in the store
//! export: PlatformImage::new (diff IDs, history) ─► hoist-export
//! ```

mod build;
mod cache;
mod context;
mod definition;
mod error;
mod export;
mod gc;
mod history;
mod late_inputs;
mod oci_layout;
mod ops;
mod prune;
mod remote_cache;
mod resolve;
mod result_files;
mod run_options;
pub mod runtime;
mod secrets;
mod solve;
mod ssh;
mod state_dir;
mod steps;
mod use_lease;
mod worker;

pub use build::{
    build, export, load_definition, prepare_contexts, resolve, solve, BuildRequest, BuildResult,
    Loaded, Prepared, Solved, Solving,
};
pub use cache::{CacheRecord, DiskCacheStore};
pub use context::{is_archive, ContextListing, ContextSource, ListingSender, TarStream, HEAD_LEN};
pub use error::{Error, Result};
pub use gc::{gc, parse_size, DiskSpace, GcConfig, GcPolicy, GcReport};
pub use history::{
    BuildError, BuildRecord, BuildStatus, HistoryLimits, HistoryStore, RecordedImage,
    RecordedRequest, Recording, StepCounts,
};
pub use hoist_content::ContentStore;
pub use hoist_sandbox::{HostEntry, Ulimit};
pub use late_inputs::{wanted_inputs, GivenInputs, InputSource, LateInputs, WantedInputs};
pub use ops::{EngineOp, LocalContext, LocalContexts};
pub use prune::{
    disk_usage, history_usage, prune, CacheUsage, PruneOptions, PruneReport, UsageKind,
};
pub use remote_cache::{
    BlobStore, CacheDestination, CacheExport, CacheImport, CacheMode, CacheOptions, ClientStore,
    LocalSelect, MountSelection,
};
pub use result_files::{read_result, ResultRoot};
pub use run_options::{Entitlements, RunOptions};
pub use secrets::{SecretSource, SecretStore, Secrets};
pub use ssh::{ServedSocket, SocketOwner, SshAgents, SshStore};
pub use state_dir::{Environment, StateDir, SYSTEM_ROOT};
pub use steps::Progress;
pub use worker::{LayerRef, Ref, Worker};

/// Build progress: the [`Event`](progress::Event)s [`build`] sends for each vertex, for a
/// renderer to show.
pub mod progress {
    pub use hoist_solver::{
        Digest, Event, EventKind, LogStream, SourceLines, VertexInfo, Warning, WarningSource,
    };
}

/// Which platforms this machine executes (native, and binfmt_misc handlers) and QEMU
/// handler registration: hoist-sandbox's `binfmt`.
pub mod binfmt {
    pub use hoist_sandbox::binfmt::*;
}
