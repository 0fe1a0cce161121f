//! `--cache-to` / `--cache-from` end to end (issue 13): a cache exported with `mode=max`
//! from one state dir makes every step CACHED in an empty one — no RUN runs (each writes
//! the time, and the image is byte for byte the first one) — through a registry and
//! through a local directory; one three-platform build's cache serves all three platforms; a
//! cache that is missing, or a destination that cannot be reached, is a warning (and fails
//! the build with `ignore-error=false`); an inline cache in a pushed image does the same;
//! dockerd's BuildKit imports hoist's inline and registry caches without an error, and
//! hoist reads the records of an image dockerd pushed with `BUILDKIT_INLINE_CACHE=1`.
//! Cache mounts travel with `mounts=`: filled in one state dir, the same files are in a RUN
//! of an empty one importing the cache (local and registry), only the ids asked for, none
//! without `mounts=`, and never over a local mount with files.
//!
//! Needs root, `docker-registry` and the busybox .debs (see `hoist_testkit::images`);
//! the three-platform case also binfmt_misc handlers for linux/arm64 and linux/arm/v7; the
//! dockerd case a running dockerd (skipped with a message otherwise).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use hoist_engine::binfmt::{ExecSupport, Execution};
use hoist_oci::Platform;

use crate::build_env::{tar_entries, BuildEnv};
use crate::fault_proxy::{Answer, Fault, FaultProxy};

const EPOCH: &str = "SOURCE_DATE_EPOCH=1700000000";

/// Two stages, each RUN writing the time to the nanosecond: a RUN that ran again shows in
/// the image.
const DOCKERFILE: &str = "FROM busybox AS builder\n\
    RUN date +%s%N > /built-at && echo builder-ran-$((1+1))\n\
    FROM busybox\n\
    COPY --from=builder /built-at /built-at\n\
    RUN date +%s%N > /stamp && echo final-ran-$((1+1))\n";

/// `hoist --root ROOT --config … build --progress=plain ARGS CTX`.
fn build_command(env: &BuildEnv, root: &Path, ctx: &Path, args: &[&str]) -> Command {
    build_command_with(env, &env.config(), root, ctx, args)
}

/// [`build_command`] with another `--config` file.
fn build_command_with(
    env: &BuildEnv,
    config: &Path,
    root: &Path,
    ctx: &Path,
    args: &[&str],
) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hoist"));
    command
        .arg("--root")
        .arg(root)
        .arg("--config")
        .arg(config)
        .arg("build")
        .args((!args.iter().any(|a| a.starts_with("--progress"))).then_some("--progress=plain"))
        .args(["--build-arg", EPOCH])
        .args(args)
        .arg(ctx)
        .env("DOCKER_CONFIG", env.dir.path().join("docker"))
        .env_remove("HOIST_ROOT")
        .env_remove("HOIST_CONFIG");
    command
}

fn succeeded(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "hoist build failed:\n{stderr}");
    stderr
}

fn context(env: &BuildEnv) -> PathBuf {
    let ctx = env.fresh_dir("ctx");
    std::fs::write(ctx.join("Dockerfile"), DOCKERFILE).unwrap();
    ctx
}

/// Builds into the state dir `root` as an OCI archive with `args`: the root document's
/// digest (the image's identity) and the progress text.
fn build_oci(env: &BuildEnv, root: &Path, ctx: &Path, args: &[&str]) -> (String, String) {
    let tar = env.fresh_dir("out").join("image.tar");
    let output = format!("type=oci,dest={}", tar.display());
    let mut all = vec!["-o", &output];
    all.extend_from_slice(args);
    let stderr = succeeded(&build_command(env, root, ctx, &all).output().unwrap());
    let entries = tar_entries(&tar);
    let index: serde_json::Value = serde_json::from_slice(&entries["index.json"]).unwrap();
    let digest = index["manifests"][0]["digest"].as_str().unwrap().to_owned();
    (digest, stderr)
}

/// Whether a RUN's output shows (its command, which names it, does not expand `$((1+1))`).
fn ran(progress: &str) -> bool {
    progress.lines().any(|l| l.ends_with("-ran-2"))
}

