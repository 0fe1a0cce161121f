//! The builds under way, by the ref their client chose, and each one's progress as
//! BuildKit's `StatusResponse`s for `Status` calls.
//!
//! Clients call `Status(ref)` next to `Solve(ref)`, often before it: a `Status` for a ref
//! not started yet waits for it. A build's responses are kept from its start until its
//! `Solve` has ended and a `Status` stream has ended too (or, when no `Status` came,
//! [`UNWATCHED_KEEP`] after the `Solve` ended), so a late `Status` still sees it all.
//!
//! [`StatusConverter`] turns the engine's [`Event`]s into responses: each vertex update
//! carries the vertex's whole state (started, completed, cached, error) under the solver's
//! vertex digest, as BuildKit's progress printers merge updates by digest; log lines are
//! `VertexLog`s (stream 1 stdout, 2 stderr); warnings (a Dockerfile's build checks, a
//! gateway client's `Warn`) are `VertexWarning`s.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use hoist_engine::progress::{Event, EventKind, LogStream, Warning};
use hoist_proto::control::{StatusResponse, Vertex, VertexLog, VertexWarning};
use hoist_proto::pb::{Position, Range, SourceInfo};
use tokio::sync::watch;

use crate::control::timestamp;

/// How long a finished build's progress waits for a `Status` call that never came.
pub const UNWATCHED_KEEP: Duration = Duration::from_secs(60);

/// The builds by ref.
#[derive(Debug, Clone, Default)]
pub struct Builds {
    jobs: Arc<Mutex<HashMap<String, Arc<Job>>>>,
}

/// One ref's progress.
#[derive(Debug)]
pub struct Job {
    state: Mutex<JobState>,
    /// Bumped at each change, for waiting `Status` streams.
    changed: watch::Sender<u64>,
}

#[derive(Debug, Default)]
struct JobState {
    responses: Vec<StatusResponse>,
    solve: SolvePhase,
    /// A `Status` stream of this ref has ended.
    watched: bool,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum SolvePhase {
    #[default]
    NotStarted,
    Running,
    Ended,
}

impl Job {
    fn new() -> Job {
        Job {
            state: Mutex::new(JobState::default()),
            changed: watch::Sender::new(0),
        }
    }

    fn state(&self) -> MutexGuard<'_, JobState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn bump(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Adds one response for the `Status` streams.
    pub fn push(&self, response: StatusResponse) {
        self.state().responses.push(response);
        self.bump();
    }

    /// The responses from `from` on, and whether the build has ended (then nothing follows).
    fn read_from(&self, from: usize) -> (Vec<StatusResponse>, bool) {
        let state = self.state();
        let fresh = state.responses.get(from..).unwrap_or_default().to_vec();
        (fresh, state.solve == SolvePhase::Ended)
    }
}

impl Builds {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Arc<Job>>> {
        self.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn job(&self, reference: &str) -> Arc<Job> {
        Arc::clone(
            self.lock()
                .entry(reference.to_owned())
                .or_insert_with(|| Arc::new(Job::new())),
        )
    }

    /// Adds `response` to the progress of build `reference` (a gateway client's warning:
    /// its Solve is under way, or about to start once the client's frontend asks).
    pub fn push(&self, reference: &str, response: StatusResponse) {
        self.job(reference).push(response);
    }

    /// How many builds are running.
    pub fn running(&self) -> usize {
        self.lock()
            .values()
            .filter(|job| job.state().solve == SolvePhase::Running)
            .count()
    }

    /// Starts the build `reference`; `None` when a build of that ref runs or ran already
    /// (its progress is still kept).
    pub fn start(&self, reference: &str) -> Option<SolveGuard> {
        let job = self.job(reference);
        {
            let mut state = job.state();
            if state.solve != SolvePhase::NotStarted {
                return None;
            }
            state.solve = SolvePhase::Running;
        }
        job.bump();
        Some(SolveGuard {
            builds: self.clone(),
            reference: reference.to_owned(),
            job,
        })
    }

    /// The responses of build `reference` as they come, ending when the build has ended
    /// and all were read; waits for a build not started yet.
    pub fn watch(&self, reference: &str) -> tokio::sync::mpsc::Receiver<StatusResponse> {
        let job = self.job(reference);
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let builds = self.clone();
        let reference = reference.to_owned();
        tokio::spawn(async move {
            let mut changed = job.changed.subscribe();
            let mut sent = 0;
            loop {
                changed.mark_unchanged();
                let (fresh, ended) = job.read_from(sent);
                sent += fresh.len();
                for response in fresh {
                    if tx.send(response).await.is_err() {
                        break;
                    }
                }
                if ended || tx.is_closed() {
                    break;
                }
                tokio::select! {
                    _ = changed.changed() => {}
                    () = tx.closed() => break,
                }
            }
            job.state().watched = true;
            builds.forget_if_done(&reference, &job);
        });
        rx
    }

