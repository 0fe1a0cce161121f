//! Manifests on the wire: resolving a reference (`HEAD`, then `GET` by the digest it gave),
//! content negotiation over the four image manifest types, verification of every byte
//! against the digest asked for (and `Docker-Content-Digest`), the size limit, and pushing
//! manifests by tag or by digest.

use std::collections::BTreeSet;

use bytes::{Bytes, BytesMut};
use hoist_oci::{media_types, Descriptor, Digest, MediaType, Reference};
use reqwest::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE};
use reqwest::Method;

use crate::auth::repository_scope;
use crate::client::{check_status, Body, Call, RegistryClient};
use crate::error::{RegistryError, Result};
use crate::Repository;

/// The manifest media types asked for, best first: OCI index, OCI manifest, Docker manifest
/// list, Docker schema 2 manifest.
pub const MANIFEST_MEDIA_TYPES: [&str; 4] = [
    media_types::OCI_INDEX,
    media_types::OCI_MANIFEST,
    media_types::DOCKER_MANIFEST_LIST,
    media_types::DOCKER_MANIFEST,
];

/// The header carrying the registry's digest of a manifest or blob.
pub const DOCKER_CONTENT_DIGEST: &str = "docker-content-digest";

/// A manifest or index as fetched: its descriptor (media type, digest of exactly these
/// bytes, size) and the bytes themselves.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// Media type, digest and size of `bytes`.
    pub descriptor: Descriptor,
    /// The manifest exactly as the registry sent it (digest-verified).
    pub bytes: Bytes,
}

impl Resolved {
    /// Whether this is an image index or Docker manifest list.
    pub fn is_index(&self) -> bool {
        is_index_type(&self.descriptor.media_type)
    }
}

pub(crate) fn is_index_type(media_type: &MediaType) -> bool {
    matches!(
        media_type,
        MediaType::OciIndex | MediaType::DockerManifestList
    )
}

fn accept_header() -> String {
    MANIFEST_MEDIA_TYPES.join(", ")
}

/// What a manifest is expected to be, when known.
#[derive(Debug, Clone, Default)]
pub(crate) struct ExpectedManifest {
    pub(crate) digest: Option<Digest>,
    pub(crate) size: Option<u64>,
}

impl RegistryClient {
    /// Resolves `reference` to the manifest or index it names: `HEAD` for the digest, then
    /// `GET` by that digest, checking the bytes against it. A reference with a digest is
    /// fetched and checked directly. Mirrors are tried first for pulls.
    pub async fn resolve(&self, reference: &Reference) -> Result<Resolved> {
        let repo = Repository::from(reference);
        let target = reference
            .tag_or_digest()
            .map(str::to_owned)
            .unwrap_or_else(|| hoist_oci::reference::DEFAULT_TAG.to_owned());
        let expected = ExpectedManifest {
            digest: reference.digest().cloned(),
            size: None,
        };
        self.try_pull_hosts(&repo, |client, host| {
            let repo = repo.clone();
            let target = target.clone();
            let expected = expected.clone();
            async move { client.resolve_on(&host, &repo, &target, expected).await }
        })
        .await
    }

    /// Fetches the manifest or index `descriptor` describes from `repository`, checking digest
    /// and size against the descriptor.
    pub async fn fetch_manifest(
        &self,
        repository: &Repository,
        descriptor: &Descriptor,
    ) -> Result<Resolved> {
        let expected = ExpectedManifest {
            digest: Some(descriptor.digest.clone()),
            size: Some(descriptor.size),
        };
        let target = descriptor.digest.to_string();
        self.try_pull_hosts(repository, |client, host| {
            let repo = repository.clone();
            let target = target.clone();
            let expected = expected.clone();
            async move { client.get_manifest(&host, &repo, &target, expected).await }
        })
        .await
    }

    /// `HEAD` of a manifest: its descriptor as the registry reports it (no bytes are fetched
    /// or verified), or `None` when it does not exist.
    pub async fn head_manifest(&self, reference: &Reference) -> Result<Option<Descriptor>> {
        let repo = Repository::from(reference);
        let target = reference
            .tag_or_digest()
            .unwrap_or(hoist_oci::reference::DEFAULT_TAG);
        match self.head_manifest_on(&repo.registry, &repo, target).await {
            Ok(desc) => Ok(desc),
            Err(RegistryError::NotFound { .. }) => Ok(None),
            Err(err) => Err(err),
        }
    }

