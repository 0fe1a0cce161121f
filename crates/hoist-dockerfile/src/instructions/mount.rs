//! `RUN --mount=type=bind|cache|tmpfs|secret|ssh,key=value,...`, parsed into a typed [`Mount`]
//! with BuildKit's keys, defaults and error texts.
//!
//! BuildKit reads mount options twice: when parsing it only checks `from` (no variables), and
//! when dispatching the RUN it expands every value and validates them all. Here a mount whose
//! values hold no `$` is validated completely at parse time; one with variables keeps them
//! as written ([`Mount::is_expanded`] is false) until [`Mount::expand`] is called.

use std::fmt;

use super::suggest;
use crate::{Error, Result};

/// `--mount=type=...`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MountType {
    #[default]
    Bind,
    Cache,
    Tmpfs,
    Secret,
    Ssh,
}

impl MountType {
    pub fn as_str(self) -> &'static str {
        match self {
            MountType::Bind => "bind",
            MountType::Cache => "cache",
            MountType::Tmpfs => "tmpfs",
            MountType::Secret => "secret",
            MountType::Ssh => "ssh",
        }
    }

    /// Whether mode, uid and gid may be given (secret, ssh and cache mounts).
    fn allows_file_info(self) -> bool {
        matches!(self, MountType::Secret | MountType::Ssh | MountType::Cache)
    }
}

impl fmt::Display for MountType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `--mount=type=cache,sharing=...`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    Shared,
    Private,
    Locked,
}

impl Sharing {
    pub fn as_str(self) -> &'static str {
        match self {
            Sharing::Shared => "shared",
            Sharing::Private => "private",
            Sharing::Locked => "locked",
        }
    }
}

/// One `RUN --mount`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Mount {
    /// The option text after `--mount=`, as written.
    pub spec: String,
    /// `type=` (bind when not given).
    pub kind: MountType,
    /// `from=`: a stage name, image or build context to mount from.
    pub from: Option<String>,
    /// `source=` / `src=`.
    pub source: Option<String>,
    /// `target=` / `dst=` / `destination=`.
    pub target: Option<String>,
    /// `ro` / `readonly` / `rw` / `readwrite`; when none is given, cache and tmpfs mounts are
    /// writable and the others read-only.
    pub read_only: bool,
    /// `size=` of a tmpfs mount, in bytes (`64m`, `1g` ...).
    pub size_limit: Option<u64>,
    /// `id=`: the cache id or the secret / ssh id.
    pub id: Option<String>,
    /// `sharing=` of a cache mount.
    pub sharing: Option<Sharing>,
    /// `required` on a secret or ssh mount: fail when it is not provided.
    pub required: bool,
    /// `env=`: expose a secret as this environment variable (empty = the default name).
    pub env: Option<String>,
    /// `mode=` (octal) of a secret, ssh socket or cache directory.
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    expanded: bool,
}

impl Mount {
    /// Parses an option text whose values are final (already expanded), validating it fully.
    pub fn parse(spec: &str) -> Result<Mount> {
        parse_fields(spec, Some(&|s: &str| Ok(s.to_string())))
    }

    /// False while some value still holds a variable: then the typed fields that depend on it
    /// are left at their defaults, and [`Mount::expand`] gives the final mount.
    pub fn is_expanded(&self) -> bool {
        self.expanded
    }

    /// Parses [`Mount::spec`] again with every value passed through `expand`, validating the
    /// result (errors are [`Error::InvalidValue`]).
    pub fn expand<F>(&self, expand: &F) -> Result<Mount>
    where
        F: Fn(&str) -> Result<String>,
    {
        parse_fields(&self.spec, Some(expand))
    }
}

/// Parse-time reading: values holding `$` are kept for later (see the module docs).
pub(super) fn parse_unexpanded(spec: &str) -> Result<Mount, String> {
    parse_fields(spec, None).map_err(|err| err.to_string())
}

const ALL_KEYS: &[&str] = &[
    "type",
    "from",
    "source",
    "target",
    "readonly",
    "id",
    "sharing",
    "required",
    "size",
    "mode",
    "uid",
    "gid",
    "src",
    "dst",
    "destination",
    "ro",
    "rw",
    "readwrite",
    "env",
];

fn invalid(message: String) -> Error {
    Error::InvalidValue { message }
}

/// The shell-word expander a mount's values go through.
type Expander<'a> = &'a dyn Fn(&str) -> Result<String>;

