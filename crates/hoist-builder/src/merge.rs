//! Beyond buildx: the file outputs of a build spread over several nodes, joined on the
//! client. Each node exports its share to this machine (through its session) into a
//! directory of its own; then
//!
//! - `type=oci`: [`merge_oci`] writes one OCI layout holding every node's blobs and one
//!   image index listing each node's manifests (a node that built several platforms
//!   contributes its index's manifests), named in `index.json` as a single build's layout is;
//! - `type=local` / `type=tar`: [`merge_local`] moves each node's tree under a directory per
//!   platform, named as BuildKit's multi-platform local export names them (`linux_amd64`,
//!   `linux_arm_v7`), and [`tar_tree`] makes the tar of that tree.

use std::io::Write;
use std::path::{Path, PathBuf};

use hoist_oci::layout::{LayoutSink, LayoutSource};
use hoist_oci::{
    annotations, AnyManifest, Descriptor, Index, MediaType, OciLayout, OciLayoutWriter, Parsed,
    Platform, Reference,
};

use crate::error::{Error, Result};

/// One node's exported share: where it landed and the platforms it built.
#[derive(Debug, Clone)]
pub struct NodeShare {
    /// The node (for errors).
    pub node: String,
    /// Its OCI layout tar (`type=oci`) or its directory (`type=local`/`tar`).
    pub path: PathBuf,
    /// The platforms it built, in the build's order.
    pub platforms: Vec<Platform>,
}

/// The directory BuildKit's local exporter gives a platform in a multi-platform export:
/// its `os/arch[/variant]` with `/` as `_`.
pub fn platform_dir_name(platform: &Platform) -> String {
    platform.normalize().format().replace('/', "_")
}

fn invalid(share: &NodeShare, message: impl std::fmt::Display) -> Error {
    Error::Invalid(format!(
        "cannot merge the output of node {} ({}): {message}",
        share.node,
        share.path.display()
    ))
}

/// Copies every node's images into `writer` and adds one index of all their manifests to
/// its `index.json`, once per name in `names` (tag as `org.opencontainers.image.ref.name`,
/// full name as `io.containerd.image.name`), or once unnamed. Returns the index's
/// descriptor.
pub fn merge_oci<S: LayoutSink>(
    shares: &[NodeShare],
    names: &[Reference],
    writer: &mut OciLayoutWriter<S>,
) -> Result<Descriptor> {
    let mut manifests: Vec<Descriptor> = Vec::new();
    for share in shares {
        let file = std::fs::File::open(&share.path).map_err(|source| Error::Io {
            action: "open",
            path: share.path.clone(),
            source,
        })?;
        let mut layout = OciLayout::open_tar(std::io::BufReader::new(file), &share.path)
            .map_err(|e| invalid(share, e))?;
        let entries = layout.index().manifests.clone();
        let [entry] = entries.as_slice() else {
            return Err(invalid(
                share,
                format!("expected one image in index.json, found {}", entries.len()),
            ));
        };
        match layout
            .read_any_manifest(entry)
            .map_err(|e| invalid(share, e))?
        {
            AnyManifest::Manifest(_) => {
                copy_manifest(&mut layout, writer, entry).map_err(|e| invalid(share, e))?;
                let mut descriptor = bare(entry);
                if descriptor.platform.is_none() {
                    if let [platform] = share.platforms.as_slice() {
                        descriptor.platform = Some(platform.normalize());
                    }
                }
                manifests.push(descriptor);
            }
            AnyManifest::Index(index) => {
                for child in &index.manifests {
                    copy_manifest(&mut layout, writer, child).map_err(|e| invalid(share, e))?;
                    manifests.push(child.clone());
                }
            }
        }
    }
    let cannot =
        |e: hoist_oci::Error| Error::Invalid(format!("cannot write the merged index: {e}"));
    let index = Parsed::from_value(Index::new_oci(manifests)).map_err(cannot)?;
    let root = writer
        .add_document(&index, MediaType::OciIndex)
        .map_err(cannot)?;
    writer.add_named_root(&root, names);
    Ok(root)
}

