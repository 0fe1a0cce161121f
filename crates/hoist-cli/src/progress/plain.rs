//! [`PlainRenderer`]: build events as BuildKit's `--progress=plain` text.

use std::collections::HashMap;
use std::fmt::Write as _;

use hoist_engine::progress::{Digest, Event, EventKind};

/// Renders events as BuildKit's plain progress:
///
/// ```text
/// #1 [base 1/2] FROM busybox
/// #1 CACHED
///
/// #2 [base 2/2] RUN make
/// #2 cache miss: parent step ran: [base 1/2] FROM busybox
/// #2 0.112 cc -o app main.c
/// #2 DONE 0.3s
/// ```
///
/// A step that runs says first why it was not cached (`#N cache miss: <reason>`, hoist's
/// own line; see the README). Vertices are numbered in the order their first event arrives. A blank line separates
/// output of different vertices.
#[derive(Debug, Default)]
pub struct PlainRenderer {
    numbers: HashMap<Digest, usize>,
    last: Option<Digest>,
}

impl PlainRenderer {
    /// A renderer that has seen nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many vertices it numbered so far.
    pub fn numbered(&self) -> usize {
        self.numbers.len()
    }

    /// The text for `event`: whole lines, each ending in `\n`.
    pub fn render(&mut self, event: &Event) -> String {
        let mut out = String::new();
        let digest = event.vertex.digest;
        if let EventKind::Warning(warning) = &event.kind {
            // As BuildKit's printer: `#N WARN: <short>` under a vertex it has shown; a
            // warning about another vertex (a gateway client's own) only in the summary.
            if let Some(&n) = self.numbers.get(&digest) {
                if self.last.is_some_and(|last| last != digest) {
                    out.push('\n');
                }
                self.last = Some(digest);
                let _ = writeln!(out, "#{n} WARN: {}", warning.short);
            }
            return out;
        }
        let next = self.numbers.len() + 1;
        let (n, first) = match self.numbers.get(&digest) {
            Some(&n) => (n, false),
            None => {
                self.numbers.insert(digest, next);
                (next, true)
            }
        };
        if self.last.is_some_and(|last| last != digest) {
            out.push('\n');
        }
        self.last = Some(digest);
        if first {
            let _ = writeln!(out, "#{n} {}", event.vertex.name);
        }
        // Writing to a String cannot fail.
        let _ = match &event.kind {
            EventKind::Started => Ok(()),
            EventKind::CacheMiss { reason } => writeln!(out, "#{n} cache miss: {reason}"),
            EventKind::Cached => writeln!(out, "#{n} CACHED"),
            EventKind::Log { elapsed, line, .. } => {
                writeln!(out, "#{n} {:.3} {line}", elapsed.as_secs_f64())
            }
            EventKind::Done { duration } => {
                writeln!(out, "#{n} DONE {:.1}s", duration.as_secs_f64())
            }
            EventKind::Error { message, .. } => writeln!(out, "#{n} ERROR: {message}"),
            EventKind::Cancelled { .. } => writeln!(out, "#{n} CANCELED"),
            // A kind the solver adds later shows as the vertex's header alone.
            _ => Ok(()),
        };
        out
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use hoist_engine::progress::{LogStream, VertexInfo};

    use super::*;

    fn vertex(name: &str) -> VertexInfo {
        VertexInfo::new(Digest::of(name.as_bytes()), name)
    }

    #[test]
    fn plain_progress_snapshot() {
        let from = vertex("[base 1/2] FROM busybox");
        let run = vertex("[base 2/2] RUN make");
        let bad = vertex("[test 1/1] RUN false");
        let events = [
            (from.clone(), EventKind::Cached),
            (
                run.clone(),
                EventKind::CacheMiss {
                    reason: "context files changed: src/main.c".into(),
                },
            ),
            (run.clone(), EventKind::Started),
            (bad.clone(), EventKind::Started),
            (
                run.clone(),
                EventKind::Log {
                    stream: LogStream::Stdout,
                    elapsed: Duration::from_millis(112),
                    line: "cc -o app main.c".into(),
                },
            ),
            (
                run.clone(),
                EventKind::Done {
                    duration: Duration::from_millis(340),
                },
            ),
            (
                bad.clone(),
                EventKind::Error {
                    duration: Duration::from_millis(20),
                    message: "exit code: 1".into(),
                },
            ),
            (
                from,
                EventKind::Cancelled {
                    duration: Duration::ZERO,
                },
            ),
        ];
        let mut renderer = PlainRenderer::new();
        let text: String = events
            .into_iter()
            .map(|(vertex, kind)| renderer.render(&Event { vertex, kind }))
            .collect();
        assert_eq!(
            text,
            "#1 [base 1/2] FROM busybox\n\
             #1 CACHED\n\
             \n\
             #2 [base 2/2] RUN make\n\
             #2 cache miss: context files changed: src/main.c\n\
             \n\
             #3 [test 1/1] RUN false\n\
             \n\
             #2 0.112 cc -o app main.c\n\
             #2 DONE 0.3s\n\
             \n\
             #3 ERROR: exit code: 1\n\
             \n\
             #1 CANCELED\n"
        );
    }

    #[test]
    fn a_warning_shows_under_its_vertex_and_not_for_an_unseen_one() {
        let load = vertex("[internal] load build definition from Dockerfile");
        let warning = |short: &str| {
            EventKind::Warning(hoist_engine::progress::Warning {
                level: 1,
                short: short.into(),
                ..Default::default()
            })
        };
        let events = [
            (load.clone(), EventKind::Started),
            (
                load.clone(),
                warning("NoEmptyContinuation: Empty continuation line (line 3)"),
            ),
            (vertex("the client's own"), warning("not inline")),
            (
                load,
                EventKind::Done {
                    duration: Duration::from_millis(10),
                },
            ),
        ];
        let mut renderer = PlainRenderer::new();
        let text: String = events
            .into_iter()
            .map(|(vertex, kind)| renderer.render(&Event { vertex, kind }))
            .collect();
        assert_eq!(
            text,
            "#1 [internal] load build definition from Dockerfile\n\
             #1 WARN: NoEmptyContinuation: Empty continuation line (line 3)\n\
             #1 DONE 0.0s\n"
        );
        assert_eq!(renderer.numbered(), 1);
    }
}
