//! `hoist build --addr ADDRESS`: the build sent to a BuildKit daemon (hoistd, a buildkitd,
//! or the BuildKit inside a Docker daemon) as `Control.Solve` with the `dockerfile.v0`
//! frontend, its `Control.Status` stream turned into hoist's progress events for the usual
//! renderers, and the exporter response written to `--metadata-file` / `--iidfile` as a
//! local build's.
//!
//! Addresses: `unix:///PATH`, `tcp://HOST:PORT` (TLS flags as buildctl's), `docker-daemon`
//! (`DOCKER_HOST` or `/var/run/docker.sock`) and `docker-daemon://SOCKET`: dockerd's
//! `POST /grpc` upgrade carries the gRPC calls, its `POST /session` upgrade the session.
//!
//! What the daemon needs from this machine travels through a session (hoist-session) the
//! client serves: the local context and Dockerfile directories (`context`, `dockerfile`,
//! `--build-context NAME=DIR` as `local:NAME`), registry credentials from the docker
//! config, `--secret` values, `--ssh` agent sockets, and the `local`/`tar` outputs streamed
//! back. Over `unix://`/`tcp://` the session is the `Control.Session` stream and is opened only
//! when the build needs one (a URL context pushed to a registry needs none); dockerd always
//! gets one.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context as _};
use base64::Engine as _;
use hoist_builder::driver::{Endpoint, TlsOptions};
use hoist_engine::progress::{
    Digest, Event, EventKind, LogStream, SourceLines, VertexInfo, Warning, WarningSource,
};
use hoist_proto::control::control_client::ControlClient;
use hoist_proto::control::{Exporter, SolveRequest, StatusRequest, StatusResponse};
use hoist_proto::tonic::transport::{Channel, Uri};
use hoist_proto::Timestamp;
use hoist_session::{dockerd, Output, Session};
use tokio::sync::mpsc::UnboundedSender;

use super::remote_options::{LocalCaches, StdinContext};
use super::{block_on, RemoteTls};
use crate::cli::BuildArgs;
use crate::progress;

/// Where the build goes.
enum Daemon {
    /// A BuildKit daemon's own gRPC socket.
    Grpc,
    /// The BuildKit inside a Docker daemon.
    Docker(dockerd::Endpoint),
}

impl Daemon {
    fn of(addr: &str) -> anyhow::Result<Daemon> {
        let host = std::env::var("DOCKER_HOST").ok();
        match dockerd::Endpoint::from_addr(addr, host.as_deref()) {
            Some(endpoint) => Ok(Daemon::Docker(endpoint?)),
            None => Ok(Daemon::Grpc),
        }
    }

    fn is_docker(&self) -> bool {
        matches!(self, Daemon::Docker(_))
    }
}

/// The build as sent: the request and the session that serves it, if it needs one.
struct Plan {
    request: SolveRequest,
    session: Option<Session>,
    /// A Dockerfile from stdin, kept until the build ends.
    _temp: Option<TempDir>,
    /// `type=local` caches: their directories' `index.json` tagged after the build.
    local_caches: LocalCaches,
}

pub fn run(args: &BuildArgs, addr: &str, tls: RemoteTls) -> anyhow::Result<ExitCode> {
    run_on(
        args,
        &Dial::Address {
            addr: addr.to_owned(),
            tls,
        },
    )
}

/// How the client reaches the daemon: the one hook between "which node" and the build.
pub enum Dial {
    /// An address (`unix://`, `tcp://`, TLS settings), as `--addr` or a `remote` builder.
    Address { addr: String, tls: RemoteTls },
    /// A `docker-container` builder's hoistd, through `exec hoistd dial-stdio`.
    Container(Box<hoist_builder::driver::DockerContainerDriver>),
    /// A `kubernetes` builder's pods, through pod exec of `hoistd dial-stdio`; `key` (the
    /// context's absolute path) picks the pod when load balancing is sticky.
    Kubernetes {
        driver: Box<hoist_builder::driver::KubernetesDriver>,
        key: String,
    },
}

impl Dial {
    /// What errors name as the daemon's address.
    pub(super) fn label(&self) -> String {
        match self {
            Dial::Address { addr, .. } => addr.clone(),
            Dial::Container(driver) => format!(
                "docker-container://{} (via {})",
                driver.container(),
                driver.docker_endpoint()
            ),
            Dial::Kubernetes { driver, .. } => format!(
                "kubernetes://{}/{}",
                driver.context().unwrap_or("(current context)"),
                driver.deployment()
            ),
        }
    }

    pub(super) async fn connect(&self) -> anyhow::Result<Channel> {
        match self {
            Dial::Address { addr, tls } => connect(addr, tls).await,
            Dial::Container(driver) => {
                // As buildx: a builder never bootstrapped (or stopped) starts on first use.
                driver
                    .ensure_running()
                    .await
                    .context("failed to bootstrap the builder")?;
                Ok(driver.channel().await?)
            }
            Dial::Kubernetes { driver, key } => {
                // As buildx: a builder never bootstrapped (or stopped) starts on first use.
                driver
                    .ensure_running()
                    .await
                    .context("failed to bootstrap the builder")?;
                let (channel, _pod) = driver.channel(key).await?;
                Ok(channel)
            }
        }
    }
}

