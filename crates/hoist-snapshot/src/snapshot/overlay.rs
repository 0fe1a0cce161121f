//! [`OverlaySnapshotter`]: each committed snapshot keeps only its own change (an overlay
//! upper directory); a prepared snapshot mounts its parents' chains as `lowerdir`.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::layout::{ActiveMeta, Layout};
use super::{Mount, Mounter, OverlayMount, SnapshotId, Snapshotter};
use crate::diff::{diff_to_tar, DiffSource, DiffStats};
use crate::error::{Error, Result};

/// Snapshots as overlayfs layers. Mounts go through a [`Mounter`].
#[derive(Debug)]
pub struct OverlaySnapshotter {
    layout: Layout,
    mounter: Box<dyn Mounter>,
}

impl OverlaySnapshotter {
    /// Opens (creating) a snapshotter storing its snapshots under `root`.
    pub fn open(root: &Path, mounter: Box<dyn Mounter>) -> Result<Self> {
        Ok(Self {
            layout: Layout::open(root)?,
            mounter,
        })
    }

    /// Whether an overlay with an upper dir under `root` mounts and works: mounts one over a
    /// lower file, writes through it, and checks the write landed in the upper dir. Leaves
    /// nothing behind.
    pub fn supported(root: &Path, mounter: &dyn Mounter) -> bool {
        let Ok(()) = std::fs::create_dir_all(root) else {
            return false;
        };
        let Ok(probe) = tempfile::Builder::new()
            .prefix("overlay-probe-")
            .tempdir_in(root)
        else {
            return false;
        };
        let dirs = ["lower", "upper", "work", "merged"].map(|d| probe.path().join(d));
        if dirs.iter().any(|d| std::fs::create_dir(d).is_err())
            || std::fs::write(dirs[0].join("f"), b"lower").is_err()
        {
            return false;
        }
        let overlay = OverlayMount {
            lower: vec![dirs[0].clone()],
            upper: Some(dirs[1].clone()),
            work: Some(dirs[2].clone()),
        };
        if mounter.mount_overlay(&overlay, &dirs[3]).is_err() {
            return false;
        }
        let works = std::fs::read(dirs[3].join("f")).is_ok_and(|b| b == b"lower")
            && std::fs::write(dirs[3].join("g"), b"upper").is_ok();
        let unmounted = mounter.unmount(&dirs[3]).is_ok();
        works && unmounted && dirs[1].join("g").is_file()
    }

    /// The lower directories for `parents` (bottom-most first), top-most first, each
    /// snapshot's own chain expanded and repeats dropped.
    fn lowers(&self, parents: &[SnapshotId]) -> Result<Vec<PathBuf>> {
        let mut out: Vec<PathBuf> = Vec::new();
        for parent in parents.iter().rev() {
            self.chain(parent, &mut out)?;
        }
        Ok(out)
    }

    fn chain(&self, id: &SnapshotId, out: &mut Vec<PathBuf>) -> Result<()> {
        let fs = self.layout.committed_fs(id)?;
        if !out.contains(&fs) {
            out.push(fs);
        }
        for parent in self.layout.parents(id)?.iter().rev() {
            self.chain(parent, out)?;
        }
        Ok(())
    }

    /// Unmounts an active snapshot's overlay; one that is not mounted (`EINVAL`, say after
    /// a reboot) counts as unmounted.
    fn unmount_active(&self, meta: &ActiveMeta) -> Result<()> {
        let Some(target) = &meta.mounted else {
            return Ok(());
        };
        match self.mounter.unmount(target) {
            Err(Error::Mount { source, .. })
                if source.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) =>
            {
                Ok(())
            }
            other => other,
        }
    }
}

impl Snapshotter for OverlaySnapshotter {
    fn prepare(&self, key: &str, parents: &[SnapshotId]) -> Result<Mount> {
        let lower = self.lowers(parents)?;
        let dir = self.layout.begin_active(key, parents)?;
        let upper = dir.join("upper");
        std::fs::create_dir(&upper).map_err(Error::io("create directory", &upper))?;
        let mut meta = ActiveMeta {
            parents: parents.to_vec(),
            tree: Some(upper.clone()),
            mounted: None,
        };
        if lower.is_empty() {
            self.layout.write_active(key, &meta)?;
            return Ok(Mount::Dir(upper));
        }
        let work = dir.join("work");
        let merged = dir.join("merged");
        for d in [&work, &merged] {
            std::fs::create_dir(d).map_err(Error::io("create directory", d))?;
        }
        let overlay = OverlayMount {
            lower,
            upper: Some(upper),
            work: Some(work),
        };
        // Recorded before mounting so that `remove` can clean up whatever happens next.
        meta.mounted = Some(merged.clone());
        self.layout.write_active(key, &meta)?;
        if let Err(e) = self.mounter.mount_overlay(&overlay, &merged) {
            // Nothing is mounted: drop the half-made snapshot so the key can be reused.
            let _ = self.layout.end_active(key, &dir);
            return Err(e);
        }
        Ok(Mount::Overlay {
            target: merged,
            overlay,
        })
    }

    fn mount_view(&self, key: &str, parents: &[SnapshotId]) -> Result<Mount> {
        let lower = self.lowers(parents)?;
        let dir = self.layout.begin_active(key, parents)?;
        let mut meta = ActiveMeta {
            parents: parents.to_vec(),
            tree: None,
            mounted: None,
        };
        match lower.as_slice() {
            [] => {
                let empty = dir.join("empty");
                std::fs::create_dir(&empty).map_err(Error::io("create directory", &empty))?;
                self.layout.write_active(key, &meta)?;
                Ok(Mount::Dir(empty))
            }
            [only] => {
                self.layout.write_active(key, &meta)?;
                Ok(Mount::Dir(only.clone()))
            }
            _ => {
                let merged = dir.join("merged");
                std::fs::create_dir(&merged).map_err(Error::io("create directory", &merged))?;
                meta.mounted = Some(merged.clone());
                self.layout.write_active(key, &meta)?;
                let overlay = OverlayMount {
                    lower,
                    upper: None,
                    work: None,
                };
                if let Err(e) = self.mounter.mount_overlay(&overlay, &merged) {
                    let _ = self.layout.end_active(key, &dir);
                    return Err(e);
                }
                Ok(Mount::Overlay {
                    target: merged,
                    overlay,
                })
            }
        }
    }

    fn commit(&self, key: &str) -> Result<SnapshotId> {
        let (dir, meta) = self.layout.read_active(key)?;
        let Some(tree) = meta.tree.clone() else {
            return Err(Error::Unsupported(format!(
                "snapshot {key} is a view and cannot be committed"
            )));
        };
        self.unmount_active(&meta)?;
        let id = self.layout.commit_tree(&tree, meta.parents)?;
        self.layout.end_active(key, &dir)?;
        Ok(id)
    }

    fn remove(&self, key: &str) -> Result<()> {
        let (dir, meta) = self.layout.read_active(key)?;
        self.unmount_active(&meta)?;
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
        let lowers = self.lowers(&self.layout.parents(id)?)?;
        diff_to_tar(
            DiffSource::OverlayUpper {
                upper: &upper,
                lowers: &lowers,
            },
            out,
        )
    }
}

impl OverlaySnapshotter {
    /// The directory the snapshotter keeps its state in.
    pub fn root(&self) -> &Path {
        self.layout.root()
    }

    pub(super) fn layout(&self) -> &Layout {
        &self.layout
    }
}
