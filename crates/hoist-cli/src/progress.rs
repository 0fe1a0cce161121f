//! Build progress on stderr, as `--progress` asks: BuildKit's plain text (`#N [stage i/n]
//! RUN …`, `#N CACHED`, log lines, `#N DONE 0.3s`), nothing (`quiet`), or one JSON object a
//! line (`rawjson`, in the shape of BuildKit's `SolveStatus`: `vertexes` and `logs`).
//! `auto` and `tty` render plain text: hoist has no interactive display yet.

use std::io::Write as _;

use base64::Engine as _;
use hoist_solver::{Event, EventKind, LogStream, PlainRenderer};
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};
use tokio::task::JoinHandle;

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    Plain,
    Quiet,
    RawJson,
}

impl ProgressMode {
    /// The mode of a `--progress` value (clap has checked it is one of buildx's).
    pub fn parse(value: &str) -> ProgressMode {
        match value {
            "quiet" => ProgressMode::Quiet,
            "rawjson" => ProgressMode::RawJson,
            _ => ProgressMode::Plain,
        }
    }
}

/// Starts rendering: send events to the sender; drop it, then await the handle, to finish.
pub fn start(mode: ProgressMode) -> (UnboundedSender<Event>, JoinHandle<()>) {
    let (tx, mut rx) = unbounded_channel::<Event>();
    let handle = tokio::spawn(async move {
        let mut renderer = PlainRenderer::new();
        while let Some(event) = rx.recv().await {
            let text = match mode {
                ProgressMode::Quiet => continue,
                ProgressMode::Plain => renderer.render(&event),
                ProgressMode::RawJson => raw_json(&event),
            };
            let mut err = std::io::stderr().lock();
            // Progress is best effort: a closed stderr must not fail the build.
            let _ = err.write_all(text.as_bytes()).and_then(|()| err.flush());
        }
    });
    (tx, handle)
}

/// One `SolveStatus`-shaped JSON line for `event`.
fn raw_json(event: &Event) -> String {
    let digest = event.vertex.digest.to_string();
    let name = event.vertex.name.to_string();
    let value = match &event.kind {
        EventKind::Log { stream, line, .. } => serde_json::json!({
            "logs": [{
                "vertex": digest,
                "stream": match stream { LogStream::Stdout => 1, LogStream::Stderr => 2 },
                "data": base64::engine::general_purpose::STANDARD.encode(format!("{line}\n")),
            }]
        }),
        EventKind::Cached => serde_json::json!({
            "vertexes": [{ "digest": digest, "name": name, "cached": true }]
        }),
        EventKind::Started => serde_json::json!({
            "vertexes": [{ "digest": digest, "name": name, "started": true }]
        }),
        EventKind::Done { duration } => serde_json::json!({
            "vertexes": [{ "digest": digest, "name": name, "completed": true,
                           "duration": duration.as_secs_f64() }]
        }),
        EventKind::Error { message, .. } => serde_json::json!({
            "vertexes": [{ "digest": digest, "name": name, "completed": true, "error": message }]
        }),
        _ => serde_json::json!({
            "vertexes": [{ "digest": digest, "name": name, "completed": true,
                           "error": "context canceled" }]
        }),
    };
    format!("{value}\n")
}
