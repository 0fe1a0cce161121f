//! [`Worker`]: the state a build runs against — state dir, content store, snapshotter,
//! RUN executor and registry client — and [`Ref`], what every op produces.
//!
//! A worker is one build's hold on the state dir, for as long as it lives: a shared `flock`
//! of `<state>/engine/builds.lock` (prune removes unreferenced snapshots only when it can
//! take it exclusive, i.e. no build runs), a content [`Lease`] on every blob the build
//! writes or uses, and a use lease naming the cache records and snapshots it uses.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use fs4::fs_std::FileExt;
use hoist_content::{ContentStore, Lease};
use hoist_oci::{Descriptor, Digest, MediaType};
use hoist_registry::RegistryClient;
use hoist_sandbox::{AnyExecutor, BuiltinExecutor};
use hoist_snapshot::{AnySnapshotter, SnapshotId, Snapshotter};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::state_dir::StateDir;
use crate::use_lease::UseLease;

/// One layer of a result: a blob in the content store (or, for a base image's layer not
/// fetched yet, in the repository `source` names) and its uncompressed digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRef {
    pub descriptor: Descriptor,
    pub diff_id: Digest,
    /// Where a base image's layer can be fetched (or mounted from, on the same registry)
    /// while the content store does not have it; `None` for layers the build made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<LayerSource>,
}

/// The repository a base image's layer comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerSource {
    pub registry: String,
    pub repository: String,
}

impl LayerSource {
    pub fn repository(&self) -> hoist_registry::Repository {
        hoist_registry::Repository::new(&self.registry, &self.repository)
    }
}

impl From<&hoist_registry::Repository> for LayerSource {
    fn from(repo: &hoist_registry::Repository) -> Self {
        LayerSource {
            registry: repo.registry.clone(),
            repository: repo.path.clone(),
        }
    }
}

impl From<LayerRef> for hoist_export::ExportLayer {
    fn from(layer: LayerRef) -> Self {
        hoist_export::ExportLayer {
            descriptor: layer.descriptor,
            diff_id: layer.diff_id,
        }
    }
}

/// What an op produces: a committed snapshot holding the whole filesystem, and the layers
/// (base first) that rebuild it. A lazy result (a base image, or a `COPY --link` on one)
/// has no snapshot yet: its layers, some of them maybe still only in a registry, are
/// fetched and unpacked when a step needs the filesystem (`ops::materialize`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ref {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<SnapshotId>,
    pub layers: Vec<LayerRef>,
}

impl Ref {
    /// The snapshot of a result that has one (every input an op reads was materialized).
    pub fn snapshot(&self) -> Result<&SnapshotId> {
        self.snapshot
            .as_ref()
            .ok_or_else(|| Error::InvalidGraph("a lazy result was used unmaterialized".into()))
    }

    /// The digests of its layer blobs, base first, each once.
    pub fn blob_digests(&self) -> Vec<Digest> {
        let mut seen = HashSet::new();
        self.layers
            .iter()
            .map(|l| l.descriptor.digest.clone())
            .filter(|d| seen.insert(d.clone()))
            .collect()
    }
}

/// Content digests (sha256) of a snapshot's regular files, by path relative to its root.
pub(crate) type FileDigests = HashMap<String, [u8; 32]>;

/// What this build holds through records it loaded or saved.
#[derive(Debug, Default)]
struct Held {
    /// The snapshots of those records.
    record_snapshots: HashSet<SnapshotId>,
    /// Their layer blobs.
    layers: HashSet<Digest>,
}

/// The build's shared state. Cheap to share behind an `Arc`; all methods are blocking
/// filesystem code unless async.
#[derive(Debug)]
pub struct Worker {
    state: StateDir,
    store: ContentStore,
    snapshotter: AnySnapshotter,
    executor: AnyExecutor,
    registry: RegistryClient,
    /// The HTTP clients of `ADD <url>` downloads, by host, each set up on first use.
    http_clients: Mutex<HashMap<String, reqwest::Client>>,
    counter: AtomicU64,
    /// Blobs this build writes or uses, kept from content GC until the build ends.
    blobs: Lease,
    /// Records and snapshots this build uses, kept from prune until the build ends.
    uses: UseLease,
    held: Mutex<Held>,
    /// The index, manifest and config of each image whose layer chain an image source
    /// handed out, by its result's layers: its record keeps them too.
    image_documents: Mutex<HashMap<Vec<Digest>, Vec<Digest>>>,
    /// The content digests of the files a local source copied into its snapshot, hashed
    /// as they were copied (path relative to the root → sha256), so that the first
    /// checksum of a copy's selection over it does not read them again.
    file_digests: Mutex<HashMap<SnapshotId, Arc<FileDigests>>>,
    /// The shared lock on `engine/builds.lock`, held while the worker lives.
    _builds: File,
}

