//! The unmodified docker CLI (`/usr/bin/docker`, Debian's 20.10) with `DOCKER_BUILDKIT=1`
//! against hoistd's Engine API front door (`--engine-addr`): BuildKit's Dockerfile
//! integration cases exported with `-o type=local` and `-o type=tar` (with `--build-arg`,
//! `--target`, `-f`, `--platform`), checked against the cases' expectations and against
//! what the same CLI gets from dockerd when it runs; an incremental context transfer of
//! 20,000 files; a Dockerfile warning in the build trace (which this CLI skips); and the
//! front door's bad inputs. Skipped with a message when not root,
//! without the docker CLI, `docker-registry` or the busybox images.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use hoist_testkit::images::BaseImages;
use hoist_testkit::integration::{Export, IntegrationCase, Run};
use hoist_testkit::registry::TestRegistry;
use hoist_testkit::trees::{dir_tree as tree, tar_tree};

use crate::Daemon;

const DOCKER: &str = "/usr/bin/docker";

/// Cases dockerd 20.10's BuildKit (0.8, a Dockerfile frontend of 2020) builds differently
/// from today's BuildKit, or cannot build at all: hoistd's result is checked against the
/// case's own expectations only. The reason for each is what dockerd does with it.
const NOT_COMPARED: &[(&str, &str)] = &[
    (
        "07-copy-chmod",
        "COPY --chmod on BuildKit 0.8 keeps modes the later versions set",
    ),
    (
        "14-copy-parents",
        "BuildKit 0.8: COPY --parents is an unknown flag",
    ),
    (
        "15-copy-parents-pivot",
        "BuildKit 0.8: COPY --parents and `/./` pivots unknown",
    ),
    (
        "16-copy-exclude",
        "BuildKit 0.8: COPY --exclude is an unknown flag",
    ),
    ("17-heredoc-copy", "BuildKit 0.8 has no heredocs"),
    ("18-heredoc-copy-escapes", "BuildKit 0.8 has no heredocs"),
    ("19-heredoc-indent-chomp", "BuildKit 0.8 has no heredocs"),
    (
        "20-heredoc-variable-expansion",
        "BuildKit 0.8 has no heredocs",
    ),
    ("21-heredoc-run-basic", "BuildKit 0.8 has no heredocs"),
    (
        "23-arg-required-default",
        "BuildKit 0.8 fails ${FOO:?..} although FOO has a default",
    ),
    (
        "26-arg-default-in-env",
        "BuildKit 0.8 has no ${var#prefix} substitution",
    ),
    (
        "28-arg-targetstage",
        "the TARGETSTAGE build arg came after BuildKit 0.8",
    ),
    (
        "39-default-entrypoint-shell-and-path",
        "dockerd 20.10 takes one --platform per build",
    ),
    (
        "42-copy-from-later-stage-error",
        "BuildKit 0.8 builds a COPY --from of a later stage",
    ),
];

/// Cases never sent to dockerd: they stop it (for every other user of the daemon too).
const NOT_ON_DOCKERD: &[(&str, &str)] = &[(
    "43-no-stages-error",
    "BuildKit 0.8's frontend panics on a Dockerfile without FROM (index out of range in \
     lastTarget) and dockerd exits",
)];

/// Cases hoistd does not pass yet through the CLI, with the reason (`CASE  reason` lines).
const KNOWN_FAILURES: &str = include_str!("docker_cli_conformance_known_failures.txt");

/// A registry with busybox and a daemon serving the Engine API, reaching that registry.
struct Env {
    registry: TestRegistry,
    daemon: Daemon,
    work: tempfile::TempDir,
}

impl Env {
    fn new() -> Option<Env> {
        Env::with_auth(None)
    }

