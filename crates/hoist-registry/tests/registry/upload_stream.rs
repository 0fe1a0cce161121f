//! Streamed uploads (`push_blob_stream`): a blob handed over piece by piece lands whole in a
//! real registry; a failure mid-way, or a producer that stops, cancels the session and is
//! returned as an error, never closed with a digest.

use std::sync::{Arc, Mutex};

use crate::common::hostile::{Hostile, Resp};
use crate::common::served::config;
use bytes::Bytes;
use hoist_oci::{Descriptor, Digest, MediaType};
use hoist_registry::{Credentials, RegistryClient, RegistryError, Repository, StreamPiece};
use hoist_testkit::registry::TestRegistry;
use tokio::sync::mpsc;

fn noise(len: usize) -> Vec<u8> {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// Sends `bytes` in `piece`-sized pieces, then the end (when `end`).
fn produce(bytes: Vec<u8>, piece: usize, end: bool) -> mpsc::Receiver<StreamPiece> {
    let (tx, rx) = mpsc::channel(2);
    tokio::spawn(async move {
        let descriptor = Descriptor::of_bytes(MediaType::OciLayerGzip, &bytes);
        for part in bytes.chunks(piece) {
            if tx
                .send(StreamPiece::Bytes(Bytes::copy_from_slice(part)))
                .await
                .is_err()
            {
                return;
            }
        }
        if end {
            let _ = tx.send(StreamPiece::End(Box::new(descriptor))).await;
        }
    });
    rx
}

#[tokio::test]
async fn streamed_blob_lands_whole_in_a_real_registry() {
    let Some(registry) = TestRegistry::start() else {
        return;
    };
    let bytes = noise(20 * 1000 * 1000 + 7);
    let expected = Descriptor::of_bytes(MediaType::OciLayerGzip, &bytes);
    let client = RegistryClient::new(config(3), Credentials::anonymous());
    let repo = Repository::new(registry.host(), "stream/blob");
    // Pieces of an odd size: the chunks (8 MiB) are made of several.
    let pushed = client
        .push_blob_stream(&repo, produce(bytes, 300_001, true))
        .await
        .unwrap();
    assert_eq!(pushed, expected);
    let url = format!(
        "http://{}/v2/stream/blob/blobs/{}",
        registry.host(),
        expected.digest
    );
    let body = reqwest::get(&url).await.unwrap().bytes().await.unwrap();
    assert_eq!(body.len() as u64, expected.size);
    assert_eq!(Digest::sha256_of(&body), expected.digest);
}

/// A registry whose `n`th `PATCH` (from 1) fails with a 503; chunks of 4 bytes.
async fn registry_failing_patch(n: usize) -> (Hostile, Arc<Mutex<usize>>) {
    let patches = Arc::new(Mutex::new(0));
    let seen = patches.clone();
    let server = Hostile::start(move |req| {
        let mut patches = seen.lock().unwrap();
        match (req.method.as_str(), req.path.as_str()) {
            ("GET", "/v2/") => Resp::ok("{}"),
            ("POST", "/v2/lib/app/blobs/uploads/") => {
                Resp::status(202).header("location", "/v2/lib/app/blobs/uploads/s1")
            }
            ("PATCH", "/v2/lib/app/blobs/uploads/s1") => {
                *patches += 1;
                if *patches == n {
                    return Resp::status(503);
                }
                Resp::status(202).header("location", "/v2/lib/app/blobs/uploads/s1")
            }
            ("DELETE", "/v2/lib/app/blobs/uploads/s1") => Resp::status(204),
            ("PUT", "/v2/lib/app/blobs/uploads/s1") => Resp::status(201),
            _ => Resp::status(400),
        }
    })
    .await;
    (server, patches)
}

fn four_byte_chunks() -> RegistryClient {
    let mut cfg = config(3);
    cfg.chunk_size = 4;
    RegistryClient::new(cfg, Credentials::anonymous())
}

#[tokio::test]
async fn failure_mid_stream_cancels_the_session_and_errs() {
    let (server, patches) = registry_failing_patch(2).await;
    let repo = Repository::new(server.host(), "lib/app");
    let err = four_byte_chunks()
        .push_blob_stream(&repo, produce(b"0123456789".to_vec(), 3, true))
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::Status { status: 503, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("PATCH"), "{err}");
    assert_eq!(
        *patches.lock().unwrap(),
        2,
        "not retried: the bytes are gone"
    );
    assert_eq!(server.count("DELETE /v2/lib/app/blobs/uploads/s1"), 1);
    assert_eq!(server.count("PUT "), 0, "{:?}", server.requests());
}

#[tokio::test]
async fn producer_that_stops_abandons_the_upload() {
    let (server, _) = registry_failing_patch(usize::MAX).await;
    let repo = Repository::new(server.host(), "lib/app");
    let err = four_byte_chunks()
        .push_blob_stream(&repo, produce(b"0123456789".to_vec(), 3, false))
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::StreamAbandoned { sent: 8, .. }),
        "{err}"
    );
    assert_eq!(server.count("DELETE /v2/lib/app/blobs/uploads/s1"), 1);
    assert_eq!(server.count("PUT "), 0, "{:?}", server.requests());
}

#[tokio::test]
async fn the_last_chunk_and_the_digest_go_at_the_end() {
    let (server, patches) = registry_failing_patch(usize::MAX).await;
    let repo = Repository::new(server.host(), "lib/app");
    let pushed = four_byte_chunks()
        .push_blob_stream(&repo, produce(b"0123456789".to_vec(), 3, true))
        .await
        .unwrap();
    assert_eq!(pushed.size, 10);
    assert_eq!(*patches.lock().unwrap(), 3, "4 + 4 + 2 bytes");
    let requests = server.requests();
    let put = requests.last().unwrap();
    assert!(
        put.starts_with("PUT /v2/lib/app/blobs/uploads/s1?digest=sha256%3A"),
        "{requests:?}"
    );
}
