//! The interactive progress view (`--progress=tty`, and `auto` on a terminal), in the shape
//! of buildx's:
//!
//! ```text
//! [+] Building 3.2s (4/6)
//!  => [internal] load build definition from Dockerfile                  DONE 0.0s
//!  => [base 1/3] FROM localhost:5000/busybox:latest@sha256:…          CACHED 0.0s
//!  => [base 2/3] RUN make                                                    2.1s
//!  => => # cc -o app main.c
//! ```
//!
//! [`TtyView`] is the state (steps in the order they were first heard of, each with its
//! status and last log lines) and draws frames as plain lines for a given width and clock;
//! [`run`] feeds it events and redraws in place every [`REDRAW`] on stderr. Finished steps
//! take one line with their status and duration; running ones show a live timer and their
//! last [`LOG_TAIL`] log lines. buildx writes `CACHED`/`ERROR` before the name; here every
//! status sits in the right column so the durations line up and `DONE` is visible too.
//!
//! Terminal control (cursor movement, clearing, size, display width, colours honouring
//! `NO_COLOR`/`CLICOLOR`) comes from the `console` crate: it covers all of that in one
//! well-kept crate (the one under indicatif), where crossterm would still need a separate
//! crate for ANSI-aware width measuring and truncation.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use console::{measure_text_width, strip_ansi_codes, truncate_str, Style, Term};
use hoist_engine::progress::{Digest, Event, EventKind, Warning};
use tokio::sync::mpsc::UnboundedReceiver;

/// How often the view is redrawn while events arrive (not once per event).
pub const REDRAW: Duration = Duration::from_millis(120);

/// Log lines shown under a running step.
pub const LOG_TAIL: usize = 6;

/// Where a step is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Running { since: Instant },
    Done(Duration),
    Cached,
    Error(Duration),
    Cancelled(Duration),
}

#[derive(Debug, Clone)]
struct Step {
    name: String,
    status: Status,
    /// The last [`LOG_TAIL`] lines.
    logs: Vec<String>,
    /// Its warnings' short texts, shown under it as BuildKit's view does (`=> WARN: …`).
    warnings: Vec<String>,
}

/// The state of the view: every step heard of so far.
#[derive(Debug)]
pub struct TtyView {
    started: Instant,
    steps: Vec<Step>,
    by_digest: HashMap<Digest, usize>,
}

/// A frame line and how to colour it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tone {
    Plain,
    Done,
    Error,
    Log,
    Warn,
}

impl TtyView {
    /// A view whose build clock starts at `started`.
    pub fn new(started: Instant) -> TtyView {
        TtyView {
            started,
            steps: Vec::new(),
            by_digest: HashMap::new(),
        }
    }

    /// Takes in `event`, which happened at `now`.
    pub fn apply(&mut self, event: &Event, now: Instant) {
        // A warning shows under its step (and in the summary after the frame); it neither
        // adds a step nor ends one.
        if let EventKind::Warning(warning) = &event.kind {
            if let Some(&i) = self.by_digest.get(&event.vertex.digest) {
                self.steps[i].warnings.push(clean_log_line(&warning.short));
            }
            return;
        }
        let index = match self.by_digest.get(&event.vertex.digest) {
            Some(&i) => i,
            None => {
                self.steps.push(Step {
                    name: event.vertex.name.to_string(),
                    status: Status::Running { since: now },
                    logs: Vec::new(),
                    warnings: Vec::new(),
                });
                self.by_digest
                    .insert(event.vertex.digest, self.steps.len() - 1);
                self.steps.len() - 1
            }
        };
        let step = &mut self.steps[index];
        match &event.kind {
            EventKind::Started => step.status = Status::Running { since: now },
            EventKind::Cached => step.status = Status::Cached,
            // The plain and JSON views say why; this one only shows the step run.
            EventKind::CacheMiss { .. } => {}
            EventKind::Log { line, .. } => {
                if step.logs.len() == LOG_TAIL {
                    step.logs.remove(0);
                }
                step.logs.push(clean_log_line(line));
            }
            EventKind::Done { duration } => step.status = Status::Done(*duration),
            EventKind::Error { duration, .. } => step.status = Status::Error(*duration),
            EventKind::Cancelled { duration } => step.status = Status::Cancelled(*duration),
            // A kind added later shows as finished without a status word.
            _ => step.status = Status::Done(Duration::ZERO),
        }
    }

