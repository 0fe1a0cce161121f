//! Blob transfers against an in-process registry that misbehaves on purpose: connections
//! cut mid-blob (resumed with a range, restarted, or failing cleanly), bytes that do not
//! match their digest or size, an upload session that dies, chunked PATCH uploads. Nothing
//! corrupt or half-written may reach the store.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::common::hostile::{Hostile, Resp};
use crate::common::served::{
    amd64, assert_store_clean, assert_store_clean_but, config, fixture, reference,
};
use crate::common::{self, temp_store};
use bytes::Bytes;
use hoist_oci::{Descriptor, MediaType};
use hoist_registry::{Credentials, RegistryClient, RegistryError, Repository};

#[tokio::test]
async fn connection_cut_mid_blob_resumes_with_a_range_request() {
    let fx = fixture();
    let layer = fx.layer.clone();
    let ranges = Arc::new(std::sync::Mutex::new(Vec::<Option<String>>::new()));
    let server = {
        let ranges = ranges.clone();
        Hostile::start(move |req| {
            if !req.path.ends_with(layer.0.digest.as_str()) {
                return fx.serve(req).unwrap_or(Resp::status(404));
            }
            let range = req.header("range");
            let first = {
                let mut seen = ranges.lock().unwrap();
                seen.push(range.clone());
                seen.len() == 1
            };
            if first {
                return Resp::ok(layer.1.clone()).cut_after(layer.1.len() / 2);
            }
            let Some(from) = range
                .as_deref()
                .and_then(|r| r.strip_prefix("bytes="))
                .and_then(|r| r.strip_suffix('-'))
                .and_then(|n| n.parse::<usize>().ok())
            else {
                // No range asked for (the assertions below then fail): the whole blob.
                return Resp::ok(layer.1.clone());
            };
            let total = layer.1.len();
            let mut resp = Resp::ok(layer.1.slice(from..)).header(
                "content-range",
                &format!("bytes {from}-{}/{total}", total - 1),
            );
            resp.status = 206;
            resp
        })
        .await
    };
    let client = RegistryClient::new(config(3), Credentials::anonymous());
    let (_d, store) = temp_store();
    let repo = Repository::new(server.host(), "lib/app");
    let fx = fixture();
    client.fetch_blob(&repo, &fx.layer.0, &store).await.unwrap();
    assert_eq!(store.read_blob(&fx.layer.0.digest).unwrap(), fx.layer.1);
    let ranges = ranges.lock().unwrap().clone();
    assert_eq!(ranges.len(), 2, "{ranges:?}");
    assert_eq!(ranges[0], None);
    assert!(
        ranges[1].as_deref().is_some_and(|r| r != "bytes=0-"),
        "{ranges:?}"
    );
}

#[tokio::test]
async fn connection_cut_mid_blob_restarts_when_ranges_are_ignored() {
    let fx = fixture();
    let layer = fx.layer.clone();
    let cuts = Arc::new(AtomicUsize::new(0));
    let server = {
        let cuts = cuts.clone();
        Hostile::start(move |req| {
            if req.path.ends_with(layer.0.digest.as_str())
                && cuts.fetch_add(1, Ordering::SeqCst) == 0
            {
                return Resp::ok(layer.1.clone()).cut_after(layer.1.len() / 2);
            }
            // Ranges ignored: the whole blob, 200.
            fx.serve(req).unwrap_or(Resp::status(404))
        })
        .await
    };
    let client = RegistryClient::new(config(3), Credentials::anonymous());
    let (_d, store) = temp_store();
    let repo = Repository::new(server.host(), "lib/app");
    let fx = fixture();
    client.fetch_blob(&repo, &fx.layer.0, &store).await.unwrap();
    assert_eq!(store.read_blob(&fx.layer.0.digest).unwrap(), fx.layer.1);
    assert_eq!(cuts.load(Ordering::SeqCst), 2);
    assert_store_clean_but(&store, &[&fx.layer.0.digest]);
}