    /// [`Env::new`], the registry asking for Basic auth `user:password` when given.
    fn with_auth(auth: Option<(&str, &str)>) -> Option<Env> {
        if std::fs::metadata("/proc/self")
            .map(|m| m.uid())
            .unwrap_or(1)
            != 0
        {
            hoist_testkit::skip("hoistd builds run RUN steps in namespaces and chown: needs root");
            return None;
        }
        if !Path::new(DOCKER).exists() {
            hoist_testkit::skip("the docker CLI tests need /usr/bin/docker (Debian's docker.io)");
            return None;
        }
        let images = BaseImages::get()?;
        let registry = match auth {
            Some((user, password)) => TestRegistry::start_with_basic_auth(user, password)?,
            None => TestRegistry::start()?,
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            images.push(&registry).await.unwrap();
            images
                .push_repositories(&registry, &hoist_testkit::images::ALPINE_STAND_IN)
                .await
                .unwrap();
        });
        let work = tempfile::Builder::new()
            .prefix("hoistd-docker-cli-")
            .tempdir()
            .unwrap();
        let config = work.path().join("hoistd.toml");
        std::fs::write(
            &config,
            format!("[registry.\"{}\"]\nhttp = true\n", registry.host()),
        )
        .unwrap();
        std::fs::create_dir_all(work.path().join("docker-config")).unwrap();
        let daemon = Daemon::start_with(&[
            "--config",
            config.to_str().unwrap(),
            "--engine-addr",
            "unix://{dir}/run/engine.sock",
            "--session-timeout",
            "20",
        ]);
        Some(Env {
            registry,
            daemon,
            work,
        })
    }

    fn engine(&self) -> PathBuf {
        self.daemon.dir.path().join("run/engine.sock")
    }

    fn base(&self) -> String {
        format!("{}/busybox:latest", self.host())
    }

    fn host(&self) -> String {
        self.registry.host()
    }

    /// `docker ARGS` in `cwd`, against hoistd (`engine`) or dockerd (`None`).
    fn docker(&self, engine: Option<&Path>, cwd: &Path, args: &[&str]) -> Output {
        let mut command = Command::new(DOCKER);
        command
            .args(args)
            .current_dir(cwd)
            .env("DOCKER_BUILDKIT", "1")
            .env("DOCKER_CONFIG", self.work.path().join("docker-config"))
            .env_remove("DOCKER_CONTEXT")
            .env_remove("BUILDKIT_PROGRESS");
        match engine {
            Some(socket) => command.env("DOCKER_HOST", format!("unix://{}", socket.display())),
            None => command.env_remove("DOCKER_HOST"),
        };
        command.output().unwrap()
    }

    fn fresh(&self, name: &str) -> PathBuf {
        let path = self.work.path().join(name);
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        path
    }
}

fn dockerd_up() -> bool {
    let up = Command::new(DOCKER)
        .arg("info")
        .env_remove("DOCKER_HOST")
        .output()
        .is_ok_and(|out| out.status.success());
    if !up {
        hoist_testkit::skip("dockerd is down: the comparison with dockerd's results is skipped");
    }
    up
}

