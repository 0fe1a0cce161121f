//! Changes from an overlayfs upper directory.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use super::{read_sorted, Change};
use crate::error::{Error, Result};

/// The xattrs overlayfs marks an opaque directory with (`user.` when mounted with
/// `userxattr`, as unprivileged overlays are).
const OPAQUE_XATTRS: [&str; 2] = ["trusted.overlay.opaque", "user.overlay.opaque"];

pub(super) fn changes(upper: &Path) -> Result<Vec<Change>> {
    let mut out = Vec::new();
    walk(upper, Path::new(""), &mut out)?;
    Ok(out)
}

fn walk(dir: &Path, rel: &Path, out: &mut Vec<Change>) -> Result<()> {
    for name in read_sorted(dir)? {
        let disk = dir.join(&name);
        let rel = rel.join(&name);
        let meta =
            std::fs::symlink_metadata(&disk).map_err(Error::io("read metadata of", &disk))?;
        let file_type = meta.file_type();
        if file_type.is_char_device() && meta.rdev() == 0 {
            out.push(Change::Whiteout { rel });
        } else if file_type.is_dir() {
            out.push(Change::Add {
                rel: rel.clone(),
                disk: disk.clone(),
            });
            if is_opaque(&disk)? {
                out.push(Change::Opaque { rel: rel.clone() });
            }
            walk(&disk, &rel, out)?;
        } else {
            out.push(Change::Add { rel, disk });
        }
    }
    Ok(())
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
