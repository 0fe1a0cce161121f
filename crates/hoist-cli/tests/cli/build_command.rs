//! `hoist build` end to end: the built binary against a `docker-registry` on loopback
//! serving a busybox image made here (Debian's static `/bin/busybox` in one layer), RUN
//! steps in the built-in sandbox, outputs read back with `umoci` or as local directories.
//!
//! Needs root (namespaces, overlayfs, chown), `docker-registry`, `/bin/busybox` (static)
//! and `umoci`; each test says why and returns early when one is missing.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use hoist_engine::ContentStore;
use hoist_oci::{Descriptor, MediaType, Platform, Reference};
use hoist_registry::{Credentials, RegistryClient, RegistryConfig};
use hoist_testkit::registry::TestRegistry;
use sha2::Digest as _;

const BUSYBOX: &str = "/bin/busybox";
const APPLETS: &[&str] = &[
    "sh", "echo", "cat", "id", "ls", "touch", "mkdir", "true", "false", "sleep", "env", "pwd",
    "stat",
];

/// A registry with `busybox:latest`, a state dir and a context dir for one test.
struct Setup {
    registry: TestRegistry,
    dir: tempfile::TempDir,
}

impl Setup {
    /// `None` (with the reason printed) when the test cannot run here.
    fn new() -> Option<Setup> {
        if !hoist_testkit::is_root() {
            hoist_testkit::skip("hoist build runs RUN steps in namespaces: needs root");
            return None;
        }
        if !Path::new(BUSYBOX).is_file() {
            hoist_testkit::skip("no /bin/busybox (apt-get install busybox-static)");
            return None;
        }
        let registry = TestRegistry::start()?;
        push_busybox(&format!("{}/busybox:latest", registry.host()));
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("ctx")).unwrap();
        Some(Setup { registry, dir })
    }

    fn image(&self) -> String {
        format!("{}/busybox:latest", self.registry.host())
    }

    fn context(&self) -> PathBuf {
        self.dir.path().join("ctx")
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Writes a context file (`Dockerfile` included); `BASE` in the text becomes the image.
    fn file(&self, name: &str, text: &str) {
        let path = self.context().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text.replace("BASE", &self.image())).unwrap();
    }

    fn hoist(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_hoist"))
            .arg("--root")
            .arg(self.state())
            .args(args)
            .env("DOCKER_CONFIG", self.dir.path().join("docker"))
            .env_remove("HOIST_ROOT")
            .env_remove("HOIST_CONFIG")
            .output()
            .unwrap()
    }

    /// `hoist build --progress=plain ARGS CONTEXT`, failing the test when it fails; returns
    /// the progress text.
    fn build(&self, args: &[&str]) -> String {
        let out = self.build_output(args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "hoist build failed:\n{stderr}");
        stderr
    }

    fn build_output(&self, args: &[&str]) -> Output {
        let context = self.context();
        let mut all = vec!["build", "--progress=plain"];
        all.extend_from_slice(args);
        all.push(context.to_str().unwrap());
        self.hoist(&all)
    }

    /// Builds with `-o type=local` and returns the output directory.
    fn build_local(&self, args: &[&str]) -> PathBuf {
        let dest = self.dir.path().join(format!("out-{}", unique()));
        let spec = format!("type=local,dest={}", dest.display());
        let mut all = vec!["-o", spec.as_str()];
        all.extend_from_slice(args);
        self.build(&all);
        dest
    }

    fn blobs(&self) -> usize {
        std::fs::read_dir(self.state().join("content/blobs/sha256"))
            .map(|d| d.count())
            .unwrap_or(0)
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// Builds the busybox image (one gzip layer: busybox, applet links, passwd with `app`) and
/// pushes it to `target`.
fn push_busybox(target: &str) {
    let mut builder = tar::Builder::new(Vec::new());
    let dir = |builder: &mut tar::Builder<Vec<u8>>, name: &str, mode: u32| {
        let mut header = root_header();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(mode);
        header.set_size(0);
        header.set_mtime(0);
        header.set_cksum();
        builder
            .append_data(&mut header, name, std::io::empty())
            .unwrap();
    };
    let file = |builder: &mut tar::Builder<Vec<u8>>, name: &str, mode: u32, data: &[u8]| {
        let mut header = root_header();
        header.set_mode(mode);
        header.set_size(data.len() as u64);
        header.set_mtime(0);
        header.set_cksum();
        builder.append_data(&mut header, name, data).unwrap();
    };
    for (name, mode) in [
        ("bin/", 0o755),
        ("etc/", 0o755),
        ("tmp/", 0o1777),
        ("home/app/", 0o755),
    ] {
        dir(&mut builder, name, mode);
    }
    file(
        &mut builder,
        "bin/busybox",
        0o755,
        &std::fs::read(BUSYBOX).unwrap(),
    );
    for applet in APPLETS {
        let mut header = root_header();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_mode(0o777);
        header.set_size(0);
        header.set_mtime(0);
        builder
            .append_link(&mut header, format!("bin/{applet}"), "busybox")
            .unwrap();
    }
    file(
        &mut builder,
        "etc/passwd",
        0o644,
        b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n",
    );
    file(
        &mut builder,
        "etc/group",
        0o644,
        b"root:x:0:\napp:x:1000:\n",
    );
    let tar = builder.into_inner().unwrap();
    let diff_id = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&tar)));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    let gz = gz.finish().unwrap();

    let store_dir = tempfile::tempdir().unwrap();
    let store = ContentStore::open(store_dir.path()).unwrap();
    let layer = store.put_bytes(MediaType::OciLayerGzip, &gz).unwrap();
    let platform = Platform::host();
    let config = serde_json::json!({
        "architecture": platform.architecture,
        "os": platform.os,
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": "busybox test image"}],
    });
    let config = store
        .put_bytes(MediaType::OciConfig, &serde_json::to_vec(&config).unwrap())
        .unwrap();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MediaType::OciManifest.as_str(),
        "config": config,
        "layers": [layer],
    });
    let manifest: Descriptor = store
        .put_bytes(
            MediaType::OciManifest,
            &serde_json::to_vec(&manifest).unwrap(),
        )
        .unwrap();
    let client = RegistryClient::new(RegistryConfig::default(), Credentials::default());
    let target = Reference::parse_docker(target).unwrap();
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(client.push_image(&store, &manifest, &target))
        .unwrap();
}