/// Asserts that no RUN ran and every step of the Dockerfile was CACHED.
fn all_cached(progress: &str, steps: usize) {
    assert!(!ran(progress), "a RUN ran:\n{progress}");
    let cached = progress.lines().filter(|l| l.ends_with(" CACHED")).count();
    assert!(
        cached >= steps,
        "{cached} steps CACHED, not {steps}:\n{progress}"
    );
    for step in [
        "FROM",
        "RUN date +%s%N > /built-at",
        "COPY --from=builder",
        "RUN date +%s%N > /stamp",
    ] {
        let id = progress
            .lines()
            .find(|l| l.contains(step) && l.starts_with('#'))
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or_else(|| panic!("no step {step:?}:\n{progress}"));
        assert!(
            progress.lines().any(|l| l == format!("{id} CACHED")),
            "{step} not CACHED:\n{progress}"
        );
    }
}

#[test]
fn a_registry_max_cache_rebuilds_the_same_image_in_an_empty_state_dir() {
    let Some(env) = BuildEnv::new() else { return };
    let ctx = context(&env);
    let cache = format!("{}/app/cache:main", env.registry.host());
    let to = format!("type=registry,ref={cache},mode=max");
    let (first, progress) = build_oci(&env, &env.fresh_dir("state"), &ctx, &["--cache-to", &to]);
    assert!(ran(&progress), "{progress}");
    assert!(
        progress.contains("exporting cache to registry"),
        "{progress}"
    );

    let (second, progress) = build_oci(
        &env,
        &env.fresh_dir("state"),
        &ctx,
        &["--cache-from", &cache],
    );
    all_cached(&progress, 4);
    assert_eq!(
        first, second,
        "the image from the cache differs:\n{progress}"
    );
}

#[test]
fn a_local_max_cache_rebuilds_the_same_image_in_an_empty_state_dir() {
    let Some(env) = BuildEnv::new() else { return };
    let ctx = context(&env);
    let dir = env.fresh_dir("cache");
    let to = format!("type=local,dest={},mode=max", dir.display());
    let (first, _) = build_oci(&env, &env.fresh_dir("state"), &ctx, &["--cache-to", &to]);
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    assert_eq!(
        index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"],
        "latest"
    );

    let from = format!("type=local,src={}", dir.display());
    let (second, progress) = build_oci(
        &env,
        &env.fresh_dir("state"),
        &ctx,
        &["--cache-from", &from],
    );
    all_cached(&progress, 4);
    assert_eq!(
        first, second,
        "the image from the cache differs:\n{progress}"
    );
}

#[test]
fn one_three_platform_cache_serves_all_three_platforms() {
    let Some(env) = BuildEnv::new() else { return };
    for platform in ["linux/arm64", "linux/arm/v7"] {
        let platform = Platform::parse(platform).unwrap();
        match ExecSupport::detect() {
            Ok(support) if support.check(&platform) != Execution::Unavailable => {}
            _ => {
                hoist_testkit::skip(&format!(
                    "no binfmt_misc handler runs {platform} binaries \
                     (hoist binfmt --install arm64,arm, from Debian's qemu-user-static)"
                ));
                return;
            }
        }
    }
    let ctx = context(&env);
    let cache = format!("{}/app/cache:multi", env.registry.host());
    let to = format!("type=registry,ref={cache},mode=max");
    let platforms = ["--platform", "linux/amd64,linux/arm64,linux/arm/v7"];
    let mut args = vec!["--cache-to", &to];
    args.extend_from_slice(&platforms);
    let (first, progress) = build_oci(&env, &env.fresh_dir("state"), &ctx, &args);
    // Each platform's two RUNs ran.
    let runs = progress.lines().filter(|l| l.ends_with("-ran-2")).count();
    assert_eq!(runs, 6, "{progress}");

    let mut args = vec!["--cache-from", &cache];
    args.extend_from_slice(&platforms);
    let (second, progress) = build_oci(&env, &env.fresh_dir("state"), &ctx, &args);
    // Every platform's FROM, two RUNs and COPY.
    all_cached(&progress, 12);
    for platform in ["linux/amd64", "linux/arm64", "linux/arm/v7"] {
        for step in ["RUN date +%s%N > /built-at", "RUN date +%s%N > /stamp"] {
            let id = progress
                .lines()
                .find(|l| l.starts_with('#') && l.contains(platform) && l.contains(step))
                .and_then(|l| l.split_whitespace().next())
                .unwrap_or_else(|| panic!("no {platform} step {step:?}:\n{progress}"));
            assert!(
                progress.lines().any(|l| l == format!("{id} CACHED")),
                "{platform} {step} not CACHED:\n{progress}"
            );
        }
    }
    assert_eq!(
        first, second,
        "the index from the cache differs:\n{progress}"
    );
}

