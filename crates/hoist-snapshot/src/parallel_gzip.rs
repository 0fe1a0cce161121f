//! gzip on every core, the way pigz does it: the input is cut into [`CHUNK`]-sized pieces,
//! each deflated on its own (raw deflate ended by a sync flush, the last one by a final
//! block), and the pieces are written in order under one gzip header, with the CRC-32 and
//! size of the whole input in the trailer. The result is one ordinary gzip member that any
//! gunzip reads.
//!
//! Pieces share no dictionary (pigz primes each with the previous 32 KiB; for 1 MiB pieces
//! that gains well under 1 %), so a piece's bytes depend only on its input and the level:
//! the blob is the same whatever the number of threads, and layer digests are reproducible
//! from one machine to another.
//!
//! Pieces go to the threads in batches of one per core; a batch deflates while the caller
//! fills the next one (the tar walk and the diff's sha256 run meanwhile); the next batch is
//! started before the one in flight is written out, so the threads never wait for the
//! writer, and at most three batches are held. Each thread also takes its piece's CRC-32,
//! which the writer combines.
//!
//! How a piece is coded depends on its bytes alone, so the output stays deterministic:
//!
//! - already compressed (its bytes' entropy is at least [`STORED_ENTROPY`] bits per byte:
//!   gzip, xz, zstd, JPEG data): stored blocks (deflate level 0); deflating it would gain
//!   well under 1 % for a full deflate effort;
//! - no longer with Huffman coding alone than at the level asked, as measured on a
//!   [`SAMPLE`] of it (four stripes, both ways): Huffman-only (zlib's `Z_HUFFMAN_ONLY`). For
//!   text without repeats — base64, hex, random identifiers — LZ matching at level 6 finds
//!   nothing worth its cost, and Huffman-only gives the same size several times faster;
//! - otherwise deflate at the level asked (6 unless said), as before.
//!
//! zlib-rs (flate2's backend) is used directly, as flate2 does not expose the strategy;
//! pieces coded at the level asked are byte for byte what flate2 gave. flate2 has no
//! parallel encoder, and the one crate that offers one (gzp) brings its own thread pool and
//! channels for what is here a batch of at most one thread per core.

use std::io::{self, Write};

use zlib_rs::{DeflateConfig, DeflateFlush, Method, Status, Strategy};

/// The size of the pieces deflated independently.
pub(crate) const CHUNK: usize = 1 << 20;

/// The byte entropy (bits per byte) from which a piece is stored rather than deflated:
/// Huffman coding alone could save at most (8 - entropy) / 8 of it, under 0.4 % here.
pub(crate) const STORED_ENTROPY: f64 = 7.97;

/// How much of a piece is deflated both ways to choose between Huffman-only and the level
/// asked: four stripes of a quarter of this, spread over the piece (about 3 % of a piece's
/// deflate effort at level 6).
pub(crate) const SAMPLE: usize = 32 << 10;

/// One deflated piece and the CRC-32 of its input.
type Piece = (Vec<u8>, crc32fast::Hasher);

/// A [`Write`] that gzips what it is given into `inner`, on up to `threads` threads.
pub(crate) struct ParallelGzip<W: Write> {
    inner: W,
    level: u32,
    threads: usize,
    /// Full pieces waiting for a batch.
    full: Vec<Vec<u8>>,
    /// The piece being filled.
    current: Vec<u8>,
    /// The batch being deflated while the next one fills, in order.
    in_flight: Vec<std::thread::JoinHandle<io::Result<Piece>>>,
    crc: crc32fast::Hasher,
    size: u64,
}

