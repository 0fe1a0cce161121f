//! [`CopySnapshotter`]: every snapshot is a full tree; preparing copies the parents, diffing
//! compares trees. Works anywhere, as any user, at the cost of disk and time.
//!
//! [`copy_tree`] is written here rather than taken from a crate because it must keep what a
//! layer cares about (owner, mode, times, xattrs, hardlinks, devices, symlinks unfollowed)
//! and merge onto an existing tree; `fs_extra` and friends copy contents, not metadata.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::layout::{remove_tree, ActiveMeta, Layout};
use super::{Mount, SnapshotId, Snapshotter};
use crate::diff::{diff_to_tar, DiffSource, DiffStats};
use crate::error::{Error, Result};
use crate::meta::{apply_meta, read_xattrs, running_as_root, FileMeta};

/// Snapshots as full directory copies.
#[derive(Debug)]
pub struct CopySnapshotter {
    layout: Layout,
}

impl CopySnapshotter {
    /// Opens (creating) a snapshotter storing its snapshots under `root`.
    pub fn open(root: &Path) -> Result<Self> {
        Ok(Self {
            layout: Layout::open(root)?,
        })
    }

    /// The directory the snapshotter keeps its state in.
    pub fn root(&self) -> &Path {
        self.layout.root()
    }

    pub(super) fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Copies `parents` bottom-most first into `into`.
    fn stack(&self, parents: &[SnapshotId], into: &Path) -> Result<()> {
        std::fs::create_dir_all(into).map_err(Error::io("create directory", into))?;
        for parent in parents {
            copy_tree(&self.layout.committed_fs(parent)?, into)?;
        }
        Ok(())
    }
}

impl Snapshotter for CopySnapshotter {
    fn prepare(&self, key: &str, parents: &[SnapshotId]) -> Result<Mount> {
        let dir = self.layout.begin_active(key, parents)?;
        let fs = dir.join("fs");
        let meta = ActiveMeta {
            parents: parents.to_vec(),
            tree: Some(fs.clone()),
            mounted: None,
        };
        self.layout.write_active(key, &meta)?;
        self.stack(parents, &fs)?;
        Ok(Mount::Dir(fs))
    }

    fn mount_view(&self, key: &str, parents: &[SnapshotId]) -> Result<Mount> {
        let dir = self.layout.begin_active(key, parents)?;
        let meta = ActiveMeta {
            parents: parents.to_vec(),
            tree: None,
            mounted: None,
        };
        self.layout.write_active(key, &meta)?;
        if let [only] = parents {
            return Ok(Mount::Dir(self.layout.committed_fs(only)?));
        }
        let fs = dir.join("fs");
        self.stack(parents, &fs)?;
        Ok(Mount::Dir(fs))
    }

    fn commit(&self, key: &str) -> Result<SnapshotId> {
        let (dir, meta) = self.layout.read_active(key)?;
        let Some(tree) = meta.tree else {
            return Err(Error::Unsupported(format!(
                "snapshot {key} is a view and cannot be committed"
            )));
        };
        let id = self.layout.commit_tree(&tree, meta.parents)?;
        self.layout.end_active(key, &dir)?;
        Ok(id)
    }

    fn remove(&self, key: &str) -> Result<()> {
        let (dir, _) = self.layout.read_active(key)?;
        self.layout.end_active(key, &dir)
    }

    fn remove_committed(&self, id: &SnapshotId) -> Result<()> {
        self.layout.remove_committed(id)
    }

    fn parents(&self, id: &SnapshotId) -> Result<Vec<SnapshotId>> {
        self.layout.parents(id)
    }

    fn metadata_dir(&self, id: &SnapshotId) -> Result<PathBuf> {
        self.layout.metadata_dir(id)
    }

    fn diff(&self, id: &SnapshotId, out: &mut dyn Write) -> Result<DiffStats> {
        let upper = self.layout.committed_fs(id)?;
        let parents = self.layout.parents(id)?;
        match parents.as_slice() {
            [] => diff_to_tar(
                DiffSource::Trees {
                    lower: None,
                    upper: &upper,
                },
                out,
            ),
            [only] => {
                let lower = self.layout.committed_fs(only)?;
                diff_to_tar(
                    DiffSource::Trees {
                        lower: Some(&lower),
                        upper: &upper,
                    },
                    out,
                )
            }
            _ => {
                let scratch = tempfile::Builder::new()
                    .prefix("diff-")
                    .tempdir_in(self.layout.root())
                    .map_err(Error::io("create scratch directory in", self.layout.root()))?;
                let lower = scratch.path().join("lower");
                self.stack(&parents, &lower)?;
                diff_to_tar(
                    DiffSource::Trees {
                        lower: Some(&lower),
                        upper: &upper,
                    },
                    out,
                )
            }
        }
    }
}

