//! The client side of a BuildKit session.
//!
//! A BuildKit daemon asks the client for what only the client has — the context and
//! Dockerfile directories, registry credentials, secrets, an SSH agent — and streams
//! local outputs back to it, all through gRPC calls the *client* serves. The connection
//! those calls travel on is opened by the client: `Control.Session` (a stream of
//! `BytesMessage` each way, [`tunnel`]) or the Docker daemon's `POST /session` upgrade
//! ([`dockerd`]); the client then runs an HTTP/2 gRPC server on it ([`Session::serve`]).
//!
//! Served (each listed in the `X-Docker-Expose-Session-Grpc-Method` values):
//! - `moby.filesync.v1.FileSync/DiffCopy`: fsutil's sender for the named directories
//!   (`dir-name` metadata), with `include-patterns`, `exclude-patterns` and `followpaths`
//!   ([`fsutil::send`], [`fsutil::walk`]). `TarStream` answers `Unimplemented`.
//! - `moby.filesync.v1.FileSend/DiffCopy`: the `tar` exporter's byte stream into a file or
//!   stdout, or the `local` exporter's fsutil packets into a directory
//!   ([`fsutil::receive`], merged into what is there).
//! - `moby.filesync.v1.Auth/Credentials` from the docker config (hoist-registry);
//!   `FetchToken`, `GetTokenAuthority`, `VerifyTokenAuthority` answer `Unimplemented`, as the
//!   docker CLI does without a token authority.
//! - `moby.buildkit.secrets.v1.Secrets/GetSecret` from the build's `--secret` values.
//! - `moby.sshforward.v1.SSH/CheckAgent` and `ForwardAgent` to the `--ssh` agent sockets.
//! - `moby.upload.v1.Upload/Pull` (only with an upload, [`upload`]): a context read from
//!   stdin, named `http://buildkit-session/<id>` in the request.
//! - `containerd.services.content.v1.Content` (`Info`, `Read`, `Status`, `Write`, `Abort`;
//!   only with a content store, [`content`]): `type=local` cache directories as OCI
//!   layouts the daemon reads blobs from and writes blobs to, verified and atomic.
//! - `grpc.health.v1.Health/Check`.
//!
//! [`fsutil`] is the DiffCopy protocol itself, both ends; hoistd uses it (and [`tunnel`],
//! [`drained`], [`drained_call`]) for the daemon's side of the same session, so one
//! implementation serves both.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use futures::{Stream, StreamExt as _};
use hoist_proto::filesync::auth_server::{Auth, AuthServer};
use hoist_proto::filesync::file_sync_server::{FileSync, FileSyncServer};
use hoist_proto::filesync::{
    BytesMessage, CredentialsRequest, CredentialsResponse, FetchTokenRequest, FetchTokenResponse,
    GetTokenAuthorityRequest, GetTokenAuthorityResponse, VerifyTokenAuthorityRequest,
    VerifyTokenAuthorityResponse,
};
use hoist_proto::fsutil_types::Packet;
use hoist_proto::health::health_server::{Health, HealthServer};
use hoist_proto::health::HealthCheckResponse;
use hoist_proto::health::{health_check_response::ServingStatus, HealthCheckRequest};
use hoist_proto::secrets::secrets_server::{Secrets, SecretsServer};
use hoist_proto::secrets::{GetSecretRequest, GetSecretResponse};
use hoist_proto::sshforward::ssh_server::{Ssh, SshServer};
use hoist_proto::sshforward::{CheckAgentRequest, CheckAgentResponse};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _};
use tokio::sync::mpsc;
use tonic::{Request, Response, Status, Streaming};

pub mod content;
pub mod dockerd;
pub mod fsutil;
pub mod tunnel;
pub mod upload;

