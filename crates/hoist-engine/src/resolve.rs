//! Stage 2 of a build, [`resolve`]: the frontend session. The engine's [`MetaResolver`]
//! resolves each base image config-only (index → manifest → config, never a layer) into
//! the content store, all of a build's images at once, each reported as BuildKit's
//! `[internal] load metadata for …`; the image sources fetch layers later, when a step
//! needs them.

use std::sync::Arc;

use hoist_frontend::{Definition, ImageRequest, MetaResolver, ResolvedImage};
use hoist_oci::Digest;

use crate::definition::Loaded;
use crate::error::{Error, Result};
use crate::ops::{read_config, remove_corrupt_blobs};
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
        pull: loaded.inputs.pull,
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
        let mut image = self.resolve_documents(request).await?;
        if self.pull {
            // `--pull`: documents already in the store are re-hashed; a corrupt one is
            // removed and fetched again.
            let documents = documents(&image);
            let w = Arc::clone(worker);
            let removed = tokio::task::spawn_blocking(move || remove_corrupt_blobs(&w, &documents))
                .await
                .map_err(|e| Error::Task(e.to_string()))??;
            if removed > 0 {
                image = self.resolve_documents(request).await?;
            }
        }
        let config = read_config(worker, &image.config.digest, &request.reference)?;
        Ok(ResolvedImage {
            digest: image.root.digest,
            config,
        })
    }

    /// The image's index, manifest and config in the store, leased for this build.
    async fn resolve_documents(
        &self,
        request: &ImageRequest,
    ) -> Result<hoist_registry::PulledImage> {
        let worker = self.worker;
        let image = worker
            .registry()
            .resolve_image(&request.reference, &request.platform, worker.store())
            .await?;
        worker.lease_blobs(&documents(&image))?;
        Ok(image)
    }
}

fn documents(image: &hoist_registry::PulledImage) -> Vec<Digest> {
    vec![
        image.root.digest.clone(),
        image.manifest.digest.clone(),
        image.config.digest.clone(),
    ]
}