#[test]
fn a_missing_cache_or_unreachable_destination_is_a_warning() {
    let Some(env) = BuildEnv::new() else { return };
    let ctx = context(&env);
    let missing = format!("{}/app/cache:does-not-exist", env.registry.host());
    let (_, progress) = build_oci(
        &env,
        &env.fresh_dir("state"),
        &ctx,
        &["--cache-from", &missing],
    );
    assert!(
        progress.contains("WARNING: cache import from") && progress.contains("does-not-exist"),
        "{progress}"
    );
    assert!(ran(&progress), "{progress}");

    // A destination that is a file, not a directory.
    let blocked = ctx.join("Dockerfile");
    let to = format!("type=local,dest={}", blocked.display());
    let (_, progress) = build_oci(&env, &env.fresh_dir("state"), &ctx, &["--cache-to", &to]);
    assert!(progress.contains("WARNING: cache export to"), "{progress}");

    let strict = format!("{to},ignore-error=false");
    let out = build_command(
        &env,
        &env.fresh_dir("state"),
        &ctx,
        &["--cache-to", &strict],
    )
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "ignore-error=false must fail:\n{stderr}"
    );
    assert!(
        stderr.contains("ERROR:") && stderr.contains("Dockerfile"),
        "{stderr}"
    );
}

/// The environment's `--config` plus `host` (a [`FaultProxy`]) over plain HTTP.
fn proxied_config(env: &BuildEnv, host: &str) -> PathBuf {
    let mut config = std::fs::read_to_string(env.config()).unwrap();
    config.push_str(&format!("\n[registry.\"{host}\"]\nhttp = true\n"));
    let path = env.fresh_dir("config").join("registries.toml");
    std::fs::write(&path, config).unwrap();
    path
}