impl Worker {
    /// Opens (creating) the state dir's store and snapshotter (`<root>/snapshots`, overlay
    /// when the kernel allows), with the built-in RUN executor.
    pub fn open(state: StateDir, registry: RegistryClient) -> Result<Worker> {
        Worker::with_executor(
            state,
            registry,
            AnyExecutor::Builtin(BuiltinExecutor::new()),
        )
    }

    /// [`Worker::open`] with another RUN executor.
    pub fn with_executor(
        state: StateDir,
        registry: RegistryClient,
        executor: AnyExecutor,
    ) -> Result<Worker> {
        state.create()?;
        let (store, snapshotter, engine) = state.open()?;
        let builds = builds_lock(&engine)?;
        FileExt::lock_shared(&builds).map_err(Error::io("lock", &builds_lock_path(&engine)))?;
        // What killed builds left running or mounted goes now, not at the next prune: no
        // live process holds their containers' owner locks or their snapshots' leases.
        // Containers first, so that their root file systems are no longer in use. One that
        // cannot be removed is retried by prune.
        let _ = crate::runtime::remove_orphan_containers(Some(&executor), state.root());
        let _ = snapshotter.remove_orphans();
        let _ = crate::context::remove_orphans(&engine);
        let blobs = store.lease()?;
        let uses = UseLease::take(&use_leases_dir(&engine))?;
        Ok(Worker {
            state,
            store,
            snapshotter,
            executor,
            registry,
            http_clients: Mutex::new(HashMap::new()),
            counter: AtomicU64::new(0),
            blobs,
            uses,
            held: Mutex::new(Held::default()),
            image_documents: Mutex::new(HashMap::new()),
            file_digests: Mutex::new(HashMap::new()),
            _builds: builds,
        })
    }

    pub fn state(&self) -> &StateDir {
        &self.state
    }

    pub fn store(&self) -> &ContentStore {
        &self.store
    }

    pub fn snapshotter(&self) -> &AnySnapshotter {
        &self.snapshotter
    }

    pub fn executor(&self) -> &AnyExecutor {
        &self.executor
    }

    pub fn registry(&self) -> &RegistryClient {
        &self.registry
    }

    /// The HTTP client for `ADD <url>` downloads from `url`'s host, set up once per worker
    /// and host from the registry config ([`hoist_registry::RegistryConfig::http_client`]):
    /// its user agent and timeouts, and the host's CAs, `insecure` and client certificate
    /// when the config names that host; proxies come from the environment.
    pub(crate) fn http_client(&self, url: &reqwest::Url) -> Result<reqwest::Client> {
        let host = match (url.host_str(), url.port()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_owned(),
            (None, _) => String::new(),
        };
        let mut clients = self
            .http_clients
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(client) = clients.get(&host) {
            return Ok(client.clone());
        }
        let client = self.registry.config().http_client(&host)?;
        clients.insert(host, client.clone());
        Ok(client)
    }

    /// `<state>/engine`: the engine's own files (cache records, layer chains, cache mounts).
    pub fn engine_dir(&self) -> PathBuf {
        self.state.engine_dir()
    }

