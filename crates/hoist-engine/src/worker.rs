//! [`Worker`]: the state a build runs against — state dir, content store, snapshotter,
//! RUN executor and registry client — and [`Ref`], what every op produces.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use hoist_content::{ContentStore, StateDir};
use hoist_oci::{Descriptor, Digest};
use hoist_registry::RegistryClient;
use hoist_sandbox::{AnyExecutor, BuiltinExecutor};
use hoist_snapshot::{AnySnapshotter, LayerOptions, LayerWriter, SnapshotId, Snapshotter};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One layer of a result: a blob in the content store and its uncompressed digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRef {
    pub descriptor: Descriptor,
    pub diff_id: Digest,
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
/// (base first) that rebuild it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ref {
    pub snapshot: SnapshotId,
    pub layers: Vec<LayerRef>,
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
    counter: AtomicU64,
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
        let store = state.open_content_store()?;
        let snapshots = state.root().join("snapshots");
        std::fs::create_dir_all(&snapshots).map_err(Error::io("create", &snapshots))?;
        let snapshotter = AnySnapshotter::probe(&snapshots)?;
        let engine = state.root().join("engine");
        std::fs::create_dir_all(&engine).map_err(Error::io("create", &engine))?;
        Ok(Worker {
            state,
            store,
            snapshotter,
            executor,
            registry,
            counter: AtomicU64::new(0),
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

    /// `<state>/engine`: the engine's own files (cache records, layer chains, cache mounts).
    pub fn engine_dir(&self) -> PathBuf {
        self.state.root().join("engine")
    }

    /// A snapshot key no other prepare of this or another process uses.
    pub(crate) fn unique_key(&self, kind: &str) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        format!("{kind}-{}-{nanos}-{n}", std::process::id())
    }

    /// Writes what the committed snapshot `id` changed over its parents as a gzip layer
    /// blob into the content store. A change of nothing is still a layer (the empty tar), as
    /// in BuildKit, so layers and history entries stay one for one.
    pub(crate) fn commit_layer(&self, id: &SnapshotId) -> Result<LayerRef> {
        let ingest = self.store.ingest_dir();
        std::fs::create_dir_all(ingest).map_err(Error::io("create", ingest))?;
        let tmp = tempfile::NamedTempFile::new_in(ingest)
            .map_err(Error::io("create a file in", ingest))?;
        let mut writer = LayerWriter::new(tmp.as_file(), LayerOptions::default())?;
        self.snapshotter.diff(id, &mut writer)?;
        let (_, layer) = writer.finish()?;
        let file = std::fs::File::open(tmp.path()).map_err(Error::io("open", tmp.path()))?;
        self.store.write_blob(&layer.descriptor, file)?;
        Ok(LayerRef {
            descriptor: layer.descriptor,
            diff_id: layer.diff_id,
        })
    }

    /// Whether the record's snapshot and blobs are all still there.
    pub(crate) fn ref_is_complete(&self, r: &Ref) -> bool {
        self.snapshotter.parents(&r.snapshot).is_ok()
            && r.layers
                .iter()
                .all(|l| self.store.has(&l.descriptor.digest))
    }
}

/// Creates `path` as a directory with its parents, naming it on failure.
pub(crate) fn create_dir_all(path: &Path) -> Result<()> {
    std::fs::create_dir_all(path).map_err(Error::io("create", path))
}
