//! The `docker-container` driver against the Docker daemon at `/var/run/docker.sock` (or a
//! `unix://` `DOCKER_HOST`): `create --bootstrap` builds and loads the hoistd image from the
//! built `hoistd`, starts the container; `inspect` shows the container's hoistd version and
//! platforms; a build with a URL context (RUN included) is pushed to a `TestRegistry`
//! through the container's dial; `stop`, `rm --keep-state` (the volume stays), `rm` (neither
//! container nor volume stays). Every container, volume and image the test makes is removed
//! even when it fails.

use std::io::{Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use hoist_testkit::http::{tar_of, FileServer, Served};
use hoist_testkit::images::BaseImages;
use hoist_testkit::registry::TestRegistry;

/// The Docker daemon's socket: a `unix://` `DOCKER_HOST`, else the default.
fn docker_socket() -> Option<PathBuf> {
    match std::env::var("DOCKER_HOST") {
        Ok(host) if !host.is_empty() => host.strip_prefix("unix://").map(PathBuf::from),
        _ => Some(PathBuf::from("/var/run/docker.sock")),
    }
}

/// One Engine API call (HTTP/1.0, so the daemon closes the connection after its answer):
/// the status code and the body.
fn docker(socket: &Path, method: &str, path: &str) -> (u16, String) {
    let mut stream = UnixStream::connect(socket).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: docker\r\nContent-Length: 0\r\n\r\n"
    )
    .unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Tests that make containers run one at a time: one removing the hoistd image it loaded
/// must not pull it from under another.
static DOCKER: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn docker_lock() -> std::sync::MutexGuard<'static, ()> {
    DOCKER.lock().unwrap_or_else(|e| e.into_inner())
}

/// Removes what the test made, whatever happened.
struct Cleanup {
    socket: PathBuf,
    container: String,
    volume: String,
    /// The hoistd image, when the test made it (it was not there before).
    image: Option<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = docker(
            &self.socket,
            "DELETE",
            &format!("/containers/{}?force=1&v=1", self.container),
        );
        let _ = docker(&self.socket, "DELETE", &format!("/volumes/{}", self.volume));
        if let Some(image) = &self.image {
            let _ = docker(&self.socket, "DELETE", &format!("/images/{image}"));
        }
    }
}

/// `hoist ARGS` with the builder store and state under `dir`.
fn hoist(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hoist"))
        .arg("--root")
        .arg(dir.join("client-state"))
        .args(args)
        .env("HOIST_BUILDERS_DIR", dir.join("builders"))
        .env("DOCKER_CONFIG", dir.join("docker"))
        .env_remove("HOIST_BUILDER")
        .env_remove("BUILDX_BUILDER")
        .env_remove("BUILDKIT_PROGRESS")
        .output()
        .unwrap()
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let out = hoist(dir, args);
    assert!(
        out.status.success(),
        "hoist {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The value of `inspect`'s `KEY:` line.
fn field<'a>(inspect: &'a str, key: &str) -> &'a str {
    inspect
        .lines()
        .find_map(|l| l.strip_prefix(key).map(str::trim))
        .unwrap_or_else(|| panic!("no {key} line in:\n{inspect}"))
}

/// The digest the registry at `host` answers for `path`'s manifest.
fn manifest_digest(host: &str, path: &str) -> Option<String> {
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    write!(
        stream,
        "HEAD {path} HTTP/1.0\r\nHost: {host}\r\nAccept: application/vnd.oci.image.manifest.v1+json, \
         application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.index.v1+json\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.eq_ignore_ascii_case("docker-content-digest")
            .then(|| value.trim().to_owned())
    })
}

