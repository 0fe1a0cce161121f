//! hoist → hoistd through the BuildKit session with LOCAL contexts (the context and
//! Dockerfile directories sent by hoist's file-sync sender, outputs streamed back, secrets
//! asked from the client). Real `hoistd` processes (`build_remote::Daemon`), base images
//! from a `BuildEnv` registry (hoistd takes its registries.toml, shaped like buildkitd.toml).
//!
//! - over the unix socket, BuildKit's Dockerfile integration cases (with `-f`, `--target`,
//!   `--build-arg`, RUN steps, `.dockerignore`) give the same `-o type=local` files as the
//!   embedded engine (but for owners: the session's receiver gives files to the caller, as
//!   BuildKit's client does); a context with a `.dockerignore`, a RUN and a `--secret` gives the
//!   same `-o type=tar` entries, the secret reaches the RUN mount, ignored files do not;
//! - over tcp with mutual TLS, a 3-platform (QEMU) `--push` of a local context gives one
//!   index of three manifests; without a client certificate the connection is refused and
//!   no session opened;
//! - a 20,000-file context built twice, one file touched between: hoistd logs that the
//!   second build received that one file;
//! - a `remote` builder of three unix-socket nodes builds a local context (a session per
//!   node) and pushes one index;
//! - a context snapshot that shares hoistd's copy of the files keeps its bytes when the
//!   client's file changes (the receiver never writes into a file it wrote);
//! - a restarted hoistd (its copies' listings gone) reads its copy from disk and builds the
//!   changed file, and finds the first build's cache for the first content again.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;

use crate::build_env::BuildEnv;
use crate::build_remote::{certificates, Daemon};
use hoist_testkit::trees::{dir_tree as tree, tar_tree};

/// Cases with copies, RUN steps, `--target`, `--build-arg`, `-f` and `.dockerignore`.
const CASES: &[&str] = &[
    "02-copy-relative-to-workdir",
    "08-copy-chown",
    "12-copy-symlink-sources",
    "21-heredoc-run-basic",
    "22-arg-global-in-from",
    "24-arg-multiple-per-line",
    "26-arg-default-in-env",
    "28-arg-targetstage",
    "35-user-switching",
    "45-dockerignore",
    "46-dockerignore-per-dockerfile",
];

const PLATFORMS: [&str; 3] = ["linux/amd64", "linux/arm64", "linux/arm/v7"];

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A hoistd on a unix socket using `env`'s registries (`extra` flags added).
fn daemon(env: &BuildEnv, extra: &[&str]) -> Option<Daemon> {
    let config = env.config().display().to_string();
    let mut args = vec!["--config", config.as_str()];
    args.extend_from_slice(extra);
    Daemon::start(&args)
}

/// `hoist build --addr ADDR ARGS` (progress plain).
fn remote(env: &BuildEnv, addr: &str, args: &[&str]) -> Output {
    env.command(&["build", "--addr", addr, "--progress=plain"])
        .args(args)
        .output()
        .unwrap()
}

/// `hoist build ARGS` on the embedded engine.
fn embedded(env: &BuildEnv, args: &[&str]) -> Output {
    env.command(&["build", "--progress=plain"])
        .args(args)
        .output()
        .unwrap()
}

/// The entries that differ between `ours` (through hoistd) and `theirs` (embedded), one line
/// each.
fn differences(ours: &BTreeMap<String, String>, theirs: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    for path in ours
        .keys()
        .chain(theirs.keys().filter(|p| !ours.contains_key(*p)))
    {
        let (a, b) = (ours.get(path), theirs.get(path));
        if a != b {
            out.push_str(&format!(
                "  {path}: through hoistd {a:?} / embedded {b:?}\n"
            ));
        }
    }
    if ours.is_empty() {
        out.push_str("  nothing exported\n");
    }
    out
}

/// `tree`'s lines without their trailing `UID:GID`.
fn without_owners(tree: BTreeMap<String, String>) -> BTreeMap<String, String> {
    tree.into_iter()
        .map(|(path, line)| {
            let kept = line
                .rsplit_once(' ')
                .map_or(line.as_str(), |(rest, _)| rest);
            (path, kept.to_owned())
        })
        .collect()
}

