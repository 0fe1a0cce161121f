//! `hoist history ls|inspect|logs|rm`: the build records hoist-engine keeps
//! ([`HistoryStore`]), printed as `buildx history` prints BuildKit's — `ls` as a
//! `BUILD ID NAME STATUS CREATED AT DURATION` table or JSON lines, `inspect` as
//! tab-aligned `Key: value` blocks, `logs` as the build's plain progress on stderr.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};
use hoist_engine::{BuildRecord, BuildStatus, HistoryStore};

use super::builder_ls::go_tabwriter;
use super::du::{human_duration, Table};
use super::{print, Context};
use crate::cli::{HistoryLsArgs, HistoryRefArgs, HistoryRmArgs};
use crate::progress::plain::PlainRenderer;

/// How many characters of a name the table shows (buildx trims the beginning).
const NAME_WIDTH: usize = 36;

pub fn ls(ctx: &Context, args: &HistoryLsArgs) -> anyhow::Result<ExitCode> {
    let filters = args
        .filters
        .iter()
        .map(|f| Filter::parse(f))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut records = store(ctx)?.list()?;
    records.retain(|r| filters.iter().all(|f| f.matches(r)));
    // Running builds first, then the newest.
    records.sort_by_key(|r| (r.completed_unix_ms.is_some(), u64::MAX - r.created_unix_ms));
    let now = SystemTime::now();
    let text = match args.format.as_str() {
        "table" => table(&records, now, !args.no_trunc),
        "json" => {
            let mut text = String::new();
            for record in &records {
                text.push_str(&serde_json::to_string(&json_line(record))?);
                text.push('\n');
            }
            text
        }
        other => bail!("unsupported format {other:?}: use table or json"),
    };
    print(text)?;
    Ok(ExitCode::SUCCESS)
}

pub fn inspect(ctx: &Context, args: &HistoryRefArgs) -> anyhow::Result<ExitCode> {
    let record = find(&store(ctx)?, args.reference.as_deref())?;
    print(inspect_text(
        &record,
        args.reference.is_none(),
        SystemTime::now(),
    ))?;
    Ok(ExitCode::SUCCESS)
}

pub fn logs(ctx: &Context, args: &HistoryRefArgs) -> anyhow::Result<ExitCode> {
    let store = store(ctx)?;
    let record = find(&store, args.reference.as_deref())?;
    let mut renderer = PlainRenderer::new();
    let text: String = store
        .events(&record.reference)?
        .iter()
        .map(|event| renderer.render(event))
        .collect();
    // As buildx, the log goes where build progress goes: stderr.
    eprint!("{text}");
    Ok(ExitCode::SUCCESS)
}

