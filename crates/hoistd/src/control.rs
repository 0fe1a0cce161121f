//! BuildKit's `moby.buildkit.v1.Control` service on hoist's engine.
//!
//! Served: `ListWorkers` (one worker: this machine), `Info`, `DiskUsage` and `Prune` (the
//! state dir's build cache through `hoist_engine::{disk_usage, prune}`), `Solve` with the
//! `dockerfile.v0` frontend (see [`crate::solve_request`]) on `hoist_engine::build`, each
//! with a worker of its own — with a client session, the context and Dockerfile synced
//! from it, its secrets and registry credentials asked, `local`/`tar` exports sent back
//! ([`crate::filesync`]) —, `Status` (the build's progress, [`crate::builds`]) and
//! `Session` ([`crate::session`]).

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use std::sync::Arc;

use hoist_engine::{CacheUsage, PruneOptions, StateDir, UsageKind, Worker};
use hoist_oci::Platform;
use hoist_proto::control::control_server::Control;
use hoist_proto::control::{
    BytesMessage, DiskUsageRequest, DiskUsageResponse, InfoRequest, InfoResponse,
    ListWorkersRequest, ListWorkersResponse, PruneRequest, SolveRequest, SolveResponse,
    StatusRequest, StatusResponse, UsageRecord,
};
use hoist_proto::types::{BuildkitVersion, WorkerRecord};
use hoist_proto::{pb, Timestamp};
use hoist_registry::{Credentials, RegistryClient, RegistryConfig};
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

use crate::builds::{Builds, StatusConverter};
use crate::calls::Calls;
use crate::filesync::{self, SyncRequest};
use crate::gateway::{Gateways, Runner};
use crate::session::{Session, SessionManager, SessionMeta};
use crate::solve_request::{self, SessionNeeds};

/// What `ListWorkers` and `Info` report; fixed when the daemon starts.
#[derive(Debug, Clone)]
pub struct WorkerInfo {
    /// Stable for a host and state dir.
    pub id: String,
    /// Native platforms first, then those binfmt_misc runs (or the config's list).
    pub platforms: Vec<Platform>,
    pub labels: HashMap<String, String>,
}

/// BuildKit's worker label keys.
pub const LABEL_EXECUTOR: &str = "org.mobyproject.buildkit.worker.executor";
pub const LABEL_HOSTNAME: &str = "org.mobyproject.buildkit.worker.hostname";
pub const LABEL_SNAPSHOTTER: &str = "org.mobyproject.buildkit.worker.snapshotter";
pub const LABEL_NETWORK: &str = "org.mobyproject.buildkit.worker.network";

/// hoist's answer to `Info` and the worker's version.
pub fn version() -> BuildkitVersion {
    BuildkitVersion {
        package: "hoist".to_owned(),
        version: concat!("v", env!("CARGO_PKG_VERSION")).to_owned(),
        revision: option_env!("HOIST_REVISION").unwrap_or_default().to_owned(),
        dockerfile_version: String::new(),
    }
}

/// The control service over one state dir.
#[derive(Debug, Clone)]
pub struct ControlService {
    state: StateDir,
    worker: WorkerInfo,
    calls: Calls,
    /// The registries' settings for builds (`[registry."host"]`); credentials come from
    /// hoistd's own docker config until the session asks the client.
    registry: RegistryConfig,
    builds: Builds,
    sessions: SessionManager,
    /// How long a Solve waits for its session to open, and for each answer of the client.
    session_timeout: Duration,
    /// Empty-frontend Solves served through the gateway (`LLBBridge`), by ref.
    gateways: Gateways,
    /// What each session copy holds, as its last transfer left it.
    listings: Arc<filesync::Listings>,
}

/// The default of [`ControlService::with_session_timeout`].
pub const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(60);

impl ControlService {
    /// Serves `state`'s cache as `worker`; each call is counted in `calls`.
    pub fn new(state: StateDir, worker: WorkerInfo, calls: Calls) -> ControlService {
        ControlService {
            state,
            worker,
            calls,
            registry: RegistryConfig::default(),
            builds: Builds::default(),
            sessions: SessionManager::default(),
            session_timeout: DEFAULT_SESSION_TIMEOUT,
            gateways: Gateways::default(),
            listings: Arc::default(),
        }
    }

    /// A Solve waits `timeout` for its session to open and for each answer of the client.
    pub fn with_session_timeout(mut self, timeout: Duration) -> ControlService {
        self.session_timeout = timeout;
        self
    }

    /// The client sessions open now.
    pub fn sessions(&self) -> &SessionManager {
        &self.sessions
    }

    /// Builds reach registries with `registry`'s settings.
    pub fn with_registry(mut self, registry: RegistryConfig) -> ControlService {
        self.registry = registry;
        self
    }

    /// The builds under way and their progress.
    pub fn builds(&self) -> &Builds {
        &self.builds
    }

    /// The builds waiting for, or driven by, their client's frontend.
    pub fn gateways(&self) -> &Gateways {
        &self.gateways
    }

    /// How long a Solve waits for its session, and a gateway call for its Solve.
    pub fn session_timeout(&self) -> Duration {
        self.session_timeout
    }

