//! `hoist build --addr docker-daemon`: hoist as a BuildKit client of the BuildKit inside the
//! running dockerd (`POST /grpc` for Control, `POST /session` for the session hoist serves:
//! the context and Dockerfile directories, secrets, outputs). BuildKit's Dockerfile
//! integration cases are built by hoist and by `DOCKER_BUILDKIT=1 docker build` on the same
//! dockerd, with `-o type=local` and `-o type=tar`, and must give the same files (paths,
//! types, modes, owners, sizes, contents, symlink targets; directory times are left out,
//! as the docker CLI's receiver does not keep them). Base images come from a `TestRegistry`
//! (dockerd takes 127.0.0.0/8 registries as insecure); RUN steps use `--network host`, as the
//! dockerd here has no bridge.
//!
//! Needs root and a running dockerd at /var/run/docker.sock (skipped with a message
//! otherwise).

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use hoist_testkit::integration::{Export, IntegrationCase, Run};
use hoist_testkit::trees::{dir_tree as tree, tar_tree};

use crate::build_env::BuildEnv;

const DOCKER: &str = "/usr/bin/docker";
const SOCKET: &str = "/var/run/docker.sock";

/// Cases dockerd 20.10's BuildKit (0.8, a Dockerfile frontend of 2020) cannot build (in
/// one run at least): hoist must give the outcome `docker build` gives, run by run; there is
/// nothing else to compare. The reason for each is what dockerd says.
const UNSUPPORTED: &[(&str, &str)] = &[
    ("14-copy-parents", "COPY --parents is an unknown flag"),
    (
        "15-copy-parents-pivot",
        "COPY --parents and `/./` pivots unknown",
    ),
    ("16-copy-exclude", "COPY --exclude is an unknown flag"),
    ("17-heredoc-copy", "no heredocs"),
    ("18-heredoc-copy-escapes", "no heredocs"),
    ("19-heredoc-indent-chomp", "no heredocs"),
    ("20-heredoc-variable-expansion", "no heredocs"),
    ("21-heredoc-run-basic", "no heredocs"),
    (
        "23-arg-required-default",
        "${FOO:?..} fails although FOO has a default",
    ),
    ("26-arg-default-in-env", "no ${var#prefix} substitution"),
    (
        "39-default-entrypoint-shell-and-path",
        "dockerd 20.10 takes one platform per build",
    ),
];

/// Cases never sent to dockerd: they stop it (for every other user of the daemon too).
const NOT_ON_DOCKERD: &[(&str, &str)] = &[(
    "43-no-stages-error",
    "BuildKit 0.8's frontend panics on a Dockerfile without FROM (index out of range in \
     lastTarget) and dockerd exits",
)];

/// Cases dockerd's BuildKit 0.8 builds, but not as today's BuildKit (which the case's
/// expectations describe): hoist's result is compared with `docker build`'s only.
const EXPECTATIONS_DIFFER: &[(&str, &str)] = &[
    (
        "07-copy-chmod",
        "COPY --chmod on BuildKit 0.8 keeps modes the later versions set",
    ),
    (
        "28-arg-targetstage",
        "the TARGETSTAGE build arg came after BuildKit 0.8",
    ),
    (
        "42-copy-from-later-stage-error",
        "BuildKit 0.8 builds a COPY --from of a later stage",
    ),
    (
        "44-copy-from-variable-error",
        "BuildKit 0.8 fails with another error (invalid reference)",
    ),
];

/// Cases hoist's client does not pass yet on this path (`CASE  reason` lines).
const KNOWN_FAILURES: &str = include_str!("build_dockerd_conformance_known_failures.txt");

/// Whether dockerd answers on its socket and we are root; says why not otherwise.
fn dockerd_up() -> bool {
    if std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(1)
        != 0
    {
        hoist_testkit::skip("the dockerd client cases need root");
        return false;
    }
    let up = Path::new(SOCKET).exists()
        && Command::new(DOCKER)
            .arg("info")
            .output()
            .is_ok_and(|out| out.status.success());
    if !up {
        hoist_testkit::skip("the dockerd client cases need dockerd at /var/run/docker.sock");
    }
    up
}