    /// Whether a step is running (the frame changes with the clock alone).
    pub fn has_running(&self) -> bool {
        self.steps
            .iter()
            .any(|s| matches!(s.status, Status::Running { .. }))
    }

    /// The frame at `now` for a terminal `width` columns wide, without colours (what the
    /// screen shows, colours aside). `finished` marks the last frame of the build (the
    /// header says `FINISHED`).
    #[cfg(test)]
    pub fn frame(&self, now: Instant, width: usize, finished: bool) -> Vec<String> {
        self.lines(now, width, finished)
            .into_iter()
            .map(|(line, _)| line)
            .collect()
    }

    /// The frame's lines, each with its colour.
    fn lines(&self, now: Instant, width: usize, finished: bool) -> Vec<(String, Tone)> {
        let width = width.max(20);
        let done = self
            .steps
            .iter()
            .filter(|s| !matches!(s.status, Status::Running { .. }))
            .count();
        let mut header = format!(
            "[+] Building {:.1}s ({done}/{})",
            now.saturating_duration_since(self.started).as_secs_f64(),
            self.steps.len()
        );
        if finished {
            header.push_str(" FINISHED");
        }
        let mut out = vec![(truncate(&header, width), Tone::Plain)];
        for step in &self.steps {
            let (right, tone) = match step.status {
                Status::Running { since } => (
                    format!("{:.1}s", now.saturating_duration_since(since).as_secs_f64()),
                    Tone::Plain,
                ),
                Status::Done(d) => (format!("DONE {:.1}s", d.as_secs_f64()), Tone::Done),
                Status::Cached => ("CACHED 0.0s".to_owned(), Tone::Done),
                Status::Error(d) => (format!("ERROR {:.1}s", d.as_secs_f64()), Tone::Error),
                Status::Cancelled(d) => (format!("CANCELED {:.1}s", d.as_secs_f64()), Tone::Error),
            };
            out.push((columns(&format!(" => {}", step.name), &right, width), tone));
            if matches!(step.status, Status::Running { .. }) {
                for log in &step.logs {
                    out.push((truncate(&format!(" => => # {log}"), width), Tone::Log));
                }
            }
            for warning in &step.warnings {
                out.push((truncate(&format!(" => WARN: {warning}"), width), Tone::Warn));
            }
        }
        out
    }
}

/// `left` and `right` on one line of `width` columns, `right` flush right; `left` is cut
/// when both do not fit.
fn columns(left: &str, right: &str, width: usize) -> String {
    let right_width = measure_text_width(right);
    let room = width.saturating_sub(right_width + 1);
    let left = truncate(left, room);
    let pad = width.saturating_sub(measure_text_width(&left) + right_width);
    format!("{left}{}{right}", " ".repeat(pad.max(1)))
}

/// Keeps a redrawn frame within a terminal `rows` high: lines that scrolled above the top
/// could not be redrawn, so the oldest lines under the header go (the final frame is
/// printed whole, as it is never redrawn).
fn fit_height<T>(lines: &mut Vec<T>, rows: usize) {
    let room = rows.saturating_sub(1).max(2);
    if lines.len() > room {
        let remove = lines.len() - room;
        lines.drain(1..=remove);
    }
}

/// `text` cut to `width` columns (wide characters count double).
fn truncate(text: &str, width: usize) -> String {
    truncate_str(text, width, "").into_owned()
}

/// A log line fit for one terminal row: no escape sequences, tabs as spaces, no other
/// control characters.
fn clean_log_line(line: &str) -> String {
    let stripped = strip_ansi_codes(line);
    // A progress bar redraws with `\r`: what the terminal would show is the last part.
    let last = stripped.rsplit('\r').next().unwrap_or_default();
    last.chars()
        .filter_map(|c| match c {
            '\t' => Some(' '),
            c if c.is_control() => None,
            c => Some(c),
        })
        .collect()
}

/// Draws frames on stderr, each over the previous one.
#[derive(Debug)]
struct Screen {
    term: Term,
    /// Lines the previous frame took.
    drawn: usize,
    colors: bool,
}

