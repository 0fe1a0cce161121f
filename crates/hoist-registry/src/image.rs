//! Whole images: pull one platform (or every platform) of a reference into the content store,
//! and push an image or index from the store to a registry. Children always go before their
//! parents — layers and config before the manifest, manifests before the index — on both
//! sides, so a manifest that is visible always has its blobs.

use futures::{StreamExt as _, TryStreamExt as _};
use hoist_content::{ContentStore, Expected};
use hoist_oci::{Descriptor, Index, Manifest, MatchComparer, MediaType, Platform, Reference};

use crate::download::run_blocking;
use crate::error::{RegistryError, Result};
use crate::manifest::{is_index_type, Resolved};
use crate::upload::BlobSource;
use crate::{RegistryClient, Repository};

/// What [`RegistryClient::pull_image`] stored.
#[derive(Debug, Clone)]
pub struct PulledImage {
    /// What the reference resolved to: an index, or the manifest itself.
    pub root: Descriptor,
    /// The platform's manifest (with its `platform` when chosen from an index).
    pub manifest: Descriptor,
    /// The image config.
    pub config: Descriptor,
    /// The layers, in order.
    pub layers: Vec<Descriptor>,
}

/// Options for [`RegistryClient::push_image_with`].
#[derive(Debug, Clone, Default)]
pub struct PushOptions {
    /// Repositories of the same registry that may hold the blobs already: each blob is
    /// mounted from them before any upload is tried.
    pub mount_from: Vec<Repository>,
    /// Where blobs the store may lack can be had, by digest (a build's base layers it never
    /// fetched): such a blob is skipped when the target has it, mounted from its repository
    /// on the same registry, or else fetched into the store and uploaded. A present blob
    /// is mounted from there too rather than uploaded when the registry is the same.
    pub blob_sources: std::collections::HashMap<hoist_oci::Digest, Repository>,
}

fn invalid(reference: &str, registry: &str, message: String) -> RegistryError {
    RegistryError::InvalidManifest {
        reference: reference.to_owned(),
        registry: registry.to_owned(),
        message,
    }
}

fn parse_manifest(resolved_what: &str, registry: &str, bytes: &[u8]) -> Result<Manifest> {
    serde_json::from_slice(bytes).map_err(|err| invalid(resolved_what, registry, err.to_string()))
}

fn parse_index(resolved_what: &str, registry: &str, bytes: &[u8]) -> Result<Index> {
    serde_json::from_slice(bytes).map_err(|err| invalid(resolved_what, registry, err.to_string()))
}

impl RegistryClient {
    /// Pulls the image `reference` names for `platform` into `store`: picks the best match
    /// from an index (containerd's `Only` rules: `linux/arm64` accepts `linux/arm64/v8`,
    /// `linux/amd64` does not accept `linux/386`), then fetches config and layers
    /// concurrently, verified, and stores the manifest (and index) last. A reference naming
    /// a single manifest is pulled as it is. The store is not given a name; see
    /// [`ContentStore::set_name`].
    pub async fn pull_image(
        &self,
        reference: &Reference,
        platform: &Platform,
        store: &ContentStore,
    ) -> Result<PulledImage> {
        let repo = Repository::from(reference);
        let found = self.find_image(reference, platform, store).await?;
        self.fetch_blobs(&repo, &found.refs, store).await?;
        found.store_documents(store).await?;
        Ok(found.image)
    }

    /// Resolves the image `reference` names for `platform` without its layers: the index
    /// (when it is one), the platform's manifest (chosen as [`RegistryClient::pull_image`]
    /// does) and the config, each verified and stored in `store`; the layers are listed,
    /// not fetched ([`RegistryClient::fetch_layers`] does that). What a build needs to
    /// plan: BuildKit's `ResolveImageConfig`. A reference by digest whose documents are in
    /// the store already makes no request for them.
    pub async fn resolve_image(
        &self,
        reference: &Reference,
        platform: &Platform,
        store: &ContentStore,
    ) -> Result<PulledImage> {
        let repo = Repository::from(reference);
        let found = self.find_image(reference, platform, store).await?;
        self.fetch_blob(&repo, &found.refs.config, store).await?;
        found.store_documents(store).await?;
        Ok(found.image)
    }

