//! Blobs on the wire. Pull: `GET` streamed into a content-store [`hoist_content::Ingest`] on
//! a blocking thread while the bytes are hashed and counted; only when digest and size both
//! match is the ingest committed, so nothing corrupt or half-written ever becomes visible. A
//! connection cut mid-blob restarts the download (the partial temp file is dropped).
//!
//! Push: `HEAD` to skip blobs the repository has, cross-repository mount
//! (`POST ?mount=&from=`), then an upload session: one `PUT` for small blobs, `PATCH` chunks
//! then a closing `PUT` for large ones, read from disk for each attempt. A failed upload is
//! restarted from a new session under the retry policy.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::PathBuf;

use bytes::Bytes;
use hoist_content::{ContentStore, Expected, Written};
use hoist_oci::{Descriptor, Digest};
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use reqwest::{Method, StatusCode};
use url::Url;

use crate::auth::repository_scope;
use crate::client::{
    check_status, is_retryable_status, is_retryable_transport, Body, Call, HostState,
    RegistryClient,
};
use crate::error::{RegistryError, Result};
use crate::Repository;

/// Where the bytes of a blob to push come from.
#[derive(Debug, Clone)]
pub enum BlobSource {
    /// Bytes in memory (configs, small generated blobs).
    Bytes(Bytes),
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

enum IngestMsg {
    Chunk(Bytes),
    Commit,
}

/// Why one download attempt failed.
enum Attempt {
    /// Worth another try (connection cut, retryable status).
    Retry(RegistryError),
    /// Final.
    Fail(RegistryError),
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
            return Ok(run_blocking(move || store.write_blob(expected, std::io::empty())).await??);
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

    async fn fetch_blob_on(
        &self,
        host: &str,
        repository: &Repository,
        descriptor: &Descriptor,
        store: &ContentStore,
    ) -> Result<Written> {
        let policy = self.inner.config.retry.clone();
        let mut attempt = 0;
        loop {
            match self
                .fetch_blob_once(host, repository, descriptor, store)
                .await
            {
                Ok(written) => return Ok(written),
                Err(Attempt::Retry(err)) => {
                    if attempt + 1 >= policy.attempts.max(1) {
                        return Err(err);
                    }
                    tokio::time::sleep(policy.delay(attempt)).await;
                    attempt += 1;
                }
                Err(Attempt::Fail(err)) => return Err(err),
            }
        }
    }

