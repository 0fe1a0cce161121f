//! The on-disk layout both snapshotters share: committed snapshots with their parents, and
//! active (prepared or view) snapshots with what is needed to commit or remove them.
//!
//! Each active snapshot has a lease: `active/<key>/lease`, flocked exclusive by the
//! snapshotter that made it until it is committed or removed. The kernel drops the lock
//! when that process dies, so an active snapshot whose lease can be taken belongs to no
//! live process ([`Layout::take_orphan`]): a killed build's, to unmount and remove.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::SnapshotId;
use crate::error::{Error, Result};

/// `meta.json` of a committed snapshot.
#[derive(Debug, Serialize, Deserialize)]
struct CommittedMeta {
    parents: Vec<SnapshotId>,
}

/// `meta.json` of an active snapshot.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct ActiveMeta {
    /// The parents, bottom-most first.
    pub parents: Vec<SnapshotId>,
    /// The directory that becomes the committed tree (`None` for views).
    pub tree: Option<PathBuf>,
    /// Where an overlay is mounted, to unmount before commit or removal.
    pub mounted: Option<PathBuf>,
}

/// The directories of one snapshotter, and the leases of the active snapshots it made.
#[derive(Debug, Clone)]
pub(super) struct Layout {
    root: PathBuf,
    leases: Arc<Mutex<HashMap<String, File>>>,
}

/// The lease of an active snapshot no live process holds, taken by [`Layout::take_orphan`];
/// held until dropped.
#[derive(Debug)]
pub(super) struct OrphanLease {
    _file: File,
}

/// Opens (creating) a lease file and locks it exclusive, waiting (`wait`) or not; `None`
/// when another holds it.
fn lock_lease(path: &Path, wait: bool) -> Result<Option<File>> {
    use rustix::fs::FlockOperation;
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(Error::io("open", path))?;
    let operation = if wait {
        FlockOperation::LockExclusive
    } else {
        FlockOperation::NonBlockingLockExclusive
    };
    match rustix::fs::flock(&file, operation) {
        Ok(()) => Ok(Some(file)),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
        Err(e) => Err(Error::io("lock", path)(e.into())),
    }
}

/// Checks that `name` is usable as a key or id: a plain name ([`hoist_oci::file_name`]).
pub(super) fn check_name(name: &str) -> Result<()> {
    if hoist_oci::file_name::is_plain_name(name) {
        Ok(())
    } else {
        Err(Error::InvalidKey {
            key: name.to_owned(),
        })
    }
}

