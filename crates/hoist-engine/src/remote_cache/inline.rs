//! Inline cache, as BuildKit's `moby.buildkit.cache.v0`: the cache records of an image
//! carried in its own config, their layers the image's own.
//!
//! Written: for each final image, the records the build used whose layer chain is a
//! prefix of the image's layers (`mode=min`), each result given as the index of its top
//! layer among the image's layers — a JSON array of records, which hoist-export puts into
//! the config base64-encoded ([`hoist_export::PlatformImage::inline_cache`]).
//!
//! Read: an image manifest and its config make a cache config: the manifest's layers in
//! order (each the parent of the next, its diff ID the config's `rootfs.diff_ids` entry)
//! and the records decoded from the config's key. An image without the key has no
//! records, which is not an error.

use std::sync::Arc;

use base64::Engine as _;
use hoist_export::INLINE_CACHE_KEY;
use hoist_oci::Manifest;
use hoist_solver::CacheKey;

use super::config::{CacheConfig, ConfigLayer, ConfigRecord, ConfigResult, LayerAnnotations};
use super::{CacheDestination, CacheOptions};
use crate::worker::Ref;

/// The build argument that asks for inline cache, as dockerd's BuildKit reads it.
const INLINE_CACHE_ARG: &str = "BUILDKIT_INLINE_CACHE";

/// Whether the build writes inline cache: a `--cache-to type=inline`, or the build
/// argument `BUILDKIT_INLINE_CACHE` set to a true value (Go's `strconv.ParseBool`).
pub(crate) fn wanted(
    options: &CacheOptions,
    build_args: &std::collections::BTreeMap<String, String>,
) -> bool {
    options
        .exports
        .iter()
        .any(|e| e.destination == CacheDestination::Inline)
        || build_args
            .get(INLINE_CACHE_ARG)
            .is_some_and(|v| matches!(v.as_str(), "1" | "t" | "T" | "true" | "TRUE" | "True"))
}

/// The inline cache records of the image whose layers are `top`'s: every used record
/// whose chain is a prefix of them, as a JSON array; `None` when there is none.
/// `created_at` is RFC 3339.
pub(crate) fn records_for(
    used: &[(CacheKey, Arc<Ref>)],
    top: &Ref,
    created_at: &str,
) -> Option<Vec<u8>> {
    let records: Vec<ConfigRecord> = used
        .iter()
        .filter(|(_, value)| {
            !value.layers.is_empty()
                && value.layers.len() <= top.layers.len()
                && value
                    .layers
                    .iter()
                    .zip(&top.layers)
                    .all(|(a, b)| a.descriptor.digest == b.descriptor.digest)
        })
        .map(|(key, value)| ConfigRecord {
            results: vec![ConfigResult {
                layer: value.layers.len() as i64 - 1,
                created_at: Some(created_at.to_owned()),
            }],
            digest: Some(key.to_string()),
            ..ConfigRecord::default()
        })
        .collect();
    if records.is_empty() {
        return None;
    }
    serde_json::to_vec(&records).ok()
}

/// The cache config an image carries: `Ok(None)` when its config has no inline cache (or
/// its layers and diff IDs disagree, as BuildKit skips such an image).
pub(crate) fn config_of_image(
    manifest: &Manifest,
    image_config: &[u8],
) -> std::result::Result<Option<CacheConfig>, String> {
    #[derive(serde::Deserialize)]
    struct Image {
        #[serde(default)]
        rootfs: Option<RootFs>,
        #[serde(rename = "moby.buildkit.cache.v0", default)]
        cache: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct RootFs {
        #[serde(default)]
        diff_ids: Vec<String>,
    }
    let image: Image = serde_json::from_slice(image_config)
        .map_err(|e| format!("the image config does not parse: {e}"))?;
    let Some(encoded) = image.cache else {
        return Ok(None);
    };
    let diff_ids = image.rootfs.map(|r| r.diff_ids).unwrap_or_default();
    if diff_ids.len() != manifest.layers.len() {
        return Ok(None);
    }
    let records_json = base64::engine::general_purpose::STANDARD
        .decode(encoded.as_bytes())
        .map_err(|e| format!("{INLINE_CACHE_KEY} is not base64: {e}"))?;
    let records: Vec<ConfigRecord> = serde_json::from_slice(&records_json)
        .map_err(|e| format!("{INLINE_CACHE_KEY} does not hold cache records: {e}"))?;
    let layers = manifest
        .layers
        .iter()
        .zip(diff_ids)
        .enumerate()
        .map(|(i, (layer, diff_id))| ConfigLayer {
            blob: Some(layer.digest.to_string()),
            parent: i as i64 - 1,
            annotations: Some(LayerAnnotations {
                diff_id: Some(diff_id),
                ..LayerAnnotations::default()
            }),
        })
        .collect();
    Ok(Some(CacheConfig { layers, records }))
}
