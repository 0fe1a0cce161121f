//! One deterministic gzip layer from a directory: entries sorted by name, fixed mtimes,
//! owners from [`super::rootfs::owner_in_image`] (not the disk), a gzip header with no name
//! and no time. The same tree gives the same bytes, whoever made it.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use flate2::write::GzEncoder;
use flate2::{Compression, GzBuilder};
use hoist_oci::Digest;

use super::rootfs::owner_in_image;
use crate::error::{Result, TestkitError};

/// The mtime of every entry: 2024-01-01T00:00:00Z.
pub const LAYER_MTIME: u64 = 1_704_067_200;

/// A compressed layer and the digest of its uncompressed tar (the config's diff ID).
#[derive(Debug, Clone)]
pub struct LayerBlob {
    /// The `tar+gzip` bytes.
    pub gzip: Vec<u8>,
    /// `sha256` of the uncompressed tar.
    pub diff_id: Digest,
}

/// Writes `root` (not itself, only what it holds) as a gzip-compressed tar.
pub fn layer_from_dir(root: &Path) -> Result<LayerBlob> {
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    let walk = walkdir::WalkDir::new(root)
        .min_depth(1)
        .follow_links(false)
        .sort_by_file_name();
    for entry in walk {
        let entry = entry.map_err(|err| {
            let path = err.path().unwrap_or(root).to_owned();
            TestkitError::io("walk", path)(err.into())
        })?;
        let path = entry.path();
        let relative = path.strip_prefix(root).unwrap_or(path);
        let meta = fs::symlink_metadata(path).map_err(TestkitError::io("inspect", path))?;
        let (uid, gid) = owner_in_image(relative);
        let mut header = tar::Header::new_ustar();
        header.set_mtime(LAYER_MTIME);
        header.set_uid(uid);
        header.set_gid(gid);
        header.set_mode(meta.permissions().mode() & 0o7777);
        let write_err = TestkitError::io("add to the layer", path);
        if meta.file_type().is_dir() {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_size(0);
            let mut name = relative.as_os_str().to_owned();
            name.push("/");
            builder
                .append_data(&mut header, Path::new(&name), std::io::empty())
                .map_err(write_err)?;
        } else if meta.file_type().is_symlink() {
            let target = fs::read_link(path).map_err(TestkitError::io("read link", path))?;
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_size(0);
            builder
                .append_link(&mut header, relative, &target)
                .map_err(write_err)?;
        } else if meta.file_type().is_file() {
            let data = fs::read(path).map_err(TestkitError::io("read", path))?;
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(data.len() as u64);
            builder
                .append_data(&mut header, relative, data.as_slice())
                .map_err(write_err)?;
        } else {
            return Err(write_err(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "only directories, regular files and symlinks go into a base layer",
            )));
        }
    }
    let tar = builder
        .into_inner()
        .map_err(TestkitError::io("finish the layer of", root))?;
    let diff_id = Digest::sha256_of(&tar);
    // No file name and mtime 0 in the gzip header, so the bytes depend on the tar alone.
    let mut gz: GzEncoder<Vec<u8>> = GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), Compression::default());
    gz.write_all(&tar)
        .map_err(TestkitError::io("compress the layer of", root))?;
    let gzip = gz
        .finish()
        .map_err(TestkitError::io("compress the layer of", root))?;
    Ok(LayerBlob { gzip, diff_id })
}
