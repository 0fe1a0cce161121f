//! [`build`]: a Dockerfile and its context to exported images — parse, plan, resolve base
//! images, convert per platform, solve every platform's graph together, export.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use hoist_dockerfile::dockerignore::{
    ignore_file_candidates, read_ignore_file, IgnoreFileLocation,
};
use hoist_export::{ExportRequest, ExportResult, Exporter, Output, PlatformImage};
use hoist_frontend::{BuildOptions, ImageRequest, ResolvedImage, MAIN_CONTEXT};
use hoist_graph::VertexId;
use hoist_oci::{History, ImageConfig, Platform};
use hoist_sandbox::binfmt::{ExecSupport, Execution};
use hoist_snapshot::Snapshotter as _;
use hoist_solver::{Event, EventKind, Solver, Vertex, VertexInfo, VertexOptions};
use tokio::sync::mpsc::UnboundedSender;

use crate::cache::DiskCacheStore;
use crate::error::{Error, Result};
use crate::ops::{EngineOp, LocalContexts};
use crate::worker::{Ref, Worker};

/// Everything one build needs, typed.
#[derive(Debug, Clone)]
pub struct BuildRequest {
    /// The Dockerfile's bytes.
    pub dockerfile: Vec<u8>,
    /// Its path as the user named it (`-` for stdin), for error excerpts and for finding
    /// `<Dockerfile>.dockerignore`.
    pub dockerfile_name: String,
    /// The main build context directory.
    pub context: PathBuf,
    /// Frontend options (build args, target, labels, no-cache, ...). `context_excludes` is
    /// filled from the context's `.dockerignore` when empty.
    pub options: BuildOptions,
    /// Target platforms; empty builds for the build platform.
    pub platforms: Vec<Platform>,
    /// Where the result goes.
    pub outputs: Vec<Output>,
    /// `--pull`: besides resolving every base image against its registry (which hoist
    /// always does), re-hash the blobs of each that are already in the store and fetch
    /// again any that are missing or corrupt.
    pub pull: bool,
    /// The directories of local named contexts (`--build-context NAME=DIR`), by the local
    /// name `options.named_contexts` gives them.
    pub named_contexts: BTreeMap<String, PathBuf>,
}

/// What a build produced.
#[derive(Debug)]
pub struct BuildResult {
    /// One image per target platform.
    pub images: Vec<PlatformImage>,
    /// What the exporter wrote.
    pub export: ExportResult,
}