    async fn fetch_blob_once(
        &self,
        host: &str,
        repository: &Repository,
        descriptor: &Descriptor,
        store: &ContentStore,
    ) -> std::result::Result<Written, Attempt> {
        let digest = &descriptor.digest;
        let mismatch = |message: String| {
            Attempt::Fail(RegistryError::Mismatch {
                kind: "blob",
                digest: digest.to_string(),
                registry: host.to_owned(),
                message,
            })
        };
        let mut digester = digest
            .digester()
            .map_err(|err| mismatch(format!("cannot verify: {err}")))?;
        let state = self.host(host).await.map_err(Attempt::Fail)?;
        let url = self
            .api_url(&state, &repository.path, &format!("blobs/{digest}"))
            .map_err(Attempt::Fail)?;
        let scopes: BTreeSet<String> = [repository_scope(&repository.path, false)].into();
        let call = Call::new(Method::GET, url.clone(), scopes);
        let resp = self.send(&state, &call).await.map_err(Attempt::Fail)?;
        let what = format!("blob {digest} in {repository}");
        // `send` has already retried retryable statuses; what is left is final.
        let mut resp = check_status(host, &what, &Method::GET, resp)
            .await
            .map_err(Attempt::Fail)?;
        if let Some(len) = resp.content_length() {
            if len != descriptor.size {
                return Err(mismatch(format!(
                    "expected {} bytes, the registry announces {len}",
                    descriptor.size
                )));
            }
        }

        // The writer: a blocking thread owning the ingest; it commits only on `Commit`.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<IngestMsg>(16);
        let ingest_store = store.clone();
        let expected = Expected::from(descriptor);
        let writer = tokio::task::spawn_blocking(move || -> Result<Option<Written>> {
            let mut ingest = ingest_store.begin(expected)?;
            while let Some(msg) = rx.blocking_recv() {
                match msg {
                    IngestMsg::Chunk(chunk) => {
                        let path = ingest
                            .temp_path()
                            .map(|p| p.to_path_buf())
                            .unwrap_or_else(|| ingest_store.ingest_dir().to_path_buf());
                        ingest
                            .write_all(&chunk)
                            .map_err(|source| hoist_content::Error::Io {
                                action: "write",
                                path,
                                source,
                            })?;
                    }
                    IngestMsg::Commit => return Ok(Some(ingest.commit()?)),
                }
            }
            // The sender went away without `Commit`: drop the ingest, store nothing.
            Ok(None)
        });
        let abort = |writer: tokio::task::JoinHandle<Result<Option<Written>>>| async move {
            // Wait until the temp file is gone, so a retry or the caller sees a clean store.
            let _ = writer.await;
        };

        let mut received: u64 = 0;
        loop {
            let chunk = match resp.chunk().await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break,
                Err(source) => {
                    drop(tx);
                    abort(writer).await;
                    let err = RegistryError::Http {
                        method: "GET".to_owned(),
                        url: url.to_string(),
                        source,
                    };
                    return Err(Attempt::Retry(err));
                }
            };
            received += chunk.len() as u64;
            if received > descriptor.size {
                drop(tx);
                abort(writer).await;
                return Err(mismatch(format!(
                    "expected {} bytes, received more",
                    descriptor.size
                )));
            }
            digester.update(&chunk);
            if tx.send(IngestMsg::Chunk(chunk)).await.is_err() {
                // The writer stopped: its error says why.
                return Err(Attempt::Fail(writer_error(writer.await)));
            }
        }
        if received != descriptor.size {
            drop(tx);
            abort(writer).await;
            return Err(mismatch(format!(
                "expected {} bytes, received {received}",
                descriptor.size
            )));
        }
        let (actual, _) = digester.finish();
        if actual != *digest {
            drop(tx);
            abort(writer).await;
            return Err(mismatch(format!("received bytes hash to {actual}")));
        }
        if tx.send(IngestMsg::Commit).await.is_err() {
            return Err(Attempt::Fail(writer_error(writer.await)));
        }
        drop(tx);
        match writer.await {
            Ok(Ok(Some(written))) => Ok(written),
            other => Err(Attempt::Fail(writer_error(other))),
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

    /// Mounts the blob `digest` from `from` into `repository` (same registry). `true` when
    /// the registry mounted it; `false` when it would not (the caller then uploads).
    pub async fn mount_blob(
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
        if let Some(size) = self.blob_exists(repository, &descriptor.digest).await? {
            if size == descriptor.size || size == 0 {
                return Ok(PushOutcome::Exists);
            }
        }
        self.upload_blob(repository, descriptor, &source).await?;
        Ok(PushOutcome::Uploaded)
    }

    /// Tries to mount the blob from each of `candidates` (same registry), then pushes it.
    pub async fn push_blob_or_mount(
        &self,
        repository: &Repository,
        descriptor: &Descriptor,
        source: BlobSource,
        candidates: &[Repository],
    ) -> Result<PushOutcome> {
        if let Some(size) = self.blob_exists(repository, &descriptor.digest).await? {
            if size == descriptor.size || size == 0 {
                return Ok(PushOutcome::Exists);
            }
        }
        for from in candidates.iter().filter(|c| *c != repository) {
            if self
                .mount_blob(repository, &descriptor.digest, from)
                .await?
            {
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
        let policy = self.inner.config.retry.clone();
        let mut attempt = 0;
        loop {
            match self.upload_once(repository, descriptor, source).await {
                Ok(()) => return Ok(()),
                Err(err) if attempt + 1 < policy.attempts.max(1) && upload_retryable(&err) => {
                    tokio::time::sleep(policy.delay(attempt)).await;
                    attempt += 1;
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
        let chunk = self.inner.config.chunk_size.max(1);
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
            location = self.location(&state, &resp)?;
            offset += len;
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
        RegistryError::Http { source, .. } => is_retryable_transport(source),
        RegistryError::Status { status, .. } => {
            is_retryable_status(StatusCode::from_u16(*status).unwrap_or_default())
        }
        _ => false,
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
