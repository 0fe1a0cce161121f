//! Blob uploads: `HEAD` to skip blobs the repository has, cross-repository mount
//! (`POST ?mount=&from=`), then an upload session: one `PUT` for small blobs, `PATCH` chunks
//! (at least the registry's `OCI-Chunk-Min-Length`) then a closing `PUT` for large ones, read
//! from disk for each request.
//!
//! Failures are tried again under the retry policy ([`crate::retry`]). A failed single `PUT`
//! starts over in a new session. A chunked upload resumes: the session's status
//! (`GET <upload URL>` → `204`, `Range: 0-<last byte held>`, `Location`) says where the
//! registry stands, and the upload continues from there, sending again the part of a chunk
//! the registry did not keep; a new session starts only when the registry no longer knows the
//! upload (`404`). A resume that gets further than any before starts a fresh count of tries,
//! so a registry failing often but not always still sees the upload through.
//!
//! A blob still being produced (a layer being compressed for a push) is uploaded as it comes
//! ([`RegistryClient::push_blob_stream`]): `POST`, a `PATCH` per chunk as the producer hands
//! the bytes over, and the closing `PUT` with the digest the producer gives at the end. Its
//! bytes are not kept once sent, so a failure is not retried there: the caller pushes the
//! blob again from where it was written in the meantime (the content store), with the
//! retries and resumes above.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use hoist_oci::{Descriptor, Digest};
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use reqwest::{Method, StatusCode};
use url::Url;

use crate::auth::repository_scope;
use crate::client::{check_status, Body, Call, HostState, RegistryClient};
use crate::error::{RegistryError, Result};
use crate::progress::{emit, Direction, TransferEvent, TransferOutcome};
use crate::retry::{is_retryable_status, is_retryable_transport};
use crate::Repository;

/// Where the bytes of a blob to push come from.
#[derive(Debug, Clone)]
pub enum BlobSource {
    /// Bytes in memory (configs, small generated blobs).
    Bytes(Bytes),
    /// The blob of the descriptor pushed, in a content store, streamed (opened for each
    /// attempt).
    Store(hoist_content::ContentStore),
    /// A file on disk, streamed (re-opened for each attempt).
    File(PathBuf),
}

/// What a producer hands [`RegistryClient::push_blob_stream`], in order.
#[derive(Debug, Clone)]
pub enum StreamPiece {
    /// The next bytes of the blob.
    Bytes(Bytes),
    /// The blob is complete: the descriptor of all the bytes handed over.
    End(Box<Descriptor>),
}

/// What [`RegistryClient::push_blob`] had to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    /// The repository already had the blob.
    Exists,
    /// The blob was mounted from another repository of the same registry.
    Mounted,
    /// The bytes were uploaded.
    Uploaded,
}

