//! [`TempSink`]: how an ingest's bytes reach its temp file.
//!
//! A small blob (a manifest, a config, a layer of a few files) is written through a plain
//! buffer on the writer's thread. Once a blob has grown past [`OFFLOAD_AFTER`], the file
//! writes move to a thread of their own, fed chunks of [`CHUNK`] bytes through a short
//! queue: the ingest's caller goes on reading and hashing the next chunk while the previous
//! one is copied into the page cache. For a layer of gigabytes (a RUN that wrote a large
//! file) that overlaps the sha256 with the write instead of doing one after the other, and
//! the queue keeps memory bounded to a few chunks whatever the blob's size.
//!
//! The writing thread also starts the disk's writes as it goes (see [`start_writeback`]), so
//! the commit's fsync finds little left to wait for.
//!
//! A failed write on the thread stops it; the caller sees the error at its next write, at
//! [`TempSink::flush`] or at [`TempSink::finish`], never later than the commit.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::JoinHandle;

/// Bytes written on the caller's thread before the writes move to a thread of their own.
pub(crate) const OFFLOAD_AFTER: u64 = 8 << 20;
/// The size of one chunk handed to the writing thread.
const CHUNK: usize = 1 << 20;
/// Chunks queued for the writing thread beyond the one it writes.
const QUEUED: usize = 2;
/// How often the writing thread starts the disk writes of what it wrote.
const WRITEBACK_EVERY: u64 = 16 << 20;
/// Buffer of the caller-thread writes.
const BUFFER: usize = 128 * 1024;

/// The writing side of an ingest's temp file.
#[derive(Debug)]
pub(crate) struct TempSink {
    state: State,
}

#[derive(Debug)]
enum State {
    /// Written on the caller's thread; `written` bytes so far.
    Direct {
        writer: BufWriter<File>,
        written: u64,
    },
    /// Written by a thread of its own.
    Offloaded(Offloaded),
    /// Between states, or after a failure that lost the file.
    Gone,
}

#[derive(Debug)]
struct Offloaded {
    /// The chunk being filled.
    pending: Vec<u8>,
    to_writer: Option<SyncSender<Message>>,
    /// Emptied chunks coming back, so a large blob allocates only a few.
    recycled: Receiver<Vec<u8>>,
    thread: Option<JoinHandle<io::Result<File>>>,
}

#[derive(Debug)]
enum Message {
    Chunk(Vec<u8>),
    /// Answer once everything before it is written.
    Flush(SyncSender<()>),
}

impl TempSink {
    pub(crate) fn new(file: File) -> Self {
        Self {
            state: State::Direct {
                writer: BufWriter::with_capacity(BUFFER, file),
                written: 0,
            },
        }
    }

    /// Appends `bytes`: done, or queued for the writing thread.
    pub(crate) fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match &mut self.state {
            State::Direct { writer, written } => {
                writer.write_all(bytes)?;
                *written += bytes.len() as u64;
                if *written >= OFFLOAD_AFTER {
                    self.offload()?;
                }
                Ok(())
            }
            State::Offloaded(offloaded) => offloaded.write_all(bytes),
            State::Gone => Err(gone()),
        }
    }

    /// Writes everything appended so far to the file (waiting for the writing thread).
    pub(crate) fn flush(&mut self) -> io::Result<()> {
        match &mut self.state {
            State::Direct { writer, .. } => writer.flush(),
            State::Offloaded(offloaded) => offloaded.flush(),
            State::Gone => Err(gone()),
        }
    }

    /// Everything written; the file back, for its fsync and rename.
    pub(crate) fn finish(mut self) -> io::Result<File> {
        match std::mem::replace(&mut self.state, State::Gone) {
            State::Direct { writer, .. } => writer.into_inner().map_err(|e| e.into_error()),
            State::Offloaded(mut offloaded) => offloaded.finish(),
            State::Gone => Err(gone()),
        }
    }

    /// Moves the writes to a thread of their own.
    fn offload(&mut self) -> io::Result<()> {
        let State::Direct { writer, .. } = std::mem::replace(&mut self.state, State::Gone) else {
            return Ok(());
        };
        let file = writer.into_inner().map_err(|e| e.into_error())?;
        self.state = State::Offloaded(Offloaded::start(file)?);
        Ok(())
    }
}

/// The writing thread: every chunk in order, until the queue closes or a write fails.
fn write_queued(
    mut file: File,
    queue: &Receiver<Message>,
    give_back: &SyncSender<Vec<u8>>,
) -> io::Result<File> {
    let mut written = 0u64;
    let mut flushing_from = 0u64;
    for message in queue {
        match message {
            Message::Chunk(mut chunk) => {
                file.write_all(&chunk)?;
                written += chunk.len() as u64;
                if written - flushing_from >= WRITEBACK_EVERY {
                    start_writeback(&file, flushing_from, written - flushing_from);
                    flushing_from = written;
                }
                chunk.clear();
                // The caller may have enough spare chunks; then this one is freed.
                let _ = give_back.try_send(chunk);
            }
            Message::Flush(done) => {
                let _ = done.send(());
            }
        }
    }
    Ok(file)
}

