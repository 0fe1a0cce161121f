//! [`Solver`]: evaluates vertices with once-per-key execution, bounded parallelism, a cache
//! store, cancellation and progress events.
//!
//! Every vertex goes through two memoised steps, each a spawned task whose result is shared
//! by everyone who asks for it (a [`Shared`] future kept in a map for the solver's life):
//!
//! 1. **key** (per vertex digest): the op's cache map, then each input's key (or, for a
//!    content-keyed input, the input's result and its checksum), hashed into a [`CacheKey`];
//!    also whether the vertex is *forced* to run (see [`SolverBuilder::no_cache`]);
//! 2. **result** (per vertex digest), which joins a **run** (per cache key): load the key from
//!    the cache store, or else evaluate the inputs, wait for a parallelism permit, run the op
//!    and save the result.
//!
//! Because runs are memoised by cache key, vertices from different graphs (or with different
//! digests) that share a key run once. A permit is held only while an op runs, never while
//! waiting for inputs, so any graph completes with any parallelism of at least one.

use std::any::Any;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use futures::future::{try_join_all, BoxFuture, Shared};
use futures::FutureExt as _;
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::cache::{CacheStore, MemoryCacheStore};
use crate::digest::{CacheKey, Digest, Encoder};
use crate::error::{Error, SharedError};
use crate::miss::{Forced, InputFacts, KeyFacts, KeyShare};
use crate::progress::{Event, EventKind};
use crate::vertex::{CacheMap, ExecContext, Op, Vertex, VertexInfo};

/// Solves graphs of [`Vertex`]es of one op type. One solver is one build session: results
/// are kept in memory, deduplicated by key, until it is dropped.
///
/// ```
/// use std::sync::Arc;
/// use hoist_solver::{ExecContext, Op, Solver, Vertex};
///
/// struct Add(i64);
///
/// impl Op for Add {
///     type Output = i64;
///     type Error = std::convert::Infallible;
///
///     fn definition(&self) -> Vec<u8> {
///         self.0.to_be_bytes().to_vec()
///     }
///
///     async fn exec(&self, _: &ExecContext, inputs: &[Arc<i64>]) -> Result<i64, Self::Error> {
///         Ok(self.0 + inputs.iter().map(|i| **i).sum::<i64>())
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), hoist_solver::Error> {
/// let one = Vertex::new("one", Add(1), vec![]);
/// let two = Vertex::new("two", Add(2), vec![]);
/// let sum = Vertex::new("sum", Add(0), vec![one, two]);
/// let solver = Solver::builder().parallelism(2).build();
/// assert_eq!(*solver.solve_one(&sum).await?, 3);
/// # Ok(())
/// # }
/// ```
pub struct Solver<O: Op> {
    inner: Arc<Inner<O>>,
}

impl<O: Op> Solver<O> {
    /// Starts configuring a solver.
    pub fn builder() -> SolverBuilder<O> {
        SolverBuilder::new()
    }

    /// Evaluates every target, running shared vertices once, and returns their results in
    /// order. Fails with the first error met; work that other targets (or other solves on
    /// this solver) still need goes on, so call [`cancel`](Solver::cancel) to stop it.
    pub async fn solve(&self, targets: &[Arc<Vertex<O>>]) -> Result<Vec<Arc<O::Output>>, Error> {
        try_join_all(targets.iter().map(|target| self.inner.result_of(target))).await
    }

    /// Evaluates one target.
    pub async fn solve_one(&self, target: &Arc<Vertex<O>>) -> Result<Arc<O::Output>, Error> {
        self.inner.result_of(target).await
    }

    /// The cache key of `vertex`, computing (and, for content-keyed inputs, evaluating)
    /// what it needs. Keys are memoised like results.
    pub async fn cache_key(&self, vertex: &Arc<Vertex<O>>) -> Result<CacheKey, Error> {
        self.inner.key_of(vertex).await.map(|k| k.key)
    }

    /// Cancels the solve: ops not yet started never start, running ops are dropped (and see
    /// [`ExecContext::is_cancelled`]), and every unfinished vertex fails with
    /// [`Error::Cancelled`]. A cancelled solver stays cancelled.
    pub fn cancel(&self) {
        self.inner.cancel.cancel();
    }

    /// The token [`cancel`](Solver::cancel) triggers, to tie the solve to something else
    /// (a client disconnecting, Ctrl-C).
    pub fn cancellation_token(&self) -> CancellationToken {
        self.inner.cancel.clone()
    }
}

impl<O: Op> Clone for Solver<O> {
    /// Another handle to the same solver (same memo, cache, permits and cancellation).
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<O: Op> fmt::Debug for Solver<O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Solver")
            .field("no_cache", &self.inner.no_cache)
            .field("available_permits", &self.inner.permits.available_permits())
            .field("cancelled", &self.inner.cancel.is_cancelled())
            .finish_non_exhaustive()
    }
}

