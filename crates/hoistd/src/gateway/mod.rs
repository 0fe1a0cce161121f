//! BuildKit's gateway (`moby.buildkit.v1.frontend.LLBBridge`) for clients that run the
//! frontend themselves — buildx, BuildKit's `client.Build` — on hoist's engine.
//!
//! Such a client sends `Control.Solve` with an empty frontend (its exporters, session and
//! entitlements) and, on the same connection, drives the build through the bridge, each call
//! naming the build by its ref in the metadata key [`BUILD_ID_KEY`]: `Ping` (the
//! capabilities), `Solve` naming `dockerfile.v0` with the frontend options, then `Return`
//! with the result for the exporter, or with its build function's error.
//!
//! hoistd serves this as one build ([`solve`]): the empty-frontend Solve registers its ref
//! in [`Gateways`] and waits for the bridge's calls; the bridge's `Solve` becomes the
//! `dockerfile.v0` Solve it describes (the same attributes, session and exporters as a
//! direct one, [`crate::control`]) run by [`Runner::Gateway`]: the engine's stages one by
//! one — contexts, Dockerfile and base images resolved, then the answer (one ref per
//! platform and the image configs as metadata, as BuildKit's Dockerfile frontend gives
//! them); the steps run then when the client asked to `evaluate`, else when the result is
//! returned (BuildKit's refs are lazy too), and the export follows `Return`. `ReadFile`,
//! `ReadDir` and `StatFile` on a ref solve it too and read its filesystem
//! ([`files`]; the service's methods in [`service`]); `Warn` puts the client's warning into the build's `Status`.
//! LLB
//! definitions, frontend inputs and other frontends are refused as unsupported.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hoist_engine::{BuildRequest, BuildResult, HistoryStore, Progress, Solving, Worker};
use hoist_oci::Platform;
use hoist_proto::control::{SolveRequest, SolveResponse};
use hoist_proto::gateway::{self as gw, ReturnRequest};
use tokio::sync::{mpsc, oneshot, Notify};
use tonic::{Response, Status};

use crate::control::ControlService;

mod files;
mod service;

use crate::solve_request::DOCKERFILE_FRONTEND;
use files::{FileAnswer, FileRequest};
pub use service::GatewayService;

/// The gRPC metadata key naming the build a bridge call belongs to (BuildKit's
/// `client/buildid`).
pub const BUILD_ID_KEY: &str = "buildkit-controlapi-buildid";

/// The capabilities `Ping` reports enabled: what the bridge serves.
const FRONTEND_CAPS: &[&str] = &[
    "solve.base",
    "resolveimage",
    "return",
    "returnmap",
    "proto.refarray",
    "gateway.solve.evaluate",
    "gateway.evaluate",
    "gateway.warnings",
    "readfile",
    "readdir",
    "statfile",
];

/// LLB capabilities, reported disabled: hoistd runs no LLB a client sends. (An empty list
/// would make BuildKit's client assume its defaults, all enabled.)
const LLB_CAPS: &[&str] = &[
    "source.image",
    "source.local",
    "exec.meta.base",
    "file.base",
];

fn unsupported(what: &str) -> Status {
    Status::unimplemented(format!(
        "{what} (unsupported): hoistd's gateway solves the {DOCKERFILE_FRONTEND} frontend only"
    ))
}

/// Where the bridge's Solve waits for the frontend's answer, until it is answered.
type AnswerSlot = Arc<Mutex<Option<oneshot::Sender<Result<gw::Result, Status>>>>>;

/// A build's bridge calls, read by its Solve until the stages run, by the stages then, and
/// by the Solve again when the build failed before the client returned.
type Calls = Arc<tokio::sync::Mutex<mpsc::Receiver<Call>>>;

/// A bridge call forwarded to the build it names.
#[derive(Debug)]
enum Call {
    Solve {
        request: gw::SolveRequest,
        reply: oneshot::Sender<Result<gw::Result, Status>>,
    },
    Evaluate {
        reference: String,
        reply: oneshot::Sender<Result<(), Status>>,
    },
    Return {
        request: ReturnRequest,
        reply: oneshot::Sender<Result<(), Status>>,
    },
    /// `ReadFile`, `ReadDir` or `StatFile` on a ref.
    Files {
        request: FileRequest,
        reply: oneshot::Sender<Result<FileAnswer, Status>>,
    },
}

