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
//! [`hoist_session::fsutil::receive`]); nothing is written outside the destination. Each
//! copy's listing (its entries' metadata and files' digests) is kept in memory
//! ([`Listings`]): the next transfer into the copy compares against it instead of reading
//! the copy, and the engine reads it instead of walking and hashing the copy.
//!
//! **Sending a directory** (the `local` exporter): the daemon is fsutil's sender on the
//! client's `FileSend.DiffCopy` (the same packets, as BuildKit's `CopyToCaller`).
//! **Sending a file** (`tar`): raw `BytesMessage` chunks on the same method, as BuildKit's
//! `CopyFileWriter`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hoist_proto::filesync::file_send_client::FileSendClient;
use hoist_proto::filesync::file_sync_client::FileSyncClient;
use hoist_proto::filesync::BytesMessage;
use hoist_proto::fsutil_types::Packet;
use hoist_proto::tonic::codegen::http::uri::PathAndQuery;
use hoist_session::fsutil;
use hoist_snapshot::Listing;
use tokio::sync::mpsc;
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
}

/// The listing of each session copy as its last transfer left it, with the token written
/// into the copy's lock file then. A listing is used only while the lock file still holds
/// its token: a transfer clears the token before it changes the copy, so a copy changed by
/// a transfer that failed, or by another process sharing the state dir, is read from disk.
/// At most [`LISTED_ENTRIES`] entries are kept in all; the copies synced longest ago are
/// forgotten first (and read from disk when next synced).
#[derive(Debug)]
pub struct Listings {
    known: Mutex<HashMap<PathBuf, Known>>,
    /// How many entries may be kept in all.
    capacity: usize,
}

impl Default for Listings {
    fn default() -> Listings {
        Listings::with_capacity(LISTED_ENTRIES)
    }
}

/// How many entries the kept listings may hold in all (a few hundred bytes each).
pub const LISTED_ENTRIES: usize = 1 << 18;

#[derive(Debug)]
struct Known {
    token: String,
    listing: Arc<Listing>,
    /// When it was recorded, in [`Listings::put`] calls.
    made: u64,
}

impl Listings {
    /// Keeping at most `capacity` entries in all.
    pub fn with_capacity(capacity: usize) -> Listings {
        Listings {
            known: Mutex::default(),
            capacity,
        }
    }

    /// The listing of `dir`, when it is still true; from now on the copy is being changed.
    /// The caller holds `dir`'s lock.
    fn take(&self, dir: &Path) -> std::io::Result<Option<Arc<Listing>>> {
        let known = self.lock().remove(dir);
        let lock = lock_file(dir);
        let token = match std::fs::read_to_string(&lock) {
            Ok(token) => token,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(err) => return Err(err),
        };
        if !token.is_empty() {
            std::fs::write(&lock, b"")?;
        }
        Ok(known.and_then(|known| (known.token == token).then_some(known.listing)))
    }

