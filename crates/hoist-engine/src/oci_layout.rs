//! `--build-context NAME=oci-layout://DIR[:TAG|@DIGEST]`: the image an OCI layout directory
//! holds, imported into the content store before planning — every blob the chosen index or
//! manifest reaches streamed through a verified ingest — so that it then resolves like an
//! image of hoist's own store, pinned by digest, and nothing is asked of a registry.
//!
//! The pinned name is `oci-layout.invalid/<dir name>@<digest>`: the `.invalid` domain never
//! resolves, so should a blob be missing after all, the build fails rather than reach a
//! registry that happens to have that name.

use std::path::Path;

use hoist_content::Expected;
use hoist_frontend::{LayoutSelect, OciLayoutRef};
use hoist_oci::layout::DirSource;
use hoist_oci::{AnyManifest, Descriptor, OciLayout, Reference};

use crate::error::{Error, Result};
use crate::worker::Worker;

/// The domain of the names imported layout images are pinned under.
const DOMAIN: &str = "oci-layout.invalid";

/// How deep indexes may nest inside a layout.
const MAX_DEPTH: usize = 4;

/// Imports the image `layout` names into the worker's store (leased for the build) and
/// returns the reference it resolves as: `oci-layout.invalid/<dir name>@<root digest>`.
pub(crate) fn import(worker: &Worker, layout: &OciLayoutRef) -> Result<Reference> {
    let bad = |reason: String| Error::OciLayout {
        layout: layout.to_string(),
        reason,
    };
    if !layout.dir.is_dir() {
        return Err(bad(format!("{} is not a directory", layout.dir.display())));
    }
    let mut source =
        OciLayout::open_dir(&layout.dir).map_err(|e| bad(format!("not an OCI layout: {e}")))?;
    let root = match &layout.select {
        LayoutSelect::Tag(tag) => match source.find(tag) {
            Some(entry) => entry.clone(),
            None => {
                let tags: Vec<&str> = source
                    .index()
                    .manifests
                    .iter()
                    .filter_map(|d| d.ref_name())
                    .collect();
                return Err(bad(format!(
                    "no image tagged {tag:?} in its index.json (tags: {})",
                    if tags.is_empty() {
                        "none".to_owned()
                    } else {
                        tags.join(", ")
                    }
                )));
            }
        },
        LayoutSelect::Digest(digest) => {
            match source
                .index()
                .manifests
                .iter()
                .find(|d| d.digest == *digest)
            {
                Some(entry) => entry.clone(),
                None if source.has_blob(digest) => {
                    let bytes = source.read_blob(digest).map_err(|e| bad(e.to_string()))?;
                    let media_type = match AnyManifest::from_bytes(bytes.clone(), None) {
                        Ok(AnyManifest::Index(index)) => index.descriptor_media_type(),
                        Ok(AnyManifest::Manifest(manifest)) => manifest.descriptor_media_type(),
                        Err(e) => {
                            return Err(bad(format!("{digest} is not a manifest or index: {e}")))
                        }
                    };
                    Descriptor::new(media_type, digest.clone(), bytes.len() as u64)
                }
                None => return Err(bad(format!("{digest} is not in the layout"))),
            }
        }
    };
    let label = layout.to_string();
    copy_tree(worker, &mut source, &root, &label, 0).map_err(|e| match e {
        Error::OciLayout { .. } => e,
        other => bad(other.to_string()),
    })?;
    let name = format!("{DOMAIN}/{}", path_component(&layout.dir));
    let reference = Reference::parse_normalized(&name)
        .or_else(|_| Reference::parse_normalized(&format!("{DOMAIN}/image")))?;
    Ok(reference.with_digest(root.digest))
}

/// Copies `node` and everything it reaches into the store, children first: for an index,
/// each listed manifest; for a manifest, its config and layers (foreign layers, which
/// live elsewhere, are left out).
fn copy_tree(
    worker: &Worker,
    source: &mut OciLayout<DirSource>,
    node: &Descriptor,
    label: &str,
    depth: usize,
) -> Result<()> {
    let missing = |what: String| Error::OciLayout {
        layout: label.to_owned(),
        reason: what,
    };
    if depth > MAX_DEPTH {
        return Err(missing(format!("indexes nested deeper than {MAX_DEPTH}")));
    }
    if !source.has_blob(&node.digest) {
        return Err(missing(format!("{} is not in the layout", node.digest)));
    }
    let bytes = source.read_blob(&node.digest)?;
    match AnyManifest::from_bytes(bytes.clone(), Some(&node.media_type))? {
        AnyManifest::Index(index) => {
            for child in &index.manifests {
                if !source.has_blob(&child.digest) {
                    return Err(missing(format!(
                        "manifest {} listed by index {} is not in the layout",
                        child.digest, node.digest
                    )));
                }
                copy_tree(worker, source, child, label, depth + 1)?;
            }
        }
        AnyManifest::Manifest(manifest) => {
            let blobs = std::iter::once(&manifest.config)
                .chain(manifest.layers.iter())
                .filter(|d| !d.media_type.is_non_distributable());
            for blob in blobs {
                if !source.has_blob(&blob.digest) {
                    return Err(missing(format!(
                        "blob {} of manifest {} is not in the layout",
                        blob.digest, node.digest
                    )));
                }
                worker.lease_blobs(std::slice::from_ref(&blob.digest))?;
                let reader = source.open_blob(&blob.digest)?;
                worker.store().write_blob(Expected::from(blob), reader)?;
            }
        }
    }
    worker.lease_blobs(std::slice::from_ref(&node.digest))?;
    worker
        .store()
        .write_blob(Expected::from(node), bytes.as_slice())?;
    Ok(())
}

/// A repository path component made of the directory's name (`app-layout`), or `image`.
fn path_component(dir: &Path) -> String {
    let name = dir
        .canonicalize()
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().to_lowercase()))
        .unwrap_or_default();
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let out = out.trim_end_matches('-').to_owned();
    if out.is_empty() {
        "image".to_owned()
    } else {
        out
    }
}
