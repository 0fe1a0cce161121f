//! OCI layouts and docker archives written by hoist read back identically, and writing the
//! same image twice gives the same bytes.

use std::io::Cursor;
use std::path::Path;

use crate::support::{config_for, manifest_for, plain_layer, two_layers};
use hoist_oci::{
    AnyManifest, DockerArchive, DockerArchiveWriter, MediaType, OciLayout, OciLayoutWriter,
    Reference,
};

fn write_oci_tar() -> (Vec<u8>, hoist_oci::Digest) {
    let layers = two_layers();
    let config = config_for(&layers);
    let manifest = manifest_for(&config, &layers);
    let mut w = OciLayoutWriter::tar(Vec::new()).unwrap();
    for l in &layers {
        w.add_blob_bytes(&l.descriptor.digest, &l.blob).unwrap();
    }
    w.add_document(&config, MediaType::OciConfig).unwrap();
    let desc = w.add_document(&manifest, MediaType::OciManifest).unwrap();
    w.add_manifest(desc, Some("latest"));
    (w.finish_tar().unwrap(), manifest.digest().clone())
}

#[test]
fn oci_layout_tar_is_deterministic_and_reads_back() {
    let (tar1, digest) = write_oci_tar();
    let (tar2, _) = write_oci_tar();
    assert_eq!(tar1, tar2);

    let mut layout = OciLayout::open_tar(Cursor::new(tar1), Path::new("mem.tar")).unwrap();
    let desc = layout.find("latest").unwrap().clone();
    assert_eq!(desc.digest, digest);
    let manifest = match layout.read_any_manifest(&desc).unwrap() {
        AnyManifest::Manifest(m) => m,
        AnyManifest::Index(_) => panic!("expected a manifest"),
    };
    let config = layout.read_config(&manifest.config).unwrap();
    assert_eq!(config.rootfs.diff_ids.len(), 2);
    for layer in &manifest.layers {
        layout.read_blob(&layer.digest).unwrap();
    }
}

#[test]
fn oci_layout_dir_round_trip_keeps_other_tags() {
    let dir = tempfile::tempdir().unwrap();
    let layers = vec![plain_layer(&[("a", "a\n")], MediaType::OciLayer)];
    let config = config_for(&layers);
    let manifest = manifest_for(&config, &layers);
    for tag in ["one", "two"] {
        let mut w = OciLayoutWriter::create_dir(dir.path()).unwrap();
        w.add_blob_bytes(&layers[0].descriptor.digest, &layers[0].blob)
            .unwrap();
        w.add_document(&config, MediaType::OciConfig).unwrap();
        let desc = w.add_document(&manifest, MediaType::OciManifest).unwrap();
        w.add_manifest(desc, Some(tag));
        w.finish().unwrap();
    }
    let mut layout = OciLayout::open_dir(dir.path()).unwrap();
    assert_eq!(layout.index().manifests.len(), 2);
    let desc = layout.find("two").unwrap().clone();
    let read = layout.read_manifest(&desc).unwrap();
    assert_eq!(read.raw(), manifest.raw());
}

#[test]
fn blob_with_wrong_digest_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = OciLayoutWriter::create_dir(dir.path()).unwrap();
    let digest = hoist_oci::Digest::sha256_of(b"right");
    let err = w.add_blob_bytes(&digest, b"wrong").unwrap_err();
    assert!(err.to_string().contains("mismatch"), "{err}");
    assert!(!dir
        .path()
        .join("blobs/sha256")
        .join(digest.encoded())
        .exists());
}

#[test]
fn docker_archive_round_trip() {
    let layers = vec![
        plain_layer(&[("hello.txt", "hi\n")], MediaType::OciLayer),
        plain_layer(&[("etc/motd", "motd\n")], MediaType::OciLayer),
    ];
    let config = config_for(&layers);
    let mut w = DockerArchiveWriter::new(Vec::new()).unwrap();
    for l in &layers {
        w.add_layer(&l.descriptor.digest, l.blob.len() as u64, &mut &l.blob[..])
            .unwrap();
    }
    let tag: Reference = "hoist-test:v1".parse().unwrap();
    let descs: Vec<_> = layers.iter().map(|l| l.descriptor.clone()).collect();
    w.add_image(&config, &descs, &[tag]).unwrap();
    let tar = w.finish().unwrap();

    let mut archive = DockerArchive::open(Cursor::new(tar), Path::new("mem.tar")).unwrap();
    let item = archive.images()[0].clone();
    assert_eq!(
        item.repo_tags.as_deref(),
        Some(&["hoist-test:v1".to_owned()][..])
    );
    assert!(archive.has_file("repositories"));
    let read_config = archive.read_config(&item).unwrap();
    assert_eq!(read_config.raw(), config.raw());
    let mut layer = Vec::new();
    std::io::Read::read_to_end(&mut archive.open_layer(&item, 1).unwrap(), &mut layer).unwrap();
    assert_eq!(layer, layers[1].blob);
}

#[test]
fn fixture_image_serialises_to_known_bytes() {
    // Plain layers only: gzip output depends on the compressor's version.
    let layers = vec![plain_layer(
        &[("etc/motd", "welcome\n")],
        MediaType::OciLayer,
    )];
    let config = config_for(&layers);
    assert_eq!(
        String::from_utf8(config.raw().to_vec()).unwrap(),
        concat!(
            r#"{"architecture":"amd64","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:"#,
            r#"/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["/bin/sh"]},"created":"2024-01-01T00:00:00Z","#,
            r#""history":[{"created":"2024-01-01T00:00:00Z","created_by":"hoist test"}],"os":"linux","#,
            r#""rootfs":{"type":"layers","diff_ids":["sha256:f5daf4d72bdbdf3a361915f8d51180468121dde51dcae777aed083be53b3382c"]}}"#
        )
    );
    let manifest = manifest_for(&config, &layers);
    assert_eq!(
        manifest.digest().as_str(),
        "sha256:b678d83a10903bcf8e9130adaf2224b17b528d510d0165712765a79fef54067a"
    );
}

/// BuildKit writes OCI manifests with no layers (`FROM scratch` + `ENV`); reading one must
/// work, while the strict schema check still flags it.
#[test]
fn oci_manifest_without_layers_is_read() {
    let raw = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;
    let parsed = hoist_oci::Parsed::<hoist_oci::Manifest>::from_bytes(raw.to_vec()).unwrap();
    assert!(parsed.value().layers.is_empty());
    assert!(parsed.value().validate_schema().is_err());
}
