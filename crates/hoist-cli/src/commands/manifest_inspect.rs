//! `hoist manifest inspect [LIST] MANIFEST [--verbose] [--insecure]`.

use std::process::ExitCode;

use super::{block_on, host_of, print, Context};
use crate::cli::ManifestInspectArgs;
use hoist_images::manifest_lists;

pub fn run(ctx: &Context, args: ManifestInspectArgs) -> anyhow::Result<ExitCode> {
    let (list, manifest) = match args.refs.as_slice() {
        [manifest] => (None, manifest),
        [list, manifest] => (Some(list.as_str()), manifest),
        _ => anyhow::bail!("\"manifest inspect\" requires at least 1 and at most 2 arguments"),
    };
    let hosts: Vec<String> = if args.insecure {
        host_of(manifest).into_iter().collect()
    } else {
        Vec::new()
    };
    let hosts: Vec<&str> = hosts.iter().map(String::as_str).collect();
    let remote = ctx.remote(&hosts)?;
    let store = ctx.manifest_store()?;
    let text = block_on(manifest_lists::inspect(
        &store,
        &remote,
        list,
        manifest,
        args.verbose,
    ))??;
    print(text)?;
    Ok(ExitCode::SUCCESS)
}
