//! File ops (`COPY`, `ADD` of local files, `WORKDIR`'s mkdir, heredoc files): a chain of
//! actions on a snapshot of the base input (or an empty one), committed as one layer.
//! Copies are in [`copy`](super::copy); `--chown` names are resolved in the destination's
//! `/etc/passwd` and `/etc/group`.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use hoist_graph::{FileAction, Owner};
use hoist_snapshot::{SnapshotId, Snapshotter as _};

use super::{copy, input, scoped_path, EngineOp};
use crate::error::{Error, Result};
use crate::worker::Ref;

pub(super) fn exec(op: &EngineOp, base: Option<Ref>, inputs: &[Ref]) -> Result<Ref> {
    let hoist_graph::Op::File(file) = &op.vertex.op else {
        return Err(Error::InvalidGraph("not a file op".into()));
    };
    let snapshotter = op.worker.snapshotter();
    let key = op.worker.unique_key("file");
    let parents: Vec<SnapshotId> = base
        .iter()
        .map(|b| b.snapshot().cloned())
        .collect::<Result<_>>()?;
    let mount = snapshotter.prepare(&key, &parents)?;
    let root = mount.path().to_path_buf();
    let outcome = file
        .actions
        .iter()
        .try_for_each(|action| apply(op, action, &root, inputs));
    match outcome {
        Ok(()) => super::commit(op, &key, base.as_ref()),
        Err(e) => {
            let _ = snapshotter.remove(&key);
            Err(e)
        }
    }
}

