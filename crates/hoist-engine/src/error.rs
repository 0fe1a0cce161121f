//! [`Error`]: everything the engine can fail with, naming the object that failed.

use std::path::PathBuf;

/// The engine's one error type.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A filesystem operation failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The Dockerfile could not be read or converted.
    #[error(transparent)]
    Dockerfile(#[from] hoist_dockerfile::Error),
    /// The frontend rejected the build.
    #[error(transparent)]
    Frontend(#[from] hoist_frontend::Error),
    /// The content store failed.
    #[error(transparent)]
    Content(#[from] hoist_content::Error),
    /// A snapshot operation failed.
    #[error(transparent)]
    Snapshot(#[from] hoist_snapshot::Error),
    /// The sandbox could not run a process.
    #[error(transparent)]
    Sandbox(#[from] hoist_sandbox::Error),
    /// A registry operation failed.
    #[error(transparent)]
    Registry(#[from] hoist_registry::RegistryError),
    /// Exporting the result failed.
    #[error(transparent)]
    Export(#[from] hoist_export::Error),
    /// An OCI document or reference was invalid.
    #[error(transparent)]
    Oci(#[from] hoist_oci::Error),
    /// A git source could not be resolved or checked out.
    #[error(transparent)]
    Git(#[from] hoist_git::Error),
    /// A build step failed: `step` is its name, `message` the op's error, `output` the last
    /// lines a failed process wrote, `location` the Dockerfile lines the step comes from.
    #[error("failed to solve: {message}")]
    Step {
        step: String,
        message: String,
        output: Vec<String>,
        location: Option<hoist_solver::SourceLines>,
    },
    /// A gc setting of the `--config` file is not valid: `key` is its TOML path
    /// (`worker.oci.gcpolicy[1].keepDuration`).
    #[error("invalid gc setting {key} in {}: {reason}", path.display())]
    GcConfig {
        path: PathBuf,
        key: String,
        reason: String,
    },
    /// A `--cache-to` / `--cache-from` value is not valid.
    #[error("invalid cache option {spec:?}: {reason}")]
    CacheOption { spec: String, reason: String },
    /// A cache import or export failed.
    #[error("cache {cache}: {reason}")]
    RemoteCache { cache: String, reason: String },
    /// An `oci-layout://` named context could not be imported.
    #[error("{layout}: {reason}")]
    OciLayout { layout: String, reason: String },
    /// A base image's config is not an image config.
    #[error("invalid image config {digest} of {reference}: {reason}")]
    ImageConfig {
        reference: String,
        digest: String,
        reason: String,
    },
    /// The solve failed other than in a step (cancelled, cache store failure).
    #[error("failed to solve: {0}")]
    Solve(Box<hoist_solver::Error>),
    /// A `RUN` exited with a failure.
    #[error("process \"{command}\" did not complete successfully: {status}")]
    RunFailed {
        command: String,
        status: hoist_sandbox::ExitStatus,
        /// The last lines the process wrote.
        output: Vec<String>,
    },
    /// A `COPY`/`ADD` source matched nothing.
    #[error("failed to compute cache key: \"{path}\": not found")]
    SourceNotFound { path: String },
    /// A copy met a file where it copies a directory (BuildKit refuses rather than replace
    /// it; a symlink to a directory is no directory here). `path` as the container sees it.
    #[error("cannot copy to non-directory: {path}")]
    CopyToNonDirectory { path: String },
    /// A copy met a directory where it copies a file. `path` as the container sees it.
    #[error("cannot replace to directory {path} with file")]
    CopyFileOverDirectory { path: String },
    /// A `COPY`/`ADD` source's wildcards are malformed (Go's `filepath.Match` grammar).
    #[error("invalid source pattern {pattern:?}: {source}")]
    SourcePattern {
        pattern: String,
        #[source]
        source: hoist_dockerfile::go_glob::BadPattern,
    },
    /// A `--chmod` value in a copy is neither octal nor a symbolic mode.
    #[error("invalid --chmod={mode}: not an octal or symbolic mode")]
    InvalidChmod { mode: String },
    /// A cache record on disk could not be read or written.
    #[error("cache record {}: {reason}", path.display())]
    CacheRecord { path: PathBuf, reason: String },
    /// A blob of the content store is not what the step needs (an image config that does
    /// not parse, a download of the wrong size).
    #[error("blob {digest}: {reason}")]
    InvalidBlob {
        digest: hoist_oci::Digest,
        reason: String,
    },
    /// Neither `--root`, nor `XDG_DATA_HOME`, nor `HOME` gave a state dir.
    #[error("cannot choose a state dir: HOME is not set to an absolute path (use --root)")]
    NoStateDir,
    /// The build asked for something the engine does not do yet.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// A `RUN` targets a platform this machine can neither run natively nor emulate.
    #[error(
        "{step}: cannot run binaries of platform {platform} on this machine, which runs {runs}: \
         no enabled binfmt_misc handler (QEMU emulator) matches it. To fix: register one with \
         `hoist binfmt --install {arch}` (needs Debian's package qemu-user-static), or \
         cross-compile in a stage `FROM --platform=$BUILDPLATFORM` so RUN steps run natively, \
         or build {platform} on a native node"
    )]
    PlatformUnavailable {
        /// The first step that would run (`[linux/s390x 2/2] RUN uname -m`).
        step: String,
        platform: String,
        /// The architecture name `hoist binfmt --install` takes.
        arch: String,
        /// The platforms that do run here, comma-separated.
        runs: String,
    },
    /// `--secret id=ID,src=FILE` names a file that cannot be read.
    #[error("secret {id}: cannot read {}: {source}", path.display())]
    SecretFile {
        id: String,
        path: PathBuf,
        source: std::io::Error,
    },
    /// `RUN --mount=type=secret,required=true` for a secret the build was not given.
    #[error("secret {id}: not found")]
    SecretNotFound { id: String },
    /// A build context could not be made a directory: a piped or downloaded archive that
    /// is not one or has an entry leaving its root, a remote context without the
    /// Dockerfile, a download that is neither archive nor text.
    #[error("unable to prepare context {input}: {reason}")]
    Context { input: String, reason: String },
    /// An `--ssh` agent cannot be used: no `$SSH_AUTH_SOCK`, a missing socket or key file,
    /// a key that does not parse.
    #[error("ssh agent {id}: {reason}")]
    SshAgent { id: String, reason: String },
    /// `RUN --mount=type=ssh,required=true` for an id the build was not given (BuildKit's
    /// words).
    #[error("no SSH key {id:?} forwarded from the client")]
    SshNotForwarded { id: String },
    /// The build's client could not give the secrets or SSH agents its steps mount
    /// (`BuildRequest::late_inputs`: a daemon asking its client's session).
    #[error("{0}")]
    LateInputs(String),
    /// A step needs an entitlement the build did not grant with `--allow` (BuildKit's words).
    #[error("failed to solve: {0} is not allowed")]
    EntitlementNotAllowed(&'static str),
    /// `--allow` names an entitlement hoist does not know.
    #[error("unknown entitlement {0}")]
    UnknownEntitlement(String),
    /// A download (`ADD <url>`, a remote context) could not be made (connection, TLS, a
    /// body cut short).
    #[error("failed to download {url}: {message}")]
    Download { url: String, message: String },
    /// A download's server (`ADD <url>`, a remote context) answered with a status that is
    /// not a success.
    #[error("failed to download {url}: invalid response status {status}")]
    DownloadStatus { url: String, status: u16 },
    /// The bytes of an `ADD --checksum=<digest> <url>` download hash to another digest.
    #[error("digest mismatch for {url}: {actual} (expected: {expected})")]
    ChecksumMismatch {
        url: String,
        expected: String,
        actual: String,
    },
    /// An `ADD --checksum` value is not a digest hoist can compute.
    #[error("invalid checksum {checksum:?} for {url}: {reason}")]
    InvalidChecksum {
        url: String,
        checksum: String,
        reason: String,
    },
    /// `--runtime` names an OCI runtime that is not there.
    #[error(
        "OCI runtime {runtime:?} not found{}: install runc or crun, or use --runtime=builtin",
        if runtime.contains('/') { "" } else { " in PATH" }
    )]
    RuntimeNotFound {
        /// The name or path given.
        runtime: String,
    },
    /// No build record has this id (buildx's words).
    #[error("no record found for ref {reference:?}")]
    HistoryNotFound { reference: String },
    /// A running build's record cannot be removed.
    #[error("build {reference} is still running")]
    HistoryRunning { reference: String },
    /// A build record or its log could not be read or written.
    #[error("build record {}: {reason}", path.display())]
    HistoryRecord { path: PathBuf, reason: String },
    /// A step's input was missing from the graph.
    #[error("invalid build graph: {0}")]
    InvalidGraph(String),
    /// A background task died.
    #[error("internal task failed: {0}")]
    Task(String),
}

impl Error {
    /// An [`Error::Io`] maker for `map_err`.
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io {
            action,
            path,
            source,
        }
    }

    /// The error of a failed solve: [`Error::Step`] for an op's own failure.
    pub(crate) fn from_solve(error: hoist_solver::Error) -> Error {
        match &error {
            hoist_solver::Error::Op { vertex, source } => Error::Step {
                step: vertex.name.to_string(),
                message: source.to_string(),
                output: match source.downcast_ref::<Error>() {
                    Some(Error::RunFailed { output, .. }) => output.clone(),
                    _ => Vec::new(),
                },
                location: vertex.location,
            },
            // A source that could not be resolved (an `ADD <url>` answering 404, say) is that
            // step's failure too, in BuildKit's words.
            hoist_solver::Error::CacheMap { vertex, source } => Error::Step {
                step: vertex.name.to_string(),
                message: format!("failed to load cache key: {source}"),
                output: Vec::new(),
                location: vertex.location,
            },
            _ => Error::Solve(Box::new(error)),
        }
    }
}

/// `Result` with the engine's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