/// The `N` of hoistd's "DIR: N files received" lines for the context directory.
fn received(log: &[String]) -> Vec<usize> {
    log.iter()
        .filter(|l| l.contains(" context: ") && l.contains(" files received"))
        .filter_map(|l| {
            let after = l.split(" context: ").nth(1)?;
            after.split(' ').next()?.parse().ok()
        })
        .collect()
}

#[test]
fn integration_cases_through_hoistds_session_match_the_embedded_engine() {
    let Some(cases) = hoist_testkit::integration::cases() else {
        return;
    };
    let Some(env) = BuildEnv::new() else { return };
    let Some(daemon) = daemon(&env, &[]) else {
        return;
    };
    let addr = daemon.addr();
    let mut failures = String::new();
    let mut built = 0;
    for case in cases.iter().filter(|c| CASES.contains(&c.id.as_str())) {
        let materialized = case.materialize().unwrap();
        for (i, run) in case.runs.iter().enumerate() {
            let attrs = &run.frontend_attrs;
            let mut args: Vec<String> = Vec::new();
            for (name, value) in &attrs.build_args {
                args.push(format!("--build-arg={name}={value}"));
            }
            if let Some(target) = &attrs.target {
                args.push(format!("--target={target}"));
            }
            args.push("-f".into());
            args.push(materialized.dockerfile(case, run).display().to_string());
            let out_dir = env.fresh_dir(&format!("{}-{i}-out", case.id));
            let (ours, theirs) = (out_dir.join("session"), out_dir.join("embedded"));
            let with_dest = |dest: &Path| {
                let mut all = args.clone();
                all.push("-o".into());
                all.push(format!("type=local,dest={}", dest.display()));
                all.push(materialized.context().display().to_string());
                all
            };
            let session_args = with_dest(&ours);
            let session = remote(
                &env,
                &addr,
                &session_args.iter().map(String::as_str).collect::<Vec<_>>(),
            );
            let embedded_args = with_dest(&theirs);
            let local = embedded(
                &env,
                &embedded_args.iter().map(String::as_str).collect::<Vec<_>>(),
            );
            if session.status.success() != local.status.success()
                || local.status.success() != run.expect_success
            {
                failures.push_str(&format!(
                    "{} run {i}: through hoistd {:?}, embedded {:?}, expected success {}\n{}\n{}\n",
                    case.id,
                    session.status,
                    local.status,
                    run.expect_success,
                    text(&session),
                    text(&local)
                ));
                continue;
            }
            if !session.status.success() {
                continue;
            }
            built += 1;
            // Owners: the session's receiver gives every file to the caller, as BuildKit's
            // client does (docs/dev/session.md); the embedded engine keeps the image's.
            let (mut a, b) = (tree(&ours), without_owners(tree(&theirs)));
            for (path, line) in &a {
                if !line.ends_with(" 0:0") {
                    failures.push_str(&format!("{} run {i}: {path} not root's: {line}\n", case.id));
                }
            }
            a = without_owners(a);
            if a != b || a.is_empty() {
                failures.push_str(&format!("{} run {i}:\n{}", case.id, differences(&a, &b)));
            }
        }
    }
    assert!(failures.is_empty(), "{failures}");
    assert!(built >= CASES.len(), "only {built} builds compared");
}