/// The empty-frontend Solves waiting for (or running) their client's frontend, by ref.
#[derive(Debug, Clone, Default)]
pub struct Gateways {
    builds: Arc<Mutex<HashMap<String, mpsc::Sender<Call>>>>,
    registered: Arc<Notify>,
}

/// A ref's registration, removed on drop.
struct Registered {
    gateways: Gateways,
    reference: String,
}

impl Drop for Registered {
    fn drop(&mut self) {
        if let Ok(mut builds) = self.gateways.builds.lock() {
            builds.remove(&self.reference);
        }
    }
}

impl Gateways {
    fn register(&self, reference: &str) -> Result<(Registered, mpsc::Receiver<Call>), Status> {
        let (sender, receiver) = mpsc::channel(4);
        {
            let mut builds = self
                .builds
                .lock()
                .map_err(|_| Status::internal("the gateway registry is poisoned"))?;
            if builds.contains_key(reference) {
                return Err(Status::already_exists(format!(
                    "a build with ref {reference:?} runs already"
                )));
            }
            builds.insert(reference.to_owned(), sender);
        }
        self.registered.notify_waiters();
        let registered = Registered {
            gateways: self.clone(),
            reference: reference.to_owned(),
        };
        Ok((registered, receiver))
    }

    /// The build `reference`, waiting up to `timeout` for its Solve to register it (the
    /// client sends the Solve and the bridge's calls at the same time).
    async fn find(&self, reference: &str, timeout: Duration) -> Result<mpsc::Sender<Call>, Status> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.registered.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(sender) = self
                .builds
                .lock()
                .map_err(|_| Status::internal("the gateway registry is poisoned"))?
                .get(reference)
            {
                return Ok(sender.clone());
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(Status::not_found(format!(
                    "no build with ref {reference:?} waits for a frontend: send Control.Solve \
                     with an empty frontend and this ref first"
                )));
            }
        }
    }
}

/// How the Solve of a `dockerfile.v0` build runs it: at once ([`Runner::Direct`]), or in
/// stages driven by the client's bridge calls ([`Runner::Gateway`]).
#[derive(Debug)]
pub(crate) enum Runner {
    Direct,
    Gateway(Link),
}

impl Runner {
    /// Runs `build`; the build is dropped — cancelled — when the returned future is.
    pub(crate) async fn run(
        self,
        worker: Arc<Worker>,
        build: BuildRequest,
        events: mpsc::UnboundedSender<hoist_engine::progress::Event>,
    ) -> Result<hoist_engine::Result<BuildResult>, Status> {
        match self {
            Runner::Direct => crate::control::run_build(worker, build, events).await,
            Runner::Gateway(link) => link.run(worker, build, events).await,
        }
    }
}

/// A build's side of the bridge: the Solve waiting for its answer and the calls that follow.
#[derive(Debug)]
pub(crate) struct Link {
    reference: String,
    /// Solve the steps before answering (`SolveRequest.evaluate`).
    evaluate: bool,
    /// The client runs a multi-platform build (`multi-platform=true`): refs by platform even
    /// for one platform.
    multi_platform: bool,
    /// The bridge's Solve, until answered.
    answer: AnswerSlot,
    calls: Calls,
    /// Set once the client's `Return` was taken.
    returned: Arc<AtomicBool>,
}

/// Why a gateway build ended without a result.
enum Failure {
    Engine(hoist_engine::Error),
    Client(Status),
}

impl From<hoist_engine::Error> for Failure {
    fn from(err: hoist_engine::Error) -> Failure {
        Failure::Engine(err)
    }
}

impl Link {
    fn answer(&self, result: Result<gw::Result, Status>) {
        if let Some(reply) = self.answer.lock().ok().and_then(|mut a| a.take()) {
            let _ = reply.send(result);
        }
    }

    /// The stages on a blocking thread of their own (the engine's futures are not `Send`
    /// for every lifetime), recorded in the build history as `hoist_engine::build` does.
    async fn run(
        self,
        worker: Arc<Worker>,
        build: BuildRequest,
        events: mpsc::UnboundedSender<hoist_engine::progress::Event>,
    ) -> Result<hoist_engine::Result<BuildResult>, Status> {
        let (cancel, cancelled) = oneshot::channel::<()>();
        let runtime = tokio::runtime::Handle::current();
        let task = tokio::task::spawn_blocking(move || {
            runtime.block_on(async move {
                tokio::select! {
                    outcome = self.recorded(worker, build, events) => Some(outcome),
                    _ = cancelled => None,
                }
            })
        });
        let _cancel = cancel;
        match task.await {
            Ok(Some(Ok(result))) => Ok(Ok(result)),
            Ok(Some(Err(Failure::Engine(err)))) => Ok(Err(err)),
            Ok(Some(Err(Failure::Client(status)))) => Err(status),
            Ok(None) => Err(Status::cancelled("the build was cancelled")),
            Err(err) => Err(Status::internal(format!("build task failed: {err}"))),
        }
    }

