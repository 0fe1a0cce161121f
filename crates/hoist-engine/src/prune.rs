//! [`disk_usage`] and [`prune`]: what the build cache holds, and removing it — what
//! `hoist du` and `hoist prune` call (buildx's `du` and `prune`).
//!
//! The cache is the records under `<state>/engine/cache` (see [`crate::CacheRecord`]), the
//! snapshots they point at, the image layer chains under `<state>/engine/layers`, and the
//! blobs their named leases keep in the content store. Prune:
//!
//! 1. takes `engine/layers.lock` then `engine/cache.lock` (exclusive), so no build loads,
//!    saves or unpacks while it decides, and reads the use leases of running builds;
//! 2. picks records: not in use by a running build, matching the filters, and without
//!    `all` not shared with an image named in the content store (BuildKit keeps records
//!    whose layers images use unless `--all`); with a space limit, least recently used
//!    first until the records' total size is at most `max_used_space`, never going below
//!    `reserved_space`;
//! 3. deletes each picked record, then its named lease (records that do not parse are
//!    garbage and go whatever the filters);
//! 4. removes the snapshots nothing references any more (neither a remaining record, nor
//!    a layer chain it keeps, nor a running build), children first; when no build runs
//!    (`engine/builds.lock` taken exclusive) also every other unreferenced snapshot, such
//!    as those of records a `--no-cache` build replaced; first, build or not, the prepared
//!    snapshots and views killed builds left (their leases held by no live process);
//! 5. removes the chosen cache mounts (`RUN --mount=type=cache` directories), which are
//!    in use whenever a build runs, so only chosen when none does;
//! 6. removes the chosen bare git repositories of `engine/git/` (each only when its lock
//!    is free), and the last-seen step records (`engine/steps/`) whose key no longer has
//!    a record;
//! 7. collects content garbage: blobs no name, lease or named lease keeps (sparing blobs
//!    younger than an hour while a build runs, as its pulls are not leased yet), and the
//!    ingest temp files of dead writers.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fs4::fs_std::FileExt;
use hoist_content::{ContentStore, GcOptions};
use hoist_oci::Digest;
use hoist_snapshot::{AnySnapshotter, SnapshotId, Snapshotter as _};

use crate::cache::{lease_name, now_ms, CacheRecord, RecordDir};
use crate::error::{Error, Result};
use crate::state_dir::StateDir;
use crate::use_lease::{live_uses, LiveUses};
use crate::worker::{builds_lock, use_leases_dir};

/// How young a blob no one keeps must be to survive a prune that runs next to a build.
const RUNNING_BUILD_BLOB_GRACE: Duration = Duration::from_secs(60 * 60);

/// What `hoist prune` removes (buildx's `prune` flags, typed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneOptions {
    /// Also records shared with images named in the content store (`--all`).
    pub all: bool,
    /// Keep records used more recently than this (`--filter until=24h`).
    pub keep_duration: Option<Duration>,
    /// Only records whose id starts with one of these (`--filter id=...`); empty: any.
    pub ids: Vec<String>,
    /// Never prune the cache below this many bytes (`--reserved-space`).
    pub reserved_space: u64,
    /// Prune least recently used records until the cache is at most this big
    /// (`--max-used-space`; `--keep-storage` as docker and older buildx meant it).
    pub max_used_space: u64,
    /// Prune least recently used records until the state dir's file system has this much
    /// free (`--min-free-space`), as far as removing cache can get there.
    pub min_free_space: u64,
    /// Only rows of these kinds (a gc policy's `type==…` filters); `None`: any. An empty
    /// list matches nothing (a policy naming only BuildKit types hoist has no rows of).
    pub kinds: Option<Vec<UsageKind>>,
    /// Keep rows used at or after this time (the build an automatic gc follows keeps its
    /// own records); `None`: no such protection.
    pub spare_used_since: Option<SystemTime>,
}