#[tokio::test]
async fn connection_always_cut_fails_cleanly() {
    let fx = fixture();
    let layer = fx.layer.clone();
    let server = Hostile::start(move |req| {
        if req.path.ends_with(layer.0.digest.as_str()) {
            return Resp::ok(layer.1.clone()).cut_after(1000);
        }
        fx.serve(req).unwrap_or(Resp::status(404))
    })
    .await;
    let client = RegistryClient::new(config(3), Credentials::anonymous());
    let (_d, store) = temp_store();
    let repo = Repository::new(server.host(), "lib/app");
    let fx = fixture();
    let err = client
        .fetch_blob(&repo, &fx.layer.0, &store)
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Http { .. }), "{err}");
    assert!(
        err.to_string().contains(fx.layer.0.digest.as_str()),
        "{err}"
    );
    assert_eq!(
        server.count(&format!("GET /v2/lib/app/blobs/{}", fx.layer.0.digest)),
        3
    );
    assert_store_clean(&store);
}

#[tokio::test]
async fn blob_not_matching_its_digest_is_refused_and_not_stored() {
    let fx = fixture();
    let layer = fx.layer.clone();
    let server = Hostile::start(move |req| {
        if req.path.ends_with(layer.0.digest.as_str()) {
            // Same length, one byte flipped.
            let mut evil = layer.1.to_vec();
            evil[100] ^= 1;
            return Resp::ok(evil);
        }
        fx.serve(req).unwrap_or(Resp::status(404))
    })
    .await;
    let client = RegistryClient::new(config(3), Credentials::anonymous());
    let (_d, store) = temp_store();
    let err = client
        .pull_image(&reference(&server.host(), "lib/app:v1"), &amd64(), &store)
        .await
        .unwrap_err();
    let fx = fixture();
    assert!(
        matches!(err, RegistryError::Mismatch { kind: "blob", .. }),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains(fx.layer.0.digest.as_str()) && text.contains(&server.host()),
        "{text}"
    );
    // Not retried: a digest mismatch is not a transient fault.
    assert_eq!(
        server.count(&format!("GET /v2/lib/app/blobs/{}", fx.layer.0.digest)),
        1
    );
    // The config may have landed (it is valid); the layer and manifest must not.
    assert!(!store.has(&fx.layer.0.digest));
    assert!(!store.has(&fx.manifest_digest));
    assert_eq!(
        common::ingest_files(&store),
        Vec::<std::path::PathBuf>::new()
    );

    // A blob longer than its descriptor says is refused too.
    let long = fixture();
    let layer = long.layer.clone();
    let server = Hostile::start(move |req| {
        if req.path.ends_with(layer.0.digest.as_str()) {
            let mut more = layer.1.to_vec();
            more.extend_from_slice(b"extra");
            return Resp::ok(more);
        }
        long.serve(req).unwrap_or(Resp::status(404))
    })
    .await;
    let (_e, store) = temp_store();
    let repo = Repository::new(server.host(), "lib/app");
    let err = client
        .fetch_blob(&repo, &fx.layer.0, &store)
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Mismatch { .. }), "{err}");
    assert_store_clean(&store);
}

