//! Many writers on one store: threads, processes, and a process that dies mid-write.
//!
//! Processes are this test binary re-executed: `child_role` does nothing in a normal run and
//! plays the role named by `HOIST_CONTENT_TEST_ROLE` when a parent test spawns it.

use crate::image_fixture;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use crate::image_fixture::{bytes, tiny_image};
use hoist_content::{ContentStore, GcOptions, Written};
use hoist_oci::{Digest, MediaType};

const ROLE: &str = "HOIST_CONTENT_TEST_ROLE";
const ROOT: &str = "HOIST_CONTENT_TEST_ROOT";
const ID: &str = "HOIST_CONTENT_TEST_ID";
/// Names each writer sets.
const NAMES_PER_WRITER: usize = 15;
/// The blob every writer writes (big enough that writes overlap).
const SHARED_SEED: u64 = 42;
const SHARED_LEN: usize = 3 * 1024 * 1024;

/// Writes the shared blob, then sets its own names, each to its own image.
fn writer(store: &ContentStore, id: &str) {
    let shared = bytes(SHARED_SEED, SHARED_LEN);
    let digest = Digest::sha256_of(&shared);
    store
        .write_blob((digest.clone(), shared.len() as u64), &shared[..])
        .unwrap();
    for i in 0..NAMES_PER_WRITER {
        let image = tiny_image(store, &format!("{id}-{i}"));
        store
            .set_name(&format!("example.com/{id}:v{i}"), &image.manifest)
            .unwrap();
        // Rewrite the shared blob in between, through the writer this time.
        let mut ingest = store.begin((digest.clone(), shared.len() as u64)).unwrap();
        ingest.write_all(&shared).unwrap();
        ingest.commit(None).unwrap();
    }
}

/// Checks what writers `ids` left: every name, the shared blob intact, no temp files.
fn check_writers(store: &ContentStore, ids: &[String]) {
    let names = store.names().unwrap();
    assert_eq!(
        names.len(),
        ids.len() * NAMES_PER_WRITER,
        "{:?}",
        names.keys()
    );
    for id in ids {
        for i in 0..NAMES_PER_WRITER {
            let name = format!("example.com/{id}:v{i}");
            let descriptor = names
                .get(&name)
                .unwrap_or_else(|| panic!("{name} was lost"));
            store.verify_blob(&descriptor.digest).unwrap();
        }
    }
    let shared = bytes(SHARED_SEED, SHARED_LEN);
    let digest = Digest::sha256_of(&shared);
    assert_eq!(store.read_blob(&digest).unwrap(), shared);
    let leftovers: Vec<_> = std::fs::read_dir(image_fixture::ingest_dir(store))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
}

