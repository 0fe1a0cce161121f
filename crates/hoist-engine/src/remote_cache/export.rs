//! Writing `--cache-to`s after the image export: records selected by mode, layers in the
//! wanted compression (converted once, shared with the image export through store
//! variants), the cache mounts `mounts=` selects (`mounts`), the cache config, and an
//! index or image manifest — pushed to a registry (blobs it holds are not sent again,
//! uploads concurrent) or written to an OCI layout.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use futures::{StreamExt as _, TryStreamExt as _};
use hoist_content::Expected;
use hoist_export::{ExportLayer, LayerConverter};
use hoist_oci::{Descriptor, Digest, Index, Manifest, MediaType, OciLayoutWriter};
use hoist_registry::{BlobSource, PushOutcome, Repository};
use hoist_solver::CacheKey;

use super::config::{
    build_config, CacheLayer, CACHE_CONFIG_MEDIA_TYPE, CREATED_AT_ANNOTATION,
    UNCOMPRESSED_ANNOTATION,
};
use super::{mounts, CacheDestination, CacheExport, CacheMode, LayeredCacheStore};
use crate::error::{Error, Result};
use crate::steps::{Progress, Step};
use crate::worker::{Ref, Worker};

/// Writes every export; one that fails is a warning unless it says `ignore-error=false`.
/// `mount_ids` are the cache mounts the build's steps name (`mounts::used_ids`). Returns
/// the root written to the last client store (BuildKit's `cache.manifest`), if any.
pub(crate) async fn export(
    worker: &Arc<Worker>,
    exports: &[CacheExport],
    cache: &LayeredCacheStore,
    finals: &[Arc<Ref>],
    mount_ids: &[String],
    progress: &Progress,
) -> Result<Option<Descriptor>> {
    let mut client_root = None;
    for export in exports {
        let name = match export.destination {
            CacheDestination::Registry { .. } => "exporting cache to registry",
            CacheDestination::Local { .. } | CacheDestination::Client { .. } => {
                "exporting cache to client directory"
            }
            // Written with the images (`inline`).
            CacheDestination::Inline => continue,
        };
        let step = progress.step(name.to_owned());
        let records = select(cache.used_results(), export.mode, finals);
        match export_one(worker, export, &records, mount_ids, &step).await {
            Ok((summary, notes, root)) => {
                if matches!(export.destination, CacheDestination::Client { .. }) {
                    client_root = Some(root);
                }
                for note in notes {
                    step.log(note);
                }
                step.log(summary);
                let _ = step.finish(Ok::<(), Error>(()));
            }
            Err(e) if export.ignore_error => {
                step.log(format!(
                    "WARNING: cache export to {} failed (the build result stands; \
                     ignore-error=false makes this fatal): {e}",
                    export.destination.describe()
                ));
                let _ = step.finish(Ok::<(), Error>(()));
            }
            // The error names the cache (a registry's names only its URLs).
            Err(e @ Error::RemoteCache { .. }) => return step.finish(Err(e)),
            Err(e) => {
                return step.finish(Err(Error::RemoteCache {
                    cache: export.destination.describe(),
                    reason: e.to_string(),
                }))
            }
        }
    }
    Ok(client_root)
}

/// The records `mode` exports: `max` all; `min` those whose layer chain is a prefix of a
/// final image's (its own steps, not those of other stages). Results without layers have
/// nothing to carry.
fn select(
    used: Vec<(CacheKey, Arc<Ref>)>,
    mode: CacheMode,
    finals: &[Arc<Ref>],
) -> Vec<(CacheKey, Arc<Ref>)> {
    used.into_iter()
        .filter(|(_, value)| !value.layers.is_empty())
        .filter(|(_, value)| match mode {
            CacheMode::Max => true,
            CacheMode::Min => finals.iter().any(|top| {
                top.layers.len() >= value.layers.len()
                    && top
                        .layers
                        .iter()
                        .zip(&value.layers)
                        .all(|(a, b)| a.descriptor.digest == b.descriptor.digest)
            }),
        })
        .collect()
}