/// The Dockerfile with its `busybox`/`alpine` base images taken from `host`.
fn with_registry(dockerfile: &str, host: &str) -> String {
    let mut out = String::new();
    for line in dockerfile.lines() {
        if line.trim_start().to_ascii_uppercase().starts_with("FROM ") {
            let words: Vec<String> = line
                .split(' ')
                .map(|word| {
                    // `busy$a2` (case 24) spells busybox through an ARG.
                    let base =
                        word.starts_with("busy") || word == "alpine" || word.starts_with("alpine:");
                    if base {
                        format!("{host}/{word}")
                    } else {
                        word.to_owned()
                    }
                })
                .collect();
            out.push_str(&words.join(" "));
        } else {
            // `COPY --from=busybox` (case 40) names an image too.
            let words: Vec<String> = line
                .split(' ')
                .map(|word| match word.strip_prefix("--from=") {
                    Some(image) if image.starts_with("busybox") || image.starts_with("alpine") => {
                        format!("--from={host}/{image}")
                    }
                    _ => word.to_owned(),
                })
                .collect();
            out.push_str(&words.join(" "));
        }
        out.push('\n');
    }
    out
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `hoist build --addr docker-daemon://SOCKET --network host ARGS`.
fn hoist(env: &BuildEnv, args: &[&str]) -> Output {
    env.command(&["build", "--addr", &format!("docker-daemon://{SOCKET}")])
        .args(["--progress=plain", "--network=host"])
        .args(args)
        .env_remove("DOCKER_HOST")
        .output()
        .unwrap()
}

/// `DOCKER_BUILDKIT=1 docker build --network host ARGS` on the same daemon.
fn docker(args: &[&str]) -> Output {
    Command::new(DOCKER)
        .args(["build", "--progress=plain", "--network=host"])
        .args(args)
        .env("DOCKER_BUILDKIT", "1")
        .env_remove("DOCKER_HOST")
        .output()
        .unwrap()
}

/// The differences between two trees, one line each (empty when equal).
fn differences(ours: &BTreeMap<String, String>, theirs: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    for (path, line) in ours {
        match theirs.get(path) {
            Some(other) if other == line => {}
            Some(other) => out.push_str(&format!("{path}: hoist {line} / docker {other}\n")),
            None => out.push_str(&format!("{path}: only hoist has it ({line})\n")),
        }
    }
    for (path, line) in theirs {
        if !ours.contains_key(path) {
            out.push_str(&format!("{path}: only docker has it ({line})\n"));
        }
    }
    out
}

/// A case's run, its Dockerfile rewritten for the registry, as flags.
struct Prepared {
    context: PathBuf,
    dockerfile: PathBuf,
    flags: Vec<String>,
}

/// Rewrites `dockerfile` (in the materialised case, so its name and `.dockerignore`
/// neighbours hold) for the test registry.
fn prepare(
    env: &BuildEnv,
    _case: &IntegrationCase,
    materialized: &Path,
    run: &Run,
    dockerfile: &Path,
) -> Prepared {
    let text = std::fs::read_to_string(dockerfile).unwrap();
    let rewritten = with_registry(&text, &env.registry.host());
    if rewritten != text {
        std::fs::write(dockerfile, rewritten).unwrap();
    }
    Prepared {
        context: materialized.to_owned(),
        dockerfile: dockerfile.to_owned(),
        flags: run.frontend_attrs.cli_flags(),
    }
}

/// The last few non-empty lines of a build's output, joined, for a failure reason.
fn last_lines(out: &Output) -> String {
    let text = text(out);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(3)..].join(" | ")
}

