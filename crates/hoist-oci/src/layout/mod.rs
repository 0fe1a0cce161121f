//! The OCI image layout (`oci-layout`, `index.json`, `blobs/<alg>/<encoded>`), written to and
//! read from a directory or a tar ([`OciLayoutWriter`], [`OciLayout`]), and the layout
//! plumbing the docker-archive format shares ([`store`]).
//!
//! ```text
//! let mut w = OciLayoutWriter::tar(file)?;
//! w.add_blob(&layer_digest, layer_size, &mut layer_reader)?;   // verified while streamed
//! let config = w.add_document(&Parsed::from_value(config)?, MediaType::OciConfig)?;
//! let manifest = w.add_document(&Parsed::from_value(manifest)?, MediaType::OciManifest)?;
//! w.add_manifest(manifest, Some("latest"));                     // an index.json entry
//! w.finish()?;
//! ```

pub mod store;

use std::collections::BTreeSet;
use std::io::{Read, Seek, Write};
use std::path::Path;

use crate::annotations;
use crate::descriptor::Descriptor;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::go_json;
use crate::manifest::{ImageLayout, Index, Manifest};
use crate::media_type::MediaType;
use crate::parsed::{AnyManifest, Document, Parsed};
use crate::ImageConfig;

pub use store::{DirSink, DirSource, LayoutSink, LayoutSource, TarSink, TarSource};

/// The layout-relative path of a blob: `blobs/<algorithm>/<encoded>`.
pub fn blob_path(digest: &Digest) -> String {
    format!("blobs/{}/{}", digest.algorithm(), digest.encoded())
}

/// Writes an OCI image layout: blobs as they are added, `oci-layout` first and `index.json`
/// on [`OciLayoutWriter::finish`]. Blobs are de-duplicated by digest.
#[derive(Debug)]
pub struct OciLayoutWriter<S: LayoutSink> {
    sink: S,
    written: BTreeSet<Digest>,
    index: Index,
}

impl OciLayoutWriter<DirSink> {
    /// Writes into the directory `root` (created if missing). When it already holds a layout,
    /// its `index.json` entries are kept, except those replaced by a new entry of the same
    /// `org.opencontainers.image.ref.name`.
    pub fn create_dir(root: &Path) -> Result<Self> {
        let existing = root.join("index.json");
        let index = if existing.is_file() {
            let raw = std::fs::read(&existing).map_err(|source| Error::Io {
                action: "read",
                path: existing.clone(),
                source,
            })?;
            Parsed::<Index>::from_bytes(raw)?.into_parts().0
        } else {
            Index::new_oci(Vec::new())
        };
        Self::with_index(DirSink::create(root)?, index)
    }
}

impl<W: Write> OciLayoutWriter<TarSink<W>> {
    /// Writes the layout as a tar to `writer`.
    pub fn tar(writer: W) -> Result<Self> {
        Self::new(TarSink::new(writer))
    }
}

impl<S: LayoutSink> OciLayoutWriter<S> {
    /// Writes into `sink`, starting with an empty index.
    pub fn new(sink: S) -> Result<Self> {
        Self::with_index(sink, Index::new_oci(Vec::new()))
    }

    fn with_index(mut sink: S, index: Index) -> Result<Self> {
        let layout = go_json::to_vec(&ImageLayout::default())?;
        sink.write_file("oci-layout", &layout)?;
        Ok(Self {
            sink,
            written: BTreeSet::new(),
            index,
        })
    }

    /// Streams a blob of `size` bytes from `reader`, verifying it hashes to `digest`. A blob
    /// already written is skipped (and `reader` left unread).
    pub fn add_blob(&mut self, digest: &Digest, size: u64, reader: &mut dyn Read) -> Result<()> {
        if self.written.contains(digest) {
            return Ok(());
        }
        self.sink
            .write_blob(&blob_path(digest), digest, size, reader)?;
        self.written.insert(digest.clone());
        Ok(())
    }

