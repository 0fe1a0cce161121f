//! `hoist build` checked the way users check it, with real clients: a docker archive loaded
//! into podman and run, an OCI archive unpacked by umoci, a pushed image read back by skopeo;
//! the cache as `--progress plain` shows it and as the state directory's blobs show it; the
//! errors bad input gets; and a build killed mid-way, then rebuilt.
//!
//! Needs root, `docker-registry` and the busybox .debs (see `hoist_testkit::images`); tests
//! needing podman, umoci or skopeo say so and return early without them.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::build_env::BuildEnv;
use sha2::Digest as _;

/// An environment plus a build context for one test.
struct Case {
    env: BuildEnv,
    ctx: PathBuf,
}

impl Case {
    fn new() -> Option<Case> {
        let env = BuildEnv::new()?;
        let ctx = env.fresh_dir("ctx");
        Some(Case { env, ctx })
    }

    fn file(&self, name: &str, text: &str) {
        let path = self.ctx.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    /// `hoist build --progress=plain ARGS CTX`.
    fn build_output(&self, args: &[&str]) -> Output {
        let ctx = self.ctx.display().to_string();
        let mut all = vec!["build", "--progress=plain"];
        all.extend_from_slice(args);
        all.push(&ctx);
        self.env.hoist(&all)
    }

    /// As [`Case::build_output`], failing the test when the build fails; the progress text.
    fn build(&self, args: &[&str]) -> String {
        let out = self.build_output(args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "hoist build failed:\n{stderr}");
        stderr
    }

    /// A failing build: its stderr, after checking it exited with 1.
    fn build_error(&self, args: &[&str]) -> String {
        let out = self.build_output(args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(1), "want exit code 1:\n{stderr}");
        stderr
    }

    fn local(&self) -> (PathBuf, String) {
        let dest = self.env.fresh_dir("out");
        let spec = format!("type=local,dest={}", dest.display());
        (dest, spec)
    }
}

fn have(tool: &str) -> bool {
    let found = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        hoist_testkit::skip(&format!("{tool} is not installed"));
    }
    found
}

fn text(out: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A step of plain progress: its `#N` name, and whether it showed `CACHED` / `DONE`.
#[derive(Debug)]
struct Step {
    name: String,
    cached: bool,
    done: bool,
}

/// The steps of `--progress plain` output, in order of first appearance.
fn steps(progress: &str) -> Vec<Step> {
    let mut out: Vec<(String, Step)> = Vec::new();
    for line in progress.lines() {
        let Some(rest) = line.strip_prefix('#') else {
            continue;
        };
        let Some((n, text)) = rest.split_once(' ') else {
            continue;
        };
        if !n.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        match out.iter_mut().find(|(id, _)| id == n) {
            None => out.push((
                n.to_owned(),
                Step {
                    name: text.to_owned(),
                    cached: false,
                    done: false,
                },
            )),
            Some((_, step)) if text == "CACHED" => step.cached = true,
            Some((_, step)) if text.starts_with("DONE") => step.done = true,
            Some(_) => {}
        }
    }
    out.into_iter().map(|(_, step)| step).collect()
}

/// The Dockerfile steps of plain progress (`[1/3] FROM ...`, `[2/3] RUN ...`, `[stage 1/2]
/// COPY ...`), without the `[internal]` ones (loading the Dockerfile, `.dockerignore`,
/// metadata and the context) and the exporter's (`exporting to ...`).
fn dockerfile_steps(progress: &str) -> Vec<Step> {
    steps(progress)
        .into_iter()
        .filter(|s| !s.name.starts_with("[internal]") && !s.name.starts_with("exporting to"))
        .collect()
}

fn step<'a>(steps: &'a [Step], part: &str) -> &'a Step {
    steps
        .iter()
        .find(|s| s.name.contains(part))
        .unwrap_or_else(|| panic!("no step {part:?} in {steps:#?}"))
}