/// [`run`] on a daemon reached as `dial` says.
pub fn run_on(args: &BuildArgs, dial: &Dial) -> anyhow::Result<ExitCode> {
    let label = dial.label();
    let addr = label.as_str();
    let daemon = match &dial {
        Dial::Address { addr, .. } => Daemon::of(addr)?,
        Dial::Container(_) | Dial::Kubernetes { .. } => Daemon::Grpc,
    };
    let Plan {
        mut request,
        session,
        _temp,
        local_caches,
    } = plan(args, &daemon)?;
    if request.exporters.is_empty() {
        eprintln!(
            "WARNING: No output specified. Build result will only remain in the build cache. \
             To push result image into registry use --push"
        );
    }
    let mode = super::build::progress_mode(args)?;
    let session = session.map(Arc::new);
    if let Some(session) = &session {
        request.session = session.id().to_owned();
    }
    let outcome = block_on({
        let session = session.clone();
        async move {
            // A daemon at an address is asked to answer (`answered`) while the session
            // starts: one round trip's wait for both.
            let (channel, unprobed) = match (&daemon, dial) {
                (Daemon::Grpc, Dial::Address { addr, tls }) => (open(addr, tls).await?, true),
                (Daemon::Grpc, _) => (dial.connect().await?, false),
                (Daemon::Docker(endpoint), _) => (connect_docker(endpoint).await?, false),
            };
            let client = ControlClient::new(channel.clone());
            let probe = async {
                match unprobed {
                    true => answered(channel.clone(), addr).await.map(drop),
                    false => Ok(()),
                }
            };
            let started = async {
                match session {
                    Some(session) => start_session(&daemon, client, session, addr).await,
                    None => Ok(()),
                }
            };
            probe_beside(probe, started).await?;
            let (events, renderer) = progress::start(mode);
            let result = solve(channel, request, events).await;
            let _ = renderer.await;
            anyhow::Ok(result)
        }
    })??;
    let session_error = session.as_ref().and_then(|s| s.error());
    let response = match outcome {
        Ok(response) => response,
        Err(status) => {
            // A transport failure (a refused TLS handshake) says why only in its sources.
            let mut message = status_text(&status);
            // The daemon's own answers come without a source; the transport's carry one.
            let transport = std::error::Error::source(&status).is_some()
                || status.code() == hoist_proto::tonic::Code::Unavailable;
            if let Dial::Container(driver) = dial {
                let stderr = driver.dial_stderr();
                if !stderr.is_empty() {
                    message.push_str(&format!(" (dial-stdio: {stderr})"));
                }
            }
            if let Dial::Kubernetes { driver, .. } = dial {
                if let Some(pod) = driver.last_pod() {
                    message.push_str(&format!(" (pod {pod})"));
                }
            }
            if transport {
                eprintln!("ERROR: the connection to {addr} failed: {message}");
            } else {
                eprintln!("ERROR: {message}");
            }
            if let Some(error) = session_error {
                eprintln!("ERROR: {error}");
            }
            if let Some(broke) = SESSION_BROKE.lock().ok().and_then(|s| s.clone()) {
                eprintln!("ERROR: {broke}");
            }
            return Ok(ExitCode::FAILURE);
        }
    };
    if let Some(error) = session_error {
        eprintln!("ERROR: {error}");
        return Ok(ExitCode::FAILURE);
    }
    super::remote_options::tag_local_caches(&local_caches, &response)?;
    let metadata = metadata(&response)?;
    if let Some(path) = &args.metadata_file {
        let json = metadata.to_json()?;
        std::fs::write(path, json).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let id = metadata.config_digest.as_ref().or(metadata.digest.as_ref());
    let id = id.map(ToString::to_string).unwrap_or_default();
    if let Some(path) = &args.iidfile {
        std::fs::write(path, &id).with_context(|| format!("cannot write {}", path.display()))?;
    }
    if args.quiet {
        super::print(format!("{id}\n"))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// One node's share of a multi-node build: the request (its platform and exporter are the
/// caller's to set) and the session serving this machine's files to that node, if the build
/// needs one. Each node gets a session of its own.
pub(super) struct NodeBuild {
    /// The request; [`NodeBuild::start`] names the session in it.
    pub request: SolveRequest,
    session: Option<Arc<Session>>,
    _temp: Option<TempDir>,
}

impl NodeBuild {
    /// The flags as a request for a BuildKit daemon reached over gRPC.
    pub(super) fn new(args: &BuildArgs) -> anyhow::Result<NodeBuild> {
        let Plan {
            request,
            session,
            _temp,
            local_caches,
        } = plan(args, &Daemon::Grpc)?;
        if !local_caches.exports.is_empty() {
            // Each node would write its own cache into the directory and tag it.
            bail!(
                "--cache-to type=local is not supported with a builder of several nodes; \
                 use type=registry"
            );
        }
        Ok(NodeBuild {
            request,
            session: session.map(Arc::new),
            _temp,
        })
    }

    /// Opens the session on `client`'s daemon when there is one; returns the request to
    /// solve there. The session serves until the process ends or the daemon closes it.
    pub(super) async fn start(
        self,
        client: ControlClient<Channel>,
    ) -> anyhow::Result<(SolveRequest, Option<Arc<Session>>)> {
        let mut request = self.request;
        if let Some(session) = &self.session {
            request.session = session.id().to_owned();
            start_session(&Daemon::Grpc, client, Arc::clone(session), "the node").await?;
        }
        Ok((request, self.session))
    }
}

/// The build's one exporter as a BuildKit daemon reached over gRPC gets it, and where its
/// result comes back to this machine (`dest` taken out of the attributes).
pub(super) fn node_exporter(
    args: &BuildArgs,
) -> anyhow::Result<Option<(Exporter, Option<Output>)>> {
    exporter(args, &Daemon::Grpc)
}

/// Opens the session: over `Control.Session` (a byte tunnel the session's HTTP/2 server
/// runs on) or dockerd's `/session` upgrade. The server runs in the background for the
/// rest of the build. A transport failure (a TLS handshake refused for want of a client
/// certificate) is named as the connection to `addr` failing, with its causes.
async fn start_session(
    daemon: &Daemon,
    mut client: ControlClient<Channel>,
    session: Arc<Session>,
    addr: &str,
) -> anyhow::Result<()> {
    match daemon {
        Daemon::Docker(endpoint) => {
            let connection = endpoint.upgrade("/session", &session.headers()).await?;
            tokio::spawn(async move {
                if let Err(e) = session.clone().serve(connection).await {
                    session_failed(&session, e);
                }
            });
        }
        Daemon::Grpc => {
            let (io, outbound, inbound) =
                hoist_session::tunnel::tunnel::<hoist_proto::control::BytesMessage>();
            let mut request = hoist_proto::tonic::Request::new(outbound);
            for (name, value) in session.headers() {
                let key = hoist_proto::tonic::metadata::MetadataKey::from_bytes(
                    name.to_ascii_lowercase().as_bytes(),
                )
                .context("session metadata")?;
                let value = value.parse().context("session metadata")?;
                request.metadata_mut().append(key, value);
            }
            let server = tokio::spawn({
                let session = Arc::clone(&session);
                async move {
                    if let Err(e) = session.clone().serve(io).await {
                        session_failed(&session, e);
                    }
                }
            });
            let response = match client.session(request).await {
                Ok(response) => response,
                Err(status) => {
                    server.abort();
                    let transport = std::error::Error::source(&status).is_some()
                        || status.code() == hoist_proto::tonic::Code::Unavailable;
                    let message = status_text(&status);
                    if transport {
                        bail!("the connection to {addr} failed: {message}");
                    }
                    bail!("the daemon refused the session: {message}");
                }
            };
            tokio::spawn(inbound.feed(response.into_inner()));
        }
    }
    Ok(())
}

/// Why the session's connection broke, if it did: shown when the build fails (a daemon
/// closing the connection after the build is the normal end, and not an error).
static SESSION_BROKE: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

fn session_failed(session: &Session, error: anyhow::Error) {
    if let Ok(mut slot) = SESSION_BROKE.lock() {
        slot.get_or_insert(format!("session {}: {error:#}", session.id()));
    }
}

/// A gRPC channel to the BuildKit inside a Docker daemon: each connection is a `POST /grpc`
/// upgraded to h2c.
async fn connect_docker(endpoint: &dockerd::Endpoint) -> anyhow::Result<Channel> {
    // Fail early, naming the daemon, when it is not there.
    let probe = endpoint.upgrade("/grpc", &[]).await?;
    let probe = std::sync::Mutex::new(Some(probe));
    let endpoint = endpoint.clone();
    hoist_proto::tonic::transport::Endpoint::from_static("http://docker.invalid")
        .connect_timeout(Duration::from_secs(10))
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let first = probe.lock().ok().and_then(|mut p| p.take());
            let endpoint = endpoint.clone();
            async move {
                let connection = match first {
                    Some(connection) => connection,
                    None => endpoint
                        .upgrade("/grpc", &[])
                        .await
                        .map_err(std::io::Error::other)?,
                };
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(connection))
            }
        }))
        .await
        .context("cannot reach the Docker daemon's BuildKit")
}

