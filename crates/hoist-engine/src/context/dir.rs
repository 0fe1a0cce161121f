//! [`ContextDir`]: the directory a remote or piped context is prepared in,
//! `<state>/engine/prepared-contexts/<unique>/` (the files under `root/`, a download beside it),
//! removed when the guard drops — and, when a killed process could not drop it, by
//! [`remove_orphans`].
//!
//! Liveness is a lock, never an age: each directory has a `lease` file that the preparing
//! process holds `flock`ed exclusive for as long as the guard lives. A directory whose lease
//! anyone else can lock belongs to no live process.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// `<engine>/prepared-contexts`: where contexts are prepared (`<engine>/contexts` holds
/// the stat caches of local ones).
pub(crate) fn contexts_dir(engine: &Path) -> PathBuf {
    engine.join("prepared-contexts")
}

/// One prepared context's directory, held by its lease; removed on drop.
#[derive(Debug)]
pub(crate) struct ContextDir {
    dir: PathBuf,
    _lease: File,
}

impl ContextDir {
    /// Creates `<engine>/prepared-contexts/<unique>/` with its lease held and an empty `root/`.
    pub(crate) fn create(engine: &Path) -> Result<ContextDir> {
        let parent = contexts_dir(engine);
        std::fs::create_dir_all(&parent).map_err(Error::io("create", &parent))?;
        loop {
            let dir = tempfile::Builder::new()
                .prefix("ctx-")
                .tempdir_in(&parent)
                .map_err(Error::io("create a directory in", &parent))?
                .keep();
            let lease = match lock_lease(&dir, true) {
                Ok(lease) => lease,
                // Removed by a sweep that took it for an orphan before it was locked.
                Err(_) if !dir.is_dir() => continue,
                Err(e) => return Err(e),
            };
            // Swept between its creation and the lock: the lease has no name any more.
            let Some(lease) = lease.filter(is_linked) else {
                continue;
            };
            let guard = ContextDir { dir, _lease: lease };
            let root = guard.root();
            std::fs::create_dir(&root).map_err(Error::io("create", &root))?;
            return Ok(guard);
        }
    }

    /// Where the context's files go.
    pub(crate) fn root(&self) -> PathBuf {
        self.dir.join("root")
    }

    /// A file beside the root for a download or a piped archive.
    pub(crate) fn download(&self) -> PathBuf {
        self.dir.join("download")
    }
}

impl Drop for ContextDir {
    fn drop(&mut self) {
        // Removed while the lease is still held, so no sweep sees it half gone.
        let _ = remove_tree(&self.dir);
    }
}

/// Removes every prepared context no live process holds (a killed build's).
pub(crate) fn remove_orphans(engine: &Path) -> Result<()> {
    let parent = contexts_dir(engine);
    let entries = match std::fs::read_dir(&parent) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("list", &parent)(e)),
    };
    for entry in entries {
        let dir = entry.map_err(Error::io("list", &parent))?.path();
        if !dir.is_dir() {
            continue;
        }
        // A directory without a lease is one mid-creation or one whose maker died before
        // locking; opening creates the lease, and its maker then sees it gone and retries.
        let Some(_orphan) = lock_lease(&dir, false)? else {
            continue;
        };
        remove_tree(&dir)?;
    }
    Ok(())
}

/// Opens (creating) `dir/lease` and locks it exclusive, waiting (`wait`) or not; `None`
/// when another process holds it.
fn lock_lease(dir: &Path, wait: bool) -> Result<Option<File>> {
    use rustix::fs::FlockOperation;
    let path = dir.join("lease");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(Error::io("open", &path))?;
    let operation = if wait {
        FlockOperation::LockExclusive
    } else {
        FlockOperation::NonBlockingLockExclusive
    };
    match rustix::fs::flock(&file, operation) {
        Ok(()) => Ok(Some(file)),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
        Err(e) => Err(Error::io("lock", &path)(e.into())),
    }
}

/// Whether the open file still has a name (was not removed by a sweep).
fn is_linked(file: &File) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    file.metadata().is_ok_and(|meta| meta.nlink() > 0)
}

/// Removes `dir` and everything in it, opening directories a tar made unwritable first.
fn remove_tree(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(first) => {
            for entry in walkdir::WalkDir::new(dir).follow_links(false).into_iter() {
                let Ok(entry) = entry else { continue };
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

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(engine: &Path) -> usize {
        std::fs::read_dir(contexts_dir(engine))
            .map(|e| e.count())
            .unwrap_or(0)
    }

    #[test]
    fn a_dropped_context_dir_is_gone_and_a_held_one_survives_a_sweep() {
        let tmp = tempfile::tempdir().unwrap();
        let held = ContextDir::create(tmp.path()).unwrap();
        std::fs::write(held.root().join("a"), "a").unwrap();
        remove_orphans(tmp.path()).unwrap();
        assert!(held.root().join("a").is_file());
        drop(held);
        assert_eq!(entries(tmp.path()), 0);
    }

    #[test]
    fn a_context_dir_nobody_holds_is_swept() {
        let tmp = tempfile::tempdir().unwrap();
        // What a killed process leaves: a directory whose lease nobody locks, with a
        // read-only directory inside.
        let left = contexts_dir(tmp.path()).join("ctx-killed");
        std::fs::create_dir_all(left.join("root/ro")).unwrap();
        std::fs::write(left.join("lease"), "").unwrap();
        std::fs::write(left.join("root/ro/f"), "x").unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(left.join("root/ro"), std::fs::Permissions::from_mode(0o555))
            .unwrap();
        remove_orphans(tmp.path()).unwrap();
        assert_eq!(entries(tmp.path()), 0);
    }
}