#[test]
fn tar_output_dockerignore_and_a_secret_through_hoistds_session() {
    let Some(env) = BuildEnv::new() else { return };
    let Some(daemon) = daemon(&env, &[]) else {
        return;
    };
    let ctx = env.fresh_dir("ctx");
    std::fs::create_dir_all(ctx.join("sub/deeper")).unwrap();
    std::fs::write(ctx.join("sub/deeper/f.txt"), "deep\n").unwrap();
    std::fs::write(ctx.join("ignored.log"), "not sent\n").unwrap();
    std::fs::write(ctx.join("sub/also.log"), "not sent\n").unwrap();
    std::fs::write(ctx.join("kept.txt"), "kept\n").unwrap();
    std::fs::write(ctx.join(".dockerignore"), "**/*.log\n").unwrap();
    std::os::unix::fs::symlink("kept.txt", ctx.join("link")).unwrap();
    let dockerfiles = env.fresh_dir("dockerfiles");
    let dockerfile = dockerfiles.join("Build.dockerfile");
    std::fs::write(
        &dockerfile,
        "FROM busybox AS base\nARG WHO=nobody\n\
         RUN mkdir /out && echo \"hello $WHO\" > /out/greeting\n\
         COPY . /out/ctx/\n\
         RUN --mount=type=secret,id=tok cp /run/secrets/tok /out/tok && ls -R /out/ctx > /out/listing\n\
         FROM scratch AS final\nCOPY --from=base /out /\n\
         FROM scratch AS other\nCOPY --from=base /out/greeting /only\n",
    )
    .unwrap();
    let token = env.fresh_dir("secret").join("token");
    std::fs::write(&token, "s3cret-value\n").unwrap();
    let secret = format!("id=tok,src={}", token.display());
    let (ctx_arg, file_arg) = (ctx.display().to_string(), dockerfile.display().to_string());
    let out = env.fresh_dir("out");
    for target in ["final", "other"] {
        let tars = [out.join("session.tar"), out.join("embedded.tar")];
        let args = |tar: &Path| {
            vec![
                "-f".to_owned(),
                file_arg.clone(),
                "--target".into(),
                target.into(),
                "--build-arg=WHO=world".into(),
                "--secret".into(),
                secret.clone(),
                "-o".into(),
                format!("type=tar,dest={}", tar.display()),
                ctx_arg.clone(),
            ]
        };
        let session_args = args(&tars[0]);
        let session = remote(
            &env,
            &daemon.addr(),
            &session_args.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        assert!(session.status.success(), "{}", text(&session));
        let embedded_args = args(&tars[1]);
        let local = embedded(
            &env,
            &embedded_args.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        assert!(local.status.success(), "{}", text(&local));
        let (a, b): (BTreeMap<_, _>, BTreeMap<_, _>) = (tar_tree(&tars[0]), tar_tree(&tars[1]));
        assert_eq!(a, b, "target {target}: through hoistd / embedded");
        let entries = crate::build_env::tar_entries(&tars[0]);
        if target == "final" {
            assert_eq!(entries["greeting"], b"hello world\n");
            assert_eq!(entries["tok"], b"s3cret-value\n");
            let listing = String::from_utf8_lossy(&entries["listing"]);
            assert!(
                listing.contains("kept.txt") && listing.contains("f.txt"),
                "{listing}"
            );
            assert!(
                !listing.contains(".log"),
                "ignored files were sent:\n{listing}"
            );
            assert!(a.contains_key("ctx/sub/deeper/f.txt"), "{a:?}");
            assert!(!a.contains_key("ctx/ignored.log"), "{a:?}");
        } else {
            assert_eq!(a.keys().collect::<Vec<_>>(), ["only"], "{a:?}");
        }
    }
}

/// The platforms of the index under `repo:tag` at `host`, sorted.
fn index_platforms(host: &str, repo: &str, tag: &str) -> Vec<String> {
    let (status, body) = crate::build_nodes::get_manifest(host, repo, tag);
    assert_eq!(status, 200, "{repo}:{tag}: {body}");
    let index: serde_json::Value =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{repo}:{tag}: {e}: {body}"));
    let mut platforms: Vec<String> = index["manifests"]
        .as_array()
        .unwrap_or_else(|| panic!("not an index: {index}"))
        .iter()
        .map(|m| {
            let p = &m["platform"];
            let mut text = format!(
                "{}/{}",
                p["os"].as_str().unwrap(),
                p["architecture"].as_str().unwrap()
            );
            if let Some(variant) = p["variant"].as_str() {
                text.push('/');
                text.push_str(variant);
            }
            text
        })
        .collect();
    platforms.sort();
    platforms
}

fn sorted_platforms() -> Vec<String> {
    let mut expected: Vec<String> = PLATFORMS.iter().map(|p| (*p).to_owned()).collect();
    expected.sort();
    expected
}

#[test]
fn a_three_platform_local_context_is_pushed_over_mutual_tls() {
    let Some(env) = BuildEnv::new() else { return };
    let pki = tempfile::tempdir().unwrap();
    certificates(pki.path());
    let file = |name: &str| pki.path().join(name).display().to_string();
    let Some(daemon) = daemon(
        &env,
        &[
            "--addr",
            "tcp://127.0.0.1:0",
            "--tlscert",
            &file("server.pem"),
            "--tlskey",
            &file("server.key"),
            "--tlscacert",
            &file("ca.pem"),
        ],
    ) else {
        return;
    };
    let port = daemon.tcp.as_deref().unwrap().rsplit_once(':').unwrap().1;
    let addr = format!("tcp://localhost:{port}");
    let ctx = env.fresh_dir("multi-ctx");
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nCOPY a.txt /\nRUN uname -m > /arch && cat /a.txt >> /arch\n",
    )
    .unwrap();
    std::fs::write(ctx.join("a.txt"), "from the client\n").unwrap();
    let repo = "session/multi";
    let image = format!("{}/{repo}:1", env.registry.host());
    // Without a client certificate: refused before any session or context transfer.
    let refused = remote(
        &env,
        &addr,
        &[
            "--tlscacert",
            &file("ca.pem"),
            "-t",
            &image,
            "--push",
            &ctx.display().to_string(),
        ],
    );
    assert!(!refused.status.success(), "{}", text(&refused));
    assert!(
        text(&refused).contains(&format!("cannot connect to {addr}")),
        "{}",
        text(&refused)
    );
    assert!(
        !daemon
            .log
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains(" session ")),
        "a session was opened without a client certificate"
    );
    let out = remote(
        &env,
        &addr,
        &[
            "--tlscacert",
            &file("ca.pem"),
            "--tlscert",
            &file("client.pem"),
            "--tlskey",
            &file("client.key"),
            "--platform",
            &PLATFORMS.join(","),
            "-t",
            &image,
            "--push",
            &ctx.display().to_string(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        index_platforms(&env.registry.host(), repo, "1"),
        sorted_platforms()
    );
    let log = daemon.log.lock().unwrap().clone();
    assert!(
        received(&log).first().is_some_and(|n| *n >= 2),
        "the context came through the session: {log:#?}"
    );
}

#[test]
fn a_rebuild_of_a_twenty_thousand_file_context_receives_the_touched_file() {
    let Some(env) = BuildEnv::new() else { return };
    let Some(daemon) = daemon(&env, &[]) else {
        return;
    };
    let ctx = env.fresh_dir("big-ctx");
    for d in 0..100 {
        let dir = ctx.join(format!("d{d:03}"));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..200 {
            std::fs::write(dir.join(format!("f{f:03}")), format!("{d}/{f}\n")).unwrap();
        }
    }
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nCOPY d042/f007 /one\n",
    )
    .unwrap();
    let ctx_arg = ctx.display().to_string();
    let build = |dest: &Path| {
        remote(
            &env,
            &daemon.addr(),
            &[
                "-o",
                &format!("type=local,dest={}", dest.display()),
                &ctx_arg,
            ],
        )
    };
    let first = env.fresh_dir("first");
    let out = build(&first);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        std::fs::read_to_string(first.join("one")).unwrap(),
        "42/7\n"
    );
    // Touch one file: new content, same size.
    std::fs::write(ctx.join("d042/f007"), "42/8\n").unwrap();
    let second = env.fresh_dir("second");
    let out = build(&second);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        std::fs::read_to_string(second.join("one")).unwrap(),
        "42/8\n"
    );
    let log = daemon.log.lock().unwrap().clone();
    let counts = received(&log);
    assert_eq!(counts.len(), 2, "{log:#?}");
    assert!(counts[0] >= 20_000, "first build: {log:#?}");
    assert_eq!(counts[1], 1, "second build: {log:#?}");
}

