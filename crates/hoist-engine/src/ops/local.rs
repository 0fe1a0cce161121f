//! Local context sources: the files of a context directory that the build may read —
//! those not excluded by `.dockerignore` (the source's exclude patterns) and, when the
//! source lists include patterns or follow paths, only those — copied into a snapshot.
//!
//! Symlinks on the way to a followed path are followed inside the context (fsutil's
//! `FollowLinks`): `COPY link/foo` sends `link` and what it points at.
//!
//! The cache key digests exactly the selected files (path, type, mode, size, content, link
//! target; not times nor owners), so touching a file the build does not read keeps every
//! step cached.

use std::collections::BTreeSet;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use hoist_dockerfile::dockerignore::PatternMatcher;
use hoist_snapshot::Snapshotter as _;
use sha2::{Digest as _, Sha256};

use super::stat_cache::StatCache;
use super::{scoped_path, EngineOp, LocalContext};
use crate::error::{Error, Result};
use crate::worker::{FileDigests, Ref};

/// The selection a source's checksum walked, kept for its run (one walk of the context,
/// not two; the run copies what the key was computed from).
pub(crate) type Slot = Arc<Mutex<Option<Vec<Entry>>>>;

/// How many bytes of small files a checksum keeps in memory for the run that copies them.
const KEPT_FOR_COPY: usize = 64 << 20;

/// Files up to this size are copied through memory and hashed on the way (their digests
/// serve the checksums of the copies reading the snapshot); larger ones are copied by
/// the kernel and read again when a checksum needs them.
const HASH_WHILE_COPYING: u64 = 1 << 20;

/// One selected entry of the context.
#[derive(Debug)]
pub(crate) struct Entry {
    /// Relative path with `/` separators.
    rel: String,
    path: PathBuf,
    metadata: std::fs::Metadata,
    /// A small file's bytes as the checksum read them: the run writes them without reading
    /// the file again.
    content: Option<Vec<u8>>,
    /// The sha256 of a file's content as the checksum read (`content`'s) or remembered it.
    digest: Option<[u8; 32]>,
    /// Its index in the context's listing, when it was selected from one.
    listed: Option<usize>,
}

/// What a selection does with one path of the context.
enum Decision {
    Take,
    Skip,
    /// Skip it and, a directory, everything below it.
    SkipTree,
}

/// The context of the local source `op`, as its ops read it.
struct Context {
    dir: PathBuf,
    /// See [`crate::ops::LocalContext::linkable`].
    linkable: bool,
    /// The owner's listing of the directory, once it has arrived ([`arrived`]).
    listing: Option<Arc<hoist_snapshot::Listing>>,
}

/// The context directory of the local source `op` (see [`LocalContext`]).
fn local_context(op: &EngineOp) -> Result<&LocalContext> {
    let hoist_graph::Op::Source(hoist_graph::Source::Local { name, .. }) = &op.vertex.op else {
        return Err(Error::InvalidGraph("not a local source".into()));
    };
    op.contexts
        .get(name)
        .ok_or_else(|| Error::InvalidGraph(format!("no local context named {name:?}")))
}

/// Waits until the context of the local source `op` may be read: an owned directory whose
/// listing is still arriving is being written by its owner.
pub(super) async fn arrived(op: &EngineOp) -> Result<()> {
    let context = local_context(op)?;
    if let Some(listing) = &context.listing {
        listing.wait().await.map_err(|reason| Error::Context {
            input: context.dir.display().to_string(),
            reason,
        })?;
    }
    Ok(())
}

/// The context of the local source `op`, which has [`arrived`].
fn context_of(op: &EngineOp) -> Result<Context> {
    let context = local_context(op)?;
    let listing = match context.listing.as_ref().map(crate::ContextListing::now) {
        None => None,
        Some(Some(Ok(listing))) => Some(listing),
        Some(Some(Err(reason))) => {
            return Err(Error::Context {
                input: context.dir.display().to_string(),
                reason,
            })
        }
        Some(None) => {
            return Err(Error::Task(format!(
                "{} was read before its listing arrived",
                context.dir.display()
            )))
        }
    };
    Ok(Context {
        dir: context.dir.clone(),
        linkable: context.linkable,
        listing,
    })
}

