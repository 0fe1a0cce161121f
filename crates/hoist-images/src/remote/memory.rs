//! [`MemoryRemote`]: an in-memory registry for tests (this crate's, and other crates' with
//! the `testing` feature): repositories of blobs and tagged manifests, keyed by repository
//! name (`reg.example:5000/app`). It fails as a registry does, with
//! `hoist_registry::RegistryError`s: `NotFound` for what it lacks, a 400
//! status (`MANIFEST_BLOB_UNKNOWN`) for a manifest pushed before its blobs or children.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard, PoisonError};

use hoist_oci::{Descriptor, Digest, MediaType, Reference};
use hoist_registry::RegistryError;

use super::{Fetched, Remote};
use crate::error::Result;
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
    copies: Mutex<Vec<(String, String, Digest)>>,
}

/// The registry host of a repository name.
fn registry_of(repo: &str) -> String {
    repo.split_once('/')
        .map_or(repo, |(host, _)| host)
        .to_owned()
}

fn not_found(repo: &str, what: String) -> RegistryError {
    RegistryError::NotFound {
        registry: registry_of(repo),
        what,
    }
}

/// A registry's answer to a manifest whose blobs or children it lacks.
fn blob_unknown(reference: &Reference, digest: &Digest) -> RegistryError {
    RegistryError::Status {
        method: "PUT".to_owned(),
        url: format!("memory://{reference}"),
        status: 400,
        message: format!("MANIFEST_BLOB_UNKNOWN: blob unknown to registry: {digest}"),
    }
}

impl MemoryRemote {
    /// The repositories; a test that panicked while holding the lock left them usable.
    fn repos(&self) -> MutexGuard<'_, BTreeMap<String, Repo>> {
        self.repos.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `(from, to, digest)` of every blob copy so far that had to do something.
    pub fn copies(&self) -> Vec<(String, String, Digest)> {
        self.copies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Stores a blob in `repo`; its descriptor.
    pub fn put_blob(&self, repo: &str, media_type: MediaType, bytes: &[u8]) -> Descriptor {
        let desc = Descriptor::of_bytes(media_type, bytes);
        let mut repos = self.repos();
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
        let mut repos = self.repos();
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
        let bytes = manifest.to_string().into_bytes();
        self.put_manifest(repo, Some(tag), MediaType::OciManifest, &bytes)
    }

    /// The blobs `repo` holds.
    pub fn blob_digests(&self, repo: &str) -> BTreeSet<Digest> {
        let repos = self.repos();
        repos
            .get(repo)
            .map(|r| r.blobs.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The manifest bytes `repo:tag` points at.
    pub fn tagged(&self, repo: &str, tag: &str) -> Option<(MediaType, Vec<u8>)> {
        let repos = self.repos();
        let r = repos.get(repo)?;
        r.manifests.get(r.tags.get(tag)?).cloned()
    }

    fn get(&self, repo: &str, digest: &Digest) -> Result<Fetched> {
        let repos = self.repos();
        let (mt, bytes) = repos
            .get(repo)
            .and_then(|r| r.manifests.get(digest))
            .ok_or_else(|| not_found(repo, format!("{repo}@{digest}")))?;
        Ok(Fetched {
            descriptor: Descriptor::of_bytes(mt.clone(), bytes),
            bytes: bytes.clone(),
        })
    }
}

impl Remote for MemoryRemote {
    async fn resolve(&self, reference: &Reference) -> Result<Fetched> {
        let repo = reference.name();
        let digest = match reference.digest() {
            Some(d) => d.clone(),
            None => {
                let tag = reference.tag().unwrap_or("latest");
                let repos = self.repos();
                repos
                    .get(&repo)
                    .and_then(|r| r.tags.get(tag))
                    .cloned()
                    .ok_or_else(|| not_found(&repo, reference.to_string()))?
            }
        };
        self.get(&repo, &digest)
    }

    async fn fetch_manifest(
        &self,
        repository: &Reference,
        descriptor: &Descriptor,
    ) -> Result<Fetched> {
        self.get(&repository.name(), &descriptor.digest)
    }

    async fn fetch_blob_bytes(
        &self,
        repository: &Reference,
        descriptor: &Descriptor,
        _limit: u64,
    ) -> Result<Vec<u8>> {
        let repos = self.repos();
        repos
            .get(&repository.name())
            .and_then(|r| r.blobs.get(&descriptor.digest))
            .cloned()
            .ok_or_else(|| {
                not_found(&repository.name(), format!("blob {}", descriptor.digest)).into()
            })
    }

    async fn copy_blob(
        &self,
        from: &Reference,
        to: &Reference,
        descriptor: &Descriptor,
    ) -> Result<()> {
        let mut repos = self.repos();
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
            return Err(not_found(&from.name(), format!("blob {}", descriptor.digest)).into());
        };
        repos
            .entry(to.name())
            .or_default()
            .blobs
            .insert(descriptor.digest.clone(), bytes);
        self.copies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((from.name(), to.name(), descriptor.digest.clone()));
        Ok(())
    }

    async fn push_manifest(
        &self,
        reference: &Reference,
        bytes: Vec<u8>,
        media_type: &MediaType,
    ) -> Result<Descriptor> {
        // A registry refuses a manifest whose blobs or children it lacks.
        let repo = reference.name();
        {
            let repos = self.repos();
            let r = repos.get(&repo);
            if manifest_json::is_index(media_type) {
                for m in manifest_json::parse_index(&bytes)?.manifests {
                    if !r.is_some_and(|r| r.manifests.contains_key(&m.digest)) {
                        return Err(blob_unknown(reference, &m.digest).into());
                    }
                }
            } else {
                for b in manifest_json::blobs(&manifest_json::parse_manifest(&bytes)?) {
                    if !r.is_some_and(|r| r.blobs.contains_key(&b.digest)) {
                        return Err(blob_unknown(reference, &b.digest).into());
                    }
                }
            }
        }
        Ok(self.put_manifest(&repo, reference.tag(), media_type.clone(), &bytes))
    }
}
