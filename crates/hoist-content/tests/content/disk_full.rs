//! A full disk makes writes fail cleanly: no partial blob, no lost name.
//!
//! Needs root to mount a tiny tmpfs; skips (saying why) otherwise.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::image_fixture::{self, bytes, tiny_image};
use hoist_content::{ContentStore, Error};
use hoist_oci::Digest;

/// A tmpfs of a few hundred KiB, unmounted on drop.
struct SmallDisk {
    dir: PathBuf,
    _tmp: tempfile::TempDir,
}

impl SmallDisk {
    fn mount() -> Option<Self> {
        if !hoist_testkit::is_root() {
            hoist_testkit::skip("mounting a small tmpfs to fill needs root");
            return None;
        }
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("disk");
        fs::create_dir(&dir).unwrap();
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                "size=384k",
                "hoist-test",
                &dir.to_string_lossy(),
            ])
            .status();
        match status {
            Ok(s) if s.success() => Some(Self { dir, _tmp: tmp }),
            other => {
                hoist_testkit::skip(&format!("cannot mount a tmpfs here: {other:?}"));
                None
            }
        }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).status();
    }
}

fn ingest_is_empty(store: &ContentStore) -> bool {
    fs::read_dir(image_fixture::ingest_dir(store))
        .unwrap()
        .next()
        .is_none()
}

/// Fills the disk with one file; returns its path.
fn fill(dir: &Path) -> PathBuf {
    let filler = dir.join("filler");
    let mut file = fs::File::create(&filler).unwrap();
    let chunk = vec![0u8; 4096];
    while file.write_all(&chunk).is_ok() {}
    let _ = file.sync_all();
    filler
}

#[test]
fn a_full_disk_fails_writes_cleanly() {
    let Some(disk) = SmallDisk::mount() else {
        return;
    };
    let store = ContentStore::open(&disk.dir).unwrap();
    let image = tiny_image(&store, "before");
    store.set_name("before", &image.manifest).unwrap();

    // A blob bigger than the disk: the write fails, nothing is visible, the temp is gone.
    let data = bytes(1, 1 << 20);
    let digest = Digest::sha256_of(&data);
    let err = store
        .write_blob((digest.clone(), data.len() as u64), &data[..])
        .unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert!(!store.has(&digest));
    assert!(ingest_is_empty(&store));

    // Through the writer: after a failed write the ingest refuses to commit.
    let mut ingest = store.begin((digest.clone(), data.len() as u64)).unwrap();
    assert!(ingest.write_all(&data).is_err());
    let err = ingest.commit(None).unwrap_err();
    assert!(
        matches!(&err, Error::IngestBroken { digest: d } if d == &digest),
        "{err:?}"
    );
    assert!(!store.has(&digest));
    assert!(ingest_is_empty(&store));

    // With the disk full, renaming a name fails and index.json keeps its old content.
    let filler = fill(&disk.dir);
    let index_before = fs::read(store.layout_dir().join("index.json")).unwrap();
    let err = store.set_name("after", &image.manifest).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert_eq!(
        fs::read(store.layout_dir().join("index.json")).unwrap(),
        index_before
    );
    assert_eq!(
        store.get_name("before").unwrap(),
        Some(image.manifest.clone())
    );
    assert!(ingest_is_empty(&store));

    // Space again: everything works.
    fs::remove_file(filler).unwrap();
    store.set_name("after", &image.manifest).unwrap();
    assert_eq!(store.names().unwrap().len(), 2);
}
