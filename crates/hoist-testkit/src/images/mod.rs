//! Base images without the internet: `busybox` for linux/amd64, linux/arm64 and linux/arm/v7,
//! made from Debian's `busybox-static` packages (downloaded by `scripts/install-deps.sh`) and
//! pushed into a [`TestRegistry`].
//!
//! ```no_run
//! # async fn demo() {
//! use hoist_testkit::images::BaseImages;
//! use hoist_testkit::registry::TestRegistry;
//! let Some(registry) = TestRegistry::start() else { return };
//! let Some(images) = BaseImages::get() else { return };
//! let pushed = images.push(&registry).await.unwrap();
//! // FROM 127.0.0.1:PORT/busybox (an index of three platforms), or busybox:arm64 ...
//! let reference = pushed.reference("latest");
//! # }
//! ```
//!
//! - [`busybox_rootfs`] makes the root filesystem in a directory (for sandbox tests);
//! - [`BaseImages::get`] makes the blobs once per process (a single gzip layer, config,
//!   manifest per architecture, and the index), byte for byte the same on every run;
//! - [`BaseImages::push`] puts them in a registry as `busybox:latest` (the index),
//!   `busybox:amd64|arm64|arm`, and the same under `library/busybox`, so a client with the
//!   registry as a `docker.io` mirror resolves `FROM busybox` to it;
//!   [`BaseImages::push_repositories`] with [`ALPINE_STAND_IN`] does the same for `alpine`
//!   (for Dockerfiles that need only a shell and busybox applets);
//! - [`BaseImages::write_oci_layout`] writes them as an OCI layout directory instead.
//!
//! Debian's busybox has no `adduser`/`addgroup` applets; the rootfs carries shell stand-ins
//! ([`ADDUSER`], [`ADDGROUP`]) taking busybox's flags, since Dockerfiles written against
//! Docker's busybox image use them.
//!
//! When a .deb or `dpkg-deb` is missing, [`BaseImages::get`] says which command installs it
//! (through [`crate::skip`]) and returns `None`.

mod layer;
mod rootfs;

use std::path::Path;
use std::sync::OnceLock;

use bytes::Bytes;
use hoist_oci::{
    ContainerConfig, Descriptor, Digest, History, ImageConfig, Index, Manifest, MediaType,
    OciLayoutWriter, Platform, Reference, RootFs,
};
use hoist_registry::{
    BlobSource, Credentials, HostConfig, RegistryClient, RegistryConfig, Repository,
};

pub use layer::{layer_from_dir, LayerBlob, LAYER_MTIME};
pub use rootfs::{
    applet_names, busybox_deb, busybox_rootfs, debs_dir, Arch, ADDGROUP, ADDUSER, APP_UID,
    DEBS_ENV, DEFAULT_DEBS_DIR, GROUP, PASSWD,
};

use crate::error::{Result, TestkitError};
use crate::registry::TestRegistry;

