//! [`Platform`]: the os/architecture/variant an image runs on, parsed, formatted and
//! normalised like containerd/platforms (what BuildKit and buildx use for `--platform`), and
//! the [`MatchComparer`]s that choose a manifest from an index.
//!
//! Specifier syntax: `<os>|<arch>|<os>/<arch>[/<variant>]`, where the os part may carry
//! `(<os.version>[+<feature>...])`, percent-encoded. Normalisation: `aarch64` → `arm64`,
//! `arm64/v8` → `arm64`, `armhf` → `arm/v7`, `armel` → `arm/v6`, `x86_64` → `amd64`,
//! `i386` → `386`, `macos` → `darwin`, everything lower-cased.
//!
//! Parsing a bare os or arch fills in the host's ([`Platform::host`]); pass another host to
//! [`Platform::parse_with_host`] to make that explicit.

mod matcher;

use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub use matcher::{MatchComparer, Matcher};

/// A platform, serialised as OCI / Docker descriptors carry it (field order as Go's structs).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
pub struct Platform {
    /// CPU architecture (`amd64`, `arm64`, ...), GOARCH values.
    pub architecture: String,
    /// Operating system (`linux`, `windows`, ...), GOOS values.
    pub os: String,
    /// Operating system version (Windows build numbers).
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub os_version: String,
    /// Required operating system features (`win32k`).
    #[serde(rename = "os.features", default, skip_serializing_if = "Vec::is_empty")]
    pub os_features: Vec<String>,
    /// CPU variant (`v7`, `v8`, ...).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub variant: String,
    /// Docker manifest list `features` (deprecated CPU features such as `sse4`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<String>,
}

static OS_RE: LazyLock<Regex> = LazyLock::new(|| {
    // A constant pattern; a failure is a bug every platform test catches.
    Regex::new(r"^([A-Za-z0-9_-]+)(?:\(([A-Za-z0-9_.%-]*)((?:\+[A-Za-z0-9_.%-]+)*)\))?$")
        .expect("platform os regexp compiles")
});

fn is_specifier_component(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
}

/// Operating systems containerd knows (GOOS values).
pub fn is_known_os(os: &str) -> bool {
    matches!(
        os,
        "aix"
            | "android"
            | "darwin"
            | "dragonfly"
            | "freebsd"
            | "hurd"
            | "illumos"
            | "ios"
            | "js"
            | "linux"
            | "nacl"
            | "netbsd"
            | "openbsd"
            | "plan9"
            | "solaris"
            | "windows"
            | "zos"
    )
}

/// Architectures containerd knows (GOARCH values).
pub fn is_known_arch(arch: &str) -> bool {
    matches!(
        arch,
        "386"
            | "amd64"
            | "amd64p32"
            | "arm"
            | "armbe"
            | "arm64"
            | "arm64be"
            | "ppc64"
            | "ppc64le"
            | "loong64"
            | "mips"
            | "mipsle"
            | "mips64"
            | "mips64le"
            | "mips64p32"
            | "mips64p32le"
            | "ppc"
            | "riscv"
            | "riscv64"
            | "s390"
            | "s390x"
            | "sparc"
            | "sparc64"
            | "wasm"
    )
}

/// containerd's `normalizeOS`: lower-cased, `macos` → `darwin`, empty → the host's.
pub fn normalize_os(os: &str) -> String {
    if os.is_empty() {
        return host_os().to_owned();
    }
    let os = os.to_lowercase();
    if os == "macos" {
        "darwin".to_owned()
    } else {
        os
    }
}

/// containerd's `normalizeArch`: the canonical architecture and variant.
pub fn normalize_arch(arch: &str, variant: &str) -> (String, String) {
    let (arch, variant) = (arch.to_lowercase(), variant.to_lowercase());
    match arch.as_str() {
        "i386" => ("386".into(), String::new()),
        "x86_64" | "x86-64" | "amd64" => {
            let variant = if variant == "v1" {
                String::new()
            } else {
                variant
            };
            ("amd64".into(), variant)
        }
        "aarch64" | "arm64" => {
            let variant = match variant.as_str() {
                "8" | "v8" | "v8.0" => String::new(),
                "9" | "9.0" | "v9.0" => "v9".into(),
                _ => variant,
            };
            ("arm64".into(), variant)
        }
        "armhf" => ("arm".into(), "v7".into()),
        "armel" => ("arm".into(), "v6".into()),
        "arm" => {
            let variant = match variant.as_str() {
                "" | "7" => "v7".into(),
                "5" | "6" | "8" => format!("v{variant}"),
                _ => variant,
            };
            ("arm".into(), variant)
        }
        _ => (arch, variant),
    }
}

