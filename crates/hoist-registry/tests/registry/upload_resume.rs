//! Chunked uploads through failures: a failed `PATCH` resumes at the offset the session's
//! status reports (sending again what the registry did not keep), a lost session starts a new
//! one, and a 50 MB blob gets through a gateway failing every third request.

use std::sync::{Arc, Mutex};

use crate::common::flaky_proxy::FlakyProxy;
use crate::common::hostile::{Hostile, Resp};
use crate::common::served::config;
use bytes::Bytes;
use hoist_oci::{Descriptor, Digest, MediaType};
use hoist_registry::{BlobSource, Credentials, PushOutcome, RegistryClient, Repository};
use hoist_testkit::registry::TestRegistry;

/// What the fake registry of these tests received: the bytes kept, each `PATCH`'s
/// `Content-Range`, and the sessions opened.
#[derive(Default)]
struct Received {
    bytes: Vec<u8>,
    ranges: Vec<String>,
    sessions: usize,
}

/// A registry taking `0123456789` in 4-byte chunks whose second `PATCH` fails with a 503
/// after keeping 2 of its 4 bytes; `status` answers the session status `GET`.
async fn registry_failing_mid_chunk(
    status: fn(&Received) -> Resp,
) -> (Hostile, Arc<Mutex<Received>>) {
    let received = Arc::new(Mutex::new(Received::default()));
    let server = {
        let received = received.clone();
        Hostile::start(move |req| {
            let mut got = received.lock().unwrap();
            let session = format!("/v2/lib/app/blobs/uploads/s{}", got.sessions);
            match (req.method.as_str(), req.path.as_str()) {
                ("GET", "/v2/") => Resp::ok("{}"),
                ("HEAD", _) => Resp::status(404),
                ("POST", "/v2/lib/app/blobs/uploads/") => {
                    got.sessions += 1;
                    got.bytes.clear();
                    Resp::status(202).header(
                        "location",
                        &format!("/v2/lib/app/blobs/uploads/s{}/at0", got.sessions),
                    )
                }
                ("PATCH", p) if p.starts_with(&session) => {
                    got.ranges
                        .push(req.header("content-range").unwrap_or_default());
                    if got.ranges.len() == 2 {
                        got.bytes.extend_from_slice(&req.body[..2]);
                        return Resp::status(503);
                    }
                    got.bytes.extend_from_slice(&req.body);
                    Resp::status(202)
                        .header("location", &format!("{session}/at{}", got.bytes.len()))
                        .header("range", &format!("0-{}", got.bytes.len() - 1))
                }
                ("GET", p) if p.starts_with(&session) => status(&got),
                ("PUT", p) if p == format!("{session}/at10") && req.body.is_empty() => {
                    assert!(req.query.contains("digest=sha256%3A"), "{}", req.query);
                    Resp::status(201)
                }
                _ => Resp::status(400),
            }
        })
        .await
    };
    (server, received)
}

async fn push_ten_bytes_in_fours(server: &Hostile) {
    let mut cfg = config(3);
    cfg.monolithic_push_limit = 5;
    cfg.chunk_size = 4;
    let client = RegistryClient::new(cfg, Credentials::anonymous());
    let bytes = Bytes::from_static(b"0123456789");
    let desc = Descriptor::of_bytes(MediaType::OciLayer, &bytes);
    let repo = Repository::new(server.host(), "lib/app");
    let outcome = client
        .push_blob(&repo, &desc, BlobSource::Bytes(bytes))
        .await
        .unwrap();
    assert_eq!(outcome, PushOutcome::Uploaded);
}

#[tokio::test]
async fn failed_chunk_resumes_at_the_registry_offset() {
    let (server, received) = registry_failing_mid_chunk(|got| {
        let held = got.bytes.len();
        Resp::status(204)
            .header("range", &format!("0-{}", held - 1))
            .header(
                "location",
                &format!("/v2/lib/app/blobs/uploads/s1/at{held}"),
            )
    })
    .await;
    push_ten_bytes_in_fours(&server).await;
    let got = received.lock().unwrap();
    assert_eq!(got.bytes, b"0123456789");
    // The registry kept bytes 4-5 of the failed chunk: the upload goes on from byte 6.
    assert_eq!(got.ranges, ["0-3", "4-7", "6-9"]);
    assert_eq!(got.sessions, 1, "{:?}", server.requests());
    let requests = server.requests();
    assert_eq!(server.count("GET /v2/lib/app/blobs/uploads/s1/at4"), 1);
    assert!(
        requests.contains(&"PATCH /v2/lib/app/blobs/uploads/s1/at6".to_owned()),
        "the chunk goes to the Location the status gave: {requests:?}"
    );
}

#[tokio::test]
async fn upload_the_registry_lost_starts_a_new_session() {
    let (server, received) = registry_failing_mid_chunk(|_| Resp::status(404)).await;
    push_ten_bytes_in_fours(&server).await;
    let got = received.lock().unwrap();
    assert_eq!(got.bytes, b"0123456789");
    assert_eq!(got.ranges, ["0-3", "4-7", "0-3", "4-7", "8-9"]);
    assert_eq!(got.sessions, 2, "{:?}", server.requests());
}

/// 50 MB of bytes that do not compress, in a file.
fn noise_file(dir: &std::path::Path, len: usize) -> (std::path::PathBuf, Descriptor) {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut bytes = Vec::with_capacity(len);
    while bytes.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        bytes.extend_from_slice(&state.to_le_bytes());
    }
    bytes.truncate(len);
    let path = dir.join("blob");
    std::fs::write(&path, &bytes).unwrap();
    (path, Descriptor::of_bytes(MediaType::OciLayer, &bytes))
}

#[tokio::test]
async fn large_blob_gets_through_a_gateway_failing_every_third_request() {
    let Some(registry) = TestRegistry::start() else {
        return;
    };
    let proxy = FlakyProxy::start(&registry.host(), 3).await;
    let dir = tempfile::tempdir().unwrap();
    let (path, desc) = noise_file(dir.path(), 50 * 1000 * 1000);
    // Default chunking (8 MiB): seven chunks.
    let client = RegistryClient::new(config(5), Credentials::anonymous());
    let repo = Repository::new(proxy.host(), "test/flaky");
    let started = std::time::Instant::now();
    let outcome = client
        .push_blob(&repo, &desc, BlobSource::File(path))
        .await
        .unwrap_or_else(|err| panic!("{err}: {:#?}", proxy.requests()));
    let took = started.elapsed();
    assert_eq!(outcome, PushOutcome::Uploaded);
    let log = proxy.requests();
    let failed = log.iter().filter(|l| l.ends_with("503 (proxy)")).count();
    eprintln!(
        "50 MB through the flaky proxy: {} requests, {failed} failed, {took:?}",
        log.len()
    );
    assert!(
        log.iter()
            .any(|l| l.starts_with("PATCH ") && l.ends_with("503 (proxy)")),
        "{log:#?}"
    );
    let sessions = log
        .iter()
        .filter(|l| l.starts_with("POST ") && l.ends_with("-> 202"))
        .count();
    assert_eq!(sessions, 1, "one session, resumed: {log:#?}");

    // Read back from the registry itself: the whole blob, and its sha256 is the digest.
    let url = format!(
        "http://{}/v2/test/flaky/blobs/{}",
        registry.host(),
        desc.digest
    );
    let body = reqwest::get(&url).await.unwrap();
    assert_eq!(body.status(), 200, "{url}");
    let body = body.bytes().await.unwrap();
    assert_eq!(body.len() as u64, desc.size);
    assert_eq!(Digest::sha256_of(&body), desc.digest);
}
