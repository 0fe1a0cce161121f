//! [`Snapshotter`]: writable snapshots prepared on top of committed ones, as BuildKit and
//! containerd use them: `prepare` a key on parents, write into its directory, `commit` it
//! into an immutable [`SnapshotId`], `diff` a committed snapshot into a layer tar.
//!
//! Two backends behind the closed enum [`AnySnapshotter`]: [`OverlaySnapshotter`] (each
//! committed snapshot stores only its own change; a prepared one is an overlay of the
//! parents' chains) and [`CopySnapshotter`] (each snapshot is a full tree; prepare copies).
//! [`AnySnapshotter::probe`] picks overlay when a test mount works, copy otherwise.
//!
//! Views and throwaway writable snapshots are held as [`ActiveSnapshot`]s
//! ([`Snapshotter::view`]), removed when dropped.
//!
//! On disk, under the snapshotter's root:
//! ```text
//! committed/<id>/fs          the snapshot's tree (overlay: its upper dir only)
//! committed/<id>/meta.json   {"parents": [...]} bottom-most first
//! active/<key>/...           prepared snapshots and views
//! ```

mod active;
mod copy;
mod layout;
mod mounter;
mod overlay;

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use active::ActiveSnapshot;
pub use copy::{copy_tree, CopySnapshotter};
pub use mounter::{KernelMounter, Mounter, OverlayMount};
pub use overlay::OverlaySnapshotter;

use crate::apply::{apply_layer, ApplyOptions, ApplyReport};
use crate::diff::DiffStats;
use crate::error::Result;
use crate::meta::running_as_root;

/// The id of a committed (immutable) snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SnapshotId(String);

