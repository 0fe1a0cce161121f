//! `hoist build --addr ADDRESS`: the build sent to a BuildKit daemon (hoistd) as
//! `Control.Solve` with the `dockerfile.v0` frontend, its `Control.Status` stream turned into
//! hoist's progress events for the usual renderers, and the exporter response written to
//! `--metadata-file` / `--iidfile` as a local build's.
//!
//! hoist's client has no session yet, so only what a daemon can do alone is sent: a Git or
//! http(s) context (the frontend attribute `context`), an image pushed to a registry.
//! Anything needing files or answers from this machine (a local or stdin context, a
//! Dockerfile from here, secrets, SSH, local outputs) is refused before connecting.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context as _};
use base64::Engine as _;
use hoist_engine::progress::{Digest, Event, EventKind, LogStream, VertexInfo};
use hoist_proto::control::control_client::ControlClient;
use hoist_proto::control::{Exporter, SolveRequest, StatusRequest, StatusResponse};
use hoist_proto::tonic::transport::{
    Certificate, Channel, ClientTlsConfig, Endpoint, Identity, Uri,
};
use hoist_proto::Timestamp;
use tokio::sync::mpsc::UnboundedSender;

use super::{block_on, RemoteTls};
use crate::cli::BuildArgs;
use crate::progress;

/// What a session-less client cannot do, in one sentence each error ends with.
const NEEDS_SESSION: &str = "needs a session, not supported by hoist's client yet";

