//! What to run: [`RunSpec`] and its parts, and what came out: [`ExitStatus`].

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::Ulimit;

/// The `PATH` a process gets when its environment has none (Docker's default).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The hostname a sandbox gets unless told otherwise.
pub const DEFAULT_HOSTNAME: &str = "hoistsandbox";

/// One process to run in a prepared root file system.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSpec {
    /// An already-prepared directory (an overlay mount, a snapshot); writes land in it.
    pub rootfs: PathBuf,
    /// `argv`; `args[0]` is looked up in the `PATH` of `env` when it has no `/`.
    pub args: Vec<String>,
    /// The environment, in order; `(name, value)`.
    pub env: Vec<(String, String)>,
    /// The working directory inside the container, created when missing.
    pub cwd: PathBuf,
    /// Who the process runs as (see [`crate::resolve_user`]).
    pub user: User,
    /// The UTS hostname, also listed in `/etc/hosts`.
    pub hostname: String,
    /// Host network, or a private network namespace with only loopback.
    pub network: Network,
    /// Extra bind mounts, applied in order after the standard ones.
    pub mounts: Vec<BindMount>,
    /// Extra tmpfs mounts, applied after the bind mounts.
    pub tmpfs: Vec<TmpfsMount>,
    /// Lines added to the generated `/etc/hosts` (`--add-host`), after the standard ones.
    pub extra_hosts: Vec<HostEntry>,
    /// The size of the `/dev/shm` tmpfs in bytes (`--shm-size`); 64 MiB when `None`.
    pub shm_size: Option<u64>,
    /// Resource limits set before the command starts (`--ulimit`); hoist's own otherwise.
    pub ulimits: Vec<Ulimit>,
    /// Docker's default confinement, or none of it (`RUN --security=insecure`).
    pub confinement: Confinement,
    /// The cgroup the run's cgroup is made under (`--cgroup-parent`): a path below the
    /// cgroup root, or a systemd slice (`name.slice:prefix:`) for an OCI runtime.
    pub cgroup_parent: Option<String>,
}

impl RunSpec {
    /// A spec running `args` as root in `/` of `rootfs`, with the default `PATH`, host network
    /// and no extra mounts.
    pub fn new(
        rootfs: impl Into<PathBuf>,
        args: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        RunSpec {
            rootfs: rootfs.into(),
            args: args.into_iter().map(Into::into).collect(),
            env: vec![("PATH".to_owned(), DEFAULT_PATH.to_owned())],
            cwd: PathBuf::from("/"),
            user: User::root(),
            hostname: DEFAULT_HOSTNAME.to_owned(),
            network: Network::Host,
            mounts: Vec::new(),
            tmpfs: Vec::new(),
            extra_hosts: Vec::new(),
            shm_size: None,
            ulimits: Vec::new(),
            confinement: Confinement::Default,
            cgroup_parent: None,
        }
    }

    /// The `PATH` of the process's environment, or [`DEFAULT_PATH`].
    pub fn path_var(&self) -> &str {
        self.env
            .iter()
            .rev()
            .find(|(name, _)| name == "PATH")
            .map_or(DEFAULT_PATH, |(_, value)| value.as_str())
    }

    /// The environment as `NAME=value` strings; a name given twice keeps its first place and
    /// its last value.
    pub fn env_strings(&self) -> Vec<String> {
        let mut merged: Vec<(&str, &str)> = Vec::with_capacity(self.env.len());
        for (name, value) in &self.env {
            match merged.iter_mut().find(|(seen, _)| seen == name) {
                Some(entry) => entry.1 = value,
                None => merged.push((name, value)),
            }
        }
        merged
            .into_iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect()
    }

