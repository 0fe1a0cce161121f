//! The file outputs of images: OCI image layouts (tar or directory, `type=oci`) and
//! docker-archive tars (`type=docker`), read from the content store and streamed out.

use std::fs::File;
use std::io::{BufWriter, Write};

use hoist_content::ContentStore;
use hoist_oci::layout::LayoutSink;
use hoist_oci::{Descriptor, DockerArchiveWriter, OciLayoutWriter, Reference};
use tempfile::NamedTempFile;

use crate::assemble::Assembled;
use crate::error::{Error, Result};
use crate::output::{FileDest, LayoutDest, OciOutput};

/// Writes `assembled` as an OCI layout where `output` says; `index.json` lists `root` once
/// per name (tag as `org.opencontainers.image.ref.name`, full name as
/// `io.containerd.image.name`), or once unnamed.
pub(crate) fn write_oci(
    store: &ContentStore,
    assembled: &Assembled,
    root: &Descriptor,
    output: &OciOutput,
) -> Result<()> {
    match &output.dest {
        LayoutDest::Dir(dir) => {
            let mut writer = OciLayoutWriter::create_dir(dir)?;
            fill_layout(&mut writer, store, assembled, root, &output.names)?;
            writer.finish()?;
        }
        LayoutDest::Tar(dest) => {
            with_file_dest(dest, |out| {
                let mut writer = OciLayoutWriter::tar(out)?;
                fill_layout(&mut writer, store, assembled, root, &output.names)?;
                writer.finish_tar()?;
                Ok(())
            })?;
        }
    }
    Ok(())
}

fn fill_layout<S: LayoutSink>(
    writer: &mut OciLayoutWriter<S>,
    store: &ContentStore,
    assembled: &Assembled,
    root: &Descriptor,
    names: &[Reference],
) -> Result<()> {
    for manifest in &assembled.manifests {
        for layer in &manifest.layers {
            if !writer.has_blob(&layer.digest) {
                let mut blob = store.open_blob(&layer.digest)?;
                writer.add_blob(&layer.digest, layer.size, &mut blob)?;
            }
        }
        writer.add_blob_bytes(manifest.config.digest(), manifest.config.raw())?;
        let bytes = store.read_blob(&manifest.descriptor.digest)?;
        writer.add_blob_bytes(&manifest.descriptor.digest, &bytes)?;
    }
    if let Some(index) = &assembled.index {
        writer.add_blob_bytes(&root.digest, index)?;
    }
    writer.add_named_root(root, names);
    Ok(())
}

/// Writes the single image of `assembled` as a docker-archive to `dest`.
pub(crate) fn write_docker_to(
    store: &ContentStore,
    assembled: &Assembled,
    names: &[Reference],
    dest: &FileDest,
) -> Result<()> {
    with_file_dest(dest, |out| {
        write_docker(out, store, assembled, names).map(drop)
    })
}

/// Writes the single image of `assembled` as a docker-archive into a temp file (for a load).
pub(crate) fn write_docker_temp(
    store: &ContentStore,
    assembled: &Assembled,
    names: &[Reference],
) -> Result<NamedTempFile> {
    let temp = tempfile::Builder::new()
        .prefix("hoist-docker-load-")
        .suffix(".tar")
        .tempfile()
        .map_err(Error::io("create temp file in", std::env::temp_dir()))?;
    let file = temp.reopen().map_err(Error::io("open", temp.path()))?;
    let out = write_docker(BufWriter::new(file), store, assembled, names)?;
    out.into_inner()
        .map_err(|e| Error::io("write", temp.path())(e.into_error()))?
        .sync_all()
        .map_err(Error::io("sync", temp.path()))?;
    Ok(temp)
}

fn write_docker<W: Write>(
    out: W,
    store: &ContentStore,
    assembled: &Assembled,
    names: &[Reference],
) -> Result<W> {
    let [image] = assembled.manifests.as_slice() else {
        return Err(Error::Unsupported(
            crate::output::DOCKER_ARCHIVE_MANIFEST_LISTS.into(),
        ));
    };
    let mut archive = DockerArchiveWriter::new(out)?;
    for layer in &image.layers {
        let mut blob = store.open_blob(&layer.digest)?;
        archive.add_layer(&layer.digest, layer.size, &mut blob)?;
    }
    archive.add_image(&image.config, &image.layers, names)?;
    Ok(archive.finish()?)
}

/// Runs `write` on the file `dest` names (created, refusing a directory; synced when it is
/// a regular file) or on stdout.
pub(crate) fn with_file_dest(
    dest: &FileDest,
    write: impl FnOnce(&mut dyn Write) -> Result<()>,
) -> Result<()> {
    match dest {
        FileDest::Stdout => {
            let stdout = std::io::stdout();
            let mut out = BufWriter::new(stdout.lock());
            write(&mut out)?;
            out.flush().map_err(Error::Stdout)
        }
        FileDest::File(path) => {
            check_file_dest(dest)?;
            let file = File::create(path).map_err(Error::io("create", path))?;
            let mut out = BufWriter::new(file);
            write(&mut out)?;
            let file = out
                .into_inner()
                .map_err(|e| Error::io("write", path)(e.into_error()))?;
            // Only a regular file has anything to make durable: fsync on a character
            // device or a pipe (`dest=/dev/null`, `dest=/dev/stdout`) fails with EINVAL.
            if file.metadata().is_ok_and(|meta| meta.is_file()) {
                file.sync_all().map_err(Error::io("sync", path))?;
            }
            Ok(())
        }
    }
}

/// buildx's check of a file destination: it must not be a directory.
pub(crate) fn check_file_dest(dest: &FileDest) -> Result<()> {
    match dest {
        FileDest::File(path) if path.is_dir() => Err(Error::OutputDest {
            output: "file".into(),
            reason: format!("destination file {} is a directory", path.display()),
        }),
        _ => Ok(()),
    }
}

/// The directory name of a platform in split outputs: `linux_arm_v7`.
pub(crate) fn platform_dir(platform: &hoist_oci::Platform) -> String {
    platform.format().replace('/', "_")
}
