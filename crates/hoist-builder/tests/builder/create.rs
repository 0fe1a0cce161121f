//! Requests `create` refuses, each leaving the store exactly as it was.

use std::path::Path;

use hoist_builder::{create, remove, BuilderStore, CreateRequest};

use crate::store::request;

/// Every file of the store with its bytes (the lock file aside).
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for sub in ["", "instances"] {
        let Ok(entries) = std::fs::read_dir(dir.join(sub)) else {
            continue;
        };
        for entry in entries {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_file() && entry.file_name() != ".lock" {
                let name = format!("{sub}/{}", entry.file_name().to_string_lossy());
                out.push((name, std::fs::read(entry.path()).unwrap()));
            }
        }
    }
    out.sort();
    out
}

fn refused(store: &BuilderStore, req: CreateRequest) -> String {
    let before = snapshot(store.dir());
    let err = create(&store.txn().unwrap(), &req).unwrap_err().to_string();
    assert_eq!(
        snapshot(store.dir()),
        before,
        "store changed by a refused {req:?}"
    );
    err
}

fn remote(name: &str, endpoint: &str, opts: &[&str]) -> CreateRequest {
    CreateRequest {
        driver: Some("remote".to_owned()),
        endpoint: Some(endpoint.to_owned()),
        driver_opts: opts.iter().map(|s| (*s).to_owned()).collect(),
        ..request(name)
    }
}

#[test]
fn bad_requests_leave_the_store_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let store = BuilderStore::new(dir.path());
    let mut first = request("taken");
    first.use_builder = true;
    create(&store.txn().unwrap(), &first).unwrap();

    let driver = |d: &str| CreateRequest {
        driver: Some(d.to_owned()),
        ..request("x")
    };
    assert_eq!(
        refused(&store, driver("warp")),
        r#"failed to find driver "warp""#
    );
    let kubernetes_with = |opts: &[&str]| CreateRequest {
        driver: Some("kubernetes".to_owned()),
        driver_opts: opts.iter().map(|o| (*o).to_owned()).collect(),
        ..request("x")
    };
    assert_eq!(
        refused(&store, kubernetes_with(&["replicas=2,colour=red"])),
        "invalid driver option colour for kubernetes driver"
    );
    assert_eq!(
        refused(&store, kubernetes_with(&["replicas=-1"])),
        "invalid driver option replicas=\"-1\" for kubernetes driver: expected a whole number of pods, at least 1"
    );
    let docker_with = |opts: &[&str]| CreateRequest {
        driver: Some("docker".to_owned()),
        driver_opts: opts.iter().map(|o| (*o).to_owned()).collect(),
        ..request("x")
    };
    assert_eq!(
        refused(&store, docker_with(&["network=host"])),
        "invalid driver option network for docker driver"
    );
    assert_eq!(
        refused(
            &store,
            CreateRequest {
                driver_opts: vec!["image=x,colour=blue".to_owned()],
                ..driver("docker-container")
            }
        ),
        "invalid driver option colour for docker-container driver"
    );
    assert_eq!(
        refused(&store, remote("x", "tcp://127.0.0.1:1", &["colour=blue"])),
        "invalid driver option colour for remote driver"
    );
    assert_eq!(
        refused(
            &store,
            remote("x", "tcp://127.0.0.1:1", &["cacert=rel.pem"])
        ),
        "non-absolute path 'rel.pem' provided for cacert"
    );
    assert_eq!(
        refused(
            &store,
            remote("x", "tcp://127.0.0.1:1", &["cacert=/nonexistent/ca.pem"])
        ),
        r#"invalid driver option cacert="/nonexistent/ca.pem" for remote driver: no such file"#
    );
    assert_eq!(
        refused(&store, remote("x", "tcp://127.0.0.1:1", &["servername=h"])),
        "tls enabled, but missing keys cacert"
    );
    assert_eq!(
        refused(&store, remote("x", "tcp://127.0.0.1:1", &["novalue"])),
        r#"invalid value "novalue", expecting k=v"#
    );
    assert_eq!(
        refused(&store, remote("x", "http://127.0.0.1:1", &[])),
        r#"invalid endpoint "http://127.0.0.1:1": unrecognized url scheme http"#
    );
    assert_eq!(
        refused(
            &store,
            CreateRequest {
                driver_opts: vec!["a=b".to_owned()],
                ..request("x")
            }
        ),
        "invalid driver option a for embedded driver"
    );
    assert_eq!(
        refused(&store, request("taken")),
        r#"existing instance for "taken" but no append mode, specify the node name to make changes for existing instances"#
    );
    assert_eq!(
        refused(&store, request("default")),
        "default is a reserved name and cannot be used to identify builder instance"
    );
    assert_eq!(
        refused(&store, request("9lives")),
        "invalid name 9lives, name needs to start with a letter and may not contain symbols, except ._-"
    );
    assert_eq!(
        refused(
            &store,
            CreateRequest {
                append: true,
                ..request("missing")
            }
        ),
        r#"failed to find instance "missing" for append"#
    );

    let config = dir.path().join("bad.toml");
    std::fs::write(
        &config,
        "[registry.\"r.example\"]\nhttp = true\nmirrors = [\n",
    )
    .unwrap();
    let err = refused(
        &store,
        CreateRequest {
            buildkitd_config: Some(config.clone()),
            ..request("x")
        },
    );
    assert!(
        err.starts_with(&format!(
            "failed to load buildkit configuration file: invalid registry config {}: line 4:",
            config.display()
        )),
        "{err}"
    );

    let before = snapshot(store.dir());
    let txn = store.txn().unwrap();
    assert_eq!(
        remove(&txn, "ghost", false).unwrap_err().to_string(),
        r#"no builder "ghost" found"#
    );
    assert!(remove(&txn, "default", false)
        .unwrap_err()
        .to_string()
        .contains("default builder cannot be removed"));
    drop(txn);
    assert_eq!(snapshot(store.dir()), before);
}

