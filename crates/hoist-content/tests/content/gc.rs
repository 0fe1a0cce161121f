//! Garbage collection keeps what names reach and removes the rest.

use crate::image_fixture;
use std::fs;
use std::io::Write;
use std::time::{Duration, SystemTime};

use crate::image_fixture::{bytes, tiny_image};
use hoist_content::{ContentStore, GcOptions};
use hoist_oci::{Descriptor, Digest, MediaType};
use serde_json::json;

fn store() -> (tempfile::TempDir, ContentStore) {
    let tmp = tempfile::tempdir().unwrap();
    let store = ContentStore::open(tmp.path()).unwrap();
    (tmp, store)
}

fn sorted(mut digests: Vec<Digest>) -> Vec<Digest> {
    digests.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    digests
}

#[test]
fn gc_keeps_reachable_and_removes_unreachable() {
    let (_tmp, store) = store();
    let kept = tiny_image(&store, "kept");
    let dropped = tiny_image(&store, "dropped");
    let loose = store
        .put_bytes(MediaType::OciLayer, &bytes(1, 3000))
        .unwrap();
    store.set_name("kept", &kept.manifest).unwrap();

    let report = store.gc(&[]).unwrap();
    // The empty layer is shared by both images, so it stays.
    assert_eq!(kept.layer, dropped.layer);
    let removed = [&dropped.manifest, &dropped.config, &loose];
    assert_eq!(
        report.removed,
        sorted(removed.iter().map(|d| d.digest.clone()).collect())
    );
    assert_eq!(report.bytes, removed.iter().map(|d| d.size).sum::<u64>());
    for d in [&kept.manifest, &kept.config, &kept.layer] {
        assert!(store.has(&d.digest), "{} should be kept", d.digest);
    }
    for digest in &report.removed {
        assert!(!store.has(digest), "{digest} should be gone");
    }
    assert_eq!(store.gc(&[]).unwrap().removed, Vec::<Digest>::new());

    // Removing the name makes the whole image garbage.
    store.remove_name("kept").unwrap();
    let report = store.gc(&[]).unwrap();
    assert_eq!(report.removed.len(), 3);
    assert!(store
        .layout_dir()
        .join("blobs/sha256")
        .read_dir()
        .unwrap()
        .next()
        .is_none());
}

#[test]
fn gc_walks_indexes_and_keeps_extra_roots() {
    let (_tmp, store) = store();
    let amd64 = tiny_image(&store, "amd64");
    let arm64 = tiny_image(&store, "arm64");
    let index = json!({
        "schemaVersion": 2,
        "mediaType": MediaType::OciIndex.as_str(),
        "manifests": [amd64.manifest, arm64.manifest],
    });
    let index = store
        .put_bytes(MediaType::OciIndex, index.to_string().as_bytes())
        .unwrap();
    store.set_name("multi:latest", &index).unwrap();
    let extra = tiny_image(&store, "extra");
    let garbage = store
        .put_bytes(MediaType::OciLayer, &bytes(2, 100))
        .unwrap();

    let report = store
        .gc(std::slice::from_ref(&extra.manifest.digest))
        .unwrap();
    assert_eq!(report.removed, vec![garbage.digest]);
    for d in [
        &index,
        &amd64.manifest,
        &amd64.config,
        &arm64.manifest,
        &arm64.config,
    ] {
        assert!(store.has(&d.digest));
    }
    assert!(store.has(&extra.config.digest));
}

#[test]
fn gc_tolerates_missing_children_and_keeps_unnamed_entries() {
    let (_tmp, store) = store();
    // A manifest whose layer was never pulled, referenced by an unnamed index.json entry.
    let config = store.put_bytes(MediaType::OciConfig, b"{}").unwrap();
    let missing = Descriptor::of_bytes(MediaType::OciLayerGzip, b"not here");
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MediaType::OciManifest.as_str(),
        "config": config,
        "layers": [missing],
    });
    let manifest = store
        .put_bytes(MediaType::OciManifest, manifest.to_string().as_bytes())
        .unwrap();
    let index = json!({"schemaVersion": 2, "manifests": [manifest]});
    fs::write(store.layout_dir().join("index.json"), index.to_string()).unwrap();
    let report = store.gc(&[]).unwrap();
    assert!(report.removed.is_empty(), "{report:?}");
    assert!(store.has(&config.digest));
}

#[test]
fn gc_spares_recent_blobs_when_asked() {
    let (_tmp, store) = store();
    let fresh = store.put_bytes(MediaType::OciLayer, &bytes(3, 10)).unwrap();
    let options = GcOptions {
        min_blob_age: Duration::from_secs(600),
        ..GcOptions::default()
    };
    assert!(store.gc_with(&options).unwrap().removed.is_empty());
    assert!(store.has(&fresh.digest));
    // Old enough now: backdate it.
    let old = SystemTime::now() - Duration::from_secs(3600);
    fs::File::open(image_fixture::blob_path(&store, &fresh.digest))
        .unwrap()
        .set_modified(old)
        .unwrap();
    assert_eq!(
        store.gc_with(&options).unwrap().removed,
        vec![fresh.digest.clone()]
    );
    // Writing a present blob again refreshes its age.
    store.put_bytes(MediaType::OciLayer, &bytes(3, 10)).unwrap();
    fs::File::open(image_fixture::blob_path(&store, &fresh.digest))
        .unwrap()
        .set_modified(old)
        .unwrap();
    store.put_bytes(MediaType::OciLayer, &bytes(3, 10)).unwrap();
    assert!(store.gc_with(&options).unwrap().removed.is_empty());
}

#[test]
fn gc_removes_ingests_of_dead_writers_whatever_their_age() {
    let (_tmp, store) = store();
    // A temp file nobody holds locked: its writer died (a second ago).
    let dead = image_fixture::ingest_dir(&store).join("abc-dead");
    fs::write(&dead, vec![1u8; 500]).unwrap();
    let mut live = store.writer().unwrap();
    live.write_all(&[2u8; 70]).unwrap();
    live.flush().unwrap();
    let report = store.gc(&[]).unwrap();
    assert_eq!((report.removed_ingests, report.ingest_bytes), (1, 500));
    assert!(!dead.exists());
    let live = live.commit(None).unwrap();
    assert!(
        store.has(&live.digest),
        "the live writer's temp file was removed"
    );
}

#[test]
fn gc_leaves_foreign_files_alone() {
    let (_tmp, store) = store();
    let odd = store.layout_dir().join("blobs/sha256/README");
    fs::write(&odd, "not a blob").unwrap();
    assert!(store.gc(&[]).unwrap().removed.is_empty());
    assert!(odd.exists());
}
