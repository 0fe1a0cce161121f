//! [`DiskCacheStore`]: the solver's [`CacheStore`] on disk, so that a second build (another
//! process) reuses every step.
//!
//! One JSON [`CacheRecord`] per cache key under `<state>/engine/cache/<hex>.json` holding the
//! [`Ref`] (snapshot id and layer descriptors) and its bookkeeping: when it was created and
//! last used, how often it was used, and how many bytes it brought. Records are written to a
//! temp file and renamed, under an exclusive `flock` of `<state>/engine/cache.lock` (a hit
//! rewrites the record's last-used time, so loads take it exclusive too).
//!
//! A record owns what it points at: its blobs (layers; for an image source also the
//! image's index, manifest and config) are the content store's named lease `cache-<hex>`
//! (set before the record is written, removed after it is deleted), so content GC keeps
//! them; its snapshot is kept by prune as long as the record exists. A record whose
//! snapshot chain or blobs went missing anyway is a miss, and the rebuilt result replaces it.
//! Every record a build loads or saves is marked in the build's use lease, so a concurrent
//! prune leaves it alone.
//!
//! Work under way is shared between processes: the solver claims a key after a miss
//! ([`CacheStore::claim`]) and looks again before running. A claim is an exclusive `flock`
//! of `<state>/engine/running/<hex>.lock`, one file per key so unrelated steps run in
//! parallel; a second build asking for the key waits for it (polling, so it can be
//! cancelled), then finds the first's record. The holder removes the file before it lets go
//! (a taker checks that the file it locked is still the one at the path), and a crashed
//! holder's lock goes with its process.

use std::fs::File;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fs4::fs_std::FileExt;
use futures::future::BoxFuture;
use futures::FutureExt as _;
use hoist_content::Durability;
use hoist_solver::{BoxError, CacheKey, CacheStore, Claim};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::worker::{Ref, Worker};

/// A cache record as stored: the result and its bookkeeping. Records written before the
/// bookkeeping existed read with zeros, which prune treats as "long unused".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheRecord {
    /// The step's result.
    #[serde(flatten)]
    pub value: Ref,
    /// When the record was written, in milliseconds since the Unix epoch.
    #[serde(default)]
    pub created_ms: u64,
    /// When a build last used it (written or hit), in milliseconds since the Unix epoch.
    #[serde(default)]
    pub last_used_ms: u64,
    /// How many builds used it.
    #[serde(default)]
    pub usage_count: u64,
    /// Bytes on disk the step brought: its snapshots (not its inputs') and the layer blobs
    /// no input had.
    #[serde(default)]
    pub size: u64,
}

/// The name of a record's named lease in the content store.
pub(crate) fn lease_name(key_hex: &str) -> String {
    format!("cache-{key_hex}")
}

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The record directory and its lock: what the cache store and prune share.
#[derive(Debug, Clone)]
pub(crate) struct RecordDir {
    pub dir: PathBuf,
    pub lock: PathBuf,
}

impl RecordDir {
    /// The records of the engine directory `engine` (`<state>/engine`).
    pub(crate) fn new(engine: &Path) -> RecordDir {
        RecordDir {
            dir: engine.join("cache"),
            lock: engine.join("cache.lock"),
        }
    }

    /// Blocks until this caller holds the records' exclusive lock.
    pub(crate) fn lock(&self) -> Result<File> {
        if let Some(parent) = self.lock.parent() {
            std::fs::create_dir_all(parent).map_err(Error::io("create", parent))?;
        }
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&self.lock)
            .map_err(Error::io("open", &self.lock))?;
        FileExt::lock_exclusive(&file).map_err(Error::io("lock", &self.lock))?;
        Ok(file)
    }

    pub(crate) fn path(&self, key_hex: &str) -> PathBuf {
        self.dir.join(format!("{key_hex}.json"))
    }

    /// The record of `key_hex`, `None` when there is none. The caller holds the lock.
    pub(crate) fn read(&self, key_hex: &str) -> Result<Option<CacheRecord>> {
        let path = self.path(key_hex);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("read", &path)(e)),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::CacheRecord {
                path,
                reason: e.to_string(),
            })
    }

    /// Writes the record of `key_hex` atomically and durably. The caller holds the lock.
    pub(crate) fn write(&self, key_hex: &str, record: &CacheRecord) -> Result<()> {
        self.write_with(key_hex, record, Durability::Durable)
    }

    /// Writes the record of `key_hex` atomically, with `durability`. The caller holds the
    /// lock.
    fn write_with(
        &self,
        key_hex: &str,
        record: &CacheRecord,
        durability: Durability,
    ) -> Result<()> {
        let path = self.path(key_hex);
        let bytes = serde_json::to_vec(record).map_err(|e| Error::CacheRecord {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        Ok(hoist_content::write_atomic_with(&path, &bytes, durability)?)
    }

    /// The key (hex) of every record file, sorted; temp files and others are skipped.
    pub(crate) fn keys(&self) -> Result<Vec<String>> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("list", &self.dir)(e)),
        };
        let mut keys = Vec::new();
        for entry in entries {
            let entry = entry.map_err(Error::io("list", &self.dir))?;
            let name = entry.file_name();
            let Some(hex) = name.to_str().and_then(|n| n.strip_suffix(".json")) else {
                continue;
            };
            if !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                keys.push(hex.to_owned());
            }
        }
        keys.sort();
        Ok(keys)
    }
}

/// How often a build waiting for another's claim on a key tries again.
const CLAIM_POLL: Duration = Duration::from_millis(100);

/// A claim on one cache key: the exclusive lock of its file under `engine/running/`.
#[derive(Debug)]
struct KeyClaim {
    path: PathBuf,
    _file: File,
}

