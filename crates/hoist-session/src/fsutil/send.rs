//! fsutil's sender: the walk's STATs (then an empty one), sent from a blocking thread while
//! the receiver's REQs are answered, each with the file's DATA packets (then an empty DATA);
//! several files in flight at once, as fsutil's senders, their packets interleaved (each
//! names its file). The receiver's FIN is answered with FIN once the walk is complete and
//! every requested file sent.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::Stream;
use hoist_proto::fsutil_types::{Packet, PacketType};
use tokio::io::AsyncReadExt as _;
use tokio::sync::mpsc;

use super::walk::{self, Filter, WalkError};
use super::{next_packet, packet, peer_error, Error};

/// How many files the sender reads and sends at once (fsutil runs four senders).
const SENDERS: usize = 4;

/// How many STATs the walk gathers before it sends them (the outgoing channel holds 64).
const STAT_BURST: usize = 64;

/// Files up to this size are read in one blocking call; larger ones are streamed.
const READ_WHOLE: u64 = 1024 * 1024;

/// The largest DATA packet.
const DATA_CHUNK: usize = 32 * 1024;

/// How [`send`] runs.
#[derive(Debug, Clone, Default)]
pub struct SendOptions {
    /// Which entries go ([`Filter`]: the call's include, exclude and follow patterns).
    pub filter: Filter,
    /// Give up when the receiver sends nothing for this long.
    pub idle: Option<Duration>,
}

/// Sends the tree at `root` to the receiver whose packets are `incoming`, this side's going
/// into `outgoing` (an ERR when it fails). Returns how many files' data the receiver asked
/// for, once it has FIN (or ended its stream).
pub async fn send<S>(
    root: PathBuf,
    incoming: S,
    outgoing: mpsc::Sender<Packet>,
    options: &SendOptions,
) -> Result<u64, Error>
where
    S: Stream<Item = Result<Packet, tonic::Status>> + Unpin,
{
    let result = send_inner(root, incoming, &outgoing, options).await;
    if let Err(error) = &result {
        let _ = outgoing
            .send(packet(
                PacketType::PacketErr,
                0,
                error.to_string().into_bytes(),
            ))
            .await;
    }
    result
}

/// The files the walk sent STATs of, by id (ascending, as the walk numbers them), until
/// the receiver asks for each.
#[derive(Debug, Default)]
struct Files(Vec<(u32, Option<PathBuf>)>);

impl Files {
    /// The path of file `id`, once: `None` for an id that is no file, or was taken.
    fn take(&mut self, id: u32) -> Option<PathBuf> {
        let at = self.0.binary_search_by_key(&id, |(n, _)| *n).ok()?;
        self.0[at].1.take()
    }
}

async fn send_inner<S>(
    root: PathBuf,
    mut incoming: S,
    tx: &mpsc::Sender<Packet>,
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
            // STATs go out in bursts: each wakes the tasks down the stream (the gRPC
            // encoder, the session tunnel) once, and they fill one frame, not one each.
            // The burst's files are known to the request loop before its STATs leave.
            let mut burst = Vec::with_capacity(STAT_BURST);
            let mut burst_files = Vec::with_capacity(STAT_BURST);
            let flush = |burst: &mut Vec<Packet>, burst_files: &mut Vec<(u32, Option<PathBuf>)>| {
                files
                    .lock()
                    .map_err(|_| WalkError::Closed)?
                    .0
                    .append(burst_files);
                burst
                    .drain(..)
                    .try_for_each(|stat| tx.blocking_send(stat).map_err(|_| WalkError::Closed))
            };
            walk::walk(&root, &filter, |entry| {
                if let Some(path) = entry.data {
                    burst_files.push((id, Some(path)));
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
            flush(&mut burst, &mut burst_files)?;
            tx.blocking_send(packet(PacketType::PacketStat, 0, Vec::new()))
                .map_err(|_| WalkError::Closed)
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
    let (work, queue) = mpsc::unbounded_channel::<(u32, PathBuf)>();
    let queue = Arc::new(tokio::sync::Mutex::new(queue));
    let mut senders = tokio::task::JoinSet::new();
    for _ in 0..SENDERS {
        let queue = Arc::clone(&queue);
        let tx = tx.clone();
        senders.spawn(async move {
            loop {
                let job = queue.lock().await.recv().await;
                let Some((id, path)) = job else {
                    return Ok::<(), Error>(());
                };
                send_file(id, &path, &tx).await?;
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
                let path = files.lock().ok().and_then(|mut f| f.take(received.id));
                let Some(path) = path else {
                    return Err(Error::Protocol(format!(
                        "a request for file id {}, which is no file to send (or was sent)",
                        received.id
                    )));
                };
                requested += 1;
                let queued = work
                    .as_ref()
                    .is_some_and(|w| w.send((received.id, path)).is_ok());
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
                tx.send(packet(PacketType::PacketFin, 0, Vec::new()))
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

/// A file opened for sending: small ones read whole, larger ones streamed.
enum Opened {
    Whole(Vec<u8>),
    Stream(std::fs::File),
    /// As fsutil: a file that cannot be opened is sent empty.
    Unreadable,
}

async fn send_file(id: u32, path: &Path, tx: &mpsc::Sender<Packet>) -> Result<(), Error> {
    let data = |data: Vec<u8>| packet(PacketType::PacketData, id, data);
    let gone = |_| Error::Closed("while a file was sent");
    let owned = path.to_owned();
    // One trip to a blocking thread per file: open, size, and a small file's bytes.
    let opened = tokio::task::spawn_blocking(move || {
        use std::io::Read as _;
        let Ok(mut file) = std::fs::File::open(&owned) else {
            return Ok(Opened::Unreadable);
        };
        let len = file.metadata().map(|m| m.len()).unwrap_or(u64::MAX);
        if len > READ_WHOLE {
            return Ok(Opened::Stream(file));
        }
        let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
        file.read_to_end(&mut bytes).map(|_| Opened::Whole(bytes))
    })
    .await
    .unwrap_or_else(|e| Err(std::io::Error::other(e)))
    .map_err(Error::io("read", path))?;
    match opened {
        Opened::Unreadable => {}
        Opened::Whole(bytes) if bytes.len() <= DATA_CHUNK => {
            if !bytes.is_empty() {
                tx.send(data(bytes)).await.map_err(gone)?;
            }
        }
        Opened::Whole(bytes) => {
            for chunk in bytes.chunks(DATA_CHUNK) {
                tx.send(data(chunk.to_vec())).await.map_err(gone)?;
            }
        }
        Opened::Stream(file) => {
            let mut file = tokio::fs::File::from_std(file);
            let mut buffer = vec![0; DATA_CHUNK];
            loop {
                let n = file
                    .read(&mut buffer)
                    .await
                    .map_err(Error::io("read", path))?;
                if n == 0 {
                    break;
                }
                tx.send(data(buffer[..n].to_vec())).await.map_err(gone)?;
            }
        }
    }
    tx.send(data(Vec::new())).await.map_err(gone)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_given_once_and_only_for_its_id() {
        let mut files = Files(vec![(1, Some("a".into())), (4, Some("b".into()))]);
        assert_eq!(files.take(4), Some(PathBuf::from("b")));
        assert_eq!(files.take(4), None, "sent already");
        assert_eq!(files.take(2), None, "a directory's id, or none at all");
        assert_eq!(files.take(1), Some(PathBuf::from("a")));
    }
}
