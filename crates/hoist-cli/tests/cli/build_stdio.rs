//! `hoist build` and the standard streams, and `--pull`: the Dockerfile read from stdin
//! (`-f -`), the rootfs tar written to stdout (`-o type=tar,dest=-`, progress staying on
//! stderr, refused when stdout is a terminal), and `--pull` repairing a corrupt base-image
//! blob in the local store.
//!
//! Needs root, `docker-registry` and the busybox .debs (see `hoist_testkit::images`); the
//! terminal case needs util-linux's `script`.

use std::io::{Read as _, Write as _};
use std::process::{Command, Stdio};

use crate::build_env::BuildEnv;
use sha2::Digest as _;

#[test]
fn dockerfile_from_stdin() {
    let Some(env) = BuildEnv::new() else { return };
    let ctx = env.fresh_dir("ctx");
    std::fs::write(ctx.join("a.txt"), "from the context\n").unwrap();
    // A Dockerfile in the context that must not be the one used.
    std::fs::write(ctx.join("Dockerfile"), "FROM scratch\nCOPY missing /\n").unwrap();
    let out = env.fresh_dir("out");
    let output = format!("type=local,dest={}", out.display());
    let ctx_arg = ctx.display().to_string();
    let mut child = env
        .command(&[
            "build",
            "--progress=plain",
            "-f",
            "-",
            "-o",
            &output,
            &ctx_arg,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"FROM scratch\nCOPY a.txt /copied.txt\n")
        .unwrap();
    let result = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(result.status.success(), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(out.join("copied.txt")).unwrap(),
        "from the context\n"
    );
}

#[test]
fn tar_output_to_stdout_keeps_progress_on_stderr() {
    let Some(env) = BuildEnv::new() else { return };
    let ctx = env.fresh_dir("ctx");
    std::fs::write(ctx.join("a.txt"), "in the tar\n").unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nCOPY a.txt /dir/a.txt\n",
    )
    .unwrap();
    let ctx_arg = ctx.display().to_string();
    let result = env
        .command(&[
            "build",
            "--progress=plain",
            "-o",
            "type=tar,dest=-",
            &ctx_arg,
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(result.status.success(), "{stderr}");
    assert!(stderr.contains("COPY a.txt /dir/a.txt"), "{stderr}");
    // stdout is exactly one tar archive, nothing else.
    let mut archive = tar::Archive::new(&result.stdout[..]);
    let mut files = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        if entry.header().entry_type().is_file() {
            let mut text = String::new();
            entry.read_to_string(&mut text).unwrap();
            files.push((path.trim_start_matches("./").to_owned(), text));
        }
    }
    assert_eq!(
        files,
        vec![("dir/a.txt".to_owned(), "in the tar\n".to_owned())]
    );
    let text = String::from_utf8_lossy(&result.stdout);
    assert!(!text.contains("#1 "), "progress on stdout");
}

#[test]
fn tar_output_to_a_terminal_is_refused_before_building() {
    let Some(env) = BuildEnv::new() else { return };
    if Command::new("script").arg("--version").output().is_err() {
        hoist_testkit::skip("util-linux's script is not installed (needed for a terminal)");
        return;
    }
    let ctx = env.fresh_dir("ctx");
    std::fs::write(ctx.join("Dockerfile"), "FROM scratch\nCOPY nothing /\n").unwrap();
    let hoist = env.command(&[]);
    let mut line = format!("{:?}", hoist.get_program());
    for arg in hoist.get_args() {
        line.push(' ');
        line.push_str(&format!("{arg:?}"));
    }
    line.push_str(&format!(
        " build --progress=plain -o type=tar,dest=- {:?}",
        ctx.display().to_string()
    ));
    // `script` runs the command with a pseudo-terminal as its stdin, stdout and stderr.
    let result = Command::new("script")
        .args(["-q", "-e", "-c", &line, "/dev/null"])
        .env("DOCKER_CONFIG", env.dir.path().join("docker"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&result.stdout);
    assert!(!result.status.success(), "{text}");
    assert!(
        text.contains("dest file is required for tar exporter. refusing to write to console"),
        "{text}"
    );
    // Refused before building: no step ran (the COPY would have failed otherwise).
    assert!(!text.contains("COPY nothing"), "{text}");
}

#[test]
fn pull_fetches_a_corrupt_base_image_blob_again() {
    let Some(env) = BuildEnv::new() else { return };
    let ctx = env.fresh_dir("ctx");
    std::fs::write(ctx.join("Dockerfile"), "FROM busybox\nRUN echo hi > /hi\n").unwrap();
    let ctx_arg = ctx.display().to_string();
    let build = |extra: &[&str]| {
        let out = env.fresh_dir("out");
        let output = format!("type=local,dest={}", out.display());
        let mut args = vec!["build", "--progress=plain", "-o", &output];
        args.extend_from_slice(extra);
        args.push(&ctx_arg);
        let result = env.hoist(&args);
        let stderr = String::from_utf8_lossy(&result.stderr).into_owned();
        assert!(result.status.success(), "{stderr}");
        out
    };
    build(&[]);

    // The base image's layers: the large gzip blobs of the store.
    let blobs = env.root().join("content/blobs/sha256");
    let layers: Vec<_> = std::fs::read_dir(&blobs)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            let bytes = std::fs::read(path).unwrap();
            bytes.starts_with(&[0x1f, 0x8b]) && bytes.len() > 100_000
        })
        .collect();
    assert!(!layers.is_empty(), "no base layer found in {blobs:?}");
    let intact = |path: &std::path::Path| {
        let bytes = std::fs::read(path).unwrap();
        hex::encode(sha2::Sha256::digest(&bytes)) == path.file_name().unwrap().to_string_lossy()
    };

    // Same size, other bytes: a plain build trusts the present blob...
    for path in &layers {
        let mut bytes = std::fs::read(path).unwrap();
        bytes[1000..1100].fill(0);
        std::fs::write(path, bytes).unwrap();
    }
    build(&[]);
    assert!(layers.iter().all(|p| !intact(p)), "a plain build re-hashed");
    // ...and --pull re-hashes it and fetches it again.
    let out = build(&["--pull"]);
    assert_eq!(std::fs::read_to_string(out.join("hi")).unwrap(), "hi\n");
    assert!(
        layers.iter().all(|p| intact(p)),
        "still corrupt after --pull"
    );

    // Cut short: the pull itself notices the size; --pull fetches it again.
    for path in &layers {
        std::fs::write(path, b"not the layer").unwrap();
    }
    build(&["--pull"]);
    assert!(
        layers.iter().all(|p| intact(p)),
        "still cut short after --pull"
    );
}