/// What a [`CacheUsage`] row is (BuildKit's record types).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageKind {
    /// A cache record: a step's result.
    Regular,
    /// A `RUN --mount=type=cache` directory (mutable; in use whenever a build runs).
    CacheMount,
    /// A bare git repository under `engine/git/` (BuildKit's `source.git.checkout`):
    /// objects fetched for `ADD <git url>` and Git contexts, shared by builds; in use while
    /// a checkout holds its lock. Removed only with `all` or when unused for longer than
    /// the keep duration.
    GitRepo,
    /// Disk use no record accounts for: snapshots no record or layer chain reaches,
    /// prepared snapshots, blobs nothing keeps and ingest leftovers (one row; what a
    /// prune with no build running removes).
    Unreferenced,
}

impl UsageKind {
    /// BuildKit's name: `regular`, `exec.cachemount`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Regular => "regular",
            Self::CacheMount => "exec.cachemount",
            Self::GitRepo => "source.git.checkout",
            Self::Unreferenced => "unreferenced",
        }
    }

    /// The kind BuildKit's type name means, `None` for a type hoist keeps no rows of
    /// (`source.local`, `internal`, `frontend`).
    pub fn from_buildkit(name: &str) -> Option<UsageKind> {
        [Self::Regular, Self::CacheMount, Self::GitRepo]
            .into_iter()
            .find(|kind| kind.as_str() == name)
    }
}

/// One cache record or cache mount as `hoist du` shows it (buildx's `UsageInfo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheUsage {
    /// The cache key in hex (records), or the digest of the mount id (cache mounts).
    pub id: String,
    pub kind: UsageKind,
    /// The ids of the records its snapshot was made on.
    pub parents: Vec<String>,
    pub created: SystemTime,
    /// `None` for records written before hoist kept the time.
    pub last_used: Option<SystemTime>,
    pub usage_count: u64,
    /// Bytes the record brought (see [`CacheRecord::size`]).
    pub size: u64,
    /// Used by a running build, so not reclaimable.
    pub in_use: bool,
    /// Its layer is part of an image named in the content store.
    pub shared: bool,
}

/// What [`prune`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// The records removed, least recently used first.
    pub removed: Vec<CacheUsage>,
    /// Bytes freed: snapshots, blobs and stale ingests removed.
    pub reclaimed: u64,
    /// How many snapshots were removed.
    pub removed_snapshots: usize,
    /// How many blobs content GC removed.
    pub removed_blobs: usize,
    /// A build was running, so only snapshots of removed records were considered.
    pub build_running: bool,
    /// How many prepared snapshots and views killed builds left were removed.
    pub removed_active: usize,
    /// How many last-seen step records (`engine/steps/`) went with their keys' records.
    pub removed_steps: usize,
    /// Snapshots (ids, or keys of active ones) that could not be removed, with why; they
    /// stay for a later prune.
    pub failed: Vec<(String, String)>,
}

/// The one field of a step's last-seen record prune reads (see `ops::last_seen`).
#[derive(serde::Deserialize)]
struct StepKey {
    #[serde(default)]
    key: String,
}

/// Cache records by key (hex).
type Records = Vec<(String, CacheRecord)>;

/// The cache of a state dir, opened for inspection or pruning (no build needed).
struct Cache {
    engine: PathBuf,
    records: RecordDir,
    snapshotter: AnySnapshotter,
    store: ContentStore,
}

impl Cache {
    fn open(state: &StateDir) -> Result<Cache> {
        let (store, snapshotter, engine) = state.open()?;
        Ok(Cache {
            records: RecordDir::new(&engine),
            engine,
            snapshotter,
            store,
        })
    }

    /// Every record that parses, by key; keys of records that do not.
    fn read_records(&self) -> Result<(Records, Vec<String>)> {
        let mut good = Vec::new();
        let mut bad = Vec::new();
        for key in self.records.keys()? {
            match self.records.read(&key) {
                Ok(Some(record)) => good.push((key, record)),
                Ok(None) => {}
                Err(Error::CacheRecord { .. }) => bad.push(key),
                Err(e) => return Err(e),
            }
        }
        Ok((good, bad))
    }

