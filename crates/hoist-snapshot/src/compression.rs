//! Layer streams: reading a tar whatever its compression ([`decompress`]), and writing one
//! compressed and hashed in a single pass ([`LayerWriter`]); archives `ADD` unpacks, which
//! may also be bzip2 or xz ([`decompress_archive`]).
//!
//! ```text
//! tar bytes ─► diff_id sha256 ─► gzip | zstd ─► sha256 + size ─► your writer
//!                             └─► none (the blob digest is the diff_id) ─► your writer
//! ```
//!
//! gzip runs on every core ([`crate::parallel_gzip`]) with a fixed header (no mtime, no
//! file name, OS "unknown") and output independent of the thread count; zstd runs
//! single-threaded; so the same tar always gives the same blob digest.

use std::io::{self, BufRead, BufReader, Read, Write};

use flate2::read::MultiGzDecoder;
use hoist_oci::{Compression, Descriptor, Digest, DigestWriter, Digester, MediaType};

use crate::error::{Error, Result};
use crate::parallel_gzip::ParallelGzip;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
const BZIP2_MAGIC: [u8; 3] = *b"BZh";
const XZ_MAGIC: [u8; 6] = [0xfd, b'7', b'z', b'X', b'Z', 0x00];

/// Guesses the compression of a layer stream from its first bytes.
pub fn detect_compression(head: &[u8]) -> Compression {
    if head.starts_with(&GZIP_MAGIC) {
        Compression::Gzip
    } else if head.starts_with(&ZSTD_MAGIC) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// Wraps `reader` in the decompressor its magic bytes call for (gzip, zstd, or none).
pub fn decompress<'a, R: Read + 'a>(reader: R) -> Result<Box<dyn Read + 'a>> {
    let mut buffered = BufReader::with_capacity(128 * 1024, reader);
    let head = buffered
        .fill_buf()
        .map_err(|source| Error::ReadLayer { source })?;
    Ok(match detect_compression(head) {
        Compression::Gzip => Box::new(MultiGzDecoder::new(buffered)),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::with_buffer(buffered)
                .map_err(|source| Error::ReadLayer { source })?,
        ),
        Compression::None => Box::new(buffered),
    })
}

/// Wraps `reader` in the decompressor of a local archive `ADD` unpacks: what [`decompress`]
/// reads, and bzip2 and xz too (moby's `DecompressStream`, which BuildKit's unpack uses;
/// layers are only ever gzip or zstd).
pub fn decompress_archive<'a, R: Read + 'a>(reader: R) -> Result<Box<dyn Read + 'a>> {
    let mut buffered = BufReader::with_capacity(128 * 1024, reader);
    let head = buffered
        .fill_buf()
        .map_err(|source| Error::ReadLayer { source })?;
    if head.starts_with(&BZIP2_MAGIC) {
        Ok(Box::new(bzip2::bufread::MultiBzDecoder::new(buffered)))
    } else if head.starts_with(&XZ_MAGIC) {
        Ok(Box::new(lzma_rust2::XzReader::new(buffered, true)))
    } else {
        decompress(buffered)
    }
}

/// Which family of media types a layer descriptor gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MediaTypes {
    /// `application/vnd.oci.image.layer.v1.tar[+gzip|+zstd]`.
    #[default]
    Oci,
    /// `application/vnd.docker.image.rootfs.diff.tar[.gzip|.zstd]`.
    Docker,
}

impl MediaTypes {
    /// The layer media type for `compression` in this family.
    pub fn layer(self, compression: Compression) -> MediaType {
        match (self, compression) {
            (Self::Oci, Compression::None) => MediaType::OciLayer,
            (Self::Oci, Compression::Gzip) => MediaType::OciLayerGzip,
            (Self::Oci, Compression::Zstd) => MediaType::OciLayerZstd,
            (Self::Docker, Compression::None) => MediaType::DockerLayer,
            (Self::Docker, Compression::Gzip) => MediaType::DockerLayerGzip,
            (Self::Docker, Compression::Zstd) => MediaType::DockerLayerZstd,
        }
    }
}

