//! Garbage collection: removes blobs no name reaches, and ingests left by dead writers
//! (temp files no live [`crate::Ingest`] holds locked, whatever their age).
//!
//! Roots are every `index.json` entry (named or not), the digests of live leases and of
//! named leases (the build cache's records), and the caller's extra roots. From a
//! root, manifests and indexes are walked through their JSON (`manifests`, `config`,
//! `layers`, `blobs`, `subject`, and schema 1 `fsLayers`), so configs and layers of a named
//! image are kept. Only the few fields needed are read, with `serde_json`, so documents of
//! kinds hoist does not model (artifacts, attestations) are walked as well. Missing blobs
//! (an image pulled in part) are not an error.
//!
//! GC holds the store lock, so no name or lease changes while it decides. Blob writers do
//! not take the lock: a blob written but not yet named is unreachable unless a
//! [`crate::Lease`] holds it (the way to write-then-name safely), the caller passes it as an
//! extra root, or [`GcOptions::min_blob_age`] spares recent blobs. Rewriting a present blob
//! refreshes its modification time for that last reason.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::Path;
use std::time::{Duration, SystemTime};

use hoist_oci::{Digest, MediaType};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::store::ContentStore;

/// Documents larger than this are not parsed when looking for references (no manifest is
/// near it; registries cap manifests at 4 MiB).
const MAX_WALKED_DOCUMENT: u64 = 16 * 1024 * 1024;

/// What garbage collection keeps and what it may remove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcOptions {
    /// Digests to keep (with everything they reference) besides the `index.json` entries.
    pub extra_roots: Vec<Digest>,
    /// Unreachable blobs modified more recently than this are kept (zero: none is spared).
    pub min_blob_age: Duration,
}

impl Default for GcOptions {
    fn default() -> Self {
        Self {
            extra_roots: Vec::new(),
            min_blob_age: Duration::ZERO,
        }
    }
}

/// Bytes [`ContentStore::garbage_usage`] found that nothing keeps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GarbageUsage {
    /// Blobs no name, lease or named lease reaches.
    pub blobs: u64,
    /// Temp files of writers that died.
    pub ingests: u64,
}

/// What garbage collection removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// The blobs removed, sorted.
    pub removed: Vec<Digest>,
    /// Their total size in bytes.
    pub bytes: u64,
    /// The number of ingest temp files of dead writers removed.
    pub removed_ingests: usize,
    /// Their total size in bytes.
    pub ingest_bytes: u64,
}

impl ContentStore {
    /// Removes every blob not reachable from `index.json`, leases or `extra_roots`, and
    /// the ingest temp files of dead writers. See [`ContentStore::gc_with`].
    pub fn gc(&self, extra_roots: &[Digest]) -> Result<GcReport> {
        self.gc_with(&GcOptions {
            extra_roots: extra_roots.to_vec(),
            ..GcOptions::default()
        })
    }

    /// Collects garbage as `options` say, holding the store lock throughout.
    pub fn gc_with(&self, options: &GcOptions) -> Result<GcReport> {
        let _lock = self.lock()?;
        let now = SystemTime::now();
        let mut roots = self.leased_digests()?;
        roots.extend(self.named_leases()?.into_values().flatten());
        roots.extend(options.extra_roots.iter().cloned());
        let reachable = self.reachable(&roots)?;
        let mut report = GcReport::default();
        for (digest, path, meta) in self.list_blobs()? {
            if reachable.contains(&digest) || age(&meta, now) < options.min_blob_age {
                continue;
            }
            if remove(&path)? {
                report.bytes += meta.len();
                report.removed.push(digest);
            }
        }
        report.removed.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        for (path, size, _lock) in self.dead_ingests()? {
            // Removed while locked, so a writer that opened it meanwhile sees it unlinked.
            if remove(&path)? {
                report.removed_ingests += 1;
                report.ingest_bytes += size;
            }
        }
        Ok(report)
    }

