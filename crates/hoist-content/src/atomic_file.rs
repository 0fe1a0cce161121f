//! Durable small-file writes: [`write_atomic`] replaces a file so that readers, and a machine
//! that loses power, see the old content or the new, never a part.
//!
//! The one recipe, used by the store (`index.json`, named leases, variants) and by the engine
//! (cache records, http ETag records, checksum memos): a temp file beside the target, the
//! bytes, `fsync` of the file, `rename(2)` over the target, `fsync` of the directory (without
//! it the rename itself may not survive a crash).

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

use tempfile::NamedTempFile;

use crate::error::{Error, Result};

/// Replaces the file `path` with `bytes` atomically and durably, creating its directory if
/// missing. The file is world-readable (0644 before the umask), as the OCI layout must be.
/// A failure leaves the old file (or none) and no temp file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, bytes, Durability::Durable)
}

/// What a replace must survive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// A crash or power loss: the file is fsynced before the rename, its directory after.
    Durable,
    /// Readers only: they see the old content or the new, but a power loss may lose the
    /// update (or, rarely, leave an empty file). For facts a reader can do without — a
    /// record's last-used time, a memo that is computed again — where an fsync per update
    /// would cost every cached build.
    Volatile,
}

/// [`write_atomic`] with the [`Durability`] the caller needs.
pub fn write_atomic_with(path: &Path, bytes: &[u8], durability: Durability) -> Result<()> {
    let temp = temp_beside(path, bytes, durability)?;
    temp.persist(path)
        .map_err(|e| Error::io("rename temp file to", path, e.error))?;
    match durability {
        Durability::Durable => sync_parent(path),
        Durability::Volatile => Ok(()),
    }
}

/// Creates `path` with `bytes` atomically and durably unless it exists; never overwrites
/// (two racing creators: one wins, the other's bytes are dropped). Returns whether this call
/// created it.
pub(crate) fn create_atomic(path: &Path, bytes: &[u8]) -> Result<bool> {
    if path.exists() {
        return Ok(false);
    }
    let temp = temp_beside(path, bytes, Durability::Durable)?;
    match temp.persist_noclobber(path) {
        Ok(_) => sync_parent(path).map(|()| true),
        Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(Error::io("create", path, e.error)),
    }
}

/// A temp file in `path`'s directory (created, and made durable, if missing) holding
/// `bytes`, fsynced when `durability` asks; deleted when dropped unpersisted.
fn temp_beside(path: &Path, bytes: &[u8], durability: Durability) -> Result<NamedTempFile> {
    use std::os::unix::fs::PermissionsExt;
    let dir = parent(path);
    if !dir.is_dir() {
        fs::create_dir_all(dir).map_err(|e| Error::io("create directory", dir, e))?;
        sync_parent(dir)?;
    }
    let mut temp = tempfile::Builder::new()
        .prefix(".tmp-")
        .permissions(fs::Permissions::from_mode(0o644))
        .tempfile_in(dir)
        .map_err(|e| Error::io("create temp file in", dir, e))?;
    temp.write_all(bytes)
        .and_then(|()| match durability {
            Durability::Durable => temp.as_file().sync_all(),
            Durability::Volatile => Ok(()),
        })
        .map_err(|e| Error::io("write", temp.path(), e))?;
    Ok(temp)
}

/// fsyncs the directory holding `path`, so a rename into it survives a crash.
pub(crate) fn sync_parent(path: &Path) -> Result<()> {
    let dir = parent(path);
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("fsync directory", dir, e))
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn write_atomic_creates_replaces_and_leaves_no_temp_file() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("a/b/record.json");
        write_atomic(&path, b"first").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"first");
        write_atomic(&path, b"second, longer").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"second, longer");
        write_atomic(&path, b"").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"");
        assert_eq!(names(path.parent().unwrap()), ["record.json"]);
    }

    #[test]
    fn write_atomic_failure_keeps_nothing_and_names_the_path() {
        let tmp = tempfile::tempdir().unwrap();
        // A directory cannot be replaced by a file.
        let path = tmp.path().join("taken");
        fs::create_dir(&path).unwrap();
        fs::write(path.join("inside"), b"x").unwrap();
        let err = write_atomic(&path, b"bytes").unwrap_err();
        assert!(err.to_string().contains(&*path.to_string_lossy()), "{err}");
        assert!(path.is_dir());
        assert_eq!(names(tmp.path()), ["taken"]);
    }

    #[test]
    fn create_atomic_never_overwrites() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("layout");
        assert!(create_atomic(&path, b"one").unwrap());
        assert!(!create_atomic(&path, b"two").unwrap());
        assert_eq!(fs::read(&path).unwrap(), b"one");
        assert_eq!(names(tmp.path()), ["layout"]);
    }

    #[test]
    fn volatile_replace_is_atomic_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("record.json");
        write_atomic(&path, b"old").unwrap();
        write_atomic_with(&path, b"new", Durability::Volatile).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        assert_eq!(names(dir.path()), ["record.json"]);
    }
}