#[test]
fn docker_archive_loads_and_runs_in_podman() {
    let Some(case) = Case::new() else { return };
    if !have("podman") {
        return;
    }
    case.file(
        "Dockerfile",
        "FROM busybox\nRUN echo built by hoist > /hello\nCMD [\"cat\", \"/hello\"]\n",
    );
    let archive = case.env.dir.path().join("image.tar");
    case.build(&[
        "-t",
        "hoist-e2e/hello:v1",
        "-o",
        &format!("type=docker,dest={}", archive.display()),
    ]);
    let store = case.env.fresh_dir("podman");
    let podman = |args: &[&str]| {
        Command::new("podman")
            .arg("--root")
            .arg(store.join("root"))
            .arg("--runroot")
            .arg(store.join("runroot"))
            .arg("--storage-driver")
            .arg("vfs")
            .args(args)
            .output()
            .unwrap()
    };
    let archive_arg = archive.display().to_string();
    let load = podman(&["load", "-i", &archive_arg]);
    assert!(load.status.success(), "podman load: {}", text(&load));
    let inspect = podman(&["image", "inspect", "docker.io/hoist-e2e/hello:v1"]);
    assert!(
        inspect.status.success(),
        "podman image inspect: {}",
        text(&inspect)
    );
    let config: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(
        config[0]["Config"]["Cmd"],
        serde_json::json!(["cat", "/hello"]),
        "{config:#}"
    );

    let run = podman(&[
        "run",
        "--rm",
        "--network=none",
        "--runtime=runc",
        "--ulimit=nofile=1024:1024",
        "--ulimit=nproc=1024:1024",
        "docker.io/hoist-e2e/hello:v1",
    ]);
    // Exit codes 125/126: podman itself or the OCI runtime cannot start a container on this
    // machine (limits, cgroups); the load and inspect above still checked the archive.
    if matches!(run.status.code(), Some(125 | 126)) {
        hoist_testkit::skip(&format!(
            "podman cannot run containers here: {}",
            text(&run)
        ));
        let _ = std::fs::remove_dir_all(&store);
        return;
    }
    assert!(run.status.success(), "podman run: {}", text(&run));
    assert_eq!(String::from_utf8_lossy(&run.stdout), "built by hoist\n");
    let _ = std::fs::remove_dir_all(&store);
}

#[test]
fn oci_archive_unpacks_with_umoci() {
    let Some(case) = Case::new() else { return };
    if !have("umoci") {
        return;
    }
    case.file(
        "Dockerfile",
        "FROM busybox\nRUN echo ran > /ran.txt\nCOPY data.txt /data/\nUSER 1000\n",
    );
    case.file("data.txt", "from the context\n");
    let archive = case.env.dir.path().join("image.tar");
    case.build(&[
        "-t",
        "example.com/e2e:v1",
        "-o",
        &format!("type=oci,dest={}", archive.display()),
    ]);
    let layout = case.env.fresh_dir("layout");
    let untar = Command::new("tar")
        .arg("-xf")
        .arg(&archive)
        .arg("-C")
        .arg(&layout)
        .status()
        .unwrap();
    assert!(untar.success());
    let bundle = case.env.dir.path().join("bundle");
    let out = Command::new("umoci")
        .arg("unpack")
        .arg("--image")
        .arg(format!("{}:v1", layout.display()))
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(out.status.success(), "umoci unpack: {}", text(&out));
    let rootfs = bundle.join("rootfs");
    assert_eq!(
        std::fs::read_to_string(rootfs.join("ran.txt")).unwrap(),
        "ran\n"
    );
    assert_eq!(
        std::fs::read_to_string(rootfs.join("data/data.txt")).unwrap(),
        "from the context\n"
    );
    assert!(rootfs.join("bin/busybox").is_file());
    let runtime: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap();
    assert_eq!(runtime["process"]["user"]["uid"], 1000, "{runtime:#}");
}