    async fn head_manifest_on(
        &self,
        host: &str,
        repo: &Repository,
        target: &str,
    ) -> Result<Option<Descriptor>> {
        let state = self.host(host).await?;
        let url = self.api_url(&state, &repo.path, &format!("manifests/{target}"))?;
        let scopes: BTreeSet<String> = [repository_scope(&repo.path, false)].into();
        let call = Call::new(Method::HEAD, url, scopes).header(ACCEPT, &accept_header());
        let resp = self.send(&state, &call).await?;
        let what = format!("manifest {repo}:{target}");
        let resp = check_status(host, &what, &Method::HEAD, resp).await?;
        let headers = resp.headers();
        let Some(digest) = header_digest(headers) else {
            return Ok(None);
        };
        let size = headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let media_type = headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(bare_media_type);
        match (size, media_type) {
            (Some(size), Some(media_type)) => Ok(Some(Descriptor::new(
                MediaType::from_string(media_type),
                digest,
                size,
            ))),
            _ => Ok(None),
        }
    }

    async fn resolve_on(
        &self,
        host: &str,
        repo: &Repository,
        target: &str,
        mut expected: ExpectedManifest,
    ) -> Result<Resolved> {
        if expected.digest.is_none() {
            // HEAD first: cheap, and the tag cannot move between what we learn and fetch.
            // Registries that do not answer HEAD properly are simply asked with GET.
            if let Ok(Some(desc)) = self.head_manifest_on(host, repo, target).await {
                if desc.size > self.inner.config.max_manifest_size {
                    return Err(RegistryError::ManifestTooLarge {
                        reference: format!("{repo}:{target}"),
                        registry: host.to_owned(),
                        limit: self.inner.config.max_manifest_size,
                    });
                }
                expected.digest = Some(desc.digest.clone());
                expected.size = Some(desc.size);
                let by_digest = desc.digest.to_string();
                return self.get_manifest(host, repo, &by_digest, expected).await;
            }
        }
        self.get_manifest(host, repo, target, expected).await
    }

    /// `GET` of one manifest, verified; a connection cut while the body arrives is retried.
    pub(crate) async fn get_manifest(
        &self,
        host: &str,
        repo: &Repository,
        target: &str,
        expected: ExpectedManifest,
    ) -> Result<Resolved> {
        let policy = self.inner.config.retry.clone();
        let mut attempt = 0;
        loop {
            match self.get_manifest_once(host, repo, target, &expected).await {
                Ok(resolved) => return Ok(resolved),
                Err(Failure { retry: true, .. }) if attempt + 1 < policy.attempts.max(1) => {
                    tokio::time::sleep(policy.delay(attempt)).await;
                    attempt += 1;
                }
                Err(failure) => return Err(failure.error),
            }
        }
    }

