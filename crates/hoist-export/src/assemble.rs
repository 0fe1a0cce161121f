//! Turning [`PlatformImage`]s into stored documents: layers converted to the wanted
//! compression and media types, a config, a manifest per platform and, for more than one
//! platform, an index; everything written to the content store under a [`Lease`].
//!
//! Layers already in the wanted compression are reused as they are (only the media type
//! family changes, which does not touch the bytes); others, or all with
//! `force-compression=true`, are streamed through [`hoist_snapshot::decompress`] and a
//! [`LayerWriter`] into the store. Converted blobs are remembered per [`Assembler`], so an
//! export with several outputs converts each layer once, and in the store as variants of
//! their source (`gzip`, `zstd-3`), so a later export reuses them.
//!
//! Layers an image needs converted are converted several at once (at most
//! [`CONVERSIONS_AT_ONCE`]), and, for an export that pushes, each is uploaded as it is
//! compressed ([`crate::stream`]).
//!
//! With `rewrite-timestamp=true` and an epoch, every layer after the base image's own is
//! streamed through [`crate::clamp`] on its way to the [`LayerWriter`]: a new blob with a
//! new diff ID, which the config's `rootfs.diff_ids` then list. The rewrite is remembered
//! as the variant `<compression>.epoch-<seconds>`, its diff ID in the record.

use std::collections::{HashMap, HashSet};

use std::sync::Arc;

use hoist_content::{ContentStore, Expected, Lease};
use hoist_oci::{
    go_json, Compression, Descriptor, Digest, ImageConfig, Index, Manifest, MediaType, Parsed,
};
use hoist_snapshot::{LayerOptions, LayerWriter, MediaTypes};

use crate::clamp::clamp_times;
use crate::error::{Error, Result};
use crate::image::{ExportLayer, PlatformImage};
use crate::output::{AnnotationTarget, Annotations, ImageFormat};
use crate::stream::{LayerStreamer, Tee};

/// How many layers of one image are converted at once. Each conversion already compresses
/// on every core; a few at once keep the cores busy through the parts that are one thread
/// (reading, the tar's sha256) and the uploads moving. Each holds a few MiB.
const CONVERSIONS_AT_ONCE: usize = 3;

/// One platform's stored image.
#[derive(Debug, Clone)]
pub(crate) struct AssembledManifest {
    /// The manifest's descriptor (platform and descriptor annotations set).
    pub descriptor: Descriptor,
    /// The config, with its exact bytes.
    pub config: Parsed<ImageConfig>,
    /// The config's descriptor.
    pub config_descriptor: Descriptor,
    /// The layers as the manifest lists them.
    pub layers: Vec<Descriptor>,
}

/// A stored image: the root (index or single manifest) and its platforms.
#[derive(Debug, Clone)]
pub(crate) struct Assembled {
    /// The index for several platforms, else the one manifest.
    pub root: Descriptor,
    /// The index bytes when there is one.
    pub index: Option<Vec<u8>>,
    /// One entry per platform, in request order.
    pub manifests: Vec<AssembledManifest>,
}

impl Assembled {
    /// The config digest when there is exactly one platform.
    pub fn single_config(&self) -> Option<Digest> {
        match self.manifests.as_slice() {
            [one] => Some(one.config_descriptor.digest.clone()),
            _ => None,
        }
    }
}

/// Assembles images into one store, remembering converted layers.
#[derive(Debug)]
pub(crate) struct Assembler {
    store: ContentStore,
    lease: Arc<Lease>,
    /// (source blob, compression, level) → converted layer.
    converted: HashMap<(Digest, Compression, Option<i32>), Descriptor>,
    /// (source blob, compression, level, epoch) → rewritten layer and its diff ID.
    rewritten: HashMap<(Digest, Compression, Option<i32>, i64), ExportLayer>,
    /// Uploads of the layers converted, for an export that pushes.
    streamer: Option<Arc<LayerStreamer>>,
}

/// Where a variant record keeps the diff ID of a rewritten layer.
const DIFF_ID_ANNOTATION: &str = "containerd.io/uncompressed";

impl Assembler {
    pub fn new(store: ContentStore, lease: Arc<Lease>) -> Self {
        Self {
            store,
            lease,
            converted: HashMap::new(),
            rewritten: HashMap::new(),
            streamer: None,
        }
    }

    /// Uploads each layer converted from now on through `streamer` as it is written (`None`:
    /// no more).
    pub fn set_streamer(&mut self, streamer: Option<Arc<LayerStreamer>>) {
        self.streamer = streamer;
    }