#[test]
fn pushed_image_reads_back_with_skopeo() {
    let Some(case) = Case::new() else { return };
    if !have("skopeo") {
        return;
    }
    case.file(
        "Dockerfile",
        "FROM busybox\nRUN echo pushed > /p\nLABEL org.example.e2e=yes\n",
    );
    let target = format!("{}/e2e/pushed:v1", case.env.registry.host());
    case.build(&["-t", &target, "--push"]);
    let out = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false"])
        .arg(format!("docker://{target}"))
        .output()
        .unwrap();
    assert!(out.status.success(), "skopeo inspect: {}", text(&out));
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(info["Labels"]["org.example.e2e"], "yes", "{info:#}");
    assert_eq!(info["Os"], "linux", "{info:#}");
    // The busybox layer and the RUN layer.
    assert_eq!(info["Layers"].as_array().map(Vec::len), Some(2), "{info:#}");
}

#[test]
fn identical_rebuild_is_all_cached_and_writes_no_blob() {
    let Some(case) = Case::new() else { return };
    case.file(
        "Dockerfile",
        "FROM busybox\nRUN echo one > /one\nCOPY a.txt /a.txt\nRUN cat /a.txt /one > /both\n",
    );
    case.file("a.txt", "a\n");
    let archive = case.env.dir.path().join("image.tar");
    let spec = format!("type=oci,dest={}", archive.display());
    // A fixed epoch: without one, each build dates its image config (as BuildKit does), and
    // the new config and manifest are two new blobs.
    let epoch = "SOURCE_DATE_EPOCH=1700000000";
    let first = case.build(&["-o", &spec, "--build-arg", epoch]);
    let first_steps = dockerfile_steps(&first);
    assert!(
        first_steps.iter().any(|s| !s.cached),
        "the first build ran nothing:\n{first}"
    );
    let blobs = case.env.blob_count();
    assert!(blobs > 0, "the first build stored no blob");

    let second = case.build(&["-o", &spec, "--build-arg", epoch]);
    let second_steps = dockerfile_steps(&second);
    assert_eq!(second_steps.len(), 4, "{second}");
    for step in &second_steps {
        assert!(step.cached, "step {:?} not CACHED:\n{second}", step.name);
    }
    assert_eq!(
        case.env.blob_count(),
        blobs,
        "the cached build added blobs to the state dir"
    );
}

#[test]
fn context_changes_invalidate_from_the_copy_that_uses_them() {
    let Some(case) = Case::new() else { return };
    case.file(
        "Dockerfile",
        "FROM busybox\nRUN echo first > /first\nCOPY used.txt /used.txt\n\
         RUN cat /used.txt > /copy.txt\n",
    );
    case.file("used.txt", "v1\n");
    case.file("unused.txt", "u1\n");
    let (out, spec) = case.local();
    case.build(&["-o", &spec]);

    // Touching the copied file (a new mtime, the same content) keeps every step cached:
    // context files are keyed by content and metadata other than times, as in BuildKit.
    let later = std::time::SystemTime::now() + Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(case.ctx.join("used.txt"))
        .unwrap()
        .set_modified(later)
        .unwrap();
    let touched = case.build(&["-o", &spec]);
    for step in dockerfile_steps(&touched) {
        assert!(step.cached, "step {:?} not CACHED:\n{touched}", step.name);
    }

    // Changing a file no COPY reads keeps every step cached.
    case.file("unused.txt", "u2, longer\n");
    let again = case.build(&["-o", &spec]);
    for step in dockerfile_steps(&again) {
        assert!(step.cached, "step {:?} not CACHED:\n{again}", step.name);
    }

    // Changing the copied file misses from that COPY on, and only from there.
    case.file("used.txt", "v2\n");
    let changed = case.build(&["-o", &spec]);
    let steps = dockerfile_steps(&changed);
    assert!(step(&steps, "RUN echo first").cached, "{changed}");
    assert!(!step(&steps, "COPY used.txt").cached, "{changed}");
    assert!(!step(&steps, "RUN cat /used.txt").cached, "{changed}");
    assert_eq!(
        std::fs::read_to_string(out.join("copy.txt")).unwrap(),
        "v2\n"
    );
}

#[test]
fn dockerfile_error_exits_1_naming_file_and_line() {
    let Some(case) = Case::new() else { return };
    case.file(
        "Dockerfile",
        "FROM busybox\nRUN true\nNOTANINSTRUCTION foo\n",
    );
    let stderr = case.build_error(&[]);
    assert!(stderr.contains("Dockerfile:3"), "{stderr}");
    assert!(stderr.contains("NOTANINSTRUCTION"), "{stderr}");
}

