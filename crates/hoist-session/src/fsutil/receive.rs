//! fsutil's receiver: the sender's STATs are read and checked in full before anything is
//! written, the regular files wanted are requested, their data written on a blocking thread
//! (at a new path in place, over an existing file through a partial file renamed over it;
//! an unfinished file is removed, so no half-written file ever carries a final name), then
//! hard links and the metadata of symlinks and directories (deepest first).
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
//! A daemon's copy comes back with its [`Listing`] ([`receive_listed`]: each entry's
//! metadata, each file's sha256 hashed as it was written); given back to the next transfer
//! into the same copy, it stands for the copy, which is then not read from disk.

use std::collections::{HashMap, HashSet};
use std::io::Write as _;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt as _};
use hoist_proto::fsutil_types::{Packet, PacketType, Stat};
use hoist_snapshot::{Listed, Listing};
use tokio::sync::mpsc;

use super::{mode, next_packet, packet, peer_error, Batch, Error};

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
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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

/// One entry announced by the sender (its path checked by [`clean_path`]).
#[derive(Debug)]
struct Entry {
    stat: Stat,
    kind: Kind,
}

impl Entry {
    /// Its path below the destination.
    fn rel(&self) -> &Path {
        Path::new(&self.stat.path)
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

/// A relative, slash-separated path from the wire, refused unless it stays inside: as a
/// [`Path`], it has the same bytes.
fn clean_path(path: &str) -> Result<&Path, Error> {
    if path.is_empty() {
        return Err(Error::Refused("an empty path".to_owned()));
    }
    if path.starts_with('/') {
        return Err(Error::Refused(format!("the absolute path {path:?}")));
    }
    if path.contains('\0') {
        return Err(Error::Refused(format!("the path {path:?} with a NUL byte")));
    }
    if path.split('/').any(|part| matches!(part, "" | "." | "..")) {
        return Err(Error::Refused(format!(
            "the path {path:?} (an empty, \".\" or \"..\" component)"
        )));
    }
    Ok(Path::new(path))
}

/// Receives one tree into `dest` (created if missing): `incoming` from the sender,
/// `outgoing` for this side's REQs and FIN (and ERR when it fails). Returns once the
/// sender has answered FIN.
pub async fn receive<S>(
    dest: &Path,
    incoming: S,
    outgoing: mpsc::Sender<Batch>,
    options: &ReceiveOptions,
) -> Result<SyncStats, Error>
where
    S: Stream<Item = Result<Packet, tonic::Status>> + Unpin,
{
    let result = receive_inner(dest, None, false, incoming, &outgoing, options, true).await;
    report_failure(&outgoing, result).map(|(stats, _)| stats)
}

/// [`receive`] into a daemon's copy kept across transfers (always incremental), returning
/// the copy's [`Listing`] as well: the metadata of each entry and the sha256 of each file
/// (hashed as it is written, or known from `previous`). `previous` is the listing the last
/// transfer into `dest` returned, when nothing else has changed `dest` since; without it
/// the copy is read from disk (and its unchanged files come without digests). A transfer
/// that changed nothing returns `previous` itself (what readers learnt from it still
/// holds).
///
/// Returns once this side's FIN is sent, without waiting for the sender's answer: every
/// file asked for has come, and the copy is complete. (A daemon's calls read their
/// answers apart, see [`crate::drained_call`]: the sender's FIN is still read, and the
/// call ends after it. The client side's [`receive`] waits for it, as fsutil's receiver
/// does, because a sender whose call has ended cannot send its FIN.)
pub async fn receive_listed<S>(
    dest: &Path,
    previous: Option<Arc<Listing>>,
    incoming: S,
    outgoing: mpsc::Sender<Batch>,
    options: &ReceiveOptions,
) -> Result<(SyncStats, Arc<Listing>), Error>
where
    S: Stream<Item = Result<Packet, tonic::Status>> + Unpin,
{
    let options = ReceiveOptions {
        incremental: true,
        ..*options
    };
    let result = receive_inner(dest, previous, true, incoming, &outgoing, &options, false).await;
    report_failure(&outgoing, result).map(|(stats, listing)| (stats, listing.unwrap_or_default()))
}

/// Tells the sender why the receive failed (ERR), then gives the result back.
fn report_failure<T>(outgoing: &mpsc::Sender<Batch>, result: Result<T, Error>) -> Result<T, Error> {
    if let Err(error) = &result {
        let err = packet(PacketType::PacketErr, 0, error.to_string().into_bytes());
        let _ = outgoing.try_send(vec![err]);
    }
    result
}

/// What the destination held before (incremental only): the last transfer's listing, or
/// the directory read once without following symlinks, so a path below an old symlink is
/// never taken for a kept file.
#[derive(Debug, Default)]
struct Previous {
    listing: Arc<Listing>,
    /// Where the next lookup expects its path: lookups follow the listing's order (the
    /// sender walks as the listing was made), skipping a few entries at most.
    cursor: AtomicUsize,
}

/// How many entries past the cursor a lookup looks before it searches the whole listing
/// (those it skips: the directories a lookup of files passes).
const LOOK_AHEAD: usize = 4;

#[derive(Debug)]
struct Old {
    kind: Kind,
    size: u64,
    mtime: i64,
    permissions: u32,
}

impl Previous {
    fn of(listing: Arc<Listing>) -> Previous {
        Previous {
            listing,
            cursor: AtomicUsize::new(0),
        }
    }

    /// Starts the lookups again from the listing's first entry (a new pass over the list).
    fn rewind(&self) {
        self.cursor.store(0, Ordering::Relaxed);
    }

    /// The index of `rel` in the listing.
    fn index_of(&self, rel: &Path) -> Option<usize> {
        let entries = self.listing.entries();
        let at = self.cursor.load(Ordering::Relaxed);
        // Both sides are clean relative paths (the sender's are checked by [`clean_path`]),
        // so equal paths have equal bytes: no component-wise comparison.
        let wanted = rel.as_os_str().as_bytes();
        let near =
            (at..entries.len().min(at + LOOK_AHEAD)).find(|&i| entries[i].rel.as_bytes() == wanted);
        // A listing is in walk order, which is `Path`'s.
        let found = near.or_else(|| {
            entries
                .binary_search_by(|entry| Path::new(&entry.rel).cmp(rel))
                .ok()
        });
        if let Some(found) = found {
            self.cursor.store(found + 1, Ordering::Relaxed);
        }
        found
    }

    fn old(&self, rel: &Path) -> Option<Old> {
        self.old_at(self.index_of(rel)?)
    }

    /// What the listing's entry `index` was.
    fn old_at(&self, index: usize) -> Option<Old> {
        let meta = &self.listing.entries().get(index)?.metadata;
        let file_type = meta.file_type();
        let kind = if file_type.is_dir() {
            Kind::Dir
        } else if file_type.is_symlink() {
            Kind::Symlink
        } else if file_type.is_file() {
            Kind::File
        } else {
            Kind::Other
        };
        Some(Old {
            kind,
            size: meta.len(),
            mtime: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
            permissions: meta.mode() & 0o7777,
        })
    }

    /// The previous entry at `rel`, when there was one.
    fn listed(&self, rel: &Path) -> Option<&Listed> {
        Some(&self.listing.entries()[self.index_of(rel)?])
    }

    fn scan(dest: &Path) -> Result<Previous, Error> {
        if !dest.exists() {
            return Ok(Previous::default());
        }
        let mut entries = Vec::new();
        for found in walkdir::WalkDir::new(dest).min_depth(1).sort_by_file_name() {
            let found = found.map_err(|err| Error::Io {
                action: "read the previous copy in",
                path: dest.to_owned(),
                source: err.into(),
            })?;
            let meta = found.metadata().map_err(|err| Error::Io {
                action: "read the previous copy in",
                path: found.path().to_owned(),
                source: err.into(),
            })?;
            let rel = found.path().strip_prefix(dest).unwrap_or(found.path());
            entries.push(Listed::new(rel.to_string_lossy().into_owned(), meta, None));
        }
        Ok(Previous::of(Arc::new(Listing::new(entries))))
    }

    /// Whether the copy holds `entry`'s file as sent (same size, mtime and mode).
    fn unchanged(&self, entry: &Entry) -> bool {
        self.old(entry.rel()).is_some_and(|old| {
            old.kind == Kind::File
                && i64::try_from(old.size).ok() == Some(entry.stat.size)
                && old.mtime == entry.stat.mod_time
                && old.permissions == mode::to_unix_permissions(entry.stat.mode)
        })
    }
}

/// The list, each entry checked as it comes, with the files wanted requested at once (the
/// sender reads and sends them while the rest of the list arrives; nothing is written
/// before the whole list is checked).
struct List {
    entries: Vec<Entry>,
    /// File id → index in `entries`, for the files wanted whose data has not all come.
    wanted: HashMap<u32, usize>,
    /// Files wanted but not requested yet (past [`EARLY_BYTES`]).
    deferred: Vec<u32>,
    /// The data that came while the list did (file id, index, bytes), to write once it is in.
    early: Vec<Chunk>,
    unchanged: usize,
}

/// The directories a file list is inside of as it comes, checking its order as fsutil's
/// receiver does: each entry comes inside the last directory sent that holds it (a
/// directory's entries right after it), after the entries before it in that directory by
/// name (bytes), so never twice. Sorted so, the list is in [`Path`] order.
#[derive(Debug)]
struct Order {
    /// The open directories, outermost (the root, `""`) first: each one's path and the name
    /// of the last entry sent in it.
    open: Vec<(String, String)>,
}

impl Default for Order {
    fn default() -> Order {
        Order {
            open: vec![(String::new(), String::new())],
        }
    }
}

/// Why an entry cannot come where it came.
#[derive(Debug)]
enum Misplaced {
    /// Its directory is not one of those the list is inside of.
    NoDirectory,
    /// Its directory's last entry, whose name sorts after (or is) its own.
    After(String),
}

impl Order {
    /// Takes the clean relative `path` as the next entry (a directory when `is_dir`).
    fn place(&mut self, path: &str, is_dir: bool) -> Result<(), Misplaced> {
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
        while self.open.len() > 1 && self.open.last().is_some_and(|(open, _)| open != dir) {
            self.open.pop();
        }
        let Some((_, last)) = self.open.last_mut().filter(|(open, _)| open == dir) else {
            return Err(Misplaced::NoDirectory);
        };
        if !last.is_empty() && name.as_bytes() <= last.as_bytes() {
            return Err(Misplaced::After(last.clone()));
        }
        last.clear();
        last.push_str(name);
        if is_dir {
            self.open.push((path.to_owned(), String::new()));
        }
        Ok(())
    }
}

impl Misplaced {
    /// The refusal of `path` (`rel`, cleaned), naming the symlink it goes through if any.
    fn refusal(self, path: &str, rel: &Path, symlinks: &HashSet<PathBuf>) -> Error {
        let through = rel.ancestors().skip(1).find(|a| symlinks.contains(*a));
        Error::Refused(match (self, through) {
            (_, Some(link)) => format!(
                "the path {path:?}: it goes through the symlink {:?}",
                link.display()
            ),
            (Misplaced::NoDirectory, None) => format!(
                "the path {path:?}: its directory {:?} was not sent before it, or its \
                 entries not right after it (changes out of order)",
                rel.parent().unwrap_or(Path::new("")).display()
            ),
            (Misplaced::After(last), None)
                if rel
                    .file_name()
                    .is_some_and(|n| n.as_bytes() == last.as_bytes()) =>
            {
                format!("the path {path:?}: it came twice")
            }
            (Misplaced::After(last), None) => format!(
                "the path {path:?}: changes out of order (it came after {last:?} in its \
                 directory; a sender walks each directory by name)"
            ),
        })
    }
}

/// How many bytes of files (by their sent sizes) are requested while the list still comes;
/// their data waits in memory until the list is complete and checked.
const EARLY_BYTES: u64 = 64 * 1024 * 1024;

/// How many REQs go out together (the sender's walk does not wait for them: holding a few
/// back until the batch is full, or the list ends, stalls nothing).
const REQ_BATCH: usize = 256;

/// How many DATA packets, and how many of their bytes, the reading task hands the writing
/// thread at once (it goes on reading either way: holding a few back stalls nothing).
const CHUNK_BATCH: usize = 256;
const CHUNK_BATCH_BYTES: usize = 1024 * 1024;

/// A file's DATA for the writer: file id, index in the entries, bytes (empty: the end).
type Chunk = (u32, usize, Vec<u8>);

/// DATA gathered for the writer until a batch is full.
#[derive(Default)]
struct Pending {
    chunks: Vec<Chunk>,
    bytes: usize,
}

impl Pending {
    /// Adds `chunk`; the batch to hand over once it is full.
    fn add(&mut self, chunk: Chunk) -> Option<Vec<Chunk>> {
        self.bytes += chunk.2.len();
        self.chunks.push(chunk);
        let full = self.chunks.len() >= CHUNK_BATCH || self.bytes >= CHUNK_BATCH_BYTES;
        full.then(|| {
            self.bytes = 0;
            std::mem::take(&mut self.chunks)
        })
    }
}

/// Sends `reqs` (REQs) and empties it.
async fn request(outgoing: &mpsc::Sender<Batch>, reqs: &mut Batch) -> Result<(), Error> {
    if reqs.is_empty() {
        return Ok(());
    }
    outgoing
        .send(std::mem::take(reqs))
        .await
        .map_err(|_| Error::Closed("while files were requested"))
}

async fn read_list<S>(
    incoming: &mut S,
    outgoing: &mpsc::Sender<Batch>,
    previous: Option<&Previous>,
    idle: Option<Duration>,
) -> Result<List, Error>
where
    S: Stream<Item = Result<Packet, tonic::Status>> + Unpin,
{
    let mut list = List {
        // A rebuild's list is mostly the last one: room for it from the start (no regrowth
        // of a list of thousands).
        entries: Vec::with_capacity(previous.map_or(0, |p| p.listing.len())),
        wanted: HashMap::new(),
        deferred: Vec::new(),
        early: Vec::new(),
        unchanged: 0,
    };
    let mut early_bytes = 0u64;
    let entries = &mut list.entries;
    let mut order = Order::default();
    // Symlinks sent, to name the one a path goes through when it is refused.
    let mut symlinks: HashSet<PathBuf> = HashSet::new();
    let mut reqs = Vec::new();
    loop {
        let Some(received) = next_packet(incoming, idle).await? else {
            return Err(Error::Closed("before the end of its file list"));
        };
        if let Some(error) = peer_error(&received) {
            return Err(error);
        }
        if received.r#type == PacketType::PacketData as i32 {
            let Some(&index) = list.wanted.get(&received.id) else {
                return Err(Error::Protocol(format!(
                    "data for file id {} that was not requested",
                    received.id
                )));
            };
            if received.data.is_empty() {
                list.wanted.remove(&received.id);
            }
            list.early.push((received.id, index, received.data));
            continue;
        }
        if received.r#type != PacketType::PacketStat as i32 {
            return Err(Error::Protocol(format!(
                "unexpected packet type {} in the file list",
                received.r#type
            )));
        }
        let Some(stat) = received.stat else {
            request(outgoing, &mut reqs).await?;
            return Ok(list);
        };
        let id = u32::try_from(entries.len())
            .map_err(|_| Error::Protocol("too many entries".to_owned()))?;
        let rel = clean_path(&stat.path)?;
        let kind = kind_of(&stat);
        order
            .place(&stat.path, kind == Kind::Dir)
            .map_err(|misplaced| misplaced.refusal(&stat.path, rel, &symlinks))?;
        match kind {
            Kind::Symlink => {
                symlinks.insert(rel.to_owned());
            }
            Kind::HardLink => {
                let target = clean_path(&stat.linkname).map_err(|refused| {
                    Error::Refused(format!(
                        "the hard link {:?}: its target: {refused}",
                        stat.path
                    ))
                })?;
                // The entries so far are in walk order, which is `Path`'s.
                let ok = entries
                    .binary_search_by(|e| e.rel().cmp(target))
                    .is_ok_and(|i| entries[i].kind == Kind::File);
                if !ok {
                    return Err(Error::Refused(format!(
                        "the hard link {:?}: it names {:?}, not a regular file sent before it",
                        stat.path, stat.linkname
                    )));
                }
            }
            _ => {}
        }
        let entry = Entry { stat, kind };
        if kind == Kind::File {
            if previous.is_some_and(|p| p.unchanged(&entry)) {
                list.unchanged += 1;
            } else {
                list.wanted.insert(id, entries.len());
                let size = u64::try_from(entry.stat.size).unwrap_or(0);
                if list.deferred.is_empty() && early_bytes + size <= EARLY_BYTES {
                    early_bytes += size;
                    reqs.push(packet(PacketType::PacketReq, id, Vec::new()));
                    if reqs.len() >= REQ_BATCH {
                        request(outgoing, &mut reqs).await?;
                    }
                } else {
                    list.deferred.push(id);
                }
            }
        }
        entries.push(entry);
    }
}

