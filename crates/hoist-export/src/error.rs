//! [`Error`]: everything that can fail while parsing outputs and exporting images.

use std::io;
use std::path::PathBuf;

/// Errors from `hoist-export`. Each variant names the output, key, path or image it failed on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An `-o` value is not well formed.
    #[error("invalid output {spec:?}: {reason}")]
    OutputSyntax {
        /// The value as given.
        spec: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A key of an `-o` value is unknown, or its value does not parse.
    #[error("{output} output: invalid {key}={value:?}: {reason}")]
    OutputKey {
        /// The output type (`image`, `oci`, ...).
        output: String,
        /// The key.
        key: String,
        /// Its value.
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// An output's destination is missing or not allowed (buildx's messages).
    #[error("{reason}")]
    OutputDest {
        /// The output type.
        output: String,
        /// buildx's message.
        reason: String,
    },
    /// A `--annotation` value does not parse (buildx's messages).
    #[error("invalid annotation {value:?}: {reason}")]
    AnnotationFlag {
        /// The value as given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// More than one output writes to stdout.
    #[error("multiple outputs configured to write to stdout")]
    MultipleStdout,
    /// A tar would be written to a terminal.
    #[error("dest file is required for {output} exporter. refusing to write to console")]
    StdoutIsTerminal {
        /// The output type.
        output: String,
    },
    /// The request cannot be exported as asked (no images, too many platforms, ...).
    #[error("{0}")]
    Unsupported(String),
    /// An image given to export is inconsistent (layers against config).
    #[error("image for {platform}: {reason}")]
    InvalidImage {
        /// The image's platform.
        platform: String,
        /// What is wrong.
        reason: String,
    },
    /// A filesystem call on a path failed.
    #[error("failed to {action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Copying a final filesystem into a `local` destination failed.
    #[error("failed to copy the filesystem to {dest}: {source}")]
    CopyTree {
        /// The destination directory.
        dest: PathBuf,
        /// The underlying error.
        #[source]
        source: hoist_snapshot::Error,
    },
    /// Writing to standard output failed.
    #[error("failed to write to stdout: {0}")]
    Stdout(#[source] io::Error),
    /// The content store failed.
    #[error(transparent)]
    Content(#[from] hoist_content::Error),
    /// Building or writing an OCI document or layout failed.
    #[error(transparent)]
    Oci(#[from] hoist_oci::Error),
    /// Recompressing a layer failed.
    #[error("failed to recompress layer {digest}: {source}")]
    Recompress {
        /// The layer's blob.
        digest: hoist_oci::Digest,
        /// The underlying error.
        #[source]
        source: hoist_snapshot::Error,
    },
    /// Rewriting a layer's file times (`rewrite-timestamp=true`) failed.
    #[error("failed to rewrite the file times of layer {digest} to {epoch}: {source}")]
    RewriteTimestamp {
        /// The layer's blob.
        digest: hoist_oci::Digest,
        /// The epoch the times were clamped to.
        epoch: i64,
        /// The underlying error (reading the layer, a malformed tar, writing the blob).
        #[source]
        source: io::Error,
    },
    /// Fetching a base layer the build never fetched, for an output that needs its bytes.
    #[error("failed to fetch layer {digest} from {repository}: {source}")]
    FetchLayer {
        digest: String,
        repository: String,
        #[source]
        source: Box<hoist_registry::RegistryError>,
    },

    /// Pushing failed.
    #[error("failed to push {reference}: {source}")]
    Push {
        /// The name pushed.
        reference: String,
        /// The underlying error.
        #[source]
        source: hoist_registry::RegistryError,
    },
    /// A push was asked for but the exporter has no registry client.
    #[error("cannot push {reference}: the exporter was built without a registry client")]
    NoRegistryClient {
        /// The name to push.
        reference: String,
    },
    /// The Docker daemon could not be reached.
    #[error(
        "failed to load the image into Docker: cannot connect to the Docker daemon at \
         {endpoint}: {source} (is the docker daemon running? use -o type=docker,dest=<file> \
         to write an archive instead)"
    )]
    DockerUnreachable {
        /// The API endpoint (`unix:///var/run/docker.sock`, `tcp://host:port`).
        endpoint: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The Docker daemon refused the load.
    #[error("failed to load the image into Docker at {endpoint}: {message}")]
    DockerLoad {
        /// The API endpoint.
        endpoint: String,
        /// What the daemon said, or what failed in the exchange.
        message: String,
    },
    /// `DOCKER_HOST` (or a context's endpoint) is not a daemon address hoist can use.
    #[error("invalid docker host {host:?}: {reason}")]
    DockerHost {
        /// The value.
        host: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The docker CLI's config or the current context's metadata could not be read.
    #[error("cannot find the docker daemon from {path}: {reason}")]
    DockerContext {
        /// The file read.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// A blocking task panicked or was cancelled.
    #[error("export task failed: {0}")]
    Task(String),
}

impl Error {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| Error::Io {
            action,
            path,
            source,
        }
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