/// The header (and gRPC metadata key, lower-cased) naming the session's id.
pub const HEADER_UUID: &str = "X-Docker-Expose-Session-Uuid";
/// The session's name.
pub const HEADER_NAME: &str = "X-Docker-Expose-Session-Name";
/// The session's shared key: the daemon reuses its copy of a directory across sessions
/// with the same key.
pub const HEADER_SHARED_KEY: &str = "X-Docker-Expose-Session-Sharedkey";
/// One value per gRPC method the session serves.
pub const HEADER_METHOD: &str = "X-Docker-Expose-Session-Grpc-Method";

/// The gRPC methods a session serves, as `/package.Service/Method`.
pub const METHODS: &[&str] = &[
    "/moby.filesync.v1.FileSync/DiffCopy",
    "/moby.filesync.v1.FileSync/TarStream",
    "/moby.filesync.v1.Auth/Credentials",
    "/moby.filesync.v1.Auth/FetchToken",
    "/moby.filesync.v1.Auth/GetTokenAuthority",
    "/moby.filesync.v1.Auth/VerifyTokenAuthority",
    "/moby.buildkit.secrets.v1.Secrets/GetSecret",
    "/moby.sshforward.v1.SSH/CheckAgent",
    "/moby.sshforward.v1.SSH/ForwardAgent",
    "/grpc.health.v1.Health/Check",
];

/// The HTTP/2 receive window of the session's connection.
const RECEIVE_WINDOW: u32 = 16 * 1024 * 1024;

/// Reads `incoming` as fast as it arrives, into a queue: h2 counts small DATA frames not yet
/// read by the application against a budget and closes the connection when it runs out, so
/// a stream whose messages wait while this side sends (fsutil's REQs during file data) must
/// be drained apart from its processing.
pub fn drained<T: Send + 'static>(
    incoming: Streaming<T>,
) -> tokio_stream::wrappers::UnboundedReceiverStream<Result<T, Status>> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(forward(incoming, tx));
    tokio_stream::wrappers::UnboundedReceiverStream::new(rx)
}

async fn forward<T>(mut incoming: Streaming<T>, tx: mpsc::UnboundedSender<Result<T, Status>>) {
    loop {
        match incoming.message().await {
            Ok(Some(message)) => {
                if tx.send(Ok(message)).is_err() {
                    break;
                }
            }
            Ok(None) => break,
            Err(status) => {
                let _ = tx.send(Err(status));
                break;
            }
        }
    }
}

/// A call's response stream, [`drained`], started when first polled: a daemon calling the
/// client's `FileSend.DiffCopy` sends its STATs before the client answers (a Go client sends
/// its response headers with its first message, a REQ), so the STATs must already flow
/// while the call waits for its response. A failed call is the stream's one error.
pub fn drained_call<T, F>(
    call: F,
) -> tokio_stream::wrappers::UnboundedReceiverStream<Result<T, Status>>
where
    T: Send + 'static,
    F: std::future::Future<Output = Result<Response<Streaming<T>>, Status>> + Send + 'static,
{
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        match call.await {
            Ok(response) => forward(response.into_inner(), tx).await,
            Err(status) => {
                let _ = tx.send(Err(status));
            }
        }
    });
    tokio_stream::wrappers::UnboundedReceiverStream::new(rx)
}

/// The `FileSend` method, served only when the session has an output.
pub const FILE_SEND_METHOD: &str = "/moby.filesync.v1.FileSend/DiffCopy";

/// The `Upload` method, served only when the session has an upload.
pub const UPLOAD_METHOD: &str = "/moby.upload.v1.Upload/Pull";

/// Where an exporter's result goes.
#[derive(Debug, Clone)]
pub enum Output {
    /// The `tar` exporter's stream (or the `docker`/`oci` exporters'): into this file,
    /// replaced only once complete; `None` is stdout.
    Stream(Option<PathBuf>),
    /// The `local` exporter's tree: into this directory.
    Directory(PathBuf),
}

