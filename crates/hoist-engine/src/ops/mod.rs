//! [`EngineOp`]: the solver's [`hoist_solver::Op`] over one [`hoist_graph::Vertex`], run
//! against a [`Worker`]. One module per kind of op:
//!
//! - [`image`]: an image resolved while planning, as a lazy result: its layers are fetched
//!   and unpacked once into a snapshot chain only when a step needs the filesystem;
//! - [`http`]: download one file (`ADD <url>`), keyed by its content digest;
//! - [`git`]: check out one commit of a repository (`ADD <git url>`), keyed by the commit
//!   its ref resolves to;
//! - [`local`]: copy the selected files of a local context into a snapshot, keyed by their
//!   content;
//! - [`exec`]: run a process in the sandbox on a snapshot of its input and commit the change;
//! - [`file`]: copy, mkdir, mkfile and rm on a snapshot; [`copy`] has the copy action and
//!   what it selects from its source;
//! - [`last_seen`]: a record of what each step was last made of, to say why one missed the
//!   cache.

//!
//! Every op that changes a filesystem commits its snapshot and writes the change as one
//! uncompressed layer into the content store (exports compress it): its result's layers are its input's plus that one.

mod checksum;
mod copy;
mod exec;
mod file;
mod git;
mod http;
mod image;
mod last_seen;
mod local;
pub(crate) mod scoped_path;

pub(crate) use exec::{cache_mount_name, cache_mounts_root};
pub(crate) use image::{fetch_missing, materialize, unpack};
mod stat_cache;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use hoist_graph::{FileBase, Op, Source};
use hoist_snapshot::{SnapshotId, Snapshotter};
use hoist_solver::{CacheMap, Digest, ExecContext, KeyFacts};

use crate::error::{Error, Result};
use crate::run_options::RunOptions;
use crate::secrets::SecretStore;
use crate::ssh::SshStore;
use crate::worker::{Ref, Worker};

pub(crate) use http::{download_error, request as http_request};
pub(crate) use image::{pull_verified, read_config};
pub(crate) use last_seen::MissContext;

/// Local directories a build may read, by context name (`context` for the main one).
pub type LocalContexts = BTreeMap<String, LocalContext>;

/// From how many files a copy shares them out between threads ([`in_runs`]).
pub(crate) const PARALLEL_FILES: usize = 512;

/// `work` over `items` cut in runs of neighbours, one per thread, on up to four threads
/// when there are at least `from` items (else on this thread): creating files is mostly
/// the kernel's work, which runs on as many cores as ask for it, and neighbours are mostly
/// in the same directory, apart from the other threads'. Every run is done; the first
/// run's error is the one returned.
pub(crate) fn in_runs<T: Sync, R: Send>(
    items: &[T],
    from: usize,
    work: impl Fn(&[T]) -> Result<R> + Sync,
) -> Result<Vec<R>> {
    let threads = match items.len() >= from {
        true => std::thread::available_parallelism().map_or(1, |n| n.get().min(4)),
        false => 1,
    };
    if threads <= 1 {
        return Ok(vec![work(items)?]);
    }
    let work = &work;
    std::thread::scope(|scope| {
        let runs: Vec<_> = items
            .chunks(items.len().div_ceil(threads))
            .map(|run| scope.spawn(move || work(run)))
            .collect();
        let done: Vec<Result<R>> = runs
            .into_iter()
            .map(|run| {
                run.join()
                    .map_err(|_| Error::Task("a thread copying files panicked".to_owned()))
                    .and_then(|result| result)
            })
            .collect();
        done.into_iter().collect()
    })
}

/// One context directory of a build.
#[derive(Debug, Clone)]
pub struct LocalContext {
    pub dir: PathBuf,
    /// Nothing writes into its files while the build runs or after (a directory the engine
    /// made for a remote or piped context, or an [`crate::ContextSource::Owned`] one): the
    /// context's snapshot may hard-link them rather than copy them.
    pub linkable: bool,
    /// What the directory holds, as its owner listed it (an [`crate::ContextSource::Owned`]
    /// one): read instead of walking the directory. One still arriving is waited for
    /// before the directory is read ([`local`]'s ops wait).
    pub listing: Option<crate::ContextListing>,
}

