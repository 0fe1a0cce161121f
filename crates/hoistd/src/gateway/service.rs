//! The `LLBBridge` service: each call names its build in the metadata key
//! [`BUILD_ID_KEY`] and is forwarded to that build's [`Link`](super::Link) (`Solve`,
//! `Evaluate`, `Return`, the file calls) or answered here (`Ping`, `ResolveImageConfig`,
//! `Inputs`, `Warn` — the last into the build's `Status`).

use std::collections::HashMap;
use std::sync::Arc;

use hoist_engine::Worker;
use hoist_oci::{Platform, Reference};
use hoist_proto::apicaps::ApiCap;
use hoist_proto::control::{StatusResponse, VertexWarning};
use hoist_proto::gateway::llb_bridge_server::LlbBridge;
use hoist_proto::gateway::{
    self as gw, EvaluateRequest, EvaluateResponse, InputsRequest, InputsResponse, PingRequest,
    PongResponse, ReadDirRequest, ReadDirResponse, ReadFileRequest, ReadFileResponse,
    ResolveImageConfigRequest, ResolveImageConfigResponse, ReturnRequest, ReturnResponse,
    StatFileRequest, StatFileResponse, WarnRequest, WarnResponse,
};
use hoist_registry::Credentials;
use tokio::sync::{mpsc, oneshot};
use tonic::{Request, Response, Status};

use super::files::{FileAnswer, FileRequest};
use super::{log, Call, BUILD_ID_KEY, FRONTEND_CAPS, LLB_CAPS};
use crate::control::ControlService;

/// The `LLBBridge` service: each call forwarded to the build its metadata names.
#[derive(Debug, Clone)]
pub struct GatewayService {
    control: ControlService,
}

impl GatewayService {
    pub fn new(control: ControlService) -> GatewayService {
        GatewayService { control }
    }

    async fn build_of<T>(
        &self,
        request: &Request<T>,
        method: &str,
    ) -> Result<mpsc::Sender<Call>, Status> {
        let reference = build_ref(request, method)?;
        log(&format!("{method} {reference}"));
        self.control
            .gateways()
            .find(&reference, self.control.session_timeout())
            .await
    }
}

impl GatewayService {
    /// A file call forwarded to its build, answered from the ref's filesystem.
    async fn files<T>(
        &self,
        request: &Request<T>,
        method: &str,
        files: FileRequest,
    ) -> Result<FileAnswer, Status> {
        let _call = self.control.calls().begin();
        let build = self.build_of(request, method).await?;
        let (reply, answered) = oneshot::channel();
        forward(
            &build,
            Call::Files {
                request: files,
                reply,
            },
            answered,
        )
        .await
    }
}

/// The build ref a bridge call names in its metadata.
fn build_ref<T>(request: &Request<T>, method: &str) -> Result<String, Status> {
    Ok(request
        .metadata()
        .get(BUILD_ID_KEY)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            Status::invalid_argument(format!(
                "{method}: no build ref in the call's metadata ({BUILD_ID_KEY})"
            ))
        })?
        .to_owned())
}

/// Sends `call` to its build and waits for the answer.
async fn forward<T>(
    build: &mpsc::Sender<Call>,
    call: Call,
    answered: oneshot::Receiver<Result<T, Status>>,
) -> Result<T, Status> {
    let ended = || Status::cancelled("the build has ended");
    build.send(call).await.map_err(|_| ended())?;
    answered.await.map_err(|_| ended())?
}

