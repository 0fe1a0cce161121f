//! `kill -9` of `hoist build --runtime runc` during a RUN: `runc run` dies with hoist (its
//! parent-death signal), and the container it leaves behind, whose owner lock no live
//! process holds, is stopped and deleted by the next `hoist prune` before its overlay is
//! unmounted. Needs root, runc, `docker-registry` and the busybox .debs.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::build_env::BuildEnv;
use crate::prune_after_kill::{assert_nothing_left, entries, mounts_under, prune_all, wait_for};

/// hoist's runc state root (`hoist_sandbox::DEFAULT_STATE_ROOT`).
const RUNC_ROOT: &str = "/run/hoist/runtime";

/// The pids of processes with `marker` as one of their arguments.
fn processes_with(marker: &str) -> Vec<String> {
    entries(Path::new("/proc"))
        .into_iter()
        .filter(|pid| pid.bytes().all(|b| b.is_ascii_digit()))
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| {
                cmdline
                    .split(|&b| b == 0)
                    .any(|arg| arg == marker.as_bytes())
            })
        })
        .collect()
}

/// `runc --root RUNC_ROOT list --format json`, whose entries name their rootfs.
fn runc_list() -> String {
    let out = Command::new("runc")
        .args(["--root", RUNC_ROOT, "list", "--format", "json"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn prune_after_a_kill_during_a_runc_run_stops_and_deletes_the_container() {
    let runc = Command::new("runc").arg("--version").output();
    if !runc.is_ok_and(|out| out.status.success()) {
        hoist_testkit::skip("runc is not installed: the OCI runtime's kill cleanup is not tested");
        return;
    }
    let Some(env) = BuildEnv::new() else { return };
    let root = env.root();
    // A number of seconds no other process on the host sleeps, to find this RUN's process.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let seconds = (500_000 + u64::from(nanos ^ std::process::id()) % 100_000).to_string();
    let ctx = env.fresh_dir("ctx");
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM busybox\nRUN [\"sleep\", \"{seconds}\"]\n"),
    )
    .unwrap();
    let dest = env.fresh_dir("out").join("image.tar");
    let mut child = env
        .command(&[
            "build",
            "--runtime",
            "runc",
            "--progress=plain",
            "-o",
            &format!("type=oci,dest={}", dest.display()),
            &ctx.display().to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let ours = root.display().to_string();
    assert!(
        wait_for(|| !processes_with(&seconds).is_empty() && runc_list().contains(&ours)),
        "the RUN never started"
    );
    child.kill().unwrap();
    assert!(!child.wait().unwrap().success());
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        runc_list().contains(&ours),
        "the killed build left no container in runc's state (nothing to test): {}",
        runc_list()
    );

    prune_all(&env);
    assert!(
        wait_for(|| processes_with(&seconds).is_empty()),
        "the RUN's process outlived the prune"
    );
    let left = runc_list();
    assert!(!left.contains(&ours), "containers left: {left}");
    assert_eq!(mounts_under(&root), Vec::<String>::new(), "mounts left");
    assert_nothing_left(&root);
}
