//! [`Parsed<T>`]: a typed JSON document together with the exact bytes it came from and their
//! digest, so a manifest, index or config read from a registry or a layout is never
//! re-serialised before being hashed or stored, and one hoist builds is hashed as written.

use std::ops::Deref;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::config::ImageConfig;
use crate::descriptor::Descriptor;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::go_json;
use crate::manifest::{ImageLayout, Index, Manifest};
use crate::media_type::MediaType;

/// A JSON document type hoist reads and writes.
pub trait Document: Serialize + DeserializeOwned {
    /// What to call it in errors (`manifest`, `index`, ...).
    const KIND: &'static str;

    /// Checks the rules of its schema that decoding does not.
    fn validate(&self) -> Result<()>;

    /// The deterministic bytes hoist writes for it (Go's `encoding/json` style).
    fn to_canonical_bytes(&self) -> Result<Vec<u8>>;
}

impl Document for Manifest {
    const KIND: &'static str = "manifest";
    fn validate(&self) -> Result<()> {
        Manifest::validate(self)
    }
    /// `json.MarshalIndent(m, "", "  ")`, as BuildKit writes manifests.
    fn to_canonical_bytes(&self) -> Result<Vec<u8>> {
        go_json::to_vec_indent(self, "", "  ")
    }
}

impl Document for Index {
    const KIND: &'static str = "index";
    fn validate(&self) -> Result<()> {
        Index::validate(self)
    }
    /// `json.MarshalIndent(i, "", "  ")`, as BuildKit writes indexes.
    fn to_canonical_bytes(&self) -> Result<Vec<u8>> {
        go_json::to_vec_indent(self, "", "  ")
    }
}

impl Document for ImageConfig {
    const KIND: &'static str = "image config";
    fn validate(&self) -> Result<()> {
        ImageConfig::validate(self)
    }
    /// `json.Marshal`, compact, as BuildKit writes configs.
    fn to_canonical_bytes(&self) -> Result<Vec<u8>> {
        go_json::to_vec(self)
    }
}

impl Document for ImageLayout {
    const KIND: &'static str = "oci-layout";
    fn validate(&self) -> Result<()> {
        ImageLayout::validate(self)
    }
    fn to_canonical_bytes(&self) -> Result<Vec<u8>> {
        go_json::to_vec(self)
    }
}

impl Document for Descriptor {
    const KIND: &'static str = "descriptor";
    fn validate(&self) -> Result<()> {
        Descriptor::validate(self)
    }
    fn to_canonical_bytes(&self) -> Result<Vec<u8>> {
        go_json::to_vec(self)
    }
}

/// A document with its exact bytes and their (sha256) digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed<T> {
    value: T,
    raw: Vec<u8>,
    digest: Digest,
}

impl<T: Document> Parsed<T> {
    /// Decodes and validates `raw`; the digest is of `raw` exactly.
    pub fn from_bytes(raw: Vec<u8>) -> Result<Self> {
        let value: T = serde_json::from_slice(&raw).map_err(|source| Error::Json {
            kind: T::KIND,
            source,
        })?;
        value.validate()?;
        let digest = Digest::sha256_of(&raw);
        Ok(Self { value, raw, digest })
    }

    /// Like [`Parsed::from_bytes`], first checking that `raw` has `expected` digest (any
    /// algorithm hoist implements).
    pub fn from_bytes_verified(raw: Vec<u8>, expected: &Digest) -> Result<Self> {
        expected.verify(&raw)?;
        let mut parsed = Self::from_bytes(raw)?;
        parsed.digest = expected.clone();
        Ok(parsed)
    }

    /// Validates `value` and serialises it deterministically.
    pub fn from_value(value: T) -> Result<Self> {
        value.validate()?;
        let raw = value.to_canonical_bytes()?;
        let digest = Digest::sha256_of(&raw);
        Ok(Self { value, raw, digest })
    }

    /// The decoded value.
    pub fn value(&self) -> &T {
        &self.value
    }

    /// The exact bytes.
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    /// The digest of the exact bytes.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// The length of the exact bytes.
    pub fn size(&self) -> u64 {
        self.raw.len() as u64
    }

    /// A descriptor of these bytes with `media_type`.
    pub fn descriptor_with(&self, media_type: MediaType) -> Descriptor {
        Descriptor::new(media_type, self.digest.clone(), self.size())
    }

    /// The value and the bytes.
    pub fn into_parts(self) -> (T, Vec<u8>) {
        (self.value, self.raw)
    }
}

impl Parsed<Manifest> {
    /// A descriptor of this manifest (its own media type, OCI when absent).
    pub fn descriptor(&self) -> Descriptor {
        self.descriptor_with(self.value.descriptor_media_type())
    }
}

impl Parsed<Index> {
    /// A descriptor of this index (its own media type, OCI when absent).
    pub fn descriptor(&self) -> Descriptor {
        self.descriptor_with(self.value.descriptor_media_type())
    }
}

impl<T> Deref for Parsed<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T> AsRef<[u8]> for Parsed<T> {
    fn as_ref(&self) -> &[u8] {
        &self.raw
    }
}

/// A manifest or an index, told apart by `mediaType` (or by shape when it is absent), as a
/// registry or a layout hands out either for one reference.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // both variants are large; it lives briefly, unboxed
pub enum AnyManifest {
    /// An image manifest.
    Manifest(Parsed<Manifest>),
    /// An index / manifest list.
    Index(Parsed<Index>),
}

impl AnyManifest {
    /// Decodes `raw`, using `media_type` (e.g. the registry's `Content-Type`) when given,
    /// else the document's `mediaType`, else whether it has `manifests` or `config`.
    pub fn from_bytes(raw: Vec<u8>, media_type: Option<&MediaType>) -> Result<Self> {
        if let Some(mt @ (MediaType::DockerManifestV1 | MediaType::DockerManifestV1Signed)) =
            media_type
        {
            return Err(Error::Invalid {
                kind: "manifest",
                reason: format!("{mt} (docker schema 1) is not supported"),
            });
        }
        let is_index = match media_type.filter(|m| m.is_index() || m.is_manifest()) {
            Some(mt) => mt.is_index(),
            None => {
                #[derive(serde::Deserialize)]
                struct Probe {
                    #[serde(rename = "mediaType")]
                    media_type: Option<MediaType>,
                    manifests: Option<serde::de::IgnoredAny>,
                }
                let probe: Probe = serde_json::from_slice(&raw).map_err(|source| Error::Json {
                    kind: "manifest",
                    source,
                })?;
                match probe.media_type {
                    Some(mt) if mt.is_index() || mt.is_manifest() => mt.is_index(),
                    _ => probe.manifests.is_some(),
                }
            }
        };
        if is_index {
            Parsed::from_bytes(raw).map(Self::Index)
        } else {
            Parsed::from_bytes(raw).map(Self::Manifest)
        }
    }

    /// The digest of the exact bytes.
    pub fn digest(&self) -> &Digest {
        match self {
            Self::Manifest(m) => m.digest(),
            Self::Index(i) => i.digest(),
        }
    }

    /// The exact bytes.
    pub fn raw(&self) -> &[u8] {
        match self {
            Self::Manifest(m) => m.raw(),
            Self::Index(i) => i.raw(),
        }
    }

    /// A descriptor of the document.
    pub fn descriptor(&self) -> Descriptor {
        match self {
            Self::Manifest(m) => m.descriptor(),
            Self::Index(i) => i.descriptor(),
        }
    }
}
