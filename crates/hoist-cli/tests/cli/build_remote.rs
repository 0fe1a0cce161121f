//! `hoist build --addr`: the built `hoist` as a client of the built `hoistd` (started on a
//! temp unix socket with its own state dir): a tar context served by the testkit's
//! `FileServer`, the image pushed to a `TestRegistry`, the daemon's Status shown as plain
//! progress and its exporter response written to `--metadata-file`; bad input and an
//! address nobody answers on are refused naming them. dockerd's BuildKit as the daemon, with
//! a session for local contexts and outputs: `build_dockerd`.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use hoist_testkit::http::{tar_of, FileServer, Served};
use hoist_testkit::registry::TestRegistry;

/// A running `hoistd`, killed on drop.
pub(crate) struct Daemon {
    pub(crate) dir: tempfile::TempDir,
    child: Child,
    /// The flags it was started with, for [`Daemon::restart`].
    extra: Vec<String>,
    /// `HOST:PORT` of a tcp listener, when one was asked for.
    pub(crate) tcp: Option<String>,
    /// Its stderr lines so far.
    pub(crate) log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Daemon {
    /// `hoistd` from the directory the `hoist` binary was built in (the workspace builds
    /// both) on a unix socket and `extra` flags; `None`, with a message, when it is not there.
    pub(crate) fn start(extra: &[&str]) -> Option<Daemon> {
        let extra = extra.iter().map(|s| s.to_string()).collect();
        Daemon::start_in(tempfile::tempdir().unwrap(), extra)
    }

    /// Stops this daemon and starts another with the same state dir and flags.
    pub(crate) fn restart(mut self) -> Daemon {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let dir = tempfile::tempdir().unwrap();
        let dir = std::mem::replace(&mut self.dir, dir);
        let extra = std::mem::take(&mut self.extra);
        Daemon::start_in(dir, extra).unwrap()
    }

    fn start_in(dir: tempfile::TempDir, extra: Vec<String>) -> Option<Daemon> {
        let hoist = PathBuf::from(env!("CARGO_BIN_EXE_hoist"));
        let binary = hoist.with_file_name("hoistd");
        if !binary.is_file() {
            hoist_testkit::skip(&format!(
                "no hoistd next to hoist ({}): build it with `cargo build -p hoistd`",
                binary.display()
            ));
            return None;
        }
        let _ = std::fs::remove_file(dir.path().join("hoistd.sock"));
        let mut child = Command::new(binary)
            .arg("--addr")
            .arg(format!(
                "unix://{}",
                dir.path().join("hoistd.sock").display()
            ))
            .arg("--root")
            .arg(dir.path().join("state"))
            .args(&extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let pipe = child.stderr.take().unwrap();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let lines = std::sync::Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if let Some(tcp) = line.strip_prefix("hoistd: listening on tcp://") {
                    let _ = ready_tx.send(Some(tcp.to_owned()));
                }
                if line.starts_with("hoistd: worker ") {
                    let _ = ready_tx.send(None);
                }
                lines.lock().unwrap().push(line);
            }
        });
        let mut tcp = None;
        loop {
            match ready_rx.recv_timeout(Duration::from_secs(30)) {
                Ok(Some(addr)) => tcp = Some(addr),
                Ok(None) => break,
                Err(_) => {
                    let _ = child.kill();
                    panic!("hoistd did not start");
                }
            }
        }
        Some(Daemon {
            dir,
            child,
            extra,
            tcp,
            log,
        })
    }

    pub(crate) fn addr(&self) -> String {
        format!("unix://{}", self.dir.path().join("hoistd.sock").display())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `hoist ARGS` with no ambient settings, its state dir under `dir`.
fn hoist(dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hoist"))
        .arg("--root")
        .arg(dir.join("client-state"))
        .args(args)
        .env("DOCKER_CONFIG", dir.join("docker"))
        .env_remove("HOIST_ROOT")
        .env_remove("HOIST_CONFIG")
        .env_remove("BUILDKIT_PROGRESS")
        .output()
        .unwrap()
}

/// The digest the registry at `host` answers for `path`'s manifest.
pub(crate) fn manifest_digest(host: &str, path: &str) -> Option<String> {
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
fn a_remote_context_is_built_and_pushed_by_hoistd_with_plain_progress_and_metadata() {
    let Some(registry) = TestRegistry::start() else {
        return;
    };
    let Some(daemon) = Daemon::start(&[]) else {
        return;
    };
    let files = FileServer::start().unwrap();
    let context = tar_of(&[
        (
            "Dockerfile",
            "FROM scratch\nARG WHO=nobody\nLABEL who=$WHO\nCOPY a.txt /\nCOPY b.txt /\n",
        ),
        ("a.txt", "alpha\n"),
        ("b.txt", "beta\n"),
    ]);
    files.serve("/ctx.tar", Served::new(context));
    let image = format!("{}/remote/x:1", registry.host());
    let metadata_file = daemon.dir.path().join("metadata.json");
    let iidfile = daemon.dir.path().join("iid");
    let out = hoist(
        daemon.dir.path(),
        &[
            "build",
            "--addr",
            &daemon.addr(),
            "--progress",
            "plain",
            "--build-arg",
            "WHO=client",
            "-t",
            &image,
            "--push",
            "--metadata-file",
            metadata_file.to_str().unwrap(),
            "--iidfile",
            iidfile.to_str().unwrap(),
            &files.url("/ctx.tar"),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "hoist build --addr failed:\n{stderr}");
    for step in ["[1/2] COPY a.txt /", "[2/2] COPY b.txt /"] {
        let numbered = stderr
            .lines()
            .any(|line| line.starts_with('#') && line.ends_with(step));
        assert!(numbered, "no {step:?} step in:\n{stderr}");
    }
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with('#') && l.contains(" DONE ")),
        "{stderr}"
    );

    let metadata: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&metadata_file).unwrap()).unwrap();
    let digest = metadata["containerimage.digest"].as_str().unwrap();
    assert_eq!(
        manifest_digest(&registry.host(), "/v2/remote/x/manifests/1").as_deref(),
        Some(digest),
        "{metadata}"
    );
    assert_eq!(metadata["image.name"], image.as_str());
    assert_eq!(metadata["containerimage.descriptor"]["digest"], digest);
    let config = metadata["containerimage.config.digest"].as_str().unwrap();
    assert!(config.starts_with("sha256:"), "{metadata}");
    assert_eq!(std::fs::read_to_string(&iidfile).unwrap(), config);
}

