//! [`Exporter`]: runs an [`ExportRequest`] against the content store, a registry, the Docker
//! daemon and the local filesystem.
//!
//! Every output is checked before any work starts (destinations, stdout, platform counts),
//! then written in request order. Filesystem and hashing work runs on blocking threads;
//! pushes and the Docker load are async.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use futures::{StreamExt as _, TryStreamExt as _};
use hoist_content::ContentStore;
use hoist_registry::RegistryClient;

use crate::assemble::{Assembled, Assembler};
use crate::docker::DockerEndpoint;
use crate::error::{Error, Result};
use crate::image::{ExportRequest, PlatformImage};
use crate::output::{
    DockerDest, DockerOutput, ImageFormat, ImageOutput, LayoutDest, LocalOutput, OciOutput, Output,
    TarOutput,
};
use crate::result::{ExportResult, ExportedImage, OutputResult};
use crate::stream::LayerStreamer;
use crate::{archive, docker, rootfs};

/// Where the Docker daemon's API listens by default.
pub const DEFAULT_DOCKER_SOCKET: &str = "/var/run/docker.sock";

/// Writes built images to outputs.
#[derive(Debug, Clone)]
pub struct Exporter {
    store: ContentStore,
    registry: Option<RegistryClient>,
    /// `None`: found when loading, by [`DockerEndpoint::from_environment`].
    docker: Option<DockerEndpoint>,
    progress: Option<Arc<dyn ExportProgress>>,
}

/// Told when each output's export starts and ends, for build progress (BuildKit shows
/// each exporter as a step, named by [`Output::progress_name`]).
pub trait ExportProgress: std::fmt::Debug + Send + Sync {
    /// `output` starts being written.
    fn started(&self, output: &Output);
    /// `output` is written (`error` is `None`) or failed.
    fn finished(&self, output: &Output, error: Option<&Error>);
}

/// State shared by the blocking tasks of one export.
#[derive(Debug)]
struct Run {
    images: Vec<PlatformImage>,
    assembler: Mutex<Assembler>,
}

impl Exporter {
    /// An exporter writing into `store` (where the layers already are).
    pub fn new(store: ContentStore) -> Self {
        Self {
            store,
            registry: None,
            progress: None,
            docker: None,
        }
    }

    /// Uses `client` for pushes.
    pub fn with_registry(mut self, client: RegistryClient) -> Self {
        self.registry = Some(client);
        self
    }

    /// Loads `type=docker` outputs without `dest` through this unix socket instead of the
    /// daemon the environment names.
    pub fn with_docker_socket(self, socket: impl Into<PathBuf>) -> Self {
        self.with_docker_endpoint(DockerEndpoint::Unix(socket.into()))
    }

    /// Loads `type=docker` outputs without `dest` into the daemon at `endpoint` instead of
    /// the one the environment names ([`DockerEndpoint::from_environment`]).
    pub fn with_docker_endpoint(mut self, endpoint: DockerEndpoint) -> Self {
        self.docker = Some(endpoint);
        self
    }

    /// Reports each output's start and end to `progress`.
    pub fn with_progress(mut self, progress: Arc<dyn ExportProgress>) -> Self {
        self.progress = Some(progress);
        self
    }

    /// The content store written to.
    pub fn store(&self) -> &ContentStore {
        &self.store
    }

    /// Writes every output of `request`, in order. Documents written to the store are held
    /// by a lease until the export ends (named images stay).
    pub async fn export(&self, request: &ExportRequest) -> Result<ExportResult> {
        if request.outputs.is_empty() {
            return Ok(ExportResult::default());
        }
        self.check(request)?;
        let lease = Arc::new(self.store.lease()?);
        let run = Arc::new(Run {
            images: request.images.clone(),
            assembler: Mutex::new(Assembler::new(self.store.clone(), Arc::clone(&lease))),
        });
        let mut result = ExportResult::default();
        for output in &request.outputs {
            if let Some(progress) = &self.progress {
                progress.started(output);
            }
            let image = match self.fetch_needed(&run, &lease, output).await {
                Ok(()) => self.export_one(&run, output).await,
                Err(e) => Err(e),
            };
            if let Some(progress) = &self.progress {
                progress.finished(output, image.as_ref().err());
            }
            result.outputs.push(OutputResult {
                output_type: output.type_name(),
                image: image?,
            });
        }
        drop(run);
        drop(lease);
        Ok(result)
    }