    /// Writes config, manifests and index for `images` in `format`.
    pub fn assemble(
        &mut self,
        images: &[PlatformImage],
        format: &ImageFormat,
        annotations: &Annotations,
    ) -> Result<Assembled> {
        if images.is_empty() {
            return Err(Error::Unsupported("no image to export".into()));
        }
        // As BuildKit: annotations on an index or a descriptor need OCI media types.
        let oci = media_types_oci(format) || annotations.need_oci_types();
        let mut manifests = Vec::with_capacity(images.len());
        for image in images {
            manifests.push(self.assemble_one(image, format, oci, annotations)?);
        }
        if let [one] = manifests.as_slice() {
            return Ok(Assembled {
                root: one.descriptor.clone(),
                index: None,
                manifests,
            });
        }
        let entries: Vec<Descriptor> = manifests.iter().map(|m| m.descriptor.clone()).collect();
        let mut index = if oci {
            Index::new_oci(entries)
        } else {
            Index::new_docker(entries)
        };
        index.annotations = annotations.for_target(AnnotationTarget::Index, None);
        let bytes = go_json::to_vec_indent(&index, "", "  ")?;
        let mut root = self.put(index.descriptor_media_type(), &bytes)?;
        // Where the index is listed: an OCI layout's `index.json`, the store's names.
        root.annotations = annotations.for_target(AnnotationTarget::IndexDescriptor, None);
        Ok(Assembled {
            root,
            index: Some(bytes),
            manifests,
        })
    }

    fn assemble_one(
        &mut self,
        image: &PlatformImage,
        format: &ImageFormat,
        oci: bool,
        annotations: &Annotations,
    ) -> Result<AssembledManifest> {
        let platform_name = image.platform.format();
        check_image(image)?;
        let epochs = if format.rewrite_timestamp {
            image.layer_epochs()
        } else {
            vec![None; image.layers.len()]
        };
        self.convert_ahead(image, format, oci, &epochs, &platform_name)?;
        let mut layers = Vec::with_capacity(image.layers.len());
        let mut diff_ids = Vec::with_capacity(image.layers.len());
        for (layer, epoch) in image.layers.iter().zip(epochs) {
            let written = match epoch {
                // Non-distributable layers are fetched from elsewhere by their digest.
                Some(epoch) if !layer.descriptor.media_type.is_non_distributable() => {
                    self.rewrite_layer(layer, format, oci, epoch, &platform_name)?
                }
                _ => ExportLayer {
                    descriptor: self.convert_layer(layer, format, oci, &platform_name)?,
                    diff_id: layer.diff_id.clone(),
                },
            };
            layers.push(written.descriptor);
            diff_ids.push(written.diff_id);
        }
        let mut config = image.config.clone();
        config.rootfs.kind = "layers".into();
        config.rootfs.diff_ids = diff_ids;
        let config = match &image.inline_cache {
            None => Parsed::from_value(config)?,
            Some(records) => {
                Parsed::from_bytes(crate::image::config_with_inline_cache(&config, records)?)?
            }
        };
        let config_type = if oci {
            MediaType::OciConfig
        } else {
            MediaType::DockerConfig
        };
        let config_descriptor = self.put(config_type, config.raw())?;

        let mut manifest = if oci {
            Manifest::new_oci(config_descriptor.clone(), layers.clone())
        } else {
            Manifest::new_docker(config_descriptor.clone(), layers.clone())
        };
        manifest.annotations =
            annotations.for_target(AnnotationTarget::Manifest, Some(&image.platform));
        // Serialised directly: a manifest with no layers (a `FROM scratch` image with only
        // config changes) is valid to BuildKit and registries, not to the strict schema check.
        manifest.validate()?;
        let bytes = go_json::to_vec_indent(&manifest, "", "  ")?;
        let mut descriptor = self.put(manifest.descriptor_media_type(), &bytes)?;
        descriptor.platform = Some(image.platform.clone());
        descriptor.annotations =
            annotations.for_target(AnnotationTarget::ManifestDescriptor, Some(&image.platform));
        Ok(AssembledManifest {
            descriptor,
            config,
            config_descriptor,
            layers,
        })
    }

    /// Stores a small document under the lease.
    fn put(&self, media_type: MediaType, bytes: &[u8]) -> Result<Descriptor> {
        self.lease.add(&Digest::sha256_of(bytes))?;
        Ok(self.store.put_bytes(media_type, bytes)?)
    }