#[test]
fn a_remote_builder_of_three_nodes_builds_a_local_context() {
    let Some(env) = BuildEnv::new() else { return };
    let registries = std::fs::read_to_string(env.config()).unwrap();
    let mut nodes = Vec::new();
    for platform in PLATFORMS {
        let config = env.fresh_dir("node").join("hoistd.toml");
        std::fs::write(
            &config,
            format!("{registries}\n[worker.oci]\nplatforms = [\"{platform}\"]\n"),
        )
        .unwrap();
        let Some(node) = Daemon::start(&["--config", config.to_str().unwrap()]) else {
            return;
        };
        nodes.push(node);
    }
    let builders = env.fresh_dir("builders");
    let store = |args: &[&str]| {
        let out = env
            .command(args)
            .env("HOIST_BUILDERS_DIR", &builders)
            .env_remove("HOIST_BUILDER")
            .env_remove("BUILDX_BUILDER")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        text(&out)
    };
    for (i, (node, platform)) in nodes.iter().zip(PLATFORMS).enumerate() {
        let addr = node.addr();
        let mut args = vec!["create", "--name", "local-nodes", "--driver", "remote"];
        if i > 0 {
            args.push("--append");
        }
        args.extend(["--platform", platform, &addr]);
        store(&args);
    }
    let ctx = env.fresh_dir("nodes-ctx");
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nARG TARGETPLATFORM\nCOPY a.txt /\nRUN echo $TARGETPLATFORM >> /a.txt\n",
    )
    .unwrap();
    std::fs::write(ctx.join("a.txt"), "local\n").unwrap();
    let repo = "session/nodes";
    let image = format!("{}/{repo}:1", env.registry.host());
    let out = store(&[
        "build",
        "--builder",
        "local-nodes",
        "--progress=plain",
        "--platform",
        &PLATFORMS.join(","),
        "--push",
        "-t",
        &image,
        &ctx.display().to_string(),
    ]);
    assert_eq!(
        index_platforms(&env.registry.host(), repo, "1"),
        sorted_platforms(),
        "{out}"
    );
    // Every node received the context through its own session and built its platform.
    for (node, platform) in nodes.iter().zip(PLATFORMS) {
        let log = node.log.lock().unwrap().clone();
        assert!(!received(&log).is_empty(), "{platform}'s node: {log:#?}");
        let builds: Vec<&String> = log
            .iter()
            .filter(|l| l.starts_with("hoistd: build ") && l.contains(" platforms "))
            .collect();
        assert!(
            builds.len() == 1 && builds[0].ends_with(&format!(" platforms {platform}")),
            "{platform}'s node: {log:#?}"
        );
    }
}