/// A tar header owned by root.
fn root_header() -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_uid(0);
    header.set_gid(0);
    header
}

fn read(path: impl AsRef<Path>) -> String {
    let path = path.as_ref();
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The `#N` numbers and names of the steps in plain progress, with whether each ran.
fn steps(progress: &str) -> Vec<(String, bool, bool)> {
    let mut out: Vec<(String, String, bool, bool)> = Vec::new();
    for line in progress.lines() {
        let Some(rest) = line.strip_prefix('#') else {
            continue;
        };
        let Some((n, text)) = rest.split_once(' ') else {
            continue;
        };
        match out.iter_mut().find(|s| s.0 == n) {
            None => out.push((n.to_owned(), text.to_owned(), false, false)),
            Some(step) if text == "CACHED" => step.2 = true,
            Some(step) if text.starts_with("DONE") => step.3 = true,
            Some(_) => {}
        }
    }
    out.into_iter()
        .map(|(_, name, cached, done)| (name, cached, done))
        .collect()
}

fn ran(progress: &str, name_part: &str) -> bool {
    steps(progress)
        .iter()
        .any(|(name, _, done)| *done && name.contains(name_part))
}

#[test]
fn build_run_and_copy_to_oci_tar_read_by_umoci() {
    let Some(setup) = Setup::new() else { return };
    if Command::new("umoci").arg("--version").output().is_err() {
        hoist_testkit::skip("umoci is not installed");
        return;
    }
    setup.file(
        "Dockerfile",
        "FROM BASE\nRUN echo hello > /hello.txt\nCOPY a.txt /data/a.txt\n",
    );
    setup.file("a.txt", "from the context\n");
    let tar = setup.dir.path().join("image.tar");
    let progress = setup.build(&[
        "-t",
        "example.com/app:v1",
        "-o",
        &format!("type=oci,dest={}", tar.display()),
    ]);
    assert!(ran(&progress, "RUN echo hello"), "{progress}");

    let layout = setup.dir.path().join("layout");
    std::fs::create_dir(&layout).unwrap();
    let untar = Command::new("tar")
        .arg("-xf")
        .arg(&tar)
        .arg("-C")
        .arg(&layout)
        .status()
        .unwrap();
    assert!(untar.success());
    let bundle = setup.dir.path().join("bundle");
    let out = Command::new("umoci")
        .arg("unpack")
        .arg("--image")
        .arg(format!("{}:v1", layout.display()))
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "umoci unpack: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(read(bundle.join("rootfs/hello.txt")), "hello\n");
    assert_eq!(read(bundle.join("rootfs/data/a.txt")), "from the context\n");
    assert!(bundle.join("rootfs/bin/busybox").is_file());
}

#[test]
fn multi_stage_copy_from_user_workdir_env_arg() {
    let Some(setup) = Setup::new() else { return };
    setup.file(
        "Dockerfile",
        "FROM BASE AS build\n\
         ARG GREETING=hi\n\
         ENV NAME=world\n\
         WORKDIR /work\n\
         RUN echo \"$GREETING $NAME\" > out.txt && pwd > where.txt\n\
         FROM BASE\n\
         COPY --from=build /work/ /result/\n\
         COPY --from=build --chown=app:app /work/out.txt /owned.txt\n\
         RUN --mount=type=cache,target=/cache echo run >> /cache/log && cat /cache/log > /tmp/cache\n\
         USER app\n\
         RUN id -un > /tmp/whoami && id -u >> /tmp/whoami && stat -c %U:%G /owned.txt > /tmp/owner\n",
    );
    let out = setup.build_local(&["--build-arg", "GREETING=hey"]);
    assert_eq!(read(out.join("result/out.txt")), "hey world\n");
    assert_eq!(read(out.join("result/where.txt")), "/work\n");
    assert_eq!(read(out.join("tmp/whoami")), "app\n1000\n");
    assert_eq!(read(out.join("tmp/owner")), "app:app\n");
    assert_eq!(read(out.join("tmp/cache")), "run\n");
    // The cache mount outlives the build: a forced rerun sees the first run's file.
    let again = setup.build_local(&["--build-arg", "GREETING=hey", "--no-cache"]);
    assert_eq!(read(again.join("tmp/cache")), "run\nrun\n");
}

#[test]
fn second_build_is_cached_and_writes_no_blob() {
    let Some(setup) = Setup::new() else { return };
    setup.file(
        "Dockerfile",
        "FROM BASE\nRUN echo one > /one\nCOPY a.txt /\nRUN cat /a.txt > /b.txt\n",
    );
    setup.file("a.txt", "a\n");
    let first = setup.build(&[]);
    assert!(ran(&first, "RUN echo one"), "{first}");
    let blobs = setup.blobs();
    let second = setup.build(&[]);
    let steps = steps(&second);
    let names: Vec<&str> = steps.iter().map(|(name, _, _)| name.as_str()).collect();
    // BuildKit's names: the stage's steps numbered, FROM counted, the internal steps too.
    for name in [
        "[internal] load build definition from Dockerfile",
        "[internal] load .dockerignore",
        "[2/4] RUN echo one > /one",
        "[3/4] COPY a.txt /",
        "[4/4] RUN cat /a.txt > /b.txt",
    ] {
        assert!(names.contains(&name), "no step {name:?} in:\n{second}");
    }
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("[1/4] FROM ") && n.contains("@sha256:")),
        "{second}"
    );
    assert_eq!(steps.len(), 8, "{second}");
    for (name, cached, done) in steps {
        if !name.starts_with("[internal] load") || name == "[internal] load build context" {
            assert!(cached && !done, "step {name:?} is not CACHED:\n{second}");
        }
    }
    assert_eq!(setup.blobs(), blobs, "the cached build wrote blobs");

    let forced = setup.build(&["--no-cache"]);
    assert!(ran(&forced, "RUN echo one"), "{forced}");
}