/// Configures a [`Solver`].
pub struct SolverBuilder<O: Op> {
    cache: Option<Arc<dyn CacheStore<O::Output>>>,
    parallelism: usize,
    no_cache: bool,
    events: Option<UnboundedSender<Event>>,
    cancel: Option<CancellationToken>,
}

impl<O: Op> SolverBuilder<O> {
    fn new() -> Self {
        Self {
            cache: None,
            parallelism: std::thread::available_parallelism().map_or(1, |n| n.get()),
            no_cache: false,
            events: None,
            cancel: None,
        }
    }

    /// Where results are loaded from and saved to. Defaults to a fresh
    /// [`MemoryCacheStore`], i.e. no cache beyond this solver.
    pub fn cache(mut self, cache: Arc<dyn CacheStore<O::Output>>) -> Self {
        self.cache = Some(cache);
        self
    }

    /// How many ops may run at once (at least one). Defaults to the number of CPUs.
    pub fn parallelism(mut self, parallelism: usize) -> Self {
        self.parallelism = parallelism.clamp(1, Semaphore::MAX_PERMITS);
        self
    }

    /// Whether to force every vertex to run instead of loading it from the cache
    /// (`--no-cache`). Results are still saved, and each key still runs once.
    ///
    /// A vertex is *forced* when this is set, when its own
    /// [`ignore_cache`](crate::VertexOptions::ignore_cache) is set, or when an input it is
    /// keyed on by cache key is forced (that input produced a fresh result, which an old
    /// cache entry may not match). An input keyed by content does not force its dependent:
    /// the checksum of the fresh result decides.
    pub fn no_cache(mut self, no_cache: bool) -> Self {
        self.no_cache = no_cache;
        self
    }

    /// Where progress [`Event`]s go. The channel is unbounded so that ops never wait on a
    /// slow renderer; it closes when the solver and all its tasks are gone.
    pub fn events(mut self, events: UnboundedSender<Event>) -> Self {
        self.events = Some(events);
        self
    }

    /// Uses `token` for cancellation instead of a fresh one.
    pub fn cancellation_token(mut self, token: CancellationToken) -> Self {
        self.cancel = Some(token);
        self
    }

    /// The solver.
    pub fn build(self) -> Solver<O> {
        let cache = self
            .cache
            .unwrap_or_else(|| Arc::new(MemoryCacheStore::new()));
        Solver {
            inner: Arc::new(Inner {
                cache,
                permits: Semaphore::new(self.parallelism),
                no_cache: self.no_cache,
                events: self.events,
                cancel: self.cancel.unwrap_or_default(),
                state: Mutex::new(State {
                    keys: HashMap::new(),
                    results: HashMap::new(),
                    runs: HashMap::new(),
                    ran: HashSet::new(),
                }),
            }),
        }
    }
}

impl<O: Op> fmt::Debug for SolverBuilder<O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SolverBuilder")
            .field("parallelism", &self.parallelism)
            .field("no_cache", &self.no_cache)
            .finish_non_exhaustive()
    }
}

/// A memoised step: a spawned task's outcome, awaitable by any number of waiters.
type Memo<T> = Shared<BoxFuture<'static, Result<T, Error>>>;

/// The outcome of the key step.
#[derive(Debug, Clone)]
struct KeyInfo {
    key: CacheKey,
    /// The vertex must run rather than load from the cache.
    forced: bool,
    /// What the key was made of, for the op's miss explanations.
    facts: Arc<KeyFacts>,
}