/// The include patterns, exclude patterns and follow paths of the local source `op`.
fn patterns_of(op: &EngineOp) -> Result<[&Vec<String>; 3]> {
    let hoist_graph::Op::Source(hoist_graph::Source::Local {
        include_patterns,
        exclude_patterns,
        follow_paths,
        ..
    }) = &op.vertex.op
    else {
        return Err(Error::InvalidGraph("not a local source".into()));
    };
    Ok([include_patterns, exclude_patterns, follow_paths])
}

/// The context directory and selection of the local source `op`: from the context's
/// listing when it has one, else by walking it.
fn selection(op: &EngineOp) -> Result<(PathBuf, Vec<Entry>)> {
    let context = context_of(op)?;
    let dir = context.dir;
    let [include_patterns, exclude_patterns, follow_paths] = patterns_of(op)?;
    let excludes = PatternMatcher::new(exclude_patterns)?;
    let followed = follow_links(&dir, follow_paths)?;
    // A link to the context's root makes the whole context needed (fsutil drops the filter).
    let everything = followed.iter().any(|p| p.is_empty());
    let includes: Vec<&String> = match everything {
        true => Vec::new(),
        false => include_patterns.iter().chain(&followed).collect(),
    };
    let include_matchers = includes
        .iter()
        .map(|p| PatternMatcher::new([p.as_str()]))
        .collect::<hoist_dockerfile::Result<Vec<_>>>()?;
    let ancestors = Ancestors::new(&includes)?;
    let decide = |rel: &str, is_dir: bool| -> Result<Decision> {
        let unwanted = match is_dir {
            true => Decision::SkipTree,
            false => Decision::Skip,
        };
        if excludes.matches(rel)? {
            return Ok(match excludes.exclusions() {
                // A `!pattern` may bring back something below an excluded directory.
                true => Decision::Skip,
                false => unwanted,
            });
        }
        if !includes.is_empty() {
            let mut under = false;
            for matcher in &include_matchers {
                under |= matcher.matches_or_parent_matches(rel)?;
            }
            let ancestor = is_dir && ancestors.may_hold(rel)?;
            if !under && !ancestor {
                return Ok(unwanted);
            }
        }
        Ok(Decision::Take)
    };
    let entries = match &context.listing {
        Some(listing) => from_listing(&dir, listing, decide)?,
        None => from_walk(&dir, decide)?,
    };
    Ok((dir, entries))
}

/// The entries of `dir` that `decide` takes, walking it (names sorted, depth first).
///
/// Each entry is stat'ed through its directory's open handle (std's `DirEntry::metadata`),
/// not by its full path: the kernel then resolves one name, not every component again
/// (a third of the walk's time on a 20,000-file context).
fn from_walk(dir: &Path, decide: impl Fn(&str, bool) -> Result<Decision>) -> Result<Vec<Entry>> {
    let mut entries = Vec::new();
    walk_into(dir, "", &decide, &mut entries)?;
    Ok(entries)
}

fn walk_into(
    dir: &Path,
    prefix: &str,
    decide: &impl Fn(&str, bool) -> Result<Decision>,
    entries: &mut Vec<Entry>,
) -> Result<()> {
    let walk_error = |source: std::io::Error| Error::Io {
        action: "walk",
        path: dir.to_owned(),
        source,
    };
    let mut children = std::fs::read_dir(dir)
        .and_then(|read| {
            read.map(|child| child.map(|child| (child.file_name(), child)))
                .collect::<std::io::Result<Vec<_>>>()
        })
        .map_err(walk_error)?;
    // Each name taken once (`DirEntry::file_name` allocates).
    children.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    for (name, child) in children {
        let rel = match prefix.is_empty() {
            true => name.to_string_lossy().into_owned(),
            false => format!("{prefix}/{}", name.to_string_lossy()),
        };
        let path = child.path();
        let metadata = child.metadata().map_err(Error::io("stat", &path))?;
        let is_dir = metadata.is_dir();
        match decide(&rel, is_dir)? {
            Decision::Take => entries.push(Entry {
                rel: rel.clone(),
                path: path.clone(),
                metadata,
                content: None,
                digest: None,
                listed: None,
            }),
            // Something below may still be taken (a `!pattern`).
            Decision::Skip => {}
            Decision::SkipTree => continue,
        }
        if is_dir {
            walk_into(&path, &rel, decide, entries)?;
        }
    }
    Ok(())
}