#[test]
fn buildkitd_config_is_kept_in_the_node() {
    let dir = tempfile::tempdir().unwrap();
    let store = BuilderStore::new(dir.path().join("store"));
    let config = dir.path().join("buildkitd.toml");
    let text = "[registry.\"r.example:5000\"]\n  http = true\n  insecure = true\n";
    std::fs::write(&config, text).unwrap();
    let group = create(
        &store.txn().unwrap(),
        &CreateRequest {
            buildkitd_config: Some(config),
            ..request("cfg")
        },
    )
    .unwrap();
    assert_eq!(group.nodes[0].files["buildkitd.toml"], text.as_bytes());
    let stored = store.txn().unwrap().find("cfg").unwrap();
    assert_eq!(stored, group);
}

#[test]
fn append_and_leave_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let store = BuilderStore::new(dir.path());
    let txn = store.txn().unwrap();
    create(
        &txn,
        &CreateRequest {
            platforms: vec!["linux/amd64".into()],
            ..remote("multi", "unix:///run/a.sock", &[])
        },
    )
    .unwrap();
    let mut second = remote("multi", "tcp://127.0.0.1:1234", &[]);
    second.append = true;
    second.platforms = vec!["linux/arm64".into()];
    let group = create(&txn, &second).unwrap();
    let names: Vec<&str> = group.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["multi0", "multi1"]);
    let mut dup = remote("multi", "tcp://127.0.0.1:1234", &[]);
    dup.append = true;
    let before = snapshot(store.dir());
    assert_eq!(
        create(&txn, &dup).unwrap_err().to_string(),
        "invalid duplicate endpoint tcp://127.0.0.1:1234"
    );
    assert_eq!(snapshot(store.dir()), before);
    let group = hoist_builder::leave(&txn, Some("multi"), Some("multi0")).unwrap();
    assert_eq!(group.nodes.len(), 1);
    assert_eq!(txn.find("multi").unwrap().nodes[0].name, "multi1");
}

/// `create --append --buildkitd-config F` and `create --node N --buildkitd-config F` keep
/// the file with that node only (buildx's per-node `Files`); a malformed file is refused
/// naming it and its line, and a `remote` node refuses a config file as buildx's remote
/// driver does — the store unchanged each time.
#[test]
fn each_node_keeps_its_own_buildkitd_config() {
    let dir = tempfile::tempdir().unwrap();
    let store = BuilderStore::new(dir.path().join("store"));
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let (a, b, c) = (
        "debug = true\n",
        "[registry.\"r.example\"]\nhttp = true\n",
        "[registry.\"m.example\"]\nmirrors = [\"x.example\"]\n",
    );
    let node =
        |config: &Path, endpoint: Option<&str>, append: bool, node: Option<&str>| CreateRequest {
            driver: Some("docker-container".to_owned()),
            buildkitd_config: Some(config.to_owned()),
            endpoint: endpoint.map(str::to_owned),
            append,
            node: node.map(str::to_owned),
            ..request("dc")
        };
    let txn = store.txn().unwrap();
    create(&txn, &node(&write("a.toml", a), None, false, None)).unwrap();
    let group = create(
        &txn,
        &node(
            &write("b.toml", b),
            Some("unix:///var/run/docker.sock"),
            true,
            None,
        ),
    )
    .unwrap();
    let files = |group: &hoist_builder::NodeGroup| -> Vec<String> {
        group
            .nodes
            .iter()
            .map(|n| String::from_utf8(n.files["buildkitd.toml"].clone()).unwrap())
            .collect()
    };
    assert_eq!(files(&group), [a, b]);
    // Changing one node's file leaves the other's.
    let group = create(&txn, &node(&write("c.toml", c), None, false, Some("dc0"))).unwrap();
    assert_eq!(files(&group), [c, b]);
    assert_eq!(files(&txn.find("dc").unwrap()), [c, b]);
    drop(txn);

    let bad = write("bad.toml", "debug = true\n[registry.\"r\"]\nhttp = yes\n");
    let err = refused(&store, node(&bad, Some("tcp://127.0.0.1:2375"), true, None));
    assert!(
        err.starts_with(&format!(
            "failed to load buildkit configuration file: invalid registry config {}: line 3",
            bad.display()
        )),
        "{err}"
    );
    let missing = dir.path().join("missing.toml");
    let err = refused(
        &store,
        node(&missing, Some("tcp://127.0.0.1:2375"), true, None),
    );
    assert!(err.contains(&missing.display().to_string()), "{err}");

    // remote: buildx's remote driver takes no config file, first node or appended.
    create(
        &store.txn().unwrap(),
        &remote("far", "tcp://127.0.0.1:1", &[]),
    )
    .unwrap();
    for append in [false, true] {
        let err = refused(
            &store,
            CreateRequest {
                buildkitd_config: Some(write("a.toml", a)),
                append,
                ..remote(
                    if append { "far" } else { "near" },
                    "tcp://127.0.0.1:2",
                    &[],
                )
            },
        );
        assert_eq!(
            err,
            "setting config file is not supported for remote driver"
        );
    }
}
