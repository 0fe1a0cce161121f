//! [`build`]: a Dockerfile and its context to exported images, as five stages a daemon can
//! also call one by one:
//!
//! 0. [`prepare_contexts`]: every context a local directory (remote and piped ones
//!    downloaded or unpacked under the state dir), the Dockerfile settled → [`Prepared`],
//!    which holds those directories until it drops;
//! 1. [`load_definition`]: parse the Dockerfile, read the ignore files → [`Loaded`];
//! 2. [`resolve`]: the frontend session, every base image resolved (config only, all at
//!    once) → a [`hoist_frontend::Definition`], one graph and config per platform;
//! 3. [`solve`]: every platform's graph solved together → [`Solved`];
//! 4. [`export`]: the images finished and written to the outputs → [`BuildResult`].

use std::collections::BTreeMap;
use std::sync::Arc;

use hoist_export::{ExportResult, Output, PlatformImage};
use hoist_frontend::BuildOptions;
use hoist_oci::Platform;
use hoist_solver::Event;
use tokio::sync::mpsc::UnboundedSender;

use crate::context::ContextSource;
use crate::error::Result;
use crate::history::HistoryStore;
use crate::late_inputs::LateInputs;
use crate::remote_cache::{CacheOptions, LayeredCacheStore};
use crate::run_options::RunOptions;
use crate::secrets::Secrets;
use crate::ssh::SshAgents;
use crate::steps::Progress;
use crate::worker::Worker;

pub use crate::context::{prepare_contexts, Prepared};
pub use crate::definition::{load_definition, Loaded};
pub use crate::export::export;
pub use crate::resolve::resolve;
pub use crate::solve::{solve, Solved};

/// Everything one build needs, typed.
#[derive(Debug, Clone)]
pub struct BuildRequest {
    /// The Dockerfile's bytes as the client read them (a file, stdin); `None` reads
    /// `dockerfile_name` from the main context once it is prepared (a remote context's own
    /// Dockerfile, as BuildKit reads it).
    pub dockerfile: Option<Vec<u8>>,
    /// Its path as the user named it (`-` for stdin), for error excerpts and for finding
    /// `<Dockerfile>.dockerignore`; with no `dockerfile`, its path inside the main context
    /// (`Dockerfile` when the user named none).
    pub dockerfile_name: String,
    /// The main build context.
    pub context: ContextSource,
    /// Frontend options (build args, target, labels, no-cache, ...). `context_excludes` is
    /// filled from the context's `.dockerignore` when empty; `target_platform` and
    /// `multi_platform` come from `platforms`.
    pub options: BuildOptions,
    /// Target platforms; empty builds for the build platform.
    pub platforms: Vec<Platform>,
    /// Where the result goes.
    pub outputs: Vec<Output>,
    /// `--pull`: besides resolving every base image against its registry (which hoist
    /// always does), re-hash the blobs of each that are already in the store and fetch
    /// again any that are missing or corrupt.
    pub pull: bool,
    /// The sources of named contexts that are files (`--build-context NAME=DIR|URL`), by
    /// the local name `options.named_contexts` gives them.
    pub named_contexts: BTreeMap<String, ContextSource>,
    /// `--secret`s by id, for `RUN --mount=type=secret`; their values reach no digest,
    /// record, layer or progress line.
    pub secrets: Secrets,
    /// `--ssh` agents by id, for `RUN --mount=type=ssh`.
    pub ssh: SshAgents,
    /// The build-wide settings of RUN steps (`--add-host`, `--ulimit`, `--allow`, ...).
    pub run: RunOptions,
    /// `--cache-from` / `--cache-to`.
    pub cache: CacheOptions,
    /// Secrets and SSH agents asked, once the graph is known, for the ids its steps mount
    /// (a daemon's client session); added to `secrets` and `ssh`.
    pub late_inputs: Option<LateInputs>,
}

impl BuildRequest {
    /// A request for `dockerfile` (`None`: read it from the context under
    /// `dockerfile_name`) and `context`, built for the build platform with nothing else
    /// asked: no outputs, secrets, ssh agents, caches or named contexts.
    pub fn new(
        dockerfile: Option<Vec<u8>>,
        dockerfile_name: impl Into<String>,
        context: ContextSource,
        options: BuildOptions,
    ) -> BuildRequest {
        BuildRequest {
            dockerfile,
            dockerfile_name: dockerfile_name.into(),
            context,
            options,
            platforms: Vec::new(),
            outputs: Vec::new(),
            pull: false,
            named_contexts: BTreeMap::new(),
            secrets: Secrets::new(),
            ssh: SshAgents::default(),
            run: RunOptions::default(),
            cache: CacheOptions::default(),
            late_inputs: None,
        }
    }
}