    /// The rows of `records`, as `du` shows them.
    fn rows(&self, records: &[(String, CacheRecord)], uses: &LiveUses) -> Result<Vec<CacheUsage>> {
        let mut named = self.store.referenced_by_index()?;
        // A named image holds a build layer as its exported (compressed) variant.
        for (source, result) in self.store.variants() {
            if named.contains(&result.digest) {
                named.insert(source);
            }
        }
        let mut by_snapshot: HashMap<&SnapshotId, Vec<&str>> = HashMap::new();
        for (key, record) in records {
            if let Some(snapshot) = &record.value.snapshot {
                by_snapshot.entry(snapshot).or_default().push(key);
            }
        }
        // A lazy result (an image source whose layers were not fetched when it was saved)
        // was sized without them; the layers a later step fetched are held by its record,
        // so it is sized by what of them the store holds now (each layer once).
        let mut lazy_layers = HashSet::new();
        let rows = records
            .iter()
            .map(|(key, record)| {
                let size = if record.value.snapshot.is_none()
                    && record.value.layers.iter().any(|l| l.source.is_some())
                {
                    record
                        .value
                        .layers
                        .iter()
                        .filter(|l| lazy_layers.insert(l.descriptor.digest.clone()))
                        .map(|l| self.store.info(&l.descriptor.digest).unwrap_or(0))
                        .sum()
                } else {
                    record.size
                };
                let parents = record
                    .value
                    .snapshot
                    .as_ref()
                    .and_then(|s| self.snapshotter.parents(s).ok())
                    .unwrap_or_default()
                    .iter()
                    .flat_map(|p| by_snapshot.get(p).cloned().unwrap_or_default())
                    .map(str::to_owned)
                    .collect();
                row(key, record, size, uses, &named, parents)
            })
            .collect();
        Ok(rows)
    }