/// Reads the fields of `spec`. With `expand`, every value goes through it; without, values
/// holding `$` are deferred.
fn parse_fields(spec: &str, expand: Option<Expander<'_>>) -> Result<Mount> {
    let fields = crate::go_csv::fields(spec)
        .map_err(|e| invalid(format!("failed to parse csv mounts: {e}")))?;
    let mut m = Mount {
        spec: spec.to_string(),
        expanded: true,
        ..Mount::default()
    };
    let mut read_only_given = false;
    let mut kind_deferred = false;
    for field in fields {
        let Some((key, raw_value)) = field.split_once('=') else {
            match field.to_lowercase().as_str() {
                "readonly" | "ro" => {
                    m.read_only = true;
                    read_only_given = true;
                }
                "readwrite" | "rw" => {
                    m.read_only = false;
                    read_only_given = true;
                }
                "required" if kind_deferred => {}
                "required" if matches!(m.kind, MountType::Secret | MountType::Ssh) => {
                    m.required = true;
                }
                "required" => {
                    return Err(invalid(format!(
                        "unexpected key 'required' for mount type '{}'",
                        m.kind
                    )))
                }
                _ => {
                    return Err(invalid(format!(
                        "invalid field '{field}' must be a key=value pair"
                    )))
                }
            }
            continue;
        };
        let key = key.to_lowercase();
        let value = match expand {
            Some(expand) => expand(raw_value)?,
            None if raw_value.contains('$') => {
                if key == "from" && raw_value.find('$') != Some(raw_value.len() - 1) {
                    return Err(invalid(
                        "'from' doesn't support variable expansion, define alias stage instead"
                            .to_string(),
                    ));
                }
                m.expanded = false;
                kind_deferred |= key == "type";
                continue;
            }
            None => raw_value.to_string(),
        };
        let non_empty = |v: String| if v.is_empty() { None } else { Some(v) };
        match key.as_str() {
            "type" => {
                m.kind = match value.to_lowercase().as_str() {
                    "bind" => MountType::Bind,
                    "cache" => MountType::Cache,
                    "tmpfs" => MountType::Tmpfs,
                    "secret" => MountType::Secret,
                    "ssh" => MountType::Ssh,
                    _ => {
                        return Err(invalid(suggest::with_suggestion(
                            format!("unsupported mount type {value:?}"),
                            &value,
                            &["bind", "cache", "tmpfs", "secret", "ssh"],
                            true,
                        )))
                    }
                }
            }
            "from" => m.from = non_empty(value),
            "source" | "src" => m.source = non_empty(value),
            "target" | "dst" | "destination" => m.target = non_empty(value),
            "readonly" | "ro" => {
                m.read_only = parse_go_bool(&value).ok_or_else(|| invalid_value(&key, &value))?;
                read_only_given = true;
            }
            "readwrite" | "rw" => {
                let rw = parse_go_bool(&value).ok_or_else(|| invalid_value(&key, &value))?;
                m.read_only = !rw;
                read_only_given = true;
            }
            "required" if kind_deferred => {}
            "required" => {
                if !matches!(m.kind, MountType::Secret | MountType::Ssh) {
                    return Err(unexpected_for_kind(&key, m.kind));
                }
                m.required = parse_go_bool(&value).ok_or_else(|| invalid_value(&key, &value))?;
            }
            "size" if kind_deferred => {}
            "size" => {
                if m.kind != MountType::Tmpfs {
                    return Err(unexpected_for_kind(&key, m.kind));
                }
                m.size_limit =
                    Some(ram_in_bytes(&value).ok_or_else(|| invalid_value(&key, &value))?);
            }
            "id" => m.id = non_empty(value),
            "sharing" => {
                m.sharing = Some(match value.to_lowercase().as_str() {
                    "shared" => Sharing::Shared,
                    "private" => Sharing::Private,
                    "locked" => Sharing::Locked,
                    _ => {
                        return Err(invalid(suggest::with_suggestion(
                            format!("unsupported sharing value {value:?}"),
                            &value,
                            &["shared", "private", "locked"],
                            true,
                        )))
                    }
                })
            }
            "mode" => {
                m.mode = Some(
                    u32::from_str_radix(&value, 8)
                        .map_err(|_| invalid(format!("invalid value {value} for mode")))?,
                )
            }
            "uid" => {
                m.uid = Some(
                    value
                        .parse()
                        .map_err(|_| invalid(format!("invalid value {value} for uid")))?,
                )
            }
            "gid" => {
                m.gid = Some(
                    value
                        .parse()
                        .map_err(|_| invalid(format!("invalid value {value} for gid")))?,
                )
            }
            "env" => m.env = Some(value),
            _ => {
                return Err(invalid(suggest::with_suggestion(
                    format!("unexpected key '{key}' in '{field}'"),
                    &key,
                    ALL_KEYS,
                    true,
                )))
            }
        }
    }
    if !read_only_given {
        m.read_only = !matches!(m.kind, MountType::Cache | MountType::Tmpfs);
    }
    if m.expanded {
        validate(&m)?;
    }
    Ok(m)
}

