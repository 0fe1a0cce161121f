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
//! fills the next one (the tar walk and the diff's sha256 run meanwhile), and is written
//! before the next batch starts, so at most two batches are held.
//!
//! A piece that is already compressed (its bytes' entropy is at least [`STORED_ENTROPY`]
//! bits per byte: gzip, xz, zstd, JPEG data) is written as stored blocks (deflate level 0)
//! instead: deflating it would gain well under 1 % for a full deflate effort. The check is
//! one pass over the piece, and depends only on its bytes, so the output stays
//! deterministic.
//!
//! flate2 has no parallel encoder, and the one crate that offers one (gzp) brings its own
//! thread pool and channels for what is here a batch of at most one thread per core.

use std::io::{self, Write};

use flate2::{Compress, Compression, FlushCompress, Status};

/// The size of the pieces deflated independently.
pub(crate) const CHUNK: usize = 1 << 20;

/// The byte entropy (bits per byte) from which a piece is stored rather than deflated:
/// Huffman coding alone could save at most (8 - entropy) / 8 of it, under 0.4 % here.
pub(crate) const STORED_ENTROPY: f64 = 7.97;

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
    in_flight: Vec<std::thread::JoinHandle<io::Result<Vec<u8>>>>,
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

    /// Writes the batch in flight, once deflated.
    fn write_in_flight(&mut self) -> io::Result<()> {
        for handle in std::mem::take(&mut self.in_flight) {
            let piece = handle
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("a gzip thread panicked")))?;
            self.inner.write_all(&piece)?;
        }
        Ok(())
    }

    /// Hands the full pieces to threads (after writing the batch before them), so that they
    /// deflate while the caller produces the next batch; the last piece ends the stream
    /// when `last`.
    fn start_batch(&mut self, last: bool) -> io::Result<()> {
        self.write_in_flight()?;
        let level = self.level;
        let count = self.full.len();
        self.in_flight = std::mem::take(&mut self.full)
            .into_iter()
            .enumerate()
            .map(|(i, piece)| {
                let final_piece = last && i + 1 == count;
                std::thread::spawn(move || deflate(&piece, level, final_piece))
            })
            .collect();
        Ok(())
    }

    /// Ends the stream (final block and trailer) and returns the inner writer.
    pub(crate) fn finish(mut self) -> io::Result<W> {
        let current = std::mem::take(&mut self.current);
        self.full.push(current);
        self.start_batch(true)?;
        self.write_in_flight()?;
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
        self.crc.update(&buf[..n]);
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

/// `input` as raw deflate at `level`, ended by a final block when `last`, else by a sync
/// flush (byte-aligned, not final) so the next piece can follow it.
fn deflate(input: &[u8], level: u32, last: bool) -> io::Result<Vec<u8>> {
    let level = if level > 0 && entropy(input) >= STORED_ENTROPY {
        0
    } else {
        level
    };
    let mut c = Compress::new(Compression::new(level), false);
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    let mut out = Vec::with_capacity(input.len() / 2 + 1024);
    loop {
        if out.capacity() - out.len() < 1024 {
            out.reserve(out.capacity().max(64 * 1024));
        }
        let consumed = usize::try_from(c.total_in()).unwrap_or(input.len());
        let status = c
            .compress_vec(&input[consumed.min(input.len())..], &mut out, flush)
            .map_err(io::Error::other)?;
        let all_in = usize::try_from(c.total_in()).is_ok_and(|n| n == input.len());
        match status {
            Status::StreamEnd => return Ok(out),
            // A sync flush is complete when the input is in and the output was not filled.
            Status::Ok | Status::BufError if !last && all_in && out.len() < out.capacity() => {
                return Ok(out)
            }
            Status::Ok | Status::BufError => {}
        }
    }
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

    #[test]
    fn the_header_has_no_mtime_and_no_name() {
        let blob = gzip(b"x", 2);
        assert_eq!(&blob[..4], &[0x1f, 0x8b, 8, 0]);
        assert_eq!(&blob[4..8], &[0, 0, 0, 0]);
        assert_eq!(blob[9], 255);
    }
}
