//! The store's files, selection and locking.

use std::sync::{Arc, Barrier};

use hoist_builder::{create, BuilderStore, CreateRequest, NodeGroup};

pub fn request(name: &str) -> CreateRequest {
    CreateRequest {
        name: Some(name.to_owned()),
        ..CreateRequest::default()
    }
}

#[test]
fn round_trip_and_selection() {
    let dir = tempfile::tempdir().unwrap();
    let store = BuilderStore::new(dir.path());
    let txn = store.txn().unwrap();
    assert_eq!(txn.list().unwrap(), [NodeGroup::default_builder()]);
    assert_eq!(txn.current().unwrap().name, "default");

    let mut req = request("Alpha");
    req.use_builder = true;
    req.platforms = vec!["linux/arm64,linux/amd64".to_owned()];
    let created = create(&txn, &req).unwrap();
    assert_eq!(created.name, "alpha");
    assert_eq!(created.driver, "embedded");
    assert_eq!(created.nodes[0].name, "alpha0");

    let file = dir.path().join("instances/alpha");
    let stored: NodeGroup = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(stored, created);
    assert_eq!(txn.get("ALPHA").unwrap(), Some(created.clone()));
    assert_eq!(txn.current().unwrap(), created);
    let names: Vec<String> = txn.list().unwrap().into_iter().map(|g| g.name).collect();
    assert_eq!(names, ["default", "alpha"]);

    hoist_builder::remove(&txn, "alpha", false).unwrap();
    assert!(!file.exists());
    assert_eq!(txn.current().unwrap().name, "default");
    // No temp file left beside the builders.
    assert_eq!(
        std::fs::read_dir(dir.path().join("instances"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn concurrent_creates_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let threads = 16;
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|i| {
            let dir = dir.path().to_owned();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                // Each thread opens its own store: the flock excludes open files, not handles.
                let store = BuilderStore::new(&dir);
                barrier.wait();
                let txn = store.txn().unwrap();
                let mut req = request("shared");
                req.append = txn.get("shared").unwrap().is_some();
                req.node = Some(format!("n{i}"));
                req.driver = Some("remote".to_owned());
                req.endpoint = Some(format!("tcp://127.0.0.1:{}", 20000 + i));
                create(&txn, &req).unwrap();
                create(&txn, &request(&format!("own{i}"))).unwrap();
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let store = BuilderStore::new(dir.path());
    let txn = store.txn().unwrap();
    assert_eq!(txn.list().unwrap().len(), 1 + 1 + threads);
    assert_eq!(txn.find("shared").unwrap().nodes.len(), threads);
}

#[test]
fn concurrent_creates_from_processes_lose_nothing() {
    // The same through processes: this test binary re-run as a child per writer.
    if let Ok(dir) = std::env::var("HOIST_BUILDER_TEST_CHILD_DIR") {
        let store = BuilderStore::new(&dir);
        let txn = store.txn().unwrap();
        let i = std::env::var("HOIST_BUILDER_TEST_CHILD_N").unwrap();
        create(&txn, &request(&format!("proc{i}"))).unwrap();
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..8)
        .map(|i| {
            std::process::Command::new(&exe)
                .args([
                    "--exact",
                    "store::concurrent_creates_from_processes_lose_nothing",
                    "--quiet",
                ])
                .env("HOIST_BUILDER_TEST_CHILD_DIR", dir.path())
                .env("HOIST_BUILDER_TEST_CHILD_N", i.to_string())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    let store = BuilderStore::new(dir.path());
    assert_eq!(store.txn().unwrap().list().unwrap().len(), 9);
}