impl Screen {
    fn draw(&mut self, view: &TtyView, now: Instant, finished: bool) -> std::io::Result<()> {
        let (rows, cols) = self.term.size();
        let mut lines = view.lines(now, usize::from(cols), finished);
        if !finished {
            fit_height(&mut lines, usize::from(rows));
        }
        if self.drawn > 0 {
            self.term.move_cursor_up(self.drawn)?;
        }
        self.term.clear_to_end_of_screen()?;
        for (line, tone) in &lines {
            let styled = match (self.colors, tone) {
                (false, _) | (true, Tone::Plain) => line.clone(),
                (true, Tone::Done) => Style::new().blue().apply_to(line).to_string(),
                (true, Tone::Error) => Style::new().red().apply_to(line).to_string(),
                (true, Tone::Log) => Style::new().dim().apply_to(line).to_string(),
                (true, Tone::Warn) => Style::new().yellow().apply_to(line).to_string(),
            };
            self.term.write_line(&styled)?;
        }
        self.term.flush()?;
        self.drawn = lines.len();
        Ok(())
    }
}

/// Renders `events` on stderr until the channel closes; the final frame stays. Gives the
/// warnings among them, for the summary after the frame.
pub async fn run(mut events: UnboundedReceiver<Event>) -> Vec<Warning> {
    let mut warnings = Vec::new();
    let mut view = TtyView::new(Instant::now());
    let mut screen = Screen {
        term: Term::buffered_stderr(),
        drawn: 0,
        // Off with NO_COLOR (or CLICOLOR=0), as `console` reads them.
        colors: console::colors_enabled_stderr(),
    };
    let mut tick = tokio::time::interval(REDRAW);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut dirty = true;
    // Progress is best effort: a failing terminal must not fail the build.
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(event) => {
                    if let EventKind::Warning(warning) = &event.kind {
                        warnings.push(warning.clone());
                    }
                    view.apply(&event, Instant::now());
                    dirty = true;
                }
                None => break,
            },
            _ = tick.tick() => {
                if dirty || view.has_running() {
                    let _ = screen.draw(&view, Instant::now(), false);
                    dirty = false;
                }
            }
        }
    }
    let _ = screen.draw(&view, Instant::now(), true);
    warnings
}

#[cfg(test)]
mod tests {
    use hoist_engine::progress::{LogStream, VertexInfo};

    use super::*;

    fn vertex(name: &str) -> VertexInfo {
        VertexInfo::new(Digest::of(name.as_bytes()), name)
    }

    fn event(name: &str, kind: EventKind) -> Event {
        Event {
            vertex: vertex(name),
            kind,
        }
    }

    fn log(name: &str, line: &str) -> Event {
        event(
            name,
            EventKind::Log {
                stream: LogStream::Stdout,
                elapsed: Duration::ZERO,
                line: line.into(),
            },
        )
    }

    const FROM: &str = "[base 1/3] FROM localhost:5000/busybox:latest";
    const RUN: &str = "[base 2/3] RUN for i in 1 2 3 4 5 6 7 8; do echo line $i; done";
    const BAD: &str = "[stage-2 1/1] RUN false";

    /// A build 2.5 s in: the base cached, a RUN that printed 8 lines running since 1 s, a
    /// failed step.
    fn view() -> (TtyView, Instant) {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut view = TtyView::new(t0);
        view.apply(
            &event(
                "[internal] load build definition from Dockerfile",
                EventKind::Started,
            ),
            at(0),
        );
        view.apply(
            &event(
                "[internal] load build definition from Dockerfile",
                EventKind::Done {
                    duration: Duration::from_millis(20),
                },
            ),
            at(20),
        );
        view.apply(&event(FROM, EventKind::Cached), at(100));
        view.apply(&event(RUN, EventKind::Started), at(1000));
        for i in 1..=8 {
            view.apply(&log(RUN, &format!("line {i}")), at(1000 + i * 100));
        }
        view.apply(&event(BAD, EventKind::Started), at(1500));
        view.apply(&log(BAD, "not shown once failed"), at(1550));
        view.apply(
            &event(
                BAD,
                EventKind::Error {
                    duration: Duration::from_millis(100),
                    message: "exit code: 1".into(),
                },
            ),
            at(1600),
        );
        (view, at(2500))
    }

