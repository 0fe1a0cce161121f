//! Stage 4 of a build, [`export`]: each target's result and config become a finished
//! [`PlatformImage`] (diff IDs and history completed by [`PlatformImage::new`], in
//! hoist-export), and the exporter writes them to every output, each reported as BuildKit's
//! `exporting to …` step. Outputs that need the final filesystem (`local`, `tar`) get a
//! read-only view of it for as long as the export runs.
//!
//! Every image is dated, as BuildKit's exporter dates it: `created` is `SOURCE_DATE_EPOCH`
//! when the build has one, else the time the export started (one time for all platforms).
//! The epoch and the base image's diff IDs go with each image, for outputs with
//! `rewrite-timestamp=true` (hoist-export clamps the file times of the layers after the
//! base's).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use hoist_export::{ExportRequest, Exporter, Output, PlatformImage};
use hoist_frontend::Definition;
use hoist_snapshot::Snapshotter as _;

use crate::build::BuildResult;
use crate::error::Result;
use crate::solve::Solved;
use crate::steps::Progress;
use crate::worker::Worker;

/// Writes the images of `definition`, with the results in `solved`, to `outputs`.
pub async fn export(
    worker: &Arc<Worker>,
    definition: Definition,
    solved: Solved,
    outputs: &[Output],
    progress: &Progress,
) -> Result<BuildResult> {
    let needs_rootfs = outputs
        .iter()
        .any(|o| matches!(o, Output::Local(_) | Output::Tar(_)));
    // Each view is removed when its guard drops, once the export has ended however it ends.
    let mut views = Vec::new();
    let mut images = Vec::new();
    let now = build_time();
    let mut inline_cache = solved.inline_cache.into_iter();
    for (target, result) in definition.targets.into_iter().zip(solved.results) {
        let inline_cache = inline_cache.next().flatten();
        let mut config = target.converted.config;
        let epoch = target.converted.source_date_epoch;
        // The frontend leaves the base image's diff IDs in the config; the new layers'
        // follow in `PlatformImage::new`.
        let base_diff_ids = config.rootfs.diff_ids.clone();
        if config.created.is_none() {
            config.created = Some(match epoch {
                Some(epoch) => hoist_oci::format_rfc3339(epoch, 0),
                None => now.clone(),
            });
        }
        let layers = result
            .as_ref()
            .map(|r| r.layers.clone())
            .unwrap_or_default();
        // Base layers not fetched yet: the exporter fetches them for the outputs that need
        // their bytes, and a push mounts or skips them where the registry has them.
        let layer_sources: BTreeMap<_, _> = layers
            .iter()
            .filter_map(|l| {
                let source = l.source.as_ref()?;
                Some((l.descriptor.digest.clone(), source.repository()))
            })
            .collect();
        let rootfs = if needs_rootfs {
            let key = worker.unique_key("export");
            let mut parents = Vec::new();
            if let Some(result) = &result {
                // The final filesystem: a lazy result is fetched and unpacked now.
                let result = crate::ops::materialize(worker, result).await?;
                parents.push(result.snapshot()?.clone());
            }
            let view = worker.snapshotter().view(&key, &parents)?;
            let path = view.path().to_path_buf();
            views.push(view);
            Some(path)
        } else {
            None
        };
        images.push(
            PlatformImage::new(
                target.platform,
                config,
                layers.into_iter().map(Into::into).collect(),
                rootfs,
            )
            .with_source_date_epoch(epoch, base_diff_ids)
            .with_inline_cache(inline_cache)
            .with_layer_sources(layer_sources),
        );
    }
    let mut exporter =
        Exporter::new(worker.store().clone()).with_registry(worker.registry().clone());
    if let Some(steps) = progress.export_steps() {
        exporter = exporter.with_progress(steps);
    }
    let export = exporter
        .export(&ExportRequest {
            images: images.clone(),
            outputs: outputs.to_vec(),
        })
        .await;
    drop(views);
    Ok(BuildResult {
        images,
        export: export?,
        cache_manifest: None,
    })
}

/// Now, as an image config's `created` (RFC 3339, nanoseconds).
fn build_time() -> String {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX);
    hoist_oci::format_rfc3339(secs, since_epoch.subsec_nanos())
}
