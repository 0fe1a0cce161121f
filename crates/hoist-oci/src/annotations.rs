//! Annotation keys hoist reads or writes (OCI pre-defined keys and containerd's image name).

/// Tag or fully qualified name of an image in an OCI layout `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// Date and time the image was built (RFC 3339).
pub const CREATED: &str = "org.opencontainers.image.created";
/// Digest of the base image.
pub const BASE_DIGEST: &str = "org.opencontainers.image.base.digest";
/// Name of the base image.
pub const BASE_NAME: &str = "org.opencontainers.image.base.name";
/// containerd's full image name annotation in OCI archives (`docker.io/library/x:tag`).
pub const CONTAINERD_IMAGE_NAME: &str = "io.containerd.image.name";