/// `started` once `probe` has succeeded, both run together; `probe`'s error first (a
/// daemon that does not answer is named so, whatever else failed because of it), and a
/// `started` that never ends is not waited for once `probe` has failed.
async fn probe_beside(
    probe: impl std::future::Future<Output = anyhow::Result<()>>,
    started: impl std::future::Future<Output = anyhow::Result<()>>,
) -> anyhow::Result<()> {
    tokio::pin!(probe, started);
    let mut start = None;
    let probed = loop {
        tokio::select! {
            probed = &mut probe => break probed,
            done = &mut started, if start.is_none() => start = Some(done),
        }
    };
    probed?;
    match start {
        Some(done) => done,
        None => started.await,
    }
}

/// A gRPC channel to `addr` (`unix:///PATH` or `tcp://HOST:PORT`; TLS on tcp when any TLS
/// flag is given). Fails naming the address when nothing answers.
pub(super) async fn connect(addr: &str, tls: &RemoteTls) -> anyhow::Result<Channel> {
    let channel = open(addr, tls).await?;
    answered(channel, addr).await
}

/// [`connect`] without asking the daemon to answer: the caller does (`answered`).
async fn open(addr: &str, tls: &RemoteTls) -> anyhow::Result<Channel> {
    let cannot = || format!("cannot connect to {addr}");
    let endpoint = if let Some(path) = addr.strip_prefix("unix://") {
        if path.is_empty() {
            bail!("invalid address {addr:?}: no socket path");
        }
        Endpoint::Unix(PathBuf::from(path))
    } else if let Some(host_port) = addr.strip_prefix("tcp://") {
        let parsed = host_port.rsplit_once(':').and_then(|(host, port)| {
            let host = host.trim_start_matches('[').trim_end_matches(']');
            Some((host.to_owned(), port.parse::<u16>().ok()?)).filter(|(h, _)| !h.is_empty())
        });
        let Some((host, port)) = parsed else {
            bail!("invalid address {addr:?}: expected tcp://HOST:PORT");
        };
        Endpoint::Tcp { host, port }
    } else {
        bail!(
            "invalid address {addr:?}: expected unix:///PATH, tcp://HOST:PORT, docker-daemon \
             or docker-daemon://SOCKET"
        );
    };
    // TLS on tcp when any TLS flag is given.
    let with_tls = matches!(endpoint, Endpoint::Tcp { .. })
        && (tls.ca.is_some() || tls.cert.is_some() || tls.key.is_some());
    let options = with_tls.then(|| TlsOptions {
        server_name: tls.server_name.clone().unwrap_or_default(),
        ca_cert: tls.ca.clone(),
        cert: tls.cert.clone(),
        key: tls.key.clone(),
    });
    hoist_builder::driver::channel(&endpoint, options.as_ref(), Duration::from_secs(10))
        .await
        .map_err(anyhow::Error::msg)
        .with_context(cannot)
}

/// A call's error with the causes the transport attached to it (a refused TLS handshake, a
/// daemon that went away), which its message alone does not say.
pub(super) fn status_text(status: &hoist_proto::tonic::Status) -> String {
    let mut message = status.message().to_owned();
    let mut source = std::error::Error::source(status);
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    message
}

/// How long a daemon has to answer its first call.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// `channel` once the daemon at `addr` has answered a call (`ListWorkers`, which every
/// BuildKit serves; any answer counts, an error status too): a socket that accepts
/// connections but never speaks gRPC fails here, naming it, instead of hanging the build.
async fn answered(channel: Channel, addr: &str) -> anyhow::Result<Channel> {
    let mut client = ControlClient::new(channel.clone());
    let request = hoist_proto::control::ListWorkersRequest::default();
    match tokio::time::timeout(ANSWER_TIMEOUT, client.list_workers(request)).await {
        Err(_) => bail!(
            "cannot connect to {addr}: the daemon did not answer within {} s",
            ANSWER_TIMEOUT.as_secs()
        ),
        Ok(Err(status)) if std::error::Error::source(&status).is_some() => {
            bail!("cannot connect to {addr}: {}", status_text(&status))
        }
        Ok(_) => Ok(channel),
    }
}