    /// The calls under way.
    pub(crate) fn calls(&self) -> &Calls {
        &self.calls
    }

    /// The platform builds are for when they name none.
    pub(crate) fn host_platform(&self) -> Platform {
        self.worker
            .platforms
            .first()
            .cloned()
            .unwrap_or_else(Platform::host)
    }

    /// The one worker, as `ListWorkers` and the gateway's `Ping` report it.
    pub(crate) fn worker_record(&self) -> WorkerRecord {
        WorkerRecord {
            id: self.worker.id.clone(),
            labels: self.worker.labels.clone(),
            platforms: self.worker.platforms.iter().map(to_pb_platform).collect(),
            // hoistd collects no garbage by itself yet: no policy to report.
            gc_policy: Vec::new(),
            buildkit_version: Some(version()),
        }
    }

    /// A worker for one build (a worker holds one build's leases).
    pub(crate) async fn open_worker(
        &self,
        credentials: Credentials,
    ) -> Result<Arc<Worker>, Status> {
        let state = self.state.clone();
        let client = RegistryClient::new(self.registry.clone(), credentials);
        blocking(move || Worker::open(state, client).map(Arc::new)).await
    }
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

fn log(kind: &str, detail: &str) {
    eprintln!(
        "hoistd: {kind}{}{detail}",
        if detail.is_empty() { "" } else { " " }
    );
}

#[tonic::async_trait]
impl Control for ControlService {
    async fn list_workers(
        &self,
        request: Request<ListWorkersRequest>,
    ) -> Result<Response<ListWorkersResponse>, Status> {
        let _call = self.calls.begin();
        let filters = request.into_inner().filter;
        log("ListWorkers", &filters.join(","));
        let record = self.worker_record();
        let keep = worker_matches(&record, &filters)?;
        Ok(Response::new(ListWorkersResponse {
            record: if keep { vec![record] } else { Vec::new() },
        }))
    }

    async fn info(&self, _: Request<InfoRequest>) -> Result<Response<InfoResponse>, Status> {
        let _call = self.calls.begin();
        log("Info", "");
        Ok(Response::new(InfoResponse {
            buildkit_version: Some(version()),
        }))
    }

    async fn disk_usage(
        &self,
        request: Request<DiskUsageRequest>,
    ) -> Result<Response<DiskUsageResponse>, Status> {
        let _call = self.calls.begin();
        let request = request.into_inner();
        log("DiskUsage", &request.filter.join(","));
        let filter = RecordFilter::parse(&request.filter)?;
        let state = self.state.clone();
        let rows = blocking(move || hoist_engine::disk_usage(&state)).await?;
        Ok(Response::new(DiskUsageResponse {
            record: rows
                .iter()
                .filter(|row| filter.matches(row))
                .map(to_usage_record)
                .collect(),
        }))
    }

    type PruneStream = BoxStream<UsageRecord>;

