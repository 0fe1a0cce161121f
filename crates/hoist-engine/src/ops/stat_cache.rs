//! Content digests of a context's files remembered by their stat, so that a rebuild reads
//! only the files that changed (BuildKit's fsutil likewise sends only files whose stat
//! changed since the last transfer).
//!
//! A file's digest is reused when its inode, size, mtime and ctime (both in nanoseconds) are
//! the ones recorded. As git does against "racy" entries, a file modified less than
//! [`RACY`] before it was hashed is not recorded: a write in the same timestamp tick could
//! otherwise leave its stat unchanged. The cache is one JSON file per context directory
//! under `<engine>/contexts`, replaced atomically; a missing or unreadable one is empty.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// How recent a modification must be for the file not to be recorded.
const RACY: Duration = Duration::from_secs(2);

/// What a recorded digest is valid for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Stamp {
    ino: u64,
    size: u64,
    mtime: i128,
    ctime: i128,
    /// The sha256 of the content, lowercase hex.
    sha256: String,
}

impl Stamp {
    fn matches(&self, metadata: &std::fs::Metadata) -> bool {
        self.ino == metadata.ino()
            && self.size == metadata.len()
            && self.mtime == nanos(metadata.mtime(), metadata.mtime_nsec())
            && self.ctime == nanos(metadata.ctime(), metadata.ctime_nsec())
    }
}

fn nanos(secs: i64, nsec: i64) -> i128 {
    i128::from(secs) * 1_000_000_000 + i128::from(nsec)
}

/// The recorded digests of one context directory, and those seen in this build.
#[derive(Debug)]
pub(super) struct StatCache {
    path: PathBuf,
    recorded: HashMap<String, Stamp>,
    seen: HashMap<String, Stamp>,
}

impl StatCache {
    /// The cache of `context` kept under `dir`.
    pub(super) fn open(dir: &Path, context: &Path) -> StatCache {
        let mut hash = Sha256::new();
        hash.update(context.as_os_str().as_encoded_bytes());
        let path = dir.join(format!("{}.json", hex::encode(hash.finalize())));
        let recorded = std::fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        StatCache {
            path,
            recorded,
            seen: HashMap::new(),
        }
    }

    /// The content digest of the regular file `path` (named `rel` in the context), from the
    /// record when its stat is unchanged, else by reading it.
    #[cfg(test)]
    pub(super) fn digest(
        &mut self,
        rel: &str,
        path: &Path,
        metadata: &std::fs::Metadata,
    ) -> std::io::Result<[u8; 32]> {
        self.digest_with(rel, path, metadata, super::checksum::file_digest)
    }

    /// [`StatCache::digest`], reading the file with `read` when it must be read.
    pub(super) fn digest_with(
        &mut self,
        rel: &str,
        path: &Path,
        metadata: &std::fs::Metadata,
        read: impl FnOnce(&Path) -> std::io::Result<[u8; 32]>,
    ) -> std::io::Result<[u8; 32]> {
        if let Some(stamp) = self.recorded.get(rel).filter(|s| s.matches(metadata)) {
            let mut out = [0u8; 32];
            if hex::decode_to_slice(&stamp.sha256, &mut out).is_ok() {
                self.seen.insert(rel.to_owned(), stamp.clone());
                return Ok(out);
            }
        }
        let digest = read(path)?;
        let modified = metadata.modified().ok();
        let settled = modified
            .and_then(|m| SystemTime::now().duration_since(m).ok())
            .is_some_and(|age| age >= RACY);
        if settled {
            self.seen.insert(
                rel.to_owned(),
                Stamp {
                    ino: metadata.ino(),
                    size: metadata.len(),
                    mtime: nanos(metadata.mtime(), metadata.mtime_nsec()),
                    ctime: nanos(metadata.ctime(), metadata.ctime_nsec()),
                    sha256: hex::encode(digest),
                },
            );
        }
        Ok(digest)
    }

    /// Records what this build saw (entries of files no longer selected are dropped), when
    /// it differs from what was recorded. Best effort: a cache that cannot be written only
    /// costs the next build the reads.
    pub(super) fn save(self) {
        if self.seen == self.recorded {
            return;
        }
        if let Ok(bytes) = serde_json::to_vec(&self.seen) {
            let _ = hoist_content::write_atomic(&self.path, &bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn age(path: &Path, secs: u64) {
        let then = SystemTime::now() - Duration::from_secs(secs);
        filetime::set_file_mtime(path, filetime::FileTime::from_system_time(then)).unwrap();
    }

    #[test]
    fn an_unchanged_file_is_not_read_again_and_a_changed_one_is() {
        let tmp = tempfile::tempdir().unwrap();
        let ctx = tmp.path().join("ctx");
        std::fs::create_dir(&ctx).unwrap();
        let file = ctx.join("a");
        std::fs::write(&file, b"one").unwrap();
        age(&file, 60);
        let meta = std::fs::symlink_metadata(&file).unwrap();
        let mut cache = StatCache::open(tmp.path(), &ctx);
        let first = cache.digest("a", &file, &meta).unwrap();
        cache.save();

        // The recorded digest is used as long as the stat matches, even if it is a lie.
        let mut cache = StatCache::open(tmp.path(), &ctx);
        cache.recorded.get_mut("a").unwrap().sha256 = hex::encode([7u8; 32]);
        assert_eq!(cache.digest("a", &file, &meta).unwrap(), [7u8; 32]);

        // A rewrite changes the ctime: the file is read again.
        std::fs::write(&file, b"two").unwrap();
        age(&file, 60);
        let meta = std::fs::symlink_metadata(&file).unwrap();
        let mut cache = StatCache::open(tmp.path(), &ctx);
        let second = cache.digest("a", &file, &meta).unwrap();
        assert_ne!(first, second);
        assert_eq!(second, super::super::checksum::file_digest(&file).unwrap());
    }

    #[test]
    fn a_file_modified_just_now_is_not_recorded() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("fresh");
        std::fs::write(&file, b"x").unwrap();
        let meta = std::fs::symlink_metadata(&file).unwrap();
        let mut cache = StatCache::open(tmp.path(), tmp.path());
        cache.digest("fresh", &file, &meta).unwrap();
        assert!(cache.seen.is_empty());
    }
}
