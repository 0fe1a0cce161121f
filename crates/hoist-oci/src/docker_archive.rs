//! The docker-archive format: the tar `docker save` writes and `docker load` / `podman load`
//! / `skopeo … docker-archive:` read.
//!
//! hoist writes it as Docker 25+ does: an OCI image layout (`oci-layout`, `index.json`,
//! `blobs/sha256/…`) plus `manifest.json` (`[{"Config", "RepoTags", "Layers"}]`, paths into
//! `blobs/`) and the legacy `repositories` file. Layers should be the uncompressed layer tars
//! (then their digests are the config's diff IDs, as Docker stores them).
//!
//! The reader takes both that and the older layout (`<config-hex>.json`,
//! `<id>/layer.tar`, symlinks as skopeo writes them), reading `manifest.json` only.

use std::collections::BTreeMap;
use std::io::{Read, Seek, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::annotations;
use crate::config::ImageConfig;
use crate::descriptor::Descriptor;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::go_json;
use crate::layout::{blob_path, LayoutSource, OciLayoutWriter, TarSink, TarSource};
use crate::manifest::Manifest;
use crate::media_type::MediaType;
use crate::parsed::Parsed;
use crate::reference::Reference;

/// One image in `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveManifestItem {
    /// Path of the config file in the archive.
    #[serde(rename = "Config")]
    pub config: String,
    /// Familiar `name:tag` strings (`busybox:latest`); `null` when untagged.
    #[serde(rename = "RepoTags", default)]
    pub repo_tags: Option<Vec<String>>,
    /// Paths of the layer tars in the archive, base first.
    #[serde(rename = "Layers", default)]
    pub layers: Vec<String>,
}

impl ArchiveManifestItem {
    /// The tags, normalised (`docker.io/library/busybox:latest`).
    pub fn references(&self) -> Result<Vec<Reference>> {
        self.repo_tags
            .iter()
            .flatten()
            .map(|t| Reference::parse_normalized(t))
            .collect()
    }
}

/// The digest a file name in an archive encodes: `blobs/<alg>/<hex>` or `<hex>.json`.
fn digest_in_path(path: &str) -> Option<Digest> {
    let mut parts = path.rsplit('/');
    let last = parts.next()?;
    if let Some(hex) = last.strip_suffix(".json") {
        return Digest::from_parts("sha256", hex).ok();
    }
    let algorithm = parts.next()?;
    if parts.next() == Some("blobs") {
        Digest::from_parts(algorithm, last).ok()
    } else {
        None
    }
}

/// Writes a docker-archive tar.
#[derive(Debug)]
pub struct DockerArchiveWriter<W: Write> {
    layout: OciLayoutWriter<TarSink<W>>,
    items: Vec<ArchiveManifestItem>,
    repositories: BTreeMap<String, BTreeMap<String, String>>,
}

impl<W: Write> DockerArchiveWriter<W> {
    /// An archive written to `writer`.
    pub fn new(writer: W) -> Result<Self> {
        Ok(Self {
            layout: OciLayoutWriter::tar(writer)?,
            items: Vec::new(),
            repositories: BTreeMap::new(),
        })
    }

    /// Streams a layer tar of `size` bytes, verified against `digest`. Skipped when already
    /// written.
    pub fn add_layer(&mut self, digest: &Digest, size: u64, reader: &mut dyn Read) -> Result<()> {
        self.layout.add_blob(digest, size, reader)
    }