    async fn prune(
        &self,
        request: Request<PruneRequest>,
    ) -> Result<Response<Self::PruneStream>, Status> {
        let call = self.calls.begin();
        let request = request.into_inner();
        log("Prune", &request.filter.join(","));
        let filter = RecordFilter::parse(&request.filter)?;
        if filter.kinds.is_some() {
            return Err(Status::invalid_argument(
                "prune filters on type are not supported by hoistd; filter on id",
            ));
        }
        let options = PruneOptions {
            all: request.all,
            keep_duration: (request.keep_duration > 0)
                .then(|| Duration::from_nanos(request.keep_duration.unsigned_abs())),
            ids: filter.ids,
            reserved_space: request.reserved_space.max(0).unsigned_abs(),
            max_used_space: request.max_used_space.max(0).unsigned_abs(),
            min_free_space: request.min_free_space.max(0).unsigned_abs(),
            ..PruneOptions::default()
        };
        let state = self.state.clone();
        let report = blocking(move || hoist_engine::prune(&state, &options)).await?;
        let records: Vec<Result<UsageRecord, Status>> =
            report.removed.iter().map(to_usage_record).map(Ok).collect();
        // The call runs until its stream is sent (or dropped).
        let stream = tokio_stream::StreamExt::map(tokio_stream::iter(records), move |record| {
            let _running = &call;
            record
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn solve(
        &self,
        request: Request<SolveRequest>,
    ) -> Result<Response<SolveResponse>, Status> {
        let _call = self.calls.begin();
        let request = request.into_inner();
        // An empty frontend without a definition: the client runs the frontend and drives
        // the build through the gateway (buildx).
        if request.frontend.is_empty() && request.definition.is_none() {
            return crate::gateway::solve(self, request).await;
        }
        self.solve_dockerfile(request, Runner::Direct).await
    }

    type StatusStream = BoxStream<StatusResponse>;

    async fn status(
        &self,
        request: Request<StatusRequest>,
    ) -> Result<Response<Self::StatusStream>, Status> {
        let call = self.calls.begin();
        let reference = request.into_inner().r#ref;
        log("Status", &format!("ref={reference}"));
        let responses = tokio_stream::wrappers::ReceiverStream::new(self.builds.watch(&reference));
        // The call runs until its stream ends (or is dropped).
        let stream = tokio_stream::StreamExt::map(responses, move |response| {
            let _running = &call;
            Ok(response)
        });
        Ok(Response::new(Box::pin(stream)))
    }

    type SessionStream = BoxStream<BytesMessage>;

    async fn session(
        &self,
        request: Request<Streaming<BytesMessage>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        let pairs: Vec<(String, String)> = request
            .metadata()
            .iter()
            .filter_map(|kv| match kv {
                tonic::metadata::KeyAndValueRef::Ascii(key, value) => value
                    .to_str()
                    .ok()
                    .map(|v| (key.as_str().to_owned(), v.to_owned())),
                tonic::metadata::KeyAndValueRef::Binary(..) => None,
            })
            .collect();
        let meta = SessionMeta::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
        log("Session", &meta.id);
        let outgoing = self
            .sessions
            .attach_stream(meta, request.into_inner())
            .await?;
        Ok(Response::new(Box::pin(tokio_stream::StreamExt::map(
            outgoing, Ok,
        ))))
    }
}

impl ControlService {
    /// A `dockerfile.v0` Solve: the request typed into a build, the session's part
    /// prepared, the build run by `runner` (at once, or driven by the gateway's calls),
    /// the result exported and described as BuildKit's exporter response.
    pub(crate) async fn solve_dockerfile(
        &self,
        request: SolveRequest,
        runner: Runner,
    ) -> Result<Response<SolveResponse>, Status> {
        let reference = request.r#ref.clone();
        let host = self.host_platform();
        let planned = match solve_request::build_request(&request, &host) {
            Ok(planned) => planned,
            Err(status) => {
                log(
                    "Solve",
                    &format!("{reference} refused: {}", status.message()),
                );
                return Err(status);
            }
        };
        let mut build = planned.build;
        let needs = planned.session;
        let platforms = if build.platforms.is_empty() {
            host.format()
        } else {
            build
                .platforms
                .iter()
                .map(Platform::format)
                .collect::<Vec<_>>()
                .join(",")
        };
        let Some(guard) = self.builds.start(&reference) else {
            return Err(Status::already_exists(format!(
                "a build with ref {reference:?} runs or ran already"
            )));
        };
        log("build", &format!("{reference} platforms {platforms}"));
        // What comes from the client's session (kept until the build has ended: the
        // synced directories stay locked, the export directory exists).
        let mut prepared = None;
        let mut transfer = None;
        if needs.any() {
            match self
                .prepare_session(&request.session, &needs, &mut build)
                .await
            {
                Ok((p, t)) => (prepared, transfer) = (Some(p), t),
                Err(status) => {
                    log(
                        "build",
                        &format!("{reference} failed: {}", status.message()),
                    );
                    return Err(status);
                }
            }
        }
        // Registry credentials: the client's (asked through its session, never stored)
        // over hoistd's own docker config.
        let credentials = prepared
            .as_mut()
            .and_then(|p| p.credentials.take())
            .unwrap_or_else(Credentials::from_docker_config);
        let worker = self.open_worker(credentials).await?;
        let (events, mut received) = tokio::sync::mpsc::unbounded_channel();
        // The forwarder holds the guard: the build's Status streams end once every event
        // the engine sent (until the build ended or was dropped) is in.
        tokio::spawn(async move {
            let mut converter = StatusConverter::default();
            while let Some(event) = received.recv().await {
                if let Some(response) = converter.convert(&event) {
                    guard.job().push(response);
                }
            }
            if let Some(response) = converter.cancel_unfinished() {
                guard.job().push(response);
            }
            drop(guard);
        });
        // Dropping this future (the client cancelled the call) drops the build: the engine
        // stops its steps and releases what it held.
        let mut ending = BuildEnding::new(&reference);
        let running = runner.run(worker, build, events);
        let result = match transfer {
            None => running.await?,
            Some(transfer) => match beside_transfer(transfer, running).await {
                Ok(result) => result,
                Err(status) => {
                    ending.ended = true;
                    log(
                        "build",
                        &format!("{reference} failed: {}", status.message()),
                    );
                    return Err(status);
                }
            },
        };
        ending.ended = true;
        match result {
            Ok(result) => {
                if let Some(prepared) = &prepared {
                    if let Err(status) = self.send_export(prepared).await {
                        log(
                            "build",
                            &format!("{reference} failed: {}", status.message()),
                        );
                        return Err(status);
                    }
                }
                log("build", &format!("{reference} done"));
                let mut exporter_response = solve_request::exporter_response(&result.export)?;
                if let Some(root) = &result.cache_manifest {
                    let json = serde_json::to_string(root).map_err(|e| {
                        Status::internal(format!("cannot encode the cache manifest: {e}"))
                    })?;
                    exporter_response
                        .insert(crate::cache_store::CACHE_MANIFEST_KEY.to_owned(), json);
                }
                Ok(Response::new(SolveResponse { exporter_response }))
            }
            Err(err) => {
                log("build", &format!("{reference} failed: {err}"));
                Err(Status::unknown(err.to_string()))
            }
        }
    }
}

/// The registries a build names: its Dockerfile's `FROM`/`--from=`, its image outputs,
/// its registry caches.
fn credential_hosts(dockerfile: &str, build: &hoist_engine::BuildRequest) -> BTreeSet<String> {
    let mut hosts = registry_hosts(dockerfile);
    for output in &build.outputs {
        if let hoist_export::Output::Image(image) = output {
            hosts.extend(image.names.iter().map(|n| n.domain().to_owned()));
        }
    }
    // The registries of `--cache-from`/`--cache-to`.
    hosts.extend(build.cache.imports.iter().filter_map(|i| match i {
        hoist_engine::CacheImport::Registry { reference } => Some(reference.domain().to_owned()),
        hoist_engine::CacheImport::Local { .. } | hoist_engine::CacheImport::Client { .. } => None,
    }));
    hosts.extend(
        build
            .cache
            .exports
            .iter()
            .filter_map(|e| match &e.destination {
                hoist_engine::CacheDestination::Registry { reference } => {
                    Some(reference.domain().to_owned())
                }
                _ => None,
            }),
    );
    hosts
}

/// The `.dockerignore` patterns the client applies to the context it sends, as BuildKit's
/// frontend reads them: `NAME.dockerignore` beside the Dockerfile, else the context's
/// `.dockerignore` (`context_ignore`: where [`ControlService::context_ignore`] put it, or
/// why it could not).
async fn ignore_patterns(
    dockerfile_dir: &Path,
    name: &str,
    context_ignore: Result<PathBuf, Status>,
) -> Result<Vec<String>, Status> {
    let beside = dockerfile_dir.join(format!("{name}.dockerignore"));
    let file = if beside.is_file() {
        beside
    } else {
        context_ignore?
    };
    let text = match tokio::fs::read_to_string(&file).await {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => {
            return Err(Status::invalid_argument(format!(
                "cannot read the client's {}: {err}",
                file.file_name().unwrap_or_default().to_string_lossy()
            )))
        }
    };
    hoist_dockerfile::dockerignore::read_ignore_file(&text)
        .map_err(|err| Status::invalid_argument(format!("the client's .dockerignore: {err}")))
}

/// What a session build holds while it runs.
#[derive(Debug)]
struct Prepared {
    session: Arc<Session>,
    /// The flocks on the synced directories (same shared key: one build at a time).
    _locks: Vec<std::fs::File>,
    /// Where a `local`/`tar` export is written before it is sent.
    export: Option<(String, tempfile::TempDir)>,
    /// Registry credentials the client gave for the hosts the build names.
    credentials: Option<Credentials>,
    /// The client's secrets and SSH agents, asked once the graph is known; its
    /// forwarding sockets are served until the build ends.
    _inputs: Option<Arc<crate::session_inputs::SessionInputs>>,
}

/// The transfer of a build's context, still running when the session's part is prepared:
/// it goes on beside the build ([`beside_transfer`]), which reads the context once its
/// listing has come.
type Transfer<'a> = Pin<Box<dyn Future<Output = Result<(), Status>> + Send + 'a>>;

/// Runs `build` while its context arrives (`transfer`), as BuildKit resolves the
/// Dockerfile's images while the local source is being sent. A transfer that fails ends
/// the build (dropped: cancelled) and its error is the call's; a build that ended first
/// (it read no context, or it failed) still waits for the transfer, which holds the copy's
/// lock and may have failed first in the build's eyes.
async fn beside_transfer<T>(
    mut transfer: Transfer<'_>,
    build: impl Future<Output = Result<T, Status>>,
) -> Result<T, Status> {
    tokio::pin!(build);
    tokio::select! {
        transferred = &mut transfer => {
            transferred?;
            build.await
        }
        built = &mut build => {
            transfer.await?;
            built
        }
    }
}

/// Awaits `work` while the context's transfer, when it runs, goes on too: every call
/// waiting on the client is read, so none stalls the others' stream (they share one
/// connection's flow-control window). A transfer that fails is the error.
async fn alongside<T>(
    transfer: &mut Option<Transfer<'_>>,
    work: impl Future<Output = Result<T, Status>>,
) -> Result<T, Status> {
    let Some(running) = transfer.as_mut() else {
        return work.await;
    };
    tokio::pin!(work);
    let transferred = tokio::select! {
        done = &mut work => return done,
        transferred = running => transferred,
    };
    transferred?;
    *transfer = None;
    work.await
}

impl ControlService {
    /// Syncs the Dockerfile's directory from session `id` and points `build` at it;
    /// starts the context's transfer, returned still running (the build reads the context
    /// when its listing has come); starts asking the registries' credentials; syncs the
    /// named contexts; points a `local`/`tar` export at a directory of the state dir.
    async fn prepare_session(
        &self,
        id: &str,
        needs: &SessionNeeds,
        build: &mut hoist_engine::BuildRequest,
    ) -> Result<(Prepared, Option<Transfer<'_>>), Status> {
        if id.is_empty() {
            return Err(Status::invalid_argument(
                "the build needs a session and names none",
            ));
        }
        let session = self.sessions.get(id, self.session_timeout).await?;
        let mut locks = Vec::new();
        let mut locked = Vec::new();
        let mut credentials = None;
        let mut running = None;
        if needs.cache_stores {
            crate::cache_store::attach(&session, &mut build.cache)?;
        }
        if needs.context {
            let root = self.state.root().to_owned();
            let key = session.meta.shared_key.clone();
            let name = build.dockerfile_name.clone();
            let dockerfile_dir = filesync::session_dir(&root, &key, "dockerfile");
            let context_dir = filesync::session_dir(&root, &key, "context");
            locks.push(lock_dir(&dockerfile_dir).await?);
            locked.push(dockerfile_dir.clone());
            if context_dir != dockerfile_dir {
                locks.push(lock_dir(&context_dir).await?);
                locked.push(context_dir.clone());
            }
            let dockerfile_request = SyncRequest {
                dir_name: "dockerfile".to_owned(),
                include_patterns: vec![name.clone(), format!("{name}.dockerignore")],
                // A Dockerfile that is a symlink comes with its target (as BuildKit asks).
                follow_paths: vec![name.clone(), format!("{name}.dockerignore")],
                ..SyncRequest::default()
            };
            // The Dockerfile and the context's `.dockerignore` come at once: two calls on
            // the session, one round trip's wait.
            let dockerfile_synced = filesync::receive_dir(
                &session,
                &dockerfile_request,
                &dockerfile_dir,
                &self.listings,
                self.session_timeout,
            );
            let context_ignore = self.context_ignore(&session, &key);
            let (synced, context_ignore) = tokio::join!(dockerfile_synced, context_ignore);
            let (stats, _) = synced?;
            log_sync(&session, "dockerfile", stats);
            let path = dockerfile_dir.join(&name);
            let bytes = read_inside(&dockerfile_dir, &name).map_err(|err| {
                Status::not_found(format!(
                    "the client's dockerfile directory has no {name:?}: {err}"
                ))
            })?;
            let exclude_patterns = ignore_patterns(&dockerfile_dir, &name, context_ignore).await?;
            // The build's first stages run while the context comes; they read its
            // `.dockerignore` from here, never from the copy being written.
            let excludes = exclude_patterns.clone();
            let context_request = SyncRequest {
                dir_name: "context".to_owned(),
                exclude_patterns,
                ..SyncRequest::default()
            };
            // The directory the build is pointed at exists before anything arrives.
            tokio::fs::create_dir_all(&context_dir)
                .await
                .map_err(|err| {
                    Status::internal(format!("cannot create {}: {err}", context_dir.display()))
                })?;
            let (arrived, listing) = hoist_engine::ContextListing::arriving();
            let transfer: Transfer<'_> = Box::pin({
                let session = Arc::clone(&session);
                let dir = context_dir.clone();
                async move {
                    let received = filesync::receive_dir(
                        &session,
                        &context_request,
                        &dir,
                        &self.listings,
                        self.session_timeout,
                    )
                    .await;
                    match received {
                        Ok((stats, listing)) => {
                            log_sync(&session, "context", stats);
                            arrived.send(Ok(listing));
                            Ok(())
                        }
                        Err(status) => {
                            arrived.send(Err(status.message().to_owned()));
                            Err(status)
                        }
                    }
                }
            });
            // The registries' credentials are asked while the context comes.
            let text = String::from_utf8_lossy(&bytes).into_owned();
            running = Some(transfer);
            let hosts = credential_hosts(&text, build);
            credentials = Some(self.client_credentials(&session, hosts));
            build.dockerfile = Some(bytes);
            build.dockerfile_name = path.to_string_lossy().into_owned();
            build.context = hoist_engine::ContextSource::Owned {
                dir: context_dir,
                listing: Some(listing),
                excludes: Some(excludes),
            };
        }
        if let Some(url) = &needs.upload {
            let spool = self.state.root().join("hoistd").join("uploads");
            let pulled =
                crate::upload::pull_context(&session, url, &spool, self.session_timeout, build);
            let bytes = alongside(&mut running, pulled).await?;
            log(
                "session",
                &format!("{} upload: {bytes} bytes received", session.meta.id),
            );
        }
        for (name, dir_name) in &needs.named_dirs {
            let key = session.meta.shared_key.clone();
            let dir = filesync::session_dir(self.state.root(), &key, dir_name);
            // The same directory as the context's (or another name's) is locked already:
            // a second flock from this process would wait for itself.
            if !locked.contains(&dir) {
                locks.push(lock_dir(&dir).await?);
                locked.push(dir.clone());
            }
            let request = SyncRequest {
                dir_name: dir_name.clone(),
                ..SyncRequest::default()
            };
            let received = filesync::receive_dir(
                &session,
                &request,
                &dir,
                &self.listings,
                self.session_timeout,
            );
            let (stats, listing) = alongside(&mut running, received).await?;
            log_sync(&session, dir_name, stats);
            let source = hoist_engine::ContextSource::Owned {
                dir,
                listing: Some(hoist_engine::ContextListing::ready(listing)),
                excludes: None,
            };
            build.named_contexts.insert(name.clone(), source);
        }
        let mut export = None;
        if let Some(wanted) = &needs.export {
            let exports = self.state.root().join("hoistd").join("exports");
            std::fs::create_dir_all(&exports).map_err(|err| {
                Status::internal(format!("cannot create {}: {err}", exports.display()))
            })?;
            let dir = tempfile::TempDir::new_in(&exports).map_err(|err| {
                Status::internal(format!(
                    "cannot create a directory in {}: {err}",
                    exports.display()
                ))
            })?;
            let dest = if wanted.kind == "local" {
                dir.path().join("out")
            } else {
                dir.path().join("out.tar")
            };
            build.outputs.push(wanted.output(&dest)?);
            export = Some((wanted.kind.clone(), dir));
        }
        // An uploaded context's Dockerfile is unknown until unpacked: its registries'
        // credentials are asked when the build first needs them.
        if credentials.is_none() {
            credentials = Some(self.client_credentials(&session, BTreeSet::new()));
        }
        // Secrets and SSH agents: asked for the ids the solved graph's RUN mounts name.
        let inputs = crate::session_inputs::SessionInputs::new(
            Arc::clone(&session),
            self.session_timeout,
            self.state.root().join("hoistd"),
        )
        .map(Arc::new);
        if let Some(inputs) = &inputs {
            build.late_inputs = Some(hoist_engine::LateInputs(Arc::clone(inputs) as _));
        }
        let prepared = Prepared {
            session,
            _locks: locks,
            export,
            credentials,
            _inputs: inputs,
        };
        Ok((prepared, running))
    }

    /// The context's `.dockerignore` fetched alone, into a copy of its own (so the context's
    /// copy is not pruned to that one file): where it is (or would be).
    async fn context_ignore(&self, session: &Session, key: &str) -> Result<PathBuf, Status> {
        let dir = filesync::session_dir(self.state.root(), key, "context .dockerignore");
        let request = SyncRequest {
            dir_name: "context".to_owned(),
            include_patterns: vec![".dockerignore".to_owned()],
            ..SyncRequest::default()
        };
        let timeout = self.session_timeout;
        filesync::receive_dir(session, &request, &dir, &self.listings, timeout).await?;
        Ok(dir.join(".dockerignore"))
    }

    /// hoistd's own credentials with, over them, what the client's `Auth.Credentials`
    /// answers (as BuildKit's auth provider asks it; Docker Hub as `registry-1.docker.io`).
    /// `hosts` ([`credential_hosts`]) are asked at once, beside the rest of the build's
    /// start; the build waits for a host's answer only when it first needs it. Other hosts
    /// (ARG-built image names, an uploaded context's Dockerfile) are asked then.
    fn client_credentials(&self, session: &Arc<Session>, hosts: BTreeSet<String>) -> Credentials {
        let credentials = Credentials::from_docker_config();
        let Some(asked) = crate::session_inputs::SessionCredentials::new(
            Arc::clone(session),
            self.session_timeout,
        ) else {
            return credentials;
        };
        let asked = Arc::new(asked);
        asked.prefetch(hosts.into_iter().collect());
        credentials.with_source(asked)
    }

    /// Sends a finished `local`/`tar` export to the client.
    async fn send_export(&self, prepared: &Prepared) -> Result<(), Status> {
        let Some((kind, dir)) = &prepared.export else {
            return Ok(());
        };
        if kind != "local" {
            let bytes = filesync::send_file(
                &prepared.session,
                &dir.path().join("out.tar"),
                self.session_timeout,
            )
            .await?;
            log(
                "export",
                &format!(
                    "{kind}: {bytes} bytes sent to session {}",
                    prepared.session.meta.id
                ),
            );
        } else {
            let files = filesync::send_dir(
                &prepared.session,
                &dir.path().join("out"),
                self.session_timeout,
            )
            .await?;
            log(
                "export",
                &format!(
                    "local: {files} files sent to session {}",
                    prepared.session.meta.id
                ),
            );
        }
        Ok(())
    }
}

/// The registry hosts of the images a Dockerfile's `FROM` and `--from=` name (references
/// with ARGs in them and `scratch` are skipped; a stage name reads as a Docker Hub image,
/// which only asks the client about Docker Hub).
fn registry_hosts(dockerfile: &str) -> std::collections::BTreeSet<String> {
    let mut hosts = std::collections::BTreeSet::new();
    let mut add = |image: &str| {
        if image.contains('$') || image.eq_ignore_ascii_case("scratch") {
            return;
        }
        if let Ok(reference) = hoist_oci::Reference::parse_normalized(image) {
            hosts.insert(reference.domain().to_owned());
        }
    };
    for line in dockerfile.lines() {
        let mut tokens = line.split_whitespace();
        let first = tokens.next().unwrap_or_default();
        if first.eq_ignore_ascii_case("from") {
            if let Some(image) = tokens.clone().find(|t| !t.starts_with("--")) {
                add(image);
            }
        }
        for token in line.split_whitespace() {
            if let Some(image) = token.strip_prefix("--from=") {
                add(image);
            }
        }
    }
    hosts
}

fn log_sync(session: &Session, dir_name: &str, stats: filesync::SyncStats) {
    log(
        "session",
        &format!(
            "{} {dir_name}: {} files received, {} unchanged, {} removed",
            session.meta.id, stats.received, stats.unchanged, stats.removed
        ),
    );
}

/// An exclusive flock on `dir`'s lock file, taken off the async threads.
async fn lock_dir(dir: &std::path::Path) -> Result<std::fs::File, Status> {
    let lock = filesync::lock_file(dir);
    tokio::task::spawn_blocking(move || {
        if let Some(parent) = lock.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock)?;
        fs4::fs_std::FileExt::lock_exclusive(&file)?;
        Ok::<_, std::io::Error>(file)
    })
    .await
    .map_err(|err| Status::internal(format!("lock task failed: {err}")))?
    .map_err(|err| Status::internal(format!("cannot lock a session directory: {err}")))
}

/// Runs one build on a blocking thread of its own, polling the engine's future there (its
/// future is not `Send` for every lifetime, which a task on the async threads needs); the
/// build is dropped — cancelled — when the returned future is.
pub(crate) async fn run_build(
    worker: Arc<Worker>,
    build: hoist_engine::BuildRequest,
    events: tokio::sync::mpsc::UnboundedSender<hoist_engine::progress::Event>,
) -> Result<hoist_engine::Result<hoist_engine::BuildResult>, Status> {
    let (cancel, cancelled) = tokio::sync::oneshot::channel::<()>();
    let runtime = tokio::runtime::Handle::current();
    let task = tokio::task::spawn_blocking(move || {
        runtime.block_on(async move {
            tokio::select! {
                result = hoist_engine::build(worker, build, Some(events)) => Some(result),
                // The sender dropped: the Solve call went away.
                _ = cancelled => None,
            }
        })
    });
    // Held until the build ends; dropped with this future when the call is cancelled.
    let _cancel = cancel;
    match task.await {
        Ok(Some(result)) => Ok(result),
        Ok(None) => Err(Status::cancelled("the build was cancelled")),
        Err(err) => Err(Status::internal(format!("build task failed: {err}"))),
    }
}

/// Logs a build whose `Solve` was dropped before the build ended (the client cancelled).
struct BuildEnding<'a> {
    reference: &'a str,
    ended: bool,
}

