//! Automatic garbage collection: [`GcConfig`], the `[worker.oci]` gc settings of a
//! buildkitd.toml-shaped `--config` file, and [`gc`], which trims the state dir to them
//! after a build through the same pass as `hoist prune` ([`crate::prune`]).
//!
//! The settings are BuildKit's: `gc = true|false`, the worker-wide `reservedSpace`,
//! `maxUsedSpace`, `minFreeSpace` (and the older `gckeepstorage`, read as `reservedSpace`),
//! and an ordered list of `[[worker.oci.gcpolicy]]` (`all`, `filters`, `keepDuration`,
//! `reservedSpace` or the older `keepBytes`, `maxUsedSpace`, `minFreeSpace`). A space is
//! bytes (`512000000`), a size (`"512MB"`, read as docker's `RAMInBytes`: binary units) or a
//! share of the state dir's file system (`"10%"`); a duration is seconds (`172800`) or a Go
//! duration (`"48h"`). Keys hoist does not know are ignored, as buildkitd ignores them; a
//! value of the wrong shape is an error naming the file and the key.
//!
//! Without policies, [`GcConfig::policies`] gives BuildKit's default four: cache mounts and
//! git repositories unused for 48 hours above 512 MB; anything unused for 60 days; the
//! cache not shared with named images; then everything — the last three down to the
//! worker-wide limits, which default to a share of the disk (reserve 10% but at most
//! 10 GB, keep 20% free, use at most 80% but at most 100 GB).
//!
//! [`gc`] keeps what the build it follows used (records last used since it started), never
//! touches what a running build uses (prune's rules), and does nothing more than read the
//! records when no policy chooses anything.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::error::{Error, Result};
use crate::prune::{prune_policies, PruneOptions, PruneReport, Sweep, UsageKind};
use crate::state_dir::StateDir;

/// An amount of disk space as a gc setting gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskSpace {
    Bytes(u64),
    /// A share of the state dir's file system, in percent.
    Percent(u64),
}

impl DiskSpace {
    /// Bytes on a file system of `disk_total` bytes. A share is rounded up to whole
    /// gigabytes of 10^9 bytes per started GiB, as buildkitd rounds it; of an unknown disk
    /// (0) it is 2 GB.
    pub fn bytes(self, disk_total: u64) -> u64 {
        match self {
            Self::Bytes(bytes) => bytes,
            Self::Percent(0) => 0,
            Self::Percent(_) if disk_total == 0 => 2_000_000_000,
            Self::Percent(percent) => {
                let share = u128::from(disk_total) * u128::from(percent) / 100;
                let rounded = (share / (1 << 30) + 1) * 1_000_000_000;
                u64::try_from(rounded).unwrap_or(u64::MAX)
            }
        }
    }
}

/// One `[[worker.oci.gcpolicy]]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcPolicy {
    /// Also what images named in the content store share.
    pub all: bool,
    /// `type==KIND` filters: only these kinds; `None`: any.
    pub kinds: Option<Vec<UsageKind>>,
    /// `id==PREFIX` filters.
    pub ids: Vec<String>,
    /// Only what has not been used for this long.
    pub keep_duration: Option<Duration>,
    /// Never below this (`reservedSpace`, or `keepBytes`).
    pub reserved_space: Option<DiskSpace>,
    pub max_used_space: Option<DiskSpace>,
    pub min_free_space: Option<DiskSpace>,
}

impl GcPolicy {
    /// The prune this policy is on a disk of `disk_total` bytes.
    fn prune_options(&self, disk_total: u64) -> PruneOptions {
        let bytes = |space: Option<DiskSpace>| space.map_or(0, |s| s.bytes(disk_total));
        PruneOptions {
            all: self.all,
            keep_duration: self.keep_duration,
            ids: self.ids.clone(),
            reserved_space: bytes(self.reserved_space),
            max_used_space: bytes(self.max_used_space),
            min_free_space: bytes(self.min_free_space),
            kinds: self.kinds.clone(),
            spare_used_since: None,
        }
    }
}

/// The gc settings of `[worker.oci]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcConfig {
    /// `gc`: false turns automatic gc off.
    pub enabled: bool,
    /// `reservedSpace` (or `gckeepstorage` when it is unset).
    pub reserved_space: Option<DiskSpace>,
    pub max_used_space: Option<DiskSpace>,
    pub min_free_space: Option<DiskSpace>,
    /// `[[worker.oci.gcpolicy]]` in order; empty: BuildKit's default policy.
    pub policies: Vec<GcPolicy>,
}

