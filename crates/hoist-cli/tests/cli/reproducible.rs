//! Reproducible images and shared work (issue 15): the same Dockerfile with the same
//! `SOURCE_DATE_EPOCH` gives the same image in fresh state dirs (a RUN's layer holds no
//! `etc/` stamped by its mount stubs); an image is dated with the build time when there is
//! no epoch; with `rewrite-timestamp=true` a RUN's files are clamped to the epoch, so the
//! RUN need not fix their times itself; identical builds started together on one state dir
//! run the step once and give one image; file outputs to `/dev/null` and a pipe; a
//! relative `--root`.
//!
//! Needs root, `docker-registry` and the busybox .debs (see `hoist_testkit::images`).

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::build_env::{tar_entries, BuildEnv};

const EPOCH: &str = "SOURCE_DATE_EPOCH=1700000000";

/// `hoist --root ROOT --config … build --progress=plain ARGS CTX`, not yet run.
fn build_command(env: &BuildEnv, root: &Path, ctx: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hoist"));
    command
        .arg("--root")
        .arg(root)
        .arg("--config")
        .arg(env.config())
        .args(["build", "--progress=plain"])
        .args(args)
        .arg(ctx)
        .env("DOCKER_CONFIG", env.dir.path().join("docker"))
        .env_remove("HOIST_ROOT")
        .env_remove("HOIST_CONFIG");
    command
}

fn succeeded(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "hoist build failed:\n{stderr}");
    stderr
}

fn context(env: &BuildEnv, dockerfile: &str) -> PathBuf {
    let ctx = env.fresh_dir("ctx");
    std::fs::write(ctx.join("Dockerfile"), dockerfile).unwrap();
    ctx
}

/// Builds `ctx` into a fresh state dir as an OCI archive: the archive's files.
fn build_oci(env: &BuildEnv, root: &Path, ctx: &Path, args: &[&str]) -> OciArchive {
    build_oci_with(env, root, ctx, "", args)
}

/// As [`build_oci`], with `attrs` (`,key=value…`) added to the output.
fn build_oci_with(
    env: &BuildEnv,
    root: &Path,
    ctx: &Path,
    attrs: &str,
    args: &[&str],
) -> OciArchive {
    let tar = env.fresh_dir("out").join("image.tar");
    let output = format!("type=oci,dest={}{attrs}", tar.display());
    let mut all = vec!["-o", &output];
    all.extend_from_slice(args);
    succeeded(&build_command(env, root, ctx, &all).output().unwrap());
    OciArchive(tar_entries(&tar))
}

struct OciArchive(BTreeMap<String, Vec<u8>>);

impl OciArchive {
    fn json(&self, name: &str) -> serde_json::Value {
        let bytes = self.0.get(name).unwrap_or_else(|| panic!("no {name}"));
        serde_json::from_slice(bytes).unwrap()
    }

    fn blob(&self, digest: &str) -> serde_json::Value {
        self.json(&format!(
            "blobs/sha256/{}",
            digest.trim_start_matches("sha256:")
        ))
    }

    /// The digest of the (one) image manifest.
    fn manifest_digest(&self) -> String {
        let index = self.json("index.json");
        index["manifests"][0]["digest"].as_str().unwrap().to_owned()
    }

    fn manifest(&self) -> serde_json::Value {
        self.blob(&self.manifest_digest())
    }

    fn config(&self) -> serde_json::Value {
        let manifest = self.manifest();
        self.blob(manifest["config"]["digest"].as_str().unwrap())
    }

    /// The digests of the image's layers.
    fn layer_digests(&self) -> Vec<String> {
        let manifest = self.manifest();
        let layers = manifest["layers"].as_array().unwrap();
        layers
            .iter()
            .map(|l| l["digest"].as_str().unwrap().to_owned())
            .collect()
    }

