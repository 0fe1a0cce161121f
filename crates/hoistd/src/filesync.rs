//! File sync through a client's session: fsutil's DiffCopy protocol as BuildKit speaks it.
//!
//! **Receiving a directory** (the context, the Dockerfile's directory): the daemon calls
//! the client's `FileSync.DiffCopy` with metadata `dir-name`, `include-patterns`,
//! `exclude-patterns` and `followpaths` (the client filters). The client streams one STAT
//! packet per entry in walk order (a file's id is its index in that sequence) and an empty
//! STAT; the daemon REQuests the regular files it needs by id, each arrives as DATA chunks
//! ended by an empty DATA, and FIN goes both ways. The daemon keeps the previous copy of
//! each (shared key, dir name) ([`session_dir`]) and requests only files whose size, mtime
//! or mode changed, deleting what is gone ([`SyncStats`]). Paths are validated: empty,
//! absolute, `.`/`..` components and paths through a symlink are refused before anything
//! is written; nothing is written outside the destination.
//!
//! **Sending a directory** (the `local` exporter): the daemon is fsutil's sender on the
//! client's `FileSend.DiffCopy` (the same packets, as BuildKit's `CopyToCaller`).
//! **Sending a file** (`tar`): raw `BytesMessage` chunks on the same method, as BuildKit's
//! `CopyFileWriter`.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use filetime::FileTime;
use hoist_proto::filesync::file_send_client::FileSendClient;
use hoist_proto::filesync::file_sync_client::FileSyncClient;
use hoist_proto::filesync::BytesMessage;
use hoist_proto::fsutil_types::{Packet, PacketType, Stat};
use hoist_proto::tonic::codegen::http::uri::PathAndQuery;
use hoist_session::walk::mode as go_mode;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::metadata::MetadataValue;
use tonic::{Request, Status};

use crate::session::Session;

pub const FILE_SYNC_DIFF_COPY: &str = "/moby.filesync.v1.FileSync/DiffCopy";
pub const FILE_SEND_DIFF_COPY: &str = "/moby.filesync.v1.FileSend/DiffCopy";

/// What one directory sync did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncStats {
    /// Regular files whose contents were transferred.
    pub received: usize,
    /// Regular files kept from the previous copy (same size, mtime and mode).
    pub unchanged: usize,
    /// Entries of the previous copy that were gone or changed type, removed.
    pub removed: usize,
}

/// What the daemon asks of one synced directory.
#[derive(Debug, Clone, Default)]
pub struct SyncRequest {
    /// `context`, `dockerfile`, or a named context's name.
    pub dir_name: String,
    pub include_patterns: Vec<String>,
    pub exclude_patterns: Vec<String>,
    pub follow_paths: Vec<String>,
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
    let (tx, rx) = mpsc::unbounded_channel();
    let mut call = Request::new(UnboundedReceiverStream::new(rx));
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
    let incoming = tokio::time::timeout(idle, client.diff_copy(call))
        .await
        .map_err(|_| idle_error(&request.dir_name, idle))?
        .map_err(|status| {
            Status::unavailable(format!(
                "file sync of {:?} from the client failed: {}",
                request.dir_name,
                status.message()
            ))
        })?
        .into_inner();
    receive(drained(incoming), tx, dest, &request.dir_name, idle).await
}

/// The client's packets read as fast as they arrive, whatever the receiver is doing: h2
/// refuses (`too_many_data_frames`) a peer whose small DATA frames sit unread, and a
/// Go sender sends one small frame per stat and per file end.
fn drained(
    mut incoming: tonic::Streaming<Packet>,
) -> UnboundedReceiverStream<Result<Packet, Status>> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(item) = incoming.next().await {
            let failed = item.is_err();
            if tx.send(item).is_err() || failed {
                break;
            }
        }
    });
    UnboundedReceiverStream::new(rx)
}

fn idle_error(dir_name: &str, idle: Duration) -> Status {
    Status::deadline_exceeded(format!(
        "the client sent nothing for {}s while syncing {dir_name:?}",
        idle.as_secs()
    ))
}

/// One entry announced by the sender.
#[derive(Debug)]
struct Entry {
    id: u32,
    rel: PathBuf,
    stat: Stat,
}

