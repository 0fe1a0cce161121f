//! The one error type of this crate, [`RegistryError`]. Every variant names what was being done
//! and the object (file, registry, reference, digest) it was done to.

use std::path::PathBuf;

/// Everything that can go wrong talking to a registry or reading its settings and credentials.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The registry settings file could not be read.
    #[error("cannot read registry config {path}: {source}")]
    ConfigRead {
        /// The settings file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The registry settings file is not valid TOML or has a bad key or value.
    #[error("invalid registry config {path}: {key}: {message}")]
    ConfigInvalid {
        /// The settings file.
        path: PathBuf,
        /// The dotted key at fault (`registry."host".http`), or `(file)` for syntax errors.
        key: String,
        /// What is wrong with it.
        message: String,
    },
    /// A CA certificate or client key pair named by the settings could not be loaded.
    #[error("cannot load TLS material {path} for registry {host}: {message}")]
    Tls {
        /// The registry host the material is configured for.
        host: String,
        /// The PEM file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The docker config file (`config.json`) could not be read or written.
    #[error("cannot {action} docker config {path}: {source}")]
    DockerConfigIo {
        /// `read` or `write`.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The docker config file is not the JSON it should be.
    #[error("invalid docker config {path}: {message}")]
    DockerConfigInvalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A `docker-credential-<helper>` program failed.
    #[error("credential helper docker-credential-{helper} {action} for {host} failed: {message}")]
    CredentialHelper {
        /// The helper suffix (`pass`, `ecr-login`, ...).
        helper: String,
        /// `get`, `store` or `erase`.
        action: &'static str,
        /// The registry host asked about.
        host: String,
        /// Why.
        message: String,
    },
    /// A `WWW-Authenticate` header could not be understood.
    #[error(
        "registry {registry} sent an invalid WWW-Authenticate challenge {header:?}: {message}"
    )]
    BadChallenge {
        /// The registry host.
        registry: String,
        /// The header value.
        header: String,
        /// What is wrong with it.
        message: String,
    },
    /// Getting a bearer token from the registry's token service failed.
    #[error("cannot get a token for {scope:?} from {realm} (registry {registry}): {message}")]
    Token {
        /// The registry host.
        registry: String,
        /// The token service URL.
        realm: String,
        /// The scope asked for.
        scope: String,
        /// Why.
        message: String,
    },
    /// The registry refused our credentials (or wanted some and we had none).
    #[error("authentication to {registry} failed for {what}: {message}")]
    Unauthorized {
        /// The registry host.
        registry: String,
        /// The object the request was about.
        what: String,
        /// The registry's words, or ours.
        message: String,
    },
    /// The request could not be sent or its answer not read (connection, TLS, timeout).
    #[error("{method} {url} failed: {}", with_causes(source))]
    Http {
        /// HTTP method.
        method: String,
        /// Full URL.
        url: String,
        /// The transport error.
        source: reqwest::Error,
    },
    /// The registry answered with an unexpected status.
    #[error("{method} {url}: registry answered {status}{}", if message.is_empty() { String::new() } else { format!(": {message}") })]
    Status {
        /// HTTP method.
        method: String,
        /// Full URL.
        url: String,
        /// HTTP status code.
        status: u16,
        /// The Distribution error codes and messages, when the body carried them.
        message: String,
    },
    /// The manifest or blob does not exist on the registry.
    #[error("{what} not found on {registry}")]
    NotFound {
        /// The registry host.
        registry: String,
        /// The reference, digest or repository.
        what: String,
    },
    /// Bytes received do not match the digest or size they were asked for by.
    #[error("{kind} {digest} from {registry} is corrupt: {message}")]
    Mismatch {
        /// `blob` or `manifest`.
        kind: &'static str,
        /// The expected digest.
        digest: String,
        /// The registry host.
        registry: String,
        /// What differed (size or computed digest).
        message: String,
    },
    /// A manifest is larger than the limit we accept.
    #[error("manifest {reference} from {registry} is larger than {limit} bytes")]
    ManifestTooLarge {
        /// The reference or digest.
        reference: String,
        /// The registry host.
        registry: String,
        /// The limit in bytes.
        limit: u64,
    },
    /// The registry returned a manifest of a media type we cannot handle.
    #[error("manifest {reference} from {registry} has unsupported media type {media_type:?}")]
    UnsupportedMediaType {
        /// The reference.
        reference: String,
        /// The registry host.
        registry: String,
        /// The media type received.
        media_type: String,
    },
    /// A manifest or index is not valid JSON of its kind.
    #[error("invalid manifest {reference} from {registry}: {message}")]
    InvalidManifest {
        /// The reference or digest.
        reference: String,
        /// The registry host.
        registry: String,
        /// What is wrong.
        message: String,
    },
    /// No manifest in an index matches the platform asked for.
    #[error("no manifest for platform {platform} in {reference} (it has: {available})")]
    NoMatchingPlatform {
        /// The index reference.
        reference: String,
        /// The platform asked for.
        platform: String,
        /// The platforms the index lists.
        available: String,
    },
    /// The registry sent something that breaks the Distribution protocol.
    #[error("registry {registry} broke the protocol: {message}")]
    Protocol {
        /// The registry host.
        registry: String,
        /// What it did.
        message: String,
    },
    /// A local file to push could not be read.
    #[error("cannot read {path}: {source}")]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The content store refused a blob or could not be read.
    #[error("content store: {0}")]
    Content(#[from] hoist_content::Error),
    /// A streamed upload's producer stopped before the blob was complete (the session was
    /// cancelled: the registry holds nothing of it).
    #[error(
        "streamed upload to {repository} abandoned after {sent} bytes: the blob was not completed"
    )]
    StreamAbandoned {
        /// The repository.
        repository: String,
        /// Bytes sent before it stopped.
        sent: u64,
    },
    /// A background task failed (panicked or was cancelled).
    #[error("internal task failed: {0}")]
    Task(String),
}

/// This crate's result type.
pub type Result<T, E = RegistryError> = std::result::Result<T, E>;

/// A transport error with its causes (`error sending request: … invalid peer certificate:
/// UnknownIssuer`): reqwest's own text leaves out the TLS or connection error beneath it.
fn with_causes(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut cause = std::error::Error::source(error);
    while let Some(inner) = cause {
        let inner_text = inner.to_string();
        if !text.contains(&inner_text) {
            text.push_str(": ");
            text.push_str(&inner_text);
        }
        cause = inner.source();
    }
    text
}