#[test]
fn threads_write_the_same_blob_and_tag_different_names() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ContentStore::open(tmp.path()).unwrap();
    let ids: Vec<String> = (0..4).map(|t| format!("thread{t}")).collect();
    let barrier = Arc::new(Barrier::new(ids.len()));
    let handles: Vec<_> = ids
        .iter()
        .map(|id| {
            let (store, barrier, id) = (store.clone(), barrier.clone(), id.clone());
            std::thread::spawn(move || {
                barrier.wait();
                writer(&store, &id);
            })
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
    check_writers(&store, &ids);
}

#[test]
fn processes_write_the_same_blob_and_tag_different_names() {
    let tmp = tempfile::tempdir().unwrap();
    let go = tmp.path().join("go");
    let ids: Vec<String> = (0..3).map(|p| format!("process{p}")).collect();
    let children: Vec<Child> = ids
        .iter()
        .map(|id| spawn_child("writer", tmp.path(), id))
        .collect();
    // Start them together, once all are up, and write from this process as well.
    std::fs::write(&go, "").unwrap();
    let store = ContentStore::open(tmp.path()).unwrap();
    writer(&store, "parent");
    for (id, child) in ids.iter().zip(children) {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{id} failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut all = ids.clone();
    all.push("parent".to_owned());
    check_writers(&store, &all);
}

#[test]
fn a_process_killed_mid_write_leaves_no_blob() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ContentStore::open(tmp.path()).unwrap();
    let data = bytes(7, 1 << 20);
    let digest = Digest::sha256_of(&data);
    let out = spawn_child("crash", tmp.path(), "crash")
        .wait_with_output()
        .unwrap();
    assert!(!out.status.success(), "the child was meant to abort");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("half written"),
        "the child did not reach the crash point:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!store.has(&digest));
    let leftovers = std::fs::read_dir(image_fixture::ingest_dir(&store))
        .unwrap()
        .count();
    assert_eq!(
        leftovers, 1,
        "the crashed writer's temp file stays in ingest/"
    );
    // A live writer's temp file is spared ...
    let mut live = store.writer().unwrap();
    live.write_all(b"still writing").unwrap();
    live.flush().unwrap();
    assert_eq!(
        store.garbage_usage().unwrap().ingests,
        (data.len() / 2) as u64
    );
    // ... the dead writer's goes at once, young as it is.
    let report = store.gc(&[]).unwrap();
    assert_eq!(report.removed_ingests, 1);
    assert_eq!(report.ingest_bytes, (data.len() / 2) as u64);
    let live = live.commit(None).unwrap();
    assert!(
        store.has(&live.digest),
        "GC removed a live writer's temp file"
    );
    // The blob can still be written whole.
    assert_eq!(
        store
            .write_blob((digest.clone(), data.len() as u64), &data[..])
            .unwrap(),
        Written::Stored
    );
}

#[test]
fn gc_with_a_grace_period_never_breaks_a_tagger() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ContentStore::open(tmp.path()).unwrap();
    let garbage = store
        .put_bytes(MediaType::OciLayer, &bytes(9, 100))
        .unwrap();
    std::fs::File::open(image_fixture::blob_path(&store, &garbage.digest))
        .unwrap()
        .set_modified(std::time::SystemTime::now() - Duration::from_secs(3600))
        .unwrap();
    let tagger = {
        let store = store.clone();
        std::thread::spawn(move || writer(&store, "tagger"))
    };
    // Collect over and over while the tagger writes and names images: blobs written but not
    // named yet are young, so the grace period spares them, and every name stays whole.
    let options = GcOptions {
        min_blob_age: Duration::from_secs(60),
        ..GcOptions::default()
    };
    let mut removed = Vec::new();
    while !tagger.is_finished() {
        removed.extend(store.gc_with(&options).unwrap().removed);
        for (name, manifest) in store.names().unwrap() {
            assert!(
                store.has(&manifest.digest),
                "{name} points at a removed manifest"
            );
        }
    }
    tagger.join().unwrap();
    removed.extend(store.gc_with(&options).unwrap().removed);
    assert_eq!(removed, vec![garbage.digest]);
    check_writers(&store, &["tagger".to_owned()]);
    for (_, manifest) in store.names().unwrap() {
        let doc: serde_json::Value =
            serde_json::from_slice(&store.read_blob(&manifest.digest).unwrap()).unwrap();
        for child in [&doc["config"], &doc["layers"][0]] {
            let digest: Digest = child["digest"].as_str().unwrap().parse().unwrap();
            store.verify_blob(&digest).unwrap();
        }
    }
}

/// Runs the role this process was spawned for; a no-op in a normal test run.
#[test]
fn child_role() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    let root = PathBuf::from(std::env::var_os(ROOT).unwrap());
    let id = std::env::var(ID).unwrap();
    let store = ContentStore::open(&root).unwrap();
    match role.as_str() {
        "writer" => {
            wait_for(&root.join("go"));
            writer(&store, &id);
        }
        "crash" => {
            let data = bytes(7, 1 << 20);
            let digest = Digest::sha256_of(&data);
            let mut ingest = store.begin((digest, data.len() as u64)).unwrap();
            ingest.write_all(&data[..data.len() / 2]).unwrap();
            ingest.flush().unwrap();
            eprintln!("half written");
            std::process::abort();
        }
        other => panic!("unknown role {other}"),
    }
}

fn spawn_child(role: &str, root: &Path, id: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "concurrency::child_role",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ROLE, role)
        .env(ROOT, root)
        .env(ID, id)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

fn wait_for(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}