    /// Checks what both backends rely on: a command, absolute paths, a usable hostname.
    pub(crate) fn validate(&self) -> crate::Result<()> {
        let invalid = |reason: String| Err(crate::Error::InvalidSpec { reason });
        if self.args.first().is_none_or(|arg| arg.is_empty()) {
            return invalid("no command to run".to_owned());
        }
        if !self.rootfs.is_absolute() {
            return invalid(format!(
                "rootfs {} is not an absolute path",
                self.rootfs.display()
            ));
        }
        if !self.cwd.is_absolute() {
            return invalid(format!(
                "working directory {} is not absolute",
                self.cwd.display()
            ));
        }
        for mount in &self.mounts {
            if !mount.source.is_absolute() || !mount.target.is_absolute() {
                return invalid(format!(
                    "bind mount {} -> {} needs absolute paths",
                    mount.source.display(),
                    mount.target.display()
                ));
            }
        }
        if let Some(tmpfs) = self.tmpfs.iter().find(|t| !t.target.is_absolute()) {
            return invalid(format!(
                "tmpfs target {} is not absolute",
                tmpfs.target.display()
            ));
        }
        if self.hostname.len() > 64 || self.hostname.contains(['\n', ' ', '\t', '\0']) {
            return invalid(format!(
                "hostname {:?} is not a valid host name",
                self.hostname
            ));
        }
        if let Some(parent) = &self.cgroup_parent {
            if parent.split('/').any(|part| part == "..") || parent.contains('\0') {
                return invalid(format!("cgroup parent {parent:?} leaves the cgroup root"));
            }
        }
        if let Some(entry) = self
            .extra_hosts
            .iter()
            .find(|entry| entry.host.is_empty() || entry.host.contains(char::is_whitespace))
        {
            return invalid(format!(
                "host name {:?} for /etc/hosts is invalid",
                entry.host
            ));
        }
        if let Some((name, _)) = self
            .env
            .iter()
            .find(|(name, _)| name.is_empty() || name.contains(['=', '\0']))
        {
            return invalid(format!("environment variable name {name:?} is invalid"));
        }
        Ok(())
    }
}

/// Numeric identity of the process: uid, primary gid, supplementary gids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
}

impl User {
    /// uid 0, gid 0, in group 0.
    pub fn root() -> User {
        User {
            uid: 0,
            gid: 0,
            additional_gids: vec![0],
        }
    }
}

/// The network a sandbox sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Network {
    /// The host's network namespace (`RUN --network=host`, and the default).
    Host,
    /// A fresh network namespace with only `lo`, up (`RUN --network=none`).
    None,
}

/// How much of Docker's confinement a process gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Confinement {
    /// Docker's defaults: its capability set, masked and read-only `/proc` and `/sys`
    /// paths, only the harmless devices usable.
    #[default]
    Default,
    /// BuildKit's insecure mode (`RUN --security=insecure`, with the `security.insecure`
    /// entitlement): every capability (users other than root keep them too), nothing
    /// masked, `/sys` writable, every device allowed and BuildKit's extra devices (`fuse`,
    /// `kvm`, `net/tun`, `loop-control`, the loop devices...) present when the host has them.
    Privileged,
}

/// One `/etc/hosts` line: `ip<TAB>host`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostEntry {
    pub host: String,
    pub ip: std::net::IpAddr,
}

/// A host path bind-mounted into the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindMount {
    /// Absolute host path (file or directory).
    pub source: PathBuf,
    /// Absolute path inside the container; created when missing.
    pub target: PathBuf,
    pub readonly: bool,
}

/// A fresh tmpfs mounted into the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TmpfsMount {
    /// Absolute path inside the container; created when missing.
    pub target: PathBuf,
    /// Size limit in bytes; the kernel default (half of RAM) when `None`.
    pub size: Option<u64>,
}

/// How the process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExitStatus {
    /// It exited with this code.
    Code(i32),
    /// It was killed by this signal number.
    Signal(i32),
}

impl ExitStatus {
    /// Exit code 0.
    pub fn success(self) -> bool {
        self == ExitStatus::Code(0)
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitStatus::Code(code) => write!(f, "exit code: {code}"),
            ExitStatus::Signal(signal) => write!(f, "killed by signal {signal}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_strings_keep_the_first_place_and_the_last_value() {
        let mut spec = RunSpec::new("/r", ["true"]);
        spec.env = vec![
            ("A".into(), "1".into()),
            ("B".into(), "2".into()),
            ("A".into(), "3".into()),
        ];
        assert_eq!(spec.env_strings(), ["A=3", "B=2"]);
    }
}