/// The `PATH` of the images' config (Docker's default).
pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The `created` time of the configs (the layer's mtime).
pub const CREATED: &str = "2024-01-01T00:00:00Z";

/// The repositories [`BaseImages::push`] fills.
pub const REPOSITORIES: [&str; 2] = ["busybox", "library/busybox"];

/// Repositories for [`BaseImages::push_repositories`] that make the busybox image stand in
/// for `alpine`: enough for Dockerfiles that use only a POSIX shell and busybox applets (no
/// `apk`), as BuildKit's integration cases that name alpine do.
pub const ALPINE_STAND_IN: [&str; 2] = ["alpine", "library/alpine"];

/// A blob with its descriptor.
#[derive(Debug, Clone)]
pub struct Blob {
    /// Media type, digest and size (and platform, for manifests).
    pub descriptor: Descriptor,
    /// The exact bytes.
    pub bytes: Bytes,
}

impl Blob {
    fn new(media_type: MediaType, bytes: Vec<u8>) -> Self {
        Blob {
            descriptor: Descriptor::of_bytes(media_type, &bytes),
            bytes: Bytes::from(bytes),
        }
    }
}

/// The busybox image of one architecture.
#[derive(Debug, Clone)]
pub struct BaseImage {
    /// Its architecture.
    pub arch: Arch,
    /// `linux/amd64`, `linux/arm64` or `linux/arm/v7`.
    pub platform: Platform,
    /// The one layer (`tar+gzip`).
    pub layer: Blob,
    /// The digest of the uncompressed layer.
    pub diff_id: Digest,
    /// The config, as parsed.
    pub config: ImageConfig,
    /// The config blob.
    pub config_blob: Blob,
    /// The manifest blob; its descriptor carries the platform.
    pub manifest: Blob,
}

/// The busybox images of every [`Arch`] and the index listing them.
#[derive(Debug, Clone)]
pub struct BaseImages {
    /// One image per architecture, in [`Arch::ALL`] order.
    pub images: Vec<BaseImage>,
    /// The OCI index of the three manifests.
    pub index: Blob,
}

/// What [`BaseImages::push`] put where.
#[derive(Debug, Clone)]
pub struct PushedImages {
    /// The registry host (`127.0.0.1:PORT`).
    pub host: String,
    /// The repository (`busybox`).
    pub repository: String,
    /// The index (`busybox:latest`).
    pub index: Descriptor,
    /// Each architecture's manifest (`busybox:<arch>`), with its platform.
    pub manifests: Vec<(Arch, Descriptor)>,
}

impl PushedImages {
    /// `HOST/busybox:<tag>` (`latest`, `amd64`, `arm64`, `arm`).
    pub fn reference(&self, tag: &str) -> String {
        format!("{}/{}:{tag}", self.host, self.repository)
    }

    /// `HOST/busybox@<digest of the index>`.
    pub fn index_reference(&self) -> String {
        format!("{}/{}@{}", self.host, self.repository, self.index.digest)
    }

    /// The manifest descriptor of `arch`.
    pub fn manifest(&self, arch: Arch) -> Option<&Descriptor> {
        self.manifests
            .iter()
            .find(|(a, _)| *a == arch)
            .map(|(_, descriptor)| descriptor)
    }
}

impl BaseImages {
    /// The images, made once per process; `None` after [`crate::skip`] says what to install
    /// when a .deb or a tool is missing.
    ///
    /// # Panics
    ///
    /// When the prerequisites are there but the images cannot be made (a broken machine, as
    /// with [`TestRegistry`], not a reason to skip).
    pub fn get() -> Option<&'static BaseImages> {
        static IMAGES: OnceLock<Result<BaseImages>> = OnceLock::new();
        match IMAGES.get_or_init(BaseImages::build) {
            Ok(images) => Some(images),
            Err(err) if err.is_missing_prerequisite() => {
                crate::skip(&format!("busybox base images: {err}"));
                None
            }
            Err(err) => panic!("cannot make the busybox base images: {err}"),
        }
    }

    /// Makes the images now (see [`BaseImages::get`] for the cached, skipping form).
    pub fn build() -> Result<BaseImages> {
        let mut images = Vec::new();
        for arch in Arch::ALL {
            images.push(BaseImage::build(arch)?);
        }
        let index = Index::new_oci(
            images
                .iter()
                .map(|image| image.manifest.descriptor.clone())
                .collect(),
        );
        let index = Blob::new(MediaType::OciIndex, hoist_oci::go_json::to_vec(&index)?);
        Ok(BaseImages { images, index })
    }

    /// The image of `arch`.
    pub fn image(&self, arch: Arch) -> Option<&BaseImage> {
        self.images.iter().find(|image| image.arch == arch)
    }

    /// Pushes the images into `registry` (using its Basic auth and CA when it has them):
    /// see [`BaseImages::push_with`].
    pub async fn push(&self, registry: &TestRegistry) -> Result<PushedImages> {
        self.push_repositories(registry, &REPOSITORIES).await
    }

    /// Pushes the images into each of `repositories` of `registry` (the first gets the
    /// uploads, the others mount from it), tagged as [`BaseImages::push_with`] says. What
    /// went into the first is returned.
    pub async fn push_repositories(
        &self,
        registry: &TestRegistry,
        repositories: &[&str],
    ) -> Result<PushedImages> {
        let mut config = RegistryConfig::default();
        if let Some(ca) = registry.tls_ca() {
            config.hosts.insert(
                registry.host(),
                HostConfig {
                    ca: vec![ca],
                    ..HostConfig::default()
                },
            );
        }
        let mut credentials = Credentials::anonymous();
        if let Some((user, password)) = registry.basic_auth() {
            credentials = credentials.with_basic(&registry.host(), user, password);
        }
        let client = RegistryClient::new(config, credentials);
        self.push_with(&client, &registry.host(), repositories)
            .await
    }

    /// Pushes with `client` to `host`, in each of `repositories` (such as [`REPOSITORIES`]):
    /// blobs, then each manifest under its architecture's tag, then the index as `latest`.
    /// Blobs already in the registry are skipped, and later repositories mount them from the
    /// first.
    pub async fn push_with(
        &self,
        client: &RegistryClient,
        host: &str,
        repositories: &[&str],
    ) -> Result<PushedImages> {
        let [first, rest @ ..] = repositories else {
            return Err(TestkitError::NoRepository);
        };
        let pushed = self.push_repository(client, host, first, &[]).await?;
        let first = Repository::new(host, *first);
        for path in rest {
            self.push_repository(client, host, path, std::slice::from_ref(&first))
                .await?;
        }
        Ok(pushed)
    }

    /// Writes the images as an OCI image layout in `dir` (created when missing): every blob,
    /// and `index.json` naming the index `latest` (`oci:DIR:latest` for skopeo).
    pub fn write_oci_layout(&self, dir: &Path) -> Result<()> {
        let mut layout = OciLayoutWriter::create_dir(dir)?;
        for image in &self.images {
            for blob in [&image.layer, &image.config_blob, &image.manifest] {
                layout.add_blob_bytes(&blob.descriptor.digest, &blob.bytes)?;
            }
        }
        layout.add_blob_bytes(&self.index.descriptor.digest, &self.index.bytes)?;
        layout.add_manifest(self.index.descriptor.clone(), Some("latest"));
        layout.finish()?;
        Ok(())
    }

    async fn push_repository(
        &self,
        client: &RegistryClient,
        host: &str,
        path: &str,
        mount_from: &[Repository],
    ) -> Result<PushedImages> {
        let repository = Repository::new(host, path);
        let mut manifests = Vec::new();
        for image in &self.images {
            for blob in [&image.layer, &image.config_blob] {
                client
                    .push_blob_or_mount(
                        &repository,
                        &blob.descriptor,
                        BlobSource::Bytes(blob.bytes.clone()),
                        mount_from,
                    )
                    .await?;
            }
            let reference = Reference::parse(&format!("{host}/{path}:{}", image.arch))?;
            client
                .push_manifest(
                    &reference,
                    image.manifest.bytes.clone(),
                    MediaType::OciManifest,
                )
                .await?;
            manifests.push((image.arch, image.manifest.descriptor.clone()));
        }
        let reference = Reference::parse(&format!("{host}/{path}:latest"))?;
        client
            .push_manifest(&reference, self.index.bytes.clone(), MediaType::OciIndex)
            .await?;
        Ok(PushedImages {
            host: host.to_owned(),
            repository: path.to_owned(),
            index: self.index.descriptor.clone(),
            manifests,
        })
    }
}