#[test]
fn a_local_context_with_addr_needs_the_daemon_and_checks_its_input_first() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\n").unwrap();
    // Nobody answers on this address: a local context is sent through a session now, so
    // the build gets as far as connecting.
    let addr = format!("unix://{}", dir.path().join("none.sock").display());
    let ctx = dir.path().to_str().unwrap();
    let out = hoist(
        dir.path(),
        &["build", "--addr", &addr, "-o", "type=local,dest=out", ctx],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!("cannot connect to {addr}")),
        "{stderr}"
    );
    // A missing Dockerfile is named before any connection.
    let out = hoist(
        dir.path(),
        &["build", "--addr", &addr, "-f", "nope/Dockerfile", ctx],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("nope/Dockerfile does not exist"),
        "{stderr}"
    );
    assert!(!stderr.contains("cannot connect"), "{stderr}");
    // A local output needs a destination.
    let out = hoist(
        dir.path(),
        &["build", "--addr", &addr, "-o", "type=local", ctx],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("dest is required for local output"),
        "{stderr}"
    );
}

#[test]
fn an_unreachable_addr_fails_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("unix://{}", dir.path().join("nobody.sock").display());
    let out = hoist(
        dir.path(),
        &[
            "build",
            "--addr",
            &addr,
            "-t",
            "example.invalid/x:1",
            "--push",
            "https://example.invalid/ctx.tar",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!("cannot connect to {addr}")),
        "{stderr}"
    );
}

