//! File ops (`COPY`, `ADD` of local files, `WORKDIR`'s mkdir, heredoc files): a chain of
//! actions on a snapshot of the base input (or an empty one), committed as one layer.
//!
//! Copy semantics follow BuildKit's: a source names a file, a directory or (with wildcards)
//! every match; a directory's contents are copied when `dir_contents_only`; the destination
//! is a directory when it ends in `/`, already is one, or several sources match. `--chown`
//! names are resolved in the destination's `/etc/passwd` and `/etc/group`.

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use hoist_dockerfile::dockerignore::PatternMatcher;
use hoist_graph::{FileAction, FileMode, Owner};
use hoist_snapshot::{SnapshotId, Snapshotter as _};

use super::{input, scoped_path, EngineOp};
use crate::error::{Error, Result};
use crate::worker::Ref;

pub(super) fn exec(op: &EngineOp, base: Option<Ref>, inputs: &[Ref]) -> Result<Ref> {
    let hoist_graph::Op::File(file) = &op.vertex.op else {
        return Err(Error::InvalidGraph("not a file op".into()));
    };
    let snapshotter = op.worker.snapshotter();
    let key = op.worker.unique_key("file");
    let parents: Vec<SnapshotId> = base.iter().map(|b| b.snapshot.clone()).collect();
    let mount = snapshotter.prepare(&key, &parents)?;
    let root = mount.path().to_path_buf();
    let mut views = Vec::new();
    let mut outcome = Ok(());
    for action in &file.actions {
        outcome = apply(op, action, &root, inputs, &mut views);
        if outcome.is_err() {
            break;
        }
    }
    for view in &views {
        let _ = snapshotter.remove(view);
    }
    match outcome {
        Ok(()) => super::commit(op, &key, base.as_ref()),
        Err(e) => {
            let _ = snapshotter.remove(&key);
            Err(e)
        }
    }
}

fn apply(
    op: &EngineOp,
    action: &FileAction,
    root: &Path,
    inputs: &[Ref],
    views: &mut Vec<String>,
) -> Result<()> {
    match action {
        FileAction::Copy(copy) => {
            let view = op.worker.unique_key("copy-src");
            let src = op
                .worker
                .snapshotter()
                .view(&view, &[input(inputs, copy.src)?.snapshot.clone()])?;
            views.push(view);
            copy_action(copy, src.path(), root)
        }
        FileAction::Mkdir(mkdir) => {
            let path = scoped_path::resolve(root, &mkdir.path, true)?;
            if mkdir.make_parents {
                std::fs::create_dir_all(&path).map_err(Error::io("create", &path))?;
            } else if !path.is_dir() {
                std::fs::create_dir(&path).map_err(Error::io("create", &path))?;
            }
            set_mode(&path, mkdir.mode)?;
            if let Some(owner) = &mkdir.owner {
                let (uid, gid) = resolve_owner(owner, root)?;
                chown(&path, uid, gid)?;
            }
            if let Some(created) = mkdir.created {
                filetime::set_file_mtime(&path, filetime::FileTime::from_unix_time(created, 0))
                    .map_err(Error::io("set times of", &path))?;
            }
            Ok(())
        }
        FileAction::Mkfile(mkfile) => {
            let path = scoped_path::resolve(root, &mkfile.path, false)?;
            std::fs::write(&path, mkfile.data.as_bytes()).map_err(Error::io("write", &path))?;
            set_mode(&path, mkfile.mode)?;
            if let Some(owner) = &mkfile.owner {
                let (uid, gid) = resolve_owner(owner, root)?;
                chown(&path, uid, gid)?;
            }
            Ok(())
        }
        FileAction::Rm(rm) => {
            let paths = if rm.allow_wildcard {
                expand(root, &rm.path)?
            } else {
                vec![scoped_path::resolve(root, &rm.path, false)?]
            };
            for path in &paths {
                let removed = match std::fs::symlink_metadata(path) {
                    Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
                    Ok(_) => std::fs::remove_file(path),
                    Err(e) => Err(e),
                };
                match removed {
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound && rm.allow_not_found => {}
                    other => other.map_err(Error::io("remove", path))?,
                }
            }
            Ok(())
        }
    }
}