impl BaseImage {
    /// Makes the rootfs of `arch` in a temporary directory and the image from it.
    pub fn build(arch: Arch) -> Result<BaseImage> {
        let dir = tempfile::Builder::new()
            .prefix("hoist-busybox-rootfs-")
            .tempdir()
            .map_err(TestkitError::io(
                "create a temporary directory in",
                std::env::temp_dir(),
            ))?;
        busybox_rootfs(arch.as_str(), dir.path())?;
        let layer = layer_from_dir(dir.path())?;
        let platform = arch.platform();
        let config = ImageConfig {
            architecture: arch.as_str().to_owned(),
            os: "linux".to_owned(),
            variant: arch.variant().map(str::to_owned),
            created: Some(CREATED.to_owned()),
            config: ContainerConfig {
                env: vec![DEFAULT_PATH.to_owned()],
                cmd: vec!["sh".to_owned()],
                ..ContainerConfig::default()
            },
            rootfs: RootFs {
                kind: "layers".to_owned(),
                diff_ids: vec![layer.diff_id.clone()],
            },
            history: vec![History {
                created: Some(CREATED.to_owned()),
                created_by: Some(format!(
                    "hoist-testkit: busybox-static ({}) from Debian",
                    arch.deb_arch()
                )),
                ..History::default()
            }],
            ..ImageConfig::default()
        };
        let config_blob = Blob::new(MediaType::OciConfig, hoist_oci::go_json::to_vec(&config)?);
        let layer_blob = Blob::new(MediaType::OciLayerGzip, layer.gzip);
        let manifest = Manifest::new_oci(
            config_blob.descriptor.clone(),
            vec![layer_blob.descriptor.clone()],
        );
        let mut manifest = Blob::new(
            MediaType::OciManifest,
            hoist_oci::go_json::to_vec(&manifest)?,
        );
        manifest.descriptor.platform = Some(platform.clone());
        Ok(BaseImage {
            arch,
            platform,
            layer: layer_blob,
            diff_id: layer.diff_id,
            config,
            config_blob,
            manifest,
        })
    }
}
