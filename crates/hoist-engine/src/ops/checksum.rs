//! Content checksums: what a step reads from an input, digested, so that its cache key
//! changes only when those files do (BuildKit's content-based cache map selectors).
//!
//! An entry contributes its relative path, type, mode, size and content (a file), or link
//! target (a symlink); owners too when asked (a `COPY --from` keeps them). Times never do.

use std::io::Read as _;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::Path;

use hoist_snapshot::Snapshotter as _;
use sha2::{Digest as _, Sha256};

use super::{file, scoped_path};
use crate::error::{Error, Result};
use crate::worker::{Ref, Worker};

/// Adds one entry to `hash`.
pub(super) fn hash_entry(
    hash: &mut Sha256,
    rel: &str,
    path: &Path,
    metadata: &std::fs::Metadata,
    owners: bool,
) -> Result<()> {
    let kind = metadata.file_type();
    hash.update(rel.as_bytes());
    hash.update(format!("\0{:o}\0", metadata.permissions().mode()).as_bytes());
    if owners {
        hash.update(format!("{}:{}\0", metadata.uid(), metadata.gid()).as_bytes());
    }
    if kind.is_symlink() {
        let target = std::fs::read_link(path).map_err(Error::io("read link", path))?;
        hash.update(b"link\0");
        hash.update(target.to_string_lossy().as_bytes());
    } else if kind.is_file() {
        hash.update(format!("file\0{}\0", metadata.len()).as_bytes());
        let mut file = std::fs::File::open(path).map_err(Error::io("open", path))?;
        let mut content = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = file.read(&mut buf).map_err(Error::io("read", path))?;
            if n == 0 {
                break;
            }
            content.update(&buf[..n]);
        }
        hash.update(content.finalize());
    } else {
        hash.update(b"other");
    }
    hash.update(b"\n");
    Ok(())
}

/// What a copy reads from one input: its source paths.
#[derive(Debug, Clone)]
pub(super) struct Selection {
    /// `(src_path, wildcards allowed, follow symlinks)` per copy action.
    pub(super) paths: Vec<(String, bool, bool)>,
}

/// The digest of what `selection` picks out of `input`'s filesystem.
pub(super) fn of_selection(
    worker: &Worker,
    input: &Ref,
    selection: &Selection,
) -> Result<hoist_solver::Digest> {
    let snapshotter = worker.snapshotter();
    let key = worker.unique_key("checksum");
    let view = snapshotter.view(&key, std::slice::from_ref(&input.snapshot))?;
    let digest = digest_paths(view.path(), selection);
    let _ = snapshotter.remove(&key);
    digest
}

fn digest_paths(root: &Path, selection: &Selection) -> Result<hoist_solver::Digest> {
    let mut hash = Sha256::new();
    for (src, wildcard, follow) in &selection.paths {
        hash.update(format!("source {src}\n").as_bytes());
        let matches = if *wildcard && file::has_wildcard(src) {
            file::expand(root, src)?
        } else {
            vec![scoped_path::resolve(root, src, *follow)?]
        };
        for matched in matches {
            if std::fs::symlink_metadata(&matched).is_err() {
                hash.update(b"missing\n");
                continue;
            }
            for entry in walkdir::WalkDir::new(&matched).sort_by_file_name() {
                let entry = entry.map_err(|e| Error::Io {
                    action: "walk",
                    path: matched.clone(),
                    source: e.into(),
                })?;
                let rel = entry
                    .path()
                    .strip_prefix(root)
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let metadata = entry
                    .path()
                    .symlink_metadata()
                    .map_err(Error::io("stat", entry.path()))?;
                hash_entry(&mut hash, &rel, entry.path(), &metadata, true)?;
            }
        }
    }
    Ok(hoist_solver::Digest::of(&hash.finalize()))
}
