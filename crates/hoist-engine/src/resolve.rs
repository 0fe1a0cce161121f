//! Stage 2 of a build, [`resolve`]: the frontend session. The engine's [`MetaResolver`]
//! resolves each base image config-only (index → manifest → config, never a layer) into
//! the content store, all of a build's images at once, each reported as BuildKit's
//! `[internal] load metadata for …`; the image sources fetch layers later, when a step
//! needs them. `--pull` is the exception: it pulls and re-verifies whole images here.
//!
//! Images in hoist's own store come first: a reference whose name (normalised, as
//! `-o type=image,name=…` stores it: `docker.io/library/app:latest`) is in the content
//! store's `index.json` resolves to the image stored under it, pinned by digest, so no
//! registry is asked — a chain of builds works offline. This is what Docker's classic
//! builder and BuildKit with the Docker image store do; `--pull` always asks the registry.

use std::sync::Arc;

use hoist_frontend::{
    BuildOptions, Definition, ImageRequest, MetaResolver, NamedContext, ResolvedImage,
};
use hoist_oci::{Digest, Reference};

use crate::definition::Loaded;
use crate::error::{Error, Result};
use crate::oci_layout;
use crate::ops::{pull_verified, read_config};
use crate::steps::Progress;
use crate::worker::Worker;

/// Runs the frontend over `loaded`, resolving its base images through `worker`.
pub async fn resolve(
    worker: &Arc<Worker>,
    loaded: &Loaded,
    progress: &Progress,
) -> Result<Definition> {
    let options = import_layouts(worker, &loaded.options, progress).await?;
    let resolver = WorkerResolver {
        worker,
        pull: loaded.pull,
        multi_platform: loaded.platforms.len() > 1,
        progress,
    };
    let definition =
        hoist_frontend::solve(&loaded.dockerfile, &options, &loaded.platforms, &resolver).await?;
    if let Some(first) = definition.targets.first() {
        crate::definition::report_frontend_checks(loaded, &first.converted.lints, progress)?;
    }
    Ok(definition)
}

/// `options` with each `oci-layout://` named context imported into the store and given to
/// the frontend as an image pinned by digest (module `oci_layout`).
async fn import_layouts(
    worker: &Arc<Worker>,
    options: &BuildOptions,
    progress: &Progress,
) -> Result<BuildOptions> {
    let mut options = options.clone();
    for (name, context) in options.named_contexts.iter_mut() {
        let NamedContext::OciLayout(layout) = context else {
            continue;
        };
        let step = progress.step(format!("[context {name}] load {layout}"));
        let (worker, wanted) = (Arc::clone(worker), layout.clone());
        let imported = tokio::task::spawn_blocking(move || oci_layout::import(&worker, &wanted))
            .await
            .map_err(|e| Error::Task(e.to_string()))
            .and_then(|imported| imported);
        *context = NamedContext::Image(step.finish(imported)?.to_string());
    }
    Ok(options)
}

/// Resolves base images against the worker's registry client and content store.
struct WorkerResolver<'a> {
    worker: &'a Arc<Worker>,
    pull: bool,
    multi_platform: bool,
    progress: &'a Progress,
}

impl MetaResolver for WorkerResolver<'_> {
    type Error = Error;

    async fn resolve(&self, request: &ImageRequest) -> Result<ResolvedImage> {
        let prefix = if self.multi_platform {
            format!("[{} internal]", request.platform.format_all())
        } else {
            "[internal]".to_owned()
        };
        let step = self
            .progress
            .step(format!("{prefix} load metadata for {}", request.reference));
        step.finish(self.resolve_config(request).await)
    }
}

impl WorkerResolver<'_> {
    async fn resolve_config(&self, request: &ImageRequest) -> Result<ResolvedImage> {
        let worker = self.worker;
        let image = if self.pull {
            // `--pull` asks for the whole image now, re-hashing every blob the store has
            // and fetching the corrupt or missing ones again, so that a cached build (whose
            // image source does not run) exports sound base layers too.
            pull_verified(worker, &request.reference, &request.platform).await?
        } else {
            // A digest-pinned reference whose documents the store has makes no request:
            // the registry client reads them from the store, the layers too later.
            let reference = match local_image(worker, &request.reference)? {
                Some(digest) => request.reference.with_digest(digest),
                None => request.reference.clone(),
            };
            worker
                .registry()
                .resolve_image(&reference, &request.platform, worker.store())
                .await?
        };
        worker.lease_blobs(&documents(&image))?;
        let config = read_config(worker, &image.config.digest, &request.reference)?;
        Ok(ResolvedImage {
            digest: image.root.digest,
            config,
        })
    }
}

/// The digest of the image the store names `reference` (a tag; a digest reference is
/// found by digest anyway), when it has that name and the root document itself.
fn local_image(worker: &Worker, reference: &Reference) -> Result<Option<Digest>> {
    if reference.digest().is_some() {
        return Ok(None);
    }
    let found = worker.store().get_name(&reference.to_string())?;
    Ok(found
        .map(|descriptor| descriptor.digest)
        .filter(|digest| worker.store().has(digest)))
}

fn documents(image: &hoist_registry::PulledImage) -> Vec<Digest> {
    vec![
        image.root.digest.clone(),
        image.manifest.digest.clone(),
        image.config.digest.clone(),
    ]
}
