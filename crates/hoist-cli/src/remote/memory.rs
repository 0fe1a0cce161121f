//! An in-memory registry for unit tests: repositories of blobs and tagged manifests.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use anyhow::{anyhow, bail};
use hoist_oci::{Descriptor, Digest, MediaType, Reference};

use super::{Fetched, Remote};
use crate::manifest_json;

#[derive(Debug, Default)]
struct Repo {
    blobs: BTreeMap<Digest, Vec<u8>>,
    manifests: BTreeMap<Digest, (MediaType, Vec<u8>)>,
    tags: BTreeMap<String, Digest>,
}

/// An in-memory registry; records which blob copies crossed repositories.
#[derive(Debug, Default)]
pub struct MemoryRemote {
    repos: Mutex<BTreeMap<String, Repo>>,
    /// `(from, to, digest)` of every blob copy that had to do something.
    pub copies: Mutex<Vec<(String, String, Digest)>>,
}

impl MemoryRemote {
    /// Stores a blob in `repo`; its descriptor.
    pub fn put_blob(&self, repo: &str, media_type: MediaType, bytes: &[u8]) -> Descriptor {
        let desc = Descriptor::of_bytes(media_type, bytes);
        let mut repos = self.repos.lock().unwrap();
        repos
            .entry(repo.to_owned())
            .or_default()
            .blobs
            .insert(desc.digest.clone(), bytes.to_vec());
        desc
    }

    /// Stores a manifest in `repo` under `tag` (if any); its descriptor.
    pub fn put_manifest(
        &self,
        repo: &str,
        tag: Option<&str>,
        media_type: MediaType,
        bytes: &[u8],
    ) -> Descriptor {
        let desc = Descriptor::of_bytes(media_type.clone(), bytes);
        let mut repos = self.repos.lock().unwrap();
        let r = repos.entry(repo.to_owned()).or_default();
        r.manifests
            .insert(desc.digest.clone(), (media_type, bytes.to_vec()));
        if let Some(tag) = tag {
            r.tags.insert(tag.to_owned(), desc.digest.clone());
        }
        desc
    }

    /// Pushes a one-layer image for `os/arch` into `repo:tag`; the manifest descriptor.
    pub fn put_image(&self, repo: &str, tag: &str, os: &str, arch: &str) -> Descriptor {
        let config = format!(r#"{{"architecture":"{arch}","os":"{os}","rootfs":{{}}}}"#);
        let config = self.put_blob(repo, MediaType::OciConfig, config.as_bytes());
        let layer = self.put_blob(
            repo,
            MediaType::OciLayerGzip,
            format!("layer {os}/{arch}").as_bytes(),
        );
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": config,
            "layers": [layer],
        });
        let bytes = serde_json::to_vec(&manifest).unwrap();
        self.put_manifest(repo, Some(tag), MediaType::OciManifest, &bytes)
    }

    /// The blobs `repo` holds.
    pub fn blob_digests(&self, repo: &str) -> BTreeSet<Digest> {
        let repos = self.repos.lock().unwrap();
        repos
            .get(repo)
            .map(|r| r.blobs.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The manifest bytes `repo:tag` points at.
    pub fn tagged(&self, repo: &str, tag: &str) -> Option<(MediaType, Vec<u8>)> {
        let repos = self.repos.lock().unwrap();
        let r = repos.get(repo)?;
        r.manifests.get(r.tags.get(tag)?).cloned()
    }

    fn get(&self, repo: &str, digest: &Digest) -> anyhow::Result<Fetched> {
        let repos = self.repos.lock().unwrap();
        let (mt, bytes) = repos
            .get(repo)
            .and_then(|r| r.manifests.get(digest))
            .ok_or_else(|| anyhow!("{repo}@{digest}: not found"))?;
        Ok(Fetched {
            descriptor: Descriptor::of_bytes(mt.clone(), bytes),
            bytes: bytes.clone(),
        })
    }
}

impl Remote for MemoryRemote {
    async fn resolve(&self, reference: &Reference) -> anyhow::Result<Fetched> {
        let repo = reference.name();
        let digest = match reference.digest() {
            Some(d) => d.clone(),
            None => {
                let tag = reference.tag().unwrap_or("latest");
                let repos = self.repos.lock().unwrap();
                repos
                    .get(&repo)
                    .and_then(|r| r.tags.get(tag))
                    .cloned()
                    .ok_or_else(|| anyhow!("{reference}: not found"))?
            }
        };
        self.get(&repo, &digest)
    }

    async fn fetch_manifest(
        &self,
        repository: &Reference,
        descriptor: &Descriptor,
    ) -> anyhow::Result<Fetched> {
        self.get(&repository.name(), &descriptor.digest)
    }

    async fn fetch_blob_bytes(
        &self,
        repository: &Reference,
        descriptor: &Descriptor,
        _limit: u64,
    ) -> anyhow::Result<Vec<u8>> {
        let repos = self.repos.lock().unwrap();
        repos
            .get(&repository.name())
            .and_then(|r| r.blobs.get(&descriptor.digest))
            .cloned()
            .ok_or_else(|| anyhow!("blob {} not found", descriptor.digest))
    }

    async fn copy_blob(
        &self,
        from: &Reference,
        to: &Reference,
        descriptor: &Descriptor,
    ) -> anyhow::Result<()> {
        let mut repos = self.repos.lock().unwrap();
        if repos
            .get(&to.name())
            .is_some_and(|r| r.blobs.contains_key(&descriptor.digest))
        {
            return Ok(());
        }
        let Some(bytes) = repos
            .get(&from.name())
            .and_then(|r| r.blobs.get(&descriptor.digest))
            .cloned()
        else {
            bail!("blob {} not found in {}", descriptor.digest, from.name());
        };
        repos
            .entry(to.name())
            .or_default()
            .blobs
            .insert(descriptor.digest.clone(), bytes);
        self.copies
            .lock()
            .unwrap()
            .push((from.name(), to.name(), descriptor.digest.clone()));
        Ok(())
    }

    async fn push_manifest(
        &self,
        reference: &Reference,
        bytes: Vec<u8>,
        media_type: &MediaType,
    ) -> anyhow::Result<Descriptor> {
        // A registry refuses a manifest whose blobs or children it lacks.
        let repo = reference.name();
        {
            let repos = self.repos.lock().unwrap();
            let r = repos.get(&repo);
            if manifest_json::is_index(media_type) {
                for m in manifest_json::parse_index(&bytes)?.manifests {
                    if !r.is_some_and(|r| r.manifests.contains_key(&m.digest)) {
                        bail!("manifest blob unknown: {} in {repo}", m.digest);
                    }
                }
            } else {
                for b in manifest_json::blobs(&manifest_json::parse_manifest(&bytes)?) {
                    if !r.is_some_and(|r| r.blobs.contains_key(&b.digest)) {
                        bail!("blob unknown: {} in {repo}", b.digest);
                    }
                }
            }
        }
        Ok(self.put_manifest(&repo, reference.tag(), media_type.clone(), &bytes))
    }
}
