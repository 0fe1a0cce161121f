//! Reading `--cache-from`s before the solve: the root document (an index listing layers
//! and the cache config, or an image manifest whose config is the cache config), the
//! cache config (verified against its digest), and the records hoist can use, by key.
//! A root that is an image (or an index of images) is read as inline cache: each image's
//! config holds its records, its manifest the layers (`inline`). Layers are only fetched
//! when a record is hit (`store`). Cache mounts a cache carries (`mounts`) are restored
//! here, before any step runs.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use hoist_content::Expected;
use hoist_oci::{Descriptor, Digest, Index, Manifest, MediaType, OciLayout};
use hoist_registry::Repository;
use hoist_solver::CacheKey;

use super::config::{read_records, CacheConfig, CACHE_CONFIG_MEDIA_TYPE, UNCOMPRESSED_ANNOTATION};
use super::mounts::{self, ImportedMount};
use super::{inline, CacheImport, LocalSelect};
use crate::error::{Error, Result};
use crate::steps::Progress;
use crate::worker::{LayerRef, Worker};

/// The largest cache config read (BuildKit's are a few hundred kB for big builds).
const MAX_CONFIG_SIZE: u64 = 64 << 20;

/// Where an imported record's layers are fetched from.
#[derive(Debug)]
pub(crate) enum BlobOrigin {
    Registry(Repository),
    Local(PathBuf),
    Client(super::ClientStore),
}

/// One imported record: its layer chain (descriptors without the cache's annotations, so
/// images made of them are the images made of built layers) and where the blobs are.
#[derive(Debug, Clone)]
pub(crate) struct ImportedRecord {
    pub layers: Vec<LayerRef>,
    pub origin: Arc<BlobOrigin>,
}

/// Every usable record of a build's `--cache-from`s, by key (the first import holding a
/// key wins).
#[derive(Debug, Default)]
pub(crate) struct ImportedCache {
    records: HashMap<CacheKey, ImportedRecord>,
}

impl ImportedCache {
    pub(crate) fn get(&self, key: &CacheKey) -> Option<&ImportedRecord> {
        self.records.get(key)
    }
}

/// What one import read: its records and the cache mounts it carries.
type Read = (Vec<(CacheKey, ImportedRecord)>, Vec<ImportedMount>);

/// Reads every import; one that fails is reported as a warning on its progress step and
/// contributes nothing. The cache mounts they carry (the first import carrying an id
/// wins) are restored where no local one has files; one that cannot be is a warning.
pub(crate) async fn import(
    worker: &Arc<Worker>,
    imports: &[super::CacheImport],
    progress: &Progress,
) -> ImportedCache {
    let mut cache = ImportedCache::default();
    let mut restored: Vec<String> = Vec::new();
    for import in imports {
        let step = progress.step(format!(
            "importing cache manifest from {}",
            import.describe()
        ));
        match import_one(worker, import).await {
            Ok((records, carried)) => {
                step.log(format!("{} cache records", records.len()));
                for (key, record) in records {
                    cache.records.entry(key).or_insert(record);
                }
                for mount in carried {
                    if restored.contains(&mount.id) {
                        continue;
                    }
                    restored.push(mount.id.clone());
                    match mounts::restore(worker, &mount).await {
                        Ok(done) => step.log(done),
                        Err(e) => step.log(format!(
                            "WARNING: cache mount {:?} not restored: {e}",
                            mount.id
                        )),
                    }
                }
            }
            Err(e) => step.log(format!(
                "WARNING: cache import from {} failed, building without it: {e}",
                import.describe()
            )),
        }
        let _ = step.finish(Ok::<(), Error>(()));
    }
    cache
}

