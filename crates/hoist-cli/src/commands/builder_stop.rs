//! `hoist stop [NAME]`: stops what the builder's driver started (nothing, for the embedded
//! engine and remote daemons, as buildx's remote driver).

use std::process::ExitCode;

use hoist_builder::{AnyDriver, Driver as _};

use super::Context;
use crate::cli::StopArgs;

pub fn run(ctx: &Context, args: &StopArgs) -> anyhow::Result<ExitCode> {
    let name = match &args.name {
        Some(name) => name.clone(),
        None => ctx.builder_name()?,
    };
    let group = ctx.builder_store()?.txn()?.find(&name)?;
    for node in &group.nodes {
        AnyDriver::new(&group, node)?.stop()?;
    }
    Ok(ExitCode::SUCCESS)
}
