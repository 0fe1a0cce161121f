//! Cache mounts that travel (`--cache-to …,mounts=true|ID,ID`): each selected
//! `RUN --mount=type=cache` directory written as one deterministic layer blob (entries
//! sorted, fixed headers: `hoist_snapshot::write_layer` of the tree against nothing), named
//! in the cache config under `hoist.cacheMounts` and listed in the root document with the
//! layers; on import, restored before any step runs into a mount that does not exist yet
//! or is empty — a local mount with files is never replaced.
//!
//! Only mounts keyed by their id alone travel (hoist's keying, as BuildKit's: shared
//! across platforms); one seeded from a source (`from=`, or `uid`/`gid`/`mode`, which the
//! frontend prepares as a source) is keyed by a local snapshot as well and stays here.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hoist_content::Lease;
use hoist_export::ImageFormat;
use hoist_frontend::Definition;
use hoist_graph::{MountKind, MountSource, Op};
use hoist_oci::{Descriptor, Digest};
use hoist_snapshot::{DiffSource, LayerOptions, MediaTypes};

use super::config::ConfigMount;
use super::import::{fetch_blob, BlobOrigin};
use super::MountSelection;
use crate::error::{Error, Result};
use crate::ops::{cache_mount_name, cache_mounts_root};
use crate::worker::{create_dir_all, Worker};

/// The ids of the cache mounts the steps of `definition` name that are keyed by their id
/// alone (sorted, each once).
pub(crate) fn used_ids(definition: &Definition) -> Vec<String> {
    let mut ids = BTreeSet::new();
    for target in &definition.targets {
        for (_, vertex) in target.converted.graph.vertices() {
            let Op::Exec(exec) = &vertex.op else {
                continue;
            };
            for mount in &exec.mounts {
                if let (MountKind::Cache { id, .. }, MountSource::Scratch) =
                    (&mount.kind, &mount.source)
                {
                    ids.insert(id.clone());
                }
            }
        }
    }
    ids.into_iter().collect()
}

/// The host directory of the cache mount `id` (keyed by its id alone).
fn mount_dir(worker: &Worker, id: &str) -> PathBuf {
    cache_mounts_root(worker).join(cache_mount_name(id))
}

/// Holds the mount's `flock` (the one `sharing=locked` runs hold) while it is read or
/// filled.
fn lock(worker: &Worker, id: &str) -> Result<std::fs::File> {
    let root = cache_mounts_root(worker);
    create_dir_all(&root)?;
    let path = root.join(format!("{}.lock", cache_mount_name(id)));
    let file = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(Error::io("open", &path))?;
    fs4::fs_std::FileExt::lock_exclusive(&file).map_err(Error::io("lock", &path))?;
    Ok(file)
}

/// One mount written for an export: its config entry and its blob.
pub(crate) struct PackedMount {
    pub entry: ConfigMount,
    pub descriptor: Descriptor,
}

/// Writes the selected mounts of `used` (the build's) into the content store as layers in
/// `format`'s compression and media types, each leased by `lease`. A selected id the build
/// did not use, or whose directory does not exist, is noted in `notes` and left out.
pub(crate) fn pack(
    worker: &Worker,
    lease: &Lease,
    selection: &MountSelection,
    used: &[String],
    format: &ImageFormat,
    notes: &mut Vec<String>,
) -> Result<Vec<PackedMount>> {
    let ids: Vec<&String> = match selection {
        MountSelection::None => return Ok(Vec::new()),
        MountSelection::All => used.iter().collect(),
        MountSelection::Ids(ids) => {
            for id in ids.iter().filter(|id| !used.contains(id)) {
                notes.push(format!(
                    "cache mount {id:?}: no step of this build uses it by its id alone, \
                     not exported"
                ));
            }
            ids.iter().filter(|id| used.contains(id)).collect()
        }
    };
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let dir = mount_dir(worker, id);
        let _lock = lock(worker, id)?;
        if !dir.is_dir() {
            notes.push(format!("cache mount {id:?}: not made on this machine yet"));
            continue;
        }
        let options = LayerOptions {
            compression: format.compression,
            level: format.compression_level,
            media_types: if format.oci_media_types {
                MediaTypes::Oci
            } else {
                MediaTypes::Docker
            },
        };
        let writer = worker.store().writer()?;
        let (blob, layer, _) = hoist_snapshot::write_layer(
            DiffSource::Trees {
                lower: None,
                upper: &dir,
            },
            writer,
            options,
        )
        .map_err(|e| mount_error(id, &dir, e.to_string()))?;
        lease.add(&layer.descriptor.digest)?;
        blob.commit(None)?;
        notes.push(format!(
            "cache mount {id:?}: {} bytes ({} compressed)",
            layer.diff_size, layer.descriptor.size
        ));
        out.push(PackedMount {
            entry: ConfigMount {
                id: id.clone(),
                blob: layer.descriptor.digest.to_string(),
                diff_id: Some(layer.diff_id.to_string()),
            },
            descriptor: layer.descriptor,
        });
    }
    Ok(out)
}

