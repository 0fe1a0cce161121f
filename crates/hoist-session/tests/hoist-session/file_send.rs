//! `FileSend.DiffCopy`: the `tar` exporter's byte stream and the `local` exporter's fsutil
//! packets, as BuildKit sends them on the same method.

use std::sync::Arc;

use hoist_proto::filesync::file_send_client::FileSendClient;
use hoist_proto::filesync::BytesMessage;
use hoist_proto::fsutil_types::{Packet, PacketType, Stat};
use hoist_proto::tonic::codegen::http::uri::PathAndQuery;
use hoist_session::{Output, Session};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt as _;

use crate::connect;

#[tokio::test]
async fn a_tar_stream_lands_in_its_file_once_complete() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out.tar");
    let session = Arc::new(Session::new("t", "k").with_output(Output::Stream(Some(dest.clone()))));
    let channel = connect(Arc::clone(&session)).await;
    let chunks: Vec<BytesMessage> = (0..40u8)
        .map(|i| BytesMessage {
            data: vec![i; 10_000],
        })
        .collect();
    let mut response = FileSendClient::new(channel)
        .diff_copy(tokio_stream::iter(chunks))
        .await
        .unwrap()
        .into_inner();
    // The session ends its side once the file is in place.
    while response.message().await.unwrap().is_some() {}
    let written = std::fs::read(&dest).unwrap();
    assert_eq!(written.len(), 400_000);
    assert_eq!(&written[395_000..395_003], &[39, 39, 39]);
    assert_eq!(session.error(), None);
    let leftovers = std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(leftovers, 1, "no temporary file left");
}

/// Packets of the `local` exporter for `entries` (path, mode, data); answers REQs, then FIN.
async fn send_tree(
    session: Arc<Session>,
    entries: Vec<(&'static str, u32, &'static [u8], &'static str)>,
) -> Result<(), hoist_proto::tonic::Status> {
    let channel = connect(session).await;
    let mut grpc = hoist_proto::tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel::<Packet>(64);
    for (path, mode, _, link) in &entries {
        tx.send(Packet {
            r#type: PacketType::PacketStat as i32,
            stat: Some(Stat {
                path: (*path).to_owned(),
                mode: *mode,
                linkname: (*link).to_owned(),
                mod_time: 1_600_000_000_000_000_000,
                ..Stat::default()
            }),
            ..Packet::default()
        })
        .await
        .unwrap();
    }
    tx.send(Packet {
        r#type: PacketType::PacketStat as i32,
        ..Packet::default()
    })
    .await
    .unwrap();
    let codec = tonic_prost::ProstCodec::<Packet, Packet>::default();
    let path = PathAndQuery::from_static("/moby.filesync.v1.FileSend/DiffCopy");
    let mut incoming = grpc
        .streaming(
            hoist_proto::tonic::Request::new(ReceiverStream::new(rx)),
            path,
            codec,
        )
        .await?
        .into_inner();
    while let Some(packet) = incoming.next().await {
        let packet = packet?;
        match PacketType::try_from(packet.r#type).unwrap() {
            PacketType::PacketReq => {
                let data = entries[packet.id as usize].2;
                for p in [data.to_vec(), Vec::new()] {
                    let _ = tx
                        .send(Packet {
                            r#type: PacketType::PacketData as i32,
                            id: packet.id,
                            data: p,
                            ..Packet::default()
                        })
                        .await;
                }
            }
            PacketType::PacketFin => {
                let _ = tx
                    .send(Packet {
                        r#type: PacketType::PacketFin as i32,
                        ..Packet::default()
                    })
                    .await;
                break;
            }
            _ => {}
        }
    }
    Ok(())
}

const DIR: u32 = 1 << 31 | 0o755;
const LINK: u32 = 1 << 27 | 0o777;

#[tokio::test]
async fn a_local_output_is_written_and_paths_outside_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out");
    let session = Arc::new(Session::new("t", "k").with_output(Output::Directory(dest.clone())));
    send_tree(
        Arc::clone(&session),
        vec![
            ("bin", DIR, b"", ""),
            ("bin/tool", 0o755, b"#!/bin/sh\n", ""),
            ("bin/tool2", 0o755, b"", "bin/tool"),
            ("hello", 0o644, b"hello\n", ""),
            ("link", LINK, b"", "hello"),
        ],
    )
    .await
    .unwrap();
    // The receiver wrote every file before it answered FIN.
    assert_eq!(session.error(), None);
    assert_eq!(
        std::fs::read(dest.join("bin/tool")).unwrap(),
        b"#!/bin/sh\n"
    );
    assert_eq!(
        std::fs::read(dest.join("bin/tool2")).unwrap(),
        b"#!/bin/sh\n"
    );
    assert_eq!(
        std::fs::read_link(dest.join("link")).unwrap().to_str(),
        Some("hello")
    );
    let mtime = std::fs::metadata(dest.join("hello")).unwrap();
    assert_eq!(
        std::os::unix::fs::MetadataExt::mtime(&mtime),
        1_600_000_000,
        "the sender's mtime"
    );

    let evil = Arc::new(Session::new("t", "k").with_output(Output::Directory(dest.clone())));
    let _ = send_tree(Arc::clone(&evil), vec![("../escaped", 0o644, b"x", "")]).await;
    let error = evil.error().expect("the bad path is reported");
    assert!(error.contains("../escaped"), "{error}");
    assert!(!dir.path().join("escaped").exists());
    // A symlink in the tree is not a way out either.
    let evil = Arc::new(Session::new("t", "k").with_output(Output::Directory(dest.clone())));
    let _ = send_tree(
        Arc::clone(&evil),
        vec![("up", LINK, b"", ".."), ("up/escaped2", 0o644, b"x", "")],
    )
    .await;
    assert!(evil.error().is_some());
    assert!(!dir.path().join("escaped2").exists());
}