impl<'a> BuildEnding<'a> {
    fn new(reference: &'a str) -> BuildEnding<'a> {
        BuildEnding {
            reference,
            ended: false,
        }
    }
}

impl Drop for BuildEnding<'_> {
    fn drop(&mut self) {
        if !self.ended {
            log("build", &format!("{} cancelled", self.reference));
        }
    }
}

/// Runs engine work (sync file I/O) off the async threads; engine errors become `Internal`
/// with their message, which names the object.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> hoist_engine::Result<T> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| Status::internal(format!("engine task failed: {err}")))?
        .map_err(|err| Status::internal(err.to_string()))
}

/// The containerd-style filters buildctl and buildx send for records: `id==X`, `id~=X`
/// and `id=X` (a prefix, as `hoist du --filter id=` takes), `type==regular` etc.
#[derive(Debug, Default)]
struct RecordFilter {
    ids: Vec<String>,
    kinds: Option<Vec<String>>,
}

impl RecordFilter {
    fn parse(filters: &[String]) -> Result<RecordFilter, Status> {
        let mut out = RecordFilter::default();
        for filter in filters
            .iter()
            .flat_map(|f| f.split(','))
            .filter(|f| !f.is_empty())
        {
            let (key, value) = ["==", "~=", "="]
                .iter()
                .find_map(|op| filter.split_once(op))
                .ok_or_else(|| Status::invalid_argument(format!("invalid filter {filter:?}")))?;
            match key.trim() {
                "id" => out.ids.push(value.trim().trim_matches('"').to_owned()),
                "type" => out
                    .kinds
                    .get_or_insert_with(Vec::new)
                    .push(value.trim().trim_matches('"').to_owned()),
                other => {
                    return Err(Status::invalid_argument(format!(
                    "unsupported filter key {other:?} in {filter:?}: hoistd filters on id and type"
                )))
                }
            }
        }
        Ok(out)
    }