/// `FROM busybox` / `alpine` (and `--from=`) taken from the test registry at `host`, which
/// has busybox (also as `alpine`, a stand-in for Dockerfiles needing only a shell), tags
/// and names spelt through build args (`busybox:${tag}`, `busy$a2`) kept.
fn rewrite_base(dockerfile: &str, host: &str) -> String {
    let image = |token: &str| {
        let name = token
            .trim_start_matches("docker.io/")
            .trim_start_matches("library/");
        (name.starts_with("busy") || name == "alpine" || name.starts_with("alpine:"))
            .then(|| format!("{host}/{name}"))
    };
    dockerfile
        .lines()
        .map(|line| {
            let trimmed = line.trim_start();
            let is_from = trimmed
                .get(..5)
                .is_some_and(|w| w.eq_ignore_ascii_case("from "));
            if !is_from && !line.contains("--from=") {
                return line.to_owned();
            }
            line.split(' ')
                .map(|token| {
                    if let Some(from) = token.strip_prefix("--from=") {
                        if let Some(image) = image(from) {
                            return format!("--from={image}");
                        }
                    } else if is_from {
                        if let Some(image) = image(token) {
                            return image;
                        }
                    }
                    token.to_owned()
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// How a run is exported through the CLI: `type=local` when the case checks files, else
/// `type=tar` (the docker CLI 20.10 has no other output type: image configs and OCI layouts
/// of `image`/`oci` runs are not reachable on this path, their builds are).
fn exports_locally(run: &Run) -> bool {
    matches!(run.export, Some(Export::Local))
}

/// Builds one run of `case` through `engine` (hoistd) or dockerd (`None`): the Dockerfile
/// (rewritten for the test registry, in its place in the materialised case, so its name
/// and `.dockerignore` neighbours hold) given with `-f`; the export's path, or the CLI's
/// output when the build failed.
fn build_case(
    env: &Env,
    engine: Option<&Path>,
    case: &IntegrationCase,
    run_index: usize,
    label: &str,
) -> Result<PathBuf, String> {
    let ctx = case.materialize().unwrap();
    let run = &case.runs[run_index];
    let dockerfile = ctx.dockerfile(case, run);
    let text = std::fs::read_to_string(&dockerfile).unwrap();
    std::fs::write(&dockerfile, rewrite_base(&text, &env.host())).unwrap();
    let out = env.fresh(&format!("{}-{run_index}-{label}-out", case.id));
    std::fs::remove_dir(&out).unwrap();
    let output = if exports_locally(run) {
        format!("type=local,dest={}", out.display())
    } else {
        format!("type=tar,dest={}", out.display())
    };
    let mut args = vec![
        "build".to_owned(),
        "--progress=plain".to_owned(),
        // Every step runs now on both daemons: a step's output may hold the day (adduser
        // writes the days since 1970 into /etc/shadow), and dockerd's cache outlives it.
        "--no-cache".to_owned(),
        // dockerd here has no bridge network: RUN steps use the host's.
        "--network=host".to_owned(),
        "-f".to_owned(),
        dockerfile.display().to_string(),
        "-o".to_owned(),
        output,
    ];
    args.extend(run.frontend_attrs.cli_flags());
    args.push(".".to_owned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = env.docker(engine, ctx.context(), &args);
    if output.status.success() {
        Ok(out)
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

/// The last few non-empty lines of a text, joined, for a failure reason.
fn last_lines(text: &str) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(3)..].join(" | ")
}

/// What an export holds, for comparing two daemons' (a directory or a tar).
fn export_tree(run: &Run, out: &Path) -> BTreeMap<String, String> {
    if exports_locally(run) {
        tree(out)
    } else {
        tar_tree(out)
    }
}

/// The differences between two trees, one line each (empty when equal).
fn differences(ours: &BTreeMap<String, String>, theirs: &BTreeMap<String, String>) -> String {
    let mut out = Vec::new();
    for (path, line) in ours {
        match theirs.get(path) {
            Some(other) if other == line => {}
            Some(other) => out.push(format!("{path}: hoistd {line} / dockerd {other}")),
            None => out.push(format!("{path}: only hoistd has it ({line})")),
        }
    }
    for (path, line) in theirs {
        if !ours.contains_key(path) {
            out.push(format!("{path}: only dockerd has it ({line})"));
        }
    }
    out.join("; ")
}

/// One run through hoistd, checked against its expectations and, unless `compare` is
/// false, against dockerd's result of the same CLI command.
fn conformance_run(
    env: &Env,
    case: &IntegrationCase,
    index: usize,
    compare: bool,
) -> Result<(), String> {
    let run = &case.runs[index];
    let result = build_case(env, Some(&env.engine()), case, index, "hoistd");
    let ours = match (result, run.expect_success) {
        (Err(err), false) => {
            for part in &run.expect_error_contains {
                if !err.contains(part.as_str()) {
                    return Err(format!("error lacks {part:?}: {}", last_lines(&err)));
                }
            }
            None
        }
        (Ok(_), false) => return Err("hoistd built it, an error was expected".into()),
        (Err(err), true) => return Err(format!("hoistd failed: {}", last_lines(&err))),
        (Ok(out), true) => {
            if exports_locally(run) {
                run.check_local(&out)?;
            } else if !out.is_file() {
                return Err(format!("no tar at {}", out.display()));
            }
            Some(out)
        }
    };
    if !compare {
        return Ok(());
    }
    match (build_case(env, None, case, index, "dockerd"), ours) {
        (Ok(theirs), Some(ours)) => {
            let diff = differences(&export_tree(run, &ours), &export_tree(run, &theirs));
            if !diff.is_empty() {
                return Err(format!("hoistd's export differs from dockerd's: {diff}"));
            }
        }
        (Err(_), None) => {}
        (Ok(_), None) => return Err("dockerd built it, hoistd failed as expected".into()),
        (Err(err), Some(_)) => {
            return Err(format!(
                "dockerd failed (list the case in NOT_COMPARED?): {}",
                last_lines(&err)
            ))
        }
    }
    Ok(())
}

/// Every run of every case (46) through the docker CLI → hoistd's Engine API, with
/// `-o type=local` (runs checking files) or `-o type=tar` (the others), checked against
/// the case's expectations and against what the same CLI gets from dockerd. A case failing
/// that is not in `docker_cli_conformance_known_failures.txt`, or a listed one passing,
/// fails the test.
#[test]
#[allow(clippy::print_stdout)] // conformance runners print their counts
fn docker_cli_conformance_builds_every_integration_case_as_dockerd_does() {
    let Some(env) = Env::new() else { return };
    let Some(cases) = hoist_testkit::integration::cases() else {
        return;
    };
    let compare = dockerd_up();
    let known = hoist_testkit::integration::known_failures(KNOWN_FAILURES);
    let listed = NOT_COMPARED.iter().chain(NOT_ON_DOCKERD).map(|(id, _)| *id);
    for id in known.keys().map(String::as_str).chain(listed) {
        assert!(
            cases.iter().any(|case| case.id == id),
            "{id} is listed but is not a case"
        );
    }
    let mut failing = Vec::new();
    for case in &cases {
        let mut reasons = Vec::new();
        let compared = compare
            && !NOT_COMPARED
                .iter()
                .chain(NOT_ON_DOCKERD)
                .any(|(id, _)| *id == case.id);
        for index in 0..case.runs.len() {
            let started = std::time::Instant::now();
            let result = conformance_run(&env, case, index, compared);
            let took = started.elapsed().as_secs_f32();
            match result {
                Ok(()) => println!("ok   {} run {index} ({took:.1}s)", case.id),
                Err(reason) => {
                    println!("FAIL {} run {index} ({took:.1}s): {reason}", case.id);
                    reasons.push(format!("run {index}: {reason}"));
                }
            }
        }
        if !reasons.is_empty() {
            failing.push((case.id.clone(), reasons));
        }
    }
    println!(
        "docker CLI → hoistd: {}/{} passed",
        cases.len() - failing.len(),
        cases.len()
    );
    for (id, reasons) in &failing {
        let listed = if known.contains_key(id) {
            "known"
        } else {
            "NEW"
        };
        println!("  [{listed}] {id}: {}", reasons.join("; "));
    }
    let (unexpected, fixed) = hoist_testkit::integration::unexpected_and_fixed(&failing, &known);
    assert!(
        unexpected.is_empty() && fixed.is_empty(),
        "failing, not in docker_cli_conformance_known_failures.txt: {unexpected:?}; \
         listed there but passing (remove them, and from docs/dev/conformance.md): {fixed:?}\n{}",
        env.daemon.stderr()
    );
}

/// `-o type=tar` with `--build-arg`, `--platform` and a `.dockerignore` on one build,
/// through hoistd and dockerd: the same entries, and ignored files never sent.
#[test]
fn docker_cli_tar_export_with_build_args_and_platform_as_dockerd_does() {
    let Some(env) = Env::new() else { return };
    let compare = dockerd_up();
    // -o type=tar, --build-arg and --platform on one build, both daemons.
    let ctx = env.fresh("tar-ctx");
    std::fs::write(ctx.join("a.txt"), "alpha\n").unwrap();
    std::fs::set_permissions(ctx.join("a.txt"), std::fs::Permissions::from_mode(0o640)).unwrap();
    // Ignored files are not even sent: the client applies .dockerignore.
    std::fs::write(ctx.join(".dockerignore"), "ignored*\n").unwrap();
    std::fs::write(ctx.join("ignored.txt"), "secret\n").unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM {}\nARG WHICH\nARG TARGETPLATFORM\nCOPY a.txt /a.txt\n\
             COPY . /ctx/\n\
             RUN echo \"$WHICH $TARGETPLATFORM\" > /which && ln -s a.txt /link\n",
            env.base()
        ),
    )
    .unwrap();
    let mut tars = Vec::new();
    let engines: Vec<Option<PathBuf>> = if compare {
        vec![Some(env.engine()), None]
    } else {
        vec![Some(env.engine())]
    };
    for (n, engine) in engines.iter().enumerate() {
        let tar_path = env.work.path().join(format!("out-{n}.tar"));
        let output = env.docker(
            engine.as_deref(),
            &ctx,
            &[
                "build",
                "--network=host",
                "--build-arg",
                "WHICH=chosen",
                "--platform",
                "linux/amd64",
                "-o",
                &format!("type=tar,dest={}", tar_path.display()),
                ".",
            ],
        );
        assert!(
            output.status.success(),
            "tar build failed: {}\n{}",
            String::from_utf8_lossy(&output.stderr),
            env.daemon.stderr()
        );
        tars.push(tar_tree(&tar_path));
    }
    let ours = &tars[0];
    assert!(ours.contains_key("ctx/a.txt") && !ours.contains_key("ctx/ignored.txt"));
    let session_dirs = env.daemon.state_dir().join("hoistd/session-dirs");
    let mut stack = vec![session_dirs.clone()];
    let mut sent_a = false;
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            assert_ne!(entry.file_name(), "ignored.txt", "sent although ignored");
            sent_a |= entry.file_name() == "a.txt";
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            }
        }
    }
    assert!(
        sent_a,
        "the context's copy is under {}",
        session_dirs.display()
    );
    assert!(ours["which"].contains(hoist_oci::Digest::sha256_of(b"chosen linux/amd64\n").encoded()));
    assert!(ours["a.txt"].contains(" 640 "), "{}", ours["a.txt"]);
    assert!(ours["link"].ends_with(" a.txt"), "{}", ours["link"]);
    if let Some(theirs) = tars.get(1) {
        assert_eq!(ours, theirs, "hoistd's tar export differs from dockerd's");
    }
}

#[test]
fn a_rebuild_after_touching_one_file_of_20000_receives_that_file() {
    let Some(env) = Env::new() else { return };
    let ctx = env.fresh("big");
    for dir in 0..100 {
        let sub = ctx.join(format!("d{dir:03}"));
        std::fs::create_dir(&sub).unwrap();
        for file in 0..200 {
            std::fs::write(sub.join(format!("f{file:03}")), format!("{dir} {file}\n")).unwrap();
        }
    }
    std::fs::write(ctx.join("Dockerfile"), "FROM scratch\nCOPY d042/f007 /f\n").unwrap();
    let build = |n: usize| {
        let out = env.work.path().join(format!("big-out-{n}"));
        let output = env.docker(
            Some(&env.engine()),
            &ctx,
            &[
                "build",
                "-o",
                &format!("type=local,dest={}", out.display()),
                ".",
            ],
        );
        assert!(
            output.status.success(),
            "{}\n{}",
            String::from_utf8_lossy(&output.stderr),
            env.daemon.stderr()
        );
        std::fs::read_to_string(out.join("f")).unwrap()
    };
    assert_eq!(build(1), "42 7\n");
    // Touched (a new mtime) and changed: only that file moves.
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(ctx.join("d042/f007"))
        .unwrap();
    file.write_all(b"more\n").unwrap();
    drop(file);
    assert_eq!(build(2), "42 7\nmore\n");
    env.daemon.stderr_with("20000 unchanged");
    // Nothing changed: nothing moves, and the build reads the copy as the last one left it.
    assert_eq!(build(3), "42 7\nmore\n");
    let log = env.daemon.stderr_with("20001 unchanged");
    let transfers: Vec<&str> = log.lines().filter(|l| l.contains(" context: ")).collect();
    assert_eq!(transfers.len(), 3, "{log}");
    assert!(
        transfers[0].ends_with("context: 20001 files received, 0 unchanged, 0 removed"),
        "{}",
        transfers[0]
    );
    assert!(
        transfers[1].ends_with("context: 1 files received, 20000 unchanged, 0 removed"),
        "{}",
        transfers[1]
    );
    assert!(
        transfers[2].ends_with("context: 0 files received, 20001 unchanged, 0 removed"),
        "{}",
        transfers[2]
    );
}

#[test]
fn the_engine_api_survives_garbage_and_answers_ping_and_version() {
    let Some(env) = Env::new() else { return };
    let engine = env.engine();
    // Garbage, then an HTTP/1 request with an absurd header, then a half request.
    for junk in [
        &b"\x00\xff\x13garbage\r\n\r\n"[..],
        b"GET /_ping HTTP/1.1\r\nHost: x\r\nX: \x01\x02\r\n\r\n",
        b"POST /v1.41/build?version=2 HTTP/1.1\r\nContent-Length: 10\r\n",
    ] {
        let mut stream = std::os::unix::net::UnixStream::connect(&engine).unwrap();
        let _ = stream.write_all(junk);
        let _ = stream.shutdown(std::net::Shutdown::Write);
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
    }
    let mut stream = std::os::unix::net::UnixStream::connect(&engine).unwrap();
    stream
        .write_all(b"GET /v1.41/_ping HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let lower = answer.to_ascii_lowercase();
    assert!(lower.contains("api-version: 1.41"), "{answer}");
    assert!(lower.contains("builder-version: 2"), "{answer}");
    let output = env.docker(
        Some(&engine),
        env.work.path(),
        &["version", "--format", "{{.Server.APIVersion}}"],
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "1.41");
    // The classic builder is refused with a message naming BuildKit.
    let ctx = env.fresh("classic");
    std::fs::write(ctx.join("Dockerfile"), "FROM scratch\n").unwrap();
    let output = Command::new(DOCKER)
        .args(["build", "."])
        .current_dir(&ctx)
        .env("DOCKER_BUILDKIT", "0")
        .env("DOCKER_CONFIG", env.work.path().join("docker-config"))
        .env("DOCKER_HOST", format!("unix://{}", engine.display()))
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("DOCKER_BUILDKIT=1"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(env.daemon.stderr_with("engine api").contains("engine api"));
}

#[test]
fn build_cancel_ends_a_build_and_a_killed_cli_leaves_the_daemon_serving() {
    let Some(env) = Env::new() else { return };
    let engine = env.engine();
    // A build waiting for a session that never opens, cancelled by its build id.
    let mut waiting = std::os::unix::net::UnixStream::connect(&engine).unwrap();
    waiting
        .set_read_timeout(Some(std::time::Duration::from_secs(120)))
        .unwrap();
    waiting
        .write_all(
            b"POST /v1.41/build?version=2&buildid=b1&session=nosuch&remote=client-session HTTP/1.1\r\n\
              Host: docker\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
    let mut head = [0u8; 12];
    waiting.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    let mut cancel = std::os::unix::net::UnixStream::connect(&engine).unwrap();
    cancel
        .write_all(
            b"POST /v1.41/build/cancel?id=b1 HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
    let mut answer = String::new();
    cancel.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // The build's stream ends (well before the 20 s session timeout would end it).
    let mut rest = String::new();
    waiting.read_to_string(&mut rest).unwrap();
    assert!(!rest.contains("did not open"), "{rest}");
    assert!(env
        .daemon
        .stderr_with("cancelling build b1")
        .contains("cancelling build b1"));

    // The CLI killed while it sends a context: the next build of it is whole.
    let ctx = env.fresh("killed");
    for dir in 0..20 {
        let sub = ctx.join(format!("d{dir:02}"));
        std::fs::create_dir(&sub).unwrap();
        for file in 0..250 {
            std::fs::write(sub.join(format!("f{file:03}")), vec![b'x'; 4096]).unwrap();
        }
    }
    std::fs::write(ctx.join("Dockerfile"), "FROM scratch\nCOPY d07 /d07\n").unwrap();
    let out = env.work.path().join("killed-out");
    let dest = format!("type=local,dest={}", out.display());
    let mut child = Command::new(DOCKER)
        .args(["build", "-q", "-o", &dest, "."])
        .current_dir(&ctx)
        .env("DOCKER_BUILDKIT", "1")
        .env("DOCKER_CONFIG", env.work.path().join("docker-config"))
        .env("DOCKER_HOST", format!("unix://{}", engine.display()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Killed once its session is open (the transfer is then under way or about to be).
    let opened = |log: &str| log.matches(") opened, serving").count();
    let before = opened(&env.daemon.stderr());
    while opened(&env.daemon.stderr()) == before && child.try_wait().unwrap().is_none() {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
    let output = env.docker(Some(&engine), &ctx, &["build", "-q", "-o", &dest, "."]);
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stderr),
        env.daemon.stderr()
    );
    assert_eq!(std::fs::read_dir(out.join("d07")).unwrap().count(), 250);
    assert_eq!(
        std::fs::read(out.join("d07/f249")).unwrap(),
        vec![b'x'; 4096]
    );
    // Nothing half-written is left in the daemon's copy of the context.
    let mut stack = vec![env.daemon.state_dir().join("hoistd/session-dirs")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            assert!(
                !name.ends_with(".hoist-partial"),
                "{name} left in {}",
                dir.display()
            );
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            }
        }
    }
}

#[test]
fn concurrent_builds_sharing_a_key_each_get_their_own_context() {
    let Some(env) = Env::new() else { return };
    // The CLI names the shared key after the context argument (`.`): these contexts
    // share one, so the daemon's copy of it is taken in turn.
    let children: Vec<_> = (0..3)
        .map(|n| {
            let ctx = env.fresh(&format!("shared-{n}"));
            for file in 0..300 {
                std::fs::write(ctx.join(format!("f{file:03}")), format!("{n}\n")).unwrap();
            }
            std::fs::write(ctx.join("Dockerfile"), "FROM scratch\nCOPY . /\n").unwrap();
            let out = env.work.path().join(format!("shared-out-{n}"));
            let child = Command::new(DOCKER)
                .args([
                    "build",
                    "-q",
                    "-o",
                    &format!("type=local,dest={}", out.display()),
                    ".",
                ])
                .current_dir(&ctx)
                .env("DOCKER_BUILDKIT", "1")
                .env("DOCKER_CONFIG", env.work.path().join("docker-config"))
                .env("DOCKER_HOST", format!("unix://{}", env.engine().display()))
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            (n, out, child)
        })
        .collect();
    for (n, out, child) in children {
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{}\n{}",
            String::from_utf8_lossy(&output.stderr),
            env.daemon.stderr()
        );
        for file in 0..300 {
            let got = std::fs::read_to_string(out.join(format!("f{file:03}"))).unwrap();
            assert_eq!(got, format!("{n}\n"), "build {n}, f{file:03}");
        }
    }
}

#[test]
fn secrets_of_the_cli_reach_run_mounts_and_no_log() {
    let Some(env) = Env::new() else { return };
    let ctx = env.fresh("secret");
    let secret = env.work.path().join("secret.txt");
    std::fs::write(&secret, "s3cret-value-17").unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM {}\nRUN --mount=type=secret,id=tok wc -c < /run/secrets/tok > /len\n\
             RUN --mount=type=secret,id=absent test ! -e /run/secrets/absent\n",
            env.base()
        ),
    )
    .unwrap();
    let out = env.work.path().join("secret-out");
    let output = env.docker(
        Some(&env.engine()),
        &ctx,
        &[
            "build",
            "--progress=plain",
            "--network=host",
            "--secret",
            &format!("id=tok,src={}", secret.display()),
            "-o",
            &format!("type=local,dest={}", out.display()),
            ".",
        ],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}\n{}", env.daemon.stderr());
    assert_eq!(
        std::fs::read_to_string(out.join("len")).unwrap().trim(),
        "15"
    );
    assert!(!std::path::Path::new(&out.join("run/secrets/tok")).exists());
    assert!(!env.daemon.stderr().contains("s3cret"));
    assert!(!stderr.contains("s3cret"));
}

#[test]
fn registry_credentials_come_from_the_clients_docker_config() {
    let Some(env) = Env::with_auth(Some(("builder", "pw-for-the-cli"))) else {
        return;
    };
    // The CLI's config has the registry's credentials; hoistd's own has none.
    let auth = base64_encode(b"builder:pw-for-the-cli");
    std::fs::write(
        env.work.path().join("docker-config/config.json"),
        format!(
            "{{\"auths\": {{\"{}\": {{\"auth\": \"{auth}\"}}}}}}",
            env.registry.host()
        ),
    )
    .unwrap();
    let ctx = env.fresh("auth");
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {}\nRUN echo ok > /ok\n", env.base()),
    )
    .unwrap();
    let out = env.work.path().join("auth-out");
    let dest = format!("type=local,dest={}", out.display());
    let args = ["build", "--network=host", "-o", &dest, "."];
    let output = env.docker(Some(&env.engine()), &ctx, &args);
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stderr),
        env.daemon.stderr()
    );
    assert_eq!(std::fs::read_to_string(out.join("ok")).unwrap(), "ok\n");
    assert!(!env.daemon.stderr().contains("pw-for-the-cli"));
    // Without them the registry refuses the pull.
    std::fs::write(env.work.path().join("docker-config/config.json"), "{}").unwrap();
    let output = env.docker(
        Some(&env.engine()),
        &ctx,
        &["build", "--no-cache", "--network=host", "-o", &dest, "."],
    );
    let stderr = String::from_utf8_lossy(&output.stderr).to_lowercase();
    assert!(!output.status.success());
    assert!(
        stderr.contains("401") || stderr.contains("unauthorized"),
        "{stderr}"
    );
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// `ssh-add` and the libraries it loads (with the loader's name), copied into `dir`.
fn ssh_add_tools(dir: &Path) -> Option<String> {
    let ldd = Command::new("ldd").arg("/usr/bin/ssh-add").output().ok()?;
    std::fs::create_dir_all(dir).ok()?;
    std::fs::copy("/usr/bin/ssh-add", dir.join("ssh-add")).ok()?;
    let mut loader = None;
    for line in String::from_utf8_lossy(&ldd.stdout).lines() {
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        let Some(path) = path.filter(|p| p.starts_with('/')) else {
            continue;
        };
        let name = Path::new(path).file_name()?.to_string_lossy().into_owned();
        std::fs::copy(path, dir.join(&name)).ok()?;
        if name.starts_with("ld-linux") {
            loader = Some(name);
        }
    }
    loader
}

