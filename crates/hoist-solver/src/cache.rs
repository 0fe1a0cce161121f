//! [`CacheStore`]: where results outlive a solve, and [`MemoryCacheStore`], the in-memory
//! one used by tests and one-shot builds.
//!
//! The persistent store (records mapping keys to snapshots and layers) lives in another
//! crate and implements the same trait; the solver only ever loads and saves by key.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use futures::future::BoxFuture;

use crate::digest::CacheKey;
use crate::error::BoxError;

/// A map from [`CacheKey`] to results that outlives a solve.
///
/// The methods return boxed futures so that a solver can hold any store as
/// `Arc<dyn CacheStore<T>>`. Saving the same key twice replaces the value (a vertex forced to
/// run with `ignore_cache` stores its fresh result).
pub trait CacheStore<T>: Send + Sync {
    /// The result stored under `key`, if any.
    fn load(&self, key: CacheKey) -> BoxFuture<'_, Result<Option<Arc<T>>, BoxError>>;

    /// Stores `value` under `key`.
    fn save(&self, key: CacheKey, value: Arc<T>) -> BoxFuture<'_, Result<(), BoxError>>;

    /// Claims `key` for one "look up, run, save" against every other user of the store
    /// (other processes sharing it on disk): resolves once no one else holds the claim, and
    /// holds it until the returned guard is dropped. The solver claims a key after a miss,
    /// looks it up again (whoever held the claim may have saved it) and runs only on a
    /// second miss, so work under way elsewhere is waited for and shared.
    ///
    /// The default claims nothing: a store private to one solver needs none, as a solver
    /// runs each key once anyway.
    fn claim(&self, key: CacheKey) -> BoxFuture<'_, Result<Claim, BoxError>> {
        let _ = key;
        Box::pin(std::future::ready(Ok(Box::new(()) as Claim)))
    }
}

/// A claim on a cache key ([`CacheStore::claim`]), released when dropped.
pub type Claim = Box<dyn Send + Sync>;

/// A [`CacheStore`] in a `HashMap`: shared between solvers of one process, gone at exit.
pub struct MemoryCacheStore<T> {
    entries: Mutex<HashMap<CacheKey, Arc<T>>>,
}

impl<T> MemoryCacheStore<T> {
    /// An empty store.
    pub fn new() -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// How many keys are stored.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Whether `key` is stored.
    pub fn contains(&self, key: &CacheKey) -> bool {
        self.lock().contains_key(key)
    }

    /// Forgets every entry.
    pub fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<CacheKey, Arc<T>>> {
        // The map is never left half-updated, so a panic elsewhere does not poison it.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<T> Default for MemoryCacheStore<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> fmt::Debug for MemoryCacheStore<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryCacheStore")
            .field("entries", &self.len())
            .finish()
    }
}

impl<T: Send + Sync> CacheStore<T> for MemoryCacheStore<T> {
    fn load(&self, key: CacheKey) -> BoxFuture<'_, Result<Option<Arc<T>>, BoxError>> {
        let value = self.lock().get(&key).cloned();
        Box::pin(std::future::ready(Ok(value)))
    }

    fn save(&self, key: CacheKey, value: Arc<T>) -> BoxFuture<'_, Result<(), BoxError>> {
        self.lock().insert(key, value);
        Box::pin(std::future::ready(Ok(())))
    }
}