    fn matches(&self, row: &CacheUsage) -> bool {
        (self.ids.is_empty() || self.ids.iter().any(|id| row.id.starts_with(id.as_str())))
            && self
                .kinds
                .as_ref()
                .is_none_or(|kinds| kinds.iter().any(|k| k == row.kind.as_str()))
    }
}

/// `ListWorkers` filters: `id==X`, `platforms==os/arch`; anything else is refused.
fn worker_matches(record: &WorkerRecord, filters: &[String]) -> Result<bool, Status> {
    for filter in filters
        .iter()
        .flat_map(|f| f.split(','))
        .filter(|f| !f.is_empty())
    {
        let Some((key, value)) = filter.split_once("==") else {
            return Err(Status::invalid_argument(format!(
                "unsupported worker filter {filter:?}: expected KEY==VALUE"
            )));
        };
        let value = value.trim_matches('"');
        let matches = match key {
            "id" => record.id == value,
            "platforms" => record
                .platforms
                .iter()
                .any(|p| format!("{}/{}", p.os, p.architecture) == value || pb_to_string(p) == value),
            label if label.starts_with("labels.") => {
                record.labels.get(&label["labels.".len()..]).map(String::as_str) == Some(value)
            }
            other => {
                return Err(Status::invalid_argument(format!(
                    "unsupported worker filter key {other:?}: hoistd filters on id, platforms and labels.KEY"
                )))
            }
        };
        if !matches {
            return Ok(false);
        }
    }
    Ok(true)
}

