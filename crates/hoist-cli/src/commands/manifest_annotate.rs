//! `hoist manifest annotate LIST MANIFEST [--os] [--arch] [--variant] [--os-version]
//! [--os-features]`.

use std::process::ExitCode;

use super::Context;
use crate::cli::ManifestAnnotateArgs;
use hoist_images::manifest_lists::{self, Annotation};

pub fn run(ctx: &Context, args: ManifestAnnotateArgs) -> anyhow::Result<ExitCode> {
    let annotation = Annotation {
        os: args.os,
        arch: args.arch,
        variant: args.variant,
        os_version: args.os_version,
        os_features: args.os_features,
    };
    manifest_lists::annotate(
        &ctx.manifest_store()?,
        &args.list,
        &args.manifest,
        &annotation,
    )?;
    Ok(ExitCode::SUCCESS)
}
