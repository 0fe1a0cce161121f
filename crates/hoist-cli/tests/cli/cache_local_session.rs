//! `type=local` caches with `--addr` (issue 10): the client serves the cache directory as
//! containerd's content store on its session, the daemon reads and writes its blobs
//! through it, and the client tags the root in `index.json`. A cache exported through one
//! hoistd makes every step CACHED in a fresh hoistd (mode max and min), the directory is
//! an OCI layout skopeo reads with every blob named by its digest and no ingest left; a
//! cache the embedded engine wrote is read through hoistd and the other way round; a blob
//! whose bytes do not match its name is refused (a warning naming it, the step runs, the
//! blob never lands in the daemon's store). dockerd 20.10's BuildKit (0.8) reads a local
//! cache through hoist's session store, and has no local cache exporter (it says so).
//!
//! Needs root, `docker-registry`, the busybox .debs, a built `hoistd`; the dockerd case a
//! running dockerd (each skipped with a message otherwise).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::build_env::BuildEnv;
use crate::build_remote::Daemon;

const EPOCH: &str = "SOURCE_DATE_EPOCH=1700000000";

/// Two stages, each RUN writing the time to the nanosecond: a RUN that ran again shows in
/// the image and in its output (`-ran-2`; the command itself does not expand `$((1+1))`).
const TWO_STAGES: &str = "FROM busybox AS builder\n\
    RUN date +%s%N > /built-at && echo builder-ran-$((1+1))\n\
    FROM busybox\n\
    COPY --from=builder /built-at /built-at\n\
    RUN date +%s%N > /stamp && echo final-ran-$((1+1))\n";

/// One stage: every step's result is a layer of the image, so `mode=min` carries them all.
const ONE_STAGE: &str = "FROM busybox\n\
    RUN date +%s%N > /one && echo one-ran-$((1+1))\n\
    RUN date +%s%N > /two && echo two-ran-$((1+1))\n";

fn daemon(env: &BuildEnv) -> Option<Daemon> {
    let config = env.config().display().to_string();
    Daemon::start(&["--config", config.as_str()])
}

fn context(env: &BuildEnv, dockerfile: &str) -> PathBuf {
    let ctx = env.fresh_dir("ctx");
    std::fs::write(ctx.join("Dockerfile"), dockerfile).unwrap();
    ctx
}

/// `hoist build [--addr ADDR] --progress=plain -o type=oci,dest=… ARGS CTX` in the fresh
/// state dir `root`; the output and the image's root digest.
fn build(
    env: &BuildEnv,
    addr: Option<&str>,
    root: &Path,
    ctx: &Path,
    args: &[&str],
) -> (Output, Option<String>) {
    build_via(env, addr, false, root, ctx, args)
}

