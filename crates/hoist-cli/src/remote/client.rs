//! [`ClientRemote`]: [`Remote`] over `hoist_registry::RegistryClient`. Blobs go between
//! repositories of one registry by cross-repository mount; between registries they are
//! downloaded into the local content store (streamed, verified) and uploaded from there.

use anyhow::Context as _;
use hoist_engine::StateDir;
use hoist_oci::{Descriptor, MediaType, Reference};
use hoist_registry::{RegistryClient, Repository};

use super::{Fetched, Remote};

/// The registry client plus the state dir whose content store relays cross-registry copies.
#[derive(Debug, Clone)]
pub struct ClientRemote {
    client: RegistryClient,
    state: StateDir,
}

impl ClientRemote {
    /// Wraps `client`; cross-registry copies pass through `state`'s content store.
    pub fn new(client: RegistryClient, state: StateDir) -> Self {
        ClientRemote { client, state }
    }
}

impl Remote for ClientRemote {
    async fn resolve(&self, reference: &Reference) -> anyhow::Result<Fetched> {
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
    ) -> anyhow::Result<Fetched> {
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
    ) -> anyhow::Result<Vec<u8>> {
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
    ) -> anyhow::Result<()> {
        let store = self.state.open_content_store().with_context(|| {
            format!(
                "cannot open the content store in {}",
                self.state.root().display()
            )
        })?;
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
    ) -> anyhow::Result<Descriptor> {
        Ok(self
            .client
            .push_manifest(reference, bytes.into(), media_type.clone())
            .await?)
    }
}