/// The entries of `listing` that `decide` takes, in the order a walk of `dir` visits them.
fn from_listing(
    dir: &Path,
    listing: &hoist_snapshot::Listing,
    decide: impl Fn(&str, bool) -> Result<Decision>,
) -> Result<Vec<Entry>> {
    let mut entries = Vec::with_capacity(listing.len());
    // Below a directory left out: the listing holds a directory's entries right after it.
    let mut skipped: Option<String> = None;
    for (index, listed) in listing.entries().iter().enumerate() {
        if let Some(prefix) = &skipped {
            if listed.rel.starts_with(prefix.as_str()) {
                continue;
            }
            skipped = None;
        }
        match decide(&listed.rel, listed.metadata.is_dir())? {
            Decision::Take => entries.push(Entry {
                rel: listed.rel.clone(),
                path: dir.join(&listed.rel),
                metadata: listed.metadata.clone(),
                content: None,
                digest: listed.digest(),
                listed: Some(index),
            }),
            Decision::Skip => {}
            Decision::SkipTree => skipped = Some(format!("{}/", listed.rel)),
        }
    }
    Ok(entries)
}

/// Symlinks followed through one path before giving up on it (a loop).
const MAX_LINKS: usize = 40;

/// fsutil's `FollowLinks`: the follow paths, with every symlink met while resolving them
/// (in any component, or matched by a wildcard in the last one) replaced by the link and
/// the paths it leads to, so that a COPY naming a link, or a path through a linked
/// directory, receives what the link points at. Paths stay inside the context: a target
/// outside it (absolute, or `..` past the root) is read as a path in the context, as the
/// copy will resolve it. `""` in the result stands for the whole context.
fn follow_links(dir: &Path, paths: &[String]) -> Result<Vec<String>> {
    let mut found = BTreeSet::new();
    for path in paths {
        resolve_links(dir, path, &mut found, 0)?;
    }
    Ok(found.into_iter().collect())
}

fn resolve_links(dir: &Path, path: &str, found: &mut BTreeSet<String>, depth: usize) -> Result<()> {
    let clean = scoped_path::clean(path);
    let parts: Vec<&str> = clean.split('/').filter(|p| !p.is_empty()).collect();
    if parts.is_empty() {
        found.insert(String::new());
        return Ok(());
    }
    for i in 0..parts.len() {
        let current = parts[..=i].join("/");
        let rest = parts[i + 1..].join("/");
        let targets = match depth < MAX_LINKS {
            true => link_targets(dir, &current)?,
            false => Vec::new(),
        };
        if (rest.is_empty() || !targets.is_empty()) && found.contains(&current) {
            return Ok(());
        }
        if !targets.is_empty() {
            found.insert(current);
            for target in targets {
                resolve_links(dir, &format!("{target}/{rest}"), found, depth + 1)?;
            }
            return Ok(());
        }
        if rest.is_empty() {
            found.insert(current);
        }
    }
    Ok(())
}

/// Where the symlinks at `path` (relative to `dir`; a wildcard in its last component
/// matches every entry) point, as cleaned absolute paths in the context.
fn link_targets(dir: &Path, path: &str) -> Result<Vec<String>> {
    let (parent, name) = path.rsplit_once('/').unwrap_or(("", path));
    let candidates = if super::copy::has_wildcard(name) {
        let matcher = PatternMatcher::new([name])?;
        let Ok(read) = std::fs::read_dir(dir.join(parent)) else {
            return Ok(Vec::new());
        };
        let mut names = Vec::new();
        for entry in read {
            let entry = entry.map_err(Error::io("read", dir.join(parent)))?;
            let entry_name = entry.file_name().to_string_lossy().into_owned();
            if matcher.matches(&entry_name)? {
                names.push(entry_name);
            }
        }
        names.sort();
        names
    } else {
        vec![name.to_string()]
    };
    let mut targets = Vec::new();
    for candidate in candidates {
        let host = dir.join(parent).join(&candidate);
        if !host
            .symlink_metadata()
            .is_ok_and(|m| m.file_type().is_symlink())
        {
            continue;
        }
        let link = std::fs::read_link(&host).map_err(Error::io("read link", &host))?;
        let link = link.to_string_lossy();
        targets.push(match link.starts_with('/') {
            true => scoped_path::clean(&link),
            false => scoped_path::clean(&format!("{parent}/{link}")),
        });
    }
    Ok(targets)
}

/// The directories on the way to what include patterns match: those whose components
/// match a pattern's leading components, one by one (`x/*/c` needs `x` and every `x/*`; a
/// `**` component may match whatever lies below).
struct Ancestors {
    /// Per pattern, a matcher per component (`None` for a component holding `**`).
    patterns: Vec<Vec<Option<PatternMatcher>>>,
}

