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
            .is_some_and(|v| hoist_dockerfile::go_bool::parse(v) == Some(true))
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
    Ok(Some(CacheConfig {
        layers,
        records,
        mounts: Vec::new(),
    }))
}

#[cfg(test)]
mod tests {
    use hoist_oci::{Descriptor, Digest, MediaType};

    use super::*;
    use crate::worker::LayerRef;

    fn layer(n: u8) -> LayerRef {
        LayerRef {
            descriptor: Descriptor::new(MediaType::OciLayer, Digest::sha256_of(&[n]), 1),
            diff_id: Digest::sha256_of(&[n]),
            source: None,
        }
    }

    fn value(layers: &[u8]) -> Arc<Ref> {
        Arc::new(Ref {
            snapshot: Some(hoist_snapshot::SnapshotId::parse("s").unwrap()),
            layers: layers.iter().map(|&n| layer(n)).collect(),
        })
    }

    fn key(n: u8) -> CacheKey {
        CacheKey::from_digest(hoist_solver::Digest::of(&[n]))
    }

    #[test]
    fn records_of_an_image_are_its_layer_prefixes_and_read_back() {
        let top = value(&[1, 2, 3]);
        let used = vec![
            (key(1), value(&[1])),
            (key(2), value(&[1, 2])),
            (key(3), value(&[1, 9])),
            (key(4), value(&[1, 2, 3])),
        ];
        let records = records_for(&used, &top, "2024-01-01T00:00:00Z").unwrap();
        let manifest = Manifest::new_oci(
            Descriptor::new(MediaType::OciConfig, Digest::sha256_of(b"c"), 1),
            top.layers.iter().map(|l| l.descriptor.clone()).collect(),
        );
        use base64::Engine as _;
        let image = serde_json::json!({
            "rootfs": {"type": "layers", "diff_ids": top.layers.iter()
                .map(|l| l.diff_id.to_string()).collect::<Vec<_>>()},
            INLINE_CACHE_KEY: base64::engine::general_purpose::STANDARD.encode(&records),
        });
        let config = config_of_image(&manifest, &serde_json::to_vec(&image).unwrap())
            .unwrap()
            .unwrap();
        let read = super::super::config::read_records(&config);
        let got: Vec<(CacheKey, usize)> = read.iter().map(|r| (r.key, r.layers.len())).collect();
        assert_eq!(
            got,
            vec![(key(1), 1), (key(2), 2), (key(4), 3)],
            "key 3 is not a prefix"
        );

        let without = serde_json::json!({"rootfs": {"diff_ids": []}});
        assert_eq!(
            config_of_image(&manifest, &serde_json::to_vec(&without).unwrap()).unwrap(),
            None
        );
        let mut corrupt = image.clone();
        corrupt[INLINE_CACHE_KEY] = "!!".into();
        assert!(config_of_image(&manifest, &serde_json::to_vec(&corrupt).unwrap()).is_err());
    }
}
