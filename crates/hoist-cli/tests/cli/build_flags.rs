//! The rest of buildx's `build` flags: `-q/--quiet` (no progress, the image ID on stdout),
//! multi-platform docker outputs refused before any step runs, `--load` reaching the daemon
//! named by `DOCKER_HOST`, `registry.insecure=true` pushes, and `RUN --device`.
//!
//! Needs root, `docker-registry` and the busybox .debs (see `hoist_testkit::images`).

use std::process::Stdio;

use crate::build_env::{tar_entries, BuildEnv};

/// The config digest of the single image in an OCI layout tar.
fn oci_tar_config_digest(tar: &std::path::Path) -> String {
    let entries = tar_entries(tar);
    let index: serde_json::Value = serde_json::from_slice(&entries["index.json"]).unwrap();
    let manifest_digest = index["manifests"][0]["digest"].as_str().unwrap();
    let manifest_path = format!("blobs/{}", manifest_digest.replace(':', "/"));
    let manifest: serde_json::Value = serde_json::from_slice(&entries[&manifest_path]).unwrap();
    manifest["config"]["digest"].as_str().unwrap().to_owned()
}

#[test]
fn quiet_prints_only_the_image_id() {
    let Some(env) = BuildEnv::new() else { return };
    let ctx = env.fresh_dir("ctx");
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nRUN echo quiet > /q\n",
    )
    .unwrap();
    let out = env.fresh_dir("out").join("image.tar");
    let output = format!("type=oci,dest={}", out.display());
    let ctx_arg = ctx.display().to_string();
    let result = env
        .command(&["build", "-q", "-o", &output, &ctx_arg])
        .env_remove("BUILDKIT_PROGRESS")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(result.status.success(), "{stderr}");
    let stdout = String::from_utf8(result.stdout).unwrap();
    assert_eq!(stdout, format!("{}\n", oci_tar_config_digest(&out)));
    // No progress at all: no step lines, no exporter lines.
    assert!(!stderr.contains("RUN echo quiet"), "{stderr}");
    assert!(!stderr.contains("exporting"), "{stderr}");
    assert!(stderr.trim().is_empty(), "{stderr}");
}

#[test]
fn quiet_with_another_progress_mode_is_refused() {
    let Some(env) = BuildEnv::new() else { return };
    let ctx = env.fresh_dir("ctx");
    std::fs::write(ctx.join("Dockerfile"), "FROM scratch\n").unwrap();
    let ctx_arg = ctx.display().to_string();
    let result = env.hoist(&["build", "--quiet", "--progress=plain", &ctx_arg]);
    assert!(!result.status.success());
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(
        stderr.contains("progress=plain and quiet cannot be used together"),
        "{stderr}"
    );
}

#[test]
fn multi_platform_load_is_refused_before_any_step_runs() {
    let Some(env) = BuildEnv::new() else { return };
    let ctx = env.fresh_dir("ctx");
    std::fs::write(ctx.join("Dockerfile"), "FROM busybox\nRUN touch /ran\n").unwrap();
    let ctx_arg = ctx.display().to_string();
    let load_dest = format!(
        "type=docker,dest={}",
        env.fresh_dir("out").join("x.tar").display()
    );
    for (flags, message) in [
        (
            vec!["--load"],
            "ERROR: docker exporter does not currently support exporting manifest lists",
        ),
        (
            vec!["-o", "type=docker"],
            "ERROR: docker exporter does not currently support exporting manifest lists",
        ),
        (
            vec!["-o", load_dest.as_str()],
            "ERROR: docker exporter does not support exporting manifest lists, \
             use the oci exporter instead",
        ),
    ] {
        let mut args = vec![
            "build",
            "--progress=plain",
            "--platform",
            "linux/amd64,linux/arm64",
            "-t",
            "two:1",
        ];
        args.extend(flags.iter().copied());
        args.push(&ctx_arg);
        let blobs_before = env.blob_count();
        let result = env.hoist(&args);
        let stderr = String::from_utf8_lossy(&result.stderr);
        assert_eq!(result.status.code(), Some(1), "{flags:?}: {stderr}");
        assert!(stderr.contains(message), "{flags:?}: {stderr}");
        // Nothing started: no step at all in the progress, nothing pulled.
        assert!(
            !stderr.lines().any(|l| l.starts_with('#')),
            "{flags:?}: a step ran:\n{stderr}"
        );
        assert_eq!(env.blob_count(), blobs_before, "{flags:?}");
    }
}
