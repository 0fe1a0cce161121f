//! Image-level operations on registries, the work behind `hoist imagetools` and
//! `hoist manifest`, with buildx's and docker's semantics and texts. The CLI parses flags
//! and prints what these functions return.
//!
//! - [`remote`]: [`Remote`](remote::Remote), the registry operations these commands need
//!   (resolve, fetch manifests and small blobs, copy blobs between repositories, push
//!   manifests), as a trait: [`ClientRemote`](remote::ClientRemote) runs them on a real
//!   registry through `hoist_registry::RegistryClient`; `remote::memory::MemoryRemote` (an
//!   in-memory registry, with the `testing` feature or in this crate's tests) lets the logic
//!   above be tested without one.
//! - [`imagetools`]: [`create`](imagetools::create) (an index from images already in
//!   registries, foreign sources copied first), [`inspect`](imagetools::inspect) with
//!   [`render_inspection`](imagetools::render_inspection) (buildx's text) and
//!   [`template_input`](imagetools::template_input) +
//!   [`render_template`](imagetools::render_template) (`--format`), `--annotation` parsing.
//! - [`manifest_lists`]: docker's local manifest lists:
//!   [`ManifestListStore`](manifest_lists::ManifestListStore) (one folder per list under the
//!   state dir's `manifests/`) and `manifest create|annotate|inspect|push|rm`.
//! - [`manifest_json`]: parsing indexes, manifests and the platform of image configs,
//!   buildx's media type detection, Go-compatible indented JSON.
//! - [`Error`]: the one error type; [`Error::NotFound`] is "no such local manifest list".
//!
//! Raw manifest bytes are never re-serialised: what is pushed or copied is what was
//! fetched, so digests stay those of the source.

mod error;
pub mod imagetools;
pub mod manifest_json;
pub mod manifest_lists;
pub mod remote;

pub use error::{Error, Result};
