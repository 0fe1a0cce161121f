//! What a build sets for all its RUN steps besides the Dockerfile ([`RunOptions`]): buildx's
//! `--add-host`, `--shm-size`, `--ulimit`, `--cgroup-parent` and the entitlements of
//! `--allow` ([`Entitlements`]), checked before any step runs as BuildKit checks them when it
//! loads a definition.

use hoist_graph::{Network, Security};
use hoist_sandbox::{HostEntry, Ulimit};

use crate::error::{Error, Result};

/// The build-wide settings of RUN steps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunOptions {
    /// `--add-host`: lines added to each step's `/etc/hosts`.
    pub extra_hosts: Vec<HostEntry>,
    /// `--shm-size` in bytes; Docker's 64 MiB when `None`.
    pub shm_size: Option<u64>,
    /// `--ulimit`s; hoist's own limits when empty, as BuildKit leaves them.
    pub ulimits: Vec<Ulimit>,
    /// `--cgroup-parent`: the cgroup each step's cgroup is made under.
    pub cgroup_parent: Option<String>,
    /// `--allow`: what steps may ask for beyond the sandbox.
    pub entitlements: Entitlements,
}

/// The entitlements a build grants (`--allow`); none by default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Entitlements {
    /// `network.host`: `RUN --network=host` (also granted by `--network host`).
    pub network_host: bool,
    /// `security.insecure`: `RUN --security=insecure`.
    pub security_insecure: bool,
}

impl Entitlements {
    /// Grants `name` (`network.host`, `security.insecure`), refusing others in BuildKit's
    /// words.
    pub fn allow(&mut self, name: &str) -> Result<()> {
        match name {
            "network.host" => self.network_host = true,
            "security.insecure" => self.security_insecure = true,
            other => return Err(Error::UnknownEntitlement(other.to_owned())),
        }
        Ok(())
    }

    /// BuildKit's check of one exec: host networking and insecure mode need their grant.
    pub(crate) fn check(&self, network: Network, security: Security) -> Result<()> {
        if network == Network::Host && !self.network_host {
            return Err(Error::EntitlementNotAllowed("network.host"));
        }
        if security == Security::Insecure && !self.security_insecure {
            return Err(Error::EntitlementNotAllowed("security.insecure"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entitlements_refuse_in_buildkits_words() {
        let none = Entitlements::default();
        assert_eq!(
            none.check(Network::Host, Security::Sandbox)
                .unwrap_err()
                .to_string(),
            "failed to solve: network.host is not allowed"
        );
        assert_eq!(
            none.check(Network::Sandbox, Security::Insecure)
                .unwrap_err()
                .to_string(),
            "failed to solve: security.insecure is not allowed"
        );
        none.check(Network::None, Security::Sandbox).unwrap();
        let mut all = Entitlements::default();
        all.allow("network.host").unwrap();
        all.allow("security.insecure").unwrap();
        all.check(Network::Host, Security::Insecure).unwrap();
        assert_eq!(
            all.allow("device").unwrap_err().to_string(),
            "unknown entitlement device"
        );
    }
}