    /// Fetches the layers of `image` (from [`RegistryClient::resolve_image`]) that `store`
    /// does not have, concurrently, verified.
    pub async fn fetch_layers(
        &self,
        reference: &Reference,
        image: &PulledImage,
        store: &ContentStore,
    ) -> Result<()> {
        let repo = Repository::from(reference);
        self.fetch_all(&repo, image.layers.iter(), store).await
    }

    /// The root document `reference` names, the platform's manifest and its parsed refs,
    /// nothing stored yet. Documents named by digest come from `store` when it has them.
    async fn find_image(
        &self,
        reference: &Reference,
        platform: &Platform,
        store: &ContentStore,
    ) -> Result<FoundImage> {
        let repo = Repository::from(reference);
        let root = match reference.digest() {
            Some(digest) => match stored_document(store, digest).await? {
                Some(found) => found,
                None => self.resolve(reference).await?,
            },
            None => self.resolve(reference).await?,
        };
        let (manifest, index) = if root.is_index() {
            let chosen = select_platform(reference, &repo, &root, platform)?;
            let manifest = match stored_document(store, &chosen.digest).await? {
                Some(found) if found.descriptor.size == chosen.size => found,
                _ => self.fetch_manifest(&repo, &chosen).await?,
            };
            let mut descriptor = manifest.descriptor.clone();
            descriptor.platform = chosen.platform.clone();
            (
                Resolved {
                    descriptor,
                    bytes: manifest.bytes,
                },
                Some(root),
            )
        } else {
            (root, None)
        };
        if manifest.is_index() {
            return Err(invalid(
                &reference.to_string(),
                &repo.registry,
                format!("{} is an index inside an index", manifest.descriptor.digest),
            ));
        }
        let refs = parse_manifest(&reference.to_string(), &repo.registry, &manifest.bytes)?;
        let image = PulledImage {
            root: index
                .as_ref()
                .map_or_else(|| manifest.descriptor.clone(), |i| i.descriptor.clone()),
            manifest: manifest.descriptor.clone(),
            config: refs.config.clone(),
            layers: refs.layers.clone(),
        };
        Ok(FoundImage {
            image,
            refs,
            manifest,
            index,
        })
    }

    /// Pulls everything `reference` names into `store`: for an index, every manifest it
    /// lists (nested indexes included) with their configs and layers; then the root.
    pub async fn pull_all(
        &self,
        reference: &Reference,
        store: &ContentStore,
    ) -> Result<Descriptor> {
        let repo = Repository::from(reference);
        let root = self.resolve(reference).await?;
        self.pull_tree(&repo, &root, store, 0).await?;
        Ok(root.descriptor)
    }