/// The root document written and the blobs it needs.
struct Written {
    root: Descriptor,
    root_bytes: Vec<u8>,
    blobs: Vec<Descriptor>,
    /// What became of the selected cache mounts, for progress.
    notes: Vec<String>,
}

async fn export_one(
    worker: &Arc<Worker>,
    export: &CacheExport,
    records: &[(CacheKey, Arc<Ref>)],
    mount_ids: &[String],
    step: &Step<'_>,
) -> Result<(String, Vec<String>, Descriptor)> {
    if !matches!(export.destination, CacheDestination::Inline) {
        // A record of a base image not fetched yet: its layers are exported too.
        for (_, value) in records {
            crate::ops::fetch_missing(worker, &value.layers).await?;
        }
    }
    let (worker2, export2, records2) = (Arc::clone(worker), export.clone(), records.to_vec());
    let mount_ids = mount_ids.to_vec();
    let mut written =
        tokio::task::spawn_blocking(move || assemble(&worker2, &export2, &records2, &mount_ids))
            .await
            .map_err(|e| Error::Task(e.to_string()))??;
    let notes = std::mem::take(&mut written.notes);
    let root = written.root.clone();
    let summary = match &export.destination {
        CacheDestination::Registry { reference } => {
            let repo = Repository::from(reference);
            let limit = worker.registry().config().max_concurrent_transfers.max(1);
            let outcomes: Vec<PushOutcome> = futures::stream::iter(written.blobs.iter().map(|d| {
                let source = BlobSource::Store(worker.store().clone());
                let repo = &repo;
                async move {
                    let outcome = worker
                        .registry()
                        .push_blob_or_mount(repo, d, source, &[])
                        .await?;
                    let done = match outcome {
                        PushOutcome::Uploaded => "uploaded",
                        PushOutcome::Mounted => "mounted",
                        PushOutcome::Exists => "already there",
                    };
                    step.log(blob_line(d, done));
                    Ok::<_, Error>(outcome)
                }
            }))
            .buffer_unordered(limit)
            .try_collect()
            .await?;
            worker
                .registry()
                .push_manifest(
                    reference,
                    written.root_bytes.clone().into(),
                    written.root.media_type.clone(),
                )
                .await?;
            let sent = outcomes
                .iter()
                .filter(|o| **o == PushOutcome::Uploaded)
                .count();
            format!(
                "{} records, {} blobs: {sent} uploaded, {} already there; manifest {}",
                records.len(),
                written.blobs.len(),
                written.blobs.len() - sent,
                written.root.digest
            )
        }
        CacheDestination::Local { dest, tag } => {
            let (dest, tag) = (dest.clone(), tag.clone());
            let worker = Arc::clone(worker);
            let count = written.blobs.len();
            let (copied, lines) = tokio::task::spawn_blocking(move || -> Result<_> {
                let mut layout = OciLayoutWriter::create_dir(&dest)?;
                let (mut copied, mut lines) = (0, Vec::new());
                for blob in &written.blobs {
                    let path = dest.join(hoist_oci::layout::blob_path(&blob.digest));
                    if std::fs::metadata(&path).is_ok_and(|m| m.len() == blob.size) {
                        lines.push(blob_line(blob, "already there"));
                        continue;
                    }
                    let mut reader = worker.store().open_blob(&blob.digest)?;
                    layout.add_blob(&blob.digest, blob.size, &mut reader)?;
                    lines.push(blob_line(blob, "written"));
                    copied += 1;
                }
                layout.add_blob_bytes(&written.root.digest, &written.root_bytes)?;
                layout.add_manifest(written.root.clone(), Some(&tag));
                layout.finish()?;
                Ok((copied, lines))
            })
            .await
            .map_err(|e| Error::Task(e.to_string()))??;
            for line in lines {
                step.log(line);
            }
            format!(
                "{} records, {count} blobs: {copied} written, {} already there; manifest {}",
                records.len(),
                count - copied,
                root.digest
            )
        }
        CacheDestination::Client { store, .. } => {
            // A few at once, as the registry uploads; the root last, once all it names is
            // there.
            let limit = worker.registry().config().max_concurrent_transfers.max(1);
            let written_each: Vec<bool> = futures::stream::iter(
                written
                    .blobs
                    .iter()
                    .map(|blob| write_to_client(worker, store, blob, step)),
            )
            .buffer_unordered(limit)
            .try_collect()
            .await?;
            let copied = written_each.iter().filter(|w| **w).count();
            write_to_client(worker, store, &written.root, step).await?;
            format!(
                "{} records, {} blobs: {copied} written, {} already there; manifest {}",
                records.len(),
                written.blobs.len(),
                written.blobs.len() - copied,
                written.root.digest
            )
        }
        CacheDestination::Inline => String::new(),
    };
    Ok((summary, notes, root))
}