impl KeyClaim {
    /// The claim on the key whose lock file is `path`, `None` while another holds it.
    fn try_take(path: &Path) -> Result<Option<KeyClaim>> {
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(Error::io("open", path))?;
        if !FileExt::try_lock_exclusive(&file).map_err(Error::io("lock", path))? {
            return Ok(None);
        }
        // The previous holder removes the file before unlocking it: locking a removed file
        // claims nothing, so try again on the one at the path now.
        let locked = file.metadata().map_err(Error::io("stat", path))?;
        let current = std::fs::metadata(path).ok();
        if current.is_none_or(|m| (m.dev(), m.ino()) != (locked.dev(), locked.ino())) {
            return Ok(None);
        }
        Ok(Some(KeyClaim {
            path: path.to_path_buf(),
            _file: file,
        }))
    }
}

impl Drop for KeyClaim {
    fn drop(&mut self) {
        // Removed while still locked; closing the file then releases the lock.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Cache records in the state dir.
#[derive(Debug, Clone)]
pub struct DiskCacheStore {
    worker: Arc<Worker>,
    records: RecordDir,
    /// `<state>/engine/running`: one lock file per key being worked on.
    running: PathBuf,
}

impl DiskCacheStore {
    /// The store of `worker`'s state dir.
    pub fn open(worker: Arc<Worker>) -> Result<DiskCacheStore> {
        let records = RecordDir::new(&worker.engine_dir());
        std::fs::create_dir_all(&records.dir).map_err(Error::io("create", &records.dir))?;
        let running = worker.engine_dir().join("running");
        std::fs::create_dir_all(&running).map_err(Error::io("create", &running))?;
        Ok(DiskCacheStore {
            worker,
            records,
            running,
        })
    }

    fn load_sync(&self, key: CacheKey) -> Result<Option<Arc<Ref>>> {
        let hex = key.digest().hex();
        let _lock = self.records.lock()?;
        // A record that does not parse (a crash mid-upgrade, a hand edit) is a miss: the
        // rebuilt result replaces it.
        let Ok(Some(mut record)) = self.records.read(&hex) else {
            return Ok(None);
        };
        if !self.worker.ref_is_complete(&record.value) {
            return Ok(None);
        }
        // Records from before named leases: give their blobs one now.
        let store = self.worker.store();
        let name = lease_name(&hex);
        if store.named_lease(&name)?.is_none() {
            store.set_named_lease(&name, &record.value.blob_digests())?;
        }
        self.worker.hold_record(&hex, &record.value)?;
        record.last_used_ms = now_ms();
        record.usage_count += 1;
        // Usage statistics need no fsync: losing an update only makes prune see the record
        // as older (and a record that does not parse is a miss), while an fsync per hit would
        // cost every cached step.
        self.records
            .write_with(&hex, &record, Durability::Volatile)?;
        Ok(Some(Arc::new(record.value)))
    }

    fn save_sync(&self, key: CacheKey, value: &Ref) -> Result<()> {
        let hex = key.digest().hex();
        // Measured before locking: walking a big snapshot must not hold up other loads.
        let size = self.worker.new_usage(value);
        let _lock = self.records.lock()?;
        self.worker
            .store()
            .set_named_lease(&lease_name(&hex), &self.worker.record_blobs(value))?;
        let now = now_ms();
        let record = CacheRecord {
            value: value.clone(),
            created_ms: now,
            last_used_ms: now,
            usage_count: 1,
            size,
        };
        self.records.write(&hex, &record)?;
        self.worker.hold_record(&hex, value)
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

    fn claim(&self, key: CacheKey) -> BoxFuture<'_, Result<Claim, BoxError>> {
        let path = self.running.join(format!("{}.lock", key.digest().hex()));
        async move {
            // Each try is an open and a non-blocking flock: nothing that blocks a thread.
            loop {
                if let Some(claim) = KeyClaim::try_take(&path)? {
                    return Ok(Box::new(claim) as Claim);
                }
                tokio::time::sleep(CLAIM_POLL).await;
            }
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_from_before_the_bookkeeping_reads_with_zeros() {
        let old = r#"{"snapshot":"3","layers":[]}"#;
        let record: CacheRecord = serde_json::from_str(old).unwrap();
        assert_eq!(record.value.snapshot.unwrap().as_str(), "3");
        assert_eq!(
            (record.created_ms, record.last_used_ms, record.size),
            (0, 0, 0)
        );
    }

    #[test]
    fn a_key_claim_is_exclusive_and_leaves_no_file() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("ab01.lock");
        let claim = KeyClaim::try_take(&path).unwrap().expect("free");
        assert!(KeyClaim::try_take(&path).unwrap().is_none(), "held");
        // Another key is not held up.
        let other = KeyClaim::try_take(&tmp.path().join("cd02.lock")).unwrap();
        assert!(other.is_some());
        drop(claim);
        assert!(!path.exists(), "the holder removes its lock file");
        assert!(KeyClaim::try_take(&path).unwrap().is_some(), "free again");
    }

    #[test]
    fn a_dead_holders_lock_file_is_claimed() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("ab01.lock");
        // A crashed holder: its lock went with its process, its file stayed.
        std::fs::write(&path, "").unwrap();
        assert!(KeyClaim::try_take(&path).unwrap().is_some());
    }

    #[test]
    fn record_keys_skip_temp_and_foreign_files() {
        let tmp = tempfile::tempdir().unwrap();
        let records = RecordDir::new(tmp.path());
        std::fs::create_dir_all(&records.dir).unwrap();
        for name in ["ab01.json", ".tmpXYZ", "notes.txt", "zz.json"] {
            std::fs::write(records.dir.join(name), "{}").unwrap();
        }
        assert_eq!(records.keys().unwrap(), vec!["ab01".to_owned()]);
    }
}