/// The receive; with `list`, also the destination's listing once it is written; with
/// `await_fin`, only once the sender has answered this side's FIN.
async fn receive_inner<S>(
    dest: &Path,
    known: Option<Arc<Listing>>,
    list: bool,
    incoming: S,
    outgoing: &mpsc::Sender<Batch>,
    options: &ReceiveOptions,
    await_fin: bool,
) -> Result<(SyncStats, Option<Arc<Listing>>), Error>
where
    S: Stream<Item = Result<Packet, tonic::Status>> + Unpin,
{
    // 1. The previous copy (incremental), then the list, checked as it comes; the files
    // wanted are requested at once, but nothing is written before the whole list is in.
    // The sender walks and sends its STATs while the previous copy is read: they wait
    // (nothing is requested before the list is checked against that copy).
    let mut incoming = incoming.fuse();
    let mut waiting = Vec::new();
    let previous = if let Some(known) = known {
        Some(Previous::of(known))
    } else if options.incremental {
        let owned = dest.to_owned();
        let mut scan = tokio::task::spawn_blocking(move || Previous::scan(&owned));
        let scanned = loop {
            tokio::select! {
                scanned = &mut scan => break scanned,
                Some(item) = incoming.next() => waiting.push(item),
            }
        };
        Some(scanned.map_err(|e| {
            Error::io("read the previous copy in", dest)(std::io::Error::other(e))
        })??)
    } else {
        None
    };
    let mut incoming = futures::stream::iter(waiting).chain(incoming);
    let List {
        entries,
        mut wanted,
        deferred,
        early,
        unchanged,
    } = read_list(&mut incoming, outgoing, previous.as_ref(), options.idle).await?;

    // 2. On a blocking thread: what the previous copy has that is gone or changed type
    // removed, the tree made, the requested files written as their data comes (this task
    // goes on reading packets), then hard links and the metadata of symlinks and
    // directories.
    let entries = Arc::new(entries);
    let (chunks, to_write) = mpsc::channel::<Vec<Chunk>>(8);
    let writer = tokio::task::spawn_blocking({
        let entries = Arc::clone(&entries);
        let dest = dest.to_owned();
        let options = *options;
        move || write_tree(&dest, &entries, previous.as_ref(), to_write, list, &options)
    });
    let read = async {
        for ids in deferred.chunks(REQ_BATCH) {
            let mut reqs = (ids.iter())
                .map(|&id| packet(PacketType::PacketReq, id, Vec::new()))
                .collect();
            request(outgoing, &mut reqs).await?;
        }
        // The writer stopping is no error here: its error is the one reported.
        let mut pending = Pending::default();
        for chunk in early {
            if let Some(batch) = pending.add(chunk) {
                if chunks.send(batch).await.is_err() {
                    return Ok(());
                }
            }
        }
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
            if let Some(batch) = pending.add((packet.id, index, packet.data)) {
                if chunks.send(batch).await.is_err() {
                    return Ok(());
                }
            }
        }
        if !pending.chunks.is_empty() {
            let _ = chunks.send(pending.chunks).await;
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
    let (mut stats, listing) = written?;
    stats.unchanged = unchanged;

    // 3. FIN both ways.
    outgoing
        .send(vec![packet(PacketType::PacketFin, 0, Vec::new())])
        .await
        .map_err(|_| Error::Closed("before this side's FIN"))?;
    if !await_fin {
        return Ok((stats, listing));
    }
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
    Ok((stats, listing))
}

/// The blocking half of a receive: the tree made in `dest` from the checked `entries`, the
/// data of the requested files written as `chunks` brings it; with `list`, the listing of
/// what `dest` holds then.
fn write_tree(
    dest: &Path,
    entries: &[Entry],
    previous: Option<&Previous>,
    chunks: mpsc::Receiver<Vec<Chunk>>,
    list: bool,
    options: &ReceiveOptions,
) -> Result<(SyncStats, Option<Arc<Listing>>), Error> {
    let mut stats = SyncStats::default();
    std::fs::create_dir_all(dest).map_err(Error::io("create", dest))?;
    if let Some(previous) = previous {
        stats.removed = remove_stale(dest, entries, previous)?;
    }
    // Directories and symlinks made (a directory before its entries), other kinds at a
    // file's path removed.
    for entry in entries {
        // A file of an incremental copy is written (if at all) into a directory that was
        // checked as it was made, and holds a file or nothing now (stale entries went): a
        // rebuild's unchanged files cost nothing here.
        if entry.kind == Kind::File && previous.is_some() {
            continue;
        }
        let path = dest.join(entry.rel());
        ensure_parent_is_dir(dest, &path)?;
        match entry.kind {
            Kind::Dir => {
                let existing = std::fs::symlink_metadata(&path).ok();
                if !existing.as_ref().is_some_and(std::fs::Metadata::is_dir) {
                    remove_any(&path, existing.as_ref())?;
                    std::fs::create_dir(&path).map_err(Error::io("create", &path))?;
                }
            }
            Kind::Symlink => {
                let existing = std::fs::symlink_metadata(&path).ok();
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
                let existing = std::fs::symlink_metadata(&path).ok();
                if existing.as_ref().is_some_and(std::fs::Metadata::is_dir) {
                    remove_any(&path, existing.as_ref())?;
                }
            }
            Kind::HardLink => {}
            Kind::Other => stats.skipped += 1,
        }
    }
    let mut written = write_files(chunks, entries, dest, previous, options.owners, list)?;
    stats.received = written.len();
    // Hard links, then the metadata of symlinks and directories (deepest first, after
    // their contents were written).
    for entry in entries {
        match entry.kind {
            Kind::HardLink => {
                let path = dest.join(entry.rel());
                let target = dest.join(clean_path(&entry.stat.linkname)?);
                remove_any(&path, std::fs::symlink_metadata(&path).ok().as_ref())?;
                std::fs::hard_link(&target, &path).map_err(Error::io("hard link", &path))?;
            }
            Kind::Symlink => apply_metadata(&dest.join(entry.rel()), &entry.stat, options.owners)?,
            _ => {}
        }
    }
    for entry in entries.iter().rev().filter(|e| e.kind == Kind::Dir) {
        apply_metadata(&dest.join(entry.rel()), &entry.stat, options.owners)?;
    }
    let listing = match list {
        true => Some(listing(dest, entries, previous, &mut written)?),
        false => None,
    };
    Ok((stats, listing))
}

/// What `dest` holds once `entries` are written: the files received with the metadata and
/// digest taken as they were written, those kept with what `previous` knew of them, the
/// rest (directories, symlinks, hard links) as `lstat` finds them now. When that is what
/// `previous` lists already (nothing received, nothing gone, nothing else changed), it is
/// `previous`'s listing itself, which readers may have learnt from.
fn listing(
    dest: &Path,
    entries: &[Entry],
    previous: Option<&Previous>,
    written: &mut HashMap<usize, Option<Written>>,
) -> Result<Arc<Listing>, Error> {
    if let Some(previous) = previous.filter(|_| written.is_empty()) {
        if lists_the_same(dest, entries, &previous.listing)? {
            return Ok(Arc::clone(&previous.listing));
        }
    }
    let mut listed = Vec::with_capacity(entries.len());
    if let Some(previous) = previous {
        previous.rewind();
    }
    for (index, entry) in entries.iter().enumerate() {
        let rel = || entry.stat.path.clone();
        if let Some(Some(Written { metadata, digest })) = written.remove(&index) {
            listed.push(Listed::new(rel(), metadata, Some(digest)));
            continue;
        }
        let kept = match entry.kind {
            Kind::File => previous.and_then(|p| p.listed(entry.rel())),
            _ => None,
        };
        match (entry.kind, kept) {
            (Kind::Other, _) => {}
            (_, Some(kept)) => {
                listed.push(Listed::new(rel(), kept.metadata.clone(), kept.digest()))
            }
            (_, None) => {
                let path = dest.join(entry.rel());
                let metadata =
                    std::fs::symlink_metadata(&path).map_err(Error::io("inspect", &path))?;
                listed.push(Listed::new(rel(), metadata, None));
            }
        }
    }
    Ok(Arc::new(Listing::new(listed)))
}

/// Whether `listing` is what `dest` holds now that `entries` were written without a file
/// received: the same paths in the same order, each file one the previous copy kept (a
/// file not received was unchanged), every other entry's `lstat` as listed but for its
/// access and change times.
fn lists_the_same(dest: &Path, entries: &[Entry], listing: &Listing) -> Result<bool, Error> {
    if entries.len() != listing.len() {
        return Ok(false);
    }
    for (entry, listed) in entries.iter().zip(listing.entries()) {
        if entry.rel().as_os_str().as_bytes() != listed.rel.as_bytes() {
            return Ok(false);
        }
        let same = match entry.kind {
            Kind::File => listed.metadata.is_file(),
            Kind::Other => false,
            Kind::Dir | Kind::Symlink | Kind::HardLink => {
                let path = dest.join(entry.rel());
                let now = std::fs::symlink_metadata(&path).map_err(Error::io("inspect", &path))?;
                let then = &listed.metadata;
                (now.ino(), now.mode(), now.uid(), now.gid(), now.size())
                    == (then.ino(), then.mode(), then.uid(), then.gid(), then.size())
                    && (now.mtime(), now.mtime_nsec()) == (then.mtime(), then.mtime_nsec())
            }
        };
        if !same {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Removes what the previous copy holds that `entries` do not list with the same kind;
/// returns how many entries went.
fn remove_stale(dest: &Path, entries: &[Entry], previous: &Previous) -> Result<usize, Error> {
    // Which of the previous entries stay, found in the order both lists share.
    previous.rewind();
    let mut kept = vec![false; previous.listing.entries().len()];
    for entry in entries {
        let Some(index) = previous.index_of(entry.rel()) else {
            continue;
        };
        let Some(old) = previous.old_at(index) else {
            continue;
        };
        kept[index] = match entry.kind {
            Kind::Dir | Kind::Symlink => entry.kind == old.kind,
            // Hard links are linked again each time.
            Kind::File | Kind::HardLink => old.kind == Kind::File,
            Kind::Other => false,
        };
    }
    let mut removed = 0;
    // A directory's contents come before it: the listing backwards.
    for (index, gone) in previous.listing.entries().iter().enumerate().rev() {
        let Some(old) = previous.old_at(index).filter(|_| !kept[index]) else {
            continue;
        };
        let path = dest.join(&gone.rel);
        let result = if old.kind == Kind::Dir {
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
/// bytes end a file) under `dest`. A file at a path the previous copy did not hold (which
/// holds nothing now) is created there; one replacing a file is written to a partial file
/// beside it and renamed into place, so a file once written is never written into again
/// (the engine may share its inode: `ContextSource::Owned`). Each is given its metadata
/// before it is complete. Files left unfinished (an error, the data ending mid-file) are
/// removed. Returns the files completed, by their index in `entries`, with their metadata
/// and digest when `list` asks for them (the metadata is read through the file's handle,
/// the digest hashed as it is written).
fn write_files(
    mut chunks: mpsc::Receiver<Vec<Chunk>>,
    entries: &[Entry],
    dest: &Path,
    previous: Option<&Previous>,
    owners: bool,
    list: bool,
) -> Result<HashMap<usize, Option<Written>>, Error> {
    if let Some(previous) = previous {
        previous.rewind();
    }
    let writer = || Writer {
        entries,
        dest,
        previous,
        owners,
        list,
        open: HashMap::new(),
        parents: Parents::new(),
        received: HashMap::new(),
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(MAX_WRITERS));
    std::thread::scope(|scope| {
        // Files are shared out by id: all of one file's chunks go to the same writer, in
        // order. This thread is writer 0; a helper starts with its first file, so a
        // transfer that sends no file (an unchanged rebuild) starts no thread.
        let mut helpers: Vec<Option<_>> = (1..threads).map(|_| None).collect();
        let mut own = writer();
        let mut written = Ok(());
        'batches: while let Some(batch) = chunks.blocking_recv() {
            // The helpers' shares go first (they write while this thread writes its own).
            let mut shares: Vec<Vec<Chunk>> = (0..threads).map(|_| Vec::new()).collect();
            for chunk in batch {
                shares[chunk.0 as usize % threads].push(chunk);
            }
            let mut shares = shares.into_iter();
            let own_share = shares.next().unwrap_or_default();
            for (slot, share) in helpers.iter_mut().zip(shares) {
                if share.is_empty() {
                    continue;
                }
                let (to_helper, _) = slot.get_or_insert_with(|| {
                    let (to_helper, taken) = std::sync::mpsc::sync_channel::<Vec<Chunk>>(8);
                    let mut helper = writer();
                    let handle = scope.spawn(move || {
                        let written =
                            (taken.iter().flatten()).try_for_each(|chunk| helper.take(chunk));
                        helper.close(written)
                    });
                    (to_helper, handle)
                });
                // A helper that stopped did so on an error, which it reports.
                if to_helper.send(share).is_err() {
                    break 'batches;
                }
            }
            for chunk in own_share {
                written = own.take(chunk);
                if written.is_err() {
                    break 'batches;
                }
            }
        }
        drop(chunks);
        let mut received = own.close(written);
        for (to_helper, handle) in helpers.into_iter().flatten() {
            drop(to_helper);
            let theirs = handle.join().unwrap_or_else(|_| {
                Err(Error::Io {
                    action: "write files into",
                    path: dest.to_owned(),
                    source: std::io::Error::other("a writer thread panicked"),
                })
            });
            received = match (received, theirs) {
                (Ok(mut ours), Ok(theirs)) => {
                    ours.extend(theirs);
                    Ok(ours)
                }
                (Err(error), _) | (_, Err(error)) => Err(error),
            };
        }
        received
    })
}

/// How many threads at most write the files of one transfer.
const MAX_WRITERS: usize = 4;

/// One thread's share of [`write_files`]: the files it was given.
struct Writer<'a> {
    entries: &'a [Entry],
    dest: &'a Path,
    previous: Option<&'a Previous>,
    owners: bool,
    list: bool,
    open: HashMap<u32, Unfinished>,
    parents: Parents,
    received: HashMap<usize, Option<Written>>,
}

impl Writer<'_> {
    /// Writes one chunk (file id, index in `entries`, bytes; empty bytes end the file).
    fn take(&mut self, (id, index, data): Chunk) -> Result<(), Error> {
        use sha2::Digest as _;
        let entry = &self.entries[index];
        let path = self.dest.join(entry.rel());
        if let std::collections::hash_map::Entry::Vacant(slot) = self.open.entry(id) {
            let new_path = self
                .previous
                .is_some_and(|p| p.index_of(entry.rel()).is_none());
            let permissions = mode::to_unix_permissions(entry.stat.mode);
            let (file, partial) = create_file(&path, new_path, permissions)?;
            slot.insert(Unfinished {
                file,
                partial,
                path: path.clone(),
                hash: self.list.then(sha2::Sha256::new),
            });
        }
        if !data.is_empty() {
            if let Some(unfinished) = self.open.get_mut(&id) {
                unfinished
                    .file
                    .write_all(&data)
                    .map_err(Error::io("write", unfinished.written()))?;
                if let Some(hash) = &mut unfinished.hash {
                    hash.update(&data);
                }
            }
            return Ok(());
        }
        let Some(done) = self.open.remove(&id) else {
            return Ok(());
        };
        let result = finish_file(
            &done.file,
            done.written(),
            &entry.stat,
            self.owners,
            &mut self.parents,
        )
        .and_then(|()| match &done.partial {
            Some(partial) => std::fs::rename(partial, &path).map_err(Error::io("rename", partial)),
            None => Ok(()),
        });
        if let Err(error) = result {
            done.remove();
            return Err(error);
        }
        let listed = match done.hash {
            Some(hash) => {
                let metadata = done.file.metadata().map_err(Error::io("inspect", &path))?;
                Some(Written {
                    metadata,
                    digest: hash.finalize().into(),
                })
            }
            None => None,
        };
        self.received.insert(index, listed);
        Ok(())
    }

    /// The files completed, once the data stopped (`written` says how): what is still
    /// open then (an error, or a sender gone mid-file) never completed and is removed.
    fn close(
        mut self,
        written: Result<(), Error>,
    ) -> Result<HashMap<usize, Option<Written>>, Error> {
        for (_, unfinished) in self.open.drain() {
            unfinished.remove();
        }
        written.map(|()| self.received)
    }
}

/// A file received, as its listing entry records it.
#[derive(Debug)]
struct Written {
    metadata: std::fs::Metadata,
    digest: [u8; 32],
}

/// A file being written: where (`partial`, renamed to `path` once complete, or `path`
/// itself) and the hash of what was written so far.
struct Unfinished {
    file: std::fs::File,
    partial: Option<PathBuf>,
    path: PathBuf,
    hash: Option<sha2::Sha256>,
}

impl Unfinished {
    /// The file being written.
    fn written(&self) -> &Path {
        self.partial.as_deref().unwrap_or(&self.path)
    }

    /// Removes the unfinished file (a failed transfer leaves no half-written file).
    fn remove(self) {
        let _ = std::fs::remove_file(self.written());
    }
}

/// What a new file's owner is: the process's ids, but the directory's group when the
/// parent directory has the set-group-id bit (asked once per directory).
struct Parents {
    set_gid: HashMap<PathBuf, bool>,
    /// The process's effective user and group ids: a new file's owner.
    ours: (u32, u32),
}

impl Parents {
    fn new() -> Parents {
        Parents {
            set_gid: HashMap::new(),
            ours: hoist_snapshot::created_owner(),
        }
    }

    fn set_gid(&mut self, file: &Path) -> bool {
        let Some(parent) = file.parent() else {
            return true;
        };
        if let Some(known) = self.set_gid.get(parent) {
            return *known;
        }
        let set_gid = std::fs::symlink_metadata(parent)
            .map_or(true, |meta| meta.permissions().mode() & 0o2000 != 0);
        self.set_gid.insert(parent.to_owned(), set_gid);
        set_gid
    }
}

/// A new file for `path`'s data, created with `permissions` (as far as the umask lets
/// them through): `path` itself when `new_path` (nothing was there) and it is still free,
/// else a partial file beside it to rename over it.
fn create_file(
    path: &Path,
    new_path: bool,
    permissions: u32,
) -> Result<(std::fs::File, Option<PathBuf>), Error> {
    if new_path {
        match new_file(path, permissions) {
            Ok(file) => return Ok((file, None)),
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(err) => return Err(Error::io("create", path)(err)),
        }
    }
    let (file, partial) = create_partial(path, permissions)?;
    Ok((file, Some(partial)))
}

/// Creates `path`, which must not exist (not even as a symlink, which is not followed).
fn new_file(path: &Path, permissions: u32) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(permissions & 0o777)
        .open(path)
}

/// Owner (when `owners`), mode, xattrs and mtime of a file just written, through its open
/// handle (no path lookups). The owner is left alone when the file was created with it (the
/// process's ids, in a directory without set-group-id), the mode when open() gave it.
fn finish_file(
    file: &std::fs::File,
    path: &Path,
    stat: &Stat,
    owners: bool,
    parents: &mut Parents,
) -> Result<(), Error> {
    if owners && ((stat.uid, stat.gid) != parents.ours || parents.set_gid(path)) {
        match std::os::unix::fs::fchown(file, Some(stat.uid), Some(stat.gid)) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::PermissionDenied => {}
            Err(err) => return Err(Error::io("chown", path)(err)),
        }
    }
    let permissions = mode::to_unix_permissions(stat.mode);
    if !hoist_snapshot::created_with(permissions) {
        file.set_permissions(std::fs::Permissions::from_mode(permissions))
            .map_err(Error::io("chmod", path))?;
    }
    set_xattrs(path, stat);
    filetime::set_file_handle_times(
        file,
        Some(file_time(stat.mod_time)),
        Some(file_time(stat.mod_time)),
    )
    .map_err(Error::io("set the mtime of", path))
}

/// A new file beside `path` to write its data into: never an existing entry (the sender may
/// have sent a symlink by that name, which must not be followed).
fn create_partial(path: &Path, permissions: u32) -> Result<(std::fs::File, PathBuf), Error> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    for n in 0..1000 {
        let partial = path.with_file_name(format!(".{name}.hoist-partial{n}"));
        match new_file(&partial, permissions) {
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
    set_xattrs(path, stat);
    let mtime = file_time(stat.mod_time);
    filetime::set_symlink_file_times(path, mtime, mtime)
        .map_err(Error::io("set the mtime of", path))
}

fn set_xattrs(path: &Path, stat: &Stat) {
    let mut names: Vec<_> = stat.xattrs.keys().collect();
    names.sort();
    for name in names {
        // Best effort, as fsutil's receiver: file systems without xattrs, or namespaces
        // only root may set (security.*, trusted.*), lose them.
        let _ = xattr::set(path, name, &stat.xattrs[name]);
    }
}

fn file_time(nanos: i64) -> filetime::FileTime {
    filetime::FileTime::from_unix_time(
        nanos.div_euclid(1_000_000_000),
        u32::try_from(nanos.rem_euclid(1_000_000_000)).unwrap_or(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_stream::wrappers::UnboundedReceiverStream;

    #[test]
    fn the_previous_copy_finds_paths_in_its_order_and_out_of_it() {
        let dir = tempfile::tempdir().unwrap();
        let meta = std::fs::symlink_metadata(dir.path()).unwrap();
        let rels = ["a", "a/1", "a/2", "b", "b/1", "c"];
        let listing = Listing::new(
            rels.iter()
                .map(|rel| Listed::new((*rel).to_owned(), meta.clone(), None))
                .collect(),
        );
        let previous = Previous::of(Arc::new(listing));
        // In order, skipping directories: found at the cursor, which follows them.
        for (rel, index) in [("a/1", 1), ("a/2", 2), ("b/1", 4), ("c", 5)] {
            assert_eq!(previous.index_of(Path::new(rel)), Some(index));
            assert_eq!(previous.cursor.load(Ordering::Relaxed), index + 1);
        }
        // Backwards, or a path it does not hold: a search of the listing answers.
        assert_eq!(previous.index_of(Path::new("a")), Some(0));
        assert_eq!(previous.index_of(Path::new("d")), None);
        assert_eq!(previous.index_of(Path::new("b/1")), Some(4));
        assert_eq!(previous.index_of(Path::new("c")), Some(5));
        previous.rewind();
        assert_eq!(previous.index_of(Path::new("a/1")), Some(1));
    }

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

    /// [`sync_listed`] without the listing.
    async fn sync(
        entries: Vec<(Stat, Vec<u8>)>,
        dest: &Path,
        incremental: bool,
    ) -> (Result<SyncStats, Error>, Vec<u32>) {
        let (result, requested) = sync_listed(entries, dest, incremental, None).await;
        (result.map(|(stats, _)| stats), requested)
    }

    /// The receiver's ends of a conversation with a test sender, whose list (`stats`, then
    /// its end) is sent already: the sender's channel of packets and the receiver's stream
    /// of them; the receiver's channel and the sender's stream of what it sends.
    #[allow(clippy::type_complexity)]
    fn conversation(
        stats: impl IntoIterator<Item = Stat>,
    ) -> (
        mpsc::UnboundedSender<Result<Packet, tonic::Status>>,
        UnboundedReceiverStream<Result<Packet, tonic::Status>>,
        mpsc::Sender<Batch>,
        std::pin::Pin<Box<dyn Stream<Item = Packet> + Send>>,
    ) {
        let (in_tx, in_rx) = mpsc::unbounded_channel::<Result<Packet, tonic::Status>>();
        let (out_tx, out_rx) = mpsc::channel::<Batch>(4);
        for stat in stats {
            let message = Packet {
                r#type: PacketType::PacketStat as i32,
                stat: Some(stat),
                ..Packet::default()
            };
            in_tx.send(Ok(message)).unwrap();
        }
        in_tx
            .send(Ok(packet(PacketType::PacketStat, 0, Vec::new())))
            .unwrap();
        let from_receiver = Box::pin(crate::fsutil::packets(out_rx));
        (
            in_tx,
            UnboundedReceiverStream::new(in_rx),
            out_tx,
            from_receiver,
        )
    }

    /// A sender as fsutil's: the stats, then each requested file's data in 3-byte packets,
    /// FIN for FIN. Returns the receiver's result (an incremental one with the listing,
    /// through [`receive_listed`] given `known`) and the ids it requested.
    async fn sync_listed(
        entries: Vec<(Stat, Vec<u8>)>,
        dest: &Path,
        incremental: bool,
        known: Option<Arc<Listing>>,
    ) -> (Result<(SyncStats, Option<Arc<Listing>>), Error>, Vec<u32>) {
        let stats = entries.iter().map(|(stat, _)| stat.clone());
        let (in_tx, incoming, out_tx, mut out_rx) = conversation(stats);
        let sender = tokio::spawn(async move {
            let mut requested = Vec::new();
            while let Some(p) = out_rx.next().await {
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
        let result = match incremental {
            true => receive_listed(dest, known, incoming, out_tx, &options)
                .await
                .map(|(stats, listing)| (stats, Some(listing))),
            false => receive(dest, incoming, out_tx, &options)
                .await
                .map(|stats| (stats, None)),
        };
        (result, sender.await.unwrap())
    }

    /// Each listed path with its digest, and whether its metadata is what `lstat` says now.
    fn listed(dest: &Path, listing: &Listing) -> Vec<(String, Option<[u8; 32]>, bool)> {
        listing
            .entries()
            .iter()
            .map(|e| {
                let now = std::fs::symlink_metadata(dest.join(&e.rel)).unwrap();
                let same = (
                    now.ino(),
                    now.mode(),
                    now.len(),
                    now.mtime_nsec(),
                    now.uid(),
                ) == (
                    e.metadata.ino(),
                    e.metadata.mode(),
                    e.metadata.len(),
                    e.metadata.mtime_nsec(),
                    e.metadata.uid(),
                );
                (e.rel.clone(), e.digest(), same)
            })
            .collect()
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
        let (result, requested) = sync_listed(tree(), &dest, true, None).await;
        assert_eq!(requested, [1, 2, 5]);
        let (stats, listing) = result.unwrap();
        let listing = listing.unwrap();
        use sha2::Digest as _;
        let sha = |b: &[u8]| -> Option<[u8; 32]> { Some(sha2::Sha256::digest(b).into()) };
        let expected = [
            ("a".to_owned(), None, true),
            ("a/f".to_owned(), sha(b"hello world"), true),
            ("a/x".to_owned(), sha(b"x"), true),
            ("h".to_owned(), None, true),
            ("l".to_owned(), None, true),
            ("z".to_owned(), sha(b""), true),
        ];
        assert_eq!(listed(&dest, &listing), expected);
        assert_eq!(
            stats,
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
        // The same tree again: nothing moves, and the listing the last receive gave is the
        // one this one gives (with the digests of the files kept).
        let (result, requested) =
            sync_listed(tree(), &dest, true, Some(Arc::clone(&listing))).await;
        assert!(requested.is_empty(), "{requested:?}");
        let (stats, again) = result.unwrap();
        assert_eq!(
            stats,
            SyncStats {
                unchanged: 3,
                ..SyncStats::default()
            },
            "nothing received"
        );
        let again = again.unwrap();
        assert!(
            Arc::ptr_eq(&again, &listing),
            "an unchanged copy keeps its listing"
        );
        assert_eq!(listed(&dest, &again), expected);
        // A directory's mode alone changed: a new listing, which says so.
        let mut chmodded = tree();
        chmodded[0].0.mode = mode::DIR | 0o755;
        let (result, requested) =
            sync_listed(chmodded, &dest, true, Some(Arc::clone(&listing))).await;
        assert!(requested.is_empty(), "{requested:?}");
        let (_, changed) = result.unwrap();
        let changed = changed.unwrap();
        assert!(!Arc::ptr_eq(&changed, &listing));
        assert_eq!(changed.entries()[0].metadata.mode() & 0o777, 0o755);
        assert_eq!(listed(&dest, &changed), expected);
        // Without it the copy is read from disk: the same entries, the kept files unhashed.
        let (result, requested) = sync_listed(tree(), &dest, true, None).await;
        assert!(requested.is_empty(), "{requested:?}");
        let (_, listing) = result.unwrap();
        let unhashed: Vec<_> = expected
            .iter()
            .map(|(p, _, s)| (p.clone(), None, *s))
            .collect();
        let listing = listing.unwrap();
        assert_eq!(listed(&dest, &listing), unhashed);
        // One file touched, one gone: that file moves, the other is removed.
        let mut next = tree();
        next[2].0.mod_time += 1;
        next.pop();
        let before = std::fs::metadata(dest.join("a/x")).unwrap().ino();
        let (result, requested) = sync_listed(next, &dest, true, Some(listing)).await;
        assert_eq!(requested, [2]);
        assert_ne!(
            std::fs::metadata(dest.join("a/x")).unwrap().ino(),
            before,
            "a changed file is a new file renamed into place, never written into"
        );
        let (stats, listing) = result.unwrap();
        assert_eq!((stats.received, stats.unchanged, stats.removed), (1, 1, 1));
        assert_eq!(
            listed(&dest, &listing.unwrap())[2],
            ("a/x".to_owned(), sha(b"x"), true)
        );
        assert!(!dest.join("z").exists());
        // A directory becomes a file.
        let replaced = vec![(stat("a", 0o644, 2, T, ""), b"ok".to_vec())];
        let (result, _) = sync(replaced, &dest, true).await;
        result.unwrap();
        assert_eq!(std::fs::read(dest.join("a")).unwrap(), b"ok");
        assert_eq!(std::fs::read_dir(&dest).unwrap().count(), 1);
    }

    /// A sender that answers every REQ but never the receiver's FIN (its stream stays
    /// open): the daemon's receive is done once its FIN is sent, the client's waits for the
    /// answer (and gives up when idle).
    #[tokio::test]
    async fn only_the_client_side_receive_waits_for_the_senders_fin() {
        async fn unanswered_fin(dest: &Path, listed: bool) -> Result<Option<Arc<Listing>>, Error> {
            let (in_tx, incoming, out_tx, mut out_rx) = conversation([stat("a", 0o644, 2, T, "")]);
            let sender = tokio::spawn(async move {
                let mut fins = 0;
                while let Some(p) = out_rx.next().await {
                    if p.r#type == PacketType::PacketReq as i32 {
                        let _ =
                            in_tx.send(Ok(packet(PacketType::PacketData, p.id, b"ok".to_vec())));
                        let _ = in_tx.send(Ok(packet(PacketType::PacketData, p.id, Vec::new())));
                    } else if p.r#type == PacketType::PacketFin as i32 {
                        fins += 1;
                    }
                }
                // The receiver's side ended; this one's never did.
                drop(in_tx);
                fins
            });
            let options = ReceiveOptions {
                incremental: true,
                owners: true,
                idle: Some(Duration::from_millis(300)),
            };
            let result = match listed {
                true => receive_listed(dest, None, incoming, out_tx, &options)
                    .await
                    .map(|(_, listing)| Some(listing)),
                false => receive(dest, incoming, out_tx, &options)
                    .await
                    .map(|_| None),
            };
            assert_eq!(sender.await.unwrap(), 1, "one FIN sent either way");
            result
        }
        let root = tempfile::tempdir().unwrap();
        let daemon = root.path().join("daemon");
        let listing = unanswered_fin(&daemon, true).await.unwrap().unwrap();
        assert_eq!(listing.len(), 1);
        assert_eq!(std::fs::read(daemon.join("a")).unwrap(), b"ok");
        let client = root.path().join("client");
        let waited = unanswered_fin(&client, false).await;
        assert!(matches!(waited, Err(Error::Idle(_))), "{waited:?}");
        // The tree itself was written before the wait.
        assert_eq!(std::fs::read(client.join("a")).unwrap(), b"ok");
    }

    #[tokio::test]
    async fn a_transfer_failing_inside_a_file_leaves_no_part_of_it() {
        let root = tempfile::tempdir().unwrap();
        let dest = root.path().join("copy");
        let (in_tx, incoming, out_tx, mut out_rx) = conversation([
            stat("done", 0o644, 2, T, ""),
            stat("then-cut", 0o644, 9, T, ""),
        ]);
        let sender = tokio::spawn(async move {
            let mut asked = 0;
            while let Some(p) = out_rx.next().await {
                if p.r#type != PacketType::PacketReq as i32 {
                    continue;
                }
                asked += 1;
                if p.id == 0 {
                    let _ = in_tx.send(Ok(packet(PacketType::PacketData, 0, b"ok".to_vec())));
                    let _ = in_tx.send(Ok(packet(PacketType::PacketData, 0, Vec::new())));
                }
                if asked == 2 {
                    let _ = in_tx.send(Ok(packet(PacketType::PacketData, 1, b"half".to_vec())));
                    let _ = in_tx.send(Err(tonic::Status::aborted("client killed")));
                    break;
                }
            }
        });
        let options = ReceiveOptions {
            incremental: true,
            owners: true,
            idle: Some(Duration::from_secs(10)),
        };
        let result = receive(&dest, incoming, out_tx, &options).await;
        sender.await.unwrap();
        assert!(result.is_err());
        let left: Vec<_> = std::fs::read_dir(&dest)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(!left.iter().any(|name| name.contains("cut")), "{left:?}");
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
            // fsutil's order: by name in each directory, a directory's entries right after it.
            (
                vec![stat("g", 0o644, 1, T, ""), stat("f", 0o644, 1, T, "")],
                "out of order",
            ),
            (
                vec![
                    stat("d", mode::DIR | 0o755, 0, T, ""),
                    stat("d/x", 0o644, 1, T, ""),
                    stat("e", 0o644, 1, T, ""),
                    stat("d/y", 0o644, 1, T, ""),
                ],
                "out of order",
            ),
        ] {
            for incremental in [true, false] {
                let root = tempfile::tempdir().unwrap();
                let dest = root.path().join("copy");
                let entries = bad.iter().cloned().map(|s| (s, b"x".to_vec())).collect();
                // Files before the bad entry may have been requested: nothing is written.
                let (result, _) = sync(entries, &dest, incremental).await;
                let err = result.unwrap_err();
                assert!(matches!(err, Error::Refused(_)), "{why}: {err}");
                assert!(err.to_string().contains(why), "{why}: {err}");
                let left: Vec<_> = std::fs::read_dir(root.path()).unwrap().collect();
                assert!(left.is_empty(), "{why}: wrote {left:?}");
            }
        }
    }
}