/// One client session: what it serves and its identity.
#[derive(Debug)]
pub struct Session {
    id: String,
    name: String,
    shared_key: String,
    dirs: BTreeMap<String, PathBuf>,
    output: Option<Output>,
    secrets: BTreeMap<String, Vec<u8>>,
    ssh: BTreeMap<String, PathBuf>,
    credentials: hoist_registry::Credentials,
    /// Readers the daemon pulls by URL (a context on stdin).
    uploads: upload::Uploads,
    /// `type=local` cache directories, by store id (`local:DIR`).
    stores: content::Stores,
    /// The first error an output or a transfer met, for the client to report.
    error: Mutex<Option<String>>,
    /// How many files' data the daemon asked for (the incremental transfer at work).
    files_sent: std::sync::atomic::AtomicU64,
}

impl Session {
    /// A session named `name` whose directories the daemon caches under `shared_key`.
    pub fn new(name: &str, shared_key: &str) -> Self {
        Session {
            id: new_id(),
            name: name.to_owned(),
            shared_key: shared_key.to_owned(),
            dirs: BTreeMap::new(),
            output: None,
            secrets: BTreeMap::new(),
            ssh: BTreeMap::new(),
            credentials: hoist_registry::Credentials::anonymous(),
            uploads: upload::Uploads::default(),
            stores: content::Stores::default(),
            error: Mutex::new(None),
            files_sent: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Serves the directory `path` under `name` (`context`, `dockerfile`, a named context).
    pub fn with_dir(mut self, name: &str, path: PathBuf) -> Self {
        self.dirs.insert(name.to_owned(), path);
        self
    }

    /// Receives the exporter's result.
    pub fn with_output(mut self, output: Output) -> Self {
        self.output = Some(output);
        self
    }

    /// Answers `GetSecret` for these ids.
    pub fn with_secrets(mut self, secrets: BTreeMap<String, Vec<u8>>) -> Self {
        self.secrets = secrets;
        self
    }

    /// Forwards `ForwardAgent` for each id to the agent socket given.
    pub fn with_ssh(mut self, agents: BTreeMap<String, PathBuf>) -> Self {
        self.ssh = agents;
        self
    }

    /// Answers `Credentials` from these (the docker config, usually).
    pub fn with_credentials(mut self, credentials: hoist_registry::Credentials) -> Self {
        self.credentials = credentials;
        self
    }

    /// Serves `reader` for the daemon to pull once (`Upload.Pull`); the URL naming it
    /// (`http://buildkit-session/<id>`, the request's `context`).
    pub fn add_upload(&mut self, reader: Box<dyn std::io::Read + Send>) -> String {
        self.uploads.add(new_id(), reader)
    }

    /// Serves the OCI layout `dir` as the content store `id` (`local:DIR`,
    /// [`content::store_id`]) for a `type=local` cache.
    pub fn with_content_store(mut self, id: String, dir: PathBuf) -> Self {
        self.stores.insert(id, content::LayoutDir::new(dir));
        self
    }

    /// The session id (the `session` of a `SolveRequest`).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The first error a transfer or the output met, if any.
    pub fn error(&self) -> Option<String> {
        self.error.lock().ok().and_then(|e| e.clone())
    }

    /// How many files' contents the daemon asked for so far.
    pub fn files_sent(&self) -> u64 {
        self.files_sent.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn fail(&self, message: String) {
        if let Ok(mut slot) = self.error.lock() {
            slot.get_or_insert(message);
        }
    }

    /// The methods served, as `/package.Service/Method`.
    pub fn methods(&self) -> Vec<&'static str> {
        let mut methods = METHODS.to_vec();
        if self.output.is_some() {
            methods.push(FILE_SEND_METHOD);
        }
        if !self.uploads.is_empty() {
            methods.push(UPLOAD_METHOD);
        }
        if !self.stores.is_empty() {
            methods.extend(content::METHODS);
        }
        methods
    }

    /// The headers (HTTP) or metadata (gRPC, names lower-cased) that open the session.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut headers = vec![
            (HEADER_UUID, self.id.clone()),
            (HEADER_NAME, self.name.clone()),
            (HEADER_SHARED_KEY, self.shared_key.clone()),
        ];
        headers.extend(
            self.methods()
                .into_iter()
                .map(|m| (HEADER_METHOD, m.to_owned())),
        );
        headers
    }