/// A CA, a server certificate for `localhost` and a client certificate it signed, as PEM
/// files `ca.pem`, `server.pem`/`server.key`, `client.pem`/`client.key` in `dir`.
pub(crate) fn certificates(dir: &std::path::Path) {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
        IsCa, KeyPair,
    };
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    (ca_params.distinguished_name).push(DnType::CommonName, "hoist client test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    for (name, sans, usage) in [
        (
            "server",
            vec!["localhost".to_owned()],
            ExtendedKeyUsagePurpose::ServerAuth,
        ),
        ("client", Vec::new(), ExtendedKeyUsagePurpose::ClientAuth),
    ] {
        let mut params = CertificateParams::new(sans).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &ca).unwrap();
        std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
    }
}

#[test]
fn a_build_over_tcp_with_mutual_tls_needs_the_client_certificate() {
    let Some(registry) = TestRegistry::start() else {
        return;
    };
    let pki = tempfile::tempdir().unwrap();
    certificates(pki.path());
    let file = |name: &str| pki.path().join(name).display().to_string();
    let Some(daemon) = Daemon::start(&[
        "--addr",
        "tcp://127.0.0.1:0",
        "--tlscert",
        &file("server.pem"),
        "--tlskey",
        &file("server.key"),
        "--tlscacert",
        &file("ca.pem"),
    ]) else {
        return;
    };
    let port = daemon.tcp.as_deref().unwrap().rsplit_once(':').unwrap().1;
    let addr = format!("tcp://localhost:{port}");
    let files = FileServer::start().unwrap();
    files.serve(
        "/ctx.tar",
        Served::new(tar_of(&[
            ("Dockerfile", "FROM scratch\nCOPY a /\n"),
            ("a", "a\n"),
        ])),
    );
    let image = format!("{}/tls/x:1", registry.host());
    let url = files.url("/ctx.tar");
    let build = |tls: &[&str]| {
        let mut args = vec!["build", "--addr", &addr, "--progress", "quiet"];
        args.extend_from_slice(tls);
        args.extend(["-t", &image, "--push", &url]);
        hoist(daemon.dir.path(), &args)
    };
    let (ca, cert, key) = (file("ca.pem"), file("client.pem"), file("client.key"));
    let refused = build(&["--tlscacert", &ca]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    // Refused at the first call, before any build is sent.
    assert!(
        stderr.contains(&format!("cannot connect to {addr}")),
        "{stderr}"
    );
    let out = build(&["--tlscacert", &ca, "--tlscert", &cert, "--tlskey", &key]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "hoist build over mutual TLS failed:\n{stderr}"
    );
    assert!(
        manifest_digest(&registry.host(), "/v2/tls/x/manifests/1").is_some(),
        "nothing pushed"
    );

    // The same daemon as a remote builder with mTLS driver-opts: `ls` and `inspect` ask it
    // over TLS (BuildKit's Info: status, version, platforms), and a build goes there.
    let builders = pki.path().join("builders");
    let with_store = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_hoist"))
            .arg("--root")
            .arg(pki.path().join("client-state"))
            .args(args)
            .env("HOIST_BUILDERS_DIR", &builders)
            .env_remove("HOIST_BUILDER")
            .env_remove("BUILDX_BUILDER")
            .env_remove("BUILDKIT_PROGRESS")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    };
    let opts = format!("cacert={ca},cert={cert},key={key}");
    let (created, text) = with_store(&[
        "create",
        "--name",
        "tls",
        "--driver",
        "remote",
        "--driver-opt",
        &opts,
        &addr,
    ]);
    assert!(created, "{text}");
    let (listed, ls) = with_store(&["ls"]);
    assert!(listed, "{ls}");
    let node = ls
        .lines()
        .find(|l| l.contains(" tls0 "))
        .unwrap_or_default();
    let version = format!("hoist v{}", env!("CARGO_PKG_VERSION"));
    assert!(
        node.contains(" running ") && node.contains(&version) && node.contains("linux/"),
        "{ls}"
    );
    let (_, inspect) = with_store(&["inspect", "tls"]);
    assert!(
        inspect.contains("Status:           running\n")
            && inspect.contains(&format!("BuildKit version: {version}\n")),
        "{inspect}"
    );
    let (built, text) = with_store(&[
        "build",
        "--builder",
        "tls",
        "--progress",
        "quiet",
        "-t",
        &image,
        "--push",
        &url,
    ]);
    assert!(built, "{text}");
    // Without the client certificate the daemon refuses the handshake: inactive, and why.
    let only_ca = format!("cacert={ca}");
    let (created, text) = with_store(&[
        "create",
        "--name",
        "half",
        "--driver",
        "remote",
        "--driver-opt",
        &only_ca,
        &addr,
    ]);
    assert!(created, "{text}");
    let (_, inspect) = with_store(&["inspect", "half"]);
    let field = |key: &str| {
        inspect
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .map(str::trim)
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(field("Status:"), "inactive", "{inspect}");
    assert!(
        // TLS 1.3 reports the refusal after the handshake: the server's alert
        // (CertificateRequired) or the connection it closed, whichever arrives first.
        field("Error:").starts_with(&addr) && !inspect.contains("BuildKit version:"),
        "{inspect}"
    );
}

#[test]
fn a_failing_remote_build_shows_the_step_and_the_daemons_error() {
    let Some(registry) = TestRegistry::start() else {
        return;
    };
    let Some(daemon) = Daemon::start(&[]) else {
        return;
    };
    let files = FileServer::start().unwrap();
    files.serve(
        "/ctx.tar",
        Served::new(tar_of(&[(
            "Dockerfile",
            "FROM scratch\nCOPY missing.txt /\n",
        )])),
    );
    let image = format!("{}/fails/x:1", registry.host());
    let out = hoist(
        daemon.dir.path(),
        &[
            "build",
            "--addr",
            &daemon.addr(),
            "--progress",
            "plain",
            "-t",
            &image,
            "--push",
            &files.url("/ctx.tar"),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with('#') && l.ends_with("[1/1] COPY missing.txt /")),
        "{stderr}"
    );
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("ERROR: ") && last.contains("missing.txt"),
        "{stderr}"
    );
    assert!(manifest_digest(&registry.host(), "/v2/fails/x/manifests/1").is_none());
}

