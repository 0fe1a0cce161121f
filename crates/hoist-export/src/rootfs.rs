//! The filesystem outputs: `type=local` copies each platform's final filesystem into a
//! directory, `type=tar` writes it as a tar; with more than one platform (or
//! `platform-split=true`) each goes under its own folder (`linux_amd64/`, `linux_arm_v7/`),
//! and with `platform-split=false` they are merged, later platforms over earlier ones.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::archive::{platform_dir, with_file_dest};
use crate::error::{Error, Result};
use crate::image::PlatformImage;
use crate::output::{LocalOutput, TarOutput};

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

/// Writes every image's filesystem as one tar to `output.dest`.
pub(crate) fn write_tar(images: &[PlatformImage], output: &TarOutput) -> Result<()> {
    let split = split(images, output.platform_split);
    with_file_dest(&output.dest, |out| {
        let mut builder = tar::Builder::new(out);
        builder.follow_symlinks(false);
        builder.mode(tar::HeaderMode::Complete);
        for image in images {
            let source = rootfs(image)?;
            let prefix = split.then(|| PathBuf::from(platform_dir(&image.platform)));
            append_tree(&mut builder, source, prefix.as_deref())?;
        }
        builder
            .into_inner()
            .map_err(Error::io("finish tar of", &output_label(output)))?
            .flush()
            .map_err(Error::io("write", &output_label(output)))
    })
}

fn output_label(output: &TarOutput) -> PathBuf {
    match &output.dest {
        crate::output::FileDest::Stdout => PathBuf::from("-"),
        crate::output::FileDest::File(path) => path.clone(),
    }
}

/// Appends `root`'s entries (names sorted, so the tar is the same every time) under
/// `prefix`; the prefix directory itself first.
fn append_tree<W: Write>(
    builder: &mut tar::Builder<W>,
    root: &Path,
    prefix: Option<&Path>,
) -> Result<()> {
    let walk = walkdir::WalkDir::new(root)
        .follow_links(false)
        .sort_by_file_name();
    for entry in walk {
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
        builder
            .append_path_with_name(entry.path(), &name)
            .map_err(Error::io("add to tar", entry.path()))?;
    }
    Ok(())
}
