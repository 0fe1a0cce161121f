//! Compression study for `parallel_gzip` (run by `scripts/bench/compression.sh`): each
//! input file is cut into the 1 MiB pieces `parallel_gzip` deflates independently, and every
//! implementation/level compresses all the pieces on one thread. Prints one tab-separated
//! row per (file, implementation, level): MB/s on one core and output/input ratio.
//!
//! Not a test: timings depend on the machine. Usage:
//! `cargo run --release -p hoist-snapshot --example deflate_bench -- FILE...`

use std::io::Write as _;
use std::time::Instant;

const PIECE: usize = 1 << 20;
/// At most this much of each file is read (the pieces are held in memory); `DEFLATE_BENCH_MIB`
/// changes it.
const DEFAULT_LIMIT_MIB: usize = 64;

type Encode = fn(&[u8], u32) -> usize;

fn flate2_zlib_rs(piece: &[u8], level: u32) -> usize {
    let mut c = flate2::Compress::new(flate2::Compression::new(level), false);
    let mut out = Vec::with_capacity(piece.len() + piece.len() / 16 + 1024);
    loop {
        let done = usize::try_from(c.total_in()).unwrap();
        let status = c
            .compress_vec(&piece[done..], &mut out, flate2::FlushCompress::Sync)
            .unwrap();
        if usize::try_from(c.total_in()).unwrap() == piece.len() && out.len() < out.capacity() {
            return out.len();
        }
        assert!(matches!(
            status,
            flate2::Status::Ok | flate2::Status::BufError
        ));
        out.reserve(out.capacity());
    }
}

/// zlib-rs with `Z_HUFFMAN_ONLY` (no LZ matching; the level is not used), memory level 9
/// as `parallel_gzip` sets it (blocks of 32 Ki symbols: half the block headers of level 8).
fn zlib_rs_huffman_only(piece: &[u8], _level: u32) -> usize {
    let config = zlib_rs::DeflateConfig {
        window_bits: -15,
        strategy: zlib_rs::Strategy::HuffmanOnly,
        mem_level: 9,
        ..zlib_rs::DeflateConfig::new(6)
    };
    let mut out = vec![0; zlib_rs::compress_bound(piece.len())];
    let (done, rc) = zlib_rs::compress_slice(&mut out, piece, config);
    assert_eq!(rc, zlib_rs::ReturnCode::Ok);
    done.len()
}

/// What hoist's `parallel_gzip` does with a piece at `level`: stored, Huffman-only or the
/// level, chosen from the piece's bytes.
fn hoist_piece(piece: &[u8], level: u32) -> usize {
    hoist_snapshot::gzip_piece_for_bench(piece, level)
        .unwrap()
        .len()
}

fn libdeflate(piece: &[u8], level: u32) -> usize {
    let mut c =
        libdeflater::Compressor::new(libdeflater::CompressionLvl::new(level as i32).unwrap());
    let mut out = vec![0; c.deflate_compress_bound(piece.len())];
    c.deflate_compress(piece, &mut out).unwrap()
}

fn miniz_oxide(piece: &[u8], level: u32) -> usize {
    miniz_oxide::deflate::compress_to_vec(piece, level as u8).len()
}

fn zstd(piece: &[u8], level: u32) -> usize {
    zstd::bulk::compress(piece, level as i32).unwrap().len()
}

/// The cheap check `parallel_gzip` makes before deflating a piece: its byte entropy.
fn entropy_check(piece: &[u8], _level: u32) -> usize {
    let mut counts = [0u64; 256];
    for &b in piece {
        counts[usize::from(b)] += 1;
    }
    let n = piece.len() as f64;
    let bits: f64 = counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum();
    (bits * n / 8.0) as usize
}

/// The digest every layer byte gets (twice on an export: the tar for its diff ID, the blob
/// for its digest): hoist-oci's sha256 (sha2, SHA-NI when the CPU has it).
fn sha256(piece: &[u8], _level: u32) -> usize {
    let mut digester = hoist_oci::Digester::sha256();
    digester.update(piece);
    digester.finish().1 as usize
}

/// The gzip trailer's CRC-32 (crc32fast, PCLMULQDQ when the CPU has it).
fn crc32(piece: &[u8], _level: u32) -> usize {
    std::hint::black_box(crc32fast::hash(piece));
    piece.len()
}

fn main() {
    let files: Vec<String> = std::env::args().skip(1).collect();
    if files.is_empty() {
        eprintln!("usage: deflate_bench FILE...");
        std::process::exit(2);
    }
    let runs: &[(&str, Encode, &[u32])] = &[
        ("flate2+zlib-rs", flate2_zlib_rs, &[1, 2, 3, 4, 5, 6, 9]),
        ("zlib-rs huffman-only", zlib_rs_huffman_only, &[0]),
        ("hoist parallel_gzip piece", hoist_piece, &[6]),
        ("libdeflate", libdeflate, &[1, 2, 3, 4, 5, 6, 9, 12]),
        ("miniz_oxide", miniz_oxide, &[1, 6]),
        ("zstd", zstd, &[1, 3]),
        ("entropy-check", entropy_check, &[0]),
        ("sha256", sha256, &[0]),
        ("crc32", crc32, &[0]),
    ];
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "file\timplementation\tlevel\tMB/s/core\tratio").unwrap();
    for file in &files {
        let mut data = std::fs::read(file).unwrap_or_else(|e| panic!("{file}: {e}"));
        let limit = std::env::var("DEFLATE_BENCH_MIB")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(DEFAULT_LIMIT_MIB);
        data.truncate(limit << 20);
        let name = std::path::Path::new(file)
            .file_name()
            .map_or_else(|| file.clone(), |n| n.to_string_lossy().into_owned());
        for (implementation, encode, levels) in runs {
            for &level in *levels {
                let start = Instant::now();
                let out: usize = data.chunks(PIECE).map(|p| encode(p, level)).sum();
                let secs = start.elapsed().as_secs_f64();
                let mbps = data.len() as f64 / 1e6 / secs;
                let ratio = out as f64 / data.len().max(1) as f64;
                writeln!(
                    stdout,
                    "{name}\t{implementation}\t{level}\t{mbps:.1}\t{ratio:.4}"
                )
                .unwrap();
                stdout.flush().unwrap();
            }
        }
    }
}