impl Default for GcConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            reserved_space: None,
            max_used_space: None,
            min_free_space: None,
            policies: Vec::new(),
        }
    }
}

impl GcConfig {
    /// Reads the gc settings of the config file at `path`.
    pub fn load(path: &Path) -> Result<GcConfig> {
        let text = std::fs::read_to_string(path).map_err(Error::io("read", path))?;
        Self::parse(&text, path)
    }

    /// The gc settings of a buildkitd.toml-shaped `text` (read from `path`, for errors).
    pub fn parse(text: &str, path: &Path) -> Result<GcConfig> {
        let invalid = |key: &str, reason: String| Error::GcConfig {
            path: path.to_owned(),
            key: key.to_owned(),
            reason,
        };
        let doc: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| invalid("(file)", e.message().to_owned()))?;
        let mut config = GcConfig::default();
        let Some(worker) = doc.get("worker") else {
            return Ok(config);
        };
        let worker = worker
            .as_table()
            .ok_or_else(|| invalid("worker", "want a table".to_owned()))?;
        let Some(oci) = worker.get("oci") else {
            return Ok(config);
        };
        let oci = oci
            .as_table()
            .ok_or_else(|| invalid("worker.oci", "want a table".to_owned()))?;
        let parser = Parser { path };
        if let Some(value) = oci.get("gc") {
            config.enabled = value.as_bool().ok_or_else(|| {
                invalid("worker.oci.gc", format!("want true or false, got {value}"))
            })?;
        }
        let space = |key: &str| parser.space(oci, "worker.oci", key);
        config.reserved_space = space("reservedSpace")?.or(space("gckeepstorage")?);
        config.max_used_space = space("maxUsedSpace")?;
        config.min_free_space = space("minFreeSpace")?;
        if let Some(value) = oci.get("gcpolicy") {
            let list = value.as_array().ok_or_else(|| {
                invalid(
                    "worker.oci.gcpolicy",
                    "want [[worker.oci.gcpolicy]] tables".to_owned(),
                )
            })?;
            for (i, item) in list.iter().enumerate() {
                let at = format!("worker.oci.gcpolicy[{i}]");
                let table = item
                    .as_table()
                    .ok_or_else(|| invalid(&at, "want a table".to_owned()))?;
                config.policies.push(parser.policy(table, &at)?);
            }
        }
        Ok(config)
    }

    /// The prunes gc runs, in order, on a file system of `disk_total` bytes: the
    /// configured policies, or BuildKit's default four; none when gc is off.
    pub fn policies(&self, disk_total: u64) -> Vec<PruneOptions> {
        if !self.enabled {
            return Vec::new();
        }
        if !self.policies.is_empty() {
            return self
                .policies
                .iter()
                .map(|p| p.prune_options(disk_total))
                .collect();
        }
        let (reserved, max, free) = if self.reserved_space.is_none()
            && self.max_used_space.is_none()
            && self.min_free_space.is_none()
        {
            default_limits(disk_total)
        } else {
            (
                self.reserved_space,
                self.max_used_space,
                self.min_free_space,
            )
        };
        let limits = GcPolicy {
            reserved_space: reserved,
            max_used_space: max,
            min_free_space: free,
            ..GcPolicy::default()
        };
        let defaults = [
            GcPolicy {
                kinds: Some(vec![UsageKind::CacheMount, UsageKind::GitRepo]),
                keep_duration: Some(Duration::from_secs(48 * 3600)),
                max_used_space: Some(DiskSpace::Bytes(512_000_000)),
                ..GcPolicy::default()
            },
            GcPolicy {
                keep_duration: Some(Duration::from_secs(60 * 24 * 3600)),
                ..limits.clone()
            },
            limits.clone(),
            GcPolicy {
                all: true,
                ..limits
            },
        ];
        defaults
            .iter()
            .map(|p| p.prune_options(disk_total))
            .collect()
    }
}

/// buildkitd's worker-wide limits when none is set: reserve 10% (at most 10 GB), keep
/// 20% free, use at most 80% (at most 100 GB).
fn default_limits(disk_total: u64) -> (Option<DiskSpace>, Option<DiskSpace>, Option<DiskSpace>) {
    let capped = |percent: u64, cap: u64| {
        let share = DiskSpace::Percent(percent);
        if share.bytes(disk_total) > cap {
            DiskSpace::Bytes(cap)
        } else {
            share
        }
    };
    (
        Some(capped(10, 10_000_000_000)),
        Some(capped(80, 100_000_000_000)),
        Some(DiskSpace::Percent(20)),
    )
}

