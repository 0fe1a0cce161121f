//! [`ImageConfig`]: the image config blob (OCI `application/vnd.oci.image.config.v1+json`, and
//! Docker's `application/vnd.docker.container.image.v1+json`, which is the same document with
//! Docker's extensions: `Healthcheck`, `OnBuild`, `Shell`).
//!
//! Top-level fields serialise in alphabetical order, as BuildKit writes configs (it marshals a
//! map); the nested `config`, `rootfs` and `history` objects follow the order of Go's structs.
//! Empty fields are left out except `config`, which Go always writes. `null` is accepted for
//! any list or map (Docker Hub configs carry `"Volumes": null`, `"OnBuild": null`).

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::platform::Platform;

fn null_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// The value type of `ExposedPorts` and `Volumes` (Go's `struct{}`), written as `{}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EmptyObject {}

/// The image config blob.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ImageConfig {
    /// CPU architecture (GOARCH).
    pub architecture: String,
    /// Who made the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// How to run a container from the image.
    #[serde(default, deserialize_with = "null_default")]
    pub config: ContainerConfig,
    /// When the image was created (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// One entry per build step, `empty_layer` for those without a layer.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub history: Vec<History>,
    /// Operating system (GOOS).
    pub os: String,
    /// Required operating system features.
    #[serde(
        rename = "os.features",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub os_features: Vec<String>,
    /// Operating system version.
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    /// The layers' uncompressed digests, base first.
    pub rootfs: RootFs,
    /// CPU variant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// The `rootfs` object: the diff IDs (digests of the uncompressed layer tars).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootFs {
    /// Always `layers`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Digests of the uncompressed layers, base first.
    #[serde(deserialize_with = "null_default")]
    pub diff_ids: Vec<Digest>,
}

impl Default for RootFs {
    fn default() -> Self {
        Self {
            kind: "layers".to_owned(),
            diff_ids: Vec::new(),
        }
    }
}

/// One build step in the image history.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct History {
    /// When the step ran (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// The command of the step (`RUN /bin/sh -c ...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// Who made the step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// A comment (`buildkit.dockerfile.v0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// The step made no layer.
    #[serde(default, skip_serializing_if = "is_false")]
    pub empty_layer: bool,
}

/// The `config` object: how to run a container (OCI `ImageConfig` + Docker's extensions).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ContainerConfig {
    /// `USER`.
    #[serde(rename = "User", default, skip_serializing_if = "String::is_empty")]
    pub user: String,
    /// `EXPOSE`: `80/tcp` → `{}`.
    #[serde(
        rename = "ExposedPorts",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub exposed_ports: BTreeMap<String, EmptyObject>,
    /// `ENV`: `KEY=value` entries.
    #[serde(
        rename = "Env",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub env: Vec<String>,
    /// `ENTRYPOINT`.
    #[serde(
        rename = "Entrypoint",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub entrypoint: Vec<String>,
    /// `CMD`.
    #[serde(
        rename = "Cmd",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub cmd: Vec<String>,
    /// `VOLUME`: path → `{}`.
    #[serde(
        rename = "Volumes",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub volumes: BTreeMap<String, EmptyObject>,
    /// `WORKDIR`.
    #[serde(
        rename = "WorkingDir",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub working_dir: String,
    /// `LABEL`.
    #[serde(
        rename = "Labels",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub labels: BTreeMap<String, String>,
    /// `STOPSIGNAL`.
    #[serde(
        rename = "StopSignal",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub stop_signal: String,
    /// Windows: the command line is already escaped.
    #[serde(rename = "ArgsEscaped", default, skip_serializing_if = "is_false")]
    pub args_escaped: bool,
    /// `HEALTHCHECK` (Docker).
    #[serde(
        rename = "Healthcheck",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub healthcheck: Option<Healthcheck>,
    /// `ONBUILD` triggers (Docker).
    #[serde(
        rename = "OnBuild",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub on_build: Vec<String>,
    /// `SHELL` (Docker).
    #[serde(
        rename = "Shell",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub shell: Vec<String>,
}

/// Docker's `HEALTHCHECK` settings; durations in nanoseconds as Go's `time.Duration`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Healthcheck {
    /// `["NONE"]`, `["CMD", args...]` or `["CMD-SHELL", command]`.
    #[serde(
        rename = "Test",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub test: Vec<String>,
    /// Time between checks (ns).
    #[serde(rename = "Interval", default, skip_serializing_if = "is_zero")]
    pub interval: i64,
    /// Time a check may take (ns).
    #[serde(rename = "Timeout", default, skip_serializing_if = "is_zero")]
    pub timeout: i64,
    /// Start-up grace period (ns).
    #[serde(rename = "StartPeriod", default, skip_serializing_if = "is_zero")]
    pub start_period: i64,
    /// Time between checks during the start period (ns).
    #[serde(rename = "StartInterval", default, skip_serializing_if = "is_zero")]
    pub start_interval: i64,
    /// Failures before unhealthy.
    #[serde(rename = "Retries", default, skip_serializing_if = "is_zero")]
    pub retries: i64,
}