impl RegistryClient {
    /// Whether `repository` has the blob `digest`: its size when it does.
    pub async fn blob_exists(
        &self,
        repository: &Repository,
        digest: &Digest,
    ) -> Result<Option<u64>> {
        let state = self.host(&repository.registry).await?;
        let url = self.api_url(&state, &repository.path, &format!("blobs/{digest}"))?;
        let scopes: BTreeSet<String> = [repository_scope(&repository.path, false)].into();
        let resp = self
            .send(&state, &Call::new(Method::HEAD, url, scopes))
            .await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let what = format!("blob {digest} in {repository}");
        let resp = check_status(&repository.registry, &what, &Method::HEAD, resp).await?;
        Ok(Some(
            resp.headers()
                .get(CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
        ))
    }

    /// Mounts the blob `digest` from `from` into `repository` (same registry). `true` when
    /// the blob is now there (mounted, or already present); `false` when the registry would
    /// not mount it (the caller then uploads). One transfer per blob and repository at a time.
    pub async fn mount_blob(
        &self,
        repository: &Repository,
        digest: &Digest,
        from: &Repository,
    ) -> Result<bool> {
        let _transfer = self.lock_blob_transfer(repository, digest).await;
        // Another task may have brought it in while we waited; mounting again would rewrite
        // the registry's link under a concurrent manifest check.
        if self.blob_exists(repository, digest).await?.is_some() {
            return Ok(true);
        }
        self.mount_blob_locked(repository, digest, from).await
    }

    /// [`RegistryClient::mount_blob`] for a caller that holds the blob's transfer lock.
    async fn mount_blob_locked(
        &self,
        repository: &Repository,
        digest: &Digest,
        from: &Repository,
    ) -> Result<bool> {
        if from.registry != repository.registry {
            return Ok(false);
        }
        let state = self.host(&repository.registry).await?;
        let mut url = self.api_url(&state, &repository.path, "blobs/uploads/")?;
        url.query_pairs_mut()
            .append_pair("mount", digest.as_str())
            .append_pair("from", &from.path);
        let scopes: BTreeSet<String> = [
            repository_scope(&repository.path, true),
            repository_scope(&from.path, false),
        ]
        .into();
        // Mounting twice is harmless, so a failed attempt may be retried.
        let call = Call::new(Method::POST, url, scopes).idempotent(true);
        let resp = self.send(&state, &call).await?;
        match resp.status() {
            StatusCode::CREATED => Ok(true),
            StatusCode::ACCEPTED => {
                // The registry opened an upload session instead: close it, best effort.
                if let Ok(location) = self.location(&state, &resp) {
                    let scopes: BTreeSet<String> =
                        [repository_scope(&repository.path, true)].into();
                    let _ = self
                        .send(&state, &Call::new(Method::DELETE, location, scopes))
                        .await;
                }
                Ok(false)
            }
            _ => {
                let what = format!("mount of blob {digest} from {from} into {repository}");
                check_status(&repository.registry, &what, &Method::POST, resp).await?;
                Ok(false)
            }
        }
    }

    /// Pushes one blob to `repository` unless it is there already: a single `PUT` up to
    /// [`crate::RegistryConfig::monolithic_push_limit`], `PATCH` chunks beyond. The source is
    /// read again for each attempt.
    pub async fn push_blob(
        &self,
        repository: &Repository,
        descriptor: &Descriptor,
        source: BlobSource,
    ) -> Result<PushOutcome> {
        self.push_blob_or_mount(repository, descriptor, source, &[])
            .await
    }

    /// Tries to mount the blob from each of `candidates` (same registry), then pushes it.
    pub async fn push_blob_or_mount(
        &self,
        repository: &Repository,
        descriptor: &Descriptor,
        source: BlobSource,
        candidates: &[Repository],
    ) -> Result<PushOutcome> {
        let _transfer = self
            .lock_blob_transfer(repository, &descriptor.digest)
            .await;
        if let Some(size) = self.blob_exists(repository, &descriptor.digest).await? {
            if size == descriptor.size || size == 0 {
                self.finished(descriptor, TransferOutcome::Exists);
                return Ok(PushOutcome::Exists);
            }
        }
        for from in candidates.iter().filter(|c| *c != repository) {
            if self
                .mount_blob_locked(repository, &descriptor.digest, from)
                .await?
            {
                self.finished(descriptor, TransferOutcome::Mounted);
                return Ok(PushOutcome::Mounted);
            }
        }
        self.upload_blob(repository, descriptor, &source).await?;
        Ok(PushOutcome::Uploaded)
    }

    async fn upload_blob(
        &self,
        repository: &Repository,
        descriptor: &Descriptor,
        source: &BlobSource,
    ) -> Result<()> {
        emit(&self.inner.config.progress, || TransferEvent::Started {
            digest: descriptor.digest.clone(),
            size: descriptor.size,
            direction: Direction::Upload,
        });
        self.upload_blob_retrying(repository, descriptor, source)
            .await?;
        emit(&self.inner.config.progress, || TransferEvent::Bytes {
            digest: descriptor.digest.clone(),
            done: descriptor.size,
            size: descriptor.size,
        });
        self.finished(descriptor, TransferOutcome::Uploaded);
        Ok(())
    }

    async fn upload_blob_retrying(
        &self,
        repository: &Repository,
        descriptor: &Descriptor,
        source: &BlobSource,
    ) -> Result<()> {
        if let BlobSource::Store(store) = source {
            let len = store.info(&descriptor.digest)?;
            if len != descriptor.size {
                return Err(hoist_content::Error::SizeMismatch {
                    digest: descriptor.digest.clone(),
                    expected: descriptor.size,
                    actual: len,
                }
                .into());
            }
        }
        if let BlobSource::File(path) = source {
            let len = tokio::fs::metadata(path)
                .await
                .map_err(|source| RegistryError::ReadFile {
                    path: path.clone(),
                    source,
                })?
                .len();
            if len != descriptor.size {
                return Err(RegistryError::ReadFile {
                    path: path.clone(),
                    source: std::io::Error::other(format!(
                        "the file has {len} bytes, blob {} should have {}",
                        descriptor.digest, descriptor.size
                    )),
                });
            }
        }
        let upload = Upload {
            repository,
            descriptor,
            source,
            state: self.host(&repository.registry).await?,
            scopes: [repository_scope(&repository.path, true)].into(),
            what: format!("upload of blob {} to {repository}", descriptor.digest),
        };
        let chunked = descriptor.size > self.inner.config.monolithic_push_limit;
        let policy = &self.inner.config.retry;
        let mut attempts = policy.attempts();
        let mut session: Option<Session> = None;
        // The most bytes the registry ever acknowledged: a resume that gets further than
        // that is progress, and starts a fresh count of tries.
        let mut furthest = 0;
        loop {
            let result = match session.as_mut() {
                Some(session) if chunked => self.send_chunks(&upload, session).await,
                Some(session) => self.send_whole(&upload, session).await,
                None => match self.start_session(&upload).await {
                    Ok(started) => {
                        session = Some(started);
                        continue;
                    }
                    Err(err) => Err(err),
                },
            };
            // A chunk or closing PUT answered 404: the registry lost the session.
            let lost = |err: &RegistryError| {
                chunked && session.is_some() && matches!(err, RegistryError::NotFound { .. })
            };
            let err = match result {
                Ok(()) => return Ok(()),
                Err(err) if attempts.can_retry() && (upload_retryable(&err) || lost(&err)) => err,
                Err(err) => return Err(err),
            };
            attempts.wait(None).await;
            // A single PUT starts over; chunks resume where the registry says it is.
            let Some(failed) = session.take().filter(|_| chunked) else {
                continue;
            };
            match self.session_status(&upload, &failed).await {
                Ok(Some(resumed)) => {
                    if resumed.held > furthest {
                        furthest = resumed.held;
                        attempts = policy.attempts();
                    }
                    session = Some(resumed);
                }
                // The registry no longer knows the upload: it may have committed it before
                // its answer to the closing PUT was lost; if not, a new session.
                Ok(None) => {
                    let exists = self
                        .blob_exists(repository, &descriptor.digest)
                        .await
                        .unwrap_or(None);
                    if exists == Some(descriptor.size) {
                        return Ok(());
                    }
                }
                Err(status_err) if attempts.can_retry() => drop(status_err),
                Err(_) => return Err(err),
            }
        }
    }

    /// Uploads a blob as it is produced: a session opened at once, a `PATCH` whenever the
    /// pieces received make a chunk (the configured chunk size, at least the registry's
    /// `OCI-Chunk-Min-Length`), the rest and the closing `PUT` with the digest once
    /// [`StreamPiece::End`] arrives. Returns that descriptor once the registry has the blob.
    ///
    /// Nothing is retried (the bytes sent are not kept): on any failure, or when `pieces`
    /// closes without an end ([`RegistryError::StreamAbandoned`]), the session is cancelled
    /// (`DELETE`, best effort), so the registry keeps no partial blob, and the error is
    /// returned. Memory: one chunk, plus what the channel holds.
    pub async fn push_blob_stream(
        &self,
        repository: &Repository,
        mut pieces: tokio::sync::mpsc::Receiver<StreamPiece>,
    ) -> Result<Descriptor> {
        let state = self.host(&repository.registry).await?;
        let scopes: BTreeSet<String> = [repository_scope(&repository.path, true)].into();
        let what = format!("streamed upload of a blob to {repository}");
        let registry = &repository.registry;
        let start = self.api_url(&state, &repository.path, "blobs/uploads/")?;
        let resp = self
            .send(&state, &Call::new(Method::POST, start, scopes.clone()))
            .await?;
        let resp = check_status(registry, &what, &Method::POST, resp).await?;
        let min_chunk: u64 = resp
            .headers()
            .get("oci-chunk-min-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        let chunk = self.inner.config.chunk_size.max(min_chunk).max(1);
        let chunk_len = usize::try_from(chunk).unwrap_or(usize::MAX);
        let mut location = self.location(&state, &resp)?;
        let at = &mut location;
        let result = async {
            let mut sent = 0u64;
            let mut pending = bytes::BytesMut::new();
            loop {
                let end = match pieces.recv().await {
                    Some(StreamPiece::Bytes(piece)) => {
                        pending.extend_from_slice(&piece);
                        None
                    }
                    Some(StreamPiece::End(descriptor)) => Some(*descriptor),
                    None => {
                        return Err(RegistryError::StreamAbandoned {
                            repository: repository.to_string(),
                            sent,
                        })
                    }
                };
                // Whole chunks as soon as they are there; what is left once the end is known.
                while pending.len() >= chunk_len || (end.is_some() && !pending.is_empty()) {
                    let len = pending.len().min(chunk_len);
                    let body = pending.split_to(len).freeze();
                    *at = self
                        .patch_stream_chunk(
                            &state,
                            &scopes,
                            &what,
                            registry,
                            at.clone(),
                            sent,
                            body,
                        )
                        .await?;
                    sent += len as u64;
                }
                let Some(descriptor) = end else { continue };
                if sent != descriptor.size {
                    return Err(RegistryError::Protocol {
                        registry: registry.clone(),
                        message: format!(
                            "{what}: {sent} bytes were sent for blob {} of {} bytes",
                            descriptor.digest, descriptor.size
                        ),
                    });
                }
                let mut put = at.clone();
                put.query_pairs_mut()
                    .append_pair("digest", descriptor.digest.as_str());
                let call = Call::new(Method::PUT, put, scopes.clone())
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .idempotent(false);
                let resp = self.send(&state, &call).await?;
                check_status(registry, &what, &Method::PUT, resp).await?;
                return Ok(descriptor);
            }
        }
        .await;
        if result.is_err() {
            // Best effort: a registry that cannot be reached keeps the session until its
            // own purge, and it never becomes a blob without the closing PUT.
            let _ = self
                .send(&state, &Call::new(Method::DELETE, location, scopes.clone()))
                .await;
        }
        result
    }

    /// One `PATCH` of a streamed upload at `offset`; the `Location` to continue at.
    #[allow(clippy::too_many_arguments)]
    async fn patch_stream_chunk(
        &self,
        state: &HostState,
        scopes: &BTreeSet<String>,
        what: &str,
        registry: &str,
        location: Url,
        offset: u64,
        body: Bytes,
    ) -> Result<Url> {
        let len = body.len() as u64;
        let call = Call::new(Method::PATCH, location, scopes.clone())
            .header(CONTENT_TYPE, "application/octet-stream")
            .header(
                reqwest::header::CONTENT_RANGE,
                &format!("{offset}-{}", offset + len - 1),
            )
            .body(Body::Bytes(body))
            .idempotent(false);
        let resp = self.send(state, &call).await?;
        let resp = check_status(registry, what, &Method::PATCH, resp).await?;
        let acknowledged = resp
            .headers()
            .get(reqwest::header::RANGE)
            .and_then(|v| v.to_str().ok())
            .and_then(held_bytes);
        if let Some(held) = acknowledged.filter(|held| *held != offset + len) {
            return Err(RegistryError::Protocol {
                registry: registry.to_owned(),
                message: format!(
                    "{what}: after bytes {offset}-{} the registry holds {held} bytes",
                    offset + len - 1
                ),
            });
        }
        self.location(state, &resp)
    }

    /// `POST`s a new upload session.
    async fn start_session(&self, upload: &Upload<'_>) -> Result<Session> {
        let registry = &upload.repository.registry;
        let start = self.api_url(&upload.state, &upload.repository.path, "blobs/uploads/")?;
        let resp = self
            .send(
                &upload.state,
                &Call::new(Method::POST, start, upload.scopes.clone()),
            )
            .await?;
        let resp = check_status(registry, &upload.what, &Method::POST, resp).await?;
        let min_chunk = resp
            .headers()
            .get("oci-chunk-min-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        Ok(Session {
            location: self.location(&upload.state, &resp)?,
            min_chunk,
            held: 0,
        })
    }

    /// Where a session stands after a failure: `GET` on its URL answers `204` with
    /// `Range: 0-<last byte held>` and the `Location` to continue at. `None` when the registry
    /// no longer knows the upload (`404`).
    async fn session_status(
        &self,
        upload: &Upload<'_>,
        session: &Session,
    ) -> Result<Option<Session>> {
        let registry = &upload.repository.registry;
        let call = Call::new(Method::GET, session.location.clone(), upload.scopes.clone());
        let resp = self.send(&upload.state, &call).await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let what = format!("status of the {}", upload.what);
        let resp = check_status(registry, &what, &Method::GET, resp).await?;
        let range = resp
            .headers()
            .get(reqwest::header::RANGE)
            .and_then(|v| v.to_str().ok());
        let held = range
            .and_then(held_bytes)
            .filter(|held| *held <= upload.descriptor.size)
            .ok_or_else(|| RegistryError::Protocol {
                registry: registry.clone(),
                message: format!("{what}: no usable Range in the answer ({range:?})"),
            })?;
        let location = if resp.headers().contains_key(LOCATION) {
            self.location(&upload.state, &resp)?
        } else {
            session.location.clone()
        };
        Ok(Some(Session {
            location,
            min_chunk: session.min_chunk,
            held,
        }))
    }

    /// The whole blob in the one `PUT` that closes the session.
    async fn send_whole(&self, upload: &Upload<'_>, session: &Session) -> Result<()> {
        let mut location = session.location.clone();
        location
            .query_pairs_mut()
            .append_pair("digest", upload.descriptor.digest.as_str());
        let call = Call::new(Method::PUT, location, upload.scopes.clone())
            .header(CONTENT_TYPE, "application/octet-stream")
            .body(upload.body(0, upload.descriptor.size))
            .idempotent(false);
        let resp = self.send(&upload.state, &call).await?;
        check_status(
            &upload.repository.registry,
            &upload.what,
            &Method::PUT,
            resp,
        )
        .await?;
        Ok(())
    }

    /// `PATCH` chunks from what the session holds to the end, then the closing `PUT`;
    /// `session` follows each acknowledged chunk, so a failure leaves it where it stood.
    async fn send_chunks(&self, upload: &Upload<'_>, session: &mut Session) -> Result<()> {
        let registry = &upload.repository.registry;
        let what = &upload.what;
        let digest = &upload.descriptor.digest;
        let size = upload.descriptor.size;
        // The registry's stated minimum (OCI-Chunk-Min-Length, from the POST) wins over a
        // smaller configured chunk.
        let chunk = self.inner.config.chunk_size.max(session.min_chunk).max(1);
        while session.held < size {
            let offset = session.held;
            let len = chunk.min(size - offset);
            let call = Call::new(
                Method::PATCH,
                session.location.clone(),
                upload.scopes.clone(),
            )
            .header(CONTENT_TYPE, "application/octet-stream")
            .header(
                reqwest::header::CONTENT_RANGE,
                &format!("{offset}-{}", offset + len - 1),
            )
            .body(upload.body(offset, len))
            .idempotent(false);
            let resp = self.send(&upload.state, &call).await?;
            let resp = check_status(registry, what, &Method::PATCH, resp).await?;
            // The registry acknowledges what it holds as `Range: 0-<last byte>`; one that
            // holds something else is asked where it stands (see `session_status`).
            let acknowledged = resp
                .headers()
                .get(reqwest::header::RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(held_bytes);
            if let Some(held) = acknowledged.filter(|held| *held != offset + len) {
                return Err(RegistryError::Protocol {
                    registry: registry.clone(),
                    message: format!(
                        "{what}: after bytes {offset}-{} the registry holds {held} bytes",
                        offset + len - 1
                    ),
                });
            }
            session.location = self.location(&upload.state, &resp)?;
            session.held = offset + len;
            if session.held < size {
                emit(&self.inner.config.progress, || TransferEvent::Bytes {
                    digest: digest.clone(),
                    done: session.held,
                    size,
                });
            }
        }
        let mut location = session.location.clone();
        location
            .query_pairs_mut()
            .append_pair("digest", digest.as_str());
        let call = Call::new(Method::PUT, location, upload.scopes.clone())
            .header(CONTENT_TYPE, "application/octet-stream")
            .idempotent(false);
        let resp = self.send(&upload.state, &call).await?;
        check_status(registry, what, &Method::PUT, resp).await?;
        Ok(())
    }

    /// The upload URL a `Location` header gives (relative ones resolved against the host).
    fn location(&self, state: &HostState, resp: &reqwest::Response) -> Result<Url> {
        let value = resp
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| RegistryError::Protocol {
                registry: state.host.clone(),
                message: format!("{} answered without a Location header", resp.url()),
            })?;
        resp.url()
            .join(value)
            .map_err(|err| RegistryError::Protocol {
                registry: state.host.clone(),
                message: format!("bad Location {value:?}: {err}"),
            })
    }
}

/// One blob upload: what is sent where, the same for every session and try.
struct Upload<'a> {
    repository: &'a Repository,
    descriptor: &'a Descriptor,
    source: &'a BlobSource,
    state: Arc<HostState>,
    scopes: BTreeSet<String>,
    what: String,
}

