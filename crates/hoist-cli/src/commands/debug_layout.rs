//! `hoist debug push-layout ROOT NAME TARGET` and `hoist debug pull-layout SOURCE ROOT NAME`
//! (hidden): move an image between an OCI layout (a state dir's `content/`, as skopeo's
//! `oci:ROOT/content:NAME` sees it) and a registry. Used by `scripts/bench/registry.sh`.

use std::process::ExitCode;

use anyhow::Context as _;
use hoist_engine::ContentStore;
use hoist_oci::Reference;
use hoist_registry::{Credentials, RegistryClient};

use super::{block_on, print, Context};
use crate::cli::{PullLayoutArgs, PushLayoutArgs};

fn client(ctx: &Context) -> anyhow::Result<RegistryClient> {
    Ok(RegistryClient::new(
        ctx.registry_config(&[])?,
        Credentials::from_docker_config(),
    ))
}

pub fn push(ctx: &Context, args: PushLayoutArgs) -> anyhow::Result<ExitCode> {
    let store = ContentStore::open(&args.layout_root)?;
    let root = store.get_name(&args.name)?.with_context(|| {
        format!(
            "no image named {} in {}",
            args.name,
            store.layout_dir().display()
        )
    })?;
    let target = Reference::parse_normalized(&args.target)?.tag_name_only();
    let client = client(ctx)?;
    let pushed = block_on(client.push_image(&store, &root, &target))??;
    print(format!("{}\n", pushed.digest))?;
    Ok(ExitCode::SUCCESS)
}

pub fn pull(ctx: &Context, args: PullLayoutArgs) -> anyhow::Result<ExitCode> {
    let store = ContentStore::open(&args.layout_root)?;
    let source = Reference::parse_normalized(&args.source)?.tag_name_only();
    let client = client(ctx)?;
    let root = block_on(client.pull_all(&source, &store))??;
    store.set_name(&args.name, &root)?;
    print(format!("{}\n", root.digest))?;
    Ok(ExitCode::SUCCESS)
}