/// An `index.json` entry as a manifest list entry: its naming annotations dropped.
fn bare(entry: &Descriptor) -> Descriptor {
    let mut descriptor = entry.clone();
    descriptor.annotations.remove(annotations::REF_NAME);
    descriptor
        .annotations
        .remove(annotations::CONTAINERD_IMAGE_NAME);
    descriptor
}

/// Copies a manifest (an image's, or an attestation's), its config and layers.
fn copy_manifest<R: LayoutSource, S: LayoutSink>(
    layout: &mut OciLayout<R>,
    writer: &mut OciLayoutWriter<S>,
    descriptor: &Descriptor,
) -> hoist_oci::Result<()> {
    let manifest = layout.read_manifest(descriptor)?;
    for blob in std::iter::once(&manifest.config).chain(&manifest.layers) {
        if !writer.has_blob(&blob.digest) {
            let mut reader = layout.open_blob(&blob.digest)?;
            writer.add_blob(&blob.digest, blob.size, &mut reader)?;
        }
    }
    writer.add_blob_bytes(manifest.digest(), manifest.raw())
}

/// Moves each node's exported tree into `dest` (created if missing), under one directory
/// per platform: a node that built one platform exported its files at its root, which
/// become `dest/<platform>/`; one that built several exported a directory per platform
/// already, each moved into `dest`. A platform directory already in `dest` is replaced.
pub fn merge_local(shares: &[NodeShare], dest: &Path) -> Result<()> {
    std::fs::create_dir_all(dest).map_err(|source| Error::Io {
        action: "create",
        path: dest.to_owned(),
        source,
    })?;
    for share in shares {
        let moves: Vec<(PathBuf, String)> = match share.platforms.as_slice() {
            [platform] => vec![(share.path.clone(), platform_dir_name(platform))],
            platforms => platforms
                .iter()
                .map(|p| (share.path.join(platform_dir_name(p)), platform_dir_name(p)))
                .collect(),
        };
        for (from, name) in moves {
            if !from.is_dir() {
                return Err(invalid(
                    share,
                    format!("the node exported no directory {}", from.display()),
                ));
            }
            let to = dest.join(&name);
            if to.symlink_metadata().is_ok() {
                let removed = if to.is_dir() {
                    std::fs::remove_dir_all(&to)
                } else {
                    std::fs::remove_file(&to)
                };
                removed.map_err(|source| Error::Io {
                    action: "replace",
                    path: to.clone(),
                    source,
                })?;
            }
            std::fs::rename(&from, &to).map_err(|source| Error::Io {
                action: "move into place",
                path: to.clone(),
                source,
            })?;
        }
    }
    Ok(())
}

/// Writes the tree under `dir` as a tar to `out` (symlinks kept as links, entries in name
/// order, paths relative to `dir`).
pub fn tar_tree<W: Write>(dir: &Path, out: W) -> Result<W> {
    let mut builder = tar::Builder::new(out);
    builder.follow_symlinks(false);
    let io = |source| Error::Io {
        action: "write the tar of",
        path: dir.to_owned(),
        source,
    };
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(io)?
        .collect::<std::io::Result<_>>()
        .map_err(io)?;
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for entry in entries {
        let path = entry.path();
        let name = entry.file_name();
        if entry.file_type().map_err(io)?.is_dir() {
            builder.append_dir_all(&name, &path).map_err(io)?;
        } else {
            builder.append_path_with_name(&path, &name).map_err(io)?;
        }
    }
    builder.into_inner().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_directories_are_named_as_buildkit_names_them() {
        for (platform, dir) in [
            ("linux/amd64", "linux_amd64"),
            ("linux/arm64", "linux_arm64"),
            ("linux/arm/v7", "linux_arm_v7"),
            ("linux/arm64/v8", "linux_arm64"),
        ] {
            assert_eq!(platform_dir_name(&Platform::parse(platform).unwrap()), dir);
        }
    }
}