/// The image config JSON of `tag` in dockerd, as `docker save` writes it.
fn saved_config(env: &BuildEnv, tag: &str) -> Result<serde_json::Value, String> {
    let tar = env.fresh_dir("saved").join("image.tar");
    let out = Command::new(DOCKER)
        .args(["save", "-o"])
        .arg(&tar)
        .arg(tag)
        .output()
        .unwrap();
    if !out.status.success() {
        // dockerd 20.10 cannot save an image without layers ("empty export").
        if text(&out).contains("empty export") {
            return inspected_config(tag);
        }
        return Err(format!("docker save {tag}: {}", last_lines(&out)));
    }
    let files = crate::build_env::tar_entries(&tar);
    let manifest: serde_json::Value = serde_json::from_slice(&files["manifest.json"])
        .map_err(|err| format!("manifest.json: {err}"))?;
    let name = manifest[0]["Config"].as_str().unwrap_or_default();
    let config = files
        .get(name)
        .ok_or_else(|| format!("docker save of {tag} lacks its config {name:?}"))?;
    serde_json::from_slice(config).map_err(|err| format!("{name}: {err}"))
}

/// The image config of `tag` pieced together from `docker image inspect` and `docker
/// history` (for images `docker save` refuses): os, architecture, config, rootfs and the
/// history's `created_by` and `empty_layer` (a step of size 0).
fn inspected_config(tag: &str) -> Result<serde_json::Value, String> {
    let run = |args: &[&str]| {
        let out = Command::new(DOCKER).args(args).output().unwrap();
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!("docker {}: {}", args.join(" "), last_lines(&out)))
        }
    };
    let inspect: serde_json::Value =
        serde_json::from_str(&run(&["image", "inspect", "--format", "{{json .}}", tag])?)
            .map_err(|err| format!("docker image inspect {tag}: {err}"))?;
    let mut history = Vec::new();
    // `docker history` lists the newest step first.
    for line in run(&["history", "--no-trunc", "--format", "{{json .}}", tag])?
        .lines()
        .rev()
    {
        let step: serde_json::Value =
            serde_json::from_str(line).map_err(|err| format!("docker history {tag}: {err}"))?;
        history.push(serde_json::json!({
            "created_by": step["CreatedBy"],
            "empty_layer": step["Size"] == "0B",
        }));
    }
    let layers = match &inspect["RootFS"]["Layers"] {
        serde_json::Value::Null => serde_json::json!([]),
        layers => layers.clone(),
    };
    Ok(serde_json::json!({
        "os": inspect["Os"],
        "architecture": inspect["Architecture"],
        "config": inspect["Config"],
        "rootfs": {"type": inspect["RootFS"]["Type"], "diff_ids": layers},
        "history": history,
    }))
}

