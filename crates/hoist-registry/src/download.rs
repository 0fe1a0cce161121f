//! Blob downloads: `GET` streamed into a content-store [`hoist_content::Ingest`] on a
//! blocking thread, which hashes the bytes as it writes them (once) while this side counts
//! them; only when digest and size both match is the ingest committed, so nothing corrupt or half-written ever becomes visible. A
//! connection cut mid-blob resumes with `Range: bytes=N-` (or starts the ingest over when the
//! registry ignores ranges); a download that fails for good drops its temp file.

use std::collections::BTreeSet;

use bytes::Bytes;
use hoist_content::{ContentStore, Expected, Written};
use hoist_oci::{Descriptor, Digest};
use reqwest::header::{CONTENT_RANGE, RANGE};
use reqwest::{Method, StatusCode};

use crate::auth::repository_scope;
use crate::client::{check_status, Call, RegistryClient};
use crate::error::{RegistryError, Result};
use crate::progress::{emit, Direction, ProgressHook, TransferEvent, TransferOutcome};
use crate::Repository;

enum IngestMsg {
    Chunk(Bytes),
    /// Drop what was written and begin the ingest again.
    Restart,
    Commit,
}

/// A download in progress: what was received, and the channel to the writer (which hashes).
struct Progress {
    received: u64,
    tx: tokio::sync::mpsc::Sender<IngestMsg>,
    hook: Option<ProgressHook>,
    digest: Digest,
    size: u64,
    reported: u64,
}

/// Bytes between two [`TransferEvent::Bytes`] reports.
const REPORT_EVERY: u64 = 1024 * 1024;

impl Progress {
    fn report(&mut self) {
        self.reported = self.received;
        emit(&self.hook, || TransferEvent::Bytes {
            digest: self.digest.clone(),
            done: self.received,
            size: self.size,
        });
    }

    async fn push(&mut self, chunk: Bytes) -> Result<()> {
        self.received += chunk.len() as u64;
        if self.received - self.reported >= REPORT_EVERY || self.received == self.size {
            self.report();
        }
        self.tx
            .send(IngestMsg::Chunk(chunk))
            .await
            .map_err(|_| RegistryError::Task("the blob writer stopped".to_owned()))
    }

    async fn restart(&mut self) -> Result<()> {
        self.received = 0;
        self.report();
        self.tx
            .send(IngestMsg::Restart)
            .await
            .map_err(|_| RegistryError::Task("the blob writer stopped".to_owned()))
    }
}

/// The writer: a blocking thread owning the ingest; it commits only on `Commit`, and drops
/// the ingest (deleting its temp file) when the channel closes without one.
fn spawn_writer(
    store: ContentStore,
    expected: Expected,
    mut rx: tokio::sync::mpsc::Receiver<IngestMsg>,
) -> tokio::task::JoinHandle<Result<Option<Written>>> {
    tokio::task::spawn_blocking(move || -> Result<Option<Written>> {
        let mut ingest = store.begin(expected.clone())?;
        while let Some(msg) = rx.blocking_recv() {
            match msg {
                IngestMsg::Chunk(chunk) => ingest.append(&chunk)?,
                IngestMsg::Restart => {
                    drop(ingest);
                    ingest = store.begin(expected.clone())?;
                }
                IngestMsg::Commit => return Ok(Some(ingest.commit(None)?.written)),
            }
        }
        Ok(None)
    })
}

/// Why one download attempt failed.
enum Attempt {
    /// Worth another try (connection cut, retryable status).
    Retry(RegistryError),
    /// Final.
    Fail(RegistryError),
}

impl RegistryClient {
    /// Downloads the blob `descriptor` describes from `repository` into `store`, verifying
    /// digest and size as the bytes arrive. Nothing is stored unless both match. Mirrors are
    /// tried first.
    pub async fn fetch_blob(
        &self,
        repository: &Repository,
        descriptor: &Descriptor,
        store: &ContentStore,
    ) -> Result<Written> {
        if store.has(&descriptor.digest) {
            let store = store.clone();
            let expected = Expected::from(descriptor);
            // Checks the size of the present blob (and refreshes it for GC).
            let written =
                run_blocking(move || store.write_blob(expected, std::io::empty())).await??;
            self.finished(descriptor, TransferOutcome::AlreadyPresent);
            return Ok(written);
        }
        self.try_pull_hosts(repository, |client, host| {
            let repo = repository.clone();
            let descriptor = descriptor.clone();
            let store = store.clone();
            async move {
                client
                    .fetch_blob_on(&host, &repo, &descriptor, &store)
                    .await
            }
        })
        .await
    }

