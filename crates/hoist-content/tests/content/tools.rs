//! The store is a real OCI image layout: skopeo and umoci read it.

use std::process::Command;

use crate::image_fixture::tiny_image;
use hoist_content::ContentStore;

/// Runs `tool args...`; `None` (after saying why) when the tool is not installed.
fn run(tool: &str, args: &[&str]) -> Option<String> {
    let out = match Command::new(tool).args(args).output() {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            hoist_testkit::skip(&format!("{tool} is not installed"));
            return None;
        }
        Err(e) => panic!("running {tool}: {e}"),
    };
    assert!(
        out.status.success(),
        "{tool} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8(out.stdout).unwrap())
}

#[test]
fn skopeo_reads_named_images() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ContentStore::open(tmp.path()).unwrap();
    let image = tiny_image(&store, "skopeo");
    store
        .set_name("example.com/app:v1", &image.manifest)
        .unwrap();
    let layout = store.layout_dir().display().to_string();

    let Some(out) = run(
        "skopeo",
        &["inspect", &format!("oci:{layout}:example.com/app:v1")],
    ) else {
        return;
    };
    let inspect: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(inspect["Digest"], image.manifest.digest.as_str());
    assert_eq!(inspect["Architecture"], "amd64");
    assert_eq!(inspect["Labels"]["marker"], "skopeo");

    // Copying verifies every blob's digest on the way.
    let copy = tmp.path().join("copy");
    run(
        "skopeo",
        &[
            "copy",
            "--quiet",
            &format!("oci:{layout}:example.com/app:v1"),
            &format!("oci:{}:copied", copy.display()),
        ],
    );
    assert!(copy.join("index.json").is_file());
}

#[test]
fn umoci_lists_names() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ContentStore::open(tmp.path()).unwrap();
    for name in ["first", "second"] {
        let image = tiny_image(&store, name);
        store.set_name(name, &image.manifest).unwrap();
    }
    let layout = store.layout_dir().display().to_string();
    let Some(out) = run("umoci", &["ls", "--layout", &layout]) else {
        return;
    };
    let mut names: Vec<&str> = out.lines().collect();
    names.sort();
    assert_eq!(names, ["first", "second"]);
    run("umoci", &["stat", "--image", &format!("{layout}:first")]);
}