/// One run through hoist → dockerd's BuildKit and through `docker build` on the same
/// daemon: the same outcome, the same files or image, and (unless `expectations` is
/// false) what the case expects.
fn dockerd_conformance_run(
    env: &BuildEnv,
    case: &IntegrationCase,
    materialized: &hoist_testkit::integration::MaterializedCase,
    index: usize,
    expectations: bool,
) -> Result<(), String> {
    let run = &case.runs[index];
    let prepared = prepare(
        env,
        case,
        materialized.context(),
        run,
        &materialized.dockerfile(case, run),
    );
    let out_dir = env.fresh_dir(&format!("{}-{index}-out", case.id));
    let image = matches!(run.export, Some(Export::Image));
    let local = matches!(run.export, Some(Export::Local));
    let tag = |who: &str| {
        format!(
            "{who}-conformance-{}-{index}-{}:1",
            case.id,
            std::process::id()
        )
    };
    let (ours, theirs) = if image {
        (PathBuf::from(tag("hoist")), PathBuf::from(tag("docker")))
    } else if local {
        (out_dir.join("hoist"), out_dir.join("docker"))
    } else {
        (out_dir.join("hoist.tar"), out_dir.join("docker.tar"))
    };
    let args_for = |dest: &Path, hoist: bool| {
        let mut all = prepared.flags.clone();
        all.push("-f".into());
        all.push(prepared.dockerfile.display().to_string());
        if image {
            if hoist {
                all.push("--load".into());
            }
            all.extend(["-t".to_owned(), dest.display().to_string()]);
        } else {
            let kind = if local { "local" } else { "tar" };
            all.push("-o".into());
            all.push(format!("type={kind},dest={}", dest.display()));
        }
        all.push(prepared.context.display().to_string());
        all
    };
    let hoist_args = args_for(&ours, true);
    let hoist_out = hoist(
        env,
        &hoist_args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let docker_args = args_for(&theirs, false);
    let docker_out = docker(&docker_args.iter().map(String::as_str).collect::<Vec<_>>());
    let result = (|| {
        match (hoist_out.status.success(), docker_out.status.success()) {
            (true, true) => {}
            (false, false) if !run.expect_success => {
                if expectations {
                    for part in &run.expect_error_contains {
                        if !text(&hoist_out).contains(part.as_str()) {
                            return Err(format!(
                                "error lacks {part:?}: {}",
                                last_lines(&hoist_out)
                            ));
                        }
                    }
                }
                return Ok(());
            }
            (false, false) => {
                return Err(format!(
                    "docker build fails too (list the case in UNSUPPORTED?): {}",
                    last_lines(&docker_out)
                ))
            }
            (true, false) => {
                return Err(format!(
                    "hoist built it, docker build failed: {}",
                    last_lines(&docker_out)
                ))
            }
            (false, true) => return Err(format!("hoist failed: {}", last_lines(&hoist_out))),
        }
        if !run.expect_success && expectations {
            return Err("both built it, an error was expected".into());
        }
        if image {
            let (a, b) = (image_summary(&tag("hoist")), image_summary(&tag("docker")));
            if a != b {
                return Err(format!("the images differ: hoist {a} / docker {b}"));
            }
            if expectations {
                run.check_image_config(&saved_config(env, &tag("hoist"))?)?;
            }
            return Ok(());
        }
        let (a, b) = if local {
            (tree(&ours), tree(&theirs))
        } else {
            (tar_tree(&ours), tar_tree(&theirs))
        };
        let diff = differences(&a, &b);
        if !diff.is_empty() {
            return Err(format!("the exports differ: {}", diff.replace('\n', "; ")));
        }
        if local && expectations {
            run.check_local(&ours)?;
        }
        Ok(())
    })();
    if image {
        let _ = Command::new(DOCKER)
            .args(["rmi", "-f", &tag("hoist"), &tag("docker")])
            .output();
    }
    let _ = std::fs::remove_dir_all(&out_dir);
    result
}

/// Every run of every case (46) through hoist's client → dockerd's built-in BuildKit and
/// through `DOCKER_BUILDKIT=1 docker build` on the same dockerd: `type=local` exports for
/// runs checking files, images loaded into dockerd for runs checking an image config
/// (compared with `docker image inspect`, the config checked from `docker save`), `type=tar`
/// for the others. Cases in [`UNSUPPORTED`] must fail on both; a case failing that is not in
/// `build_dockerd_conformance_known_failures.txt`, or a listed one passing, fails the test.
#[test]
#[allow(clippy::print_stdout)] // conformance runners print their counts
fn dockerd_conformance_every_integration_case_matches_docker_build() {
    if !dockerd_up() {
        return;
    }
    let Some(cases) = hoist_testkit::integration::cases() else {
        return;
    };
    let Some(env) = BuildEnv::new() else { return };
    let known = hoist_testkit::integration::known_failures(KNOWN_FAILURES);
    let listed = UNSUPPORTED
        .iter()
        .chain(EXPECTATIONS_DIFFER)
        .chain(NOT_ON_DOCKERD)
        .map(|(id, _)| *id);
    for id in known.keys().map(String::as_str).chain(listed) {
        assert!(
            cases.iter().any(|c| c.id == id),
            "{id} is listed but is not a case"
        );
    }
    let mut failing = Vec::new();
    let mut skipped = Vec::new();
    for case in &cases {
        if let Some((_, reason)) = NOT_ON_DOCKERD.iter().find(|(id, _)| *id == case.id) {
            println!("skip {}: {reason}", case.id);
            skipped.push(case.id.as_str());
            continue;
        }
        let unsupported = UNSUPPORTED.iter().any(|(id, _)| *id == case.id);
        let expectations = !EXPECTATIONS_DIFFER.iter().any(|(id, _)| *id == case.id);
        let materialized = case.materialize().unwrap();
        let mut reasons = Vec::new();
        let mut dockerd_failed = false;
        for index in 0..case.runs.len() {
            let started = std::time::Instant::now();
            let mut result =
                dockerd_conformance_run(&env, case, &materialized, index, expectations);
            if unsupported {
                // Both failing is the outcome to match (whatever BuildKit 0.8 says).
                if let Err(reason) = &result {
                    if reason.starts_with("docker build fails too") {
                        dockerd_failed = true;
                        result = Ok(());
                    }
                }
            }
            let took = started.elapsed().as_secs_f32();
            match result {
                Ok(()) => println!("ok   {} run {index} ({took:.1}s)", case.id),
                Err(reason) => {
                    println!("FAIL {} run {index} ({took:.1}s): {reason}", case.id);
                    reasons.push(format!("run {index}: {reason}"));
                }
            }
        }
        if unsupported && !dockerd_failed {
            reasons.push("listed in UNSUPPORTED, but dockerd builds every run".into());
        }
        if !reasons.is_empty() {
            failing.push((case.id.clone(), reasons));
        } else if unsupported {
            skipped.push(case.id.as_str());
        }
    }
    let total = cases.len() - skipped.len();
    println!(
        "hoist → dockerd: {}/{total} passed ({} skipped, dockerd's BuildKit 0.8 cannot build \
         them: {skipped:?})",
        total - failing.len(),
        skipped.len()
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
        "failing, not in build_dockerd_conformance_known_failures.txt: {unexpected:?}; \
         listed there but passing (remove them, and from docs/dev/conformance.md): {fixed:?}"
    );
}

#[test]
fn tar_outputs_flags_and_dockerignore_match_docker_build() {
    if !dockerd_up() {
        return;
    }
    let Some(env) = BuildEnv::new() else { return };
    let host = env.registry.host();
    let ctx = env.fresh_dir("tar-ctx");
    std::fs::create_dir_all(ctx.join("sub/deeper")).unwrap();
    std::fs::write(ctx.join("sub/deeper/f.txt"), "deep\n").unwrap();
    std::fs::write(ctx.join("ignored.log"), "not sent\n").unwrap();
    std::fs::write(ctx.join("kept.txt"), "kept\n").unwrap();
    std::fs::write(ctx.join(".dockerignore"), "*.log\n").unwrap();
    std::os::unix::fs::symlink("kept.txt", ctx.join("link")).unwrap();
    std::fs::hard_link(ctx.join("kept.txt"), ctx.join("hard.txt")).unwrap();
    let exec = ctx.join("run.sh");
    std::fs::write(&exec, "#!/bin/sh\necho run\n").unwrap();
    std::fs::set_permissions(&exec, std::os::unix::fs::PermissionsExt::from_mode(0o4755)).unwrap();
    let dockerfiles = env.fresh_dir("tar-dockerfiles");
    let dockerfile = dockerfiles.join("Build.dockerfile");
    std::fs::write(
        &dockerfile,
        format!(
            "FROM {host}/busybox AS base\nARG WHO=nobody\nRUN mkdir /out && echo \"hello $WHO\" > /out/greeting\n\
             COPY . /out/ctx/\nRUN ls /out/ctx > /out/listing\n\
             FROM scratch AS final\nCOPY --from=base /out /\n\
             FROM scratch AS other\nCOPY --from=base /out/greeting /only\n"
        ),
    )
    .unwrap();
    let ctx_arg = ctx.display().to_string();
    let file_arg = dockerfile.display().to_string();
    let out = env.fresh_dir("tar-out");
    let ours = out.join("hoist.tar");
    let theirs = out.join("docker.tar");
    for (target, arg) in [
        ("final", "--build-arg=WHO=world"),
        ("other", "--build-arg=X=1"),
    ] {
        let hoist_out = hoist(
            &env,
            &[
                "-f",
                &file_arg,
                "--target",
                target,
                arg,
                "-o",
                &format!("type=tar,dest={}", ours.display()),
                &ctx_arg,
            ],
        );
        assert!(hoist_out.status.success(), "{}", text(&hoist_out));
        let docker_out = docker(&[
            "-f",
            &file_arg,
            "--target",
            target,
            arg,
            "-o",
            &format!("type=tar,dest={}", theirs.display()),
            &ctx_arg,
        ]);
        assert!(docker_out.status.success(), "{}", text(&docker_out));
        let (a, b) = (tar_tree(&ours), tar_tree(&theirs));
        let diff = differences(&a, &b);
        assert!(diff.is_empty(), "target {target}:\n{diff}");
        if target == "final" {
            let greeting = a.get("greeting").expect("greeting in the tar");
            assert!(
                greeting.contains(hoist_oci::Digest::sha256_of(b"hello world\n").encoded()),
                "{greeting}"
            );
            let listing = tar_entries_text(&ours, "listing");
            assert!(
                listing.contains("kept.txt") && !listing.contains("ignored.log"),
                "{listing}"
            );
            assert!(a.contains_key("ctx/sub/deeper/f.txt"), "{a:?}");
        } else {
            assert_eq!(a.keys().collect::<Vec<_>>(), ["only"], "{a:?}");
        }
    }
}

/// One file's text from a tar.
fn tar_entries_text(tar: &Path, name: &str) -> String {
    let entries = crate::build_env::tar_entries(tar);
    String::from_utf8_lossy(&entries[name]).into_owned()
}

#[test]
fn a_failing_step_a_secret_and_load_through_dockerds_buildkit() {
    if !dockerd_up() {
        return;
    }
    let Some(env) = BuildEnv::new() else { return };
    let host = env.registry.host();
    let ctx = env.fresh_dir("fail-ctx");
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {host}/busybox\nRUN echo boom-output && exit 3\n"),
    )
    .unwrap();
    let ctx_arg = ctx.display().to_string();
    let out = hoist(&env, &[&ctx_arg]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains("[2/2] RUN echo boom-output && exit 3"),
        "{all}"
    );
    assert!(
        all.contains("boom-output"),
        "the step's output is shown:\n{all}"
    );
    assert!(
        all.contains("ERROR: ") && all.contains("exit code: 3"),
        "{all}"
    );

    // A secret served through the session's Secrets service.
    let secret_ctx = env.fresh_dir("secret-ctx");
    std::fs::write(
        secret_ctx.join("Dockerfile"),
        format!(
            "FROM {host}/busybox\n\
             RUN --mount=type=secret,id=tok mkdir /out && cp /run/secrets/tok /out/tok\n"
        ),
    )
    .unwrap();
    let token = secret_ctx.join("token");
    std::fs::write(&token, "s3cret-value\n").unwrap();
    let dest = env.fresh_dir("secret-out");
    let out = hoist(
        &env,
        &[
            "--secret",
            &format!("id=tok,src={}", token.display()),
            "-o",
            &format!("type=local,dest={}", dest.display()),
            &secret_ctx.display().to_string(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        std::fs::read_to_string(dest.join("out/tok")).unwrap(),
        "s3cret-value\n"
    );

    // --load: the image kept by dockerd (its `moby` exporter), runnable there.
    let tag = format!("hoist-dockerd-load-{}:1", std::process::id());
    let out = hoist(
        &env,
        &[
            "--load",
            "-t",
            &tag,
            &secret_ctx.display().to_string(),
            "--secret",
            &format!("id=tok,src={}", token.display()),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let run = Command::new(DOCKER)
        .args(["run", "--rm", "--network=host", &tag, "cat", "/out/tok"])
        .output()
        .unwrap();
    let _ = Command::new(DOCKER).args(["rmi", "-f", &tag]).output();
    assert_eq!(
        String::from_utf8_lossy(&run.stdout),
        "s3cret-value\n",
        "{}",
        text(&run)
    );
}

#[test]
fn an_unreachable_docker_daemon_is_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\n").unwrap();
    let socket = dir.path().join("no-docker.sock");
    let out = Command::new(env!("CARGO_BIN_EXE_hoist"))
        .arg("--root")
        .arg(dir.path().join("state"))
        .args([
            "build",
            "--addr",
            "docker-daemon",
            "-o",
            "type=local,dest=out",
        ])
        .arg(dir.path())
        .env("DOCKER_HOST", format!("unix://{}", socket.display()))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!(
            "cannot connect to the Docker daemon at {}",
            socket.display()
        )),
        "{stderr}"
    );
}

#[test]
fn a_docker_builder_builds_on_dockerd_and_loads_the_image() {
    if !dockerd_up() {
        return;
    }
    let Some(env) = BuildEnv::new() else { return };
    let builders = env.fresh_dir("builders");
    let run = |args: &[&str]| {
        env.command(args)
            .env("HOIST_BUILDERS_DIR", &builders)
            .env_remove("HOIST_BUILDER")
            .env_remove("BUILDX_BUILDER")
            .env_remove("DOCKER_HOST")
            .output()
            .unwrap()
    };
    let created = run(&["create", "--name", "dk", "--driver", "docker", "--use"]);
    assert!(created.status.success(), "{}", text(&created));
    let listed = run(&["ls"]);
    let table = text(&listed);
    let line = table
        .lines()
        .find(|l| l.contains(" dk0 ") && l.contains("running"))
        .unwrap_or_else(|| panic!("no running docker node in:\n{table}"));
    assert!(
        line.contains("linux/amd64") || line.contains("linux/"),
        "{table}"
    );
    // BUILDKIT: the BuildKit that daemon's release vendors, as buildx's docker driver
    // shows it (20.10 releases after the last row of buildx's table: `v0.8+unknown`).
    let server = Command::new(DOCKER)
        .args(["version", "--format", "{{.Server.Version}}"])
        .output()
        .unwrap();
    let server = String::from_utf8_lossy(&server.stdout).trim().to_owned();
    let columns: Vec<&str> = line.split_whitespace().collect();
    let buildkit = columns.get(5).copied().unwrap_or_default();
    if server.starts_with("20.10.") {
        assert!(buildkit.starts_with("v0.8"), "dockerd {server}:\n{table}");
    } else {
        assert!(!buildkit.is_empty(), "dockerd {server}:\n{table}");
    }

    let host = env.registry.host();
    let ctx = env.fresh_dir("docker-builder-ctx");
    std::fs::write(ctx.join("a.txt"), "from the context\n").unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {host}/busybox\nCOPY a.txt /a.txt\nRUN cat /a.txt > /b.txt\n"),
    )
    .unwrap();
    let tag = format!("hoist-docker-builder-{}:1", std::process::id());
    // No output named: the image is loaded into the daemon, as buildx's docker driver does.
    let built = run(&[
        "build",
        "--progress=plain",
        "--network=host",
        "-t",
        &tag,
        &ctx.display().to_string(),
    ]);
    assert!(built.status.success(), "{}", text(&built));
    let shown = Command::new(DOCKER)
        .args(["run", "--rm", "--network=host", &tag, "cat", "/b.txt"])
        .output()
        .unwrap();
    let _ = Command::new(DOCKER).args(["rmi", "-f", &tag]).output();
    assert_eq!(
        String::from_utf8_lossy(&shown.stdout),
        "from the context\n",
        "{}",
        text(&shown)
    );

    // Several platforms cannot go to one Docker daemon.
    let multi = run(&[
        "build",
        "--platform",
        "linux/amd64,linux/arm64",
        &ctx.display().to_string(),
    ]);
    assert!(!multi.status.success());
    assert!(
        text(&multi).contains("multiple platforms"),
        "{}",
        text(&multi)
    );
    let removed = run(&["rm", "dk"]);
    assert!(removed.status.success(), "{}", text(&removed));
}