    async fn recorded(
        self,
        worker: Arc<Worker>,
        build: BuildRequest,
        events: mpsc::UnboundedSender<hoist_engine::progress::Event>,
    ) -> Result<BuildResult, Failure> {
        let mut recording = HistoryStore::new(worker.state()).start(&build)?;
        let events = recording.tee(Some(events));
        // The record says why a build the client failed ended; its caller gets the
        // client's own status.
        let (result, client) = match self.stages(worker, build, events).await {
            Ok(result) => (Ok(result), None),
            Err(Failure::Engine(err)) => (Err(err), None),
            Err(Failure::Client(status)) => (
                Err(hoist_engine::Error::Task(format!(
                    "the client's frontend failed: {}",
                    status.message()
                ))),
                Some(status),
            ),
        };
        let recorded = recording.finish(&result).await;
        if let Some(status) = client {
            return Err(Failure::Client(status));
        }
        // The build's own error matters more than one of its record.
        let result = result?;
        recorded?;
        Ok(result)
    }

    async fn stages(
        self,
        worker: Arc<Worker>,
        build: BuildRequest,
        events: mpsc::UnboundedSender<hoist_engine::progress::Event>,
    ) -> Result<BuildResult, Failure> {
        let progress = Progress::new(Some(events));
        let prepared = hoist_engine::prepare_contexts(&worker, build, &progress).await?;
        let mut loaded = hoist_engine::load_definition(&prepared, &progress)?;
        let definition = hoist_engine::resolve(&worker, &loaded, &progress).await?;
        // Late inputs, cache imports and exports, the inline cache: as a direct build.
        let solving =
            Solving::begin(&worker, &prepared, &mut loaded, &definition, &progress).await?;
        let mut solved = None;
        if self.evaluate {
            solved = Some(
                solving
                    .solve(&worker, &prepared, &loaded, &definition, &progress)
                    .await?,
            );
        }
        let multi = self.multi_platform || definition.targets.len() > 1;
        let refs: Vec<(Platform, String)> = definition
            .targets
            .iter()
            .enumerate()
            .map(|(n, target)| (target.platform.clone(), format!("{}-{n}", self.reference)))
            .collect();
        let configs: Vec<Vec<u8>> = definition
            .targets
            .iter()
            .map(|target| hoist_oci::go_json::to_vec(&target.converted.config))
            .collect::<Result<_, _>>()
            .map_err(|err| {
                Failure::Client(Status::internal(format!(
                    "cannot encode an image config: {err}"
                )))
            })?;
        self.answer(Ok(frontend_result(&refs, &configs, multi)));
        loop {
            let Some(call) = self.calls.lock().await.recv().await else {
                return Err(Failure::Client(Status::cancelled(
                    "the gateway closed before the client returned a result",
                )));
            };
            match call {
                Call::Solve { reply, .. } => {
                    let _ = reply.send(Err(unsupported("a second frontend Solve in one build")));
                }
                Call::Evaluate { reference, reply } => {
                    if !refs.iter().any(|(_, id)| *id == reference) {
                        let _ = reply.send(Err(unknown_ref(&reference)));
                        continue;
                    }
                    let solve =
                        || solving.solve(&worker, &prepared, &loaded, &definition, &progress);
                    if let Err(err) = solve_once(&mut solved, solve).await {
                        let _ = reply.send(Err(Status::unknown(err.to_string())));
                        return Err(Failure::Engine(err));
                    }
                    let _ = reply.send(Ok(()));
                }
                Call::Files { request, reply } => {
                    let Some(index) = refs.iter().position(|(_, id)| id == request.reference())
                    else {
                        let _ = reply.send(Err(unknown_ref(request.reference())));
                        continue;
                    };
                    // As BuildKit's lazy refs: reading a ref solves it.
                    let solve =
                        || solving.solve(&worker, &prepared, &loaded, &definition, &progress);
                    if let Err(err) = solve_once(&mut solved, solve).await {
                        let _ = reply.send(Err(Status::unknown(err.to_string())));
                        return Err(Failure::Engine(err));
                    }
                    let result = solved.as_ref().and_then(|s| s.results[index].as_ref());
                    let answer =
                        hoist_engine::read_result(&worker, result, |root| request.answer(root))
                            .await
                            .unwrap_or_else(|err| {
                                Err(Status::internal(format!(
                                    "cannot read the result {:?}: {err}",
                                    request.reference()
                                )))
                            });
                    let _ = reply.send(answer);
                }
                Call::Return { request, reply } => {
                    self.returned.store(true, Ordering::SeqCst);
                    if let Some(error) = request.error {
                        let _ = reply.send(Ok(()));
                        return Err(Failure::Client(client_error(&error)));
                    }
                    if let Err(status) = check_returned(request.result.as_ref(), &refs) {
                        let _ = reply.send(Err(status.clone()));
                        return Err(Failure::Client(status));
                    }
                    let _ = reply.send(Ok(()));
                    let solved = match solved {
                        Some(solved) => solved,
                        None => {
                            solving
                                .solve(&worker, &prepared, &loaded, &definition, &progress)
                                .await?
                        }
                    };
                    return Ok(solving
                        .finish(&worker, &prepared, definition, solved, &progress)
                        .await?);
                }
            }
        }
    }
}