    /// Adds an image: its config (exact bytes), its layers (already added with
    /// [`DockerArchiveWriter::add_layer`], base first) and its tags. Returns the descriptor
    /// of the OCI manifest written for `index.json`.
    pub fn add_image(
        &mut self,
        config: &Parsed<ImageConfig>,
        layers: &[Descriptor],
        tags: &[Reference],
    ) -> Result<Descriptor> {
        let invalid = |reason: String| Error::Invalid {
            kind: "docker archive image",
            reason,
        };
        if layers.len() != config.rootfs.diff_ids.len() {
            return Err(invalid(format!(
                "{} layers but the config lists {} diff ids",
                layers.len(),
                config.rootfs.diff_ids.len()
            )));
        }
        if let Some(missing) = layers.iter().find(|l| !self.layout.has_blob(&l.digest)) {
            return Err(invalid(format!("layer {} was not added", missing.digest)));
        }
        let config_desc = self.layout.add_document(config, MediaType::OciConfig)?;
        let manifest = Parsed::from_value(Manifest::new_oci(config_desc, layers.to_vec()))?;
        let manifest_desc = self
            .layout
            .add_document(&manifest, MediaType::OciManifest)?;

        let mut repo_tags = Vec::new();
        for tag in tags {
            let tagged = tag.tag_name_only();
            let tag_name = tagged.tag().unwrap_or("latest").to_owned();
            let mut desc = manifest_desc.clone();
            desc.annotations.insert(
                annotations::CONTAINERD_IMAGE_NAME.to_owned(),
                tagged.to_string(),
            );
            self.layout.add_manifest(desc, Some(&tag_name));
            repo_tags.push(tagged.familiar_string());
            if let Some(top) = layers.last() {
                self.repositories
                    .entry(tagged.familiar_name())
                    .or_default()
                    .insert(tag_name, top.digest.encoded().to_owned());
            }
        }
        if tags.is_empty() {
            self.layout.add_manifest(manifest_desc.clone(), None);
        }
        self.items.push(ArchiveManifestItem {
            config: blob_path(config.digest()),
            repo_tags: (!repo_tags.is_empty()).then_some(repo_tags),
            layers: layers.iter().map(|l| blob_path(&l.digest)).collect(),
        });
        Ok(manifest_desc)
    }

    /// Writes `manifest.json`, `repositories` and `index.json`, ends the tar, and gives the
    /// writer back.
    pub fn finish(mut self) -> Result<W> {
        let mut manifest = go_json::to_vec(&self.items)?;
        manifest.push(b'\n');
        let sink = self.layout.sink_mut();
        crate::layout::LayoutSink::write_file(sink, "manifest.json", &manifest)?;
        if !self.repositories.is_empty() {
            let mut repositories = go_json::to_vec(&self.repositories)?;
            repositories.push(b'\n');
            crate::layout::LayoutSink::write_file(sink, "repositories", &repositories)?;
        }
        self.layout.finish_tar()
    }
}

/// A docker-archive tar opened for reading.
#[derive(Debug)]
pub struct DockerArchive<R> {
    source: TarSource<R>,
    items: Vec<ArchiveManifestItem>,
}

impl<R: Read + Seek> DockerArchive<R> {
    /// Indexes the archive read from `reader` and parses its `manifest.json`; `label` (its
    /// path) names it in errors.
    pub fn open(reader: R, label: &Path) -> Result<Self> {
        let mut source = TarSource::new(reader, label)?;
        let raw = source.read("manifest.json")?;
        let items: Vec<ArchiveManifestItem> =
            serde_json::from_slice(&raw).map_err(|source| Error::Json {
                kind: "docker archive manifest.json",
                source,
            })?;
        if items.is_empty() {
            return Err(Error::Archive {
                format: "docker archive",
                path: label.to_owned(),
                reason: "manifest.json lists no images".into(),
            });
        }
        Ok(Self { source, items })
    }

    /// The images `manifest.json` lists.
    pub fn images(&self) -> &[ArchiveManifestItem] {
        &self.items
    }

    /// Reads the config of `item`, verifying it when its file name encodes its digest.
    pub fn read_config(&mut self, item: &ArchiveManifestItem) -> Result<Parsed<ImageConfig>> {
        let raw = self.source.read(&item.config)?;
        match digest_in_path(&item.config) {
            Some(digest) => Parsed::from_bytes_verified(raw, &digest),
            None => Parsed::from_bytes(raw),
        }
    }

    /// Streams layer `index` of `item` (unverified: hash it while reading).
    pub fn open_layer(
        &mut self,
        item: &ArchiveManifestItem,
        index: usize,
    ) -> Result<Box<dyn Read + '_>> {
        let path = item.layers.get(index).ok_or_else(|| Error::Archive {
            format: "docker archive",
            path: self.source.location().to_owned(),
            reason: format!("image {} has no layer {index}", item.config),
        })?;
        self.source.open(path)
    }

    /// Whether a file exists in the archive.
    pub fn has_file(&self, path: &str) -> bool {
        self.source.exists(path)
    }
}
