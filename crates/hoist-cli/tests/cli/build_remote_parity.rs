//! `hoist build --addr` with what buildx sends beyond the context and the exporter, against
//! real `hoistd`s (`build_remote::Daemon`) and a `BuildEnv` registry:
//!
//! - `--cache-to type=registry,…,mode=max` through one hoistd, then `--cache-from` through a
//!   second with an empty state dir: every step CACHED, no RUN ran, the same image;
//! - `--annotation`s of each type on a two-platform OCI archive streamed back through the
//!   session: on the index, the manifests' descriptors and the manifests;
//! - (both through a direct Solve and through the gateway, as buildx builds:) the cache
//!   round trip above, and a secret whose id is an ARG reaching `RUN --mount=type=secret,id=$ID` through hoistd
//!   (hoistd asks the session for the ids of the solved graph, not of the Dockerfile text);
//! - a base image whose registry is an ARG, on a registry asking for Basic auth: hoistd asks
//!   the client's session for that host's credentials when it pulls (the client's docker
//!   config has them, hoistd's none); without them the pull is refused;
//! - against dockerd's BuildKit (0.8, `--addr docker-daemon://`): a registry cache exported
//!   (the cache manifest is in the registry) and imported by the next build, and a stdin
//!   tar uploaded through the session;
//! - stdin contexts: a tar (uploaded through the session's `Upload.Pull`, its Dockerfile
//!   named by `-f`), a Dockerfile alone (an empty context), and `-f -` with a directory.

use std::path::Path;
use std::process::Output;

use crate::build_env::{tar_entries, BuildEnv};
use crate::build_remote::Daemon;

const EPOCH: &str = "SOURCE_DATE_EPOCH=1700000000";

/// Two stages, each RUN printing a marker only a run shows (`$((1+1))` is not expanded in
/// the step's name).
const DOCKERFILE: &str = "FROM busybox AS builder\n\
RUN echo built-$((1+1)) && date +%s%N > /built-at\n\
FROM busybox\n\
COPY --from=builder /built-at /built-at\n\
RUN echo stamp-$((2+1)) && date +%s%N > /stamp\n";

/// A hoistd on a unix socket with `env`'s registries and its own empty state dir.
fn daemon(env: &BuildEnv) -> Option<Daemon> {
    let config = env.config().display().to_string();
    Daemon::start(&["--config", config.as_str()])
}

/// `hoist build --addr ADDR --progress=plain ARGS` with `stdin` on its stdin.
fn remote_with_stdin(env: &BuildEnv, addr: &str, args: &[&str], stdin: &[u8]) -> Output {
    use std::io::Write as _;
    let mut child = env
        .command(&["build", "--addr", addr, "--progress=plain"])
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let bytes = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&bytes);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

/// `hoist build --addr ADDR --progress=plain ARGS`.
fn remote(env: &BuildEnv, addr: &str, args: &[&str]) -> Output {
    remote_via(env, addr, false, args)
}

/// [`remote`], through BuildKit's gateway as buildx builds when `via_gateway`
/// (`HOIST_BUILD_VIA_GATEWAY=1`), else with a direct `dockerfile.v0` Solve.
fn remote_via(env: &BuildEnv, addr: &str, via_gateway: bool, args: &[&str]) -> Output {
    let mut command = env.command(&["build", "--addr", addr, "--progress=plain"]);
    if via_gateway {
        command.env("HOIST_BUILD_VIA_GATEWAY", "1");
    } else {
        command.env_remove("HOIST_BUILD_VIA_GATEWAY");
    }
    command.args(args).output().unwrap()
}

fn succeeded(out: &Output) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "hoist build --addr failed:\n{text}");
    text
}

/// The OCI archive's root descriptor digest and its blobs by digest.
fn oci_root(tar: &Path) -> (String, std::collections::BTreeMap<String, Vec<u8>>) {
    let entries = tar_entries(tar);
    let index: serde_json::Value = serde_json::from_slice(&entries["index.json"]).unwrap();
    let digest = index["manifests"][0]["digest"].as_str().unwrap().to_owned();
    (digest, entries)
}

