//! `hoist manifest rm LIST...`.

use std::process::ExitCode;

use super::Context;
use crate::cli::ManifestRmArgs;
use hoist_images::manifest_lists;

pub fn run(ctx: &Context, args: ManifestRmArgs) -> anyhow::Result<ExitCode> {
    manifest_lists::remove(&ctx.manifest_store()?, &args.lists)?;
    Ok(ExitCode::SUCCESS)
}
