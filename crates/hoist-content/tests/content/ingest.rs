//! Blob writes: verified, atomic, and invisible until committed.

use crate::image_fixture;

use std::fs;
use std::io::{self, Read, Write};
use std::path::Path;

use crate::image_fixture::{blob_path, bytes, ingest_dir};
use hoist_content::{ContentStore, Error, Expected, Written};
use hoist_oci::{Descriptor, Digest, MediaType};

fn store() -> (tempfile::TempDir, ContentStore) {
    let tmp = tempfile::tempdir().unwrap();
    let store = ContentStore::open(tmp.path()).unwrap();
    (tmp, store)
}

/// Everything under `dir`, as relative paths, sorted.
fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

fn blob_files(store: &ContentStore) -> Vec<String> {
    files(&store.layout_dir().join("blobs"))
}

#[test]
fn open_creates_the_layout() {
    let (tmp, store) = store();
    assert_eq!(store.layout_dir(), tmp.path().join("content"));
    let layout = fs::read_to_string(tmp.path().join("content/oci-layout")).unwrap();
    assert_eq!(layout, r#"{"imageLayoutVersion":"1.0.0"}"#);
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(tmp.path().join("content/index.json")).unwrap()).unwrap();
    assert_eq!(index["schemaVersion"], 2);
    assert_eq!(index["manifests"], serde_json::json!([]));
    assert!(tmp.path().join("content/blobs/sha256").is_dir());
    assert!(tmp.path().join("ingest").is_dir());
    // Opening again keeps what is there.
    let image = image_fixture::tiny_image(&store, "a");
    store.set_name("a", &image.manifest).unwrap();
    let again = ContentStore::open(tmp.path()).unwrap();
    assert_eq!(again.get_name("a").unwrap(), Some(image.manifest));
}

#[test]
fn write_blob_verifies_and_stores() {
    let (_tmp, store) = store();
    let data = bytes(1, 300_000);
    let digest = Digest::sha256_of(&data);
    assert!(!store.has(&digest));
    let written = store
        .write_blob((digest.clone(), data.len() as u64), &data[..])
        .unwrap();
    assert_eq!(written, Written::Stored);
    assert!(store.has(&digest));
    assert_eq!(store.info(&digest).unwrap(), data.len() as u64);
    assert_eq!(store.read_blob(&digest).unwrap(), data);
    let mut via_reader = Vec::new();
    store
        .open_blob(&digest)
        .unwrap()
        .read_to_end(&mut via_reader)
        .unwrap();
    assert_eq!(via_reader, data);
    assert_eq!(
        blob_path(&store, &digest),
        store
            .layout_dir()
            .join("blobs/sha256")
            .join(digest.encoded())
    );
    store.verify_blob(&digest).unwrap();
    assert!(files(&ingest_dir(&store)).is_empty());
}

#[test]
fn ingest_writer_commits() {
    let (_tmp, store) = store();
    let data = bytes(2, 100_000);
    let descriptor = Descriptor::of_bytes(MediaType::OciLayer, &data);
    let mut ingest = store.begin(&descriptor).unwrap();
    assert!(!ingest.is_present());
    for chunk in data.chunks(777) {
        ingest.write_all(chunk).unwrap();
    }
    assert_eq!(ingest.written(), data.len() as u64);
    // Not visible before commit.
    assert!(!store.has(&descriptor.digest));
    assert_eq!(ingest.commit(None).unwrap().written, Written::Stored);
    assert_eq!(store.read_blob(&descriptor.digest).unwrap(), data);
}