pub(crate) fn pb_to_string(p: &pb::Platform) -> String {
    if p.variant.is_empty() {
        format!("{}/{}", p.os, p.architecture)
    } else {
        format!("{}/{}/{}", p.os, p.architecture, p.variant)
    }
}

fn to_pb_platform(platform: &Platform) -> pb::Platform {
    pb::Platform {
        architecture: platform.architecture.clone(),
        os: platform.os.clone(),
        variant: platform.variant.clone(),
        os_version: platform.os_version.clone(),
        os_features: platform.os_features.clone(),
    }
}

pub(crate) fn timestamp(time: SystemTime) -> Timestamp {
    let since = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp {
        seconds: i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(since.subsec_nanos()).unwrap_or(0),
    }
}

/// A cache row as BuildKit's record: cache mounts are its mutable `exec.cachemount`s.
pub fn to_usage_record(row: &CacheUsage) -> UsageRecord {
    UsageRecord {
        id: row.id.clone(),
        mutable: row.kind == UsageKind::CacheMount,
        in_use: row.in_use,
        size: i64::try_from(row.size).unwrap_or(i64::MAX),
        parent: row.parents.first().cloned().unwrap_or_default(),
        created_at: Some(timestamp(row.created)),
        last_used_at: row.last_used.map(timestamp),
        usage_count: i64::try_from(row.usage_count).unwrap_or(i64::MAX),
        description: String::new(),
        record_type: row.kind.as_str().to_owned(),
        shared: row.shared,
        parents: row.parents.clone(),
    }
}

