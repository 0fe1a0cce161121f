//! The gateway (`moby.buildkit.v1.frontend.LLBBridge`) as buildx drives it, with
//! hoist-proto's tonic clients: `Control.Solve` with an empty frontend waits for the bridge's
//! calls for its ref (gRPC metadata `buildkit-controlapi-buildid`); `Ping` reports the
//! capabilities; LLB definitions, frontend inputs and other frontends are refused as
//! unsupported, and the client's `Return` of that error ends the Solve with it;
//! `ResolveImageConfig` answers a registry image's digest and config; a 2-platform build of
//! a remote context answers refs and image configs by platform, evaluates a ref, pushes
//! only after `Return`, and an evaluated failing step is the bridge Solve's error. Builds
//! with the client's session (local contexts and outputs, a failing RUN) are in
//! hoist-cli's `build_gateway`.

use hoist_proto::control::SolveRequest;
use hoist_proto::gateway::llb_bridge_client::LlbBridgeClient;
use hoist_proto::gateway::{
    self as gw, EvaluateRequest, PingRequest, ResolveImageConfigRequest, ReturnRequest,
};
use hoist_proto::pb;
use hoist_proto::tonic::transport::Channel;
use hoist_proto::tonic::{Code, Request};
use hoist_testkit::http::{tar_of, FileServer, Served};
use hoist_testkit::images::{Arch, BaseImages};
use hoist_testkit::registry::TestRegistry;

use crate::Daemon;

const BUILD_ID: &str = "buildkit-controlapi-buildid";

fn for_build<T>(message: T, reference: &str) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert(BUILD_ID, reference.parse().unwrap());
    request
}

async fn bridge(daemon: &Daemon) -> LlbBridgeClient<Channel> {
    LlbBridgeClient::new(daemon.unix_channel().await)
}

/// The empty-frontend Solve for `reference`, running in the background.
async fn gateway_solve(
    daemon: &Daemon,
    reference: &str,
) -> tokio::task::JoinHandle<Result<(), hoist_proto::tonic::Status>> {
    let mut control = daemon.control().await;
    let request = SolveRequest {
        r#ref: reference.to_owned(),
        ..SolveRequest::default()
    };
    tokio::spawn(async move { control.solve(request).await.map(|_| ()) })
}

#[tokio::test]
async fn llb_definitions_inputs_and_other_frontends_are_refused_and_the_returned_error_ends_the_solve(
) {
    let daemon = Daemon::start_with(&["--session-timeout", "2"]);
    let solve = gateway_solve(&daemon, "gw-refused").await;
    let mut bridge = bridge(&daemon).await;

    let pong = bridge
        .ping(for_build(PingRequest {}, "gw-refused"))
        .await
        .unwrap()
        .into_inner();
    let enabled: Vec<&str> = pong
        .frontend_api_caps
        .iter()
        .filter(|c| c.enabled)
        .map(|c| c.id.as_str())
        .collect();
    for cap in ["solve.base", "return", "proto.refarray", "resolveimage"] {
        assert!(enabled.contains(&cap), "{cap} missing from {enabled:?}");
    }
    assert!(
        !pong.llb_caps.is_empty() && pong.llb_caps.iter().all(|c| !c.enabled),
        "LLB caps are reported, all disabled: {:?}",
        pong.llb_caps
    );
    assert_eq!(pong.workers.len(), 1);

    let definition = pb::Definition {
        def: vec![b"an op".to_vec()],
    };
    let cases = [
        (
            gw::SolveRequest {
                definition: Some(definition.clone()),
                allow_result_return: true,
                ..gw::SolveRequest::default()
            },
            "hoistd does not run LLB definitions sent by the client (unsupported)",
        ),
        (
            gw::SolveRequest {
                frontend: "dockerfile.v0".into(),
                frontend_inputs: [("context".to_owned(), definition)].into(),
                allow_result_return: true,
                ..gw::SolveRequest::default()
            },
            "frontend inputs (LLB definitions) from the client (unsupported)",
        ),
        (
            gw::SolveRequest {
                frontend: "gateway.v0".into(),
                allow_result_return: true,
                ..gw::SolveRequest::default()
            },
            "the frontend \"gateway.v0\" (unsupported)",
        ),
    ];
    let mut last = None;
    for (request, message) in cases {
        let err = bridge
            .solve(for_build(request, "gw-refused"))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unimplemented, "{err:?}");
        assert!(err.message().contains(message), "{err:?}");
        last = Some(err);
    }
    // A call naming no build, or one that never started, is refused saying so.
    let err = bridge.ping(PingRequest {}).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains(BUILD_ID), "{err:?}");
    let err = bridge
        .ping(for_build(PingRequest {}, "gw-never"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    assert!(err.message().contains("gw-never"), "{err:?}");

    // As BuildKit's client: the build function's error is Returned, the Solve fails with it.
    let last = last.unwrap();
    bridge
        .r#return(for_build(
            ReturnRequest {
                result: None,
                error: Some(hoist_proto::google::rpc::Status {
                    code: i32::from(last.code()),
                    message: last.message().to_owned(),
                    details: Vec::new(),
                }),
            },
            "gw-refused",
        ))
        .await
        .unwrap();
    let err = solve.await.unwrap().unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented, "{err:?}");
    assert_eq!(err.message(), last.message());
    // The ref is free again; the daemon still serves.
    let again = gateway_solve(&daemon, "gw-refused").await;
    bridge
        .r#return(for_build(ReturnRequest::default(), "gw-refused"))
        .await
        .unwrap();
    let err = again.await.unwrap().unwrap_err();
    assert!(err.message().contains("unsupported"), "{err:?}");
}

