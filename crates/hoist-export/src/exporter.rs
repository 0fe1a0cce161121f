//! [`Exporter`]: runs an [`ExportRequest`] against the content store, a registry and the
//! local filesystem.

use std::path::PathBuf;

use hoist_content::ContentStore;
use hoist_registry::RegistryClient;

use crate::error::{Error, Result};
use crate::image::ExportRequest;
use crate::result::ExportResult;

/// Where the Docker daemon's API listens.
pub const DEFAULT_DOCKER_SOCKET: &str = "/var/run/docker.sock";

/// Writes built images to outputs.
#[derive(Debug, Clone)]
pub struct Exporter {
    store: ContentStore,
    registry: Option<RegistryClient>,
    docker_socket: PathBuf,
}

impl Exporter {
    /// An exporter writing into `store` (where the layers already are).
    pub fn new(store: ContentStore) -> Self {
        Self {
            store,
            registry: None,
            docker_socket: PathBuf::from(DEFAULT_DOCKER_SOCKET),
        }
    }

    /// Uses `client` for pushes.
    pub fn with_registry(mut self, client: RegistryClient) -> Self {
        self.registry = Some(client);
        self
    }

    /// Loads `type=docker` outputs without `dest` through this socket instead of
    /// [`DEFAULT_DOCKER_SOCKET`].
    pub fn with_docker_socket(mut self, socket: impl Into<PathBuf>) -> Self {
        self.docker_socket = socket.into();
        self
    }

    /// Writes every output of `request`.
    pub async fn export(&self, request: &ExportRequest) -> Result<ExportResult> {
        let _ = (&self.store, &self.registry, &self.docker_socket, request);
        Err(Error::Unsupported("exporting is not written yet".into()))
    }
}
