//! hoist → hoistd through BuildKit's gateway (`HOIST_BUILD_VIA_GATEWAY=1`): the client
//! sends `Control.Solve` with an empty frontend and drives the build over `LLBBridge`
//! (`Ping`, `Solve` of `dockerfile.v0`, `Return`) as buildx does. No buildx binary runs
//! here, so hoist's client following buildx's sequence stands in for it. Real `hoistd`
//! processes with a `BuildEnv` registry:
//!
//! - a 2-platform push through the gateway gives the index digest the direct
//!   `dockerfile.v0` Solve gives, and `--metadata-file` names it;
//! - `-o type=local` through the gateway exports the COPYed and RUN-made files;
//! - a failing RUN's error reaches the client (exit 1, the step's message), nothing exported.
//! - against dockerd's BuildKit (0.8, when dockerd runs), the gateway gives the same
//!   `-o type=local` files as the direct Solve: the client's sequence is one a real BuildKit
//!   serves.

use std::process::Output;

use crate::build_env::BuildEnv;
use crate::build_remote::{manifest_digest, Daemon};

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A hoistd on a unix socket using `env`'s registries.
fn daemon(env: &BuildEnv) -> Option<Daemon> {
    let config = env.config().display().to_string();
    Daemon::start(&["--config", config.as_str()])
}

/// `hoist build --addr ADDR ARGS` (progress plain), through the gateway or not.
fn build(env: &BuildEnv, addr: &str, via_gateway: bool, args: &[&str]) -> Output {
    let mut command = env.command(&["build", "--addr", addr, "--progress=plain"]);
    if via_gateway {
        command.env("HOIST_BUILD_VIA_GATEWAY", "1");
    } else {
        command.env_remove("HOIST_BUILD_VIA_GATEWAY");
    }
    command.args(args).output().unwrap()
}

/// The refs hoistd served through the gateway, from its log.
fn gateway_refs(daemon: &Daemon) -> Vec<String> {
    daemon
        .log
        .lock()
        .unwrap()
        .iter()
        .filter_map(|l| l.strip_prefix("hoistd: gateway Return "))
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_two_platform_push_through_the_gateway_gives_the_direct_solves_index() {
    let Some(env) = BuildEnv::new() else { return };
    let Some(daemon) = daemon(&env) else { return };
    let ctx = env.fresh_dir("gateway-two");
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nARG TARGETARCH\nCOPY a.txt /\nENV BUILT_FOR=$TARGETARCH\n",
    )
    .unwrap();
    std::fs::write(ctx.join("a.txt"), "through the gateway\n").unwrap();
    let host = env.registry.host();
    let mut digests = Vec::new();
    for (tag, via_gateway) in [("direct", false), ("gateway", true)] {
        let metadata = env.dir.path().join(format!("{tag}.json"));
        let image = format!("{host}/gateway/two:{tag}");
        let out = build(
            &env,
            &daemon.addr(),
            via_gateway,
            &[
                "--platform",
                "linux/amd64,linux/arm64",
                "--build-arg",
                "SOURCE_DATE_EPOCH=1700000000",
                "--metadata-file",
                &metadata.display().to_string(),
                "-t",
                &image,
                "--push",
                &ctx.display().to_string(),
            ],
        );
        assert!(out.status.success(), "{tag}: {}", text(&out));
        let pushed = manifest_digest(&host, &format!("/v2/gateway/two/manifests/{tag}"))
            .unwrap_or_else(|| panic!("{tag}: nothing pushed"));
        let written: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&metadata).unwrap()).unwrap();
        assert_eq!(written["containerimage.digest"], pushed.as_str(), "{tag}");
        digests.push(pushed);
    }
    assert_eq!(digests[0], digests[1], "the gateway's index differs");
    assert_eq!(
        gateway_refs(&daemon).len(),
        1,
        "one build went through the gateway"
    );
}