/// Reads typed values out of the TOML tables, naming `path` and the key on errors.
struct Parser<'a> {
    path: &'a Path,
}

impl Parser<'_> {
    fn invalid(&self, key: String, reason: String) -> Error {
        Error::GcConfig {
            path: self.path.to_owned(),
            key,
            reason,
        }
    }

    fn space(&self, table: &toml::Table, at: &str, key: &str) -> Result<Option<DiskSpace>> {
        let Some(value) = table.get(key) else {
            return Ok(None);
        };
        let bad = |reason: String| self.invalid(format!("{at}.{key}"), reason);
        match value {
            toml::Value::Integer(n) => u64::try_from(*n)
                .map(|n| Some(DiskSpace::Bytes(n)))
                .map_err(|_| bad(format!("want a size, got {n}"))),
            toml::Value::String(text) if text.is_empty() => Ok(None),
            toml::Value::String(text) => {
                if let Some(percent) = text.strip_suffix('%') {
                    return percent
                        .parse::<u64>()
                        .ok()
                        .filter(|p| *p <= 100)
                        .map(|p| Some(DiskSpace::Percent(p)))
                        .ok_or_else(|| {
                            bad(format!("want a percentage such as \"10%\", got {text:?}"))
                        });
                }
                parse_size(text)
                    .map(|n| Some(DiskSpace::Bytes(n)))
                    .ok_or_else(|| {
                        bad(format!(
                            "want a size such as \"512MB\" or \"10%\", got {text:?}"
                        ))
                    })
            }
            other => Err(bad(format!(
                "want a size such as \"512MB\" or \"10%\", got {other}"
            ))),
        }
    }

    fn duration(&self, table: &toml::Table, at: &str, key: &str) -> Result<Option<Duration>> {
        let Some(value) = table.get(key) else {
            return Ok(None);
        };
        let bad = |reason: String| self.invalid(format!("{at}.{key}"), reason);
        match value {
            toml::Value::Integer(n) => u64::try_from(*n)
                .map(|n| Some(Duration::from_secs(n)))
                .map_err(|_| bad(format!("want a duration, got {n}"))),
            toml::Value::String(text) if text.is_empty() => Ok(None),
            toml::Value::String(text) => {
                if let Ok(secs) = text.parse::<u64>() {
                    return Ok(Some(Duration::from_secs(secs)));
                }
                hoist_dockerfile::go_duration::parse(text)
                    .ok()
                    .and_then(|nanos| u64::try_from(nanos).ok())
                    .map(|nanos| Some(Duration::from_nanos(nanos)))
                    .ok_or_else(|| bad(format!("want a duration such as \"48h\", got {text:?}")))
            }
            other => Err(bad(format!("want a duration such as \"48h\", got {other}"))),
        }
    }

    fn policy(&self, table: &toml::Table, at: &str) -> Result<GcPolicy> {
        let mut policy = GcPolicy::default();
        if let Some(value) = table.get("all") {
            policy.all = value.as_bool().ok_or_else(|| {
                self.invalid(
                    format!("{at}.all"),
                    format!("want true or false, got {value}"),
                )
            })?;
        }
        if let Some(value) = table.get("filters") {
            let key = format!("{at}.filters");
            let list = value
                .as_array()
                .ok_or_else(|| self.invalid(key.clone(), "want a list of strings".to_owned()))?;
            for item in list {
                let text = item.as_str().ok_or_else(|| {
                    self.invalid(key.clone(), format!("want a string, got {item}"))
                })?;
                self.filter(&mut policy, text, &key)?;
            }
        }
        policy.keep_duration = self.duration(table, at, "keepDuration")?;
        policy.reserved_space =
            self.space(table, at, "reservedSpace")?
                .or(self.space(table, at, "keepBytes")?);
        policy.max_used_space = self.space(table, at, "maxUsedSpace")?;
        policy.min_free_space = self.space(table, at, "minFreeSpace")?;
        Ok(policy)
    }

    /// One filter, several in one string separated by commas: `type==KIND` (`type=` too),
    /// `id==PREFIX`, `until=DURATION` / `unused-for=DURATION` (the keep duration).
    fn filter(&self, policy: &mut GcPolicy, text: &str, key: &str) -> Result<()> {
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let bad = || {
                self.invalid(
                    key.to_owned(),
                    format!("unsupported filter {part:?}: want type==KIND, id==PREFIX or until=DURATION"),
                )
            };
            let (name, value) = part
                .split_once("==")
                .or_else(|| part.split_once('='))
                .ok_or_else(bad)?;
            match name.trim() {
                "type" => {
                    let kinds = policy.kinds.get_or_insert_with(Vec::new);
                    // A BuildKit type hoist keeps no rows of matches nothing.
                    kinds.extend(UsageKind::from_buildkit(value.trim()));
                }
                "id" => policy.ids.push(value.trim().to_owned()),
                "until" | "unused-for" => {
                    let nanos = hoist_dockerfile::go_duration::parse(value.trim())
                        .ok()
                        .and_then(|n| u64::try_from(n).ok())
                        .ok_or_else(bad)?;
                    policy.keep_duration = Some(Duration::from_nanos(nanos));
                }
                _ => return Err(bad()),
            }
        }
        Ok(())
    }
}