    async fn get_manifest_once(
        &self,
        host: &str,
        repo: &Repository,
        target: &str,
        expected: &ExpectedManifest,
    ) -> std::result::Result<Resolved, Failure> {
        let limit = self.inner.config.max_manifest_size;
        let reference = format!(
            "{repo}{}{target}",
            if target.contains(':') { "@" } else { ":" }
        );
        let too_large = || RegistryError::ManifestTooLarge {
            reference: reference.clone(),
            registry: host.to_owned(),
            limit,
        };
        if expected.size.is_some_and(|s| s > limit) {
            return Err(too_large().into());
        }
        let state = self.host(host).await?;
        let url = self.api_url(&state, &repo.path, &format!("manifests/{target}"))?;
        let scopes: BTreeSet<String> = [repository_scope(&repo.path, false)].into();
        let call = Call::new(Method::GET, url.clone(), scopes).header(ACCEPT, &accept_header());
        let resp = self.send(&state, &call).await?;
        let what = format!("manifest {reference}");
        let mut resp = check_status(host, &what, &Method::GET, resp).await?;
        if resp.content_length().is_some_and(|len| len > limit) {
            return Err(too_large().into());
        }
        let header_digest = header_digest(resp.headers());
        let content_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| bare_media_type(v).to_owned());
        let mut buf = BytesMut::new();
        loop {
            let chunk = resp.chunk().await.map_err(|source| Failure {
                error: RegistryError::Http {
                    method: "GET".to_owned(),
                    url: url.to_string(),
                    source,
                },
                retry: true,
            })?;
            let Some(chunk) = chunk else { break };
            if buf.len() as u64 + chunk.len() as u64 > limit {
                return Err(too_large().into());
            }
            buf.extend_from_slice(&chunk);
        }
        let bytes = buf.freeze();
        let mismatch = |digest: &Digest, message: String| RegistryError::Mismatch {
            kind: "manifest",
            digest: digest.to_string(),
            registry: host.to_owned(),
            message,
        };
        // The digest to check: the one asked for, else the registry's header, else computed.
        let digest = match (&expected.digest, &header_digest) {
            (Some(d), _) => d.clone(),
            (None, Some(d)) => d.clone(),
            (None, None) => Digest::sha256_of(&bytes),
        };
        if let Some(size) = expected.size {
            if size != bytes.len() as u64 {
                return Err(mismatch(
                    &digest,
                    format!("expected {size} bytes, received {}", bytes.len()),
                )
                .into());
            }
        }
        let mut digester = digest
            .digester()
            .map_err(|err| mismatch(&digest, err.to_string()))?;
        digester.update(&bytes);
        let (actual, _) = digester.finish();
        if actual != digest {
            return Err(mismatch(&digest, format!("received bytes hash to {actual}")).into());
        }
        if let Some(claimed) = &header_digest {
            if claimed.algorithm() == digest.algorithm() && *claimed != digest {
                return Err(mismatch(
                    &digest,
                    format!("the registry's Docker-Content-Digest says {claimed}"),
                )
                .into());
            }
        }
        let media_type = manifest_media_type(content_type.as_deref(), &bytes).ok_or_else(|| {
            RegistryError::UnsupportedMediaType {
                reference: reference.clone(),
                registry: host.to_owned(),
                media_type: content_type.clone().unwrap_or_default(),
            }
        })?;
        Ok(Resolved {
            descriptor: Descriptor::new(media_type, digest, bytes.len() as u64),
            bytes,
        })
    }

    /// Pushes a manifest or index under `reference`'s tag, or by digest when it has only a
    /// digest (which must then be the digest of `bytes`). Returns its descriptor.
    pub async fn push_manifest(
        &self,
        reference: &Reference,
        bytes: Bytes,
        media_type: MediaType,
    ) -> Result<Descriptor> {
        let repo = Repository::from(reference);
        let limit = self.inner.config.max_manifest_size;
        let digest = Digest::sha256_of(&bytes);
        let descriptor = Descriptor::new(media_type.clone(), digest.clone(), bytes.len() as u64);
        if descriptor.size > limit {
            return Err(RegistryError::ManifestTooLarge {
                reference: reference.to_string(),
                registry: repo.registry.clone(),
                limit,
            });
        }
        if let Some(wanted) = reference.digest() {
            let mut digester = wanted.digester().map_err(|err| RegistryError::Protocol {
                registry: repo.registry.clone(),
                message: err.to_string(),
            })?;
            digester.update(&bytes);
            if digester.finish().0 != *wanted {
                return Err(RegistryError::Mismatch {
                    kind: "manifest",
                    digest: wanted.to_string(),
                    registry: repo.registry.clone(),
                    message: format!("the bytes to push hash to {digest}"),
                });
            }
        }
        let target = match (reference.tag(), reference.digest()) {
            (Some(tag), _) => tag.to_owned(),
            (None, Some(d)) => d.to_string(),
            (None, None) => digest.to_string(),
        };
        let state = self.host(&repo.registry).await?;
        let url = self.api_url(&state, &repo.path, &format!("manifests/{target}"))?;
        let scopes: BTreeSet<String> = [repository_scope(&repo.path, true)].into();
        let call = Call::new(Method::PUT, url, scopes)
            .header(CONTENT_TYPE, media_type.as_str())
            .body(Body::Bytes(bytes));
        let what = format!("manifest {repo}:{target}");
        // The blobs a manifest names are in the repository before it is pushed; a registry
        // that says one is unknown may be reading its link for the blob while another
        // pusher (another builder node) rewrites it — the Distribution registry rewrites
        // that file on every upload or mount of the blob. That answer is tried again under
        // the client's retry policy.
        let mut attempts = self.inner.config.retry.attempts();
        let resp = loop {
            let resp = self.send(&state, &call).await?;
            match check_status(&repo.registry, &what, &Method::PUT, resp).await {
                Err(RegistryError::Status {
                    status: 400,
                    ref message,
                    ..
                }) if message.contains("MANIFEST_BLOB_UNKNOWN") && attempts.can_retry() => {
                    attempts.wait(None).await;
                }
                result => break result?,
            }
        };
        if let Some(claimed) = header_digest(resp.headers()) {
            if claimed.algorithm() == digest.algorithm() && claimed != digest {
                return Err(RegistryError::Mismatch {
                    kind: "manifest",
                    digest: digest.to_string(),
                    registry: repo.registry.clone(),
                    message: format!("the registry stored it as {claimed}"),
                });
            }
        }
        Ok(descriptor)
    }

    /// Gives the manifest `descriptor` (already in `reference`'s repository) the tag of
    /// `reference`: fetches it by digest and puts it back under the tag.
    pub async fn tag(&self, reference: &Reference, descriptor: &Descriptor) -> Result<()> {
        let repo = Repository::from(reference);
        let resolved = self.fetch_manifest(&repo, descriptor).await?;
        self.push_manifest(
            &reference.without_digest(),
            resolved.bytes,
            resolved.descriptor.media_type,
        )
        .await
        .map(drop)
    }
}

