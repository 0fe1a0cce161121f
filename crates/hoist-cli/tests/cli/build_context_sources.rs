//! `hoist build` with contexts that are not a local directory, as buildx reads them: a tar
//! on stdin (`-`), a Dockerfile on stdin (`-`), a tarball URL, `-f -` beside a URL, and
//! `--build-context NAME=URL`; buildx's messages for bad combinations and values; a bad
//! URL fails naming it and leaves nothing under `<root>/engine/prepared-contexts`.
//!
//! Image equality: each build runs in a state dir of its own (no step is a cache hit of
//! another), dated by `SOURCE_DATE_EPOCH` (and its RUN's files clamped to it), its context
//! files all dated [`MTIME`] (a tar keeps whole seconds), and compared by image ID (the config digest, whose diff IDs are
//! the layers' contents).
//!
//! Needs root, `docker-registry` and the busybox .debs (see `hoist_testkit::images`).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use hoist_testkit::http::{FileServer, Served};

use crate::build_env::BuildEnv;

/// Before the epoch, so that `rewrite-timestamp` (which clamps the RUN's new file) would
/// not hide a context file dated otherwise.
const MTIME: u64 = 1_500_000_000;
const EPOCH: &str = "SOURCE_DATE_EPOCH=1600000000";
const DOCKERFILE: &str = "FROM busybox\nCOPY . /\nRUN cat /a.txt /sub/b.txt > /seen\n";