/// [`build`], through the gateway (buildx's way) when `via_gateway`.
fn build_via(
    env: &BuildEnv,
    addr: Option<&str>,
    via_gateway: bool,
    root: &Path,
    ctx: &Path,
    args: &[&str],
) -> (Output, Option<String>) {
    let tar = env.fresh_dir("out").join("image.tar");
    let mut command = Command::new(env!("CARGO_BIN_EXE_hoist"));
    command
        .arg("--root")
        .arg(root)
        .arg("--config")
        .arg(env.config())
        .arg("build")
        .args(addr.map(|a| ["--addr", a]).into_iter().flatten())
        .args(["--progress=plain", "--build-arg", EPOCH])
        .arg("-o")
        .arg(format!("type=oci,dest={}", tar.display()))
        .args(args)
        .arg(ctx)
        .env("DOCKER_CONFIG", env.dir.path().join("docker"))
        .env_remove("HOIST_ROOT")
        .env_remove("HOIST_CONFIG")
        .env_remove("HOIST_BUILD_VIA_GATEWAY");
    if via_gateway {
        command.env("HOIST_BUILD_VIA_GATEWAY", "1");
    }
    let out = command.output().unwrap();
    let digest = out.status.success().then(|| {
        let entries = crate::build_env::tar_entries(&tar);
        let index: serde_json::Value = serde_json::from_slice(&entries["index.json"]).unwrap();
        index["manifests"][0]["digest"].as_str().unwrap().to_owned()
    });
    (out, digest)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The `#N` of dockerd's step importing a local cache, from its plain progress.
fn import_step(text: &str) -> String {
    text.lines()
        .find(|l| l.contains("importing cache manifest from local:"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no cache import:\n{text}"))
        .to_owned()
}

/// The build succeeded: its progress and image digest.
fn succeeded((out, digest): (Output, Option<String>)) -> (String, String) {
    let text = stderr(&out);
    assert!(out.status.success(), "hoist build failed:\n{text}");
    (text, digest.unwrap())
}

fn ran(progress: &str) -> bool {
    progress.lines().any(|l| l.ends_with("-ran-2"))
}

/// Every step naming one of `steps` is CACHED and no RUN ran.
fn all_cached(progress: &str, steps: &[&str]) {
    assert!(!ran(progress), "a RUN ran:\n{progress}");
    for step in steps {
        let id = progress
            .lines()
            .find(|l| l.contains(step) && l.starts_with('#'))
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or_else(|| panic!("no step {step:?}:\n{progress}"));
        assert!(
            progress.lines().any(|l| l == format!("{id} CACHED")),
            "{step} not CACHED:\n{progress}"
        );
    }
}

const TWO_STAGE_STEPS: &[&str] = &[
    "FROM",
    "RUN date +%s%N > /built-at",
    "COPY --from=builder",
    "RUN date +%s%N > /stamp",
];
const ONE_STAGE_STEPS: &[&str] = &["FROM", "RUN date +%s%N > /one", "RUN date +%s%N > /two"];

/// The cache directory is an OCI layout: `index.json` tags the root `latest`, skopeo reads
/// it as a manifest whose config is BuildKit's cache config, every blob hashes to its name
/// and no ingest is left behind. The root's digest.
fn valid_layout(dir: &Path) -> String {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let root = &index["manifests"][0];
    assert_eq!(
        root["annotations"]["org.opencontainers.image.ref.name"], "latest",
        "{index}"
    );
    assert!(dir.join("oci-layout").is_file());
    let skopeo = Command::new("skopeo")
        .args(["inspect", "--raw"])
        .arg(format!("oci:{}:latest", dir.display()))
        .output();
    match skopeo {
        Ok(out) => {
            assert!(out.status.success(), "{}", stderr(&out));
            let manifest: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(
                manifest["config"]["mediaType"],
                "application/vnd.buildkit.cacheconfig.v0"
            );
        }
        Err(_) => hoist_testkit::skip("no skopeo: the layout is checked by hand only"),
    }
    let mut blobs = 0;
    for entry in std::fs::read_dir(dir.join("blobs/sha256")).unwrap() {
        let entry = entry.unwrap();
        let bytes = std::fs::read(entry.path()).unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        assert_eq!(
            hoist_oci::Digest::sha256_of(&bytes).encoded(),
            name,
            "a blob not named by its digest"
        );
        blobs += 1;
    }
    assert!(blobs >= 3, "{blobs} blobs");
    let ingest = dir.join("ingest");
    if ingest.is_dir() {
        assert_eq!(
            std::fs::read_dir(&ingest).unwrap().count(),
            0,
            "ingest left"
        );
    }
    root["digest"].as_str().unwrap().to_owned()
}

/// One mode: exported through one hoistd, imported by a fresh one, every step CACHED and
/// the same image; the direct Solve, then buildx's path through the gateway.
fn round_trip_through_hoistd(mode: &str, dockerfile: &str, steps: &[&str]) {
    let Some(env) = BuildEnv::new() else { return };
    for via_gateway in [false, true] {
        round_trip(&env, via_gateway, mode, dockerfile, steps);
    }
}

fn round_trip(env: &BuildEnv, via_gateway: bool, mode: &str, dockerfile: &str, steps: &[&str]) {
    let Some(first) = daemon(env) else { return };
    let ctx = context(env, dockerfile);
    let dir = env.fresh_dir("cache");
    let to = format!("type=local,dest={},mode={mode}", dir.display());
    let (progress, image) = succeeded(build_via(
        env,
        Some(&first.addr()),
        via_gateway,
        &env.fresh_dir("client"),
        &ctx,
        &["--cache-to", &to],
    ));
    assert!(ran(&progress), "{progress}");
    assert!(
        progress.contains("exporting cache to client directory"),
        "{progress}"
    );
    let root = valid_layout(&dir);
    assert!(progress.contains(&format!("manifest {root}")), "{progress}");
    drop(first);

    // The fresh daemon imports the cache and exports it back to the same directory: the
    // client's store already has every layer (asked with Info, not sent again); the cache
    // config (dated) and root are new, and index.json names the new root.
    let layers = layer_digests(&dir, &root);
    let Some(second) = daemon(env) else { return };
    let from = format!("type=local,src={}", dir.display());
    let (progress, again) = succeeded(build_via(
        env,
        Some(&second.addr()),
        via_gateway,
        &env.fresh_dir("client"),
        &ctx,
        &["--cache-from", &from, "--cache-to", &to],
    ));
    for layer in &layers {
        assert!(
            progress
                .lines()
                .any(|l| l.contains(layer.as_str()) && l.ends_with(" already there")),
            "{layer} sent again:\n{progress}"
        );
    }
    let new_root = valid_layout(&dir);
    assert!(
        progress.contains(&format!("manifest {new_root}")),
        "{progress}"
    );
    assert!(
        progress.contains(&format!(
            "importing cache manifest from the client's {}",
            dir.display()
        )),
        "{progress}"
    );
    all_cached(&progress, steps);
    assert_eq!(
        image, again,
        "the image from the cache differs:\n{progress}"
    );
}

#[test]
fn a_max_cache_exported_through_hoistd_makes_every_step_cached_in_a_fresh_hoistd() {
    round_trip_through_hoistd("max", TWO_STAGES, TWO_STAGE_STEPS);
}

#[test]
fn a_min_cache_exported_through_hoistd_makes_every_step_cached_in_a_fresh_hoistd() {
    round_trip_through_hoistd("min", ONE_STAGE, ONE_STAGE_STEPS);
}

#[test]
fn caches_written_embedded_and_through_hoistd_are_read_by_each_other() {
    let Some(env) = BuildEnv::new() else { return };
    let ctx = context(&env, TWO_STAGES);

    // Embedded engine → hoistd.
    let embedded = env.fresh_dir("cache");
    let to = format!("type=local,dest={},mode=max", embedded.display());
    let (_, image) = succeeded(build(
        &env,
        None,
        &env.fresh_dir("state"),
        &ctx,
        &["--cache-to", &to],
    ));
    valid_layout(&embedded);
    let Some(hoistd) = daemon(&env) else { return };
    let from = format!("type=local,src={}", embedded.display());
    let (progress, again) = succeeded(build(
        &env,
        Some(&hoistd.addr()),
        &env.fresh_dir("client"),
        &ctx,
        &["--cache-from", &from],
    ));
    all_cached(&progress, TWO_STAGE_STEPS);
    assert_eq!(image, again);
    drop(hoistd);

    // hoistd → embedded engine.
    let Some(hoistd) = daemon(&env) else { return };
    let remote = env.fresh_dir("cache");
    let to = format!("type=local,dest={},mode=max", remote.display());
    let (_, image) = succeeded(build(
        &env,
        Some(&hoistd.addr()),
        &env.fresh_dir("client"),
        &ctx,
        &["--cache-to", &to],
    ));
    valid_layout(&remote);
    let from = format!("type=local,src={}", remote.display());
    let (progress, again) = succeeded(build(
        &env,
        None,
        &env.fresh_dir("state"),
        &ctx,
        &["--cache-from", &from],
    ));
    all_cached(&progress, TWO_STAGE_STEPS);
    assert_eq!(image, again);
}

/// The layer blobs of a cache directory's root manifest.
fn layer_digests(dir: &Path, root: &str) -> Vec<String> {
    let path = dir
        .join("blobs/sha256")
        .join(root.trim_start_matches("sha256:"));
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_cache_blob_whose_bytes_do_not_match_its_name_is_refused_and_never_stored() {
    let Some(env) = BuildEnv::new() else { return };
    let Some(first) = daemon(&env) else { return };
    let ctx = context(&env, ONE_STAGE);
    let dir = env.fresh_dir("cache");
    let to = format!("type=local,dest={},mode=max", dir.display());
    succeeded(build(
        &env,
        Some(&first.addr()),
        &env.fresh_dir("client"),
        &ctx,
        &["--cache-to", &to],
    ));
    drop(first);
    let root = valid_layout(&dir);
    // Every layer of the cache (the busybox base's and each RUN's) swapped for other bytes
    // under the same names.
    let layers = layer_digests(&dir, &root);
    for layer in &layers {
        let path = dir
            .join("blobs/sha256")
            .join(layer.trim_start_matches("sha256:"));
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
    }

    let Some(second) = daemon(&env) else { return };
    let from = format!("type=local,src={}", dir.display());
    let (progress, _) = succeeded(build(
        &env,
        Some(&second.addr()),
        &env.fresh_dir("client"),
        &ctx,
        &["--cache-from", &from],
    ));
    // The records were read; using one fetched a layer that failed its digest: the step
    // ran instead, the warning naming the blob.
    assert!(progress.contains("cache records"), "{progress}");
    assert!(ran(&progress), "a corrupt cache was used:\n{progress}");
    let warned = layers.iter().any(|layer| {
        progress
            .lines()
            .any(|l| l.contains("WARNING: cached result not usable") && l.contains(layer.as_str()))
    });
    assert!(warned, "no warning naming a corrupt blob:\n{progress}");
    let store = second.dir.path().join("state/content/blobs/sha256");
    for layer in &layers {
        let stored = store.join(layer.trim_start_matches("sha256:"));
        if stored.is_file() {
            // Only the real bytes (the base layer pulled from the registry) may be there.
            let bytes = std::fs::read(&stored).unwrap();
            assert_eq!(
                format!("sha256:{}", hoist_oci::Digest::sha256_of(&bytes).encoded()),
                *layer
            );
        }
    }

    // A root manifest with other bytes: the import is a warning naming it, nothing used.
    let root_path = dir
        .join("blobs/sha256")
        .join(root.trim_start_matches("sha256:"));
    std::fs::write(&root_path, b"{\"schemaVersion\":2,\"layers\":[]}").unwrap();
    let Some(third) = daemon(&env) else { return };
    let (progress, _) = succeeded(build(
        &env,
        Some(&third.addr()),
        &env.fresh_dir("client"),
        &ctx,
        &["--cache-from", &from],
    ));
    assert!(
        progress
            .lines()
            .any(|l| l.contains("WARNING: cache import from") && l.contains(&root)),
        "{progress}"
    );
    assert!(ran(&progress), "{progress}");
}

#[test]
fn dockerds_buildkit_reads_a_local_cache_through_the_session_and_cannot_write_one() {
    let Some(env) = BuildEnv::new() else { return };
    let up = Command::new("/usr/bin/docker")
        .arg("info")
        .output()
        .is_ok_and(|out| out.status.success());
    if !up {
        hoist_testkit::skip("the dockerd case needs dockerd running (`docker info` fails)");
        return;
    }
    let host = env.registry.host();
    // No RUN: the dockerd here has no bridge network.
    let ctx = context(
        &env,
        &format!("FROM {host}/busybox\nCOPY Dockerfile /copied\n"),
    );
    let dir = env.fresh_dir("cache");
    let to = format!("type=local,dest={},mode=max", dir.display());
    succeeded(build(
        &env,
        None,
        &env.fresh_dir("state"),
        &ctx,
        &["--cache-to", &to],
    ));
    let root = valid_layout(&dir);
    let docker = |args: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_hoist"));
        command
            .arg("--root")
            .arg(env.fresh_dir("client"))
            .args(["build", "--addr", "docker-daemon", "--progress=plain"])
            .args(args)
            .arg(&ctx)
            .env("DOCKER_CONFIG", env.dir.path().join("docker"))
            .env_remove("HOIST_ROOT");
        command.output().unwrap()
    };

    // dockerd reads the root through the session's content store: the import step runs
    // without an error (BuildKit's own cache keys are not hoist's: nothing is CACHED).
    let from = format!("type=local,src={}", dir.display());
    let out = docker(&["--cache-from", &from]);
    let text = stderr(&out);
    assert!(out.status.success(), "{text}");
    let import = import_step(&text);
    assert!(
        !text
            .lines()
            .any(|l| l.starts_with(&format!("{import} ERROR"))),
        "{text}"
    );

    // Proof the bytes came from the client: a root rewritten as non-JSON is what dockerd
    // fails to parse (the build itself goes on).
    let root_path = dir
        .join("blobs/sha256")
        .join(root.trim_start_matches("sha256:"));
    std::fs::write(&root_path, b"not json").unwrap();
    let out = docker(&["--cache-from", &from]);
    let text = stderr(&out);
    assert!(out.status.success(), "{text}");
    let import = import_step(&text);
    assert!(
        text.lines()
            .any(|l| l.starts_with(&format!("{import} ERROR: invalid character"))),
        "{text}"
    );

    // BuildKit 0.8 in dockerd 20.10 registers no local cache exporter.
    let out_dir = env.fresh_dir("cache");
    let to = format!("type=local,dest={}", out_dir.display());
    let out = docker(&["--cache-to", &to]);
    let text = stderr(&out);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("unknown cache exporter: \"local\""), "{text}");
    assert!(!out_dir.join("index.json").exists());
}

#[test]
fn with_two_local_exports_only_the_directory_holding_the_named_root_is_tagged() {
    let Some(env) = BuildEnv::new() else { return };
    let Some(hoistd) = daemon(&env) else { return };
    // The builder's layer (two files) is not the COPY's (one): min and max differ.
    let ctx = context(
        &env,
        "FROM busybox AS builder\nRUN echo a > /a && echo b > /b\n\
         FROM busybox\nCOPY --from=builder /a /a\n",
    );
    let (min, max) = (env.fresh_dir("cache"), env.fresh_dir("cache"));
    let to_min = format!("type=local,dest={},mode=min", min.display());
    let to_max = format!("type=local,dest={},mode=max", max.display());
    // BuildKit's response has one `cache.manifest`: the last export's root.
    let (progress, _) = succeeded(build(
        &env,
        Some(&hoistd.addr()),
        &env.fresh_dir("client"),
        &ctx,
        &["--cache-to", &to_min, "--cache-to", &to_max],
    ));
    valid_layout(&max);
    assert!(!min.join("index.json").exists(), "{progress}");
    assert!(
        progress.contains(&format!(
            "WARNING: the cache in {} is not tagged",
            min.display()
        )),
        "{progress}"
    );
}
