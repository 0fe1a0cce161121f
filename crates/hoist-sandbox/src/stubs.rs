//! Mount stubs: the empty files and directories a run has to create in the rootfs so that
//! something can be mounted on them (`/proc`, `/etc/hosts`, a cache mount's target...).
//!
//! They are not the command's doing, so, as BuildKit's mount-stub cleaner does, we remove
//! them after the run when they are still empty, keeping each parent directory's times as
//! they were just before the removal (the removal itself leaves no trace; what the run did
//! to the parent stays).

use std::path::{Component, Path, PathBuf};

use filetime::FileTime;

/// What [`MountStubs::record`] found missing before a run; cleaned up when dropped, so a
/// backend keeps it alive until its process has exited, whatever way the run ends.
#[derive(Debug, Default)]
pub(crate) struct MountStubs {
    /// Host paths that did not exist, parents before children.
    missing: Vec<PathBuf>,
}

impl MountStubs {
    /// Notes which components of each mount target (paths inside the container) are
    /// missing under `rootfs`.
    pub(crate) fn record<'a>(rootfs: &Path, targets: impl IntoIterator<Item = &'a Path>) -> Self {
        let mut stubs = MountStubs::default();
        for target in targets {
            let mut inside = PathBuf::from("/");
            for component in target.components() {
                let Component::Normal(name) = component else {
                    continue;
                };
                inside.push(name);
                let Ok(host) = safe_path::scoped_join(rootfs, &inside) else {
                    break;
                };
                if std::fs::symlink_metadata(&host).is_ok() {
                    continue;
                }
                if !stubs.missing.contains(&host) {
                    stubs.missing.push(host);
                }
            }
        }
        stubs
    }

    /// Removes the recorded paths that are still empty, children first, each time putting
    /// the parent's access and modification times back as they were before the removal.
    /// Best effort: a stub the command filled stays.
    fn clean(&mut self) {
        for path in std::mem::take(&mut self.missing).iter().rev() {
            let Ok(meta) = std::fs::symlink_metadata(path) else {
                continue;
            };
            let empty = if meta.is_dir() {
                std::fs::read_dir(path).is_ok_and(|mut entries| entries.next().is_none())
            } else {
                meta.is_file() && meta.len() == 0
            };
            if !empty {
                continue;
            }
            let parent = path.parent().and_then(|parent| {
                let meta = std::fs::metadata(parent).ok()?;
                Some((
                    parent,
                    FileTime::from_last_access_time(&meta),
                    FileTime::from_last_modification_time(&meta),
                ))
            });
            let removed = if meta.is_dir() {
                std::fs::remove_dir(path)
            } else {
                std::fs::remove_file(path)
            };
            if let (Ok(()), Some((parent, atime, mtime))) = (removed, parent) {
                let _ = filetime::set_file_times(parent, atime, mtime);
            }
        }
    }
}

impl Drop for MountStubs {
    fn drop(&mut self) {
        self.clean();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_only_what_was_missing_and_is_still_empty() {
        let root = tempfile::tempdir().unwrap();
        let rootfs = root.path();
        std::fs::create_dir_all(rootfs.join("etc")).unwrap();
        std::fs::write(rootfs.join("etc/passwd"), "root:x:0:0::/:/bin/sh\n").unwrap();

        let targets = [
            Path::new("/proc"),
            Path::new("/etc/hosts"),
            Path::new("/etc/passwd"),
            Path::new("/mnt/cache/deep"),
            Path::new("/kept"),
        ];
        let stubs = MountStubs::record(rootfs, targets);
        // What a run does: make the stubs, and write into one of them.
        std::fs::create_dir(rootfs.join("proc")).unwrap();
        std::fs::File::create(rootfs.join("etc/hosts")).unwrap();
        std::fs::create_dir_all(rootfs.join("mnt/cache/deep")).unwrap();
        std::fs::create_dir(rootfs.join("kept")).unwrap();
        std::fs::write(rootfs.join("kept/file"), "made by the command").unwrap();
        let during_run = FileTime::from_unix_time(1_000_000, 0);
        filetime::set_file_mtime(rootfs.join("etc"), during_run).unwrap();
        drop(stubs);

        assert!(!rootfs.join("proc").exists());
        assert!(!rootfs.join("etc/hosts").exists());
        assert!(!rootfs.join("mnt").exists());
        assert!(rootfs.join("etc/passwd").exists());
        assert!(rootfs.join("kept/file").exists());
        // The removal of etc/hosts did not touch /etc's times.
        let etc = std::fs::metadata(rootfs.join("etc")).unwrap();
        assert_eq!(FileTime::from_last_modification_time(&etc), during_run);
    }
}
