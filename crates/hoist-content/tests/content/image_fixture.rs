//! A tiny but valid single-layer image built in code, and deterministic test bytes.

use hoist_content::ContentStore;
use hoist_oci::{Descriptor, MediaType};

/// The blobs of a stored tiny image.
pub struct TinyImage {
    pub manifest: Descriptor,
    pub config: Descriptor,
    pub layer: Descriptor,
}

/// The store's temp-file directory, `<root>/ingest` (the store keeps its paths to itself;
/// these tests check its documented layout).
pub fn ingest_dir(store: &ContentStore) -> std::path::PathBuf {
    store.layout_dir().parent().unwrap().join("ingest")
}

/// Where the OCI layout keeps the blob `digest`: `blobs/<alg>/<hex>`.
pub fn blob_path(store: &ContentStore, digest: &hoist_oci::Digest) -> std::path::PathBuf {
    store
        .layout_dir()
        .join("blobs")
        .join(digest.algorithm())
        .join(digest.encoded())
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

/// The layer, config and manifest of an image whose only layer is an empty tar, with
/// `marker` in a label so images with different markers differ in config and manifest.
pub fn tiny_image_blobs(marker: &str) -> [(Descriptor, Vec<u8>); 3] {
    let layer_bytes = vec![0u8; 1024]; // an empty tar archive: two zero blocks
    let layer = Descriptor::of_bytes(MediaType::OciLayer, &layer_bytes);
    let config_bytes = format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{"Labels":{{"marker":"{marker}"}}}},"rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#,
        layer.digest
    )
    .into_bytes();
    let config = Descriptor::of_bytes(MediaType::OciConfig, &config_bytes);
    let manifest_bytes = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{}","size":{}}},"layers":[{{"mediaType":"{}","digest":"{}","size":{}}}]}}"#,
        MediaType::OciManifest,
        config.media_type,
        config.digest,
        config.size,
        layer.media_type,
        layer.digest,
        layer.size
    )
    .into_bytes();
    let manifest = Descriptor::of_bytes(MediaType::OciManifest, &manifest_bytes);
    [
        (layer, layer_bytes),
        (config, config_bytes),
        (manifest, manifest_bytes),
    ]
}

/// Stores a tiny image (see [`tiny_image_blobs`]).
pub fn tiny_image(store: &ContentStore, marker: &str) -> TinyImage {
    let [layer, config, manifest] = tiny_image_blobs(marker).map(|(descriptor, bytes)| {
        let stored = store
            .put_bytes(descriptor.media_type.clone(), &bytes)
            .unwrap();
        assert_eq!(stored, descriptor);
        stored
    });
    TinyImage {
        manifest,
        config,
        layer,
    }
}