    /// One blob from one host. A single writer thread owns the ingest for the whole
    /// download; when the connection breaks, the next attempt asks for the rest with
    /// `Range: bytes=N-` and appends, or starts the ingest over when the registry sends the
    /// whole blob again.
    async fn fetch_blob_on(
        &self,
        host: &str,
        repository: &Repository,
        descriptor: &Descriptor,
        store: &ContentStore,
    ) -> Result<Written> {
        let digest = &descriptor.digest;
        let mismatch = |message: String| RegistryError::Mismatch {
            kind: "blob",
            digest: digest.to_string(),
            registry: host.to_owned(),
            message,
        };
        // The writer hashes; an algorithm it cannot compute is refused before any request.
        digest
            .digester()
            .map_err(|err| mismatch(format!("cannot verify: {err}")))?;
        let (tx, rx) = tokio::sync::mpsc::channel::<IngestMsg>(16);
        let writer = spawn_writer(store.clone(), Expected::from(descriptor), rx);
        let hook = self.inner.config.progress.clone();
        emit(&hook, || TransferEvent::Started {
            digest: digest.clone(),
            size: descriptor.size,
            direction: Direction::Download,
        });
        let mut progress = Progress {
            received: 0,
            tx,
            hook,
            digest: digest.clone(),
            size: descriptor.size,
            reported: 0,
        };
        let mut attempts = self.inner.config.retry.attempts();
        let outcome = loop {
            match self
                .fetch_blob_attempt(host, repository, descriptor, &mut progress)
                .await
            {
                Ok(()) => break Ok(()),
                Err(Attempt::Retry(err)) if attempts.can_retry() => {
                    drop(err);
                    attempts.wait(None).await;
                }
                Err(Attempt::Retry(err) | Attempt::Fail(err)) => break Err(err),
            }
        };
        if let Err(err) = outcome {
            // Closing the channel without `Commit` drops the ingest; wait for its temp file
            // to be gone so the caller sees a clean store.
            drop(progress);
            let joined = writer.await;
            // A writer that stopped has the better error (disk full, say).
            if let (RegistryError::Task(_), Ok(Err(writer_err))) = (&err, joined) {
                return Err(writer_err);
            }
            return Err(err);
        }
        let Progress {
            received, tx, hook, ..
        } = progress;
        if received != descriptor.size {
            drop(tx);
            let _ = writer.await;
            return Err(mismatch(format!(
                "expected {} bytes, received {received}",
                descriptor.size
            )));
        }
        if tx.send(IngestMsg::Commit).await.is_err() {
            return Err(writer_error(writer.await));
        }
        drop(tx);
        match writer.await {
            // The commit checked the digest (and dropped the temp file).
            Ok(Err(RegistryError::Content(hoist_content::Error::DigestMismatch {
                actual,
                ..
            }))) => Err(mismatch(format!("received bytes hash to {actual}"))),
            Ok(Ok(Some(written))) => {
                emit(&hook, || TransferEvent::Finished {
                    digest: digest.clone(),
                    size: descriptor.size,
                    outcome: TransferOutcome::Downloaded,
                });
                Ok(written)
            }
            other => Err(writer_error(other)),
        }
    }

