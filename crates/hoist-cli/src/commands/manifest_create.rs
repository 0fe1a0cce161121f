//! `hoist manifest create LIST MANIFEST... [--amend] [--insecure]`.

use std::process::ExitCode;

use super::{block_on, host_of, print, Context};
use crate::cli::ManifestCreateArgs;
use hoist_images::manifest_lists;

pub fn run(ctx: &Context, args: ManifestCreateArgs) -> anyhow::Result<ExitCode> {
    let hosts: Vec<String> = if args.insecure {
        args.manifests.iter().filter_map(|m| host_of(m)).collect()
    } else {
        Vec::new()
    };
    let hosts: Vec<&str> = hosts.iter().map(String::as_str).collect();
    let remote = ctx.remote(&hosts)?;
    let store = ctx.manifest_store()?;
    let message = block_on(manifest_lists::create(
        &store,
        &remote,
        &args.list,
        &args.manifests,
        args.amend,
    ))??;
    print(format!("{message}\n"))?;
    Ok(ExitCode::SUCCESS)
}