/// hoistd hard-links the files of its copy of a client's context into the context's
/// snapshot (`ContextSource::Owned`), so its receiver must never write into a file it wrote
/// before. A copy written in place would give the first build's snapshot the second
/// build's bytes; a third build of the first content, from another directory (another
/// copy in hoistd, the same snapshot reused: its content is the same), would then copy
/// them.
#[test]
fn a_context_snapshot_sharing_hoistds_copy_keeps_its_bytes_when_the_file_changes() {
    use std::os::unix::fs::MetadataExt as _;
    let Some(env) = BuildEnv::new() else { return };
    let Some(daemon) = daemon(&env, &[]) else {
        return;
    };
    let build = |ctx: &Path, name: &str, content: &str, seconds: u64| {
        std::fs::write(ctx.join("Dockerfile"), "FROM scratch\nCOPY a b /ctx/\n").unwrap();
        std::fs::write(ctx.join("b"), "kept\n").unwrap();
        // Same size each time, another mtime: the receiver asks for the file again.
        std::fs::write(ctx.join("a"), content).unwrap();
        std::fs::File::options()
            .write(true)
            .open(ctx.join("a"))
            .unwrap()
            .set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(seconds))
            .unwrap();
        let dest = env.fresh_dir(name);
        let output = format!("type=local,dest={}", dest.display());
        let ctx_arg = ctx.display().to_string();
        let args = ["--no-cache", "-o", output.as_str(), ctx_arg.as_str()];
        let out = remote(&env, &daemon.addr(), &args);
        assert!(out.status.success(), "{}", text(&out));
        std::fs::read_to_string(dest.join("ctx/a")).unwrap()
    };
    let ctx = env.fresh_dir("linked-ctx");
    assert_eq!(build(&ctx, "first", "one\n", 1_600_000_000), "one\n");
    // The file the build did not change is shared between hoistd's copy and the context's
    // snapshot (the process owns it).
    let state = daemon.dir.path().join("state");
    let shared = walkdir::WalkDir::new(&state)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_name() == "b" && e.file_type().is_file())
        .filter(|e| e.metadata().is_ok_and(|m| m.nlink() >= 2))
        .count();
    assert!(shared >= 2, "no linked copy of b under {}", state.display());
    assert_eq!(build(&ctx, "second", "two\n", 1_700_000_000), "two\n");
    let other = env.fresh_dir("other-ctx");
    assert_eq!(build(&other, "third", "one\n", 1_600_000_000), "one\n");
}