fn mount_error(id: &str, dir: &Path, reason: String) -> Error {
    Error::RemoteCache {
        cache: format!("cache mount {id:?} ({})", dir.display()),
        reason,
    }
}

/// A mount an import carries: its id, its blob's descriptor (from the root document) and
/// where the blob is.
#[derive(Debug, Clone)]
pub(crate) struct ImportedMount {
    pub id: String,
    pub descriptor: Descriptor,
    pub origin: Arc<BlobOrigin>,
}

/// The mounts of a cache config whose blobs the root document lists (others are skipped).
pub(crate) fn imported(
    entries: &[ConfigMount],
    layers: &[Descriptor],
    origin: &Arc<BlobOrigin>,
) -> Vec<ImportedMount> {
    entries
        .iter()
        .filter_map(|entry| {
            let blob = Digest::parse(&entry.blob).ok()?;
            let descriptor = layers.iter().find(|d| d.digest == blob)?;
            descriptor.media_type.layer_compression()?;
            Some(ImportedMount {
                id: entry.id.clone(),
                descriptor: Descriptor::new(descriptor.media_type.clone(), blob, descriptor.size),
                origin: Arc::clone(origin),
            })
        })
        .collect()
}

/// Restores `mount` unless a local one with files exists: fetches its blob (verified)
/// into the store, unpacks it beside the mounts and renames it into place. Returns what
/// it did, for progress.
pub(crate) async fn restore(worker: &Arc<Worker>, mount: &ImportedMount) -> Result<String> {
    let id = mount.id.clone();
    let dir = mount_dir(worker, &id);
    if has_files(&dir) {
        return Ok(format!(
            "cache mount {id:?}: kept the local one (an import never replaces it)"
        ));
    }
    worker.lease_blobs(std::slice::from_ref(&mount.descriptor.digest))?;
    fetch_blob(worker, &mount.origin, &mount.descriptor).await?;
    let (worker, digest) = (Arc::clone(worker), mount.descriptor.digest.clone());
    tokio::task::spawn_blocking(move || -> Result<String> {
        let _lock = lock(&worker, &id)?;
        // Filled meanwhile by a run of another build: theirs stands.
        if has_files(&dir) {
            return Ok(format!("cache mount {id:?}: kept the local one"));
        }
        let root = cache_mounts_root(&worker);
        let tmp = tempfile::Builder::new()
            .prefix(".new-")
            .tempdir_in(&root)
            .map_err(Error::io("create a directory in", &root))?;
        std::fs::set_permissions(
            tmp.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .map_err(Error::io("chmod", tmp.path()))?;
        let blob = worker.store().open_blob(&digest)?;
        let report = hoist_snapshot::apply_layer(blob, tmp.path(), &Default::default())
            .map_err(|e| mount_error(&id, &dir, format!("blob {digest}: {e}")))?;
        if dir.is_dir() {
            std::fs::remove_dir(&dir).map_err(Error::io("remove the empty", &dir))?;
        }
        let made = tmp.keep();
        std::fs::rename(&made, &dir).map_err(Error::io("create", &dir))?;
        Ok(format!(
            "cache mount {id:?}: restored {} entries",
            report.entries
        ))
    })
    .await
    .map_err(|e| Error::Task(e.to_string()))?
}

/// Whether `dir` exists with something in it.
fn has_files(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some())
}
