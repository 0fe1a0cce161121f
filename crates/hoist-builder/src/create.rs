//! Changing the store as buildx's `create`, `create --leave` and `rm` do: [`create`] takes a
//! [`CreateRequest`] (the command line's values), checks everything — name, driver, driver
//! options, endpoint, `--buildkitd-config`, `--buildkitd-flags` — and only then stores the
//! builder, so a refused request leaves the store as it was. Reaching a node is not part of
//! creating it: an unreachable endpoint is a status, not an error.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hoist_oci::Platform;

use crate::driver::{
    check_driver_name, AnyDriver, Driver, Endpoint, DOCKER, DOCKER_CONTAINER, EMBEDDED, KUBERNETES,
    REMOTE,
};
use crate::error::{Error, Result};
use crate::name::{generate_name, validate_name};
use crate::node_group::{NodeGroup, NodeUpdate, BUILDKITD_CONFIG_FILE};
use crate::store::Txn;
use crate::DEFAULT_BUILDER;

/// `create`'s flags and argument, as typed.
#[derive(Debug, Clone, Default)]
pub struct CreateRequest {
    /// `--name`; generated when absent.
    pub name: Option<String>,
    /// `--driver`; default: the existing builder's, else `remote` with an endpoint,
    /// else `embedded`.
    pub driver: Option<String>,
    /// `--node`.
    pub node: Option<String>,
    /// `--platform` values (each may be a comma-separated list).
    pub platforms: Vec<String>,
    /// `--driver-opt` values (`k=v`, comma-separated pairs allowed).
    pub driver_opts: Vec<String>,
    /// `--buildkitd-flags`.
    pub buildkitd_flags: Option<String>,
    /// `--buildkitd-config`.
    pub buildkitd_config: Option<PathBuf>,
    /// `ENDPOINT`.
    pub endpoint: Option<String>,
    /// `--append`.
    pub append: bool,
    /// `--use`.
    pub use_builder: bool,
}

/// Creates or changes a builder as `request` says and stores it; returns it as stored.
pub fn create(txn: &Txn<'_>, request: &CreateRequest) -> Result<NodeGroup> {
    let given = match &request.name {
        Some(name) => Some(validate_name(name)?),
        None => None,
    };
    if given.as_deref() == Some(DEFAULT_BUILDER) {
        return Err(Error::ReservedName);
    }
    if request.append && given.is_none() {
        return Err(Error::Invalid("append requires a builder name".to_owned()));
    }
    let name = match given {
        Some(name) => name,
        None => generate_name(|n| txn.get(n).ok().flatten().is_some())?,
    };
    let existing = txn.get(&name)?;
    if existing.is_none() && request.append {
        return Err(Error::Invalid(format!(
            "failed to find instance {name:?} for append"
        )));
    }
    let driver = match (&request.driver, &existing, &request.endpoint) {
        (Some(driver), _, _) => driver.clone(),
        (None, Some(group), _) => group.driver.clone(),
        (None, None, Some(_)) => REMOTE.to_owned(),
        (None, None, None) => EMBEDDED.to_owned(),
    };
    if let Some(group) = &existing {
        if request.node.is_none() && !request.append {
            return Err(Error::Exists(name));
        }
        if driver != group.driver {
            return Err(Error::Invalid(format!(
                "existing instance for {name:?} but has mismatched driver {:?}",
                group.driver
            )));
        }
    }
    check_driver_name(&driver)?;

    let driver_opts = parse_driver_opts(&request.driver_opts)?;
    let files = match &request.buildkitd_config {
        Some(path) => load_buildkitd_config(path)?,
        None => BTreeMap::new(),
    };
    let buildkitd_flags =
        match &request.buildkitd_flags {
            Some(flags) => Some(shlex::split(flags).ok_or_else(|| {
                Error::Invalid(format!("failed to parse buildkit flags: {flags:?}"))
            })?),
            None => None,
        };
    let (endpoint, endpoint_set) = match (driver.as_str(), &request.endpoint) {
        (REMOTE, Some(endpoint)) => {
            Endpoint::parse(endpoint)?;
            (endpoint.clone(), true)
        }
        (REMOTE, None) => return Err(Error::Invalid("no remote endpoint provided".to_owned())),
        // buildx's docker driver takes a docker context; hoist the daemon's socket.
        (DOCKER, Some(endpoint)) => {
            Endpoint::parse(endpoint)?;
            (endpoint.clone(), true)
        }
        // The Docker daemon a docker-container node lives in (default: DOCKER_HOST, …).
        (DOCKER_CONTAINER, Some(endpoint)) => {
            hoist_export::DockerEndpoint::parse(endpoint).map_err(|e| Error::BadEndpoint {
                endpoint: endpoint.clone(),
                message: match e {
                    hoist_export::Error::DockerHost { reason, .. } => {
                        format!("{reason} (the Docker daemon's address)")
                    }
                    other => other.to_string(),
                },
            })?;
            (endpoint.clone(), true)
        }
        // buildx: a kubernetes node's endpoint is the kubeconfig context it reaches.
        (KUBERNETES, Some(endpoint)) => {
            if endpoint.is_empty() || endpoint.contains("://") {
                return Err(Error::BadEndpoint {
                    endpoint: endpoint.clone(),
                    message: "a kubernetes node's endpoint is a kubeconfig context name".to_owned(),
                });
            }
            (endpoint.clone(), true)
        }
        (_, Some(endpoint)) => {
            return Err(Error::Invalid(format!(
                "{driver} driver does not support endpoint args {endpoint:?}"
            )))
        }
        (_, None) => (DEFAULT_BUILDER.to_owned(), false),
    };
    let mut platforms = Vec::new();
    for list in &request.platforms {
        platforms.extend(
            Platform::parse_list(list)
                .map_err(|e| Error::Invalid(format!("invalid platform {list:?}: {e}")))?,
        );
    }

    let mut group = existing.unwrap_or_else(|| NodeGroup::new(&name, &driver));
    group.update(
        NodeUpdate {
            name: request.node.clone().unwrap_or_default(),
            endpoint,
            endpoint_set,
            platforms,
            driver_opts,
            buildkitd_flags,
            files,
        },
        request.append,
    )?;
    for node in &group.nodes {
        AnyDriver::new(&group, node)?;
    }
    txn.save(&group)?;
    if request.use_builder {
        txn.set_current(&group.name)?;
    }
    Ok(group)
}

