//! [`ActiveSnapshot`]: a view (or a writable snapshot that will never be committed) that is
//! removed when dropped, so an error between making it and using it leaks nothing.

use std::path::Path;

use super::{Mount, SnapshotId, Snapshotter};
use crate::error::Result;

/// An active snapshot owned by the caller for a while: a read-only view
/// ([`Snapshotter::view`], [`ActiveSnapshot::view`]) or a throwaway writable snapshot
/// ([`ActiveSnapshot::prepare`]). Dropping it removes it (unmounting it), ignoring errors;
/// [`ActiveSnapshot::release`] removes it and reports them.
#[derive(Debug)]
#[must_use = "an active snapshot is removed as soon as it is dropped"]
pub struct ActiveSnapshot<'a, S: Snapshotter + ?Sized> {
    snapshotter: &'a S,
    key: String,
    mount: Mount,
    /// Set once removed, so drop does nothing.
    released: bool,
}

impl<'a, S: Snapshotter + ?Sized> ActiveSnapshot<'a, S> {
    /// A read-only view `key` of `parents` stacked (see [`Snapshotter::mount_view`]).
    pub fn view(snapshotter: &'a S, key: &str, parents: &[SnapshotId]) -> Result<Self> {
        let mount = snapshotter.mount_view(key, parents)?;
        Ok(Self::owning(snapshotter, key, mount))
    }

    /// A writable snapshot `key` on `parents` whose changes are discarded when it goes.
    pub fn prepare(snapshotter: &'a S, key: &str, parents: &[SnapshotId]) -> Result<Self> {
        let mount = snapshotter.prepare(key, parents)?;
        Ok(Self::owning(snapshotter, key, mount))
    }

    fn owning(snapshotter: &'a S, key: &str, mount: Mount) -> Self {
        ActiveSnapshot {
            snapshotter,
            key: key.to_owned(),
            mount,
            released: false,
        }
    }

    /// Its key in the snapshotter.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Where it is mounted.
    pub fn mount(&self) -> &Mount {
        &self.mount
    }

    /// The directory holding its tree.
    pub fn path(&self) -> &Path {
        self.mount.path()
    }

    /// Removes it now, reporting a failure (an unmount refused as busy, say).
    pub fn release(mut self) -> Result<()> {
        self.released = true;
        self.snapshotter.remove(&self.key)
    }
}

impl<S: Snapshotter + ?Sized> Drop for ActiveSnapshot<'_, S> {
    fn drop(&mut self) {
        if !self.released {
            let _ = self.snapshotter.remove(&self.key);
        }
    }
}
