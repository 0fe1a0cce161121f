//! Layer streams: reading a tar whatever its compression ([`decompress`]), and writing one
//! compressed and hashed in a single pass ([`LayerWriter`]); archives `ADD` unpacks, which
//! may also be bzip2 or xz ([`decompress_archive`]).
//!
//! ```text
//! tar bytes ─► diff_id sha256 ─► gzip | zstd ─► sha256 + size ─► your writer
//!                             └─► none (the blob digest is the diff_id) ─► your writer
//! ```
//!
//! A writer that hashes what it is given anyway — a content store's ingest, which verifies
//! every blob it commits — says so through [`DigestingWrite`], and
//! [`LayerWriter::onto_digesting`] takes the blob's digest (and, uncompressed, the diff id)
//! from it instead of hashing the same bytes a second time.
//!
//! gzip runs on every core ([`crate::parallel_gzip`]) with a fixed header (no mtime, no
//! file name, OS "unknown") and output independent of the thread count; zstd runs
//! single-threaded; so the same tar always gives the same blob digest.

use std::io::{self, BufRead, BufReader, Read, Write};

use flate2::read::MultiGzDecoder;
use hoist_oci::{Compression, Descriptor, Digest, Digester, MediaType};

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

/// A [`Write`] that hashes every byte it is given and can tell what they hash to: a
/// content store's ingest, which hashes to verify what it commits. A [`LayerWriter`] made
/// with [`LayerWriter::onto_digesting`] takes the blob's digest from it rather than hashing
/// the blob itself, so the blob is hashed once, by the writer that stores it.
pub trait DigestingWrite: Write {
    /// The digest of every byte written so far (in the writer's algorithm, normally
    /// sha256) and their number. Called by [`LayerWriter::finish`] after the last write and
    /// a flush, so it must account for every byte `write` accepted.
    fn digest_so_far(&self) -> (Digest, u64);
}

/// How the finished blob's digest is read off a [`DigestingWrite`] output.
type OutDigest<W> = fn(&W) -> (Digest, u64);

/// The compressed stream on its way to the caller's writer, hashed here unless that writer
/// hashes it itself (`digester` is then `None`).
struct BlobOut<W> {
    out: W,
    digester: Option<Box<Digester>>,
}

impl<W: Write> Write for BlobOut<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        if let Some(digester) = &mut self.digester {
            digester.update(&buf[..n]);
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

impl<W> BlobOut<W> {
    fn into_parts(self) -> (W, Option<(Digest, u64)>) {
        (self.out, self.digester.map(|d| d.finish()))
    }
}

enum Encoder<W: Write> {
    /// Uncompressed: the blob is the tar, so its digest is the diff id (hashed once).
    None(W),
    Gzip(ParallelGzip<BlobOut<W>>),
    Zstd(zstd::stream::write::Encoder<'static, BlobOut<W>>),
}

/// How the uncompressed tar's digest (the diff id) is had.
enum DiffId {
    /// Hashed as the tar goes through.
    Hashed(Box<Digester>),
    /// Given by the caller, who has it from a verified source; only the size is counted.
    Known(Digest, u64),
    /// Uncompressed onto a [`DigestingWrite`]: the blob is the tar, and the output's digest
    /// is the diff id; only the size is counted here.
    OfBlob(u64),
}

/// A [`Write`] that takes an uncompressed layer tar and passes it, compressed and hashed,
/// to an inner writer; [`LayerWriter::finish`] gives the [`Layer`].
pub struct LayerWriter<W: Write> {
    diff: DiffId,
    encoder: Encoder<W>,
    options: LayerOptions,
    /// Set when the output hashes what it is given ([`LayerWriter::onto_digesting`]).
    out_digest: Option<OutDigest<W>>,
}

impl<W: Write> std::fmt::Debug for LayerWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let written = match &self.diff {
            DiffId::Hashed(digester) => digester.len(),
            DiffId::Known(_, len) | DiffId::OfBlob(len) => *len,
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
        Self::start(out, options, None)
    }