    /// Runs the session's gRPC server (HTTP/2, the daemon being the client) on `io` until
    /// the daemon closes the connection.
    pub async fn serve<IO>(self: Arc<Self>, io: IO) -> anyhow::Result<()>
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let session = self;
        let service =
            hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                let session = Arc::clone(&session);
                async move { Ok::<_, Infallible>(session.route(request).await) }
            });
        // A daemon sends many small messages (fsutil's REQ and STAT packets): a large
        // receive window keeps h2's budget for small DATA frames above what a transfer
        // has in flight.
        hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .initial_connection_window_size(RECEIVE_WINDOW)
            .initial_stream_window_size(RECEIVE_WINDOW / 2)
            .serve_connection(hyper_util::rt::TokioIo::new(io), service)
            .await
            .map_err(|e| {
                let mut message = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(cause) = source {
                    message.push_str(&format!(": {cause}"));
                    source = cause.source();
                }
                anyhow::anyhow!("the session connection failed: {message}")
            })
    }

    async fn route(
        self: Arc<Self>,
        request: hyper::Request<hyper::body::Incoming>,
    ) -> hyper::Response<tonic::body::Body> {
        use tower_service::Service as _;
        let path = request.uri().path().to_owned();
        let service = path.trim_start_matches('/').split('/').next().unwrap_or("");
        let handler = Handler(Arc::clone(&self));
        let response = match service {
            "moby.filesync.v1.FileSync" => FileSyncServer::new(handler).call(request).await,
            "moby.filesync.v1.FileSend" => FileSendService(self).call(request).await,
            "moby.filesync.v1.Auth" => AuthServer::new(handler).call(request).await,
            "moby.buildkit.secrets.v1.Secrets" => SecretsServer::new(handler).call(request).await,
            "moby.sshforward.v1.SSH" => SshServer::new(handler).call(request).await,
            "moby.upload.v1.Upload" => {
                hoist_proto::upload::upload_server::UploadServer::new(upload::UploadService(self))
                    .call(request)
                    .await
            }
            "containerd.services.content.v1.Content" => {
                hoist_proto::content::content_server::ContentServer::new(content::ContentService(
                    Arc::new(self.stores.clone()),
                ))
                // A daemon's WRITE messages are its copy buffer (containerd's: 1 MiB).
                .max_decoding_message_size(content::MAX_MESSAGE)
                .call(request)
                .await
            }
            "grpc.health.v1.Health" => HealthServer::new(handler).call(request).await,
            _ => Ok(Status::unimplemented(format!("unknown method {path}")).into_http()),
        };
        match response {
            Ok(response) => response,
            Err(never) => match never {},
        }
    }
}

/// A random id of 25 lower-case letters and digits, as BuildKit's.
fn new_id() -> String {
    let mut bytes = [0u8; 32];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = std::io::Read::read_exact(&mut f, &mut bytes);
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..25)
        .map(|i| {
            let mixed =
                bytes[i] as u128 ^ (nanos >> (i % 16)) ^ (std::process::id() as u128 >> (i % 8));
            ALPHABET[(mixed % 36) as usize] as char
        })
        .collect()
}

#[derive(Debug, Clone)]
struct Handler(Arc<Session>);

type PacketStream = Pin<Box<dyn Stream<Item = Result<Packet, Status>> + Send>>;

/// Every value of `key`. Values are taken as UTF-8 bytes: BuildKit sends a pattern naming a
/// non-ASCII path (`COPY test-äöü.txt`) as its raw UTF-8, which is no visible-ASCII header
/// text; skipping it would drop an include pattern (and the file it names).
fn metadata_all(request: &tonic::metadata::MetadataMap, key: &str) -> Vec<String> {
    request
        .get_all(key)
        .iter()
        .filter_map(|v| String::from_utf8(v.as_bytes().to_vec()).ok())
        .collect()
}

