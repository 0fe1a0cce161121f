//! hoistd: hoist's build daemon, serving BuildKit's gRPC API (`moby.buildkit.v1.Control`
//! and `grpc.health.v1.Health`, schema in hoist-proto) so BuildKit's clients can reach
//! hoist's engine. The binary (`main.rs`) turns flags into [`DaemonOptions`] and calls
//! [`serve::run`] or [`dial_stdio::run`].
//!
//! - [`address`]: `unix:///…` and `tcp://HOST:PORT` listener addresses ([`Address`]).
//! - [`config`]: buildkitd.toml-shaped `--config` ([`DaemonConfig`]: root, `[grpc]`
//!   addresses and TLS, `[worker.oci] platforms`, `[registry."host"]`).
//! - [`control`]: the Control service ([`ControlService`]): `ListWorkers` (one worker, this
//!   machine: native and binfmt_misc platforms, BuildKit's labels), `Info`, `DiskUsage` and
//!   `Prune` on the state dir's build cache, `Solve` (`dockerfile.v0`, with or without a
//!   client session), `Status` and `Session` (docs/dev/hoistd.md).
//! - [`gateway`]: the gateway's `LLBBridge` ([`gateway::GatewayService`]): an empty-frontend
//!   `Solve` driven by the client's bridge calls (`Ping`, `Solve` of `dockerfile.v0`,
//!   `Evaluate`, `Return`, `ResolveImageConfig`), as buildx builds; `ReadFile`, `ReadDir`
//!   and `StatFile` on its refs, read inside the result's filesystem; `Warn` into the
//!   build's `Status`.
//! - [`session`]: client sessions ([`session::SessionManager`]): the client's HTTP/2 server
//!   bytes (a `Control.Session` stream or a hijacked `/session`) as a tonic channel.
//! - [`session_inputs`]: the secrets and SSH agents of a build asked of the client's
//!   session for the ids the solved graph mounts ([`hoist_engine::InputSource`]).
//! - [`filesync`]: fsutil's DiffCopy through a session: the incremental, path-checked
//!   receiver for the context and Dockerfile, the senders for `local` and `tar` exports.
//! - [`engine_api`]: the Docker Engine API's build endpoints for the docker CLI
//!   (`--engine-addr`); [`engine_prune`]: its `/build/prune` query as a `Prune`.
//! - [`solve_request`]: a `SolveRequest`'s frontend attributes and exporter typed into a
//!   `hoist_engine::BuildRequest`, and the exporter response.
//! - [`upload`]: a context the client uploads through its session (`Upload.Pull`, a tar or
//!   a Dockerfile from its stdin).
//! - [`cache_store`]: `type=local` caches through the client's session: its content store
//!   (`local:<dir>`) as the engine's [`hoist_engine::BlobStore`], and `cache.manifest`.
//! - [`builds`]: the builds by ref and their progress as `StatusResponse`s
//!   ([`builds::Builds`], [`builds::StatusConverter`]), warnings as `VertexWarning`s.
//! - [`health`]: the health service, `NOT_SERVING` once shutdown begins.
//! - [`calls`]: the calls under way, which shutdown waits for.
//! - [`serve`]: listeners (TLS and mutual TLS on tcp), serving, graceful shutdown.
//! - [`dial_stdio`]: stdin/stdout bridged to the daemon's socket.

pub mod address;
pub mod builds;
pub mod cache_store;
pub mod calls;
pub mod config;
pub mod control;
pub mod dial_stdio;
pub mod engine_api;
pub mod engine_prune;
pub mod error;
pub mod filesync;
pub mod gateway;
pub mod health;
pub mod serve;
pub mod session;
pub mod session_inputs;
pub mod solve_request;
pub mod upload;

pub use address::Address;
pub use config::{DaemonConfig, TlsFiles};
pub use control::ControlService;
pub use error::{Error, Result};
pub use serve::DaemonOptions;