impl<W: Write> ParallelGzip<W> {
    /// Writes the gzip header (no mtime, no name, OS "unknown") and starts the stream.
    pub(crate) fn new(mut inner: W, level: u32) -> io::Result<Self> {
        let level = level.min(9);
        // XFL as zlib sets it: 2 for the slowest level, 4 for the fastest.
        let xfl = match level {
            9 => 2,
            1 => 4,
            _ => 0,
        };
        inner.write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 255])?;
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok(Self {
            inner,
            level,
            threads,
            full: Vec::new(),
            current: Vec::with_capacity(CHUNK),
            in_flight: Vec::new(),
            crc: crc32fast::Hasher::new(),
            size: 0,
        })
    }

    /// Writes a batch, once deflated, and adds its CRCs.
    fn write_batch(
        &mut self,
        batch: Vec<std::thread::JoinHandle<io::Result<Piece>>>,
    ) -> io::Result<()> {
        for handle in batch {
            let (piece, crc) = handle
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("a gzip thread panicked")))?;
            self.crc.combine(&crc);
            self.inner.write_all(&piece)?;
        }
        Ok(())
    }

    /// Hands the full pieces to threads, then writes the batch before them, so that they
    /// deflate while the batch before is written and the caller produces the next one; the
    /// last piece ends the stream when `last`.
    fn start_batch(&mut self, last: bool) -> io::Result<()> {
        let level = self.level;
        let count = self.full.len();
        let batch = std::mem::take(&mut self.full)
            .into_iter()
            .enumerate()
            .map(|(i, piece)| {
                let final_piece = last && i + 1 == count;
                std::thread::spawn(move || {
                    let mut crc = crc32fast::Hasher::new();
                    crc.update(&piece);
                    Ok((deflate_piece(&piece, level, final_piece)?, crc))
                })
            })
            .collect();
        let before = std::mem::replace(&mut self.in_flight, batch);
        self.write_batch(before)
    }

    /// Ends the stream (final block and trailer) and returns the inner writer.
    pub(crate) fn finish(mut self) -> io::Result<W> {
        let current = std::mem::take(&mut self.current);
        self.full.push(current);
        self.start_batch(true)?;
        let last = std::mem::take(&mut self.in_flight);
        self.write_batch(last)?;
        let crc = self.crc.clone().finalize();
        // ISIZE is the input size modulo 2^32.
        let size = (self.size & 0xffff_ffff) as u32;
        self.inner.write_all(&crc.to_le_bytes())?;
        self.inner.write_all(&size.to_le_bytes())?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for ParallelGzip<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(CHUNK - self.current.len());
        self.current.extend_from_slice(&buf[..n]);
        self.size += n as u64;
        if self.current.len() == CHUNK {
            let full = std::mem::replace(&mut self.current, Vec::with_capacity(CHUNK));
            self.full.push(full);
            if self.full.len() >= self.threads {
                self.start_batch(false)?;
            }
        }
        Ok(n)
    }

    /// Flushes what the inner writer holds; pieces not yet full stay until more input or
    /// [`ParallelGzip::finish`] (a flush must not change the stream's bytes).
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// How one piece is coded (see the module's documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Coding {
    Stored,
    HuffmanOnly,
    Level(u32),
}

impl Coding {
    /// The coding for `input` when `level` is asked: decided from its bytes alone.
    fn choose(input: &[u8], level: u32) -> Self {
        if level == 0 || entropy(input) >= STORED_ENTROPY {
            return Self::Stored;
        }
        let sample = sample(input);
        let size = |coding: Coding| {
            deflate(&sample, coding, DeflateFlush::Finish).map_or(usize::MAX, |out| out.len())
        };
        if size(Self::HuffmanOnly) <= size(Self::Level(level)) {
            Self::HuffmanOnly
        } else {
            Self::Level(level)
        }
    }

    fn config(self) -> DeflateConfig {
        // Memory level 8 is zlib's and flate2's default; 9 doubles the symbols per block
        // (32 Ki), which halves the block headers of Huffman-only pieces (0.1 % of them)
        // and is otherwise unused there, as is the level.
        let (level, strategy, mem_level) = match self {
            Self::Stored => (0, Strategy::Default, 8),
            Self::HuffmanOnly => (6, Strategy::HuffmanOnly, 9),
            Self::Level(level) => (level.min(9) as i32, Strategy::Default, 8),
        };
        DeflateConfig {
            level,
            method: Method::Deflated,
            // Raw deflate (negative), 32 KiB window.
            window_bits: -15,
            mem_level,
            strategy,
        }
    }
}

/// Up to [`SAMPLE`] bytes of `input`: all of it when short, else four equal stripes from its
/// start, its quarters and its middle.
fn sample(input: &[u8]) -> Vec<u8> {
    if input.len() <= SAMPLE {
        return input.to_vec();
    }
    let stripe = SAMPLE / 4;
    let step = input.len() / 4;
    (0..4)
        .flat_map(|i| &input[i * step..i * step + stripe])
        .copied()
        .collect()
}

