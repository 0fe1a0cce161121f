//! Image sources: the layers of an image the build resolved (config-only) while planning,
//! as a lazy result naming the repository they come from. [`materialize`] fetches them
//! when a step needs the filesystem and unpacks each layer once into a committed snapshot
//! chain. Chains are shared between builds: `<engine>/layers/<key>`
//! names the snapshot of a layer on top of the chain below it, where the key digests the
//! compressed layer digests from the base up.

use std::fs::File;
use std::sync::Arc;

use fs4::fs_std::FileExt;
use futures::{StreamExt as _, TryStreamExt as _};
use hoist_oci::{ImageConfig, Reference};
use hoist_registry::Repository;
use hoist_snapshot::{apply_layer_to_snapshot, ApplyOptions, SnapshotId, Snapshotter};
use sha2::{Digest as _, Sha256};

use super::EngineOp;
use crate::error::{Error, Result};
use crate::worker::{create_dir_all, LayerRef, LayerSource, Ref, Worker};

pub(super) async fn exec(op: &EngineOp) -> Result<Ref> {
    let hoist_graph::Op::Source(hoist_graph::Source::Image {
        reference,
        platform,
    }) = &op.vertex.op
    else {
        return Err(Error::InvalidGraph("not an image source".into()));
    };
    // Pinned to the digest the build resolved while planning: its documents are in the
    // store, so this asks the registry for nothing. The layers stay where they are until a
    // step needs the filesystem ([`materialize`]) or an export needs their bytes.
    let reference = Reference::parse_normalized(reference)?;
    let worker = &op.worker;
    let image = worker
        .registry()
        .resolve_image(&reference, platform, worker.store())
        .await?;
    let config = read_config(worker, &image.config.digest, &reference)?;
    if config.rootfs.diff_ids.len() != image.layers.len() {
        return Err(Error::Unsupported(format!(
            "image {reference} lists {} layers but {} diff ids",
            image.layers.len(),
            config.rootfs.diff_ids.len()
        )));
    }
    let source = LayerSource::from(&Repository::from(&reference));
    let layers: Vec<LayerRef> = image
        .layers
        .iter()
        .zip(&config.rootfs.diff_ids)
        .map(|(descriptor, diff_id)| LayerRef {
            descriptor: descriptor.clone(),
            diff_id: diff_id.clone(),
            source: Some(source.clone()),
        })
        .collect();
    let documents = vec![
        image.root.digest.clone(),
        image.manifest.digest.clone(),
        image.config.digest.clone(),
    ];
    let result = Ref {
        snapshot: None,
        layers,
    };
    worker.note_image_documents(&result, documents)?;
    Ok(result)
}