    /// One `GET` (ranged when bytes were received before), streaming into `progress`.
    async fn fetch_blob_attempt(
        &self,
        host: &str,
        repository: &Repository,
        descriptor: &Descriptor,
        progress: &mut Progress,
    ) -> std::result::Result<(), Attempt> {
        let digest = &descriptor.digest;
        let mismatch = |message: String| {
            Attempt::Fail(RegistryError::Mismatch {
                kind: "blob",
                digest: digest.to_string(),
                registry: host.to_owned(),
                message,
            })
        };
        let state = self.host(host).await.map_err(Attempt::Fail)?;
        let url = self
            .api_url(&state, &repository.path, &format!("blobs/{digest}"))
            .map_err(Attempt::Fail)?;
        let scopes: BTreeSet<String> = [repository_scope(&repository.path, false)].into();
        let mut call = Call::new(Method::GET, url.clone(), scopes);
        let resume_from = progress.received;
        if resume_from > 0 {
            call = call.header(RANGE, &format!("bytes={resume_from}-"));
        }
        let resp = self.send(&state, &call).await.map_err(Attempt::Fail)?;
        let what = format!("blob {digest} in {repository}");
        // `send` has already retried retryable statuses; what is left is final.
        let mut resp = check_status(host, &what, &Method::GET, resp)
            .await
            .map_err(Attempt::Fail)?;
        let resumed = resume_from > 0
            && resp.status() == StatusCode::PARTIAL_CONTENT
            && resp
                .headers()
                .get(CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with(&format!("bytes {resume_from}-")));
        if !resumed {
            if resp.status() == StatusCode::PARTIAL_CONTENT {
                return Err(Attempt::Fail(RegistryError::Protocol {
                    registry: host.to_owned(),
                    message: format!("answered {what} with a range that was not asked for"),
                }));
            }
            if resume_from > 0 {
                // The whole blob again: start over.
                progress.restart().await.map_err(Attempt::Fail)?;
            }
        }
        let expected_len = descriptor.size - progress.received;
        if let Some(len) = resp.content_length() {
            if len != expected_len {
                return Err(mismatch(format!(
                    "expected {expected_len} more bytes, the registry announces {len}"
                )));
            }
        }
        loop {
            let chunk = match resp.chunk().await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => return Ok(()),
                Err(source) => {
                    return Err(Attempt::Retry(RegistryError::Http {
                        method: "GET".to_owned(),
                        url: url.to_string(),
                        source,
                    }))
                }
            };
            if progress.received + chunk.len() as u64 > descriptor.size {
                return Err(mismatch(format!(
                    "expected {} bytes, received more",
                    descriptor.size
                )));
            }
            progress.push(chunk).await.map_err(Attempt::Fail)?;
        }
    }

    /// Downloads a small blob (a config) into memory, verified; refuses more than `limit`
    /// bytes.
    pub async fn fetch_blob_bytes(
        &self,
        repository: &Repository,
        descriptor: &Descriptor,
        limit: u64,
    ) -> Result<Bytes> {
        let host = repository.registry.clone();
        let digest = &descriptor.digest;
        let mismatch = |message: String| RegistryError::Mismatch {
            kind: "blob",
            digest: digest.to_string(),
            registry: host.clone(),
            message,
        };
        if descriptor.size > limit {
            return Err(mismatch(format!(
                "{} bytes is more than the {limit} allowed here",
                descriptor.size
            )));
        }
        let state = self.host(&host).await?;
        let url = self.api_url(&state, &repository.path, &format!("blobs/{digest}"))?;
        let scopes: BTreeSet<String> = [repository_scope(&repository.path, false)].into();
        let resp = self
            .send(&state, &Call::new(Method::GET, url.clone(), scopes))
            .await?;
        let what = format!("blob {digest} in {repository}");
        let mut resp = check_status(&host, &what, &Method::GET, resp).await?;
        let mut buf = bytes::BytesMut::new();
        while let Some(chunk) = resp.chunk().await.map_err(|source| RegistryError::Http {
            method: "GET".to_owned(),
            url: url.to_string(),
            source,
        })? {
            if buf.len() as u64 + chunk.len() as u64 > descriptor.size {
                return Err(mismatch(format!(
                    "expected {} bytes, received more",
                    descriptor.size
                )));
            }
            buf.extend_from_slice(&chunk);
        }
        if buf.len() as u64 != descriptor.size {
            return Err(mismatch(format!(
                "expected {} bytes, received {}",
                descriptor.size,
                buf.len()
            )));
        }
        let mut digester = digest
            .digester()
            .map_err(|err| mismatch(format!("cannot verify: {err}")))?;
        digester.update(&buf);
        let (actual, _) = digester.finish();
        if actual != *digest {
            return Err(mismatch(format!("received bytes hash to {actual}")));
        }
        Ok(buf.freeze())
    }
}

fn writer_error(
    joined: std::result::Result<Result<Option<Written>>, tokio::task::JoinError>,
) -> RegistryError {
    match joined {
        Ok(Err(err)) => err,
        Ok(Ok(_)) => RegistryError::Task("the blob writer stopped early".to_owned()),
        Err(err) => RegistryError::Task(err.to_string()),
    }
}

/// Runs sync file work on a blocking thread.
pub(crate) async fn run_blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|err| RegistryError::Task(err.to_string()))
}