    /// The ingest temp files no live writer holds (see [`crate::Ingest`]), with their sizes,
    /// each returned locked so that no writer takes it while the caller decides.
    fn dead_ingests(&self) -> Result<Vec<(std::path::PathBuf, u64, fs::File)>> {
        let mut dead = Vec::new();
        for entry in read_dir(self.ingest_dir())? {
            let path = entry.path();
            let file = match fs::File::open(&path) {
                Ok(file) => file,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io("open", &path, e)),
            };
            let meta = file.metadata().map_err(|e| Error::io("stat", &path, e))?;
            if !meta.is_file() {
                continue;
            }
            let unheld = fs4::fs_std::FileExt::try_lock_exclusive(&file)
                .map_err(|e| Error::io("lock", &path, e))?;
            if unheld {
                dead.push((path, meta.len(), file));
            }
        }
        Ok(dead)
    }

    /// Bytes on disk that nothing keeps: blobs no name, lease or named lease reaches, and
    /// the temp files of dead writers — what [`ContentStore::gc`] would remove now.
    pub fn garbage_usage(&self) -> Result<GarbageUsage> {
        let _lock = self.lock()?;
        let mut roots = self.leased_digests()?;
        roots.extend(self.named_leases()?.into_values().flatten());
        let reachable = self.reachable(&roots)?;
        let mut usage = GarbageUsage::default();
        for (digest, _, meta) in self.list_blobs()? {
            if !reachable.contains(&digest) {
                usage.blobs += meta.len();
            }
        }
        usage.ingests = self.dead_ingests()?.iter().map(|(_, size, _)| size).sum();
        Ok(usage)
    }

    /// Every digest `index.json` reaches (named entries or not, through their manifests
    /// and indexes): what exported images use. Leases are not included.
    pub fn referenced_by_index(&self) -> Result<HashSet<Digest>> {
        self.reachable(&[])
    }

    /// Every digest reachable from `index.json` and `extra_roots`.
    fn reachable(&self, extra_roots: &[Digest]) -> Result<HashSet<Digest>> {
        let index = self.read_index()?;
        let mut queue: Vec<(Digest, Option<MediaType>)> =
            index.manifests.iter().filter_map(descriptor_ref).collect();
        queue.extend(extra_roots.iter().map(|d| (d.clone(), None)));
        let mut seen = HashSet::new();
        while let Some((digest, media_type)) = queue.pop() {
            if !seen.insert(digest.clone()) || !worth_walking(media_type.as_ref()) {
                continue;
            }
            match self.info(&digest) {
                Ok(size) if size <= MAX_WALKED_DOCUMENT => {}
                Ok(_) | Err(Error::NotFound { .. }) => continue,
                Err(e) => return Err(e),
            }
            let bytes = match self.read_blob(&digest) {
                Ok(bytes) => bytes,
                Err(Error::NotFound { .. }) => continue,
                Err(e) => return Err(e),
            };
            queue.extend(references(&bytes));
        }
        Ok(seen)
    }

    /// Every file under `blobs/<alg>/` named after a valid digest, with its metadata.
    /// Files with other names are not hoist's and are left alone.
    fn list_blobs(&self) -> Result<Vec<(Digest, std::path::PathBuf, fs::Metadata)>> {
        let mut blobs = Vec::new();
        let root = self.layout_dir().join("blobs");
        for algorithm in read_dir(&root)? {
            let algorithm_path = algorithm.path();
            if !algorithm_path.is_dir() {
                continue;
            }
            let algorithm = algorithm.file_name();
            for entry in read_dir(&algorithm_path)? {
                let path = entry.path();
                let name = entry.file_name();
                let (Some(algorithm), Some(encoded)) = (algorithm.to_str(), name.to_str()) else {
                    continue;
                };
                let Ok(digest) = Digest::from_parts(algorithm, encoded) else {
                    continue;
                };
                match entry.metadata() {
                    Ok(meta) if meta.is_file() => blobs.push((digest, path, meta)),
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::io("stat", &path, e)),
                }
            }
        }
        Ok(blobs)
    }
}

/// Whether a blob of this media type can reference other blobs.
fn worth_walking(media_type: Option<&MediaType>) -> bool {
    match media_type {
        None => true,
        Some(mt) => {
            mt.is_manifest()
                || mt.is_index()
                || matches!(
                    mt,
                    MediaType::DockerManifestV1 | MediaType::DockerManifestV1Signed
                )
                || (!mt.is_config() && !mt.is_layer() && mt.as_str().contains("manifest"))
        }
    }
}

/// The descriptors a manifest or index document refers to; nothing for other content.
fn references(bytes: &[u8]) -> Vec<(Digest, Option<MediaType>)> {
    if bytes.first() != Some(&b'{') {
        return Vec::new();
    }
    let Ok(doc) = serde_json::from_slice::<Value>(bytes) else {
        return Vec::new();
    };
    let mut refs = Vec::new();
    for key in ["config", "subject"] {
        refs.extend(doc.get(key).and_then(descriptor_ref));
    }
    for key in ["manifests", "layers", "blobs"] {
        if let Some(Value::Array(list)) = doc.get(key) {
            refs.extend(list.iter().filter_map(descriptor_ref));
        }
    }
    if let Some(Value::Array(list)) = doc.get("fsLayers") {
        let blob_sum = |l: &Value| l.get("blobSum")?.as_str().and_then(|s| s.parse().ok());
        refs.extend(list.iter().filter_map(blob_sum).map(|d| (d, None)));
    }
    refs
}

/// The digest and media type of a JSON descriptor, when it has a valid digest.
fn descriptor_ref(value: &Value) -> Option<(Digest, Option<MediaType>)> {
    let digest = Digest::parse(value.get("digest")?.as_str()?).ok()?;
    let media_type = value
        .get("mediaType")
        .and_then(Value::as_str)
        .map(MediaType::from_string);
    Some((digest, media_type))
}

fn age(meta: &fs::Metadata, now: SystemTime) -> Duration {
    meta.modified()
        .ok()
        .and_then(|mtime| now.duration_since(mtime).ok())
        .unwrap_or(Duration::ZERO)
}

/// Removes a file; `false` when it was already gone.
fn remove(path: &Path) -> Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io("remove", path, e)),
    }
}

fn read_dir(dir: &Path) -> Result<Vec<fs::DirEntry>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("list", dir, e)),
    };
    entries
        .collect::<io::Result<Vec<_>>>()
        .map_err(|e| Error::io("list", dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_of_manifest_and_index() {
        let layer = Digest::sha256_of(b"layer");
        let config = Digest::sha256_of(b"config");
        let manifest = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":6}},
            "layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer}","size":5}},{{"digest":"bogus"}}]}}"#
        );
        let refs: Vec<Digest> = references(manifest.as_bytes())
            .into_iter()
            .map(|(d, _)| d)
            .collect();
        assert_eq!(refs, vec![config, layer]);
        assert!(references(b"\x1f\x8b not json").is_empty());
    }

    #[test]
    fn configs_and_layers_are_not_walked() {
        assert!(!worth_walking(Some(&MediaType::OciConfig)));
        assert!(!worth_walking(Some(&MediaType::OciLayerGzip)));
        assert!(worth_walking(Some(&MediaType::DockerManifestList)));
        assert!(worth_walking(None));
    }
}
