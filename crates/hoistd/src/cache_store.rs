//! `type=local` caches through the client's session, as BuildKit serves them: the cache
//! directory is the client's, served as containerd's content store `local:<dir>` (named
//! in each call's `buildkit-attachable-store-id` metadata); [`SessionStore`] is the
//! engine's [`BlobStore`] over it — `Info` for sizes, `Read` for blobs, `Write` (STAT,
//! WRITE…, COMMIT on one stream, the content server answering each) for exports — and
//! [`attach`] turns a request's `type=local` entries into the engine's client-store
//! imports and exports. The client tags the exported root in its `index.json` from the
//! exporter response's `cache.manifest` ([`CACHE_MANIFEST_KEY`]).

use std::io::Read as _;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{FutureExt as _, StreamExt as _};
use hoist_engine::{BlobStore, CacheDestination, CacheImport, CacheOptions, ClientStore};
use hoist_oci::{Descriptor, Digest};
use hoist_proto::content::content_client::ContentClient;
use hoist_proto::content::{InfoRequest, ReadContentRequest, WriteAction, WriteContentRequest};
use hoist_session::content::{store_id, METHODS, STORE_ID_KEY};
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

use crate::session::Session;

/// The exporter response key naming the root of a cache written to a client's store.
pub const CACHE_MANIFEST_KEY: &str = "cache.manifest";

/// The size of each `Write` message.
const CHUNK: usize = 1024 * 1024;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One of the client's content stores, reached through its session.
#[derive(Debug, Clone)]
pub struct SessionStore {
    channel: Channel,
    id: String,
    dir: String,
}

impl SessionStore {
    pub fn new(session: &Session, dir: &str) -> SessionStore {
        SessionStore {
            channel: session.channel(),
            id: store_id(dir),
            dir: dir.to_owned(),
        }
    }

    /// `message` with the store named in its metadata.
    fn request<T>(&self, message: T) -> Result<Request<T>, BoxError> {
        let mut request = Request::new(message);
        let value = self.id.parse().map_err(|_| {
            format!(
                "the cache directory {:?} cannot be named in gRPC metadata",
                self.dir
            )
        })?;
        request.metadata_mut().insert(STORE_ID_KEY, value);
        Ok(request)
    }

    fn client(&self) -> ContentClient<Channel> {
        ContentClient::new(self.channel.clone())
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX)
    }

    async fn size_of(&self, digest: &Digest) -> Result<Option<u64>, BoxError> {
        let request = self.request(InfoRequest {
            digest: digest.to_string(),
        })?;
        match self.client().info(request).await {
            Ok(response) => {
                let info = response.into_inner().info.unwrap_or_default();
                Ok(Some(u64::try_from(info.size).map_err(|_| {
                    format!("the client gave {digest} a size of {}", info.size)
                })?))
            }
            Err(status) if status.code() == Code::NotFound => Ok(None),
            Err(status) => Err(status_error("Info", &status)),
        }
    }

    async fn read_blob(
        &self,
        digest: &Digest,
    ) -> Result<BoxStream<'static, Result<Bytes, BoxError>>, BoxError> {
        let request = self.request(ReadContentRequest {
            digest: digest.to_string(),
            offset: 0,
            size: 0,
        })?;
        let stream = self
            .client()
            .read(request)
            .await
            .map_err(|s| status_error("Read", &s))?
            .into_inner();
        Ok(stream
            .map(|message| {
                message
                    .map(|m| Bytes::from(m.data))
                    .map_err(|s| status_error("Read", &s))
            })
            .boxed())
    }

    /// containerd's remote writer: STAT (the ref, size and digest: `AlreadyExists` when
    /// the store has the blob), then the bytes at their offsets, then COMMIT, each
    /// answered; the COMMIT's answer must name the digest and size written.
    async fn write_blob(
        &self,
        descriptor: &Descriptor,
        file: std::fs::File,
    ) -> Result<bool, BoxError> {
        let total = i64::try_from(descriptor.size)?;
        let expected = descriptor.digest.to_string();
        let (tx, rx) = tokio::sync::mpsc::channel::<WriteContentRequest>(4);
        tx.send(WriteContentRequest {
            action: WriteAction::Stat.into(),
            r#ref: format!("hoist-cache-{expected}"),
            total,
            expected: expected.clone(),
            ..WriteContentRequest::default()
        })
        .await?;
        // The file's bytes, read on a blocking thread as the stream takes them.
        let producer = {
            let (tx, expected) = (tx.clone(), expected.clone());
            tokio::task::spawn_blocking(move || -> std::io::Result<()> {
                let mut file = file;
                let mut offset = 0i64;
                loop {
                    let mut data = vec![0; CHUNK];
                    let n = file.read(&mut data)?;
                    if n == 0 {
                        break;
                    }
                    data.truncate(n);
                    let request = WriteContentRequest {
                        action: WriteAction::Write.into(),
                        offset,
                        data,
                        ..WriteContentRequest::default()
                    };
                    offset += i64::try_from(n).unwrap_or(i64::MAX);
                    if tx.blocking_send(request).is_err() {
                        return Ok(());
                    }
                }
                let _ = tx.blocking_send(WriteContentRequest {
                    action: WriteAction::Commit.into(),
                    offset,
                    total,
                    expected,
                    ..WriteContentRequest::default()
                });
                Ok(())
            })
        };
        drop(tx);
        let request = self.request(tokio_stream::wrappers::ReceiverStream::new(rx))?;
        let mut responses = match self.client().write(request).await {
            Ok(response) => response.into_inner(),
            Err(status) if status.code() == Code::AlreadyExists => return Ok(false),
            Err(status) => return Err(status_error("Write", &status)),
        };
        let outcome = loop {
            match responses.message().await {
                Ok(Some(response)) if response.action == i32::from(WriteAction::Commit) => {
                    if response.digest != expected || response.offset != total {
                        break Err(format!(
                            "the client committed {} ({} bytes) for {expected} ({total} bytes)",
                            response.digest, response.offset
                        )
                        .into());
                    }
                    break Ok(true);
                }
                Ok(Some(_)) => {}
                Ok(None) => {
                    break Err(format!("the client ended the write of {expected} early").into())
                }
                Err(status) if status.code() == Code::AlreadyExists => break Ok(false),
                Err(status) => break Err(status_error("Write", &status)),
            }
        };
        drop(responses);
        // A committed write had every byte read; otherwise the producer ends once the call's
        // request stream is dropped, and is not waited for.
        if matches!(outcome, Ok(true)) {
            match producer.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(format!("reading {expected} to send it: {e}").into()),
                Err(e) => return Err(e.to_string().into()),
            }
        }
        outcome
    }
}

