//! `hoist create`: a new builder, a node added (`--append`) or changed (`--node`), or one
//! removed (`--leave`); prints the builder's name as buildx does.

use std::process::ExitCode;

use anyhow::Context as _;
use hoist_builder::{AnyDriver, CreateRequest, Driver as _};

use super::{print, Context};
use crate::cli::CreateArgs;

pub fn run(ctx: &Context, args: &CreateArgs) -> anyhow::Result<ExitCode> {
    let store = ctx.builder_store()?;
    let (group, before) = {
        let txn = store.txn()?;
        if args.leave {
            hoist_builder::leave(&txn, args.name.as_deref(), args.node.as_deref())?;
            return Ok(ExitCode::SUCCESS);
        }
        let before = txn.snapshot(args.name.as_deref())?;
        let request = CreateRequest {
            name: args.name.clone(),
            driver: args.driver.clone(),
            node: args.node.clone(),
            platforms: args.platforms.clone(),
            driver_opts: args.driver_opts.clone(),
            buildkitd_flags: args.buildkitd_flags.clone(),
            buildkitd_config: args.buildkitd_config.clone(),
            endpoint: args.endpoint.clone(),
            append: args.append,
            use_builder: args.use_builder,
        };
        (hoist_builder::create(&txn, &request)?, before)
        // The lock is released here: bootstrapping may take a while.
    };
    if args.bootstrap {
        for node in &group.nodes {
            let booted = AnyDriver::new(&group, node)?
                .bootstrap()
                .with_context(|| format!("failed to bootstrap {} ({})", group.name, node.name));
            if let Err(err) = booted {
                // A node that cannot be reached (nothing was made for it): the store goes
                // back to what it was. A container that would not start stays for `rm`.
                if !hoist_builder::keeps_failed_bootstrap(&group.driver) {
                    store.txn()?.restore(&group.name, &before)?;
                }
                return Err(err);
            }
        }
    }
    print(format!("{}\n", group.name))?;
    Ok(ExitCode::SUCCESS)
}
