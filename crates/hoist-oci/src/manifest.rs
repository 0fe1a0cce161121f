//! [`Manifest`] (OCI image manifest and Docker schema 2 manifest), [`Index`] (OCI image index
//! and Docker manifest list) and [`ImageLayout`] (the `oci-layout` file).
//!
//! Fields are listed in the order of Go's structs (`ocispec.Manifest`, `ocispec.Index`,
//! distribution's schema2/manifestlist), with empty optional fields left out, so
//! [`crate::go_json`] reproduces the bytes Go tools write.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::descriptor::Descriptor;
use crate::error::{Error, Result};
use crate::media_type::MediaType;
use crate::platform::{MatchComparer, Platform};

/// An image manifest: a config and an ordered list of layers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Always 2.
    pub schema_version: u32,
    /// [`MediaType::OciManifest`] or [`MediaType::DockerManifest`] (optional in OCI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<MediaType>,
    /// The artifact type, for artifacts (OCI 1.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<MediaType>,
    /// The image config blob.
    pub config: Descriptor,
    /// The layers, base first.
    pub layers: Vec<Descriptor>,
    /// The manifest this one refers to (OCI 1.1 referrers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// Arbitrary metadata.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// An image index (OCI) or manifest list (Docker): manifests for several platforms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    /// Always 2.
    pub schema_version: u32,
    /// [`MediaType::OciIndex`] or [`MediaType::DockerManifestList`] (optional in OCI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<MediaType>,
    /// The artifact type, for artifacts (OCI 1.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<MediaType>,
    /// The manifests, usually one per platform.
    pub manifests: Vec<Descriptor>,
    /// The manifest this one refers to (OCI 1.1 referrers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// Arbitrary metadata.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// The `oci-layout` file of an image layout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageLayout {
    /// Always `1.0.0`.
    #[serde(rename = "imageLayoutVersion")]
    pub image_layout_version: String,
}

/// The only image layout version.
pub const IMAGE_LAYOUT_VERSION: &str = "1.0.0";

impl Default for ImageLayout {
    fn default() -> Self {
        Self {
            image_layout_version: IMAGE_LAYOUT_VERSION.to_owned(),
        }
    }
}

fn invalid(kind: &'static str, reason: impl Into<String>) -> Error {
    Error::Invalid {
        kind,
        reason: reason.into(),
    }
}

fn check_schema_version(kind: &'static str, version: u32) -> Result<()> {
    if version == 2 {
        Ok(())
    } else {
        Err(invalid(kind, format!("schemaVersion is {version}, not 2")))
    }
}

fn check_media_type(kind: &'static str, what: &str, mt: Option<&MediaType>) -> Result<()> {
    match mt {
        Some(mt) if !mt.is_valid() => {
            Err(invalid(kind, format!("invalid {what} {:?}", mt.as_str())))
        }
        _ => Ok(()),
    }
}

impl Manifest {
    /// An OCI manifest of `config` and `layers`.
    pub fn new_oci(config: Descriptor, layers: Vec<Descriptor>) -> Self {
        Self {
            schema_version: 2,
            media_type: Some(MediaType::OciManifest),
            artifact_type: None,
            config,
            layers,
            subject: None,
            annotations: BTreeMap::new(),
        }
    }

    /// A Docker schema 2 manifest of `config` and `layers`.
    pub fn new_docker(config: Descriptor, layers: Vec<Descriptor>) -> Self {
        Self {
            media_type: Some(MediaType::DockerManifest),
            ..Self::new_oci(config, layers)
        }
    }

    /// Whether this is a Docker schema 2 manifest (by its `mediaType`).
    pub fn is_docker(&self) -> bool {
        self.media_type == Some(MediaType::DockerManifest)
    }

    /// The media type a descriptor of this manifest carries (OCI when absent).
    pub fn descriptor_media_type(&self) -> MediaType {
        self.media_type.clone().unwrap_or(MediaType::OciManifest)
    }

    /// Checks what the OCI manifest schema checks beyond types (Docker schema 2 manifests
    /// may have no layers; OCI ones need at least one).
    pub fn validate(&self) -> Result<()> {
        const KIND: &str = "manifest";
        check_schema_version(KIND, self.schema_version)?;
        check_media_type(KIND, "media type", self.media_type.as_ref())?;
        check_media_type(KIND, "artifact type", self.artifact_type.as_ref())?;
        if let Some(mt) = &self.media_type {
            if mt.is_index() {
                return Err(invalid(KIND, format!("media type {mt} is an index type")));
            }
        }
        self.config.validate()?;
        if self.layers.is_empty() && !self.is_docker() {
            return Err(invalid(KIND, "layers is empty, expected at least one"));
        }
        for layer in &self.layers {
            layer.validate()?;
        }
        if let Some(subject) = &self.subject {
            subject.validate()?;
        }
        Ok(())
    }
}

