//! Stage 3 of a build, [`solve`]: every target platform's graph becomes solver vertices
//! ([`EngineOp`]s) and all of them are solved together, each cache key once, with the
//! records in the state dir's [`DiskCacheStore`](crate::DiskCacheStore) (and, with
//! `--cache-from`, the imported ones after them: [`solve_with_cache`]).

use std::collections::HashMap;
use std::sync::Arc;

use hoist_frontend::Definition;
use hoist_graph::VertexId;
use hoist_oci::Platform;
use hoist_sandbox::binfmt::{ExecSupport, Execution};
use hoist_solver::{Solver, SourceLines, Vertex, VertexOptions};

use crate::definition::Loaded;
use crate::error::{Error, Result};
use crate::ops::{EngineOp, LocalContexts, MissContext, RunInputs};
use crate::remote_cache::{ImportedCache, LayeredCacheStore};
use crate::secrets::SecretStore;
use crate::steps::Progress;
use crate::worker::{Ref, Worker};

/// The result of each target of a [`Definition`], in its order: `None` for a target with
/// an empty filesystem (`FROM scratch` and only config changes).
#[derive(Debug)]
pub struct Solved {
    pub results: Vec<Option<Arc<Ref>>>,
    /// Each target's inline cache records (BuildKit's `moby.buildkit.cache.v0`), in the
    /// order of `results`, for the export to put into its image's config; empty: none.
    pub inline_cache: Vec<Option<Vec<u8>>>,
}

/// Solves every target of `definition` on `worker`. Fails before anything runs when a
/// `RUN` needed by a target is for a platform this machine cannot execute.
pub async fn solve(
    worker: &Arc<Worker>,
    loaded: &Loaded,
    definition: &Definition,
    progress: &Progress,
) -> Result<Solved> {
    let cache = LayeredCacheStore::new(
        Arc::clone(worker),
        ImportedCache::default(),
        progress.clone(),
    )?;
    solve_with_cache(worker, loaded, definition, progress, &cache).await
}

/// [`solve`] with `cache` as the solver's store: the state dir's records and those a
/// build imported; `cache` then knows every record the build used, for `--cache-to`.
pub(crate) async fn solve_with_cache(
    worker: &Arc<Worker>,
    loaded: &Loaded,
    definition: &Definition,
    progress: &Progress,
    cache: &LayeredCacheStore,
) -> Result<Solved> {
    check_platforms(definition)?;
    check_execs(definition, loaded)?;
    let contexts = Arc::new(loaded.contexts.clone());
    let secrets = Arc::new(loaded.secrets.clone());
    let run = Arc::new(RunInputs {
        ssh: loaded.ssh.clone(),
        options: loaded.run.clone(),
        misses: Arc::new(MissContext::new(loaded.options.no_cache)),
    });
    // No bound on steps at once, as BuildKit without `max-parallelism`: RUN steps mostly wait
    // (on sleeps, networks, emulators), and the kernel shares the CPUs among the busy ones.
    let mut builder = Solver::<EngineOp>::builder()
        .parallelism(usize::MAX)
        .cache(Arc::new(cache.clone()))
        .no_cache(loaded.options.no_cache);
    if let Some(events) = progress.events() {
        builder = builder.events(events.clone());
    }
    let solver = builder.build();
    // A build dropped mid-solve (a daemon's client went away, a caller's timeout) cancels
    // its steps: the solver drops their work, and a RUN's process is killed.
    let cancel_on_drop = solver.cancellation_token().drop_guard();
    // Every step of every target is asked for, not only the targets: the solver stops at
    // the first cache hit from the top, and BuildKit's progress reports each step CACHED.
    let mut to_solve = Vec::new();
    let mut targets = Vec::new();
    // Local context sources: their records never leave this machine.
    let mut private = Vec::new();
    for target in &definition.targets {
        let conv = &target.converted;
        let Some(output) = &conv.target else {
            targets.push(None);
            continue;
        };
        let vertices = solver_vertices(&conv.graph, worker, &contexts, &secrets, &run)?;
        for id in conv.graph.ancestors(output.vertex) {
            let vertex = vertices
                .get(&id)
                .ok_or_else(|| Error::InvalidGraph(format!("vertex {} missing", id.0)))?;
            if let Some(hoist_graph::Op::Source(hoist_graph::Source::Local { .. })) =
                conv.graph.get(id).map(|v| &v.op)
            {
                private.push(Arc::clone(vertex));
            }
            if id == output.vertex {
                targets.push(Some(to_solve.len()));
            }
            to_solve.push(Arc::clone(vertex));
        }
    }
    let solved = solver.solve(&to_solve).await.map_err(Error::from_solve)?;
    cancel_on_drop.disarm();
    for vertex in &private {
        // Known already (the solve computed it): no work.
        if let Ok(key) = solver.cache_key(vertex).await {
            cache.keep_private(key);
        }
    }
    Ok(Solved {
        results: targets
            .into_iter()
            .map(|t| t.and_then(|i| solved.get(i).cloned()))
            .collect(),
        inline_cache: Vec::new(),
    })
}

