//! Fixtures for the layout tests: layer tars built with the `tar` crate, a config and a
//! manifest for them, all deterministic.

use std::io::Write;

use hoist_oci::{Descriptor, Digest, History, ImageConfig, Manifest, MediaType, Parsed, Platform};

/// A layer: the blob as stored, its descriptor and the diff ID of its uncompressed tar.
pub struct Layer {
    pub blob: Vec<u8>,
    pub descriptor: Descriptor,
    pub diff_id: Digest,
}

/// An uncompressed layer tar holding `files` (path, content), mtime 0, root-owned.
pub fn layer_tar(files: &[(&str, &str)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, content) in files {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(0o644);
        header.set_size(content.len() as u64);
        header.set_mtime(0);
        builder
            .append_data(&mut header, path, content.as_bytes())
            .unwrap();
    }
    builder.into_inner().unwrap()
}

/// A plain tar layer.
pub fn plain_layer(files: &[(&str, &str)], media_type: MediaType) -> Layer {
    let blob = layer_tar(files);
    let diff_id = Digest::sha256_of(&blob);
    Layer {
        descriptor: Descriptor::of_bytes(media_type, &blob),
        blob,
        diff_id,
    }
}

/// A gzip layer (fixed header, so deterministic).
pub fn gzip_layer(files: &[(&str, &str)]) -> Layer {
    let tar = layer_tar(files);
    let diff_id = Digest::sha256_of(&tar);
    let mut gz = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).unwrap();
    let blob = gz.finish().unwrap();
    Layer {
        descriptor: Descriptor::of_bytes(MediaType::OciLayerGzip, &blob),
        blob,
        diff_id,
    }
}

/// A linux/amd64 config for `layers`.
pub fn config_for(layers: &[Layer]) -> Parsed<ImageConfig> {
    let mut config = ImageConfig::new(&Platform::new("linux", "amd64"));
    config.created = Some("2024-01-01T00:00:00Z".into());
    config.config.env =
        vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()];
    config.config.cmd = vec!["/bin/sh".into()];
    config.rootfs.diff_ids = layers.iter().map(|l| l.diff_id.clone()).collect();
    config.history = layers
        .iter()
        .map(|_| History {
            created: Some("2024-01-01T00:00:00Z".into()),
            created_by: Some("hoist test".into()),
            ..History::default()
        })
        .collect();
    Parsed::from_value(config).unwrap()
}

/// An OCI manifest of `config` and `layers`.
pub fn manifest_for(config: &Parsed<ImageConfig>, layers: &[Layer]) -> Parsed<Manifest> {
    let manifest = Manifest::new_oci(
        config.descriptor_with(MediaType::OciConfig),
        layers.iter().map(|l| l.descriptor.clone()).collect(),
    );
    Parsed::from_value(manifest).unwrap()
}

/// Two layers: a gzip one with `hello.txt` and a plain one with `etc/motd`.
pub fn two_layers() -> Vec<Layer> {
    vec![
        gzip_layer(&[("hello.txt", "hello from hoist\n")]),
        plain_layer(&[("etc/motd", "welcome\n")], MediaType::OciLayer),
    ]
}
