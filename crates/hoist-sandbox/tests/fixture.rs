//! Shared by the sandbox tests: a busybox rootfs built in code, and the executors to try.

use std::path::{Path, PathBuf};

use hoist_sandbox::{
    AnyExecutor, BuiltinExecutor, CollectedOutput, ExitStatus, OciRuntimeExecutor, RunSpec,
};

/// `None` (after saying why) unless running as root with a static busybox at hand.
pub fn busybox() -> Option<PathBuf> {
    if !nix::unistd::geteuid().is_root() {
        hoist_testkit::skip(
            "the sandbox needs root (namespaces, mounts); CI runs these tests as root",
        );
        return None;
    }
    let busybox = PathBuf::from("/bin/busybox");
    if !busybox.is_file() {
        hoist_testkit::skip("/bin/busybox is absent: apt-get install -y busybox-static");
        return None;
    }
    Some(busybox)
}

/// A rootfs holding `busybox` with a symlink per applet in /bin, and passwd/group files naming
/// `alice` (1000, also in `staff` 50 and `wheel` 10).
pub fn busybox_rootfs(busybox: &Path) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("hoist-sandbox-test-")
        .tempdir()
        .unwrap();
    let root = dir.path();
    for sub in ["bin", "etc", "tmp"] {
        std::fs::create_dir(root.join(sub)).unwrap();
    }
    std::fs::copy(busybox, root.join("bin/busybox")).unwrap();
    let list = std::process::Command::new(busybox)
        .arg("--list")
        .output()
        .unwrap();
    for applet in String::from_utf8(list.stdout).unwrap().lines() {
        if applet != "busybox" {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
        }
    }
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000:Alice:/home/alice:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(
        root.join("etc/group"),
        "root:x:0:\nwheel:x:10:alice\nstaff:x:50:alice\nalice:x:1000:\n",
    )
    .unwrap();
    dir
}

/// The built-in runtime (through this crate's helper binary) and every OCI runtime installed
/// that can run a container on this host (crun 1.8 refuses hybrid cgroup hierarchies).
pub fn executors() -> Vec<AnyExecutor> {
    use hoist_sandbox::Executor;
    let probe_root = busybox().map(|busybox| busybox_rootfs(&busybox));
    let mut all = vec![AnyExecutor::Builtin(BuiltinExecutor::with_helper(env!(
        "CARGO_BIN_EXE_hoist-sandbox-init"
    )))];
    for name in hoist_sandbox::KNOWN_RUNTIMES {
        let path = Path::new("/usr/bin").join(name);
        let path = if path.is_file() {
            path
        } else {
            Path::new("/usr/sbin").join(name)
        };
        if path.is_file() {
            let state = std::env::temp_dir().join("hoist-sandbox-test-runtime-state");
            let executor =
                AnyExecutor::OciRuntime(OciRuntimeExecutor::new(path).with_state_root(state));
            if let Some(root) = &probe_root {
                let probe = RunSpec::new(root.path(), ["true"]);
                if let Err(e) = executor.run(&probe, &mut CollectedOutput::default()) {
                    hoist_testkit::skip(&format!(
                        "{name} cannot run containers here ({e}); its backend is not tested"
                    ));
                    continue;
                }
            }
            all.push(executor);
        } else {
            hoist_testkit::skip(&format!(
                "{name} is not installed; its backend is not tested"
            ));
        }
    }
    all
}

/// Runs `spec` on `executor`, collecting the output.
pub fn run(executor: &AnyExecutor, spec: &RunSpec) -> (ExitStatus, CollectedOutput) {
    use hoist_sandbox::Executor;
    let mut output = CollectedOutput::default();
    let status = executor
        .run(spec, &mut output)
        .unwrap_or_else(|e| panic!("{}: {e}", executor.name()));
    (status, output)
}

/// `sh -c script` in `rootfs`.
pub fn sh(rootfs: &Path, script: &str) -> RunSpec {
    RunSpec::new(rootfs, ["sh", "-c", script])
}
