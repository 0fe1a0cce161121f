//! OCI and Docker image data model for hoist.
//!
//! Principal types:
//! - [`Digest`] (`sha256:…`), with the streaming hashers [`Digester`] and [`DigestWriter`];
//! - [`MediaType`] (OCI and Docker schema 2 media types, constants in [`media_types`]);
//! - [`Descriptor`] (media type + digest + size + extras) and [`Platform`] with its
//!   [`MatchComparer`]s (containerd/platforms rules);
//! - [`Reference`] (`docker.io/library/busybox:latest`), parsed like distribution/reference;
//! - [`Manifest`], [`Index`], [`ImageConfig`] (with Docker's extensions), [`ImageLayout`];
//! - [`Parsed<T>`]: a document with its exact bytes and their digest ([`AnyManifest`] when
//!   either a manifest or an index may come);
//! - [`go_json`]: Go `encoding/json` compatible serialisation, for byte-identical documents;
//! - [`file_name`]: the one rule for names hoist's stores keep as single file names (snapshot
//!   keys, named leases);
//! - [`OciLayoutWriter`] / [`OciLayout`]: OCI image layouts as directories or tars;
//!   [`DockerArchiveWriter`] / [`DockerArchive`]: `docker save` tars.
//!
//! The data model does no I/O; the layout and archive code works on `std::io` readers and
//! writers handed in (and `std::fs` for layout directories), all synchronous.
//!
//! ## Why not the `oci-spec` crate
//!
//! `oci-spec` has good types, but it serialises with its own field order and optional-field
//! handling, has no Docker extensions (`Healthcheck`, `OnBuild`, `Shell`) or Docker manifest
//! list `features`, and its builders make every field an `Option` behind getters. hoist needs
//! byte-exact control of what it writes (Go's field order and escaping, so digests match
//! BuildKit's) and the raw bytes kept next to every parsed document, so the types here are
//! plain serde structs written for that; the conformance runners hold them to the OCI
//! schemas, distribution and containerd.

pub mod annotations;
mod config;
mod descriptor;
mod digest;
pub mod docker_archive;
mod error;
pub mod file_name;
pub mod go_json;
pub mod layout;
mod manifest;
mod media_type;
mod parsed;
pub mod platform;
pub mod reference;

pub use config::{
    format_rfc3339, ContainerConfig, EmptyObject, Healthcheck, History, ImageConfig, RootFs,
};
pub use descriptor::Descriptor;
pub use digest::{Algorithm, Digest, DigestWriter, Digester};
pub use docker_archive::{ArchiveManifestItem, DockerArchive, DockerArchiveWriter};
pub use error::{DigestErrorKind, Error, ReferenceErrorKind, Result};
pub use layout::{OciLayout, OciLayoutWriter};
pub use manifest::{ImageLayout, Index, Manifest, IMAGE_LAYOUT_VERSION};
pub use media_type::{media_types, Compression, MediaType};
pub use parsed::{AnyManifest, Document, Parsed};
pub use platform::{MatchComparer, Matcher, Platform};
pub use reference::{AnyReference, Reference};
