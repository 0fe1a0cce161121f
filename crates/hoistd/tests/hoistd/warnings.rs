//! Warnings in `Status`, decoded by a tonic client: a Dockerfile's empty continuation line
//! is BuildKit's `NoEmptyContinuation` build check on the `[internal] load build definition
//! from Dockerfile` vertex (level 1, rule URL and description, the Dockerfile as source
//! info, its line as range) in a direct `dockerfile.v0` Solve and in a gateway build; a
//! gateway client's `LLBBridge.Warn` reaches its build's Status as it was sent.

use std::collections::HashMap;

use hoist_proto::control::{SolveRequest, StatusRequest, VertexWarning};
use hoist_proto::gateway::llb_bridge_client::LlbBridgeClient;
use hoist_proto::gateway::{self as gw, ReturnRequest, WarnRequest};
use hoist_proto::pb;
use hoist_proto::tonic::Request;
use hoist_testkit::http::{tar_of, FileServer, Served};

use crate::Daemon;

const BUILD_ID: &str = "buildkit-controlapi-buildid";

/// `COPY` continues over an empty line 3 and ends on line 4.
const DOCKERFILE: &str = "FROM scratch\nCOPY a.txt \\\n\n /\n";

fn for_build<T>(message: T, reference: &str) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert(BUILD_ID, reference.parse().unwrap());
    request
}

/// The context tarball, served.
fn served_context() -> (FileServer, String) {
    let files = FileServer::start().unwrap();
    files.serve(
        "/ctx.tar",
        Served::new(tar_of(&[("Dockerfile", DOCKERFILE), ("a.txt", "alpha\n")])),
    );
    let url = files.url("/ctx.tar");
    (files, url)
}