#[tonic::async_trait]
impl LlbBridge for GatewayService {
    async fn resolve_image_config(
        &self,
        request: Request<ResolveImageConfigRequest>,
    ) -> Result<Response<ResolveImageConfigResponse>, Status> {
        let _call = self.control.calls().begin();
        self.build_of(&request, "ResolveImageConfig").await?;
        let request = request.into_inner();
        let reference = Reference::parse_normalized(&request.r#ref).map_err(|err| {
            Status::invalid_argument(format!(
                "invalid image reference {:?}: {err}",
                request.r#ref
            ))
        })?;
        let platform = match &request.platform {
            Some(p) => Platform::parse(&crate::control::pb_to_string(p))
                .map_err(|err| Status::invalid_argument(format!("invalid platform: {err}")))?,
            None => self.control.host_platform(),
        };
        let worker = self
            .control
            .open_worker(Credentials::from_docker_config())
            .await?;
        let resolved = resolve_config(worker, reference.clone(), platform).await?;
        Ok(Response::new(ResolveImageConfigResponse {
            digest: resolved.0,
            config: resolved.1,
            r#ref: reference.to_string(),
        }))
    }

    async fn solve(
        &self,
        request: Request<gw::SolveRequest>,
    ) -> Result<Response<gw::SolveResponse>, Status> {
        let _call = self.control.calls().begin();
        let build = self.build_of(&request, "Solve").await?;
        let request = request.into_inner();
        let (reply, answered) = oneshot::channel();
        let result = forward(&build, Call::Solve { request, reply }, answered).await?;
        Ok(Response::new(gw::SolveResponse {
            r#ref: String::new(),
            result: Some(result),
        }))
    }

    async fn evaluate(
        &self,
        request: Request<EvaluateRequest>,
    ) -> Result<Response<EvaluateResponse>, Status> {
        let _call = self.control.calls().begin();
        let build = self.build_of(&request, "Evaluate").await?;
        let reference = request.into_inner().r#ref;
        let (reply, answered) = oneshot::channel();
        forward(&build, Call::Evaluate { reference, reply }, answered).await?;
        Ok(Response::new(EvaluateResponse {}))
    }

    async fn ping(&self, request: Request<PingRequest>) -> Result<Response<PongResponse>, Status> {
        let _call = self.control.calls().begin();
        self.build_of(&request, "Ping").await?;
        let cap = |id: &&str, enabled: bool| ApiCap {
            id: (*id).to_owned(),
            enabled,
            disabled_reason: if enabled {
                String::new()
            } else {
                "unsupported".to_owned()
            },
            disabled_reason_msg: if enabled {
                String::new()
            } else {
                "hoistd does not run LLB definitions sent by the client".to_owned()
            },
            ..ApiCap::default()
        };
        Ok(Response::new(PongResponse {
            frontend_api_caps: FRONTEND_CAPS.iter().map(|id| cap(id, true)).collect(),
            llb_caps: LLB_CAPS.iter().map(|id| cap(id, false)).collect(),
            workers: vec![self.control.worker_record()],
        }))
    }

    async fn r#return(
        &self,
        request: Request<ReturnRequest>,
    ) -> Result<Response<ReturnResponse>, Status> {
        let _call = self.control.calls().begin();
        let build = self.build_of(&request, "Return").await?;
        let request = request.into_inner();
        let (reply, answered) = oneshot::channel();
        forward(&build, Call::Return { request, reply }, answered).await?;
        Ok(Response::new(ReturnResponse {}))
    }

    async fn inputs(
        &self,
        request: Request<InputsRequest>,
    ) -> Result<Response<InputsResponse>, Status> {
        let _call = self.control.calls().begin();
        self.build_of(&request, "Inputs").await?;
        // Frontend inputs are refused at the Solve: a build here never has any.
        Ok(Response::new(InputsResponse {
            definitions: HashMap::new(),
        }))
    }

    async fn read_file(
        &self,
        request: Request<ReadFileRequest>,
    ) -> Result<Response<ReadFileResponse>, Status> {
        match self
            .files(
                &request,
                "ReadFile",
                FileRequest::Read(request.get_ref().clone()),
            )
            .await?
        {
            FileAnswer::Read(answer) => Ok(Response::new(answer)),
            _ => Err(Status::internal("ReadFile got another call's answer")),
        }
    }

    async fn read_dir(
        &self,
        request: Request<ReadDirRequest>,
    ) -> Result<Response<ReadDirResponse>, Status> {
        match self
            .files(
                &request,
                "ReadDir",
                FileRequest::Dir(request.get_ref().clone()),
            )
            .await?
        {
            FileAnswer::Dir(answer) => Ok(Response::new(answer)),
            _ => Err(Status::internal("ReadDir got another call's answer")),
        }
    }

    async fn stat_file(
        &self,
        request: Request<StatFileRequest>,
    ) -> Result<Response<StatFileResponse>, Status> {
        match self
            .files(
                &request,
                "StatFile",
                FileRequest::Stat(request.get_ref().clone()),
            )
            .await?
        {
            FileAnswer::Stat(answer) => Ok(Response::new(answer)),
            _ => Err(Status::internal("StatFile got another call's answer")),
        }
    }

    async fn warn(&self, request: Request<WarnRequest>) -> Result<Response<WarnResponse>, Status> {
        let _call = self.control.calls().begin();
        let reference = build_ref(&request, "Warn")?;
        self.build_of(&request, "Warn").await?;
        let request = request.into_inner();
        // As BuildKit's bridge: the warning goes into the build's progress as it came, under
        // the client's vertex digest.
        let warning = VertexWarning {
            vertex: request.digest,
            level: request.level,
            short: request.short,
            detail: request.detail,
            url: request.url,
            info: request.info,
            ranges: request.ranges,
        };
        self.control.builds().push(
            &reference,
            StatusResponse {
                warnings: vec![warning],
                ..StatusResponse::default()
            },
        );
        Ok(Response::new(WarnResponse {}))
    }
}

/// `reference`'s root digest and config bytes for `platform`, through the engine's
/// registry client and content store.
async fn resolve_config(
    worker: Arc<Worker>,
    reference: Reference,
    platform: Platform,
) -> Result<(String, Vec<u8>), Status> {
    let image = worker
        .registry()
        .resolve_image(&reference, &platform, worker.store())
        .await
        .map_err(|err| Status::not_found(format!("cannot resolve {reference}: {err}")))?;
    let config = worker
        .store()
        .read_blob(&image.config.digest)
        .map_err(|err| Status::internal(format!("cannot read the config of {reference}: {err}")))?;
    Ok((image.root.digest.to_string(), config))
}