/// containerd's `getCPUVariantFromArch`: the ARM variant number of a `uname -m` style name
/// (`aarch64` → `8`, `armv7l` → `7`, unknown `armvN` → `unknown`).
pub fn cpu_variant_from_arch(arch: &str) -> Result<String> {
    let arch = arch.to_lowercase();
    if arch == "aarch64" {
        return Ok("8".into());
    }
    if arch.starts_with("armv") && arch.len() >= 5 {
        let variant = match &arch[3..5] {
            "v8" => "8",
            "v7" => "7",
            "v6" => "6",
            "v5" => "5",
            "v4" => "4",
            "v3" => "3",
            _ => "unknown",
        };
        return Ok(variant.into());
    }
    Err(Error::Platform {
        specifier: arch,
        reason: "not an arm architecture name".into(),
    })
}

fn host_os() -> &'static str {
    match std::env::consts::OS {
        "macos" => "darwin",
        other => other,
    }
}

fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "x86" => "386",
        "aarch64" => "arm64",
        "loongarch64" => "loong64",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "powerpc64" => "ppc64",
        "powerpc" => "ppc",
        "mips64" if cfg!(target_endian = "little") => "mips64le",
        "mips" if cfg!(target_endian = "little") => "mipsle",
        other => other,
    }
}

fn host_variant() -> &'static str {
    if std::env::consts::ARCH != "arm" {
        ""
    } else if cfg!(target_feature = "v7") {
        "v7"
    } else if cfg!(target_feature = "v6") {
        "v6"
    } else {
        "v5"
    }
}

/// Percent-encodes what FormatAll must not emit raw in os.version / os.features.
fn encode_os_option(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '%' => out.push_str("%25"),
            '+' => out.push_str("%2B"),
            '(' => out.push_str("%28"),
            ')' => out.push_str("%29"),
            '/' => out.push_str("%2F"),
            c => out.push(c),
        }
    }
    out
}