impl Entry {
    fn kind(&self) -> Kind {
        kind_of(self.stat.mode, &self.stat.linkname)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dir,
    Symlink,
    File,
    HardLink,
    Other,
}

fn kind_of(mode: u32, linkname: &str) -> Kind {
    if mode & go_mode::DIR != 0 {
        Kind::Dir
    } else if mode & go_mode::SYMLINK != 0 {
        Kind::Symlink
    } else if mode & go_mode::TYPE == 0 {
        if linkname.is_empty() {
            Kind::File
        } else {
            Kind::HardLink
        }
    } else {
        Kind::Other
    }
}

/// A relative, slash-separated path from the wire, refused unless it stays inside.
fn clean_path(path: &str) -> Result<PathBuf, String> {
    if path.is_empty() {
        return Err("an empty path".to_owned());
    }
    if path.starts_with('/') {
        return Err(format!("the absolute path {path:?}"));
    }
    if path.contains('\0') {
        return Err(format!("the path {path:?} with a NUL byte"));
    }
    let mut out = PathBuf::new();
    for part in path.split('/') {
        match part {
            "" | "." | ".." => {
                return Err(format!(
                    "the path {path:?} (an empty, \".\" or \"..\" component)"
                ))
            }
            part => out.push(part),
        }
    }
    Ok(out)
}

/// The receiving side of DiffCopy over `incoming`/`outgoing`, into `dest`.
pub async fn receive(
    incoming: impl Stream<Item = Result<Packet, Status>> + Unpin,
    outgoing: mpsc::UnboundedSender<Packet>,
    dest: &Path,
    dir_name: &str,
    idle: Duration,
) -> Result<SyncStats, Status> {
    let result = receive_inner(incoming, &outgoing, dest, dir_name, idle).await;
    if let Err(status) = &result {
        let _ = outgoing.send(Packet {
            r#type: PacketType::PacketErr as i32,
            data: status.message().as_bytes().to_vec(),
            ..Packet::default()
        });
    }
    result
}

fn sync_error(dir_name: &str, what: impl std::fmt::Display) -> Status {
    Status::invalid_argument(format!("file sync of {dir_name:?}: {what}"))
}

fn io_error(dir_name: &str, action: &str, path: &Path, err: std::io::Error) -> Status {
    Status::internal(format!(
        "file sync of {dir_name:?}: cannot {action} {}: {err}",
        path.display()
    ))
}

async fn next_packet(
    incoming: &mut (impl Stream<Item = Result<Packet, Status>> + Unpin),
    dir_name: &str,
    idle: Duration,
) -> Result<Option<Packet>, Status> {
    match tokio::time::timeout(idle, incoming.next()).await {
        Err(_) => Err(idle_error(dir_name, idle)),
        Ok(None) => Ok(None),
        Ok(Some(Ok(packet))) => Ok(Some(packet)),
        Ok(Some(Err(status))) => Err(Status::unavailable(format!(
            "file sync of {dir_name:?}: the client's stream failed: {}",
            status.message()
        ))),
    }
}

async fn receive_inner(
    mut incoming: impl Stream<Item = Result<Packet, Status>> + Unpin,
    outgoing: &mpsc::UnboundedSender<Packet>,
    dest: &Path,
    dir_name: &str,
    idle: Duration,
) -> Result<SyncStats, Status> {
    // 1. The stats, validated, until the empty STAT.
    let mut entries: Vec<Entry> = Vec::new();
    let mut by_path: HashMap<PathBuf, usize> = HashMap::new();
    let mut symlinks: HashSet<PathBuf> = HashSet::new();
    let mut next_id: u32 = 0;
    loop {
        let Some(packet) = next_packet(&mut incoming, dir_name, idle).await? else {
            return Err(sync_error(
                dir_name,
                "the client ended the stream before its file list",
            ));
        };
        match PacketType::try_from(packet.r#type) {
            Ok(PacketType::PacketStat) => {}
            Ok(PacketType::PacketErr) => {
                return Err(Status::aborted(format!(
                    "file sync of {dir_name:?}: the client failed: {}",
                    String::from_utf8_lossy(&packet.data)
                )))
            }
            _ => {
                return Err(sync_error(
                    dir_name,
                    format!("unexpected packet type {} in the file list", packet.r#type),
                ))
            }
        }
        let Some(stat) = packet.stat else { break };
        let id = next_id;
        next_id = next_id
            .checked_add(1)
            .ok_or_else(|| sync_error(dir_name, "too many entries"))?;
        let rel = clean_path(&stat.path)
            .map_err(|what| sync_error(dir_name, format!("refused {what}")))?;
        for ancestor in rel.ancestors().skip(1) {
            if symlinks.contains(ancestor) {
                return Err(sync_error(
                    dir_name,
                    format!(
                        "refused the path {:?}: it goes through the symlink {:?}",
                        stat.path,
                        ancestor.display()
                    ),
                ));
            }
        }
        if by_path.contains_key(&rel) {
            return Err(sync_error(
                dir_name,
                format!("the path {:?} came twice", stat.path),
            ));
        }
        let entry = Entry { id, rel, stat };
        match entry.kind() {
            Kind::Symlink => {
                symlinks.insert(entry.rel.clone());
            }
            Kind::HardLink => {
                let target = clean_path(&entry.stat.linkname).map_err(|what| {
                    sync_error(dir_name, format!("refused the hard link target: {what}"))
                })?;
                let ok = by_path
                    .get(&target)
                    .is_some_and(|&i| entries[i].kind() == Kind::File);
                if !ok {
                    return Err(sync_error(
                        dir_name,
                        format!(
                            "the hard link {:?} names {:?}, not a regular file sent before it",
                            entry.stat.path, entry.stat.linkname
                        ),
                    ));
                }
            }
            _ => {}
        }
        by_path.insert(entry.rel.clone(), entries.len());
        entries.push(entry);
    }

    // 2. What the previous copy has that is gone or changed type goes.
    let mut stats = SyncStats::default();
    fs::create_dir_all(dest).map_err(|err| io_error(dir_name, "create", dest, err))?;
    let mut stale = Vec::new();
    for found in walkdir::WalkDir::new(dest)
        .min_depth(1)
        .contents_first(true)
    {
        let found = found.map_err(|err| {
            Status::internal(format!(
                "file sync of {dir_name:?}: cannot read the previous copy: {err}"
            ))
        })?;
        let rel = found
            .path()
            .strip_prefix(dest)
            .unwrap_or(found.path())
            .to_owned();
        let keep = by_path.get(&rel).is_some_and(|&i| {
            let kind = entries[i].kind();
            let file_type = found.file_type();
            match kind {
                Kind::Dir => file_type.is_dir(),
                Kind::Symlink => file_type.is_symlink(),
                // Hard links are linked again each time (step 5).
                Kind::File | Kind::HardLink => file_type.is_file(),
                Kind::Other => false,
            }
        });
        if !keep {
            stale.push((found.path().to_owned(), found.file_type().is_dir()));
        }
    }
    for (path, is_dir) in stale {
        // A directory's contents were listed before it (contents first).
        let removed = if is_dir {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        match removed {
            Ok(()) => stats.removed += 1,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(io_error(dir_name, "remove", &path, err)),
        }
    }

    // 3. Directories and symlinks made, unchanged files kept, the others requested.
    let mut wanted: HashMap<u32, usize> = HashMap::new();
    for (index, entry) in entries.iter().enumerate() {
        let path = dest.join(&entry.rel);
        ensure_parent_is_dir(dest, &path, dir_name)?;
        match entry.kind() {
            Kind::Dir => match fs::create_dir(&path) {
                Ok(()) => {}
                Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(err) => return Err(io_error(dir_name, "create", &path, err)),
            },
            Kind::Symlink => {
                let same = fs::read_link(&path)
                    .is_ok_and(|target| target.as_os_str() == entry.stat.linkname.as_str());
                if !same {
                    let _ = fs::remove_file(&path);
                    std::os::unix::fs::symlink(&entry.stat.linkname, &path)
                        .map_err(|err| io_error(dir_name, "create the symlink", &path, err))?;
                }
            }
            Kind::File => {
                let unchanged = fs::symlink_metadata(&path).is_ok_and(|meta| {
                    meta.is_file()
                        && i64::try_from(meta.len()).ok() == Some(entry.stat.size)
                        && meta.mtime() * 1_000_000_000 + meta.mtime_nsec() == entry.stat.mod_time
                        && meta.mode() & 0o7777 == go_mode::to_unix_permissions(entry.stat.mode)
                });
                if unchanged {
                    stats.unchanged += 1;
                } else {
                    wanted.insert(entry.id, index);
                    outgoing
                        .send(Packet {
                            r#type: PacketType::PacketReq as i32,
                            id: entry.id,
                            ..Packet::default()
                        })
                        .map_err(|_| sync_error(dir_name, "the stream to the client closed"))?;
                }
            }
            Kind::HardLink => {}
            Kind::Other => {
                eprintln!(
                    "hoistd: file sync of {dir_name:?}: skipped {:?} (a device, pipe or socket)",
                    entry.stat.path
                );
            }
        }
    }

    // 4. The requested files' data, written on a blocking thread (creating, writing, the
    // metadata and the rename are blocking calls) while this task goes on reading packets.
    let entries = std::sync::Arc::new(entries);
    let (chunks, to_write) = mpsc::channel(256);
    let writer = tokio::task::spawn_blocking({
        let entries = std::sync::Arc::clone(&entries);
        let (dest, dir_name) = (dest.to_owned(), dir_name.to_owned());
        move || write_files(to_write, &entries, &dest, &dir_name)
    });
    let read = async {
        while !wanted.is_empty() {
            let Some(packet) = next_packet(&mut incoming, dir_name, idle).await? else {
                return Err(sync_error(
                    dir_name,
                    format!(
                        "the client ended the stream with {} files still to send",
                        wanted.len()
                    ),
                ));
            };
            match PacketType::try_from(packet.r#type) {
                Ok(PacketType::PacketData) => {}
                Ok(PacketType::PacketErr) => {
                    return Err(Status::aborted(format!(
                        "file sync of {dir_name:?}: the client failed: {}",
                        String::from_utf8_lossy(&packet.data)
                    )))
                }
                _ => {
                    return Err(sync_error(
                        dir_name,
                        format!(
                            "unexpected packet type {} while receiving files",
                            packet.r#type
                        ),
                    ))
                }
            }
            let Some(&index) = wanted.get(&packet.id) else {
                return Err(sync_error(
                    dir_name,
                    format!("data for file id {} that was not requested", packet.id),
                ));
            };
            if packet.data.is_empty() {
                wanted.remove(&packet.id);
            }
            if chunks.send((packet.id, index, packet.data)).await.is_err() {
                // The writer stopped: its error is the one reported.
                break;
            }
        }
        Ok(())
    };
    let read: Result<(), Status> = read.await;
    drop(chunks);
    let written = writer
        .await
        .map_err(|err| sync_error(dir_name, format!("the file writer failed: {err}")))?;
    read?;
    stats.received += written?;

    // 5. Hard links, then the metadata of symlinks and directories (deepest first, after
    // their contents were written).
    for entry in entries.iter() {
        let path = dest.join(&entry.rel);
        match entry.kind() {
            Kind::HardLink => {
                let target = dest.join(clean_path(&entry.stat.linkname).unwrap_or_default());
                let _ = fs::remove_file(&path);
                fs::hard_link(&target, &path)
                    .map_err(|err| io_error(dir_name, "hard link", &path, err))?;
            }
            Kind::Symlink => apply_metadata(&path, &entry.stat, dir_name)?,
            _ => {}
        }
    }
    for entry in entries.iter().rev().filter(|e| e.kind() == Kind::Dir) {
        apply_metadata(&dest.join(&entry.rel), &entry.stat, dir_name)?;
    }

    // 6. FIN both ways.
    outgoing
        .send(Packet {
            r#type: PacketType::PacketFin as i32,
            ..Packet::default()
        })
        .map_err(|_| sync_error(dir_name, "the stream to the client closed"))?;
    loop {
        match next_packet(&mut incoming, dir_name, idle).await? {
            None => break,
            Some(packet) if packet.r#type == PacketType::PacketFin as i32 => break,
            Some(packet) if packet.r#type == PacketType::PacketErr as i32 => {
                return Err(Status::aborted(format!(
                    "file sync of {dir_name:?}: the client failed: {}",
                    String::from_utf8_lossy(&packet.data)
                )))
            }
            Some(_) => {}
        }
    }
    Ok(stats)
}

/// Writes the files whose data `chunks` brings (file id, index in `entries`, bytes; empty
/// bytes end a file) under `dest`: each to a partial file beside its place, given its
/// metadata and renamed into place when complete. Returns how many were completed.
fn write_files(
    mut chunks: mpsc::Receiver<(u32, usize, Vec<u8>)>,
    entries: &[Entry],
    dest: &Path,
    dir_name: &str,
) -> Result<usize, Status> {
    let mut open: HashMap<u32, (fs::File, PathBuf)> = HashMap::new();
    let mut received = 0;
    while let Some((id, index, data)) = chunks.blocking_recv() {
        let entry = &entries[index];
        let path = dest.join(&entry.rel);
        if let std::collections::hash_map::Entry::Vacant(slot) = open.entry(id) {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let partial = path.with_file_name(format!(".{name}.hoist-partial"));
            let file = fs::File::create(&partial)
                .map_err(|err| io_error(dir_name, "create", &partial, err))?;
            slot.insert((file, partial));
        }
        if data.is_empty() {
            let (file, partial) = open.remove(&id).expect("opened above");
            drop(file);
            apply_metadata(&partial, &entry.stat, dir_name)?;
            fs::rename(&partial, &path)
                .map_err(|err| io_error(dir_name, "rename", &partial, err))?;
            received += 1;
        } else {
            let (file, partial) = open.get_mut(&id).expect("opened above");
            file.write_all(&data)
                .map_err(|err| io_error(dir_name, "write", partial, err))?;
        }
    }
    Ok(received)
}

/// Everything between `dest` and `path` must be a real directory (no symlink from an
/// earlier state can redirect a write outside).
fn ensure_parent_is_dir(dest: &Path, path: &Path, dir_name: &str) -> Result<(), Status> {
    let Some(parent) = path.parent() else {
        return Ok(());
    };
    if parent == dest {
        return Ok(());
    }
    match fs::symlink_metadata(parent) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(sync_error(
            dir_name,
            format!("refused {}: its parent is not a directory", path.display()),
        )),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            // A parent the client did not list (include patterns): made here.
            fs::create_dir_all(parent).map_err(|err| io_error(dir_name, "create", parent, err))
        }
        Err(err) => Err(io_error(dir_name, "inspect", parent, err)),
    }
}