    /// `engine/layers/<chain>` → snapshot: the image layer chains unpacked so far.
    fn layer_chains(&self) -> Result<Vec<(PathBuf, Option<SnapshotId>)>> {
        let dir = self.engine.join("layers");
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("list", &dir)(e)),
        };
        let mut chains = Vec::new();
        for entry in entries {
            let path = entry.map_err(Error::io("list", &dir))?.path();
            let id = std::fs::read_to_string(&path)
                .ok()
                .and_then(|text| SnapshotId::parse(text.trim()).ok());
            chains.push((path, id));
        }
        Ok(chains)
    }

    /// `engine/cache-mounts/<hex>`: the directories of `RUN --mount=type=cache`. Their
    /// times are the directory's (its top level's last change).
    fn cache_mounts(&self, in_use: bool) -> Result<Vec<CacheUsage>> {
        let dir = self.engine.join("cache-mounts");
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("list", &dir)(e)),
        };
        let mut mounts = Vec::new();
        for entry in entries {
            let entry = entry.map_err(Error::io("list", &dir))?;
            let path = entry.path();
            let meta = match entry.metadata() {
                Ok(meta) if meta.is_dir() => meta,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io("stat", &path)(e)),
            };
            let modified = meta.modified().unwrap_or(UNIX_EPOCH);
            mounts.push(CacheUsage {
                id: entry.file_name().to_string_lossy().into_owned(),
                kind: UsageKind::CacheMount,
                parents: Vec::new(),
                created: meta.created().unwrap_or(modified),
                last_used: Some(modified),
                usage_count: 0,
                size: tree_usage(&path),
                in_use,
                shared: false,
            });
        }
        Ok(mounts)
    }

    /// `engine/git/<name>.git`: the bare repositories of git sources. A repository is in
    /// use while a checkout holds `<name>.lock`; the lock file's modification time is its
    /// last use (hoist-git touches it on each lock).
    fn git_repos(&self) -> Result<Vec<CacheUsage>> {
        let dir = self.engine.join("git");
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("list", &dir)(e)),
        };
        let mut repos = Vec::new();
        for entry in entries {
            let entry = entry.map_err(Error::io("list", &dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(id) = name.strip_suffix(".git") else {
                continue;
            };
            let path = entry.path();
            let meta = match std::fs::metadata(&path) {
                Ok(meta) if meta.is_dir() => meta,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io("stat", &path)(e)),
            };
            let lock = dir.join(format!("{id}.lock"));
            let used = std::fs::metadata(&lock)
                .and_then(|m| m.modified())
                .or_else(|_| meta.modified())
                .unwrap_or(UNIX_EPOCH);
            let in_use = File::open(&lock)
                .ok()
                .is_some_and(|file| !FileExt::try_lock_exclusive(&file).unwrap_or(false));
            repos.push(CacheUsage {
                id: id.to_owned(),
                kind: UsageKind::GitRepo,
                parents: Vec::new(),
                created: meta.created().unwrap_or(used),
                last_used: Some(used),
                usage_count: 0,
                size: tree_usage(&path),
                in_use,
                shared: false,
            });
        }
        Ok(repos)
    }

    /// Removes the bare repository `id` unless a checkout holds it now (then `false`).
    /// The lock file stays: a process may have it open to lock, and it is empty.
    fn remove_git_repo(&self, id: &str) -> Result<bool> {
        let dir = self.engine.join("git");
        let lock_path = dir.join(format!("{id}.lock"));
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(Error::io("open", &lock_path))?;
        if !FileExt::try_lock_exclusive(&lock).map_err(Error::io("lock", &lock_path))? {
            return Ok(false);
        }
        let repo = dir.join(format!("{id}.git"));
        match std::fs::remove_dir_all(&repo) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io("remove", &repo)(e)),
        }
    }

    /// Removes the last-seen records of `engine/steps/` (and their files lists) whose cache
    /// key has no record in `keys` (hex) any more: their explanation would compare against
    /// a result that is gone. The caller holds the records lock, and a build writes a step's
    /// record only after saving or loading the key's cache record, so no live key loses its
    /// own.
    fn sweep_steps(&self, keys: &HashSet<&str>) -> Result<usize> {
        let dir = self.engine.join("steps");
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(Error::io("list", &dir)(e)),
        };
        let mut removed = 0;
        for entry in entries {
            let path = entry.map_err(Error::io("list", &dir))?.path();
            // A local source's files list (`<record>.files`) lives as long as its record.
            let list = path.extension().is_some_and(|e| e == "files");
            let record = match list {
                true => path.with_extension(""),
                false => path.clone(),
            };
            let key = std::fs::read(&record)
                .ok()
                .and_then(|bytes| serde_json::from_slice::<StepKey>(&bytes).ok())
                .map(|record| record.key);
            let live = key
                .as_deref()
                .is_some_and(|key| keys.contains(key.strip_prefix("sha256:").unwrap_or(key)));
            if live {
                continue;
            }
            match std::fs::remove_file(&path) {
                Ok(()) => removed += usize::from(!list),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("remove", &path)(e)),
            }
        }
        Ok(removed)
    }

    /// Bytes under the state dir that no record accounts for: committed snapshots no
    /// record or running build reaches (an image's layer chain a record no longer holds), active snapshots, and the content
    /// store's garbage (blobs nothing keeps, ingests of dead writers).
    fn unreferenced_usage(&self, records: &Records, uses: &LiveUses) -> Result<u64> {
        let reachable = self.closure(
            records
                .iter()
                .filter_map(|(_, r)| r.value.snapshot.clone())
                .chain(uses.snapshots.iter().cloned()),
        );
        let snapshots: u64 = self
            .snapshotter
            .committed()?
            .iter()
            .filter(|id| !reachable.contains(*id))
            .map(|id| self.snapshotter.usage(id).unwrap_or(0))
            .sum();
        let garbage = self.store.garbage_usage()?;
        Ok(snapshots + self.snapshotter.active_usage()? + garbage.blobs + garbage.ingests)
    }

    /// `roots` and every snapshot below them.
    fn closure(&self, roots: impl IntoIterator<Item = SnapshotId>) -> HashSet<SnapshotId> {
        let mut seen = HashSet::new();
        let mut stack: Vec<SnapshotId> = roots.into_iter().collect();
        while let Some(id) = stack.pop() {
            if seen.insert(id.clone()) {
                stack.extend(self.snapshotter.parents(&id).unwrap_or_default());
            }
        }
        seen
    }
}

