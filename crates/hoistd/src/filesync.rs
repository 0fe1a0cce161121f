//! File sync through a client's session: fsutil's DiffCopy protocol as BuildKit speaks it,
//! the protocol itself being hoist-session's [`hoist_session::fsutil`] (the same code that
//! serves hoist's client side); here, the daemon's calls.
//!
//! **Receiving a directory** (the context, the Dockerfile's directory): the daemon calls
//! the client's `FileSync.DiffCopy` with metadata `dir-name`, `include-patterns`,
//! `exclude-patterns` and `followpaths` (the client filters) and receives the tree
//! incrementally into its copy for that (shared key, dir name) ([`session_dir`]): files
//! whose size, mtime and mode are unchanged are not requested, what is gone is removed
//! ([`SyncStats`]). Paths are checked before anything is written (see
//! [`hoist_session::fsutil::receive`]); nothing is written outside the destination.
//!
//! **Sending a directory** (the `local` exporter): the daemon is fsutil's sender on the
//! client's `FileSend.DiffCopy` (the same packets, as BuildKit's `CopyToCaller`).
//! **Sending a file** (`tar`): raw `BytesMessage` chunks on the same method, as BuildKit's
//! `CopyFileWriter`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hoist_proto::filesync::file_send_client::FileSendClient;
use hoist_proto::filesync::file_sync_client::FileSyncClient;
use hoist_proto::filesync::BytesMessage;
use hoist_proto::fsutil_types::Packet;
use hoist_proto::tonic::codegen::http::uri::PathAndQuery;
use hoist_session::fsutil;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::metadata::MetadataValue;
use tonic::{Request, Status};

use crate::session::Session;

pub use hoist_session::fsutil::SyncStats;

pub const FILE_SYNC_DIFF_COPY: &str = "/moby.filesync.v1.FileSync/DiffCopy";
pub const FILE_SEND_DIFF_COPY: &str = "/moby.filesync.v1.FileSend/DiffCopy";

/// What the daemon asks of one synced directory.
#[derive(Debug, Clone, Default)]
pub struct SyncRequest {
    /// `context`, `dockerfile`, or a named context's name.
    pub dir_name: String,
    pub include_patterns: Vec<String>,
    pub exclude_patterns: Vec<String>,
    pub follow_paths: Vec<String>,
    /// The engine directory whose stat cache for the received directory learns the digests
    /// of the files received (hashed as they are written), so the build's context checksum
    /// does not read them again.
    pub engine_dir: Option<PathBuf>,
}

/// Where the copy of `dir_name` for clients sharing `shared_key` is kept.
pub fn session_dir(state_root: &Path, shared_key: &str, dir_name: &str) -> PathBuf {
    let digest = hoist_oci::Digest::sha256_of(format!("{shared_key}\0{dir_name}").as_bytes());
    state_root
        .join("hoistd")
        .join("session-dirs")
        .join(&digest.encoded()[..32])
}

fn metadata_value(key: &str, value: &str) -> Result<MetadataValue<tonic::metadata::Ascii>, Status> {
    value.parse().map_err(|_| {
        Status::invalid_argument(format!(
            "{key} {value:?} cannot travel as gRPC metadata (not printable ASCII)"
        ))
    })
}

/// An fsutil error as the Solve's status, naming what was being transferred.
fn status(what: &str, error: &fsutil::Error) -> Status {
    Status::new(error.code(), format!("{what}: {error}"))
}

fn idle_error(what: &str, idle: Duration) -> Status {
    status(what, &fsutil::Error::Idle(idle))
}

