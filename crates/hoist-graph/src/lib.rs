//! The build graph IR: what a Dockerfile (or any other frontend) turns into, and what the
//! engine solves. Modelled on BuildKit's LLB, in plain Rust types.
//!
//! - [`Op`]: what a vertex does: a [`Source`] (image, local context, git, http), an [`Exec`]
//!   (a process with [`Mount`]s), a [`FileOp`] (a chain of [`FileAction`]s: copy, mkdir,
//!   mkfile, rm) or a merge of its inputs.
//! - [`Vertex`]: an op, its [`Input`]s, the [`Platform`] its result depends on (if any), and
//!   metadata that does not change what it produces (a display name, `ignore_cache`, the
//!   [`SourceRange`] of the instruction it comes from).
//! - [`Graph`]: an arena of vertices in topological order, deduplicated by [`Digest`].
//!   [`Graph::add`] returns an [`Output`] (a vertex and one of its outputs), the value a
//!   frontend passes around as "the state so far".
//!
//! # Digests
//!
//! A vertex's digest is the sha256 of its *definition*: the op, the digests and output
//! indexes of its inputs and its platform, serialised as JSON with fields in declaration
//! order ([`Definition`], kept as [`Vertex::definition_bytes`]). Metadata is not part of it, nor are an exec's proxy
//! variables (BuildKit keeps them out of the cache key too). So a vertex that does not depend
//! on the target platform — the context source, a file op on platform-independent inputs, a
//! stage built `FROM --platform=$BUILDPLATFORM` — has the same digest in the graphs of every
//! target platform, and the solver runs it once.
//!
//! [`Graph::render`] prints one line per vertex, for snapshot tests and `hoist debug graph`.
//!
//! Everything here is pure: no I/O, no async.

mod error;
mod graph;
mod op;
mod render;

pub use error::{Error, Result};
pub use graph::{Definition, Graph, Input, InputDefinition, Output, SourceRange, Vertex, VertexId};
pub use op::{
    Copy, Exec, FileAction, FileBase, FileMode, FileOp, Mkdir, Mkfile, Mount, MountKind,
    MountSource, Network, Op, Owner, ProxyEnv, Rm, Security, Sharing, Source,
};

pub use hoist_oci::{Digest, Platform};
