//! Changes found by comparing two trees (the copy snapshotter's way).
//!
//! A directory is listed when its own metadata changed or anything under it did, so every
//! changed entry comes with its parents. When a directory kept none of its old entries, it
//! is written as opaque (one marker) rather than one whiteout per old entry.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs::Metadata;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::{read_sorted, Change};
use crate::error::{Error, Result};
use crate::meta::read_xattrs;

pub(super) fn changes(lower: Option<&Path>, upper: &Path) -> Result<Vec<Change>> {
    let mut out = Vec::new();
    match lower {
        Some(lower) => {
            compare_dir(lower, upper, Path::new(""), &mut out)?;
        }
        None => add_children(upper, Path::new(""), &mut out)?,
    }
    Ok(out)
}

/// Lists the changes under `rel` (the directory itself excluded) and says whether the
/// directory must be written as opaque.
fn compare_dir(lower: &Path, upper: &Path, rel: &Path, out: &mut Vec<Change>) -> Result<bool> {
    let lower_names = read_sorted(lower)?;
    let upper_names = read_sorted(upper)?;
    let upper_set: BTreeSet<&[u8]> = upper_names.iter().map(|n| n.as_bytes()).collect();
    let opaque = !lower_names.is_empty()
        && lower_names
            .iter()
            .all(|n| !upper_set.contains(n.as_bytes()));
    if opaque {
        out.push(Change::Opaque {
            rel: rel.to_path_buf(),
        });
        add_children(upper, rel, out)?;
        return Ok(true);
    }
    let lower_set: BTreeSet<&[u8]> = lower_names.iter().map(|n| n.as_bytes()).collect();
    let mut all: Vec<&OsString> = lower_names.iter().chain(upper_names.iter()).collect();
    all.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    all.dedup();
    for name in all {
        let child_rel = rel.join(name);
        let in_lower = lower_set.contains(name.as_bytes());
        let in_upper = upper_set.contains(name.as_bytes());
        if !in_upper {
            out.push(Change::Whiteout { rel: child_rel });
            continue;
        }
        let upper_path = upper.join(name);
        if !in_lower {
            add_tree(&upper_path, &child_rel, out)?;
            continue;
        }
        let lower_path = lower.join(name);
        let lm = lstat(&lower_path)?;
        let um = lstat(&upper_path)?;
        if um.is_dir() && lm.is_dir() {
            let mut sub = Vec::new();
            let opaque = compare_dir(&lower_path, &upper_path, &child_rel, &mut sub)?;
            if opaque || !sub.is_empty() || meta_differs(&lower_path, &lm, &upper_path, &um)? {
                out.push(Change::Add {
                    rel: child_rel,
                    disk: upper_path,
                });
                out.append(&mut sub);
            }
        } else if um.is_dir() {
            add_tree(&upper_path, &child_rel, out)?;
        } else if lm.is_dir()
            || meta_differs(&lower_path, &lm, &upper_path, &um)?
            || content_differs(&lower_path, &upper_path, &um)?
        {
            out.push(Change::Add {
                rel: child_rel,
                disk: upper_path,
            });
        }
    }
    Ok(false)
}

fn add_tree(disk: &Path, rel: &Path, out: &mut Vec<Change>) -> Result<()> {
    let is_dir = lstat(disk)?.is_dir();
    out.push(Change::Add {
        rel: rel.to_path_buf(),
        disk: disk.to_path_buf(),
    });
    if is_dir {
        add_children(disk, rel, out)?;
    }
    Ok(())
}

fn add_children(dir: &Path, rel: &Path, out: &mut Vec<Change>) -> Result<()> {
    for name in read_sorted(dir)? {
        add_tree(&dir.join(&name), &rel.join(&name), out)?;
    }
    Ok(())
}

fn lstat(path: &Path) -> Result<Metadata> {
    std::fs::symlink_metadata(path).map_err(Error::io("read metadata of", path))
}

fn meta_differs(lower: &Path, lm: &Metadata, upper: &Path, um: &Metadata) -> Result<bool> {
    let kind = |m: &Metadata| m.mode() & 0o170000;
    if kind(lm) != kind(um)
        || lm.mode() != um.mode()
        || lm.uid() != um.uid()
        || lm.gid() != um.gid()
        || lm.mtime() != um.mtime()
        || lm.mtime_nsec() != um.mtime_nsec()
        || lm.rdev() != um.rdev()
        || (!lm.is_dir() && lm.size() != um.size())
    {
        return Ok(true);
    }
    if lm.file_type().is_symlink() {
        let a = std::fs::read_link(lower).map_err(Error::io("read symlink", lower))?;
        let b = std::fs::read_link(upper).map_err(Error::io("read symlink", upper))?;
        if a != b {
            return Ok(true);
        }
    }
    let xa = read_xattrs(lower).map_err(Error::io("read xattrs of", lower))?;
    let xb = read_xattrs(upper).map_err(Error::io("read xattrs of", upper))?;
    Ok(xa != xb)
}

/// Compares the bytes of two regular files of equal size.
fn content_differs(lower: &Path, upper: &Path, um: &Metadata) -> Result<bool> {
    if !um.is_file() {
        return Ok(false);
    }
    let mut a = std::fs::File::open(lower).map_err(Error::io("open", lower))?;
    let mut b = std::fs::File::open(upper).map_err(Error::io("open", upper))?;
    let mut buf_a = vec![0u8; 64 * 1024];
    let mut buf_b = vec![0u8; 64 * 1024];
    loop {
        let n = read_full(&mut a, &mut buf_a).map_err(Error::io("read", lower))?;
        let m = read_full(&mut b, &mut buf_b).map_err(Error::io("read", upper))?;
        if n != m || buf_a[..n] != buf_b[..m] {
            return Ok(true);
        }
        if n == 0 {
            return Ok(false);
        }
    }
}

fn read_full(file: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}