    /// Writes one output; the image it made, for outputs that make one.
    async fn export_one(&self, run: &Arc<Run>, output: &Output) -> Result<Option<ExportedImage>> {
        Ok(match output {
            Output::Image(o) => Some(self.export_image(run, o).await?),
            Output::Oci(o) => Some(self.export_oci(run, o).await?),
            Output::Docker(o) => Some(self.export_docker(run, o).await?),
            Output::Local(o) => {
                let o = o.clone();
                blocking(run, move |run| rootfs::write_local(&run.images, &o)).await?;
                None
            }
            Output::Tar(o) => {
                let o: TarOutput = o.clone();
                blocking(run, move |run| rootfs::write_tar(&run.images, &o)).await?;
                None
            }
            Output::CacheOnly => None,
        })
    }

    /// Fetches into the store the layers missing from it (a base image's, see
    /// [`PlatformImage::layer_sources`]) whose bytes `output` needs: all of them for
    /// archives and for an image stored under a name but not pushed (the name must be a
    /// whole image); for a push only those converted to another compression or rewritten
    /// (the rest are mounted or skipped by the push); none for `local` and `tar`, which
    /// read the filesystem the engine gave.
    async fn fetch_needed(
        &self,
        run: &Arc<Run>,
        lease: &hoist_content::Lease,
        output: &Output,
    ) -> Result<()> {
        let mut wanted: Vec<(hoist_oci::Descriptor, hoist_registry::Repository)> = Vec::new();
        for image in &run.images {
            let epochs = image.layer_epochs();
            for (layer, epoch) in image.layers.iter().zip(epochs) {
                let Some(from) = image.layer_sources.get(&layer.descriptor.digest) else {
                    continue;
                };
                if self.store.has(&layer.descriptor.digest)
                    || layer.descriptor.media_type.is_non_distributable()
                    || wanted
                        .iter()
                        .any(|(d, _)| d.digest == layer.descriptor.digest)
                {
                    continue;
                }
                let converted = |format: &ImageFormat| {
                    format.force_compression
                        || (format.rewrite_timestamp && epoch.is_some())
                        || layer.descriptor.media_type.layer_compression()
                            != Some(format.compression)
                };
                let needed = match output {
                    Output::Image(o) => (o.store && !o.push) || converted(&o.format),
                    Output::Oci(_) | Output::Docker(_) => true,
                    Output::Local(_) | Output::Tar(_) | Output::CacheOnly => false,
                };
                if needed {
                    wanted.push((layer.descriptor.clone(), from.clone()));
                }
            }
        }
        if wanted.is_empty() {
            return Ok(());
        }
        let Some(client) = &self.registry else {
            return Err(Error::Unsupported(format!(
                "layer {} is not in the content store and there is no registry client to fetch it",
                wanted[0].0.digest
            )));
        };
        for (descriptor, _) in &wanted {
            lease.add(&descriptor.digest)?;
        }
        let limit = client.config().max_concurrent_transfers.max(1);
        let store = &self.store;
        futures::stream::iter(wanted.iter().map(|(descriptor, from)| async move {
            client
                .fetch_blob(from, descriptor, store)
                .await
                .map(drop)
                .map_err(|source| Error::FetchLayer {
                    digest: descriptor.digest.to_string(),
                    repository: from.to_string(),
                    source: Box::new(source),
                })
        }))
        .buffer_unordered(limit)
        .try_collect::<Vec<()>>()
        .await?;
        Ok(())
    }

