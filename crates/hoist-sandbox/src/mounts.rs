//! The mounts every sandbox gets, in order, as data. The built-in runtime turns the one list
//! into `mount(2)` calls, the OCI backend into `config.json` entries, so both backends give a
//! process the same file systems.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::{Confinement, RunSpec};

/// One mount, at a path inside the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mount {
    pub target: PathBuf,
    pub kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A fresh kernel file system (`proc`, `tmpfs`, `devpts`, `sysfs`).
    Fs {
        fstype: &'static str,
        source: &'static str,
        flags: &'static [Flag],
        /// File-system specific options (`mode=755,size=65536k`).
        data: Option<String>,
    },
    /// A host file or directory, recursively.
    Bind { source: PathBuf, readonly: bool },
}

/// The generic mount flags used here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flag {
    NoSuid,
    NoExec,
    NoDev,
    StrictAtime,
    ReadOnly,
}

impl Flag {
    /// The name in `mount -o` and OCI `options`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Flag::NoSuid => "nosuid",
            Flag::NoExec => "noexec",
            Flag::NoDev => "nodev",
            Flag::StrictAtime => "strictatime",
            Flag::ReadOnly => "ro",
        }
    }
}

const NOSUID_NOEXEC_NODEV: &[Flag] = &[Flag::NoSuid, Flag::NoExec, Flag::NoDev];

/// Where the minimal `/dev` is mounted; the built-in runtime fills it with device nodes
/// bound from the host (OCI runtimes create them themselves).
pub(crate) const DEV: &str = "/dev";

/// `/proc`, a minimal `/dev` (with `pts` and `shm`, sized by `shm_size`), a read-only
/// `/sys` (writable when privileged), the generated
/// `/etc/hosts` and `/etc/resolv.conf`, then the spec's bind mounts and tmpfs mounts.
pub(crate) fn plan(spec: &RunSpec, hosts: &Path, resolv_conf: &Path) -> Vec<Mount> {
    let shm_data = match spec.shm_size {
        Some(bytes) => format!("mode=1777,size={bytes}"),
        None => "mode=1777,size=65536k".to_owned(),
    };
    // Insecure mode's `/sys` is writable, as containerd's `WithWriteableSysfs`.
    let sys_flags: &'static [Flag] = match spec.confinement {
        Confinement::Default => &[Flag::NoSuid, Flag::NoExec, Flag::NoDev, Flag::ReadOnly],
        Confinement::Privileged => NOSUID_NOEXEC_NODEV,
    };
    let fs = |target: &str, fstype, source, flags, data: Option<&str>| Mount {
        target: PathBuf::from(target),
        kind: Kind::Fs {
            fstype,
            source,
            flags,
            data: data.map(str::to_owned),
        },
    };
    let bind = |target: &Path, source: &Path, readonly| Mount {
        target: target.to_owned(),
        kind: Kind::Bind {
            source: source.to_owned(),
            readonly,
        },
    };
    let mut mounts = vec![
        fs("/proc", "proc", "proc", NOSUID_NOEXEC_NODEV, None),
        fs(
            DEV,
            "tmpfs",
            "tmpfs",
            &[Flag::NoSuid, Flag::StrictAtime],
            Some("mode=755,size=65536k"),
        ),
        fs(
            "/dev/pts",
            "devpts",
            "devpts",
            &[Flag::NoSuid, Flag::NoExec],
            Some("newinstance,ptmxmode=0666,mode=0620,gid=5"),
        ),
        fs(
            "/dev/shm",
            "tmpfs",
            "shm",
            NOSUID_NOEXEC_NODEV,
            Some(&shm_data),
        ),
        fs("/sys", "sysfs", "sysfs", sys_flags, None),
        bind(Path::new("/etc/hosts"), hosts, false),
        bind(Path::new("/etc/resolv.conf"), resolv_conf, false),
    ];
    for extra in &spec.mounts {
        mounts.push(bind(&extra.target, &extra.source, extra.readonly));
    }
    for tmpfs in &spec.tmpfs {
        mounts.push(Mount {
            target: tmpfs.target.clone(),
            kind: Kind::Fs {
                fstype: "tmpfs",
                source: "tmpfs",
                flags: &[Flag::NoSuid, Flag::NoDev],
                data: tmpfs.size.map(|size| format!("size={size}")),
            },
        });
    }
    mounts
}

impl Mount {
    /// The OCI runtime-spec `mounts` entry.
    pub(crate) fn to_oci(&self) -> Value {
        match &self.kind {
            Kind::Fs {
                fstype,
                source,
                flags,
                data,
            } => {
                let mut options: Vec<&str> = flags.iter().map(|flag| flag.name()).collect();
                options.extend(data.iter().flat_map(|data| data.split(',')));
                json!({"destination": self.target, "type": fstype, "source": source, "options": options})
            }
            Kind::Bind { source, readonly } => {
                let access = if *readonly { "ro" } else { "rw" };
                json!({"destination": self.target, "type": "bind", "source": source,
                       "options": ["rbind", "rprivate", "nodev", access]})
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BindMount, TmpfsMount};

    #[test]
    fn plan_puts_system_mounts_first_then_binds_then_tmpfs() {
        let mut spec = RunSpec::new("/rootfs", ["true"]);
        spec.tmpfs.push(TmpfsMount {
            target: "/scratch".into(),
            size: None,
        });
        spec.mounts.push(BindMount {
            source: "/host/cache".into(),
            target: "/cache".into(),
            readonly: true,
        });
        let targets: Vec<_> = plan(&spec, Path::new("/h"), Path::new("/r"))
            .into_iter()
            .map(|m| m.target)
            .collect();
        let expected = [
            "/proc",
            "/dev",
            "/dev/pts",
            "/dev/shm",
            "/sys",
            "/etc/hosts",
            "/etc/resolv.conf",
            "/cache",
            "/scratch",
        ];
        assert_eq!(targets, expected.map(PathBuf::from));
    }

    #[test]
    fn shm_size_and_privileged_sys_change_their_mounts() {
        let mut spec = RunSpec::new("/rootfs", ["true"]);
        spec.shm_size = Some(128 << 20);
        spec.confinement = Confinement::Privileged;
        let mounts = plan(&spec, Path::new("/h"), Path::new("/r"));
        assert_eq!(
            mounts[3].to_oci()["options"],
            json!(["nosuid", "noexec", "nodev", "mode=1777", "size=134217728"])
        );
        assert_eq!(
            mounts[4].to_oci()["options"],
            json!(["nosuid", "noexec", "nodev"])
        );
    }

    #[test]
    fn to_oci_lists_flags_then_data_options() {
        let spec = RunSpec::new("/rootfs", ["true"]);
        let mounts = plan(&spec, Path::new("/h"), Path::new("/r"));
        assert_eq!(
            mounts[1].to_oci(),
            json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
                   "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]})
        );
        assert_eq!(
            mounts[4].to_oci(),
            json!({"destination": "/sys", "type": "sysfs", "source": "sysfs",
                   "options": ["nosuid", "noexec", "nodev", "ro"]})
        );
        assert_eq!(
            mounts[5].to_oci(),
            json!({"destination": "/etc/hosts", "type": "bind", "source": "/h",
                   "options": ["rbind", "rprivate", "nodev", "rw"]})
        );
    }
}