    /// The entries of the image's last layer (gzip or plain tar), with their mtimes.
    fn last_layer_entries(&self) -> Vec<(String, u64)> {
        let digests = self.layer_digests();
        let digest = digests.last().unwrap();
        let bytes = &self.0[&format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"))];
        let mut plain = Vec::new();
        if bytes.starts_with(&[0x1f, 0x8b]) {
            flate2::read::GzDecoder::new(&bytes[..])
                .read_to_end(&mut plain)
                .unwrap();
        } else {
            plain.clone_from(bytes);
        }
        tar::Archive::new(&plain[..])
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let name = e.path().unwrap().display().to_string();
                (name, e.header().mtime().unwrap())
            })
            .collect()
    }

    /// The entries of the image's last layer.
    fn last_layer_names(&self) -> Vec<String> {
        self.last_layer_entries()
            .into_iter()
            .map(|(name, _)| name)
            .collect()
    }
}

#[test]
fn same_dockerfile_and_epoch_give_the_same_image_in_fresh_state_dirs() {
    let Some(env) = BuildEnv::new() else { return };
    // The file's own time is the command's to fix here: without `rewrite-timestamp=true`
    // hoist, as BuildKit, keeps the times files were written with.
    let ctx = context(
        &env,
        "FROM busybox\nRUN echo hi > /greeting && touch -t 202001020304 /greeting\n",
    );
    let first = build_oci(&env, &env.fresh_dir("state"), &ctx, &["--build-arg", EPOCH]);
    // A second apart at least, so that any build time in a layer would show.
    std::thread::sleep(Duration::from_millis(1100));
    let second = build_oci(&env, &env.fresh_dir("state"), &ctx, &["--build-arg", EPOCH]);

    // The RUN wrote /greeting only; the /etc/hosts and /etc/resolv.conf stubs left nothing.
    assert_eq!(first.last_layer_names(), ["greeting"]);
    assert_eq!(first.config()["created"], "2023-11-14T22:13:20Z");
    assert_eq!(
        first.manifest_digest(),
        second.manifest_digest(),
        "two builds of one Dockerfile with one SOURCE_DATE_EPOCH differ:\n{}\n{}",
        first.config(),
        second.config()
    );
}

#[test]
fn rewrite_timestamp_makes_a_run_that_writes_files_reproducible() {
    let Some(env) = BuildEnv::new() else { return };
    // No `touch -t`: /f and /d get the build's wall-clock times.
    let ctx = context(&env, "FROM busybox\nRUN echo hi > /f && mkdir /d\n");
    let build = |attrs: &str| {
        let image = build_oci_with(
            &env,
            &env.fresh_dir("state"),
            &ctx,
            attrs,
            &["--build-arg", EPOCH],
        );
        // A second apart at least, so that any build time in a layer would show.
        std::thread::sleep(Duration::from_millis(1100));
        image
    };
    let first = build(",rewrite-timestamp=true");
    let second = build(",rewrite-timestamp=true");
    let plain_first = build("");
    let plain_second = build("");

    assert_eq!(
        first.manifest_digest(),
        second.manifest_digest(),
        "two builds with rewrite-timestamp=true differ:\n{}\n{}",
        first.config(),
        second.config()
    );
    let entries = first.last_layer_entries();
    let names: Vec<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["d/", "f"]);
    assert!(
        entries.iter().all(|(_, mtime)| *mtime == 1_700_000_000),
        "{entries:?}"
    );
    // The base image's layers are kept; the RUN's is not what a plain export writes.
    let (rewritten, plain) = (first.layer_digests(), plain_first.layer_digests());
    assert_eq!(rewritten[..rewritten.len() - 1], plain[..plain.len() - 1]);
    assert_ne!(rewritten.last(), plain.last());
    let diff_ids = first.config()["rootfs"]["diff_ids"].clone();
    assert_ne!(diff_ids, plain_first.config()["rootfs"]["diff_ids"]);

    // Without the option the files keep the build's times, so the images differ.
    assert_ne!(
        plain_first.manifest_digest(),
        plain_second.manifest_digest(),
        "builds without rewrite-timestamp are not expected to match yet"
    );
}

