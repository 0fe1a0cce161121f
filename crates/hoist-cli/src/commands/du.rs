//! `hoist du [--filter id=PREFIX] [--verbose]`: the build cache's records as buildx's `du`
//! prints them — an `ID RECLAIMABLE SIZE LAST ACCESSED` table (or `Key: value` blocks with
//! `--verbose`), then `Reclaimable:` and `Total:`.
//!
//! The output helpers (`Table`, `human_size`, `human_duration`, the rows) are shared with
//! `prune`, which prints what it removed the same way. They are written here rather than
//! taken from a crate because they must match docker's go-units and Go's tabwriter output
//! byte for byte (scripts parse it), which the Rust crates for sizes and tables do not.

use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::bail;
use hoist_engine::{CacheUsage, UsageKind};

use super::{print, Context};
use crate::cli::DuArgs;

/// Characters of a cache key shown as its id (BuildKit's record ids are 25 long).
const ID_LEN: usize = 25;

pub fn run(ctx: &Context, args: DuArgs) -> anyhow::Result<ExitCode> {
    let mut ids = Vec::new();
    for filter in &args.filters {
        match filter.split_once('=') {
            Some(("id", prefix)) => ids.push(prefix.to_owned()),
            _ => bail!("invalid filter {filter:?}: `du` supports id=PREFIX"),
        }
    }
    let rows: Vec<CacheUsage> = hoist_engine::disk_usage(&ctx.state_dir()?)?
        .into_iter()
        .filter(|row| ids.is_empty() || ids.iter().any(|id| row.id.starts_with(id)))
        .collect();
    let now = SystemTime::now();
    let mut out = String::new();
    if args.verbose {
        for row in &rows {
            out.push_str(&verbose_block(row, now));
        }
    } else {
        let mut table = Table::default();
        table.line(HEADER);
        for row in &rows {
            table.line(&table_row(row, now));
        }
        out.push_str(&table.render());
    }
    if args.filters.is_empty() {
        out.push_str(&summary(&rows));
    }
    if args.verbose {
        // Not cache (bounded by its own limits, left by prune), so outside the totals.
        let history = hoist_engine::history_usage(&ctx.state_dir()?);
        out.push_str(&format!("Build history:\t{}\n", human_size(history)));
    }
    print(out)?;
    Ok(ExitCode::SUCCESS)
}

/// The table header of `du` and `prune`.
pub const HEADER: &str = "ID\tRECLAIMABLE\tSIZE\tLAST ACCESSED";

/// One record as a table line (buildx's `printTableRow`).
pub fn table_row(row: &CacheUsage, now: SystemTime) -> String {
    let mut size = human_size(row.size);
    if row.shared {
        size.push('*');
    }
    let mut id = short_id(&row.id).to_owned();
    if row.kind == UsageKind::CacheMount {
        id.push('*');
    }
    format!(
        "{:<40}\t{:<5}\t{:<10}\t{}",
        id,
        !row.in_use,
        size,
        last_accessed(row, now)
    )
}

/// One record as `Key:\tvalue` lines and a blank line (buildx's `printVerbose`).
pub fn verbose_block(row: &CacheUsage, now: SystemTime) -> String {
    let mut table = Table::default();
    table.line(&format!("ID:\t{}", short_id(&row.id)));
    if !row.parents.is_empty() {
        let parents: Vec<&str> = row.parents.iter().map(|p| short_id(p)).collect();
        table.line(&format!("Parent:\t{}", parents.join(",")));
    }
    table.line(&format!("Created at:\t{}", go_time(row.created)));
    let mutable = row.kind == UsageKind::CacheMount;
    table.line(&format!("Mutable:\t{mutable}"));
    table.line(&format!("Reclaimable:\t{}", !row.in_use));
    table.line(&format!("Shared:\t{}", row.shared));
    table.line(&format!("Size:\t{}", human_size(row.size)));
    table.line(&format!("Usage count:\t{}", row.usage_count));
    if row.last_used.is_some() {
        table.line(&format!("Last used:\t{}", last_accessed(row, now)));
    }
    table.line(&format!("Type:\t{}", row.kind.as_str()));
    table.line("");
    table.render()
}

/// `Shared:`/`Private:` (when something is shared), `Reclaimable:` and `Total:`.
fn summary(rows: &[CacheUsage]) -> String {
    let total: u64 = rows.iter().map(|r| r.size).sum();
    let reclaimable: u64 = rows.iter().filter(|r| !r.in_use).map(|r| r.size).sum();
    let shared: u64 = rows.iter().filter(|r| r.shared).map(|r| r.size).sum();
    let mut table = Table::default();
    if shared > 0 {
        table.line(&format!("Shared:\t{}", human_size(shared)));
        table.line(&format!("Private:\t{}", human_size(total - shared)));
    }
    table.line(&format!("Reclaimable:\t{}", human_size(reclaimable)));
    table.line(&format!("Total:\t{}", human_size(total)));
    table.render()
}

fn short_id(id: &str) -> &str {
    id.get(..ID_LEN).unwrap_or(id)
}

fn last_accessed(row: &CacheUsage, now: SystemTime) -> String {
    match row.last_used {
        Some(at) => format!(
            "{} ago",
            human_duration(now.duration_since(at).unwrap_or_default())
        ),
        None => String::new(),
    }
}

/// Lines of tab-separated cells aligned as Go's `tabwriter.NewWriter(w, 1, 8, 1, '\t', 0)`
/// aligns them: a column is as wide as its widest cell plus one, rounded up to a multiple
/// of 8, and filled with tabs. A line without a tab ends the run of lines aligned together.
#[derive(Debug, Default)]
pub struct Table {
    lines: Vec<String>,
}