fn blob(entries: &std::collections::BTreeMap<String, Vec<u8>>, digest: &str) -> serde_json::Value {
    let path = format!("blobs/{}", digest.replace(':', "/"));
    serde_json::from_slice(&entries[&path]).unwrap()
}

/// The `#N` of the progress line naming `step`, and whether `#N CACHED` follows.
fn cached(progress: &str, step: &str) -> bool {
    let id = progress
        .lines()
        .find(|l| l.starts_with('#') && l.contains(step))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no step {step:?}:\n{progress}"));
    progress.lines().any(|l| l == format!("{id} CACHED"))
}

#[test]
fn a_registry_cache_exported_through_hoistd_makes_every_step_cached_in_a_fresh_hoistd() {
    let Some(env) = BuildEnv::new() else { return };
    // The direct Solve, then buildx's path through the gateway, which must treat the
    // cache entries alike.
    for via_gateway in [false, true] {
        registry_cache_round_trip(&env, via_gateway);
    }
}

fn registry_cache_round_trip(env: &BuildEnv, via_gateway: bool) {
    let Some(first) = daemon(env) else { return };
    let ctx = env.fresh_dir("ctx");
    std::fs::write(ctx.join("Dockerfile"), DOCKERFILE).unwrap();
    let ctx = ctx.display().to_string();
    let cache = format!(
        "{}/parity/cache:via-gateway-{via_gateway}",
        env.registry.host()
    );
    let out = env.fresh_dir("out");
    let (a, b) = (out.join("a.tar"), out.join("b.tar"));

    let to = format!("type=registry,ref={cache},mode=max");
    let output = format!("type=oci,dest={}", a.display());
    let progress = succeeded(&remote_via(
        env,
        &first.addr(),
        via_gateway,
        &["--build-arg", EPOCH, "--cache-to", &to, "-o", &output, &ctx],
    ));
    assert!(
        progress.contains("built-2"),
        "the first build ran no RUN:\n{progress}"
    );
    assert!(
        progress.contains("exporting cache to registry"),
        "no cache export step:\n{progress}"
    );
    drop(first);

    // A second daemon, a state dir that has never built anything.
    let Some(second) = daemon(env) else { return };
    let output = format!("type=oci,dest={}", b.display());
    let progress = succeeded(&remote_via(
        env,
        &second.addr(),
        via_gateway,
        &[
            "--build-arg",
            EPOCH,
            "--cache-from",
            &cache,
            "-o",
            &output,
            &ctx,
        ],
    ));
    assert!(
        !progress.contains("built-2") && !progress.contains("stamp-3"),
        "a RUN ran with the cache imported (gateway: {via_gateway}):\n{progress}"
    );
    for step in [
        "RUN echo built-$((1+1))",
        "COPY --from=builder",
        "RUN echo stamp-$((2+1))",
    ] {
        assert!(cached(&progress, step), "{step} not CACHED:\n{progress}");
    }
    assert_eq!(
        oci_root(&a).0,
        oci_root(&b).0,
        "the image built from the cache differs:\n{progress}"
    );
}

#[test]
fn cache_type_local_without_a_directory_is_refused_naming_the_flag_before_connecting() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hoist"))
        .args(["build", "--addr", "unix:///nonexistent/hoistd.sock"])
        .args(["--cache-to", "type=local,mode=max"])
        .arg(dir.path())
        .env_remove("HOIST_ROOT")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("--cache-to") && stderr.contains("type=local needs dest=DIR"),
        "{stderr}"
    );
    assert!(!stderr.contains("cannot connect"), "{stderr}");
}