impl SnapshotId {
    /// Parses an id as [`SnapshotId::as_str`] wrote it.
    pub fn parse(s: &str) -> Result<Self> {
        layout::check_name(s)?;
        Ok(Self(s.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for SnapshotId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a prepared snapshot or view can be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mount {
    /// A plain directory (no mount needed).
    Dir(PathBuf),
    /// An overlay already mounted at `target`.
    Overlay {
        /// The mount point.
        target: PathBuf,
        /// What is mounted there.
        overlay: OverlayMount,
    },
}

impl Mount {
    /// The directory to read or write the snapshot's tree in.
    pub fn path(&self) -> &Path {
        match self {
            Self::Dir(path) => path,
            Self::Overlay { target, .. } => target,
        }
    }
}

/// A snapshot backend.
pub trait Snapshotter {
    /// Makes a writable snapshot `key` whose initial tree is `parents` stacked (the first at
    /// the bottom, later ones on top).
    fn prepare(&self, key: &str, parents: &[SnapshotId]) -> Result<Mount>;
    /// Makes a read-only view `key` of `parents` stacked; the caller must not write to it,
    /// and must [`Snapshotter::remove`] it. Backends implement this; callers use
    /// [`Snapshotter::view`] (or [`ActiveSnapshot::view`] on a `dyn Snapshotter`).
    fn mount_view(&self, key: &str, parents: &[SnapshotId]) -> Result<Mount>;
    /// A read-only view `key` of `parents` stacked, removed when the guard is dropped or
    /// [released](ActiveSnapshot::release); the caller must not write to it.
    fn view(&self, key: &str, parents: &[SnapshotId]) -> Result<ActiveSnapshot<'_, Self>>
    where
        Self: Sized,
    {
        ActiveSnapshot::view(self, key, parents)
    }
    /// Turns the prepared snapshot `key` into an immutable snapshot (unmounting it).
    fn commit(&self, key: &str) -> Result<SnapshotId>;
    /// Removes the prepared snapshot or view `key` (unmounting it), discarding its changes.
    fn remove(&self, key: &str) -> Result<()>;
    /// Removes the committed snapshot `id`; fails while another snapshot has it as a parent.
    fn remove_committed(&self, id: &SnapshotId) -> Result<()>;
    /// The parents `id` was prepared on.
    fn parents(&self, id: &SnapshotId) -> Result<Vec<SnapshotId>>;
    /// Writes what `id` changed relative to its parents as an uncompressed layer tar.
    fn diff(&self, id: &SnapshotId, out: &mut dyn Write) -> Result<DiffStats>;
    /// A directory (created on demand by the caller) for the caller's own facts about the
    /// committed snapshot `id`, such as content checksums; it goes when `id` is removed, so
    /// nothing in it outlives the snapshot or is seen by a later snapshot with the same id.
    fn metadata_dir(&self, id: &SnapshotId) -> Result<PathBuf>;
}

/// What [`AnySnapshotter::remove_orphans`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrphanReport {
    /// The keys of the active snapshots removed.
    pub removed: Vec<String>,
    /// Those that could not be removed, with why; a later sweep retries them.
    pub failed: Vec<(String, String)>,
}

/// The snapshot backends hoist has.
#[derive(Debug)]
pub enum AnySnapshotter {
    /// overlayfs.
    Overlay(OverlaySnapshotter),
    /// Full copies.
    Copy(CopySnapshotter),
}

impl AnySnapshotter {
    /// Opens a snapshotter at `root`, overlay when [`OverlaySnapshotter::supported`] says a
    /// test mount under `root` works (root only), copy otherwise. The answer is kept for
    /// the process's life: a daemon opening its state for every build mounts once (the
    /// test mount's unmount syncs the file system, which costs as much as it has to write).
    pub fn probe(root: &Path) -> Result<Self> {
        static PROBED: std::sync::Mutex<Vec<(PathBuf, bool)>> = std::sync::Mutex::new(Vec::new());
        let known = {
            let probed = PROBED.lock().unwrap_or_else(|e| e.into_inner());
            probed
                .iter()
                .find(|(dir, _)| dir == root)
                .map(|(_, overlay)| *overlay)
        };
        let overlay = match known {
            Some(overlay) => overlay,
            None => {
                let overlay =
                    running_as_root() && OverlaySnapshotter::supported(root, &KernelMounter);
                let mut probed = PROBED.lock().unwrap_or_else(|e| e.into_inner());
                probed.push((root.to_owned(), overlay));
                overlay
            }
        };
        if overlay {
            Ok(Self::Overlay(OverlaySnapshotter::open(
                root,
                Box::new(KernelMounter),
            )?))
        } else {
            Ok(Self::Copy(CopySnapshotter::open(root)?))
        }
    }

    /// "overlay" or "copy".
    pub fn name(&self) -> &'static str {
        match self {
            Self::Overlay(_) => "overlay",
            Self::Copy(_) => "copy",
        }
    }

    /// Bytes on disk of the committed snapshot `id`'s own tree, without its parents
    /// (overlay: its upper dir; copy: its full tree, which is what it stores).
    pub fn usage(&self, id: &SnapshotId) -> Result<u64> {
        self.layout().usage(id)
    }

    /// Every committed snapshot, in no particular order.
    pub fn committed(&self) -> Result<Vec<SnapshotId>> {
        self.layout().committed_ids()
    }

    /// The keys of every active (prepared or view) snapshot, for [`Snapshotter::remove`].
    pub fn active(&self) -> Result<Vec<String>> {
        self.layout().active_keys()
    }

    /// Unmounts and removes every active snapshot no live process holds the lease of: what
    /// a killed process left (its overlay still mounted on the host). Safe next to running
    /// builds, whose active snapshots are leased.
    pub fn remove_orphans(&self) -> Result<OrphanReport> {
        let mut report = OrphanReport::default();
        for key in self.active()? {
            let Some(_lease) = self.layout().take_orphan(&key)? else {
                continue;
            };
            let removed = match self.remove(&key) {
                // Killed before its metadata was written: nothing was mounted yet.
                Err(crate::Error::NotFound { .. }) => {
                    let dir = self.layout().root().join("active").join(&key);
                    self.layout().end_active(&key, &dir)
                }
                other => other,
            };
            match removed {
                Ok(()) => report.removed.push(key),
                Err(e) => report.failed.push((key, e.to_string())),
            }
        }
        Ok(report)
    }

    /// Bytes on disk of the active snapshots' own trees (a prepared overlay's upper dir, a
    /// copy's tree; views of committed trees count nothing).
    pub fn active_usage(&self) -> Result<u64> {
        let mut total = 0;
        for key in self.active()? {
            if let Ok((_, meta)) = self.layout().read_active(&key) {
                total += meta.tree.map_or(0, |tree| layout::tree_usage(&tree));
            }
        }
        Ok(total)
    }

    fn layout(&self) -> &layout::Layout {
        match self {
            Self::Overlay(s) => s.layout(),
            Self::Copy(s) => s.layout(),
        }
    }

    fn inner(&self) -> &dyn Snapshotter {
        match self {
            Self::Overlay(s) => s,
            Self::Copy(s) => s,
        }
    }
}

impl Snapshotter for AnySnapshotter {
    fn prepare(&self, key: &str, parents: &[SnapshotId]) -> Result<Mount> {
        self.inner().prepare(key, parents)
    }
    fn mount_view(&self, key: &str, parents: &[SnapshotId]) -> Result<Mount> {
        self.inner().mount_view(key, parents)
    }
    fn commit(&self, key: &str) -> Result<SnapshotId> {
        self.inner().commit(key)
    }
    fn remove(&self, key: &str) -> Result<()> {
        self.inner().remove(key)
    }
    fn remove_committed(&self, id: &SnapshotId) -> Result<()> {
        self.inner().remove_committed(id)
    }
    fn parents(&self, id: &SnapshotId) -> Result<Vec<SnapshotId>> {
        self.inner().parents(id)
    }
    fn diff(&self, id: &SnapshotId, out: &mut dyn Write) -> Result<DiffStats> {
        self.inner().diff(id, out)
    }
    fn metadata_dir(&self, id: &SnapshotId) -> Result<PathBuf> {
        self.inner().metadata_dir(id)
    }
}

/// Unpacks a layer (plain, gzip or zstd tar) into a new snapshot `key` on `parents` and
/// commits it: the "tar → snapshot" step of pulling an image. On failure the half-written
/// snapshot is removed.
pub fn apply_layer_to_snapshot(
    snapshotter: &dyn Snapshotter,
    key: &str,
    parents: &[SnapshotId],
    layer: impl std::io::Read,
    options: &ApplyOptions,
) -> Result<(SnapshotId, ApplyReport)> {
    let mount = snapshotter.prepare(key, parents)?;
    let applied = apply_layer(layer, mount.path(), options);
    match applied {
        Ok(report) => Ok((snapshotter.commit(key)?, report)),
        Err(e) => {
            // The apply error is the one worth reporting; a failed cleanup leaves an
            // active snapshot that `remove` can retry.
            let _ = snapshotter.remove(key);
            Err(e)
        }
    }
}
