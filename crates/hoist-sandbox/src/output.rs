//! Streaming a process's output to the caller line by line: [`OutputSink`], [`OutputStream`],
//! [`CollectedOutput`], and the pump both backends use.

use std::io::{BufRead, BufReader, Read};
use std::sync::mpsc;

use crate::cancel::{CancelToken, POLL_INTERVAL};

/// Longest piece handed to a sink at once; longer lines arrive in pieces of this size.
pub const MAX_LINE: usize = 64 * 1024;

/// Which of the process's outputs a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputStream {
    Stdout,
    Stderr,
}

/// Receives the process's output as it comes, one line per call on the calling thread.
/// A line keeps its terminating `\n`; the last one may lack it; very long lines arrive in
/// pieces of at most [`MAX_LINE`] bytes.
pub trait OutputSink {
    fn line(&mut self, stream: OutputStream, line: &[u8]);
}

impl<F: FnMut(OutputStream, &[u8])> OutputSink for F {
    fn line(&mut self, stream: OutputStream, line: &[u8]) {
        self(stream, line)
    }
}

/// A sink that keeps everything, for callers that want the output at the end (and tests).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CollectedOutput {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl CollectedOutput {
    /// Stdout as (lossy) UTF-8.
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Stderr as (lossy) UTF-8.
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

impl OutputSink for CollectedOutput {
    fn line(&mut self, stream: OutputStream, line: &[u8]) {
        match stream {
            OutputStream::Stdout => self.stdout.extend_from_slice(line),
            OutputStream::Stderr => self.stderr.extend_from_slice(line),
        }
    }
}

/// Reads `stdout` and `stderr` on two threads and hands their lines to `sink` on this thread
/// until both are closed. While `cancel` is set, `kill` is called every poll interval until
/// the outputs close (the process tree is gone).
pub(crate) fn pump(
    stdout: impl Read + Send + 'static,
    stderr: impl Read + Send + 'static,
    sink: &mut dyn OutputSink,
    cancel: &CancelToken,
    kill: &mut dyn FnMut(),
) {
    let (tx, rx) = mpsc::channel::<(OutputStream, Vec<u8>)>();
    let readers = [
        spawn_reader(OutputStream::Stdout, Box::new(stdout), tx.clone()),
        spawn_reader(OutputStream::Stderr, Box::new(stderr), tx),
    ];
    loop {
        match rx.recv_timeout(POLL_INTERVAL) {
            Ok((stream, line)) => sink.line(stream, &line),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if cancel.is_cancelled() {
                    kill();
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    for reader in readers {
        // A reader thread only ends by returning; a panic in it would already have closed
        // its channel end, so there is nothing left to report.
        let _ = reader.join();
    }
}

fn spawn_reader(
    stream: OutputStream,
    input: Box<dyn Read + Send>,
    tx: mpsc::Sender<(OutputStream, Vec<u8>)>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(input);
        loop {
            let mut line = Vec::new();
            // `take` bounds a line without a newline to MAX_LINE bytes.
            match (&mut reader)
                .take(MAX_LINE as u64)
                .read_until(b'\n', &mut line)
            {
                Ok(0) => return,
                Ok(_) => {
                    if tx.send((stream, line)).is_err() {
                        return;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                // The pipe broke: the process is gone, there is nothing more to read.
                Err(_) => return,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pump_delivers_lines_with_newlines_and_the_unterminated_tail() {
        let mut lines = Vec::new();
        let mut sink = |stream: OutputStream, line: &[u8]| lines.push((stream, line.to_vec()));
        pump(
            &b"one\ntwo\nthree"[..],
            &b"err\n"[..],
            &mut sink,
            &CancelToken::new(),
            &mut || {},
        );
        let out: Vec<_> = lines
            .iter()
            .filter(|(s, _)| *s == OutputStream::Stdout)
            .map(|(_, l)| l.clone())
            .collect();
        assert_eq!(
            out,
            vec![b"one\n".to_vec(), b"two\n".to_vec(), b"three".to_vec()]
        );
        assert!(lines.contains(&(OutputStream::Stderr, b"err\n".to_vec())));
    }

    #[test]
    fn pump_splits_overlong_lines() {
        let long = vec![b'x'; MAX_LINE + 10];
        let mut collected = Vec::new();
        let mut sink = |_: OutputStream, line: &[u8]| collected.push(line.len());
        pump(
            std::io::Cursor::new(long),
            &b""[..],
            &mut sink,
            &CancelToken::new(),
            &mut || {},
        );
        assert_eq!(collected, vec![MAX_LINE, 10]);
    }
}