/// The HTTP status and body of `GET /v2/REPO/manifests/TAG` on the registry at `host`.
fn get_manifest(host: &str, repo: &str, tag: &str) -> (u16, String) {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    write!(
        stream,
        "GET /v2/{repo}/manifests/{tag} HTTP/1.1\r\nHost: {host}\r\n\
         Accept: application/vnd.oci.image.index.v1+json, \
         application/vnd.oci.image.manifest.v1+json\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer: {answer:?}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn manifest_status(host: &str, repo: &str, tag: &str) -> u16 {
    get_manifest(host, repo, tag).0
}

/// Asserts that the step `exporting cache to registry` logged, for every blob the cache
/// index at `host/REPO:TAG` lists, one line `DIGEST SIZE DONE` (plain progress), with
/// the size in go-units' decimal units matching the blob's (the cache config, dated, may
/// be `uploaded` again).
fn blob_lines(progress: &str, host: &str, repo: &str, tag: &str, done: &str) {
    let (status, body) = get_manifest(host, repo, tag);
    assert_eq!(status, 200, "{body}");
    let index: serde_json::Value = serde_json::from_str(&body).unwrap();
    let id = progress
        .lines()
        .find(|l| l.starts_with('#') && l.ends_with(" exporting cache to registry"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no cache export step:\n{progress}"));
    let blobs = index["manifests"].as_array().unwrap();
    assert!(blobs.len() >= 4, "{body}");
    for blob in blobs {
        let digest = blob["digest"].as_str().unwrap();
        let size = blob["size"].as_u64().unwrap();
        let line = progress
            .lines()
            .find(|l| l.starts_with(&format!("{id} ")) && l.contains(digest))
            .unwrap_or_else(|| panic!("no progress line for {digest}:\n{progress}"));
        let words: Vec<&str> = line.split_whitespace().collect();
        // `#N SECONDS DIGEST SIZE DONE…`
        assert_eq!(words[2], digest, "{line}");
        // The cache config carries the export's time: new unless within the same second.
        let config = blob["mediaType"] == "application/vnd.buildkit.cacheconfig.v0";
        let said = words[4..].join(" ");
        assert!(
            said == done || (config && said == "uploaded"),
            "{line}: not {done}"
        );
        let split = words[3].find(|c: char| c.is_ascii_alphabetic()).unwrap();
        let (number, unit) = words[3].split_at(split);
        let scale = match unit {
            "B" => 1.0,
            "kB" => 1e3,
            "MB" => 1e6,
            "GB" => 1e9,
            other => panic!("unit {other} in {line}"),
        };
        #[allow(clippy::cast_precision_loss)]
        let exact = size as f64;
        let shown = number.parse::<f64>().unwrap() * scale;
        assert!(
            (shown - exact).abs() <= exact * 0.001 + 0.5,
            "{line}: {size} bytes"
        );
    }
}

/// The lines every vertex named `name` logged in `--progress=rawjson` output.
fn rawjson_logs(stderr: &str, name: &str) -> Vec<String> {
    use base64::Engine as _;
    let mut digests = Vec::new();
    let mut lines = Vec::new();
    for line in stderr.lines().filter(|l| l.starts_with('{')) {
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        for vertex in value["vertexes"].as_array().into_iter().flatten() {
            if vertex["name"] == name {
                digests.push(vertex["digest"].clone());
            }
        }
        for log in value["logs"].as_array().into_iter().flatten() {
            if digests.contains(&log["vertex"]) {
                let data = base64::engine::general_purpose::STANDARD
                    .decode(log["data"].as_str().unwrap())
                    .unwrap();
                lines.push(String::from_utf8(data).unwrap().trim_end().to_owned());
            }
        }
    }
    lines
}

#[test]
fn cache_export_progress_shows_each_blob_with_its_size() {
    let Some(env) = BuildEnv::new() else { return };
    let ctx = context(&env);
    let host = env.registry.host();
    let to = format!("type=registry,ref={host}/app/cache:bytes,mode=max");
    let state = env.fresh_dir("state");
    let (_, progress) = build_oci(&env, &state, &ctx, &["--cache-to", &to]);
    blob_lines(&progress, &host, "app/cache", "bytes", "uploaded");
    // Again from the same state dir: nothing is sent twice, each blob says so.
    let (_, progress) = build_oci(&env, &state, &ctx, &["--cache-to", &to]);
    blob_lines(&progress, &host, "app/cache", "bytes", "already there");

    // rawjson: the same lines as the export vertex's logs.
    let out = build_command(
        &env,
        &state,
        &ctx,
        &["--progress=rawjson", "--cache-to", &to],
    )
    .output()
    .unwrap();
    let stderr = succeeded(&out);
    let logs = rawjson_logs(&stderr, "exporting cache to registry");
    let (_, body) = get_manifest(&host, "app/cache", "bytes");
    let index: serde_json::Value = serde_json::from_str(&body).unwrap();
    for blob in index["manifests"].as_array().unwrap() {
        let digest = blob["digest"].as_str().unwrap();
        let config = blob["mediaType"] == "application/vnd.buildkit.cacheconfig.v0";
        assert!(
            logs.iter().any(|l| l.starts_with(&format!("{digest} "))
                && (l.ends_with(" already there") || (config && l.ends_with(" uploaded")))),
            "no rawjson log for {digest}: {logs:?}"
        );
    }
}

#[test]
fn a_registry_failing_mid_export_is_a_warning_and_leaves_nothing_corrupt() {
    let Some(env) = BuildEnv::new() else { return };
    let ctx = context(&env);
    let upstream = env.registry.host();
    let state = env.fresh_dir("state");

    // Every blob is uploaded, then the cache manifest's PUT is answered with 500s.
    let proxy = FaultProxy::start(
        &upstream,
        vec![Fault {
            method: "PUT",
            path: "/manifests/",
            answer: Answer::ServerError,
        }],
    );
    let config = proxied_config(&env, &proxy.host());
    let to = format!(
        "type=registry,ref={}/app/cache:flaky,mode=max",
        proxy.host()
    );
    let out = build_command_with(&env, &config, &state, &ctx, &["--cache-to", &to])
        .output()
        .unwrap();
    let progress = succeeded(&out);
    assert!(ran(&progress), "{progress}");
    assert!(
        progress.contains("WARNING: cache export to") && progress.contains("app/cache:flaky"),
        "{progress}"
    );
    assert!(
        proxy.faults() > 0,
        "the manifest PUT never came: {:?}",
        proxy.requests()
    );

    // Blob uploads cut off (the connection dropped on every PATCH and PUT of an upload),
    // with ignore-error=false: the build fails, naming the cache.
    let proxy = FaultProxy::start(
        &upstream,
        vec![
            Fault {
                method: "PATCH",
                path: "/blobs/uploads/",
                answer: Answer::Drop,
            },
            Fault {
                method: "PUT",
                path: "/blobs/uploads/",
                answer: Answer::Drop,
            },
        ],
    );
    let config = proxied_config(&env, &proxy.host());
    let to = format!(
        "type=registry,ref={}/app/cache:dropped,mode=max,ignore-error=false",
        proxy.host()
    );
    let out = build_command_with(&env, &config, &state, &ctx, &["--cache-to", &to])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "ignore-error=false must fail:\n{stderr}"
    );
    assert!(
        stderr.contains("ERROR:") && stderr.contains("app/cache:dropped"),
        "{stderr}"
    );
    assert!(
        proxy.faults() > 0,
        "no blob upload came: {:?}",
        proxy.requests()
    );

    // Nothing is stored under either tag.
    assert_eq!(manifest_status(&upstream, "app/cache", "flaky"), 404);
    assert_eq!(manifest_status(&upstream, "app/cache", "dropped"), 404);

    // The same state dir then exports to the healthy registry, completely: an empty state
    // dir importing it runs nothing and makes the same image.
    let cache = format!("{upstream}/app/cache:healthy");
    let to = format!("type=registry,ref={cache},mode=max");
    let (first, progress) = build_oci(&env, &state, &ctx, &["--cache-to", &to]);
    assert!(!progress.contains("WARNING: cache export"), "{progress}");
    let (second, progress) = build_oci(
        &env,
        &env.fresh_dir("state"),
        &ctx,
        &["--cache-from", &cache],
    );
    all_cached(&progress, 4);
    assert_eq!(
        first, second,
        "the image from the cache differs:\n{progress}"
    );
}

/// Builds into the state dir `root` and pushes the image as `name`, with `args`: the
/// pushed manifest's digest and the progress text.
fn build_push(
    env: &BuildEnv,
    root: &Path,
    ctx: &Path,
    name: &str,
    args: &[&str],
) -> (String, String) {
    let metadata = env.fresh_dir("meta").join("metadata.json");
    let metadata_arg = metadata.to_str().unwrap().to_owned();
    let mut all = vec!["--push", "-t", name, "--metadata-file", &metadata_arg];
    all.extend_from_slice(args);
    let stderr = succeeded(&build_command(env, root, ctx, &all).output().unwrap());
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&metadata).unwrap()).unwrap();
    let digest = meta["containerimage.digest"].as_str().unwrap().to_owned();
    (digest, stderr)
}