#[test]
fn a_docker_container_builder_bootstraps_builds_pushes_and_is_removed() {
    if !hoist_testkit::is_root() {
        hoist_testkit::skip("the docker-container driver test needs root");
        return;
    }
    let Some(socket) = docker_socket().filter(|s| UnixStream::connect(s).is_ok()) else {
        hoist_testkit::skip(
            "no Docker daemon on a unix socket (DOCKER_HOST or /var/run/docker.sock)",
        );
        return;
    };
    let hoistd = PathBuf::from(env!("CARGO_BIN_EXE_hoist")).with_file_name("hoistd");
    if !hoistd.is_file() {
        hoist_testkit::skip(&format!(
            "no hoistd next to hoist ({}): build it with `cargo build -p hoistd`",
            hoistd.display()
        ));
        return;
    }
    let Some(images) = BaseImages::get() else {
        return;
    };
    let Some(registry) = TestRegistry::start() else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let pushed = runtime.block_on(images.push(&registry)).unwrap();
    let _serial = docker_lock();

    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let name = format!("dctest{}", std::process::id());
    let container = format!("hoist_buildkit_{name}0");
    let volume = format!("{container}_state");
    let image = concat!("hoist/hoistd:", env!("CARGO_PKG_VERSION"));
    let image_existed = docker(&socket, "GET", &format!("/images/{image}/json")).0 == 200;
    let _cleanup = Cleanup {
        socket: socket.clone(),
        container: container.clone(),
        volume: volume.clone(),
        image: (!image_existed).then(|| image.to_owned()),
    };

    // The builder's buildkitd.toml reaches hoistd: the test registry is plain http.
    let config = dir.join("buildkitd.toml");
    std::fs::write(
        &config,
        format!("[registry.\"{}\"]\nhttp = true\n", registry.host()),
    )
    .unwrap();
    let created = ok(
        dir,
        &[
            "create",
            "--name",
            &name,
            "--driver",
            "docker-container",
            "--buildkitd-config",
            config.to_str().unwrap(),
            "--driver-opt",
            "env.HOIST_TEST_MARK=dc,memory=1g,cpu-shares=512,restart-policy=no",
            "--bootstrap",
        ],
    );
    assert_eq!(created, format!("{name}\n"));
    let (status, body) = docker(&socket, "GET", &format!("/containers/{container}/json"));
    assert_eq!(status, 200, "{body}");
    let inspect: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(inspect["State"]["Running"], true, "{body}");
    assert_eq!(inspect["HostConfig"]["NetworkMode"], "host");
    assert_eq!(inspect["Config"]["Image"], image);
    assert_eq!(inspect["Mounts"][0]["Name"], volume.as_str(), "{body}");
    assert_eq!(inspect["Mounts"][0]["Destination"], "/var/lib/hoist");
    // The driver options, as the container's settings.
    assert!(
        inspect["Config"]["Env"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("HOIST_TEST_MARK=dc")),
        "{body}"
    );
    assert_eq!(inspect["HostConfig"]["Memory"], 1 << 30);
    assert_eq!(inspect["HostConfig"]["CpuShares"], 512);
    assert_eq!(inspect["HostConfig"]["RestartPolicy"]["Name"], "no");
    let cmd: Vec<&str> = (inspect["Config"]["Cmd"].as_array().unwrap().iter())
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        cmd,
        [
            "hoistd",
            "--root",
            "/var/lib/hoist",
            "--addr",
            "unix:///run/hoistd/hoistd.sock",
            "--config",
            "/etc/hoist/buildkitd.toml"
        ]
    );

    let shown = ok(dir, &["inspect", &name]);
    assert_eq!(field(&shown, "Driver:"), "docker-container");
    assert_eq!(field(&shown, "Status:"), "running");
    assert_eq!(
        field(&shown, "BuildKit version:"),
        concat!("hoist v", env!("CARGO_PKG_VERSION"))
    );
    let native = format!(
        "linux/{}",
        match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        }
    );
    assert!(
        field(&shown, "Platforms:").split(", ").any(|p| p == native),
        "{shown}"
    );

    let files = FileServer::start().unwrap();
    let context = tar_of(&[
        (
            "Dockerfile",
            &format!(
                "FROM {}\nRUN echo built in $(hostname -s 2>/dev/null || echo the container) > /where && cat /where\nCOPY a.txt /\n",
                pushed.reference("latest")
            ),
        ),
        ("a.txt", "alpha\n"),
    ]);
    files.serve("/ctx.tar", Served::new(context));
    let target = format!("{}/dc/x:1", registry.host());
    let metadata_file = dir.join("metadata.json");
    let out = hoist(
        dir,
        &[
            "build",
            "--builder",
            &name,
            "--progress",
            "plain",
            "-t",
            &target,
            "--push",
            "--metadata-file",
            metadata_file.to_str().unwrap(),
            &files.url("/ctx.tar"),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "build on {name} failed:\n{stderr}");
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with('#') && l.contains("built in")),
        "no RUN output in:\n{stderr}"
    );
    let metadata: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&metadata_file).unwrap()).unwrap();
    let digest = metadata["containerimage.digest"].as_str().unwrap();
    assert_eq!(
        manifest_digest(&registry.host(), "/v2/dc/x/manifests/1").as_deref(),
        Some(digest),
        "{metadata}"
    );
    // The build ran in the container: its hoistd logged it, this machine's state has none.
    let (_, logs) = docker(
        &socket,
        "GET",
        &format!("/containers/{container}/logs?stderr=1&stdout=1"),
    );
    assert!(logs.contains("hoistd: build "), "{logs}");

    ok(dir, &["stop", &name]);
    let (_, body) = docker(&socket, "GET", &format!("/containers/{container}/json"));
    let inspect: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(inspect["State"]["Running"], false, "{body}");
    assert_eq!(field(&ok(dir, &["inspect", &name]), "Status:"), "stopped");

    // rm --keep-state: the container goes, its volume stays.
    ok(dir, &["rm", "--keep-state", &name]);
    assert_eq!(
        docker(&socket, "GET", &format!("/containers/{container}/json")).0,
        404
    );
    assert_eq!(docker(&socket, "GET", &format!("/volumes/{volume}")).0, 200);
    assert!(!ok(dir, &["ls"]).contains(&name));

    // Created again (the daemon named as ENDPOINT; not bootstrapped: the build starts it)
    // on the kept volume: the build cache is still in hoistd's state, so the RUN step is
    // cached; then rm takes container and volume.
    ok(
        dir,
        &[
            "create",
            "--name",
            &name,
            "--driver",
            "docker-container",
            "--buildkitd-config",
            config.to_str().unwrap(),
            &format!("unix://{}", socket.display()),
        ],
    );
    assert_eq!(
        docker(&socket, "GET", &format!("/containers/{container}/json")).0,
        404
    );
    let again = hoist(
        dir,
        &[
            "build",
            "--builder",
            &name,
            "--progress",
            "plain",
            "-t",
            &target,
            "--push",
            &files.url("/ctx.tar"),
        ],
    );
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(again.status.success(), "second build failed:\n{stderr}");
    let run_step = stderr
        .lines()
        .find(|l| l.starts_with('#') && l.contains("RUN echo built in"))
        .and_then(|l| l.split(' ').next())
        .unwrap_or_else(|| panic!("no RUN step in:\n{stderr}"));
    assert!(
        stderr.lines().any(|l| l == format!("{run_step} CACHED")),
        "the kept state was not used:\n{stderr}"
    );
    ok(dir, &["rm", &name]);
    assert_eq!(
        docker(&socket, "GET", &format!("/containers/{container}/json")).0,
        404
    );
    assert_eq!(docker(&socket, "GET", &format!("/volumes/{volume}")).0, 404);
}

