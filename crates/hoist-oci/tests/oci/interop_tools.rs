//! Archives written by hoist are accepted by the tools people use on them: `skopeo inspect`
//! (oci-archive and docker-archive), `skopeo copy` (which verifies every blob) and
//! `umoci unpack`. Each test skips, saying why, when its tool is absent
//! (`apt-get install -y skopeo umoci`).

use std::path::Path;
use std::process::Command;

use crate::support::{config_for, manifest_for, plain_layer, two_layers};
use hoist_oci::{DockerArchiveWriter, MediaType, OciLayout, OciLayoutWriter, Reference};
use serde_json::Value;

fn tool(name: &str) -> bool {
    let found = Command::new(name).arg("--version").output().is_ok();
    if !found {
        hoist_testkit::skip(&format!(
            "{name} is not installed (apt-get install -y {name})"
        ));
    }
    found
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Writes an OCI layout tar with one two-layer image tagged `latest`; returns the manifest
/// digest.
fn write_oci_archive(path: &Path) -> hoist_oci::Digest {
    let layers = two_layers();
    let config = config_for(&layers);
    let manifest = manifest_for(&config, &layers);
    let file = std::fs::File::create(path).unwrap();
    let mut w = OciLayoutWriter::tar(file).unwrap();
    for l in &layers {
        w.add_blob_bytes(&l.descriptor.digest, &l.blob).unwrap();
    }
    w.add_document(&config, MediaType::OciConfig).unwrap();
    let desc = w.add_document(&manifest, MediaType::OciManifest).unwrap();
    w.add_manifest(desc, Some("latest"));
    w.finish_tar().unwrap();
    manifest.digest().clone()
}

#[test]
fn skopeo_inspects_hoist_oci_archive() {
    if !tool("skopeo") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("image.tar");
    let digest = write_oci_archive(&path);
    let out = run(Command::new("skopeo")
        .arg("inspect")
        .arg(format!("oci-archive:{}:latest", path.display())));
    let info: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(info["Digest"], digest.as_str());
    assert_eq!(info["Architecture"], "amd64");
    assert_eq!(info["Os"], "linux");
    assert_eq!(info["Layers"].as_array().unwrap().len(), 2);
}

#[test]
fn umoci_unpacks_hoist_oci_layout() {
    if !tool("umoci") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("image.tar");
    write_oci_archive(&path);
    let layout = dir.path().join("layout");
    tar::Archive::new(std::fs::File::open(&path).unwrap())
        .unpack(&layout)
        .unwrap();
    let bundle = dir.path().join("bundle");
    let mut cmd = Command::new("umoci");
    cmd.arg("unpack");
    let is_root = run(Command::new("id").arg("-u")).trim() == "0";
    if !is_root {
        cmd.arg("--rootless");
    }
    run(cmd
        .arg("--image")
        .arg(format!("{}:latest", layout.display()))
        .arg(&bundle));
    let rootfs = bundle.join("rootfs");
    assert_eq!(
        std::fs::read_to_string(rootfs.join("hello.txt")).unwrap(),
        "hello from hoist\n"
    );
    assert_eq!(
        std::fs::read_to_string(rootfs.join("etc/motd")).unwrap(),
        "welcome\n"
    );
}

#[test]
fn skopeo_reads_hoist_docker_archive() {
    if !tool("skopeo") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("docker.tar");
    let layers = vec![
        plain_layer(&[("hello.txt", "hi\n")], MediaType::OciLayer),
        plain_layer(&[("etc/motd", "motd\n")], MediaType::OciLayer),
    ];
    let config = config_for(&layers);
    let mut w = DockerArchiveWriter::new(std::fs::File::create(&path).unwrap()).unwrap();
    for l in &layers {
        w.add_layer(&l.descriptor.digest, l.blob.len() as u64, &mut &l.blob[..])
            .unwrap();
    }
    let tag: Reference = "hoist-test:v1".parse().unwrap();
    let descs: Vec<_> = layers.iter().map(|l| l.descriptor.clone()).collect();
    w.add_image(&config, &descs, &[tag]).unwrap();
    w.finish().unwrap();

    let out = run(Command::new("skopeo")
        .arg("inspect")
        .arg(format!("docker-archive:{}", path.display())));
    let info: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(info["Architecture"], "amd64");
    assert_eq!(info["Layers"].as_array().unwrap().len(), 2);
    let diff_ids: Vec<&str> = config.rootfs.diff_ids.iter().map(|d| d.as_str()).collect();
    assert_eq!(info["Layers"], serde_json::json!(diff_ids));
    assert_eq!(info["Env"][0], config.config.env[0].as_str());

    // Selecting the image by the tag hoist wrote in manifest.json.
    let out = run(Command::new("skopeo")
        .arg("inspect")
        .arg(format!("docker-archive:{}:hoist-test:v1", path.display())));
    let by_tag: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(by_tag["Digest"], info["Digest"]);

    // skopeo copy reads and verifies every blob; read its output with hoist again.
    let copied = dir.path().join("copied");
    run(Command::new("skopeo")
        .arg("--insecure-policy")
        .arg("copy")
        .arg(format!("docker-archive:{}", path.display()))
        .arg(format!("oci:{}:copied", copied.display())));
    let mut layout = OciLayout::open_dir(&copied).unwrap();
    let desc = layout.find("copied").unwrap().clone();
    let manifest = layout.read_manifest(&desc).unwrap();
    let read_config = layout.read_config(&manifest.config).unwrap();
    assert_eq!(read_config.rootfs.diff_ids, config.rootfs.diff_ids);
}

#[test]
fn hoist_reads_skopeo_written_docker_archive() {
    if !tool("skopeo") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let oci = dir.path().join("image.tar");
    write_oci_archive(&oci);
    let docker = dir.path().join("docker.tar");
    run(Command::new("skopeo")
        .arg("--insecure-policy")
        .arg("copy")
        .arg(format!("oci-archive:{}:latest", oci.display()))
        .arg(format!(
            "docker-archive:{}:example.com/hoist/app:v2",
            docker.display()
        )));

    let file = std::fs::File::open(&docker).unwrap();
    let mut archive = hoist_oci::DockerArchive::open(file, &docker).unwrap();
    let item = archive.images()[0].clone();
    assert_eq!(
        item.references().unwrap()[0].to_string(),
        "example.com/hoist/app:v2"
    );
    let config = archive.read_config(&item).unwrap();
    assert_eq!(config.rootfs.diff_ids.len(), item.layers.len());
    for (i, diff_id) in config.rootfs.diff_ids.iter().enumerate() {
        let mut digester = diff_id.digester().unwrap();
        std::io::copy(&mut archive.open_layer(&item, i).unwrap(), &mut digester).unwrap();
        assert_eq!(&digester.finish().0, diff_id, "layer {i}");
    }
}

#[test]
fn podman_loads_hoist_docker_archive() {
    if !tool("podman") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("docker.tar");
    let layers = two_layers();
    let config = config_for(&layers);
    let mut w = DockerArchiveWriter::new(std::fs::File::create(&path).unwrap()).unwrap();
    for l in &layers {
        w.add_layer(&l.descriptor.digest, l.blob.len() as u64, &mut &l.blob[..])
            .unwrap();
    }
    let tag: Reference = "hoist-test:podman".parse().unwrap();
    let descs: Vec<_> = layers.iter().map(|l| l.descriptor.clone()).collect();
    w.add_image(&config, &descs, &[tag]).unwrap();
    w.finish().unwrap();

    // A private podman store, so the test neither needs nor touches the machine's images.
    let podman = |args: &[&str]| {
        let mut cmd = Command::new("podman");
        cmd.arg("--root")
            .arg(dir.path().join("storage"))
            .arg("--runroot")
            .arg(dir.path().join("run"))
            .arg("--storage-driver")
            .arg("vfs")
            .args(args);
        run(&mut cmd)
    };
    let loaded = podman(&["load", "--input", path.to_str().unwrap()]);
    assert!(loaded.contains("hoist-test:podman"), "{loaded}");
    let layers_json = podman(&[
        "image",
        "inspect",
        "--format",
        "{{json .RootFS.Layers}}",
        "hoist-test:podman",
    ]);
    let loaded_diff_ids: Vec<String> = serde_json::from_str(layers_json.trim()).unwrap();
    let expected: Vec<String> = config
        .rootfs
        .diff_ids
        .iter()
        .map(|d| d.to_string())
        .collect();
    assert_eq!(loaded_diff_ids, expected);
}
