//! The image the hostile registry tests serve, and their shared helpers.

use std::time::Duration;

use bytes::Bytes;
use hoist_oci::{Descriptor, Digest, MediaType, Platform, Reference};
use hoist_registry::RegistryConfig;

use super::hostile::{Req, Resp};
use super::{blob_files, blob_path, ingest_files};

/// A one-layer image held in memory, as the fake registry serves it.
#[derive(Clone)]
pub struct Fixture {
    pub manifest: Bytes,
    pub manifest_digest: Digest,
    pub config: (Descriptor, Bytes),
    pub layer: (Descriptor, Bytes),
}

pub fn fixture() -> Fixture {
    let layer_bytes = Bytes::from(vec![42u8; 64 * 1024]);
    let layer = Descriptor::of_bytes(MediaType::OciLayerGzip, &layer_bytes);
    let config_bytes = Bytes::from_static(
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#,
    );
    let config = Descriptor::of_bytes(MediaType::OciConfig, &config_bytes);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MediaType::OciManifest.as_str(),
        "config": config,
        "layers": [layer],
    }))
    .unwrap();
    Fixture {
        manifest_digest: Digest::sha256_of(&manifest),
        manifest: manifest.into(),
        config: (config, config_bytes),
        layer: (layer, layer_bytes),
    }
}

impl Fixture {
    /// The well-behaved answers for `lib/app`; `None` for anything else.
    pub fn serve(&self, req: &Req) -> Option<Resp> {
        let manifest_resp = |head: bool| {
            let resp = Resp::ok(if head {
                Bytes::new()
            } else {
                self.manifest.clone()
            })
            .header("content-type", MediaType::OciManifest.as_str())
            .header("docker-content-digest", self.manifest_digest.as_str());
            if head {
                resp.header("content-length", &self.manifest.len().to_string())
            } else {
                resp
            }
        };
        let path = req.path.as_str();
        if path == "/v2/" {
            return Some(Resp::ok("{}"));
        }
        if path == "/v2/lib/app/manifests/v1"
            || path == format!("/v2/lib/app/manifests/{}", self.manifest_digest)
        {
            return Some(manifest_resp(req.method == "HEAD"));
        }
        for (desc, bytes) in [&self.config, &self.layer] {
            if path == format!("/v2/lib/app/blobs/{}", desc.digest) {
                return Some(Resp::ok(bytes.clone()));
            }
        }
        None
    }
}

pub fn config(attempts: u32) -> RegistryConfig {
    let mut config = RegistryConfig::default();
    config.retry.attempts = attempts;
    config.retry.initial_delay = Duration::from_millis(10);
    config.retry.max_delay = Duration::from_secs(3);
    config
}

pub fn reference(host: &str, rest: &str) -> Reference {
    Reference::parse_docker(&format!("{host}/{rest}")).unwrap()
}

pub fn amd64() -> Platform {
    Platform::new("linux", "amd64")
}

/// Nothing in the store: no blob, and no temp file left in the ingest dir.
pub fn assert_store_clean(store: &hoist_content::ContentStore) {
    assert_eq!(blob_files(store), Vec::<std::path::PathBuf>::new());
    let leftovers = ingest_files(store);
    assert!(leftovers.is_empty(), "ingest leftovers: {leftovers:?}");
}

/// Only these blobs in the store, and no temp file left in the ingest dir.
pub fn assert_store_clean_but(store: &hoist_content::ContentStore, digests: &[&Digest]) {
    let mut want: Vec<_> = digests.iter().map(|d| blob_path(store, d)).collect();
    want.sort();
    assert_eq!(blob_files(store), want);
    let leftovers = ingest_files(store);
    assert!(leftovers.is_empty(), "ingest leftovers: {leftovers:?}");
}
