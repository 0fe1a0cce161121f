//! Local context sources: the files of a context directory that the build may read —
//! those not excluded by `.dockerignore` (the source's exclude patterns) and, when the
//! source lists include patterns or follow paths, only those — copied into a snapshot.
//!
//! The cache key digests exactly the selected files (path, type, mode, size, content, link
//! target; not times nor owners), so touching a file the build does not read keeps every
//! step cached.

use std::path::{Path, PathBuf};

use hoist_dockerfile::dockerignore::PatternMatcher;
use hoist_snapshot::Snapshotter as _;
use sha2::{Digest as _, Sha256};

use super::EngineOp;
use crate::error::{Error, Result};
use crate::worker::Ref;

/// One selected entry of the context.
#[derive(Debug)]
struct Entry {
    /// Relative path with `/` separators.
    rel: String,
    path: PathBuf,
    metadata: std::fs::Metadata,
}

/// The context directory and selection of the local source `op`.
fn selection(op: &EngineOp) -> Result<(PathBuf, Vec<Entry>)> {
    let hoist_graph::Op::Source(hoist_graph::Source::Local {
        name,
        include_patterns,
        exclude_patterns,
        follow_paths,
    }) = &op.vertex.op
    else {
        return Err(Error::InvalidGraph("not a local source".into()));
    };
    let dir = op
        .contexts
        .get(name)
        .ok_or_else(|| Error::InvalidGraph(format!("no local context named {name:?}")))?
        .clone();
    let excludes = PatternMatcher::new(exclude_patterns)?;
    let includes: Vec<&String> = include_patterns.iter().chain(follow_paths).collect();
    let include_matchers = includes
        .iter()
        .map(|p| PatternMatcher::new([p.as_str()]))
        .collect::<hoist_dockerfile::Result<Vec<_>>>()?;
    let mut entries = Vec::new();
    let mut walk = walkdir::WalkDir::new(&dir)
        .min_depth(1)
        .sort_by_file_name()
        .into_iter();
    while let Some(entry) = walk.next() {
        let entry = entry.map_err(|e| Error::Io {
            action: "walk",
            path: dir.clone(),
            source: e.into(),
        })?;
        let rel = entry
            .path()
            .strip_prefix(&dir)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let is_dir = entry.file_type().is_dir();
        if excludes.matches(&rel)? {
            if is_dir && !excludes.exclusions() {
                walk.skip_current_dir();
            }
            continue;
        }
        if !includes.is_empty() {
            let under = include_matchers
                .iter()
                .map(|m| m.matches_or_parent_matches(&rel))
                .collect::<hoist_dockerfile::Result<Vec<_>>>()?
                .into_iter()
                .any(|m| m);
            let ancestor = is_dir
                && includes.iter().any(|p| {
                    literal_prefix(p.trim_start_matches('/')).starts_with(&format!("{rel}/"))
                });
            if !under && !ancestor {
                if is_dir {
                    walk.skip_current_dir();
                }
                continue;
            }
        }
        let metadata = entry
            .path()
            .symlink_metadata()
            .map_err(Error::io("stat", entry.path()))?;
        entries.push(Entry {
            rel,
            path: entry.path().to_path_buf(),
            metadata,
        });
    }
    Ok((dir, entries))
}

/// The part of a pattern before its first wildcard.
fn literal_prefix(pattern: &str) -> &str {
    let end = pattern.find(['*', '?', '[', '\\']).unwrap_or(pattern.len());
    &pattern[..end]
}

/// The digest of the selected files' content.
pub(super) fn checksum(op: &EngineOp) -> Result<hoist_solver::Digest> {
    let (_, entries) = selection(op)?;
    let mut hash = Sha256::new();
    for entry in &entries {
        super::checksum::hash_entry(&mut hash, &entry.rel, &entry.path, &entry.metadata, false)?;
    }
    Ok(hoist_solver::Digest::of(&hash.finalize()))
}

/// Copies the selection into a new committed snapshot.
pub(super) fn exec(op: &EngineOp) -> Result<Ref> {
    let (_, entries) = selection(op)?;
    let snapshotter = op.worker.snapshotter();
    let key = op.worker.unique_key("local");
    let mount = snapshotter.prepare(&key, &[])?;
    if let Err(e) = copy_entries(&entries, mount.path()) {
        let _ = snapshotter.remove(&key);
        return Err(e);
    }
    super::commit(op, &key, None)
}

fn copy_entries(entries: &[Entry], root: &Path) -> Result<()> {
    let mut dirs = Vec::new();
    for entry in entries {
        let dest = root.join(&entry.rel);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(Error::io("create", parent))?;
        }
        let kind = entry.metadata.file_type();
        if kind.is_dir() {
            std::fs::create_dir_all(&dest).map_err(Error::io("create", &dest))?;
            dirs.push((dest, entry));
        } else if kind.is_symlink() {
            let target =
                std::fs::read_link(&entry.path).map_err(Error::io("read link", &entry.path))?;
            std::os::unix::fs::symlink(&target, &dest)
                .map_err(Error::io("create symlink", &dest))?;
        } else if kind.is_file() {
            std::fs::copy(&entry.path, &dest).map_err(Error::io("copy", &entry.path))?;
            set_times(&dest, &entry.metadata)?;
        }
    }
    for (dest, entry) in dirs.into_iter().rev() {
        std::fs::set_permissions(&dest, entry.metadata.permissions())
            .map_err(Error::io("chmod", &dest))?;
        set_times(&dest, &entry.metadata)?;
    }
    Ok(())
}

fn set_times(path: &Path, metadata: &std::fs::Metadata) -> Result<()> {
    let mtime = filetime::FileTime::from_last_modification_time(metadata);
    filetime::set_file_mtime(path, mtime).map_err(Error::io("set times of", path))
}