#[test]
fn a_local_output_through_the_gateway_has_the_copied_and_run_files() {
    let Some(env) = BuildEnv::new() else { return };
    let Some(daemon) = daemon(&env) else { return };
    let ctx = env.fresh_dir("gateway-local");
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nCOPY a.txt /\nRUN echo made-by-run > /run.txt\n",
    )
    .unwrap();
    std::fs::write(ctx.join("a.txt"), "copied\n").unwrap();
    let out_dir = env.dir.path().join("gateway-out");
    let out = build(
        &env,
        &daemon.addr(),
        true,
        &[
            "-o",
            &format!("type=local,dest={}", out_dir.display()),
            &ctx.display().to_string(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("RUN echo made-by-run"),
        "{}",
        text(&out)
    );
    assert_eq!(
        std::fs::read_to_string(out_dir.join("a.txt")).unwrap(),
        "copied\n"
    );
    assert_eq!(
        std::fs::read_to_string(out_dir.join("run.txt")).unwrap(),
        "made-by-run\n"
    );
    assert!(out_dir.join("bin/busybox").exists());
    assert_eq!(gateway_refs(&daemon).len(), 1);
}

#[test]
fn a_failing_run_through_the_gateway_reaches_the_client() {
    let Some(env) = BuildEnv::new() else { return };
    let Some(daemon) = daemon(&env) else { return };
    let ctx = env.fresh_dir("gateway-fail");
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nRUN echo about-to-fail && exit 7\n",
    )
    .unwrap();
    let out_dir = env.dir.path().join("gateway-fail-out");
    let out = build(
        &env,
        &daemon.addr(),
        true,
        &[
            "-o",
            &format!("type=local,dest={}", out_dir.display()),
            &ctx.display().to_string(),
        ],
    );
    let output = text(&out);
    assert_eq!(out.status.code(), Some(1), "{output}");
    let error = output
        .lines()
        .find(|l| l.starts_with("ERROR: "))
        .unwrap_or_else(|| panic!("no ERROR line: {output}"));
    assert!(error.contains("exit 7"), "{output}");
    assert!(
        output.contains("about-to-fail"),
        "the RUN's output: {output}"
    );
    assert!(!out_dir.join("bin").exists(), "exported after a failure");
    assert_eq!(gateway_refs(&daemon).len(), 1);
}

/// Whether dockerd answers at /var/run/docker.sock (root only); says why not.
fn dockerd_up() -> bool {
    let up = std::path::Path::new("/var/run/docker.sock").exists()
        && std::process::Command::new("/usr/bin/docker")
            .arg("info")
            .output()
            .is_ok_and(|out| out.status.success());
    if !up {
        hoist_testkit::skip(
            "the gateway client against dockerd needs dockerd at /var/run/docker.sock",
        );
    }
    up
}

/// The client's sequence is also checked against a real BuildKit: dockerd 20.10's (0.8)
/// gateway builds the same `-o type=local` files through it as through the direct Solve.
#[test]
fn hoists_gateway_client_builds_on_dockerds_buildkit_as_the_direct_solve_does() {
    let Some(env) = BuildEnv::new() else { return };
    if !dockerd_up() {
        return;
    }
    let ctx = env.fresh_dir("gateway-dockerd");
    std::fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM {}/busybox\nCOPY a.txt /\nRUN echo made-by-run > /run.txt\n",
            env.registry.host()
        ),
    )
    .unwrap();
    std::fs::write(ctx.join("a.txt"), "copied\n").unwrap();
    let mut trees = Vec::new();
    for via_gateway in [false, true] {
        let dest = env.dir.path().join(format!("dockerd-out-{via_gateway}"));
        let mut command = env.command(&[
            "build",
            "--addr",
            "docker-daemon:///var/run/docker.sock",
            "--progress=plain",
            "--network=host",
        ]);
        command.env_remove("DOCKER_HOST");
        if via_gateway {
            command.env("HOIST_BUILD_VIA_GATEWAY", "1");
        } else {
            command.env_remove("HOIST_BUILD_VIA_GATEWAY");
        }
        let out = command
            .args(["-o", &format!("type=local,dest={}", dest.display())])
            .arg(&ctx)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "gateway {via_gateway}: {}",
            text(&out)
        );
        assert_eq!(
            std::fs::read_to_string(dest.join("run.txt")).unwrap(),
            "made-by-run\n"
        );
        trees.push(hoist_testkit::trees::dir_tree(&dest));
    }
    assert_eq!(
        trees[0], trees[1],
        "the gateway's files differ from the direct Solve's"
    );
}