impl Ancestors {
    fn new(patterns: &[&String]) -> Result<Ancestors> {
        let mut compiled = Vec::new();
        for pattern in patterns {
            let mut components = Vec::new();
            for component in pattern.split('/').filter(|c| !c.is_empty() && *c != ".") {
                components.push(match component.contains("**") {
                    true => None,
                    false => Some(PatternMatcher::new([component])?),
                });
            }
            compiled.push(components);
        }
        Ok(Ancestors { patterns: compiled })
    }

    /// Whether the directory `rel` may hold a path some pattern matches.
    fn may_hold(&self, rel: &str) -> Result<bool> {
        let parts: Vec<&str> = rel.split('/').collect();
        'patterns: for components in &self.patterns {
            // A directory as deep as the pattern is matched by it, or not an ancestor.
            if components.len() <= parts.len() && !components.iter().any(Option::is_none) {
                continue;
            }
            for (part, component) in parts.iter().zip(components) {
                match component {
                    None => return Ok(true),
                    Some(matcher) if matcher.matches(part)? => {}
                    Some(_) => continue 'patterns,
                }
            }
            return Ok(true);
        }
        Ok(false)
    }
}

/// The digest of the selected files' content (files whose stat is unchanged since an
/// earlier build are not read again: [`StatCache`]). A context with a listing remembers
/// the digest of each selection in it: a rebuild from an unchanged listing selects nothing.
pub(super) fn checksum(op: &EngineOp) -> Result<hoist_solver::Digest> {
    let listing = context_of(op)?.listing;
    let key = listing.as_ref().map(|_| selection_key(op)).transpose()?;
    if let (Some(listing), Some(key)) = (&listing, &key) {
        if let Some(known) = listing.known_checksum(key) {
            let digest = hoist_solver::Digest::from_bytes(known);
            if super::last_seen::local_files_known(op, &digest) {
                return Ok(digest);
            }
        }
    }
    let (dir, mut entries) = selection(op)?;
    let digest = checksum_of(op, &dir, &mut entries)?;
    *op.local.lock().unwrap_or_else(|e| e.into_inner()) = Some(entries);
    if let (Some(listing), Some(key)) = (listing, key) {
        listing.learn_checksum(key, *digest.as_bytes());
    }
    Ok(digest)
}

/// What names the selection of the local source `op` within its context (its include,
/// exclude and follow patterns; a listing's symlinks, which following reads, are the
/// listing's).
fn selection_key(op: &EngineOp) -> Result<[u8; 32]> {
    let mut key = Sha256::new();
    key.update(b"hoist local selection v1\0");
    for patterns in patterns_of(op)? {
        key.update((patterns.len() as u64).to_le_bytes());
        for pattern in patterns {
            key.update((pattern.len() as u64).to_le_bytes());
            key.update(pattern.as_bytes());
        }
    }
    Ok(key.finalize().into())
}

/// Small files read for their digest (not remembered by the stat cache) keep their bytes,
/// up to [`KEPT_FOR_COPY`] in all, for the copy that follows a miss. Files whose digest
/// the context's listing holds are not looked up, and the digests of listed files that had
/// none are added to it.
fn checksum_of(op: &EngineOp, dir: &Path, entries: &mut [Entry]) -> Result<hoist_solver::Digest> {
    let mut kept = 0usize;
    let listing = context_of(op)?.listing;
    // Opened on the first file whose digest is not known already.
    let mut stat_cache: Option<StatCache> = None;
    let mut hash = Sha256::new();
    // Each entry's digest, for the step record's files list.
    let mut shorts = Vec::with_capacity(entries.len());
    for entry in entries.iter_mut() {
        let mut one = Sha256::new();
        let mut content = None;
        let mut entry_digest = None;
        let keep = entry.metadata.len() <= HASH_WHILE_COPYING
            && kept + entry.metadata.len() as usize <= KEPT_FOR_COPY;
        let known = entry.digest;
        super::checksum::hash_entry_with(
            &mut Both(&mut hash, &mut one),
            &entry.rel,
            &entry.path,
            &entry.metadata,
            false,
            &mut |path| {
                if let Some(digest) = known {
                    return Ok(digest);
                }
                stat_cache
                    .get_or_insert_with(|| {
                        StatCache::open(&op.worker.engine_dir().join("contexts"), dir)
                    })
                    .digest_with(&entry.rel, path, &entry.metadata, |path| {
                        if !keep {
                            return super::checksum::file_digest(path);
                        }
                        let mut bytes = Vec::with_capacity(entry.metadata.len() as usize);
                        std::fs::File::open(path)?.read_to_end(&mut bytes)?;
                        let digest: [u8; 32] = Sha256::digest(&bytes).into();
                        content = Some(bytes);
                        Ok(digest)
                    })
                    .inspect(|digest| entry_digest = Some(*digest))
                    .map_err(Error::io("read", path))
            },
        )?;
        if let (None, Some(digest), Some(listing), Some(index)) =
            (known, entry_digest, &listing, entry.listed)
        {
            listing.entries()[index].learn_digest(digest);
        }
        entry.digest = entry_digest.or(known);
        if let Some(bytes) = content {
            kept += bytes.len();
            entry.content = Some(bytes);
        }
        shorts.push(super::last_seen::entry_digest(one));
    }
    let digest = hoist_solver::Digest::of(&hash.finalize());
    super::last_seen::local_files(op, &digest, || {
        (entries.iter().zip(&shorts))
            .map(|(entry, short)| (entry.rel.clone(), hex::encode(short)))
            .collect()
    });
    // A prepared (remote or piped) context is a new directory each build: remembering its
    // stats would only leave a file behind.
    let engine = op.worker.engine_dir();
    if let Some(stats) = stat_cache {
        if !dir.starts_with(crate::context::contexts_dir(&engine)) {
            stats.save();
        }
    }
    Ok(digest)
}