/// `hoist --root ROOT … build --progress=plain ARGS`, stdin piped.
fn build(env: &BuildEnv, root: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hoist"));
    command
        .arg("--root")
        .arg(root)
        .arg("--config")
        .arg(env.config())
        .args(["build", "--progress=plain"])
        .args(args)
        .env("DOCKER_CONFIG", env.dir.path().join("docker"))
        .env_remove("HOIST_ROOT")
        .env_remove("HOIST_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Runs `command` with `stdin` written to it.
fn run(mut command: Command, stdin: &[u8]) -> Output {
    let mut child = command.spawn().unwrap();
    let mut pipe = child.stdin.take().unwrap();
    // The build may stop reading early (a refused input): a broken pipe is no failure here.
    let _ = pipe.write_all(stdin);
    drop(pipe);
    child.wait_with_output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Builds `args` (the context last) in a fresh state dir, `stdin` piped in; the image ID.
fn image_id(env: &BuildEnv, args: &[&str], stdin: &[u8]) -> String {
    let dir = env.fresh_dir("build");
    let iid = dir.join("iid");
    let output = format!(
        "type=oci,dest={},rewrite-timestamp=true",
        dir.join("image.tar").display()
    );
    let iid_arg = iid.display().to_string();
    let mut all = vec!["--build-arg", EPOCH, "-o", &output, "--iidfile", &iid_arg];
    all.extend_from_slice(args);
    let out = run(build(env, &dir.join("root"), &all), stdin);
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::read_to_string(iid).unwrap()
}

/// A context directory with `DOCKERFILE`, `a.txt` and `sub/b.txt`, every time [`MTIME`].
fn context(env: &BuildEnv) -> PathBuf {
    let ctx = env.fresh_dir("ctx");
    std::fs::write(ctx.join("Dockerfile"), DOCKERFILE).unwrap();
    std::fs::write(ctx.join("a.txt"), "alpha\n").unwrap();
    std::fs::create_dir(ctx.join("sub")).unwrap();
    std::fs::write(ctx.join("sub/b.txt"), "beta\n").unwrap();
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(MTIME);
    let times = std::fs::FileTimes::new()
        .set_accessed(time)
        .set_modified(time);
    for name in ["Dockerfile", "a.txt", "sub/b.txt", "sub", ""] {
        let file = std::fs::File::open(ctx.join(name)).unwrap();
        file.set_times(times).unwrap();
    }
    ctx
}

/// `dir`'s contents as a gzip tar (modes and times kept).
fn tar_gz(dir: &Path) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut builder = tar::Builder::new(gz);
    for name in ["Dockerfile", "a.txt", "sub", "sub/b.txt"] {
        builder.append_path_with_name(dir.join(name), name).unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap()
}

fn no_prepared_contexts_left(root: &Path) {
    let dir = root.join("engine/prepared-contexts");
    let left: Vec<_> = std::fs::read_dir(&dir)
        .map(|entries| entries.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left in {}: {left:?}", dir.display());
}

#[test]
fn a_tar_on_stdin_and_a_tarball_url_build_the_image_of_the_directory() {
    let Some(env) = BuildEnv::new() else { return };
    let ctx = context(&env);
    let ctx_arg = ctx.display().to_string();
    let local = image_id(&env, &[&ctx_arg], b"");
    let tarball = tar_gz(&ctx);

    let from_stdin = image_id(&env, &["-"], &tarball);
    assert_eq!(from_stdin, local, "tar on stdin");

    let server = FileServer::start().unwrap();
    server.serve("/ctx.tar.gz", Served::new(tarball));
    let url = server.url("/ctx.tar.gz");
    let from_url = image_id(&env, &[&url], b"");
    assert_eq!(from_url, local, "tarball URL");
}

#[test]
fn a_dockerfile_on_stdin_builds_with_an_empty_context() {
    let Some(env) = BuildEnv::new() else { return };
    let dockerfile = "FROM busybox\nCOPY . /ctx/\nRUN ls -A /ctx > /listing\n";
    // The same Dockerfile given with -f beside an empty directory.
    let empty = env.fresh_dir("empty");
    let file = env.fresh_dir("df").join("Dockerfile");
    std::fs::write(&file, dockerfile).unwrap();
    let (empty_arg, file_arg) = (empty.display().to_string(), file.display().to_string());
    let local = image_id(&env, &["-f", &file_arg, &empty_arg], b"");
    let piped = image_id(&env, &["-"], dockerfile.as_bytes());
    assert_eq!(piped, local);
}

#[test]
fn a_dockerfile_on_stdin_with_a_remote_context() {
    let Some(env) = BuildEnv::new() else { return };
    let ctx = context(&env);
    let server = FileServer::start().unwrap();
    server.serve("/ctx.tar.gz", Served::new(tar_gz(&ctx)));
    let out_dir = env.fresh_dir("out");
    let output = format!("type=local,dest={}", out_dir.display());
    let url = server.url("/ctx.tar.gz");
    let root = env.fresh_dir("root");
    let out = run(
        build(&env, &root, &["-o", &output, "-f", "-", &url]),
        b"FROM busybox\nCOPY sub/b.txt /from-url.txt\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(out_dir.join("from-url.txt")).unwrap(),
        "beta\n"
    );
    no_prepared_contexts_left(&root);
}

#[test]
fn named_contexts_from_a_url_and_buildx_messages_for_bad_inputs() {
    let Some(env) = BuildEnv::new() else { return };
    let server = FileServer::start().unwrap();
    server.serve("/notes.txt", Served::new("downloaded\n"));
    let ctx = env.fresh_dir("ctx");
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nCOPY --from=notes context /notes.txt\n",
    )
    .unwrap();
    let out_dir = env.fresh_dir("out");
    let output = format!("type=local,dest={}", out_dir.display());
    let named = format!("notes={}", server.url("/notes.txt"));
    let ctx_arg = ctx.display().to_string();
    let root = env.fresh_dir("root");
    let args = ["-o", &output, "--build-context", &named, &ctx_arg];
    let out = run(build(&env, &root, &args), b"");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(out_dir.join("notes.txt")).unwrap(),
        "downloaded\n"
    );

    let refused = |args: &[&str], stdin: &[u8], message: &str| {
        let out = run(build(&env, &root, args), stdin);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(stderr(&out).contains(message), "{args:?}: {}", stderr(&out));
    };
    refused(
        &["-f", "-", "-"],
        b"FROM busybox\n",
        "invalid argument: can't use stdin for both build context and dockerfile",
    );
    refused(
        &["-f", "Dockerfile", "-"],
        b"FROM busybox\n",
        "ambiguous Dockerfile source: both stdin and flag correspond to Dockerfiles",
    );
    refused(
        &["--build-context", "novalue", &ctx_arg],
        b"",
        "invalid context value: novalue, expected key=value",
    );
    refused(
        &["--build-context", "x=/does/not/exist", &ctx_arg],
        b"",
        "failed to get build context x: stat /does/not/exist",
    );
    let file = ctx.join("Dockerfile").display().to_string();
    let not_dir = format!("x={file}");
    refused(
        &["--build-context", &not_dir, &ctx_arg],
        b"",
        &format!("failed to get build context path {file}: not a directory"),
    );

    // A URL that answers 404: named, and nothing left in the state dir.
    let missing = server.url("/missing.tar.gz");
    refused(
        &[&missing],
        b"",
        &format!("ERROR: failed to download {missing}: invalid response status 404"),
    );
    no_prepared_contexts_left(&root);
}
