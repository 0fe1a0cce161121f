//! [`MediaType`]: the OCI and Docker schema 2 media types hoist knows, plus any other
//! `type/subtype` string kept as it is.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};

macro_rules! media_types {
    ($( $(#[$doc:meta])* $variant:ident => $konst:ident = $text:literal, )*) => {
        /// A media type. Known types are variants; anything else is [`MediaType::Other`].
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum MediaType {
            $( $(#[$doc])* $variant, )*
            /// A media type hoist has no variant for, kept verbatim.
            Other(String),
        }

        /// The media type strings, as constants.
        pub mod media_types {
            $( $(#[$doc])* pub const $konst: &str = $text; )*
        }

        impl MediaType {
            /// The media type string.
            pub fn as_str(&self) -> &str {
                match self {
                    $( Self::$variant => $text, )*
                    Self::Other(s) => s,
                }
            }

            /// The media type for `s` (any string; see [`MediaType::parse`] to validate).
            pub fn from_string(s: &str) -> Self {
                match s {
                    $( $text => Self::$variant, )*
                    other => Self::Other(other.to_owned()),
                }
            }
        }
    };
}

media_types! {
    /// OCI image manifest.
    OciManifest => OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json",
    /// OCI image index.
    OciIndex => OCI_INDEX = "application/vnd.oci.image.index.v1+json",
    /// OCI image config.
    OciConfig => OCI_CONFIG = "application/vnd.oci.image.config.v1+json",
    /// OCI layer, uncompressed tar.
    OciLayer => OCI_LAYER = "application/vnd.oci.image.layer.v1.tar",
    /// OCI layer, gzip.
    OciLayerGzip => OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip",
    /// OCI layer, zstd.
    OciLayerZstd => OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd",
    /// OCI non-distributable layer, uncompressed (deprecated by the spec).
    OciLayerNonDistributable => OCI_LAYER_NON_DISTRIBUTABLE =
        "application/vnd.oci.image.layer.nondistributable.v1.tar",
    /// OCI non-distributable layer, gzip (deprecated by the spec).
    OciLayerNonDistributableGzip => OCI_LAYER_NON_DISTRIBUTABLE_GZIP =
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    /// OCI non-distributable layer, zstd (deprecated by the spec).
    OciLayerNonDistributableZstd => OCI_LAYER_NON_DISTRIBUTABLE_ZSTD =
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    /// OCI content descriptor.
    OciDescriptor => OCI_DESCRIPTOR = "application/vnd.oci.descriptor.v1+json",
    /// OCI image layout header (`oci-layout`).
    OciLayoutHeader => OCI_LAYOUT_HEADER = "application/vnd.oci.layout.header.v1+json",
    /// The OCI empty JSON blob `{}`.
    OciEmptyJson => OCI_EMPTY_JSON = "application/vnd.oci.empty.v1+json",
    /// Docker image manifest, schema 2.
    DockerManifest => DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json",
    /// Docker manifest list.
    DockerManifestList => DOCKER_MANIFEST_LIST =
        "application/vnd.docker.distribution.manifest.list.v2+json",
    /// Docker schema 1 manifest (legacy, read-only).
    DockerManifestV1 => DOCKER_MANIFEST_V1 = "application/vnd.docker.distribution.manifest.v1+json",
    /// Signed Docker schema 1 manifest (legacy, read-only).
    DockerManifestV1Signed => DOCKER_MANIFEST_V1_SIGNED =
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
    /// Docker container config.
    DockerConfig => DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json",
    /// Docker layer, uncompressed tar.
    DockerLayer => DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar",
    /// Docker layer, gzip.
    DockerLayerGzip => DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip",
    /// Docker layer, zstd (moby's extension).
    DockerLayerZstd => DOCKER_LAYER_ZSTD = "application/vnd.docker.image.rootfs.diff.tar.zstd",
    /// Docker foreign (non-distributable) layer, gzip.
    DockerLayerForeignGzip => DOCKER_LAYER_FOREIGN_GZIP =
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    /// Docker foreign (non-distributable) layer, uncompressed.
    DockerLayerForeign => DOCKER_LAYER_FOREIGN =
        "application/vnd.docker.image.rootfs.foreign.diff.tar",
    /// Docker plugin config.
    DockerPluginConfig => DOCKER_PLUGIN_CONFIG = "application/vnd.docker.plugin.v1+json",
    /// BuildKit cache config (registry cache exports).
    BuildkitCacheConfig => BUILDKIT_CACHE_CONFIG = "application/vnd.buildkit.cacheconfig.v0",
    /// in-toto attestation layer (BuildKit provenance / SBOM).
    InToto => IN_TOTO = "application/vnd.in-toto+json",
}

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// Plain tar.
    None,
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
}

impl MediaType {
    /// Parses and validates `s` against the OCI media type grammar
    /// (`^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$`).
    pub fn parse(s: &str) -> Result<Self> {
        if !valid_media_type(s) {
            return Err(Error::MediaType {
                media_type: s.to_owned(),
            });
        }
        Ok(Self::from_string(s))
    }

    /// Whether the text matches the OCI media type grammar.
    pub fn is_valid(&self) -> bool {
        match self {
            Self::Other(s) => valid_media_type(s),
            _ => true,
        }
    }

    /// An image manifest (OCI or Docker schema 2).
    pub fn is_manifest(&self) -> bool {
        matches!(self, Self::OciManifest | Self::DockerManifest)
    }

    /// An index or manifest list.
    pub fn is_index(&self) -> bool {
        matches!(self, Self::OciIndex | Self::DockerManifestList)
    }

    /// An image config (OCI or Docker).
    pub fn is_config(&self) -> bool {
        matches!(self, Self::OciConfig | Self::DockerConfig)
    }

    /// A layer type hoist knows (any compression, distributable or not).
    pub fn is_layer(&self) -> bool {
        self.layer_compression().is_some()
    }

    /// A non-distributable (OCI) or foreign (Docker) layer.
    pub fn is_non_distributable(&self) -> bool {
        matches!(
            self,
            Self::OciLayerNonDistributable
                | Self::OciLayerNonDistributableGzip
                | Self::OciLayerNonDistributableZstd
                | Self::DockerLayerForeign
                | Self::DockerLayerForeignGzip
        )
    }

    /// A Docker (`application/vnd.docker.*`) media type.
    pub fn is_docker(&self) -> bool {
        self.as_str().starts_with("application/vnd.docker.")
    }

    /// The compression of a layer media type, `None` for non-layer types.
    pub fn layer_compression(&self) -> Option<Compression> {
        match self {
            Self::OciLayer
            | Self::OciLayerNonDistributable
            | Self::DockerLayer
            | Self::DockerLayerForeign => Some(Compression::None),
            Self::OciLayerGzip
            | Self::OciLayerNonDistributableGzip
            | Self::DockerLayerGzip
            | Self::DockerLayerForeignGzip => Some(Compression::Gzip),
            Self::OciLayerZstd | Self::OciLayerNonDistributableZstd | Self::DockerLayerZstd => {
                Some(Compression::Zstd)
            }
            _ => None,
        }
    }
}

fn valid_media_type(s: &str) -> bool {
    let Some((ty, sub)) = s.split_once('/') else {
        return false;
    };
    let part = |p: &str| {
        let bytes = p.as_bytes();
        !bytes.is_empty()
            && bytes.len() <= 127
            && bytes[0].is_ascii_alphanumeric()
            && bytes[1..]
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(b))
    };
    part(ty) && part(sub)
}

impl fmt::Display for MediaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for MediaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MediaType({})", self.as_str())
    }
}

impl FromStr for MediaType {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl From<&str> for MediaType {
    fn from(s: &str) -> Self {
        Self::from_string(s)
    }
}

impl Serialize for MediaType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for MediaType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Ok(Self::from_string(&s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_types_round_trip() {
        let mt = MediaType::from_string(media_types::DOCKER_LAYER_GZIP);
        assert_eq!(mt, MediaType::DockerLayerGzip);
        assert_eq!(mt.layer_compression(), Some(Compression::Gzip));
        assert_eq!(mt.as_str(), media_types::DOCKER_LAYER_GZIP);
        assert!(MediaType::parse("text/plain").is_ok());
        assert!(MediaType::parse("not a type").is_err());
    }
}