#[test]
fn the_clis_ssh_agent_is_forwarded_to_run_mounts() {
    if !Path::new("/usr/bin/ssh-agent").is_file() || !Path::new("/usr/bin/ssh-add").is_file() {
        hoist_testkit::skip("openssh-client is not installed: the ssh forwarding test is skipped");
        return;
    }
    let Some(env) = Env::new() else { return };
    let ctx = env.fresh("ssh");
    let Some(loader) = ssh_add_tools(&ctx.join("tools")) else {
        hoist_testkit::skip("cannot copy ssh-add with its libraries");
        return;
    };
    let keys = env.fresh("ssh-keys");
    let key = keys.join("id_ed25519");
    let made = Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "hoistd-forwarded",
            "-f",
        ])
        .arg(&key)
        .status()
        .unwrap();
    assert!(made.success());
    let agent = hoist_testkit::git::SshAgent::start(&keys).unwrap();
    // ssh-agent's socket exists a moment before it listens (bind, then listen).
    let mut added = agent.add(&key);
    for _ in 0..100 {
        if added.is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        added = agent.add(&key);
    }
    added.unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM {}\nCOPY tools /tools\n\
             RUN --mount=type=ssh /tools/{loader} --library-path /tools /tools/ssh-add -l > /keys\n",
            env.base()
        ),
    )
    .unwrap();
    let out = env.work.path().join("ssh-out");
    let ssh = format!("default={}", agent.socket().display());
    let output = env.docker(
        Some(&env.engine()),
        &ctx,
        &[
            "build",
            "--progress=plain",
            "--network=host",
            "--ssh",
            &ssh,
            "-o",
            &format!("type=local,dest={}", out.display()),
            ".",
        ],
    );
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stderr),
        env.daemon.stderr()
    );
    let listed = std::fs::read_to_string(out.join("keys")).unwrap();
    assert!(listed.contains("hoistd-forwarded"), "{listed}");
}