/// A failed manifest fetch, and whether another attempt may help (the body was cut).
struct Failure {
    error: RegistryError,
    retry: bool,
}

impl From<RegistryError> for Failure {
    fn from(error: RegistryError) -> Self {
        Failure {
            error,
            retry: false,
        }
    }
}

/// `application/json; charset=utf-8` → `application/json`.
fn bare_media_type(value: &str) -> &str {
    value.split(';').next().unwrap_or(value).trim()
}

fn header_digest(headers: &reqwest::header::HeaderMap) -> Option<Digest> {
    headers
        .get(DOCKER_CONTENT_DIGEST)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| Digest::parse(v.trim()).ok())
}

/// The media type of a manifest: its own `mediaType` field, else the `Content-Type`, else
/// its shape (`manifests` → OCI index, `config` → OCI manifest). `None` when it is none of the
/// four supported types (Docker schema 1 included).
pub(crate) fn manifest_media_type(content_type: Option<&str>, bytes: &[u8]) -> Option<MediaType> {
    #[derive(serde::Deserialize)]
    struct Shape {
        #[serde(rename = "mediaType", default)]
        media_type: Option<String>,
        #[serde(default)]
        manifests: Option<serde_json::Value>,
        #[serde(default)]
        config: Option<serde_json::Value>,
        #[serde(rename = "schemaVersion", default)]
        schema_version: Option<u64>,
    }
    let supported = |s: &str| MANIFEST_MEDIA_TYPES.contains(&s);
    let shape: Shape = serde_json::from_slice(bytes).ok()?;
    if shape.schema_version == Some(1) {
        return None;
    }
    if let Some(own) = shape.media_type.as_deref().filter(|s| !s.is_empty()) {
        return supported(own).then(|| MediaType::from_string(own));
    }
    if let Some(ct) = content_type.filter(|ct| supported(ct)) {
        return Some(MediaType::from_string(ct));
    }
    if shape.manifests.is_some() {
        return Some(MediaType::OciIndex);
    }
    if shape.config.is_some() {
        return Some(MediaType::OciManifest);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_type_from_field_header_or_shape() {
        let docker = br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{}}"#;
        assert_eq!(
            manifest_media_type(Some("application/json"), docker),
            Some(MediaType::DockerManifest)
        );
        let bare_index = br#"{"schemaVersion":2,"manifests":[]}"#;
        assert_eq!(
            manifest_media_type(None, bare_index),
            Some(MediaType::OciIndex)
        );
        assert_eq!(
            manifest_media_type(Some(media_types::DOCKER_MANIFEST_LIST), bare_index),
            Some(MediaType::DockerManifestList)
        );
        let bare_manifest = br#"{"schemaVersion":2,"config":{},"layers":[]}"#;
        assert_eq!(
            manifest_media_type(None, bare_manifest),
            Some(MediaType::OciManifest)
        );
        let schema1 = br#"{"schemaVersion":1,"fsLayers":[]}"#;
        assert_eq!(manifest_media_type(None, schema1), None);
        let artifact = br#"{"mediaType":"application/vnd.example+json"}"#;
        assert_eq!(manifest_media_type(None, artifact), None);
        assert_eq!(manifest_media_type(None, b"not json"), None);
        assert_eq!(
            bare_media_type("application/json; charset=utf-8"),
            "application/json"
        );
    }
}
