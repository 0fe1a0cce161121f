//! `hoist prune [-a] [--filter until=24h|id=PREFIX] [--keep-storage 1gb]
//! [--max-used-space S] [--reserved-space S] [--min-free-space S] [-f] [--verbose]`: removes build cache as
//! buildx's `prune` does, printing the records removed and `Total:` reclaimed.
//!
//! Without `-f` it asks `[y/N]` on a terminal and refuses when standard input is not one.
//! `--keep-storage` means what docker and older buildx meant: remove least recently used
//! cache until at most that much is left (it is `--max-used-space`).

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context as _};
use hoist_engine::PruneOptions;

use super::du::{human_size, table_row, verbose_block, Table, HEADER};
use super::{print, Context};
use crate::cli::PruneArgs;

const DANGLING_WARNING: &str =
    "WARNING! This will remove all dangling build cache. Are you sure you want to continue?";
const ALL_WARNING: &str =
    "WARNING! This will remove all build cache. Are you sure you want to continue?";

pub fn run(ctx: &Context, args: PruneArgs) -> anyhow::Result<ExitCode> {
    let options = options(&args)?;
    if !args.force
        && !confirm(if args.all {
            ALL_WARNING
        } else {
            DANGLING_WARNING
        })?
    {
        return Ok(ExitCode::SUCCESS);
    }
    let report = hoist_engine::prune(&ctx.state_dir()?, &options)?;
    let now = SystemTime::now();
    let mut out = String::new();
    if args.verbose {
        for row in &report.removed {
            out.push_str(&verbose_block(row, now));
        }
    } else if !report.removed.is_empty() {
        let mut table = Table::default();
        table.line(HEADER);
        for row in &report.removed {
            table.line(&table_row(row, now));
        }
        out.push_str(&table.render());
    }
    let mut total = Table::default();
    total.line(&format!("Total:\t{}", human_size(report.reclaimed)));
    out.push_str(&total.render());
    print(out)?;
    if args.verbose {
        if report.build_running {
            eprintln!("a build is running: snapshots no record uses were left for a later prune");
        }
        if report.removed_active > 0 {
            eprintln!(
                "removed {} snapshots left prepared by killed builds",
                report.removed_active
            );
        }
        for (id, why) in &report.failed {
            eprintln!("WARNING: snapshot {id} was not removed: {why}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The typed request of the flags.
fn options(args: &PruneArgs) -> anyhow::Result<PruneOptions> {
    let mut options = PruneOptions {
        all: args.all,
        ..PruneOptions::default()
    };
    for filter in &args.filters {
        let (key, value) = filter
            .split_once('=')
            .with_context(|| format!("invalid filter {filter:?}: want KEY=VALUE"))?;
        match key {
            "until" | "unused-for" => {
                if options.keep_duration.is_some() {
                    bail!("\"until\" filter expects only one value");
                }
                let duration = parse_go_duration(value).with_context(|| {
                    format!("{key:?} filter expects a duration (e.g., '24h'), got {value:?}")
                })?;
                options.keep_duration = Some(duration);
            }
            "id" => options.ids.push(value.to_owned()),
            _ => bail!("invalid filter {filter:?}: supported are until=DURATION and id=PREFIX"),
        }
    }
    let bytes = |flag: &str, value: &Option<String>| -> anyhow::Result<u64> {
        match value {
            None => Ok(0),
            Some(text) => hoist_engine::parse_size(text)
                .with_context(|| format!("invalid {flag} {text:?}: want a size such as 1gb")),
        }
    };
    let keep = bytes("--keep-storage", &args.keep_storage)?;
    let max = bytes("--max-used-space", &args.max_used_space)?;
    options.max_used_space = match (keep, max) {
        (0, max) => max,
        (keep, 0) => keep,
        (keep, max) => keep.min(max),
    };
    options.reserved_space = bytes("--reserved-space", &args.reserved_space)?;
    options.min_free_space = bytes("--min-free-space", &args.min_free_space)?;
    Ok(options)
}

/// Asks `warning [y/N]` on the terminal; refuses when standard input is not a terminal.
fn confirm(warning: &str) -> anyhow::Result<bool> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        bail!("refusing to prune without confirmation: standard input is not a terminal (use -f to skip the prompt)");
    }
    let mut stdout = std::io::stdout().lock();
    write!(stdout, "{warning} [y/N] ")
        .and_then(|()| stdout.flush())
        .context("cannot write to stdout")?;
    let mut answer = String::new();
    stdin
        .lock()
        .read_line(&mut answer)
        .context("cannot read the answer from standard input")?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "Yes" | "YES"))
}

/// A duration as Go's `time.ParseDuration` reads it (`24h`, `2h30m`, `1.5h`, `90s`); a
/// negative one is no age.
fn parse_go_duration(text: &str) -> Option<Duration> {
    let nanos = hoist_dockerfile::go_duration::parse(text).ok()?;
    u64::try_from(nanos).ok().map(Duration::from_nanos)
}