fn apply(op: &EngineOp, action: &FileAction, root: &Path, inputs: &[Ref]) -> Result<()> {
    match action {
        FileAction::Copy(copy) => {
            // The source view goes (is unmounted and removed) when `src` drops.
            let src = op.worker.snapshotter().view(
                &op.worker.unique_key("copy-src"),
                &[input(inputs, copy.src)?.snapshot()?.clone()],
            )?;
            copy::copy_action(copy, src.path(), root)
        }
        FileAction::Mkdir(mkdir) => {
            let path = scoped_path::resolve(root, &mkdir.path, true)?;
            let owner = match &mkdir.owner {
                Some(owner) => Some(resolve_owner(owner, root)?),
                None => None,
            };
            let new_dir = NewDir {
                mode: mkdir.mode,
                owner,
                created: mkdir.created,
            };
            if mkdir.make_parents {
                make_dirs(root, &path, &new_dir)
            } else {
                match std::fs::create_dir(&path) {
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
                    Err(e) => Err(Error::io("create", &path)(e)),
                    Ok(()) => new_dir.finish(&path),
                }
            }
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
                copy::expand(root, &rm.path, false)?
                    .into_iter()
                    .map(|source| source.host)
                    .collect()
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

/// How a directory a mkdir creates is set up.
struct NewDir {
    mode: u32,
    owner: Option<(u32, u32)>,
    created: Option<i64>,
}

impl NewDir {
    /// Mode, owner and modification time of the directory just created at `path`.
    fn finish(&self, path: &Path) -> Result<()> {
        set_mode(path, self.mode)?;
        if let Some((uid, gid)) = self.owner {
            chown(path, uid, gid)?;
        }
        if let Some(created) = self.created {
            filetime::set_file_mtime(path, filetime::FileTime::from_unix_time(created, 0))
                .map_err(Error::io("set times of", path))?;
        }
        Ok(())
    }
}

/// BuildKit's `MkdirAll` for file ops: every missing directory from `root` down to `path`
/// (a resolved host path inside `root`) is created and set up as `new_dir` says, parents
/// included; directories that exist are left as they are (owner, mode and time).
fn make_dirs(root: &Path, path: &Path, new_dir: &NewDir) -> Result<()> {
    let mut missing = Vec::new();
    let mut current = path;
    while current != root && current.starts_with(root) {
        match std::fs::symlink_metadata(current) {
            Ok(meta) if meta.is_dir() => break,
            Ok(_) => {
                return Err(Error::io("create", current)(std::io::Error::from(
                    std::io::ErrorKind::NotADirectory,
                )))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => missing.push(current),
            Err(e) => return Err(Error::io("inspect", current)(e)),
        }
        let Some(parent) = current.parent() else {
            break;
        };
        current = parent;
    }
    for dir in missing.into_iter().rev() {
        std::fs::create_dir(dir).map_err(Error::io("create", dir))?;
        new_dir.finish(dir)?;
    }
    Ok(())
}

pub(super) fn set_mode(path: &Path, mode: u32) -> Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(Error::io("chmod", path))
}

/// Files up to this size are copied through one buffer (a read and a write): std's copy
/// first asks for `copy_file_range`, which an overlay destination refuses, then `sendfile`s
/// until end of file — five calls for a small file where two do.
const COPY_THROUGH_MEMORY: u64 = 1 << 20;

/// Copies the regular file `src` (`len` bytes as last stat'ed: only a hint for the buffer)
/// to the new file `dest` (which must not exist: the error's kind is then `AlreadyExists`)
/// with owner, mode and modification time set through the open descriptor: one path lookup
/// for the destination instead of five, which is most of the cost of copying many small
/// files onto an overlay.
pub(super) fn copy_new_file(
    src: &Path,
    len: u64,
    dest: &Path,
    owner: Option<(u32, u32)>,
    mode: u32,
    mtime: filetime::FileTime,
) -> std::io::Result<()> {
    use std::io::{Read as _, Write as _};
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut from = std::fs::File::open(src)?;
    let mut to = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode & 0o777)
        .open(dest)?;
    let copied = (|| {
        if len <= COPY_THROUGH_MEMORY {
            // Read into a buffer one byte longer than the stat said, until end of file (a
            // file that grew since is still copied whole). Not read_to_end: for its size
            // hint it asks fstat and lseek again, two calls more per file.
            let mut bytes = vec![0u8; len as usize + 1];
            let mut filled = 0;
            loop {
                if filled == bytes.len() {
                    bytes.resize(bytes.len() * 2, 0);
                }
                match from.read(&mut bytes[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            to.write_all(&bytes[..filled])?;
        } else {
            // std's copy uses copy_file_range between two files.
            std::io::copy(&mut from, &mut to)?;
        }
        if let Some((uid, gid)) = owner {
            match std::os::unix::fs::fchown(&to, Some(uid), Some(gid)) {
                // Without root the copy keeps the builder's ids (tests running unprivileged).
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {}
                other => other?,
            }
        }
        // After the chown (which clears set-id bits) and past the umask: needless when the
        // mode given to open() survived both.
        if !created_with(mode) {
            to.set_permissions(std::fs::Permissions::from_mode(mode))?;
        }
        filetime::set_file_handle_times(&to, None, Some(mtime))
    })();
    if copied.is_err() {
        let _ = std::fs::remove_file(dest);
    }
    copied
}

pub(super) use hoist_snapshot::created_with;

pub(super) fn chown(path: &Path, uid: u32, gid: u32) -> Result<()> {
    match std::os::unix::fs::lchown(path, Some(uid), Some(gid)) {
        // Without root the copy keeps the builder's ids (tests running unprivileged).
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Ok(()),
        other => other.map_err(Error::io("chown", path)),
    }
}

/// `user[:group]` as numeric ids, the way BuildKit's file ops read them (see
/// [`hoist_sandbox::resolve_owner`]: names from `root`'s passwd and group files, and a name
/// they lack is root rather than an error).
pub(super) fn resolve_owner(owner: &Owner, root: &Path) -> Result<(u32, u32)> {
    let spec = match &owner.group {
        Some(group) => format!("{}:{group}", owner.user),
        None => owner.user.clone(),
    };
    Ok(hoist_sandbox::resolve_owner(&spec, root)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_files_get_their_bytes_mode_and_time_whatever_the_umask_took() {
        let dir = tempfile::tempdir().unwrap();
        // A small file (through memory) and one past the buffer (through std's copy).
        let small: Vec<u8> = (0..1024u32).map(|i| i as u8).collect();
        let large: Vec<u8> = (0..(COPY_THROUGH_MEMORY as u32 + 4097))
            .map(|i| (i % 251) as u8)
            .collect();
        let mtime = filetime::FileTime::from_unix_time(1_700_000_000, 0);
        for (name, bytes) in [("small", &small), ("large", &large)] {
            let src = dir.path().join(name);
            std::fs::write(&src, bytes).unwrap();
            // 0o777 and 0o666 lose bits to a usual umask, 0o4755 carries a set-id bit that
            // open() drops, 0o640 survives both.
            for mode in [0o640, 0o777, 0o666, 0o4755, 0o1700] {
                let dest = dir.path().join(format!("{name}-{mode:o}"));
                copy_new_file(&src, bytes.len() as u64, &dest, None, mode, mtime).unwrap();
                assert_eq!(std::fs::read(&dest).unwrap(), *bytes, "{dest:?}");
                let meta = std::fs::metadata(&dest).unwrap();
                assert_eq!(meta.permissions().mode() & 0o7777, mode, "{dest:?}");
                assert_eq!(
                    filetime::FileTime::from_last_modification_time(&meta),
                    mtime
                );
            }
        }
        // A stale size hint still copies the whole file.
        let src = dir.path().join("small");
        let dest = dir.path().join("hint");
        copy_new_file(&src, 10, &dest, None, 0o644, mtime).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), small);
        // The destination must be new.
        let err = copy_new_file(&src, 1024, &dest, None, 0o644, mtime).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
    }
}