#[tokio::test]
async fn resolve_image_config_answers_the_registry_image() {
    let Some(images) = BaseImages::get() else {
        return;
    };
    let Some(registry) = TestRegistry::start() else {
        return;
    };
    let pushed = images.push(&registry).await.unwrap();
    let daemon = Daemon::start();
    let solve = gateway_solve(&daemon, "gw-resolve").await;
    let mut bridge = bridge(&daemon).await;
    let answer = bridge
        .resolve_image_config(for_build(
            ResolveImageConfigRequest {
                r#ref: pushed.reference("latest"),
                platform: Some(pb::Platform {
                    architecture: "arm64".into(),
                    os: "linux".into(),
                    ..pb::Platform::default()
                }),
                ..ResolveImageConfigRequest::default()
            },
            "gw-resolve",
        ))
        .await
        .unwrap()
        .into_inner();
    // The root the reference names (the index) and the arm64 image's config bytes.
    assert_eq!(answer.digest, pushed.index.digest.to_string());
    let arm64 = images.image(Arch::Arm64).unwrap();
    assert_eq!(answer.config, arm64.config_blob.bytes.to_vec());
    assert_eq!(answer.r#ref, pushed.reference("latest"));
    let err = bridge
        .resolve_image_config(for_build(
            ResolveImageConfigRequest {
                r#ref: format!("{}/busybox:absent", registry.host()),
                ..ResolveImageConfigRequest::default()
            },
            "gw-resolve",
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    assert!(err.message().contains("busybox:absent"), "{err:?}");
    solve.abort();
}

/// A session-less gateway build of a remote context, pushed by the Control.Solve's
/// exporter: `FROM scratch` and a COPY, so no base image is needed.
#[tokio::test]
async fn a_two_platform_gateway_build_answers_refs_by_platform_and_pushes_after_return() {
    let Some(registry) = TestRegistry::start() else {
        return;
    };
    let files = FileServer::start().unwrap();
    files.serve(
        "/ctx.tar",
        Served::new(tar_of(&[
            ("Dockerfile", "FROM scratch\nCOPY a.txt /\n"),
            ("a.txt", "alpha\n"),
        ])),
    );
    files.serve(
        "/bad.tar",
        Served::new(tar_of(&[(
            "Dockerfile",
            "FROM scratch\nCOPY missing.txt /\n",
        )])),
    );
    let daemon = Daemon::start();
    let image = format!("{}/gw/two:v1", registry.host());
    let mut control = daemon.control().await;
    let request = SolveRequest {
        r#ref: "gw-two".into(),
        exporter: "image".into(),
        exporter_attrs: [
            ("name".to_owned(), image.clone()),
            ("push".to_owned(), "true".to_owned()),
        ]
        .into(),
        ..SolveRequest::default()
    };
    let solve = tokio::spawn(async move { control.solve(request).await });
    let mut bridge = bridge(&daemon).await;
    let frontend = |context: &str, evaluate: bool| gw::SolveRequest {
        frontend: "dockerfile.v0".into(),
        frontend_opt: [
            ("context".to_owned(), context.to_owned()),
            ("platform".to_owned(), "linux/amd64,linux/arm64".to_owned()),
        ]
        .into(),
        allow_result_return: true,
        allow_result_array_ref: true,
        evaluate,
        ..gw::SolveRequest::default()
    };
    let result = bridge
        .solve(for_build(frontend(&files.url("/ctx.tar"), false), "gw-two"))
        .await
        .unwrap()
        .into_inner()
        .result
        .unwrap();
    let Some(gw::result::Result::Refs(refs)) = &result.result else {
        panic!("not refs by platform: {result:?}");
    };
    let mut platforms: Vec<&str> = refs.refs.keys().map(String::as_str).collect();
    platforms.sort_unstable();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);
    let config: serde_json::Value =
        serde_json::from_slice(&result.metadata["containerimage.config/linux/arm64"]).unwrap();
    assert_eq!(config["architecture"], "arm64", "{config}");
    let listed: serde_json::Value =
        serde_json::from_slice(&result.metadata["refs.platforms"]).unwrap();
    assert_eq!(listed["Platforms"].as_array().unwrap().len(), 2, "{listed}");
    // Nothing is pushed before the result is returned.
    let (head, _) = crate::solve::registry_get(&registry.host(), "/v2/gw/two/manifests/v1");
    assert!(head.contains(" 404 "), "{head}");
    let arm64 = refs.refs["linux/arm64"].id.clone();
    bridge
        .evaluate(for_build(EvaluateRequest { r#ref: arm64 }, "gw-two"))
        .await
        .unwrap();
    let err = bridge
        .evaluate(for_build(
            EvaluateRequest {
                r#ref: "nope".into(),
            },
            "gw-two",
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    bridge
        .r#return(for_build(
            ReturnRequest {
                result: Some(result.clone()),
                error: None,
            },
            "gw-two",
        ))
        .await
        .unwrap();
    let response = solve.await.unwrap().unwrap().into_inner();
    let digest = &response.exporter_response["containerimage.digest"];
    let (head, body) = crate::solve::registry_get(&registry.host(), "/v2/gw/two/manifests/v1");
    assert!(head.contains(digest.as_str()), "{head}");
    let index: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 2, "{index}");

    // Evaluated at once, a failing step is the bridge Solve's error; the client Returns it
    // and the Control.Solve ends with it.
    let mut control = daemon.control().await;
    let request = SolveRequest {
        r#ref: "gw-bad".into(),
        ..SolveRequest::default()
    };
    let solve = tokio::spawn(async move { control.solve(request).await });
    let err = bridge
        .solve(for_build(frontend(&files.url("/bad.tar"), true), "gw-bad"))
        .await
        .unwrap_err();
    assert!(err.message().contains("missing.txt"), "{err:?}");
    bridge
        .r#return(for_build(
            ReturnRequest {
                result: None,
                error: Some(hoist_proto::google::rpc::Status {
                    code: i32::from(err.code()),
                    message: err.message().to_owned(),
                    details: Vec::new(),
                }),
            },
            "gw-bad",
        ))
        .await
        .unwrap();
    let failed = solve.await.unwrap().unwrap_err();
    assert!(failed.message().contains("missing.txt"), "{failed:?}");
}
