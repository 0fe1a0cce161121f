//! What a directory held when the one process writing it last finished: each entry's
//! relative path, metadata and (for a regular file) content digest. hoistd's file-sync
//! receiver keeps one per copy of a client's context, so that neither its next sync nor
//! the engine's checksum of that copy has to walk, stat and hash the directory again.
//!
//! A listing is only as true as its owner's discipline: it describes the directory as long
//! as nothing but that owner changes it (the receiver replaces files whole, never writes
//! into one). A file's inode change time moves when something links to it (the engine's
//! snapshots do); nothing reads that field from a listing.

use std::path::Path;
use std::sync::{Mutex, OnceLock};

/// The entries of a directory in walk order: a directory before what it holds, the entries
/// of one directory by name (byte order), the order `walkdir`'s `sort_by_file_name` visits.
#[derive(Debug, Default)]
pub struct Listing {
    entries: Vec<Listed>,
    /// Checksums readers made of a selection of the entries, by a key naming the selection
    /// (the most recent [`KEPT_CHECKSUMS`]).
    checksums: Mutex<Vec<([u8; 32], [u8; 32])>>,
}

/// How many selections' checksums a listing keeps.
const KEPT_CHECKSUMS: usize = 8;

/// One entry of a [`Listing`].
#[derive(Debug)]
pub struct Listed {
    /// The path below the listed directory, `/`-separated.
    pub rel: String,
    /// What `lstat` says of it.
    pub metadata: std::fs::Metadata,
    digest: OnceLock<[u8; 32]>,
}

impl Listed {
    /// An entry whose content digest (a regular file's sha256) is `digest`, when known.
    pub fn new(rel: String, metadata: std::fs::Metadata, digest: Option<[u8; 32]>) -> Listed {
        let cell = OnceLock::new();
        if let Some(digest) = digest {
            let _ = cell.set(digest);
        }
        Listed {
            rel,
            metadata,
            digest: cell,
        }
    }

    /// The sha256 of a regular file's content, when someone has computed it.
    pub fn digest(&self) -> Option<[u8; 32]> {
        self.digest.get().copied()
    }

    /// Records the sha256 of the file's content, computed by a reader (a listing shared by
    /// reference learns it once for every later reader). A digest already known is kept.
    pub fn learn_digest(&self, digest: [u8; 32]) {
        let _ = self.digest.set(digest);
    }
}

impl Listing {
    /// The listing of `entries`, put in walk order.
    pub fn new(mut entries: Vec<Listed>) -> Listing {
        let in_order = entries
            .windows(2)
            .all(|pair| Path::new(&pair[0].rel) < Path::new(&pair[1].rel));
        if !in_order {
            entries.sort_by(|a, b| Path::new(&a.rel).cmp(Path::new(&b.rel)));
        }
        Listing {
            entries,
            checksums: Mutex::default(),
        }
    }

    /// The entries, in walk order.
    pub fn entries(&self) -> &[Listed] {
        &self.entries
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The checksum a reader recorded for the selection `key` names (with
    /// [`Listing::learn_checksum`]): a listing never changes, so neither does what a
    /// selection of it sums to.
    pub fn known_checksum(&self, key: &[u8; 32]) -> Option<[u8; 32]> {
        let known = self.checksums.lock().unwrap_or_else(|e| e.into_inner());
        known.iter().find(|(k, _)| k == key).map(|(_, sum)| *sum)
    }

    /// Records `checksum` as what the selection `key` names sums to, for later readers
    /// (the oldest record forgotten past a few).
    pub fn learn_checksum(&self, key: [u8; 32], checksum: [u8; 32]) {
        let mut known = self.checksums.lock().unwrap_or_else(|e| e.into_inner());
        known.retain(|(k, _)| *k != key);
        if known.len() == KEPT_CHECKSUMS {
            known.remove(0);
        }
        known.push((key, checksum));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_come_in_the_order_a_sorted_walk_visits_them() {
        let dir = tempfile::tempdir().unwrap();
        for path in ["a/b", "a-c", "a/b/z", "a.d", "b"] {
            std::fs::create_dir_all(dir.path().join(path)).unwrap();
        }
        let walked: Vec<String> = walkdir::WalkDir::new(dir.path())
            .min_depth(1)
            .sort_by_file_name()
            .into_iter()
            .map(|e| {
                let e = e.unwrap();
                let rel = e.path().strip_prefix(dir.path()).unwrap();
                rel.to_string_lossy().into_owned()
            })
            .collect();
        let meta = std::fs::symlink_metadata(dir.path()).unwrap();
        let mut shuffled = walked.clone();
        shuffled.reverse();
        let listing = Listing::new(
            shuffled
                .into_iter()
                .map(|rel| Listed::new(rel, meta.clone(), None))
                .collect(),
        );
        let listed: Vec<&str> = listing.entries().iter().map(|e| e.rel.as_str()).collect();
        assert_eq!(listed, walked);
        assert_eq!(walked, ["a", "a/b", "a/b/z", "a-c", "a.d", "b"]);
    }

    #[test]
    fn a_selection_checksum_is_kept_for_a_few_selections() {
        let listing = Listing::default();
        assert_eq!(listing.known_checksum(&[0; 32]), None);
        for n in 0..=KEPT_CHECKSUMS as u8 {
            listing.learn_checksum([n; 32], [n + 100; 32]);
        }
        assert_eq!(listing.known_checksum(&[0; 32]), None, "the oldest went");
        assert_eq!(listing.known_checksum(&[1; 32]), Some([101; 32]));
        listing.learn_checksum([1; 32], [7; 32]);
        assert_eq!(listing.known_checksum(&[1; 32]), Some([7; 32]));
    }

    #[test]
    fn a_digest_learnt_by_one_reader_is_there_for_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let meta = std::fs::symlink_metadata(dir.path()).unwrap();
        let entry = Listed::new("f".to_owned(), meta, None);
        assert_eq!(entry.digest(), None);
        entry.learn_digest([1; 32]);
        entry.learn_digest([2; 32]);
        assert_eq!(entry.digest(), Some([1; 32]));
    }
}
