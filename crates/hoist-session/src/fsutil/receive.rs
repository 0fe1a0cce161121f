//! fsutil's receiver: the sender's STATs are read and checked in full before anything is
//! written, the regular files wanted are requested, their data written on a blocking thread
//! (each into a partial file beside its place, renamed once complete, so no half-written
//! file ever carries the final name), then hard links and the metadata of symlinks and
//! directories (deepest first).
//!
//! Paths are refused before anything is written when empty, absolute, with a NUL byte or an
//! empty, `.` or `..` component, below a symlink sent in the same tree, or when their
//! directory was not sent before them; a hard link must name a regular file sent before it.
//! Writes check again that each parent on disk is a real directory.
//!
//! Two ways to land in the destination ([`ReceiveOptions::incremental`]): a daemon's copy of
//! a client's directory, kept across builds, where files whose size, mtime and mode are
//! unchanged are not requested and what the sender no longer lists is removed; or a merge
//! into a user's directory (a `local` output), as BuildKit's client does: every file is
//! requested, an entry of another kind at a sent path is replaced, nothing else is touched.

use std::collections::{HashMap, HashSet};
use std::io::Write as _;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use hoist_proto::fsutil_types::{Packet, PacketType, Stat};
use tokio::sync::mpsc;

use super::{mode, next_packet, packet, peer_error, Error};

/// How [`receive`] lands the tree.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReceiveOptions {
    /// The destination is this receiver's previous copy: unchanged files (same size, mtime
    /// and mode) are kept and not requested, entries no longer sent are removed. Otherwise
    /// the tree is merged into the destination and every file is requested.
    pub incremental: bool,
    /// Give entries the sender's owner (only root can; refused `chown`s are ignored).
    /// Otherwise they belong to this process's user, as BuildKit's client maps them.
    pub owners: bool,
    /// Give up when the sender sends nothing for this long.
    pub idle: Option<Duration>,
}

/// What one receive did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncStats {
    /// Regular files whose contents were transferred.
    pub received: usize,
    /// Regular files kept from the previous copy (same size, mtime and mode).
    pub unchanged: usize,
    /// Entries of the previous copy that were gone or changed type, removed.
    pub removed: usize,
    /// Devices, pipes and sockets, which are not made.
    pub skipped: usize,
}

/// One entry announced by the sender.
#[derive(Debug)]
struct Entry {
    id: u32,
    rel: PathBuf,
    stat: Stat,
    kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dir,
    Symlink,
    File,
    HardLink,
    Other,
}

fn kind_of(stat: &Stat) -> Kind {
    if stat.mode & mode::DIR != 0 {
        Kind::Dir
    } else if stat.mode & mode::SYMLINK != 0 {
        Kind::Symlink
    } else if stat.mode & mode::TYPE == 0 {
        if stat.linkname.is_empty() {
            Kind::File
        } else {
            Kind::HardLink
        }
    } else {
        Kind::Other
    }
}

/// A relative, slash-separated path from the wire, refused unless it stays inside.
fn clean_path(path: &str) -> Result<PathBuf, Error> {
    if path.is_empty() {
        return Err(Error::Refused("an empty path".to_owned()));
    }
    if path.starts_with('/') {
        return Err(Error::Refused(format!("the absolute path {path:?}")));
    }
    if path.contains('\0') {
        return Err(Error::Refused(format!("the path {path:?} with a NUL byte")));
    }
    let mut out = PathBuf::new();
    for part in path.split('/') {
        match part {
            "" | "." | ".." => {
                return Err(Error::Refused(format!(
                    "the path {path:?} (an empty, \".\" or \"..\" component)"
                )))
            }
            part => out.push(part),
        }
    }
    Ok(out)
}

