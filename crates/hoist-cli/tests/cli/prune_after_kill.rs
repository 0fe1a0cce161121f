//! What builds that were killed or failed leave: `kill -9` during a RUN (its overlay stays
//! mounted until the next build or prune removes it, as no live process holds its lease)
//! and during the layer write and export (a half-written ingest, removed by the next prune
//! at once, as no live writer holds it); after `hoist prune -f --all` with no build
//! running, nothing but named content is left and no mount of hoist's stays. A step that
//! fails for lack of space leaves no snapshot, and `hoist du` accounts for the whole state
//! dir. Needs root, `docker-registry` and the busybox .debs.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::build_env::{count_files, BuildEnv};

/// The mount points under `root` in this (the host's) mount namespace.
pub(crate) fn mounts_under(root: &Path) -> Vec<String> {
    let root = root.display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|line| line.split(' ').nth(4).map(str::to_owned))
        .filter(|point| point.starts_with(&root))
        .collect()
}

pub(crate) fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Starts `hoist build -o type=oci` of `dockerfile`.
fn spawn_build(env: &BuildEnv, dockerfile: &str) -> Child {
    let ctx = env.fresh_dir("ctx");
    std::fs::write(ctx.join("Dockerfile"), dockerfile).unwrap();
    let dest = env.fresh_dir("out").join("image.tar");
    let spec = format!("type=oci,dest={}", dest.display());
    env.command(&[
        "build",
        "--progress=plain",
        "-o",
        &spec,
        &ctx.display().to_string(),
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap()
}

/// Polls `ready` for up to two minutes; whether it became true.
pub(crate) fn wait_for(mut ready: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if ready() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

fn kill(mut child: Child) {
    child.kill().unwrap();
    assert!(!child.wait().unwrap().success());
    // The sandbox dies with hoist (its parent-death signal); give it a moment.
    std::thread::sleep(Duration::from_millis(300));
}

pub(crate) fn prune_all(env: &BuildEnv) {
    let out = env.command(&["prune", "-f", "--all"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// After a prune of everything: no snapshot, blob, ingest, layer chain or record, no mount.
pub(crate) fn assert_nothing_left(root: &Path) {
    assert_eq!(mounts_under(root), Vec::<String>::new(), "mounts left");
    for dir in [
        "snapshots/active",
        "snapshots/committed",
        "ingest",
        "content/blobs/sha256",
        "engine/layers",
        "engine/cache",
    ] {
        assert_eq!(
            entries(&root.join(dir)),
            Vec::<String>::new(),
            "left in {dir}"
        );
    }
}

#[test]
fn prune_after_a_kill_during_run_leaves_no_mount_and_nothing_unnamed() {
    let Some(env) = BuildEnv::new() else { return };
    let root = env.root();
    let child = spawn_build(
        &env,
        "FROM busybox\nRUN echo before > /before\nRUN sleep 4848\n",
    );
    let running = || {
        entries(&root.join("snapshots/active"))
            .iter()
            .any(|key| key.starts_with("exec-"))
            && entries(&root.join("snapshots/committed")).len() >= 2
    };
    assert!(wait_for(running), "the RUN never started");
    std::thread::sleep(Duration::from_millis(300));
    kill(child);
    assert!(
        !mounts_under(&root).is_empty(),
        "the killed build left no overlay mounted (nothing to test)"
    );

    // The next build removes it: no live process holds its lease.
    let next = spawn_build(&env, "FROM busybox\nRUN echo after > /after\n");
    let out = next.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(mounts_under(&root), Vec::<String>::new(), "mounts left");
    assert_eq!(
        entries(&root.join("snapshots/active")),
        Vec::<String>::new()
    );

    prune_all(&env);
    assert_nothing_left(&root);
}

#[test]
fn prune_after_a_kill_during_layer_write_or_export_removes_the_partial_ingest() {
    let Some(env) = BuildEnv::new() else { return };
    let root = env.root();
    let ingest = root.join("ingest");
    // Random bytes, so the build is caught mid-blob: killed as soon as a blob is being
    // written. A blob of random bytes goes out fast (stored, not compressed), so the kill
    // may come after it was complete: the scenario is tried again then, a few times.
    let mut caught = false;
    for attempt in 0..4 {
        let child = spawn_build(
            &env,
            &format!("FROM busybox\nRUN head -c 150000000 /dev/urandom > /big{attempt}\n"),
        );
        let writing =
            || entries(&root.join("snapshots/committed")).len() >= 2 && count_files(&ingest) > 0;
        assert!(wait_for(writing), "the build never wrote its layer");
        kill(child);
        if count_files(&ingest) > 0 {
            caught = true;
            break;
        }
    }
    assert!(
        caught,
        "no partial ingest left in 4 tries (nothing to test)"
    );

    prune_all(&env);
    assert_nothing_left(&root);
}

/// A tmpfs of `size` mounted on `path` until dropped.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(path: &Path, size: &str) -> SmallDisk {
        std::fs::create_dir_all(path).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .status()
            .unwrap();
        assert!(status.success());
        SmallDisk(path.to_owned())
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// `hoist du`'s `Total:` in bytes (docker's go-units decimal sizes).
fn du_total(du: &str) -> f64 {
    let total = du
        .lines()
        .find_map(|l| l.strip_prefix("Total:"))
        .unwrap_or_else(|| panic!("no total in:\n{du}"))
        .trim();
    let split = total
        .find(|c: char| c.is_ascii_alphabetic())
        .unwrap_or(total.len());
    let (number, unit) = total.split_at(split);
    let scale = match unit {
        "B" => 1.0,
        "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        other => panic!("unit {other:?} in {du}"),
    };
    number.parse::<f64>().unwrap() * scale
}

/// Bytes under `dir` as `du -sb` counts them.
fn du_sb(dir: &Path) -> f64 {
    let out = std::process::Command::new("du")
        .arg("-sb")
        .arg(dir)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    text.split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn prune_state_after_a_step_fails_for_lack_of_space_is_all_accounted() {
    let Some(env) = BuildEnv::new() else { return };
    let root = env.root();
    // Room for the base image and the RUN's 20 MB snapshot, not for its 20 MB layer too.
    let _disk = SmallDisk::mount(&root, "40m");
    let child = spawn_build(
        &env,
        "FROM busybox\nRUN head -c 20000000 /dev/urandom > /big\n",
    );
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success(), "the build fitted in 40 MB");
    let find = std::process::Command::new("find")
        .arg(root.join("snapshots"))
        .args(["-name", "big"])
        .output()
        .unwrap();
    let big = String::from_utf8_lossy(&find.stdout);
    assert!(big.is_empty(), "the failed step's snapshot stayed:\n{big}");

    let du = env.command(&["du"]).output().unwrap();
    let du = String::from_utf8_lossy(&du.stdout).into_owned();
    let on_disk = du_sb(&root);
    eprintln!("du -sb: {on_disk}\n{du}");
    assert!(
        du_total(&du) >= on_disk - 1e6,
        "hoist du reports less than is on disk ({on_disk} bytes):\n{du}"
    );
}
