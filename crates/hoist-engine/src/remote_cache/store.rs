//! [`LayeredCacheStore`]: the state dir's records, then the imported ones.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use futures::future::BoxFuture;
use futures::FutureExt as _;
use hoist_solver::{BoxError, CacheKey, CacheStore, Claim};

use super::import::{fetch_blob, ImportedCache, ImportedRecord};
use crate::cache::DiskCacheStore;
use crate::error::{Error, Result};
use crate::steps::Progress;
use crate::worker::{Ref, Worker};

/// The solver's store for a build: [`DiskCacheStore`] first; on a miss there, a record of
/// the build's `--cache-from`s (read-only), whose layers are then fetched (verified),
/// unpacked into a snapshot chain and saved as a local record. Remembers the result of
/// every key the build loaded or saved, for `--cache-to`.
#[derive(Debug, Clone)]
pub(crate) struct LayeredCacheStore {
    local: DiskCacheStore,
    imported: Arc<ImportedCache>,
    worker: Arc<Worker>,
    progress: Progress,
    used: Arc<Mutex<Used>>,
}

#[derive(Debug, Default)]
struct Used {
    results: BTreeMap<CacheKey, Arc<Ref>>,
    /// Keys never exported (local context sources: the context stays on this machine).
    private: HashSet<CacheKey>,
}

impl LayeredCacheStore {
    pub(crate) fn new(
        worker: Arc<Worker>,
        imported: ImportedCache,
        progress: Progress,
    ) -> Result<LayeredCacheStore> {
        Ok(LayeredCacheStore {
            local: DiskCacheStore::open(Arc::clone(&worker))?,
            imported: Arc::new(imported),
            worker,
            progress,
            used: Arc::new(Mutex::new(Used::default())),
        })
    }

    fn used(&self) -> std::sync::MutexGuard<'_, Used> {
        self.used.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn note(&self, key: CacheKey, value: &Arc<Ref>) {
        self.used().results.insert(key, Arc::clone(value));
    }

    /// Marks `key` as never to be exported.
    pub(crate) fn keep_private(&self, key: CacheKey) {
        self.used().private.insert(key);
    }

    /// Every exportable key the build used and its result, by key.
    pub(crate) fn used_results(&self) -> Vec<(CacheKey, Arc<Ref>)> {
        let used = self.used();
        used.results
            .iter()
            .filter(|(key, _)| !used.private.contains(key))
            .map(|(key, value)| (*key, Arc::clone(value)))
            .collect()
    }

    /// The result of an imported record: its layers fetched and unpacked.
    async fn materialise(&self, record: &ImportedRecord) -> Result<Arc<Ref>> {
        let worker = &self.worker;
        let digests: Vec<_> = record
            .layers
            .iter()
            .map(|l| l.descriptor.digest.clone())
            .collect();
        // Leased before they land, as every blob a build brings in.
        worker.lease_blobs(&digests)?;
        let fetches = record
            .layers
            .iter()
            .map(|layer| fetch_blob(worker, &record.origin, &layer.descriptor));
        futures::future::try_join_all(fetches).await?;
        let layers = record.layers.clone();
        let worker = Arc::clone(worker);
        let value = tokio::task::spawn_blocking(move || -> Result<Ref> {
            let snapshot = crate::ops::unpack(&worker, &layers)?;
            Ok(Ref {
                snapshot: Some(snapshot),
                layers,
            })
        })
        .await
        .map_err(|e| Error::Task(e.to_string()))??;
        Ok(Arc::new(value))
    }
}

impl CacheStore<Ref> for LayeredCacheStore {
    fn load(
        &self,
        key: CacheKey,
    ) -> BoxFuture<'_, std::result::Result<Option<Arc<Ref>>, BoxError>> {
        async move {
            if let Some(value) = self.local.load(key).await? {
                self.note(key, &value);
                return Ok(Some(value));
            }
            let Some(record) = self.imported.get(&key) else {
                return Ok(None);
            };
            match self.materialise(record).await {
                Ok(value) => {
                    // A local record from now on, holding its blobs and snapshot.
                    self.local.save(key, Arc::clone(&value)).await?;
                    self.note(key, &value);
                    Ok(Some(value))
                }
                Err(e) => {
                    // The step runs instead.
                    let step = self.progress.step(format!("importing cache record {key}"));
                    step.log(format!(
                        "WARNING: cached result not usable, running the step: {e}"
                    ));
                    let _ = step.finish(Ok::<(), Error>(()));
                    Ok(None)
                }
            }
        }
        .boxed()
    }

    fn save(
        &self,
        key: CacheKey,
        value: Arc<Ref>,
    ) -> BoxFuture<'_, std::result::Result<(), BoxError>> {
        async move {
            self.local.save(key, Arc::clone(&value)).await?;
            self.note(key, &value);
            Ok(())
        }
        .boxed()
    }

    fn claim(&self, key: CacheKey) -> BoxFuture<'_, std::result::Result<Claim, BoxError>> {
        self.local.claim(key)
    }
}
