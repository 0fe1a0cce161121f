//! [`Progress`]: where a build's stages report the steps that are not graph vertices —
//! BuildKit's `[internal] load build definition from Dockerfile`, `[internal] load
//! .dockerignore`, `[internal] load metadata for …` and `exporting to …` — next to the
//! solver's own events.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use hoist_export::Output;
use hoist_solver::{Event, EventKind, VertexInfo};
use tokio::sync::mpsc::UnboundedSender;

/// A build's progress channel; reporting to nobody when it has none.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    events: Option<UnboundedSender<Event>>,
}

impl Progress {
    pub fn new(events: Option<UnboundedSender<Event>>) -> Progress {
        Progress { events }
    }

    /// The channel, for the solver.
    pub(crate) fn events(&self) -> Option<&UnboundedSender<Event>> {
        self.events.as_ref()
    }

    /// Reports the step `name` as started; [`Step::finish`] reports how it ended.
    pub(crate) fn step(&self, name: String) -> Step<'_> {
        let step = Step {
            progress: self,
            info: internal_vertex(name),
            started: Instant::now(),
        };
        step.send(EventKind::Started);
        step
    }

    /// Reports a warning about the step `name` reported earlier (BuildKit sends warnings
    /// about a vertex whenever they are found: a frontend's build checks after the
    /// Dockerfile was loaded).
    pub(crate) fn warn(&self, name: &str, warning: hoist_solver::Warning) {
        self.send(
            &internal_vertex(name.to_owned()),
            EventKind::Warning(warning),
        );
    }

    fn send(&self, vertex: &VertexInfo, kind: EventKind) {
        if let Some(events) = &self.events {
            // A closed channel means nobody renders progress any more; not an error.
            let _ = events.send(Event {
                vertex: vertex.clone(),
                kind,
            });
        }
    }

    /// The exporter's hook reporting each output as an `exporting to …` step.
    pub(crate) fn export_steps(&self) -> Option<Arc<ExportSteps>> {
        self.events.as_ref().map(|_| {
            Arc::new(ExportSteps {
                progress: self.clone(),
                started: Mutex::new(None),
            })
        })
    }
}

/// One reported step that is not a graph vertex.
pub(crate) struct Step<'a> {
    progress: &'a Progress,
    info: VertexInfo,
    started: Instant,
}

impl Step<'_> {
    fn send(&self, kind: EventKind) {
        self.progress.send(&self.info, kind);
    }

    /// Reports a line the step wrote (a warning, a summary).
    pub(crate) fn log(&self, line: String) {
        self.send(EventKind::Log {
            stream: hoist_solver::LogStream::Stderr,
            elapsed: self.started.elapsed(),
            line,
        });
    }

    /// Reports a warning about the step (a Dockerfile's build check).
    pub(crate) fn warn(&self, warning: hoist_solver::Warning) {
        self.send(EventKind::Warning(warning));
    }

    /// Reports `result` and passes it on.
    pub(crate) fn finish<T, E: std::fmt::Display>(
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
    VertexInfo::new(hoist_solver::Digest::of(name.as_bytes()), name)
}

/// Reports each export output as BuildKit's `exporting to …` step.
#[derive(Debug)]
pub(crate) struct ExportSteps {
    progress: Progress,
    /// When the output being written started (outputs are written one at a time).
    started: Mutex<Option<Instant>>,
}

impl ExportSteps {
    fn send(&self, output: &Output, kind: EventKind) {
        if let Some(name) = output.progress_name() {
            self.progress.send(&internal_vertex(name.to_owned()), kind);
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
