//! The `/etc/hosts` and `/etc/resolv.conf` a sandbox sees: generated on the host into a
//! per-run directory and bind-mounted over the rootfs's files, so they never land in a layer.

use std::path::{Path, PathBuf};

use crate::{Error, HostEntry, Network, Result, RunSpec};

/// Nameservers used when the host's resolv.conf only lists local ones (Docker's fallback).
const FALLBACK_NAMESERVERS: &[&str] = &["8.8.8.8", "8.8.4.4"];

/// The generated files of one run, living as long as the run.
#[derive(Debug)]
pub(crate) struct EtcFiles {
    dir: tempfile::TempDir,
}

impl EtcFiles {
    /// Writes `hosts` and `resolv.conf` for `spec` into a fresh temp directory.
    pub(crate) fn write(spec: &RunSpec) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("hoist-sandbox-")
            .tempdir()
            .map_err(|e| Error::io("create temp dir in", std::env::temp_dir(), e))?;
        let hosts = dir.path().join("hosts");
        std::fs::write(&hosts, hosts_file(&spec.hostname, &spec.extra_hosts))
            .map_err(|e| Error::io("write", &hosts, e))?;
        let host_resolv = Path::new("/etc/resolv.conf");
        let host_text = match std::fs::read_to_string(host_resolv) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(Error::io("read", host_resolv, e)),
        };
        let resolv = dir.path().join("resolv.conf");
        std::fs::write(&resolv, resolv_conf(&host_text, spec.network))
            .map_err(|e| Error::io("write", &resolv, e))?;
        Ok(EtcFiles { dir })
    }

    pub(crate) fn hosts(&self) -> PathBuf {
        self.dir.path().join("hosts")
    }

    pub(crate) fn resolv_conf(&self) -> PathBuf {
        self.dir.path().join("resolv.conf")
    }
}

/// `localhost` and the sandbox's hostname on loopback, then the extra entries
/// (`--add-host`), one `ip<TAB>host` line each, as BuildKit writes them.
pub(crate) fn hosts_file(hostname: &str, extra: &[HostEntry]) -> String {
    let mut text =
        format!("127.0.0.1\tlocalhost {hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    for entry in extra {
        text.push_str(&format!("{}\t{}\n", entry.ip, entry.host));
    }
    text
}

/// The host's resolv.conf without loopback nameservers (unreachable from a container's own
/// network namespace); Docker's public fallback when none remain. With `Network::Host` the
/// host's file is kept as is, since loopback is the host's.
pub(crate) fn resolv_conf(host: &str, network: Network) -> String {
    if network == Network::Host {
        return host.to_owned();
    }
    let is_local_nameserver = |line: &str| {
        let mut words = line.split_whitespace();
        words.next() == Some("nameserver")
            && words
                .next()
                .is_some_and(|addr| addr.starts_with("127.") || addr == "::1")
    };
    let mut out: String = host
        .lines()
        .filter(|line| !is_local_nameserver(line))
        .flat_map(|line| [line, "\n"])
        .collect();
    if !out
        .lines()
        .any(|line| line.split_whitespace().next() == Some("nameserver"))
    {
        for server in FALLBACK_NAMESERVERS {
            out.push_str(&format!("nameserver {server}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_drops_loopback_nameservers_in_a_private_network() {
        let host = "search lan\nnameserver 127.0.0.53\nnameserver 10.0.0.1\n";
        assert_eq!(
            resolv_conf(host, Network::None),
            "search lan\nnameserver 10.0.0.1\n"
        );
        assert_eq!(resolv_conf(host, Network::Host), host);
        assert_eq!(
            resolv_conf("nameserver 127.0.0.53\n", Network::None),
            "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"
        );
    }

    #[test]
    fn hosts_file_names_the_sandbox() {
        assert_eq!(
            hosts_file("box", &[]),
            "127.0.0.1\tlocalhost box\n::1\tlocalhost ip6-localhost ip6-loopback\n"
        );
        let extra = [
            HostEntry {
                host: "db".into(),
                ip: "10.1.2.3".parse().unwrap(),
            },
            HostEntry {
                host: "v6".into(),
                ip: "fd00::1".parse().unwrap(),
            },
        ];
        assert!(hosts_file("box", &extra).ends_with("ip6-loopback\n10.1.2.3\tdb\nfd00::1\tv6\n"));
    }
}