/// The checks that look at several fields at once.
fn validate(m: &Mount) -> Result<()> {
    if !m.kind.allows_file_info() {
        for (name, given) in [("mode", m.mode), ("uid", m.uid), ("gid", m.gid)] {
            if given.is_some() {
                return Err(invalid(format!(
                    "{name} not allowed for {:?} type mounts",
                    m.kind.as_str()
                )));
            }
        }
    }
    if m.kind == MountType::Secret {
        if m.from.is_some() {
            return Err(invalid("secret mount should not have a from".to_string()));
        }
        if m.sharing.is_some() {
            return Err(invalid(
                "secret mount should not define sharing".to_string(),
            ));
        }
        if m.source.is_none() && m.target.is_none() && m.id.is_none() {
            return Err(invalid(
                "invalid secret mount. one of source, target required".to_string(),
            ));
        }
        if m.source.is_some() && m.id.is_some() {
            return Err(invalid("both source and id can't be set".to_string()));
        }
    }
    if m.sharing.is_some() && m.kind != MountType::Cache {
        return Err(invalid(format!(
            "invalid cache sharing set for {} mount",
            m.kind
        )));
    }
    Ok(())
}

fn invalid_value(key: &str, value: &str) -> Error {
    invalid(format!("invalid value for {key}: {value}"))
}

fn unexpected_for_kind(key: &str, kind: MountType) -> Error {
    invalid(format!("unexpected key '{key}' for mount type '{kind}'"))
}

/// Go's `strconv.ParseBool`.
pub(super) use crate::go_bool::parse as parse_go_bool;

/// A size like `64m`, `1.5GiB`, `512k` or `1024` in bytes, with binary (1024) multiples, as
/// docker's `RAMInBytes` reads it: digits (with an optional fraction), an optional space,
/// then optionally one of `kmgtp` (any case), an optional `i` and an optional `b`.
fn ram_in_bytes(value: &str) -> Option<u64> {
    let number_end = value
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(value.len());
    let (number, rest) = value.split_at(number_end);
    if number.is_empty()
        || !number.starts_with(|c: char| c.is_ascii_digit())
        || number.ends_with('.')
        || number.contains("..")
    {
        return None;
    }
    // Go's pattern allows `1.2.3`; its float parse then fails. Do the same.
    let number: f64 = number.parse().ok()?;
    let mut rest = rest.strip_prefix(' ').unwrap_or(rest);
    let mut multiplier: f64 = 1.0;
    if let Some(c) = rest.chars().next() {
        let power = match c.to_ascii_lowercase() {
            'k' => 1,
            'm' => 2,
            'g' => 3,
            't' => 4,
            'p' => 5,
            _ => 0,
        };
        if power > 0 {
            multiplier = 1024f64.powi(power);
            rest = &rest[1..];
        }
    }
    let rest = rest.strip_prefix(['i', 'I']).unwrap_or(rest);
    let rest = rest.strip_prefix(['b', 'B']).unwrap_or(rest);
    if !rest.is_empty() {
        return None;
    }
    let bytes = number * multiplier;
    // Truncation toward zero, as Go's int64 conversion does.
    (bytes.is_finite() && bytes < u64::MAX as f64).then_some(bytes as u64)
}

impl Mount {
    /// The options in a canonical order, defaults left out (`type=cache,target=/x`); the
    /// spec as written while values are unexpanded.
    pub fn canonical(&self) -> String {
        if !self.expanded {
            return self.spec.clone();
        }
        let mut parts = vec![format!("type={}", self.kind)];
        let mut push = |key: &str, value: &Option<String>| {
            if let Some(v) = value {
                parts.push(crate::go_csv::quote(&format!("{key}={v}")));
            }
        };
        push("from", &self.from);
        push("source", &self.source);
        push("target", &self.target);
        push("id", &self.id);
        push("env", &self.env);
        if let Some(sharing) = self.sharing {
            parts.push(format!("sharing={}", sharing.as_str()));
        }
        let default_read_only = !matches!(self.kind, MountType::Cache | MountType::Tmpfs);
        if self.read_only != default_read_only {
            parts.push(if self.read_only { "ro" } else { "rw" }.to_string());
        }
        if self.required {
            parts.push("required".to_string());
        }
        if let Some(size) = self.size_limit {
            parts.push(format!("size={size}"));
        }
        if let Some(mode) = self.mode {
            parts.push(format!("mode={mode:04o}"));
        }
        if let Some(uid) = self.uid {
            parts.push(format!("uid={uid}"));
        }
        if let Some(gid) = self.gid {
            parts.push(format!("gid={gid}"));
        }
        parts.join(",")
    }
}
