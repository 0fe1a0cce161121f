//! Snapshots of root filesystems and the layers between them.
//!
//! - [`apply_layer`] unpacks a layer tar (plain, gzip or zstd) onto a directory: OCI
//!   whiteouts applied, metadata preserved, and nothing ever written outside the directory
//!   (`..`, absolute names, symlinked parents and hardlinks are all resolved inside it).
//!   [`unpack_archive`] does the same for an archive `ADD` unpacks (also bzip2 or xz; the
//!   directory it goes into keeps its own metadata).
//! - [`diff_to_tar`] writes the change between two trees as a deterministic layer tar, from
//!   an overlayfs upper directory or by comparing two trees ([`DiffSource`]).
//! - [`write_layer`] does both at once: diff → tar → compressor → your writer, returning the
//!   [`Layer`] (descriptor + diff_id).
//! - [`apply_layer_to_snapshot`] unpacks a layer into a new committed snapshot.
//! - [`LayerWriter`] compresses (gzip with a fixed header, zstd, or none) and hashes a layer
//!   in one pass, giving a [`Layer`] (descriptor + diff_id); [`decompress_archive`] reads
//!   the archives `ADD` unpacks (also bzip2 and xz).
//! - [`Snapshotter`] / [`AnySnapshotter`] prepare writable snapshots on top of committed
//!   ones, with overlayfs ([`OverlaySnapshotter`]) or full copies ([`CopySnapshotter`]),
//!   chosen by [`AnySnapshotter::probe`]. Kernel mounts sit behind [`Mounter`]. Views
//!   ([`Snapshotter::view`]) are [`ActiveSnapshot`] guards, removed when dropped.
//! - [`Listing`]: what a directory held when its one writer last finished with it
//!   (metadata and content digests), so its readers need not walk and hash it again.
//!
//! All of it is synchronous filesystem code, to be run on blocking threads.

mod apply;
mod compression;
mod diff;
mod error;
mod listing;
mod meta;
mod parallel_gzip;
mod root_path;
mod snapshot;

pub use apply::{
    apply_layer, unpack_archive, ApplyOptions, ApplyReport, Skipped, WHITEOUT_OPAQUE,
    WHITEOUT_PREFIX,
};
pub use compression::{
    decompress, decompress_archive, detect_compression, DigestingWrite, Layer, LayerOptions,
    LayerWriter, MediaTypes,
};
pub use diff::{diff_to_tar, write_layer, DiffSource, DiffStats};
pub use error::{Error, Result};
pub use hoist_oci::Compression;
pub use listing::{Listed, Listing};
pub use meta::{created_owner, created_with};
/// One piece of hoist's parallel gzip, coded as [`LayerWriter`] codes it at `level` (stored,
/// Huffman-only or the level, chosen from its bytes): for the compression study
/// (`examples/deflate_bench.rs`) only, not an API.
#[doc(hidden)]
pub fn gzip_piece_for_bench(piece: &[u8], level: u32) -> std::io::Result<Vec<u8>> {
    parallel_gzip::deflate_piece(piece, level, false)
}

pub use snapshot::{
    apply_layer_to_snapshot, copy_tree, ActiveSnapshot, AnySnapshotter, CopySnapshotter,
    KernelMounter, Mount, Mounter, OrphanReport, OverlayMount, OverlaySnapshotter, SnapshotId,
    Snapshotter,
};
