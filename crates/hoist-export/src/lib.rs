//! Exporters: a built image (one [`PlatformImage`] per target platform, layers already in
//! the content store) to every output buildx offers.
//!
//! Principal types:
//! - [`Output`] (`-o` parsed once, typed: [`ImageOutput`], [`OciOutput`], [`DockerOutput`],
//!   [`LocalOutput`], [`TarOutput`]), with [`ImageFormat`] (media types, compression) and
//!   [`Annotations`];
//! - [`PlatformImage`] / [`ExportLayer`] / [`ExportRequest`]: what the engine hands over;
//! - [`Exporter`]: holds the [`hoist_content::ContentStore`], an optional
//!   [`hoist_registry::RegistryClient`] and the Docker daemon's [`DockerEndpoint`] (by
//!   default the one `DOCKER_HOST` or the current docker context names); [`Exporter::export`] writes
//!   every output and returns an [`ExportResult`], whose [`ExportResult::metadata`] is
//!   BuildKit's `containerimage.*` response ([`ExportMetadata`]); [`ExportProgress`] hears
//!   when each output starts and ends (shown as [`Output::progress_name`]);
//! - [`LayerConverter`]: the exporters' layer conversion (reuse, recompress once, store
//!   variants) for other writers: the engine's cache export;
//! - [`Error`]: the one error type.
//!
//! ```text
//! PlatformImage ─► layers converted if the output asks (compression, media types) ─►
//!   config (Go JSON) ─► manifest per platform ─► index (>1 platform), all in the store
//!   under a lease ─► named in the store | pushed | OCI layout | docker-archive | loaded
//! PlatformImage.rootfs ─► local dir | tar (one folder per platform when split)
//! ```
//!
//! How the engine calls it:
//!
//! ```no_run
//! # async fn demo(
//! #     store: hoist_content::ContentStore,
//! #     client: hoist_registry::RegistryClient,
//! #     images: Vec<hoist_export::PlatformImage>,
//! # ) -> Result<(), hoist_export::Error> {
//! use hoist_export::{ExportRequest, Exporter, Output};
//!
//! // `-o type=registry,name=…` and `-o out` (a local dir), parsed once at the edge.
//! let outputs = Output::parse_all(&["type=registry,name=localhost:5000/app:1", "out"])?;
//! let request = ExportRequest { images, outputs };
//! let result = Exporter::new(store).with_registry(client).export(&request).await?;
//! let metadata_file = result.metadata().to_json()?; // `--metadata-file` contents
//! # let _ = metadata_file;
//! # Ok(()) }
//! ```
//!
//! Behaviour worth knowing:
//! - Layers already in the wanted compression are reused byte for byte (only their media
//!   type family follows `oci-mediatypes`); others, and all with `force-compression=true`,
//!   are recompressed by streaming (decompress → [`hoist_snapshot::LayerWriter`]) into the
//!   store, checked against their diff IDs. `compression=zstd` forces OCI media types.
//! - `rewrite-timestamp=true` (on `image`, `registry`, `oci`, `docker`), as BuildKit ≥ 0.13:
//!   with the build's `SOURCE_DATE_EPOCH` ([`PlatformImage::with_source_date_epoch`]),
//!   every time later than the epoch in the layers after the base image's own (header
//!   `mtime`, GNU `atime`/`ctime`, PAX `mtime`/`atime`/`ctime`) is set to it; the layer is
//!   written again in the output's compression with a new diff ID, and remembered as the
//!   store variant `<compression>.epoch-<seconds>` of its source, so a rebuild does not
//!   redo it. Without an epoch it does nothing.
//! - `rootfs.diff_ids` of the written config are the layers' diff IDs (the rewritten ones
//!   under `rewrite-timestamp`); an image with [`PlatformImage::inline_cache`] also gets
//!   BuildKit's `moby.buildkit.cache.v0` key ([`INLINE_CACHE_KEY`]), one without it
//!   none (its config bytes are those of a build without inline cache); everything else
//!   in the config is written as given, as Go's
//!   `encoding/json` would.
//! - One platform gives a manifest as the root; more give an OCI index (Docker manifest
//!   list with `oci-mediatypes=false`) whose entries carry each platform exactly.
//! - Annotations ([`Annotations`], from `annotation*.` keys or
//!   [`Annotations::parse_flags`] for `--annotation`) as BuildKit applies them: index and
//!   descriptor annotations force OCI media types, index annotations on a single-platform
//!   image and annotations for a platform not exported are refused; `index-descriptor`
//!   ones go on the root's entry (an OCI layout's `index.json`, the store's name).
//! - `image.name` metadata holds the names normalised (`docker.io/library/app:latest`), not
//!   as typed.
//! - `insecure=true` / `registry.insecure=true` is parsed but applied by whoever configures
//!   the registry client (`hoist build` marks the pushed-to hosts `insecure` for that build).

mod archive;
mod assemble;
mod clamp;
mod docker;
mod error;
mod exporter;
mod image;
mod output;
mod result;
mod rootfs;
mod stream;

pub use assemble::LayerConverter;
pub use docker::DockerEndpoint;
pub use error::{Error, Result};
pub use exporter::{ExportProgress, Exporter, DEFAULT_DOCKER_SOCKET};
pub use image::{ExportLayer, ExportRequest, PlatformImage, INLINE_CACHE_KEY};
pub use output::{
    Annotation, AnnotationTarget, Annotations, DockerDest, DockerOutput, FileDest, ImageFormat,
    ImageOutput, LayoutDest, LocalOutput, OciOutput, Output, TarOutput,
};
pub use result::{ExportMetadata, ExportResult, ExportedImage, OutputResult};