fn copy_action(copy: &hoist_graph::Copy, src_root: &Path, root: &Path) -> Result<()> {
    if copy.parents || !copy.required_paths.is_empty() {
        return Err(Error::Unsupported("COPY --parents".into()));
    }
    let sources = if copy.allow_wildcard && has_wildcard(&copy.src_path) {
        let found = expand(src_root, &copy.src_path)?;
        if found.is_empty() && !copy.allow_empty_wildcard {
            return Err(Error::SourceNotFound {
                path: copy.src_path.clone(),
            });
        }
        found
    } else {
        let path = scoped_path::resolve(src_root, &copy.src_path, copy.follow_symlinks)?;
        if std::fs::symlink_metadata(&path).is_err() {
            return Err(Error::SourceNotFound {
                path: copy.src_path.clone(),
            });
        }
        vec![path]
    };
    let owner = match &copy.owner {
        Some(owner) => Some(resolve_owner(owner, root)?),
        None => None,
    };
    let mode = match &copy.mode {
        None => None,
        Some(FileMode::Octal(mode)) => Some(*mode),
        Some(FileMode::Symbolic(text)) => {
            return Err(Error::Unsupported(format!("symbolic --chmod={text}")))
        }
    };
    let filter = Filter {
        excludes: PatternMatcher::new(&copy.exclude_patterns)?,
        includes: PatternMatcher::new(&copy.include_patterns)?,
        owner,
        mode,
    };
    let dest_is_dir_name = copy.dest.ends_with('/') || sources.len() > 1;
    let dest = scoped_path::resolve(root, &copy.dest, true)?;
    for source in &sources {
        let meta = std::fs::symlink_metadata(source).map_err(Error::io("stat", source))?;
        let name = source.file_name().map(PathBuf::from).unwrap_or_default();
        if copy.attempt_unpack && meta.is_file() && is_archive(source) {
            std::fs::create_dir_all(&dest).map_err(Error::io("create", &dest))?;
            let file = std::fs::File::open(source).map_err(Error::io("open", source))?;
            hoist_snapshot::apply_layer(file, &dest, &hoist_snapshot::ApplyOptions::default())?;
            continue;
        }
        let target = if meta.is_dir() && copy.dir_contents_only {
            dest.clone()
        } else if dest_is_dir_name || dest.is_dir() {
            dest.join(&name)
        } else {
            dest.clone()
        };
        if let Some(parent) = target.parent() {
            if !parent.exists() {
                if !copy.create_dest_path && !dest_is_dir_name {
                    return Err(Error::Io {
                        action: "copy to",
                        path: target.clone(),
                        source: std::io::Error::from(std::io::ErrorKind::NotFound),
                    });
                }
                create_parents(parent, &filter)?;
            }
        }
        copy_tree(source, &target, &filter)?;
    }
    Ok(())
}

/// Creates `dir` and whichever of its parents are missing. As in BuildKit, the directories
/// COPY creates get the copy's `--chmod` mode and `--chown` owner (existing ones are left
/// alone); without them, the umask's 0755 and the builder's ids.
fn create_parents(dir: &Path, filter: &Filter) -> Result<()> {
    let mut missing = Vec::new();
    let mut current = Some(dir);
    while let Some(path) = current {
        if std::fs::symlink_metadata(path).is_ok() {
            break;
        }
        missing.push(path);
        current = path.parent();
    }
    for path in missing.into_iter().rev() {
        std::fs::create_dir(path).map_err(Error::io("create", path))?;
        if let Some(mode) = filter.mode {
            set_mode(path, mode)?;
        }
        if let Some((uid, gid)) = filter.owner {
            chown(path, uid, gid)?;
        }
    }
    Ok(())
}

/// What to copy and how to set the copies' owner and mode.
struct Filter {
    excludes: PatternMatcher,
    includes: PatternMatcher,
    owner: Option<(u32, u32)>,
    mode: Option<u32>,
}

