//! A tiny but valid single-layer image built in code, and deterministic test bytes.

#![allow(dead_code)]

use hoist_content::ContentStore;
use hoist_oci::{Descriptor, MediaType};

/// The blobs of a stored tiny image.
pub struct TinyImage {
    pub manifest: Descriptor,
    pub config: Descriptor,
    pub layer: Descriptor,
}

/// `len` deterministic pseudo-random bytes, different for each `seed`.
pub fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as u8
        })
        .collect()
}

/// Stores an image whose only layer is an empty tar (plus `marker` in a label, so images
/// with different markers have different configs and manifests).
pub fn tiny_image(store: &ContentStore, marker: &str) -> TinyImage {
    let layer_bytes = vec![0u8; 1024]; // an empty tar archive: two zero blocks
    let layer = store.put_bytes(MediaType::OciLayer, &layer_bytes).unwrap();
    let config_json = format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{"Labels":{{"marker":"{marker}"}}}},"rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#,
        layer.digest
    );
    let config = store
        .put_bytes(MediaType::OciConfig, config_json.as_bytes())
        .unwrap();
    let manifest_json = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{}","size":{}}},"layers":[{{"mediaType":"{}","digest":"{}","size":{}}}]}}"#,
        MediaType::OciManifest,
        MediaType::OciConfig,
        config.digest,
        config.size,
        MediaType::OciLayer,
        layer.digest,
        layer.size
    );
    let manifest = store
        .put_bytes(MediaType::OciManifest, manifest_json.as_bytes())
        .unwrap();
    TinyImage {
        manifest,
        config,
        layer,
    }
}
