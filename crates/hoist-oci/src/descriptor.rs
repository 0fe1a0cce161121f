//! [`Descriptor`]: a typed pointer to content (media type, digest, size and extras).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::media_type::MediaType;
use crate::platform::Platform;

/// An OCI content descriptor (also Docker's schema 2 descriptor). Fields serialise in the order
/// of Go's `ocispec.Descriptor`; empty optional fields are left out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the referenced content.
    pub media_type: MediaType,
    /// Digest of the referenced content's exact bytes.
    pub digest: Digest,
    /// Size of the referenced content in bytes.
    pub size: u64,
    /// Where else the content may be downloaded from (foreign layers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    /// Arbitrary metadata.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// The content itself, base64-encoded (OCI `data`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// The platform of the manifest this points at (in an index).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// The artifact type of the manifest this points at (in an index).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<MediaType>,
}

impl Descriptor {
    /// A descriptor with only media type, digest and size.
    pub fn new(media_type: MediaType, digest: Digest, size: u64) -> Self {
        Self {
            media_type,
            digest,
            size,
            urls: Vec::new(),
            annotations: BTreeMap::new(),
            data: None,
            platform: None,
            artifact_type: None,
        }
    }

    /// A descriptor of `bytes` (sha256).
    pub fn of_bytes(media_type: MediaType, bytes: &[u8]) -> Self {
        Self::new(media_type, Digest::sha256_of(bytes), bytes.len() as u64)
    }

    /// The same descriptor with `platform` set.
    pub fn with_platform(mut self, platform: Platform) -> Self {
        self.platform = Some(platform);
        self
    }

    /// Checks what the OCI content-descriptor schema checks beyond types: media types match
    /// the `type/subtype` grammar, `urls` are absolute URIs, `data` is padded base64.
    /// (`digest` is checked when it is decoded.)
    pub fn validate(&self) -> Result<()> {
        let invalid = |reason: String| Error::Invalid {
            kind: "descriptor",
            reason,
        };
        if !self.media_type.is_valid() {
            return Err(invalid(format!(
                "invalid media type {:?}",
                self.media_type.as_str()
            )));
        }
        if let Some(artifact_type) = &self.artifact_type {
            if !artifact_type.is_valid() {
                return Err(invalid(format!(
                    "invalid artifact type {:?}",
                    artifact_type.as_str()
                )));
            }
        }
        for u in &self.urls {
            if url::Url::parse(u).is_err() {
                return Err(invalid(format!("url {u:?} is not an absolute uri")));
            }
        }
        if let Some(data) = &self.data {
            use base64::Engine as _;
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(data)
                .map_err(|e| invalid(format!("data is not base64: {e}")))?;
            if decoded.len() as u64 != self.size {
                return Err(invalid(format!(
                    "data holds {} bytes but size is {}",
                    decoded.len(),
                    self.size
                )));
            }
        }
        Ok(())
    }

    /// The `org.opencontainers.image.ref.name` annotation, if any.
    pub fn ref_name(&self) -> Option<&str> {
        self.annotations
            .get(crate::annotations::REF_NAME)
            .map(String::as_str)
    }
}
