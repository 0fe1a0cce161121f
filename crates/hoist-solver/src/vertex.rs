//! The graph model: [`Op`] (what a vertex does), [`Vertex`] (an op plus its inputs),
//! [`CacheMap`] (how an op is keyed) and [`ExecContext`] (what a running op may use).

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use futures::future::BoxFuture;
use futures::FutureExt as _;
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

use crate::digest::{Digest, Encoder};
use crate::error::BoxError;
use crate::miss::KeyFacts;
use crate::progress::{Event, EventKind, LogStream};

/// What a vertex does. The solver knows nothing else about it.
///
/// An op is pure data plus behaviour: [`definition`](Op::definition) must describe everything
/// that affects its result (apart from its inputs), because equal definitions over equal
/// inputs are treated as the same vertex and run once.
pub trait Op: Send + Sync + 'static {
    /// What running the op produces; shared between dependents through `Arc`.
    type Output: Send + Sync + 'static;
    /// What running the op (or computing its cache map) can fail with.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Stable bytes that define the op (not its inputs). They make up the vertex
    /// [`Digest`] together with the input digests, and, unless
    /// [`cache_map`](Op::cache_map) says otherwise, the op's share of its cache key.
    fn definition(&self) -> Vec<u8>;

    /// How the op is keyed in the cache. The default keys on the definition and on every
    /// input's cache key.
    ///
    /// Ops that must resolve something first (an image tag to a manifest digest, a git ref to
    /// a commit) do it here; ops that depend only on part of an input (a `COPY` of some files
    /// from the context) ask for a content checksum of that input with
    /// [`CacheMap::content`].
    fn cache_map(
        &self,
    ) -> impl Future<Output = Result<CacheMap<Self::Output>, Self::Error>> + Send {
        std::future::ready(Ok(CacheMap::new(Digest::of(&self.definition()))))
    }

    /// Why the vertex missed the cache, for progress ([`EventKind::CacheMiss`]); called once
    /// per run, with its inputs ready, just before it starts. An op that remembers what its
    /// steps were made of (keyed by an identity of its own choosing that survives input
    /// changes) compares `facts` with the last record here; it keeps the new one only in
    /// [`key_used`](Op::key_used), once the key has a result. The default says nothing.
    fn explain_miss(&self, facts: &KeyFacts) -> Option<String> {
        let _ = facts;
        None
    }

    /// The vertex has a result under `facts.key`, from the cache or from a run just saved
    /// (never after a failed run): an op keeping records as
    /// [`explain_miss`](Op::explain_miss) does notes the key here. Called on the hot path of
    /// a cached rebuild, so it should do no more than compare with what it has. The default
    /// does nothing.
    fn key_used(&self, facts: &KeyFacts) {
        let _ = facts;
    }

    /// Runs the op over its inputs' results, in the order of [`Vertex::inputs`].
    ///
    /// When the solve is cancelled the returned future is dropped at its next await point;
    /// ops that must clean up (a child process, say) do it on drop, and long synchronous work
    /// should poll [`ExecContext::is_cancelled`].
    fn exec(
        &self,
        ctx: &ExecContext,
        inputs: &[Arc<Self::Output>],
    ) -> impl Future<Output = Result<Self::Output, Self::Error>> + Send;
}

/// A content checksum function: maps an input's result to the digest of the part an op
/// depends on.
type ContentFn<T> =
    Arc<dyn Fn(Arc<T>) -> BoxFuture<'static, Result<Digest, BoxError>> + Send + Sync>;

/// How an op is keyed in the cache (BuildKit's `CacheMap`).
///
/// The cache key of a vertex is
///
/// ```text
/// sha256( "hoist-solver/cache-key/v1", digest,
///         n_inputs, for each input i in order:
///             0x00 ‖ cache key of input i              (the default), or
///             0x01 ‖ content checksum of input i       (when `content(i, ..)` was given) )
/// ```
///
/// A content-keyed input is evaluated before the key is known (its result must exist to be
/// checksummed); a key-keyed input only needs its own key, so a cache hit deep in a graph does
/// not evaluate anything below it.
pub struct CacheMap<T> {
    digest: Digest,
    content: BTreeMap<usize, ContentFn<T>>,
}