fn unknown_ref(reference: &str) -> Status {
    Status::not_found(format!("the build has no result with ref {reference:?}"))
}

/// The error a client's build function returned, as its Solve's error.
fn client_error(error: &hoist_proto::google::rpc::Status) -> Status {
    Status::new(tonic::Code::from_i32(error.code), error.message.clone())
}

/// A returned result must be the one the build answered: the same refs, each once.
fn check_returned(result: Option<&gw::Result>, refs: &[(Platform, String)]) -> Result<(), Status> {
    use gw::result::Result as Refs;
    let returned: Vec<String> = match result.and_then(|r| r.result.as_ref()) {
        None => Vec::new(),
        Some(Refs::RefDeprecated(id)) => vec![id.clone()],
        Some(Refs::Ref(r)) => vec![r.id.clone()],
        Some(Refs::RefsDeprecated(map)) => map.refs.values().cloned().collect(),
        Some(Refs::Refs(map)) => map.refs.values().map(|r| r.id.clone()).collect(),
    };
    let mut returned_sorted = returned.clone();
    returned_sorted.sort();
    let mut ours: Vec<String> = refs.iter().map(|(_, id)| id.clone()).collect();
    ours.sort();
    if returned_sorted == ours {
        return Ok(());
    }
    if let Some(other) = returned.iter().find(|id| !ours.contains(id)) {
        return Err(unknown_ref(other));
    }
    Err(unsupported(&format!(
        "a result with refs {returned:?} where the frontend gave {ours:?} (exporting a part of \
         a result)"
    )))
}

/// The frontend's answer as BuildKit's Dockerfile frontend gives it: one ref and
/// `containerimage.config`, or (multi-platform) refs and `containerimage.config/<platform>`
/// by platform; `refs.platforms` in both.
fn frontend_result(refs: &[(Platform, String)], configs: &[Vec<u8>], multi: bool) -> gw::Result {
    let mut metadata = HashMap::new();
    let platforms: Vec<serde_json::Value> = refs
        .iter()
        .map(|(platform, _)| {
            serde_json::json!({
                "ID": platform.format(),
                "Platform": platform_json(platform),
            })
        })
        .collect();
    metadata.insert(
        "refs.platforms".to_owned(),
        serde_json::to_vec(&serde_json::json!({ "Platforms": platforms })).unwrap_or_default(),
    );
    let result = if multi {
        let mut map = HashMap::new();
        for ((platform, id), config) in refs.iter().zip(configs) {
            map.insert(
                platform.format(),
                gw::Ref {
                    id: id.clone(),
                    def: None,
                },
            );
            metadata.insert(
                format!("containerimage.config/{}", platform.format()),
                config.clone(),
            );
        }
        gw::result::Result::Refs(gw::RefMap { refs: map })
    } else {
        if let Some(config) = configs.first() {
            metadata.insert("containerimage.config".to_owned(), config.clone());
        }
        gw::result::Result::Ref(gw::Ref {
            id: refs.first().map(|(_, id)| id.clone()).unwrap_or_default(),
            def: None,
        })
    };
    gw::Result {
        result: Some(result),
        metadata,
    }
}