/// The vertex names of `--progress=rawjson` output (one `SolveStatus` object a line).
fn rawjson_names(stderr: &str) -> Vec<String> {
    let mut names = Vec::new();
    for line in stderr.lines().filter(|l| l.starts_with('{')) {
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        for vertex in value["vertexes"].as_array().into_iter().flatten() {
            let name = vertex["name"].as_str().unwrap().to_owned();
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    names
}

#[test]
fn rawjson_and_tty_progress_carry_buildkit_step_names() {
    let Some(setup) = Setup::new() else { return };
    setup.file(
        "Dockerfile",
        "FROM BASE AS base\nRUN echo one\nWORKDIR /app\n\
         FROM scratch\nCOPY --from=base /bin/busybox /busybox\nCOPY a.txt /\n",
    );
    setup.file("a.txt", "a\n");
    let archive = setup.dir.path().join("image.tar");
    let output = format!("type=oci,dest={}", archive.display());
    let context = setup.context();
    let build = |progress: &str| {
        let out = setup.hoist(&["build", progress, "-o", &output, context.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{stderr}");
        stderr
    };
    let raw = build("--progress=rawjson");
    let names = rawjson_names(&raw);
    for name in [
        "[internal] load build definition from Dockerfile",
        "[internal] load .dockerignore",
        "[base 2/3] RUN echo one",
        "[base 3/3] WORKDIR /app",
        "[stage-1 1/2] COPY --from=base /bin/busybox /busybox",
        "[stage-1 2/2] COPY a.txt /",
        "exporting to oci image format",
    ] {
        assert!(names.iter().any(|n| n == name), "no {name:?} in {names:#?}");
    }
    let from = format!("[base 1/3] FROM {}@sha256:", setup.image());
    assert!(names.iter().any(|n| n.starts_with(&from)), "{names:#?}");

    // Forced tty without a terminal: the final frame is still written whole.
    let tty = build("--progress=tty");
    assert!(tty.contains("[+] Building "), "{tty}");
    assert!(tty.contains(" FINISHED"), "{tty}");
    let line = |part: &str| {
        tty.lines()
            .rev()
            .find(|l| l.contains(part))
            .unwrap_or_else(|| panic!("no {part:?} in:\n{tty}"))
            .to_owned()
    };
    assert!(
        line("[base 2/3] RUN echo one").ends_with("CACHED 0.0s"),
        "{tty}"
    );
    assert!(
        line("exporting to oci image format").contains(" DONE "),
        "{tty}"
    );
    assert!(!tty.contains("#1 "), "plain text in the tty view:\n{tty}");
}

#[test]
fn push_then_build_from_the_pushed_image_with_metadata_file() {
    let Some(setup) = Setup::new() else { return };
    setup.file("Dockerfile", "FROM BASE\nRUN echo pushed > /marker\n");
    let name = format!("{}/app:1", setup.registry.host());
    let metadata = setup.dir.path().join("metadata.json");
    let iid = setup.dir.path().join("iid");
    setup.build(&[
        "--push",
        "-t",
        &name,
        "--metadata-file",
        metadata.to_str().unwrap(),
        "--iidfile",
        iid.to_str().unwrap(),
    ]);
    let meta: serde_json::Value = serde_json::from_str(&read(&metadata)).unwrap();
    let digest = meta["containerimage.digest"].as_str().unwrap().to_owned();
    assert!(digest.starts_with("sha256:"), "{meta}");
    assert_eq!(
        read(&iid),
        meta["containerimage.config.digest"].as_str().unwrap()
    );

    // Build layers are kept uncompressed and gzipped on export; the conversion is
    // remembered, so pushing the cached build again gives the very same layer blobs.
    let again = format!("{}/app:2", setup.registry.host());
    setup.build(&["--push", "-t", &again]);
    if let (Some(first), Some(second)) = (skopeo_layers(&name), skopeo_layers(&again)) {
        assert_eq!(first, second);
        assert!(
            first
                .iter()
                .all(|(media_type, _)| media_type.ends_with("+gzip")),
            "{first:?}"
        );
    }

    setup.file(
        "Dockerfile",
        &format!("FROM {name}\nRUN cat /marker > /copied\n"),
    );
    let out = setup.build_local(&[]);
    assert_eq!(read(out.join("copied")), "pushed\n");
}

/// `(mediaType, digest)` of the layers of a pushed single-platform image, read by skopeo;
/// `None` (with the reason printed) when skopeo is not installed.
fn skopeo_layers(reference: &str) -> Option<Vec<(String, String)>> {
    let Ok(out) = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{reference}"))
        .output()
    else {
        hoist_testkit::skip("no skopeo (apt-get install skopeo)");
        return None;
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    Some(
        manifest["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                (
                    l["mediaType"].as_str().unwrap().to_owned(),
                    l["digest"].as_str().unwrap().to_owned(),
                )
            })
            .collect(),
    )
}

#[test]
fn touching_unused_context_file_stays_cached_used_one_reruns() {
    let Some(setup) = Setup::new() else { return };
    setup.file(
        "Dockerfile",
        "FROM BASE\nRUN echo first > /first\nCOPY used.txt /\nRUN cat /used.txt > /copy.txt\n",
    );
    setup.file("used.txt", "v1\n");
    setup.file("unused.txt", "x\n");
    setup.build(&[]);

    setup.file("unused.txt", "changed\n");
    let again = setup.build(&[]);
    for (name, _, done) in steps(&again) {
        assert!(
            !done || name.starts_with("[internal]"),
            "step {name:?} ran again:\n{again}"
        );
    }

    setup.file("used.txt", "v2\n");
    let out = setup.dir.path().join("out");
    let changed = setup.build(&["-o", &format!("type=local,dest={}", out.display())]);
    assert!(ran(&changed, "COPY used.txt"), "{changed}");
    assert!(ran(&changed, "RUN cat /used.txt"), "{changed}");
    assert!(!ran(&changed, "RUN echo first"), "{changed}");
    assert_eq!(read(out.join("copy.txt")), "v2\n");
}

#[test]
fn failing_run_reports_its_exit_code() {
    let Some(setup) = Setup::new() else { return };
    setup.file(
        "Dockerfile",
        "FROM BASE\nRUN echo about to fail && exit 3\n",
    );
    let out = setup.build_output(&[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("about to fail"), "{stderr}");
    assert!(stderr.contains("Dockerfile:2\n"), "{stderr}");
    assert!(
        stderr.contains(">>> RUN echo about to fail && exit 3"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "------\n > [2/2] RUN echo about to fail && exit 3:\nabout to fail\n------\n"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("did not complete successfully: exit code: 3"),
        "{stderr}"
    );
}

#[test]
fn dockerfile_error_names_file_and_line() {
    let Some(setup) = Setup::new() else { return };
    setup.file("Dockerfile", "FROM BASE\nRUN true\nCOPY\n");
    let out = setup.build_output(&[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("\nDockerfile:3\n"), "{stderr}");
}

#[test]
fn two_concurrent_builds_share_one_state_dir() {
    let Some(setup) = Setup::new() else { return };
    setup.file(
        "Dockerfile",
        "FROM BASE\nRUN echo same > /same\nCOPY a.txt /\n",
    );
    setup.file("a.txt", "a\n");
    let children: Vec<_> = (0..2)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_hoist"))
                .arg("--root")
                .arg(setup.state())
                .args(["build", "--progress=plain"])
                .arg(setup.context())
                .env("DOCKER_CONFIG", setup.dir.path().join("docker"))
                .env_remove("HOIST_ROOT")
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let after = setup.build(&[]);
    for (name, cached, _) in steps(&after) {
        assert!(
            cached
                || (name.starts_with("[internal] load") && name != "[internal] load build context"),
            "{after}"
        );
    }
}

#[test]
fn heredocs_bind_mounts_tmpfs_and_copy_link() {
    let Some(setup) = Setup::new() else { return };
    setup.file(
        "Dockerfile",
        "FROM BASE AS src\n\
         RUN mkdir /data && echo from-src > /data/f\n\
         FROM BASE\n\
         COPY --link a.txt /linked.txt\n\
         RUN --mount=type=bind,from=src,source=/data,target=/mnt cat /mnt/f > /bound\n\
         RUN --mount=type=tmpfs,target=/scratch touch /scratch/x && ls /scratch > /tmpfs\n\
         RUN <<EOT\n\
         echo line1 > /heredoc\n\
         echo line2 >> /heredoc\n\
         EOT\n\
         COPY <<EOT /inline.txt\n\
         inline\n\
         EOT\n",
    );
    setup.file("a.txt", "linked\n");
    let out = setup.build_local(&[]);
    assert_eq!(read(out.join("linked.txt")), "linked\n");
    assert_eq!(read(out.join("bound")), "from-src\n");
    assert_eq!(read(out.join("tmpfs")), "x\n");
    assert_eq!(read(out.join("heredoc")), "line1\nline2\n");
    assert_eq!(read(out.join("inline.txt")), "inline\n");
    assert!(!out.join("mnt/f").exists());
    assert!(!out.join("scratch/x").exists());
}

#[test]
fn runtime_flag_runs_steps_with_runc_and_names_a_missing_runtime() {
    let Some(setup) = Setup::new() else { return };
    let runc = ["/usr/sbin/runc", "/usr/bin/runc"]
        .into_iter()
        .find(|p| Path::new(p).is_file());
    setup.file(
        "Dockerfile",
        "FROM BASE\nWORKDIR /w\nRUN echo from $(hostname) > out && id -u >> out && pwd >> out\n",
    );
    let missing = setup.build_output(&["--runtime", "no-such-runtime"]);
    assert!(!missing.status.success());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(
        stderr.contains("OCI runtime \"no-such-runtime\" not found in PATH"),
        "{stderr}"
    );
    let Some(runc) = runc else {
        hoist_testkit::skip("runc is not installed (apt-get install runc)");
        return;
    };
    let out = setup.build_local(&["--runtime", runc]);
    let text = read(out.join("w/out"));
    assert!(text.starts_with("from "), "{text}");
    assert!(text.ends_with("0\n/w\n"), "{text}");
}

#[test]
fn cache_mounts_take_owner_mode_and_seed_from_a_stage_and_private_ones_are_not_shared() {
    let Some(setup) = Setup::new() else { return };
    setup.file(
        "Dockerfile",
        "FROM BASE AS seed\n\
         RUN mkdir -p /data && echo seeded > /data/x\n\
         FROM BASE\n\
         RUN --mount=type=cache,target=/c,uid=1000,gid=1000,mode=0700 stat -c '%u:%g %a' /c > /owner\n\
         RUN --mount=type=cache,target=/s,from=seed,source=/data cat /s/x > /seeded\n\
         RUN --mount=type=cache,id=p,target=/a,sharing=private --mount=type=cache,id=p,target=/b,sharing=private \\\n\
             touch /a/mine && ls /b > /private\n\
         RUN --mount=type=cache,id=q,target=/a --mount=type=cache,id=q,target=/b \\\n\
             touch /a/ours && ls /b > /shared\n",
    );
    let out = setup.build_local(&[]);
    assert_eq!(read(out.join("owner")), "1000:1000 700\n");
    assert_eq!(read(out.join("seeded")), "seeded\n");
    assert_eq!(
        read(out.join("private")),
        "",
        "a private cache is one run's alone"
    );
    assert_eq!(read(out.join("shared")), "ours\n");
}

#[test]
fn build_contexts_name_a_directory_or_an_image() {
    let Some(setup) = Setup::new() else { return };
    let assets = setup.dir.path().join("assets");
    std::fs::create_dir(&assets).unwrap();
    std::fs::write(assets.join("a.txt"), "asset\n").unwrap();
    // A named context has its own .dockerignore.
    std::fs::write(assets.join("secret.txt"), "no\n").unwrap();
    std::fs::write(assets.join(".dockerignore"), "secret.txt\n").unwrap();
    setup.file(
        "Dockerfile",
        "FROM base\nCOPY --from=assets a.txt /from-assets.txt\n\
         RUN cat /from-assets.txt > /seen && ls /bin/busybox >> /seen\n",
    );
    let assets_flag = format!("assets={}", assets.display());
    let base_flag = format!("base=docker-image://{}", setup.image());
    let out = setup.build_local(&[
        "--build-context",
        &assets_flag,
        "--build-context",
        &base_flag,
    ]);
    assert_eq!(read(out.join("seen")), "asset\n/bin/busybox\n");

    // A directory may be a stage's whole filesystem.
    setup.file("Dockerfile", "FROM assets\n");
    let out = setup.build_local(&["--build-context", &assets_flag]);
    assert_eq!(read(out.join("a.txt")), "asset\n");
    assert!(!out.join("secret.txt").exists());

    let target = setup.build_output(&["--build-context", "x=target:other"]);
    assert!(!target.status.success());
    assert!(
        String::from_utf8_lossy(&target.stderr).contains("unsupported context source target for x"),
        "{}",
        String::from_utf8_lossy(&target.stderr)
    );
}
