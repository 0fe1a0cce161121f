//! fsutil's sender: the walk's STATs (then an empty one), sent from a blocking thread while
//! the receiver's REQs are answered, each with the file's DATA packets (then an empty DATA);
//! several files in flight at once, as fsutil's senders, their packets interleaved (each
//! names its file). The receiver's FIN is answered with FIN once the walk is complete and
//! every requested file sent.
//!
//! The walk hands its STATs over by the hundred, and requested files are read a few dozen
//! at a time and sent as one [`Batch`] (see [`super`] on why).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::Stream;
use hoist_proto::fsutil_types::{Packet, PacketType};
use tokio::io::AsyncReadExt as _;
use tokio::sync::mpsc;

use super::walk::{self, Filter, WalkError};
use super::{next_packet, packet, peer_error, Batch, Error};

/// How many tasks read and send requested files at once (fsutil runs four senders).
const SENDERS: usize = 4;

/// How many STATs the walk gathers into one batch.
const STAT_BURST: usize = 256;

/// Files up to this size are read in one blocking call; larger ones are streamed.
const READ_WHOLE: u64 = 1024 * 1024;

/// The largest DATA packet.
const DATA_CHUNK: usize = 32 * 1024;

/// How many requested files a sender takes at once: read on one trip to a blocking thread
/// and sent as one batch (a small file costs less than the trip and the wake-ups).
const FILES_PER_TRIP: usize = 32;

/// How many bytes of small files one batch holds at most (past it, the rest of the files
/// taken go on the next trip).
const BATCH_BYTES: u64 = 1024 * 1024;

/// How [`send`] runs.
#[derive(Debug, Clone, Default)]
pub struct SendOptions {
    /// Which entries go ([`Filter`]: the call's include, exclude and follow patterns).
    pub filter: Filter,
    /// Give up when the receiver sends nothing for this long.
    pub idle: Option<Duration>,
}

/// Sends the tree at `root` to the receiver whose packets are `incoming`, this side's going
/// into `outgoing` in batches (an ERR when it fails; make it [`super::BATCHES`] long, and
/// stream it with [`super::packets`]). Returns how many files' data the receiver asked
/// for, once it has FIN (or ended its stream).
pub async fn send<S>(
    root: PathBuf,
    incoming: S,
    outgoing: mpsc::Sender<Batch>,
    options: &SendOptions,
) -> Result<u64, Error>
where
    S: Stream<Item = Result<Packet, tonic::Status>> + Unpin,
{
    let result = send_inner(root, incoming, &outgoing, options).await;
    if let Err(error) = &result {
        let err = packet(PacketType::PacketErr, 0, error.to_string().into_bytes());
        let _ = outgoing.send(vec![err]).await;
    }
    result
}

/// The files the walk sent STATs of, by id (ascending, as the walk numbers them), with the
/// size it saw, until the receiver asks for each.
#[derive(Debug, Default)]
struct Files(Vec<(u32, Option<(PathBuf, u64)>)>);

impl Files {
    /// The path and size of file `id`, once: `None` for an id that is no file, or was
    /// taken.
    fn take(&mut self, id: u32) -> Option<(PathBuf, u64)> {
        let at = self.0.binary_search_by_key(&id, |(n, _)| *n).ok()?;
        self.0[at].1.take()
    }
}

