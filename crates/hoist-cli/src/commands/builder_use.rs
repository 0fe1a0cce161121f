//! `hoist use NAME`: selects the builder later commands use.

use std::process::ExitCode;

use super::Context;
use crate::cli::UseArgs;

pub fn run(ctx: &Context, args: &UseArgs) -> anyhow::Result<ExitCode> {
    let name = match &args.name {
        Some(name) => name.clone(),
        None => ctx.builder_name()?,
    };
    ctx.builder_store()?.txn()?.set_current(&name)?;
    Ok(ExitCode::SUCCESS)
}
