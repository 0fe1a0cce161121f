//! Blob uploads: `HEAD` to skip blobs the repository has, cross-repository mount
//! (`POST ?mount=&from=`), then an upload session: one `PUT` for small blobs, `PATCH` chunks
//! (at least the registry's `OCI-Chunk-Min-Length`) then a closing `PUT` for large ones, read
//! from disk for each attempt. A failed upload is restarted from a new session under the
//! retry policy.

use std::collections::BTreeSet;
use std::path::PathBuf;

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
        let mut attempts = self.inner.config.retry.attempts();
        loop {
            match self.upload_once(repository, descriptor, source).await {
                Ok(()) => return Ok(()),
                Err(err) if attempts.can_retry() && upload_retryable(&err) => {
                    attempts.wait(None).await;
                }
                Err(err) => return Err(err),
            }
        }
    }

    async fn upload_once(
        &self,
        repository: &Repository,
        descriptor: &Descriptor,
        source: &BlobSource,
    ) -> Result<()> {
        let registry = &repository.registry;
        let digest = &descriptor.digest;
        let what = format!("upload of blob {digest} to {repository}");
        let state = self.host(registry).await?;
        let scopes: BTreeSet<String> = [repository_scope(&repository.path, true)].into();
        let start = self.api_url(&state, &repository.path, "blobs/uploads/")?;
        let resp = self
            .send(&state, &Call::new(Method::POST, start, scopes.clone()))
            .await?;
        let resp = check_status(registry, &what, &Method::POST, resp).await?;
        let mut location = self.location(&state, &resp)?;
        let min_chunk: u64 = resp
            .headers()
            .get("oci-chunk-min-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        let size = descriptor.size;
        let body_of = |offset: u64, len: u64| match source {
            BlobSource::Bytes(bytes) => {
                let start = usize::try_from(offset)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                let end = usize::try_from(offset + len)
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
                digest: digest.clone(),
                offset,
                len,
            },
        };
        let limit = self.inner.config.monolithic_push_limit;
        if size <= limit {
            location
                .query_pairs_mut()
                .append_pair("digest", digest.as_str());
            let call = Call::new(Method::PUT, location, scopes)
                .header(CONTENT_TYPE, "application/octet-stream")
                .body(body_of(0, size))
                .idempotent(false);
            let resp = self.send(&state, &call).await?;
            check_status(registry, &what, &Method::PUT, resp).await?;
            return Ok(());
        }
        // The registry's stated minimum (OCI-Chunk-Min-Length, from the POST) wins over a
        // smaller configured chunk.
        let chunk = self.inner.config.chunk_size.max(min_chunk).max(1);
        let mut offset = 0;
        while offset < size {
            let len = chunk.min(size - offset);
            let call = Call::new(Method::PATCH, location.clone(), scopes.clone())
                .header(CONTENT_TYPE, "application/octet-stream")
                .header(
                    reqwest::header::CONTENT_RANGE,
                    &format!("{offset}-{}", offset + len - 1),
                )
                .body(body_of(offset, len))
                .idempotent(false);
            let resp = self.send(&state, &call).await?;
            let resp = check_status(registry, &what, &Method::PATCH, resp).await?;
            // The registry acknowledges what it holds as `Range: 0-<last byte>`.
            let acknowledged = resp
                .headers()
                .get(reqwest::header::RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.rsplit('-').next())
                .and_then(|end| end.trim().parse::<u64>().ok());
            if let Some(end) = acknowledged {
                if end != offset + len - 1 {
                    return Err(RegistryError::Protocol {
                        registry: registry.clone(),
                        message: format!(
                            "{what}: after bytes {offset}-{} the registry holds 0-{end}",
                            offset + len - 1
                        ),
                    });
                }
            }
            location = self.location(&state, &resp)?;
            offset += len;
            if offset < size {
                emit(&self.inner.config.progress, || TransferEvent::Bytes {
                    digest: digest.clone(),
                    done: offset,
                    size,
                });
            }
        }
        location
            .query_pairs_mut()
            .append_pair("digest", digest.as_str());
        let call = Call::new(Method::PUT, location, scopes)
            .header(CONTENT_TYPE, "application/octet-stream")
            .idempotent(false);
        let resp = self.send(&state, &call).await?;
        check_status(registry, &what, &Method::PUT, resp).await?;
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

/// Whether a failed upload is worth restarting from a new session.
fn upload_retryable(err: &RegistryError) -> bool {
    match err {
        // A lost Location or a wrong acknowledged range: a new session starts clean.
        RegistryError::Protocol { .. } => true,
        RegistryError::Http { source, .. } => is_retryable_transport(source),
        RegistryError::Status { status, .. } => {
            is_retryable_status(StatusCode::from_u16(*status).unwrap_or_default())
        }
        _ => false,
    }
}