/// How to compress a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerOptions {
    /// The compression.
    pub compression: Compression,
    /// The level: gzip 0–9 (default 6, as BuildKit), zstd 1–22 (default 3). `None` for
    /// the default.
    pub level: Option<i32>,
    /// OCI or Docker media types for the descriptor.
    pub media_types: MediaTypes,
}

impl Default for LayerOptions {
    fn default() -> Self {
        Self {
            compression: Compression::Gzip,
            level: None,
            media_types: MediaTypes::Oci,
        }
    }
}

/// A written layer: its descriptor (digest and size of the compressed blob) and its
/// `diff_id` (digest of the uncompressed tar, as listed in the image config's `rootfs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// The compressed blob.
    pub descriptor: Descriptor,
    /// The sha256 of the uncompressed tar.
    pub diff_id: Digest,
    /// The size of the uncompressed tar.
    pub diff_size: u64,
}

enum Encoder<W: Write> {
    /// Uncompressed: the blob is the tar, so its digest is the diff id (hashed once).
    None(W),
    Gzip(ParallelGzip<DigestWriter<W>>),
    Zstd(zstd::stream::write::Encoder<'static, DigestWriter<W>>),
}

/// How the uncompressed tar's digest (the diff id) is had.
enum DiffId {
    /// Hashed as the tar goes through.
    Hashed(Box<Digester>),
    /// Given by the caller, who has it from a verified source; only the size is counted.
    Known(Digest, u64),
}

/// A [`Write`] that takes an uncompressed layer tar and passes it, compressed and hashed,
/// to an inner writer; [`LayerWriter::finish`] gives the [`Layer`].
pub struct LayerWriter<W: Write> {
    diff: DiffId,
    encoder: Encoder<W>,
    options: LayerOptions,
}

impl<W: Write> std::fmt::Debug for LayerWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let written = match &self.diff {
            DiffId::Hashed(digester) => digester.len(),
            DiffId::Known(_, len) => *len,
        };
        f.debug_struct("LayerWriter")
            .field("options", &self.options)
            .field("written", &written)
            .finish()
    }
}

impl<W: Write> LayerWriter<W> {
    /// Starts a layer written to `out`.
    pub fn new(out: W, options: LayerOptions) -> Result<Self> {
        let encoder = match options.compression {
            Compression::None => Encoder::None(out),
            Compression::Gzip => {
                let hashed = DigestWriter::new(out);
                let level = options.level.unwrap_or(6).clamp(0, 9);
                let level = u32::try_from(level).unwrap_or(6);
                Encoder::Gzip(
                    ParallelGzip::new(hashed, level)
                        .map_err(|source| Error::WriteLayer { source })?,
                )
            }
            Compression::Zstd => {
                let level = options.level.unwrap_or(3);
                Encoder::Zstd(
                    zstd::stream::write::Encoder::new(DigestWriter::new(out), level)
                        .map_err(|source| Error::WriteLayer { source })?,
                )
            }
        };
        Ok(Self {
            diff: DiffId::Hashed(Box::new(Digester::sha256())),
            encoder,
            options,
        })
    }

    /// Starts a layer written to `out` whose uncompressed tar is known to have the digest
    /// `diff_id` — it is read from a blob verified against that digest when it was stored —
    /// so it is not hashed again (a third of the hashing of a gzip export). The [`Layer`]
    /// names `diff_id` as is.
    pub fn with_diff_id(out: W, options: LayerOptions, diff_id: Digest) -> Result<Self> {
        let mut writer = Self::new(out, options)?;
        writer.diff = DiffId::Known(diff_id, 0);
        Ok(writer)
    }

