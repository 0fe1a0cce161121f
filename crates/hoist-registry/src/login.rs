//! `login` and `logout`: check credentials against a registry, then keep them where the
//! docker CLI keeps them (its credential helper when `config.json` names one, else base64 in
//! `auths`), so `hoist` and `docker` share logins.

use std::path::PathBuf;

use crate::config::RegistryConfig;
use crate::credentials::{helper_erase, helper_store, Credentials, DockerConfigFile};
use crate::error::{RegistryError, Result};
use crate::RegistryClient;

/// Where [`login_with`] and [`logout_with`] look.
#[derive(Debug, Clone, Default)]
pub struct LoginOptions {
    /// Registry settings (plain HTTP, CAs) used to reach the registry.
    pub registry_config: RegistryConfig,
    /// The docker config file; `None` for the usual place (`$DOCKER_CONFIG`, `~/.docker`).
    pub docker_config: Option<PathBuf>,
}

impl LoginOptions {
    fn config_path(&self) -> Result<PathBuf> {
        self.docker_config
            .clone()
            .or_else(DockerConfigFile::default_path)
            .ok_or_else(|| RegistryError::DockerConfigInvalid {
                path: PathBuf::from("~/.docker/config.json"),
                message: "neither DOCKER_CONFIG nor HOME is set".to_owned(),
            })
    }
}

/// Logs in to `host` (`docker.io`, `host:port`) with default settings; see [`login_with`].
pub async fn login(host: &str, username: &str, password: &str) -> Result<PathBuf> {
    login_with(&LoginOptions::default(), host, username, password).await
}

/// Checks `username`/`password` against `host` (Basic, or a token request for Bearer
/// registries), then stores them in the docker config (or its helper). Returns the config
/// file written. Nothing is stored when the registry refuses them.
pub async fn login_with(
    options: &LoginOptions,
    host: &str,
    username: &str,
    password: &str,
) -> Result<PathBuf> {
    let client = RegistryClient::new(
        options.registry_config.clone(),
        Credentials::anonymous().with_basic(host, username, password),
    );
    client.verify_credentials(host).await?;
    let path = options.config_path()?;
    let mut file = DockerConfigFile::load(&path)?;
    match file.helper_for(host) {
        Some(helper) => {
            helper_store(&helper, host, username, password).await?;
            file.set_in_helper(host);
        }
        None => file.set_basic(host, username, password),
    }
    file.save()?;
    Ok(path)
}

/// Logs out of `host` with default settings; see [`logout_with`].
pub async fn logout(host: &str) -> Result<bool> {
    logout_with(&LoginOptions::default(), host).await
}

/// Forgets `host`'s credentials (in the helper too). `false` when there were none.
pub async fn logout_with(options: &LoginOptions, host: &str) -> Result<bool> {
    let path = options.config_path()?;
    let mut file = DockerConfigFile::load(&path)?;
    let mut removed = false;
    if let Some(helper) = file.helper_for(host) {
        helper_erase(&helper, host).await?;
        removed = true;
    }
    if file.remove(host) {
        removed = true;
        file.save()?;
    }
    Ok(removed)
}