#[tonic::async_trait]
impl FileSync for Handler {
    type DiffCopyStream = PacketStream;
    type TarStreamStream = PacketStream;

    async fn diff_copy(
        &self,
        request: Request<Streaming<Packet>>,
    ) -> Result<Response<PacketStream>, Status> {
        let metadata = request.metadata();
        let name = metadata_all(metadata, "dir-name")
            .into_iter()
            .next()
            .unwrap_or_default();
        let Some(root) = self.0.dirs.get(&name).cloned() else {
            return Err(Status::not_found(format!(
                "no access allowed to dir {name:?}"
            )));
        };
        let options = fsutil::SendOptions {
            filter: fsutil::Filter {
                include: metadata_all(metadata, "include-patterns"),
                exclude: metadata_all(metadata, "exclude-patterns"),
                follow: metadata_all(metadata, "followpaths"),
            },
            idle: None,
        };
        let incoming = drained(request.into_inner());
        let (tx, rx) = mpsc::channel(fsutil::BATCHES);
        let session = Arc::clone(&self.0);
        tokio::spawn(async move {
            match fsutil::send(root, incoming, tx, &options).await {
                Ok(files) => {
                    session
                        .files_sent
                        .fetch_add(files, std::sync::atomic::Ordering::Relaxed);
                }
                Err(e) => session.fail(format!("sending the directory {name:?}: {e}")),
            }
        });
        Ok(Response::new(Box::pin(fsutil::packets(rx).map(Ok))))
    }

    async fn tar_stream(
        &self,
        _request: Request<Streaming<Packet>>,
    ) -> Result<Response<PacketStream>, Status> {
        Err(Status::unimplemented("TarStream is not served by hoist"))
    }
}

/// `FileSend.DiffCopy`, whose messages are `BytesMessage`s for a stream output and fsutil
/// `Packet`s for a directory (BuildKit sends either on the same method), so it is served
/// with the codec the session's output calls for.
#[derive(Debug, Clone)]
struct FileSendService(Arc<Session>);

impl<B> tower_service::Service<hyper::Request<B>> for FileSendService
where
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    type Response = hyper::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future =
        Pin<Box<dyn std::future::Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: hyper::Request<B>) -> Self::Future {
        let session = Arc::clone(&self.0);
        Box::pin(async move {
            if request.uri().path() != FILE_SEND_METHOD {
                return Ok(Status::unimplemented("unknown method").into_http());
            }
            let response = match session.output.clone() {
                None => Status::failed_precondition("this session has no output").into_http(),
                Some(Output::Stream(path)) => {
                    let codec = tonic_prost::ProstCodec::<BytesMessage, BytesMessage>::default();
                    tonic::server::Grpc::new(codec)
                        .streaming(StreamOutput(session, path), request)
                        .await
                }
                Some(Output::Directory(dir)) => {
                    let codec = tonic_prost::ProstCodec::<Packet, Packet>::default();
                    tonic::server::Grpc::new(codec)
                        .streaming(DirectoryOutput(session, dir), request)
                        .await
                }
            };
            Ok(response)
        })
    }
}

type BoxFuture<T> = Pin<Box<dyn std::future::Future<Output = Result<T, Status>> + Send>>;

struct StreamOutput(Arc<Session>, Option<PathBuf>);

impl tonic::server::StreamingService<BytesMessage> for StreamOutput {
    type Response = BytesMessage;
    type ResponseStream = Pin<Box<dyn Stream<Item = Result<BytesMessage, Status>> + Send>>;
    type Future = BoxFuture<Response<Self::ResponseStream>>;

