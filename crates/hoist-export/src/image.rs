//! What the build engine hands over: one [`PlatformImage`] per target platform, and the
//! [`ExportRequest`] that asks for them to go to some [`Output`]s.

use std::path::PathBuf;

use hoist_oci::{Descriptor, Digest, ImageConfig, Platform};

use crate::output::Output;

/// One layer of a built image: a blob already in the content store, and the digest of its
/// uncompressed tar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportLayer {
    /// The blob in the content store (any layer media type, compressed or not).
    pub descriptor: Descriptor,
    /// The sha256 of the uncompressed tar, as `rootfs.diff_ids` lists it.
    pub diff_id: Digest,
}

impl From<hoist_snapshot::Layer> for ExportLayer {
    fn from(layer: hoist_snapshot::Layer) -> Self {
        ExportLayer {
            descriptor: layer.descriptor,
            diff_id: layer.diff_id,
        }
    }
}

/// The final image of one target platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformImage {
    /// The platform (goes on the manifest's index entry exactly, variant included).
    pub platform: Platform,
    /// The image config as the engine built it: its `rootfs.diff_ids` and `history` are
    /// written as given, and must list exactly the diff IDs of `layers`.
    pub config: ImageConfig,
    /// The layers, base first.
    pub layers: Vec<ExportLayer>,
    /// A directory holding the final filesystem, for `local` and `tar` outputs (which fail
    /// without it).
    pub rootfs: Option<PathBuf>,
}

/// Export these images (one per platform) to these outputs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExportRequest {
    /// One image per target platform, in the order the index lists them.
    pub images: Vec<PlatformImage>,
    /// Where they go; each output is written in turn.
    pub outputs: Vec<Output>,
}