fn row(
    key: &str,
    record: &CacheRecord,
    size: u64,
    uses: &LiveUses,
    named: &HashSet<Digest>,
    parents: Vec<String>,
) -> CacheUsage {
    let at = |ms: u64| UNIX_EPOCH + Duration::from_millis(ms);
    CacheUsage {
        id: key.to_owned(),
        kind: UsageKind::Regular,
        parents,
        created: at(record.created_ms),
        last_used: (record.last_used_ms != 0).then(|| at(record.last_used_ms)),
        usage_count: record.usage_count,
        size,
        in_use: uses.records.contains(key),
        shared: record
            .value
            .layers
            .last()
            .is_some_and(|l| named.contains(&l.descriptor.digest)),
    }
}

/// Bytes on disk under `dir` (blocks, each hardlinked inode once); what cannot be read
/// counts as nothing.
fn tree_usage(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut seen = HashSet::new();
    walkdir::WalkDir::new(dir)
        .follow_links(false)
        .into_iter()
        .filter_map(|entry| entry.ok()?.metadata().ok())
        .filter(|meta| meta.nlink() < 2 || meta.is_dir() || seen.insert((meta.dev(), meta.ino())))
        .map(|meta| meta.blocks() * 512)
        .sum()
}

/// Bytes available to unprivileged users on the file system of `path`.
fn free_space(path: &Path) -> Result<u64> {
    let stat =
        rustix::fs::statvfs(path).map_err(|e| Error::io("stat file system of", path)(e.into()))?;
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// Whether a build runs on the state dir (it holds `engine/builds.lock` shared).
fn build_running(engine: &Path) -> Result<bool> {
    let builds = builds_lock(engine)?;
    let idle = FileExt::try_lock_exclusive(&builds)
        .map_err(Error::io("lock", &engine.join("builds.lock")))?;
    Ok(!idle)
}

/// Opens (creating) a lock file and takes it exclusive.
fn lock_exclusive(path: &Path) -> Result<File> {
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(Error::io("open", path))?;
    FileExt::lock_exclusive(&file).map_err(Error::io("lock", path))?;
    Ok(file)
}

/// Every cache record of the state dir, most recently used first.
pub fn disk_usage(state: &StateDir) -> Result<Vec<CacheUsage>> {
    let cache = Cache::open(state)?;
    let (records, uses) = {
        let _records = cache.records.lock()?;
        let (records, _) = cache.read_records()?;
        (records, live_uses(&use_leases_dir(&cache.engine))?)
    };
    let mut rows = cache.rows(&records, &uses)?;
    let running = build_running(&cache.engine)?;
    rows.extend(cache.cache_mounts(running)?);
    rows.extend(cache.git_repos()?);
    rows.sort_by(|a, b| (b.last_used, b.created, &a.id).cmp(&(a.last_used, a.created, &b.id)));
    let unreferenced = cache.unreferenced_usage(&records, &uses)?;
    if unreferenced > 0 {
        rows.push(CacheUsage {
            id: "unreferenced".to_owned(),
            kind: UsageKind::Unreferenced,
            parents: Vec::new(),
            created: SystemTime::now(),
            last_used: None,
            usage_count: 0,
            size: unreferenced,
            in_use: running,
            shared: false,
        });
    }
    Ok(rows)
}

/// Bytes the build history (`engine/history/`) holds: not cache, bounded by its own
/// limits (see [`crate::HistoryLimits`]), so `du` shows it apart and prune leaves it.
pub fn history_usage(state: &StateDir) -> u64 {
    tree_usage(&state.engine_dir().join("history"))
}

/// Removes cache records as `options` say, with the snapshots and blobs only they kept.
/// Safe next to running builds on the same state dir (see the module docs).
pub fn prune(state: &StateDir, options: &PruneOptions) -> Result<PruneReport> {
    prune_policies(state, std::slice::from_ref(options), Sweep::Always)
}

/// Whether [`prune_policies`] sweeps unreferenced snapshots, blobs and step records when
/// no policy chose anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sweep {
    /// Always (`hoist prune`).
    Always,
    /// Only when something was removed: a gc after a build with nothing to do stays cheap.
    WhenRemoving,
}

