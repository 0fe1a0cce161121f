//! OCI and Docker image data model for hoist.
//!
//! Principal types:
//! - [`Digest`] (`sha256:…`), with the streaming hashers [`Digester`] and [`DigestWriter`];
//! - [`MediaType`] (OCI and Docker schema 2 media types, constants in [`media_types`]);
//! - [`Descriptor`] (media type + digest + size + extras) and [`Platform`];
//! - [`Reference`] (`docker.io/library/busybox:latest`), parsed like distribution/reference.
//!
//! Everything here is plain data: no I/O beyond `std::io` readers and writers handed in.

pub mod annotations;
mod descriptor;
mod digest;
mod error;
mod media_type;
pub mod platform;
pub mod reference;

pub use descriptor::Descriptor;
pub use digest::{Algorithm, Digest, DigestWriter, Digester};
pub use error::{DigestErrorKind, Error, ReferenceErrorKind, Result};
pub use media_type::{media_types, Compression, MediaType};
pub use platform::{MatchComparer, Matcher, Platform};
pub use reference::{AnyReference, Reference};