    /// Records `listing` as what `dir` holds now, with a new token in its lock file.
    fn put(&self, dir: &Path, listing: Arc<Listing>) -> std::io::Result<()> {
        static MADE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let made = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let token = format!("{} {nanos} {made}", std::process::id());
        std::fs::write(lock_file(dir), token.as_bytes())?;
        let mut known = self.lock();
        known.insert(
            dir.to_owned(),
            Known {
                token,
                listing,
                made,
            },
        );
        let mut total: usize = known.values().map(|k| k.listing.len()).sum();
        while total > self.capacity && known.len() > 1 {
            let Some(oldest) = known
                .iter()
                .min_by_key(|(_, k)| k.made)
                .map(|(dir, _)| dir.clone())
            else {
                break;
            };
            if let Some(gone) = known.remove(&oldest) {
                total -= gone.listing.len();
            }
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, Known>> {
        self.known.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The file whose flock guards the session copy `dir` (and which holds its listing's token).
pub fn lock_file(dir: &Path) -> PathBuf {
    dir.with_extension("lock")
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

/// Syncs the client's `request.dir_name` into `dest` (created if missing; the caller holds
/// its lock), transferring only what changed since the copy already there. Each wait on
/// the client is bounded by `idle`. Returns the copy's listing too, kept in `listings`.
pub async fn receive_dir(
    session: &Session,
    request: &SyncRequest,
    dest: &Path,
    listings: &Listings,
    idle: Duration,
) -> Result<(SyncStats, Arc<Listing>), Status> {
    session.require(FILE_SYNC_DIFF_COPY)?;
    let (tx, rx) = mpsc::channel(fsutil::BATCHES);
    let mut call = Request::new(fsutil::packets(rx));
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
    };
    let what = format!("file sync of {:?}", request.dir_name);
    let lock_error = |err: std::io::Error| {
        let lock = lock_file(dest);
        Status::internal(format!("{what}: cannot use {}: {err}", lock.display()))
    };
    let previous = listings.take(dest).map_err(lock_error)?;
    let (stats, listing) = fsutil::receive_listed(dest, previous, incoming, tx, &options)
        .await
        .map_err(|error| status(&what, &error))?;
    listings
        .put(dest, Arc::clone(&listing))
        .map_err(lock_error)?;
    Ok((stats, listing))
}

/// Sends `dir` to the client's `FileSend.DiffCopy` as fsutil's sender (the `local`
/// exporter). Returns how many files' data the client asked for.
pub async fn send_dir(session: &Session, dir: &Path, idle: Duration) -> Result<u64, Status> {
    session.require(FILE_SEND_DIFF_COPY)?;
    let (tx, rx) = mpsc::channel(fsutil::BATCHES);
    let mut grpc = tonic::client::Grpc::new(session.channel());
    let call = async move {
        grpc.ready()
            .await
            .map_err(|err| Status::unavailable(format!("the client's session is gone: {err}")))?;
        let codec = tonic_prost::ProstCodec::<Packet, Packet>::default();
        grpc.streaming(
            Request::new(fsutil::packets(rx)),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A listing of `n` entries (all alike: only their number matters here).
    fn listing(n: usize) -> Arc<Listing> {
        let meta = std::fs::symlink_metadata("/").unwrap();
        let entries = (0..n)
            .map(|i| hoist_snapshot::Listed::new(format!("f{i:05}"), meta.clone(), None))
            .collect();
        Arc::new(Listing::new(entries))
    }

    #[test]
    fn a_listing_serves_one_transfer_and_only_while_no_one_else_changed_the_copy() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("copy");
        let listings = Listings::default();
        assert!(listings.take(&dir).unwrap().is_none(), "nothing known yet");
        let made = listing(3);
        listings.put(&dir, Arc::clone(&made)).unwrap();
        let taken = listings.take(&dir).unwrap().expect("the listing just made");
        assert!(Arc::ptr_eq(&taken, &made));
        // Taken for a transfer that never put one back (it failed): the copy is unknown.
        assert!(listings.take(&dir).unwrap().is_none());
        // Another process's transfer into the same copy writes its own token.
        listings.put(&dir, listing(3)).unwrap();
        std::fs::write(lock_file(&dir), "another hoistd").unwrap();
        assert!(listings.take(&dir).unwrap().is_none());
    }

    #[test]
    fn the_copies_synced_longest_ago_are_forgotten_first() {
        let root = tempfile::tempdir().unwrap();
        let dir = |name: &str| root.path().join(name);
        let listings = Listings::with_capacity(10);
        listings.put(&dir("a"), listing(4)).unwrap();
        listings.put(&dir("b"), listing(4)).unwrap();
        listings.put(&dir("c"), listing(4)).unwrap();
        assert!(listings.take(&dir("a")).unwrap().is_none(), "forgotten");
        assert!(listings.take(&dir("b")).unwrap().is_some());
        assert!(listings.take(&dir("c")).unwrap().is_some());
        // One copy larger than the whole allowance is still kept (alone).
        listings.put(&dir("d"), listing(20)).unwrap();
        assert!(listings.take(&dir("d")).unwrap().is_some());
    }
}