/// Syncs the client's `request.dir_name` into `dest` (created if missing), transferring
/// only what changed since the copy already there. Each wait on the client is bounded by
/// `idle`.
pub async fn receive_dir(
    session: &Session,
    request: &SyncRequest,
    dest: &Path,
    idle: Duration,
) -> Result<SyncStats, Status> {
    session.require(FILE_SYNC_DIFF_COPY)?;
    let (tx, rx) = mpsc::channel(256);
    let mut call = Request::new(ReceiverStream::new(rx));
    let metadata = call.metadata_mut();
    metadata.insert("dir-name", metadata_value("dir-name", &request.dir_name)?);
    for (key, values) in [
        ("include-patterns", &request.include_patterns),
        ("exclude-patterns", &request.exclude_patterns),
        ("followpaths", &request.follow_paths),
    ] {
        for value in values {
            metadata.append(key, metadata_value(key, value)?);
        }
    }
    let mut client = FileSyncClient::new(session.channel());
    let incoming = hoist_session::drained_call(async move { client.diff_copy(call).await });
    let options = fsutil::ReceiveOptions {
        incremental: true,
        owners: true,
        idle: Some(idle),
        digests: request.engine_dir.is_some(),
    };
    let mut stats = fsutil::receive(dest, incoming, tx, &options)
        .await
        .map_err(|error| status(&format!("file sync of {:?}", request.dir_name), &error))?;
    if let Some(engine_dir) = request.engine_dir.clone() {
        let digests = std::mem::take(&mut stats.digests);
        let dest = dest.to_owned();
        let remembered = tokio::task::spawn_blocking(move || {
            hoist_engine::remember_context_digests(&engine_dir, &dest, digests);
        });
        // Best effort: a failure only costs the build the reads.
        let _ = remembered.await;
    }
    Ok(stats)
}

/// Sends `dir` to the client's `FileSend.DiffCopy` as fsutil's sender (the `local`
/// exporter). Returns how many files' data the client asked for.
pub async fn send_dir(session: &Session, dir: &Path, idle: Duration) -> Result<u64, Status> {
    session.require(FILE_SEND_DIFF_COPY)?;
    let (tx, rx) = mpsc::channel::<Packet>(256);
    let mut grpc = tonic::client::Grpc::new(session.channel());
    let call = async move {
        grpc.ready()
            .await
            .map_err(|err| Status::unavailable(format!("the client's session is gone: {err}")))?;
        let codec = tonic_prost::ProstCodec::<Packet, Packet>::default();
        grpc.streaming(
            Request::new(ReceiverStream::new(rx)),
            PathAndQuery::from_static(FILE_SEND_DIFF_COPY),
            codec,
        )
        .await
    };
    let options = fsutil::SendOptions {
        idle: Some(idle),
        ..fsutil::SendOptions::default()
    };
    fsutil::send(
        dir.to_owned(),
        hoist_session::drained_call(call),
        tx,
        &options,
    )
    .await
    .map_err(|error| status("sending the local export", &error))
}

/// Streams `file` to the client's `FileSend.DiffCopy` as raw bytes (the `tar` exporter).
pub async fn send_file(session: &Session, file: &Path, idle: Duration) -> Result<u64, Status> {
    session.require(FILE_SEND_DIFF_COPY)?;
    let (tx, rx) = mpsc::channel::<BytesMessage>(8);
    let mut client = FileSendClient::new(session.channel());
    let path = file.to_owned();
    let reader = tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        let mut input = tokio::fs::File::open(&path).await?;
        let mut total = 0u64;
        loop {
            let mut buf = vec![0u8; 64 * 1024];
            let n = input.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            buf.truncate(n);
            total += n as u64;
            if tx.send(BytesMessage { data: buf }).await.is_err() {
                break;
            }
        }
        Ok::<u64, std::io::Error>(total)
    });
    let call = client.diff_copy(Request::new(tokio_stream::wrappers::ReceiverStream::new(
        rx,
    )));
    let mut incoming = tokio::time::timeout(idle, call)
        .await
        .map_err(|_| idle_error("the tar export", idle))?
        .map_err(|status| {
            Status::unavailable(format!(
                "sending the tar export failed: {}",
                status.message()
            ))
        })?
        .into_inner();
    loop {
        match tokio::time::timeout(idle, incoming.next()).await {
            Err(_) => return Err(idle_error("the tar export", idle)),
            Ok(None) => break,
            Ok(Some(Err(status))) => {
                return Err(Status::unavailable(format!(
                    "sending the tar export failed: {}",
                    status.message()
                )))
            }
            Ok(Some(Ok(_))) => {}
        }
    }
    reader
        .await
        .map_err(|err| Status::internal(format!("tar export reader failed: {err}")))?
        .map_err(|err| Status::internal(format!("cannot read {}: {err}", file.display())))
}