    /// Refuses, before anything is written, what cannot be exported.
    fn check(&self, request: &ExportRequest) -> Result<()> {
        if request.images.is_empty() {
            return Err(Error::Unsupported("no image to export".into()));
        }
        if request.outputs.iter().filter(|o| o.writes_stdout()).count() > 1 {
            return Err(Error::MultipleStdout);
        }
        for output in &request.outputs {
            if output.writes_stdout() && std::io::stdout().is_terminal() {
                return Err(Error::StdoutIsTerminal {
                    output: output.type_name().to_owned(),
                });
            }
            check_dest(output)?;
            output.check_platform_count(request.images.len())?;
            if let Some(annotations) = output.annotations() {
                let platforms: Vec<_> = request.images.iter().map(|i| i.platform.clone()).collect();
                annotations.check(&platforms)?;
            }
            match output {
                Output::Image(o) if o.push && self.registry.is_none() => {
                    return Err(Error::NoRegistryClient {
                        reference: o.names.first().map(ToString::to_string).unwrap_or_default(),
                    });
                }
                Output::Local(_) | Output::Tar(_) => {
                    if let Some(image) = request.images.iter().find(|i| i.rootfs.is_none()) {
                        return Err(Error::InvalidImage {
                            platform: image.platform.format(),
                            reason: format!(
                                "the {} output needs the final filesystem, and none was given",
                                output.type_name()
                            ),
                        });
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    async fn assemble(
        &self,
        run: &Arc<Run>,
        format: ImageFormat,
        annotations: crate::output::Annotations,
        streamer: Option<Arc<LayerStreamer>>,
    ) -> Result<Assembled> {
        blocking(run, move |run| {
            let mut assembler = run
                .assembler
                .lock()
                .map_err(|_| Error::Task("a previous export step panicked".into()))?;
            assembler.set_streamer(streamer);
            let assembled = assembler.assemble(&run.images, &format, &annotations);
            assembler.set_streamer(None);
            assembled
        })
        .await
    }

    async fn export_image(&self, run: &Arc<Run>, o: &ImageOutput) -> Result<ExportedImage> {
        // Layers converted for a push are uploaded to the first name's repository while
        // they are compressed; the push below then finds them there.
        let streamer = match (&self.registry, o.names.first()) {
            (Some(client), Some(name)) if o.push => Some(Arc::new(LayerStreamer::new(
                client.clone(),
                hoist_registry::Repository::from(&push_target(name, o.push_by_digest)),
            ))),
            _ => None,
        };
        let assembled = self
            .assemble(run, o.format, o.annotations.clone(), streamer.clone())
            .await;
        if let Some(streamer) = &streamer {
            // Even when assembling failed: no upload is left running behind the export.
            streamer.finish().await;
        }
        let assembled = assembled?;
        let root = strip_platform(&assembled);
        if o.store {
            let store = self.store.clone();
            let names: Vec<String> = o.names.iter().map(ToString::to_string).collect();
            let named = root.clone();
            blocking(run, move |_| {
                for name in &names {
                    store.set_name(name, &named)?;
                }
                Ok(())
            })
            .await?;
        }
        if o.push {
            let Some(client) = &self.registry else {
                return Err(Error::NoRegistryClient {
                    reference: o.names.first().map(ToString::to_string).unwrap_or_default(),
                });
            };
            // Base layers not in the store are mounted from (or, on another registry,
            // fetched from) the repositories they came from.
            let options = hoist_registry::PushOptions {
                blob_sources: run
                    .images
                    .iter()
                    .flat_map(|i| i.layer_sources.clone())
                    .collect(),
                ..Default::default()
            };
            for name in &o.names {
                let target = push_target(name, o.push_by_digest);
                client
                    .push_image_with(&self.store, &root, &target, &options)
                    .await
                    .map_err(|source| Error::Push {
                        reference: target.to_string(),
                        source,
                    })?;
            }
        }
        Ok(exported(&assembled, root, &o.names))
    }

    async fn export_oci(&self, run: &Arc<Run>, o: &OciOutput) -> Result<ExportedImage> {
        let assembled = self
            .assemble(run, o.format, o.annotations.clone(), None)
            .await?;
        let root = strip_platform(&assembled);
        let store = self.store.clone();
        let (written, out, layout_root) = (assembled.clone(), o.clone(), root.clone());
        blocking(run, move |_| {
            archive::write_oci(&store, &written, &layout_root, &out)
        })
        .await?;
        Ok(exported(&assembled, root, &o.names))
    }

    async fn export_docker(&self, run: &Arc<Run>, o: &DockerOutput) -> Result<ExportedImage> {
        let assembled = self
            .assemble(run, o.format, o.annotations.clone(), None)
            .await?;
        let root = strip_platform(&assembled);
        let store = self.store.clone();
        let (written, out) = (assembled.clone(), o.clone());
        match &o.dest {
            DockerDest::File(dest) => {
                let dest = dest.clone();
                blocking(run, move |_| {
                    archive::write_docker_to(&store, &written, &out.names, &dest)
                })
                .await?;
            }
            DockerDest::Load => {
                let archive = blocking(run, move |_| {
                    archive::write_docker_temp(&store, &written, &out.names)
                })
                .await?;
                let endpoint = match &self.docker {
                    Some(endpoint) => endpoint.clone(),
                    None => DockerEndpoint::from_environment()?,
                };
                docker::load(&endpoint, archive.path()).await?;
            }
        }
        Ok(exported(&assembled, root, &o.names))
    }
}

/// Where an image output pushes `name`: by digest alone for `push-by-digest`, else under
/// its tag (`latest` when it names none).
fn push_target(name: &hoist_oci::Reference, by_digest: bool) -> hoist_oci::Reference {
    if by_digest {
        name.without_tag()
    } else {
        name.tag_name_only()
    }
}

/// Destinations buildx refuses before building: a directory given as a file, a file given
/// as a directory.
fn check_dest(output: &Output) -> Result<()> {
    match output {
        Output::Oci(OciOutput {
            dest: LayoutDest::Tar(dest),
            ..
        })
        | Output::Docker(DockerOutput {
            dest: DockerDest::File(dest),
            ..
        })
        | Output::Tar(TarOutput { dest, .. }) => archive::check_file_dest(dest),
        Output::Oci(OciOutput {
            dest: LayoutDest::Dir(dir),
            ..
        })
        | Output::Local(LocalOutput { dest: dir, .. }) => {
            if dir.exists() && !dir.is_dir() {
                return Err(Error::OutputDest {
                    output: output.type_name().into(),
                    reason: format!("destination directory {} is a file", dir.display()),
                });
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// The root descriptor as reported and named: a single manifest without the platform its
/// index entry would carry (its `manifest-descriptor` annotations kept, as BuildKit keeps
/// them on the descriptor an OCI layout's `index.json` lists).
fn strip_platform(assembled: &Assembled) -> hoist_oci::Descriptor {
    let mut root = assembled.root.clone();
    if assembled.index.is_none() {
        root.platform = None;
    }
    root
}

fn exported(
    assembled: &Assembled,
    root: hoist_oci::Descriptor,
    names: &[hoist_oci::Reference],
) -> ExportedImage {
    ExportedImage {
        descriptor: root,
        config_digest: assembled.single_config(),
        names: names.iter().map(ToString::to_string).collect(),
    }
}

/// Runs `f` on a blocking thread with the export's shared state.
async fn blocking<T, F>(run: &Arc<Run>, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce(&Run) -> Result<T> + Send + 'static,
{
    let run = Arc::clone(run);
    tokio::task::spawn_blocking(move || f(&run))
        .await
        .map_err(|e| Error::Task(e.to_string()))?
}