/// hoistd keeps each copy's listing (metadata and digests) in memory; a restarted hoistd has
/// none, reads its copy from disk and hashes the files it did not receive. The keys it
/// computes then are the ones the listing gave: the first content, back again, is cached.
#[test]
fn a_restarted_hoistd_reads_its_copy_again_and_keys_it_as_before() {
    let Some(env) = BuildEnv::new() else { return };
    let Some(daemon) = daemon(&env, &[]) else {
        return;
    };
    let ctx = env.fresh_dir("restart-ctx");
    std::fs::write(ctx.join("Dockerfile"), "FROM scratch\nCOPY a b /ctx/\n").unwrap();
    std::fs::write(ctx.join("b"), "kept\n").unwrap();
    let set_a = |content: &str, seconds: u64| {
        std::fs::write(ctx.join("a"), content).unwrap();
        let file = std::fs::File::options().write(true).open(ctx.join("a"));
        let then = std::time::UNIX_EPOCH + std::time::Duration::from_secs(seconds);
        file.unwrap().set_modified(then).unwrap();
    };
    let build = |daemon: &Daemon, name: &str| {
        let dest = env.fresh_dir(name);
        let output = format!("type=local,dest={}", dest.display());
        let ctx_arg = ctx.display().to_string();
        let out = remote(&env, &daemon.addr(), &["-o", &output, &ctx_arg]);
        assert!(out.status.success(), "{}", text(&out));
        let copied = std::fs::read_to_string(dest.join("ctx/a")).unwrap();
        let log = text(&out);
        // `#N [2/2] COPY a b /ctx/` then, when cached, `#N CACHED`.
        let step = log
            .lines()
            .find(|l| l.ends_with("COPY a b /ctx/"))
            .and_then(|l| l.split(' ').next())
            .map(|n| format!("{n} CACHED"));
        let cached = step.is_some_and(|step| log.lines().any(|l| l == step));
        (copied, cached, log)
    };
    set_a("one\n", 1_600_000_000);
    let (copied, _, _) = build(&daemon, "first");
    assert_eq!(copied, "one\n");
    let daemon = daemon.restart();
    set_a("two\n", 1_700_000_000);
    let (copied, cached, out) = build(&daemon, "second");
    assert_eq!(copied, "two\n");
    assert!(!cached, "{out}");
    assert_eq!(received(&daemon.log.lock().unwrap()), [1], "only `a` moved");
    // Unchanged: everything cached (the digest of `b`, read after the restart, is kept).
    let (copied, cached, out) = build(&daemon, "third");
    assert_eq!(copied, "two\n");
    assert!(cached, "{out}");
    set_a("one\n", 1_600_000_000);
    let (copied, cached, out) = build(&daemon, "fourth");
    assert_eq!(copied, "one\n");
    assert!(
        cached,
        "the first build's COPY, found by the same key: {out}"
    );
}