/// Receives one tree into `dest` (created if missing): `incoming` from the sender,
/// `outgoing` for this side's REQs and FIN (and ERR when it fails). Returns once the
/// sender has answered FIN.
pub async fn receive<S>(
    dest: &Path,
    incoming: S,
    outgoing: mpsc::Sender<Packet>,
    options: &ReceiveOptions,
) -> Result<SyncStats, Error>
where
    S: Stream<Item = Result<Packet, tonic::Status>> + Unpin,
{
    let result = receive_inner(dest, incoming, &outgoing, options).await;
    if let Err(error) = &result {
        let _ = outgoing.try_send(packet(
            PacketType::PacketErr,
            0,
            error.to_string().into_bytes(),
        ));
    }
    result
}

/// The entries, checked, until the empty STAT.
async fn read_list<S>(incoming: &mut S, idle: Option<Duration>) -> Result<Vec<Entry>, Error>
where
    S: Stream<Item = Result<Packet, tonic::Status>> + Unpin,
{
    let mut entries: Vec<Entry> = Vec::new();
    let mut by_path: HashMap<PathBuf, usize> = HashMap::new();
    let mut symlinks: HashSet<PathBuf> = HashSet::new();
    loop {
        let Some(packet) = next_packet(incoming, idle).await? else {
            return Err(Error::Closed("before the end of its file list"));
        };
        if let Some(error) = peer_error(&packet) {
            return Err(error);
        }
        if packet.r#type != PacketType::PacketStat as i32 {
            return Err(Error::Protocol(format!(
                "unexpected packet type {} in the file list",
                packet.r#type
            )));
        }
        let Some(stat) = packet.stat else {
            return Ok(entries);
        };
        let id = u32::try_from(entries.len())
            .map_err(|_| Error::Protocol("too many entries".to_owned()))?;
        let rel = clean_path(&stat.path)?;
        for ancestor in rel.ancestors().skip(1) {
            if symlinks.contains(ancestor) {
                return Err(Error::Refused(format!(
                    "the path {:?}: it goes through the symlink {:?}",
                    stat.path,
                    ancestor.display()
                )));
            }
        }
        let parent = rel.parent().unwrap_or(Path::new(""));
        let parent_sent = parent.as_os_str().is_empty()
            || by_path
                .get(parent)
                .is_some_and(|&i| entries[i].kind == Kind::Dir);
        if !parent_sent {
            return Err(Error::Refused(format!(
                "the path {:?}: its directory {:?} was not sent before it",
                stat.path,
                parent.display()
            )));
        }
        if by_path.contains_key(&rel) {
            return Err(Error::Refused(format!(
                "the path {:?}: it came twice",
                stat.path
            )));
        }
        let kind = kind_of(&stat);
        match kind {
            Kind::Symlink => {
                symlinks.insert(rel.clone());
            }
            Kind::HardLink => {
                let target = clean_path(&stat.linkname).map_err(|refused| {
                    Error::Refused(format!(
                        "the hard link {:?}: its target: {refused}",
                        stat.path
                    ))
                })?;
                let ok = by_path
                    .get(&target)
                    .is_some_and(|&i| entries[i].kind == Kind::File);
                if !ok {
                    return Err(Error::Refused(format!(
                        "the hard link {:?}: it names {:?}, not a regular file sent before it",
                        stat.path, stat.linkname
                    )));
                }
            }
            _ => {}
        }
        by_path.insert(rel.clone(), entries.len());
        entries.push(Entry {
            id,
            rel,
            stat,
            kind,
        });
    }
}