/// Starts the disk writes of `len` bytes at `offset` of `file` without waiting for them.
///
/// `POSIX_FADV_DONTNEED` starts writeback of the range's dirty pages (Linux's
/// `WB_SYNC_NONE`) and drops only pages already clean; the range was written a moment ago,
/// so it stays cached for whoever reads the blob next. Without it the commit's fsync waits
/// for every byte of a large blob at once; with it the disk works while the blob is still
/// being hashed. Only advice: a failure changes nothing but the fsync's wait.
fn start_writeback(file: &File, offset: u64, len: u64) {
    let _ = rustix::fs::fadvise(
        file,
        offset,
        std::num::NonZeroU64::new(len),
        rustix::fs::Advice::DontNeed,
    );
}

impl Offloaded {
    /// Starts the thread writing `file`.
    fn start(file: File) -> io::Result<Self> {
        let (to_writer, queue) = mpsc::sync_channel::<Message>(QUEUED);
        let (give_back, recycled) = mpsc::sync_channel::<Vec<u8>>(QUEUED + 2);
        let thread = std::thread::Builder::new()
            .name("hoist-ingest".into())
            .spawn(move || write_queued(file, &queue, &give_back))?;
        Ok(Self {
            pending: Vec::with_capacity(CHUNK),
            to_writer: Some(to_writer),
            recycled,
            thread: Some(thread),
        })
    }

    fn write_all(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            let room = CHUNK - self.pending.len();
            let (now, rest) = bytes.split_at(room.min(bytes.len()));
            self.pending.extend_from_slice(now);
            bytes = rest;
            if self.pending.len() == CHUNK {
                self.send_pending()?;
            }
        }
        Ok(())
    }

    fn send_pending(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let next = self
            .recycled
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(CHUNK));
        let chunk = std::mem::replace(&mut self.pending, next);
        self.send(Message::Chunk(chunk))
    }

    fn send(&mut self, message: Message) -> io::Result<()> {
        let sent = match &self.to_writer {
            Some(to_writer) => to_writer.send(message).is_ok(),
            None => false,
        };
        if sent {
            Ok(())
        } else {
            // The thread stopped: its write failed.
            Err(self.stop().err().unwrap_or_else(gone))
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send_pending()?;
        let (done, written) = mpsc::sync_channel(1);
        self.send(Message::Flush(done))?;
        match written.recv() {
            Ok(()) => Ok(()),
            Err(_) => Err(self.stop().err().unwrap_or_else(gone)),
        }
    }

    fn finish(&mut self) -> io::Result<File> {
        self.send_pending()?;
        self.stop()
    }

    /// Closes the queue and waits for the thread: the file, or the write that failed.
    fn stop(&mut self) -> io::Result<File> {
        self.to_writer = None;
        match self.thread.take() {
            Some(thread) => thread
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the ingest's writing thread panicked"))),
            None => Err(gone()),
        }
    }
}

impl Drop for Offloaded {
    fn drop(&mut self) {
        // An abandoned ingest: let the thread end before the temp file goes.
        let _ = self.stop();
    }
}

fn gone() -> io::Error {
    io::Error::other("the temp file was lost to an earlier failed write")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sink_in(dir: &tempfile::TempDir) -> (TempSink, std::path::PathBuf) {
        let path = dir.path().join("blob");
        (TempSink::new(File::create(&path).unwrap()), path)
    }

    #[test]
    fn a_large_blob_reaches_the_file_in_order_through_the_writing_thread() {
        let dir = tempfile::tempdir().unwrap();
        let (mut sink, path) = sink_in(&dir);
        // Pieces of odd sizes, some larger than a chunk, crossing the offload point.
        let data: Vec<u8> = (0..(OFFLOAD_AFTER as usize + 5 * CHUNK + 12345))
            .map(|i| (i % 251) as u8)
            .collect();
        let mut rest = &data[..];
        let mut step = 1;
        while !rest.is_empty() {
            let (now, later) = rest.split_at(step.min(rest.len()));
            sink.write_all(now).unwrap();
            rest = later;
            step = step * 7 % (3 * CHUNK) + 1;
        }
        assert!(matches!(sink.state, State::Offloaded(_)));
        sink.flush().unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), data.len() as u64);
        drop(sink.finish().unwrap());
        let back = std::fs::read(&path).unwrap();
        assert!(back == data, "the file differs from what was written");
    }

    #[test]
    fn a_small_blob_stays_on_the_callers_thread() {
        let dir = tempfile::tempdir().unwrap();
        let (mut sink, path) = sink_in(&dir);
        sink.write_all(b"a manifest, say").unwrap();
        assert!(matches!(sink.state, State::Direct { .. }));
        drop(sink.finish().unwrap());
        assert_eq!(std::fs::read(path).unwrap(), b"a manifest, say");
    }

    #[test]
    fn a_failed_write_on_the_thread_is_the_callers_error() {
        // Every write to /dev/full fails with ENOSPC.
        let Ok(full) = File::options().write(true).open("/dev/full") else {
            eprintln!("skipped: no /dev/full");
            return;
        };
        let mut sink = TempSink {
            state: State::Offloaded(Offloaded::start(full).unwrap()),
        };
        let chunk = vec![7u8; CHUNK];
        let mut failed = None;
        for _ in 0..(QUEUED + 8) {
            if let Err(e) = sink.write_all(&chunk) {
                failed = Some(e);
                break;
            }
        }
        let error = match failed {
            Some(e) => e,
            None => sink.finish().expect_err("a write to /dev/full succeeded"),
        };
        assert_eq!(error.raw_os_error(), Some(28), "{error}"); // ENOSPC
    }
}