    /// Ends the compressed stream and returns the inner writer and the layer's digests.
    pub fn finish(self) -> Result<(W, Layer)> {
        let (diff_id, diff_size) = match self.diff {
            DiffId::Hashed(digester) => digester.finish(),
            DiffId::Known(digest, len) => (digest, len),
        };
        let (mut out, digest, size) = match self.encoder {
            Encoder::None(w) => (w, diff_id.clone(), diff_size),
            Encoder::Gzip(w) => w
                .finish()
                .map_err(|source| Error::WriteLayer { source })?
                .finish(),
            Encoder::Zstd(w) => w
                .finish()
                .map_err(|source| Error::WriteLayer { source })?
                .finish(),
        };
        out.flush().map_err(|source| Error::WriteLayer { source })?;
        let media_type = self.options.media_types.layer(self.options.compression);
        Ok((
            out,
            Layer {
                descriptor: Descriptor::new(media_type, digest, size),
                diff_id,
                diff_size,
            },
        ))
    }
}

impl<W: Write> Write for LayerWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = match &mut self.encoder {
            Encoder::None(w) => w.write(buf)?,
            Encoder::Gzip(w) => w.write(buf)?,
            Encoder::Zstd(w) => w.write(buf)?,
        };
        match &mut self.diff {
            DiffId::Hashed(digester) => digester.update(&buf[..n]),
            DiffId::Known(_, len) => *len += n as u64,
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.encoder {
            Encoder::None(w) => w.flush(),
            Encoder::Gzip(w) => w.flush(),
            Encoder::Zstd(w) => w.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer_of(bytes: &[u8], compression: Compression) -> (Vec<u8>, Layer) {
        let options = LayerOptions {
            compression,
            ..LayerOptions::default()
        };
        let mut w = LayerWriter::new(Vec::new(), options).unwrap();
        w.write_all(bytes).unwrap();
        w.finish().unwrap()
    }

    #[test]
    fn every_compression_round_trips_and_is_deterministic() {
        let tar = vec![7u8; 10_000];
        for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
            let (blob, layer) = layer_of(&tar, c);
            let (blob2, layer2) = layer_of(&tar, c);
            assert_eq!(blob, blob2, "{c:?}");
            assert_eq!(layer, layer2);
            assert_eq!(layer.diff_id, Digest::sha256_of(&tar));
            assert_eq!(layer.descriptor.digest, Digest::sha256_of(&blob));
            assert_eq!(layer.descriptor.size, blob.len() as u64);
            assert_eq!(detect_compression(&blob), c);
            let mut back = Vec::new();
            decompress(&blob[..])
                .unwrap()
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, tar);
        }
    }

    #[test]
    fn a_known_diff_id_is_taken_as_given_and_the_blob_is_the_same() {
        let tar = b"not really a tar, but bytes".repeat(1000);
        let (blob, hashed) = layer_of(&tar, Compression::Gzip);
        let given = Digest::sha256_of(b"what the caller says");
        let mut w =
            LayerWriter::with_diff_id(Vec::new(), LayerOptions::default(), given.clone()).unwrap();
        w.write_all(&tar).unwrap();
        let (blob2, layer) = w.finish().unwrap();
        assert_eq!(blob2, blob);
        assert_eq!(layer.descriptor, hashed.descriptor);
        assert_eq!(layer.diff_id, given);
        assert_eq!(layer.diff_size, tar.len() as u64);
    }

    #[test]
    fn gzip_header_has_no_mtime_and_no_name() {
        let (blob, layer) = layer_of(b"x", Compression::Gzip);
        // ID1 ID2 CM FLG MTIME(4) XFL OS
        assert_eq!(blob[3], 0, "no FNAME/FCOMMENT/FEXTRA flags");
        assert_eq!(&blob[4..8], &[0, 0, 0, 0]);
        assert_eq!(blob[9], 255);
        assert_eq!(layer.descriptor.media_type, MediaType::OciLayerGzip);
    }

    #[test]
    fn docker_media_types() {
        assert_eq!(
            MediaTypes::Docker.layer(Compression::Zstd),
            MediaType::DockerLayerZstd
        );
        assert_eq!(
            MediaTypes::Oci.layer(Compression::None),
            MediaType::OciLayer
        );
    }
}
