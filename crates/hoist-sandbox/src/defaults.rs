//! The confinement both backends apply, Docker's defaults: the capabilities a root process
//! keeps, and the `/proc` and `/sys` paths hidden or made read-only.

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_set_is_dockers_default_mask() {
        // CapBnd of a `docker run` process.
        assert_eq!(capability_set().bits(), 0xa80425fb);
    }
}
