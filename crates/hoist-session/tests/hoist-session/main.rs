//! hoist-session's services driven as a BuildKit daemon drives them: the session served on
//! one end of a `Control.Session`-style tunnel (two byte tunnels back to back, so the
//! HTTP/2 connection crosses `BytesMessage` chunks both ways), a gRPC client on the other.
//!
//! `file_sync`: a directory sent by the session's fsutil sender and written by hoist's fsutil
//! receiver comes out the same (modes, symlinks, hardlinks, mtimes, contents), filters
//! apply; `file_send`: a tar stream into a file, a tree into a directory, a tree naming a
//! path outside refused with nothing written there; `answers`: credentials, secrets,
//! health, an unknown directory.

mod answers;
mod content_store;
mod file_send;
mod file_sync;

use std::sync::Arc;

use futures::StreamExt as _;
use hoist_proto::control::BytesMessage;
use hoist_proto::tonic::transport::{Channel, Endpoint, Uri};
use hoist_session::tunnel::tunnel;
use hoist_session::Session;

/// A channel to `session`, served over two tunnels joined back to back, as a daemon's
/// client reaches a session through `Control.Session`.
pub async fn connect(session: Arc<Session>) -> Channel {
    let (served, to_daemon, from_daemon) = tunnel::<BytesMessage>();
    let (daemon_io, to_client, from_client) = tunnel::<BytesMessage>();
    tokio::spawn(from_daemon.feed(to_client.map(Ok::<_, std::io::Error>)));
    tokio::spawn(from_client.feed(to_daemon.map(Ok::<_, std::io::Error>)));
    tokio::spawn(async move {
        let _ = session.serve(served).await;
    });
    let io = std::sync::Mutex::new(Some(daemon_io));
    Endpoint::from_static("http://session.invalid")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let io = io.lock().unwrap().take();
            async move {
                io.map(hyper_util::rt::TokioIo::new)
                    .ok_or_else(|| std::io::Error::other("one connection only"))
            }
        }))
        .await
        .unwrap()
}

/// A tree's entries: path → type, permission bits, size, content or link target, and the
/// mtime of files and symlinks.
pub fn tree(root: &std::path::Path) -> std::collections::BTreeMap<String, String> {
    use std::os::unix::fs::MetadataExt as _;
    let mut out = std::collections::BTreeMap::new();
    for entry in walkdir::WalkDir::new(root).min_depth(1) {
        let entry = entry.unwrap();
        let meta = entry.path().symlink_metadata().unwrap();
        let rel = entry
            .path()
            .strip_prefix(root)
            .unwrap()
            .display()
            .to_string();
        let line = if meta.is_dir() {
            format!("dir {:o}", meta.mode() & 0o7777)
        } else if meta.file_type().is_symlink() {
            let target = std::fs::read_link(entry.path()).unwrap();
            format!("link {} {}", target.display(), meta.mtime())
        } else {
            let content = std::fs::read(entry.path()).unwrap();
            format!(
                "file {:o} {} {:?} {}.{}",
                meta.mode() & 0o7777,
                content.len(),
                String::from_utf8_lossy(&content[..content.len().min(16)]),
                meta.mtime(),
                meta.mtime_nsec()
            )
        };
        out.insert(rel, line);
    }
    out
}