#[tokio::test]
async fn failed_upload_restarts_with_a_new_session() {
    let posts = Arc::new(AtomicUsize::new(0));
    let puts = Arc::new(AtomicUsize::new(0));
    let server = {
        let posts = posts.clone();
        let puts = puts.clone();
        Hostile::start(move |req| match (req.method.as_str(), req.path.as_str()) {
            ("GET", "/v2/") => Resp::ok("{}"),
            ("HEAD", p) if p.contains("/blobs/") => Resp::status(404),
            ("POST", "/v2/lib/app/blobs/uploads/") => {
                let n = posts.fetch_add(1, Ordering::SeqCst);
                Resp::status(202).header("location", &format!("/v2/lib/app/blobs/uploads/s{n}"))
            }
            ("PUT", p) if p.starts_with("/v2/lib/app/blobs/uploads/") => {
                // The first session dies with a 503.
                if puts.fetch_add(1, Ordering::SeqCst) == 0 {
                    Resp::status(503)
                } else {
                    assert!(req.query.contains("digest=sha256%3A"), "{}", req.query);
                    Resp::status(201)
                }
            }
            _ => Resp::status(404),
        })
        .await
    };
    let client = RegistryClient::new(config(3), Credentials::anonymous());
    let repo = Repository::new(server.host(), "lib/app");
    let bytes = Bytes::from_static(b"some blob");
    let desc = Descriptor::of_bytes(MediaType::OciLayer, &bytes);
    let outcome = client
        .push_blob(&repo, &desc, hoist_registry::BlobSource::Bytes(bytes))
        .await
        .unwrap();
    assert_eq!(outcome, hoist_registry::PushOutcome::Uploaded);
    assert_eq!(posts.load(Ordering::SeqCst), 2, "{:?}", server.requests());
    assert!(
        server
            .requests()
            .contains(&"PUT /v2/lib/app/blobs/uploads/s1".to_owned())
            || server
                .requests()
                .iter()
                .any(|l| l.starts_with("PUT /v2/lib/app/blobs/uploads/s1?"))
    );
}

/// Pushes `0123456789` with 4-byte chunks; the registry may ask for a larger minimum.
async fn push_in_patches(min_chunk: Option<u64>) -> (Vec<String>, Vec<String>) {
    let received = Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
    let ranges = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let server = {
        let received = received.clone();
        let ranges = ranges.clone();
        Hostile::start(move |req| match (req.method.as_str(), req.path.as_str()) {
            ("GET", "/v2/") => Resp::ok("{}"),
            ("HEAD", _) => Resp::status(404),
            ("POST", "/v2/lib/app/blobs/uploads/") => {
                let resp = Resp::status(202).header("location", "/v2/lib/app/blobs/uploads/u0");
                match min_chunk {
                    Some(n) => resp.header("oci-chunk-min-length", &n.to_string()),
                    None => resp,
                }
            }
            ("PATCH", p) if p.starts_with("/v2/lib/app/blobs/uploads/u") => {
                let mut got = received.lock().unwrap();
                ranges
                    .lock()
                    .unwrap()
                    .push(req.header("content-range").unwrap_or_default());
                got.extend_from_slice(&req.body);
                let next = format!("/v2/lib/app/blobs/uploads/u{}", got.len());
                Resp::status(202)
                    .header("location", &next)
                    .header("range", &format!("0-{}", got.len() - 1))
            }
            ("PUT", "/v2/lib/app/blobs/uploads/u10") if req.body.is_empty() => Resp::status(201),
            _ => Resp::status(400),
        })
        .await
    };
    let mut cfg = config(2);
    cfg.monolithic_push_limit = 5;
    cfg.chunk_size = 4;
    let client = RegistryClient::new(cfg, Credentials::anonymous());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("blob");
    std::fs::write(&file, b"0123456789").unwrap();
    let desc = Descriptor::of_bytes(MediaType::OciLayer, b"0123456789");
    let repo = Repository::new(server.host(), "lib/app");
    client
        .push_blob(&repo, &desc, hoist_registry::BlobSource::File(file))
        .await
        .unwrap();
    assert_eq!(received.lock().unwrap().as_slice(), b"0123456789");
    let ranges = ranges.lock().unwrap().clone();
    (ranges, server.requests())
}

#[tokio::test]
async fn large_blob_is_sent_in_ranged_patches_from_disk() {
    let (ranges, requests) = push_in_patches(None).await;
    assert_eq!(ranges, ["0-3", "4-7", "8-9"]);
    let last = requests.last().cloned().unwrap();
    assert!(
        last.starts_with("PUT /v2/lib/app/blobs/uploads/u10?digest=sha256%3A"),
        "{last}"
    );
    // The registry's minimum chunk size wins over a smaller configured one.
    let (ranges, _) = push_in_patches(Some(6)).await;
    assert_eq!(ranges, ["0-5", "6-9"]);
}