fn status_error(call: &str, status: &Status) -> BoxError {
    format!(
        "the client's content store {call}: {} ({:?})",
        status.message(),
        status.code()
    )
    .into()
}

impl BlobStore for SessionStore {
    fn describe(&self) -> String {
        format!("{} (the client's directory)", self.dir)
    }

    fn size<'a>(&'a self, digest: &'a Digest) -> BoxFuture<'a, Result<Option<u64>, BoxError>> {
        self.size_of(digest).boxed()
    }

    fn read<'a>(
        &'a self,
        digest: &'a Digest,
    ) -> BoxFuture<'a, Result<BoxStream<'static, Result<Bytes, BoxError>>, BoxError>> {
        self.read_blob(digest).boxed()
    }

    fn write<'a>(
        &'a self,
        descriptor: &'a Descriptor,
        content: std::fs::File,
    ) -> BoxFuture<'a, Result<bool, BoxError>> {
        self.write_blob(descriptor, content).boxed()
    }
}

/// Turns the `type=local` imports and exports of `cache` (typed by `cache_options` with
/// the client's paths) into client-store ones through `session`, which must serve the
/// content service. An import needs the `digest` the client found in its `index.json`,
/// as BuildKit's importer.
pub fn attach(session: &Session, cache: &mut CacheOptions) -> Result<(), Status> {
    let mut stores: Vec<(String, ClientStore)> = Vec::new();
    let mut store_for = |dir: String| -> Result<ClientStore, Status> {
        session.require(METHODS[0])?;
        if let Some((_, store)) = stores.iter().find(|(known, _)| *known == dir) {
            return Ok(store.clone());
        }
        let store = ClientStore::new(Arc::new(SessionStore::new(session, &dir)));
        stores.push((dir, store.clone()));
        Ok(store)
    };
    for import in &mut cache.imports {
        if let CacheImport::Local { src, select } = import {
            let dir = src.to_string_lossy().into_owned();
            let hoist_engine::LocalSelect::Digest(root) = select.clone() else {
                return Err(Status::invalid_argument(format!(
                    "the local cache import of {dir} names no digest: a client sends the \
                     digest its index.json names for the tag"
                )));
            };
            *import = CacheImport::Client {
                store: store_for(dir.clone())?,
                dir,
                root,
            };
        }
    }
    for export in &mut cache.exports {
        if let CacheDestination::Local { dest, .. } = &export.destination {
            let dir = dest.to_string_lossy().into_owned();
            export.destination = CacheDestination::Client {
                store: store_for(dir.clone())?,
                dir,
            };
        }
    }
    Ok(())
}

/// Whether `cache` has `type=local` entries (which need the client's session).
pub fn has_local(cache: &CacheOptions) -> bool {
    cache
        .imports
        .iter()
        .any(|i| matches!(i, CacheImport::Local { .. }))
        || cache
            .exports
            .iter()
            .any(|e| matches!(e.destination, CacheDestination::Local { .. }))
}