impl Layout {
    pub fn open(root: &Path) -> Result<Self> {
        for dir in ["committed", "active"] {
            let path = root.join(dir);
            std::fs::create_dir_all(&path).map_err(Error::io("create directory", &path))?;
        }
        Ok(Self {
            root: root.to_path_buf(),
            leases: Arc::default(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn committed_fs(&self, id: &SnapshotId) -> Result<PathBuf> {
        let dir = self.committed_dir(id)?;
        Ok(dir.join("fs"))
    }

    fn committed_dir(&self, id: &SnapshotId) -> Result<PathBuf> {
        let dir = self.root.join("committed").join(id.as_str());
        if dir.join("meta.json").is_file() {
            Ok(dir)
        } else {
            Err(Error::NotFound {
                key: id.to_string(),
            })
        }
    }

    /// `committed/<id>/meta.d`: removed with the snapshot's directory.
    pub fn metadata_dir(&self, id: &SnapshotId) -> Result<PathBuf> {
        Ok(self.committed_dir(id)?.join("meta.d"))
    }

    pub fn parents(&self, id: &SnapshotId) -> Result<Vec<SnapshotId>> {
        let path = self.committed_dir(id)?.join("meta.json");
        let bytes = std::fs::read(&path).map_err(Error::io("read", &path))?;
        let meta: CommittedMeta =
            serde_json::from_slice(&bytes).map_err(|source| Error::Metadata { path, source })?;
        Ok(meta.parents)
    }

    /// Creates `active/<key>` for a new snapshot, with its lease held.
    pub fn begin_active(&self, key: &str, parents: &[SnapshotId]) -> Result<PathBuf> {
        check_name(key)?;
        for parent in parents {
            self.committed_dir(parent)?;
        }
        let dir = self.root.join("active").join(key);
        loop {
            match std::fs::create_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    return Err(Error::AlreadyExists {
                        key: key.to_owned(),
                    })
                }
                Err(e) => return Err(Error::io("create directory", &dir)(e)),
            }
            let path = dir.join("lease");
            let lease = match lock_lease(&path, true) {
                Ok(lease) => lease,
                // Removed by a sweep that took it for an orphan before it was locked.
                Err(_) if !dir.is_dir() => continue,
                Err(e) => return Err(e),
            };
            // Swept between create_dir and the lock: the lease has no name any more.
            if let Some(lease) = lease.filter(|file| {
                use std::os::unix::fs::MetadataExt;
                file.metadata().is_ok_and(|meta| meta.nlink() > 0)
            }) {
                self.leases
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(key.to_owned(), lease);
                return Ok(dir);
            }
        }
    }

    /// Removes the active snapshot's directory `dir` and drops its lease.
    pub fn end_active(&self, key: &str, dir: &Path) -> Result<()> {
        let removed = remove_tree(dir);
        if removed.is_ok() {
            self.leases
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(key);
        }
        removed
    }

    /// The lease of the active snapshot `key` when no live process holds it (the lease
    /// file is created for a snapshot that has none: made before leases, or mid-creation,
    /// whose maker then sees it removed and starts again).
    pub fn take_orphan(&self, key: &str) -> Result<Option<OrphanLease>> {
        check_name(key)?;
        let dir = self.root.join("active").join(key);
        if !dir.is_dir() {
            return Ok(None);
        }
        Ok(lock_lease(&dir.join("lease"), false)?.map(|file| OrphanLease { _file: file }))
    }

    pub fn write_active(&self, key: &str, meta: &ActiveMeta) -> Result<()> {
        let path = self.root.join("active").join(key).join("meta.json");
        let bytes = serde_json::to_vec(meta).map_err(|source| Error::Metadata {
            path: path.clone(),
            source,
        })?;
        std::fs::write(&path, bytes).map_err(Error::io("write", &path))
    }

    pub fn read_active(&self, key: &str) -> Result<(PathBuf, ActiveMeta)> {
        check_name(key)?;
        let dir = self.root.join("active").join(key);
        let path = dir.join("meta.json");
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotFound {
                    key: key.to_owned(),
                })
            }
            Err(e) => return Err(Error::io("read", &path)(e)),
        };
        let meta =
            serde_json::from_slice(&bytes).map_err(|source| Error::Metadata { path, source })?;
        Ok((dir, meta))
    }

    /// Moves `tree` in as a new committed snapshot and returns its id. Ids count up from 1;
    /// `create_dir` makes concurrent commits pick different ones.
    pub fn commit_tree(&self, tree: &Path, parents: Vec<SnapshotId>) -> Result<SnapshotId> {
        let committed = self.root.join("committed");
        let mut next = 1 + std::fs::read_dir(&committed)
            .map_err(Error::io("read directory", &committed))?
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u64>().ok())
            .max()
            .unwrap_or(0);
        let (id, dir) = loop {
            let dir = committed.join(next.to_string());
            match std::fs::create_dir(&dir) {
                Ok(()) => break (SnapshotId(next.to_string()), dir),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => next += 1,
                Err(e) => return Err(Error::io("create directory", &dir)(e)),
            }
        };
        let fs = dir.join("fs");
        std::fs::rename(tree, &fs).map_err(Error::io("move snapshot tree to", &fs))?;
        let path = dir.join("meta.json");
        let bytes =
            serde_json::to_vec(&CommittedMeta { parents }).map_err(|source| Error::Metadata {
                path: path.clone(),
                source,
            })?;
        // Written last: a committed snapshot exists once its meta.json does.
        std::fs::write(&path, bytes).map_err(Error::io("write", &path))?;
        Ok(id)
    }

    pub fn remove_committed(&self, id: &SnapshotId) -> Result<()> {
        let dir = self.committed_dir(id)?;
        for other in self.committed_ids()? {
            if self.parents(&other)?.contains(id) {
                return Err(Error::Unsupported(format!(
                    "snapshot {id} is a parent of snapshot {other}; remove that first"
                )));
            }
        }
        let meta = dir.join("meta.json");
        std::fs::remove_file(&meta).map_err(Error::io("remove", &meta))?;
        remove_tree(&dir)
    }

    /// Bytes on disk of the committed snapshot's own tree (blocks, each hardlinked inode
    /// counted once); parents are not included.
    pub fn usage(&self, id: &SnapshotId) -> Result<u64> {
        use std::os::unix::fs::MetadataExt;
        let fs = self.committed_fs(id)?;
        let mut seen = std::collections::HashSet::new();
        let mut total = 0;
        for entry in walkdir::WalkDir::new(&fs).follow_links(false) {
            let entry = entry.map_err(|e| {
                let path = e.path().unwrap_or(&fs).to_path_buf();
                Error::io("walk", &path)(e.into())
            })?;
            let meta = entry
                .metadata()
                .map_err(|e| Error::io("stat", entry.path())(e.into()))?;
            if meta.nlink() > 1 && !meta.is_dir() && !seen.insert((meta.dev(), meta.ino())) {
                continue;
            }
            total += meta.blocks() * 512;
        }
        Ok(total)
    }

    /// The keys of every active (prepared or view) snapshot.
    pub fn active_keys(&self) -> Result<Vec<String>> {
        let active = self.root.join("active");
        let mut keys = Vec::new();
        for entry in std::fs::read_dir(&active).map_err(Error::io("read directory", &active))? {
            let entry = entry.map_err(Error::io("read directory", &active))?;
            if let Some(name) = entry.file_name().to_str() {
                if check_name(name).is_ok() {
                    keys.push(name.to_owned());
                }
            }
        }
        Ok(keys)
    }

    pub fn committed_ids(&self) -> Result<Vec<SnapshotId>> {
        let committed = self.root.join("committed");
        let mut out = Vec::new();
        for entry in
            std::fs::read_dir(&committed).map_err(Error::io("read directory", &committed))?
        {
            let entry = entry.map_err(Error::io("read directory", &committed))?;
            if let Some(name) = entry.file_name().to_str() {
                if entry.path().join("meta.json").is_file() {
                    out.push(SnapshotId(name.to_owned()));
                }
            }
        }
        Ok(out)
    }
}

/// Bytes on disk under `dir` (blocks, each hardlinked inode once, mount points not crossed);
/// what cannot be read counts as nothing.
pub(super) fn tree_usage(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut seen = std::collections::HashSet::new();
    walkdir::WalkDir::new(dir)
        .follow_links(false)
        .same_file_system(true)
        .into_iter()
        .filter_map(|entry| entry.ok()?.metadata().ok())
        .filter(|meta| meta.nlink() < 2 || meta.is_dir() || seen.insert((meta.dev(), meta.ino())))
        .map(|meta| meta.blocks() * 512)
        .sum()
}

/// Removes a directory tree, first making directories writable (overlay work dirs are
/// mode 000, which stops a non-root caller).
pub(super) fn remove_tree(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(first) => {
            for entry in walkdir::WalkDir::new(dir)
                .follow_links(false)
                .into_iter()
                .flatten()
            {
                if entry.file_type().is_dir() {
                    let _ = std::fs::set_permissions(
                        entry.path(),
                        std::fs::Permissions::from_mode(0o700),
                    );
                }
            }
            std::fs::remove_dir_all(dir).map_err(|_| Error::io("remove", dir)(first))
        }
    }
}