/// Reads `name` under `dir`, following symlinks as if `dir` were the root: an absolute or
/// `..` target stays inside it (a Dockerfile may be a link to another file the client sent).
fn read_inside(dir: &Path, name: &str) -> std::io::Result<Vec<u8>> {
    use std::path::Component;
    let mut todo: Vec<std::ffi::OsString> = Vec::new();
    let push = |todo: &mut Vec<std::ffi::OsString>, path: &Path| {
        for part in path.components().rev() {
            match part {
                Component::Normal(part) => todo.push(part.to_owned()),
                Component::ParentDir => todo.push("..".into()),
                Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            }
        }
    };
    push(&mut todo, Path::new(name));
    // Only checked, non-link components: `dir.join(resolved)` cannot leave `dir`.
    let mut resolved = PathBuf::new();
    let mut links = 0;
    while let Some(part) = todo.pop() {
        if part == ".." {
            resolved.pop();
            continue;
        }
        let candidate = resolved.join(&part);
        let meta = std::fs::symlink_metadata(dir.join(&candidate))?;
        if !meta.file_type().is_symlink() {
            resolved = candidate;
            continue;
        }
        links += 1;
        if links > 40 {
            return Err(std::io::Error::other("too many levels of symbolic links"));
        }
        let target = std::fs::read_link(dir.join(&candidate))?;
        if target.is_absolute() {
            resolved = PathBuf::new();
        }
        push(&mut todo, &target);
    }
    std::fs::read(dir.join(resolved))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_linked_dockerfile_is_read_inside_its_directory() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("dockerfile");
        std::fs::create_dir(&root).unwrap();
        std::fs::write(root.join("Dockerfile.web"), "FROM web\n").unwrap();
        std::fs::write(dir.path().join("outside"), "FROM outside\n").unwrap();
        std::os::unix::fs::symlink("Dockerfile.web", root.join("Dockerfile")).unwrap();
        std::os::unix::fs::symlink("/Dockerfile.web", root.join("Absolute")).unwrap();
        std::os::unix::fs::symlink("../outside", root.join("Escaping")).unwrap();
        std::os::unix::fs::symlink("Loop", root.join("Loop")).unwrap();
        let read = |name: &str| super::read_inside(&root, name);
        assert_eq!(read("Dockerfile").unwrap(), b"FROM web\n");
        assert_eq!(read("Absolute").unwrap(), b"FROM web\n");
        // `..` stops at the directory: `/outside` inside it does not exist.
        assert!(read("Escaping").is_err());
        assert!(read("Loop").is_err());
    }

    #[test]
    fn registry_hosts_come_from_from_and_copy_from() {
        let hosts = super::registry_hosts(
            "ARG V=1\nFROM --platform=$BUILDPLATFORM reg.example:5000/a/b:1 AS one\n\
             FROM busybox\nFROM scratch\nFROM img:$V\n\
             COPY --from=ghcr.io/x/y:2 / /\nCOPY --from=one / /\n",
        );
        assert_eq!(
            hosts.into_iter().collect::<Vec<_>>(),
            ["docker.io", "ghcr.io", "reg.example:5000"]
        );
    }
}