/// The failing step's own lines are shown, from the location its graph vertex carries: an
/// earlier stage with the same instruction text (which succeeds there) is not the one
/// marked. (Matching step names against the Dockerfile's text marked line 3.)
#[test]
fn failing_step_shows_its_own_lines_when_another_stage_has_the_same_text() {
    let Some(case) = Case::new() else { return };
    case.file(
        "Dockerfile",
        "FROM busybox AS one\nRUN touch /ok\nRUN test -e /ok\nFROM busybox AS two\nRUN test -e /ok\nCOPY --from=one /ok /from-one\n",
    );
    let stderr = case.build_error(&[]);
    assert!(stderr.contains("Dockerfile:5\n"), "{stderr}");
    assert!(stderr.contains(" 5 | >>> RUN test -e /ok"), "{stderr}");
    assert!(!stderr.contains(" 3 | >>>"), "{stderr}");
    assert!(stderr.contains("[two 2/3] RUN test -e /ok"), "{stderr}");
}

#[test]
fn missing_base_image_names_the_reference() {
    let Some(case) = Case::new() else { return };
    let missing = format!("{}/no/such-image:v9", case.env.registry.host());
    case.file("Dockerfile", &format!("FROM {missing}\nRUN true\n"));
    let stderr = case.build_error(&[]);
    assert!(stderr.contains("no/such-image"), "{stderr}");
}

#[test]
fn failing_run_names_command_and_exit_code() {
    let Some(case) = Case::new() else { return };
    case.file(
        "Dockerfile",
        "FROM busybox\nRUN echo before-failing && exit 7\n",
    );
    let stderr = case.build_error(&[]);
    assert!(stderr.contains("echo before-failing && exit 7"), "{stderr}");
    assert!(stderr.contains("exit code: 7"), "{stderr}");
}

#[test]
fn copy_source_outside_the_context_is_an_error() {
    let Some(case) = Case::new() else { return };
    // A file next to the context, which `../` would reach if it were not scoped.
    std::fs::write(case.ctx.parent().unwrap().join("secret.txt"), "secret\n").unwrap();
    let name = case.ctx.file_name().unwrap().to_string_lossy().into_owned();
    case.file(
        "Dockerfile",
        &format!("FROM scratch\nCOPY ../secret.txt /s\nCOPY ../{name}/../secret.txt /t\n"),
    );
    let (out, spec) = case.local();
    let stderr = case.build_error(&["-o", &spec]);
    assert!(stderr.contains("secret.txt"), "{stderr}");
    assert!(!out.join("s").exists() && !out.join("t").exists());
}

#[test]
fn copy_source_matching_nothing_is_an_error() {
    let Some(case) = Case::new() else { return };
    case.file("Dockerfile", "FROM scratch\nCOPY nothing-here.txt /\n");
    let stderr = case.build_error(&[]);
    assert!(stderr.contains("nothing-here.txt"), "{stderr}");

    // A wildcard matching nothing is no error, as in BuildKit (conformance case 10); a
    // wildcard-free path naming nothing is.
    case.file("Dockerfile", "FROM scratch\nCOPY nomatch-*.txt /\n");
    case.build(&[]);
    case.file("Dockerfile", "FROM scratch\nCOPY dir/missing.txt /\n");
    std::fs::create_dir_all(case.ctx.join("dir")).unwrap();
    let stderr = case.build_error(&[]);
    assert!(stderr.contains("dir/missing.txt"), "{stderr}");
}