/// `docker image inspect` of `tag`: its layers, config, OS and architecture as one text.
fn image_summary(tag: &str) -> String {
    let out = Command::new(DOCKER)
        .args([
            "image",
            "inspect",
            "--format",
            "{{json .RootFS.Layers}} {{json .Config}} {{.Os}}/{{.Architecture}}",
            tag,
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn images_loaded_by_hoist_equal_docker_builds() {
    if !dockerd_up() {
        return;
    }
    let Some(cases) = hoist_testkit::integration::cases() else {
        return;
    };
    let Some(env) = BuildEnv::new() else { return };
    let chosen = [
        "08-copy-chown",
        "22-arg-global-in-from",
        "28-arg-targetstage",
    ];
    let mut compared = 0;
    for case in cases.iter().filter(|c| chosen.contains(&c.id.as_str())) {
        let materialized = case.materialize().unwrap();
        let run = &case.runs[0];
        let prepared = prepare(
            &env,
            case,
            materialized.context(),
            run,
            &materialized.dockerfile(case, run),
        );
        let ours = format!("hoist-eq-{}-{}:1", case.id, std::process::id());
        let theirs = format!("docker-eq-{}-{}:1", case.id, std::process::id());
        let mut args = prepared.flags.clone();
        args.push("-f".into());
        args.push(prepared.dockerfile.display().to_string());
        let with_tag = |tag: &str, load: bool| {
            let mut all = args.clone();
            if load {
                all.push("--load".into());
            }
            all.extend(["-t".to_owned(), tag.to_owned()]);
            all.push(prepared.context.display().to_string());
            all
        };
        let hoist_args = with_tag(&ours, true);
        let hoist_out = hoist(
            &env,
            &hoist_args.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        let docker_args = with_tag(&theirs, false);
        let docker_out = docker(&docker_args.iter().map(String::as_str).collect::<Vec<_>>());
        let summaries = (hoist_out.status.success() && docker_out.status.success())
            .then(|| (image_summary(&ours), image_summary(&theirs)));
        let _ = Command::new(DOCKER)
            .args(["rmi", "-f", &ours, &theirs])
            .output();
        let Some((a, b)) = summaries else {
            panic!(
                "{}: hoist\n{}\ndocker\n{}",
                case.id,
                text(&hoist_out),
                text(&docker_out)
            );
        };
        assert_eq!(a, b, "{}: the images differ", case.id);
        compared += 1;
    }
    assert_eq!(compared, chosen.len());
}

#[test]
fn a_dockerfile_from_stdin_with_a_local_context() {
    if !dockerd_up() {
        return;
    }
    let Some(env) = BuildEnv::new() else { return };
    let ctx = env.fresh_dir("stdin-ctx");
    std::fs::write(ctx.join("a.txt"), "context file\n").unwrap();
    let dest = env.fresh_dir("stdin-out");
    let mut child = env
        .command(&["build", "--addr", &format!("docker-daemon://{SOCKET}")])
        .args(["--progress=plain", "-f", "-", "-o"])
        .arg(format!("type=local,dest={}", dest.display()))
        .arg(&ctx)
        .env_remove("DOCKER_HOST")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(b"FROM scratch\nCOPY a.txt /copied.txt\n")
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        std::fs::read_to_string(dest.join("copied.txt")).unwrap(),
        "context file\n"
    );
}