/// Writes one blob of the content store to a client store unless it holds it already;
/// whether it was written.
async fn write_to_client(
    worker: &Worker,
    store: &super::ClientStore,
    blob: &Descriptor,
    step: &Step<'_>,
) -> Result<bool> {
    let failed = |reason: String| Error::RemoteCache {
        cache: store.0.describe(),
        reason,
    };
    let present = store
        .0
        .size(&blob.digest)
        .await
        .map_err(|e| failed(format!("cannot ask for {}: {e}", blob.digest)))?;
    if present == Some(blob.size) {
        step.log(blob_line(blob, "already there"));
        return Ok(false);
    }
    let file = worker.store().open_blob(&blob.digest)?;
    let written = store
        .0
        .write(blob, file)
        .await
        .map_err(|e| failed(format!("cannot write {}: {e}", blob.digest)))?;
    step.log(blob_line(
        blob,
        if written { "written" } else { "already there" },
    ));
    Ok(written)
}

/// Converts the layers, writes the cache config and the root document into the content
/// store (leased for the build), and lists the blobs to send.
fn assemble(
    worker: &Worker,
    export: &CacheExport,
    records: &[(CacheKey, Arc<Ref>)],
    mount_ids: &[String],
) -> Result<Written> {
    let store = worker.store();
    let lease = Arc::new(store.lease()?);
    let mut converter = LayerConverter::new(store.clone(), Arc::clone(&lease));
    let created_at =
        hoist_oci::format_rfc3339(i64::try_from(crate::cache::now_ms() / 1000).unwrap_or(0), 0);
    let mut converted: HashMap<Digest, Descriptor> = HashMap::new();
    let mut chains = Vec::with_capacity(records.len());
    for (key, value) in records {
        let mut chain = Vec::with_capacity(value.layers.len());
        for layer in &value.layers {
            let descriptor = match converted.get(&layer.descriptor.digest) {
                Some(done) => done.clone(),
                None => {
                    let source = ExportLayer::from(layer.clone());
                    let mut done = converter.convert(&source, &export.format)?;
                    done.annotations = BTreeMap::new();
                    converted.insert(layer.descriptor.digest.clone(), done.clone());
                    done
                }
            };
            chain.push(CacheLayer {
                descriptor,
                diff_id: layer.diff_id.clone(),
            });
        }
        chains.push((*key, chain));
    }
    let mut config = build_config(&chains, &created_at);
    let mut notes = Vec::new();
    let packed = mounts::pack(
        worker,
        &lease,
        &export.mounts,
        mount_ids,
        &export.format,
        &mut notes,
    )?;
    // Layers in the order the config lists them, each once, annotated as BuildKit does.
    let mut blobs: Vec<Descriptor> = Vec::new();
    for (_, chain) in &chains {
        for layer in chain {
            if blobs.iter().any(|b| b.digest == layer.descriptor.digest) {
                continue;
            }
            let mut descriptor = layer.descriptor.clone();
            descriptor.annotations.insert(
                UNCOMPRESSED_ANNOTATION.to_owned(),
                layer.diff_id.to_string(),
            );
            descriptor
                .annotations
                .insert(CREATED_AT_ANNOTATION.to_owned(), created_at.clone());
            blobs.push(descriptor);
        }
    }
    // The mounts' blobs after the layers: listed so that registries keep them.
    for mount in packed {
        config.mounts.push(mount.entry);
        if !blobs.iter().any(|b| b.digest == mount.descriptor.digest) {
            blobs.push(mount.descriptor);
        }
    }
    let config_bytes = serde_json::to_vec(&config).map_err(|e| Error::RemoteCache {
        cache: export.destination.describe(),
        reason: format!("cannot encode the cache config: {e}"),
    })?;
    let config_descriptor = put(
        worker,
        &lease,
        MediaType::from_string(CACHE_CONFIG_MEDIA_TYPE),
        &config_bytes,
    )?;
    let oci = export.format.oci_media_types;
    let root_bytes = if export.image_manifest {
        let mut manifest = if oci {
            Manifest::new_oci(config_descriptor.clone(), blobs.clone())
        } else {
            Manifest::new_docker(config_descriptor.clone(), blobs.clone())
        };
        manifest.annotations = BTreeMap::new();
        serde_json::to_vec(&manifest)
    } else {
        let mut manifests = blobs.clone();
        manifests.push(config_descriptor.clone());
        let index = if oci {
            Index::new_oci(manifests)
        } else {
            Index::new_docker(manifests)
        };
        serde_json::to_vec(&index)
    }
    .map_err(|e| Error::RemoteCache {
        cache: export.destination.describe(),
        reason: format!("cannot encode the cache manifest: {e}"),
    })?;
    let root_type = match (export.image_manifest, oci) {
        (true, true) => MediaType::OciManifest,
        (true, false) => MediaType::DockerManifest,
        (false, true) => MediaType::OciIndex,
        (false, false) => MediaType::DockerManifestList,
    };
    let root = put(worker, &lease, root_type, &root_bytes)?;
    let mut all = blobs;
    all.push(config_descriptor);
    // The worker's own lease keeps them until the build ends (the pushes read them).
    worker.lease_blobs(&all.iter().map(|d| d.digest.clone()).collect::<Vec<_>>())?;
    worker.lease_blobs(std::slice::from_ref(&root.digest))?;
    Ok(Written {
        root,
        root_bytes,
        blobs: all,
        notes,
    })
}

