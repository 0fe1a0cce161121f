//! The build-wide RUN options, with every backend: `--add-host` lines in `/etc/hosts`,
//! `--shm-size`, `--ulimit`, `--network=none`, `--cgroup-parent`, and the privileged
//! confinement of `RUN --security=insecure` next to the default one. Root only.

use std::path::Path;

use crate::fixture::{busybox, busybox_rootfs, executors, run, sh};
use hoist_sandbox::{Confinement, ExitStatus, HostEntry, Network, Ulimit, User};

/// Runs `script` with `change` applied to the spec on every backend; returns stdout per
/// backend after checking that it exited 0.
fn outputs(script: &str, change: impl Fn(&mut hoist_sandbox::RunSpec)) -> Vec<(String, String)> {
    let Some(busybox) = busybox() else {
        return Vec::new();
    };
    let rootfs = busybox_rootfs(&busybox);
    let mut out = Vec::new();
    for executor in executors() {
        let mut spec = sh(rootfs.path(), script);
        change(&mut spec);
        let (status, output) = run(&executor, &spec);
        let name = executor.name();
        assert_eq!(
            status,
            ExitStatus::Code(0),
            "{name}: {}\n{}",
            output.stdout_text(),
            output.stderr_text()
        );
        out.push((name, output.stdout_text()));
    }
    out
}

#[test]
fn add_host_entries_follow_the_standard_lines_of_etc_hosts() {
    for (name, stdout) in outputs("cat /etc/hosts", |spec| {
        spec.extra_hosts = vec![
            HostEntry {
                host: "db.internal".into(),
                ip: "10.1.2.3".parse().unwrap(),
            },
            HostEntry {
                host: "v6host".into(),
                ip: "fd00::7".parse().unwrap(),
            },
        ];
    }) {
        assert_eq!(
            stdout,
            "127.0.0.1\tlocalhost hoistsandbox\n::1\tlocalhost ip6-localhost ip6-loopback\n\
             10.1.2.3\tdb.internal\nfd00::7\tv6host\n",
            "{name}"
        );
    }
}

#[test]
fn shm_size_sets_the_size_of_dev_shm() {
    // `df -k` prints the size in KiB in the second column of its second line.
    let script = "df -k /dev/shm | tail -n 1 | awk '{print $2}'";
    for (name, stdout) in outputs(script, |spec| spec.shm_size = Some(128 << 20)) {
        assert_eq!(stdout, "131072\n", "{name}");
    }
    for (name, stdout) in outputs(script, |_| {}) {
        assert_eq!(stdout, "65536\n", "{name}: Docker's default");
    }
}

#[test]
fn ulimits_are_set_before_the_command_starts() {
    let script = "ulimit -Sn; ulimit -Hn; ulimit -Hc";
    for (name, stdout) in outputs(script, |spec| {
        spec.ulimits = vec![
            "nofile=1024:2048".parse::<Ulimit>().unwrap(),
            "core=-1".parse().unwrap(),
        ];
        // A user other than root gets them too.
        spec.user = User {
            uid: 1000,
            gid: 1000,
            additional_gids: vec![],
        };
    }) {
        assert_eq!(stdout, "1024\n2048\nunlimited\n", "{name}");
    }
}

#[test]
fn network_none_has_only_loopback() {
    for (name, stdout) in outputs("ls /sys/class/net", |spec| spec.network = Network::None) {
        assert_eq!(stdout, "lo\n", "{name}");
    }
}

/// `CapEff` of the command, as /proc/self/status prints it.
const CAP_EFF: &str = "grep CapEff /proc/self/status | awk '{print $2}'";

/// Every capability this kernel has, as `CapEff` prints them (hoist runs as root with all).
fn all_capabilities() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let bounding = status
        .lines()
        .find_map(|line| line.strip_prefix("CapBnd:"))
        .unwrap()
        .trim()
        .to_owned();
    format!("{bounding}\n")
}

#[test]
fn privileged_runs_keep_every_capability_and_may_mount() {
    let script = format!(
        "{CAP_EFF}; mkdir -p /tmp/m && mount -t tmpfs none /tmp/m && echo MOUNTED; \
         grep -c ' /proc/kcore ' /proc/self/mountinfo; \
         touch /sys/kernel/hoist-test 2>/dev/null; \
         grep ' /sys ' /proc/self/mountinfo | grep -c ' rw,' ; \
         ls /dev/loop-control /dev/fuse 2>/dev/null | wc -l"
    );
    let expected_devices = ["/dev/loop-control", "/dev/fuse"]
        .iter()
        .filter(|path| Path::new(path).exists())
        .count();
    for (name, stdout) in outputs(&script, |spec| spec.confinement = Confinement::Privileged) {
        assert_eq!(
            stdout,
            format!("{}MOUNTED\n0\n1\n{expected_devices}\n", all_capabilities()),
            "{name}: all capabilities, tmpfs mounted, /proc/kcore not masked, /sys rw, \
             BuildKit's devices"
        );
    }
    // A user other than root keeps them as well (BuildKit sets the ambient set).
    for (name, stdout) in outputs(CAP_EFF, |spec| {
        spec.confinement = Confinement::Privileged;
        spec.user = User {
            uid: 1000,
            gid: 1000,
            additional_gids: vec![],
        };
    }) {
        assert_eq!(stdout, all_capabilities(), "{name}");
    }
    // And by default none of it.
    let script = format!(
        "{CAP_EFF}; mkdir -p /tmp/m && mount -t tmpfs none /tmp/m 2>/dev/null || echo REFUSED"
    );
    for (name, stdout) in outputs(&script, |_| {}) {
        assert_eq!(stdout, "00000000a80425fb\nREFUSED\n", "{name}");
    }
}

#[test]
fn cgroup_parent_holds_the_run_and_is_cleaned_up() {
    let parent = format!("hoist-test-parent-{}", std::process::id());
    for (name, stdout) in outputs("cat /proc/self/cgroup", |spec| {
        spec.cgroup_parent = Some(parent.clone())
    }) {
        let lines: Vec<&str> = stdout.lines().collect();
        let placed = format!(":/{parent}/hoist/");
        assert!(
            lines.iter().any(|line| line.contains(&placed)),
            "{name}: {stdout}"
        );
    }
    // The runs' own cgroups are gone; remove the parents the test made.
    let root = std::iter::once(Path::new("/sys/fs/cgroup").to_path_buf());
    let v1 = std::fs::read_dir("/sys/fs/cgroup")
        .unwrap()
        .flatten()
        .map(|e| e.path());
    for hierarchy in root.chain(v1) {
        let dir = hierarchy.join(&parent);
        if dir.is_dir() {
            let hoist = dir.join("hoist");
            let left: Vec<_> = std::fs::read_dir(&hoist)
                .map(|entries| entries.flatten().filter(|e| e.path().is_dir()).collect())
                .unwrap_or_default();
            assert!(left.is_empty(), "{}: {left:?}", hoist.display());
            let _ = std::fs::remove_dir(&hoist);
            let _ = std::fs::remove_dir(&dir);
        }
    }
}