/// Owner, mode, xattrs and mtime of `stat` on `path` (not following a symlink).
fn apply_metadata(path: &Path, stat: &Stat, dir_name: &str) -> Result<(), Status> {
    let is_symlink = stat.mode & go_mode::SYMLINK != 0;
    match std::os::unix::fs::lchown(path, Some(stat.uid), Some(stat.gid)) {
        Ok(()) => {}
        // Only root may give files away; as another user they stay ours.
        Err(err) if err.kind() == std::io::ErrorKind::PermissionDenied => {}
        Err(err) => return Err(io_error(dir_name, "chown", path, err)),
    }
    if !is_symlink {
        fs::set_permissions(
            path,
            fs::Permissions::from_mode(go_mode::to_unix_permissions(stat.mode)),
        )
        .map_err(|err| io_error(dir_name, "chmod", path, err))?;
    }
    let mut names: Vec<_> = stat.xattrs.keys().collect();
    names.sort();
    for name in names {
        if let Err(err) = xattr::set(path, name, &stat.xattrs[name]) {
            // Filesystems without xattrs (or namespaces only root may set) lose them, as
            // fsutil's receiver does.
            eprintln!(
                "hoistd: file sync of {dir_name:?}: xattr {name} not set on {}: {err}",
                path.display()
            );
        }
    }
    let mtime = FileTime::from_unix_time(
        stat.mod_time.div_euclid(1_000_000_000),
        u32::try_from(stat.mod_time.rem_euclid(1_000_000_000)).unwrap_or(0),
    );
    filetime::set_symlink_file_times(path, mtime, mtime)
        .map_err(|err| io_error(dir_name, "set the mtime of", path, err))
}

