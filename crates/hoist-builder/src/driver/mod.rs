//! The [`Driver`] trait — how a node is started, asked, stopped and removed — and
//! [`AnyDriver`], the closed set hoist has: [`EmbeddedDriver`] (the in-process engine),
//! [`RemoteDriver`] (a daemon at `unix://` or `tcp://`), [`DockerDriver`] (the BuildKit
//! inside a Docker daemon) and [`DockerContainerDriver`] (hoistd in a container of a Docker
//! daemon, reached by `exec hoistd dial-stdio`) and [`KubernetesDriver`] (hoistd pods of a
//! Kubernetes deployment, reached by pod exec of `hoistd dial-stdio`).
//!
//! Drivers are built from a stored [`Node`] by [`AnyDriver::new`], which is also where
//! driver options are checked, so `create` refuses a bad option before anything is stored.

mod docker;
mod docker_api;
mod docker_container;
mod embedded;
mod grpc;
mod hoistd_image;
pub mod kubernetes;
mod moby_version;
mod remote;

use std::collections::BTreeMap;
use std::fmt;

use hoist_oci::Platform;

pub use docker::DockerDriver;
pub use docker_api::ExecStream;
pub use docker_container::{default_image, DockerContainerDriver, CONTAINER_PREFIX};
pub use embedded::EmbeddedDriver;
pub use kubernetes::KubernetesDriver;
pub use remote::{channel, Endpoint, RemoteDriver, TlsOptions, ANSWER_TIMEOUT};

use crate::error::{Error, Result};
use crate::node_group::{Node, NodeGroup};

/// The in-process engine.
pub const EMBEDDED: &str = "embedded";
/// A daemon reached at an endpoint.
pub const REMOTE: &str = "remote";
/// The BuildKit inside a Docker daemon.
pub const DOCKER: &str = "docker";
/// hoistd in a container of a Docker daemon.
pub const DOCKER_CONTAINER: &str = "docker-container";
/// hoistd pods of a Kubernetes deployment.
pub const KUBERNETES: &str = "kubernetes";
/// buildx's drivers hoist recognises but does not have yet.
pub const NOT_YET: &[&str] = &[];

/// How long a status check waits for a node to accept a connection.
pub const STATUS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// A node's state, named as buildx names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Not running or not reachable.
    Inactive,
    /// Being started.
    Starting,
    /// Ready for builds.
    Running,
    /// Being stopped.
    Stopping,
    /// Stopped.
    Stopped,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Inactive => "inactive",
            Status::Starting => "starting",
            Status::Running => "running",
            Status::Stopping => "stopping",
            Status::Stopped => "stopped",
        })
    }
}

/// What a node says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    /// Its state.
    pub status: Status,
    /// Why it is not running, when it could not be reached.
    pub unreachable: Option<String>,
    /// The platforms its worker executes (empty when unknown).
    pub platforms: Vec<Platform>,
}

/// A driver's capabilities, named as buildx's `driver.Feature`s.
pub type Features = BTreeMap<&'static str, bool>;

/// One node's driver.
pub trait Driver {
    /// The driver's name (`embedded`, `remote`).
    fn name(&self) -> &'static str;
    /// Makes the node ready for builds (starts what the driver manages).
    fn bootstrap(&self) -> Result<()>;
    /// The node's status and platforms; never an error: an unreachable node is a status.
    fn info(&self) -> Info;
    /// The builder software's version, when the driver can tell.
    fn version(&self) -> String;
    /// Stops what the driver started.
    fn stop(&self) -> Result<()>;
    /// Removes what the driver created (its state too unless `keep_state`).
    fn rm(&self, keep_state: bool) -> Result<()>;
    /// What builds on this node can do.
    fn features(&self) -> Features;
}

/// Every driver hoist has.
#[derive(Debug)]
pub enum AnyDriver {
    /// The in-process engine.
    Embedded(EmbeddedDriver),
    /// A daemon at an endpoint.
    Remote(RemoteDriver),
    /// A Docker daemon's BuildKit.
    Docker(DockerDriver),
    /// hoistd in a Docker container.
    DockerContainer(Box<DockerContainerDriver>),
    /// hoistd pods of a Kubernetes deployment.
    Kubernetes(Box<KubernetesDriver>),
}

impl AnyDriver {
    /// The driver of `node` in `group`, its options checked.
    pub fn new(group: &NodeGroup, node: &Node) -> Result<AnyDriver> {
        check_driver_name(&group.driver)?;
        match group.driver.as_str() {
            EMBEDDED => EmbeddedDriver::new(node).map(AnyDriver::Embedded),
            DOCKER => DockerDriver::new(node).map(AnyDriver::Docker),
            DOCKER_CONTAINER => {
                DockerContainerDriver::new(node).map(|d| AnyDriver::DockerContainer(Box::new(d)))
            }
            KUBERNETES => KubernetesDriver::new(node).map(|d| AnyDriver::Kubernetes(Box::new(d))),
            _ => RemoteDriver::new(node).map(AnyDriver::Remote),
        }
    }

    fn inner(&self) -> &dyn Driver {
        match self {
            AnyDriver::Embedded(d) => d,
            AnyDriver::Remote(d) => d,
            AnyDriver::Docker(d) => d,
            AnyDriver::DockerContainer(d) => &**d,
            AnyDriver::Kubernetes(d) => &**d,
        }
    }
}

/// `Ok` for a driver hoist has; buildx's `failed to find driver` for an unknown name, and a
/// plain "not available yet" for buildx's drivers hoist does not have yet.
pub fn check_driver_name(name: &str) -> Result<()> {
    match name {
        EMBEDDED | REMOTE | DOCKER | DOCKER_CONTAINER | KUBERNETES => Ok(()),
        _ if NOT_YET.contains(&name) => Err(Error::DriverUnavailable(name.to_owned())),
        _ => Err(Error::UnknownDriver(name.to_owned())),
    }
}

impl Driver for AnyDriver {
    fn name(&self) -> &'static str {
        self.inner().name()
    }
    fn bootstrap(&self) -> Result<()> {
        self.inner().bootstrap()
    }
    fn info(&self) -> Info {
        self.inner().info()
    }
    fn version(&self) -> String {
        self.inner().version()
    }
    fn stop(&self) -> Result<()> {
        self.inner().stop()
    }
    fn rm(&self, keep_state: bool) -> Result<()> {
        self.inner().rm(keep_state)
    }
    fn features(&self) -> Features {
        self.inner().features()
    }
}

/// Runs `future` on a runtime of its own (drivers are called from plain threads).
pub(crate) fn block_on<F: std::future::Future>(future: F) -> Result<F::Output> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Invalid(format!("cannot start the async runtime: {e}")))?;
    Ok(runtime.block_on(future))
}

/// An error and its causes on one line, each cause once (a refused TLS handshake or a
/// failed dial says why only in a cause).
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let part = cause.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = cause.source();
    }
    text
}
