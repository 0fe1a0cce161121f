//! [`Error`]: everything that can go wrong with builders, in buildx's words where buildx has
//! words for it.

use std::path::PathBuf;

/// A `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a builder could not be stored, found, created or reached.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory of the store could not be read or written.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was being done (`read`, `lock`, `remove`).
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A builder file is not the JSON it should be.
    #[error("invalid builder file {path}: {message}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A state file could not be replaced.
    #[error(transparent)]
    Write(#[from] hoist_content::Error),
    /// Builder and node names: a letter first, then letters, digits and `._-`.
    #[error("invalid name {0}, name needs to start with a letter and may not contain symbols, except ._-")]
    InvalidName(String),
    /// `default` is the implicit embedded builder.
    #[error("default is a reserved name and cannot be used to identify builder instance")]
    ReservedName,
    /// No builder of that name in the store.
    #[error("no builder {0:?} found")]
    NotFound(String),
    /// `create` of a name that exists, without `--append` or `--node`.
    #[error("existing instance for {0:?} but no append mode, specify the node name to make changes for existing instances")]
    Exists(String),
    /// Any other refusal of a create/leave/rm request, in buildx's words.
    #[error("{0}")]
    Invalid(String),
    /// A driver name buildx does not know.
    #[error("failed to find driver {0:?}")]
    UnknownDriver(String),
    /// A driver buildx has and hoist does not have yet.
    #[error("driver {0:?} is not available yet in hoist (available: \"embedded\", \"remote\", \"docker\", \"docker-container\", \"kubernetes\")")]
    DriverUnavailable(String),
    /// A driver option the driver does not take.
    #[error("invalid driver option {key} for {driver} driver")]
    UnknownDriverOpt {
        /// The option's name.
        key: String,
        /// The driver.
        driver: &'static str,
    },
    /// A driver option with a value the driver cannot use.
    #[error("invalid driver option {key}={value:?} for {driver} driver: {message}")]
    BadDriverOpt {
        /// The option's name.
        key: String,
        /// Its value.
        value: String,
        /// The driver.
        driver: &'static str,
        /// Why.
        message: String,
    },
    /// An endpoint that is not a `unix://` or `tcp://` URL.
    #[error("invalid endpoint {endpoint:?}: {message}")]
    BadEndpoint {
        /// The endpoint as given.
        endpoint: String,
        /// Why.
        message: String,
    },
    /// `--buildkitd-config` could not be read or parsed.
    #[error("failed to load buildkit configuration file: {0}")]
    BuildkitdConfig(#[source] hoist_registry::RegistryError),
    /// The Docker daemon refused or failed a `docker-container` node's request.
    #[error("docker-container {container}: {message}")]
    Docker {
        /// The node's container.
        container: String,
        /// What went wrong, in one line.
        message: String,
    },
    /// The Kubernetes API refused or failed a `kubernetes` node's request, or its pods did
    /// not become ready.
    #[error("kubernetes deployment {object}: {message}")]
    Kubernetes {
        /// `namespace/deployment`.
        object: String,
        /// What went wrong, in one line.
        message: String,
    },
    /// The operation needs what the next slice brings (hoistd's Solve, drivers that manage
    /// daemons).
    #[error("{0}")]
    NotYet(String),
}

impl Error {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