/// Feeds two hashes at once: the context's and one entry's (for the step records).
struct Both<'a>(&'a mut Sha256, &'a mut Sha256);

impl sha2::digest::Update for Both<'_> {
    fn update(&mut self, data: &[u8]) {
        sha2::digest::Update::update(self.0, data);
        sha2::digest::Update::update(self.1, data);
    }
}

/// Copies the selection into a new committed snapshot. It gets no layer: a context is only
/// ever read by copies (which make layers of their own), never the root of an image, so
/// writing one would only cost a tar and a gzip of the whole context.
pub(super) fn exec(op: &EngineOp) -> Result<Ref> {
    let walked = op.local.lock().unwrap_or_else(|e| e.into_inner()).take();
    let entries = match walked {
        Some(entries) => entries,
        None => selection(op)?.1,
    };
    let link = context_of(op)?.linkable;
    let snapshotter = op.worker.snapshotter();
    let key = op.worker.unique_key("local");
    let mount = snapshotter.prepare(&key, &[])?;
    let digests = match copy_entries(&entries, mount.path(), link) {
        Ok(digests) => digests,
        Err(e) => {
            let _ = snapshotter.remove(&key);
            return Err(e);
        }
    };
    let snapshot = snapshotter.commit(&key)?;
    op.worker.note_file_digests(&snapshot, digests);
    Ok(Ref {
        snapshot: Some(snapshot),
        layers: Vec::new(),
    })
}

/// Copies `entries` under `root`; the content digests of the files hashed on the way.
/// With `link` (a context nothing writes into), a file whose copy would look the same —
/// owned by this process's user and group, as a copy would be — is hard-linked instead:
/// the snapshot shares its inode, which no one changes afterwards.
fn copy_entries(entries: &[Entry], root: &Path, link: bool) -> Result<FileDigests> {
    let mut dirs = Vec::new();
    let mut files = Vec::new();
    // Directories known to exist, so each is created once, not stat'ed for every file.
    let mut created = std::collections::HashSet::new();
    created.insert(root.to_path_buf());
    for entry in entries {
        let dest = root.join(&entry.rel);
        if let Some(parent) = dest.parent() {
            if !created.contains(parent) {
                std::fs::create_dir_all(parent).map_err(Error::io("create", parent))?;
                created.insert(parent.to_path_buf());
            }
        }
        let kind = entry.metadata.file_type();
        if kind.is_dir() {
            std::fs::create_dir_all(&dest).map_err(Error::io("create", &dest))?;
            created.insert(dest.clone());
            dirs.push((dest, entry));
        } else if kind.is_symlink() {
            let target =
                std::fs::read_link(&entry.path).map_err(Error::io("read link", &entry.path))?;
            std::os::unix::fs::symlink(&target, &dest)
                .map_err(Error::io("create symlink", &dest))?;
        } else if kind.is_file() {
            files.push((entry, dest));
        }
    }
    let digests = copy_files(&files, link)?;
    for (dest, entry) in dirs.into_iter().rev() {
        std::fs::set_permissions(&dest, entry.metadata.permissions())
            .map_err(Error::io("chmod", &dest))?;
        set_times(&dest, &entry.metadata)?;
    }
    Ok(digests)
}

