//! What the build engine hands over: one [`PlatformImage`] per target platform, and the
//! [`ExportRequest`] that asks for them to go to some [`Output`]s.

use std::collections::BTreeMap;
use std::path::PathBuf;

use hoist_oci::{Descriptor, Digest, History, ImageConfig, Platform};
use hoist_registry::Repository;

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
    /// The build's `SOURCE_DATE_EPOCH` (Unix seconds): outputs with `rewrite-timestamp=true`
    /// set later file times in the layers to it.
    pub source_date_epoch: Option<i64>,
    /// The base image's diff IDs: layers that are the base's at the same place, up to the
    /// first that is not, keep their file times (as BuildKit keeps them).
    pub base_diff_ids: Vec<Digest>,
    /// Inline cache: BuildKit's cache records (a JSON array) that go, base64-encoded as Go
    /// encodes bytes, into the written config under [`INLINE_CACHE_KEY`]. `None` writes the
    /// config exactly as without it.
    pub inline_cache: Option<Vec<u8>>,
    /// Layers that may be missing from the content store (a base image's, not fetched by
    /// the build), by digest: the repository holding each. Outputs that need such a
    /// layer's bytes fetch it first; a push mounts it from there (same registry) or skips
    /// it when the target has it, and fetches it only to upload it elsewhere.
    pub layer_sources: BTreeMap<Digest, Repository>,
}

/// The image config key of BuildKit's inline cache.
pub const INLINE_CACHE_KEY: &str = "moby.buildkit.cache.v0";

impl PlatformImage {
    /// The image of `platform` with `layers` (base first), finishing `config` as a frontend
    /// left it: `rootfs` lists the layers' diff IDs, history entries without a time get the
    /// image's `created` (the build's), and the history has one entry that made a layer per
    /// layer — as BuildKit's exporter does when they disagree, missing entries are added at
    /// the end and surplus ones marked empty. `rootfs` is the final filesystem, for `local`
    /// and `tar` outputs.
    pub fn new(
        platform: Platform,
        mut config: ImageConfig,
        layers: Vec<ExportLayer>,
        rootfs: Option<PathBuf>,
    ) -> PlatformImage {
        config.rootfs.kind = "layers".to_owned();
        config.rootfs.diff_ids = layers.iter().map(|l| l.diff_id.clone()).collect();
        for entry in &mut config.history {
            if entry.created.is_none() {
                entry.created.clone_from(&config.created);
            }
        }
        align_history(&mut config, layers.len());
        PlatformImage {
            platform,
            config,
            layers,
            rootfs,
            source_date_epoch: None,
            base_diff_ids: Vec::new(),
            inline_cache: None,
            layer_sources: BTreeMap::new(),
        }
    }

    /// The same image with the repositories its layers missing from the store come from
    /// (see [`PlatformImage::layer_sources`]).
    pub fn with_layer_sources(mut self, sources: BTreeMap<Digest, Repository>) -> Self {
        self.layer_sources = sources;
        self
    }

    /// The same image with inline cache records (see [`PlatformImage::inline_cache`]).
    pub fn with_inline_cache(mut self, records: Option<Vec<u8>>) -> Self {
        self.inline_cache = records;
        self
    }

    /// The same image with the build's `SOURCE_DATE_EPOCH` and its base image's diff IDs,
    /// for outputs with `rewrite-timestamp=true`.
    pub fn with_source_date_epoch(
        mut self,
        epoch: Option<i64>,
        base_diff_ids: Vec<Digest>,
    ) -> Self {
        self.source_date_epoch = epoch;
        self.base_diff_ids = base_diff_ids;
        self
    }

    /// The epoch each layer's times are clamped to under `rewrite-timestamp=true`: none for
    /// the base image's own layers (those at the base's place with the base's diff ID,
    /// until the first that differs), the build's epoch for the rest.
    pub(crate) fn layer_epochs(&self) -> Vec<Option<i64>> {
        let mut from_base = true;
        self.layers
            .iter()
            .enumerate()
            .map(|(i, layer)| {
                from_base &= self.base_diff_ids.get(i) == Some(&layer.diff_id);
                if from_base {
                    None
                } else {
                    self.source_date_epoch
                }
            })
            .collect()
    }
}