    /// A snapshot key no other prepare of this or another process uses.
    pub(crate) fn unique_key(&self, kind: &str) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        format!("{kind}-{}-{nanos}-{n}", std::process::id())
    }

    /// Writes what the committed snapshot `id` changed over its parents as an uncompressed layer
    /// blob into the content store. A change of nothing is still a layer (the empty tar), as
    /// in BuildKit, so layers and history entries stay one for one.
    ///
    /// The tar streams straight into a store writer: written to disk once, hashed once.
    /// Uncompressed, as Docker's image store keeps layers, so a step costs no gzip (exports
    /// compress each layer once and remember it: `ContentStore::variant`), and the blob's
    /// digest is the layer's diff id.
    pub(crate) fn commit_layer(&self, id: &SnapshotId) -> Result<LayerRef> {
        let mut blob = self.store.writer()?;
        self.snapshotter.diff(id, &mut blob)?;
        // Leased before it is visible: a concurrent prune's content GC must not take it
        // before the record naming it exists.
        self.blobs.add(&blob.digest())?;
        let stored = blob.commit(None)?;
        Ok(LayerRef {
            descriptor: stored.descriptor(MediaType::OciLayer),
            diff_id: stored.digest,
            source: None,
        })
    }

    /// Whether the record's snapshot, every snapshot below it, and its blobs are all still
    /// there (a layer with a source may be missing: it is fetched when needed).
    pub(crate) fn ref_is_complete(&self, r: &Ref) -> bool {
        let mut stack: Vec<SnapshotId> = r.snapshot.iter().cloned().collect();
        let mut seen = HashSet::new();
        while let Some(id) = stack.pop() {
            if !seen.insert(id.clone()) {
                continue;
            }
            match self.snapshotter.parents(&id) {
                Ok(parents) => stack.extend(parents),
                Err(_) => return false,
            }
        }
        r.layers
            .iter()
            .all(|l| l.source.is_some() || self.store.has(&l.descriptor.digest))
    }

    /// Marks the record `key_hex` (loaded or saved by this build) as in use until the build
    /// ends: the record itself, its snapshot and its blobs.
    pub(crate) fn hold_record(&self, key_hex: &str, r: &Ref) -> Result<()> {
        self.uses.record(key_hex)?;
        if let Some(snapshot) = &r.snapshot {
            self.uses.snapshot(snapshot)?;
        }
        for digest in r.blob_digests() {
            self.blobs.add(&digest)?;
        }
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        held.record_snapshots.extend(r.snapshot.clone());
        held.layers.extend(r.blob_digests());
        Ok(())
    }

    /// Keeps `digests` (blobs this build uses) from content GC until the build ends.
    pub(crate) fn lease_blobs(&self, digests: &[Digest]) -> Result<()> {
        for digest in digests {
            self.blobs.add(digest)?;
        }
        Ok(())
    }

    /// Marks a snapshot this build is about to use (an image's unpacked layer chain) as in
    /// use until the build ends. Call it under `engine/layers.lock`, where it was found.
    pub(crate) fn hold_snapshot(&self, id: &SnapshotId) -> Result<()> {
        self.uses.snapshot(id)
    }

    /// Notes the documents (index, manifest, config) of the image whose result is `image`,
    /// so the record saved for it keeps them from content GC as it keeps its layers;
    /// leases them for this build meanwhile.
    pub(crate) fn note_image_documents(&self, image: &Ref, digests: Vec<Digest>) -> Result<()> {
        for digest in &digests {
            self.blobs.add(digest)?;
        }
        let mut documents = self
            .image_documents
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        documents.insert(image.blob_digests(), digests);
        Ok(())
    }

    /// Remembers the content digests of the files of the committed snapshot `snapshot`
    /// (see [`Worker::file_digests`]), for this build.
    pub(crate) fn note_file_digests(&self, snapshot: &SnapshotId, digests: FileDigests) {
        let mut all = self.file_digests.lock().unwrap_or_else(|e| e.into_inner());
        all.insert(snapshot.clone(), Arc::new(digests));
    }

    /// The content digests of files of `snapshot` known without reading them: those a
    /// local source of this build hashed while copying them in.
    pub(crate) fn file_digests(&self, snapshot: &SnapshotId) -> Option<Arc<FileDigests>> {
        let all = self.file_digests.lock().unwrap_or_else(|e| e.into_inner());
        all.get(snapshot).cloned()
    }

    /// Every blob a record of `r` must keep: its layers, and for an image source the
    /// image's documents noted by [`Worker::note_image_documents`].
    pub(crate) fn record_blobs(&self, r: &Ref) -> Vec<Digest> {
        let mut digests = r.blob_digests();
        let documents = self
            .image_documents
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for digest in documents.get(&r.blob_digests()).into_iter().flatten() {
            if !digests.contains(digest) {
                digests.push(digest.clone());
            }
        }
        digests
    }

    /// The bytes a new result brought over the records this build already holds (its
    /// inputs): its snapshots down to the first that is an input's, and the blobs no input
    /// has. Best effort: what cannot be measured counts as nothing.
    pub(crate) fn new_usage(&self, r: &Ref) -> u64 {
        // Copied, so other steps can mark what they hold while this one walks the disk.
        let (held_snapshots, held_layers) = {
            let held = self.held.lock().unwrap_or_else(|e| e.into_inner());
            (held.record_snapshots.clone(), held.layers.clone())
        };
        let mut size = 0;
        let mut stack: Vec<SnapshotId> = r.snapshot.iter().cloned().collect();
        let mut seen = HashSet::new();
        while let Some(id) = stack.pop() {
            if held_snapshots.contains(&id) || !seen.insert(id.clone()) {
                continue;
            }
            size += self.snapshotter.usage(&id).unwrap_or(0);
            stack.extend(self.snapshotter.parents(&id).unwrap_or_default());
        }
        let mut blobs = HashSet::new();
        for layer in &r.layers {
            let digest = &layer.descriptor.digest;
            if !held_layers.contains(digest) && blobs.insert(digest) {
                // A layer still only in a registry takes no room here.
                let missing = if layer.source.is_some() {
                    0
                } else {
                    layer.descriptor.size
                };
                size += self.store.info(digest).unwrap_or(missing);
            }
        }
        size
    }
}