#[test]
fn bad_docker_container_options_are_refused_at_create_with_the_store_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    ok(dir, &["create", "--name", "keep"]);
    let store = dir.join("builders");
    let before: Vec<_> = walkdir::WalkDir::new(&store)
        .sort_by_file_name()
        .into_iter()
        .map(|e| e.unwrap().path().to_owned())
        .filter(|p| p.is_file())
        .map(|p| (p.clone(), std::fs::read(&p).unwrap()))
        .collect();
    for (opt, message) in [
        (
            "network=host,colour=blue",
            "ERROR: invalid driver option colour for docker-container driver\n",
        ),
        (
            "cpu-quota=half",
            "ERROR: invalid driver option cpu-quota=\"half\" for docker-container driver: expected an integer\n",
        ),
        (
            "restart-policy=on-failure:x",
            "ERROR: invalid driver option restart-policy=\"on-failure:x\" for docker-container driver: expected no, always, unless-stopped or on-failure[:max-retries]\n",
        ),
    ] {
        let out = hoist(
            dir,
            &[
                "create",
                "--name",
                "dc",
                "--driver",
                "docker-container",
                "--driver-opt",
                opt,
                "--bootstrap",
            ],
        );
        assert!(!out.status.success());
        assert_eq!(String::from_utf8_lossy(&out.stderr), message);
    }
    let after: Vec<_> = walkdir::WalkDir::new(&store)
        .sort_by_file_name()
        .into_iter()
        .map(|e| e.unwrap().path().to_owned())
        .filter(|p| p.is_file())
        .map(|p| (p.clone(), std::fs::read(&p).unwrap()))
        .collect();
    assert_eq!(before, after);
}