    fn call(&mut self, request: Request<Streaming<BytesMessage>>) -> Self::Future {
        let session = Arc::clone(&self.0);
        let path = self.1.clone();
        Box::pin(async move {
            let incoming = request.into_inner();
            // The daemon waits for this side to end its stream before it reports the export
            // done, so the file is complete (and renamed into place) by then.
            let done = write_stream(path.as_deref(), incoming).await;
            if let Err(e) = &done {
                session.fail(format!("writing the output: {e}"));
            }
            let stream: Self::ResponseStream = Box::pin(futures::stream::empty());
            done.map_err(|e| Status::internal(e.to_string()))?;
            Ok(Response::new(stream))
        })
    }
}

async fn write_stream(
    path: Option<&std::path::Path>,
    mut incoming: Streaming<BytesMessage>,
) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let Some(path) = path else {
        let mut stdout = tokio::io::stdout();
        while let Some(message) = incoming.message().await? {
            stdout.write_all(&message.data).await?;
        }
        stdout.flush().await?;
        return Ok(());
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let temp = dir.join(format!(
        ".{}.hoist-{}.part",
        name.unwrap_or_default(),
        std::process::id()
    ));
    let result = async {
        let mut file = tokio::fs::File::create(&temp)
            .await
            .with_context(|| format!("cannot create {}", temp.display()))?;
        while let Some(message) = incoming.message().await? {
            file.write_all(&message.data)
                .await
                .with_context(|| format!("cannot write {}", temp.display()))?;
        }
        file.sync_all().await?;
        tokio::fs::rename(&temp, path)
            .await
            .with_context(|| format!("cannot write {}", path.display()))
    }
    .await;
    if result.is_err() {
        let _ = tokio::fs::remove_file(&temp).await;
    }
    result
}

struct DirectoryOutput(Arc<Session>, PathBuf);

impl tonic::server::StreamingService<Packet> for DirectoryOutput {
    type Response = Packet;
    type ResponseStream = PacketStream;
    type Future = BoxFuture<Response<PacketStream>>;

    fn call(&mut self, request: Request<Streaming<Packet>>) -> Self::Future {
        let session = Arc::clone(&self.0);
        let dir = self.1.clone();
        Box::pin(async move {
            let incoming = request.into_inner();
            let (tx, rx) = mpsc::channel(fsutil::BATCHES);
            tokio::spawn(async move {
                // `tx` outlives the receive, so the daemon's stream ends only once a failure
                // is recorded.
                let options = fsutil::ReceiveOptions::default();
                let received = fsutil::receive(&dir, drained(incoming), tx.clone(), &options);
                if let Err(e) = received.await {
                    session.fail(format!("writing the output to {}: {e}", dir.display()));
                }
                drop(tx);
            });
            let stream: PacketStream = Box::pin(fsutil::packets(rx).map(Ok));
            Ok(Response::new(stream))
        })
    }
}

#[tonic::async_trait]
impl Auth for Handler {
    async fn credentials(
        &self,
        request: Request<CredentialsRequest>,
    ) -> Result<Response<CredentialsResponse>, Status> {
        let host = request.into_inner().host;
        // The docker CLI's mapping: Docker Hub's registry host is stored under its index.
        let lookup = if host == "registry-1.docker.io" {
            "docker.io"
        } else {
            host.as_str()
        };
        let auth = self
            .0
            .credentials
            .lookup(lookup)
            .await
            .map_err(|e| Status::internal(format!("credentials for {host}: {e}")))?;
        let response = match auth {
            Some(hoist_registry::Auth::Basic { username, password }) => CredentialsResponse {
                username,
                secret: password,
            },
            Some(hoist_registry::Auth::IdentityToken(token)) => CredentialsResponse {
                username: String::new(),
                secret: token,
            },
            Some(hoist_registry::Auth::BearerToken(_)) | None => CredentialsResponse::default(),
        };
        Ok(Response::new(response))
    }

    async fn fetch_token(
        &self,
        _request: Request<FetchTokenRequest>,
    ) -> Result<Response<FetchTokenResponse>, Status> {
        Err(Status::unimplemented("no token authority"))
    }

