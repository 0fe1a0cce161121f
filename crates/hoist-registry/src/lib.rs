//! A client for the OCI Distribution API (Docker Registry HTTP API v2) that never loses a
//! byte: every manifest and blob is checked against its digest and size before anything is
//! stored, transfers stream (nothing is held whole in memory except manifests, capped at
//! 4 MiB), and failures leave the content store as it was.
//!
//! # Principal types
//!
//! - [`RegistryClient`]: `RegistryClient::new(RegistryConfig, Credentials)`; cheap to clone,
//!   shares connections and tokens. Its operations:
//!   - [`RegistryClient::resolve`]`(&Reference) -> `[`Resolved`]` { descriptor, bytes }`:
//!     `HEAD` then `GET` by digest, negotiated over OCI index / OCI manifest / Docker list /
//!     Docker v2 manifest, bytes verified against the digest and `Docker-Content-Digest`;
//!   - [`RegistryClient::fetch_manifest`]`(&Repository, &Descriptor)`,
//!     [`RegistryClient::head_manifest`];
//!   - [`RegistryClient::pull_image`]`(&Reference, &Platform, &ContentStore) -> `[`PulledImage`]
//!     (platform chosen from an index with `hoist_oci::MatchComparer::only`), and
//!     [`RegistryClient::pull_all`] for every platform;
//!   - [`RegistryClient::fetch_blob`] (streamed into the store, verified),
//!     [`RegistryClient::fetch_blob_bytes`] (small blobs into memory);
//!   - [`RegistryClient::blob_exists`], [`RegistryClient::mount_blob`],
//!     [`RegistryClient::push_blob`] / [`RegistryClient::push_blob_or_mount`]
//!     (a [`BlobSource`]: a content-store blob, a file or bytes; one `PUT` for small blobs, `PATCH` chunks for large);
//!   - [`RegistryClient::push_manifest`]`(&Reference, bytes, MediaType)` (by tag, or by
//!     digest when the reference has no tag), [`RegistryClient::tag`];
//!   - [`RegistryClient::push_image`] / [`RegistryClient::push_image_with`]: an image or
//!     index from the store, children first, with optional cross-repository mounts
//!     ([`PushOptions`]);
//!   - [`RegistryClient::copy_image`]`(&Reference, &Reference, &ContentStore)`: an image or
//!     index from one repository to another (blobs mounted within a registry, passed through
//!     the store across registries), as `imagetools create` needs.
//! - [`Repository`]: a registry host plus repository path (`docker.io` + `library/busybox`).
//! - [`RegistryConfig`] (settings: [`HostConfig`] per host from a buildkitd.toml-shaped file
//!   via [`RegistryConfig::load`], [`RetryPolicy`], concurrency, chunk sizes, manifest limit).
//! - [`retry`]: the one retry policy of hoist's HTTP code ([`RetryPolicy`], [`retry::Attempts`],
//!   `Retry-After`, which failures are retryable), also used by the engine's `ADD <url>`.
//! - [`RegistryConfig::http_client`]: the HTTP client for a host as this config sets it up
//!   (user agent, timeouts, the host's CAs, `insecure`, client certificate).
//! - [`ProgressHook`] (in [`RegistryConfig::progress`]): [`TransferEvent`]s as blobs move.
//! - [`Credentials`] (overrides plus the docker `config.json`, its `credsStore` and
//!   `credHelpers`), [`Auth`], [`DockerConfigFile`].
//! - [`login`] / [`login_with`] and [`logout`] / [`logout_with`]: verify and store
//!   credentials in the docker config.
//! - [`RegistryError`]: the one error type; every variant names the registry and the object.
//!
//! # Behaviour worth knowing
//!
//! - Hosts on loopback (`localhost`, `127.0.0.0/8`, `::1`) may speak plain HTTP without
//!   configuration: HTTPS is tried first, as Docker does.
//! - Auth: anonymous, Basic, or Bearer tokens from the realm the registry's
//!   `WWW-Authenticate` challenge names, for scopes `repository:<path>:pull[,push]`, cached
//!   per registry and scope set until shortly before they expire.
//! - Retries: idempotent requests (GET, HEAD, PUT of manifests, mounts) are retried on
//!   connection errors, 429 (honouring `Retry-After`, capped at the policy's `max_delay`)
//!   and 5xx with exponential backoff; a blob download cut mid-way resumes with a `Range`
//!   request; a chunked upload that fails resumes at the offset the registry reports for
//!   the session (a new session only when the registry lost it), a single-`PUT` one restarts
//!   in a new session.
//!   Digest or size mismatches are never retried and never stored.
//! - Mirrors (`[registry."host"] mirrors = [...]`) are tried in order for pulls only.
//! - A reference naming a single manifest is pulled whatever its platform (as BuildKit does,
//!   leaving any warning to the caller, who has [`PulledImage::config`]).
//! - Not done: the referrers API, tag listing, OAuth password grants (identity tokens are
//!   exchanged with the refresh-token grant), resuming a broken upload session (it is
//!   restarted instead).
//!
//! ```no_run
//! # async fn demo() -> Result<(), hoist_registry::RegistryError> {
//! use hoist_registry::{Credentials, RegistryClient, RegistryConfig};
//! let client = RegistryClient::new(RegistryConfig::default(), Credentials::from_docker_config());
//! let reference = hoist_oci::Reference::parse_docker("localhost:5000/app:1").unwrap();
//! let store = hoist_content::ContentStore::open("/tmp/hoist-state").unwrap();
//! let image = client
//!     .pull_image(&reference, &hoist_oci::Platform::host(), &store)
//!     .await?;
//! println!("{} layers", image.layers.len());
//! # Ok(()) }
//! ```

pub mod auth;
mod client;
pub mod config;
pub mod credentials;
mod download;
mod error;
mod image;
mod login;
mod manifest;
pub mod progress;
pub mod retry;
mod upload;

use std::fmt;

pub use client::{RegistryClient, DOCKER_HUB_API_HOST};
pub use config::{HostConfig, KeyPair, RegistryConfig};
pub use credentials::{Auth, CredentialSource, Credentials, DockerConfigFile};
pub use error::{RegistryError, Result};
pub use image::{PulledImage, PushOptions};
pub use login::{login, login_with, logout, logout_with, LoginOptions};
pub use manifest::{Resolved, DOCKER_CONTENT_DIGEST, MANIFEST_MEDIA_TYPES};
pub use progress::{Direction, ProgressHook, TransferEvent, TransferOutcome};
pub use retry::RetryPolicy;
pub use upload::{BlobSource, PushOutcome, StreamPiece};

/// A repository on a registry: the host as written in references (`docker.io`,
/// `localhost:5000`) and the path within it (`library/busybox`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Repository {
    /// The registry host (`docker.io` for Docker Hub).
    pub registry: String,
    /// The repository path.
    pub path: String,
}

impl Repository {
    /// A repository from its parts.
    pub fn new(registry: impl Into<String>, path: impl Into<String>) -> Self {
        Repository {
            registry: registry.into(),
            path: path.into(),
        }
    }
}

impl From<&Reference> for Repository {
    /// The repository of a reference; a reference without a domain is on Docker Hub.
    fn from(reference: &Reference) -> Self {
        let registry = if reference.domain().is_empty() {
            hoist_oci::reference::DEFAULT_DOMAIN
        } else {
            reference.domain()
        };
        Repository::new(registry, reference.path())
    }
}

impl fmt::Display for Repository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.path)
    }
}

use hoist_oci::Reference;