/// Go's `url.PathUnescape`, used only when the text holds a `%`.
fn decode_os_option(v: &str) -> Option<String> {
    if !v.contains('%') {
        return Some(v.to_owned());
    }
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

impl Platform {
    /// `os/architecture` with no variant.
    pub fn new(os: &str, architecture: &str) -> Self {
        Self {
            os: os.to_owned(),
            architecture: architecture.to_owned(),
            ..Self::default()
        }
    }

    /// The same platform with `variant`.
    pub fn with_variant(mut self, variant: &str) -> Self {
        self.variant = variant.to_owned();
        self
    }

    /// The platform hoist itself runs on, normalised (`linux/amd64`, `linux/arm64`,
    /// `linux/arm/v7`...), read from the compilation target.
    pub fn host() -> Self {
        let (architecture, variant) = normalize_arch(host_arch(), host_variant());
        Self {
            os: host_os().to_owned(),
            architecture,
            variant,
            ..Self::default()
        }
    }

    /// containerd's `Parse`, with the host's defaults for a bare os or arch.
    pub fn parse(specifier: &str) -> Result<Self> {
        Self::parse_with_host(specifier, &Self::host())
    }

    /// containerd's `Parse`, taking the defaults for a bare os or arch from `host`.
    pub fn parse_with_host(specifier: &str, host: &Platform) -> Result<Self> {
        let fail = |reason: &str| Error::Platform {
            specifier: specifier.to_owned(),
            reason: reason.to_owned(),
        };
        if specifier.contains('*') {
            return Err(fail("wildcards are not supported"));
        }
        let parts: Vec<&str> = specifier.splitn(4, '/').collect();
        let mut p = Platform::default();
        let caps = OS_RE
            .captures(parts[0])
            .ok_or_else(|| fail("the os component must match [A-Za-z0-9_-]+(version+features)"))?;
        p.os = normalize_os(caps.get(1).map_or("", |m| m.as_str()));
        p.os_version = decode_os_option(caps.get(2).map_or("", |m| m.as_str()))
            .ok_or_else(|| fail("invalid os version encoding"))?;
        if let Some(features) = caps.get(3).filter(|m| !m.as_str().is_empty()) {
            for raw in features.as_str()[1..].split('+') {
                let raw = raw.trim();
                if raw.is_empty() {
                    return Err(fail("empty os feature"));
                }
                let feature =
                    decode_os_option(raw).ok_or_else(|| fail("invalid os feature encoding"))?;
                if !feature.is_empty() {
                    p.os_features.push(feature);
                }
            }
        }
        for part in &parts[1..] {
            if !is_specifier_component(part) {
                return Err(fail("components must match [A-Za-z0-9_.-]+"));
            }
        }
        match parts.len() {
            1 => {
                if is_known_os(&p.os) {
                    p.architecture = host.architecture.clone();
                    if host.architecture == "arm" && host.variant != "v7" {
                        p.variant = host.variant.clone();
                    }
                    return Ok(p);
                }
                (p.architecture, p.variant) = normalize_arch(parts[0], "");
                if p.architecture == "arm" && p.variant == "v7" {
                    p.variant.clear();
                }
                if is_known_arch(&p.architecture) {
                    p.os = host.os.clone();
                    return Ok(p);
                }
                Err(fail("unknown operating system or architecture"))
            }
            2 => {
                (p.architecture, p.variant) = normalize_arch(parts[1], "");
                if p.architecture == "arm" && p.variant == "v7" {
                    p.variant.clear();
                }
                Ok(p)
            }
            3 => {
                (p.architecture, p.variant) = normalize_arch(parts[1], parts[2]);
                if p.architecture == "arm64" && p.variant.is_empty() {
                    p.variant = "v8".into();
                }
                Ok(p)
            }
            _ => Err(fail("too many components")),
        }
    }

    /// A comma-separated list as `--platform` takes it (`linux/amd64,linux/arm64`), each
    /// parsed with [`Platform::parse`] and normalised; empty items are skipped.
    pub fn parse_list(list: &str) -> Result<Vec<Self>> {
        list.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| Self::parse(s).map(|p| p.normalize()))
            .collect()
    }

    /// containerd's `Normalize`: canonical os, architecture and variant; os features sorted
    /// and de-duplicated.
    pub fn normalize(&self) -> Self {
        let mut p = self.clone();
        p.os = normalize_os(&p.os);
        (p.architecture, p.variant) = normalize_arch(&p.architecture, &p.variant);
        p.os_features.sort();
        p.os_features.dedup();
        p
    }

    /// containerd's `Format`: `os/arch[/variant]` (`unknown` without an os).
    pub fn format(&self) -> String {
        if self.os.is_empty() {
            return "unknown".into();
        }
        join_non_empty(&[&self.os, &self.architecture, &self.variant])
    }

    /// containerd's `FormatAll`: like [`Platform::format`] plus `(os.version+features)`.
    pub fn format_all(&self) -> String {
        if self.os.is_empty() {
            return "unknown".into();
        }
        let mut features: Vec<&str> = self
            .os_features
            .iter()
            .map(String::as_str)
            .filter(|f| !f.is_empty())
            .collect();
        features.sort_unstable();
        features.dedup();
        let osv = encode_os_option(&self.os_version);
        let mut os = self.os.clone();
        if !osv.is_empty() || !features.is_empty() {
            os.push('(');
            os.push_str(&osv);
            if !features.is_empty() {
                os.push('+');
                let encoded: Vec<String> = features.iter().map(|f| encode_os_option(f)).collect();
                os.push_str(&encoded.join("+"));
            }
            os.push(')');
        }
        join_non_empty(&[&os, &self.architecture, &self.variant])
    }
}

fn join_non_empty(parts: &[&str]) -> String {
    parts
        .iter()
        .filter(|p| !p.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join("/")
}

impl fmt::Display for Platform {
    /// [`Platform::format_all`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.format_all())
    }
}

impl FromStr for Platform {
    type Err = Error;
    /// [`Platform::parse`].
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_spellings_normalise() {
        let host = Platform::new("linux", "amd64");
        let p = |s| Platform::parse_with_host(s, &host).unwrap().normalize();
        assert_eq!(p("linux/arm64/v8").format(), "linux/arm64");
        assert_eq!(p("linux/aarch64").format(), "linux/arm64");
        assert_eq!(p("linux/armhf").format(), "linux/arm/v7");
        assert_eq!(p("linux/x86_64").format(), "linux/amd64");
        assert_eq!(p("arm64").format(), "linux/arm64");
        let list = Platform::parse_list("linux/amd64, linux/arm/v7,").unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[1].format(), "linux/arm/v7");
    }
}