impl Index {
    /// An OCI index of `manifests`.
    pub fn new_oci(manifests: Vec<Descriptor>) -> Self {
        Self {
            schema_version: 2,
            media_type: Some(MediaType::OciIndex),
            artifact_type: None,
            manifests,
            subject: None,
            annotations: BTreeMap::new(),
        }
    }

    /// A Docker manifest list of `manifests`.
    pub fn new_docker(manifests: Vec<Descriptor>) -> Self {
        Self {
            media_type: Some(MediaType::DockerManifestList),
            ..Self::new_oci(manifests)
        }
    }

    /// The media type a descriptor of this index carries (OCI when absent).
    pub fn descriptor_media_type(&self) -> MediaType {
        self.media_type.clone().unwrap_or(MediaType::OciIndex)
    }

    /// Checks what the OCI index schema checks beyond types.
    pub fn validate(&self) -> Result<()> {
        const KIND: &str = "index";
        check_schema_version(KIND, self.schema_version)?;
        check_media_type(KIND, "media type", self.media_type.as_ref())?;
        check_media_type(KIND, "artifact type", self.artifact_type.as_ref())?;
        if let Some(mt) = &self.media_type {
            if mt.is_manifest() {
                return Err(invalid(KIND, format!("media type {mt} is a manifest type")));
            }
        }
        for manifest in &self.manifests {
            manifest.validate()?;
        }
        if let Some(subject) = &self.subject {
            subject.validate()?;
        }
        Ok(())
    }

    /// The manifest to use for `matcher`, as containerd picks it: among manifests whose
    /// platform matches (or that carry none), the one `matcher` prefers, ties in index order.
    /// A descriptor without a platform comes last; like containerd, check its config's
    /// platform before using it.
    pub fn select(&self, matcher: &MatchComparer) -> Option<&Descriptor> {
        let mut candidates: Vec<&Descriptor> = self
            .manifests
            .iter()
            .filter(|d| d.platform.as_ref().is_none_or(|p| matcher.matches(p)))
            .collect();
        // Stable insertion sort: descriptors without a platform go last.
        for i in 1..candidates.len() {
            let mut j = i;
            while j > 0 && platform_less(matcher, candidates[j], candidates[j - 1]) {
                candidates.swap(j, j - 1);
                j -= 1;
            }
        }
        candidates.first().copied()
    }

    /// The manifest for `platform` chosen with [`MatchComparer::only`].
    pub fn select_platform(&self, platform: &Platform) -> Option<&Descriptor> {
        self.select(&MatchComparer::only(platform))
    }
}

fn platform_less(matcher: &MatchComparer, a: &Descriptor, b: &Descriptor) -> bool {
    match (&a.platform, &b.platform) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some(pa), Some(pb)) => matcher.less(pa, pb),
    }
}

impl ImageLayout {
    /// Checks the version is `1.0.0`.
    pub fn validate(&self) -> Result<()> {
        if self.image_layout_version == IMAGE_LAYOUT_VERSION {
            Ok(())
        } else {
            Err(invalid(
                "oci-layout",
                format!(
                    "imageLayoutVersion is {:?}, not {IMAGE_LAYOUT_VERSION:?}",
                    self.image_layout_version
                ),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Digest;

    fn entry(platform: Option<&str>) -> Descriptor {
        let mut d = Descriptor::of_bytes(
            MediaType::OciManifest,
            platform.unwrap_or("none").as_bytes(),
        );
        d.platform = platform.map(|p| Platform::parse(p).unwrap());
        d
    }

    #[test]
    fn select_prefers_exact_platform_then_compatible_then_platformless() {
        let index = Index::new_oci(vec![
            entry(None),
            entry(Some("linux/386")),
            entry(Some("linux/arm64")),
            entry(Some("linux/amd64")),
        ]);
        let pick = |p: &str| {
            index
                .select_platform(&Platform::parse(p).unwrap())
                .and_then(|d| d.platform.as_ref().map(Platform::format))
        };
        assert_eq!(pick("linux/amd64").as_deref(), Some("linux/amd64"));
        assert_eq!(pick("linux/aarch64").as_deref(), Some("linux/arm64"));
        // Nothing matches s390x except the entry without a platform.
        assert_eq!(pick("linux/s390x"), None);
        assert!(index
            .select_platform(&Platform::parse("linux/s390x").unwrap())
            .is_some_and(|d| d.digest == Digest::sha256_of(b"none")));
    }
}