/// Stores `bytes` (leased first) and returns its descriptor.
fn put(
    worker: &Worker,
    lease: &hoist_content::Lease,
    media_type: MediaType,
    bytes: &[u8],
) -> Result<Descriptor> {
    let descriptor = Descriptor::of_bytes(media_type, bytes);
    lease.add(&descriptor.digest)?;
    worker
        .store()
        .write_blob(Expected::from(&descriptor), bytes)?;
    Ok(descriptor)
}

/// A blob's progress line: `sha256:… 12.35MB uploaded`.
fn blob_line(blob: &Descriptor, done: &str) -> String {
    format!("{} {} {done}", blob.digest, human_size(blob.size))
}

/// A size as go-units' `HumanSize` prints it (BuildKit's progress): decimal units, four
/// significant digits, trailing zeros dropped.
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    #[allow(clippy::cast_precision_loss)] // a display value
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    let digits = if value >= 100.0 {
        1
    } else if value >= 10.0 {
        2
    } else {
        3
    };
    let mut text = format!("{value:.digits$}");
    if text.contains('.') {
        text = text.trim_end_matches('0').trim_end_matches('.').to_owned();
    }
    format!("{text}{}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::human_size;

    #[test]
    fn sizes_read_as_go_units_prints_them() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(1_234), "1.234kB");
        assert_eq!(human_size(12_345_678), "12.35MB");
        assert_eq!(human_size(200_000_000), "200MB");
    }
}
