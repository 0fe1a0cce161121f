//! Secrets and SSH agents a build's client gives once the build's graph is known: a daemon
//! (hoistd) asks its client's session for exactly the ids the solved graph's
//! `RUN --mount=type=secret|ssh` name — ids built from ARGs included, which the Dockerfile's
//! text does not show — instead of guessing them before the frontend ran.
//!
//! [`BuildRequest::late_inputs`](crate::BuildRequest::late_inputs) carries an
//! [`InputSource`]; [`crate::build`] calls it once, after `resolve` and before any step
//! runs, with the [`WantedInputs`] of every target's graph, and adds what it gives to the
//! request's own secrets and agents (those win on the same id).

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use hoist_frontend::Definition;

use crate::definition::Loaded;
use crate::error::Result;
use crate::secrets::{SecretStore, Secrets};
use crate::ssh::{SshAgents, SshStore};

/// The ids a build's steps mount.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WantedInputs {
    /// `RUN --mount=type=secret` ids (`id=`, else the target's base name, as resolved).
    pub secrets: BTreeSet<String>,
    /// `RUN --mount=type=ssh` ids (`default` when none is given).
    pub ssh: BTreeSet<String>,
}

/// What the client gives for them (an id it does not have is left out).
#[derive(Debug, Clone, Default)]
pub struct GivenInputs {
    pub secrets: Secrets,
    pub ssh: SshAgents,
}

/// Where late inputs come from (a daemon's client session).
pub trait InputSource: Send + Sync {
    /// What the client has of `wanted`; an error fails the build.
    fn inputs<'a>(
        &'a self,
        wanted: &'a WantedInputs,
    ) -> Pin<Box<dyn Future<Output = Result<GivenInputs>> + Send + 'a>>;
}

/// A request's [`InputSource`].
#[derive(Clone)]
pub struct LateInputs(pub Arc<dyn InputSource>);

impl std::fmt::Debug for LateInputs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LateInputs")
    }
}

/// The secret and SSH ids the execs every target needs mount.
pub fn wanted_inputs(definition: &Definition) -> WantedInputs {
    let mut wanted = WantedInputs::default();
    for (_, exec) in crate::solve::needed_execs(definition) {
        for mount in &exec.mounts {
            match &mount.kind {
                hoist_graph::MountKind::Secret { id, .. } => {
                    wanted.secrets.insert(id.clone());
                }
                hoist_graph::MountKind::Ssh { id, .. } => {
                    wanted.ssh.insert(id.clone());
                }
                _ => {}
            }
        }
    }
    wanted
}

/// Asks `source` for what `definition` mounts and reloads `loaded`'s secret and agent
/// stores with it added to `secrets` and `ssh` (the request's own).
pub(crate) async fn apply(
    source: &LateInputs,
    definition: &Definition,
    secrets: &Secrets,
    ssh: &SshAgents,
    loaded: &mut Loaded,
) -> Result<()> {
    let wanted = wanted_inputs(definition);
    if wanted.secrets.is_empty() && wanted.ssh.is_empty() {
        return Ok(());
    }
    let given = source.0.inputs(&wanted).await?;
    let mut all_secrets = given.secrets;
    all_secrets.extend(secrets.iter().map(|(k, v)| (k.clone(), v.clone())));
    let mut agents = given.ssh;
    agents.extend(ssh);
    loaded.secrets = SecretStore::load(&all_secrets)?;
    loaded.ssh = SshStore::load(&agents)?;
    Ok(())
}