async fn receive_inner<S>(
    dest: &Path,
    mut incoming: S,
    outgoing: &mpsc::Sender<Packet>,
    options: &ReceiveOptions,
) -> Result<SyncStats, Error>
where
    S: Stream<Item = Result<Packet, tonic::Status>> + Unpin,
{
    // 1. The whole list, checked, before anything is written.
    let entries = read_list(&mut incoming, options.idle).await?;
    let mut stats = SyncStats::default();
    std::fs::create_dir_all(dest).map_err(Error::io("create", dest))?;

    // 2. What the previous copy has that is gone or changed type goes.
    if options.incremental {
        stats.removed = remove_stale(dest, &entries)?;
    }

    // 3. Directories and symlinks made, unchanged files kept, the others requested.
    let mut wanted: HashMap<u32, usize> = HashMap::new();
    for (index, entry) in entries.iter().enumerate() {
        let path = dest.join(&entry.rel);
        ensure_parent_is_dir(dest, &path)?;
        let existing = std::fs::symlink_metadata(&path).ok();
        match entry.kind {
            Kind::Dir => {
                if !existing.as_ref().is_some_and(std::fs::Metadata::is_dir) {
                    remove_any(&path, existing.as_ref())?;
                    std::fs::create_dir(&path).map_err(Error::io("create", &path))?;
                }
            }
            Kind::Symlink => {
                let same = existing
                    .as_ref()
                    .is_some_and(|m| m.file_type().is_symlink())
                    && std::fs::read_link(&path)
                        .is_ok_and(|target| target.as_os_str() == entry.stat.linkname.as_str());
                if !same {
                    remove_any(&path, existing.as_ref())?;
                    std::os::unix::fs::symlink(&entry.stat.linkname, &path)
                        .map_err(Error::io("create the symlink", &path))?;
                }
            }
            Kind::File => {
                let unchanged = options.incremental
                    && existing.as_ref().is_some_and(|meta| {
                        meta.is_file()
                            && i64::try_from(meta.len()).ok() == Some(entry.stat.size)
                            && meta.mtime() * 1_000_000_000 + meta.mtime_nsec()
                                == entry.stat.mod_time
                            && meta.mode() & 0o7777 == mode::to_unix_permissions(entry.stat.mode)
                    });
                if unchanged {
                    stats.unchanged += 1;
                } else {
                    if existing.as_ref().is_some_and(std::fs::Metadata::is_dir) {
                        remove_any(&path, existing.as_ref())?;
                    }
                    wanted.insert(entry.id, index);
                    outgoing
                        .send(packet(PacketType::PacketReq, entry.id, Vec::new()))
                        .await
                        .map_err(|_| Error::Closed("while files were requested"))?;
                }
            }
            Kind::HardLink => {}
            Kind::Other => stats.skipped += 1,
        }
    }

    // 4. The requested files' data, written on a blocking thread while this task goes on
    // reading packets.
    let entries = Arc::new(entries);
    let (chunks, to_write) = mpsc::channel(256);
    let writer = tokio::task::spawn_blocking({
        let entries = Arc::clone(&entries);
        let dest = dest.to_owned();
        let owners = options.owners;
        move || write_files(to_write, &entries, &dest, owners)
    });
    let read = async {
        while !wanted.is_empty() {
            let Some(packet) = next_packet(&mut incoming, options.idle).await? else {
                return Err(Error::Closed("with files still to send"));
            };
            if let Some(error) = peer_error(&packet) {
                return Err(error);
            }
            if packet.r#type != PacketType::PacketData as i32 {
                return Err(Error::Protocol(format!(
                    "unexpected packet type {} while receiving files",
                    packet.r#type
                )));
            }
            let Some(&index) = wanted.get(&packet.id) else {
                return Err(Error::Protocol(format!(
                    "data for file id {} that was not requested",
                    packet.id
                )));
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
    let read: Result<(), Error> = read.await;
    drop(chunks);
    let written = writer.await.map_err(|e| Error::Io {
        action: "write files into",
        path: dest.to_owned(),
        source: std::io::Error::other(e),
    })?;
    read?;
    stats.received += written?;

    // 5. Hard links, then the metadata of symlinks and directories (deepest first, after
    // their contents were written).
    for entry in entries.iter() {
        let path = dest.join(&entry.rel);
        match entry.kind {
            Kind::HardLink => {
                let target = dest.join(clean_path(&entry.stat.linkname)?);
                remove_any(&path, std::fs::symlink_metadata(&path).ok().as_ref())?;
                std::fs::hard_link(&target, &path).map_err(Error::io("hard link", &path))?;
            }
            Kind::Symlink => apply_metadata(&path, &entry.stat, options.owners)?,
            _ => {}
        }
    }
    for entry in entries.iter().rev().filter(|e| e.kind == Kind::Dir) {
        apply_metadata(&dest.join(&entry.rel), &entry.stat, options.owners)?;
    }

    // 6. FIN both ways.
    outgoing
        .send(packet(PacketType::PacketFin, 0, Vec::new()))
        .await
        .map_err(|_| Error::Closed("before this side's FIN"))?;
    loop {
        match next_packet(&mut incoming, options.idle).await? {
            None => break,
            Some(packet) if packet.r#type == PacketType::PacketFin as i32 => break,
            Some(packet) => {
                if let Some(error) = peer_error(&packet) {
                    return Err(error);
                }
            }
        }
    }
    Ok(stats)
}

/// Removes what `dest` holds that `entries` do not list with the same kind; returns how
/// many entries went.
fn remove_stale(dest: &Path, entries: &[Entry]) -> Result<usize, Error> {
    let listed: HashMap<&Path, Kind> = entries.iter().map(|e| (e.rel.as_path(), e.kind)).collect();
    let mut stale = Vec::new();
    for found in walkdir::WalkDir::new(dest)
        .min_depth(1)
        .contents_first(true)
    {
        let found = found.map_err(|err| Error::Io {
            action: "read the previous copy in",
            path: dest.to_owned(),
            source: err.into(),
        })?;
        let rel = found.path().strip_prefix(dest).unwrap_or(found.path());
        let file_type = found.file_type();
        let keep = listed.get(rel).is_some_and(|kind| match kind {
            Kind::Dir => file_type.is_dir(),
            Kind::Symlink => file_type.is_symlink(),
            // Hard links are linked again each time (step 5).
            Kind::File | Kind::HardLink => file_type.is_file(),
            Kind::Other => false,
        });
        if !keep {
            stale.push((found.path().to_owned(), file_type.is_dir()));
        }
    }
    let mut removed = 0;
    for (path, is_dir) in stale {
        // A directory's contents were listed before it (contents first).
        let result = if is_dir {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        match result {
            Ok(()) => removed += 1,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(Error::io("remove", &path)(err)),
        }
    }
    Ok(removed)
}

/// Removes whatever is at `path` (`existing` its metadata, if anything is there).
fn remove_any(path: &Path, existing: Option<&std::fs::Metadata>) -> Result<(), Error> {
    let result = match existing {
        None => return Ok(()),
        Some(meta) if meta.is_dir() => std::fs::remove_dir_all(path),
        Some(_) => std::fs::remove_file(path),
    };
    match result {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            Err(Error::io("remove", path)(err))
        }
        _ => Ok(()),
    }
}

/// Writes the files whose data `chunks` brings (file id, index in `entries`, bytes; empty
/// bytes end a file) under `dest`: each to a partial file beside its place, given its
/// metadata and renamed into place when complete. Returns how many were completed.
fn write_files(
    mut chunks: mpsc::Receiver<(u32, usize, Vec<u8>)>,
    entries: &[Entry],
    dest: &Path,
    owners: bool,
) -> Result<usize, Error> {
    let mut open: HashMap<u32, (std::fs::File, PathBuf)> = HashMap::new();
    let mut received = 0;
    while let Some((id, index, data)) = chunks.blocking_recv() {
        let entry = &entries[index];
        let path = dest.join(&entry.rel);
        if let std::collections::hash_map::Entry::Vacant(slot) = open.entry(id) {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            slot.insert(create_partial(&path, &name)?);
        }
        if data.is_empty() {
            let Some((file, partial)) = open.remove(&id) else {
                continue;
            };
            drop(file);
            apply_metadata(&partial, &entry.stat, owners)?;
            std::fs::rename(&partial, &path).map_err(Error::io("rename", &partial))?;
            received += 1;
        } else if let Some((file, partial)) = open.get_mut(&id) {
            file.write_all(&data).map_err(Error::io("write", partial))?;
        }
    }
    Ok(received)
}

/// A new file beside `path` to write its data into: never an existing entry (the sender may
/// have sent a symlink by that name, which must not be followed).
fn create_partial(path: &Path, name: &str) -> Result<(std::fs::File, PathBuf), Error> {
    for n in 0..1000 {
        let partial = path.with_file_name(format!(".{name}.hoist-partial{n}"));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&partial)
        {
            Ok(file) => return Ok((file, partial)),
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(err) => return Err(Error::io("create", &partial)(err)),
        }
    }
    Err(Error::io("create a partial file beside", path)(
        std::io::ErrorKind::AlreadyExists.into(),
    ))
}

/// Everything between `dest` and `path` must be a real directory (no symlink from an
/// earlier state can redirect a write outside).
fn ensure_parent_is_dir(dest: &Path, path: &Path) -> Result<(), Error> {
    let Some(parent) = path.parent() else {
        return Ok(());
    };
    if parent == dest {
        return Ok(());
    }
    match std::fs::symlink_metadata(parent) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(Error::Refused(format!(
            "{}: its parent is not a directory",
            path.display()
        ))),
        Err(err) => Err(Error::io("inspect", parent)(err)),
    }
}