#[test]
fn writer_learns_the_digest_and_stores_once() {
    let (_tmp, store) = store();
    let data = bytes(12, 300_000);
    let digest = Digest::sha256_of(&data);
    let mut writer = store.writer().unwrap();
    assert_eq!(writer.expected(), None);
    for chunk in data.chunks(4096) {
        writer.write_all(chunk).unwrap();
    }
    assert_eq!(writer.digest(), digest);
    assert_eq!(writer.written(), data.len() as u64);
    assert!(!store.has(&digest), "not visible before commit");
    let stored = writer.commit(None).unwrap();
    assert_eq!((&stored.digest, stored.size), (&digest, data.len() as u64));
    assert_eq!(stored.written, Written::Stored);
    assert_eq!(
        stored.descriptor(MediaType::OciLayer),
        Descriptor::of_bytes(MediaType::OciLayer, &data)
    );
    assert_eq!(store.read_blob(&digest).unwrap(), data);
    assert!(files(&ingest_dir(&store)).is_empty());

    // The same bytes again: present, and checked against what the caller expects.
    let mut again = store.writer().unwrap();
    again.write_all(&data).unwrap();
    let stored = again
        .commit(Some(Expected::new(digest.clone(), data.len() as u64)))
        .unwrap();
    assert_eq!(stored.written, Written::AlreadyPresent);
    assert_eq!(blob_files(&store).len(), 1);
    assert!(files(&ingest_dir(&store)).is_empty());
}