/// Runs `request` on `worker`, sending progress to `events`.
pub async fn build(
    worker: Arc<Worker>,
    mut request: BuildRequest,
    events: Option<UnboundedSender<Event>>,
) -> Result<BuildResult> {
    request.options.multi_platform = request.platforms.len() > 1;
    let step = InternalStep::start(
        events.as_ref(),
        format!(
            "[internal] load build definition from {}",
            dockerfile_base_name(&request.dockerfile_name)
        ),
    );
    let dockerfile = step.finish(hoist_dockerfile::parser::parse_bytes(&request.dockerfile))?;
    if request.options.context_excludes.is_empty() {
        let step = InternalStep::start(events.as_ref(), "[internal] load .dockerignore".into());
        request.options.context_excludes = step.finish(read_dockerignore(&request))?;
    }
    // Each local named context is filtered by its own `.dockerignore`, as BuildKit reads it.
    for (name, dir) in &request.named_contexts {
        let patterns = read_ignore_at(&dir.join(".dockerignore"))?.unwrap_or_default();
        request
            .options
            .named_context_excludes
            .insert(name.clone(), patterns);
    }
    let platform_opts: Vec<BuildOptions> = if request.platforms.is_empty() {
        vec![request.options.clone()]
    } else {
        request
            .platforms
            .iter()
            .map(|p| request.options.for_platform(p.clone()))
            .collect()
    };
    let mut resolved: BTreeMap<ImageRequest, ResolvedImage> = BTreeMap::new();
    let mut converted = Vec::new();
    for opts in &platform_opts {
        let plan = hoist_frontend::plan(&dockerfile, opts)?;
        let mut pending: Vec<ImageRequest> = plan.images.clone();
        while !pending.is_empty() {
            for image in pending {
                if let std::collections::btree_map::Entry::Vacant(entry) = resolved.entry(image) {
                    let found = resolve_image(
                        &worker,
                        entry.key(),
                        request.pull,
                        opts.multi_platform,
                        events.as_ref(),
                    )
                    .await?;
                    entry.insert(found);
                }
            }
            pending = plan.pending_images(&resolved, opts)?;
        }
        let platform = plan.target_platform().clone();
        converted.push((platform, hoist_frontend::convert(&plan, &resolved, opts)?));
    }

    let mut contexts = request.named_contexts.clone();
    contexts.insert(MAIN_CONTEXT.to_owned(), request.context.clone());
    let contexts: Arc<LocalContexts> = Arc::new(contexts);
    let cache = DiskCacheStore::open(Arc::clone(&worker))?;
    // No bound on steps at once, as BuildKit without `max-parallelism`: RUN steps mostly wait
    // (on sleeps, networks, emulators), and the kernel shares the CPUs among the busy ones.
    let mut builder = Solver::<EngineOp>::builder()
        .parallelism(usize::MAX)
        .cache(Arc::new(cache))
        .no_cache(request.options.no_cache);
    if let Some(events) = &events {
        builder = builder.events(events.clone());
    }
    let solver = builder.build();
    // Every step of every target is asked for, not only the targets: the solver stops at
    // the first cache hit from the top, and BuildKit's progress reports each step CACHED.
    let mut to_solve = Vec::new();
    let mut targets = Vec::new();
    for (_, conv) in &converted {
        let vertices = solver_vertices(&conv.graph, &worker, &contexts)?;
        let Some(target) = &conv.target else {
            targets.push(None);
            continue;
        };
        for id in conv.graph.ancestors(target.vertex) {
            let vertex = vertices
                .get(&id)
                .ok_or_else(|| Error::InvalidGraph(format!("vertex {} missing", id.0)))?;
            if id == target.vertex {
                targets.push(Some(to_solve.len()));
            }
            to_solve.push(Arc::clone(vertex));
        }
    }
    check_platforms(&converted)?;
    let solved = solver.solve(&to_solve).await.map_err(Error::from_solve)?;

    let needs_rootfs = request
        .outputs
        .iter()
        .any(|o| matches!(o, Output::Local(_) | Output::Tar(_)));
    let mut views = Vec::new();
    let mut images = Vec::new();
    for ((platform, conv), target) in converted.into_iter().zip(&targets) {
        let result: Option<Arc<Ref>> = target.and_then(|i| solved.get(i).cloned());
        let layers = result
            .as_ref()
            .map(|r| r.layers.clone())
            .unwrap_or_default();
        let rootfs = if needs_rootfs {
            let key = worker.unique_key("export");
            let parents: Vec<_> = result.iter().map(|r| r.snapshot.clone()).collect();
            let view = worker.snapshotter().view(&key, &parents)?;
            let rootfs = view.path().to_path_buf();
            views.push(view);
            Some(rootfs)
        } else {
            None
        };
        let mut config = conv.config;
        config.rootfs.kind = "layers".to_owned();
        config.rootfs.diff_ids = layers.iter().map(|l| l.diff_id.clone()).collect();
        align_history(&mut config, layers.len());
        images.push(PlatformImage {
            platform,
            config,
            layers: layers.into_iter().map(Into::into).collect(),
            rootfs,
        });
    }
    let mut exporter =
        Exporter::new(worker.store().clone()).with_registry(worker.registry().clone());
    if let Some(events) = &events {
        exporter = exporter.with_progress(Arc::new(ExportSteps {
            events: events.clone(),
            started: std::sync::Mutex::new(None),
        }));
    }
    let export = exporter
        .export(&ExportRequest {
            images: images.clone(),
            outputs: request.outputs.clone(),
        })
        .await;
    drop(views);
    Ok(BuildResult {
        images,
        export: export?,
    })
}