/// A size as docker's `units.RAMInBytes` reads it: a number, optionally with a fraction,
/// then an optional binary unit `k`, `m`, `g`, `t` or `p` (any case, optionally followed by
/// `i` and/or `b`): `1gb`, `512m`, `1.5GiB`, `1024`.
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits_end);
    if number.is_empty() || number.starts_with('.') || number.ends_with('.') {
        return None;
    }
    let value: f64 = number.parse().ok()?;
    let unit = unit.strip_prefix(' ').unwrap_or(unit).to_ascii_lowercase();
    let unit = unit.strip_suffix('b').unwrap_or(&unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let power = match unit {
        "" => 0,
        "k" => 1,
        "m" => 2,
        "g" => 3,
        "t" => 4,
        "p" => 5,
        _ => return None,
    };
    let bytes = value * 1024f64.powi(power);
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // checked range
    (0.0..1.8e19).contains(&bytes).then_some(bytes as u64)
}

/// What one [`gc`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// The prune's report: empty when no policy chose anything.
    pub prune: PruneReport,
    /// How long it took.
    pub elapsed: Duration,
}

/// Trims `state` to `config`'s policies (none when gc is off), keeping what was used at
/// or after `build_started` (the build this gc follows). Nothing but a read of the
/// records when no policy chooses anything.
pub fn gc(
    state: &StateDir,
    config: &GcConfig,
    build_started: Option<SystemTime>,
) -> Result<GcReport> {
    let started = std::time::Instant::now();
    if !config.enabled || !state.engine_dir().join("cache").exists() {
        return Ok(GcReport::default());
    }
    let mut policies = config.policies(disk_total(state.root())?);
    for policy in &mut policies {
        policy.spare_used_since = build_started;
    }
    let prune = prune_policies(state, &policies, Sweep::WhenRemoving)?;
    Ok(GcReport {
        prune,
        elapsed: started.elapsed(),
    })
}

