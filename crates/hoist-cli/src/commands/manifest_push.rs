//! `hoist manifest push [--purge] [--insecure] LIST`.

use std::process::ExitCode;

use super::{block_on, host_of, print, Context};
use crate::cli::ManifestPushArgs;
use hoist_images::manifest_lists;

pub fn run(ctx: &Context, args: ManifestPushArgs) -> anyhow::Result<ExitCode> {
    let hosts: Vec<String> = if args.insecure {
        host_of(&args.list).into_iter().collect()
    } else {
        Vec::new()
    };
    let hosts: Vec<&str> = hosts.iter().map(String::as_str).collect();
    let remote = ctx.remote(&hosts)?;
    let store = ctx.manifest_store()?;
    let text = block_on(manifest_lists::push(
        &store, &remote, &args.list, args.purge,
    ))??;
    print(text)?;
    Ok(ExitCode::SUCCESS)
}