    async fn get_token_authority(
        &self,
        _request: Request<GetTokenAuthorityRequest>,
    ) -> Result<Response<GetTokenAuthorityResponse>, Status> {
        Err(Status::unimplemented("no token authority"))
    }

    async fn verify_token_authority(
        &self,
        _request: Request<VerifyTokenAuthorityRequest>,
    ) -> Result<Response<VerifyTokenAuthorityResponse>, Status> {
        Err(Status::unimplemented("no token authority"))
    }
}

#[tonic::async_trait]
impl Secrets for Handler {
    async fn get_secret(
        &self,
        request: Request<GetSecretRequest>,
    ) -> Result<Response<GetSecretResponse>, Status> {
        let id = request.into_inner().id;
        match self.0.secrets.get(&id) {
            Some(data) => Ok(Response::new(GetSecretResponse { data: data.clone() })),
            None => Err(Status::not_found(format!("secret {id} not found"))),
        }
    }
}

/// The metadata key naming the agent a `ForwardAgent` call is for.
const SSH_ID_KEY: &str = "buildkit.ssh.id";

type SshStream =
    Pin<Box<dyn Stream<Item = Result<hoist_proto::sshforward::BytesMessage, Status>> + Send>>;

impl Handler {
    fn agent(&self, id: &str) -> Result<PathBuf, Status> {
        let id = if id.is_empty() { "default" } else { id };
        self.0
            .ssh
            .get(id)
            .cloned()
            .ok_or_else(|| Status::not_found(format!("unset ssh forward key {id}")))
    }
}

#[tonic::async_trait]
impl Ssh for Handler {
    type ForwardAgentStream = SshStream;

    async fn check_agent(
        &self,
        request: Request<CheckAgentRequest>,
    ) -> Result<Response<CheckAgentResponse>, Status> {
        self.agent(&request.into_inner().id)?;
        Ok(Response::new(CheckAgentResponse {}))
    }

    async fn forward_agent(
        &self,
        request: Request<Streaming<hoist_proto::sshforward::BytesMessage>>,
    ) -> Result<Response<SshStream>, Status> {
        let id = metadata_all(request.metadata(), SSH_ID_KEY)
            .into_iter()
            .next()
            .unwrap_or_default();
        let socket = self.agent(&id)?;
        let agent = tokio::net::UnixStream::connect(&socket)
            .await
            .map_err(|e| {
                Status::unavailable(format!(
                    "cannot reach the ssh agent {}: {e}",
                    socket.display()
                ))
            })?;
        let (io, outbound, inbound) = tunnel::tunnel::<hoist_proto::sshforward::BytesMessage>();
        let incoming = request.into_inner();
        tokio::spawn(inbound.feed(incoming));
        tokio::spawn(async move {
            let (mut a, mut b) = (agent, io);
            let _ = tokio::io::copy_bidirectional(&mut a, &mut b).await;
        });
        Ok(Response::new(Box::pin(outbound.map(Ok))))
    }
}

type HealthStream = Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Health for Handler {
    type WatchStream = HealthStream;

    async fn check(
        &self,
        _request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        Ok(Response::new(HealthCheckResponse {
            status: ServingStatus::Serving as i32,
        }))
    }

    async fn watch(
        &self,
        _request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthStream>, Status> {
        Err(Status::unimplemented("Watch is not served"))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn metadata_values_with_non_ascii_utf8_are_kept() {
        let mut map = tonic::metadata::MetadataMap::new();
        let raw = "test-äöü.txt".as_bytes();
        let value = tonic::metadata::MetadataValue::try_from(raw).unwrap();
        map.append("include-patterns", value);
        map.append("include-patterns", "test+aou.txt".parse().unwrap());
        assert_eq!(
            super::metadata_all(&map, "include-patterns"),
            ["test-äöü.txt", "test+aou.txt"]
        );
    }
}