fn invalid(reason: String) -> Error {
    Error::Invalid {
        kind: "image config",
        reason,
    }
}

/// A time as RFC 3339 in UTC, as Go's `time.Time` marshals it (`RFC3339Nano`): Unix
/// seconds `secs` plus `nanos`, the fraction without trailing zeros and left out when
/// zero (`2024-01-02T03:04:05Z`, `2024-01-02T03:04:05.5Z`). Image configs and their
/// history entries date themselves with it.
pub fn format_rfc3339(secs: i64, nanos: u32) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let fraction = match nanos.min(999_999_999) {
        0 => String::new(),
        n => format!(".{n:09}").trim_end_matches('0').to_owned(),
    };
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}{fraction}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Whether `s` is an RFC 3339 date-time (`2015-10-31T22:22:56.015925234Z`, offsets allowed).
fn is_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    if b.len() < 20
        || !digits(0..4)
        || b[4] != b'-'
        || !digits(5..7)
        || b[7] != b'-'
        || !digits(8..10)
        || !matches!(b[10], b'T' | b't' | b' ')
        || !digits(11..13)
        || b[13] != b':'
        || !digits(14..16)
        || b[16] != b':'
        || !digits(17..19)
    {
        return false;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return false;
        }
        rest = &frac[n..];
    }
    match rest.as_bytes() {
        [b'Z' | b'z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => [h1, h2, m1, m2].iter().all(|d| d.is_ascii_digit()),
        _ => false,
    }
}

impl ImageConfig {
    /// A config for `platform` with no layers.
    pub fn new(platform: &Platform) -> Self {
        Self {
            architecture: platform.architecture.clone(),
            os: platform.os.clone(),
            variant: (!platform.variant.is_empty()).then(|| platform.variant.clone()),
            os_version: (!platform.os_version.is_empty()).then(|| platform.os_version.clone()),
            os_features: platform.os_features.clone(),
            ..Self::default()
        }
    }

    /// The platform this config is for.
    pub fn platform(&self) -> Platform {
        Platform {
            architecture: self.architecture.clone(),
            os: self.os.clone(),
            os_version: self.os_version.clone().unwrap_or_default(),
            os_features: self.os_features.clone(),
            variant: self.variant.clone().unwrap_or_default(),
            features: Vec::new(),
        }
    }

    /// Checks what the OCI config schema and validator check beyond types: `Env` entries
    /// are `KEY=value`, dates are RFC 3339, `rootfs.type` is `layers`.
    pub fn validate(&self) -> Result<()> {
        for env in &self.config.env {
            if env.find('=').is_none_or(|i| i == 0) {
                return Err(invalid(format!("env entry {env:?} is not KEY=value")));
            }
        }
        let dates = self
            .created
            .iter()
            .chain(self.history.iter().filter_map(|h| h.created.as_ref()));
        for date in dates {
            if !is_rfc3339(date) {
                return Err(invalid(format!("{date:?} is not an RFC 3339 date-time")));
            }
        }
        if self.rootfs.kind != "layers" {
            return Err(invalid(format!(
                "rootfs type is {:?}, not \"layers\"",
                self.rootfs.kind
            )));
        }
        Ok(())
    }

    /// How many history entries made a layer (should equal the number of diff IDs).
    pub fn non_empty_history_len(&self) -> usize {
        self.history.iter().filter(|h| !h.empty_layer).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_format_as_go_rfc3339_nano() {
        assert_eq!(format_rfc3339(0, 0), "1970-01-01T00:00:00Z");
        assert_eq!(format_rfc3339(1_700_000_000, 0), "2023-11-14T22:13:20Z");
        assert_eq!(format_rfc3339(951_782_400, 0), "2000-02-29T00:00:00Z");
        assert_eq!(
            format_rfc3339(1_700_000_000, 15_925_234),
            "2023-11-14T22:13:20.015925234Z"
        );
        assert_eq!(
            format_rfc3339(1_700_000_000, 500_000_000),
            "2023-11-14T22:13:20.5Z"
        );
        assert!(is_rfc3339(&format_rfc3339(1_700_000_000, 1)));
    }

    #[test]
    fn rfc3339_dates() {
        assert!(is_rfc3339("2015-10-31T22:22:56.015925234Z"));
        assert!(is_rfc3339("2015-10-31T22:22:56+01:00"));
        assert!(!is_rfc3339("2015-10-31 22:22"));
        assert!(!is_rfc3339("yesterday"));
    }

    #[test]
    fn empty_config_keeps_config_object() {
        let c = ImageConfig::new(&Platform::new("linux", "amd64"));
        let bytes = crate::go_json::to_vec(&c).unwrap();
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            r#"{"architecture":"amd64","config":{},"os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#
        );
    }
}