    /// The layer as the output wants it: the same blob when its compression already
    /// matches (media type family adjusted), else recompressed into the store.
    fn convert_layer(
        &mut self,
        layer: &ExportLayer,
        format: &ImageFormat,
        oci: bool,
        platform: &str,
    ) -> Result<Descriptor> {
        let source = &layer.descriptor;
        let Some(current) = source.media_type.layer_compression() else {
            return Err(Error::InvalidImage {
                platform: platform.to_owned(),
                reason: format!(
                    "layer {} has media type {}, not a layer type",
                    source.digest, source.media_type
                ),
            });
        };
        self.lease.add(&source.digest)?;
        let family = if oci {
            MediaTypes::Oci
        } else {
            MediaTypes::Docker
        };
        if current == format.compression && !format.force_compression {
            let mut descriptor = source.clone();
            descriptor.media_type = convert_media_type(&source.media_type, family, current);
            return Ok(descriptor);
        }
        let key = (
            source.digest.clone(),
            format.compression,
            format.compression_level,
        );
        if let Some(done) = self.converted.get(&key) {
            let mut descriptor = done.clone();
            descriptor.media_type = family.layer(format.compression);
            return Ok(descriptor);
        }
        // A conversion made by an earlier export (build layers are stored uncompressed and
        // gzipped when first exported) is reused; `force-compression` always redoes it.
        let variant = variant_name(format);
        if !format.force_compression {
            if let Some(mut done) = self.store.variant(&source.digest, &variant) {
                self.lease.add(&done.digest)?;
                if self.store.has(&done.digest) {
                    done.media_type = family.layer(format.compression);
                    self.converted.insert(key, done.clone());
                    return Ok(done);
                }
            }
        }
        let descriptor = self
            .recompress(layer, format, family, None, platform)?
            .descriptor;
        // Only a speed-up for the next export: a record that cannot be written is redone.
        let _ = self
            .store
            .set_variant(&source.digest, &variant, &descriptor);
        self.converted.insert(key, descriptor.clone());
        Ok(descriptor)
    }