/// What a build produced.
#[derive(Debug)]
pub struct BuildResult {
    /// One image per target platform.
    pub images: Vec<PlatformImage>,
    /// What the exporter wrote.
    pub export: ExportResult,
    /// The root of the cache written to a client's store (`CacheDestination::Client`),
    /// which the client names in its directory's `index.json` (BuildKit's exporter
    /// response `cache.manifest`).
    pub cache_manifest: Option<hoist_oci::Descriptor>,
}

/// Runs `request` on `worker`, sending progress to `events`; the build is recorded in the
/// state dir's [`HistoryStore`], its events logged there as they pass, however it ends.
pub async fn build(
    worker: Arc<Worker>,
    request: BuildRequest,
    events: Option<UnboundedSender<Event>>,
) -> Result<BuildResult> {
    let mut recording = HistoryStore::new(worker.state()).start(&request)?;
    let events = recording.tee(events);
    let result = run_stages(worker, request, Some(events)).await;
    let recorded = recording.finish(&result).await;
    // The build's own error matters more than one of its record.
    let result = result?;
    recorded?;
    Ok(result)
}

async fn run_stages(
    worker: Arc<Worker>,
    request: BuildRequest,
    events: Option<UnboundedSender<Event>>,
) -> Result<BuildResult> {
    let progress = Progress::new(events);
    let prepared = prepare_contexts(&worker, request, &progress).await?;
    let mut loaded = load_definition(&prepared, &progress)?;
    let definition = resolve(&worker, &loaded, &progress).await?;
    let solving = Solving::begin(&worker, &prepared, &mut loaded, &definition, &progress).await?;
    let solved = solving
        .solve(&worker, &prepared, &loaded, &definition, &progress)
        .await?;
    solving
        .finish(&worker, &prepared, definition, solved, &progress)
        .await
}

/// What a build does between [`resolve`] and its end that needs the whole request: the
/// client's late inputs (the secret and SSH ids the graph uses), the cache imports, the
/// inline cache, the export and then the cache exports. [`build`] goes through it, and so
/// does a daemon driving the stages at its client's pace (hoistd's gateway), so both
/// builds treat `--secret`, `--cache-from` and `--cache-to` alike.
pub struct Solving {
    cache: LayeredCacheStore,
}

impl std::fmt::Debug for Solving {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Solving").finish_non_exhaustive()
    }
}

impl Solving {
    /// Asks the late inputs and reads the cache imports, before any step runs.
    pub async fn begin(
        worker: &Arc<Worker>,
        prepared: &Prepared,
        loaded: &mut Loaded,
        definition: &hoist_frontend::Definition,
        progress: &Progress,
    ) -> Result<Solving> {
        let request = &prepared.request;
        if let Some(late) = &request.late_inputs {
            crate::late_inputs::apply(late, definition, &request.secrets, &request.ssh, loaded)
                .await?;
        }
        let imported = crate::remote_cache::import(worker, &request.cache.imports, progress).await;
        let cache = LayeredCacheStore::new(Arc::clone(worker), imported, progress.clone())?;
        Ok(Solving { cache })
    }

    /// Runs every target's steps ([`solve`]) on the state dir's and the imported records,
    /// and gathers the inline cache when the request asks for it.
    pub async fn solve(
        &self,
        worker: &Arc<Worker>,
        prepared: &Prepared,
        loaded: &Loaded,
        definition: &hoist_frontend::Definition,
        progress: &Progress,
    ) -> Result<Solved> {
        let mut solved =
            crate::solve::solve_with_cache(worker, loaded, definition, progress, &self.cache)
                .await?;
        let request = &prepared.request;
        if crate::remote_cache::inline_wanted(&request.cache, &request.options.build_args) {
            let used = self.cache.used_results();
            let now = i64::try_from(crate::cache::now_ms() / 1000).unwrap_or(0);
            solved.inline_cache = solved
                .results
                .iter()
                .zip(&definition.targets)
                .map(|(top, target)| {
                    // Dated by SOURCE_DATE_EPOCH when the build has one: the config stays
                    // reproducible.
                    let at = target.converted.source_date_epoch.unwrap_or(now);
                    let created_at = hoist_oci::format_rfc3339(at, 0);
                    crate::remote_cache::inline_records(&used, top.as_ref()?, &created_at)
                })
                .collect();
        }
        Ok(solved)
    }

    /// Exports `solved` to the request's outputs, then the records it used to its caches.
    pub async fn finish(
        self,
        worker: &Arc<Worker>,
        prepared: &Prepared,
        definition: hoist_frontend::Definition,
        solved: Solved,
        progress: &Progress,
    ) -> Result<BuildResult> {
        let finals: Vec<_> = solved.results.iter().flatten().cloned().collect();
        let mount_ids = crate::remote_cache::cache_mount_ids(&definition);
        let mut result = export(
            worker,
            definition,
            solved,
            &prepared.request.outputs,
            progress,
        )
        .await?;
        result.cache_manifest = crate::remote_cache::export(
            worker,
            &prepared.request.cache.exports,
            &self.cache,
            &finals,
            &mount_ids,
            progress,
        )
        .await?;
        Ok(result)
    }
}