/// An OCI platform's JSON (`architecture`, `os`, `os.version`, `os.features`, `variant`).
fn platform_json(platform: &Platform) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    map.insert("architecture".into(), platform.architecture.clone().into());
    map.insert("os".into(), platform.os.clone().into());
    if !platform.os_version.is_empty() {
        map.insert("os.version".into(), platform.os_version.clone().into());
    }
    if !platform.os_features.is_empty() {
        map.insert("os.features".into(), platform.os_features.clone().into());
    }
    if !platform.variant.is_empty() {
        map.insert("variant".into(), platform.variant.clone().into());
    }
    serde_json::Value::Object(map)
}

/// The frontend request hoistd runs, or why not.
fn check_frontend(request: &gw::SolveRequest) -> Result<(), Status> {
    if request
        .definition
        .as_ref()
        .is_some_and(|d| !d.def.is_empty())
    {
        return Err(unsupported(
            "hoistd does not run LLB definitions sent by the client",
        ));
    }
    if !request.frontend_inputs.is_empty() {
        return Err(unsupported(
            "hoistd does not take frontend inputs (LLB definitions) from the client",
        ));
    }
    if request.frontend.is_empty() {
        return Err(unsupported("a Solve without a frontend"));
    }
    if request.frontend != DOCKERFILE_FRONTEND {
        return Err(unsupported(&format!("the frontend {:?}", request.frontend)));
    }
    if !request.allow_result_return {
        return Err(unsupported(
            "a client without result returns (allow_result_return; BuildKit before 0.4)",
        ));
    }
    Ok(())
}

/// `Control.Solve` with an empty frontend: registers `request`'s ref and serves the
/// client's bridge calls for it; the build the bridge's Solve describes runs with
/// `request`'s session, exporters and entitlements.
pub(crate) async fn solve(
    control: &ControlService,
    request: SolveRequest,
) -> Result<Response<SolveResponse>, Status> {
    let reference = request.r#ref.clone();
    if !request.frontend_inputs.is_empty() {
        return Err(unsupported(
            "hoistd does not take frontend inputs (LLB definitions) from the client",
        ));
    }
    let (_registered, calls) = control.gateways().register(&reference)?;
    let calls: Calls = Arc::new(tokio::sync::Mutex::new(calls));
    log(&format!("{reference} waits for the client's frontend"));
    loop {
        let Some(call) = calls.lock().await.recv().await else {
            return Err(Status::internal("the gateway's calls ended"));
        };
        match call {
            Call::Solve {
                request: frontend,
                reply,
            } => {
                if let Err(status) = check_frontend(&frontend) {
                    log(&format!("{reference} Solve refused: {}", status.message()));
                    // The client returns the error (or tries another Solve).
                    let _ = reply.send(Err(status));
                    continue;
                }
                let mut direct = request.clone();
                direct.frontend = DOCKERFILE_FRONTEND.to_owned();
                direct.frontend_attrs = frontend.frontend_opt.clone();
                let answer: AnswerSlot = Arc::new(Mutex::new(Some(reply)));
                let returned = Arc::new(AtomicBool::new(false));
                let link = Link {
                    reference: reference.clone(),
                    evaluate: frontend.evaluate,
                    multi_platform: frontend
                        .frontend_opt
                        .get("multi-platform")
                        .is_some_and(|v| v == "true"),
                    answer: Arc::clone(&answer),
                    calls: Arc::clone(&calls),
                    returned: Arc::clone(&returned),
                };
                let outcome = control
                    .solve_dockerfile(direct, Runner::Gateway(link))
                    .await;
                if let Err(status) = &outcome {
                    // Failed before the frontend answered: the bridge's Solve says why too.
                    if let Some(reply) = answer.lock().ok().and_then(|mut a| a.take()) {
                        let _ = reply.send(Err(status.clone()));
                    }
                    // As BuildKit, the Solve ends with the client's Return (of this error):
                    // a client's Return never waits for a build that is gone.
                    if !returned.load(Ordering::SeqCst) {
                        await_return(&calls, status, control.session_timeout()).await;
                    }
                }
                return outcome;
            }
            Call::Evaluate {
                reference: id,
                reply,
            } => {
                let _ = reply.send(Err(unknown_ref(&id)));
            }
            Call::Files { request, reply } => {
                let _ = reply.send(Err(unknown_ref(request.reference())));
            }
            Call::Return {
                request: ret,
                reply,
            } => {
                let _ = reply.send(Ok(()));
                let status = match &ret.error {
                    Some(error) => client_error(error),
                    None => unsupported("a result the client did not solve through hoistd"),
                };
                log(&format!("{reference} failed: {}", status.message()));
                return Err(status);
            }
        }
    }
}