struct State<O: Op> {
    /// The key step of each vertex, by vertex digest.
    keys: HashMap<Digest, Memo<KeyInfo>>,
    /// The result step of each vertex, by vertex digest.
    results: HashMap<Digest, Memo<Arc<O::Output>>>,
    /// The run of each key, with the digest of the vertex that runs it. A forced run and a
    /// cache load of the same key are different runs.
    runs: HashMap<(CacheKey, bool), Run<O::Output>>,
    /// The keys whose op ran (rather than loading from the cache) in this solve.
    ran: HashSet<CacheKey>,
}

/// A memoised run of one key.
struct Run<T> {
    /// The vertex that runs it (others with the same key report `Cached`).
    runner: Digest,
    outcome: Memo<Arc<T>>,
}

struct Inner<O: Op> {
    cache: Arc<dyn CacheStore<O::Output>>,
    permits: Semaphore,
    no_cache: bool,
    events: Option<UnboundedSender<Event>>,
    cancel: CancellationToken,
    state: Mutex<State<O>>,
}

impl<O: Op> Inner<O> {
    fn lock(&self) -> MutexGuard<'_, State<O>> {
        // Every critical section only inserts whole entries, so a poisoned map is consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn emit(&self, vertex: &VertexInfo, kind: EventKind) {
        if let Some(events) = &self.events {
            // Nobody listening any more is not an error.
            let _ = events.send(Event {
                vertex: vertex.clone(),
                kind,
            });
        }
    }

    /// Reports `error`, a failure of its own vertex before any op ran, as an `Error` event.
    fn failed(&self, error: Error) -> Error {
        if let Some(vertex) = error.vertex() {
            let message = error_chain(&error);
            self.emit(
                vertex,
                EventKind::Error {
                    duration: Duration::ZERO,
                    message,
                },
            );
        }
        error
    }

    fn key_of(self: &Arc<Self>, vertex: &Arc<Vertex<O>>) -> Memo<KeyInfo> {
        let mut state = self.lock();
        if let Some(memo) = state.keys.get(&vertex.digest()) {
            return memo.clone();
        }
        let work = Arc::clone(self).compute_key(Arc::clone(vertex));
        let memo = spawn_memo(vertex.info().clone(), work);
        state.keys.insert(vertex.digest(), memo.clone());
        memo
    }

    fn result_of(self: &Arc<Self>, vertex: &Arc<Vertex<O>>) -> Memo<Arc<O::Output>> {
        let mut state = self.lock();
        if let Some(memo) = state.results.get(&vertex.digest()) {
            return memo.clone();
        }
        let work = Arc::clone(self).compute_result(Arc::clone(vertex));
        let memo = spawn_memo(vertex.info().clone(), work);
        state.results.insert(vertex.digest(), memo.clone());
        memo
    }

    async fn compute_key(self: Arc<Self>, vertex: Arc<Vertex<O>>) -> Result<KeyInfo, Error> {
        let info = vertex.info();
        let map = tokio::select! {
            biased;
            () = self.cancel.cancelled() => return Err(Error::Cancelled),
            map = vertex.op().cache_map() => map.map_err(|e| self.failed(Error::CacheMap {
                vertex: info.clone(),
                source: Arc::new(e),
            }))?,
        };
        let inputs = vertex.inputs().len();
        if let Some(input) = map.content_inputs().find(|&i| i >= inputs) {
            return Err(self.failed(Error::CacheMapInput {
                vertex: info.clone(),
                input,
                inputs,
            }));
        }
        let parts = try_join_all(
            vertex
                .inputs()
                .iter()
                .enumerate()
                .map(|(index, input)| self.key_part(info, &map, index, input)),
        )
        .await?;

        let mut encoder = Encoder::new("hoist-solver/cache-key/v1");
        encoder.digest(&map.digest());
        encoder.u64(parts.len() as u64);
        let options = vertex.options();
        let mut forced = if options.ignore_cache {
            Some(Forced::IgnoreCache)
        } else if self.no_cache && !options.content_addressed {
            Some(Forced::NoCache)
        } else {
            None
        };
        let mut inputs = Vec::with_capacity(parts.len());
        for (index, ((part, input_forced), input)) in
            parts.into_iter().zip(vertex.inputs()).enumerate()
        {
            if input_forced && forced.is_none() {
                forced = Some(Forced::Input(index));
            }
            match part {
                KeyShare::Key(key) => {
                    encoder.u8(0);
                    encoder.digest(&key.digest());
                }
                KeyShare::Content(checksum) => {
                    encoder.u8(1);
                    encoder.digest(&checksum);
                }
            }
            inputs.push(InputFacts {
                name: Arc::clone(&input.info().name),
                share: part,
                ran: false,
            });
        }
        let key = CacheKey::from_digest(encoder.finish());
        Ok(KeyInfo {
            key,
            forced: forced.is_some(),
            facts: Arc::new(KeyFacts {
                key,
                digest: map.digest(),
                inputs,
                forced,
            }),
        })
    }

    /// Input `index`'s share of a key, and whether it forces the dependent to run.
    fn key_part(
        self: &Arc<Self>,
        vertex: &VertexInfo,
        map: &CacheMap<O::Output>,
        index: usize,
        input: &Arc<Vertex<O>>,
    ) -> BoxFuture<'static, Result<(KeyShare, bool), Error>> {
        match map.content_fn(index) {
            Some(checksum) => {
                let value = self.result_of(input);
                let checksum = Arc::clone(checksum);
                let vertex = vertex.clone();
                let inner = Arc::clone(self);
                async move {
                    let digest = checksum(value.await?).await.map_err(|e| {
                        inner.failed(Error::ContentChecksum {
                            vertex,
                            input: index,
                            source: SharedError::from(e),
                        })
                    })?;
                    Ok((KeyShare::Content(digest), false))
                }
                .boxed()
            }
            None => {
                let key = self.key_of(input);
                async move {
                    let key = key.await?;
                    Ok((KeyShare::Key(key.key), key.forced))
                }
                .boxed()
            }
        }
    }

    /// `facts` with each input marked when its op ran in this solve (the inputs are ready).
    fn with_inputs_ran(&self, vertex: &Vertex<O>, facts: &KeyFacts) -> KeyFacts {
        let mut facts = facts.clone();
        for (input, fact) in vertex.inputs().iter().zip(&mut facts.inputs) {
            let key = match fact.share {
                KeyShare::Key(key) => Some(key),
                // A content-keyed input's own key is memoised with its result.
                KeyShare::Content(_) => self
                    .lock()
                    .keys
                    .get(&input.digest())
                    .cloned()
                    .and_then(|memo| memo.now_or_never().and_then(Result::ok).map(|k| k.key)),
            };
            fact.ran = key.is_some_and(|k| self.lock().ran.contains(&k));
        }
        facts
    }

    async fn compute_result(
        self: Arc<Self>,
        vertex: Arc<Vertex<O>>,
    ) -> Result<Arc<O::Output>, Error> {
        let KeyInfo { key, forced, facts } = self.key_of(&vertex).await?;
        let (runner, run) = {
            let mut state = self.lock();
            match state.runs.get(&(key, forced)) {
                Some(run) => (run.runner, run.outcome.clone()),
                None => {
                    let work = Arc::clone(&self).run(Arc::clone(&vertex), facts, forced);
                    let outcome = spawn_memo(vertex.info().clone(), work);
                    let run = Run {
                        runner: vertex.digest(),
                        outcome: outcome.clone(),
                    };
                    state.runs.insert((key, forced), run);
                    (vertex.digest(), outcome)
                }
            }
        };
        let value = run.await?;
        if runner != vertex.digest() {
            // Another vertex with the same key produced the result.
            self.emit(vertex.info(), EventKind::Cached);
        }
        Ok(value)
    }

    async fn run(
        self: Arc<Self>,
        vertex: Arc<Vertex<O>>,
        facts: Arc<KeyFacts>,
        forced: bool,
    ) -> Result<Arc<O::Output>, Error> {
        let info = vertex.info();
        let key = facts.key;
        if self.cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        if !forced {
            let hit = self.cache.load(key).await.map_err(|e| {
                self.failed(Error::CacheLoad {
                    vertex: info.clone(),
                    key,
                    source: SharedError::from(e),
                })
            })?;
            if let Some(value) = hit {
                vertex.op().key_used(&facts);
                self.emit(info, EventKind::Cached);
                return Ok(value);
            }
        }

        let inputs =
            try_join_all(vertex.inputs().iter().map(|input| self.result_of(input))).await?;
        // Held until the result is saved: another process asking for the key meanwhile
        // waits, then finds the record.
        let _claim = if forced {
            None
        } else {
            let load_error = |e| {
                self.failed(Error::CacheLoad {
                    vertex: info.clone(),
                    key,
                    source: SharedError::from(e),
                })
            };
            let claim = tokio::select! {
                biased;
                () = self.cancel.cancelled() => return Err(Error::Cancelled),
                claim = self.cache.claim(key) => claim.map_err(load_error)?,
            };
            if let Some(value) = self.cache.load(key).await.map_err(load_error)? {
                vertex.op().key_used(&facts);
                self.emit(info, EventKind::Cached);
                return Ok(value);
            }
            Some(claim)
        };
        let permit = tokio::select! {
            biased;
            () = self.cancel.cancelled() => return Err(Error::Cancelled),
            permit = self.permits.acquire() => permit.map_err(|_| Error::Cancelled)?,
        };

        let facts = self.with_inputs_ran(&vertex, &facts);
        if let Some(reason) = vertex.op().explain_miss(&facts) {
            self.emit(info, EventKind::CacheMiss { reason });
        }
        self.lock().ran.insert(key);
        self.emit(info, EventKind::Started);
        let ctx = ExecContext::new(info.clone(), self.events.clone(), self.cancel.clone());
        let started = Instant::now();
        let outcome = tokio::select! {
            biased;
            () = self.cancel.cancelled() => None,
            outcome = AssertUnwindSafe(vertex.op().exec(&ctx, &inputs)).catch_unwind() => Some(outcome),
        };
        drop(permit);
        let duration = started.elapsed();

        let value = match outcome {
            None => {
                self.emit(info, EventKind::Cancelled { duration });
                return Err(Error::Cancelled);
            }
            Some(Err(panic)) => {
                let message = panic_message(panic.as_ref());
                self.emit(
                    info,
                    EventKind::Error {
                        duration,
                        message: message.clone(),
                    },
                );
                return Err(Error::Panicked {
                    vertex: info.clone(),
                    message,
                });
            }
            Some(Ok(Err(e))) => {
                let message = error_chain(&e);
                self.emit(info, EventKind::Error { duration, message });
                return Err(Error::Op {
                    vertex: info.clone(),
                    source: Arc::new(e),
                });
            }
            Some(Ok(Ok(value))) => Arc::new(value),
        };
        if let Err(e) = self.cache.save(key, Arc::clone(&value)).await {
            let error = Error::CacheSave {
                vertex: info.clone(),
                key,
                source: SharedError::from(e),
            };
            let message = error_chain(&error);
            self.emit(info, EventKind::Error { duration, message });
            return Err(error);
        }
        vertex.op().key_used(&facts);
        self.emit(info, EventKind::Done { duration });
        Ok(value)
    }
}

/// Spawns `work` and returns its shared outcome. The task runs to completion whether or not
/// anyone is still waiting, so a waiter going away never makes a key run twice.
fn spawn_memo<T>(
    vertex: VertexInfo,
    work: impl Future<Output = Result<T, Error>> + Send + 'static,
) -> Memo<T>
where
    T: Clone + Send + Sync + 'static,
{
    let task = tokio::spawn(work);
    async move {
        match task.await {
            Ok(outcome) => outcome,
            Err(e) if e.is_cancelled() => Err(Error::Cancelled),
            Err(e) => Err(Error::Panicked {
                vertex,
                message: panic_message(e.into_panic().as_ref()),
            }),
        }
    }
    .boxed()
    .shared()
}

/// The text a panic was raised with.
fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

/// `error: source: source…`, as one line for a progress event.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        // Errors that already print their source (as ours do) would repeat it.
        if !message.ends_with(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}
