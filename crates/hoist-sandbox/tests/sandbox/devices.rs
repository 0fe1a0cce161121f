//! Host devices stay out of reach: a device node the command makes with `mknod`, or one
//! already in the rootfs (as an image layer brings it), cannot be opened — in the rootfs,
//! in `/dev` and in a writable bind mount — with every backend (Docker's default device
//! rules). Needs root and a host device that the host itself can open.

use std::path::Path;

use crate::fixture::{busybox, busybox_rootfs, executors, run, sh};
use hoist_sandbox::{BindMount, ExitStatus};

/// A character device this machine has and root can open: (path, major, minor).
fn host_device() -> Option<(&'static str, u32, u32)> {
    let found = [
        ("/dev/kvm", 10, 232),
        ("/dev/vcs", 7, 0),
        ("/dev/tty0", 4, 0),
    ]
    .into_iter()
    .find(|(path, _, _)| std::fs::File::open(path).is_ok());
    if found.is_none() {
        hoist_testkit::skip("no /dev/kvm, /dev/vcs or /dev/tty0 to open on this host");
    }
    found
}

/// A shell line that tries to open `path` and says `OPENED <path>` when it could.
fn try_open(path: &str) -> String {
    format!("( exec 3< {path} ) && echo OPENED {path}; ")
}

#[test]
fn device_nodes_made_or_inherited_cannot_be_opened() {
    let Some(busybox) = busybox() else { return };
    let Some((device, major, minor)) = host_device() else {
        return;
    };
    let rootfs = busybox_rootfs(&busybox);
    // A node in the rootfs before the run, as a base image layer would leave it.
    let inherited = rootfs.path().join("inherited");
    nix::sys::stat::mknod(
        &inherited,
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o666),
        nix::sys::stat::makedev(major.into(), minor.into()),
    )
    .unwrap();
    let host = tempfile::tempdir().unwrap();
    for executor in executors() {
        let mut script = try_open("/inherited");
        for made in ["/made", "/dev/made", "/rw/made", "/tmp/made"] {
            script.push_str(&format!(
                "rm -f {made}; mknod {made} c {major} {minor} || echo MKNOD-FAILED {made}; "
            ));
            script.push_str(&try_open(made));
        }
        // Docker's default devices keep working.
        script.push_str(
            "echo x > /dev/null && head -c 3 /dev/zero | wc -c && head -c 5 /dev/urandom | wc -c",
        );
        let mut spec = sh(rootfs.path(), &script);
        spec.mounts.push(BindMount {
            source: host.path().into(),
            target: "/rw".into(),
            readonly: false,
        });
        let (status, output) = run(&executor, &spec);
        let (stdout, stderr) = (output.stdout_text(), output.stderr_text());
        let name = executor.name();
        assert_eq!(status, ExitStatus::Code(0), "{name}: {stdout}\n{stderr}");
        assert!(
            !stdout.contains("OPENED"),
            "{name} opened a host device ({device}):\n{stdout}\n{stderr}"
        );
        assert!(
            !stdout.contains("MKNOD-FAILED"),
            "{name}: {stdout}\n{stderr}"
        );
        assert_eq!(stdout, "3\n5\n", "{name}: {stderr}");
        let refused = stderr
            .lines()
            .filter(|line| {
                line.contains("Permission denied") || line.contains("Operation not permitted")
            })
            .count();
        assert_eq!(refused, 5, "{name}: each open refused:\n{stderr}");
        assert!(Path::new(&host.path().join("made")).exists());
    }
}