/// `input` as raw deflate coded as its bytes call for at `level`, ended by a final block
/// when `last`, else by a sync flush (byte-aligned, not final) so the next piece can
/// follow it.
pub(crate) fn deflate_piece(input: &[u8], level: u32, last: bool) -> io::Result<Vec<u8>> {
    let flush = if last {
        DeflateFlush::Finish
    } else {
        DeflateFlush::SyncFlush
    };
    deflate(input, Coding::choose(input, level), flush)
}

/// `input` as raw deflate with `coding`, ended by `flush`.
fn deflate(input: &[u8], coding: Coding, flush: DeflateFlush) -> io::Result<Vec<u8>> {
    let mut stream = zlib_rs::Deflate::new_with_config(coding.config());
    // Room for the worst case (stored blocks) and the flush's marker, so one call does it.
    let mut out = vec![0; zlib_rs::compress_bound(input.len()) + 64];
    let mut written = 0;
    loop {
        let consumed = usize::try_from(stream.total_in()).unwrap_or(input.len());
        let status = stream
            .compress(
                &input[consumed.min(input.len())..],
                &mut out[written..],
                flush,
            )
            .map_err(|e| io::Error::other(format!("deflate: {e:?}")))?;
        written = usize::try_from(stream.total_out()).unwrap_or(out.len());
        let all_in = usize::try_from(stream.total_in()).is_ok_and(|n| n == input.len());
        match status {
            Status::StreamEnd => break,
            // A sync flush is complete when the input is in and the output was not filled.
            Status::Ok | Status::BufError
                if flush == DeflateFlush::SyncFlush && all_in && written < out.len() =>
            {
                break
            }
            Status::Ok | Status::BufError => {
                let more = out.len().max(64 * 1024);
                out.resize(out.len() + more, 0);
            }
        }
    }
    out.truncate(written);
    Ok(out)
}

