//! The confinement both backends apply, Docker's defaults: the capabilities a root process
//! keeps, the `/proc` and `/sys` paths hidden or made read-only, and the devices a process
//! may use.

use rustix::thread::CapabilitySet;

/// Docker's default capability set: (OCI name, bit). Root keeps these; every other
/// capability is removed from the bounding set of every process.
pub(crate) const CAPABILITIES: &[(&str, CapabilitySet)] = &[
    ("CAP_CHOWN", CapabilitySet::CHOWN),
    ("CAP_DAC_OVERRIDE", CapabilitySet::DAC_OVERRIDE),
    ("CAP_FSETID", CapabilitySet::FSETID),
    ("CAP_FOWNER", CapabilitySet::FOWNER),
    ("CAP_MKNOD", CapabilitySet::MKNOD),
    ("CAP_NET_RAW", CapabilitySet::NET_RAW),
    ("CAP_SETGID", CapabilitySet::SETGID),
    ("CAP_SETUID", CapabilitySet::SETUID),
    ("CAP_SETFCAP", CapabilitySet::SETFCAP),
    ("CAP_SETPCAP", CapabilitySet::SETPCAP),
    ("CAP_NET_BIND_SERVICE", CapabilitySet::NET_BIND_SERVICE),
    ("CAP_SYS_CHROOT", CapabilitySet::SYS_CHROOT),
    ("CAP_KILL", CapabilitySet::KILL),
    ("CAP_AUDIT_WRITE", CapabilitySet::AUDIT_WRITE),
];

/// The default set as one bit set.
pub(crate) fn capability_set() -> CapabilitySet {
    CAPABILITIES
        .iter()
        .fold(CapabilitySet::empty(), |set, (_, cap)| set | *cap)
}

/// Hidden: a directory gets an empty read-only tmpfs over it, a file `/dev/null`.
pub(crate) const MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Made read-only.
pub(crate) const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// One rule of the device cgroup (the OCI `linux.resources.devices` entry): `kind` `c` or
/// `b`, a major and minor number (`None`: any), and the access allowed (`r`, `w`, `m`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DeviceRule {
    pub kind: char,
    pub major: Option<i64>,
    pub minor: Option<i64>,
    pub access: &'static str,
}

const fn char_device(major: i64, minor: Option<i64>, access: &'static str) -> DeviceRule {
    DeviceRule {
        kind: 'c',
        major: Some(major),
        minor,
        access,
    }
}

/// Docker's default device rules, allowed after everything is denied: any node may be made
/// (`mknod`, as images carry them) but only these may be opened — null, zero, full, random,
/// urandom, tty, console, ptmx and the pseudo-terminals. The built-in runtime has no device
/// cgroup and gets the same effect from `nodev` mounts (see `builtin::rootfs`).
pub(crate) const ALLOWED_DEVICES: &[DeviceRule] = &[
    DeviceRule {
        kind: 'c',
        major: None,
        minor: None,
        access: "m",
    },
    DeviceRule {
        kind: 'b',
        major: None,
        minor: None,
        access: "m",
    },
    char_device(1, Some(3), "rwm"), // null
    char_device(1, Some(5), "rwm"), // zero
    char_device(1, Some(7), "rwm"), // full
    char_device(1, Some(8), "rwm"), // random
    char_device(1, Some(9), "rwm"), // urandom
    char_device(5, Some(0), "rwm"), // tty
    char_device(5, Some(1), "rwm"), // console
    char_device(5, Some(2), "rwm"), // ptmx
    char_device(136, None, "rwm"),  // pts/*
];

/// The devices BuildKit's insecure mode adds (paths under `/dev`), besides the loop devices.
const INSECURE_DEVICES: &[&str] = &["kmsg", "cuse", "fuse", "kvm", "net/tun", "loop-control"];

/// A host device node given to a privileged container: its path under `/dev`, `c` or
/// `b`, numbers and permission bits, read from the host's node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostDevice {
    pub name: String,
    pub kind: char,
    pub major: u32,
    pub minor: u32,
    pub mode: u32,
}

/// BuildKit's insecure-mode devices that this host has: kmsg, cuse, fuse, kvm, net/tun,
/// loop-control and the loop devices (`/dev/loopN`, which BuildKit lists up to the first
/// free one plus seven; here every one present). A node the host lacks is left out, as
/// there is nothing to bind or allow.
pub(crate) fn insecure_devices() -> Vec<HostDevice> {
    use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};

    let mut names: Vec<String> = INSECURE_DEVICES.iter().map(|n| (*n).to_owned()).collect();
    let mut loops: Vec<(u32, String)> = std::fs::read_dir("/dev")
        .into_iter()
        .flatten()
        .filter_map(std::result::Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let number = name.strip_prefix("loop")?.parse::<u32>().ok()?;
            Some((number, name))
        })
        .collect();
    loops.sort();
    names.extend(loops.into_iter().map(|(_, name)| name));
    names
        .into_iter()
        .filter_map(|name| {
            let meta = std::fs::metadata(std::path::Path::new("/dev").join(&name)).ok()?;
            let kind = if meta.file_type().is_char_device() {
                'c'
            } else if meta.file_type().is_block_device() {
                'b'
            } else {
                return None;
            };
            let rdev = meta.rdev();
            Some(HostDevice {
                name,
                kind,
                major: rustix::fs::major(rdev),
                minor: rustix::fs::minor(rdev),
                mode: meta.mode() & 0o7777,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_set_is_dockers_default_mask() {
        // CapBnd of a `docker run` process.
        assert_eq!(capability_set().bits(), 0xa80425fb);
    }
}