#[test]
fn annotations_reach_the_index_descriptors_and_manifests_built_by_hoistd() {
    let Some(env) = BuildEnv::new() else { return };
    let Some(daemon) = daemon(&env) else { return };
    let ctx = env.fresh_dir("ctx");
    std::fs::write(ctx.join("Dockerfile"), "FROM busybox\nCOPY f /f\n").unwrap();
    std::fs::write(ctx.join("f"), "annotated\n").unwrap();
    let tar = env.fresh_dir("out").join("image.tar");
    let output = format!("type=oci,dest={}", tar.display());
    let ctx = ctx.display().to_string();
    succeeded(&remote(
        &env,
        &daemon.addr(),
        &[
            "--platform",
            "linux/amd64,linux/arm64",
            "--annotation",
            "org.example.all=manifests",
            "--annotation",
            "index:org.example.index=idx",
            "--annotation",
            "manifest-descriptor:org.example.desc=d",
            "--annotation",
            "manifest[linux/arm64]:org.example.arm=only-arm",
            "-o",
            &output,
            &ctx,
        ],
    ));
    let (root, entries) = oci_root(&tar);
    let index = blob(&entries, &root);
    assert_eq!(index["annotations"]["org.example.index"], "idx", "{index}");
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 2, "{index}");
    for descriptor in manifests {
        assert_eq!(
            descriptor["annotations"]["org.example.desc"], "d",
            "{index}"
        );
        let manifest = blob(&entries, descriptor["digest"].as_str().unwrap());
        assert_eq!(manifest["annotations"]["org.example.all"], "manifests");
        let arm = descriptor["platform"]["architecture"] == "arm64";
        assert_eq!(
            manifest["annotations"].get("org.example.arm").is_some(),
            arm,
            "{manifest}"
        );
    }
}

#[test]
fn stdin_contexts_reach_hoistd_as_an_upload_or_a_dockerfile() {
    let Some(env) = BuildEnv::new() else { return };
    let Some(daemon) = daemon(&env) else { return };
    let addr = daemon.addr();
    let out = env.fresh_dir("out");

    // A tar: uploaded through the session, its Dockerfile named by -f inside it.
    let tar = hoist_testkit::http::tar_of(&[
        (
            "build/Dockerfile.alt",
            "FROM busybox\nCOPY data /data\nRUN cat /data > /copied\n",
        ),
        ("data", "from the tar\n"),
    ]);
    let dest = out.join("tar");
    let output = format!("type=local,dest={}", dest.display());
    let progress = succeeded(&remote_with_stdin(
        &env,
        &addr,
        &["-f", "build/Dockerfile.alt", "-o", &output, "-"],
        &tar,
    ));
    assert_eq!(
        std::fs::read_to_string(dest.join("copied")).unwrap(),
        "from the tar\n",
        "{progress}"
    );
    let log = daemon.log.lock().unwrap().join("\n");
    assert!(
        log.contains(&format!("upload: {} bytes received", tar.len())),
        "hoistd did not pull the whole tar:\n{log}"
    );

    // A Dockerfile: built with an empty context.
    let dest = out.join("dockerfile");
    let output = format!("type=local,dest={}", dest.display());
    let progress = succeeded(&remote_with_stdin(
        &env,
        &addr,
        &["-o", &output, "-"],
        b"FROM busybox\nRUN echo from-stdin > /made\n",
    ));
    assert_eq!(
        std::fs::read_to_string(dest.join("made")).unwrap(),
        "from-stdin\n",
        "{progress}"
    );

    // -f - with a directory context.
    let ctx = env.fresh_dir("ctx");
    std::fs::write(ctx.join("f"), "from the directory\n").unwrap();
    let dest = out.join("file-stdin");
    let output = format!("type=local,dest={}", dest.display());
    let progress = succeeded(&remote_with_stdin(
        &env,
        &addr,
        &["-f", "-", "-o", &output, &ctx.display().to_string()],
        b"FROM scratch\nCOPY f /f\n",
    ));
    assert_eq!(
        std::fs::read_to_string(dest.join("f")).unwrap(),
        "from the directory\n",
        "{progress}"
    );

    // Both from stdin: refused in buildx's words before anything is sent.
    let refused = remote_with_stdin(&env, &addr, &["-f", "-", "-"], b"FROM scratch\n");
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("can't use stdin for both"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}

#[test]
fn a_secret_id_built_from_an_arg_is_asked_of_the_session() {
    let Some(env) = BuildEnv::new() else { return };
    for via_gateway in [false, true] {
        secret_from_an_arg(&env, via_gateway);
    }
}

fn secret_from_an_arg(env: &BuildEnv, via_gateway: bool) {
    let Some(daemon) = daemon(env) else { return };
    let ctx = env.fresh_dir("ctx");
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nARG KIND=api\nARG ID=${KIND}-token\n\
         RUN --mount=type=secret,id=$ID cat /run/secrets/$ID > /seen\n",
    )
    .unwrap();
    let secret = env.fresh_dir("secret").join("value");
    std::fs::write(&secret, "s3cr3t-from-the-client").unwrap();
    let dest = env.fresh_dir("out").join("tree");
    let output = format!("type=local,dest={}", dest.display());
    let secret_flag = format!("id=api-token,src={}", secret.display());
    let progress = succeeded(&remote_via(
        env,
        &daemon.addr(),
        via_gateway,
        &[
            "--secret",
            &secret_flag,
            "-o",
            &output,
            &ctx.display().to_string(),
        ],
    ));
    assert_eq!(
        std::fs::read_to_string(dest.join("seen")).unwrap(),
        "s3cr3t-from-the-client",
        "gateway: {via_gateway}\n{progress}"
    );
    let log = daemon.log.lock().unwrap().join("\n");
    assert_eq!(
        log.contains("hoistd: gateway Return "),
        via_gateway,
        "the build did not take the path asked (gateway: {via_gateway}):\n{log}"
    );
    assert!(
        !log.contains("s3cr3t"),
        "the secret is in hoistd's log:\n{log}"
    );
    assert!(
        !progress.contains("s3cr3t"),
        "the secret is in the progress:\n{progress}"
    );
}