pub fn rm(ctx: &Context, args: &HistoryRmArgs) -> anyhow::Result<ExitCode> {
    match (args.refs.is_empty(), args.all) {
        (true, false) => bail!("rm requires at least one argument"),
        (false, true) => bail!("rm requires either --all or at least one argument"),
        _ => {}
    }
    let store = store(ctx)?;
    if args.all {
        store.remove_all()?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut failed = false;
    for reference in &args.refs {
        if let Err(err) = store.remove(reference) {
            eprintln!("ERROR: {err}");
            failed = true;
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn store(ctx: &Context) -> anyhow::Result<HistoryStore> {
    Ok(HistoryStore::new(&ctx.state_dir()?))
}

/// The record `reference` names, or the latest one.
fn find(store: &HistoryStore, reference: Option<&str>) -> anyhow::Result<BuildRecord> {
    match reference {
        Some(reference) => Ok(store.get(reference)?),
        None => store.list()?.into_iter().next().context("no records found"),
    }
}

/// `ls --filter KEY=VALUE` or `KEY!=VALUE`, on the ref, name or status.
struct Filter {
    key: String,
    value: String,
    negate: bool,
}

impl Filter {
    fn parse(text: &str) -> anyhow::Result<Filter> {
        let (key, value, negate) = match text.split_once("!=") {
            Some((key, value)) => (key, value, true),
            None => match text.split_once('=') {
                Some((key, value)) => (key, value, false),
                None => bail!("invalid filter {text:?}: expected KEY=VALUE or KEY!=VALUE"),
            },
        };
        if !matches!(key, "ref" | "name" | "status") {
            bail!("invalid filter {text:?}: unknown key {key:?} (ref, name or status)");
        }
        Ok(Filter {
            key: key.to_owned(),
            value: value.to_owned(),
            negate,
        })
    }

    fn matches(&self, record: &BuildRecord) -> bool {
        let actual = match self.key.as_str() {
            "ref" => record.reference.clone(),
            "name" => record.name.clone(),
            _ => status_word(record.status).to_lowercase(),
        };
        (actual == self.value.to_lowercase() || actual == self.value) != self.negate
    }
}

/// The status as `history ls` shows it (a cancelled build ended with an error).
fn status_word(status: BuildStatus) -> &'static str {
    match status {
        BuildStatus::Running => "Running",
        BuildStatus::Completed => "Completed",
        BuildStatus::Error | BuildStatus::Canceled => "Error",
        BuildStatus::Incomplete => "Incomplete",
    }
}

/// buildx's duration: `%.1fs` under a minute, else `%dm %2ds`; `+` while running.
fn format_duration(d: Duration) -> String {
    if d < Duration::from_secs(60) {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        let secs = d.as_secs();
        format!("{}m {:2}s", secs / 60, secs % 60)
    }
}

fn duration_text(record: &BuildRecord, now: SystemTime) -> String {
    let text = format_duration(record.duration(now));
    match record.status {
        BuildStatus::Running => format!("{text}+"),
        _ => text,
    }
}

/// The `ls` table, aligned as docker's formatter (`tabwriter` with spaces: columns at
/// least 10 wide, 3 spaces apart).
fn table(records: &[BuildRecord], now: SystemTime, trunc: bool) -> String {
    let mut rows = vec![[
        "BUILD ID".to_owned(),
        "NAME".to_owned(),
        "STATUS".to_owned(),
        "CREATED AT".to_owned(),
        "DURATION".to_owned(),
    ]];
    for record in records {
        let name = if trunc {
            trim_beginning(&record.name, NAME_WIDTH)
        } else {
            record.name.clone()
        };
        let created = UNIX_EPOCH + Duration::from_millis(record.created_unix_ms);
        rows.push([
            record.reference.clone(),
            name,
            status_word(record.status).to_owned(),
            format!(
                "{} ago",
                human_duration(now.duration_since(created).unwrap_or_default())
            ),
            duration_text(record, now),
        ]);
    }
    let text: String = rows.iter().map(|row| row.join("\t") + "\n").collect();
    go_tabwriter(&text, 10, 3)
}

/// buildx's `trimBeginning`: the last `n - 2` characters after `..`.
fn trim_beginning(s: &str, n: usize) -> String {
    let count = s.chars().count();
    if count <= n {
        return s.to_owned();
    }
    let tail: String = s.chars().skip(count - (n - 2)).collect();
    format!("..{tail}")
}

/// One `ls --format json` line: buildx's keys, sorted as Go sorts a map's.
fn json_line(record: &BuildRecord) -> BTreeMap<&'static str, serde_json::Value> {
    let mut line = BTreeMap::from([
        ("ref", record.reference.clone().into()),
        ("name", record.name.clone().into()),
        ("status", status_word(record.status).into()),
        ("created_at", rfc3339(record.created_unix_ms).into()),
        ("total_steps", record.steps.total.into()),
        ("completed_steps", record.steps.completed.into()),
        ("cached_steps", record.steps.cached.into()),
    ]);
    if let Some(completed) = record.completed_unix_ms {
        line.insert("completed_at", rfc3339(completed).into());
    }
    line
}

fn rfc3339(unix_ms: u64) -> String {
    let secs = i64::try_from(unix_ms / 1000).unwrap_or(i64::MAX);
    let nanos = u32::try_from(unix_ms % 1000).unwrap_or(0) * 1_000_000;
    hoist_oci::format_rfc3339(secs, nanos)
}

/// `2006-01-02 15:04:05`, in UTC.
fn started_text(unix_ms: u64) -> String {
    rfc3339(unix_ms)
        .get(..19)
        .unwrap_or_default()
        .replacen('T', " ", 1)
}

/// `history inspect`'s text: the request, the outcome, build args, images, the error with
/// its step's last lines, and how to see the whole log.
fn inspect_text(record: &BuildRecord, show_ref: bool, now: SystemTime) -> String {
    let request = &record.request;
    let mut table = Table::default();
    if !record.name.is_empty() {
        table.line(&format!("Name:\t{}", record.name));
    }
    if show_ref {
        table.line(&format!("Ref:\t{}", record.reference));
    }
    table.line(&format!("Context:\t{}", request.context));
    table.line(&format!("Dockerfile:\t{}", request.dockerfile));
    if let Some(target) = &request.target {
        table.line(&format!("Target:\t{target}"));
    }
    if !request.platforms.is_empty() {
        table.line(&format!("Platforms:\t{}", request.platforms.join(", ")));
    }
    let mut out = table.render();
    out.push('\n');

    let mut table = Table::default();
    table.line(&format!(
        "Started:\t{}",
        started_text(record.created_unix_ms)
    ));
    let running = if record.status == BuildStatus::Running {
        " (running)"
    } else {
        ""
    };
    table.line(&format!(
        "Duration:\t{}{running}",
        format_duration(record.duration(now))
    ));
    match record.status {
        BuildStatus::Error => {
            let message = record.error.as_ref().map_or("", |e| e.message.as_str());
            table.line(&format!("Error:\tUnknown {message}"));
        }
        BuildStatus::Canceled => table.line("Status:\tCanceled"),
        BuildStatus::Incomplete => table.line("Status:\tIncomplete"),
        BuildStatus::Running | BuildStatus::Completed => {}
    }
    let steps = record.steps;
    let cached = if steps.total == 0 {
        0.0
    } else {
        #[allow(clippy::cast_precision_loss)] // step counts are small
        let ratio = steps.cached as f64 / steps.total as f64;
        ratio * 100.0
    };
    table.line(&format!(
        "Build Steps:\t{}/{} ({cached:.0}% cached)",
        steps.completed, steps.total
    ));
    out.push_str(&table.render());
    out.push('\n');

    if !request.build_args.is_empty() {
        let mut table = Table::default();
        table.line("BUILD ARG\tVALUE");
        for (key, value) in &request.build_args {
            table.line(&format!("{key}\t{value}"));
        }
        out.push_str(&table.render());
        out.push('\n');
    }
    if !record.images.is_empty() {
        let mut table = Table::default();
        table.line("IMAGE\tDIGEST");
        for image in &record.images {
            if image.names.is_empty() {
                table.line(&format!("(type={})\t{}", image.output, image.digest));
            }
            for name in &image.names {
                table.line(&format!("{name}\t{}", image.digest));
            }
        }
        out.push_str(&table.render());
        out.push('\n');
    }
    if let Some(error) = &record.error {
        if let (Some((start, end)), Some(source)) = (error.lines, &error.dockerfile) {
            // buildx names the Dockerfile by its base name in excerpts.
            let shown = std::path::Path::new(&request.dockerfile)
                .file_name()
                .filter(|_| request.dockerfile != "-")
                .map_or("Dockerfile".into(), |n| n.to_string_lossy());
            let span = hoist_dockerfile::ast::LineSpan { start, end };
            out.push_str(&hoist_dockerfile::instructions::source_excerpt(
                &shown, source, span,
            ));
        }
        if let Some(step) = &error.step {
            out.push_str("Logs:\n");
            out.push_str(&format!("> => {step}:\n"));
            for line in &error.logs {
                out.push_str(&format!("> {line}\n"));
            }
            out.push('\n');
        }
    }
    out.push_str(&format!(
        "Print build logs: hoist history logs {}\n",
        record.reference
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_as_buildx_prints_them() {
        assert_eq!(format_duration(Duration::from_millis(1234)), "1.2s");
        assert_eq!(format_duration(Duration::from_secs(65)), "1m  5s");
        assert_eq!(format_duration(Duration::from_secs(754)), "12m 34s");
    }

    #[test]
    fn names_are_trimmed_at_the_beginning() {
        assert_eq!(trim_beginning("short", 36), "short");
        let long = "a".repeat(30) + "/very/long/path";
        let trimmed = trim_beginning(&long, 36);
        assert_eq!(trimmed.chars().count(), 36);
        assert!(trimmed.starts_with("..") && trimmed.ends_with("/very/long/path"));
    }
}