/// What exec ops take from the build besides their vertex.
#[derive(Debug, Clone, Default)]
pub(crate) struct RunInputs {
    pub ssh: SshStore,
    pub options: RunOptions,
    /// What miss explanations share (see [`last_seen`]).
    pub misses: Arc<MissContext>,
}

/// One graph vertex as a solver op.
#[derive(Debug, Clone)]
pub struct EngineOp {
    vertex: hoist_graph::Vertex,
    worker: Arc<Worker>,
    contexts: Arc<LocalContexts>,
    /// The build's secrets, for exec ops' secret mounts.
    secrets: Arc<SecretStore>,
    /// The build's SSH agents and RUN settings, for exec ops.
    run: Arc<RunInputs>,
    /// What an http source's cache key was computed from, for its run.
    http: http::Slot,
    /// The commit a git source's ref resolved to for its cache key, for its run.
    git: git::Slot,
    /// The files a local source's checksum selected, for its run.
    local: local::Slot,
    /// What the build's miss explanations share (see [`last_seen`]).
    changes: Arc<MissContext>,
}

impl EngineOp {
    pub fn new(
        vertex: hoist_graph::Vertex,
        worker: Arc<Worker>,
        contexts: Arc<LocalContexts>,
    ) -> EngineOp {
        EngineOp {
            vertex,
            worker,
            contexts,
            secrets: Arc::default(),
            run: Arc::default(),
            http: http::Slot::default(),
            git: git::Slot::default(),
            local: local::Slot::default(),
            changes: Arc::default(),
        }
    }

    /// What the build's miss explanations share, the same for all its ops.
    pub(crate) fn with_miss_context(mut self, changes: Arc<MissContext>) -> EngineOp {
        self.changes = changes;
        self
    }

    /// The secrets its exec's `type=secret` mounts read (none by default).
    pub fn with_secrets(mut self, secrets: Arc<SecretStore>) -> EngineOp {
        self.secrets = secrets;
        self
    }

    /// The SSH agents and RUN settings its exec uses (none by default).
    pub(crate) fn with_run_inputs(mut self, run: Arc<RunInputs>) -> EngineOp {
        self.run = run;
        self
    }

    fn definition_digest(&self) -> Digest {
        Digest::of(&self.vertex.definition_bytes)
    }

    /// Runs blocking filesystem work on a blocking thread.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(EngineOp) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || work(this))
            .await
            .map_err(|e| Error::Task(e.to_string()))?
    }
}

impl EngineOp {
    /// A file op is keyed by the content its copies read from their source inputs (not the
    /// base it writes on), so `COPY a.txt` stays cached when only `b.txt` of the context
    /// changed.
    fn file_cache_map(&self, file: &hoist_graph::FileOp) -> CacheMap<Ref> {
        let mut selections: BTreeMap<usize, checksum::Selection> = BTreeMap::new();
        for action in &file.actions {
            if let hoist_graph::FileAction::Copy(copy) = action {
                if file.base == FileBase::Input(copy.src) {
                    continue;
                }
                selections
                    .entry(copy.src)
                    .or_insert_with(|| checksum::Selection { copies: Vec::new() })
                    .copies
                    .push(copy.clone());
            }
        }
        let mut map = CacheMap::new(self.definition_digest());
        for (input, selection) in selections {
            let worker = Arc::clone(&self.worker);
            map = map.content(input, move |value: Arc<Ref>| {
                let worker = Arc::clone(&worker);
                let selection = selection.clone();
                async move {
                    // Selecting files needs them: a lazy source is fetched now.
                    let value = materialize(&worker, &value).await?;
                    tokio::task::spawn_blocking(move || {
                        checksum::of_selection(&worker, &value, &selection)
                    })
                    .await
                    .map_err(|e| Error::Task(e.to_string()))?
                }
            });
        }
        map
    }
}

impl hoist_solver::Op for EngineOp {
    type Output = Ref;
    type Error = Error;

    fn definition(&self) -> Vec<u8> {
        self.vertex.definition_bytes.clone()
    }