/// Copies the tree `src` onto `dst` (created if missing), keeping owners (when root),
/// modes, times, xattrs, hardlinks, symlinks (never followed) and devices. Entries already
/// in `dst` are replaced, directories merged.
pub fn copy_tree(src: &Path, dst: &Path) -> Result<()> {
    let chown = running_as_root();
    let mut links: HashMap<(u64, u64), PathBuf> = HashMap::new();
    let mut dirs: Vec<(PathBuf, FileMeta)> = Vec::new();
    let walk = walkdir::WalkDir::new(src)
        .follow_links(false)
        .sort_by(|a, b| a.file_name().cmp(b.file_name()));
    for entry in walk {
        let entry = entry.map_err(|e| {
            let path = e.path().unwrap_or(src).to_path_buf();
            Error::io("walk", path)(e.into())
        })?;
        let from = entry.path();
        let rel = from.strip_prefix(src).unwrap_or(Path::new(""));
        let to = dst.join(rel);
        let meta = std::fs::symlink_metadata(from).map_err(Error::io("read metadata of", from))?;
        let file_meta = FileMeta {
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
            mtime_sec: meta.mtime(),
            mtime_nsec: u32::try_from(meta.mtime_nsec()).unwrap_or(0),
            xattrs: read_xattrs(from).map_err(Error::io("read xattrs of", from))?,
        };
        let file_type = meta.file_type();
        let existing = std::fs::symlink_metadata(&to).ok();
        if file_type.is_dir() {
            match existing {
                Some(m) if m.is_dir() => {}
                Some(_) => {
                    std::fs::remove_file(&to).map_err(Error::io("replace", &to))?;
                    std::fs::create_dir(&to).map_err(Error::io("create directory", &to))?;
                }
                None => std::fs::create_dir(&to).map_err(Error::io("create directory", &to))?,
            }
            dirs.push((to, file_meta));
            continue;
        }
        match existing {
            Some(m) if m.is_dir() => remove_tree(&to)?,
            Some(_) => std::fs::remove_file(&to).map_err(Error::io("replace", &to))?,
            None => {}
        }
        let key = (meta.dev(), meta.ino());
        if meta.nlink() > 1 {
            if let Some(first) = links.get(&key) {
                std::fs::hard_link(first, &to).map_err(Error::io("create hardlink", &to))?;
                continue;
            }
            links.insert(key, to.clone());
        }
        if file_type.is_file() {
            let mut input = std::fs::File::open(from).map_err(Error::io("open", from))?;
            let mut output = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
                .open(&to)
                .map_err(Error::io("create", &to))?;
            std::io::copy(&mut input, &mut output).map_err(Error::io("copy to", &to))?;
        } else if file_type.is_symlink() {
            let target = std::fs::read_link(from).map_err(Error::io("read symlink", from))?;
            std::os::unix::fs::symlink(&target, &to).map_err(Error::io("create symlink", &to))?;
        } else if file_type.is_char_device() || file_type.is_block_device() || file_type.is_fifo() {
            use rustix::fs::{mknodat, FileType, Mode, CWD};
            let kind = if file_type.is_char_device() {
                FileType::CharacterDevice
            } else if file_type.is_block_device() {
                FileType::BlockDevice
            } else {
                FileType::Fifo
            };
            mknodat(
                CWD,
                &to,
                kind,
                Mode::from_raw_mode(file_meta.mode & 0o777),
                meta.rdev(),
            )
            .map_err(|e| Error::io("create device node", &to)(e.into()))?;
        } else {
            // Sockets mean nothing in a copy of a tree.
            continue;
        }
        apply_meta(&to, file_type.is_symlink(), &file_meta, chown, &mut |_| {})
            .map_err(|(action, source)| Error::io(action, &to)(source))?;
    }
    for (dir, meta) in dirs.iter().rev() {
        apply_meta(dir, false, meta, chown, &mut |_| {})
            .map_err(|(action, source)| Error::io(action, dir)(source))?;
    }
    Ok(())
}