/// The Shannon entropy of `bytes` as a byte-at-a-time source, in bits per byte (0 for no
/// bytes).
fn entropy(bytes: &[u8]) -> f64 {
    if bytes.is_empty() {
        return 0.0;
    }
    // Four tables, so that runs of one byte do not serialise on one counter.
    let mut counts = [[0u32; 256]; 4];
    let mut quads = bytes.chunks_exact(4);
    for quad in &mut quads {
        for (table, &b) in counts.iter_mut().zip(quad) {
            table[usize::from(b)] += 1;
        }
    }
    for &b in quads.remainder() {
        counts[0][usize::from(b)] += 1;
    }
    let n = bytes.len() as f64;
    (0..256)
        .map(|i| counts.iter().map(|t| u64::from(t[i])).sum::<u64>())
        .filter(|&c| c > 0)
        .map(|c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use super::*;

    fn gzip(input: &[u8], threads: usize) -> Vec<u8> {
        let mut w = ParallelGzip::new(Vec::new(), 6).unwrap();
        w.threads = threads;
        // Odd-sized writes, as a tar writer makes them.
        for part in input.chunks(7919) {
            w.write_all(part).unwrap();
        }
        w.finish().unwrap()
    }

    fn gunzip(blob: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(blob)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    fn sample(len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u64).wrapping_mul(2654435761) as u8 % 23 + b'a')
            .collect()
    }

    #[test]
    fn one_member_whatever_the_size_and_the_same_bytes_whatever_the_threads() {
        for len in [0, 1, 1000, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 12345] {
            let input = sample(len);
            let one = gzip(&input, 1);
            assert_eq!(gunzip(&one), input, "len {len}");
            assert_eq!(gzip(&input, 4), one, "len {len}");
            // A plain (single-member) decoder reads all of it: one gzip member.
            let mut decoder = flate2::read::GzDecoder::new(&one[..]);
            let mut out = Vec::new();
            decoder.read_to_end(&mut out).unwrap();
            assert_eq!(out.len(), len);
        }
    }

    /// Bytes that look random (xorshift), as compressed data does.
    fn noise(len: usize, mut seed: u64) -> Vec<u8> {
        (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect()
    }

    #[test]
    fn already_compressed_pieces_are_stored_and_the_rest_deflated() {
        // Text, noise, text: the noise pieces are stored (a few bytes per 64 KiB block more
        // than their size), the text ones still compressed; one stream, the same bytes
        // whatever the threads.
        let mut input = sample(CHUNK);
        input.extend(noise(2 * CHUNK, 7));
        input.extend(sample(CHUNK + 100));
        let one = gzip(&input, 1);
        assert_eq!(gunzip(&one), input);
        assert_eq!(gzip(&input, 3), one);
        let text_only = gzip(&sample(2 * CHUNK + 100), 1).len();
        let stored = one.len() - text_only;
        assert!(
            (2 * CHUNK..2 * CHUNK + 2 * CHUNK / 1000).contains(&stored),
            "noise stored as is: {stored} bytes for {}",
            2 * CHUNK
        );
        assert!(entropy(&noise(CHUNK, 9)) >= STORED_ENTROPY);
        assert!(entropy(&sample(CHUNK)) < STORED_ENTROPY);
        assert_eq!(entropy(&[]), 0.0);
        assert_eq!(entropy(&[5; 1000]), 0.0);
    }

    /// Base64 of random bytes in 76-column lines, as `base64` writes it: text where LZ
    /// matching finds nothing.
    fn base64_text(len: usize, seed: u64) -> Vec<u8> {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        noise(len, seed)
            .iter()
            .enumerate()
            .map(|(i, b)| {
                if i % 77 == 76 {
                    b'\n'
                } else {
                    ALPHABET[usize::from(b & 63)]
                }
            })
            .collect()
    }

    fn gzip_at(input: &[u8], level: u32) -> Vec<u8> {
        let mut w = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
        w.write_all(input).unwrap();
        w.finish().unwrap()
    }

    #[test]
    fn text_without_repeats_is_huffman_coded_and_no_larger_than_plain_gzip() {
        let text = base64_text(CHUNK, 3);
        assert_eq!(Coding::choose(&text, 6), Coding::HuffmanOnly);
        assert_eq!(Coding::choose(&text, 1), Coding::HuffmanOnly);
        // Repetitive text and noise keep their codings.
        assert_eq!(Coding::choose(&sample(CHUNK), 6), Coding::Level(6));
        assert_eq!(Coding::choose(&noise(CHUNK, 5), 6), Coding::Stored);
        assert_eq!(Coding::choose(&text, 0), Coding::Stored);

        // A layer of such text: one member, the same bytes whatever the threads, and no
        // larger than one single-threaded gzip stream at level 6 (zlib's, as BuildKit's Go
        // gzip at its default level lands within 0.01 % of it on this text).
        let mut input = base64_text(3 * CHUNK + 4321, 11);
        input.extend(sample(CHUNK / 2));
        let one = gzip(&input, 1);
        assert_eq!(gunzip(&one), input);
        assert_eq!(gzip(&input, 3), one);
        let plain = gzip_at(&input, 6).len();
        assert!(
            one.len() <= plain,
            "parallel gzip {} bytes, plain gzip -6 {plain}",
            one.len()
        );
    }

    #[test]
    fn mixed_pieces_decide_from_stripes_across_the_piece() {
        // A piece whose first quarter is base64 and the rest repetitive text is deflated at
        // the level: the stripes from its later quarters show the repeats.
        let mut piece = base64_text(CHUNK / 4, 13);
        piece.extend(&sample(CHUNK)[..CHUNK - CHUNK / 4]);
        assert_eq!(Coding::choose(&piece, 6), Coding::Level(6));
        let deflated = deflate_piece(&piece, 6, true).unwrap();
        let mut back = Vec::new();
        flate2::read::DeflateDecoder::new(&deflated[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, piece);
        // Short pieces are their own sample.
        assert_eq!(super::sample(b"abc"), b"abc");
        assert_eq!(super::sample(&piece).len(), SAMPLE);
    }

    #[test]
    fn the_header_has_no_mtime_and_no_name() {
        let blob = gzip(b"x", 2);
        assert_eq!(&blob[..4], &[0x1f, 0x8b, 8, 0]);
        assert_eq!(&blob[4..8], &[0, 0, 0, 0]);
        assert_eq!(blob[9], 255);
    }
}