    fn start(out: W, options: LayerOptions, out_digest: Option<OutDigest<W>>) -> Result<Self> {
        let hashed = || BlobOut {
            out,
            digester: match out_digest {
                Some(_) => None,
                None => Some(Box::new(Digester::sha256())),
            },
        };
        let encoder = match options.compression {
            Compression::None => Encoder::None(hashed().out),
            Compression::Gzip => {
                let hashed = hashed();
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
                    zstd::stream::write::Encoder::new(hashed(), level)
                        .map_err(|source| Error::WriteLayer { source })?,
                )
            }
        };
        let diff = match (&encoder, out_digest) {
            (Encoder::None(_), Some(_)) => DiffId::OfBlob(0),
            _ => DiffId::Hashed(Box::new(Digester::sha256())),
        };
        Ok(Self {
            diff,
            encoder,
            options,
            out_digest,
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
        let write_err = |source| Error::WriteLayer { source };
        let (mut out, hashed_here) = match self.encoder {
            Encoder::None(w) => (w, None),
            Encoder::Gzip(w) => w.finish().map_err(write_err)?.into_parts(),
            Encoder::Zstd(w) => w.finish().map_err(write_err)?.into_parts(),
        };
        out.flush().map_err(write_err)?;
        // The blob's digest: hashed here, else by the output; `None` for an uncompressed
        // layer without a digesting output, whose blob digest is the diff id.
        let blob = hashed_here.or_else(|| self.out_digest.map(|digest_of| digest_of(&out)));
        let (diff_id, diff_size) = match (self.diff, &blob) {
            (DiffId::Hashed(digester), _) => digester.finish(),
            (DiffId::Known(digest, len), _) => (digest, len),
            (DiffId::OfBlob(len), Some((digest, size))) if *size == len => (digest.clone(), len),
            (DiffId::OfBlob(len), _) => {
                return Err(write_err(io::Error::other(format!(
                    "the layer's output accounts for {} of the {len} bytes written to it",
                    blob.map_or(0, |(_, size)| size)
                ))))
            }
        };
        let (digest, size) = blob.unwrap_or_else(|| (diff_id.clone(), diff_size));
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

impl<W: DigestingWrite> LayerWriter<W> {
    /// Starts a layer written to `out`, which hashes what it is given (a content store's
    /// ingest): the compressed blob is not hashed here, its digest and size are
    /// `out`'s at [`LayerWriter::finish`]; an uncompressed layer's diff id is too. Same bytes
    /// and same [`Layer`] as [`LayerWriter::new`], with one sha256 pass less.
    pub fn onto_digesting(out: W, options: LayerOptions) -> Result<Self> {
        Self::start(out, options, Some(W::digest_so_far))
    }

    /// [`LayerWriter::onto_digesting`] for a tar whose digest is known to be `diff_id` (see
    /// [`LayerWriter::with_diff_id`]).
    pub fn onto_digesting_with_diff_id(
        out: W,
        options: LayerOptions,
        diff_id: Digest,
    ) -> Result<Self> {
        let mut writer = Self::onto_digesting(out, options)?;
        writer.diff = DiffId::Known(diff_id, 0);
        Ok(writer)
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
            DiffId::Known(_, len) | DiffId::OfBlob(len) => *len += n as u64,
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

    /// An output that hashes what it is given, as a store writer does; `claim` replaces
    /// what it says, to show whose digest the layer names.
    struct Hashing {
        bytes: Vec<u8>,
        digester: Digester,
        claim: Option<(Digest, u64)>,
    }

    impl Hashing {
        fn new() -> Self {
            Self {
                bytes: Vec::new(),
                digester: Digester::sha256(),
                claim: None,
            }
        }
    }

    impl Write for Hashing {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.bytes.extend_from_slice(buf);
            self.digester.update(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl DigestingWrite for Hashing {
        fn digest_so_far(&self) -> (Digest, u64) {
            self.claim
                .clone()
                .unwrap_or_else(|| self.digester.clone().finish())
        }
    }

    #[test]
    fn onto_a_digesting_output_the_bytes_and_the_layer_are_the_same() {
        let tar = b"some tar bytes, compressible enough ".repeat(5000);
        for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
            let (blob, layer) = layer_of(&tar, c);
            let options = LayerOptions {
                compression: c,
                ..LayerOptions::default()
            };
            let mut w = LayerWriter::onto_digesting(Hashing::new(), options).unwrap();
            w.write_all(&tar).unwrap();
            let (out, onto) = w.finish().unwrap();
            assert_eq!(out.bytes, blob, "{c:?}");
            assert_eq!(onto, layer, "{c:?}");
            assert_eq!(onto.descriptor.digest, Digest::sha256_of(&out.bytes));
            assert_eq!(onto.diff_id, Digest::sha256_of(&tar));

            let known = Digest::sha256_of(b"given");
            let mut w =
                LayerWriter::onto_digesting_with_diff_id(Hashing::new(), options, known.clone())
                    .unwrap();
            w.write_all(&tar).unwrap();
            let (out, onto) = w.finish().unwrap();
            assert_eq!(out.bytes, blob, "{c:?}");
            assert_eq!(onto.diff_id, known);
            assert_eq!(onto.diff_size, tar.len() as u64);
            // Uncompressed, the blob is named by what the output hashed, not the given id.
            assert_eq!(onto.descriptor.digest, Digest::sha256_of(&out.bytes));
        }
    }

    #[test]
    fn onto_a_digesting_output_the_blob_digest_is_the_outputs_own() {
        let tar = b"abc".repeat(1000);
        let claimed = (Digest::sha256_of(b"what the output says"), 7);
        for c in [Compression::Gzip, Compression::Zstd, Compression::None] {
            let options = LayerOptions {
                compression: c,
                ..LayerOptions::default()
            };
            let mut out = Hashing::new();
            out.claim = Some(claimed.clone());
            let mut w = LayerWriter::onto_digesting(out, options).unwrap();
            w.write_all(&tar).unwrap();
            match w.finish() {
                Ok((_, layer)) => {
                    assert_ne!(c, Compression::None);
                    assert_eq!(layer.descriptor.digest, claimed.0, "{c:?}: hashed once");
                    assert_eq!(layer.descriptor.size, claimed.1);
                    assert_eq!(layer.diff_id, Digest::sha256_of(&tar));
                }
                // Uncompressed, the output's count must be the tar's: it is the diff id.
                Err(e) => {
                    assert_eq!(c, Compression::None);
                    assert!(e.to_string().contains("7 of the 3000 bytes"), "{e}");
                }
            }
        }
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
