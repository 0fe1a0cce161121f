//! `HEALTHCHECK NONE` and `HEALTHCHECK [--interval ...] CMD command`, with Go-style durations.

use std::time::Duration;

use super::at_least_one_argument;
use super::flags::{FlagSpec, Flags};
use super::process::command_line_of;
use super::CommandLine;
use crate::ast::Node;

/// `HEALTHCHECK`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Healthcheck {
    /// `HEALTHCHECK NONE`: disable any healthcheck inherited from the base image.
    None,
    /// `HEALTHCHECK [options] CMD ...`.
    Cmd(HealthcheckCmd),
}

/// A healthcheck command with its timings. A zero duration or count means "inherit".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthcheckCmd {
    /// The image config's `Test`: `["CMD", argv...]` for the exec form, `["CMD-SHELL",
    /// "command"]` for the shell form.
    pub test: Vec<String>,
    pub interval: Duration,
    pub timeout: Duration,
    pub start_period: Duration,
    pub start_interval: Duration,
    pub retries: u32,
}

impl Healthcheck {
    /// The image config's `Test` (`["NONE"]` for `HEALTHCHECK NONE`).
    pub fn test(&self) -> Vec<String> {
        match self {
            Healthcheck::None => vec!["NONE".to_string()],
            Healthcheck::Cmd(cmd) => cmd.test.clone(),
        }
    }
}

const HEALTHCHECK_FLAGS: &[FlagSpec] = &[
    FlagSpec::string("interval"),
    FlagSpec::string("timeout"),
    FlagSpec::string("start-period"),
    FlagSpec::string("start-interval"),
    FlagSpec::string("retries"),
];

pub(super) fn parse(node: &Node) -> Result<Healthcheck, String> {
    let Some((kind, rest)) = node.args.split_first() else {
        return Err(at_least_one_argument("HEALTHCHECK"));
    };
    let kind = kind.to_uppercase();
    if kind == "NONE" {
        // Like BuildKit, flags are not read for NONE.
        if !rest.is_empty() {
            return Err("HEALTHCHECK NONE takes no arguments".to_string());
        }
        return Ok(Healthcheck::None);
    }
    let flags = Flags::parse(&node.flags, HEALTHCHECK_FLAGS)?;
    if kind != "CMD" {
        return Err(format!("Unknown type {kind:?} in HEALTHCHECK (try CMD)"));
    }
    if rest.is_empty() {
        return Err("Missing command after HEALTHCHECK CMD".to_string());
    }
    let test = match command_line_of(rest, node.json) {
        CommandLine::Exec(argv) => std::iter::once("CMD".to_string()).chain(argv).collect(),
        CommandLine::Shell(line) => vec!["CMD-SHELL".to_string(), line],
    };
    let retries = match flags.string("retries").filter(|v| !v.is_empty()) {
        None => 0,
        Some(value) => {
            let n: i32 = value.parse().map_err(|e: std::num::ParseIntError| {
                let why = match e.kind() {
                    std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => {
                        "value out of range"
                    }
                    _ => "invalid syntax",
                };
                format!("strconv.ParseInt: parsing {value:?}: {why}")
            })?;
            u32::try_from(n).map_err(|_| format!("--retries cannot be negative ({n})"))?
        }
    };
    Ok(Healthcheck::Cmd(HealthcheckCmd {
        test,
        interval: interval(&flags, "interval")?,
        timeout: interval(&flags, "timeout")?,
        start_period: interval(&flags, "start-period")?,
        start_interval: interval(&flags, "start-interval")?,
        retries,
    }))
}

/// A duration flag: zero when absent or zero, else at least 1ms.
fn interval(flags: &Flags, name: &str) -> Result<Duration, String> {
    let Some(value) = flags.string(name).filter(|v| !v.is_empty()) else {
        return Ok(Duration::ZERO);
    };
    let nanos = crate::go_duration::parse(&value)?;
    if nanos == 0 {
        return Ok(Duration::ZERO);
    }
    if nanos < 1_000_000 {
        return Err(format!("Interval {name:?} cannot be less than 1ms"));
    }
    Ok(Duration::from_nanos(nanos.unsigned_abs()))
}