#[test]
fn without_hoistd_the_bootstrap_says_where_it_looked_and_creates_nothing() {
    let Some(socket) = docker_socket().filter(|s| UnixStream::connect(s).is_ok()) else {
        hoist_testkit::skip(
            "no Docker daemon on a unix socket (DOCKER_HOST or /var/run/docker.sock)",
        );
        return;
    };
    let _serial = docker_lock();
    // A hoist with no hoistd beside it (a hard link keeps its own path as current_exe) and
    // an empty PATH.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let lonely = dir.path().join("hoist");
    if std::fs::hard_link(env!("CARGO_BIN_EXE_hoist"), &lonely).is_err() {
        std::fs::copy(env!("CARGO_BIN_EXE_hoist"), &lonely).unwrap();
    }
    let name = format!("dcnohoistd{}", std::process::id());
    let container = format!("hoist_buildkit_{name}0");
    let _cleanup = Cleanup {
        socket: socket.clone(),
        volume: format!("{container}_state"),
        container: container.clone(),
        image: None,
    };
    let out = Command::new(&lonely)
        .args([
            "create",
            "--name",
            &name,
            "--driver",
            "docker-container",
            "--bootstrap",
        ])
        .env("HOIST_BUILDERS_DIR", dir.path().join("builders"))
        .env("PATH", "")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert_eq!(
        stderr.lines().filter(|l| l.starts_with("ERROR:")).count(),
        1,
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "cannot find hoistd next to {} or in PATH",
            lonely.display()
        )),
        "{stderr}"
    );
    assert_eq!(
        docker(&socket, "GET", &format!("/containers/{container}/json")).0,
        404
    );
}

