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

/// A fake Docker daemon on a unix socket: answers one `POST /images/load` and hands back
/// the request line and body it received.
fn fake_docker_daemon(socket: &std::path::Path) -> std::thread::JoinHandle<(String, Vec<u8>)> {
    use std::io::{BufRead as _, BufReader, Read as _, Write as _};
    let listener = std::os::unix::net::UnixListener::bind(socket).unwrap();
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut request_line = String::new();
        reader.read_line(&mut request_line).unwrap();
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap();
                }
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let answer = b"{\"stream\":\"Loaded image: loaded:1\\n\"}\n";
        let mut stream = stream;
        write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            answer.len()
        )
        .unwrap();
        stream.write_all(answer).unwrap();
        (request_line.trim_end().to_owned(), body)
    })
}

/// The `RepoTags` of the one image in a docker-archive.
fn docker_archive_repo_tags(archive: &[u8]) -> serde_json::Value {
    let path = std::env::temp_dir().join(format!(
        "hoist-loaded-{}-{}.tar",
        std::process::id(),
        crate::build_env::unique()
    ));
    std::fs::write(&path, archive).unwrap();
    let entries = tar_entries(&path);
    std::fs::remove_file(&path).unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&entries["manifest.json"]).unwrap();
    manifest[0]["RepoTags"].clone()
}

#[test]
fn load_goes_to_the_daemon_docker_host_names() {
    let Some(env) = BuildEnv::new() else { return };
    let ctx = env.fresh_dir("ctx");
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nRUN echo loaded > /l\n",
    )
    .unwrap();
    let ctx_arg = ctx.display().to_string();
    let socket = env.fresh_dir("daemon").join("docker.sock");
    let daemon = fake_docker_daemon(&socket);
    let result = env
        .command(&[
            "build",
            "--progress=plain",
            "--load",
            "-t",
            "loaded:1",
            &ctx_arg,
        ])
        .env("DOCKER_HOST", format!("unix://{}", socket.display()))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(result.status.success(), "{stderr}");
    let (request_line, body) = daemon.join().unwrap();
    assert_eq!(request_line, "POST /images/load?quiet=1 HTTP/1.1");
    assert_eq!(
        docker_archive_repo_tags(&body),
        serde_json::json!(["loaded:1"])
    );
}

#[test]
fn load_goes_to_the_current_docker_context() {
    let Some(env) = BuildEnv::new() else { return };
    let ctx = env.fresh_dir("ctx");
    std::fs::write(ctx.join("Dockerfile"), "FROM busybox\nENV BY=context\n").unwrap();
    let ctx_arg = ctx.display().to_string();
    let socket = env.fresh_dir("daemon").join("docker.sock");
    let docker_config = env.fresh_dir("docker-config");
    std::fs::write(
        docker_config.join("config.json"),
        r#"{"currentContext":"elsewhere"}"#,
    )
    .unwrap();
    // The docker CLI keeps a context's metadata under the sha256 of its name.
    use sha2::Digest as _;
    let id = hex::encode(sha2::Sha256::digest(b"elsewhere"));
    let meta = docker_config.join("contexts/meta").join(id);
    std::fs::create_dir_all(&meta).unwrap();
    std::fs::write(
        meta.join("meta.json"),
        format!(
            r#"{{"Name":"elsewhere","Metadata":{{}},"Endpoints":{{"docker":{{"Host":"unix://{}","SkipTLSVerify":false}}}}}}"#,
            socket.display()
        ),
    )
    .unwrap();
    let daemon = fake_docker_daemon(&socket);
    let result = env
        .command(&[
            "build",
            "--progress=plain",
            "--load",
            "-t",
            "ctx:1",
            &ctx_arg,
        ])
        .env_remove("DOCKER_HOST")
        .env_remove("DOCKER_CONTEXT")
        .env("DOCKER_CONFIG", &docker_config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(result.status.success(), "{stderr}");
    let (_, body) = daemon.join().unwrap();
    assert_eq!(
        docker_archive_repo_tags(&body),
        serde_json::json!(["ctx:1"])
    );
}

#[test]
fn registry_insecure_pushes_to_a_registry_with_an_untrusted_certificate() {
    use hoist_testkit::registry::{RegistryOptions, TestRegistry};
    let Some(env) = BuildEnv::new() else { return };
    let Some(tls) = TestRegistry::start_with(RegistryOptions {
        basic_auth: None,
        tls: true,
    }) else {
        return;
    };
    let ctx = env.fresh_dir("ctx");
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nRUN echo pushed > /p\n",
    )
    .unwrap();
    let ctx_arg = ctx.display().to_string();
    let host = tls.host();
    let build = |output: &str| {
        let result = env.hoist(&["build", "--progress=plain", "-o", output, &ctx_arg]);
        let stderr = String::from_utf8_lossy(&result.stderr).into_owned();
        (result.status.success(), stderr)
    };
    let repositories = tls.storage_dir().join("docker/registry/v2/repositories");

    // Without the option the certificate is checked, and the TLS error is what is reported.
    let (ok, stderr) = build(&format!("type=registry,name={host}/strict/app:1"));
    assert!(!ok, "{stderr}");
    assert!(stderr.contains(&format!("https://{host}/")), "{stderr}");
    assert!(stderr.to_lowercase().contains("certificate"), "{stderr}");
    assert!(!repositories.join("strict/app").exists());

    for (repository, output) in [
        ("insecure/registry", "type=registry,registry.insecure=true"),
        (
            "insecure/image",
            "type=image,push=true,registry.insecure=true",
        ),
    ] {
        let (ok, stderr) = build(&format!("{output},name={host}/{repository}:1"));
        assert!(ok, "{output}: {stderr}");
        assert!(
            repositories
                .join(repository)
                .join("_manifests/tags/1")
                .is_dir(),
            "{output}: no tag in the registry"
        );
    }
}

#[test]
fn run_device_is_refused_naming_the_device() {
    let Some(env) = BuildEnv::new() else { return };
    for (flag, shown) in [
        (
            "--device=vendor.com/gpu=all",
            "RUN --device=vendor.com/gpu=all:",
        ),
        (
            "--device=vendor.com/gpu=0,required",
            "RUN --device=vendor.com/gpu=0,required:",
        ),
    ] {
        let ctx = env.fresh_dir("ctx");
        std::fs::write(
            ctx.join("Dockerfile"),
            format!("FROM busybox\nRUN {flag} touch /ran\n"),
        )
        .unwrap();
        let ctx_arg = ctx.display().to_string();
        let result = env.hoist(&["build", "--progress=plain", &ctx_arg]);
        let stderr = String::from_utf8_lossy(&result.stderr);
        assert_eq!(result.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(shown), "{stderr}");
        assert!(stderr.contains("does not support CDI devices"), "{stderr}");
        // The failing line is shown, and no RUN step started.
        assert!(
            stderr.contains(&format!(">>> RUN {flag} touch /ran")),
            "{stderr}"
        );
        assert!(!stderr.lines().any(|l| l.contains("] RUN ")), "{stderr}");
    }
}
