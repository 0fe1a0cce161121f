//! `hoist build --addr` through BuildKit's gateway (`HOIST_BUILD_VIA_GATEWAY=1`), the way
//! buildx drives a daemon: `ListWorkers`, then at once `Control.Solve` with an empty
//! frontend (the exporters, session and entitlements; the frontend attributes too, as
//! BuildKit's `client.Build` sends them) and the build function over
//! `moby.buildkit.v1.frontend.LLBBridge`, every call naming the build's ref in the metadata
//! key `buildkit-controlapi-buildid`: `Ping`, `Solve` of `dockerfile.v0` with the frontend
//! options (`allow_result_return`, `allow_result_array_ref`), then `Return` with the
//! result — or with the build function's error, which the daemon's Solve then fails with.
//!
//! No buildx binary runs here; this client follows BuildKit's `client/build.go`,
//! `frontend/gateway/grpcclient/client.go` and buildx's `build/build.go` so that hoistd's
//! gateway is checked by the same sequence of calls.

use std::collections::HashMap;
use std::time::Duration;

use hoist_proto::control::control_client::ControlClient;
use hoist_proto::control::{ListWorkersRequest, SolveRequest};
use hoist_proto::gateway::llb_bridge_client::LlbBridgeClient;
use hoist_proto::gateway::{self as gw, PingRequest, ReturnRequest};
use hoist_proto::tonic::transport::Channel;
use hoist_proto::tonic::{Code, Request, Status};

/// The environment variable choosing the gateway path.
pub const VIA_GATEWAY: &str = "HOIST_BUILD_VIA_GATEWAY";

/// The metadata key naming the build of a bridge call (BuildKit's `client/buildid`).
const BUILD_ID_KEY: &str = "buildkit-controlapi-buildid";

/// Whether builds go through the gateway: `HOIST_BUILD_VIA_GATEWAY` set to `1` or `true`.
pub fn wanted() -> bool {
    std::env::var(VIA_GATEWAY).is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

/// `request` (a `dockerfile.v0` Solve) run through the gateway on `channel`: the exporter
/// response of the daemon's Solve, or its error.
pub async fn solve(
    channel: Channel,
    mut request: SolveRequest,
) -> Result<HashMap<String, String>, Status> {
    let mut control = ControlClient::new(channel.clone());
    control.list_workers(ListWorkersRequest::default()).await?;
    let frontend = std::mem::take(&mut request.frontend);
    let frontend_opt = request.frontend_attrs.clone();
    let reference = request.r#ref.clone();
    let mut solve = tokio::spawn(async move { control.solve(request).await });
    let bridge = LlbBridgeClient::new(channel);
    let function = build_function(bridge, &reference, frontend, frontend_opt).await;
    let joined = match &function {
        Ok(()) => solve.await,
        // The daemon's Solve ends with the error Returned; one that does not end is not
        // waited for long (as BuildKit's client: 5 s).
        Err(_) => match tokio::time::timeout(Duration::from_secs(5), &mut solve).await {
            Ok(joined) => joined,
            Err(_) => {
                solve.abort();
                return function.map(|()| HashMap::new());
            }
        },
    };
    let answer = match joined {
        Ok(answer) => answer.map(|r| r.into_inner().exporter_response),
        Err(_) => Err(Status::cancelled("the Solve was cancelled")),
    };
    // The daemon's error first: it names what failed in the build.
    match (answer, function) {
        (Ok(response), Ok(())) => Ok(response),
        (Err(status), _) | (Ok(_), Err(status)) => Err(status),
    }
}

/// A bridge call's request with the build's ref in its metadata.
fn for_build<T>(message: T, reference: &str) -> Result<Request<T>, Status> {
    let mut request = Request::new(message);
    let value = reference
        .parse()
        .map_err(|_| Status::invalid_argument(format!("invalid build ref {reference:?}")))?;
    request.metadata_mut().insert(BUILD_ID_KEY, value);
    Ok(request)
}

/// buildx's build function: `Ping`, one frontend `Solve`, then `Return` of its result or
/// of its error.
async fn build_function(
    mut bridge: LlbBridgeClient<Channel>,
    reference: &str,
    frontend: String,
    frontend_opt: HashMap<String, String>,
) -> Result<(), Status> {
    let pong = bridge
        .ping(for_build(PingRequest {}, reference)?)
        .await?
        .into_inner();
    let supports = |id: &str| {
        pong.frontend_api_caps
            .iter()
            .any(|c| c.id == id && c.enabled)
    };
    if !supports("return") {
        return Err(Status::failed_precondition(
            "the daemon's gateway does not take returned results (capability \"return\")",
        ));
    }
    let solved = bridge
        .solve(for_build(
            gw::SolveRequest {
                frontend,
                frontend_opt,
                allow_result_return: true,
                allow_result_array_ref: supports("proto.refarray"),
                ..gw::SolveRequest::default()
            },
            reference,
        )?)
        .await;
    let returned = match solved {
        Ok(response) => ReturnRequest {
            result: response.into_inner().result,
            error: None,
        },
        Err(status) => ReturnRequest {
            result: None,
            error: Some(hoist_proto::google::rpc::Status {
                code: i32::from(status.code()),
                message: status.message().to_owned(),
                details: Vec::new(),
            }),
        },
    };
    let failed = returned
        .error
        .as_ref()
        .map(|e| Status::new(Code::from_i32(e.code), e.message.clone()));
    let answer = bridge.r#return(for_build(returned, reference)?).await;
    match failed {
        Some(status) => Err(status),
        None => answer.map(|_| ()),
    }
}
