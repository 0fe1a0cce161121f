//! Pushing a layer while it is being compressed: the conversion's output goes both to its
//! store writer and, piece by piece, to a chunked upload running on the async runtime
//! ([`hoist_registry::RegistryClient::push_blob_stream`]), so compressing, hashing,
//! writing and uploading overlap instead of following one another.
//!
//! The store stays the source of truth: the blob is written and verified there as without
//! streaming, and the upload's closing `PUT` (with the digest) is sent only after the store
//! committed it. An upload that fails (or a conversion that fails, which abandons its
//! upload) leaves nothing in the registry; the push that follows finds the blob missing and
//! uploads it from the store, with the registry client's retries and resumes.

use std::io::{self, Write};
use std::sync::Mutex;

use bytes::Bytes;
use hoist_oci::Descriptor;
use hoist_registry::{RegistryClient, Repository, StreamPiece};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// The size of the pieces handed to the upload task.
const PIECE: usize = 1 << 20;
/// Pieces waiting for the upload task per layer: the compressor waits (bounded memory) when
/// the upload falls behind.
const QUEUED_PIECES: usize = 4;

/// Starts uploads of the layers an export converts, to one repository.
#[derive(Debug)]
pub(crate) struct LayerStreamer {
    runtime: tokio::runtime::Handle,
    client: RegistryClient,
    repository: Repository,
    uploads: Mutex<Vec<JoinHandle<hoist_registry::Result<Descriptor>>>>,
}

impl LayerStreamer {
    /// Uploads to `repository` through `client`, on the runtime of the calling task.
    pub(crate) fn new(client: RegistryClient, repository: Repository) -> Self {
        Self {
            runtime: tokio::runtime::Handle::current(),
            client,
            repository,
            uploads: Mutex::new(Vec::new()),
        }
    }

    /// Starts the upload of one blob about to be written; its bytes go through the sink.
    pub(crate) fn start(&self) -> StreamSink {
        let (tx, rx) = mpsc::channel(QUEUED_PIECES);
        let client = self.client.clone();
        let repository = self.repository.clone();
        let upload = self
            .runtime
            .spawn(async move { client.push_blob_stream(&repository, rx).await });
        if let Ok(mut uploads) = self.uploads.lock() {
            uploads.push(upload);
        }
        StreamSink {
            tx: Some(tx),
            pending: Vec::with_capacity(PIECE),
        }
    }

    /// Waits for every upload started; the blobs they pushed. Failed uploads are left out
    /// (the push uploads those blobs from the store).
    pub(crate) async fn finish(&self) -> Vec<Descriptor> {
        let uploads = self
            .uploads
            .lock()
            .map(|mut u| std::mem::take(&mut *u))
            .unwrap_or_default();
        let mut pushed = Vec::new();
        for upload in uploads {
            if let Ok(Ok(descriptor)) = upload.await {
                pushed.push(descriptor);
            }
        }
        pushed
    }
}

/// The sending end of one streamed upload: a [`Write`] of the blob's bytes (sent in
/// [`PIECE`]s, from a blocking thread), then [`StreamSink::end`]. Dropped without an end, the
/// upload is abandoned. Once the upload has failed, bytes are dropped.
#[derive(Debug)]
pub(crate) struct StreamSink {
    tx: Option<mpsc::Sender<StreamPiece>>,
    pending: Vec<u8>,
}

impl StreamSink {
    fn send(&mut self, piece: StreamPiece) {
        if let Some(tx) = &self.tx {
            if tx.blocking_send(piece).is_err() {
                // The upload failed: the push will upload from the store.
                self.tx = None;
            }
        }
    }

    fn send_pending(&mut self) {
        if !self.pending.is_empty() {
            let piece = std::mem::replace(&mut self.pending, Vec::with_capacity(PIECE));
            self.send(StreamPiece::Bytes(Bytes::from(piece)));
        }
    }

    /// The blob is complete and committed to the store as `descriptor`: the upload sends
    /// what is left and closes with the digest.
    pub(crate) fn end(mut self, descriptor: &Descriptor) {
        self.send_pending();
        self.send(StreamPiece::End(Box::new(descriptor.clone())));
    }
}

/// A writer that passes everything to `inner` and a copy to an optional [`StreamSink`].
#[derive(Debug)]
pub(crate) struct Tee<W> {
    pub(crate) inner: W,
    pub(crate) sink: Option<StreamSink>,
}

impl<W: Write> Write for Tee<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        if let Some(sink) = self.sink.as_mut().filter(|s| s.tx.is_some()) {
            let mut rest = &buf[..n];
            while !rest.is_empty() {
                let take = rest.len().min(PIECE - sink.pending.len());
                sink.pending.extend_from_slice(&rest[..take]);
                rest = &rest[take..];
                if sink.pending.len() == PIECE {
                    sink.send_pending();
                }
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The store writer hashes every byte it writes (it commits a blob only under the digest
/// of its bytes), so a [`hoist_snapshot::LayerWriter`] onto the tee takes the compressed
/// blob's digest from it instead of hashing the blob a second time.
impl hoist_snapshot::DigestingWrite for Tee<hoist_content::Ingest> {
    fn digest_so_far(&self) -> (hoist_oci::Digest, u64) {
        (self.inner.digest(), self.inner.written())
    }
}
