//! Reading and writing the JSON documents of the `imagetools` and `manifest` commands:
//! hoist-oci's [`Index`] and [`Manifest`] parsed with this crate's errors,
//! [`ConfigPlatform`] (only the platform fields of an image config, every one optional, so
//! odd configs still give a platform), buildx's media type detection, and Go-compatible
//! indented output. Raw bytes are never re-serialised when they are pushed or copied.

use hoist_oci::{go_json, media_types, Descriptor, MediaType, Platform};
pub use hoist_oci::{Index, Manifest};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Parses index (or manifest list) bytes.
pub fn parse_index(bytes: &[u8]) -> Result<Index> {
    parse_json(bytes, "image index")
}

/// Parses image manifest bytes.
pub fn parse_manifest(bytes: &[u8]) -> Result<Manifest> {
    parse_json(bytes, "image manifest")
}

/// Parses JSON `bytes` that should be a `kind` (named in the error).
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    kind: &'static str,
) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|source| Error::InvalidJson { kind, source })
}

/// Config and layers: every blob a manifest needs, config first.
pub fn blobs(manifest: &Manifest) -> impl Iterator<Item = &Descriptor> {
    std::iter::once(&manifest.config).chain(manifest.layers.iter())
}

/// The platform fields of an image config (`architecture`, `os`, `os.version`,
/// `os.features`, `variant`), every one optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ConfigPlatform {
    /// CPU architecture.
    #[serde(default)]
    pub architecture: String,
    /// Operating system.
    #[serde(default)]
    pub os: String,
    /// Operating system version.
    #[serde(default, rename = "os.version")]
    pub os_version: String,
    /// Operating system features.
    #[serde(default, rename = "os.features")]
    pub os_features: Vec<String>,
    /// CPU variant.
    #[serde(default)]
    pub variant: String,
}

impl ConfigPlatform {
    /// Reads the platform fields of image config bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        parse_json(bytes, "image config")
    }

    /// As a [`Platform`] (not normalised).
    pub fn to_platform(&self) -> Platform {
        Platform {
            architecture: self.architecture.clone(),
            os: self.os.clone(),
            os_version: self.os_version.clone(),
            os_features: self.os_features.clone(),
            variant: self.variant.clone(),
            features: Vec::new(),
        }
    }
}

/// Whether `media_type` is an OCI index or a Docker manifest list.
pub fn is_index(media_type: &MediaType) -> bool {
    matches!(
        media_type,
        MediaType::OciIndex | MediaType::DockerManifestList
    )
}

/// Whether `media_type` is an OCI or Docker schema 2 image manifest.
pub fn is_image_manifest(media_type: &MediaType) -> bool {
    matches!(
        media_type,
        MediaType::OciManifest | MediaType::DockerManifest
    )
}

/// buildx's `detectMediaType`: the `mediaType` field when present, else a Docker manifest
/// when there is a `config`, schema 1 when there are `fsLayers`, else a Docker manifest list.
pub fn detect_media_type(bytes: &[u8]) -> Result<MediaType> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        #[serde(default)]
        media_type: Option<String>,
        #[serde(default)]
        config: Option<serde_json::Value>,
        #[serde(default)]
        fs_layers: Vec<serde_json::Value>,
    }
    let probe: Probe = parse_json(bytes, "manifest")?;
    Ok(match probe.media_type.filter(|m| !m.is_empty()) {
        Some(mt) => MediaType::from_string(&mt),
        None if probe.config.is_some() => MediaType::from_string(media_types::DOCKER_MANIFEST),
        None if !probe.fs_layers.is_empty() => {
            MediaType::from_string(media_types::DOCKER_MANIFEST_V1)
        }
        None => MediaType::from_string(media_types::DOCKER_MANIFEST_LIST),
    })
}

/// `value` as Go's `json.MarshalIndent(value, "", indent)` writes it (hoist-oci's `go_json`).
pub fn to_go_json<T: Serialize + ?Sized>(value: &T, indent: &str) -> Result<Vec<u8>> {
    go_json::to_vec_indent(value, "", indent).map_err(Error::Serialise)
}

/// [`to_go_json`] as text (Go's JSON is always UTF-8).
pub fn to_go_json_string<T: Serialize + ?Sized>(value: &T, indent: &str) -> Result<String> {
    Ok(String::from_utf8_lossy(&to_go_json(value, indent)?).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_media_types_like_buildx() {
        let mt = |s: &str| detect_media_type(s.as_bytes()).unwrap();
        assert_eq!(
            mt(r#"{"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#),
            MediaType::OciIndex
        );
        assert_eq!(mt(r#"{"config":{}}"#), MediaType::DockerManifest);
        assert_eq!(mt(r#"{"fsLayers":[{}]}"#), MediaType::DockerManifestV1);
        assert_eq!(mt(r#"{"manifests":[]}"#), MediaType::DockerManifestList);
    }

    #[test]
    fn go_json_escapes_html_and_indents() {
        let v = serde_json::json!({"a": "<&>", "b": [1]});
        let out = to_go_json_string(&v, "   ").unwrap();
        assert_eq!(
            out,
            "{\n   \"a\": \"\\u003c\\u0026\\u003e\",\n   \"b\": [\n      1\n   ]\n}"
        );
    }

    #[test]
    fn config_platform_reads_dotted_keys() {
        let p = ConfigPlatform::parse(
            br#"{"architecture":"arm","os":"linux","variant":"v7","os.version":"1","rootfs":{}}"#,
        )
        .unwrap();
        assert_eq!(p.to_platform().format(), "linux/arm/v7");
        assert_eq!(p.os_version, "1");
    }
}