/// `config` (Go-exact JSON, as [`hoist_oci::Parsed::from_value`] writes it) with the
/// inline cache `records` under [`INLINE_CACHE_KEY`]: base64, as Go encodes `[]byte`, and
/// among the other keys in Go's order for a patched config (sorted, as BuildKit marshals
/// it from a map). The other keys and their values are untouched.
pub(crate) fn config_with_inline_cache(
    config: &hoist_oci::ImageConfig,
    records: &[u8],
) -> crate::error::Result<Vec<u8>> {
    use base64::Engine as _;
    let invalid = |reason: String| crate::error::Error::InvalidImage {
        platform: config.platform().format(),
        reason,
    };
    let value = serde_json::to_value(config).map_err(|e| invalid(e.to_string()))?;
    let serde_json::Value::Object(fields) = value else {
        return Err(invalid("the image config is not a JSON object".into()));
    };
    let encoded = base64::engine::general_purpose::STANDARD.encode(records);
    let mut with_cache = serde_json::Map::new();
    let mut pending = Some(serde_json::Value::String(encoded));
    for (key, field) in fields {
        if key.as_str() > INLINE_CACHE_KEY {
            if let Some(cache) = pending.take() {
                with_cache.insert(INLINE_CACHE_KEY.to_owned(), cache);
            }
        }
        with_cache.insert(key, field);
    }
    if let Some(cache) = pending {
        with_cache.insert(INLINE_CACHE_KEY.to_owned(), cache);
    }
    Ok(hoist_oci::go_json::to_vec(&serde_json::Value::Object(
        with_cache,
    ))?)
}

/// Makes the history list one non-empty entry per layer (see [`PlatformImage::new`]).
fn align_history(config: &mut ImageConfig, layers: usize) {
    let with_layer = config.history.iter().filter(|h| !h.empty_layer).count();
    if with_layer < layers {
        for _ in with_layer..layers {
            config.history.push(History {
                created: config.created.clone(),
                created_by: Some("hoist: layer without history".to_owned()),
                author: None,
                comment: None,
                empty_layer: false,
            });
        }
    } else if with_layer > layers {
        let mut surplus = with_layer - layers;
        for entry in config.history.iter_mut().rev() {
            if surplus == 0 {
                break;
            }
            if !entry.empty_layer {
                entry.empty_layer = true;
                surplus -= 1;
            }
        }
    }
}

/// Export these images (one per platform) to these outputs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExportRequest {
    /// One image per target platform, in the order the index lists them.
    pub images: Vec<PlatformImage>,
    /// Where they go; each output is written in turn.
    pub outputs: Vec<Output>,
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use hoist_oci::{ImageConfig, Parsed};

    use super::*;

    fn config() -> ImageConfig {
        serde_json::from_str(
            r#"{"architecture":"amd64","config":{},"created":"2024-01-01T00:00:00Z",
                "history":[{"created_by":"RUN x"}],"os":"linux",
                "rootfs":{"type":"layers","diff_ids":[]}}"#,
        )
        .unwrap()
    }

    #[test]
    fn inline_cache_goes_into_the_config_as_go_writes_bytes() {
        let plain = Parsed::from_value(config()).unwrap();
        let records = br#"[{"digest":"sha256:00"}]"#;
        let with = config_with_inline_cache(&config(), records).unwrap();
        let text = String::from_utf8(with.clone()).unwrap();
        let encoded = base64::engine::general_purpose::STANDARD.encode(records);
        let field = format!(r#""{INLINE_CACHE_KEY}":"{encoded}","#);
        assert!(
            text.contains(&format!(r#"}}],{field}"os":"linux""#)),
            "between history and os, as Go sorts a map: {text}"
        );
        // Everything else as without it.
        assert_eq!(
            text.replace(&field, ""),
            String::from_utf8_lossy(plain.raw())
        );
        let parsed = Parsed::<ImageConfig>::from_bytes(with).unwrap();
        assert_eq!(parsed.value(), plain.value());
    }
}
