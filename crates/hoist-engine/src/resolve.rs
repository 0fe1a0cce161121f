//! Stage 2 of a build, [`resolve`]: the frontend session. The engine's [`MetaResolver`]
//! resolves each base image config-only (index → manifest → config, never a layer) into
//! the content store, all of a build's images at once, each reported as BuildKit's
//! `[internal] load metadata for …`; the image sources fetch layers later, when a step
//! needs them. `--pull` is the exception: it pulls and re-verifies whole images here.

use std::sync::Arc;

use hoist_frontend::{Definition, ImageRequest, MetaResolver, ResolvedImage};
use hoist_oci::Digest;

use crate::definition::Loaded;
use crate::error::{Error, Result};
use crate::ops::{pull_verified, read_config};
use crate::steps::Progress;
use crate::worker::Worker;

/// Runs the frontend over `loaded`, resolving its base images through `worker`.
pub async fn resolve(
    worker: &Arc<Worker>,
    loaded: &Loaded,
    progress: &Progress,
) -> Result<Definition> {
    let resolver = WorkerResolver {
        worker,
        pull: loaded.pull,
        multi_platform: loaded.platforms.len() > 1,
        progress,
    };
    Ok(hoist_frontend::solve(
        &loaded.dockerfile,
        &loaded.options,
        &loaded.platforms,
        &resolver,
    )
    .await?)
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
            worker
                .registry()
                .resolve_image(&request.reference, &request.platform, worker.store())
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

fn documents(image: &hoist_registry::PulledImage) -> Vec<Digest> {
    vec![
        image.root.digest.clone(),
        image.manifest.digest.clone(),
        image.config.digest.clone(),
    ]
}