fn copy_tree(source: &Path, target: &Path, filter: &Filter) -> Result<()> {
    let mut dirs = Vec::new();
    for entry in walkdir::WalkDir::new(source).sort_by_file_name() {
        let entry = entry.map_err(|e| Error::Io {
            action: "walk",
            path: source.to_path_buf(),
            source: e.into(),
        })?;
        let rel = entry.path().strip_prefix(source).unwrap_or(Path::new(""));
        let rel_text = rel.to_string_lossy();
        if !rel_text.is_empty() {
            if filter.excludes.matches(&rel_text)? {
                continue;
            }
            if !filter.includes.patterns().is_empty()
                && !filter.includes.matches_or_parent_matches(&rel_text)?
                && !entry.file_type().is_dir()
            {
                continue;
            }
        }
        let dest = if rel_text.is_empty() {
            target.to_path_buf()
        } else {
            target.join(rel)
        };
        let meta = entry
            .path()
            .symlink_metadata()
            .map_err(Error::io("stat", entry.path()))?;
        if let Ok(existing) = dest.symlink_metadata() {
            if !(existing.is_dir() && meta.is_dir()) {
                if existing.is_dir() {
                    std::fs::remove_dir_all(&dest).map_err(Error::io("replace", &dest))?;
                } else {
                    std::fs::remove_file(&dest).map_err(Error::io("replace", &dest))?;
                }
            }
        }
        if meta.is_dir() && rel_text.is_empty() {
            // A directory source gives its contents: the destination directory keeps its own
            // owner and mode when it exists, and is made like a created parent when not.
            create_parents(&dest, filter)?;
        } else if meta.is_dir() {
            std::fs::create_dir_all(&dest).map_err(Error::io("create", &dest))?;
            dirs.push((dest.clone(), meta.clone()));
        } else if meta.file_type().is_symlink() {
            let link =
                std::fs::read_link(entry.path()).map_err(Error::io("read link", entry.path()))?;
            std::os::unix::fs::symlink(&link, &dest).map_err(Error::io("create symlink", &dest))?;
        } else if meta.is_file() {
            std::fs::copy(entry.path(), &dest).map_err(Error::io("copy", entry.path()))?;
            finish(&dest, &meta, filter)?;
        }
        if meta.file_type().is_symlink() {
            let (uid, gid) = filter.owner.unwrap_or((meta.uid(), meta.gid()));
            chown(&dest, uid, gid)?;
        }
    }
    for (dest, meta) in dirs.into_iter().rev() {
        finish(&dest, &meta, filter)?;
    }
    Ok(())
}

/// Owner, mode and modification time of a copied file or directory.
fn finish(dest: &Path, meta: &std::fs::Metadata, filter: &Filter) -> Result<()> {
    let (uid, gid) = filter.owner.unwrap_or((meta.uid(), meta.gid()));
    chown(dest, uid, gid)?;
    set_mode(
        dest,
        filter.mode.unwrap_or(meta.permissions().mode() & 0o7777),
    )?;
    filetime::set_file_mtime(dest, filetime::FileTime::from_last_modification_time(meta))
        .map_err(Error::io("set times of", dest))
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(Error::io("chmod", path))
}

fn chown(path: &Path, uid: u32, gid: u32) -> Result<()> {
    match std::os::unix::fs::lchown(path, Some(uid), Some(gid)) {
        // Without root the copy keeps the builder's ids (tests running unprivileged).
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Ok(()),
        other => other.map_err(Error::io("chown", path)),
    }
}

/// `user[:group]` as numeric ids, names looked up in `root`'s passwd and group files.
fn resolve_owner(owner: &Owner, root: &Path) -> Result<(u32, u32)> {
    let spec = match &owner.group {
        Some(group) => format!("{}:{group}", owner.user),
        None => owner.user.clone(),
    };
    let user = hoist_sandbox::resolve_user(&spec, root)?;
    Ok((user.uid, user.gid))
}

pub(super) fn has_wildcard(path: &str) -> bool {
    path.contains(['*', '?', '['])
}

/// Every path in `root` matching `pattern` (wildcards allowed in any component), sorted.
pub(super) fn expand(root: &Path, pattern: &str) -> Result<Vec<PathBuf>> {
    let mut current = vec![root.to_path_buf()];
    for component in pattern.split('/').filter(|c| !c.is_empty() && *c != ".") {
        let mut next = Vec::new();
        for dir in &current {
            if !has_wildcard(component) {
                let path = dir.join(component);
                if path.symlink_metadata().is_ok() {
                    next.push(path);
                }
                continue;
            }
            let Ok(read) = std::fs::read_dir(dir) else {
                continue;
            };
            let matcher = PatternMatcher::new([component])?;
            let mut names: Vec<_> = read.filter_map(|e| e.ok().map(|e| e.file_name())).collect();
            names.sort();
            for name in names {
                if matcher.matches(&name.to_string_lossy())? {
                    next.push(dir.join(name));
                }
            }
        }
        current = next;
    }
    Ok(current)
}

/// Whether `path` is a tar archive, compressed or not (`ADD` unpacks those).
fn is_archive(path: &Path) -> bool {
    use std::io::Read as _;
    let Ok(file) = std::fs::File::open(path) else {
        return false;
    };
    let Ok(mut reader) = hoist_snapshot::decompress(std::io::BufReader::new(file)) else {
        return false;
    };
    let mut header = [0u8; 512];
    reader.read_exact(&mut header).is_ok() && &header[257..262] == b"ustar"
}