/// The size of the file system holding `path`.
fn disk_total(path: &Path) -> Result<u64> {
    let stat = rustix::fs::statvfs(path)
        .map_err(|e| Error::io("stat file system of", PathBuf::from(path))(e.into()))?;
    Ok(stat.f_blocks.saturating_mul(stat.f_frsize))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<GcConfig> {
        GcConfig::parse(text, Path::new("/etc/hoist.toml"))
    }

    #[test]
    fn sizes_as_docker_reads_them() {
        for (text, want) in [
            ("1024", 1024),
            ("1k", 1024),
            ("1kb", 1024),
            ("512m", 512 << 20),
            ("1gb", 1 << 30),
            ("1GiB", 1 << 30),
            ("1.5g", 3 << 29),
            ("2 MB", 2 << 20),
        ] {
            assert_eq!(parse_size(text), Some(want), "{text}");
        }
        for bad in ["", "gb", "1x", "-1", "1.", ".5"] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
    }

    #[test]
    fn worker_settings_and_policies_parse() {
        let config = parse(
            r#"
debug = true
[worker.oci]
  gc = true
  gckeepstorage = 9000
  maxUsedSpace = "60%"
  minFreeSpace = "20GB"
  snapshotter = "auto"
  [[worker.oci.gcpolicy]]
    keepBytes = "512MB"
    keepDuration = "48h"
    filters = ["type==source.local", "type==exec.cachemount", "type==source.git.checkout"]
  [[worker.oci.gcpolicy]]
    all = true
    reservedSpace = 1024000000
    keepDuration = 172800
[registry."docker.io"]
  mirrors = ["mirror.local"]
"#,
        )
        .unwrap();
        assert!(config.enabled);
        assert_eq!(config.reserved_space, Some(DiskSpace::Bytes(9000)));
        assert_eq!(config.max_used_space, Some(DiskSpace::Percent(60)));
        assert_eq!(config.min_free_space, Some(DiskSpace::Bytes(20 << 30)));
        assert_eq!(
            config.policies,
            [
                GcPolicy {
                    kinds: Some(vec![UsageKind::CacheMount, UsageKind::GitRepo]),
                    keep_duration: Some(Duration::from_secs(48 * 3600)),
                    reserved_space: Some(DiskSpace::Bytes(512 << 20)),
                    ..GcPolicy::default()
                },
                GcPolicy {
                    all: true,
                    keep_duration: Some(Duration::from_secs(172_800)),
                    reserved_space: Some(DiskSpace::Bytes(1_024_000_000)),
                    ..GcPolicy::default()
                },
            ]
        );
    }

    #[test]
    fn bad_values_name_file_and_key() {
        for (text, key) in [
            ("[worker.oci]\ngc = \"yes\"", "worker.oci.gc"),
            (
                "[worker.oci]\nreservedSpace = \"lots\"",
                "worker.oci.reservedSpace",
            ),
            (
                "[worker.oci]\nmaxUsedSpace = \"150%\"",
                "worker.oci.maxUsedSpace",
            ),
            ("[worker.oci]\nminFreeSpace = -1", "worker.oci.minFreeSpace"),
            (
                "[[worker.oci.gcpolicy]]\nkeepDuration = \"two days\"",
                "worker.oci.gcpolicy[0].keepDuration",
            ),
            (
                "[[worker.oci.gcpolicy]]\nall = true\n[[worker.oci.gcpolicy]]\nkeepBytes = [1]",
                "worker.oci.gcpolicy[1].keepBytes",
            ),
            (
                "[[worker.oci.gcpolicy]]\nfilters = [\"label=x\"]",
                "worker.oci.gcpolicy[0].filters",
            ),
            ("[worker]\noci = 3", "worker.oci"),
        ] {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains(key), "{text}: {err}");
            assert!(err.contains("/etc/hoist.toml"), "{text}: {err}");
        }
    }

    #[test]
    fn no_worker_section_is_the_default() {
        assert_eq!(
            parse("[registry.\"x\"]\nhttp = true").unwrap(),
            GcConfig::default()
        );
        assert_eq!(parse("").unwrap(), GcConfig::default());
    }

    #[test]
    fn gc_false_has_no_policies() {
        let config = parse("[worker.oci]\ngc = false").unwrap();
        assert!(config.policies(100_000_000_000).is_empty());
    }

    #[test]
    fn default_policy_follows_the_disk() {
        const GIB: u64 = 1 << 30;
        // A 50 GiB disk: reserve 10% → 6 GB (5 GiB, rounded up per started GiB), keep 20%
        // → 11 GB free, use at most 80% → 41 GB.
        let small = GcConfig::default().policies(50 * GIB);
        assert_eq!(small.len(), 4);
        assert_eq!(
            small[0].kinds,
            Some(vec![UsageKind::CacheMount, UsageKind::GitRepo])
        );
        assert_eq!(small[0].max_used_space, 512_000_000);
        assert_eq!(small[0].keep_duration, Some(Duration::from_secs(48 * 3600)));
        assert_eq!(
            small[1].keep_duration,
            Some(Duration::from_secs(60 * 86_400))
        );
        for policy in &small[1..] {
            assert_eq!(policy.reserved_space, 6_000_000_000);
            assert_eq!(policy.min_free_space, 11_000_000_000);
            assert_eq!(policy.max_used_space, 41_000_000_000);
        }
        assert!(small[3].all && !small[2].all);
        // A 2 TiB disk: the reserve and the maximum are capped.
        let big = GcConfig::default().policies(2048 * GIB);
        assert_eq!(big[2].reserved_space, 10_000_000_000);
        assert_eq!(big[2].max_used_space, 100_000_000_000);
        // gckeepstorage alone is the reserve, with no other limit.
        let keep = parse("[worker.oci]\ngckeepstorage = \"1MB\"")
            .unwrap()
            .policies(50 * GIB);
        assert_eq!(keep[2].reserved_space, 1 << 20);
        assert_eq!((keep[2].max_used_space, keep[2].min_free_space), (0, 0));
    }
}