    fn pull_tree<'a>(
        &'a self,
        repo: &'a Repository,
        node: &'a Resolved,
        store: &'a ContentStore,
        depth: usize,
    ) -> futures::future::BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            if node.is_index() {
                for child in index_children(repo, node, depth)? {
                    let fetched = self.fetch_manifest(repo, &child).await?;
                    self.pull_tree(repo, &fetched, store, depth + 1).await?;
                }
            } else {
                let what = node.descriptor.digest.to_string();
                let refs = parse_manifest(&what, &repo.registry, &node.bytes)?;
                self.fetch_blobs(repo, &refs, store).await?;
            }
            store_document(store, node).await
        })
    }

    async fn fetch_blobs(
        &self,
        repo: &Repository,
        refs: &Manifest,
        store: &ContentStore,
    ) -> Result<()> {
        self.fetch_all(
            repo,
            std::iter::once(&refs.config).chain(refs.layers.iter()),
            store,
        )
        .await
    }

    /// Fetches `blobs` of `repo` that `store` does not have, several at a time, verified.
    async fn fetch_all(
        &self,
        repo: &Repository,
        blobs: impl Iterator<Item = &Descriptor>,
        store: &ContentStore,
    ) -> Result<()> {
        // Futures made up front: a closure inside the stream trips rustc's higher-ranked
        // lifetime inference once this runs inside a boxed `Send` future.
        let fetches: Vec<_> = blobs
            // Foreign layers live elsewhere (their `urls`); registries do not serve them.
            .filter(|d| !d.media_type.is_non_distributable())
            .map(|desc| self.fetch_blob(repo, desc, store))
            .collect();
        // Every transfer runs to its end even when one fails, so no writer is cut off while
        // its temp file exists; the first error is then reported.
        let results: Vec<Result<_>> = futures::stream::iter(fetches)
            .buffer_unordered(self.inner.config.max_concurrent_transfers.max(1))
            .collect()
            .await;
        results.into_iter().try_for_each(|r| r.map(drop))
    }

    /// Pushes the image or index `root` from `store` to `target`: blobs (skipping those the
    /// repository has), then manifests by digest, then the root under `target`'s tag (or by
    /// digest when it has none). Returns the root's descriptor.
    pub async fn push_image(
        &self,
        store: &ContentStore,
        root: &Descriptor,
        target: &Reference,
    ) -> Result<Descriptor> {
        self.push_image_with(store, root, target, &PushOptions::default())
            .await
    }

    /// [`RegistryClient::push_image`] with options (cross-repository mounts).
    pub async fn push_image_with(
        &self,
        store: &ContentStore,
        root: &Descriptor,
        target: &Reference,
        options: &PushOptions,
    ) -> Result<Descriptor> {
        let repo = Repository::from(target);
        self.push_children(store, &repo, root, options, 0).await?;
        let bytes = read_store(store, root).await?;
        self.push_manifest(target, bytes.into(), root.media_type.clone())
            .await
    }

    /// Pushes what `node` refers to (not `node` itself).
    fn push_children<'a>(
        &'a self,
        store: &'a ContentStore,
        repo: &'a Repository,
        node: &'a Descriptor,
        options: &'a PushOptions,
        depth: usize,
    ) -> futures::future::BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let what = node.digest.to_string();
            let bytes = read_store(store, node).await?;
            if is_index_type(&node.media_type) {
                if depth > 4 {
                    return Err(invalid(
                        &what,
                        &repo.registry,
                        "indexes nested too deep".into(),
                    ));
                }
                let refs = parse_index(&what, &repo.registry, &bytes)?;
                for child in &refs.manifests {
                    if !store.has(&child.digest) {
                        // Not here: fine if the registry has it (an index made by reference).
                        let by_digest =
                            Reference::with_name(&format!("{}/{}", repo.registry, repo.path))
                                .map(|r| r.with_digest(child.digest.clone()))
                                .map_err(|err| invalid(&what, &repo.registry, err.to_string()))?;
                        if self.head_manifest(&by_digest).await?.is_some() {
                            continue;
                        }
                        return Err(RegistryError::NotFound {
                            registry: "the content store".to_owned(),
                            what: format!("manifest {} listed by index {what}", child.digest),
                        });
                    }
                    self.push_children(store, repo, child, options, depth + 1)
                        .await?;
                    let child_bytes = read_store(store, child).await?;
                    let by_digest =
                        Reference::with_name(&format!("{}/{}", repo.registry, repo.path))
                            .map(|r| r.with_digest(child.digest.clone()))
                            .map_err(|err| invalid(&what, &repo.registry, err.to_string()))?;
                    self.push_manifest(&by_digest, child_bytes.into(), child.media_type.clone())
                        .await?;
                }
                return Ok(());
            }
            let refs = parse_manifest(&what, &repo.registry, &bytes)?;
            let blobs: Vec<&Descriptor> = std::iter::once(&refs.config)
                .chain(refs.layers.iter())
                .filter(|d| !d.media_type.is_non_distributable())
                .collect();
            let what = &what;
            let pushes: Vec<_> = blobs
                .into_iter()
                .map(|desc| async move {
                    let source = BlobSource::Store(store.clone());
                    let from = options.blob_sources.get(&desc.digest);
                    if !store.has(&desc.digest) {
                        return match from {
                            Some(from) => self.copy_blob(from, repo, desc, store).await,
                            None => Err(RegistryError::NotFound {
                                registry: "the content store".to_owned(),
                                what: format!("blob {} of manifest {what}", desc.digest),
                            }),
                        };
                    }
                    let mut candidates = options.mount_from.clone();
                    if let Some(from) = from.filter(|f| !candidates.contains(f)) {
                        candidates.insert(0, from.clone());
                    }
                    self.push_blob_or_mount(repo, desc, source, &candidates)
                        .await
                        .map(drop)
                })
                .collect();
            futures::stream::iter(pushes)
                .buffer_unordered(self.inner.config.max_concurrent_transfers.max(1))
                .try_collect::<Vec<_>>()
                .await
                .map(drop)
        })
    }
}

