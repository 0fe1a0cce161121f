//! [`Platform`]: the os/architecture/variant an image runs on, as it appears in descriptors.

use serde::{Deserialize, Serialize};

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