    /// Converts, several at once, the layers of `image` that [`Assembler::convert_layer`]
    /// would recompress one after the other (neither converted by this export, nor recorded
    /// as a variant, nor rewritten for an epoch), and remembers them as it does.
    fn convert_ahead(
        &mut self,
        image: &PlatformImage,
        format: &ImageFormat,
        oci: bool,
        epochs: &[Option<i64>],
        platform: &str,
    ) -> Result<()> {
        let variant = variant_name(format);
        let mut keys = HashSet::new();
        let mut todo = Vec::new();
        for (layer, epoch) in image.layers.iter().zip(epochs) {
            let source = &layer.descriptor;
            if epoch.is_some() && !source.media_type.is_non_distributable() {
                continue;
            }
            let Some(current) = source.media_type.layer_compression() else {
                continue;
            };
            if current == format.compression && !format.force_compression {
                continue;
            }
            let key = (
                source.digest.clone(),
                format.compression,
                format.compression_level,
            );
            let recorded = !format.force_compression
                && self
                    .store
                    .variant(&source.digest, &variant)
                    .is_some_and(|done| self.store.has(&done.digest));
            if self.converted.contains_key(&key) || recorded || !keys.insert(key) {
                continue;
            }
            todo.push(layer);
        }
        if todo.len() < 2 {
            return Ok(());
        }
        for layer in &todo {
            self.lease.add(&layer.descriptor.digest)?;
        }
        // Each result is taken once, by index, so the results keep the layers' order.
        let next = std::sync::atomic::AtomicUsize::new(0);
        let results: Vec<std::sync::Mutex<Option<Result<ExportLayer>>>> =
            todo.iter().map(|_| std::sync::Mutex::new(None)).collect();
        let family = if oci {
            MediaTypes::Oci
        } else {
            MediaTypes::Docker
        };
        let this = &*self;
        std::thread::scope(|scope| {
            for _ in 0..CONVERSIONS_AT_ONCE.min(todo.len()) {
                scope.spawn(|| loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(layer) = todo.get(i) else { break };
                    let result = this.recompress(layer, format, family, None, platform);
                    if let Ok(mut slot) = results[i].lock() {
                        *slot = Some(result);
                    }
                });
            }
        });
        for (layer, result) in todo.iter().zip(results) {
            let result = result
                .into_inner()
                .ok()
                .flatten()
                .unwrap_or_else(|| Err(Error::Task("a layer conversion panicked".into())));
            let descriptor = result?.descriptor;
            let _ = self
                .store
                .set_variant(&layer.descriptor.digest, &variant, &descriptor);
            let key = (
                layer.descriptor.digest.clone(),
                format.compression,
                format.compression_level,
            );
            self.converted.insert(key, descriptor);
        }
        Ok(())
    }

    /// The layer with its file times clamped to `epoch`, in the output's compression: from
    /// this export's memory, a variant an earlier export recorded, or rewritten now.
    fn rewrite_layer(
        &mut self,
        layer: &ExportLayer,
        format: &ImageFormat,
        oci: bool,
        epoch: i64,
        platform: &str,
    ) -> Result<ExportLayer> {
        let source = &layer.descriptor;
        self.lease.add(&source.digest)?;
        let family = if oci {
            MediaTypes::Oci
        } else {
            MediaTypes::Docker
        };
        let key = (
            source.digest.clone(),
            format.compression,
            format.compression_level,
            epoch,
        );
        if let Some(done) = self.rewritten.get(&key) {
            let mut done = done.clone();
            done.descriptor.media_type = family.layer(format.compression);
            return Ok(done);
        }
        let variant = format!("{}.epoch-{epoch}", variant_name(format));
        if let Some(mut done) = self.store.variant(&source.digest, &variant) {
            let diff_id = done
                .annotations
                .remove(DIFF_ID_ANNOTATION)
                .and_then(|d| Digest::parse(&d).ok());
            self.lease.add(&done.digest)?;
            if let (Some(diff_id), true) = (diff_id, self.store.has(&done.digest)) {
                done.media_type = family.layer(format.compression);
                let done = ExportLayer {
                    descriptor: done,
                    diff_id,
                };
                self.rewritten.insert(key, done.clone());
                return Ok(done);
            }
        }
        let written = self.recompress(layer, format, family, Some(epoch), platform)?;
        let mut record = written.descriptor.clone();
        record
            .annotations
            .insert(DIFF_ID_ANNOTATION.to_owned(), written.diff_id.to_string());
        // Only a speed-up for the next export: a record that cannot be written is redone.
        let _ = self.store.set_variant(&source.digest, &variant, &record);
        self.rewritten.insert(key, written.clone());
        Ok(written)
    }

    /// decompress → (times clamped to `epoch`) → [`LayerWriter`] → a store writer: the new
    /// blob is written once. The source must uncompress to the layer's diff ID.
    fn recompress(
        &self,
        layer: &ExportLayer,
        format: &ImageFormat,
        family: MediaTypes,
        epoch: Option<i64>,
        platform: &str,
    ) -> Result<ExportLayer> {
        let digest = &layer.descriptor.digest;
        let recompress_err = |source| Error::Recompress {
            digest: digest.clone(),
            source,
        };
        let blob = self.store.open_blob(digest)?;
        let mut reader = hoist_snapshot::decompress(blob).map_err(recompress_err)?;
        let options = LayerOptions {
            compression: format.compression,
            level: format.compression_level,
            media_types: family,
        };
        let out = Tee {
            inner: self.store.writer()?,
            sink: self.streamer.as_ref().map(|s| s.start()),
        };
        // A source blob whose digest is the diff id is the tar itself (an uncompressed
        // layer): the store verified it against that digest when it was written, so it is
        // not hashed a second time on its way through, only its size checked (an epoch
        // rewrite makes a new tar, which is hashed).
        let verbatim = epoch.is_none() && layer.descriptor.digest == layer.diff_id;
        // The store writer hashes the new blob as it writes it: the layer writer takes the
        // blob's digest from it, so the compressed bytes are hashed once, by the store.
        let mut writer = if verbatim {
            LayerWriter::onto_digesting_with_diff_id(out, options, layer.diff_id.clone())
        } else {
            LayerWriter::onto_digesting(out, options)
        }
        .map_err(recompress_err)?;
        let source_diff_id = match epoch {
            Some(epoch) => Some(clamp_times(&mut reader, &mut writer, epoch).map_err(
                |source| Error::RewriteTimestamp {
                    digest: digest.clone(),
                    epoch,
                    source,
                },
            )?),
            None => {
                std::io::copy(&mut reader, &mut writer).map_err(|source| Error::Recompress {
                    digest: digest.clone(),
                    source: hoist_snapshot::Error::ReadLayer { source },
                })?;
                None
            }
        };
        let (out, written) = writer.finish().map_err(recompress_err)?;
        if verbatim && written.diff_size != layer.descriptor.size {
            return Err(Error::InvalidImage {
                platform: platform.to_owned(),
                reason: format!(
                    "layer {digest} holds {} bytes, but its descriptor says {}",
                    written.diff_size, layer.descriptor.size
                ),
            });
        }
        let uncompressed = source_diff_id.as_ref().unwrap_or(&written.diff_id);
        if *uncompressed != layer.diff_id {
            return Err(Error::InvalidImage {
                platform: platform.to_owned(),
                reason: format!(
                    "layer {digest} uncompresses to {uncompressed}, but its diff id is given as {}",
                    layer.diff_id
                ),
            });
        }
        // Leased before it is visible, as every blob an export writes.
        self.lease.add(&written.descriptor.digest)?;
        out.inner
            .commit(Some(Expected::from(&written.descriptor)))?;
        // Only now, stored and verified, may the upload close with the digest.
        if let Some(sink) = out.sink {
            sink.end(&written.descriptor);
        }
        Ok(written.into())
    }
}