/// Fails, as BuildKit does when it loads a definition, when a `RUN` needed by a target asks
/// for an entitlement the build did not grant, or requires an SSH agent it was not given.
fn check_execs(definition: &Definition, loaded: &Loaded) -> Result<()> {
    for (_, exec) in needed_execs(definition) {
        loaded.run.entitlements.check(exec.network, exec.security)?;
        for mount in &exec.mounts {
            if let hoist_graph::MountKind::Ssh {
                id, required: true, ..
            } = &mount.kind
            {
                if !loaded.ssh.contains(id) {
                    return Err(Error::SshNotForwarded { id: id.clone() });
                }
            }
        }
    }
    Ok(())
}

/// Every exec a target of `definition` needs (its output's ancestors), with its vertex,
/// target by target; an exec two targets share comes once per target.
pub(crate) fn needed_execs(
    definition: &Definition,
) -> impl Iterator<Item = (&hoist_graph::Vertex, &hoist_graph::Exec)> {
    definition.targets.iter().flat_map(|target| {
        let conv = &target.converted;
        let ids = conv
            .target
            .as_ref()
            .map(|output| conv.graph.ancestors(output.vertex))
            .unwrap_or_default();
        ids.into_iter().filter_map(|id| {
            let vertex = conv.graph.get(id)?;
            match &vertex.op {
                hoist_graph::Op::Exec(exec) => Some((vertex, exec)),
                _ => None,
            }
        })
    })
}

/// Fails when a `RUN` needed by a target is for a platform this machine cannot execute,
/// natively or through a `binfmt_misc` emulator.
fn check_platforms(definition: &Definition) -> Result<()> {
    let mut support: Option<ExecSupport> = None;
    for (vertex, _) in needed_execs(definition) {
        let Some(platform) = &vertex.platform else {
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
    Ok(())
}

/// The graph's vertices as solver vertices, by graph id (inputs come first in a graph).
fn solver_vertices(
    graph: &hoist_graph::Graph,
    worker: &Arc<Worker>,
    contexts: &Arc<LocalContexts>,
    secrets: &Arc<SecretStore>,
    run: &Arc<RunInputs>,
) -> Result<HashMap<VertexId, Arc<Vertex<EngineOp>>>> {
    let mut out: HashMap<VertexId, Arc<Vertex<EngineOp>>> = HashMap::new();
    for (id, vertex) in graph.vertices() {
        let vertex_inputs = vertex
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
        options.location = vertex.location.map(|l| SourceLines {
            start: l.start,
            end: l.end,
        });
        let op = EngineOp::new(vertex.clone(), Arc::clone(worker), Arc::clone(contexts))
            .with_secrets(Arc::clone(secrets))
            .with_run_inputs(Arc::clone(run))
            .with_miss_context(Arc::clone(&run.misses));
        out.insert(
            id,
            Vertex::with_options(vertex.name.clone(), op, vertex_inputs, options),
        );
    }
    Ok(out)
}