/// Build `reference`'s Status, read to its end: the vertex names by digest and the
/// warnings.
async fn watch(
    daemon: &Daemon,
    reference: &str,
) -> tokio::task::JoinHandle<(HashMap<String, String>, Vec<VertexWarning>)> {
    let mut control = daemon.control().await;
    let reference = reference.to_owned();
    tokio::spawn(async move {
        let mut stream = control
            .status(StatusRequest { r#ref: reference })
            .await
            .unwrap()
            .into_inner();
        let mut names = HashMap::new();
        let mut warnings = Vec::new();
        while let Some(response) = stream.message().await.unwrap() {
            for vertex in response.vertexes {
                names.insert(vertex.digest, vertex.name);
            }
            warnings.extend(response.warnings);
        }
        (names, warnings)
    })
}

/// The NoEmptyContinuation warning BuildKit sends for [`DOCKERFILE`], checked field by field;
/// its vertex is the one loading the Dockerfile.
fn check_empty_continuation(names: &HashMap<String, String>, warnings: &[VertexWarning]) {
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    let warning = &warnings[0];
    assert_eq!(
        String::from_utf8_lossy(&warning.short),
        "NoEmptyContinuation: Empty continuation line (line 4)"
    );
    assert_eq!(warning.level, 1);
    assert_eq!(
        warning.detail,
        [b"Empty continuation lines will become errors in a future release".to_vec()]
    );
    assert_eq!(
        warning.url,
        "https://docs.docker.com/go/dockerfile/rule/no-empty-continuation/"
    );
    let info = warning
        .info
        .as_ref()
        .expect("the Dockerfile as source info");
    assert_eq!(info.filename, "Dockerfile");
    assert_eq!(info.language, "Dockerfile");
    assert_eq!(info.data, DOCKERFILE.as_bytes());
    let line = |line| Some(pb::Position { line, character: 0 });
    assert_eq!(
        warning.ranges,
        [pb::Range {
            start: line(4),
            end: line(4)
        }]
    );
    assert_eq!(
        names.get(&warning.vertex).map(String::as_str),
        Some("[internal] load build definition from Dockerfile"),
        "{names:?}"
    );
}

#[tokio::test]
async fn a_dockerfile_warning_reaches_the_status_of_a_direct_solve() {
    let (_files, context) = served_context();
    let daemon = Daemon::start();
    let status = watch(&daemon, "warn-direct").await;
    let mut control = daemon.control().await;
    control
        .solve(SolveRequest {
            r#ref: "warn-direct".into(),
            frontend: "dockerfile.v0".into(),
            frontend_attrs: HashMap::from([("context".to_owned(), context)]),
            ..SolveRequest::default()
        })
        .await
        .unwrap();
    let (names, warnings) = status.await.unwrap();
    check_empty_continuation(&names, &warnings);
}

#[tokio::test]
async fn a_gateway_build_has_the_dockerfile_warning_and_the_clients_warn_in_status() {
    let (_files, context) = served_context();
    let daemon = Daemon::start();
    let status = watch(&daemon, "warn-gw").await;
    let mut control = daemon.control().await;
    let solve = tokio::spawn(async move {
        control
            .solve(SolveRequest {
                r#ref: "warn-gw".into(),
                ..SolveRequest::default()
            })
            .await
    });
    let mut bridge = LlbBridgeClient::new(daemon.unix_channel().await);
    // The client's own warning, before its frontend Solve, as BuildKit's Dockerfile frontend
    // warns about the definition it read: every field as it was sent.
    let client_vertex = format!("sha256:{}", "c".repeat(64));
    let sent = WarnRequest {
        digest: client_vertex.clone(),
        level: 2,
        short: b"FromAsCasing: 'as' and 'FROM' keywords' casing do not match (line 1)".to_vec(),
        detail: vec![b"one".to_vec(), b"two".to_vec()],
        url: "https://docs.docker.com/go/dockerfile/rule/from-as-casing/".into(),
        info: Some(pb::SourceInfo {
            filename: "Dockerfile".into(),
            data: b"FROM a as b\n".to_vec(),
            definition: None,
            language: "Dockerfile".into(),
        }),
        ranges: vec![pb::Range {
            start: Some(pb::Position {
                line: 1,
                character: 0,
            }),
            end: Some(pb::Position {
                line: 1,
                character: 11,
            }),
        }],
    };
    bridge
        .warn(for_build(sent.clone(), "warn-gw"))
        .await
        .unwrap();
    let result = bridge
        .solve(for_build(
            gw::SolveRequest {
                frontend: "dockerfile.v0".into(),
                frontend_opt: [("context".to_owned(), context)].into(),
                allow_result_return: true,
                allow_result_array_ref: true,
                ..gw::SolveRequest::default()
            },
            "warn-gw",
        ))
        .await
        .unwrap()
        .into_inner()
        .result
        .unwrap();
    bridge
        .r#return(for_build(
            ReturnRequest {
                result: Some(result),
                error: None,
            },
            "warn-gw",
        ))
        .await
        .unwrap();
    solve.await.unwrap().unwrap();
    let (names, warnings) = status.await.unwrap();
    let (client, ours): (Vec<_>, Vec<_>) = warnings
        .into_iter()
        .partition(|w| w.vertex == client_vertex);
    assert_eq!(
        client,
        [VertexWarning {
            vertex: client_vertex,
            level: sent.level,
            short: sent.short,
            detail: sent.detail,
            url: sent.url,
            info: sent.info,
            ranges: sent.ranges,
        }]
    );
    check_empty_continuation(&names, &ours);
}

#[tokio::test]
async fn warn_for_an_unknown_build_is_not_found() {
    let daemon = Daemon::start_with(&["--session-timeout", "1"]);
    let mut bridge = LlbBridgeClient::new(daemon.unix_channel().await);
    let err = bridge
        .warn(for_build(WarnRequest::default(), "no-such-build"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), hoist_proto::tonic::Code::NotFound, "{err:?}");
    assert!(err.message().contains("no-such-build"), "{err:?}");
}