async fn send_inner<S>(
    root: PathBuf,
    mut incoming: S,
    tx: &mpsc::Sender<Batch>,
    options: &SendOptions,
) -> Result<u64, Error>
where
    S: Stream<Item = Result<Packet, tonic::Status>> + Unpin,
{
    let files: Arc<Mutex<Files>> = Arc::default();
    let walker = {
        let files = Arc::clone(&files);
        let tx = tx.clone();
        let filter = options.filter.clone();
        tokio::task::spawn_blocking(move || {
            let mut id = 0u32;
            // STATs go out in batches: each wakes the tasks down the stream (the gRPC
            // encoder, the session tunnel) once, and they fill frames, not one each.
            // The batch's files are known to the request loop before its STATs leave.
            let mut burst = Vec::with_capacity(STAT_BURST);
            let mut burst_files = Vec::with_capacity(STAT_BURST);
            let flush =
                |burst: &mut Batch, burst_files: &mut Vec<(u32, Option<(PathBuf, u64)>)>| {
                    files
                        .lock()
                        .map_err(|_| WalkError::Closed)?
                        .0
                        .append(burst_files);
                    let batch = std::mem::replace(burst, Vec::with_capacity(STAT_BURST));
                    tx.blocking_send(batch).map_err(|_| WalkError::Closed)
                };
            walk::walk(&root, &filter, |entry| {
                if let Some(path) = entry.data {
                    let size = u64::try_from(entry.stat.size).unwrap_or(0);
                    burst_files.push((id, Some((path, size))));
                }
                id += 1;
                burst.push(Packet {
                    r#type: PacketType::PacketStat as i32,
                    stat: Some(entry.stat),
                    ..Packet::default()
                });
                match burst.len() < STAT_BURST {
                    true => Ok(()),
                    false => flush(&mut burst, &mut burst_files),
                }
            })?;
            burst.push(packet(PacketType::PacketStat, 0, Vec::new()));
            flush(&mut burst, &mut burst_files)
        })
    };
    let mut walked = Some(tokio::spawn(async move {
        match walker.await {
            Ok(result) => result.map_err(Error::from),
            Err(e) => Err(Error::Walk(WalkError::Io {
                path: PathBuf::new(),
                source: std::io::Error::other(e),
            })),
        }
    }));
    let (work, queue) = mpsc::unbounded_channel::<Job>();
    let queue = Arc::new(tokio::sync::Mutex::new(queue));
    let mut senders = tokio::task::JoinSet::new();
    for _ in 0..SENDERS {
        let queue = Arc::clone(&queue);
        let tx = tx.clone();
        senders.spawn(async move {
            loop {
                // The files requested so far, up to a batch's worth (the receiver asks for
                // many at once); a file to stream ends the take, so large files go out on
                // several senders at once.
                let mut jobs = Vec::new();
                {
                    let mut queue = queue.lock().await;
                    let Some(job) = queue.recv().await else {
                        return Ok::<(), Error>(());
                    };
                    let mut large = job.2 > READ_WHOLE;
                    jobs.push(job);
                    while jobs.len() < FILES_PER_TRIP && !large {
                        let Ok(job) = queue.try_recv() else { break };
                        large = job.2 > READ_WHOLE;
                        jobs.push(job);
                    }
                }
                send_files(jobs, &tx).await?;
            }
        });
    }
    let mut work = Some(work);
    let mut requested = 0u64;
    let finish = |senders: &mut tokio::task::JoinSet<Result<(), Error>>| {
        let mut senders = std::mem::take(senders);
        async move {
            while let Some(done) = senders.join_next().await {
                done.map_err(|e| Error::Io {
                    action: "send a file of",
                    path: PathBuf::new(),
                    source: std::io::Error::other(e),
                })??;
            }
            Ok::<(), Error>(())
        }
    };
    loop {
        // While the walk runs the receiver may rightly wait for it: no idle limit then.
        let idle = if walked.as_ref().is_some_and(|w| !w.is_finished()) {
            None
        } else {
            options.idle
        };
        let Some(received) = next_packet(&mut incoming, idle).await? else {
            break;
        };
        if let Some(error) = peer_error(&received) {
            return Err(error);
        }
        match PacketType::try_from(received.r#type) {
            Ok(PacketType::PacketReq) => {
                let file = files.lock().ok().and_then(|mut f| f.take(received.id));
                let Some((path, size)) = file else {
                    return Err(Error::Protocol(format!(
                        "a request for file id {}, which is no file to send (or was sent)",
                        received.id
                    )));
                };
                requested += 1;
                let queued = work
                    .as_ref()
                    .is_some_and(|w| w.send((received.id, path, size)).is_ok());
                if !queued {
                    // A sender failed and the queue is gone: its error is the reason.
                    break;
                }
            }
            Ok(PacketType::PacketFin) => {
                if let Some(walked) = walked.take() {
                    walked.await.map_err(|e| Error::Stream(e.to_string()))??;
                }
                // Every file asked for is sent before the answer to the receiver's FIN.
                drop(work.take());
                finish(&mut senders).await?;
                tx.send(vec![packet(PacketType::PacketFin, 0, Vec::new())])
                    .await
                    .map_err(|_| Error::Closed("before this side's FIN"))?;
                return Ok(requested);
            }
            _ => {}
        }
    }
    drop(work.take());
    finish(&mut senders).await?;
    if let Some(walked) = walked.take() {
        walked.await.map_err(|e| Error::Stream(e.to_string()))??;
    }
    // The receiver ended its stream without FIN: it wants nothing more (BuildKit cancels
    // calls whose answer it no longer needs), which is no failure of this side.
    Ok(requested)
}

