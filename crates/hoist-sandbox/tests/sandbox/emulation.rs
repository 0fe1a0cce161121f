//! Running a foreign-architecture rootfs through QEMU registered with binfmt_misc (root only;
//! skipped unless the arm64 handler is registered and an arm64 busybox package is at hand).

use std::path::{Path, PathBuf};

use crate::fixture::{busybox, busybox_rootfs, executors, run, sh};
use hoist_sandbox::ExitStatus;

const HANDLER: &str = "/proc/sys/fs/binfmt_misc/qemu-aarch64";
const DEB_ENV: &str = "HOIST_TEST_BUSYBOX_ARM64_DEB";
const APT_ARCHIVES: &str = "/var/cache/apt/archives";

/// `busybox-static_*_arm64.deb` from `$HOIST_TEST_BUSYBOX_ARM64_DEB` or apt's archive folder.
fn arm64_busybox_deb() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(DEB_ENV) {
        return Some(PathBuf::from(path));
    }
    std::fs::read_dir(APT_ARCHIVES)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|path| {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            name.starts_with("busybox-static_") && name.ends_with("_arm64.deb")
        })
}

#[test]
fn arm64_busybox_runs_under_qemu_binfmt() {
    if busybox().is_none() {
        return;
    }
    if !Path::new(HANDLER).exists() {
        hoist_testkit::skip(&format!(
            "{HANDLER} is absent: no QEMU handler for arm64 is registered"
        ));
        return;
    }
    let Some(deb) = arm64_busybox_deb() else {
        hoist_testkit::skip(&format!(
            "no arm64 busybox package: set {DEB_ENV}, or `dpkg --add-architecture arm64 && apt-get update \
             && cd {APT_ARCHIVES} && apt-get download busybox-static:arm64`"
        ));
        return;
    };
    let unpacked = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(unpacked.path())
        .status()
        .unwrap();
    assert!(status.success(), "dpkg-deb -x {} failed", deb.display());
    let rootfs = busybox_rootfs(&unpacked.path().join("bin/busybox"));
    for executor in executors() {
        let (status, output) = run(&executor, &sh(rootfs.path(), "uname -m"));
        assert_eq!(
            status,
            ExitStatus::Code(0),
            "{}: {}",
            executor.name(),
            output.stderr_text()
        );
        assert_eq!(output.stdout_text(), "aarch64\n", "{}", executor.name());
    }
}
