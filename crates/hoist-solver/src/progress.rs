//! Progress: the [`Event`]s a solve sends while it works. Rendering them (BuildKit's plain
//! text, an interactive view, JSON) is the front end's business.
//!
//! Every vertex that the solve touches reports exactly one of these sequences:
//!
//! - `Cached` (its result came from the cache store, or another vertex with the same cache
//!   key produced it);
//! - optionally `CacheMiss` (why it was not cached, when its op could say), then
//!   `Started`, any number of `Log`s, then `Done`, `Error` or `Cancelled`.
//! - `Error` alone, when it failed before its op could start (its cache map or a content
//!   checksum could not be computed, or the cache lookup failed).
//!
//! A vertex that is never reached (its inputs failed, the solve was cancelled before it could
//! start, or a cache hit above made it unnecessary) reports nothing.

use std::time::Duration;

use crate::vertex::{SourceLines, VertexInfo};

/// Something that happened to a vertex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The vertex it happened to.
    pub vertex: VertexInfo,
    /// What happened.
    pub kind: EventKind,
}

/// What happened to a vertex.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EventKind {
    /// The vertex missed the cache and is about to run; `reason` is the op's explanation
    /// ([`Op::explain_miss`](crate::Op::explain_miss)). Sent only when the op gave one.
    CacheMiss { reason: String },
    /// The op started running.
    Started,
    /// The result was reused without running the op.
    Cached,
    /// The op wrote a line of output, `elapsed` after it started.
    Log {
        stream: LogStream,
        elapsed: Duration,
        line: String,
    },
    /// The op finished successfully after `duration`.
    Done { duration: Duration },
    /// The op failed after `duration`; `message` is its error.
    Error { duration: Duration, message: String },
    /// The op was stopped by cancellation after `duration`.
    Cancelled { duration: Duration },
    /// A remark about the vertex that does not stop the build (a Dockerfile lint, a
    /// frontend's warning); any number of them, at any time. The solver never sends one:
    /// the stages around it (a frontend, a daemon's gateway) do.
    Warning(Warning),
}

/// A warning about a vertex, as BuildKit's `VertexWarning` carries it: `short` is the one
/// line shown, `detail` the lines a debug view adds, `url` where to read more, `ranges` the
/// lines of `source` it points at.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Warning {
    /// BuildKit's level: 1 for a warning.
    pub level: i64,
    pub short: String,
    pub detail: Vec<String>,
    pub url: String,
    /// The source file the ranges point into, when there is one.
    pub source: Option<WarningSource>,
    pub ranges: Vec<SourceLines>,
}

/// The source file a [`Warning`] points into (BuildKit's `SourceInfo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WarningSource {
    /// The file name as the user gave it (`Dockerfile`).
    pub filename: String,
    /// Its language (`Dockerfile`).
    pub language: String,
    pub data: std::sync::Arc<[u8]>,
}

/// Which output stream a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LogStream {
    Stdout,
    Stderr,
}
