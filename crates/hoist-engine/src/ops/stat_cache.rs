//! Content digests of a context's files remembered by their stat, so that a rebuild reads
//! only the files that changed (BuildKit's fsutil likewise sends only files whose stat
//! changed since the last transfer).
//!
//! A file's digest is reused when its inode, size, mtime and ctime (both in nanoseconds) are
//! the ones recorded. As git does against "racy" entries, a file modified less than
//! [`RACY`] before it was hashed is not recorded: a write in the same timestamp tick could
//! otherwise leave its stat unchanged. The cache is one file per context directory under
//! `<engine>/contexts`, replaced atomically; a missing or unreadable one is empty.
//!
//! The file lists the stamps in the order the build looked them up (the walk's), in
//! postcard's compact binary encoding: a rebuild of an unchanged context meets them one
//! after the other, without building a table of paths, and a JSON file of 20,000 stamps
//! took longer to parse than the whole lookup now does.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// How recent a modification must be for the file not to be recorded.
const RACY: Duration = Duration::from_secs(2);

/// The cache file's name after the context's hash; the JSON files of earlier versions
/// (`.json`) are removed when a new one is saved.
const EXTENSION: &str = "stats";

/// What a recorded digest is valid for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Stamp {
    /// The file's path in the context.
    rel: String,
    ino: u64,
    size: u64,
    mtime: i128,
    ctime: i128,
    /// The sha256 of the content.
    sha256: [u8; 32],
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

/// One digest this build used: a recorded stamp (by its index) or a new one.
#[derive(Debug)]
enum Seen {
    Recorded(usize),
    Fresh(Stamp),
}

/// The recorded digests of one context directory, and those used in this build.
#[derive(Debug)]
pub(super) struct StatCache {
    path: PathBuf,
    recorded: Vec<Stamp>,
    /// Where the next lookup expects its path in `recorded`.
    cursor: usize,
    /// `recorded`'s indices by path, built on the first lookup not found at the cursor.
    index: Option<HashMap<String, usize>>,
    seen: Vec<Seen>,
}

impl StatCache {
    /// The cache of `context` kept under `dir`.
    pub(super) fn open(dir: &Path, context: &Path) -> StatCache {
        let mut hash = Sha256::new();
        hash.update(context.as_os_str().as_encoded_bytes());
        let path = dir.join(format!("{}.{EXTENSION}", hex::encode(hash.finalize())));
        let recorded = std::fs::read(&path)
            .ok()
            .and_then(|bytes| postcard::from_bytes(&bytes).ok())
            .unwrap_or_default();
        StatCache {
            path,
            recorded,
            cursor: 0,
            index: None,
            seen: Vec::new(),
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
        if let Some(found) = self.find(rel) {
            let stamp = &self.recorded[found];
            if stamp.matches(metadata) {
                let digest = stamp.sha256;
                self.seen.push(Seen::Recorded(found));
                return Ok(digest);
            }
        }
        let digest = read(path)?;
        let modified = metadata.modified().ok();
        let settled = modified
            .and_then(|m| SystemTime::now().duration_since(m).ok())
            .is_some_and(|age| age >= RACY);
        if settled {
            self.seen.push(Seen::Fresh(Stamp {
                rel: rel.to_owned(),
                ino: metadata.ino(),
                size: metadata.len(),
                mtime: nanos(metadata.mtime(), metadata.mtime_nsec()),
                ctime: nanos(metadata.ctime(), metadata.ctime_nsec()),
                sha256: digest,
            }));
        }
        Ok(digest)
    }

    /// The index of `rel`'s stamp: at the cursor when the lookups follow the recorded
    /// order, else from the index.
    fn find(&mut self, rel: &str) -> Option<usize> {
        let found = match self.recorded.get(self.cursor) {
            Some(stamp) if stamp.rel == rel => Some(self.cursor),
            _ => {
                let recorded = &self.recorded;
                let index = self.index.get_or_insert_with(|| {
                    (recorded.iter().enumerate())
                        .map(|(i, stamp)| (stamp.rel.clone(), i))
                        .collect()
                });
                index.get(rel).copied()
            }
        };
        if let Some(found) = found {
            self.cursor = found + 1;
        }
        found
    }

    /// Records what this build used (stamps of files no longer selected are dropped), when
    /// it differs from what was recorded. Best effort: a cache that cannot be written only
    /// costs the next build the reads.
    pub(super) fn save(self) {
        let unchanged = self.seen.len() == self.recorded.len()
            && (self.seen.iter().enumerate())
                .all(|(n, seen)| matches!(seen, Seen::Recorded(i) if *i == n));
        if unchanged {
            return;
        }
        let mut recorded: Vec<Option<Stamp>> = self.recorded.into_iter().map(Some).collect();
        let stamps: Vec<Stamp> = (self.seen.into_iter())
            .filter_map(|seen| match seen {
                Seen::Recorded(i) => recorded[i].take(),
                Seen::Fresh(stamp) => Some(stamp),
            })
            .collect();
        if let Ok(bytes) = postcard::to_stdvec(&stamps) {
            if hoist_content::write_atomic(&self.path, &bytes).is_ok() {
                let _ = std::fs::remove_file(self.path.with_extension("json"));
            }
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
        cache.recorded[0].sha256 = [7u8; 32];
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

    #[test]
    fn stamps_are_found_in_any_order_and_the_file_is_rewritten_only_on_change() {
        let tmp = tempfile::tempdir().unwrap();
        let ctx = tmp.path().join("ctx");
        std::fs::create_dir(&ctx).unwrap();
        let mut metas = HashMap::new();
        for name in ["a", "b", "c"] {
            std::fs::write(ctx.join(name), name).unwrap();
            age(&ctx.join(name), 60);
            metas.insert(name, std::fs::symlink_metadata(ctx.join(name)).unwrap());
        }
        let mut cache = StatCache::open(tmp.path(), &ctx);
        for name in ["a", "b", "c"] {
            cache.digest(name, &ctx.join(name), &metas[name]).unwrap();
        }
        let file = cache.path.clone();
        cache.save();
        let not_read = |_: &Path| -> std::io::Result<[u8; 32]> { panic!("read again") };

        // Another order, `b` no longer selected: every digest comes from the record.
        let mut cache = StatCache::open(tmp.path(), &ctx);
        for name in ["c", "a"] {
            let digest = cache.digest_with(name, &ctx.join(name), &metas[name], not_read);
            assert_eq!(digest.unwrap(), Sha256::digest(name.as_bytes()).as_slice());
        }
        cache.save();
        let cache = StatCache::open(tmp.path(), &ctx);
        let rels: Vec<&str> = cache.recorded.iter().map(|s| s.rel.as_str()).collect();
        assert_eq!(rels, ["c", "a"]);

        // The same lookups again leave the file as it is.
        let before = std::fs::metadata(&file).unwrap().ino();
        let mut cache = StatCache::open(tmp.path(), &ctx);
        for name in ["c", "a"] {
            cache
                .digest_with(name, &ctx.join(name), &metas[name], not_read)
                .unwrap();
        }
        cache.save();
        assert_eq!(std::fs::metadata(&file).unwrap().ino(), before);
    }
}