#[test]
fn an_image_built_without_an_epoch_is_dated_with_the_build_time() {
    let Some(env) = BuildEnv::new() else { return };
    let ctx = context(&env, "FROM busybox\nRUN echo hi > /greeting\nENV A=b\n");
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let image = build_oci(&env, &env.root(), &ctx, &[]);
    let after = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let config = image.config();
    let created = config["created"]
        .as_str()
        .unwrap_or_else(|| panic!("no created: {config}"));
    // Fixed-width RFC 3339 in UTC sorts as time does.
    let second =
        |secs: u64| hoist_oci::format_rfc3339(i64::try_from(secs).unwrap(), 0)[..19].to_owned();
    let (lo, hi) = (second(before), second(after));
    assert!(
        (lo.as_str()..=hi.as_str()).contains(&&created[..19]),
        "created {created}, built between {lo} and {hi}"
    );
    // The steps of this build are dated too; the base image's keep their own times.
    let history = config["history"].as_array().unwrap();
    for entry in history.iter().rev().take(2) {
        assert_eq!(entry["created"].as_str(), Some(created), "{entry}");
    }
}

#[test]
fn identical_builds_started_together_run_the_step_once() {
    let Some(env) = BuildEnv::new() else { return };
    // The step's own output is `42`; its name shows `$((6*7))`.
    let ctx = context(
        &env,
        "FROM busybox\nRUN sleep 2 && echo $((6*7)) > /answer && echo $((6*7))\n",
    );
    let started = Instant::now();
    let mut children = Vec::new();
    for i in 0..8 {
        let metadata = env.dir.path().join(format!("metadata-{i}.json"));
        let output = format!(
            "type=oci,dest={}",
            env.dir.path().join(format!("image-{i}.tar")).display()
        );
        let child = build_command(
            &env,
            &env.root(),
            &ctx,
            &[
                "--build-arg",
                EPOCH,
                "--metadata-file",
                metadata.to_str().unwrap(),
                "-o",
                &output,
            ],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
        children.push((child, metadata));
        std::thread::sleep(Duration::from_millis(500));
    }
    let mut digests = Vec::new();
    let mut ran = 0;
    for (child, metadata) in children {
        let progress = succeeded(&child.wait_with_output().unwrap());
        let meta: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&metadata).unwrap()).unwrap();
        digests.push(meta["containerimage.digest"].as_str().unwrap().to_owned());
        // `#5 2.013 42`: a line of the step's own output.
        let printed = progress.lines().any(|line| {
            let words: Vec<&str> = line.split(' ').collect();
            matches!(words[..], [n, t, "42"] if n.starts_with('#') && t.parse::<f64>().is_ok())
        });
        ran += usize::from(printed);
    }
    let elapsed = started.elapsed();
    digests.dedup();
    assert_eq!(digests.len(), 1, "one image: {digests:?}");
    assert_eq!(ran, 1, "the step ran in one build only");
    // Eight 2 s runs one after another would take 16 s; shared, about 2 s plus the starts.
    eprintln!("8 identical builds, 0.5 s apart: {elapsed:?}");
}

#[test]
fn tar_output_to_dev_null_and_to_a_pipe() {
    let Some(env) = BuildEnv::new() else { return };
    let ctx = context(&env, "FROM busybox\nRUN echo hi > /greeting\n");
    succeeded(
        &build_command(&env, &env.root(), &ctx, &["-o", "type=tar,dest=/dev/null"])
            .output()
            .unwrap(),
    );
    // /dev/stdout is the pipe `output()` reads.
    let out = build_command(
        &env,
        &env.root(),
        &ctx,
        &["-o", "type=tar,dest=/dev/stdout"],
    )
    .output()
    .unwrap();
    succeeded(&out);
    let names: Vec<String> = tar::Archive::new(&out.stdout[..])
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert!(names.iter().any(|n| n == "greeting"), "{names:?}");
}

#[test]
fn a_relative_root_runs_steps() {
    let Some(env) = BuildEnv::new() else { return };
    let ctx = context(&env, "FROM busybox\nRUN echo hi > /greeting\n");
    let cwd = env.fresh_dir("cwd");
    let out_dir = env.fresh_dir("out");
    let output = format!("type=local,dest={}", out_dir.display());
    let out = build_command(&env, Path::new("state"), &ctx, &["-o", &output])
        .current_dir(&cwd)
        .output()
        .unwrap();
    succeeded(&out);
    assert_eq!(
        std::fs::read_to_string(out_dir.join("greeting")).unwrap(),
        "hi\n"
    );
    assert!(
        cwd.join("state/engine").is_dir(),
        "the state dir is under the cwd"
    );
}