pub fn run(args: &BuildArgs, addr: &str, tls: RemoteTls) -> anyhow::Result<ExitCode> {
    run_on(
        args,
        Dial::Address {
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
}

impl Dial {
    /// What errors name as the daemon's address.
    fn label(&self) -> String {
        match self {
            Dial::Address { addr, .. } => addr.clone(),
            Dial::Container(driver) => format!(
                "docker-container://{} (via {})",
                driver.container(),
                driver.docker_endpoint()
            ),
        }
    }

    async fn connect(&self) -> anyhow::Result<Channel> {
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
        }
    }
}

/// [`run`] on a daemon reached as `dial` says.
pub fn run_on(args: &BuildArgs, dial: Dial) -> anyhow::Result<ExitCode> {
    let label = dial.label();
    let addr = label.as_str();
    let request = solve_request(args)?;
    if request.exporters.is_empty() {
        eprintln!(
            "WARNING: No output specified. Build result will only remain in the build cache. \
             To push result image into registry use --push"
        );
    }
    let mode = super::build::progress_mode(args)?;
    let dial = &dial;
    let outcome = block_on(async move {
        let channel = dial.connect().await?;
        let (events, renderer) = progress::start(mode);
        let result = solve(ControlClient::new(channel), request, events).await;
        let _ = renderer.await;
        anyhow::Ok(result)
    })??;
    let response = match outcome {
        Ok(response) => response,
        Err(status) => {
            // A transport failure (a refused TLS handshake) says why only in its sources.
            let mut message = status.message().to_owned();
            let mut source = std::error::Error::source(&status);
            while let Some(cause) = source {
                message.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            // The daemon's own answers come without a source; the transport's carry one.
            let transport = std::error::Error::source(&status).is_some()
                || status.code() == hoist_proto::tonic::Code::Unavailable;
            if let Dial::Container(driver) = dial {
                let stderr = driver.dial_stderr();
                if !stderr.is_empty() {
                    message.push_str(&format!(" (dial-stdio: {stderr})"));
                }
            }
            if transport {
                eprintln!("ERROR: the connection to {addr} failed: {message}");
            } else {
                eprintln!("ERROR: {message}");
            }
            return Ok(ExitCode::FAILURE);
        }
    };
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

/// A gRPC channel to `addr` (`unix:///PATH` or `tcp://HOST:PORT`; TLS on tcp when any TLS
/// flag is given). Fails naming the address when nothing answers.
pub(super) async fn connect(addr: &str, tls: &RemoteTls) -> anyhow::Result<Channel> {
    let cannot = || format!("cannot connect to {addr}");
    if let Some(path) = addr.strip_prefix("unix://") {
        if path.is_empty() {
            bail!("invalid address {addr:?}: no socket path");
        }
        let socket = PathBuf::from(path);
        return Endpoint::from_static("http://hoistd.invalid")
            .connect_timeout(Duration::from_secs(10))
            .connect_with_connector(tower::service_fn(move |_: Uri| {
                let socket = socket.clone();
                async move {
                    let stream = tokio::net::UnixStream::connect(socket).await?;
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
                }
            }))
            .await
            .with_context(cannot);
    }
    let Some(host_port) = addr.strip_prefix("tcp://") else {
        bail!("invalid address {addr:?}: expected unix:///PATH or tcp://HOST:PORT");
    };
    let with_tls = tls.ca.is_some() || tls.cert.is_some() || tls.key.is_some();
    let scheme = if with_tls { "https" } else { "http" };
    let mut endpoint = Endpoint::from_shared(format!("{scheme}://{host_port}"))
        .with_context(|| format!("invalid address {addr:?}"))?
        .connect_timeout(Duration::from_secs(10));
    if with_tls {
        let mut config = ClientTlsConfig::new();
        if let Some(ca) = &tls.ca {
            config = config.ca_certificate(Certificate::from_pem(read(ca)?));
        }
        match (&tls.cert, &tls.key) {
            (Some(cert), Some(key)) => {
                config = config.identity(Identity::from_pem(read(cert)?, read(key)?));
            }
            (None, None) => {}
            _ => bail!("--tlscert and --tlskey go together"),
        }
        let host = host_port
            .rsplit_once(':')
            .map_or(host_port, |(host, _)| host)
            .trim_start_matches('[')
            .trim_end_matches(']');
        config = config.domain_name(tls.server_name.as_deref().unwrap_or(host));
        endpoint = endpoint.tls_config(config).with_context(cannot)?;
    }
    endpoint.connect().await.with_context(cannot)
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// The flags as a session-less `SolveRequest` for `dockerfile.v0`; what needs a session is
/// refused, naming the flag.
pub(super) fn solve_request(args: &BuildArgs) -> anyhow::Result<SolveRequest> {
    let refuse = |what: &str| anyhow::anyhow!("{what} {NEEDS_SESSION}");
    if args.context == "-" {
        return Err(refuse("a context from stdin"));
    }
    if hoist_engine::ContextSource::remote(&args.context).is_none()
        || Path::new(&args.context).is_dir()
    {
        return Err(refuse(&format!(
            "the local context {:?} (only Git and http(s) URLs are sent)",
            args.context
        )));
    }
    if let Some(file) = &args.file {
        if file == "-" || Path::new(file).is_absolute() {
            return Err(refuse(&format!("a Dockerfile from this machine ({file})")));
        }
    }
    let unsupported = [
        (!args.secrets.is_empty(), "--secret"),
        (!args.ssh.is_empty(), "--ssh"),
        (!args.cache_from.is_empty(), "--cache-from"),
        (!args.cache_to.is_empty(), "--cache-to"),
        (args.load, "--load"),
        (!args.annotations.is_empty(), "--annotation"),
    ];
    if let Some((_, flag)) = unsupported.iter().find(|(given, _)| *given) {
        return Err(refuse(flag));
    }
    let mut attrs = HashMap::new();
    if let Some(file) = &args.file {
        attrs.insert("filename".to_owned(), file.clone());
    }
    attrs.insert("context".to_owned(), args.context.clone());
    if let Some(target) = &args.target {
        attrs.insert("target".to_owned(), target.clone());
    }
    let platforms: Vec<&str> = (args.platforms.iter())
        .flat_map(|list| list.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    if !platforms.is_empty() {
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
        if !remote {
            return Err(refuse(&format!("the build context {name}={value}")));
        }
        attrs.insert(format!("context:{name}"), value.to_owned());
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
    let mut entitlements = args.allow.clone();
    if args.network == "host" && !entitlements.iter().any(|e| e == "network.host") {
        entitlements.push("network.host".to_owned());
    }
    Ok(SolveRequest {
        r#ref: build_ref(),
        frontend: "dockerfile.v0".to_owned(),
        frontend_attrs: attrs,
        exporters: exporter(args)?.into_iter().collect(),
        entitlements,
        ..SolveRequest::default()
    })
}

/// The one exporter a session-less build can have: `image` (`-o type=image|registry`, or
/// `--push`), pushed, named by `-t` unless `name=` is given. Its attributes go as written,
/// for the daemon's parser to check.
fn exporter(args: &BuildArgs) -> anyhow::Result<Option<Exporter>> {
    if args.outputs.len() > 1 {
        bail!("only one --output is supported by hoist's client");
    }
    let mut attrs = HashMap::new();
    if let Some(spec) = args.outputs.first() {
        let fields = hoist_dockerfile::go_csv::fields(spec)
            .with_context(|| format!("invalid --output {spec:?}"))?;
        let mut kind = None;
        for field in fields {
            let (key, value) = field.split_once('=').unwrap_or((field.as_str(), ""));
            if key == "type" {
                kind = Some(value.to_owned());
            } else {
                attrs.insert(key.to_owned(), value.to_owned());
            }
        }
        match kind.as_deref() {
            Some("registry") => {
                attrs.insert("push".to_owned(), "true".to_owned());
            }
            Some("image") => {}
            Some(other) => {
                bail!("the {other} output {NEEDS_SESSION} (only type=image|registry with push)")
            }
            None => bail!("the output {spec:?} {NEEDS_SESSION} (only type=image|registry)"),
        }
    } else if !args.push {
        return Ok(None);
    }
    if args.push {
        attrs.insert("push".to_owned(), "true".to_owned());
    }
    if attrs.get("push").map(String::as_str) != Some("true") {
        bail!("an image kept by the daemon without push {NEEDS_SESSION}: add --push");
    }
    if !attrs.contains_key("name") {
        if args.tags.is_empty() {
            bail!("tag is needed when pushing to registry");
        }
        attrs.insert("name".to_owned(), args.tags.join(","));
    }
    Ok(Some(Exporter {
        r#type: "image".to_owned(),
        attrs,
    }))
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
pub(super) async fn solve(
    mut client: ControlClient<Channel>,
    request: SolveRequest,
    events: UnboundedSender<Event>,
) -> Result<HashMap<String, String>, hoist_proto::tonic::Status> {
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
    let result = client.solve(request).await;
    // hoistd ends the status stream with the build; a daemon that does not is not waited
    // for long.
    let _ = tokio::time::timeout(Duration::from_secs(5), status).await;
    result.map(|r| r.into_inner().exporter_response)
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
    use hoist_proto::control::{Vertex, VertexLog};

    fn ts(seconds: i64) -> Option<Timestamp> {
        Some(Timestamp { seconds, nanos: 0 })
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