/// Relays connections on `listen` to the unix socket `target`, keeping what the target
/// answered (all connections' bytes, appended as they come).
fn recording_relay(listen: &Path, target: &Path) -> std::sync::Arc<std::sync::Mutex<Vec<u8>>> {
    use std::os::unix::net::{UnixListener, UnixStream};
    let answers = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let listener = UnixListener::bind(listen).unwrap();
    let target = target.to_path_buf();
    let recorded = std::sync::Arc::clone(&answers);
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { return };
            let Ok(server) = UnixStream::connect(&target) else {
                return;
            };
            let (mut client_read, mut server_write) =
                (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut client_read, &mut server_write);
                let _ = server_write.shutdown(std::net::Shutdown::Write);
            });
            let recorded = std::sync::Arc::clone(&recorded);
            let (mut server_read, mut client_write) = (server, client);
            std::thread::spawn(move || {
                let mut buf = [0u8; 16384];
                loop {
                    let n = match server_read.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    recorded.lock().unwrap().extend_from_slice(&buf[..n]);
                    if client_write.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = client_write.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    answers
}

#[test]
fn a_dockerfile_warning_in_the_build_trace_leaves_docker_20_10_building() {
    use base64::Engine as _;
    use hoist_proto::prost::Message as _;
    let Some(env) = Env::new() else { return };
    let ctx = env.fresh("warning-ctx");
    // `COPY` continues over the empty line 3 and ends on line 4.
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nCOPY a.txt \\\n\n /\n",
    )
    .unwrap();
    std::fs::write(ctx.join("a.txt"), "alpha\n").unwrap();
    let relay = env.work.path().join("relay.sock");
    let answers = recording_relay(&relay, &env.engine());
    let out = env.fresh("warning-out");
    let dest = format!("type=local,dest={}", out.display());
    let output = env.docker(
        Some(&relay),
        &ctx,
        &["build", "--progress=plain", "-o", &dest, "."],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    // Debian's docker 20.10 (BuildKit 0.8's printer) knows no warnings: it skips them and
    // the build succeeds as without one.
    assert!(output.status.success(), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(out.join("a.txt")).unwrap(),
        "alpha\n"
    );
    assert!(!stderr.contains("WARN"), "{stderr}");
    // The trace messages carried it, as BuildKit's StatusResponse bytes.
    let answers = String::from_utf8_lossy(&answers.lock().unwrap()).into_owned();
    let warnings: Vec<String> = answers
        .split("\"aux\":\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .filter_map(|aux| base64::engine::general_purpose::STANDARD.decode(aux).ok())
        .filter_map(|bytes| hoist_proto::control::StatusResponse::decode(&bytes[..]).ok())
        .flat_map(|status| status.warnings)
        .map(|w| String::from_utf8_lossy(&w.short).into_owned())
        .collect();
    assert_eq!(
        warnings,
        ["NoEmptyContinuation: Empty continuation line (line 4)"],
        "{answers}"
    );
}
