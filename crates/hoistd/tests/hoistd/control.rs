//! The Control service over the unix socket: workers, info, the build cache's disk usage
//! and prune (on a state dir a real build filled), and the calls not served yet.

use std::sync::Arc;

use hoist_engine::binfmt::{native_platforms, ExecSupport};
use hoist_engine::{build, BuildRequest, StateDir, Worker};
use hoist_export::Output;
use hoist_frontend::BuildOptions;
use hoist_oci::Platform;
use hoist_proto::control::{
    DiskUsageRequest, InfoRequest, ListWorkersRequest, PruneRequest, SolveRequest,
};
use hoist_proto::health::health_check_response::ServingStatus;
use hoist_proto::health::HealthCheckRequest;
use hoist_proto::pb;
use hoist_proto::tonic::Code;
use hoist_registry::{Credentials, RegistryClient, RegistryConfig};

use crate::Daemon;

fn platform_text(p: &pb::Platform) -> String {
    let mut text = format!("{}/{}", p.os, p.architecture);
    if !p.variant.is_empty() {
        text = format!("{text}/{}", p.variant);
    }
    text
}

#[tokio::test]
async fn list_workers_reports_this_machine() {
    let daemon = Daemon::start();
    let mut client = daemon.control().await;
    let workers = client
        .list_workers(ListWorkersRequest::default())
        .await
        .unwrap()
        .into_inner()
        .record;
    assert_eq!(workers.len(), 1, "{workers:?}");
    let worker = &workers[0];
    assert_eq!(worker.id.len(), 25, "{worker:?}");
    let platforms: Vec<String> = worker.platforms.iter().map(platform_text).collect();
    let expected: Vec<String> = ExecSupport::detect()
        .unwrap()
        .platforms()
        .iter()
        .map(Platform::to_string)
        .collect();
    assert_eq!(platforms, expected);
    assert_eq!(platforms[0], native_platforms()[0].to_string());
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let label = |key: &str| worker.labels.get(key).map(String::as_str);
    assert_eq!(
        label("org.mobyproject.buildkit.worker.hostname"),
        Some(hostname.trim())
    );
    assert_eq!(
        label("org.mobyproject.buildkit.worker.executor"),
        Some("builtin")
    );
    assert!(matches!(
        label("org.mobyproject.buildkit.worker.snapshotter"),
        Some("overlayfs" | "native")
    ));
    assert_eq!(worker.buildkit_version.as_ref().unwrap().package, "hoist");

    // containerd-style filters, as buildctl debug workers sends them.
    let native = format!("platforms=={}", platforms[0]);
    let filtered = |filter: String| {
        let mut client = client.clone();
        async move {
            client
                .list_workers(ListWorkersRequest {
                    filter: vec![filter],
                })
                .await
        }
    };
    assert_eq!(filtered(native).await.unwrap().into_inner().record.len(), 1);
    let none = filtered("id==nope".to_owned()).await.unwrap().into_inner();
    assert!(none.record.is_empty());
    let bad = filtered("color==red".to_owned()).await.unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument, "{bad:?}");
    assert!(daemon
        .stderr_with("hoistd: ListWorkers")
        .contains("hoistd: ListWorkers"));
}

#[tokio::test]
async fn config_platforms_replace_the_detected_ones() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hoistd.toml");
    std::fs::write(
        &config,
        "debug = true\n[worker.oci]\nplatforms = [\"linux/arm64\", \"linux/riscv64\"]\n\
         [registry.\"localhost:5000\"]\nhttp = true\n",
    )
    .unwrap();
    let daemon = Daemon::start_with(&["--config", config.to_str().unwrap()]);
    let workers = daemon
        .control()
        .await
        .list_workers(ListWorkersRequest::default())
        .await
        .unwrap()
        .into_inner()
        .record;
    let platforms: Vec<String> = workers[0].platforms.iter().map(platform_text).collect();
    assert_eq!(platforms, ["linux/arm64", "linux/riscv64"]);
}

#[tokio::test]
async fn info_names_hoist_and_its_version() {
    let daemon = Daemon::start();
    let info = daemon
        .control()
        .await
        .info(InfoRequest {})
        .await
        .unwrap()
        .into_inner();
    let version = info.buildkit_version.unwrap();
    assert_eq!(version.package, "hoist");
    assert_eq!(version.version, concat!("v", env!("CARGO_PKG_VERSION")));
}

