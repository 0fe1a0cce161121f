//! The frontend as one call: [`solve`] takes a parsed Dockerfile, the build's options and
//! target platforms (given once) and a [`MetaResolver`], and returns every platform's graph
//! and image config ([`Definition`]). It is BuildKit's `dockerfile2llb` with its
//! `MetaResolver`: the caller supplies I/O (resolving base images against registries or a
//! local store) behind the trait, the frontend decides what to ask for and when.
//!
//! Base images are resolved once per (reference, platform) for the whole build, all of
//! them at the same time: every platform's plan is made first, their images are asked for
//! together, and only the images the ONBUILD triggers of those bases name (known once the
//! bases' configs are in) make a second round.

use std::collections::BTreeMap;
use std::future::Future;

use hoist_dockerfile::ast::Dockerfile;
use hoist_dockerfile::instructions;
use hoist_oci::Platform;

use crate::plan::{plan_stages, Base, ImageRequest, Plan, ResolvedImage};
use crate::{convert, BuildOptions, Converted, Error, Result};

/// Resolves base images for [`solve`]: a reference and platform to the manifest digest it
/// names and the image's config (never its layers). Called concurrently, once per request.
pub trait MetaResolver: Sync {
    /// Why a resolution failed; kept as the source of [`Error::Resolve`].
    type Error: std::error::Error + Send + Sync + 'static;

    fn resolve(
        &self,
        request: &ImageRequest,
    ) -> impl Future<Output = std::result::Result<ResolvedImage, Self::Error>> + Send;
}

/// What the frontend made of a build: one [`Target`] per target platform, in the order the
/// platforms were given (one for the build platform when none were).
#[derive(Debug, Clone)]
pub struct Definition {
    pub targets: Vec<Target>,
    /// Every base image resolved, by request.
    pub images: BTreeMap<ImageRequest, ResolvedImage>,
}

/// One target platform's graph, target output and image config.
#[derive(Debug, Clone)]
pub struct Target {
    pub platform: Platform,
    pub converted: Converted,
}

/// Plans `dockerfile` for each of `platforms` (the build platform when empty) with
/// `options`, resolves every base image through `resolver` concurrently, and converts.
/// `options.target_platform` and `options.multi_platform` are set here from `platforms`.
pub async fn solve<R: MetaResolver>(
    dockerfile: &Dockerfile,
    options: &BuildOptions,
    platforms: &[Platform],
    resolver: &R,
) -> Result<Definition> {
    let (meta, stages) = instructions::parse_stages(dockerfile)?;
    let per_platform: Vec<BuildOptions> = if platforms.is_empty() {
        vec![BuildOptions {
            target_platform: None,
            multi_platform: false,
            ..options.clone()
        }]
    } else {
        platforms
            .iter()
            .map(|p| BuildOptions {
                multi_platform: platforms.len() > 1,
                ..options.for_platform(p.clone())
            })
            .collect()
    };
    let plans = per_platform
        .iter()
        .map(|opts| plan_stages(&meta, &stages, dockerfile.escape, opts))
        .collect::<Result<Vec<Plan>>>()?;

    let mut images: BTreeMap<ImageRequest, ResolvedImage> = BTreeMap::new();
    let mut wanted: Vec<(ImageRequest, &Plan)> = Vec::new();
    for plan in &plans {
        for request in &plan.images {
            if !wanted.iter().any(|(r, _)| r == request) {
                wanted.push((request.clone(), plan));
            }
        }
    }
    // A second round only for images that the bases' ONBUILD triggers name.
    while !wanted.is_empty() {
        let results =
            futures::future::join_all(wanted.iter().map(|(request, _)| resolver.resolve(request)))
                .await;
        for ((request, plan), result) in wanted.drain(..).zip(results) {
            let resolved = result.map_err(|source| Error::Resolve {
                reference: request.reference.to_string(),
                span: first_use(plan, &request),
                source: Box::new(source),
            })?;
            images.insert(request, resolved);
        }
        for (plan, opts) in plans.iter().zip(&per_platform) {
            for request in plan.pending_images(&images, opts)? {
                if !wanted.iter().any(|(r, _)| *r == request) {
                    wanted.push((request, plan));
                }
            }
        }
    }

    let targets = plans
        .iter()
        .zip(&per_platform)
        .map(|(plan, opts)| {
            Ok(Target {
                platform: plan.target_platform().clone(),
                converted: convert(plan, &images, opts)?,
            })
        })
        .collect::<Result<Vec<Target>>>()?;
    Ok(Definition { targets, images })
}

/// The lines of the first stage based on `request` (the `FROM`, or the instruction that
/// names the image); ONBUILD-named images have none.
fn first_use(plan: &Plan, request: &ImageRequest) -> Option<hoist_dockerfile::ast::LineSpan> {
    plan.stages
        .iter()
        .find(|s| matches!(&s.base, Base::Image(r) if r == request))
        .map(|s| s.span)
}