impl Upload<'_> {
    /// `len` bytes of the blob from `offset`, read anew for each request.
    fn body(&self, offset: u64, len: u64) -> Body {
        match self.source {
            BlobSource::Bytes(bytes) => {
                let start = usize::try_from(offset)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                let end = usize::try_from(offset.saturating_add(len))
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                Body::Bytes(bytes.slice(start..end))
            }
            BlobSource::File(path) => Body::File {
                path: path.clone(),
                offset,
                len,
            },
            BlobSource::Store(store) => Body::Blob {
                store: store.clone(),
                digest: self.descriptor.digest.clone(),
                offset,
                len,
            },
        }
    }
}

/// An open upload session on the registry.
#[derive(Debug)]
struct Session {
    /// Where the next request of the session goes (the last `Location` given).
    location: Url,
    /// The registry's `OCI-Chunk-Min-Length`, 0 when it stated none.
    min_chunk: u64,
    /// Bytes the registry holds: the offset the next chunk starts at.
    held: u64,
}

/// The bytes an upload holds according to a `Range: 0-<last byte>` header.
///
/// `0-0` reads as nothing held: Distribution answers it for an empty upload (and, ambiguously,
/// for a one-byte one, which sending that byte again would then spoil; the closing `PUT`'s
/// digest check catches it).
fn held_bytes(range: &str) -> Option<u64> {
    let (first, last) = range.trim().split_once('-')?;
    if first.trim() != "0" {
        return None;
    }
    match last.trim().parse::<u64>().ok()? {
        0 => Some(0),
        last => last.checked_add(1),
    }
}

/// Whether a failed upload is worth another try (resumed or in a new session).
fn upload_retryable(err: &RegistryError) -> bool {
    match err {
        // A lost Location or a wrong acknowledged range: the session's status, or a new
        // session, sorts it out.
        RegistryError::Protocol { .. } => true,
        // The registry refused the chunk's offset (OCI: 416): its status says which it wants.
        RegistryError::Status { status: 416, .. } => true,
        RegistryError::Http { source, .. } => is_retryable_transport(source),
        RegistryError::Status { status, .. } => {
            is_retryable_status(StatusCode::from_u16(*status).unwrap_or_default())
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_header_gives_the_bytes_held() {
        assert_eq!(held_bytes("0-9"), Some(10));
        assert_eq!(held_bytes(" 0-8388607 "), Some(8 * 1024 * 1024));
        assert_eq!(held_bytes("0-0"), Some(0), "Distribution's empty upload");
        assert_eq!(held_bytes("5-9"), None, "an upload holds a prefix");
        assert_eq!(held_bytes("bytes=0-9"), None);
        assert_eq!(held_bytes("0-"), None);
        assert_eq!(held_bytes(&format!("0-{}", u64::MAX)), None);
    }
}