/// Builds `FROM scratch` + two COPYs into `state` in this process, so the cache has records.
async fn fill_cache(state: StateDir) {
    let dir = tempfile::tempdir().unwrap();
    let context = dir.path().join("ctx");
    std::fs::create_dir_all(&context).unwrap();
    let dockerfile = "FROM scratch\nCOPY a.txt /a.txt\nCOPY b.txt /b.txt\n";
    std::fs::write(context.join("Dockerfile"), dockerfile).unwrap();
    std::fs::write(context.join("a.txt"), "a\n").unwrap();
    std::fs::write(context.join("b.txt"), "b\n").unwrap();
    let out = dir.path().join("out");
    let request = BuildRequest {
        outputs: Output::parse_all(&[format!("type=local,dest={}", out.display())]).unwrap(),
        ..BuildRequest::new(
            Some(dockerfile.as_bytes().to_vec()),
            context.join("Dockerfile").display().to_string(),
            context.into(),
            BuildOptions::new(Platform::host()),
        )
    };
    let client = RegistryClient::new(RegistryConfig::default(), Credentials::default());
    let worker = Arc::new(Worker::open(state, client).unwrap());
    build(worker, request, None).await.unwrap();
    assert_eq!(std::fs::read_to_string(out.join("b.txt")).unwrap(), "b\n");
}

#[tokio::test]
async fn disk_usage_and_prune_follow_the_engine() {
    let daemon = Daemon::start();
    let state = StateDir::new(daemon.state_dir());
    fill_cache(state.clone()).await;
    let engine_rows = hoist_engine::disk_usage(&state).unwrap();
    assert!(engine_rows.len() >= 2, "{engine_rows:?}");

    let mut client = daemon.control().await;
    let records = client
        .disk_usage(DiskUsageRequest::default())
        .await
        .unwrap()
        .into_inner()
        .record;
    let summary = |id: &str, size: i64, kind: &str| format!("{id} {size} {kind}");
    let got: Vec<String> = records
        .iter()
        .map(|r| summary(&r.id, r.size, &r.record_type))
        .collect();
    let want: Vec<String> = engine_rows
        .iter()
        .map(|r| summary(&r.id, r.size as i64, r.kind.as_str()))
        .collect();
    assert_eq!(got, want);
    assert!(records.iter().all(|r| r.created_at.is_some() && !r.in_use));

    // A prefix filter selects one record.
    let first = &records[0].id;
    let one = client
        .disk_usage(DiskUsageRequest {
            filter: vec![format!("id=={}", &first[..12])],
            ..DiskUsageRequest::default()
        })
        .await
        .unwrap()
        .into_inner()
        .record;
    assert_eq!(one.len(), 1);
    assert_eq!(&one[0].id, first);

    // Prune one record by id: the stream carries it, and it is gone from the engine too.
    let mut stream = client
        .prune(PruneRequest {
            filter: vec![format!("id=={first}")],
            all: true,
            ..PruneRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut removed = Vec::new();
    while let Some(record) = stream.message().await.unwrap() {
        removed.push(record.id);
    }
    assert_eq!(removed, vec![first.clone()]);
    let after = hoist_engine::disk_usage(&state).unwrap();
    assert_eq!(after.len(), engine_rows.len() - 1);
    assert!(after.iter().all(|r| &r.id != first));

    // Prune everything.
    let mut stream = client
        .prune(PruneRequest {
            all: true,
            ..PruneRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut count = 0;
    while stream.message().await.unwrap().is_some() {
        count += 1;
    }
    assert_eq!(count, after.len());
    assert!(hoist_engine::disk_usage(&state).unwrap().is_empty());

    let bad = client
        .prune(PruneRequest {
            filter: vec!["until=24h".to_owned()],
            ..PruneRequest::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument, "{bad:?}");
}

#[tokio::test]
async fn solve_without_a_context_url_or_session_is_refused_and_a_session_needs_its_id() {
    let daemon = Daemon::start();
    let mut client = daemon.control().await;
    let solve = client
        .solve(SolveRequest {
            r#ref: "r1".into(),
            frontend: "dockerfile.v0".into(),
            ..SolveRequest::default()
        })
        .await
        .unwrap_err();
    // Without a context URL the context would come through the session.
    assert_eq!(solve.code(), Code::Unimplemented);
    assert!(
        solve.message().contains("needs the client's session"),
        "{solve:?}"
    );
    // A session without BuildKit's metadata cannot be named by a Solve: refused.
    let session = client.session(tokio_stream::empty()).await.unwrap_err();
    assert_eq!(session.code(), Code::InvalidArgument);
    assert!(
        session.message().contains("x-docker-expose-session-uuid"),
        "{session:?}"
    );
}

#[tokio::test]
async fn health_check_serves_the_control_service() {
    let daemon = Daemon::start();
    let mut health = daemon.health().await;
    for service in ["", "moby.buildkit.v1.Control"] {
        let answer = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(answer.status, ServingStatus::Serving as i32, "{service:?}");
    }
    let unknown = health
        .check(HealthCheckRequest {
            service: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
}
