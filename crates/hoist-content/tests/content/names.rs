//! Names in `index.json`: set, get, remove, list; other entries kept.

use std::fs;

use crate::image_fixture::tiny_image;
use hoist_content::{ContentStore, Error};
use hoist_oci::annotations::REF_NAME;
use hoist_oci::{Digest, MediaType};
use serde_json::{json, Value};

fn store() -> (tempfile::TempDir, ContentStore) {
    let tmp = tempfile::tempdir().unwrap();
    let store = ContentStore::open(tmp.path()).unwrap();
    (tmp, store)
}

fn index(store: &ContentStore) -> Value {
    serde_json::from_slice(&fs::read(store.layout_dir().join("index.json")).unwrap()).unwrap()
}

#[test]
fn set_get_replace_remove() {
    let (_tmp, store) = store();
    let one = tiny_image(&store, "one");
    let two = tiny_image(&store, "two");
    assert_eq!(store.get_name("example.com/app:v1").unwrap(), None);

    store.set_name("example.com/app:v1", &one.manifest).unwrap();
    store
        .set_name("example.com/app:latest", &one.manifest)
        .unwrap();
    assert_eq!(
        store.get_name("example.com/app:v1").unwrap(),
        Some(one.manifest.clone())
    );

    // Re-pointing a name replaces its entry in place.
    store.set_name("example.com/app:v1", &two.manifest).unwrap();
    assert_eq!(
        store.get_name("example.com/app:v1").unwrap(),
        Some(two.manifest.clone())
    );
    let doc = index(&store);
    let entries = doc["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["annotations"][REF_NAME], "example.com/app:v1");
    assert_eq!(entries[0]["digest"], two.manifest.digest.as_str());
    assert_eq!(
        entries[1]["annotations"][REF_NAME],
        "example.com/app:latest"
    );

    let names = store.names().unwrap();
    assert_eq!(
        names.keys().collect::<Vec<_>>(),
        ["example.com/app:latest", "example.com/app:v1"]
    );
    assert_eq!(names["example.com/app:latest"], one.manifest);

    assert!(store.remove_name("example.com/app:latest").unwrap());
    assert!(!store.remove_name("example.com/app:latest").unwrap());
    assert_eq!(store.get_name("example.com/app:latest").unwrap(), None);
    assert_eq!(store.names().unwrap().len(), 1);
}

#[test]
fn other_annotations_survive_and_ref_name_is_hidden() {
    let (_tmp, store) = store();
    let image = tiny_image(&store, "x");
    let mut descriptor = image.manifest.clone();
    descriptor.annotations.insert(
        "org.opencontainers.image.created".into(),
        "2024-01-01T00:00:00Z".into(),
    );
    store.set_name("x", &descriptor).unwrap();
    let doc = index(&store);
    let annotations = &doc["manifests"][0]["annotations"];
    assert_eq!(annotations[REF_NAME], "x");
    assert_eq!(
        annotations["org.opencontainers.image.created"],
        "2024-01-01T00:00:00Z"
    );
    assert_eq!(store.get_name("x").unwrap(), Some(descriptor));
}

#[test]
fn unknown_fields_and_unnamed_entries_are_kept() {
    let (_tmp, store) = store();
    let image = tiny_image(&store, "y");
    let unnamed = json!({
        "mediaType": MediaType::OciManifest.as_str(),
        "digest": image.manifest.digest.as_str(),
        "size": image.manifest.size,
    });
    let written = json!({
        "schemaVersion": 2,
        "annotations": {"note": "kept"},
        "manifests": [unnamed.clone()],
        "x-extra": [1, 2, 3],
    });
    fs::write(store.layout_dir().join("index.json"), written.to_string()).unwrap();
    store.set_name("y", &image.manifest).unwrap();
    let doc = index(&store);
    assert_eq!(doc["annotations"], json!({"note": "kept"}));
    assert_eq!(doc["x-extra"], json!([1, 2, 3]));
    assert_eq!(doc["manifests"][0], unnamed);
    assert_eq!(doc["manifests"][1]["annotations"][REF_NAME], "y");
    assert_eq!(store.names().unwrap().len(), 1);
}

#[test]
fn naming_an_absent_blob_is_refused() {
    let (_tmp, store) = store();
    let image = tiny_image(&store, "z");
    let mut absent = image.manifest.clone();
    absent.digest = Digest::sha256_of(b"never stored");
    let err = store.set_name("z", &absent).unwrap_err();
    assert!(
        matches!(&err, Error::NotFound { digest } if digest == &absent.digest),
        "{err:?}"
    );
    assert!(store.names().unwrap().is_empty());
}

#[test]
fn invalid_names_are_refused() {
    let (_tmp, store) = store();
    let image = tiny_image(&store, "n");
    for name in ["", "a b", "/abs", "trailing-", "x//y"] {
        let err = store.set_name(name, &image.manifest).unwrap_err();
        assert!(
            matches!(err, Error::InvalidName { .. }),
            "{name:?}: {err:?}"
        );
    }
}

#[test]
fn a_corrupt_index_is_reported_with_its_path() {
    let (_tmp, store) = store();
    let path = store.layout_dir().join("index.json");
    fs::write(&path, "{not json").unwrap();
    let err = store.names().unwrap_err();
    assert!(matches!(err, Error::InvalidIndex { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
    fs::write(&path, r#"{"manifests": {}}"#).unwrap();
    assert!(matches!(
        store.get_name("a"),
        Err(Error::InvalidIndex { .. })
    ));
}
