//! Changes from an overlayfs upper directory.
//!
//! Every entry in the upper directory is a change, except a directory that is only there
//! because overlayfs copied it up: one that is not opaque, has the metadata (mode, owner,
//! mtime, xattrs other than overlayfs's own) of the directory the lower layers show at its
//! path, and holds no change. A RUN that made and removed a mount stub (`/etc/hosts`)
//! leaves `etc/` copied up like that, and it is no part of the layer.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::{read_sorted, Change};
use crate::error::{Error, Result};
use crate::meta::read_xattrs;

/// The xattrs overlayfs marks an opaque directory with (`user.` when mounted with
/// `userxattr`, as unprivileged overlays are).
const OPAQUE_XATTRS: [&str; 2] = ["trusted.overlay.opaque", "user.overlay.opaque"];

/// The changes in `upper` over `lowers` (the lower directories, top-most first; none when
/// the snapshot has no parent).
pub(super) fn changes(upper: &Path, lowers: &[PathBuf]) -> Result<Vec<Change>> {
    let mut out = Vec::new();
    walk(upper, Path::new(""), lowers, &mut out)?;
    Ok(out)
}

fn walk(dir: &Path, rel: &Path, lowers: &[PathBuf], out: &mut Vec<Change>) -> Result<()> {
    for name in read_sorted(dir)? {
        let disk = dir.join(&name);
        let rel = rel.join(&name);
        let meta =
            std::fs::symlink_metadata(&disk).map_err(Error::io("read metadata of", &disk))?;
        let file_type = meta.file_type();
        if is_whiteout(&meta) {
            out.push(Change::Whiteout { rel });
        } else if file_type.is_dir() {
            let opaque = is_opaque(&disk)?;
            let mut inside = Vec::new();
            walk(&disk, &rel, lowers, &mut inside)?;
            if opaque || !inside.is_empty() || !same_as_lower(&disk, &meta, &rel, lowers)? {
                out.push(Change::Add {
                    rel: rel.clone(),
                    disk: disk.clone(),
                });
                if opaque {
                    out.push(Change::Opaque { rel });
                }
                out.append(&mut inside);
            }
        } else {
            out.push(Change::Add { rel, disk });
        }
    }
    Ok(())
}

fn is_whiteout(meta: &std::fs::Metadata) -> bool {
    meta.file_type().is_char_device() && meta.rdev() == 0
}

/// Whether the upper directory `disk` (at `rel`) has the metadata of the directory the
/// lowers show at `rel`.
fn same_as_lower(
    disk: &Path,
    meta: &std::fs::Metadata,
    rel: &Path,
    lowers: &[PathBuf],
) -> Result<bool> {
    let Some((lower, lower_meta)) = lower_entry(lowers, rel)? else {
        return Ok(false);
    };
    if !lower_meta.is_dir()
        || lower_meta.mode() != meta.mode()
        || lower_meta.uid() != meta.uid()
        || lower_meta.gid() != meta.gid()
        || lower_meta.mtime() != meta.mtime()
        || lower_meta.mtime_nsec() != meta.mtime_nsec()
    {
        return Ok(false);
    }
    let own_xattrs = |path: &Path| -> Result<Vec<_>> {
        let mut xattrs = read_xattrs(path).map_err(Error::io("read xattrs of", path))?;
        xattrs.retain(|(name, _)| {
            !super::tar_writer::is_overlay_xattr(std::os::unix::ffi::OsStrExt::as_bytes(
                name.as_os_str(),
            ))
        });
        Ok(xattrs)
    };
    Ok(own_xattrs(&lower)? == own_xattrs(disk)?)
}

/// The entry the lower layers show at `rel`: the one in the top-most layer that has it,
/// unless a layer above hides it (a whiteout or a non-directory on its path, or an opaque
/// directory on its path in a layer that lacks it).
fn lower_entry(lowers: &[PathBuf], rel: &Path) -> Result<Option<(PathBuf, std::fs::Metadata)>> {
    'layers: for lower in lowers {
        let mut last_layer = false;
        let mut path = lower.clone();
        if let Some(parent) = rel.parent() {
            for component in parent.components() {
                path.push(component);
                let Ok(meta) = std::fs::symlink_metadata(&path) else {
                    // Not in this layer: the next one down may have it.
                    continue 'layers;
                };
                if !meta.is_dir() {
                    // A whiteout or a file hides the path in every layer below.
                    return Ok(None);
                }
                if is_opaque(&path)? {
                    last_layer = true;
                }
            }
        }
        let path = lower.join(rel);
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if is_whiteout(&meta) => return Ok(None),
            Ok(meta) => return Ok(Some((path, meta))),
            Err(_) if last_layer => return Ok(None),
            Err(_) => {}
        }
    }
    Ok(None)
}

fn is_opaque(dir: &Path) -> Result<bool> {
    for name in OPAQUE_XATTRS {
        match xattr::get(dir, name) {
            Ok(Some(value)) if value == b"y" => return Ok(true),
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NOTSUP.raw_os_error()) => {}
            Err(e) => return Err(Error::io("read opaque xattr of", dir)(e)),
        }
    }
    Ok(false)
}