/// Copies (or links, see [`copy_entries`]) each regular file to its destination, whose
/// directory exists; many files on several threads ([`super::in_runs`]).
fn copy_files(files: &[(&Entry, PathBuf)], link: bool) -> Result<FileDigests> {
    let owner = hoist_snapshot::created_owner();
    let runs = super::in_runs(files, super::PARALLEL_FILES, |run| {
        copy_some(run, link, owner)
    })?;
    Ok(runs.into_iter().flatten().collect())
}

/// [`copy_files`] on one thread.
fn copy_some(files: &[(&Entry, PathBuf)], link: bool, owner: (u32, u32)) -> Result<FileDigests> {
    let mut digests = FileDigests::new();
    for (entry, dest) in files {
        let dest = dest.as_path();
        if link && linked(entry, dest, owner) {
            if let Some(digest) = entry.digest {
                digests.insert(entry.rel.clone(), digest);
            }
            continue;
        }
        let mode = std::os::unix::fs::PermissionsExt::mode(&entry.metadata.permissions());
        let mtime = filetime::FileTime::from_last_modification_time(&entry.metadata);
        if let (Some(bytes), Some(digest)) = (&entry.content, entry.digest) {
            write_new_file(bytes, dest, mode & 0o7777, mtime).map_err(Error::io("write", dest))?;
            digests.insert(entry.rel.clone(), digest);
        } else if entry.metadata.len() <= HASH_WHILE_COPYING {
            let digest = copy_hashing(&entry.path, dest, mode & 0o7777, mtime)
                .map_err(Error::io("copy", &entry.path))?;
            digests.insert(entry.rel.clone(), digest);
        } else {
            super::file::copy_new_file(
                &entry.path,
                entry.metadata.len(),
                dest,
                None,
                mode & 0o7777,
                mtime,
            )
            .map_err(Error::io("copy", &entry.path))?;
        }
    }
    Ok(digests)
}

fn linked(entry: &Entry, dest: &Path, owner: (u32, u32)) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    (entry.metadata.uid(), entry.metadata.gid()) == owner
        && std::fs::hard_link(&entry.path, dest).is_ok()
}

/// Copies the small file `src` to the new file `dest` through memory (one read, one
/// write), with `mode` and `mtime`; the sha256 of the bytes copied.
fn copy_hashing(
    src: &Path,
    dest: &Path,
    mode: u32,
    mtime: filetime::FileTime,
) -> std::io::Result<[u8; 32]> {
    let mut bytes = Vec::new();
    std::fs::File::open(src)?.read_to_end(&mut bytes)?;
    let digest: [u8; 32] = Sha256::digest(&bytes).into();
    write_new_file(&bytes, dest, mode, mtime).map(|()| digest)
}

/// Writes `bytes` to the new file `dest`, with `mode` and `mtime`.
fn write_new_file(
    bytes: &[u8],
    dest: &Path,
    mode: u32,
    mtime: filetime::FileTime,
) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let mut to = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode & 0o777)
        .open(dest)?;
    let copied = (|| {
        to.write_all(bytes)?;
        // Past the umask, and the set-id and sticky bits (when open() did not give them).
        if !super::file::created_with(mode) {
            to.set_permissions(std::fs::Permissions::from_mode(mode))?;
        }
        filetime::set_file_handle_times(&to, None, Some(mtime))
    })();
    if copied.is_err() {
        let _ = std::fs::remove_file(dest);
    }
    copied
}