/// Fetches the layers of `layers` the content store does not have from their sources,
/// concurrently, verified; each is leased for the build first.
pub(crate) async fn fetch_missing(worker: &Arc<Worker>, layers: &[LayerRef]) -> Result<()> {
    let mut fetches = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for layer in layers {
        let digest = &layer.descriptor.digest;
        if worker.store().has(digest) || !seen.insert(digest.clone()) {
            continue;
        }
        let Some(source) = &layer.source else {
            return Err(Error::InvalidGraph(format!(
                "layer {digest} is neither in the content store nor in a registry"
            )));
        };
        worker.lease_blobs(std::slice::from_ref(digest))?;
        let repository = source.repository();
        let descriptor = layer.descriptor.clone();
        fetches.push(async move {
            worker
                .registry()
                .fetch_blob(&repository, &descriptor, worker.store())
                .await
                .map(drop)
        });
    }
    let limit = worker.registry().config().max_concurrent_transfers.max(1);
    futures::stream::iter(fetches)
        .buffer_unordered(limit)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// `r` with a snapshot: a lazy result's layers fetched where missing and unpacked (each
/// chain once, shared with image sources and other builds). The filesystem is the one
/// applying the layers in order gives, as for a pulled image.
pub(crate) async fn materialize(worker: &Arc<Worker>, r: &Ref) -> Result<Ref> {
    if r.snapshot.is_some() {
        return Ok(r.clone());
    }
    fetch_missing(worker, &r.layers).await?;
    let worker = Arc::clone(worker);
    let layers = r.layers.clone();
    tokio::task::spawn_blocking(move || {
        let snapshot = unpack(&worker, &layers)?;
        Ok(Ref {
            snapshot: Some(snapshot),
            layers,
        })
    })
    .await
    .map_err(|e| Error::Task(e.to_string()))?
}

/// The image config `digest` of `reference`, from the store.
pub(crate) fn read_config(
    worker: &Worker,
    digest: &hoist_oci::Digest,
    reference: &Reference,
) -> Result<ImageConfig> {
    let bytes = worker.store().read_blob(digest)?;
    serde_json::from_slice(&bytes).map_err(|e| Error::ImageConfig {
        reference: reference.to_string(),
        digest: digest.to_string(),
        reason: e.to_string(),
    })
}

/// The snapshot of `layers` stacked, unpacking only the layers no earlier build unpacked.
pub(crate) fn unpack(worker: &Worker, layers: &[LayerRef]) -> Result<SnapshotId> {
    let dir = worker.engine_dir().join("layers");
    create_dir_all(&dir)?;
    let lock_path = worker.engine_dir().join("layers.lock");
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(Error::io("open", &lock_path))?;
    FileExt::lock_exclusive(&lock).map_err(Error::io("lock", &lock_path))?;
    let snapshotter = worker.snapshotter();
    let mut chain = Sha256::new();
    let mut parent: Option<SnapshotId> = None;
    if layers.is_empty() {
        let key = worker.unique_key("empty");
        snapshotter.prepare(&key, &[])?;
        return Ok(snapshotter.commit(&key)?);
    }
    for layer in layers {
        chain.update(layer.descriptor.digest.as_str().as_bytes());
        chain.update(b"\n");
        let name = hex::encode(chain.clone().finalize());
        let record = dir.join(&name);
        let known = std::fs::read_to_string(&record)
            .ok()
            .and_then(|id| SnapshotId::parse(id.trim()).ok())
            .filter(|id| snapshotter.parents(id).is_ok());
        let id = match known {
            Some(id) => id,
            None => {
                let blob = worker.store().open_blob(&layer.descriptor.digest)?;
                let parents: Vec<SnapshotId> = parent.iter().cloned().collect();
                let key = worker.unique_key("layer");
                let (id, _) = apply_layer_to_snapshot(
                    snapshotter,
                    &key,
                    &parents,
                    std::io::BufReader::new(blob),
                    &ApplyOptions::default(),
                )?;
                std::fs::write(&record, id.as_str()).map_err(Error::io("write", &record))?;
                id
            }
        };
        parent = Some(id);
    }
    let top = parent.ok_or_else(|| Error::InvalidGraph("image without layers".into()))?;
    // Still under the layers lock: a concurrent prune sees the chain as in use.
    worker.hold_snapshot(&top)?;
    Ok(top)
}

/// `hoist build --pull`: pulls the image, then re-hashes each of its blobs already in the
/// store (a pull trusts a present blob of the right size), removes those whose bytes no
/// longer match their digest and pulls again so they are fetched anew. A present blob of
/// the wrong size, which makes the pull itself fail, is removed and fetched the same way.
pub(crate) async fn pull_verified(
    worker: &Worker,
    reference: &Reference,
    platform: &hoist_oci::Platform,
) -> Result<hoist_registry::PulledImage> {
    // Each round removes at least one blob; an image has a handful.
    for _ in 0..16 {
        let pulled = worker
            .registry()
            .pull_image(reference, platform, worker.store())
            .await;
        let removed = match &pulled {
            Err(hoist_registry::RegistryError::Content(
                hoist_content::Error::SizeMismatch { digest, .. }
                | hoist_content::Error::DigestMismatch {
                    expected: digest, ..
                },
            )) => remove_corrupt_blobs(worker, std::slice::from_ref(digest))?,
            Err(_) => 0,
            Ok(image) => {
                let mut digests = vec![
                    image.root.digest.clone(),
                    image.manifest.digest.clone(),
                    image.config.digest.clone(),
                ];
                digests.extend(image.layers.iter().map(|l| l.digest.clone()));
                remove_corrupt_blobs(worker, &digests)?
            }
        };
        if removed == 0 {
            return Ok(pulled?);
        }
    }
    Ok(worker
        .registry()
        .pull_image(reference, platform, worker.store())
        .await?)
}

/// Re-hashes the present blobs among `digests`, removing any whose bytes no longer match
/// their name so that the next pull fetches them again. Returns how many were removed.
fn remove_corrupt_blobs(worker: &Worker, digests: &[hoist_oci::Digest]) -> Result<usize> {
    let mut removed = 0;
    for digest in digests {
        if worker.store().remove_if_corrupt(digest)? {
            removed += 1;
        }
    }
    Ok(removed)
}