impl Table {
    pub fn line(&mut self, line: &str) {
        self.lines.push(line.to_owned());
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut start = 0;
        while start < self.lines.len() {
            if !self.lines[start].contains('\t') {
                out.push_str(&self.lines[start]);
                out.push('\n');
                start += 1;
                continue;
            }
            let end = (start..self.lines.len())
                .find(|&i| !self.lines[i].contains('\t'))
                .unwrap_or(self.lines.len());
            out.push_str(&align(&self.lines[start..end]));
            start = end;
        }
        out
    }
}

/// Aligns a run of lines that all have at least one cell terminated by a tab.
fn align(lines: &[String]) -> String {
    let cells: Vec<Vec<&str>> = lines.iter().map(|l| l.split('\t').collect()).collect();
    let columns = cells.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0usize; columns];
    for line in &cells {
        // The last cell of a line is not terminated by a tab, so it is not aligned.
        for (i, cell) in line.iter().enumerate().take(line.len().saturating_sub(1)) {
            let width = (cell.chars().count() + 1).div_ceil(8) * 8;
            widths[i] = widths[i].max(width);
        }
    }
    let mut out = String::new();
    for line in &cells {
        for (i, cell) in line.iter().enumerate() {
            out.push_str(cell);
            if i + 1 < line.len() {
                let tabs = (widths[i] - cell.chars().count()).div_ceil(8);
                out.push_str(&"\t".repeat(tabs.max(1)));
            }
        }
        out.push('\n');
    }
    out
}

/// A size as docker's `units.HumanSize`: decimal units, four significant digits
/// (`0B`, `999B`, `1.5kB`, `1.235MB`).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    #[allow(clippy::cast_precision_loss)] // four digits are shown
    let mut size = bytes as f64;
    let mut unit = 0;
    while size >= 1000.0 && unit < UNITS.len() - 1 {
        size /= 1000.0;
        unit += 1;
    }
    format!("{}{}", four_digits(size), UNITS[unit])
}

/// Go's `%.4g` for 0 <= value < 1000 (all `human_size` gives it).
fn four_digits(value: f64) -> String {
    if value == 0.0 {
        return "0".to_owned();
    }
    #[allow(clippy::cast_possible_truncation)] // a small exponent
    let exponent = value.log10().floor() as i32;
    let decimals = usize::try_from(3 - exponent).unwrap_or(0);
    let text = format!("{value:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

/// A duration as docker's `units.HumanDuration` (`Less than a second`, `About a minute`,
/// `5 hours`, `3 days`, ...).
pub fn human_duration(d: Duration) -> String {
    let seconds = d.as_secs();
    let minutes = seconds / 60;
    let hours = (d.as_secs_f64() / 3600.0).round();
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // rounded, >= 0
    let hours = hours as u64;
    match () {
        () if seconds < 1 => "Less than a second".to_owned(),
        () if seconds == 1 => "1 second".to_owned(),
        () if seconds < 60 => format!("{seconds} seconds"),
        () if minutes == 1 => "About a minute".to_owned(),
        () if minutes < 60 => format!("{minutes} minutes"),
        () if hours == 1 => "About an hour".to_owned(),
        () if hours < 48 => format!("{hours} hours"),
        () if hours < 24 * 7 * 2 => format!("{} days", hours / 24),
        () if hours < 24 * 30 * 2 => format!("{} weeks", hours / 24 / 7),
        () if hours < 24 * 365 * 2 => format!("{} months", hours / 24 / 30),
        () => format!("{} years", seconds / 3600 / 24 / 365),
    }
}

/// A time as Go prints a `time.Time` in UTC: `2026-11-23 15:04:05.123 +0000 UTC`.
fn go_time(at: SystemTime) -> String {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rest = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    let millis = since.subsec_millis();
    let fraction = if millis == 0 {
        String::new()
    } else {
        format!(".{millis:03}").trim_end_matches('0').to_owned()
    };
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}{fraction} +0000 UTC",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let month = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_as_go_units() {
        for (bytes, want) in [
            (0, "0B"),
            (999, "999B"),
            (1000, "1kB"),
            (1500, "1.5kB"),
            (1_234_567, "1.235MB"),
            (12_345_678, "12.35MB"),
            (999_950, "1000kB"),
            (3_000_000_000, "3GB"),
        ] {
            assert_eq!(human_size(bytes), want, "{bytes}");
        }
    }

    #[test]
    fn durations_as_go_units() {
        for (secs, want) in [
            (0, "Less than a second"),
            (1, "1 second"),
            (59, "59 seconds"),
            (60, "About a minute"),
            (3000, "50 minutes"),
            (3600, "About an hour"),
            (5 * 3600, "5 hours"),
            (3 * 86_400, "3 days"),
            (20 * 86_400, "2 weeks"),
            (90 * 86_400, "3 months"),
            (800 * 86_400, "2 years"),
        ] {
            assert_eq!(human_duration(Duration::from_secs(secs)), want, "{secs}");
        }
    }

    #[test]
    fn tables_align_like_go_tabwriter() {
        let mut table = Table::default();
        table.line("Reclaimable:\t1kB");
        table.line("Total:\t2kB");
        assert_eq!(table.render(), "Reclaimable:\t1kB\nTotal:\t\t2kB\n");
        let mut single = Table::default();
        single.line("Total:\t1.235MB");
        assert_eq!(single.render(), "Total:\t1.235MB\n");
    }

    #[test]
    fn times_as_go_prints_them() {
        let at = UNIX_EPOCH + Duration::from_millis(1_795_446_245_120);
        assert_eq!(go_time(at), "2026-11-23 15:04:05.12 +0000 UTC");
        assert_eq!(go_time(UNIX_EPOCH), "1970-01-01 00:00:00 +0000 UTC");
    }
}
