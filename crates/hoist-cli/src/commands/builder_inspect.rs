//! `hoist inspect [NAME]`: a builder and each node in buildx's text (`Name:`, `Driver:`,
//! `Nodes:`, each node's endpoint, driver options, status, version, platforms and files).

use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;
use hoist_builder::{AnyDriver, Driver as _, GroupReport};

use super::builder_ls::go_tabwriter;
use super::{print, Context};
use crate::cli::InspectArgs;

pub fn run(ctx: &Context, args: &InspectArgs) -> anyhow::Result<ExitCode> {
    let name = match &args.name {
        Some(name) => name.clone(),
        None => ctx.builder_name()?,
    };
    let group = ctx.builder_store()?.txn()?.find(&name)?;
    if args.bootstrap {
        for node in &group.nodes {
            AnyDriver::new(&group, node)?
                .bootstrap()
                .with_context(|| format!("failed to bootstrap {} ({})", group.name, node.name))?;
        }
    }
    let report = GroupReport::gather(&group);
    print(go_tabwriter(&text(&report), 0, 1))?;
    Ok(ExitCode::SUCCESS)
}

fn text(report: &GroupReport) -> String {
    let mut w = String::new();
    let _ = writeln!(w, "Name:\t{}", report.group.name);
    let _ = writeln!(w, "Driver:\t{}", report.group.driver);
    let _ = writeln!(w, "\nNodes:");
    for (i, node) in report.nodes.iter().enumerate() {
        if i > 0 {
            w.push('\n');
        }
        let _ = writeln!(w, "Name:\t{}", node.node.name);
        let _ = writeln!(w, "Endpoint:\t{}", node.node.endpoint);
        let opts: Vec<String> = node
            .node
            .driver_opts
            .iter()
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect();
        if !opts.is_empty() {
            let _ = writeln!(w, "Driver Options:\t{}", opts.join(" "));
        }
        let (Some(info), None) = (&node.info, &node.error) else {
            let _ = writeln!(w, "Error:\t{}", node.error.as_deref().unwrap_or_default());
            continue;
        };
        let _ = writeln!(w, "Status:\t{}", info.status);
        if let Some(why) = &info.unreachable {
            let _ = writeln!(w, "Error:\t{why}");
        }
        if !node.node.buildkitd_flags.is_empty() {
            let _ = writeln!(
                w,
                "BuildKit daemon flags:\t{}",
                node.node.buildkitd_flags.join(" ")
            );
        }
        if !node.version.is_empty() {
            let _ = writeln!(w, "BuildKit version:\t{}", node.version);
        }
        let platforms = node.platforms();
        if !platforms.is_empty() {
            let _ = writeln!(w, "Platforms:\t{}", platforms.join(", "));
        }
        for (file, bytes) in &node.node.files {
            let _ = writeln!(w, "File#{file}:");
            for line in String::from_utf8_lossy(bytes).split('\n') {
                let _ = writeln!(w, "\t> {line}");
            }
        }
    }
    w
}