/// Applies `policies` in order, as BuildKit's gc does: each chooses among what the ones
/// before it left, then everything chosen goes in one pass.
pub(crate) fn prune_policies(
    state: &StateDir,
    policies: &[PruneOptions],
    sweep: Sweep,
) -> Result<PruneReport> {
    let cache = Cache::open(state)?;
    let _layers = lock_exclusive(&cache.engine.join("layers.lock"))?;
    let _records = cache.records.lock()?;
    let builds = builds_lock(&cache.engine)?;
    let idle = FileExt::try_lock_exclusive(&builds)
        .map_err(Error::io("lock", &cache.engine.join("builds.lock")))?;
    let uses = live_uses(&use_leases_dir(&cache.engine))?;
    let (records, unreadable) = cache.read_records()?;
    let mut rows = cache.rows(&records, &uses)?;
    rows.extend(cache.cache_mounts(!idle)?);
    rows.extend(cache.git_repos()?);

    let free = free_space(state.root())?;
    let now = now_ms();
    let mut chosen = Vec::new();
    for options in policies {
        let picked = choose(&rows, options, now, free);
        rows.retain(|row| !picked.iter().any(|p| p.id == row.id && p.kind == row.kind));
        chosen.extend(picked);
    }
    let mut report = PruneReport {
        build_running: !idle,
        ..PruneReport::default()
    };
    if sweep == Sweep::WhenRemoving && chosen.is_empty() && unreadable.is_empty() {
        return Ok(report);
    }
    let mut mounts = Vec::new();
    let mut repos = Vec::new();
    let mut chosen_records = Vec::new();
    for row in &chosen {
        match row.kind {
            UsageKind::CacheMount => mounts.push(row),
            UsageKind::GitRepo => repos.push(row),
            UsageKind::Regular | UsageKind::Unreferenced => chosen_records.push(row),
        }
    }
    for repo in repos {
        if cache.remove_git_repo(&repo.id)? {
            report.reclaimed += repo.size;
        }
    }
    for mount in mounts {
        // Only chosen when no build runs, so no RUN has it mounted.
        let dir = cache.engine.join("cache-mounts").join(&mount.id);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => report.reclaimed += mount.size,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("remove", &dir)(e)),
        }
        let _ = std::fs::remove_file(dir.with_extension("lock"));
    }
    for key in chosen_records.iter().map(|r| &r.id).chain(&unreadable) {
        let path = cache.records.path(key);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("remove", &path)(e)),
        }
        cache.store.remove_named_lease(&lease_name(key))?;
    }
    let removed_keys: HashSet<&str> = chosen_records.iter().map(|r| r.id.as_str()).collect();
    let (gone, kept): (Vec<_>, Vec<_>) = records
        .iter()
        .partition(|(key, _)| removed_keys.contains(key.as_str()));
    let live_keys: HashSet<&str> = kept.iter().map(|(key, _)| key.as_str()).collect();
    report.removed_steps = cache.sweep_steps(&live_keys)?;

    // What must stay: remaining records and what running builds use, with their parents.
    let reachable = cache.closure(
        kept.iter()
            .filter_map(|(_, r)| r.value.snapshot.clone())
            .chain(uses.snapshots.iter().cloned()),
    );
    let mut candidates: HashSet<SnapshotId> =
        cache.closure(gone.iter().filter_map(|(_, r)| r.value.snapshot.clone()));
    for (path, id) in cache.layer_chains()? {
        if id.as_ref().is_some_and(|id| reachable.contains(id)) {
            continue;
        }
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("remove", &path)(e)),
        }
        candidates.extend(id);
    }
    // Prepared snapshots and views no live process holds are leftovers of killed builds
    // (running builds hold theirs); they go before the committed snapshots they are made on,
    // and after the containers killed builds left running on them.
    let containers = crate::runtime::remove_orphan_containers(None, state.root());
    report.failed.extend(containers.failed);
    let orphans = cache.snapshotter.remove_orphans()?;
    crate::context::remove_orphans(&cache.engine)?;
    report.removed_active = orphans.removed.len();
    report.failed.extend(orphans.failed);
    if idle {
        candidates.extend(cache.snapshotter.committed()?);
    }
    let mut doomed: Vec<SnapshotId> = candidates
        .into_iter()
        .filter(|id| !reachable.contains(id))
        .collect();
    // A child is always committed after its parent, so it has the higher number: removing
    // in descending order removes children first.
    doomed.sort_by_key(|id| std::cmp::Reverse(id.as_str().parse::<u64>().unwrap_or(0)));
    for id in doomed {
        let size = cache.snapshotter.usage(&id).unwrap_or(0);
        match cache.snapshotter.remove_committed(&id) {
            Ok(()) => {
                report.reclaimed += size;
                report.removed_snapshots += 1;
            }
            Err(hoist_snapshot::Error::NotFound { .. }) => {}
            Err(e) => report.failed.push((id.to_string(), e.to_string())),
        }
    }

    let gc = cache.store.gc_with(&GcOptions {
        min_blob_age: if idle {
            Duration::ZERO
        } else {
            RUNNING_BUILD_BLOB_GRACE
        },
        ..GcOptions::default()
    })?;
    report.reclaimed += gc.bytes + gc.ingest_bytes;
    report.removed_blobs = gc.removed.len();
    report.removed = chosen;
    Ok(report)
}

