//! hoist-proto's client against a real BuildKit: the one inside dockerd (Debian's docker.io
//! 20.10 embeds BuildKit 0.8), reached as buildx's docker driver reaches it — `POST /grpc`
//! upgraded to h2c on the docker socket. Decoding its worker records and cache records
//! checks hoist's schema against BuildKit's own encoder. Skips when no dockerd answers on
//! `/var/run/docker.sock`.

use std::path::Path;

use hoist_proto::control::control_client::ControlClient;
use hoist_proto::control::{DiskUsageRequest, InfoRequest, ListWorkersRequest};
use hoist_proto::tonic::transport::{Channel, Endpoint, Uri};
use hoist_proto::tonic::Code;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

const DOCKER_SOCKET: &str = "/var/run/docker.sock";

/// A connection to dockerd's `/grpc` endpoint, past the HTTP/1.1 upgrade.
async fn upgraded(socket: &Path) -> std::io::Result<UnixStream> {
    let mut stream = UnixStream::connect(socket).await?;
    stream
        .write_all(
            b"POST /grpc HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n",
        )
        .await?;
    // Byte by byte, so nothing of the HTTP/2 that follows is read here.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 8192 {
            return Err(std::io::Error::other("answer head too long"));
        }
        head.push(stream.read_u8().await?);
    }
    let head = String::from_utf8_lossy(&head);
    if !head.starts_with("HTTP/1.1 101") {
        return Err(std::io::Error::other(format!("no upgrade: {head}")));
    }
    Ok(stream)
}

async fn dockerd_channel() -> Option<Channel> {
    let socket = Path::new(DOCKER_SOCKET);
    if let Err(err) = upgraded(socket).await {
        eprintln!("skipped: no dockerd BuildKit at {DOCKER_SOCKET}: {err}");
        return None;
    }
    let channel = Endpoint::from_static("http://docker.invalid")
        .connect_with_connector(tower::service_fn(|_: Uri| async {
            upgraded(Path::new(DOCKER_SOCKET)).await.map(TokioIo::new)
        }))
        .await
        .expect("connect to dockerd's /grpc");
    Some(channel)
}

#[tokio::test]
async fn dockerd_buildkit_answers_hoist_proto_client() {
    let Some(channel) = dockerd_channel().await else {
        return;
    };
    let mut client = ControlClient::new(channel);
    let workers = client
        .list_workers(ListWorkersRequest::default())
        .await
        .expect("ListWorkers on dockerd's BuildKit")
        .into_inner()
        .record;
    assert!(!workers.is_empty());
    let worker = &workers[0];
    assert!(!worker.id.is_empty(), "{worker:?}");
    assert!(
        worker
            .platforms
            .iter()
            .any(|p| p.os == "linux" && !p.architecture.is_empty()),
        "{worker:?}"
    );
    // dockerd's worker ("moby") has no labels; its platforms include this machine's.
    let native = &hoist_engine::binfmt::native_platforms()[0];
    assert!(
        worker
            .platforms
            .iter()
            .any(|p| p.os == native.os && p.architecture == native.architecture),
        "{worker:?}"
    );
    // Cache records decode (whatever dockerd has in its cache).
    let records = client
        .disk_usage(DiskUsageRequest::default())
        .await
        .expect("DiskUsage on dockerd's BuildKit")
        .into_inner()
        .record;
    for record in &records {
        assert!(
            !record.id.is_empty() && record.created_at.is_some(),
            "{record:?}"
        );
    }
    eprintln!(
        "dockerd's BuildKit: worker {} with {} platform(s), {} cache record(s)",
        worker.id,
        worker.platforms.len(),
        records.len()
    );
    // BuildKit before 0.11 has no Info; a newer one answers it.
    match client.info(InfoRequest {}).await {
        Ok(info) => assert!(info.into_inner().buildkit_version.is_some()),
        Err(status) => assert_eq!(status.code(), Code::Unimplemented, "{status:?}"),
    }
}