impl<T: Send + Sync + 'static> CacheMap<T> {
    /// A cache map keyed on `digest` (usually of the op's definition, or of what the op
    /// resolved) and on every input's cache key.
    pub fn new(digest: Digest) -> Self {
        Self {
            digest,
            content: BTreeMap::new(),
        }
    }

    /// Keys input `input` on `checksum(result of input)` instead of on its cache key, so the
    /// op misses only when the part it selects changes. The checksum should cover exactly
    /// what the op reads (the files a `COPY` selects, with their metadata).
    pub fn content<F, Fut, E>(mut self, input: usize, checksum: F) -> Self
    where
        F: Fn(Arc<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Digest, E>> + Send + 'static,
        E: Into<BoxError> + 'static,
    {
        let checksum: ContentFn<T> =
            Arc::new(move |value| checksum(value).map(|r| r.map_err(Into::into)).boxed());
        self.content.insert(input, checksum);
        self
    }

    /// The op's own share of the key.
    pub fn digest(&self) -> Digest {
        self.digest
    }

    pub(crate) fn content_fn(&self, input: usize) -> Option<&ContentFn<T>> {
        self.content.get(&input)
    }

    pub(crate) fn content_inputs(&self) -> impl Iterator<Item = usize> + '_ {
        self.content.keys().copied()
    }
}

impl<T> fmt::Debug for CacheMap<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheMap")
            .field("digest", &self.digest)
            .field("content_inputs", &self.content.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// The name and digest of a vertex, as carried by progress events and errors.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct VertexInfo {
    /// The vertex identity.
    pub digest: Digest,
    /// The name shown in progress (`[stage 1/3] RUN make`).
    pub name: Arc<str>,
    /// The source lines it comes from, when it comes from a source ([`VertexOptions`]).
    pub location: Option<SourceLines>,
}

impl VertexInfo {
    /// A vertex identity outside any graph: a step a caller reports itself.
    pub fn new(digest: Digest, name: impl Into<Arc<str>>) -> VertexInfo {
        VertexInfo {
            digest,
            name: name.into(),
            location: None,
        }
    }
}

/// 1-based, inclusive lines of the source a vertex was made from (a Dockerfile instruction),
/// so that an error can show them. The solver only carries them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SourceLines {
    pub start: usize,
    pub end: usize,
}

impl fmt::Display for VertexInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", &*self.name)
    }
}

impl fmt::Debug for VertexInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} ({})", &*self.name, self.digest)
    }
}

/// Per-vertex flags that do not change what the vertex is (they are not part of its digest).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct VertexOptions {
    /// Run the op even when the cache has its key (`--no-cache-filter`). The result is still
    /// saved, and still deduplicated within the solve.
    pub ignore_cache: bool,
    /// The vertex's key digests its whole result (a local context keyed by the checksum of
    /// its files), so a cached result *is* the result: the solver's `no_cache` does not
    /// force it. BuildKit likewise re-syncs a local context incrementally under
    /// `--no-cache` rather than copying it anew. `ignore_cache` still forces it.
    pub content_addressed: bool,
    /// Where the vertex comes from, carried in its [`VertexInfo`] into events and errors.
    pub location: Option<SourceLines>,
}

impl VertexOptions {
    /// Options that force the vertex to run instead of loading it from the cache.
    pub fn ignore_cache() -> Self {
        Self {
            ignore_cache: true,
            ..Self::default()
        }
    }
}