    #[test]
    fn frame_shows_header_collapsed_steps_and_live_log_tail() {
        let (view, now) = view();
        let frame = view.frame(now, 80, false);
        let expected = [
            "[+] Building 2.5s (3/4)",
            " => [internal] load build definition from Dockerfile                   DONE 0.0s",
            " => [base 1/3] FROM localhost:5000/busybox:latest                    CACHED 0.0s",
            " => [base 2/3] RUN for i in 1 2 3 4 5 6 7 8; do echo line $i; done          1.5s",
            " => => # line 3",
            " => => # line 4",
            " => => # line 5",
            " => => # line 6",
            " => => # line 7",
            " => => # line 8",
            " => [stage-2 1/1] RUN false                                           ERROR 0.1s",
        ];
        assert_eq!(frame, expected);
        assert!(frame.iter().all(|l| measure_text_width(l) <= 80));
    }

    #[test]
    fn lines_are_cut_to_the_width_and_durations_stay() {
        let (view, now) = view();
        let frame = view.frame(now, 40, false);
        assert_eq!(frame[0], "[+] Building 2.5s (3/4)");
        assert_eq!(frame[2], " => [base 1/3] FROM localhos CACHED 0.0s");
        assert_eq!(frame[3], " => [base 2/3] RUN for i in 1 2 3 4 1.5s");
        assert_eq!(frame[4], " => => # line 3");
        assert!(
            frame.iter().all(|l| measure_text_width(l) <= 40),
            "{frame:#?}"
        );
    }

    #[test]
    fn final_frame_collapses_every_step_and_says_finished() {
        let (mut view, now) = view();
        view.apply(
            &event(
                RUN,
                EventKind::Done {
                    duration: Duration::from_millis(1700),
                },
            ),
            now,
        );
        let frame = view.frame(now, 60, true);
        assert_eq!(frame[0], "[+] Building 2.5s (4/4) FINISHED");
        assert_eq!(frame.len(), 5, "{frame:#?}");
        assert_eq!(
            frame[3],
            " => [base 2/3] RUN for i in 1 2 3 4 5 6 7 8; do ec DONE 1.7s"
        );
        assert!(!view.has_running());
    }

    #[test]
    fn redrawn_frames_fit_the_terminal_height() {
        let (view, now) = view();
        let mut lines = view.frame(now, 80, false);
        fit_height(&mut lines, 6);
        assert_eq!(
            lines,
            [
                "[+] Building 2.5s (3/4)",
                " => => # line 6",
                " => => # line 7",
                " => => # line 8",
                " => [stage-2 1/1] RUN false                                           ERROR 0.1s",
            ]
        );
    }

    #[test]
    fn log_lines_lose_control_characters() {
        assert_eq!(clean_log_line("\x1b[31mred\x1b[0m\tx"), "red x");
        assert_eq!(clean_log_line("10%\r50%\r100%"), "100%");
    }

    #[test]
    fn wide_characters_count_double_when_cutting() {
        assert_eq!(truncate("ab漢字cd", 5), "ab漢");
        // 7 columns left for the name: the second character would make 8.
        assert_eq!(columns(" => 漢字漢字漢字", "1.0s", 12), " => 漢  1.0s");
    }

    #[test]
    fn a_warning_shows_under_its_step_and_adds_none() {
        let (mut view, now) = view();
        let warning = |short: &str| {
            EventKind::Warning(hoist_engine::progress::Warning {
                level: 1,
                short: short.into(),
                ..Default::default()
            })
        };
        view.apply(
            &event(
                "[internal] load build definition from Dockerfile",
                warning("NoEmptyContinuation: Empty continuation line (line 4)"),
            ),
            now,
        );
        view.apply(&event("not a step", warning("elsewhere")), now);
        let frame = view.frame(now, 80, true);
        assert_eq!(frame[0], "[+] Building 2.5s (3/4) FINISHED");
        assert_eq!(
            frame[2],
            " => WARN: NoEmptyContinuation: Empty continuation line (line 4)"
        );
        assert!(!frame.iter().any(|l| l.contains("elsewhere")), "{frame:#?}");
    }
}