#[test]
fn writer_commit_checks_the_expected_digest_and_size() {
    let (_tmp, store) = store();
    let data = bytes(13, 10_000);
    let actual = Digest::sha256_of(&data);
    let wrong = Digest::sha256_of(b"what the caller thought");

    let mut writer = store.writer().unwrap();
    writer.write_all(&data).unwrap();
    let err = writer
        .commit(Some(Expected::new(wrong.clone(), data.len() as u64)))
        .unwrap_err();
    assert!(
        matches!(&err, Error::DigestMismatch { expected, actual: got } if expected == &wrong && got == &actual),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains(wrong.as_str()) && message.contains(actual.as_str()),
        "{message}"
    );

    let mut writer = store.writer().unwrap();
    writer.write_all(&data).unwrap();
    let err = writer
        .commit(Some(Expected::new(actual.clone(), 9_999)))
        .unwrap_err();
    assert!(
        matches!(
            &err,
            Error::SizeMismatch {
                expected: 9_999,
                actual: 10_000,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(blob_files(&store).is_empty());
    assert!(files(&ingest_dir(&store)).is_empty());
}

#[test]
fn dropped_writer_leaves_nothing() {
    let (_tmp, store) = store();
    let mut writer = store.writer().unwrap();
    writer.write_all(&bytes(14, 200_000)).unwrap();
    assert_eq!(files(&ingest_dir(&store)).len(), 1);
    drop(writer);
    assert!(files(&ingest_dir(&store)).is_empty());
    assert!(blob_files(&store).is_empty());
}

#[test]
fn remove_if_corrupt_removes_only_corrupt_blobs() {
    let (_tmp, store) = store();
    let good = store
        .put_bytes(MediaType::OciLayer, &bytes(15, 4096))
        .unwrap();
    let bad = store
        .put_bytes(MediaType::OciLayer, &bytes(16, 4096))
        .unwrap();
    fs::write(blob_path(&store, &bad.digest), bytes(17, 4096)).unwrap();
    let absent = Digest::sha256_of(b"absent");
    assert!(!store.remove_if_corrupt(&good.digest).unwrap());
    assert!(store.remove_if_corrupt(&bad.digest).unwrap());
    assert!(!store.remove_if_corrupt(&absent).unwrap());
    assert!(store.has(&good.digest));
    assert!(!store.has(&bad.digest));
}

#[test]
fn put_bytes_describes_the_document() {
    let (_tmp, store) = store();
    let doc = br#"{"schemaVersion":2}"#;
    let descriptor = store.put_bytes(MediaType::OciIndex, doc).unwrap();
    assert_eq!(descriptor, Descriptor::of_bytes(MediaType::OciIndex, doc));
    assert_eq!(store.read_blob(&descriptor.digest).unwrap(), doc);
}

#[test]
fn digest_mismatch_is_an_error_and_stores_nothing() {
    let (_tmp, store) = store();
    let data = bytes(3, 5000);
    let wrong = Digest::sha256_of(b"something else");
    let err = store
        .write_blob((wrong.clone(), data.len() as u64), &data[..])
        .unwrap_err();
    let actual = Digest::sha256_of(&data);
    match &err {
        Error::DigestMismatch {
            expected,
            actual: got,
        } => {
            assert_eq!(expected, &wrong);
            assert_eq!(got, &actual);
        }
        other => panic!("expected a digest mismatch, got {other:?}"),
    }
    let message = err.to_string();
    assert!(message.contains(wrong.as_str()), "{message}");
    assert!(message.contains(actual.as_str()), "{message}");
    assert!(!store.has(&wrong));
    assert!(!store.has(&actual));
    assert!(blob_files(&store).is_empty());
    assert!(files(&ingest_dir(&store)).is_empty());
}

#[test]
fn short_content_is_a_size_mismatch() {
    let (_tmp, store) = store();
    let data = bytes(4, 5000);
    let digest = Digest::sha256_of(&data);
    let err = store
        .write_blob((digest.clone(), 6000), &data[..])
        .unwrap_err();
    assert!(
        matches!(&err, Error::SizeMismatch { digest: d, expected: 6000, actual: 5000 } if d == &digest),
        "{err:?}"
    );
    assert!(err.to_string().contains(digest.as_str()), "{err}");
    assert!(!store.has(&digest));
    assert!(blob_files(&store).is_empty());
    assert!(files(&ingest_dir(&store)).is_empty());
}

#[test]
fn long_content_is_refused_early() {
    let (_tmp, store) = store();
    let data = bytes(5, 5000);
    let digest = Digest::sha256_of(&data[..4000]);
    let err = store
        .write_blob((digest.clone(), 4000), &data[..])
        .unwrap_err();
    assert!(
        matches!(&err, Error::TooLarge { digest: d, expected: 4000 } if d == &digest),
        "{err:?}"
    );
    assert!(!store.has(&digest));

    // Through the writer: the write fails, and so does the commit.
    let mut ingest = store.begin((digest.clone(), 4000)).unwrap();
    let write = ingest.write_all(&data);
    assert_eq!(write.unwrap_err().kind(), io::ErrorKind::InvalidData);
    assert!(matches!(ingest.commit(None), Err(Error::TooLarge { .. })));

    // Through `append`: the typed error, and the ingest stays refused.
    let mut ingest = store.begin((digest.clone(), 4000)).unwrap();
    ingest.append(&data[..4000]).unwrap();
    let err = ingest.append(b"x").unwrap_err();
    assert!(
        matches!(&err, Error::TooLarge { digest: d, .. } if d == &digest),
        "{err:?}"
    );
    assert!(matches!(ingest.commit(None), Err(Error::TooLarge { .. })));
    assert!(blob_files(&store).is_empty());
    assert!(files(&ingest_dir(&store)).is_empty());
}

#[test]
fn dropped_ingest_leaves_nothing() {
    let (_tmp, store) = store();
    let data = bytes(6, 50_000);
    let digest = Digest::sha256_of(&data);
    let mut ingest = store.begin((digest.clone(), data.len() as u64)).unwrap();
    ingest.write_all(&data[..20_000]).unwrap();
    ingest.flush().unwrap();
    let temps = files(&ingest_dir(&store));
    assert_eq!(temps.len(), 1, "{temps:?}");
    drop(ingest);
    assert!(!store.has(&digest));
    assert!(blob_files(&store).is_empty());
    assert!(files(&ingest_dir(&store)).is_empty());
}

#[test]
fn failing_reader_stores_nothing() {
    struct Broken(usize);
    impl Read for Broken {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0 == 0 {
                return Err(io::Error::new(io::ErrorKind::ConnectionReset, "peer gone"));
            }
            let n = buf.len().min(self.0);
            buf[..n].fill(7);
            self.0 -= n;
            Ok(n)
        }
    }
    let (_tmp, store) = store();
    let digest = Digest::sha256_of(&[7u8; 10_000]);
    let err = store
        .write_blob((digest.clone(), 10_000), Broken(5000))
        .unwrap_err();
    assert!(
        matches!(&err, Error::ReadContent { digest: d, .. } if d == &digest),
        "{err:?}"
    );
    assert!(err.to_string().contains("peer gone"), "{err}");
    assert!(!store.has(&digest));
    assert!(files(&ingest_dir(&store)).is_empty());
}

#[test]
fn writing_a_present_blob_is_a_no_op() {
    struct MustNotRead;
    impl Read for MustNotRead {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            panic!("a present blob must not be read again");
        }
    }
    let (_tmp, store) = store();
    let data = bytes(7, 1000);
    let digest = Digest::sha256_of(&data);
    store.write_blob((digest.clone(), 1000), &data[..]).unwrap();
    let again = store
        .write_blob((digest.clone(), 1000), MustNotRead)
        .unwrap();
    assert_eq!(again, Written::AlreadyPresent);

    // The writer notices too, stores nothing, and still checks what it is given.
    let mut ingest = store.begin((digest.clone(), 1000)).unwrap();
    assert!(ingest.is_present());
    ingest.write_all(&data).unwrap();
    assert!(files(&ingest_dir(&store)).is_empty(), "no temp file");
    assert_eq!(
        ingest.commit(None).unwrap().written,
        Written::AlreadyPresent
    );
    let mut wrong = store.begin((digest.clone(), 1000)).unwrap();
    wrong.write_all(&bytes(8, 1000)).unwrap();
    assert!(matches!(
        wrong.commit(None),
        Err(Error::DigestMismatch { .. })
    ));

    // A wrong expected size is reported, not ignored.
    let err = store
        .write_blob((digest.clone(), 999), MustNotRead)
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::SizeMismatch {
                expected: 999,
                actual: 1000,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(store.read_blob(&digest).unwrap(), data);
}

#[test]
fn missing_blob_errors_name_the_digest() {
    let (_tmp, store) = store();
    let digest = Digest::sha256_of(b"absent");
    for err in [
        store.info(&digest).unwrap_err(),
        store.open_blob(&digest).unwrap_err(),
        store.read_blob(&digest).unwrap_err(),
    ] {
        assert!(
            matches!(&err, Error::NotFound { digest: d } if d == &digest),
            "{err:?}"
        );
        assert!(err.to_string().contains(digest.as_str()), "{err}");
    }
}

#[test]
fn verify_blob_detects_corruption() {
    let (_tmp, store) = store();
    let data = bytes(9, 4096);
    let descriptor = store.put_bytes(MediaType::OciLayer, &data).unwrap();
    store.verify_blob(&descriptor.digest).unwrap();
    let mut corrupt = data.clone();
    corrupt[100] ^= 1;
    fs::write(blob_path(&store, &descriptor.digest), &corrupt).unwrap();
    let err = store.verify_blob(&descriptor.digest).unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err:?}");
}

#[test]
fn sha512_blobs_are_verified_and_stored_under_their_algorithm() {
    let (_tmp, store) = store();
    let data = bytes(10, 2048);
    let digest = Digest::sha512_of(&data);
    store.write_blob((digest.clone(), 2048), &data[..]).unwrap();
    assert_eq!(
        blob_path(&store, &digest),
        store
            .layout_dir()
            .join("blobs/sha512")
            .join(digest.encoded())
    );
    assert_eq!(store.read_blob(&digest).unwrap(), data);
    let err = store
        .write_blob(Expected::new(Digest::sha512_of(b"other"), 2048), &data[..])
        .unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err:?}");
}

#[test]
fn temp_files_left_by_a_crash_are_invisible() {
    let (_tmp, store) = store();
    let data = bytes(11, 8192);
    let digest = Digest::sha256_of(&data);
    // What a process killed mid-write leaves behind: a partial temp file in ingest/.
    let leftover = ingest_dir(&store).join(format!("{}-crashed", &digest.encoded()[..16]));
    fs::write(&leftover, &data[..3000]).unwrap();
    assert!(!store.has(&digest));
    assert!(matches!(store.info(&digest), Err(Error::NotFound { .. })));
    // A later write of the same blob is unaffected.
    store.write_blob((digest.clone(), 8192), &data[..]).unwrap();
    assert_eq!(store.read_blob(&digest).unwrap(), data);
    assert!(
        leftover.exists(),
        "only gc removes other writers' temp files"
    );
}
