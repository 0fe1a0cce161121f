//! The one error type of the fixtures: what could not be made, and from which file or command.

use std::path::PathBuf;

/// A fixture that could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TestkitError {
    /// A tool the fixture runs is not installed.
    #[error("{tool} is not installed ({install})")]
    MissingTool {
        /// The program looked for in `PATH`.
        tool: &'static str,
        /// The command that installs it.
        install: &'static str,
    },
    /// The `busybox-static` package for an architecture has not been downloaded.
    #[error("no busybox-static .deb for {deb_arch} in {dir} ({install})")]
    MissingDeb {
        /// Debian's architecture name (`amd64`, `arm64`, `armhf`).
        deb_arch: &'static str,
        /// The cache directory searched.
        dir: PathBuf,
        /// The command that downloads it.
        install: String,
    },
    /// An architecture the base images do not cover.
    #[error("unknown base image architecture {0:?} (known: amd64, arm64, arm)")]
    UnknownArch(String),
    /// A file operation failed.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was being done (`read`, `write`, `create directory`, ...).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A command ran but failed.
    #[error("{command} failed ({status}): {stderr}")]
    Command {
        /// The command line, for the message.
        command: String,
        /// How it ended.
        status: String,
        /// What it said on stderr.
        stderr: String,
    },
    /// A JSON file of the conformance data does not read as expected.
    #[error("cannot parse {path}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// A conformance case is inconsistent (a listed file is missing, a path leaves its folder).
    #[error("conformance case {case}: {message}")]
    Case {
        /// The case id (`08-copy-chown`).
        case: String,
        /// What is wrong.
        message: String,
    },
    /// Images were to be pushed to no repository at all.
    #[error("no repository to push the base images to")]
    NoRepository,
    /// An OCI document could not be made.
    #[error(transparent)]
    Oci(#[from] hoist_oci::Error),
    /// A registry operation failed.
    #[error(transparent)]
    Registry(#[from] hoist_registry::RegistryError),
}

impl TestkitError {
    /// Whether the machine merely lacks something a test may skip for (a tool, a package).
    pub fn is_missing_prerequisite(&self) -> bool {
        matches!(
            self,
            TestkitError::MissingTool { .. } | TestkitError::MissingDeb { .. }
        )
    }

    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| TestkitError::Io {
            action,
            path,
            source,
        }
    }
}

/// The result type of the fixtures.
pub type Result<T, E = TestkitError> = std::result::Result<T, E>;