/// The flags as a `SolveRequest` for `dockerfile.v0` and the session serving what it needs
/// from this machine (none when it needs nothing and the daemon is not dockerd).
fn plan(args: &BuildArgs, daemon: &Daemon) -> anyhow::Result<Plan> {
    // stdin: a tar goes up through the session's Upload service; a Dockerfile is built
    // with an empty context directory, as buildx does.
    let stdin = if args.context == "-" {
        Some(super::remote_options::stdin_context(args.file.as_deref())?)
    } else {
        None
    };
    let local_context = match &stdin {
        Some(_) => false,
        None => {
            hoist_engine::ContextSource::remote(&args.context).is_none()
                || Path::new(&args.context).is_dir()
        }
    };
    let shared_key_source = if stdin.is_some() {
        // Every stdin build shares the daemon's (empty) copies of its directories.
        PathBuf::from("-")
    } else if local_context {
        std::fs::canonicalize(&args.context).with_context(|| {
            format!(
                "unable to prepare context: path {:?} not found",
                args.context
            )
        })?
    } else {
        PathBuf::from(&args.context)
    };
    let shared_key =
        Digest::of(shared_key_source.to_string_lossy().as_bytes()).hex()[..25].to_owned();
    let name = std::env::current_dir()
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "hoist".to_owned());
    let mut session = Session::new(&name, &shared_key)
        .with_credentials(hoist_registry::Credentials::from_docker_config());
    let mut needs_session = daemon.is_docker();
    let mut attrs = HashMap::new();
    let mut temp = None;
    if let Some(stdin) = stdin {
        needs_session = true;
        match stdin {
            StdinContext::Archive(reader) => {
                attrs.insert("context".to_owned(), session.add_upload(reader));
                if let Some(file) = &args.file {
                    attrs.insert("filename".to_owned(), file.clone());
                }
            }
            StdinContext::Dockerfile(text) => {
                let dir = TempDir::new("hoist-stdin-dockerfile")?;
                let (context, dockerfile) = (dir.0.join("context"), dir.0.join("dockerfile"));
                for made in [&context, &dockerfile] {
                    std::fs::create_dir(made)
                        .with_context(|| format!("cannot create {}", made.display()))?;
                }
                std::fs::write(dockerfile.join("Dockerfile"), text)
                    .with_context(|| format!("cannot write {}", dockerfile.display()))?;
                session = session
                    .with_dir("context", context)
                    .with_dir("dockerfile", dockerfile);
                attrs.insert("filename".to_owned(), "Dockerfile".to_owned());
                temp = Some(dir);
            }
        }
    } else if local_context {
        needs_session = true;
        let context = PathBuf::from(&args.context);
        if !context.is_dir() {
            bail!(
                "unable to prepare context: path {:?} is not a directory",
                args.context
            );
        }
        let (dockerfile_dir, filename) = match args.file.as_deref() {
            None => (context.clone(), "Dockerfile".to_owned()),
            Some("-") => {
                let dir = TempDir::new("hoist-stdin-dockerfile")?;
                let mut text = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut text)
                    .context("cannot read the Dockerfile from stdin")?;
                std::fs::write(dir.0.join("Dockerfile"), text)
                    .with_context(|| format!("cannot write {}", dir.0.display()))?;
                let path = dir.0.clone();
                temp = Some(dir);
                (path, "Dockerfile".to_owned())
            }
            Some(file) => {
                let path = Path::new(file);
                let dir = match path.parent() {
                    Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
                    _ => PathBuf::from("."),
                };
                let base = path
                    .file_name()
                    .with_context(|| format!("invalid Dockerfile path {file:?}"))?;
                (dir, base.to_string_lossy().into_owned())
            }
        };
        if !dockerfile_dir.join(&filename).exists() {
            bail!(
                "unable to prepare context: the Dockerfile {} does not exist",
                dockerfile_dir.join(&filename).display()
            );
        }
        session = session
            .with_dir("context", context)
            .with_dir("dockerfile", dockerfile_dir);
        attrs.insert("filename".to_owned(), filename);
    } else {
        if let Some(file) = &args.file {
            if file == "-" || Path::new(file).is_absolute() {
                bail!("a Dockerfile from this machine ({file}) with a remote context is not supported with --addr yet");
            }
            attrs.insert("filename".to_owned(), file.clone());
        }
        attrs.insert("context".to_owned(), args.context.clone());
    }
    if let Some(target) = &args.target {
        attrs.insert("target".to_owned(), target.clone());
    }
    let platforms: Vec<&str> = (args.platforms.iter())
        .flat_map(|list| list.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    if !platforms.is_empty() {
        if daemon.is_docker() && platforms.len() > 1 {
            bail!("multiple platforms feature is currently not supported for docker driver");
        }
        attrs.insert("platform".to_owned(), platforms.join(","));
    }
    for (key, value) in super::build::key_values(&args.build_args, "--build-arg", true)? {
        attrs.insert(format!("build-arg:{key}"), value);
    }
    for (key, value) in super::build::key_values(&args.labels, "--label", false)? {
        attrs.insert(format!("label:{key}"), value);
    }
    if args.no_cache {
        attrs.insert("no-cache".to_owned(), String::new());
    } else if !args.no_cache_filter.is_empty() {
        attrs.insert("no-cache".to_owned(), args.no_cache_filter.join(","));
    }
    for flag in &args.build_contexts {
        let Some((name, value)) = flag.split_once('=') else {
            bail!("invalid --build-context {flag:?}: expected NAME=VALUE");
        };
        let remote = value.starts_with("docker-image://")
            || hoist_engine::ContextSource::remote(value).is_some() && !Path::new(value).is_dir();
        if remote {
            attrs.insert(format!("context:{name}"), value.to_owned());
        } else {
            let dir = PathBuf::from(value);
            if !dir.is_dir() {
                bail!("invalid --build-context {flag:?}: {value} is not a directory");
            }
            needs_session = true;
            session = session.with_dir(name, dir);
            attrs.insert(format!("context:{name}"), format!("local:{name}"));
        }
    }
    if !args.add_hosts.is_empty() {
        attrs.insert("add-hosts".to_owned(), args.add_hosts.join(","));
    }
    match args.network.as_str() {
        "" | "default" => {}
        mode @ ("none" | "host") => {
            attrs.insert("force-network-mode".to_owned(), mode.to_owned());
        }
        other => bail!("network mode {other:?} not supported by buildkit"),
    }
    if args.pull {
        attrs.insert("image-resolve-mode".to_owned(), "pull".to_owned());
    }
    if !args.secrets.is_empty() {
        needs_session = true;
        session = session.with_secrets(secret_values(&args.secrets)?);
    }
    if !args.ssh.is_empty() {
        needs_session = true;
        session = session.with_ssh(ssh_sockets(&args.ssh)?);
    }
    let mut entitlements = args.allow.clone();
    if args.network == "host" && !entitlements.iter().any(|e| e == "network.host") {
        entitlements.push("network.host".to_owned());
    }
    let exporter = exporter(args, daemon)?;
    let mut request = SolveRequest {
        r#ref: build_ref(),
        frontend: "dockerfile.v0".to_owned(),
        frontend_attrs: attrs,
        entitlements,
        cache: super::remote_options::cache_options(&args.cache_from, &args.cache_to)?,
        ..SolveRequest::default()
    };
    let local_caches = match request.cache.as_mut() {
        Some(cache) => super::remote_options::local_caches(cache)?,
        None => LocalCaches::default(),
    };
    for (id, dir) in &local_caches.stores {
        needs_session = true;
        session = session.with_content_store(id.clone(), dir.clone());
    }
    if let Some(imports) = request.cache.as_ref().map(|c| &c.imports[..]) {
        // As BuildKit's client: the imports also as the frontend attribute `cache-imports`
        // (the Dockerfile frontend of BuildKit before 0.13, dockerd's 0.8 too, reads only
        // that one).
        if let Some(json) = super::remote_options::cache_imports_attr(imports) {
            request
                .frontend_attrs
                .insert("cache-imports".to_owned(), json);
        }
    }
    let exports = request.cache.as_ref().map_or(&[][..], |c| &c.exports[..]);
    if daemon.is_docker()
        && exports
            .iter()
            .any(|e| e.r#type != "inline" && e.r#type != "local")
    {
        // dockerd's BuildKit exports inline caches only; buildx refuses the rest the same.
        bail!(
            "cache export feature is currently not supported for docker driver. Please switch \
             to a different driver (eg. \"docker buildx create --use\")"
        );
    }
    if let Some((mut exporter, output)) = exporter {
        // As buildx: `--annotation`s go into the attributes of the image-shaped exporters.
        if matches!(
            exporter.r#type.as_str(),
            "image" | "oci" | "docker" | "moby"
        ) {
            exporter
                .attrs
                .extend(super::remote_options::annotation_attrs(&args.annotations)?);
        }
        if let Some(output) = output {
            needs_session = true;
            session = session.with_output(output);
        }
        // Both forms, as BuildKit's client sends them: `exporters` for daemons since 0.13,
        // the single `exporter` for older ones (dockerd 20.10's BuildKit 0.8).
        request.exporter = exporter.r#type.clone();
        request.exporter_attrs = exporter.attrs.clone();
        request.exporters = vec![exporter];
    }
    Ok(Plan {
        request,
        session: needs_session.then_some(session),
        _temp: temp,
        local_caches,
    })
}

/// A directory of this process's, removed when dropped (a Dockerfile read from stdin,
/// served as the session's `dockerfile` directory).
struct TempDir(PathBuf);

impl TempDir {
    fn new(prefix: &str) -> anyhow::Result<TempDir> {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!("{prefix}-{}-{nanos}", std::process::id()));
        std::fs::create_dir(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `--secret` values, read now (files and variables), for the session's `GetSecret`.
fn secret_values(flags: &[String]) -> anyhow::Result<BTreeMap<String, Vec<u8>>> {
    let mut values = BTreeMap::new();
    for (id, source) in super::build::secrets(flags)? {
        let value = match source {
            hoist_engine::SecretSource::Value(bytes) => bytes,
            hoist_engine::SecretSource::File(path) => std::fs::read(&path)
                .with_context(|| format!("cannot read the secret {id} from {}", path.display()))?,
        };
        values.insert(id, value);
    }
    Ok(values)
}

/// `--ssh ID[=SOCKET]`: agent sockets (`SSH_AUTH_SOCK` when none is given) for the session.
fn ssh_sockets(flags: &[String]) -> anyhow::Result<BTreeMap<String, PathBuf>> {
    let mut sockets = BTreeMap::new();
    for flag in flags.iter().filter(|f| !f.is_empty()) {
        let (id, paths) = match flag.split_once('=') {
            Some((id, paths)) => (id, paths.split(',').map(PathBuf::from).collect::<Vec<_>>()),
            None => (flag.as_str(), Vec::new()),
        };
        let id = if id.is_empty() { "default" } else { id };
        let socket = match paths.as_slice() {
            [] => match std::env::var_os("SSH_AUTH_SOCK") {
                Some(socket) => PathBuf::from(socket),
                None => bail!("invalid empty ssh agent socket: make sure SSH_AUTH_SOCK is set"),
            },
            [one] => one.clone(),
            _ => bail!("--ssh {flag:?}: only one agent socket per id is supported with --addr"),
        };
        let is_socket = std::fs::metadata(&socket)
            .map(|m| std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()))
            .unwrap_or(false);
        if !is_socket {
            bail!(
                "--ssh {flag:?}: {} is not an agent socket (key files are not supported with --addr yet)",
                socket.display()
            );
        }
        sockets.insert(id.to_owned(), socket);
    }
    Ok(sockets)
}

/// The one exporter (`-o`, or `--push`/`--load`) and where its result comes back to this
/// machine, if it does. Its attributes go as written, for the daemon's parser to check;
/// `dest` stays here.
fn exporter(
    args: &BuildArgs,
    daemon: &Daemon,
) -> anyhow::Result<Option<(Exporter, Option<Output>)>> {
    if args.outputs.len() > 1 {
        bail!("only one --output is supported by hoist's client");
    }
    let mut attrs = HashMap::new();
    let mut kind = None;
    if let Some(spec) = args.outputs.first() {
        let fields = hoist_dockerfile::go_csv::fields(spec)
            .with_context(|| format!("invalid --output {spec:?}"))?;
        for field in fields {
            let (key, value) = field.split_once('=').unwrap_or((field.as_str(), ""));
            if key == "type" {
                kind = Some(value.to_owned());
            } else {
                attrs.insert(key.to_owned(), value.to_owned());
            }
        }
        if kind.is_none() {
            // buildx: `-o DIR` is a local output, `-o -` a tar on stdout.
            if fields_are_a_path(spec) {
                let dest = spec.clone();
                attrs.clear();
                attrs.insert("dest".to_owned(), dest.clone());
                kind = Some(if dest == "-" { "tar" } else { "local" }.to_owned());
            } else {
                bail!("invalid --output {spec:?}: type is required");
            }
        }
    } else if args.load {
        kind = Some("docker".to_owned());
    } else if args.push {
        kind = Some("image".to_owned());
    } else if daemon.is_docker() {
        // As `docker build` and buildx's docker driver: the image stays in the daemon.
        kind = Some("docker".to_owned());
    } else {
        return Ok(None);
    }
    let mut kind = kind.unwrap_or_default();
    if args.push && kind == "image" {
        attrs.insert("push".to_owned(), "true".to_owned());
    }
    if kind == "registry" {
        kind = "image".to_owned();
        attrs.insert("push".to_owned(), "true".to_owned());
    }
    let output = match kind.as_str() {
        "local" => {
            let Some(dest) = attrs.remove("dest").filter(|d| !d.is_empty()) else {
                bail!("dest is required for local output");
            };
            Some(Output::Directory(PathBuf::from(dest)))
        }
        "tar" | "oci" => Some(stream_dest(&mut attrs, &kind)?),
        "docker" if daemon.is_docker() && !attrs.contains_key("dest") => {
            // dockerd keeps the image itself: its `moby` exporter.
            kind = "moby".to_owned();
            None
        }
        "docker" => {
            if args.load && !attrs.contains_key("dest") {
                bail!("--load with --addr is only supported with docker-daemon addresses yet");
            }
            Some(stream_dest(&mut attrs, &kind)?)
        }
        "image" if daemon.is_docker() => {
            if attrs.get("push").map(String::as_str) == Some("true") {
                bail!("push is not supported with the Docker daemon's BuildKit by hoist yet");
            }
            kind = "moby".to_owned();
            None
        }
        "image" => {
            if attrs.get("push").map(String::as_str) != Some("true") {
                bail!("an image kept by the daemon without push is not supported: add --push");
            }
            None
        }
        "cacheonly" => None,
        other => bail!("unsupported output type {other:?}"),
    };
    if matches!(kind.as_str(), "image" | "moby" | "docker") && !attrs.contains_key("name") {
        if !args.tags.is_empty() {
            attrs.insert("name".to_owned(), args.tags.join(","));
        } else if kind == "image" {
            bail!("tag is needed when pushing to registry");
        }
    }
    Ok(Some((
        Exporter {
            r#type: kind,
            attrs,
        },
        output,
    )))
}

/// A `-o` value with no `key=value` field: a destination path, as buildx reads it.
fn fields_are_a_path(spec: &str) -> bool {
    !spec.contains('=')
}

/// A stream output's `dest` (a file, `-` or none for stdout); stdout must not be a terminal.
fn stream_dest(attrs: &mut HashMap<String, String>, kind: &str) -> anyhow::Result<Output> {
    let dest = attrs.remove("dest").unwrap_or_default();
    if dest.is_empty() || dest == "-" {
        if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
            bail!("dest file is required for {kind} exporter. refusing to write to console");
        }
        return Ok(Output::Stream(None));
    }
    Ok(Output::Stream(Some(PathBuf::from(dest))))
}

/// A build ref nobody else uses: 25 hex digits of a hash of the time and the process id.
fn build_ref() -> String {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let seed = format!("{nanos}-{}", std::process::id());
    Digest::of(seed.as_bytes()).hex()[..25].to_owned()
}

/// Runs `Solve` and, at the same time, `Status` for its ref, sending the status as progress
/// events. The Solve's answer (or error), once the status has ended.
///
/// With `HOIST_BUILD_VIA_GATEWAY=1`, the Solve goes through BuildKit's gateway as buildx
/// sends it ([`super::build_gateway`]).
pub(super) async fn solve(
    channel: Channel,
    request: SolveRequest,
    events: UnboundedSender<Event>,
) -> Result<HashMap<String, String>, hoist_proto::tonic::Status> {
    let mut client = ControlClient::new(channel.clone());
    let mut status_client = client.clone();
    let reference = request.r#ref.clone();
    let status = tokio::spawn(async move {
        let mut converter = StatusEvents::default();
        let stream = status_client
            .status(StatusRequest { r#ref: reference })
            .await;
        if let Ok(stream) = stream {
            let mut stream = stream.into_inner();
            while let Ok(Some(response)) = stream.message().await {
                for event in converter.convert(&response) {
                    let _ = events.send(event);
                }
            }
        }
        for event in converter.finish() {
            let _ = events.send(event);
        }
    });
    let result = if super::build_gateway::wanted() {
        super::build_gateway::solve(channel, request).await
    } else {
        client
            .solve(request)
            .await
            .map(|r| r.into_inner().exporter_response)
    };
    // hoistd ends the status stream with the build; a daemon that does not is not waited
    // for long.
    let _ = tokio::time::timeout(Duration::from_secs(5), status).await;
    result
}

/// `StatusResponse`s → hoist's progress events: each vertex's `Started` once, then one of
/// `Cached`, `Done`, `Error` or `Cancelled` when it completes; log bytes cut into lines.
#[derive(Debug, Default)]
struct StatusEvents {
    vertexes: HashMap<String, SeenVertex>,
    /// Bytes of a log line not yet ended, by vertex and stream.
    partial: HashMap<(String, i64), Vec<u8>>,
}

#[derive(Debug)]
struct SeenVertex {
    info: VertexInfo,
    started: Option<SystemTime>,
    completed: bool,
}

fn time(timestamp: &Timestamp) -> SystemTime {
    let secs = Duration::from_secs(timestamp.seconds.max(0) as u64);
    SystemTime::UNIX_EPOCH + secs + Duration::from_nanos(timestamp.nanos.max(0) as u64)
}

impl StatusEvents {
    fn info(&mut self, digest: &str, name: &str) -> &mut SeenVertex {
        self.vertexes
            .entry(digest.to_owned())
            .or_insert_with(|| SeenVertex {
                // A vertex digest that is not sha256 (another daemon's) still needs an
                // identity: the hash of its text.
                info: VertexInfo::new(
                    Digest::parse(digest).unwrap_or_else(|_| Digest::of(digest.as_bytes())),
                    name,
                ),
                started: None,
                completed: false,
            })
    }

    fn convert(&mut self, response: &StatusResponse) -> Vec<Event> {
        let mut events = Vec::new();
        for vertex in &response.vertexes {
            let seen = self.info(&vertex.digest, &vertex.name);
            if seen.completed {
                continue;
            }
            if !vertex.name.is_empty() && *seen.info.name != *vertex.name {
                seen.info.name = vertex.name.as_str().into();
            }
            let info = seen.info.clone();
            if vertex.cached && vertex.completed.is_some() {
                seen.completed = true;
                events.push(Event {
                    vertex: info,
                    kind: EventKind::Cached,
                });
                continue;
            }
            if let (Some(started), None) = (&vertex.started, seen.started) {
                seen.started = Some(time(started));
                events.push(Event {
                    vertex: info.clone(),
                    kind: EventKind::Started,
                });
            }
            let Some(completed) = &vertex.completed else {
                continue;
            };
            seen.completed = true;
            let started = seen.started.unwrap_or_else(|| time(completed));
            let duration = time(completed).duration_since(started).unwrap_or_default();
            let kind = match vertex.error.as_str() {
                "" => EventKind::Done { duration },
                "context canceled" => EventKind::Cancelled { duration },
                message => EventKind::Error {
                    duration,
                    message: message.to_owned(),
                },
            };
            events.push(Event { vertex: info, kind });
        }
        for warning in &response.warnings {
            // A warning about a vertex the status never showed (a gateway client's own)
            // still counts; it names no step.
            let info = match self.vertexes.get(&warning.vertex) {
                Some(seen) => seen.info.clone(),
                None => VertexInfo::new(
                    Digest::parse(&warning.vertex)
                        .unwrap_or_else(|_| Digest::of(warning.vertex.as_bytes())),
                    "",
                ),
            };
            events.push(Event {
                vertex: info,
                kind: EventKind::Warning(engine_warning(warning)),
            });
        }
        for log in &response.logs {
            let seen = self.info(&log.vertex, "");
            let info = seen.info.clone();
            let elapsed = match (seen.started, &log.timestamp) {
                (Some(started), Some(at)) => time(at).duration_since(started).unwrap_or_default(),
                _ => Duration::ZERO,
            };
            let buffer = self
                .partial
                .entry((log.vertex.clone(), log.stream))
                .or_default();
            buffer.extend_from_slice(&log.msg);
            while let Some(end) = buffer.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = buffer.drain(..=end).collect();
                events.push(log_event(&info, log.stream, elapsed, &line[..end]));
            }
        }
        events
    }

    /// Lines left without their newline when the stream ended.
    fn finish(&mut self) -> Vec<Event> {
        let mut events = Vec::new();
        for ((digest, stream), line) in std::mem::take(&mut self.partial) {
            if line.is_empty() {
                continue;
            }
            let info = self.info(&digest, "").info.clone();
            events.push(log_event(&info, stream, Duration::ZERO, &line));
        }
        events
    }
}

/// BuildKit's `VertexWarning` as hoist's progress warning (columns dropped: hoist's
/// ranges are whole lines).
fn engine_warning(warning: &hoist_proto::control::VertexWarning) -> Warning {
    let line = |p: &Option<hoist_proto::pb::Position>| {
        p.as_ref()
            .map_or(0, |p| usize::try_from(p.line).unwrap_or(0))
    };
    Warning {
        level: warning.level,
        short: String::from_utf8_lossy(&warning.short).into_owned(),
        detail: warning
            .detail
            .iter()
            .map(|d| String::from_utf8_lossy(d).into_owned())
            .collect(),
        url: warning.url.clone(),
        source: warning.info.as_ref().map(|info| WarningSource {
            filename: info.filename.clone(),
            language: info.language.clone(),
            data: info.data.as_slice().into(),
        }),
        ranges: warning
            .ranges
            .iter()
            .map(|r| SourceLines {
                start: line(&r.start),
                end: line(&r.end),
            })
            .collect(),
    }
}

fn log_event(info: &VertexInfo, stream: i64, elapsed: Duration, line: &[u8]) -> Event {
    Event {
        vertex: info.clone(),
        kind: EventKind::Log {
            stream: if stream == 2 {
                LogStream::Stderr
            } else {
                LogStream::Stdout
            },
            elapsed,
            line: String::from_utf8_lossy(line).into_owned(),
        },
    }
}

/// The exporter response's keys as `--metadata-file` writes them.
pub(super) fn metadata(
    response: &HashMap<String, String>,
) -> anyhow::Result<hoist_export::ExportMetadata> {
    let digest = |key: &str| -> anyhow::Result<Option<hoist_oci::Digest>> {
        response
            .get(key)
            .map(|d| {
                hoist_oci::Digest::parse(d).with_context(|| format!("the daemon's {key} {d:?}"))
            })
            .transpose()
    };
    let descriptor = match response.get("containerimage.descriptor") {
        Some(encoded) => {
            let json = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .context("the daemon's containerimage.descriptor is not base64")?;
            Some(
                serde_json::from_slice(&json)
                    .context("the daemon's containerimage.descriptor is not a descriptor")?,
            )
        }
        None => None,
    };
    Ok(hoist_export::ExportMetadata {
        config_digest: digest("containerimage.config.digest")?,
        descriptor,
        digest: digest("containerimage.digest")?,
        image_name: response.get("image.name").cloned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;
    use hoist_proto::control::{Vertex, VertexLog};

    fn build_args(args: &[&str]) -> BuildArgs {
        let cli = crate::cli::Cli::try_parse_from(["hoist", "build"].iter().chain(args).copied())
            .unwrap();
        match cli.command {
            crate::cli::Command::Build(args) => *args,
            _ => unreachable!(),
        }
    }

    #[test]
    fn a_local_context_goes_through_the_session_with_both_exporter_fields() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("df")).unwrap();
        std::fs::write(dir.path().join("df/Build.df"), "FROM scratch\n").unwrap();
        let ctx = dir.path().to_str().unwrap();
        let file = dir.path().join("df/Build.df");
        let args = build_args(&[
            "-f",
            file.to_str().unwrap(),
            "--target",
            "t",
            "--build-arg",
            "A=1",
            "--secret",
            "id=s,env=PATH",
            "-o",
            "type=local,dest=out",
            ctx,
        ]);
        let Plan {
            request, session, ..
        } = plan(&args, &Daemon::Grpc).unwrap();
        let session = session.expect("a local context needs a session");
        assert!(session.methods().contains(&hoist_session::FILE_SEND_METHOD));
        let attrs = &request.frontend_attrs;
        assert_eq!(attrs.get("filename").map(String::as_str), Some("Build.df"));
        assert_eq!(attrs.get("target").map(String::as_str), Some("t"));
        assert_eq!(attrs.get("build-arg:A").map(String::as_str), Some("1"));
        assert!(!attrs.contains_key("context"), "{attrs:?}");
        assert_eq!(request.exporter, "local");
        assert_eq!(request.exporters.len(), 1);
        assert_eq!(request.exporters[0].r#type, "local");
        assert!(
            !request.exporter_attrs.contains_key("dest"),
            "dest stays here"
        );
    }

    #[test]
    fn dockerd_keeps_the_image_unless_another_output_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\n").unwrap();
        let ctx = dir.path().to_str().unwrap();
        let docker = Daemon::Docker(dockerd::Endpoint::Unix("/nowhere.sock".into()));
        let Plan {
            request, session, ..
        } = plan(&build_args(&["-t", "a:1", ctx]), &docker).unwrap();
        assert!(session.is_some());
        assert_eq!(request.exporter, "moby");
        assert_eq!(request.exporter_attrs["name"], "a:1");
        let Plan { request, .. } =
            plan(&build_args(&["-o", "type=tar,dest=x.tar", ctx]), &docker).unwrap();
        assert_eq!(request.exporter, "tar");
        // A URL context pushed by hoistd needs no session.
        let Plan {
            session, request, ..
        } = plan(
            &build_args(&["--push", "-t", "r/a:1", "https://example.invalid/c.tar"]),
            &Daemon::Grpc,
        )
        .unwrap();
        assert!(session.is_none());
        assert_eq!(
            request.frontend_attrs["context"],
            "https://example.invalid/c.tar"
        );
        let error = plan(
            &build_args(&["--platform", "linux/amd64,linux/arm64", ctx]),
            &docker,
        )
        .err()
        .unwrap();
        assert!(error.to_string().contains("multiple platforms"), "{error}");
    }

    fn ts(seconds: i64) -> Option<Timestamp> {
        Some(Timestamp { seconds, nanos: 0 })
    }

    #[test]
    fn status_warnings_become_warning_events_of_their_vertex() {
        let digest = format!("sha256:{}", "b".repeat(64));
        let mut events = StatusEvents::default();
        events.convert(&StatusResponse {
            vertexes: vec![Vertex {
                digest: digest.clone(),
                name: "[internal] load build definition from Dockerfile".to_owned(),
                started: ts(1),
                ..Vertex::default()
            }],
            ..StatusResponse::default()
        });
        let position = |line| hoist_proto::pb::Position { line, character: 0 };
        let warning = hoist_proto::control::VertexWarning {
            vertex: digest.clone(),
            level: 1,
            short: b"NoEmptyContinuation: Empty continuation line (line 4)".to_vec(),
            detail: vec![b"Empty continuation lines will become errors".to_vec()],
            url: "https://docs.docker.com/go/dockerfile/rule/no-empty-continuation/".to_owned(),
            info: Some(hoist_proto::pb::SourceInfo {
                filename: "Dockerfile".to_owned(),
                data: b"FROM scratch\n".to_vec(),
                definition: None,
                language: "Dockerfile".to_owned(),
            }),
            ranges: vec![hoist_proto::pb::Range {
                start: Some(position(4)),
                end: Some(position(4)),
            }],
        };
        let other = hoist_proto::control::VertexWarning {
            vertex: "not a digest".to_owned(),
            short: b"from the client".to_vec(),
            ..Default::default()
        };
        let out = events.convert(&StatusResponse {
            warnings: vec![warning, other],
            ..StatusResponse::default()
        });
        assert_eq!(out.len(), 2, "{out:?}");
        let EventKind::Warning(first) = &out[0].kind else {
            panic!("not a warning: {out:?}");
        };
        assert_eq!(
            &*out[0].vertex.name,
            "[internal] load build definition from Dockerfile"
        );
        assert_eq!(
            first.short,
            "NoEmptyContinuation: Empty continuation line (line 4)"
        );
        assert_eq!(first.ranges, vec![SourceLines { start: 4, end: 4 }]);
        let source = first.source.as_ref().unwrap();
        assert_eq!(source.filename, "Dockerfile");
        assert_eq!(&*source.data, b"FROM scratch\n");
        assert!(matches!(&out[1].kind, EventKind::Warning(w) if w.short == "from the client"));
        assert_eq!(&*out[1].vertex.name, "");
    }

    #[test]
    fn status_becomes_started_logs_and_done_once() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let vertex = |started, completed| Vertex {
            digest: digest.clone(),
            name: "[1/2] RUN echo hi".to_owned(),
            started,
            completed,
            ..Vertex::default()
        };
        let mut events = StatusEvents::default();
        let first = events.convert(&StatusResponse {
            vertexes: vec![vertex(ts(10), None)],
            logs: vec![VertexLog {
                vertex: digest.clone(),
                timestamp: ts(11),
                stream: 2,
                msg: b"hi\npart".to_vec(),
            }],
            ..StatusResponse::default()
        });
        let kinds: Vec<_> = first.iter().map(|e| e.kind.clone()).collect();
        assert_eq!(
            kinds,
            [
                EventKind::Started,
                EventKind::Log {
                    stream: LogStream::Stderr,
                    elapsed: Duration::from_secs(1),
                    line: "hi".to_owned()
                }
            ]
        );
        assert_eq!(&*first[0].vertex.name, "[1/2] RUN echo hi");
        let done = events.convert(&StatusResponse {
            vertexes: vec![vertex(ts(10), ts(13)), vertex(ts(10), ts(14))],
            ..StatusResponse::default()
        });
        assert_eq!(done.len(), 1, "{done:?}");
        assert_eq!(
            done[0].kind,
            EventKind::Done {
                duration: Duration::from_secs(3)
            }
        );
        let rest = events.finish();
        assert_eq!(rest.len(), 1);
        assert!(matches!(&rest[0].kind, EventKind::Log { line, .. } if line == "part"));
    }

    #[test]
    fn cached_and_failed_vertexes() {
        let mut events = StatusEvents::default();
        let out = events.convert(&StatusResponse {
            vertexes: vec![
                Vertex {
                    digest: "not-a-digest".to_owned(),
                    name: "cached".to_owned(),
                    cached: true,
                    started: ts(1),
                    completed: ts(1),
                    ..Vertex::default()
                },
                Vertex {
                    digest: format!("sha256:{}", "b".repeat(64)),
                    name: "fails".to_owned(),
                    started: ts(1),
                    completed: ts(2),
                    error: "exit code: 1".to_owned(),
                    ..Vertex::default()
                },
            ],
            ..StatusResponse::default()
        });
        let kinds: Vec<_> = out.iter().map(|e| e.kind.clone()).collect();
        assert_eq!(
            kinds,
            [
                EventKind::Cached,
                EventKind::Started,
                EventKind::Error {
                    duration: Duration::from_secs(1),
                    message: "exit code: 1".to_owned()
                }
            ]
        );
    }
}
