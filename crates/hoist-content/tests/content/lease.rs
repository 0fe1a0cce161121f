//! Leases keep a writer's blobs alive until it names them, even against a concurrent GC.
//!
//! `child_role` does nothing in a normal run; a parent test re-executes this binary to run
//! it as a process that takes a lease and dies.

use std::path::PathBuf;
use std::process::Command;

use crate::image_fixture::{bytes, tiny_image, tiny_image_blobs};
use hoist_content::ContentStore;
use hoist_oci::{Digest, MediaType};

const ROLE: &str = "HOIST_CONTENT_LEASE_ROLE";
const ROOT: &str = "HOIST_CONTENT_LEASE_ROOT";

fn store() -> (tempfile::TempDir, ContentStore) {
    let tmp = tempfile::tempdir().unwrap();
    let store = ContentStore::open(tmp.path()).unwrap();
    (tmp, store)
}

#[test]
fn a_lease_keeps_its_blobs_until_dropped() {
    let (_tmp, store) = store();
    let data = bytes(1, 5000);
    let digest = Digest::sha256_of(&data);
    let lease = store.lease().unwrap();
    lease.add(&digest).unwrap();
    lease.add(&digest).unwrap();
    assert_eq!(lease.digests(), vec![digest.clone()]);
    store
        .write_blob((digest.clone(), data.len() as u64), &data[..])
        .unwrap();
    assert!(store.gc(&[]).unwrap().removed.is_empty());
    assert!(store.has(&digest));

    let lease_file = lease.path().to_path_buf();
    assert!(lease_file.is_file());
    drop(lease);
    assert!(!lease_file.exists());
    assert_eq!(store.gc(&[]).unwrap().removed, vec![digest]);
}

#[test]
fn a_leased_manifest_keeps_its_config_and_layers() {
    let (_tmp, store) = store();
    let lease = store.lease().unwrap();
    let image = tiny_image(&store, "leased");
    lease.add(&image.manifest.digest).unwrap();
    assert!(store.gc(&[]).unwrap().removed.is_empty());
    for d in [&image.manifest, &image.config, &image.layer] {
        assert!(store.has(&d.digest));
    }
}

#[test]
fn a_dead_holders_lease_is_removed() {
    let (tmp, store) = store();
    let data = bytes(2, 100);
    let digest = Digest::sha256_of(&data);
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "lease::child_role",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ROLE, "lease-and-die")
        .env(ROOT, tmp.path())
        .output()
        .unwrap();
    assert!(!out.status.success(), "the child was meant to abort");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("leased"),
        "the child did not reach the crash point:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(store.has(&digest));
    let leases = tmp.path().join("leases");
    assert_eq!(std::fs::read_dir(&leases).unwrap().count(), 1);
    let report = store.gc(&[]).unwrap();
    assert_eq!(report.removed, vec![digest]);
    assert_eq!(std::fs::read_dir(&leases).unwrap().count(), 0);
}

#[test]
fn leased_taggers_survive_a_gc_loop_without_grace() {
    let (_tmp, store) = store();
    let tagger = {
        let store = store.clone();
        std::thread::spawn(move || {
            for i in 0..30 {
                let lease = store.lease().unwrap();
                let blobs = tiny_image_blobs(&format!("image-{i}"));
                for (descriptor, bytes) in &blobs {
                    lease.add(&descriptor.digest).unwrap();
                    store.write_blob(descriptor, &bytes[..]).unwrap();
                }
                store.set_name(&format!("image:{i}"), &blobs[2].0).unwrap();
            }
        })
    };
    let mut rounds = 0;
    while !tagger.is_finished() {
        store.gc(&[]).unwrap();
        rounds += 1;
    }
    tagger.join().unwrap();
    assert!(rounds > 0);
    let names = store.names().unwrap();
    assert_eq!(names.len(), 30);
    for (i, name) in (0..30).map(|i| (i, format!("image:{i}"))) {
        for (descriptor, bytes) in tiny_image_blobs(&format!("image-{i}")) {
            assert_eq!(
                store.read_blob(&descriptor.digest).unwrap(),
                bytes,
                "{name}"
            );
        }
    }
    assert!(store.gc(&[]).unwrap().removed.is_empty());
}

/// Runs the role this process was spawned for; a no-op in a normal test run.
#[test]
fn child_role() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    let store = ContentStore::open(PathBuf::from(std::env::var_os(ROOT).unwrap())).unwrap();
    assert_eq!(role, "lease-and-die");
    let lease = store.lease().unwrap();
    let descriptor = store
        .put_bytes(MediaType::OciLayer, &bytes(2, 100))
        .unwrap();
    lease.add(&descriptor.digest).unwrap();
    eprintln!("leased");
    std::process::abort();
}

#[test]
fn a_named_lease_keeps_its_blobs_across_stores_until_removed() {
    let (tmp, store) = store();
    let image = tiny_image(&store, "named-lease");
    let loose = store
        .put_bytes(MediaType::OciLayerGzip, b"loose layer")
        .unwrap();
    store
        .set_named_lease(
            "cache-abc",
            &[image.manifest.digest.clone(), loose.digest.clone()],
        )
        .unwrap();
    // Another handle on the same root (another process) sees it.
    let other = ContentStore::open(tmp.path()).unwrap();
    assert!(other.gc(&[]).unwrap().removed.is_empty());
    for d in [&image.manifest, &image.config, &image.layer, &loose] {
        assert!(store.has(&d.digest), "{} was collected", d.digest);
    }
    assert_eq!(
        other.named_lease("cache-abc").unwrap(),
        Some(vec![image.manifest.digest.clone(), loose.digest.clone()])
    );
    assert_eq!(other.named_leases().unwrap().len(), 1);

    // Replacing the lease drops what it no longer lists.
    store
        .set_named_lease("cache-abc", std::slice::from_ref(&loose.digest))
        .unwrap();
    assert_eq!(store.gc(&[]).unwrap().removed.len(), 3);
    assert!(store.has(&loose.digest));

    assert!(store.remove_named_lease("cache-abc").unwrap());
    assert!(!store.remove_named_lease("cache-abc").unwrap());
    assert_eq!(store.named_lease("cache-abc").unwrap(), None);
    assert_eq!(store.gc(&[]).unwrap().removed, vec![loose.digest]);
}

#[test]
fn a_named_lease_name_must_be_a_plain_file_name() {
    let (_tmp, store) = store();
    let err = store.set_named_lease("../escape", &[]).unwrap_err();
    assert!(err.to_string().contains("invalid named lease"), "{err}");
}