/// A node of a build graph: an op, the vertices whose results it consumes, a name for
/// progress and some options. Vertices are immutable and shared as `Arc<Vertex>`; a graph
/// is the set of vertices reachable from its targets (it cannot have cycles).
///
/// Vertices with equal digests are interchangeable: a solver evaluates the first one it
/// meets and uses its op, name and options for all of them.
pub struct Vertex<O: Op> {
    op: O,
    inputs: Vec<Arc<Vertex<O>>>,
    info: VertexInfo,
    options: VertexOptions,
}

impl<O: Op> Vertex<O> {
    /// A vertex running `op` over `inputs`, shown as `name`.
    pub fn new(name: impl Into<Arc<str>>, op: O, inputs: Vec<Arc<Vertex<O>>>) -> Arc<Self> {
        Self::with_options(name, op, inputs, VertexOptions::default())
    }

    /// A vertex with non-default [`VertexOptions`].
    pub fn with_options(
        name: impl Into<Arc<str>>,
        op: O,
        inputs: Vec<Arc<Vertex<O>>>,
        options: VertexOptions,
    ) -> Arc<Self> {
        let digest = vertex_digest(&op.definition(), &inputs);
        Arc::new(Self {
            op,
            inputs,
            info: VertexInfo {
                digest,
                name: name.into(),
                location: options.location,
            },
            options,
        })
    }

    /// The vertex identity: `sha256("hoist-solver/vertex/v1", definition, input digests)`.
    /// The name and options are not part of it.
    pub fn digest(&self) -> Digest {
        self.info.digest
    }

    /// The name shown in progress.
    pub fn name(&self) -> &str {
        &self.info.name
    }

    /// Name and digest together.
    pub fn info(&self) -> &VertexInfo {
        &self.info
    }

    /// The op.
    pub fn op(&self) -> &O {
        &self.op
    }

    /// The inputs, in the order the op receives their results.
    pub fn inputs(&self) -> &[Arc<Vertex<O>>] {
        &self.inputs
    }

    /// The options.
    pub fn options(&self) -> VertexOptions {
        self.options
    }
}

impl<O: Op> fmt::Debug for Vertex<O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vertex")
            .field("info", &self.info)
            .field("inputs", &self.inputs.len())
            .field("options", &self.options)
            .finish()
    }
}

fn vertex_digest<O: Op>(definition: &[u8], inputs: &[Arc<Vertex<O>>]) -> Digest {
    let mut encoder = Encoder::new("hoist-solver/vertex/v1");
    encoder.bytes(definition);
    encoder.u64(inputs.len() as u64);
    for input in inputs {
        encoder.digest(&input.digest());
    }
    encoder.finish()
}

/// What a running op can use: its identity, a log sink feeding progress, and the
/// cancellation signal.
#[derive(Debug)]
pub struct ExecContext {
    vertex: VertexInfo,
    started: Instant,
    events: Option<UnboundedSender<Event>>,
    cancel: CancellationToken,
}

impl ExecContext {
    pub(crate) fn new(
        vertex: VertexInfo,
        events: Option<UnboundedSender<Event>>,
        cancel: CancellationToken,
    ) -> Self {
        Self {
            vertex,
            started: Instant::now(),
            events,
            cancel,
        }
    }

    /// The vertex being run.
    pub fn vertex(&self) -> &VertexInfo {
        &self.vertex
    }

    /// Emits one line of output as a progress [`EventKind::Log`] event.
    pub fn log(&self, stream: LogStream, line: impl Into<String>) {
        if let Some(events) = &self.events {
            // A closed channel means nobody renders progress any more; that is not an error.
            let _ = events.send(Event {
                vertex: self.vertex.clone(),
                kind: EventKind::Log {
                    stream,
                    elapsed: self.started.elapsed(),
                    line: line.into(),
                },
            });
        }
    }

    /// Whether the solve has been cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Resolves when the solve is cancelled.
    pub async fn cancelled(&self) {
        self.cancel.cancelled().await;
    }
}