async fn import_one(worker: &Worker, import: &CacheImport) -> Result<Read> {
    let bad = |reason: String| Error::RemoteCache {
        cache: import.describe(),
        reason,
    };
    let (root, origin) = match import {
        CacheImport::Registry { reference } => {
            let resolved = worker.registry().resolve(reference).await?;
            let root = parse_root(&resolved.bytes).map_err(bad)?;
            (root, BlobOrigin::Registry(Repository::from(reference)))
        }
        CacheImport::Local { src, select } => {
            let (dir, select) = (src.clone(), select.clone());
            let root = tokio::task::spawn_blocking(move || read_local_root(&dir, &select))
                .await
                .map_err(|e| Error::Task(e.to_string()))?
                .map_err(bad)?;
            (root, BlobOrigin::Local(src.clone()))
        }
        CacheImport::Client { store, root, .. } => {
            let origin = BlobOrigin::Client(store.clone());
            let size = store
                .0
                .size(root)
                .await
                .map_err(|e| bad(format!("cannot ask for the root {root}: {e}")))?
                .ok_or_else(|| bad(format!("the root {root} is not in the directory")))?;
            if size > MAX_CONFIG_SIZE {
                return Err(bad(format!("the root {root} is {size} bytes: too large")));
            }
            let bytes = read_client(store, root, size).await.map_err(bad)?;
            (parse_root(&bytes).map_err(bad)?, origin)
        }
    };
    let origin = Arc::new(origin);
    let images = match root {
        Root::Cache(root) => {
            let config_bytes = read_small(worker, &origin, &root.config, false)
                .await
                .map_err(|e| bad(e.to_string()))?;
            let config: CacheConfig = serde_json::from_slice(&config_bytes).map_err(|e| {
                bad(format!(
                    "cache config {} does not parse: {e}",
                    root.config.digest
                ))
            })?;
            let carried = mounts::imported(&config.mounts, &root.layers, &origin);
            return Ok((usable_records(&config, &root.layers, &origin), carried));
        }
        Root::Image(manifest) => vec![manifest],
        Root::ImageIndex(entries) => {
            let mut manifests = Vec::new();
            for entry in entries {
                let bytes = read_small(worker, &origin, &entry, true)
                    .await
                    .map_err(|e| bad(e.to_string()))?;
                let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|e| {
                    bad(format!(
                        "image manifest {} does not parse: {e}",
                        entry.digest
                    ))
                })?;
                manifests.push(manifest);
            }
            manifests
        }
    };
    // Inline cache: each image's records in its config, its own layers the results'.
    let mut out = Vec::new();
    for manifest in images {
        if manifest.layers.is_empty() {
            continue;
        }
        let config_bytes = read_small(worker, &origin, &manifest.config, false)
            .await
            .map_err(|e| bad(e.to_string()))?;
        let config = inline::config_of_image(&manifest, &config_bytes)
            .map_err(|e| bad(format!("image config {}: {e}", manifest.config.digest)))?;
        if let Some(config) = config {
            out.extend(usable_records(&config, &manifest.layers, &origin));
        }
    }
    Ok((out, Vec::new()))
}

/// Brings `descriptor`'s blob from `origin` into the content store (verified), unless it
/// is there already. The caller leases it first.
pub(crate) async fn fetch_blob(
    worker: &Worker,
    origin: &BlobOrigin,
    descriptor: &Descriptor,
) -> Result<()> {
    if worker.store().has(&descriptor.digest) {
        return Ok(());
    }
    match origin {
        BlobOrigin::Registry(repo) => {
            worker
                .registry()
                .fetch_blob(repo, descriptor, worker.store())
                .await?;
        }
        BlobOrigin::Local(src) => {
            let (src, store, descriptor) =
                (src.clone(), worker.store().clone(), descriptor.clone());
            tokio::task::spawn_blocking(move || -> Result<()> {
                let mut layout = OciLayout::open_dir(&src)?;
                let blob = layout.open_blob(&descriptor.digest)?;
                store.write_blob(Expected::from(&descriptor), blob)?;
                Ok(())
            })
            .await
            .map_err(|e| Error::Task(e.to_string()))??;
        }
        BlobOrigin::Client(store) => fetch_from_client(worker, store, descriptor).await?,
    }
    Ok(())
}

