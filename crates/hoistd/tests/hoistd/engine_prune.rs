//! `docker builder prune` → hoistd's Engine API front door (`POST /build/prune`): the
//! unmodified docker CLI (`/usr/bin/docker`, skipped when absent or not root) builds on
//! hoistd, then prunes: `--filter until=24h` keeps the records just used, `-af` removes
//! them all and prints their ids and the space reclaimed (dockerd's answer), after which
//! `DiskUsage` holds no record; a filter hoistd does not take is refused by name.

use std::os::unix::fs::MetadataExt as _;
use std::path::Path;
use std::process::{Command, Output};

use hoist_proto::control::DiskUsageRequest;

use crate::Daemon;

const DOCKER: &str = "/usr/bin/docker";

fn docker(engine: &Path, cwd: &Path, args: &[&str]) -> Output {
    Command::new(DOCKER)
        .args(args)
        .current_dir(cwd)
        .env("DOCKER_BUILDKIT", "1")
        .env("DOCKER_HOST", format!("unix://{}", engine.display()))
        .env("DOCKER_CONFIG", cwd.join("docker-config"))
        .env_remove("DOCKER_CONTEXT")
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

async fn record_ids(daemon: &Daemon) -> Vec<String> {
    let mut control = daemon.control().await;
    let usage = control
        .disk_usage(DiskUsageRequest::default())
        .await
        .unwrap()
        .into_inner();
    usage.record.into_iter().map(|r| r.id).collect()
}

#[tokio::test]
async fn docker_builder_prune_removes_hoistds_cache_and_reports_it() {
    if std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(1)
        != 0
    {
        hoist_testkit::skip("hoistd builds chown files: needs root");
        return;
    }
    if !Path::new(DOCKER).exists() {
        hoist_testkit::skip("docker builder prune needs /usr/bin/docker (Debian's docker.io)");
        return;
    }
    let daemon = Daemon::start_with(&["--engine-addr", "unix://{dir}/run/engine.sock"]);
    let engine = daemon.dir.path().join("run/engine.sock");
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("Dockerfile"), "FROM scratch\nCOPY f /f\n").unwrap();
    std::fs::write(work.path().join("f"), "cached\n").unwrap();
    let built = docker(
        &engine,
        work.path(),
        &["build", "-o", "type=local,dest=out", "."],
    );
    assert!(built.status.success(), "{}", text(&built));
    let before = record_ids(&daemon).await;
    assert!(!before.is_empty(), "the build left no cache record");

    // Records used a moment ago are newer than 24 hours: none goes.
    let kept = docker(
        &engine,
        work.path(),
        &["builder", "prune", "-af", "--filter", "until=24h"],
    );
    assert!(kept.status.success(), "{}", text(&kept));
    assert!(
        text(&kept).contains("Total reclaimed space: 0B"),
        "{}",
        text(&kept)
    );
    assert_eq!(record_ids(&daemon).await, before);

    let pruned = docker(&engine, work.path(), &["builder", "prune", "-af"]);
    let out = text(&pruned);
    assert!(pruned.status.success(), "{out}");
    assert!(out.contains("Deleted build cache objects:"), "{out}");
    for id in &before {
        assert!(
            out.contains(id.as_str()),
            "{id} not reported deleted:\n{out}"
        );
    }
    assert!(!out.contains("Total reclaimed space: 0B"), "{out}");
    assert!(
        record_ids(&daemon).await.is_empty(),
        "records left after prune -af"
    );
    assert!(
        daemon
            .stderr_with("/build/prune")
            .contains("engine api POST /v1.41/build/prune"),
        "{}",
        daemon.stderr()
    );

    let refused = docker(
        &engine,
        work.path(),
        &["builder", "prune", "-f", "--filter", "label=x=y"],
    );
    assert!(!refused.status.success(), "{}", text(&refused));
    assert!(
        text(&refused).contains("unsupported filter \"label\""),
        "{}",
        text(&refused)
    );
}