/// The stat fsutil sends for `path`, named `rel`.
fn stat_of(path: &Path, rel: &str, meta: &fs::Metadata) -> Stat {
    let linkname = if meta.file_type().is_symlink() {
        fs::read_link(path)
            .map(|t| t.to_string_lossy().into_owned())
            .unwrap_or_default()
    } else {
        String::new()
    };
    Stat {
        path: rel.to_owned(),
        mode: go_mode::from_unix(meta.mode()),
        uid: meta.uid(),
        gid: meta.gid(),
        size: if meta.is_file() {
            i64::try_from(meta.len()).unwrap_or(i64::MAX)
        } else {
            0
        },
        mod_time: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
        linkname,
        devmajor: 0,
        devminor: 0,
        xattrs: HashMap::new(),
    }
}

/// Sends `dir` to the client's `FileSend.DiffCopy` as fsutil's sender (the `local`
/// exporter). Returns how many files' data the client asked for.
pub async fn send_dir(session: &Session, dir: &Path, idle: Duration) -> Result<usize, Status> {
    session.require(FILE_SEND_DIFF_COPY)?;
    // Walk order as fsutil's (Go's filepath.Walk): names sorted within each directory,
    // a directory before its contents; hard links name the first path of their inode.
    let mut stats = Vec::new();
    let mut files: HashMap<u32, PathBuf> = HashMap::new();
    let mut inodes: HashMap<(u64, u64), String> = HashMap::new();
    for found in walkdir::WalkDir::new(dir).min_depth(1).sort_by_file_name() {
        let found =
            found.map_err(|err| Status::internal(format!("cannot read the export: {err}")))?;
        let rel = found
            .path()
            .strip_prefix(dir)
            .unwrap_or(found.path())
            .to_string_lossy()
            .into_owned();
        let meta = found.path().symlink_metadata().map_err(|err| {
            Status::internal(format!("cannot read {}: {err}", found.path().display()))
        })?;
        let mut stat = stat_of(found.path(), &rel, &meta);
        let id = u32::try_from(stats.len()).unwrap_or(u32::MAX);
        if meta.is_file() {
            if meta.nlink() > 1 {
                if let Some(first) = inodes.get(&(meta.dev(), meta.ino())) {
                    stat.linkname.clone_from(first);
                } else {
                    inodes.insert((meta.dev(), meta.ino()), rel.clone());
                }
            }
            files.insert(id, found.path().to_owned());
        }
        stats.push(stat);
    }
    let (tx, rx) = mpsc::unbounded_channel();
    for stat in stats {
        let _ = tx.send(Packet {
            r#type: PacketType::PacketStat as i32,
            stat: Some(stat),
            ..Packet::default()
        });
    }
    let _ = tx.send(Packet::default());
    let mut grpc = tonic::client::Grpc::new(session.channel());
    grpc.ready()
        .await
        .map_err(|err| Status::unavailable(format!("the client's session is gone: {err}")))?;
    let codec = tonic_prost::ProstCodec::<Packet, Packet>::default();
    let call = grpc.streaming(
        Request::new(UnboundedReceiverStream::new(rx)),
        PathAndQuery::from_static(FILE_SEND_DIFF_COPY),
        codec,
    );
    let mut incoming = drained(
        tokio::time::timeout(idle, call)
            .await
            .map_err(|_| idle_error("the local export", idle))?
            .map_err(|status| {
                Status::unavailable(format!(
                    "sending the local export failed: {}",
                    status.message()
                ))
            })?
            .into_inner(),
    );
    let mut sent = 0;
    loop {
        let packet = match tokio::time::timeout(idle, incoming.next()).await {
            Err(_) => return Err(idle_error("the local export", idle)),
            Ok(None) => break,
            Ok(Some(Err(status))) => {
                return Err(Status::unavailable(format!(
                    "sending the local export failed: {}",
                    status.message()
                )))
            }
            Ok(Some(Ok(packet))) => packet,
        };
        match PacketType::try_from(packet.r#type) {
            Ok(PacketType::PacketReq) => {
                let Some(path) = files.remove(&packet.id) else {
                    return Err(Status::invalid_argument(format!(
                        "the client asked for file id {} which is not a file to send",
                        packet.id
                    )));
                };
                let data = tokio::fs::read(&path).await.map_err(|err| {
                    Status::internal(format!("cannot read {}: {err}", path.display()))
                })?;
                for chunk in data.chunks(32 * 1024) {
                    let _ = tx.send(Packet {
                        r#type: PacketType::PacketData as i32,
                        id: packet.id,
                        data: chunk.to_vec(),
                        ..Packet::default()
                    });
                }
                let _ = tx.send(Packet {
                    r#type: PacketType::PacketData as i32,
                    id: packet.id,
                    ..Packet::default()
                });
                sent += 1;
            }
            Ok(PacketType::PacketFin) => {
                let _ = tx.send(Packet {
                    r#type: PacketType::PacketFin as i32,
                    ..Packet::default()
                });
                break;
            }
            Ok(PacketType::PacketErr) => {
                return Err(Status::aborted(format!(
                    "the client failed to receive the local export: {}",
                    String::from_utf8_lossy(&packet.data)
                )))
            }
            _ => {}
        }
    }
    drop(tx);
    // The client ends its side once it has our FIN.
    while let Ok(Some(Ok(_))) = tokio::time::timeout(idle, incoming.next()).await {}
    Ok(sent)
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
    use tokio_stream::wrappers::UnboundedReceiverStream;

    fn stat(path: &str, mode: u32, size: i64, mod_time: i64, linkname: &str) -> Stat {
        Stat {
            path: path.to_owned(),
            mode,
            size,
            mod_time,
            linkname: linkname.to_owned(),
            ..Stat::default()
        }
    }

    /// A sender as fsutil's: the stats, then each requested file's data, FIN for FIN.
    /// Returns the receiver's result and the ids it requested.
    async fn sync(
        entries: Vec<(Stat, Vec<u8>)>,
        dest: &Path,
    ) -> (Result<SyncStats, Status>, Vec<u32>) {
        let (in_tx, in_rx) = mpsc::unbounded_channel::<Result<Packet, Status>>();
        let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Packet>();
        for (stat, _) in &entries {
            in_tx
                .send(Ok(Packet {
                    r#type: PacketType::PacketStat as i32,
                    stat: Some(stat.clone()),
                    ..Packet::default()
                }))
                .unwrap();
        }
        in_tx.send(Ok(Packet::default())).unwrap();
        let sender = tokio::spawn(async move {
            let mut requested = Vec::new();
            while let Some(packet) = out_rx.recv().await {
                match PacketType::try_from(packet.r#type) {
                    Ok(PacketType::PacketReq) => {
                        requested.push(packet.id);
                        let data = &entries[packet.id as usize].1;
                        for chunk in data.chunks(3) {
                            let _ = in_tx.send(Ok(Packet {
                                r#type: PacketType::PacketData as i32,
                                id: packet.id,
                                data: chunk.to_vec(),
                                ..Packet::default()
                            }));
                        }
                        let _ = in_tx.send(Ok(Packet {
                            r#type: PacketType::PacketData as i32,
                            id: packet.id,
                            ..Packet::default()
                        }));
                    }
                    Ok(PacketType::PacketFin) => {
                        let _ = in_tx.send(Ok(Packet {
                            r#type: PacketType::PacketFin as i32,
                            ..Packet::default()
                        }));
                        break;
                    }
                    _ => break,
                }
            }
            requested
        });
        let result = receive(
            UnboundedReceiverStream::new(in_rx),
            out_tx,
            dest,
            "context",
            Duration::from_secs(10),
        )
        .await;
        (result, sender.await.unwrap())
    }

    const T: i64 = 1_600_000_000_123_456_789;

    fn tree() -> Vec<(Stat, Vec<u8>)> {
        let mut with_xattr = stat("a/x", 0o600, 1, T, "");
        with_xattr.xattrs.insert("user.k".into(), b"v".to_vec());
        vec![
            (stat("a", go_mode::DIR | 0o750, 0, T, ""), Vec::new()),
            (
                stat("a/f", 0o640 | go_mode::SETGID, 11, T, ""),
                b"hello world".to_vec(),
            ),
            (with_xattr, b"x".to_vec()),
            (stat("h", 0o640 | go_mode::SETGID, 11, T, "a/f"), Vec::new()),
            (stat("l", go_mode::SYMLINK | 0o777, 0, T, "a/f"), Vec::new()),
            (stat("z", 0o644, 0, T + 5, ""), Vec::new()),
        ]
    }

    #[tokio::test]
    async fn a_tree_arrives_with_its_metadata_then_only_changes_move() {
        let root = tempfile::tempdir().unwrap();
        let dest = root.path().join("copy");
        let (result, requested) = sync(tree(), &dest).await;
        let stats = result.unwrap();
        assert_eq!(requested, [1, 2, 5]);
        assert_eq!(
            stats,
            SyncStats {
                received: 3,
                unchanged: 0,
                removed: 0
            }
        );
        assert_eq!(fs::read(dest.join("a/f")).unwrap(), b"hello world");
        let meta = fs::symlink_metadata(dest.join("a/f")).unwrap();
        assert_eq!(meta.mode() & 0o7777, 0o2640);
        assert_eq!(meta.mtime_nsec(), 123_456_789);
        assert_eq!(fs::metadata(dest.join("a")).unwrap().mode() & 0o777, 0o750);
        assert_eq!(fs::metadata(dest.join("h")).unwrap().ino(), meta.ino());
        assert_eq!(fs::read_link(dest.join("l")).unwrap(), Path::new("a/f"));
        if let Ok(Some(value)) = xattr::get(dest.join("a/x"), "user.k") {
            assert_eq!(value, b"v");
        }
        // The same tree again: nothing moves.
        let (result, requested) = sync(tree(), &dest).await;
        assert!(requested.is_empty(), "{requested:?}");
        assert_eq!(
            result.unwrap(),
            SyncStats {
                received: 0,
                unchanged: 3,
                removed: 0
            }
        );
        // One file touched, one gone: that file moves, the other is removed.
        let mut next = tree();
        next[2].0.mod_time += 1;
        next.pop();
        let (result, requested) = sync(next, &dest).await;
        assert_eq!(requested, [2]);
        assert_eq!(
            result.unwrap(),
            SyncStats {
                received: 1,
                unchanged: 1,
                removed: 1
            }
        );
        assert!(!dest.join("z").exists());
        // A directory becomes a file.
        let replaced = vec![(stat("a", 0o644, 2, T, ""), b"ok".to_vec())];
        let (result, _) = sync(replaced, &dest).await;
        result.unwrap();
        assert_eq!(fs::read(dest.join("a")).unwrap(), b"ok");
        assert_eq!(fs::read_dir(&dest).unwrap().count(), 1);
    }

    #[tokio::test]
    async fn paths_leaving_the_destination_are_refused_before_anything_is_written() {
        for (bad, why) in [
            (vec![stat("../evil", 0o644, 1, T, "")], "\"..\""),
            (vec![stat("/etc/evil", 0o644, 1, T, "")], "absolute"),
            (vec![stat("a//b", 0o644, 1, T, "")], "empty"),
            (
                vec![
                    stat("l", go_mode::SYMLINK | 0o777, 0, T, "/etc"),
                    stat("l/evil", 0o644, 1, T, ""),
                ],
                "through the symlink",
            ),
            (
                vec![stat("h", 0o644, 1, T, "../../etc/passwd")],
                "hard link",
            ),
        ] {
            let root = tempfile::tempdir().unwrap();
            let dest = root.path().join("copy");
            let entries = bad.into_iter().map(|s| (s, b"x".to_vec())).collect();
            let (result, requested) = sync(entries, &dest).await;
            let err = result.unwrap_err();
            assert!(err.message().contains(why), "{why}: {}", err.message());
            assert!(requested.is_empty());
            let left: Vec<_> = fs::read_dir(root.path()).unwrap().collect();
            assert!(left.is_empty(), "{why}: wrote {left:?}");
        }
    }

    #[test]
    fn go_modes_round_trip() {
        assert_eq!(go_mode::from_unix(0o040755), go_mode::DIR | 0o755);
        assert_eq!(go_mode::from_unix(0o120777), go_mode::SYMLINK | 0o777);
        assert_eq!(go_mode::from_unix(0o104755), go_mode::SETUID | 0o755);
        assert_eq!(
            go_mode::to_unix_permissions(go_mode::STICKY | go_mode::DIR | 0o777),
            0o1777
        );
    }
}