/// Streams a client store's blob into the content store through a verified ingest (on a
/// blocking thread, chunks handed over as they come): a blob whose bytes do not match
/// its descriptor is never stored.
async fn fetch_from_client(
    worker: &Worker,
    store: &super::ClientStore,
    descriptor: &Descriptor,
) -> Result<()> {
    use futures::StreamExt as _;
    let failed = |reason: String| Error::RemoteCache {
        cache: store.0.describe(),
        reason,
    };
    let mut chunks = store
        .0
        .read(&descriptor.digest)
        .await
        .map_err(|e| failed(format!("cannot read {}: {e}", descriptor.digest)))?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(4);
    let (content, expected) = (worker.store().clone(), Expected::from(descriptor));
    let writer = tokio::task::spawn_blocking(move || -> Result<()> {
        let mut ingest = content.begin(expected)?;
        while let Some(chunk) = rx.blocking_recv() {
            ingest.append(&chunk)?;
        }
        ingest.commit(None)?;
        Ok(())
    });
    let mut received: Result<()> = Ok(());
    while let Some(chunk) = chunks.next().await {
        match chunk {
            Ok(chunk) => {
                if tx.send(chunk).await.is_err() {
                    break;
                }
            }
            Err(e) => {
                received = Err(failed(format!("reading {}: {e}", descriptor.digest)));
                break;
            }
        }
    }
    drop(tx);
    let written = writer.await.map_err(|e| Error::Task(e.to_string()))?;
    // A transfer cut short is the error to report; the ingest then only saw too few bytes.
    received?;
    written.map_err(|e| failed(format!("{}: {e}", descriptor.digest)))
}

/// A small blob of a client store, whole and checked against its digest.
async fn read_client(
    store: &super::ClientStore,
    digest: &Digest,
    limit: u64,
) -> std::result::Result<Vec<u8>, String> {
    use futures::StreamExt as _;
    let mut chunks = store
        .0
        .read(digest)
        .await
        .map_err(|e| format!("cannot read {digest}: {e}"))?;
    let mut bytes = Vec::new();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|e| format!("reading {digest}: {e}"))?;
        if (bytes.len() + chunk.len()) as u64 > limit {
            return Err(format!("{digest} is larger than its {limit} bytes"));
        }
        bytes.extend_from_slice(&chunk);
    }
    digest
        .verify(&bytes)
        .map_err(|e| format!("{digest} does not hold its bytes: {e}"))?;
    Ok(bytes)
}

/// A manifest (`manifest`) or a blob, small enough to hold in memory, from `origin`,
/// checked against its digest.
async fn read_small(
    worker: &Worker,
    origin: &Arc<BlobOrigin>,
    descriptor: &Descriptor,
    manifest: bool,
) -> Result<Vec<u8>> {
    match origin.as_ref() {
        BlobOrigin::Registry(repo) if manifest => Ok(worker
            .registry()
            .fetch_manifest(repo, descriptor)
            .await?
            .bytes
            .to_vec()),
        BlobOrigin::Registry(repo) => Ok(worker
            .registry()
            .fetch_blob_bytes(repo, descriptor, MAX_CONFIG_SIZE)
            .await?
            .to_vec()),
        BlobOrigin::Client(store) => read_client(store, &descriptor.digest, MAX_CONFIG_SIZE)
            .await
            .map_err(|reason| Error::RemoteCache {
                cache: store.0.describe(),
                reason,
            }),
        BlobOrigin::Local(src) => {
            let (src, digest) = (src.clone(), descriptor.digest.clone());
            tokio::task::spawn_blocking(move || -> Result<Vec<u8>> {
                let mut layout = OciLayout::open_dir(&src)?;
                Ok(layout.read_blob(&digest)?)
            })
            .await
            .map_err(|e| Error::Task(e.to_string()))?
        }
    }
}

/// The records of `config` whose layers are all among `layers` (the root document's),
/// each with its chain's descriptors and diff IDs.
fn usable_records(
    config: &CacheConfig,
    layers: &[Descriptor],
    origin: &Arc<BlobOrigin>,
) -> Vec<(CacheKey, ImportedRecord)> {
    let by_digest: HashMap<&Digest, &Descriptor> = layers.iter().map(|d| (&d.digest, d)).collect();
    let mut out = Vec::new();
    'records: for record in read_records(config) {
        let mut layers = Vec::with_capacity(record.layers.len());
        for (blob, diff_id) in &record.layers {
            let Some(descriptor) = by_digest.get(blob) else {
                continue 'records;
            };
            let diff_id = diff_id.clone().or_else(|| {
                descriptor
                    .annotations
                    .get(UNCOMPRESSED_ANNOTATION)
                    .and_then(|d| Digest::parse(d).ok())
            });
            let diff_id = match (diff_id, descriptor.media_type.layer_compression()) {
                (Some(d), Some(_)) => d,
                (None, Some(hoist_oci::Compression::None)) => blob.clone(),
                // Not a layer, or a compressed one whose diff ID nobody wrote down.
                _ => continue 'records,
            };
            let media_type = oci_layer_type(&descriptor.media_type);
            layers.push(LayerRef {
                descriptor: Descriptor::new(media_type, blob.clone(), descriptor.size),
                diff_id,
                source: None,
            });
        }
        out.push((
            record.key,
            ImportedRecord {
                layers,
                origin: Arc::clone(origin),
            },
        ));
    }
    out
}

