//! containerd's content service over a cache directory, driven as BuildKit's daemon (or
//! hoistd) drives it: a blob written with STAT, WRITEs and COMMIT lands under its digest
//! and reads back whole or by range; a blob whose bytes do not match the announced
//! digest, or a write at the wrong offset, is refused with nothing under `blobs/` and no
//! ingest left; a blob already there is `AlreadyExists`; calls naming no store, or
//! another store, are refused; `index.json` is tagged by the client.

use std::sync::Arc;

use hoist_oci::{Descriptor, Digest, MediaType};
use hoist_proto::content::content_client::ContentClient;
use hoist_proto::content::{InfoRequest, ReadContentRequest, WriteAction, WriteContentRequest};
use hoist_proto::tonic::transport::Channel;
use hoist_proto::tonic::{Code, Request, Status};
use hoist_session::content::{store_id, LayoutDir, STORE_ID_KEY};
use hoist_session::Session;

use crate::connect;

fn request<T>(dir: &std::path::Path, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(
        STORE_ID_KEY,
        store_id(&dir.display().to_string()).parse().unwrap(),
    );
    request
}

async fn served(dir: &std::path::Path) -> ContentClient<Channel> {
    let session = Arc::new(
        Session::new("t", "k")
            .with_content_store(store_id(&dir.display().to_string()), dir.to_owned()),
    );
    assert!(session
        .methods()
        .contains(&"/containerd.services.content.v1.Content/Write"));
    ContentClient::new(connect(session).await)
}

/// One Write call: STAT with `expected`, the chunks at their offsets (or at `offsets`),
/// COMMIT; the responses, or the call's error.
async fn write(
    client: &mut ContentClient<Channel>,
    dir: &std::path::Path,
    expected: &str,
    chunks: &[(&[u8], i64)],
    total: i64,
) -> Result<Vec<hoist_proto::content::WriteContentResponse>, Status> {
    let mut messages = vec![WriteContentRequest {
        action: WriteAction::Stat.into(),
        r#ref: "test-ref".into(),
        total,
        expected: expected.into(),
        ..WriteContentRequest::default()
    }];
    let mut end = 0;
    for (data, offset) in chunks {
        messages.push(WriteContentRequest {
            action: WriteAction::Write.into(),
            offset: *offset,
            data: data.to_vec(),
            ..WriteContentRequest::default()
        });
        end = offset + data.len() as i64;
    }
    messages.push(WriteContentRequest {
        action: WriteAction::Commit.into(),
        offset: end,
        total,
        expected: expected.into(),
        ..WriteContentRequest::default()
    });
    let mut responses = client
        .write(request(dir, futures::stream::iter(messages)))
        .await?
        .into_inner();
    let mut out = Vec::new();
    while let Some(response) = responses.message().await? {
        out.push(response);
    }
    Ok(out)
}

fn blob_names(dir: &std::path::Path) -> Vec<String> {
    match std::fs::read_dir(dir.join("blobs/sha256")) {
        Ok(entries) => entries
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

fn ingest_left(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir.join("ingest")).map_or(0, Iterator::count)
}

#[tokio::test]
async fn a_blob_written_in_chunks_lands_under_its_digest_and_reads_back_by_range() {
    let dir = tempfile::tempdir().unwrap();
    let mut client = served(dir.path()).await;
    let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let digest = Digest::sha256_of(&bytes);
    let (a, b) = bytes.split_at(1_200_000);
    let responses = write(
        &mut client,
        dir.path(),
        digest.as_str(),
        &[(a, 0), (b, a.len() as i64)],
        bytes.len() as i64,
    )
    .await
    .unwrap();
    // One answer per message; the COMMIT's names the digest and the size written.
    assert_eq!(responses.len(), 4);
    let commit = responses.last().unwrap();
    assert_eq!(commit.action, i32::from(WriteAction::Commit));
    assert_eq!(commit.digest, digest.as_str());
    assert_eq!(commit.offset, bytes.len() as i64);
    assert_eq!(blob_names(dir.path()), [digest.encoded().to_owned()]);
    assert_eq!(ingest_left(dir.path()), 0);
    assert!(dir.path().join("oci-layout").is_file());

    let info = client
        .info(request(
            dir.path(),
            InfoRequest {
                digest: digest.to_string(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .info
        .unwrap();
    assert_eq!(info.size, bytes.len() as i64);

    let read = |offset: i64, size: i64| {
        let mut client = client.clone();
        let (dir, digest) = (dir.path().to_owned(), digest.to_string());
        async move {
            let mut stream = client
                .read(request(
                    &dir,
                    ReadContentRequest {
                        digest,
                        offset,
                        size,
                    },
                ))
                .await
                .unwrap()
                .into_inner();
            let mut out = Vec::new();
            while let Some(message) = stream.message().await.unwrap() {
                assert_eq!(message.offset, offset + out.len() as i64);
                out.extend_from_slice(&message.data);
            }
            out
        }
    };
    assert_eq!(read(0, 0).await, bytes);
    assert_eq!(read(2_999_990, 0).await, &bytes[2_999_990..]);
    assert_eq!(read(10, 5).await, &bytes[10..15]);

    // The same blob again: the STAT already answers AlreadyExists.
    let err = write(&mut client, dir.path(), digest.as_str(), &[(&bytes, 0)], 0)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "{err}");

    // The client tags the root it is told of.
    let root = Descriptor::new(MediaType::OciManifest, digest.clone(), bytes.len() as u64);
    let layout = LayoutDir::new(dir.path().to_owned());
    layout.tag(&root, "main").unwrap();
    assert_eq!(layout.tagged("main").unwrap().unwrap().digest, digest);
    assert!(layout.tagged("latest").unwrap().is_none());
}

#[tokio::test]
async fn bytes_that_do_not_match_the_digest_or_offset_leave_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let mut client = served(dir.path()).await;
    let claimed = Digest::sha256_of(b"the real bytes");
    let err = write(
        &mut client,
        dir.path(),
        claimed.as_str(),
        &[(b"other bytes!!!", 0)],
        14,
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err}");
    assert!(err.message().contains(claimed.as_str()), "{err}");
    // A size that does not match.
    let err = write(
        &mut client,
        dir.path(),
        claimed.as_str(),
        &[(b"the real bytes", 0)],
        99,
    )
    .await
    .unwrap_err();
    assert!(err.message().contains("unexpected commit size 14"), "{err}");
    // A write past the current offset.
    let err = write(
        &mut client,
        dir.path(),
        claimed.as_str(),
        &[(b"the real", 0), (b" bytes", 20)],
        14,
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange, "{err}");
    assert!(
        blob_names(dir.path()).is_empty(),
        "{:?}",
        blob_names(dir.path())
    );
    assert_eq!(ingest_left(dir.path()), 0);

    // Not there: Info and Read say NotFound.
    let err = client
        .info(request(
            dir.path(),
            InfoRequest {
                digest: claimed.to_string(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = client
        .read(request(
            dir.path(),
            ReadContentRequest {
                digest: claimed.to_string(),
                offset: 0,
                size: 0,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

#[tokio::test]
async fn a_call_must_name_a_store_the_session_serves() {
    let dir = tempfile::tempdir().unwrap();
    let mut client = served(dir.path()).await;
    let digest = Digest::sha256_of(b"x").to_string();
    let err = client
        .info(Request::new(InfoRequest {
            digest: digest.clone(),
        }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains(STORE_ID_KEY), "{err}");
    let other = tempfile::tempdir().unwrap();
    let err = client
        .info(request(other.path(), InfoRequest { digest }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert!(err.message().contains("unknown store"), "{err}");
}