#[test]
fn an_inline_cache_in_the_pushed_image_rebuilds_it_in_an_empty_state_dir() {
    let Some(env) = BuildEnv::new() else { return };
    let ctx = context(&env);
    let image = format!("{}/app/inline:1", env.registry.host());
    let (first, progress) = build_push(
        &env,
        &env.fresh_dir("state"),
        &ctx,
        &image,
        &["--cache-to", "type=inline"],
    );
    assert!(ran(&progress), "{progress}");

    let again = format!("{}/app/inline:2", env.registry.host());
    let (second, progress) = build_push(
        &env,
        &env.fresh_dir("state"),
        &ctx,
        &again,
        &["--cache-from", &image, "--cache-to", "type=inline"],
    );
    assert!(!progress.contains("WARNING"), "{progress}");
    all_cached(&progress, 4);
    assert_eq!(
        first, second,
        "the image from the inline cache differs:\n{progress}"
    );

    // The build argument asks for the same; without either, no inline cache: another
    // image (the config lacks the key).
    let by_arg = format!("{}/app/inline:3", env.registry.host());
    let (third, _) = build_push(
        &env,
        &env.fresh_dir("state"),
        &ctx,
        &by_arg,
        &[
            "--cache-from",
            &image,
            "--build-arg",
            "BUILDKIT_INLINE_CACHE=1",
        ],
    );
    assert_eq!(first, third);
    let plain = format!("{}/app/inline:4", env.registry.host());
    let (fourth, progress) = build_push(
        &env,
        &env.fresh_dir("state"),
        &ctx,
        &plain,
        &["--cache-from", &image],
    );
    all_cached(&progress, 4);
    assert_ne!(first, fourth, "no inline cache asked, none written");
}

