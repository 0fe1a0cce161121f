//! [`diff_to_tar`]: the change between two filesystem trees as a deterministic layer tar.
//!
//! Two ways to find the change ([`DiffSource`]):
//! - from an overlayfs upper directory: every entry in it is a change (but a directory
//!   overlayfs only copied up, unchanged); a 0/0 character device is a whiteout, a
//!   directory with the `trusted.overlay.opaque` (or `user.overlay.opaque`) xattr set to
//!   `y` is opaque;
//! - by comparing a lower tree (or none) with an upper tree, entry by entry: metadata
//!   (type, mode, owner, size, mtime, device number, symlink target, xattrs) and, for
//!   regular files whose metadata match, the bytes.
//!
//! Either way the changes are listed depth-first with each directory's names in byte order,
//! then written by [`tar_writer`] with fixed headers, so the same trees give the same tar.

mod compare;
mod overlay;
pub(crate) mod tar_writer;

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::compression::{Layer, LayerOptions, LayerWriter};
use crate::error::{Error, Result};

/// Where a layer's change comes from.
#[derive(Debug, Clone, Copy)]
pub enum DiffSource<'a> {
    /// An overlayfs upper directory (whiteouts as 0/0 char devices, opaque xattrs).
    OverlayUpper {
        /// The upper directory.
        upper: &'a Path,
        /// The lower directories it was mounted on, top-most first: a directory overlayfs
        /// only copied up (its metadata as the lowers show it, nothing changed inside) is
        /// left out. Empty: everything in `upper` is a change.
        lowers: &'a [PathBuf],
    },
    /// Two full trees compared; `lower: None` means everything in `upper` is new.
    Trees {
        /// The tree before the change.
        lower: Option<&'a Path>,
        /// The tree after it.
        upper: &'a Path,
    },
}

/// One change, in tar order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    /// The entry at `rel` in the upper tree is added or replaced.
    Add { rel: PathBuf, disk: PathBuf },
    /// The entry at `rel` was deleted.
    Whiteout { rel: PathBuf },
    /// The directory at `rel` hides everything in the layers below.
    Opaque { rel: PathBuf },
}

/// What [`diff_to_tar`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiffStats {
    /// Files, directories, links and devices added or replaced.
    pub added: u64,
    /// Whiteouts (opaque markers included).
    pub deleted: u64,
}

/// Writes the change described by `source` to `out` as an uncompressed layer tar (wrap
/// `out` in a [`crate::LayerWriter`] to compress and hash it in the same pass).
pub fn diff_to_tar(source: DiffSource<'_>, out: impl Write) -> Result<DiffStats> {
    let changes = match source {
        DiffSource::OverlayUpper { upper, lowers } => overlay::changes(upper, lowers)?,
        DiffSource::Trees { lower, upper } => compare::changes(lower, upper)?,
    };
    tar_writer::write_changes(&changes, out)
}

/// Writes the change described by `source` as a compressed layer to `out`, hashing both
/// streams on the way, and returns `out` with the [`Layer`] and what was written.
pub fn write_layer<W: Write>(
    source: DiffSource<'_>,
    out: W,
    options: LayerOptions,
) -> Result<(W, Layer, DiffStats)> {
    let mut writer = LayerWriter::new(out, options)?;
    let stats = diff_to_tar(source, &mut writer)?;
    let (out, layer) = writer.finish()?;
    Ok((out, layer, stats))
}

/// The names in `dir`, sorted by their bytes.
pub(crate) fn read_sorted(dir: &Path) -> Result<Vec<OsString>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(Error::io("read directory", dir))? {
        names.push(entry.map_err(Error::io("read directory", dir))?.file_name());
    }
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    Ok(names)
}