/// Owner (when `owners`), mode, xattrs and mtime of `stat` on `path` (not following a
/// symlink).
fn apply_metadata(path: &Path, stat: &Stat, owners: bool) -> Result<(), Error> {
    let is_symlink = stat.mode & mode::SYMLINK != 0;
    if owners {
        match std::os::unix::fs::lchown(path, Some(stat.uid), Some(stat.gid)) {
            Ok(()) => {}
            // Only root may give files away; as another user they stay ours.
            Err(err) if err.kind() == std::io::ErrorKind::PermissionDenied => {}
            Err(err) => return Err(Error::io("chown", path)(err)),
        }
    }
    if !is_symlink {
        std::fs::set_permissions(
            path,
            std::fs::Permissions::from_mode(mode::to_unix_permissions(stat.mode)),
        )
        .map_err(Error::io("chmod", path))?;
    }
    let mut names: Vec<_> = stat.xattrs.keys().collect();
    names.sort();
    for name in names {
        // Best effort, as fsutil's receiver: file systems without xattrs, or namespaces
        // only root may set (security.*, trusted.*), lose them.
        let _ = xattr::set(path, name, &stat.xattrs[name]);
    }
    let mtime = filetime::FileTime::from_unix_time(
        stat.mod_time.div_euclid(1_000_000_000),
        u32::try_from(stat.mod_time.rem_euclid(1_000_000_000)).unwrap_or(0),
    );
    filetime::set_symlink_file_times(path, mtime, mtime)
        .map_err(Error::io("set the mtime of", path))
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

    /// A sender as fsutil's: the stats, then each requested file's data in 3-byte packets,
    /// FIN for FIN. Returns the receiver's result and the ids it requested.
    async fn sync(
        entries: Vec<(Stat, Vec<u8>)>,
        dest: &Path,
        incremental: bool,
    ) -> (Result<SyncStats, Error>, Vec<u32>) {
        let (in_tx, in_rx) = mpsc::unbounded_channel::<Result<Packet, tonic::Status>>();
        let (out_tx, mut out_rx) = mpsc::channel::<Packet>(4);
        for (stat, _) in &entries {
            in_tx
                .send(Ok(Packet {
                    r#type: PacketType::PacketStat as i32,
                    stat: Some(stat.clone()),
                    ..Packet::default()
                }))
                .unwrap();
        }
        in_tx
            .send(Ok(packet(PacketType::PacketStat, 0, Vec::new())))
            .unwrap();
        let sender = tokio::spawn(async move {
            let mut requested = Vec::new();
            while let Some(p) = out_rx.recv().await {
                match PacketType::try_from(p.r#type) {
                    Ok(PacketType::PacketReq) => {
                        requested.push(p.id);
                        for chunk in entries[p.id as usize].1.chunks(3) {
                            let _ = in_tx.send(Ok(packet(
                                PacketType::PacketData,
                                p.id,
                                chunk.to_vec(),
                            )));
                        }
                        let _ = in_tx.send(Ok(packet(PacketType::PacketData, p.id, Vec::new())));
                    }
                    Ok(PacketType::PacketFin) => {
                        let _ = in_tx.send(Ok(packet(PacketType::PacketFin, 0, Vec::new())));
                        break;
                    }
                    _ => break,
                }
            }
            requested
        });
        let options = ReceiveOptions {
            incremental,
            owners: true,
            idle: Some(Duration::from_secs(10)),
        };
        let result = receive(dest, UnboundedReceiverStream::new(in_rx), out_tx, &options).await;
        (result, sender.await.unwrap())
    }

    const T: i64 = 1_600_000_000_123_456_789;

    fn tree() -> Vec<(Stat, Vec<u8>)> {
        let mut with_xattr = stat("a/x", 0o600, 1, T, "");
        with_xattr.xattrs.insert("user.k".into(), b"v".to_vec());
        vec![
            (stat("a", mode::DIR | 0o750, 0, T, ""), Vec::new()),
            (
                stat("a/f", 0o640 | mode::SETGID, 11, T, ""),
                b"hello world".to_vec(),
            ),
            (with_xattr, b"x".to_vec()),
            (stat("h", 0o640 | mode::SETGID, 11, T, "a/f"), Vec::new()),
            (stat("l", mode::SYMLINK | 0o777, 0, T, "a/f"), Vec::new()),
            (stat("z", 0o644, 0, T + 5, ""), Vec::new()),
        ]
    }

    #[tokio::test]
    async fn a_tree_arrives_with_its_metadata_then_only_changes_move() {
        let root = tempfile::tempdir().unwrap();
        let dest = root.path().join("copy");
        let (result, requested) = sync(tree(), &dest, true).await;
        assert_eq!(requested, [1, 2, 5]);
        assert_eq!(
            result.unwrap(),
            SyncStats {
                received: 3,
                ..SyncStats::default()
            }
        );
        assert_eq!(std::fs::read(dest.join("a/f")).unwrap(), b"hello world");
        let meta = std::fs::symlink_metadata(dest.join("a/f")).unwrap();
        assert_eq!(meta.mode() & 0o7777, 0o2640);
        assert_eq!(meta.mtime_nsec(), 123_456_789);
        let dir = std::fs::metadata(dest.join("a")).unwrap();
        assert_eq!(dir.mode() & 0o777, 0o750);
        assert_eq!(
            dir.mtime_nsec(),
            123_456_789,
            "a directory's time is set last"
        );
        assert_eq!(std::fs::metadata(dest.join("h")).unwrap().ino(), meta.ino());
        assert_eq!(
            std::fs::read_link(dest.join("l")).unwrap(),
            Path::new("a/f")
        );
        if let Ok(Some(value)) = xattr::get(dest.join("a/x"), "user.k") {
            assert_eq!(value, b"v");
        }
        // The same tree again: nothing moves.
        let (result, requested) = sync(tree(), &dest, true).await;
        assert!(requested.is_empty(), "{requested:?}");
        assert_eq!(
            result.unwrap(),
            SyncStats {
                unchanged: 3,
                ..SyncStats::default()
            }
        );
        // One file touched, one gone: that file moves, the other is removed.
        let mut next = tree();
        next[2].0.mod_time += 1;
        next.pop();
        let (result, requested) = sync(next, &dest, true).await;
        assert_eq!(requested, [2]);
        assert_eq!(
            result.unwrap(),
            SyncStats {
                received: 1,
                unchanged: 1,
                removed: 1,
                skipped: 0
            }
        );
        assert!(!dest.join("z").exists());
        // A directory becomes a file.
        let replaced = vec![(stat("a", 0o644, 2, T, ""), b"ok".to_vec())];
        let (result, _) = sync(replaced, &dest, true).await;
        result.unwrap();
        assert_eq!(std::fs::read(dest.join("a")).unwrap(), b"ok");
        assert_eq!(std::fs::read_dir(&dest).unwrap().count(), 1);
    }

    #[tokio::test]
    async fn a_merge_requests_every_file_replaces_other_kinds_and_keeps_the_rest() {
        let root = tempfile::tempdir().unwrap();
        let dest = root.path().join("out");
        std::fs::create_dir_all(dest.join("a")).unwrap();
        std::fs::write(dest.join("a/f"), "old").unwrap();
        std::fs::write(dest.join("mine"), "kept").unwrap();
        // `l` is a directory the tree sends as a symlink; `z` a symlink sent as a file.
        std::fs::create_dir_all(dest.join("l/sub")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dest.join("z")).unwrap();
        let (result, requested) = sync(tree(), &dest, false).await;
        assert_eq!(requested, [1, 2, 5]);
        assert_eq!(result.unwrap().received, 3);
        assert_eq!(std::fs::read(dest.join("a/f")).unwrap(), b"hello world");
        assert_eq!(std::fs::read(dest.join("mine")).unwrap(), b"kept");
        assert_eq!(
            std::fs::read_link(dest.join("l")).unwrap(),
            Path::new("a/f")
        );
        assert!(std::fs::symlink_metadata(dest.join("z")).unwrap().is_file());
        // The same tree again: every file requested again.
        let (result, requested) = sync(tree(), &dest, false).await;
        assert_eq!(requested, [1, 2, 5]);
        result.unwrap();
    }

    #[tokio::test]
    async fn paths_leaving_the_destination_are_refused_before_anything_is_written() {
        for (bad, why) in [
            (vec![stat("../evil", 0o644, 1, T, "")], "\"..\""),
            (vec![stat("/etc/evil", 0o644, 1, T, "")], "absolute"),
            (vec![stat("a//b", 0o644, 1, T, "")], "empty"),
            (vec![stat("a/b", 0o644, 1, T, "")], "was not sent before"),
            (
                vec![
                    stat("l", mode::SYMLINK | 0o777, 0, T, "/etc"),
                    stat("l/evil", 0o644, 1, T, ""),
                ],
                "through the symlink",
            ),
            (
                vec![stat("h", 0o644, 1, T, "../../etc/passwd")],
                "hard link",
            ),
            (
                vec![
                    stat("d", mode::DIR | 0o755, 0, T, ""),
                    stat("h", 0o644, 0, T, "d"),
                ],
                "not a regular file",
            ),
            (
                vec![stat("f", 0o644, 1, T, ""), stat("f", 0o644, 1, T, "")],
                "came twice",
            ),
        ] {
            for incremental in [true, false] {
                let root = tempfile::tempdir().unwrap();
                let dest = root.path().join("copy");
                let entries = bad.iter().cloned().map(|s| (s, b"x".to_vec())).collect();
                let (result, requested) = sync(entries, &dest, incremental).await;
                let err = result.unwrap_err();
                assert!(matches!(err, Error::Refused(_)), "{why}: {err}");
                assert!(err.to_string().contains(why), "{why}: {err}");
                assert!(requested.is_empty());
                let left: Vec<_> = std::fs::read_dir(root.path()).unwrap().collect();
                assert!(left.is_empty(), "{why}: wrote {left:?}");
            }
        }
    }
}