#[test]
fn a_remote_builder_with_one_node_builds_on_its_daemon() {
    let Some(registry) = TestRegistry::start() else {
        return;
    };
    let Some(daemon) = Daemon::start(&[]) else {
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
    let builders = daemon.dir.path().join("builders");
    let with_store = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_hoist"))
            .arg("--root")
            .arg(daemon.dir.path().join("client-state"))
            .args(args)
            .env("HOIST_BUILDERS_DIR", &builders)
            .env_remove("HOIST_BUILDER")
            .env_remove("BUILDX_BUILDER")
            .env_remove("BUILDKIT_PROGRESS")
            .output()
            .unwrap()
    };
    let addr = daemon.addr();
    let created = with_store(&["create", "--name", "far", "--driver", "remote", &addr]);
    assert!(created.status.success(), "{created:?}");
    let image = format!("{}/builder/x:1", registry.host());
    let built = with_store(&[
        "build",
        "--builder",
        "far",
        "--progress",
        "plain",
        "-t",
        &image,
        "--push",
        &files.url("/ctx.tar"),
    ]);
    let stderr = String::from_utf8_lossy(&built.stderr);
    assert!(built.status.success(), "{stderr}");
    assert!(stderr.contains("[1/1] COPY a.txt /"), "{stderr}");
    assert!(
        manifest_digest(&registry.host(), "/v2/builder/x/manifests/1").is_some(),
        "nothing pushed"
    );
    // It ran in the daemon: its state dir holds the cache records, the client's none.
    let records = |state: &str| {
        std::fs::read_dir(daemon.dir.path().join(state).join("engine/cache"))
            .map(|entries| entries.count())
            .unwrap_or(0)
    };
    assert!(records("state") > 0, "the daemon recorded nothing");
    assert_eq!(records("client-state"), 0, "the client built locally");
}