impl RegistryClient {
    /// Copies the image or index `source` names to `target` (another repository, on the same
    /// registry or another): blobs are mounted when both are on one registry, else fetched
    /// into `store` (verified) and uploaded from there; manifests go by digest, then the root
    /// under `target`'s tag. What `imagetools create` needs to gather sources into one
    /// repository. Returns the root's descriptor (unchanged: the same bytes).
    pub async fn copy_image(
        &self,
        source: &Reference,
        target: &Reference,
        store: &ContentStore,
    ) -> Result<Descriptor> {
        let from = Repository::from(source);
        let to = Repository::from(target);
        let root = self.resolve(source).await?;
        self.copy_children(&from, &to, &root, store, 0).await?;
        self.push_manifest(
            target,
            root.bytes.clone(),
            root.descriptor.media_type.clone(),
        )
        .await
    }

    /// Makes the blob `descriptor` of `from` present in `to`: nothing when it is there
    /// already, a cross-repository mount on the same registry, else a download into `store`
    /// and an upload.
    pub async fn copy_blob(
        &self,
        from: &Repository,
        to: &Repository,
        descriptor: &Descriptor,
        store: &ContentStore,
    ) -> Result<()> {
        // `mount_blob` looks for the blob in `to` first, and mounts only on one registry.
        if self.mount_blob(to, &descriptor.digest, from).await? {
            return Ok(());
        }
        self.fetch_blob(from, descriptor, store).await?;
        let source = BlobSource::Store(store.clone());
        self.push_blob(to, descriptor, source).await.map(drop)
    }

    fn copy_children<'a>(
        &'a self,
        from: &'a Repository,
        to: &'a Repository,
        node: &'a Resolved,
        store: &'a ContentStore,
        depth: usize,
    ) -> futures::future::BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let what = node.descriptor.digest.to_string();
            if node.is_index() {
                for child in index_children(from, node, depth)? {
                    let fetched = self.fetch_manifest(from, &child).await?;
                    self.copy_children(from, to, &fetched, store, depth + 1)
                        .await?;
                    let by_digest = Reference::with_name(&format!("{}/{}", to.registry, to.path))
                        .map(|r| r.with_digest(child.digest.clone()))
                        .map_err(|err| invalid(&what, &to.registry, err.to_string()))?;
                    self.push_manifest(&by_digest, fetched.bytes, fetched.descriptor.media_type)
                        .await?;
                }
                return Ok(());
            }
            let refs = parse_manifest(&what, &from.registry, &node.bytes)?;
            let blobs: Vec<&Descriptor> = std::iter::once(&refs.config)
                .chain(refs.layers.iter())
                .filter(|d| !d.media_type.is_non_distributable())
                .collect();
            let copies: Vec<_> = blobs
                .into_iter()
                .map(|desc| self.copy_blob(from, to, desc, store))
                .collect();
            let results: Vec<Result<()>> = futures::stream::iter(copies)
                .buffer_unordered(self.inner.config.max_concurrent_transfers.max(1))
                .collect()
                .await;
            results.into_iter().collect()
        })
    }
}

/// The manifests and indexes that the index `node` (at `depth` below the root) lists;
/// indexes nested deeper than four are refused.
fn index_children(repo: &Repository, node: &Resolved, depth: usize) -> Result<Vec<Descriptor>> {
    let what = node.descriptor.digest.to_string();
    if depth > 4 {
        return Err(invalid(
            &what,
            &repo.registry,
            "indexes nested too deep".into(),
        ));
    }
    let refs = parse_index(&what, &repo.registry, &node.bytes)?;
    Ok(refs
        .manifests
        .into_iter()
        .filter(|child| child.media_type.is_manifest() || child.media_type.is_index())
        .collect())
}