const DOCKER: &str = "/usr/bin/docker";

/// Whether dockerd answers; says why not when it does not.
fn docker_up() -> bool {
    let up = Command::new(DOCKER)
        .arg("info")
        .output()
        .is_ok_and(|out| out.status.success());
    if !up {
        hoist_testkit::skip("the dockerd cases need dockerd running (`docker info` fails)");
    }
    up
}

/// `DOCKER_BUILDKIT=1 docker build --progress=plain ARGS CTX`, which must succeed: its
/// progress text.
fn docker_build(ctx: &Path, args: &[&str]) -> String {
    let out = Command::new(DOCKER)
        .args(["build", "--progress=plain", "--network=host"])
        .args(args)
        .arg(ctx)
        .env("DOCKER_BUILDKIT", "1")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "docker build failed:\n{text}");
    text
}

/// A cache import dockerd's BuildKit did not complain about: the import step ran and
/// nothing says it failed.
fn docker_imported(progress: &str, cache: &str) {
    assert!(
        progress.contains(&format!("importing cache manifest from {cache}")),
        "no cache import:\n{progress}"
    );
    let lower = progress.to_lowercase();
    for bad in ["error", "failed to", "warning"] {
        assert!(!lower.contains(bad), "{bad:?} in:\n{progress}");
    }
}

#[test]
fn dockerds_buildkit_and_hoist_accept_each_others_caches() {
    let Some(env) = BuildEnv::new() else { return };
    if !docker_up() {
        return;
    }
    let host = env.registry.host();
    let ctx = env.fresh_dir("ctx");
    // Both tools pull the base from the test registry (dockerd takes 127.0.0.0/8 as
    // insecure).
    std::fs::write(
        ctx.join("Dockerfile"),
        DOCKERFILE.replace("FROM busybox", &format!("FROM {host}/busybox")),
    )
    .unwrap();
    let tag = format!("hoist-cache-test-{}", crate::build_env::unique());

    // (a) hoist's inline cache, given to dockerd.
    let inline = format!("{host}/app/inline-for-docker:1");
    build_push(
        &env,
        &env.fresh_dir("state"),
        &ctx,
        &inline,
        &["--cache-to", "type=inline"],
    );
    let progress = docker_build(&ctx, &["--cache-from", &inline, "-t", &tag]);
    docker_imported(&progress, &inline);

    // (c) hoist's registry cache, given to dockerd.
    let cache = format!("{host}/app/cache-for-docker:1");
    let to = format!("type=registry,ref={cache},mode=max");
    build_oci(&env, &env.fresh_dir("state"), &ctx, &["--cache-to", &to]);
    let progress = docker_build(&ctx, &["--cache-from", &cache, "-t", &tag]);
    docker_imported(&progress, &cache);

    // (d) a registry cache carrying cache mounts (`hoist.cacheMounts`, an extra blob),
    // given to dockerd.
    let mounts_ctx = env.fresh_dir("ctx");
    std::fs::write(
        mounts_ctx.join("Dockerfile"),
        FILL_MOUNTS.replace("FROM busybox", &format!("FROM {host}/busybox")),
    )
    .unwrap();
    let cache = format!("{host}/app/mounts-for-docker:1");
    let to = format!("type=registry,ref={cache},mode=max,mounts=true");
    let (_, progress) = build_oci(
        &env,
        &env.fresh_dir("state"),
        &mounts_ctx,
        &["--cache-to", &to],
    );
    assert!(progress.contains("cache mount \"other\""), "{progress}");
    let progress = docker_build(&mounts_ctx, &["--cache-from", &cache, "-t", &tag]);
    docker_imported(&progress, &cache);

    // (b) dockerd's inline cache, given to hoist.
    let pushed = format!("{host}/app/docker-inline:1");
    docker_build(
        &ctx,
        &[
            "--build-arg",
            "BUILDKIT_INLINE_CACHE=1",
            "--no-cache",
            "-t",
            &pushed,
        ],
    );
    let out = Command::new(DOCKER)
        .args(["push", &pushed])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "docker push failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, progress) = build_oci(
        &env,
        &env.fresh_dir("state"),
        &ctx,
        &["--cache-from", &pushed],
    );
    assert!(!progress.contains("WARNING"), "{progress}");
    let records = progress
        .lines()
        .find(|l| l.ends_with(" cache records"))
        .unwrap_or_else(|| panic!("no import summary:\n{progress}"));
    assert!(
        !records.ends_with(" 0 cache records"),
        "dockerd's records not read: {records}\n{progress}"
    );

    for image in [&tag, &pushed] {
        let _ = Command::new(DOCKER).args(["rmi", "-f", image]).output();
    }
}