const DOCKER_SOCKET: &str = "/var/run/docker.sock";

fn dockerd_up() -> bool {
    let up = Path::new(DOCKER_SOCKET).exists()
        && std::process::Command::new("/usr/bin/docker")
            .arg("info")
            .env_remove("DOCKER_HOST")
            .output()
            .is_ok_and(|out| out.status.success());
    if !up {
        hoist_testkit::skip("the dockerd cases need dockerd at /var/run/docker.sock");
    }
    up
}

#[test]
fn dockerds_buildkit_takes_cache_entries_and_a_stdin_tar_from_hoist() {
    let Some(env) = BuildEnv::new() else { return };
    if !dockerd_up() {
        return;
    }
    let Some(hoistd) = daemon(&env) else { return };
    let addr = format!("docker-daemon://{DOCKER_SOCKET}");
    let host = env.registry.host();
    let ctx = env.fresh_dir("ctx");
    // A marker of this run, so dockerd's own cache of earlier runs does not answer.
    let marker = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {host}/busybox\nRUN echo parity-{marker} > /marker\n"),
    )
    .unwrap();
    let ctx = ctx.display().to_string();
    let dest = env.fresh_dir("out");

    // dockerd's BuildKit exports inline caches only: a registry export is refused before
    // anything is sent, in buildx's words.
    let cache = format!("{host}/parity/dockerd-cache:{marker}");
    let to = format!("type=registry,ref={cache},mode=max");
    let refused = remote_docker(&env, &addr, &["--cache-to", &to, &ctx]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr)
            .contains("cache export feature is currently not supported for docker driver"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    // The cache exported through hoistd, imported by dockerd's BuildKit from the entry.
    let output = format!("type=local,dest={}", dest.join("a").display());
    succeeded(&remote(
        &env,
        &hoistd.addr(),
        &["--cache-to", &to, "-o", &output, &ctx],
    ));
    let output = format!("type=local,dest={}", dest.join("b").display());
    let imported = remote_docker(&env, &addr, &["--cache-from", &cache, "-o", &output, &ctx]);
    let progress = succeeded(&imported);
    assert!(
        progress.contains(&format!("importing cache manifest from {cache}")),
        "dockerd imported no cache:\n{progress}"
    );
    assert_eq!(
        std::fs::read_to_string(dest.join("b/marker")).unwrap(),
        format!("parity-{marker}\n")
    );

    let tar = hoist_testkit::http::tar_of(&[
        ("Dockerfile", "FROM scratch\nCOPY data /data\n"),
        ("data", "uploaded to dockerd\n"),
    ]);
    let output = format!("type=local,dest={}", dest.join("stdin").display());
    let mut child = env
        .command(&[
            "build",
            "--addr",
            &addr,
            "--progress=plain",
            "--network=host",
        ])
        .args(["-o", &output, "-"])
        .env_remove("DOCKER_HOST")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write as _;
        child.stdin.take().unwrap().write_all(&tar).unwrap();
    }
    let uploaded = child.wait_with_output().unwrap();
    let progress = succeeded(&uploaded);
    assert_eq!(
        std::fs::read_to_string(dest.join("stdin/data")).unwrap(),
        "uploaded to dockerd\n",
        "{progress}"
    );
}

