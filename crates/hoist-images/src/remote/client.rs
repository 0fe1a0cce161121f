//! [`ClientRemote`]: [`Remote`] over `hoist_registry::RegistryClient`. Blobs go between
//! repositories of one registry by cross-repository mount; between registries they are
//! downloaded into the local content store (streamed, verified) and uploaded from there.

use std::os::unix::fs::DirBuilderExt as _;
use std::path::PathBuf;

use hoist_content::ContentStore;
use hoist_oci::{Descriptor, MediaType, Reference};
use hoist_registry::{RegistryClient, Repository};

use super::{Fetched, Remote};
use crate::error::{Error, Result};

/// The registry client plus the state dir whose content store relays cross-registry copies.
#[derive(Debug, Clone)]
pub struct ClientRemote {
    client: RegistryClient,
    state_root: PathBuf,
}

impl ClientRemote {
    /// Wraps `client`; cross-registry copies pass through the content store of the state
    /// dir at `state_root`, opened (and the dir created) only when a copy needs it.
    pub fn new(client: RegistryClient, state_root: impl Into<PathBuf>) -> Self {
        ClientRemote {
            client,
            state_root: state_root.into(),
        }
    }

    /// The relay store; a missing state dir is created private (0700), as hoist creates it
    /// everywhere.
    fn relay_store(&self) -> Result<ContentStore> {
        let root = &self.state_root;
        let relay_error = |source| Error::RelayStore {
            root: root.clone(),
            source,
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(root)
            .map_err(|source| {
                relay_error(hoist_content::Error::Io {
                    action: "create state dir",
                    path: root.clone(),
                    source,
                })
            })?;
        ContentStore::open(root).map_err(relay_error)
    }
}

impl Remote for ClientRemote {
    async fn resolve(&self, reference: &Reference) -> Result<Fetched> {
        let resolved = self.client.resolve(reference).await?;
        Ok(Fetched {
            descriptor: resolved.descriptor,
            bytes: resolved.bytes.to_vec(),
        })
    }

    async fn fetch_manifest(
        &self,
        repository: &Reference,
        descriptor: &Descriptor,
    ) -> Result<Fetched> {
        let resolved = self
            .client
            .fetch_manifest(&Repository::from(repository), descriptor)
            .await?;
        Ok(Fetched {
            descriptor: resolved.descriptor,
            bytes: resolved.bytes.to_vec(),
        })
    }

    async fn fetch_blob_bytes(
        &self,
        repository: &Reference,
        descriptor: &Descriptor,
        limit: u64,
    ) -> Result<Vec<u8>> {
        let bytes = self
            .client
            .fetch_blob_bytes(&Repository::from(repository), descriptor, limit)
            .await?;
        Ok(bytes.to_vec())
    }

    async fn copy_blob(
        &self,
        from: &Reference,
        to: &Reference,
        descriptor: &Descriptor,
    ) -> Result<()> {
        let store = self.relay_store()?;
        self.client
            .copy_blob(
                &Repository::from(from),
                &Repository::from(to),
                descriptor,
                &store,
            )
            .await?;
        Ok(())
    }

    async fn push_manifest(
        &self,
        reference: &Reference,
        bytes: Vec<u8>,
        media_type: &MediaType,
    ) -> Result<Descriptor> {
        Ok(self
            .client
            .push_manifest(reference, bytes.into(), media_type.clone())
            .await?)
    }
}
