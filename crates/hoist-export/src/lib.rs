//! Exporters: a built image (one [`PlatformImage`] per target platform, layers already in
//! the content store) to every output buildx offers.
//!
//! Principal types:
//! - [`Output`] (`-o` parsed once, typed: [`ImageOutput`], [`OciOutput`], [`DockerOutput`],
//!   [`LocalOutput`], [`TarOutput`]), with [`ImageFormat`] (media types, compression) and
//!   [`Annotations`];
//! - [`PlatformImage`] / [`ExportLayer`] / [`ExportRequest`]: what the engine hands over;
//! - [`Exporter`]: holds the [`hoist_content::ContentStore`], an optional
//!   [`hoist_registry::RegistryClient`] and the Docker API socket; [`Exporter::export`] writes
//!   every output and returns an [`ExportResult`], whose [`ExportResult::metadata`] is
//!   BuildKit's `containerimage.*` response ([`ExportMetadata`]);
//! - [`Error`]: the one error type.
//!
//! ```text
//! PlatformImage ─► layers converted if the output asks (compression, media types) ─►
//!   config (Go JSON) ─► manifest per platform ─► index (>1 platform), all in the store
//!   under a lease ─► named in the store | pushed | OCI layout | docker-archive | loaded
//! PlatformImage.rootfs ─► local dir | tar (one folder per platform when split)
//! ```

mod archive;
mod assemble;
mod docker;
mod error;
mod exporter;
mod image;
mod output;
mod result;
mod rootfs;

pub use error::{Error, Result};
pub use exporter::{Exporter, DEFAULT_DOCKER_SOCKET};
pub use image::{ExportLayer, ExportRequest, PlatformImage};
pub use output::{
    Annotation, AnnotationTarget, Annotations, DockerDest, DockerOutput, FileDest, ImageFormat,
    ImageOutput, LayoutDest, LocalOutput, OciOutput, Output, TarOutput,
};
pub use result::{ExportMetadata, ExportResult, ExportedImage, OutputResult};