/// Whether a failed `create --bootstrap` of a builder of `driver` keeps the builder stored:
/// only for drivers whose bootstrap may have made something (a container and its volume)
/// that `rm` must be able to remove, as buildx keeps it. For the others the store is put
/// back as it was, so a refused bootstrap changes nothing.
pub fn keeps_failed_bootstrap(driver: &str) -> bool {
    // kubernetes: its pods, deployment and config map, once that driver exists.
    matches!(driver, DOCKER_CONTAINER | "kubernetes")
}

/// `create --leave --name B --node N`: removes node `N` from builder `B`.
pub fn leave(txn: &Txn<'_>, name: Option<&str>, node: Option<&str>) -> Result<NodeGroup> {
    let name = name.ok_or_else(|| Error::Invalid("leave requires instance name".to_owned()))?;
    let node = node.ok_or_else(|| Error::Invalid("leave requires node name".to_owned()))?;
    let mut group = txn
        .get(name)?
        .filter(|g| g.name != DEFAULT_BUILDER)
        .ok_or_else(|| Error::Invalid(format!("failed to find instance {name:?} for leave")))?;
    group.leave(node)?;
    txn.save(&group)?;
    Ok(group)
}

/// `rm NAME`: stops and removes each node (state kept with `keep_state`), then forgets the
/// builder. The `default` builder cannot be removed.
pub fn remove(txn: &Txn<'_>, name: &str, keep_state: bool) -> Result<()> {
    let group = txn.find(name)?;
    if group.name == DEFAULT_BUILDER {
        return Err(Error::Invalid(
            "the default builder cannot be removed (it is the in-process engine)".to_owned(),
        ));
    }
    let mut failures = Vec::new();
    for node in &group.nodes {
        if let Ok(driver) = AnyDriver::new(&group, node) {
            if let Err(e) = driver.stop().and_then(|()| driver.rm(keep_state)) {
                failures.push(format!("failed to remove node {}: {e}", node.name));
            }
        }
    }
    txn.remove(&group.name)?;
    if failures.is_empty() {
        Ok(())
    } else {
        Err(Error::Invalid(failures.join("; ")))
    }
}

/// Reads a `buildkitd.toml` for a builder: checked by hoist's registry-config parser (a
/// malformed file is refused naming file and line), kept as the file's bytes.
pub fn load_buildkitd_config(path: &Path) -> Result<BTreeMap<String, Vec<u8>>> {
    let bytes = std::fs::read(path).map_err(|source| {
        Error::BuildkitdConfig(hoist_registry::RegistryError::ConfigRead {
            path: path.to_owned(),
            source,
        })
    })?;
    let text = String::from_utf8_lossy(&bytes);
    hoist_registry::RegistryConfig::parse(&text, path).map_err(Error::BuildkitdConfig)?;
    Ok(BTreeMap::from([(BUILDKITD_CONFIG_FILE.to_owned(), bytes)]))
}

/// `--driver-opt` values → a map; `None` when none was given (a changed node keeps its own).
fn parse_driver_opts(values: &[String]) -> Result<Option<BTreeMap<String, String>>> {
    if values.is_empty() {
        return Ok(None);
    }
    let mut opts = BTreeMap::new();
    for value in values {
        for field in value.split(',') {
            let (k, v) = field
                .split_once('=')
                .ok_or_else(|| Error::Invalid(format!("invalid value {field:?}, expecting k=v")))?;
            opts.insert(k.to_owned(), v.to_owned());
        }
    }
    Ok(Some(opts))
}
