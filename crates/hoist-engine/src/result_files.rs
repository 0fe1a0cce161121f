//! Reading a solved target's files, for a daemon's gateway clients (BuildKit's
//! `LLBBridge.ReadFile`/`ReadDir`/`StatFile` on a ref): [`read_result`] gives a read-only
//! view of the result's filesystem as a [`ResultRoot`], whose paths resolve inside it as
//! the container would see them — `..` stops at `/`, symlinks (absolute ones too) are
//! followed inside the root — so no request reaches a file outside the result.

use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hoist_snapshot::Snapshotter as _;

use crate::error::{Error, Result};
use crate::ops::scoped_path;
use crate::worker::{Ref, Worker};

/// A read-only view of a result's filesystem, valid during [`read_result`]'s `read`.
#[derive(Debug)]
pub struct ResultRoot {
    root: PathBuf,
}

impl ResultRoot {
    /// The host path of `path` (absolute or relative to `/`) inside the result, every
    /// symlink on the way — the last one too — followed inside it.
    pub fn resolve(&self, path: &str) -> Result<PathBuf> {
        scoped_path::resolve(&self.root, path, true)
    }

    /// The root directory itself.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// The bytes of the file `path`: all of them, or `length` from `offset` when `range`
    /// is given (fewer at the end of the file, none past it).
    pub fn read_file(&self, path: &str, range: Option<(u64, u64)>) -> Result<Vec<u8>> {
        let host = self.resolve(path)?;
        let named = PathBuf::from(path);
        let mut file = std::fs::File::open(&host).map_err(Error::io("open", &named))?;
        let mut data = Vec::new();
        match range {
            None => {
                file.read_to_end(&mut data)
                    .map_err(Error::io("read", &named))?;
            }
            Some((offset, length)) => {
                file.seek(SeekFrom::Start(offset))
                    .map_err(Error::io("read", &named))?;
                file.take(length)
                    .read_to_end(&mut data)
                    .map_err(Error::io("read", &named))?;
            }
        }
        Ok(data)
    }
}

/// Calls `read` with a read-only view of `result`'s filesystem (an empty one for a target
/// without a filesystem, `FROM scratch` with only config changes), fetching and unpacking
/// a lazy result's layers first. Blocking: `read` runs on the calling thread.
pub async fn read_result<T>(
    worker: &Arc<Worker>,
    result: Option<&Arc<Ref>>,
    read: impl FnOnce(&ResultRoot) -> T,
) -> Result<T> {
    let mut parents = Vec::new();
    if let Some(result) = result {
        let result = crate::ops::materialize(worker, result).await?;
        parents.push(result.snapshot()?.clone());
    }
    let key = worker.unique_key("read-result");
    let view = worker.snapshotter().view(&key, &parents)?;
    let root = ResultRoot {
        root: view.path().to_path_buf(),
    };
    let out = read(&root);
    drop(view);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_symlinks_stay_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = ResultRoot {
            root: dir.path().join("root"),
        };
        std::fs::create_dir_all(root.root.join("etc")).unwrap();
        std::fs::write(root.root.join("etc/passwd"), "inside\n").unwrap();
        std::fs::write(dir.path().join("outside"), "outside\n").unwrap();
        std::os::unix::fs::symlink("/etc", root.root.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../../outside", root.root.join("up")).unwrap();
        assert_eq!(
            root.read_file("../../etc/passwd", None).unwrap(),
            b"inside\n"
        );
        assert_eq!(root.read_file("/abs/passwd", None).unwrap(), b"inside\n");
        let err = root.read_file("up", None).unwrap_err();
        assert!(err.to_string().contains("up"), "{err}");
        assert_eq!(root.read_file("etc/passwd", Some((2, 3))).unwrap(), b"sid");
        assert_eq!(
            root.read_file("etc/passwd", Some((5, 100))).unwrap(),
            b"e\n"
        );
        assert!(root
            .read_file("etc/passwd", Some((50, 1)))
            .unwrap()
            .is_empty());
    }
}
