//! Build progress on stderr, as `--progress` asks: BuildKit's plain text (`#N [stage i/n]
//! RUN …`, `#N CACHED`, log lines, `#N DONE 0.3s`; [`plain`]), the interactive view redrawn
//! in place ([`tty`]), nothing (`quiet`), or one JSON object a line (`rawjson`, in the shape of
//! BuildKit's `SolveStatus`: `vertexes`, `logs` and `warnings`). After plain and tty
//! progress, the build's warnings are summed up as buildx does ([`warnings`]). `auto` is `tty` when stderr is a
//! terminal and `plain` otherwise, as in buildx.

pub mod plain;
pub mod tty;
pub mod warnings;

use std::io::{IsTerminal as _, Write as _};

use base64::Engine as _;
use hoist_engine::progress::{Event, EventKind, LogStream};
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};
use tokio::task::JoinHandle;

use plain::PlainRenderer;

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    Plain,
    Tty,
    Quiet,
    RawJson,
}

impl ProgressMode {
    /// The mode of a `--progress` value (clap has checked it is one of buildx's);
    /// `auto` looks at whether stderr is a terminal.
    pub fn parse(value: &str) -> ProgressMode {
        Self::parse_for(value, std::io::stderr().is_terminal())
    }

    /// [`ProgressMode::parse`] with the terminal question answered.
    fn parse_for(value: &str, stderr_is_terminal: bool) -> ProgressMode {
        match value {
            "quiet" => ProgressMode::Quiet,
            "rawjson" => ProgressMode::RawJson,
            "tty" => ProgressMode::Tty,
            "auto" if stderr_is_terminal => ProgressMode::Tty,
            _ => ProgressMode::Plain,
        }
    }
}

/// Starts rendering: send events to the sender; drop it, then await the handle, to finish.
/// The handle gives how many vertices plain progress numbered (0 in other modes), so a
/// line after the build (`#N [internal] gc`) can take the next number.
pub fn start(mode: ProgressMode) -> (UnboundedSender<Event>, JoinHandle<usize>) {
    let (tx, mut rx) = unbounded_channel::<Event>();
    if mode == ProgressMode::Tty {
        return (
            tx,
            tokio::spawn(async move {
                let warnings = tty::run(rx).await;
                print_summary(&warnings);
                0
            }),
        );
    }
    let handle = tokio::spawn(async move {
        let mut renderer = PlainRenderer::new();
        let mut warnings = Vec::new();
        while let Some(event) = rx.recv().await {
            if let EventKind::Warning(warning) = &event.kind {
                warnings.push(warning.clone());
            }
            let text = match mode {
                ProgressMode::Quiet | ProgressMode::Tty => continue,
                ProgressMode::Plain => renderer.render(&event),
                ProgressMode::RawJson => raw_json(&event),
            };
            let mut err = std::io::stderr().lock();
            // Progress is best effort: a closed stderr must not fail the build.
            let _ = err.write_all(text.as_bytes()).and_then(|()| err.flush());
        }
        // buildx sums up warnings after plain and tty progress, not after quiet or rawjson.
        if mode == ProgressMode::Plain {
            print_summary(&warnings);
        }
        renderer.numbered()
    });
    (tx, handle)
}

/// The build's warnings after its progress, as buildx prints them.
fn print_summary(warnings: &[hoist_engine::progress::Warning]) {
    let color = std::io::stderr().is_terminal() && console::colors_enabled_stderr();
    let text = warnings::summary(warnings, color, warnings::debug_from_env());
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(text.as_bytes()).and_then(|()| err.flush());
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
        EventKind::CacheMiss { reason } => serde_json::json!({
            "vertexes": [{ "digest": digest, "name": name, "cacheMiss": reason }]
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
        EventKind::Warning(warning) => {
            // BuildKit's `VertexWarning` as Go's JSON writes it: bytes in base64.
            let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
            let mut object = serde_json::json!({
                "vertex": digest,
                "level": warning.level,
                "short": b64(warning.short.as_bytes()),
                "detail": warning.detail.iter().map(|d| b64(d.as_bytes())).collect::<Vec<_>>(),
                "url": warning.url,
            });
            if let Some(source) = &warning.source {
                object["sourceInfo"] = serde_json::json!({
                    "filename": source.filename,
                    "data": b64(&source.data),
                    "language": source.language,
                });
                object["range"] = warning
                    .ranges
                    .iter()
                    .map(
                        |r| serde_json::json!({"start": {"line": r.start}, "end": {"line": r.end}}),
                    )
                    .collect();
            }
            serde_json::json!({ "warnings": [object] })
        }
        _ => serde_json::json!({
            "vertexes": [{ "digest": digest, "name": name, "completed": true,
                           "error": "context canceled" }]
        }),
    };
    format!("{value}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_is_tty_only_on_a_terminal() {
        assert_eq!(ProgressMode::parse_for("auto", true), ProgressMode::Tty);
        assert_eq!(ProgressMode::parse_for("auto", false), ProgressMode::Plain);
        assert_eq!(ProgressMode::parse_for("tty", false), ProgressMode::Tty);
        assert_eq!(ProgressMode::parse_for("plain", true), ProgressMode::Plain);
        assert_eq!(
            ProgressMode::parse_for("rawjson", true),
            ProgressMode::RawJson
        );
        assert_eq!(ProgressMode::parse_for("quiet", true), ProgressMode::Quiet);
    }
}
