//! fsutil's DiffCopy protocol (the packets of `FileSync.DiffCopy` and `FileSend.DiffCopy`),
//! both ends, for both sides of a session: hoist's client sends its context with [`send`]
//! and writes a `local` output with [`receive`]; hoistd receives a client's context with
//! [`receive_listed`] (incrementally, into its per-shared-key copy, keeping that copy's
//! listing for the next transfer and the engine) and sends a `local` output with [`send`]. One implementation, so both sides check paths the same way.
//!
//! The conversation: the sender streams one STAT per entry in [`walk`] order (an entry's id
//! is its position in that sequence) and an empty STAT; the receiver REQuests the regular
//! files it wants by id; each comes as DATA packets ended by an empty DATA; once every
//! requested file is written the receiver sends FIN, and the sender answers FIN. Either side
//! sends ERR (its message as data) when it gives up.
//!
//! Both functions take the other end's packets as a stream (read apart from the processing,
//! see [`crate::drained`]) and send theirs into a channel; neither knows which end of the
//! session it is on. That channel carries packets in batches ([`Batch`]; [`packets`] makes
//! them one stream again): the walk's STATs by the hundred, the receiver's REQs likewise,
//! several small files' DATA together. The task that encodes them, on another thread, is
//! then woken once per batch, not once per packet: on a small machine each such wake-up
//! is a context switch on both threads, and for a tree of small files they cost more than
//! the packets themselves (a 20,000-file context: 7,500 context switches of the client
//! sending it, 600 in batches).

use std::path::PathBuf;
use std::time::Duration;

use futures::{Stream, StreamExt as _};
use hoist_proto::fsutil_types::{Packet, PacketType};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

pub mod receive;
pub mod send;
pub mod walk;

pub use receive::{receive, receive_listed, ReceiveOptions, SyncStats};
pub use send::{send, SendOptions};
pub use walk::{mode, Filter};

/// Packets sent together, in order.
pub type Batch = Vec<Packet>;

/// How many batches the channel [`send`] or [`receive`] sends into should hold.
pub const BATCHES: usize = 16;

/// The packets of `batches`, one by one (what a gRPC call streams).
pub fn packets(batches: mpsc::Receiver<Batch>) -> impl Stream<Item = Packet> + Send + 'static {
    ReceiverStream::new(batches).flat_map(futures::stream::iter)
}

/// Why a DiffCopy conversation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An entry the receiver will not write (a path that could leave the destination, a bad
    /// hard link, a duplicate); nothing was written.
    #[error("refused {0}")]
    Refused(String),
    /// The other end broke the protocol (a packet out of place, an unknown id).
    #[error("{0}")]
    Protocol(String),
    /// The other end sent ERR.
    #[error("the other end failed: {0}")]
    Peer(String),
    /// The other end's stream failed (the transport's message).
    #[error("the other end's stream failed: {0}")]
    Stream(String),
    /// The other end sent nothing for this long.
    #[error("the other end sent nothing for {}s", .0.as_secs())]
    Idle(Duration),
    /// The other end stopped reading or ended its stream early.
    #[error("the other end closed the stream {0}")]
    Closed(&'static str),
    /// A file system operation failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done (`create`, `write`, `rename`, …).
        action: &'static str,
        /// On what.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The sender's walk failed.
    #[error(transparent)]
    Walk(#[from] walk::WalkError),
}

impl Error {
    /// The gRPC code a daemon reports this error with.
    pub fn code(&self) -> tonic::Code {
        match self {
            Error::Refused(_) | Error::Protocol(_) => tonic::Code::InvalidArgument,
            Error::Peer(_) => tonic::Code::Aborted,
            Error::Stream(_) | Error::Closed(_) => tonic::Code::Unavailable,
            Error::Idle(_) => tonic::Code::DeadlineExceeded,
            Error::Io { .. } | Error::Walk(_) => tonic::Code::Internal,
        }
    }

    fn io(action: &'static str, path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.to_owned();
        move |source| Error::Io {
            action,
            path,
            source,
        }
    }
}

fn packet(kind: PacketType, id: u32, data: Vec<u8>) -> Packet {
    Packet {
        r#type: kind as i32,
        id,
        data,
        ..Packet::default()
    }
}

/// The next packet, `None` at the end of the stream; each wait bounded by `idle`.
async fn next_packet<S>(incoming: &mut S, idle: Option<Duration>) -> Result<Option<Packet>, Error>
where
    S: Stream<Item = Result<Packet, tonic::Status>> + Unpin,
{
    let item = match idle {
        Some(idle) => tokio::time::timeout(idle, incoming.next())
            .await
            .map_err(|_| Error::Idle(idle))?,
        None => incoming.next().await,
    };
    match item {
        None => Ok(None),
        Some(Ok(packet)) => Ok(Some(packet)),
        Some(Err(status)) => Err(Error::Stream(status.message().to_owned())),
    }
}

/// `packet`'s data as the other end's error, if it is an ERR.
fn peer_error(packet: &Packet) -> Option<Error> {
    (packet.r#type == PacketType::PacketErr as i32)
        .then(|| Error::Peer(String::from_utf8_lossy(&packet.data).into_owned()))
}