/// A file to send: its id, path and the size the walk saw.
type Job = (u32, PathBuf, u64);

/// Sends the files of `jobs`: the small ones read on one trip to a blocking thread (as
/// many as [`BATCH_BYTES`] allows per trip) and sent as one batch, each file's DATA then its
/// empty DATA; larger ones streamed after them.
async fn send_files(mut jobs: Vec<Job>, tx: &mpsc::Sender<Batch>) -> Result<(), Error> {
    let gone = |_| Error::Closed("while a file was sent");
    while !jobs.is_empty() {
        let read = tokio::task::spawn_blocking(move || read_files(jobs))
            .await
            .map_err(|e| Error::Io {
                action: "read",
                path: PathBuf::new(),
                source: std::io::Error::other(e),
            })??;
        if !read.batch.is_empty() {
            tx.send(read.batch).await.map_err(gone)?;
        }
        for (id, path, file) in read.large {
            let mut file = tokio::fs::File::from_std(file);
            let mut buffer = vec![0; DATA_CHUNK];
            loop {
                let n = file
                    .read(&mut buffer)
                    .await
                    .map_err(Error::io("read", &path))?;
                if n == 0 {
                    break;
                }
                let data = packet(PacketType::PacketData, id, buffer[..n].to_vec());
                tx.send(vec![data]).await.map_err(gone)?;
            }
            let end = packet(PacketType::PacketData, id, Vec::new());
            tx.send(vec![end]).await.map_err(gone)?;
        }
        jobs = read.rest;
    }
    Ok(())
}

/// What one trip of [`send_files`] to a blocking thread read.
struct Read {
    /// The small files' packets.
    batch: Batch,
    /// The files larger than [`READ_WHOLE`], opened, to stream.
    large: Vec<(u32, PathBuf, std::fs::File)>,
    /// The files left for the next trip (the batch is full).
    rest: Vec<Job>,
}

/// Reads the files of `jobs` until [`BATCH_BYTES`] are read. As fsutil, a file that cannot
/// be opened is sent empty.
fn read_files(jobs: Vec<Job>) -> Result<Read, Error> {
    use std::io::Read as _;
    let mut read = Read {
        batch: Vec::new(),
        large: Vec::new(),
        rest: Vec::new(),
    };
    let mut bytes = 0u64;
    let mut jobs = jobs.into_iter();
    for (id, path, _) in jobs.by_ref() {
        let end = packet(PacketType::PacketData, id, Vec::new());
        let Ok(mut file) = std::fs::File::open(&path) else {
            read.batch.push(end);
            continue;
        };
        let len = file.metadata().map(|m| m.len()).unwrap_or(u64::MAX);
        if len > READ_WHOLE {
            read.large.push((id, path, file));
            continue;
        }
        let mut data = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
        file.read_to_end(&mut data)
            .map_err(Error::io("read", &path))?;
        bytes += data.len() as u64;
        if data.len() <= DATA_CHUNK {
            if !data.is_empty() {
                read.batch.push(packet(PacketType::PacketData, id, data));
            }
        } else {
            (read.batch).extend(
                (data.chunks(DATA_CHUNK)).map(|c| packet(PacketType::PacketData, id, c.to_vec())),
            );
        }
        read.batch.push(end);
        if bytes >= BATCH_BYTES {
            break;
        }
    }
    read.rest = jobs.collect();
    Ok(read)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_given_once_and_only_for_its_id() {
        let mut files = Files(vec![(1, Some(("a".into(), 1))), (4, Some(("b".into(), 2)))]);
        assert_eq!(files.take(4), Some((PathBuf::from("b"), 2)));
        assert_eq!(files.take(4), None, "sent already");
        assert_eq!(files.take(2), None, "a directory's id, or none at all");
        assert_eq!(files.take(1), Some((PathBuf::from("a"), 1)));
    }
}