/// After a failure the client has not returned yet: answers its calls with `failure` until
/// its `Return` (or `timeout` without a call).
async fn await_return(calls: &Calls, failure: &Status, timeout: Duration) {
    let mut calls = calls.lock().await;
    while let Ok(Some(call)) = tokio::time::timeout(timeout, calls.recv()).await {
        match call {
            Call::Solve { reply, .. } => {
                let _ = reply.send(Err(failure.clone()));
            }
            Call::Evaluate { reply, .. } => {
                let _ = reply.send(Err(failure.clone()));
            }
            Call::Files { reply, .. } => {
                let _ = reply.send(Err(failure.clone()));
            }
            Call::Return { reply, .. } => {
                let _ = reply.send(Ok(()));
                return;
            }
        }
    }
}

fn log(detail: &str) {
    eprintln!("hoistd: gateway {detail}");
}

/// Solves the build the first time a call needs its results (an `Evaluate`, or a file
/// call on a ref, as BuildKit's lazy refs), into `solved`.
async fn solve_once<T, Fut>(
    solved: &mut Option<T>,
    solve: impl FnOnce() -> Fut,
) -> hoist_engine::Result<()>
where
    Fut: std::future::Future<Output = hoist_engine::Result<T>>,
{
    if solved.is_none() {
        *solved = Some(solve().await?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs() -> Vec<(Platform, String)> {
        vec![
            (Platform::parse("linux/amd64").unwrap(), "b-0".to_owned()),
            (Platform::parse("linux/arm/v7").unwrap(), "b-1".to_owned()),
        ]
    }

    #[test]
    fn a_multi_platform_answer_has_refs_and_configs_by_platform() {
        let configs = vec![b"{\"a\":1}".to_vec(), b"{\"a\":2}".to_vec()];
        let result = frontend_result(&refs(), &configs, true);
        let Some(gw::result::Result::Refs(map)) = &result.result else {
            panic!("not a ref map: {result:?}");
        };
        assert_eq!(map.refs["linux/amd64"].id, "b-0");
        assert_eq!(map.refs["linux/arm/v7"].id, "b-1");
        assert_eq!(
            result.metadata["containerimage.config/linux/arm/v7"],
            configs[1]
        );
        let platforms: serde_json::Value =
            serde_json::from_slice(&result.metadata["refs.platforms"]).unwrap();
        assert_eq!(
            platforms,
            serde_json::json!({"Platforms": [
                {"ID": "linux/amd64", "Platform": {"architecture": "amd64", "os": "linux"}},
                {"ID": "linux/arm/v7",
                 "Platform": {"architecture": "arm", "os": "linux", "variant": "v7"}},
            ]})
        );
        assert!(check_returned(Some(&result), &refs()).is_ok());
    }

    #[test]
    fn a_single_platform_answer_has_one_ref_and_its_config() {
        let one = &refs()[..1];
        let result = frontend_result(one, &[b"{}".to_vec()], false);
        let Some(gw::result::Result::Ref(r)) = &result.result else {
            panic!("not one ref: {result:?}");
        };
        assert_eq!(r.id, "b-0");
        assert_eq!(result.metadata["containerimage.config"], b"{}");
        assert!(result.metadata.contains_key("refs.platforms"));
    }

    #[test]
    fn a_returned_result_must_be_the_frontends() {
        let ours = refs();
        let part = frontend_result(&ours[..1], &[b"{}".to_vec()], true);
        let err = check_returned(Some(&part), &ours).unwrap_err();
        assert!(err.message().contains("unsupported"), "{err:?}");
        let other = gw::Result {
            result: Some(gw::result::Result::RefDeprecated("elsewhere".into())),
            metadata: HashMap::new(),
        };
        let err = check_returned(Some(&other), &ours).unwrap_err();
        assert_eq!(err.code(), tonic::Code::NotFound);
        assert!(err.message().contains("elsewhere"), "{err:?}");
        assert!(check_returned(None, &ours).is_err());
    }
}
