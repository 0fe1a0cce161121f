//! [`DiskCacheStore`]: the solver's [`CacheStore`] on disk, so that a second build (another
//! process) reuses every step.
//!
//! One JSON record per cache key under `<state>/engine/cache/<hex>.json` holding the
//! [`Ref`] (snapshot id and layer descriptors). Records are written to a temp file and
//! renamed, under an exclusive `flock` of `<state>/engine/cache.lock`; reads take it shared.
//! A record whose snapshot or blobs were removed since is a miss.

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;

use fs4::fs_std::FileExt;
use futures::future::BoxFuture;
use futures::FutureExt as _;
use hoist_solver::{BoxError, CacheKey, CacheStore};

use crate::error::{Error, Result};
use crate::worker::{Ref, Worker};

/// Cache records in the state dir.
#[derive(Debug, Clone)]
pub struct DiskCacheStore {
    worker: Arc<Worker>,
    dir: PathBuf,
    lock: PathBuf,
}

impl DiskCacheStore {
    /// The store of `worker`'s state dir.
    pub fn open(worker: Arc<Worker>) -> Result<DiskCacheStore> {
        let dir = worker.engine_dir().join("cache");
        std::fs::create_dir_all(&dir).map_err(Error::io("create", &dir))?;
        let lock = worker.engine_dir().join("cache.lock");
        Ok(DiskCacheStore { worker, dir, lock })
    }

    fn record_path(&self, key: CacheKey) -> PathBuf {
        self.dir.join(format!("{}.json", key.digest().hex()))
    }

    fn lock_file(&self) -> Result<File> {
        File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&self.lock)
            .map_err(Error::io("open", &self.lock))
    }

    fn load_sync(&self, key: CacheKey) -> Result<Option<Arc<Ref>>> {
        let lock = self.lock_file()?;
        FileExt::lock_shared(&lock).map_err(Error::io("lock", &self.lock))?;
        let path = self.record_path(key);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("read", &path)(e)),
        };
        let record: Ref = serde_json::from_slice(&bytes).map_err(|e| Error::CacheRecord {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        if !self.worker.ref_is_complete(&record) {
            return Ok(None);
        }
        Ok(Some(Arc::new(record)))
    }

    fn save_sync(&self, key: CacheKey, value: &Ref) -> Result<()> {
        let lock = self.lock_file()?;
        FileExt::lock_exclusive(&lock).map_err(Error::io("lock", &self.lock))?;
        let path = self.record_path(key);
        let bytes = serde_json::to_vec(value).map_err(|e| Error::CacheRecord {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let tmp = tempfile::NamedTempFile::new_in(&self.dir)
            .map_err(Error::io("create a file in", &self.dir))?;
        std::fs::write(tmp.path(), &bytes).map_err(Error::io("write", tmp.path()))?;
        tmp.persist(&path)
            .map_err(|e| Error::io("rename into", &path)(e.error))?;
        Ok(())
    }
}

impl CacheStore<Ref> for DiskCacheStore {
    fn load(&self, key: CacheKey) -> BoxFuture<'_, Result<Option<Arc<Ref>>, BoxError>> {
        let this = self.clone();
        async move {
            tokio::task::spawn_blocking(move || this.load_sync(key))
                .await
                .map_err(|e| Error::Task(e.to_string()))?
                .map_err(Into::into)
        }
        .boxed()
    }

    fn save(&self, key: CacheKey, value: Arc<Ref>) -> BoxFuture<'_, Result<(), BoxError>> {
        let this = self.clone();
        async move {
            tokio::task::spawn_blocking(move || this.save_sync(key, &value))
                .await
                .map_err(|e| Error::Task(e.to_string()))?
                .map_err(Into::into)
        }
        .boxed()
    }
}
