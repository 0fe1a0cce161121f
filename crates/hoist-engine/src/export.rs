//! Stage 4 of a build, [`export`]: each target's result and config become a finished
//! [`PlatformImage`] (diff IDs and history completed by [`PlatformImage::new`], in
//! hoist-export), and the exporter writes them to every output, each reported as BuildKit's
//! `exporting to …` step. Outputs that need the final filesystem (`local`, `tar`) get a
//! read-only view of it for as long as the export runs.

use std::sync::Arc;

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
    for (target, result) in definition.targets.into_iter().zip(solved.results) {
        let layers = result
            .as_ref()
            .map(|r| r.layers.clone())
            .unwrap_or_default();
        let rootfs = if needs_rootfs {
            let key = worker.unique_key("export");
            let parents: Vec<_> = result.iter().map(|r| r.snapshot.clone()).collect();
            let view = worker.snapshotter().view(&key, &parents)?;
            let path = view.path().to_path_buf();
            views.push(view);
            Some(path)
        } else {
            None
        };
        images.push(PlatformImage::new(
            target.platform,
            target.converted.config,
            layers.into_iter().map(Into::into).collect(),
            rootfs,
        ));
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
    })
}
