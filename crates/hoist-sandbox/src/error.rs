//! The one error type of `hoist-sandbox`.

use std::path::PathBuf;

/// Everything that can go wrong while preparing or running a sandboxed process. Messages are
/// lowercase and name the object involved (path, user, command, runtime binary).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file-system operation on the host side failed.
    #[error("failed to {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The user string (`USER` instruction) is not `name`, `uid`, `name:group` or `uid:gid`.
    #[error("invalid user {user:?}: {reason}")]
    InvalidUser { user: String, reason: &'static str },
    /// A user name was not found in the rootfs's `/etc/passwd`.
    #[error("unable to find user {name}: no matching entries in passwd file")]
    UnknownUser { name: String },
    /// A group name was not found in the rootfs's `/etc/group`.
    #[error("unable to find group {name}: no matching entries in group file")]
    UnknownGroup { name: String },
    /// A `--ulimit` value is not `name=soft[:hard]` with one of Docker's names (go-units'
    /// messages).
    #[error("{message}")]
    InvalidUlimit { message: String },
    /// The run spec cannot be executed as given (empty command, relative path, ...).
    #[error("invalid run spec: {reason}")]
    InvalidSpec { reason: String },
    /// Starting the sandbox helper or runtime binary failed.
    #[error("failed to start {program}: {source}")]
    Spawn {
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Talking to the sandbox helper process failed.
    #[error("failed to talk to the sandbox helper: {detail}")]
    Protocol { detail: String },
    /// The command is not in the container's `PATH` (or the path given does not exist).
    #[error("exec: {command:?}: executable file not found in $PATH")]
    CommandNotFound { command: String },
    /// Preparing the container (mounts, pivot_root, user switch, exec) failed inside the helper.
    #[error("failed to {step} in the sandbox: {detail}")]
    Setup { step: String, detail: String },
    /// The run was cancelled through its [`crate::CancelToken`]; its processes were killed.
    #[error("the run was cancelled")]
    Cancelled,
    /// The OCI runtime binary failed before the container process ran.
    #[error("{runtime} failed: {detail}")]
    Runtime { runtime: PathBuf, detail: String },
    /// A `binfmt_misc` entry or `binfmt.d` line could not be read, or registering failed.
    #[error("binfmt_misc {}: {reason}", path.display())]
    Binfmt { path: PathBuf, reason: String },
    /// No QEMU user-mode emulator for an architecture is installed.
    #[error(
        "no QEMU emulator for {arch} is installed (looked for {}): install Debian's package \
         qemu-user-static (apt-get install qemu-user-static)",
        tried.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    EmulatorMissing { arch: String, tried: Vec<PathBuf> },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
