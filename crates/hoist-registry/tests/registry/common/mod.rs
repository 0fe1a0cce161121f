//! Images built in the test: small gzip layer tars, a config, an OCI manifest and index,
//! written into a fresh content store.

pub mod flaky_proxy;
pub mod hostile;
pub mod served;

use std::io::Write as _;

use hoist_content::ContentStore;
use hoist_oci::{Descriptor, Digest, MediaType, Platform};

/// A gzip-compressed tar holding `files` (name, content).
pub fn layer_tar_gz(files: &[(&str, &[u8])]) -> (Vec<u8>, Digest) {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, content) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_cksum();
        builder.append_data(&mut header, name, *content).unwrap();
    }
    let tar = builder.into_inner().unwrap();
    let diff_id = Digest::sha256_of(&tar);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    (gz.finish().unwrap(), diff_id)
}

/// An image made of the given layers, stored in `store`; returns the manifest descriptor.
pub struct TestImage {
    pub manifest: Descriptor,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

pub fn build_image(
    store: &ContentStore,
    platform: &Platform,
    layers: &[Vec<(&str, Vec<u8>)>],
) -> TestImage {
    let mut layer_descs = Vec::new();
    let mut diff_ids = Vec::new();
    for files in layers {
        let borrowed: Vec<(&str, &[u8])> = files.iter().map(|(n, c)| (*n, c.as_slice())).collect();
        let (gz, diff_id) = layer_tar_gz(&borrowed);
        layer_descs.push(store.put_bytes(MediaType::OciLayerGzip, &gz).unwrap());
        diff_ids.push(diff_id.to_string());
    }
    let config = serde_json::json!({
        "architecture": platform.architecture,
        "os": platform.os,
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let config = store
        .put_bytes(MediaType::OciConfig, &serde_json::to_vec(&config).unwrap())
        .unwrap();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MediaType::OciManifest.as_str(),
        "config": config,
        "layers": layer_descs,
    });
    let manifest = store
        .put_bytes(
            MediaType::OciManifest,
            &serde_json::to_vec(&manifest).unwrap(),
        )
        .unwrap();
    TestImage {
        manifest,
        config,
        layers: layer_descs,
    }
}

/// An OCI index over the given manifests (each with its platform), stored in `store`.
pub fn build_index(store: &ContentStore, manifests: &[(Descriptor, Platform)]) -> Descriptor {
    let entries: Vec<Descriptor> = manifests
        .iter()
        .map(|(d, p)| d.clone().with_platform(p.clone()))
        .collect();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MediaType::OciIndex.as_str(),
        "manifests": entries,
    });
    store
        .put_bytes(MediaType::OciIndex, &serde_json::to_vec(&index).unwrap())
        .unwrap()
}

/// A fresh content store in a temp dir (kept alive by the returned guard).
pub fn temp_store() -> (tempfile::TempDir, ContentStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::open(dir.path()).unwrap();
    (dir, store)
}

/// The store's temp files: `<root>/ingest` beside the layout `<root>/content` (the store
/// keeps the path to itself; the tests know its documented layout).
pub fn ingest_files(store: &ContentStore) -> Vec<std::path::PathBuf> {
    let dir = store.layout_dir().parent().unwrap().join("ingest");
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    out.sort();
    out
}

/// Where the OCI layout keeps the blob `digest`.
pub fn blob_path(store: &ContentStore, digest: &hoist_oci::Digest) -> std::path::PathBuf {
    store
        .layout_dir()
        .join("blobs")
        .join(digest.algorithm())
        .join(digest.encoded())
}

/// Every blob file under the store's layout (to prove nothing half-written is visible).
pub fn blob_files(store: &ContentStore) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let root = store.layout_dir().join("blobs");
    let Ok(algs) = std::fs::read_dir(&root) else {
        return out;
    };
    for alg in algs.flatten() {
        for blob in std::fs::read_dir(alg.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            out.push(blob.path());
        }
    }
    out.sort();
    out
}