/// `hoist build --addr ADDR --progress=plain --network=host ARGS` (dockerd here runs with
/// host networking only).
fn remote_docker(env: &BuildEnv, addr: &str, args: &[&str]) -> Output {
    env.command(&[
        "build",
        "--addr",
        addr,
        "--progress=plain",
        "--network=host",
    ])
    .args(args)
    .env_remove("DOCKER_HOST")
    .output()
    .unwrap()
}

#[test]
fn credentials_for_an_arg_built_registry_are_asked_of_the_session_when_pulling() {
    let Some(env) = BuildEnv::new() else { return };
    let Some(images) = hoist_testkit::images::BaseImages::get() else {
        return;
    };
    let Some(private) =
        hoist_testkit::registry::TestRegistry::start_with_basic_auth("parity", "pa55word")
    else {
        return;
    };
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(images.push(&private))
        .unwrap();
    let host = private.host();
    let config = env.dir.path().join("hoistd-private.toml");
    std::fs::write(&config, format!("[registry.\"{host}\"]\nhttp = true\n")).unwrap();
    let config = config.display().to_string();
    let Some(daemon) = Daemon::start(&["--config", config.as_str()]) else {
        return;
    };
    let ctx = env.fresh_dir("ctx");
    std::fs::write(
        ctx.join("Dockerfile"),
        "ARG REGISTRY\nFROM ${REGISTRY}/busybox\nRUN echo pulled > /pulled\n",
    )
    .unwrap();
    let ctx = ctx.display().to_string();
    let arg = format!("REGISTRY={host}");
    let dest = env.fresh_dir("out");

    // The client's docker config has no credentials yet: the pull is refused.
    let output = format!("type=local,dest={}", dest.join("refused").display());
    let refused = remote(
        &env,
        &daemon.addr(),
        &["--build-arg", &arg, "-o", &output, &ctx],
    );
    let stderr = String::from_utf8_lossy(&refused.stderr).to_lowercase();
    assert!(
        !refused.status.success(),
        "pulled without credentials:\n{stderr}"
    );
    assert!(
        stderr.contains("401") || stderr.contains("unauthorized"),
        "not refused for want of credentials:\n{stderr}"
    );

    let docker = env.dir.path().join("docker");
    std::fs::create_dir_all(&docker).unwrap();
    let auth = base64_basic("parity", "pa55word");
    std::fs::write(
        docker.join("config.json"),
        format!("{{\"auths\":{{\"{host}\":{{\"auth\":\"{auth}\"}}}}}}"),
    )
    .unwrap();
    let output = format!("type=local,dest={}", dest.join("pulled").display());
    let progress = succeeded(&remote(
        &env,
        &daemon.addr(),
        &["--build-arg", &arg, "-o", &output, &ctx],
    ));
    assert_eq!(
        std::fs::read_to_string(dest.join("pulled/pulled")).unwrap(),
        "pulled\n",
        "{progress}"
    );
    let log = daemon.log.lock().unwrap().join("\n");
    assert!(
        !log.contains("pa55word"),
        "the password is in hoistd's log:\n{log}"
    );
    let _ = std::fs::remove_file(docker.join("config.json"));
}

/// `user:password` in base64, as `config.json`'s `auth`.
fn base64_basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
}