/// The records to remove: those `options` select, least recently used first.
fn choose(
    rows: &[CacheUsage],
    options: &PruneOptions,
    now_ms: u64,
    free_space: u64,
) -> Vec<CacheUsage> {
    let last_used_ms = |row: &CacheUsage| {
        row.last_used
            .unwrap_or(row.created)
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    };
    let spare_ms = options.spare_used_since.map(|at| {
        at.duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    });
    // What the policy is about: its kinds, ids and age. Its space limits count these.
    let matching: Vec<&CacheUsage> = rows
        .iter()
        .filter(|row| row.kind != UsageKind::Unreferenced)
        .filter(|row| {
            options
                .kinds
                .as_ref()
                .is_none_or(|kinds| kinds.contains(&row.kind))
        })
        .filter(|row| options.ids.is_empty() || options.ids.iter().any(|id| row.id.starts_with(id)))
        .filter(|row| {
            options.keep_duration.is_none_or(|keep| {
                let keep_ms = u64::try_from(keep.as_millis()).unwrap_or(u64::MAX);
                now_ms.saturating_sub(last_used_ms(row)) > keep_ms
            })
        })
        .collect();
    let mut candidates: Vec<&CacheUsage> = matching
        .iter()
        .copied()
        .filter(|row| !row.in_use)
        .filter(|row| options.all || !row.shared)
        // A git repository is kept for the next fetch unless it is old or all goes.
        .filter(|row| {
            row.kind != UsageKind::GitRepo || options.all || options.keep_duration.is_some()
        })
        .filter(|row| spare_ms.is_none_or(|spare| last_used_ms(row) < spare))
        .collect();
    candidates.sort_by_key(|row| (last_used_ms(row), row.id.clone()));
    let mut total: u64 = matching.iter().map(|r| r.size).sum();
    let Some(cap) = space_cap(options, total, free_space) else {
        return candidates.into_iter().cloned().collect();
    };
    let mut chosen = Vec::new();
    for row in candidates {
        if cap.is_some_and(|cap| total <= cap)
            || total.saturating_sub(row.size) < options.reserved_space
        {
            break;
        }
        total -= row.size;
        chosen.push(row.clone());
    }
    chosen
}

