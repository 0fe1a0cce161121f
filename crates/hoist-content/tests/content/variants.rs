//! Conversion records: which blob another blob converts to (an export's gzip of a build
//! layer), reused only while the result is present.

use hoist_content::ContentStore;
use hoist_oci::MediaType;

#[test]
fn a_variant_is_found_until_its_result_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::open(dir.path()).unwrap();
    let source = store.put_bytes(MediaType::OciLayer, b"tar bytes").unwrap();
    let result = store
        .put_bytes(MediaType::OciLayerGzip, b"gzip bytes")
        .unwrap();
    assert_eq!(store.variant(&source.digest, "gzip"), None);

    store.set_variant(&source.digest, "gzip", &result).unwrap();
    assert_eq!(store.variant(&source.digest, "gzip"), Some(result.clone()));
    assert_eq!(store.variant(&source.digest, "zstd"), None);
    assert_eq!(
        store.variants(),
        vec![(source.digest.clone(), result.clone())]
    );

    // Reopened, as by the next build's export.
    let again = ContentStore::open(dir.path()).unwrap();
    assert_eq!(again.variant(&source.digest, "gzip"), Some(result.clone()));

    // What GC does to a blob nothing keeps.
    let blob = dir
        .path()
        .join("content/blobs/sha256")
        .join(result.digest.encoded());
    std::fs::remove_file(blob).unwrap();
    assert_eq!(store.variant(&source.digest, "gzip"), None);
    assert!(store.variants().is_empty());
}

#[test]
fn a_variant_name_is_a_plain_word() {
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::open(dir.path()).unwrap();
    let blob = store.put_bytes(MediaType::OciLayer, b"x").unwrap();
    let err = store
        .set_variant(&blob.digest, "../escape", &blob)
        .unwrap_err();
    assert!(err.to_string().contains("../escape"), "{err}");
}