/// Converts layers to a wanted compression for writers other than the image exporters
/// (the engine's cache export), with the exporters' rules: a layer already in that
/// compression is reused byte for byte, others are recompressed once and remembered as a
/// store variant, so an image export and a cache export of one build share the blob.
#[derive(Debug)]
pub struct LayerConverter {
    assembler: Assembler,
}

impl LayerConverter {
    /// A converter writing into `store`; every blob it returns is added to `lease`.
    pub fn new(store: ContentStore, lease: Arc<Lease>) -> Self {
        Self {
            assembler: Assembler::new(store, lease),
        }
    }

    /// `layer` in `format`'s compression and media type family (`rewrite_timestamp` is not
    /// applied). Blocking: it may compress the whole layer.
    pub fn convert(&mut self, layer: &ExportLayer, format: &ImageFormat) -> Result<Descriptor> {
        let oci = media_types_oci(format);
        self.assembler.convert_layer(layer, format, oci, "cache")
    }
}

/// The name a conversion is remembered by: `gzip-6`, `zstd-3`, `uncompressed`, with the
/// level when one was asked for (`gzip` alone for the default).
fn variant_name(format: &ImageFormat) -> String {
    let name = match format.compression {
        hoist_oci::Compression::None => "uncompressed",
        hoist_oci::Compression::Gzip => "gzip",
        hoist_oci::Compression::Zstd => "zstd",
    };
    match format.compression_level {
        Some(level) => format!("{name}-{level}"),
        None => name.to_owned(),
    }
}

/// Refuses an image whose config contradicts its layers or platform: such images are
/// rejected by Docker and podman, and always point at an engine bug.
fn check_image(image: &PlatformImage) -> Result<()> {
    let invalid = |reason: String| Error::InvalidImage {
        platform: image.platform.format(),
        reason,
    };
    let config = &image.config;
    let diff_ids: Vec<&Digest> = image.layers.iter().map(|l| &l.diff_id).collect();
    let given: Vec<&Digest> = config.rootfs.diff_ids.iter().collect();
    if !given.is_empty() && given != diff_ids {
        return Err(invalid(format!(
            "the config lists {} diff ids that differ from the {} layers' diff ids",
            given.len(),
            diff_ids.len()
        )));
    }
    if !config.history.is_empty() && config.non_empty_history_len() != image.layers.len() {
        return Err(invalid(format!(
            "the config history has {} entries that made a layer, but there are {} layers",
            config.non_empty_history_len(),
            image.layers.len()
        )));
    }
    let from_config = config.platform().normalize();
    let wanted = image.platform.normalize();
    if (from_config.os.as_str(), from_config.architecture.as_str())
        != (wanted.os.as_str(), wanted.architecture.as_str())
    {
        return Err(invalid(format!(
            "the config is for {}",
            config.platform().format()
        )));
    }
    Ok(())
}

/// Whether an output with `format` gets OCI media types. zstd layers have no Docker
/// schema 2 media type Docker itself reads, so, as BuildKit does, zstd forces OCI types.
pub(crate) fn media_types_oci(format: &ImageFormat) -> bool {
    format.oci_media_types || format.compression == Compression::Zstd
}

/// The media type of a reused layer in the wanted family, keeping non-distributable
/// types as they are.
fn convert_media_type(
    current: &MediaType,
    family: MediaTypes,
    compression: Compression,
) -> MediaType {
    if current.is_non_distributable() {
        return current.clone();
    }
    family.layer(compression)
}