/// `<engine>/builds.lock`: every worker holds it shared; prune's sweep of unreferenced
/// snapshots takes it exclusive.
pub(crate) fn builds_lock_path(engine: &Path) -> PathBuf {
    engine.join("builds.lock")
}

/// Opens (creating) `<engine>/builds.lock`, unlocked.
pub(crate) fn builds_lock(engine: &Path) -> Result<File> {
    let path = builds_lock_path(engine);
    File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(Error::io("open", &path))
}

/// `<engine>/leases`: the use leases of running builds.
pub(crate) fn use_leases_dir(engine: &Path) -> PathBuf {
    engine.join("leases")
}

/// Creates `path` as a directory with its parents, naming it on failure.
pub(crate) fn create_dir_all(path: &Path) -> Result<()> {
    std::fs::create_dir_all(path).map_err(Error::io("create", path))
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use hoist_registry::{Credentials, RegistryConfig};

    use super::*;

    /// The bytes this thread has handed to `write(2)` and its kin so far (`wchar` of
    /// `/proc/thread-self/io`): exact, and blind to other test threads.
    fn thread_wchar() -> u64 {
        let io = std::fs::read_to_string("/proc/thread-self/io").unwrap();
        io.lines()
            .find_map(|line| line.strip_prefix("wchar: "))
            .and_then(|n| n.parse().ok())
            .unwrap()
    }

    #[test]
    fn commit_layer_writes_each_byte_once() {
        // Under the 8 MiB from which the content store writes a blob on a thread of its
        // own: this thread's write count is then all of the layer's writes.
        const SIZE: usize = 4 << 20;
        let tmp = tempfile::tempdir().unwrap();
        let registry = RegistryClient::new(RegistryConfig::default(), Credentials::default());
        let worker = Worker::open(StateDir::new(tmp.path().join("state")), registry).unwrap();
        let key = worker.unique_key("test");
        let mount = worker.snapshotter().prepare(&key, &[]).unwrap();
        let content: Vec<u8> = (0..SIZE).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(mount.path().join("big"), &content).unwrap();
        let id = worker.snapshotter().commit(&key).unwrap();

        let before = thread_wchar();
        let layer = worker.commit_layer(&id).unwrap();
        let written = thread_wchar() - before;

        // The tar holds the file and a few headers; a temp copy would write it twice.
        let blob_size = layer.descriptor.size;
        assert!(blob_size > SIZE as u64);
        assert!(
            written >= blob_size && written < blob_size + 64 * 1024,
            "committing a {blob_size}-byte layer wrote {written} bytes"
        );
        // Hashed once: the blob's digest is the diff id, and it is right.
        assert_eq!(layer.diff_id, layer.descriptor.digest);
        worker
            .store()
            .verify_blob(&layer.descriptor.digest)
            .unwrap();
        let mut tar = Vec::new();
        worker
            .store()
            .open_blob(&layer.descriptor.digest)
            .unwrap()
            .read_to_end(&mut tar)
            .unwrap();
        let mut archive = tar::Archive::new(&tar[..]);
        let mut entry = archive.entries().unwrap().next().unwrap().unwrap();
        assert_eq!(entry.path().unwrap().to_str(), Some("big"));
        let mut back = Vec::new();
        entry.read_to_end(&mut back).unwrap();
        assert!(back == content, "the layer holds the file's bytes");
    }
}
