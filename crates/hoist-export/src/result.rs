//! [`ExportResult`]: what the exporters produced, and BuildKit's exporter response keys for
//! `--metadata-file` ([`ExportMetadata`]).

use hoist_oci::{Descriptor, Digest};
use serde::Serialize;

use crate::error::Result;

/// What one output produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputResult {
    /// The output's `type=` name.
    pub output_type: &'static str,
    /// The image written, for image-shaped outputs (`image`, `oci`, `docker`); `None` for
    /// `local` and `tar`.
    pub image: Option<ExportedImage>,
}

/// An image written by an output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportedImage {
    /// The root: the index (or manifest list) for several platforms, else the manifest.
    pub descriptor: Descriptor,
    /// The config's digest, for a single-platform image.
    pub config_digest: Option<Digest>,
    /// The names given (`name=`), as written.
    pub names: Vec<String>,
}

/// What an export did, one entry per output in request order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExportResult {
    /// One result per output.
    pub outputs: Vec<OutputResult>,
}

/// BuildKit's exporter response, as buildx writes it to `--metadata-file` (keys sorted as
/// Go writes a map).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct ExportMetadata {
    /// `containerimage.config.digest`: the config digest (single platform only).
    #[serde(
        rename = "containerimage.config.digest",
        skip_serializing_if = "Option::is_none"
    )]
    pub config_digest: Option<Digest>,
    /// `containerimage.descriptor`: the root descriptor.
    #[serde(
        rename = "containerimage.descriptor",
        skip_serializing_if = "Option::is_none"
    )]
    pub descriptor: Option<Descriptor>,
    /// `containerimage.digest`: the root digest (the index's for several platforms).
    #[serde(
        rename = "containerimage.digest",
        skip_serializing_if = "Option::is_none"
    )]
    pub digest: Option<Digest>,
    /// `image.name`: the names, comma-separated.
    #[serde(rename = "image.name", skip_serializing_if = "Option::is_none")]
    pub image_name: Option<String>,
}

impl ExportResult {
    /// The image of the first image-shaped output (BuildKit reports one image per build).
    pub fn image(&self) -> Option<&ExportedImage> {
        self.outputs.iter().find_map(|o| o.image.as_ref())
    }

    /// The metadata keys BuildKit returns for this export.
    pub fn metadata(&self) -> ExportMetadata {
        let Some(image) = self.image() else {
            return ExportMetadata::default();
        };
        ExportMetadata {
            config_digest: image.config_digest.clone(),
            descriptor: Some(image.descriptor.clone()),
            digest: Some(image.descriptor.digest.clone()),
            image_name: (!image.names.is_empty()).then(|| image.names.join(",")),
        }
    }
}

impl ExportMetadata {
    /// The `--metadata-file` JSON buildx writes (indented with two spaces).
    pub fn to_json(&self) -> Result<Vec<u8>> {
        Ok(hoist_oci::go_json::to_vec_indent(self, "", "  ")?)
    }
}
