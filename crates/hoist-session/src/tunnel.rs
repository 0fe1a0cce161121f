//! The byte-stream adapter: a gRPC stream of byte chunks in each direction (BuildKit's
//! `BytesMessage`, as `Control.Session` and `SSH.ForwardAgent` carry them) seen as one
//! `AsyncRead + AsyncWrite` connection, so an HTTP/2 server (or an agent socket) can run
//! over it.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::{FutureExt as _, Stream, StreamExt as _};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, DuplexStream, ReadHalf, WriteHalf};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// The size of the chunks read from the connection and sent as one message, and of the
/// in-memory pipe between the two sides.
const CHUNK: usize = 32 * 1024;

/// A message that carries bytes: the `BytesMessage` of each protobuf package that has one.
pub trait Chunk: Send + 'static {
    /// A message carrying `data`.
    fn from_data(data: Vec<u8>) -> Self;
    /// The bytes carried.
    fn into_data(self) -> Vec<u8>;
}

macro_rules! chunk {
    ($($ty:path),*) => {$(
        impl Chunk for $ty {
            fn from_data(data: Vec<u8>) -> Self {
                Self { data }
            }
            fn into_data(self) -> Vec<u8> {
                self.data
            }
        }
    )*};
}

chunk!(
    hoist_proto::control::BytesMessage,
    hoist_proto::filesync::BytesMessage,
    hoist_proto::sshforward::BytesMessage
);

/// The messages to send: what was written to the connection, in chunks.
#[derive(Debug)]
pub struct Outbound<M>(ReceiverStream<M>);

impl<M> Stream for Outbound<M> {
    type Item = M;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<M>> {
        Pin::new(&mut self.0).poll_next(cx)
    }
}

/// Where the messages received go: [`Inbound::feed`] writes them into the connection.
#[derive(Debug)]
pub struct Inbound {
    writer: WriteHalf<DuplexStream>,
}

impl Inbound {
    /// Writes each message's bytes into the connection until the stream ends (the reader
    /// then sees end of file) or fails (the error is returned, the connection closed).
    pub async fn feed<M, S, E>(mut self, mut stream: S) -> Result<(), E>
    where
        M: Chunk,
        S: Stream<Item = Result<M, E>> + Unpin,
    {
        while let Some(message) = stream.next().await {
            let data = message?.into_data();
            if self.writer.write_all(&data).await.is_err() {
                // The connection's reader is gone: nothing left to deliver to.
                break;
            }
        }
        let _ = self.writer.shutdown().await;
        Ok(())
    }
}

/// A connection over a stream of messages in each direction: the `DuplexStream` to serve
/// (or read and write), the [`Outbound`] messages to send for what is written to it, and the
/// [`Inbound`] feeder that writes the received messages into it. The outbound stream ends
/// when the connection is closed (or dropped).
pub fn tunnel<M: Chunk>() -> (DuplexStream, Outbound<M>, Inbound) {
    let (ours, theirs) = tokio::io::duplex(4 * CHUNK);
    let (reader, writer) = tokio::io::split(theirs);
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(pump(reader, tx));
    (ours, Outbound(ReceiverStream::new(rx)), Inbound { writer })
}

async fn pump<M: Chunk>(mut reader: ReadHalf<DuplexStream>, tx: mpsc::Sender<M>) {
    let mut buffer = vec![0; CHUNK];
    loop {
        match reader.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(mut n) => {
                // A burst of small writes (an HTTP/2 frame per file-sync STAT) goes out as
                // one message: after each read, the writer gets one turn to add more.
                while n < CHUNK {
                    tokio::task::yield_now().await;
                    match reader.read(&mut buffer[n..]).now_or_never() {
                        Some(Ok(more)) if more > 0 => n += more,
                        _ => break,
                    }
                }
                if tx.send(M::from_data(buffer[..n].to_vec())).await.is_err() {
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hoist_proto::control::BytesMessage;

    #[tokio::test]
    async fn bytes_written_become_messages_and_messages_become_bytes() {
        let (mut io, mut outbound, inbound) = tunnel::<BytesMessage>();
        let incoming = futures::stream::iter(vec![
            Ok::<_, std::io::Error>(BytesMessage::from_data(b"hel".to_vec())),
            Ok(BytesMessage::from_data(b"lo".to_vec())),
        ]);
        tokio::spawn(inbound.feed(incoming));
        let mut read = Vec::new();
        io.write_all(b"ping").await.unwrap();
        let sent = outbound.next().await.unwrap();
        assert_eq!(sent.data, b"ping");
        let (mut r, w) = tokio::io::split(io);
        r.read_to_end(&mut read).await.unwrap();
        assert_eq!(read, b"hello");
        drop((r, w));
        assert!(
            outbound.next().await.is_none(),
            "closing ends the outbound stream"
        );
    }
}
