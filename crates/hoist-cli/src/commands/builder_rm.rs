//! `hoist rm [NAME…]`: removes builders, saying `NAME removed` (or why not) on stderr for
//! each, as buildx; `--all-inactive` removes every builder none of whose nodes is running.

use std::process::ExitCode;

use hoist_builder::{GroupReport, Status, DEFAULT_BUILDER};

use super::Context;
use crate::cli::RmArgs;

pub fn run(ctx: &Context, args: &RmArgs) -> anyhow::Result<ExitCode> {
    if args.all_inactive && !args.names.is_empty() {
        anyhow::bail!("cannot specify builder name when --all-inactive is set");
    }
    let store = ctx.builder_store()?;
    let txn = store.txn()?;
    if args.all_inactive {
        // No prompt in hoist (buildx asks unless -f): the command is its own confirmation.
        let groups: Vec<_> = txn
            .list()?
            .into_iter()
            .filter(|g| g.name != DEFAULT_BUILDER)
            .collect();
        for report in GroupReport::gather_all(&groups) {
            let inactive = report
                .nodes
                .iter()
                .all(|n| n.info.as_ref().is_none_or(|i| i.status != Status::Running));
            if inactive {
                hoist_builder::remove(&txn, &report.group.name, args.keep_state)?;
                eprintln!("{} removed", report.group.name);
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let names = if args.names.is_empty() {
        vec![ctx.builder_name()?]
    } else {
        args.names.clone()
    };
    let mut failed = false;
    for name in &names {
        match hoist_builder::remove(&txn, name, args.keep_state) {
            Ok(()) => eprintln!("{name} removed"),
            Err(err) => {
                eprintln!("failed to remove {name}: {err}");
                failed = true;
            }
        }
    }
    if failed {
        anyhow::bail!("failed to remove one or more builders");
    }
    Ok(ExitCode::SUCCESS)
}