/// The OCI layer type of a layer type (Docker's are renamed; the bytes are the same).
fn oci_layer_type(media_type: &MediaType) -> MediaType {
    match media_type.layer_compression() {
        Some(hoist_oci::Compression::Gzip) => MediaType::OciLayerGzip,
        Some(hoist_oci::Compression::Zstd) => MediaType::OciLayerZstd,
        Some(hoist_oci::Compression::None) => MediaType::OciLayer,
        None => media_type.clone(),
    }
}

/// A cache's root document, reduced to the config's descriptor and the layers'.
#[derive(Debug)]
pub(crate) struct CacheRoot {
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

/// What a `--cache-from` names (read once, briefly: its size does not matter).
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub(crate) enum Root {
    /// A cache manifest or index (a `type=registry` or `type=local` export).
    Cache(CacheRoot),
    /// An image, which may carry inline cache in its config.
    Image(Manifest),
    /// An index of images (the image manifests it lists), each of which may.
    ImageIndex(Vec<Descriptor>),
}

/// Reads a root document: an index listing the layers and the cache config, a manifest
/// whose config is the cache config, or else an image or an index of images (inline
/// cache).
pub(crate) fn parse_root(bytes: &[u8]) -> std::result::Result<Root, String> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| format!("the cache manifest is not JSON: {e}"))?;
    let is_cache_config = |d: &Descriptor| d.media_type.as_str() == CACHE_CONFIG_MEDIA_TYPE;
    if value.get("manifests").is_some() {
        let index: Index = serde_json::from_value(value)
            .map_err(|e| format!("the cache index does not parse: {e}"))?;
        let Some(config) = index.manifests.iter().find(|d| is_cache_config(d)).cloned() else {
            // An image index: its image manifests (not attestations' or nested indexes').
            let images = index
                .manifests
                .into_iter()
                .filter(|d| {
                    matches!(
                        d.media_type,
                        MediaType::OciManifest | MediaType::DockerManifest
                    )
                })
                .collect();
            return Ok(Root::ImageIndex(images));
        };
        let layers = index
            .manifests
            .into_iter()
            .filter(|d| !is_cache_config(d))
            .collect();
        return Ok(Root::Cache(CacheRoot { config, layers }));
    }
    let manifest: Manifest = serde_json::from_value(value)
        .map_err(|e| format!("the cache manifest does not parse: {e}"))?;
    if !is_cache_config(&manifest.config) {
        return Ok(Root::Image(manifest));
    }
    Ok(Root::Cache(CacheRoot {
        config: manifest.config,
        layers: manifest.layers,
    }))
}

/// The root document a local cache directory's `index.json` names (by tag or digest),
/// its bytes checked against its digest.
fn read_local_root(
    src: &std::path::Path,
    select: &LocalSelect,
) -> std::result::Result<Root, String> {
    if !src.is_dir() {
        return Err(format!("{} is not a directory", src.display()));
    }
    let mut layout = OciLayout::open_dir(src).map_err(|e| format!("not an OCI layout: {e}"))?;
    let digest = match select {
        LocalSelect::Digest(digest) => digest.clone(),
        LocalSelect::Tag(tag) => layout
            .find(tag)
            .map(|d| d.digest.clone())
            .ok_or_else(|| format!("no cache tagged {tag:?} in its index.json"))?,
    };
    let bytes = layout.read_blob(&digest).map_err(|e| e.to_string())?;
    parse_root(&bytes)
}