/// Fails before anything runs when a `RUN` needed by a target is for a platform this
/// machine cannot execute, natively or through a `binfmt_misc` emulator.
fn check_platforms(converted: &[(Platform, hoist_frontend::Converted)]) -> Result<()> {
    let mut support: Option<ExecSupport> = None;
    for (_, conv) in converted {
        let Some(target) = &conv.target else { continue };
        for id in conv.graph.ancestors(target.vertex) {
            let Some(vertex) = conv.graph.get(id) else {
                continue;
            };
            let (hoist_graph::Op::Exec(_), Some(platform)) = (&vertex.op, &vertex.platform) else {
                continue;
            };
            let support = match &mut support {
                Some(s) => s,
                None => support.insert(ExecSupport::detect()?),
            };
            if support.check(platform) == Execution::Unavailable {
                let runs: Vec<String> = support.platforms().iter().map(Platform::format).collect();
                return Err(Error::PlatformUnavailable {
                    step: vertex.name.clone(),
                    platform: platform.format(),
                    arch: platform.normalize().architecture,
                    runs: runs.join(", "),
                });
            }
        }
    }
    Ok(())
}

/// The graph's vertices as solver vertices, by graph id (inputs come first in a graph).
fn solver_vertices(
    graph: &hoist_graph::Graph,
    worker: &Arc<Worker>,
    contexts: &Arc<LocalContexts>,
) -> Result<HashMap<VertexId, Arc<Vertex<EngineOp>>>> {
    let mut out: HashMap<VertexId, Arc<Vertex<EngineOp>>> = HashMap::new();
    for (id, vertex) in graph.vertices() {
        let inputs = vertex
            .inputs
            .iter()
            .map(|input| {
                out.get(&input.vertex).cloned().ok_or_else(|| {
                    Error::InvalidGraph(format!("vertex {:?} comes before its input", vertex.name))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let mut options = VertexOptions::default();
        options.ignore_cache = vertex.ignore_cache;
        options.content_addressed = matches!(
            vertex.op,
            hoist_graph::Op::Source(hoist_graph::Source::Local { .. })
        );
        let op = EngineOp::new(vertex.clone(), Arc::clone(worker), Arc::clone(contexts));
        out.insert(
            id,
            Vertex::with_options(vertex.name.clone(), op, inputs, options),
        );
    }
    Ok(out)
}

/// Pulls a base image (manifest, config and layers) and reports it as BuildKit's
/// `[internal] load metadata for ...` step (`[linux/arm64 internal] ...` in multi-platform
/// builds).
async fn resolve_image(
    worker: &Worker,
    image: &ImageRequest,
    pull: bool,
    multi_platform: bool,
    events: Option<&UnboundedSender<Event>>,
) -> Result<ResolvedImage> {
    let prefix = if multi_platform {
        format!("[{} internal]", image.platform.format_all())
    } else {
        "[internal]".to_owned()
    };
    let name = format!("{prefix} load metadata for {}", image.reference);
    let step = InternalStep::start(events, name);
    let pulled = if pull {
        crate::ops::pull_verified(worker, &image.reference, &image.platform).await
    } else {
        worker
            .registry()
            .pull_image(&image.reference, &image.platform, worker.store())
            .await
            .map_err(Error::from)
    };
    let pulled = step.finish(pulled)?;
    let bytes = worker.store().read_blob(&pulled.config.digest)?;
    let config: ImageConfig = serde_json::from_slice(&bytes).map_err(|e| Error::CacheRecord {
        path: worker.store().path(&pulled.config.digest),
        reason: format!("image config of {}: {e}", image.reference),
    })?;
    Ok(ResolvedImage {
        digest: pulled.root.digest,
        config,
    })
}

/// One of BuildKit's steps that are not graph vertices (`[internal] load ...`), reported
/// as started on creation and done or failed by [`InternalStep::finish`].
struct InternalStep<'a> {
    events: Option<&'a UnboundedSender<Event>>,
    info: VertexInfo,
    started: Instant,
}

impl<'a> InternalStep<'a> {
    fn start(events: Option<&'a UnboundedSender<Event>>, name: String) -> InternalStep<'a> {
        let step = InternalStep {
            events,
            info: internal_vertex(name),
            started: Instant::now(),
        };
        step.send(EventKind::Started);
        step
    }

    fn send(&self, kind: EventKind) {
        if let Some(events) = self.events {
            let _ = events.send(Event {
                vertex: self.info.clone(),
                kind,
            });
        }
    }

    /// Reports `result` and passes it on.
    fn finish<T, E: std::fmt::Display>(
        self,
        result: std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        let duration = self.started.elapsed();
        match &result {
            Ok(_) => self.send(EventKind::Done { duration }),
            Err(e) => self.send(EventKind::Error {
                duration,
                message: e.to_string(),
            }),
        }
        result
    }
}

/// A progress identity for a step that is not in the graph: digested from its name, as
/// nothing else identifies it.
fn internal_vertex(name: String) -> VertexInfo {
    VertexInfo {
        digest: hoist_solver::Digest::of(name.as_bytes()),
        name: Arc::from(name),
    }
}

/// The Dockerfile's file name as BuildKit shows it (`Dockerfile` for stdin).
fn dockerfile_base_name(name: &str) -> String {
    match std::path::Path::new(name).file_name() {
        Some(base) if name != "-" => base.to_string_lossy().into_owned(),
        _ => "Dockerfile".to_owned(),
    }
}

/// Reports each export output as BuildKit's `exporting to ...` step.
#[derive(Debug)]
struct ExportSteps {
    events: UnboundedSender<Event>,
    /// When the output being written started (outputs are written one at a time).
    started: std::sync::Mutex<Option<Instant>>,
}

impl ExportSteps {
    fn send(&self, output: &Output, kind: EventKind) {
        if let Some(name) = output.progress_name() {
            let _ = self.events.send(Event {
                vertex: internal_vertex(name.to_owned()),
                kind,
            });
        }
    }
}

impl hoist_export::ExportProgress for ExportSteps {
    fn started(&self, output: &Output) {
        if let Ok(mut started) = self.started.lock() {
            *started = Some(Instant::now());
        }
        self.send(output, EventKind::Started);
    }

    fn finished(&self, output: &Output, error: Option<&hoist_export::Error>) {
        let started = self.started.lock().ok().and_then(|mut s| s.take());
        let duration = started.map(|s| s.elapsed()).unwrap_or_default();
        let kind = match error {
            None => EventKind::Done { duration },
            Some(e) => EventKind::Error {
                duration,
                message: e.to_string(),
            },
        };
        self.send(output, kind);
    }
}

/// The `.dockerignore` patterns: `<Dockerfile>.dockerignore` beside the Dockerfile first,
/// then `.dockerignore` at the context root.
fn read_dockerignore(request: &BuildRequest) -> Result<Vec<String>> {
    for candidate in ignore_file_candidates(&request.dockerfile_name) {
        let path = match candidate.location {
            IgnoreFileLocation::BesideDockerfile => PathBuf::from(&candidate.path),
            IgnoreFileLocation::ContextRoot => request.context.join(&candidate.path),
        };
        if let Some(patterns) = read_ignore_at(&path)? {
            return Ok(patterns);
        }
    }
    Ok(Vec::new())
}

/// The patterns of the ignore file at `path`; `None` when there is none.
fn read_ignore_at(path: &std::path::Path) -> Result<Option<Vec<String>>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(read_ignore_file(&text)?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("read", path)(e)),
    }
}

/// Makes the history list one non-empty entry per layer, as BuildKit's exporter does when
/// they disagree: missing entries are added at the end, surplus ones marked empty.
fn align_history(config: &mut ImageConfig, layers: usize) {
    let with_layer = config.history.iter().filter(|h| !h.empty_layer).count();
    if with_layer < layers {
        for _ in with_layer..layers {
            config.history.push(History {
                created: config.created.clone(),
                created_by: Some("hoist: layer without history".to_owned()),
                author: None,
                comment: None,
                empty_layer: false,
            });
        }
    } else if with_layer > layers {
        let mut surplus = with_layer - layers;
        for entry in config.history.iter_mut().rev() {
            if surplus == 0 {
                break;
            }
            if !entry.empty_layer {
                entry.empty_layer = true;
                surplus -= 1;
            }
        }
    }
}
