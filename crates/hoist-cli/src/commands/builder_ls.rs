//! `hoist ls`: every builder and its nodes in buildx's table (NAME/NODE, DRIVER/ENDPOINT,
//! STATUS, BUILDKIT, PLATFORMS; `*` on the current builder), or one JSON object a line.
//! Nodes are asked all at once; one that cannot be reached is listed `inactive` and its
//! reason printed under the table, the others listed as usual.

use std::collections::BTreeMap;
use std::process::ExitCode;

use hoist_builder::{GroupReport, NodeReport};
use serde_json::{json, Value};

use super::{print, Context};
use crate::cli::LsArgs;

const INDENT: &str = " \\_ ";

pub fn run(ctx: &Context, args: &LsArgs) -> anyhow::Result<ExitCode> {
    let store = ctx.builder_store()?;
    let (groups, current) = {
        let txn = store.txn()?;
        (txn.list()?, txn.current()?.name)
    };
    let reports = GroupReport::gather_all(&groups);
    match args.format.as_str() {
        "json" => {
            let mut out = String::new();
            for report in &reports {
                out.push_str(&json_line(report, report.group.name == current).to_string());
                out.push('\n');
            }
            print(out)?;
        }
        "table" => {
            print(table(&reports, &current, !args.no_trunc))?;
            let problems: Vec<String> = reports
                .iter()
                .flat_map(|r| r.nodes.iter().map(move |n| (r, n)))
                .filter_map(|(r, n)| {
                    let why = n
                        .error
                        .clone()
                        .or_else(|| n.info.as_ref()?.unreachable.clone())?;
                    Some(format!(
                        "Failed to get status for {} ({}): {why}\n",
                        r.group.name, n.node.name
                    ))
                })
                .collect();
            if !problems.is_empty() {
                eprint!("\n{}", problems.concat());
            }
        }
        other => anyhow::bail!("unsupported format {other:?} (table or json)"),
    }
    Ok(ExitCode::SUCCESS)
}

fn status(node: &NodeReport) -> String {
    match (&node.error, &node.info) {
        (Some(_), _) => "error".to_owned(),
        (None, Some(info)) => info.status.to_string(),
        (None, None) => String::new(),
    }
}

fn table(reports: &[GroupReport], current: &str, trunc: bool) -> String {
    let mut text = String::from("NAME/NODE\tDRIVER/ENDPOINT\tSTATUS\tBUILDKIT\tPLATFORMS\n");
    for report in reports {
        let star = if report.group.name == current {
            "*"
        } else {
            ""
        };
        text.push_str(&format!(
            "{}{star}\t{}\t\t\t\n",
            report.group.name, report.group.driver
        ));
        for node in &report.nodes {
            let platforms = node.platforms();
            let platforms = if trunc && platforms.len() > 4 {
                format!(
                    "{}, ({} more)",
                    platforms[..4].join(", "),
                    platforms.len() - 4
                )
            } else {
                platforms.join(", ")
            };
            text.push_str(&format!(
                "{INDENT}{}\t{INDENT}{}\t{}\t{}\t{platforms}\n",
                node.node.name,
                node.node.endpoint,
                status(node),
                node.version
            ));
        }
    }
    go_tabwriter(&text, 10, 3)
}

/// buildx's JSON for one builder: its keys sorted as Go sorts a re-marshalled map.
fn json_line(report: &GroupReport, current: bool) -> Value {
    let nodes: Vec<Value> = report
        .nodes
        .iter()
        .map(|n| {
            let mut node = BTreeMap::from([
                ("Name", json!(n.node.name)),
                ("Endpoint", json!(n.node.endpoint)),
            ]);
            if !n.node.buildkitd_flags.is_empty() {
                node.insert("Flags", json!(n.node.buildkitd_flags));
            }
            if !n.node.driver_opts.is_empty() {
                node.insert("DriverOpts", json!(n.node.driver_opts));
            }
            let status = status(n);
            if !status.is_empty() {
                node.insert("Status", json!(status));
            }
            if !n.version.is_empty() {
                node.insert("Version", json!(n.version));
            }
            let err = n
                .error
                .clone()
                .or_else(|| n.info.as_ref()?.unreachable.clone());
            if let Some(err) = err {
                node.insert("Err", json!(err));
            }
            let platforms = n.platforms();
            if !platforms.is_empty() {
                let plain: Vec<&str> = platforms.iter().map(|p| p.trim_end_matches('*')).collect();
                node.insert("Platforms", json!(plain));
            }
            json!(node)
        })
        .collect();
    json!(BTreeMap::from([
        ("Current", json!(current)),
        ("Driver", json!(report.group.driver)),
        ("Dynamic", json!(report.group.dynamic)),
        ("Name", json!(report.group.name)),
        ("Nodes", json!(nodes)),
    ]))
}

/// Go's `text/tabwriter` with spaces (`NewWriter(w, minwidth, 0, padding, ' ', 0)`): cells
/// end at a tab; a column is aligned over each run of consecutive lines that have a cell in
/// it, as wide as its widest cell plus `padding` (at least `minwidth`); a line's last cell
/// is not padded.
pub fn go_tabwriter(text: &str, minwidth: usize, padding: usize) -> String {
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
    let mut widths = Vec::new();
    let mut out = String::new();
    format_block(
        &lines,
        0,
        lines.len(),
        &mut widths,
        minwidth,
        padding,
        &mut out,
    );
    out
}

fn format_block(
    lines: &[Vec<&str>],
    mut start: usize,
    end: usize,
    widths: &mut Vec<usize>,
    minwidth: usize,
    padding: usize,
    out: &mut String,
) {
    let column = widths.len();
    let mut this = start;
    while this < end {
        if column + 1 >= lines[this].len() {
            this += 1;
            continue;
        }
        write_lines(&lines[start..this], widths, out);
        start = this;
        let mut width = minwidth;
        while this < end && column + 1 < lines[this].len() {
            width = width.max(lines[this][column].chars().count() + padding);
            this += 1;
        }
        widths.push(width);
        format_block(lines, start, this, widths, minwidth, padding, out);
        widths.pop();
        start = this;
    }
    write_lines(&lines[start..end], widths, out);
}

fn write_lines(lines: &[Vec<&str>], widths: &[usize], out: &mut String) {
    for cells in lines {
        for (j, cell) in cells.iter().enumerate() {
            match widths.get(j) {
                Some(&width) if j + 1 < cells.len() => out.push_str(&format!("{cell:<width$}")),
                _ => out.push_str(cell),
            }
        }
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::go_tabwriter;

    #[test]
    fn aligns_as_go_tabwriter() {
        let text = "Name:\tb\nLast Activity:\tnow\n\nNodes:\nName:\tb0\n\t> x = 1\n";
        assert_eq!(
            go_tabwriter(text, 0, 1),
            "Name:          b\nLast Activity: now\n\nNodes:\nName: b0\n      > x = 1\n"
        );
        assert_eq!(
            go_tabwriter("a\tbb\tc\nddd\te\tf\n", 2, 1),
            "a   bb c\nddd e  f\n"
        );
    }
}