    /// Drops `job`'s progress once its `Solve` and a `Status` have ended.
    fn forget_if_done(&self, reference: &str, job: &Arc<Job>) {
        let done = {
            let state = job.state();
            state.solve == SolvePhase::Ended && state.watched
        };
        if done {
            let mut jobs = self.lock();
            if jobs.get(reference).is_some_and(|j| Arc::ptr_eq(j, job)) {
                jobs.remove(reference);
            }
        }
    }
}

/// A running build's hold on its progress; dropping it (the build ended, or its `Solve`
/// was cancelled) ends the `Status` streams once they have sent everything.
#[derive(Debug)]
pub struct SolveGuard {
    builds: Builds,
    reference: String,
    job: Arc<Job>,
}

impl SolveGuard {
    pub fn job(&self) -> &Arc<Job> {
        &self.job
    }
}

impl Drop for SolveGuard {
    fn drop(&mut self) {
        self.job.state().solve = SolvePhase::Ended;
        self.job.bump();
        self.builds.forget_if_done(&self.reference, &self.job);
        if !self.job.state().watched {
            // No Status came yet: keep the progress a while for one that comes late.
            let builds = self.builds.clone();
            let reference = self.reference.clone();
            let job = Arc::clone(&self.job);
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    tokio::time::sleep(UNWATCHED_KEEP).await;
                    job.state().watched = true;
                    builds.forget_if_done(&reference, &job);
                });
            }
        }
    }
}

/// `warning` about the vertex `digest` as BuildKit's `VertexWarning`: each range whole lines
/// (character 0), the source file's name, language and bytes as its `SourceInfo`.
pub fn vertex_warning(digest: &str, warning: &Warning) -> VertexWarning {
    let line = |n: usize| Position {
        line: i32::try_from(n).unwrap_or(i32::MAX),
        character: 0,
    };
    VertexWarning {
        vertex: digest.to_owned(),
        level: warning.level,
        short: warning.short.clone().into_bytes(),
        detail: warning
            .detail
            .iter()
            .map(|d| d.clone().into_bytes())
            .collect(),
        url: warning.url.clone(),
        info: warning.source.as_ref().map(|source| SourceInfo {
            filename: source.filename.clone(),
            data: source.data.to_vec(),
            definition: None,
            language: source.language.clone(),
        }),
        ranges: warning
            .ranges
            .iter()
            .map(|r| Range {
                start: Some(line(r.start)),
                end: Some(line(r.end)),
            })
            .collect(),
    }
}

/// The engine's events as `StatusResponse`s, remembering each vertex's state.
#[derive(Debug, Default)]
pub struct StatusConverter {
    vertexes: HashMap<String, Vertex>,
}

impl StatusConverter {
    /// The response reporting `event`; `None` for what BuildKit's status has no place for
    /// (a cache miss's explanation).
    pub fn convert(&mut self, event: &Event) -> Option<StatusResponse> {
        let now = timestamp(SystemTime::now());
        let digest = event.vertex.digest.to_string();
        let vertex = self
            .vertexes
            .entry(digest.clone())
            .or_insert_with(|| Vertex {
                digest: digest.clone(),
                name: event.vertex.name.to_string(),
                ..Vertex::default()
            });
        match &event.kind {
            EventKind::Started => vertex.started = Some(now),
            EventKind::Cached => {
                vertex.started.get_or_insert(now);
                vertex.completed = Some(now);
                vertex.cached = true;
            }
            EventKind::Done { .. } => {
                vertex.started.get_or_insert(now);
                vertex.completed = Some(now);
            }
            EventKind::Error { message, .. } => {
                vertex.started.get_or_insert(now);
                vertex.completed = Some(now);
                vertex.error = message.clone();
            }
            EventKind::Cancelled { .. } => {
                vertex.started.get_or_insert(now);
                vertex.completed = Some(now);
                vertex.error = "context canceled".to_owned();
            }
            EventKind::Log { stream, line, .. } => {
                let mut msg = line.clone().into_bytes();
                msg.push(b'\n');
                return Some(StatusResponse {
                    logs: vec![VertexLog {
                        vertex: digest,
                        timestamp: Some(now),
                        stream: match stream {
                            LogStream::Stdout => 1,
                            LogStream::Stderr => 2,
                        },
                        msg,
                    }],
                    ..StatusResponse::default()
                });
            }
            EventKind::Warning(warning) => {
                return Some(StatusResponse {
                    warnings: vec![vertex_warning(&digest, warning)],
                    ..StatusResponse::default()
                });
            }
            _ => return None,
        }
        Some(StatusResponse {
            vertexes: vec![vertex.clone()],
            ..StatusResponse::default()
        })
    }

    /// The vertexes started and never completed (the build was cancelled), completed now
    /// with a cancellation error.
    pub fn cancel_unfinished(&mut self) -> Option<StatusResponse> {
        let now = timestamp(SystemTime::now());
        let vertexes: Vec<Vertex> = self
            .vertexes
            .values_mut()
            .filter(|v| v.started.is_some() && v.completed.is_none())
            .map(|v| {
                v.completed = Some(now);
                v.error = "context canceled".to_owned();
                v.clone()
            })
            .collect();
        (!vertexes.is_empty()).then(|| StatusResponse {
            vertexes,
            ..StatusResponse::default()
        })
    }
}