fn set_times(path: &Path, metadata: &std::fs::Metadata) -> Result<()> {
    let mtime = filetime::FileTime::from_last_modification_time(metadata);
    filetime::set_file_mtime(path, mtime).map_err(Error::io("set times of", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn followed_links_bring_their_targets_inside_the_context() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("sub")).unwrap();
        for (target, link) in [
            ("bar", "foo"),
            ("subfile", "sub/l0"),
            ("second", "sub/l1"),
            ("baz", "sub/second"),
            ("sub", "link"),
            ("/etc/passwd", "abs"),
            ("../../../etc", "up"),
            ("loop2", "loop1"),
            ("loop1", "loop2"),
        ] {
            std::os::unix::fs::symlink(target, root.join(link)).unwrap();
        }
        std::fs::write(root.join("sub/lfile"), "").unwrap();
        let follow = |paths: &[&str]| {
            let paths: Vec<String> = paths.iter().map(|p| p.to_string()).collect();
            follow_links(root, &paths).unwrap()
        };
        assert_eq!(follow(&["foo"]), ["bar", "foo"]);
        assert_eq!(
            follow(&["sub/l*"]),
            ["sub/baz", "sub/l*", "sub/second", "sub/subfile"]
        );
        assert_eq!(follow(&["link/foo"]), ["link", "sub/foo"]);
        assert_eq!(
            follow(&["abs", "up/hostname"]),
            ["abs", "etc/hostname", "etc/passwd", "up"]
        );
        assert_eq!(follow(&["loop1"]), ["loop1", "loop2"]);
        assert_eq!(follow(&["plain/path"]), ["plain/path"]);
    }

    #[test]
    fn copied_files_carry_the_digests_of_their_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let (src, dest) = (dir.path().join("src"), dir.path().join("dest"));
        std::fs::create_dir_all(src.join("sub")).unwrap();
        std::fs::create_dir_all(&dest).unwrap();
        std::fs::write(src.join("sub/read"), b"read while copying").unwrap();
        std::fs::write(src.join("kept"), b"kept by the checksum").unwrap();
        let entry = |rel: &str| Entry {
            rel: rel.to_owned(),
            path: src.join(rel),
            metadata: std::fs::symlink_metadata(src.join(rel)).unwrap(),
            content: None,
            digest: None,
            listed: None,
        };
        let mut kept = entry("kept");
        let bytes = std::fs::read(src.join("kept")).unwrap();
        kept.digest = Some(Sha256::digest(&bytes).into());
        kept.content = Some(bytes);
        let entries = vec![entry("sub"), entry("sub/read"), kept];
        let digests = copy_entries(&entries, &dest, false).unwrap();
        assert_eq!(digests.len(), 2);
        for rel in ["sub/read", "kept"] {
            let path = dest.join(rel);
            assert_eq!(
                std::fs::read(&path).unwrap(),
                std::fs::read(src.join(rel)).unwrap()
            );
            assert_eq!(
                digests[rel],
                super::super::checksum::file_digest(&path).unwrap(),
                "{rel}"
            );
        }
    }

    #[test]
    fn a_linkable_context_shares_the_inodes_of_files_a_copy_would_own() {
        use std::os::unix::fs::MetadataExt as _;
        let dir = tempfile::tempdir().unwrap();
        let (src, dest) = (dir.path().join("src"), dir.path().join("dest"));
        std::fs::create_dir_all(src.join("sub")).unwrap();
        std::fs::create_dir_all(&dest).unwrap();
        std::fs::write(src.join("sub/mine"), b"owned by this process").unwrap();
        std::fs::write(src.join("theirs"), b"owned by someone else").unwrap();
        let root = rustix::process::geteuid().is_root();
        if root {
            std::os::unix::fs::chown(src.join("theirs"), Some(4242), Some(4242)).unwrap();
        }
        let entries: Vec<Entry> = ["sub", "sub/mine", "theirs"]
            .iter()
            .map(|rel| entry_at(&src, rel))
            .collect();
        let digests = copy_entries(&entries, &dest, true).unwrap();
        let ino = |path: &Path| std::fs::symlink_metadata(path).unwrap().ino();
        assert_eq!(ino(&dest.join("sub/mine")), ino(&src.join("sub/mine")));
        assert_eq!(digests["sub/mine"], entries[1].digest.unwrap());
        assert_ne!(ino(&dest.join("sub")), ino(&src.join("sub")));
        if root {
            // Linked, it would show uid 4242 where a copy shows root's.
            assert_ne!(ino(&dest.join("theirs")), ino(&src.join("theirs")));
            assert_eq!(std::fs::metadata(dest.join("theirs")).unwrap().uid(), 0);
        }
        // Not linkable: every file is a copy.
        let copied = dir.path().join("copied");
        std::fs::create_dir_all(&copied).unwrap();
        copy_entries(&entries, &copied, false).unwrap();
        assert_ne!(ino(&copied.join("sub/mine")), ino(&src.join("sub/mine")));
    }

    /// The entry of `rel` under `src`, given the digest of its path as its known digest.
    fn entry_at(src: &Path, rel: &str) -> Entry {
        Entry {
            rel: rel.to_owned(),
            path: src.join(rel),
            metadata: std::fs::symlink_metadata(src.join(rel)).unwrap(),
            content: None,
            digest: Some(Sha256::digest(rel.as_bytes()).into()),
            listed: None,
        }
    }

    #[test]
    fn many_files_are_copied_or_linked_by_several_threads_all_of_them() {
        use std::os::unix::fs::MetadataExt as _;
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        let mut rels = Vec::new();
        for d in 0..10 {
            std::fs::create_dir_all(src.join(format!("d{d}"))).unwrap();
            rels.push(format!("d{d}"));
            for f in 0..(super::super::PARALLEL_FILES / 5) {
                let rel = format!("d{d}/f{f:03}");
                std::fs::write(src.join(&rel), &rel).unwrap();
                rels.push(rel);
            }
        }
        let entries: Vec<Entry> = rels.iter().map(|rel| entry_at(&src, rel)).collect();
        let files = entries.iter().filter(|e| e.metadata.is_file()).count();
        assert!(
            files >= super::super::PARALLEL_FILES,
            "the threads share the work"
        );
        for link in [false, true] {
            let dest = dir.path().join(format!("dest-{link}"));
            std::fs::create_dir_all(&dest).unwrap();
            let digests = copy_entries(&entries, &dest, link).unwrap();
            assert_eq!(digests.len(), files, "link: {link}");
            for entry in entries.iter().filter(|e| e.metadata.is_file()) {
                let copy = dest.join(&entry.rel);
                assert_eq!(std::fs::read_to_string(&copy).unwrap(), entry.rel);
                assert_eq!(
                    digests[&entry.rel],
                    Sha256::digest(entry.rel.as_bytes()).as_slice()
                );
                let shared = std::fs::metadata(&copy).unwrap().ino() == entry.metadata.ino();
                assert_eq!(shared, link, "{}", entry.rel);
            }
        }
    }

    #[test]
    fn a_listing_selects_what_a_walk_of_its_directory_selects() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for d in ["a/b", "a-c", "skip/deep", "keep"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        for f in [
            "a/b/f",
            "a/g",
            "a-c/h",
            "skip/deep/x",
            "skip/y",
            "keep/z",
            "top",
        ] {
            std::fs::write(root.join(f), f).unwrap();
        }
        std::os::unix::fs::symlink("a", root.join("link")).unwrap();
        let listed = walkdir::WalkDir::new(root)
            .min_depth(1)
            .into_iter()
            .map(|e| {
                let e = e.unwrap();
                let rel = e.path().strip_prefix(root).unwrap().to_string_lossy();
                let meta = std::fs::symlink_metadata(e.path()).unwrap();
                hoist_snapshot::Listed::new(rel.into_owned(), meta, Some([7; 32]))
            })
            .collect();
        let listing = hoist_snapshot::Listing::new(listed);
        // Leave out `skip` (and so what is below it) and the file `a/g`.
        let decide = |rel: &str, is_dir: bool| -> Result<Decision> {
            Ok(match rel {
                "skip" if is_dir => Decision::SkipTree,
                "a/g" => Decision::Skip,
                _ => Decision::Take,
            })
        };
        let names = |entries: &[Entry]| -> Vec<(String, u64, bool)> {
            use std::os::unix::fs::MetadataExt as _;
            let kinds = entries
                .iter()
                .map(|e| (e.rel.clone(), e.metadata.ino(), e.metadata.is_dir()));
            kinds.collect()
        };
        let walked = from_walk(root, decide).unwrap();
        let from_list = from_listing(root, &listing, decide).unwrap();
        assert_eq!(names(&from_list), names(&walked));
        assert_eq!(
            walked.iter().map(|e| e.rel.as_str()).collect::<Vec<_>>(),
            ["a", "a/b", "a/b/f", "a-c", "a-c/h", "keep", "keep/z", "link", "top"]
        );
        assert!(from_list.iter().all(|e| e.digest == Some([7; 32])));
        assert_eq!(from_list[2].path, root.join("a/b/f"));
    }

    #[test]
    fn ancestors_of_wildcard_patterns_are_walked() {
        let a = String::from("x/*/c");
        let b = String::from("d/**/e");
        let ancestors = Ancestors::new(&[&a, &b]).unwrap();
        for (rel, want) in [
            ("x", true),
            ("x/b", true),
            ("x/b/c", false),
            ("y", false),
            ("d", true),
            ("d/q/r/s", true),
            ("e", false),
        ] {
            assert_eq!(ancestors.may_hold(rel).unwrap(), want, "{rel}");
        }
    }
}