    /// Whether a blob was written by this writer.
    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.written.contains(digest)
    }

    /// Writes a blob held in memory.
    pub fn add_blob_bytes(&mut self, digest: &Digest, bytes: &[u8]) -> Result<()> {
        self.add_blob(digest, bytes.len() as u64, &mut &*bytes)
    }

    /// Writes the exact bytes of a parsed document and returns its descriptor.
    pub fn add_document<T: Document>(
        &mut self,
        doc: &Parsed<T>,
        media_type: MediaType,
    ) -> Result<Descriptor> {
        self.add_blob_bytes(doc.digest(), doc.raw())?;
        Ok(doc.descriptor_with(media_type))
    }

    /// Adds an `index.json` entry for a manifest or index already written, tagged
    /// `ref_name` (the `org.opencontainers.image.ref.name` annotation) when given. An
    /// existing entry with the same ref name is replaced.
    pub fn add_manifest(&mut self, mut descriptor: Descriptor, ref_name: Option<&str>) {
        if let Some(name) = ref_name {
            descriptor
                .annotations
                .insert(annotations::REF_NAME.to_owned(), name.to_owned());
            self.index.manifests.retain(|d| d.ref_name() != Some(name));
        }
        self.index.manifests.push(descriptor);
    }

    /// Adds `root` to `index.json` once per name in `names` — its tag as
    /// `org.opencontainers.image.ref.name` (`latest` when it has none), the full name as
    /// `io.containerd.image.name`, as BuildKit's OCI exporter names an image — or once
    /// unnamed when there are no names.
    pub fn add_named_root(&mut self, root: &Descriptor, names: &[crate::Reference]) {
        if names.is_empty() {
            self.add_manifest(root.clone(), None);
        }
        for name in names {
            let tagged = name.tag_name_only();
            let mut entry = root.clone();
            entry.annotations.insert(
                annotations::CONTAINERD_IMAGE_NAME.to_owned(),
                tagged.to_string(),
            );
            self.add_manifest(entry, Some(tagged.tag().unwrap_or("latest")));
        }
    }

    /// Sets an annotation on `index.json` itself.
    pub fn annotate_index(&mut self, key: &str, value: &str) {
        self.index
            .annotations
            .insert(key.to_owned(), value.to_owned());
    }

    /// Gives access to the sink (to write extra files such as docker's `manifest.json`).
    pub fn sink_mut(&mut self) -> &mut S {
        &mut self.sink
    }

    /// Writes `index.json` and gives the sink back.
    pub fn finish(mut self) -> Result<S> {
        let index = go_json::to_vec_indent(&self.index, "", "  ")?;
        self.sink.write_file("index.json", &index)?;
        Ok(self.sink)
    }
}

impl<W: Write> OciLayoutWriter<TarSink<W>> {
    /// Writes `index.json`, ends the tar and gives the writer back.
    pub fn finish_tar(self) -> Result<W> {
        self.finish()?.finish()
    }
}

/// A readable OCI image layout: `index.json` parsed, blobs read and verified on demand.
#[derive(Debug)]
pub struct OciLayout<S: LayoutSource> {
    source: S,
    index: Parsed<Index>,
}

impl OciLayout<DirSource> {
    /// Opens the layout in directory `root`.
    pub fn open_dir(root: &Path) -> Result<Self> {
        Self::open(DirSource::new(root))
    }
}

impl<R: Read + Seek> OciLayout<TarSource<R>> {
    /// Opens a layout tar read from `reader`; `label` (its path) names it in errors.
    pub fn open_tar(reader: R, label: &Path) -> Result<Self> {
        Self::open(TarSource::new(reader, label)?)
    }
}

impl<S: LayoutSource> OciLayout<S> {
    /// Opens a layout read from `source`, checking `oci-layout` and parsing `index.json`.
    pub fn open(mut source: S) -> Result<Self> {
        Parsed::<ImageLayout>::from_bytes(source.read("oci-layout")?)?;
        let index = Parsed::<Index>::from_bytes(source.read("index.json")?)?;
        Ok(Self { source, index })
    }

    /// The parsed `index.json`.
    pub fn index(&self) -> &Parsed<Index> {
        &self.index
    }

    /// The `index.json` entry whose ref name annotation is `name`.
    pub fn find(&self, name: &str) -> Option<&Descriptor> {
        self.index
            .manifests
            .iter()
            .find(|d| d.ref_name() == Some(name))
    }

    /// Whether the blob is present.
    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.source.exists(&blob_path(digest))
    }

    /// Streams a blob, unverified (hash it while reading when that matters).
    pub fn open_blob(&mut self, digest: &Digest) -> Result<Box<dyn Read + '_>> {
        self.source.open(&blob_path(digest))
    }

    /// Reads a blob and verifies its digest.
    pub fn read_blob(&mut self, digest: &Digest) -> Result<Vec<u8>> {
        let bytes = self.source.read(&blob_path(digest))?;
        digest.verify(&bytes)?;
        Ok(bytes)
    }

    /// Reads and parses the manifest or index `descriptor` points at.
    pub fn read_any_manifest(&mut self, descriptor: &Descriptor) -> Result<AnyManifest> {
        let bytes = self.read_blob(&descriptor.digest)?;
        AnyManifest::from_bytes(bytes, Some(&descriptor.media_type))
    }

    /// Reads and parses the manifest `descriptor` points at.
    pub fn read_manifest(&mut self, descriptor: &Descriptor) -> Result<Parsed<Manifest>> {
        let bytes = self.source.read(&blob_path(&descriptor.digest))?;
        Parsed::from_bytes_verified(bytes, &descriptor.digest)
    }

    /// Reads and parses the image config `descriptor` points at.
    pub fn read_config(&mut self, descriptor: &Descriptor) -> Result<Parsed<ImageConfig>> {
        let bytes = self.source.read(&blob_path(&descriptor.digest))?;
        Parsed::from_bytes_verified(bytes, &descriptor.digest)
    }

    /// Gives the source back.
    pub fn into_source(self) -> S {
        self.source
    }
}
