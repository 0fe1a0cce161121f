//! Toy integer ops for the scheduler tests (BuildKit's `scheduler_test.go` does the same with
//! integer vertices). Every op records its runs in a shared [`Env`], keyed by its label.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hoist_solver::{
    CacheMap, Digest, Event, EventKind, ExecContext, KeyFacts, LogStream, Op, Vertex, VertexOptions,
};
use tokio::sync::{mpsc, Barrier, Notify};

/// What a toy op does. The label (not the kind) names the op in [`Env::runs`].
#[derive(Debug, Clone)]
pub enum Kind {
    /// `[n]`.
    Const(i64),
    /// The wrapping sum of every element of every input.
    Add,
    /// The wrapping product of every element of every input.
    Mul,
    /// Sleeps, then returns the sum of the inputs.
    Sleep(Duration),
    /// Waits on the environment's barrier, then returns the sum of the inputs.
    Barrier,
    /// Fails with the message.
    Fail(String),
    /// Panics.
    Panic,
    /// Returns the environment's `world` vector (a build context that changes between
    /// solves).
    Source,
    /// Returns `[input0[i]]`, keyed on the content of that element only.
    Pick(usize),
    /// Keyed on `key` only, whatever the label: vertices with different digests, one key.
    Keyed(String),
    /// Declares a content-keyed input it does not have.
    BadCacheMap,
    /// Never finishes; notifies the environment when it starts and counts being dropped.
    Hang,
    /// Logs each line to stdout, then returns the sum of the inputs.
    Log(Vec<String>),
}

/// State shared by every toy op of a test.
#[derive(Debug, Default)]
pub struct Env {
    runs: Mutex<HashMap<String, usize>>,
    running: AtomicUsize,
    max_running: AtomicUsize,
    barrier: Mutex<Option<Arc<Barrier>>>,
    pub world: Mutex<Vec<i64>>,
    /// Notified when a `Hang` op starts.
    pub hanging: Notify,
    /// How many `Hang` ops were dropped (told to stop).
    pub dropped: AtomicUsize,
    /// Ops explain their misses (as their label) and record the facts they were given.
    pub explain: AtomicBool,
    /// The facts each op was given on a miss, by label, in order.
    pub misses: Mutex<Vec<(String, KeyFacts)>>,
    /// The facts each op was given on a hit, by label, in order.
    pub hits: Mutex<Vec<(String, KeyFacts)>>,
}

impl Env {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// How many times the op labelled `label` ran.
    pub fn runs(&self, label: &str) -> usize {
        self.runs.lock().unwrap().get(label).copied().unwrap_or(0)
    }

    /// How many ops ran in total.
    pub fn total_runs(&self) -> usize {
        self.runs.lock().unwrap().values().sum()
    }

    /// The most ops that were running at once.
    pub fn max_running(&self) -> usize {
        self.max_running.load(Ordering::SeqCst)
    }

    /// `Barrier` ops wait for `n` of them to arrive.
    pub fn set_barrier(&self, n: usize) {
        *self.barrier.lock().unwrap() = Some(Arc::new(Barrier::new(n)));
    }

    /// Makes a vertex with a toy op.
    pub fn vertex(
        self: &Arc<Self>,
        label: &str,
        kind: Kind,
        inputs: &[&Arc<Vertex<Toy>>],
    ) -> Arc<Vertex<Toy>> {
        self.vertex_with(label, kind, inputs, VertexOptions::default())
    }

    /// Makes a vertex with a toy op and options.
    pub fn vertex_with(
        self: &Arc<Self>,
        label: &str,
        kind: Kind,
        inputs: &[&Arc<Vertex<Toy>>],
        options: VertexOptions,
    ) -> Arc<Vertex<Toy>> {
        let op = Toy {
            label: label.to_owned(),
            kind,
            env: Arc::clone(self),
        };
        let inputs = inputs.iter().map(|v| Arc::clone(v)).collect();
        Vertex::with_options(label, op, inputs, options)
    }
}

/// Counts an op as running until dropped.
struct Running<'a>(&'a Env);