    async fn cache_map(&self) -> Result<CacheMap<Ref>> {
        match &self.vertex.op {
            Op::Source(Source::Local { .. }) => {
                let digest = self.definition_digest();
                local::arrived(self).await?;
                let content = self.blocking(|op| local::checksum(&op)).await?;
                let mut bytes = digest.hex().into_bytes();
                bytes.extend_from_slice(content.hex().as_bytes());
                Ok(CacheMap::new(Digest::of(&bytes)))
            }
            Op::Source(Source::Http { .. }) => Ok(CacheMap::new(http::cache_key(self).await?)),
            Op::Source(Source::Git { .. }) => Ok(CacheMap::new(git::cache_key(self).await?)),
            Op::File(file) => Ok(self.file_cache_map(file)),
            _ => Ok(CacheMap::new(self.definition_digest())),
        }
    }

    fn explain_miss(&self, facts: &KeyFacts) -> Option<String> {
        Some(last_seen::explain_miss(self, facts))
    }

    fn key_used(&self, facts: &KeyFacts) {
        last_seen::key_used(self, facts);
    }

    async fn exec(&self, ctx: &ExecContext, inputs: &[Arc<Ref>]) -> Result<Ref> {
        let mut inputs: Vec<Ref> = inputs.iter().map(|r| (**r).clone()).collect();
        // RUN and file ops read or write their inputs' filesystems: lazy ones (a base
        // image not fetched yet) are fetched and unpacked now. A merge stays lazy.
        if matches!(self.vertex.op, Op::Exec(_) | Op::File(_)) {
            for input in &mut inputs {
                if input.snapshot.is_none() {
                    *input = materialize(&self.worker, input).await?;
                }
            }
        }
        match &self.vertex.op {
            Op::Source(Source::Image { .. }) => image::exec(self).await,
            Op::Source(Source::Local { .. }) => {
                local::arrived(self).await?;
                self.blocking(|op| local::exec(&op)).await
            }
            Op::Source(Source::Http { .. }) => http::exec(self).await,
            Op::Source(Source::Git { .. }) => git::exec(self).await,
            Op::Exec(_) => exec::exec(self, ctx, inputs).await,
            Op::File(file) => {
                let base = match file.base {
                    FileBase::Input(i) => Some(input(&inputs, i)?.clone()),
                    FileBase::Scratch => None,
                };
                self.blocking(move |op| file::exec(&op, base, &inputs))
                    .await
            }
            Op::Merge => self.blocking(move |op| merge(&op, &inputs)).await,
        }
    }
}

/// Input `index`, or an error naming it.
fn input(inputs: &[Ref], index: usize) -> Result<&Ref> {
    inputs
        .get(index)
        .ok_or_else(|| Error::InvalidGraph(format!("input {index} is missing")))
}

/// Stacks the inputs' snapshots (later ones on top); the layers are all of theirs. When an
/// input is lazy (`COPY --link` on a base image not fetched), so is the result: its layers
/// are the inputs' layers in order, unpacked only if a later step needs the filesystem.
fn merge(op: &EngineOp, inputs: &[Ref]) -> Result<Ref> {
    let layers = inputs.iter().flat_map(|r| r.layers.clone()).collect();
    let Some(parents) = inputs
        .iter()
        .map(|r| r.snapshot.clone())
        .collect::<Option<Vec<SnapshotId>>>()
    else {
        return Ok(Ref {
            snapshot: None,
            layers,
        });
    };
    let snapshotter = op.worker.snapshotter();
    let key = op.worker.unique_key("merge");
    snapshotter.prepare(&key, &parents)?;
    let snapshot = snapshotter.commit(&key)?;
    Ok(Ref {
        snapshot: Some(snapshot),
        layers,
    })
}

/// Commits the prepared snapshot `key` and adds its change as a layer on `base`'s layers.
/// When that fails (no space for the layer, say) the snapshot goes at once: no record will
/// name it, so it would take disk space nothing accounts for until a prune.
fn commit(op: &EngineOp, key: &str, base: Option<&Ref>) -> Result<Ref> {
    let snapshotter = op.worker.snapshotter();
    let snapshot = match snapshotter.commit(key) {
        Ok(snapshot) => snapshot,
        Err(e) => {
            let _ = snapshotter.remove(key);
            return Err(e.into());
        }
    };
    let layer = match op.worker.commit_layer(&snapshot) {
        Ok(layer) => layer,
        Err(e) => {
            let _ = snapshotter.remove_committed(&snapshot);
            return Err(e);
        }
    };
    let mut layers = base.map(|b| b.layers.clone()).unwrap_or_default();
    layers.push(layer);
    Ok(Ref {
        snapshot: Some(snapshot),
        layers,
    })
}