#[test]
fn symlink_out_of_the_context_does_not_reach_the_host() {
    let Some(case) = Case::new() else { return };
    let outside = case.ctx.parent().unwrap().join("host-secret.txt");
    std::fs::write(&outside, "host secret\n").unwrap();
    std::os::unix::fs::symlink(&outside, case.ctx.join("link")).unwrap();
    case.file("Dockerfile", "FROM scratch\nCOPY link /copied\n");
    let (out, spec) = case.local();
    let built = case.build_output(&["-o", &spec]);
    let stderr = String::from_utf8_lossy(&built.stderr);
    // BuildKit resolves the link inside the context (the absolute target then names a path
    // under the context root), so the build fails on a missing file; it must never copy the
    // host's file.
    assert!(
        std::fs::read_to_string(out.join("copied")).ok().as_deref() != Some("host secret\n"),
        "COPY followed a symlink out of the context:\n{stderr}"
    );
    assert_eq!(built.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("link") || stderr.contains("host-secret.txt"),
        "{stderr}"
    );
}

/// The pids of processes whose command line is exactly `argv`.
fn processes_running(argv: &[&str]) -> Vec<u32> {
    let want: Vec<u8> = argv
        .iter()
        .flat_map(|a| [a.as_bytes(), b"\0"].concat())
        .collect();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == want))
        .collect()
}

/// Every blob in the content store hashes to its name.
fn assert_blobs_consistent(root: &Path) {
    let dir = root.join("content/blobs/sha256");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    for entry in entries {
        let entry = entry.unwrap();
        if !entry.file_type().unwrap().is_file() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let mut hasher = sha2::Sha256::new();
        let mut file = std::fs::File::open(entry.path()).unwrap();
        let mut buf = vec![0; 1 << 16];
        loop {
            let n = file.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        assert_eq!(
            hex::encode(hasher.finalize()),
            name,
            "blob {} does not hash to its name",
            entry.path().display()
        );
    }
}

#[test]
fn build_killed_mid_run_then_rebuilds() {
    let Some(case) = Case::new() else { return };
    case.file(
        "Dockerfile",
        "FROM busybox\nRUN echo before > /before\nRUN echo sleeping && sleep 4747\n",
    );
    let (_, spec) = case.local();
    let ctx = case.ctx.display().to_string();
    let mut child = case
        .env
        .command(&["build", "--progress=plain", "-o", &spec, &ctx])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read progress until the sleeping step runs, then SIGKILL the build.
    let mut stderr = child.stderr.take().unwrap();
    let (seen_tx, seen_rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        let mut told = false;
        while let Ok(n) = stderr.read(&mut buf) {
            if n == 0 {
                break;
            }
            all.extend_from_slice(&buf[..n]);
            if !told && String::from_utf8_lossy(&all).contains("sleeping\n") {
                told = true;
                let _ = seen_tx.send(());
            }
        }
        String::from_utf8_lossy(&all).into_owned()
    });
    let seen = seen_rx.recv_timeout(Duration::from_secs(120)).is_ok();
    if !seen {
        // Fall back to time: the step has very likely started by now.
        std::thread::sleep(Duration::from_secs(2));
    }
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert!(!status.success());
    let progress = reader.join().unwrap();
    assert!(seen, "the sleeping step never printed:\n{progress}");

    // Nothing of the killed build keeps running: the sandbox helper dies with hoist (its
    // parent-death signal) and takes the container's processes with it.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut orphans = processes_running(&["sleep", "4747"]);
    while !orphans.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        orphans = processes_running(&["sleep", "4747"]);
    }
    for pid in &orphans {
        let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
    }
    assert!(
        orphans.is_empty(),
        "the killed build's RUN process is still running: {orphans:?}"
    );

    // Rebuild with the long step shortened: the earlier steps come from the cache, the
    // build succeeds, and the store is consistent.
    case.file(
        "Dockerfile",
        "FROM busybox\nRUN echo before > /before\nRUN echo sleeping && sleep 1\n",
    );
    let started = Instant::now();
    let (out, spec) = case.local();
    let again = case.build(&["-o", &spec]);
    assert!(started.elapsed() < Duration::from_secs(40), "{again}");
    assert!(
        step(&dockerfile_steps(&again), "RUN echo before").cached,
        "{again}"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("before")).unwrap(),
        "before\n"
    );
    assert_blobs_consistent(&case.env.root());
    let third = case.build(&["-o", &spec]);
    for step in dockerfile_steps(&third) {
        assert!(step.cached, "step {:?} not CACHED:\n{third}", step.name);
    }
}