/// Fills two cache mounts: one keyed by its target, one by `id=other`.
const FILL_MOUNTS: &str = "FROM busybox\n\
    RUN --mount=type=cache,target=/var/cache/app --mount=type=cache,id=other,target=/other \
    mkdir -p /var/cache/app/d && echo apps > /var/cache/app/d/f && \
    ln -sf d/f /var/cache/app/link && echo others > /other/f\n";

/// Reads both mounts; `N` makes each use a step of its own.
fn read_mounts(n: u32) -> String {
    format!(
        "FROM busybox\n\
         RUN --mount=type=cache,target=/var/cache/app --mount=type=cache,id=other,target=/other \
         echo \"seen-$(cat /var/cache/app/d/f 2>/dev/null)-$(cat /other/f 2>/dev/null)-$(({n}+1))\"\n"
    )
}

/// A state dir's cache mount with id `id`: its directory (hoist's keying: the id's sha256).
fn mount_dir(root: &Path, id: &str) -> PathBuf {
    use sha2::Digest as _;
    let name = hex::encode(sha2::Sha256::digest(id.as_bytes()));
    root.join("engine/cache-mounts").join(name)
}

/// Every entry under `dir`: its relative path and its contents (a file's bytes, a link's
/// target, nothing for a directory) with its mode.
fn tree(dir: &Path) -> std::collections::BTreeMap<PathBuf, (Vec<u8>, u32)> {
    use std::os::unix::fs::PermissionsExt as _;
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(at) = stack.pop() {
        for entry in std::fs::read_dir(&at).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let content = if meta.is_symlink() {
                std::fs::read_link(&path)
                    .unwrap()
                    .into_os_string()
                    .into_encoded_bytes()
            } else if meta.is_dir() {
                stack.push(path.clone());
                Vec::new()
            } else {
                std::fs::read(&path).unwrap()
            };
            let rel = path.strip_prefix(dir).unwrap().to_path_buf();
            out.insert(rel, (content, meta.permissions().mode()));
        }
    }
    out
}