/// Picks the manifest for `platform` from the index `root`.
fn select_platform(
    reference: &Reference,
    repo: &Repository,
    root: &Resolved,
    platform: &Platform,
) -> Result<Descriptor> {
    let what = reference.to_string();
    let refs = parse_index(&what, &repo.registry, &root.bytes)?;
    let candidates: Vec<&Descriptor> = refs
        .manifests
        .iter()
        .filter(|d| d.platform.is_some() && d.media_type != MediaType::OciIndex)
        .collect();
    let platforms: Vec<Platform> = candidates
        .iter()
        .filter_map(|d| d.platform.clone())
        .collect();
    let comparer = MatchComparer::only(platform);
    match comparer.best(&platforms) {
        Some(i) if i < candidates.len() => Ok(candidates[i].clone()),
        _ => Err(RegistryError::NoMatchingPlatform {
            reference: what,
            platform: platform.format(),
            available: if platforms.is_empty() {
                "no platforms".to_owned()
            } else {
                platforms
                    .iter()
                    .map(Platform::format)
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        }),
    }
}

/// An image found by `find_image`: what to return, and the documents to store once its
/// blobs are in.
struct FoundImage {
    image: PulledImage,
    refs: Manifest,
    manifest: Resolved,
    index: Option<Resolved>,
}

impl FoundImage {
    /// Stores the manifest, then the index: parents after children.
    async fn store_documents(&self, store: &ContentStore) -> Result<()> {
        store_document(store, &self.manifest).await?;
        if let Some(index) = &self.index {
            store_document(store, index).await?;
        }
        Ok(())
    }
}

/// A manifest or index the store holds under `digest`, with the media type its JSON
/// declares (or its shape shows, for OCI documents that leave `mediaType` out); `None` when
/// the store does not have it, or has bytes that no longer match the digest.
async fn stored_document(
    store: &ContentStore,
    digest: &hoist_oci::Digest,
) -> Result<Option<Resolved>> {
    if !store.has(digest) {
        return Ok(None);
    }
    let store = store.clone();
    let wanted = digest.clone();
    let bytes = match run_blocking(move || store.read_blob(&wanted)).await? {
        Ok(bytes) => bytes,
        Err(_) => return Ok(None),
    };
    // A document whose bytes no longer match its name is asked for again.
    if digest.verify(&bytes).is_err() {
        return Ok(None);
    }
    #[derive(serde::Deserialize)]
    struct Shape {
        #[serde(rename = "mediaType", default)]
        media_type: Option<MediaType>,
        #[serde(default)]
        manifests: Option<serde_json::Value>,
    }
    let Ok(shape) = serde_json::from_slice::<Shape>(&bytes) else {
        return Ok(None);
    };
    let media_type = match shape.media_type {
        Some(media_type) => media_type,
        None if shape.manifests.is_some() => MediaType::OciIndex,
        None => MediaType::OciManifest,
    };
    if !media_type.is_manifest() && !media_type.is_index() {
        return Ok(None);
    }
    Ok(Some(Resolved {
        descriptor: Descriptor::new(media_type, digest.clone(), bytes.len() as u64),
        bytes: bytes.into(),
    }))
}

/// Stores a fetched (already verified) manifest or index.
async fn store_document(store: &ContentStore, doc: &Resolved) -> Result<()> {
    let store = store.clone();
    let expected = Expected::from(&doc.descriptor);
    let bytes = doc.bytes.clone();
    run_blocking(move || store.write_blob(expected, &bytes[..])).await??;
    Ok(())
}

/// Reads a document (manifest, index) from the store.
async fn read_store(store: &ContentStore, descriptor: &Descriptor) -> Result<Vec<u8>> {
    let store = store.clone();
    let digest = descriptor.digest.clone();
    Ok(run_blocking(move || store.read_blob(&digest)).await??)
}