impl<'a> Running<'a> {
    fn new(env: &'a Env) -> Self {
        let now = env.running.fetch_add(1, Ordering::SeqCst) + 1;
        env.max_running.fetch_max(now, Ordering::SeqCst);
        Self(env)
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Counts a `Hang` op as dropped.
struct Dropped<'a>(&'a Env);

impl Drop for Dropped<'_> {
    fn drop(&mut self) {
        self.0.dropped.fetch_add(1, Ordering::SeqCst);
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ToyError(String);

/// A toy op: a label, a kind, and the environment it reports to.
#[derive(Debug)]
pub struct Toy {
    label: String,
    kind: Kind,
    env: Arc<Env>,
}

fn sum(inputs: &[Arc<Vec<i64>>]) -> i64 {
    inputs
        .iter()
        .flat_map(|v| v.iter())
        .fold(0i64, |a, b| a.wrapping_add(*b))
}

impl Op for Toy {
    type Output = Vec<i64>;
    type Error = ToyError;

    fn definition(&self) -> Vec<u8> {
        format!("{}|{:?}", self.label, self.kind).into_bytes()
    }

    async fn cache_map(&self) -> Result<CacheMap<Vec<i64>>, ToyError> {
        let definition = Digest::of(&self.definition());
        Ok(match &self.kind {
            Kind::Pick(index) => {
                let index = *index;
                CacheMap::new(definition).content(0, move |input: Arc<Vec<i64>>| async move {
                    let value = input
                        .get(index)
                        .ok_or_else(|| ToyError(format!("no element {index}")))?;
                    Ok::<_, ToyError>(Digest::of(&value.to_be_bytes()))
                })
            }
            Kind::Keyed(key) => CacheMap::new(Digest::of(key.as_bytes())),
            Kind::BadCacheMap => CacheMap::new(definition).content(5, |_: Arc<Vec<i64>>| async {
                Ok::<_, ToyError>(Digest::of(b""))
            }),
            _ => CacheMap::new(definition),
        })
    }

    fn explain_miss(&self, facts: &KeyFacts) -> Option<String> {
        if !self.env.explain.load(Ordering::SeqCst) {
            return None;
        }
        let mut misses = self.env.misses.lock().unwrap();
        misses.push((self.label.clone(), facts.clone()));
        Some(format!("{} missed", self.label))
    }

    fn key_used(&self, facts: &KeyFacts) {
        if self.env.explain.load(Ordering::SeqCst) {
            let mut hits = self.env.hits.lock().unwrap();
            hits.push((self.label.clone(), facts.clone()));
        }
    }

    async fn exec(
        &self,
        ctx: &ExecContext,
        inputs: &[Arc<Vec<i64>>],
    ) -> Result<Vec<i64>, ToyError> {
        *self
            .env
            .runs
            .lock()
            .unwrap()
            .entry(self.label.clone())
            .or_default() += 1;
        let _running = Running::new(&self.env);
        match &self.kind {
            Kind::Const(n) => Ok(vec![*n]),
            Kind::Add | Kind::Keyed(_) | Kind::BadCacheMap => Ok(vec![sum(inputs)]),
            Kind::Mul => Ok(vec![inputs
                .iter()
                .flat_map(|v| v.iter())
                .fold(1i64, |a, b| a.wrapping_mul(*b))]),
            Kind::Sleep(duration) => {
                tokio::time::sleep(*duration).await;
                Ok(vec![sum(inputs)])
            }
            Kind::Barrier => {
                let barrier = self.env.barrier.lock().unwrap().clone();
                if let Some(barrier) = barrier {
                    barrier.wait().await;
                }
                Ok(vec![sum(inputs)])
            }
            Kind::Fail(message) => Err(ToyError(message.clone())),
            Kind::Panic => panic!("toy op {} panics", self.label),
            Kind::Source => Ok(self.env.world.lock().unwrap().clone()),
            Kind::Pick(index) => inputs[0]
                .get(*index)
                .map(|v| vec![*v])
                .ok_or_else(|| ToyError(format!("no element {index}"))),
            Kind::Hang => {
                let _dropped = Dropped(&self.env);
                self.env.hanging.notify_one();
                std::future::pending::<()>().await;
                Ok(vec![])
            }
            Kind::Log(lines) => {
                for line in lines {
                    ctx.log(LogStream::Stdout, line.clone());
                }
                Ok(vec![sum(inputs)])
            }
        }
    }
}

/// Collects every event until the channel closes (the solver and its tasks are gone).
pub async fn drain(mut events: mpsc::UnboundedReceiver<Event>) -> Vec<Event> {
    let mut all = Vec::new();
    while let Some(event) = events.recv().await {
        all.push(event);
    }
    all
}

/// `(vertex name, kind name)` for each event, times left out.
pub fn summary(events: &[Event]) -> Vec<(String, &'static str)> {
    events
        .iter()
        .map(|e| {
            let kind = match e.kind {
                EventKind::CacheMiss { .. } => "miss",
                EventKind::Started => "started",
                EventKind::Cached => "cached",
                EventKind::Log { .. } => "log",
                EventKind::Done { .. } => "done",
                EventKind::Error { .. } => "error",
                EventKind::Cancelled { .. } => "cancelled",
                _ => "other",
            };
            (e.vertex.name.to_string(), kind)
        })
        .collect()
}

/// The events of the vertex named `name`, as kind names.
pub fn kinds_of(events: &[Event], name: &str) -> Vec<&'static str> {
    summary(events)
        .into_iter()
        .filter(|(n, _)| n == name)
        .map(|(_, k)| k)
        .collect()
}