#[test]
fn a_hoistd_that_cannot_start_fails_the_bootstrap_with_its_log() {
    if !hoist_testkit::is_root() {
        hoist_testkit::skip("the docker-container driver test needs root");
        return;
    }
    let Some(socket) = docker_socket().filter(|s| UnixStream::connect(s).is_ok()) else {
        hoist_testkit::skip(
            "no Docker daemon on a unix socket (DOCKER_HOST or /var/run/docker.sock)",
        );
        return;
    };
    if !PathBuf::from(env!("CARGO_BIN_EXE_hoist"))
        .with_file_name("hoistd")
        .is_file()
    {
        hoist_testkit::skip("no hoistd next to hoist: build it with `cargo build -p hoistd`");
        return;
    }
    let _serial = docker_lock();
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let name = format!("dcbadflag{}", std::process::id());
    let container = format!("hoist_buildkit_{name}0");
    let image = concat!("hoist/hoistd:", env!("CARGO_PKG_VERSION"));
    let image_existed = docker(&socket, "GET", &format!("/images/{image}/json")).0 == 200;
    let _cleanup = Cleanup {
        socket: socket.clone(),
        volume: format!("{container}_state"),
        container: container.clone(),
        image: (!image_existed).then(|| image.to_owned()),
    };
    // The container restarts (unless-stopped) as hoistd exits at once: not waited for.
    let out = hoist(
        dir,
        &[
            "create",
            "--name",
            &name,
            "--driver",
            "docker-container",
            "--buildkitd-flags=--no-such-flag",
            "--bootstrap",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.starts_with("ERROR:"))
        .unwrap_or_else(|| panic!("no error in:\n{stderr}"));
    assert!(
        line.starts_with(&format!(
            "ERROR: failed to bootstrap {name} ({name}0): docker-container {container}: the container stopped ("
        )),
        "{line}"
    );
    assert!(
        line.contains("--no-such-flag"),
        "hoistd's own words missing: {line}"
    );
    // Between its restarts the container is `stopped`; while one is under way, hoistd does
    // not answer: `inactive`. Never `running`.
    let listed = ok(dir, &["ls"]);
    let node = listed
        .lines()
        .find(|l| l.contains(&format!("{name}0")))
        .unwrap_or_else(|| panic!("no node line in:\n{listed}"));
    assert!(
        node.split_whitespace()
            .any(|w| w == "stopped" || w == "inactive"),
        "{listed}"
    );
    ok(dir, &["rm", &name]);
    assert_eq!(
        docker(&socket, "GET", &format!("/containers/{container}/json")).0,
        404
    );
}

/// Two `docker-container` nodes in one builder, each declaring a platform and keeping its
/// own `buildkitd.toml` (`create --append --buildkitd-config`): each container gets its own
/// file, `inspect` shows each node's file, a two-platform `--push` build sends each platform
/// to its node through that node's own dial and joins one index, and `rm` leaves neither
/// container nor volume.
#[test]
fn two_docker_container_nodes_each_with_its_own_config_build_one_index() {
    if !hoist_testkit::is_root() {
        hoist_testkit::skip("the docker-container driver test needs root");
        return;
    }
    let Some(socket) = docker_socket().filter(|s| UnixStream::connect(s).is_ok()) else {
        hoist_testkit::skip(
            "no Docker daemon on a unix socket (DOCKER_HOST or /var/run/docker.sock)",
        );
        return;
    };
    let hoistd = PathBuf::from(env!("CARGO_BIN_EXE_hoist")).with_file_name("hoistd");
    if !hoistd.is_file() {
        hoist_testkit::skip(&format!(
            "no hoistd next to hoist ({}): build it with `cargo build -p hoistd`",
            hoistd.display()
        ));
        return;
    }
    let Some(registry) = TestRegistry::start() else {
        return;
    };
    let _serial = docker_lock();
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let name = format!("dcmulti{}", std::process::id());
    let image = concat!("hoist/hoistd:", env!("CARGO_PKG_VERSION"));
    let image_existed = docker(&socket, "GET", &format!("/images/{image}/json")).0 == 200;
    let mut cleanups = Vec::new();
    for (i, platform) in ["linux/amd64", "linux/arm64"].into_iter().enumerate() {
        let container = format!("hoist_buildkit_{name}{i}");
        cleanups.push(Cleanup {
            socket: socket.clone(),
            volume: format!("{container}_state"),
            container,
            // The last cleanup removes the image the test made.
            image: (i == 1 && !image_existed).then(|| image.to_owned()),
        });
        // Each node's own config: the plain-http registry, and a mark of its own.
        let config = dir.join(format!("buildkitd-{i}.toml"));
        std::fs::write(
            &config,
            format!(
                "# node {i} of {name}\n[registry.\"{}\"]\nhttp = true\n",
                registry.host()
            ),
        )
        .unwrap();
        let mut args = vec!["create", "--name", &name, "--driver", "docker-container"];
        if i > 0 {
            args.push("--append");
        }
        let config = config.display().to_string();
        args.extend(["--platform", platform, "--buildkitd-config", &config]);
        // As buildx, two nodes may not share an endpoint (a Docker daemon's address): the
        // second names the same daemon by its socket, as a second docker context would.
        let endpoint = format!("unix://{}", socket.display());
        if i > 0 {
            args.push(&endpoint);
        }
        ok(dir, &args);
    }

    let files = FileServer::start().unwrap();
    files.serve(
        "/ctx.tar",
        Served::new(tar_of(&[
            (
                "Dockerfile",
                "FROM scratch\nARG TARGETARCH\nCOPY $TARGETARCH.txt /which.txt\n",
            ),
            ("amd64.txt", "amd64\n"),
            ("arm64.txt", "arm64\n"),
        ])),
    );
    let target = format!("{}/dcmulti/x:1", registry.host());
    let out = hoist(
        dir,
        &[
            "build",
            "--builder",
            &name,
            "--progress",
            "plain",
            "--platform",
            "linux/amd64,linux/arm64",
            "-t",
            &target,
            "--push",
            &files.url("/ctx.tar"),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "build on {name} failed:\n{stderr}");
    assert!(
        manifest_digest(&registry.host(), "/v2/dcmulti/x/manifests/1").is_some(),
        "no index under the tag:\n{stderr}"
    );

    for (i, (cleanup, platform)) in cleanups
        .iter()
        .zip(["linux/amd64", "linux/arm64"])
        .enumerate()
    {
        // Its own config in its container, and its own platform in its hoistd's log.
        let (status, archive) = docker(
            &socket,
            "GET",
            &format!(
                "/containers/{}/archive?path=/etc/hoist/buildkitd.toml",
                cleanup.container
            ),
        );
        assert_eq!(status, 200, "{archive}");
        assert!(
            archive.contains(&format!("# node {i} of {name}")),
            "{archive}"
        );
        assert!(
            !archive.contains(&format!("# node {} of", 1 - i)),
            "{archive}"
        );
        let (_, logs) = docker(
            &socket,
            "GET",
            &format!("/containers/{}/logs?stderr=1&stdout=1", cleanup.container),
        );
        let built: Vec<&str> = logs
            .lines()
            .filter_map(|l| l.split("hoistd: build ").nth(1))
            .filter_map(|l| l.split(" platforms ").nth(1))
            .collect();
        assert_eq!(built, [platform], "{logs}");
    }
    let shown = ok(dir, &["inspect", &name]);
    for i in 0..2 {
        assert!(
            shown.contains(&format!("> # node {i} of {name}")),
            "{shown}"
        );
    }
    assert_eq!(
        shown
            .lines()
            .filter(|l| l.trim_start().starts_with("Status:"))
            .count(),
        2,
        "{shown}"
    );

    ok(dir, &["rm", &name]);
    for cleanup in &cleanups {
        assert_eq!(
            docker(
                &socket,
                "GET",
                &format!("/containers/{}/json", cleanup.container)
            )
            .0,
            404
        );
        assert_eq!(
            docker(&socket, "GET", &format!("/volumes/{}", cleanup.volume)).0,
            404
        );
    }
}