/// How big the cache may stay, as BuildKit computes it: `None` when no space option is
/// given (remove every candidate); `Some(None)` when only `reserved_space` is (remove down
/// to it); else the lower of `max_used_space` and what leaves `min_free_space` free.
fn space_cap(options: &PruneOptions, total: u64, free_space: u64) -> Option<Option<u64>> {
    if options.max_used_space == 0 && options.min_free_space == 0 {
        return (options.reserved_space > 0).then_some(None);
    }
    let mut cap = u64::MAX;
    if options.max_used_space > 0 {
        cap = options.max_used_space;
    }
    if options.min_free_space > 0 {
        let excess = options.min_free_space.saturating_sub(free_space);
        cap = cap.min(total.saturating_sub(excess));
    }
    Some(Some(cap))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(id: &str, last_used_s: u64, size: u64) -> CacheUsage {
        CacheUsage {
            id: id.to_owned(),
            kind: UsageKind::Regular,
            parents: Vec::new(),
            created: UNIX_EPOCH,
            last_used: Some(UNIX_EPOCH + Duration::from_secs(last_used_s)),
            usage_count: 1,
            size,
            in_use: false,
            shared: false,
        }
    }

    /// `choose` at second 100 000, with 1 GB free.
    fn choose_now(rows: &[CacheUsage], options: &PruneOptions, now_ms: u64) -> Vec<CacheUsage> {
        choose(rows, options, now_ms, 1_000_000_000)
    }

    fn ids(rows: &[CacheUsage]) -> Vec<&str> {
        rows.iter().map(|r| r.id.as_str()).collect()
    }

    #[test]
    fn everything_unused_goes_without_limits() {
        let mut rows = vec![usage("b", 20, 5), usage("a", 10, 5), usage("c", 30, 5)];
        rows[2].in_use = true;
        rows[1].shared = true;
        let plain = choose_now(&rows, &PruneOptions::default(), 100_000);
        assert_eq!(ids(&plain), ["b"]);
        let all = PruneOptions {
            all: true,
            ..PruneOptions::default()
        };
        assert_eq!(ids(&choose_now(&rows, &all, 100_000)), ["a", "b"]);
    }

    #[test]
    fn space_limits_remove_least_recently_used_first() {
        let rows = vec![
            usage("new", 30, 100),
            usage("old", 10, 100),
            usage("mid", 20, 100),
        ];
        // 300 bytes: down to at most 150 takes "old" (200 left) and "mid" (100 left).
        let max = PruneOptions {
            max_used_space: 150,
            ..PruneOptions::default()
        };
        assert_eq!(ids(&choose_now(&rows, &max, 100_000)), ["old", "mid"]);
        // Never below 150: "mid" would leave 100.
        let reserved = PruneOptions {
            reserved_space: 150,
            ..PruneOptions::default()
        };
        assert_eq!(ids(&choose_now(&rows, &reserved, 100_000)), ["old"]);
        let both = PruneOptions {
            max_used_space: 250,
            reserved_space: 50,
            ..PruneOptions::default()
        };
        assert_eq!(ids(&choose_now(&rows, &both, 100_000)), ["old"]);
    }

    #[test]
    fn min_free_space_removes_what_is_missing() {
        let rows = vec![
            usage("new", 30, 100),
            usage("old", 10, 100),
            usage("mid", 20, 100),
        ];
        // 120 bytes short of the wanted free space: two records must go.
        let free = PruneOptions {
            min_free_space: 1_000,
            ..PruneOptions::default()
        };
        assert_eq!(ids(&choose(&rows, &free, 100_000, 880)), ["old", "mid"]);
        // Already free enough: nothing goes.
        assert!(choose(&rows, &free, 100_000, 5_000).is_empty());
    }

    #[test]
    fn until_keeps_recently_used_records() {
        let rows = vec![usage("recent", 90, 1), usage("stale", 10, 1)];
        let until = PruneOptions {
            keep_duration: Some(Duration::from_secs(30)),
            ..PruneOptions::default()
        };
        assert_eq!(ids(&choose_now(&rows, &until, 100_000)), ["stale"]);
    }

    #[test]
    fn id_filter_matches_prefixes() {
        let rows = vec![usage("abc1", 1, 1), usage("abd2", 1, 1)];
        let by_id = PruneOptions {
            ids: vec!["abc".to_owned()],
            ..PruneOptions::default()
        };
        assert_eq!(ids(&choose_now(&rows, &by_id, 100_000)), ["abc1"]);
    }
}
