//! Mount stubs: the empty files and directories a run has to create in the rootfs so that
//! something can be mounted on them (`/proc`, `/etc/hosts`, a cache mount's target...).
//!
//! They are not the command's doing, so, as BuildKit's mount-stub cleaner does, we remove
//! them after the run when they are still empty, keeping each parent directory's times as
//! they were just before the removal (the removal itself leaves no trace; what the run did
//! to the parent stays). An existing directory a stub was made in whose entries are, once
//! the stubs are gone, the ones it had before the run (same names, same inodes) gets its
//! times from before the run back: only the stub changed it, and a RUN that never touched
//! `/etc` must not stamp `etc/` with the build time (the layer would differ every build).

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use filetime::FileTime;

/// What [`MountStubs::record`] found missing before a run; cleaned up when dropped, so a
/// backend keeps it alive until its process has exited, whatever way the run ends.
#[derive(Debug, Default)]
pub(crate) struct MountStubs {
    /// Host paths that did not exist, parents before children.
    missing: Vec<PathBuf>,
    /// The existing directories the outermost stubs go into, as they were before the run.
    parents: Vec<DirBefore>,
}

/// A directory's times and entries before the run.
#[derive(Debug)]
struct DirBefore {
    path: PathBuf,
    atime: FileTime,
    mtime: FileTime,
    entries: BTreeSet<(OsString, u64)>,
}

impl DirBefore {
    fn read(path: &Path) -> Option<DirBefore> {
        let meta = std::fs::metadata(path).ok()?;
        Some(DirBefore {
            path: path.to_path_buf(),
            atime: FileTime::from_last_access_time(&meta),
            mtime: FileTime::from_last_modification_time(&meta),
            entries: entries(path)?,
        })
    }
}

/// The names in `dir` with their inode numbers; `None` when it cannot be read.
fn entries(dir: &Path) -> Option<BTreeSet<(OsString, u64)>> {
    let mut out = BTreeSet::new();
    for entry in std::fs::read_dir(dir).ok()? {
        let entry = entry.ok()?;
        let meta = std::fs::symlink_metadata(entry.path()).ok()?;
        out.insert((entry.file_name(), meta.ino()));
    }
    Some(out)
}

impl MountStubs {
    /// Notes which components of each mount target (paths inside the container) are
    /// missing under `rootfs`, and how the directories they would go into are now.
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
                    stubs.note_parent(&host);
                    stubs.missing.push(host);
                }
            }
        }
        stubs
    }

    /// Records the directory `stub` goes into, unless it is itself a stub or already noted.
    fn note_parent(&mut self, stub: &Path) {
        let Some(parent) = stub.parent() else {
            return;
        };
        if self.missing.iter().any(|m| m == parent) || self.parents.iter().any(|p| p.path == parent)
        {
            return;
        }
        if let Some(before) = DirBefore::read(parent) {
            self.parents.push(before);
        }
    }

    /// Removes the recorded paths that are still empty, children first, each time putting
    /// the parent's access and modification times back as they were before the removal;
    /// then gives each recorded parent whose entries are as before the run its times from
    /// before the run. Best effort: a stub the command filled stays.
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
        for before in std::mem::take(&mut self.parents) {
            if entries(&before.path).is_some_and(|now| now == before.entries) {
                let _ = filetime::set_file_times(&before.path, before.atime, before.mtime);
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
        let etc_before = mtime(&rootfs.join("etc"));
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
        // Only the stub changed /etc: its time is the one from before the run.
        assert_eq!(mtime(&rootfs.join("etc")), etc_before);
        // The root keeps `kept/`, which the command filled: its time is the run's.
        assert!(rootfs.join("kept").exists());
    }

    /// `rootfs` with `etc/passwd` and `bin/`, every time set to `when`.
    fn rootfs_at(when: FileTime) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("etc")).unwrap();
        std::fs::create_dir_all(root.path().join("bin")).unwrap();
        std::fs::write(root.path().join("etc/passwd"), "root:x:0:0::/:/bin/sh\n").unwrap();
        for path in ["etc/passwd", "etc", "bin", ""] {
            filetime::set_file_times(root.path().join(path), when, when).unwrap();
        }
        root
    }

    fn mtime(path: &Path) -> FileTime {
        FileTime::from_last_modification_time(&std::fs::metadata(path).unwrap())
    }

    #[test]
    fn a_dir_only_stubs_changed_gets_its_times_back() {
        let base = FileTime::from_unix_time(1_600_000_000, 0);
        let root = rootfs_at(base);
        let rootfs = root.path();
        let targets = [
            Path::new("/etc/hosts"),
            Path::new("/etc/resolv.conf"),
            Path::new("/proc"),
        ];
        let stubs = MountStubs::record(rootfs, targets);
        // The run makes its stubs now, which stamps etc/ and / with the current time.
        std::fs::File::create(rootfs.join("etc/hosts")).unwrap();
        std::fs::File::create(rootfs.join("etc/resolv.conf")).unwrap();
        std::fs::create_dir(rootfs.join("proc")).unwrap();
        assert_ne!(mtime(&rootfs.join("etc")), base);
        drop(stubs);

        assert!(!rootfs.join("etc/hosts").exists());
        assert_eq!(mtime(&rootfs.join("etc")), base);
        assert_eq!(mtime(rootfs), base);
    }

    #[test]
    fn a_dir_the_command_changed_keeps_its_new_time() {
        let base = FileTime::from_unix_time(1_600_000_000, 0);
        let root = rootfs_at(base);
        let rootfs = root.path();
        let stubs = MountStubs::record(rootfs, [Path::new("/etc/hosts")]);
        std::fs::File::create(rootfs.join("etc/hosts")).unwrap();
        // The command adds a file next to the stub, and replaces one (a new inode).
        std::fs::write(rootfs.join("etc/motd"), "hi\n").unwrap();
        std::fs::write(rootfs.join("etc/passwd.new"), "root:x:0:0::/root:/bin/sh\n").unwrap();
        std::fs::rename(rootfs.join("etc/passwd.new"), rootfs.join("etc/passwd")).unwrap();
        let during_run = FileTime::from_unix_time(1_700_000_000, 0);
        filetime::set_file_mtime(rootfs.join("etc"), during_run).unwrap();
        drop(stubs);
        assert_eq!(mtime(&rootfs.join("etc")), during_run);

        // Only a replaced file: the names are as before, the inode is not.
        let root = rootfs_at(base);
        let rootfs = root.path();
        let stubs = MountStubs::record(rootfs, [Path::new("/etc/hosts")]);
        std::fs::File::create(rootfs.join("etc/hosts")).unwrap();
        std::fs::write(rootfs.join("etc/passwd.new"), "changed\n").unwrap();
        std::fs::rename(rootfs.join("etc/passwd.new"), rootfs.join("etc/passwd")).unwrap();
        filetime::set_file_mtime(rootfs.join("etc"), during_run).unwrap();
        drop(stubs);
        assert_eq!(mtime(&rootfs.join("etc")), during_run);
    }
}
