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

use super::copy;
use crate::error::{Error, Result};
use crate::worker::{FileDigests, Ref, Worker};

/// Adds one entry to `hash`, taking a regular file's content digest from `content`.
pub(super) fn hash_entry_with(
    hash: &mut impl sha2::digest::Update,
    rel: &str,
    path: &Path,
    metadata: &std::fs::Metadata,
    owners: bool,
    content: &mut dyn FnMut(&Path) -> Result<[u8; 32]>,
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
        hash.update(&content(path)?);
    } else {
        hash.update(b"other");
    }
    hash.update(b"\n");
    Ok(())
}

/// The sha256 of a file's content.
pub(super) fn file_digest(path: &Path) -> std::io::Result<[u8; 32]> {
    let mut file = std::fs::File::open(path)?;
    let mut content = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        content.update(&buf[..n]);
    }
    Ok(content.finalize().into())
}

/// What a file op's copies read from one input.
#[derive(Debug, Clone)]
pub(super) struct Selection {
    /// The copy actions reading that input.
    pub(super) copies: Vec<hoist_graph::Copy>,
}

/// The digest of what `selection` picks out of `input`'s filesystem.
///
/// A committed snapshot never changes, so the digest of a selection over it is computed once
/// and kept in the snapshot's metadata directory (as BuildKit keeps content hashes with each
/// ref; it goes with the snapshot): a rebuild whose context is unchanged gets the same local
/// snapshot back from the cache and reads none of its files again.
pub(super) fn of_selection(
    worker: &Worker,
    input: &Ref,
    selection: &Selection,
) -> Result<hoist_solver::Digest> {
    let memo = memo_path(worker, input, selection);
    if let Some(digest) = memo.as_deref().and_then(read_memo) {
        return Ok(digest);
    }
    let snapshot = input.snapshot()?;
    let view = worker.snapshotter().view(
        &worker.unique_key("checksum"),
        std::slice::from_ref(snapshot),
    )?;
    let known = worker.file_digests(snapshot);
    let digest = digest_copies(view.path(), selection, known.as_deref());
    drop(view);
    if let (Ok(digest), Some(memo)) = (&digest, &memo) {
        // Only a speed-up: a memo that cannot be written is computed again next time.
        let _ = hoist_content::write_atomic(memo, digest.to_string().as_bytes());
    }
    digest
}

/// Where the digest of `selection` over `input`'s snapshot is kept; `None` when the
/// selection cannot be named (it is then always computed).
fn memo_path(worker: &Worker, input: &Ref, selection: &Selection) -> Option<std::path::PathBuf> {
    let copies = serde_json::to_vec(&selection.copies).ok()?;
    let mut hash = Sha256::new();
    hash.update(b"hoist checksum memo v1\0");
    hash.update(&copies);
    let dir = worker
        .snapshotter()
        .metadata_dir(input.snapshot.as_ref()?)
        .ok()?;
    Some(dir.join("checksums").join(hex::encode(hash.finalize())))
}

fn read_memo(path: &Path) -> Option<hoist_solver::Digest> {
    let text = std::fs::read_to_string(path).ok()?;
    hoist_solver::Digest::parse(text.trim()).ok()
}

/// Each copy's sources and the entries it takes below them (as the copy itself selects
/// them, see [`copy`]), by the paths the copy names them with. A required path (`COPY
/// --parents`) that nothing selected fails here, as in BuildKit.
/// Regular files whose digest `known` has (by path under `root`) are not read.
fn digest_copies(
    root: &Path,
    selection: &Selection,
    known: Option<&FileDigests>,
) -> Result<hoist_solver::Digest> {
    let mut content = |path: &Path| -> Result<[u8; 32]> {
        let found = known.and_then(|known| {
            let rel = path.strip_prefix(root).ok()?.to_str()?;
            known.get(rel).copied()
        });
        match found {
            Some(digest) => Ok(digest),
            None => file_digest(path).map_err(Error::io("read", path)),
        }
    };
    let mut hash = Sha256::new();
    for action in &selection.copies {
        hash.update(format!("source {}\n", action.src_path).as_bytes());
        let selector = copy::Selector::new(action)?;
        let mut taken = Vec::new();
        for source in copy::sources(root, action)? {
            let Ok(metadata) = std::fs::symlink_metadata(&source.host) else {
                hash.update(b"missing\n");
                continue;
            };
            hash_entry_with(
                &mut hash,
                &source.path,
                &source.host,
                &metadata,
                true,
                &mut content,
            )?;
            taken.push(source.path.clone());
            if metadata.is_dir() {
                selector.walk(&source.host, &mut |entry| {
                    let path = copy::join(&source.path, &entry.rel);
                    hash_entry_with(
                        &mut hash,
                        &path,
                        &entry.host,
                        &entry.meta,
                        true,
                        &mut content,
                    )?;
                    taken.push(path);
                    Ok(())
                })?;
            }
        }
        copy::check_required(action, &taken)?;
    }
    Ok(hoist_solver::Digest::of(&hash.finalize()))
}
