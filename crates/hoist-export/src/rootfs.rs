//! The filesystem outputs: `type=local` copies each platform's final filesystem into a
//! directory, `type=tar` writes it as a tar; with more than one platform (or
//! `platform-split=true`) each goes under its own folder (`linux_amd64/`, `linux_arm_v7/`),
//! and with `platform-split=false` they are merged, later platforms over earlier ones.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::archive::{platform_dir, with_file_dest};
use crate::error::{Error, Result};
use crate::image::PlatformImage;
use crate::output::{FileDest, LocalOutput, TarOutput};

fn rootfs(image: &PlatformImage) -> Result<&Path> {
    image.rootfs.as_deref().ok_or_else(|| Error::InvalidImage {
        platform: image.platform.format(),
        reason: "no final filesystem was given for a local or tar output".into(),
    })
}

fn split(images: &[PlatformImage], platform_split: Option<bool>) -> bool {
    platform_split.unwrap_or(images.len() > 1)
}

/// Copies every image's filesystem under `output.dest`.
pub(crate) fn write_local(images: &[PlatformImage], output: &LocalOutput) -> Result<()> {
    if output.dest.exists() && !output.dest.is_dir() {
        return Err(Error::OutputDest {
            output: "local".into(),
            reason: format!("destination directory {} is a file", output.dest.display()),
        });
    }
    std::fs::create_dir_all(&output.dest).map_err(Error::io("create directory", &output.dest))?;
    let split = split(images, output.platform_split);
    for image in images {
        let target: PathBuf = if split {
            output.dest.join(platform_dir(&image.platform))
        } else {
            output.dest.clone()
        };
        let source = rootfs(image)?;
        hoist_snapshot::copy_tree(source, &target).map_err(|source| Error::CopyTree {
            dest: target.clone(),
            source,
        })?;
    }
    Ok(())
}

/// Writes every image's filesystem as one tar to `output.dest`. Merged platforms
/// (`platform-split=false`) give each path once, from the last platform that has it.
pub(crate) fn write_tar(images: &[PlatformImage], output: &TarOutput) -> Result<()> {
    let split = split(images, output.platform_split);
    let mut entries = BTreeMap::new();
    for image in images {
        let source = rootfs(image)?;
        let prefix = split.then(|| PathBuf::from(platform_dir(&image.platform)));
        collect_tree(source, prefix.as_deref(), &mut entries)?;
    }
    with_file_dest(&output.dest, |out| {
        let mut builder = tar::Builder::new(out);
        builder.follow_symlinks(false);
        builder.mode(tar::HeaderMode::Complete);
        for (name, source) in &entries {
            builder
                .append_path_with_name(source, name)
                .map_err(Error::io("add to tar", source))?;
        }
        builder
            .into_inner()
            .map_err(Error::io("finish tar of", output_label(output)))?
            .flush()
            .map_err(Error::io("write", output_label(output)))
    })
}

fn output_label(output: &TarOutput) -> PathBuf {
    match &output.dest {
        FileDest::Stdout => PathBuf::from("-"),
        FileDest::File(path) => path.clone(),
    }
}

/// Maps each entry of `root` to its name in the tar (under `prefix`, the prefix directory
/// itself included). A `BTreeMap` of paths orders parents before their children and
/// names in byte order, so the tar is the same every time.
fn collect_tree(
    root: &Path,
    prefix: Option<&Path>,
    entries: &mut BTreeMap<PathBuf, PathBuf>,
) -> Result<()> {
    for entry in walkdir::WalkDir::new(root).follow_links(false) {
        let entry = entry.map_err(|e| {
            let path = e.path().unwrap_or(root).to_path_buf();
            Error::io("walk", path)(e.into())
        })?;
        let relative = entry.path().strip_prefix(root).unwrap_or(entry.path());
        let name = match (prefix, relative.as_os_str().is_empty()) {
            (Some(prefix), true) => prefix.to_path_buf(),
            (Some(prefix), false) => prefix.join(relative),
            (None, true) => continue,
            (None, false) => relative.to_path_buf(),
        };
        entries.insert(name, entry.path().to_path_buf());
    }
    Ok(())
}