/// The cache config of the local cache `dir` (its `latest` image manifest's config).
fn local_cache_config(dir: &Path) -> serde_json::Value {
    let read = |digest: &str| {
        let path = dir
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"));
        serde_json::from_slice::<serde_json::Value>(&std::fs::read(path).unwrap()).unwrap()
    };
    let index = read_json(&dir.join("index.json"));
    let manifest = read(index["manifests"][0]["digest"].as_str().unwrap());
    let config = read(manifest["config"]["digest"].as_str().unwrap());
    let listed: Vec<&str> = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap())
        .collect();
    for mount in config["hoist.cacheMounts"].as_array().into_iter().flatten() {
        let blob = mount["blob"].as_str().unwrap();
        assert!(
            listed.contains(&blob),
            "mount blob {blob} not in the manifest"
        );
    }
    config
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn cache_mounts_travel_with_a_local_cache_only_when_asked() {
    let Some(env) = BuildEnv::new() else { return };
    let fill = env.fresh_dir("ctx");
    std::fs::write(fill.join("Dockerfile"), FILL_MOUNTS).unwrap();
    let (all, other, none) = (
        env.fresh_dir("cache"),
        env.fresh_dir("cache"),
        env.fresh_dir("cache"),
    );
    let to = |dir: &Path, mounts: &str| format!("type=local,dest={},{mounts}", dir.display());
    let first = env.fresh_dir("state");
    let (_, progress) = build_oci(
        &env,
        &first,
        &fill,
        &[
            "--cache-to",
            &to(&all, "mounts=true"),
            "--cache-to",
            &to(&other, "mounts=other"),
            "--cache-to",
            &to(&none, "mode=max"),
        ],
    );
    assert!(progress.contains("cache mount \"other\""), "{progress}");
    let filled: Vec<_> = ["/var/cache/app", "other"]
        .iter()
        .map(|id| tree(&mount_dir(&first, id)))
        .collect();
    assert!(filled[0].contains_key(Path::new("d/f")), "{filled:?}");

    // The extension sits beside BuildKit's own fields, which keep their shape.
    let config = local_cache_config(&all);
    let ids: Vec<&str> = config["hoist.cacheMounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["/var/cache/app", "other"]);
    assert!(config["layers"].is_array() && config["records"].is_array());
    let config = local_cache_config(&other);
    assert_eq!(config["hoist.cacheMounts"].as_array().unwrap().len(), 1);
    assert_eq!(config["hoist.cacheMounts"][0]["id"], "other");
    assert!(local_cache_config(&none).get("hoist.cacheMounts").is_none());

    let read = env.fresh_dir("ctx");
    std::fs::write(read.join("Dockerfile"), read_mounts(1)).unwrap();
    let from = |dir: &Path| format!("type=local,src={}", dir.display());
    for (cache, seen) in [
        (&all, "seen-apps-others-2"),
        (&other, "seen--others-2"),
        (&none, "seen---2"),
    ] {
        let state = env.fresh_dir("state");
        let (_, progress) = build_oci(&env, &state, &read, &["--cache-from", &from(cache)]);
        assert!(
            progress.lines().any(|l| l.ends_with(seen)),
            "expected {seen}:\n{progress}"
        );
        if cache == &all {
            for (id, want) in ["/var/cache/app", "other"].iter().zip(&filled) {
                assert_eq!(&tree(&mount_dir(&state, id)), want, "mount {id}");
            }
        }
        if cache == &other {
            // An empty local mount is filled; one with files is never replaced.
            std::fs::write(mount_dir(&state, "other").join("f"), "mine\n").unwrap();
            std::fs::write(read.join("Dockerfile"), read_mounts(2)).unwrap();
            let (_, progress) = build_oci(&env, &state, &read, &["--cache-from", &from(&all)]);
            assert!(
                progress.lines().any(|l| l.ends_with("seen-apps-mine-3")),
                "{progress}"
            );
            assert!(progress.contains("kept the local one"), "{progress}");
            std::fs::write(read.join("Dockerfile"), read_mounts(1)).unwrap();
        }
    }
}

#[test]
fn cache_mounts_travel_through_a_registry() {
    let Some(env) = BuildEnv::new() else { return };
    let fill = env.fresh_dir("ctx");
    std::fs::write(fill.join("Dockerfile"), FILL_MOUNTS).unwrap();
    let cache = format!("{}/app/mounts:main", env.registry.host());
    let to = format!("type=registry,ref={cache},mode=max,mounts=true");
    let first = env.fresh_dir("state");
    build_oci(&env, &first, &fill, &["--cache-to", &to]);

    let read = env.fresh_dir("ctx");
    std::fs::write(read.join("Dockerfile"), read_mounts(1)).unwrap();
    let state = env.fresh_dir("state");
    let (_, progress) = build_oci(&env, &state, &read, &["--cache-from", &cache]);
    assert!(
        progress.lines().any(|l| l.ends_with("seen-apps-others-2")),
        "{progress}"
    );
    for id in ["/var/cache/app", "other"] {
        assert_eq!(
            tree(&mount_dir(&state, id)),
            tree(&mount_dir(&first, id)),
            "mount {id}"
        );
    }
}
