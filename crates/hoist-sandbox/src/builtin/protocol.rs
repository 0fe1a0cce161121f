//! What the host side and the helper process say to each other over the socket that is the
//! helper's stdin: one JSON [`InitRequest`] (then EOF), and back newline-separated
//! [`Report`]s.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::RunSpec;

/// Environment variable marking a process as the sandbox helper (see
/// [`crate::init_if_requested`]); its value is the pid of the process that started it.
pub const INIT_ENV: &str = "_HOIST_SANDBOX_INIT";

/// Everything the helper needs; the host paths are readable before `pivot_root`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct InitRequest {
    pub spec: RunSpec,
    /// The generated `/etc/hosts`, bind-mounted over the rootfs's.
    pub hosts: PathBuf,
    /// The generated `/etc/resolv.conf`, bind-mounted over the rootfs's.
    pub resolv_conf: PathBuf,
}

/// One message from the helper. A failure, when any, comes before the exit report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Report {
    /// `args[0]` was not found in the container's `PATH`.
    CommandNotFound { command: String },
    /// A setup step failed; nothing of the command ran.
    Failed { step: String, detail: String },
    /// The container's pid 1 exited with this code.
    Exited { code: i32 },
    /// The container's pid 1 was killed by this signal.
    Signaled { signal: i32 },
}

impl Report {
    pub(crate) fn failed(step: impl Into<String>, detail: impl std::fmt::Display) -> Self {
        Report::Failed {
            step: step.into(),
            detail: detail.to_string(),
        }
    }
}
