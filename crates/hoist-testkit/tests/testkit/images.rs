//! The busybox base images: rootfs contents, determinism, a push read back with skopeo and
//! pulled with hoist-registry, and a shell started in the rootfs (natively and emulated).

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::Path;
use std::process::Command;

use hoist_oci::{Platform, Reference};
use hoist_registry::{Credentials, RegistryClient, RegistryConfig};
use hoist_testkit::images::{busybox_deb, busybox_rootfs, Arch, BaseImages, DEFAULT_PATH};
use hoist_testkit::registry::TestRegistry;

fn has_debs() -> bool {
    for arch in Arch::ALL {
        if let Err(err) = busybox_deb(arch) {
            hoist_testkit::skip(&err.to_string());
            return false;
        }
    }
    true
}

#[test]
fn rootfs_has_busybox_applets_users_and_dirs() {
    if !has_debs() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    busybox_rootfs("arm", dir.path()).unwrap();
    let root = dir.path();
    let busybox = std::fs::read(root.join("bin/busybox")).unwrap();
    // ELF, 32-bit, little endian, machine EM_ARM (40).
    assert_eq!(&busybox[..6], b"\x7fELF\x01\x01");
    assert_eq!(u16::from_le_bytes([busybox[18], busybox[19]]), 40);
    for applet in ["sh", "id", "stat", "ls", "cat", "mkdir", "chown"] {
        let link = root.join("bin").join(applet);
        assert_eq!(
            std::fs::read_link(&link).unwrap(),
            Path::new("busybox"),
            "{applet}"
        );
    }
    assert!(root.join("bin/adduser").is_file());
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap();
    assert!(passwd.contains("root:x:0:0:root:/root:/bin/sh\n"));
    assert!(passwd.contains("nobody:x:65534:65534:"));
    assert!(passwd.contains("app:x:1000:1000:app:/home/app:/bin/sh\n"));
    let group = std::fs::read_to_string(root.join("etc/group")).unwrap();
    for line in [
        "root:x:0:",
        "nogroup:x:65534:",
        "app:x:1000:",
        "staff:x:50:app",
        "wheel:x:10:root",
    ] {
        assert!(group.lines().any(|l| l == line), "{line} in {group}");
    }
    use std::os::unix::fs::PermissionsExt as _;
    let mode = |p: &str| {
        std::fs::metadata(root.join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    };
    assert_eq!(mode("tmp"), 0o1777);
    assert_eq!(mode("root"), 0o700);
    assert!(root.join("home/app").is_dir());
}

#[test]
fn rootfs_rejects_an_unknown_arch() {
    let dir = tempfile::tempdir().unwrap();
    let err = busybox_rootfs("mips", dir.path()).unwrap_err();
    assert!(err.to_string().contains("\"mips\""), "{err}");
}

#[test]
fn amd64_rootfs_runs_id_app_in_a_chroot() {
    if !cfg!(target_arch = "x86_64") || !has_debs() {
        return;
    }
    if !hoist_testkit::is_root() {
        hoist_testkit::skip("chroot needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    busybox_rootfs("amd64", dir.path()).unwrap();
    let out = Command::new("chroot")
        .arg(dir.path())
        .args([
            "/bin/sh",
            "-c",
            "id app && adduser -D -G staff bob && addgroup bob app && id bob",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "uid=1000(app) gid=1000(app) groups=1000(app),50(staff)\n\
         uid=1001(bob) gid=50(staff) groups=50(staff),1000(app)\n"
    );
}

/// Needs the QEMU handlers `scripts/install-deps.sh` registers in binfmt_misc.
#[test]
fn arm64_rootfs_runs_under_qemu_emulation() {
    if !has_debs() {
        return;
    }
    if !hoist_testkit::is_root() {
        hoist_testkit::skip("chroot needs root");
        return;
    }
    if cfg!(target_arch = "x86_64") && !Path::new("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists()
    {
        hoist_testkit::skip(
            "qemu-aarch64 is not registered in binfmt_misc (run scripts/install-deps.sh)",
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    busybox_rootfs("arm64", dir.path()).unwrap();
    let out = Command::new("chroot")
        .arg(dir.path())
        .args([
            "/bin/sh",
            "-c",
            "uname -m; adduser -D user; id user; stat -c %U:%G /home/user",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "aarch64\nuid=1001(user) gid=1001(user) groups=1001(user)\nuser:user\n"
    );
}

/// Path → (mode, uid, gid, entry type) of a gzip layer.
fn layer_entries(gzip: &[u8]) -> BTreeMap<String, (u32, u64, u64, tar::EntryType)> {
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(gzip)
        .read_to_end(&mut tar)
        .unwrap();
    let mut archive = tar::Archive::new(tar.as_slice());
    archive
        .entries()
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            let header = entry.header();
            (
                entry.path().unwrap().to_string_lossy().into_owned(),
                (
                    header.mode().unwrap(),
                    header.uid().unwrap(),
                    header.gid().unwrap(),
                    header.entry_type(),
                ),
            )
        })
        .collect()
}

#[test]
fn base_images_are_deterministic_and_well_formed() {
    if !has_debs() {
        return;
    }
    let Some(images) = BaseImages::get() else {
        return;
    };
    let again = BaseImages::build().unwrap();
    assert_eq!(images.index.descriptor, again.index.descriptor);
    assert_eq!(images.index.bytes, again.index.bytes);

    let index: hoist_oci::Index = serde_json::from_slice(&images.index.bytes).unwrap();
    let platforms: Vec<String> = index
        .manifests
        .iter()
        .map(|d| d.platform.as_ref().unwrap().format())
        .collect();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64", "linux/arm/v7"]);

    let arm = images.image(Arch::Arm).unwrap();
    let config: serde_json::Value = serde_json::from_slice(&arm.config_blob.bytes).unwrap();
    assert_eq!(config["architecture"], "arm");
    assert_eq!(config["variant"], "v7");
    assert_eq!(config["os"], "linux");
    assert_eq!(config["config"]["Env"], serde_json::json!([DEFAULT_PATH]));
    assert_eq!(config["config"]["Cmd"], serde_json::json!(["sh"]));
    assert_eq!(config["rootfs"]["diff_ids"][0], arm.diff_id.to_string());

    let entries = layer_entries(&arm.layer.bytes);
    let names: Vec<&String> = entries.keys().collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    assert_eq!(entries["home/app/"].1, 1000);
    assert_eq!(entries["home/app/"].2, 1000);
    assert_eq!(entries["tmp/"].0, 0o1777);
    assert_eq!(
        entries["bin/busybox"],
        (0o755, 0, 0, tar::EntryType::Regular)
    );
    assert_eq!(entries["bin/sh"].3, tar::EntryType::Symlink);
    assert_eq!(entries["etc/shadow"].0, 0o600);
}

#[tokio::test]
async fn base_images_push_reads_back_with_skopeo_and_hoist_registry() {
    if !has_debs() {
        return;
    }
    let Some(registry) = TestRegistry::start() else {
        return;
    };
    let Some(images) = BaseImages::get() else {
        return;
    };
    let pushed = images.push(&registry).await.unwrap();
    // A second push finds everything there.
    images.push(&registry).await.unwrap();
    assert_eq!(
        pushed.reference("latest"),
        format!("{}/busybox:latest", registry.host())
    );

    if Command::new("skopeo").arg("--version").output().is_ok() {
        for (tag, bytes) in [
            ("latest", &images.index.bytes),
            ("arm", &images.image(Arch::Arm).unwrap().manifest.bytes),
        ] {
            let out = Command::new("skopeo")
                .args(["inspect", "--raw", "--tls-verify=false"])
                .arg(format!("docker://{}/busybox:{tag}", registry.host()))
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(&out.stdout[..], &bytes[..], "busybox:{tag}");
        }
    }

    let store_dir = tempfile::tempdir().unwrap();
    let store = hoist_content::ContentStore::open(store_dir.path()).unwrap();
    let client = RegistryClient::new(RegistryConfig::default(), Credentials::anonymous());
    for (repository, arch) in [("busybox", Arch::Arm), ("library/busybox", Arch::Arm64)] {
        let reference =
            Reference::parse(&format!("{}/{repository}:latest", registry.host())).unwrap();
        let image = images.image(arch).unwrap();
        let pulled = client
            .pull_image(&reference, &arch.platform(), &store)
            .await
            .unwrap();
        assert_eq!(pulled.root.digest, images.index.descriptor.digest);
        assert_eq!(pulled.manifest.digest, image.manifest.descriptor.digest);
        assert_eq!(pulled.config.digest, image.config_blob.descriptor.digest);
        assert_eq!(pulled.layers.len(), 1);
        assert_eq!(
            store.read_blob(&pulled.layers[0].digest).unwrap(),
            image.layer.bytes
        );
    }
    let amd64 = Reference::parse(&pushed.reference("amd64")).unwrap();
    let pulled = client
        .pull_image(&amd64, &Platform::new("linux", "amd64"), &store)
        .await
        .unwrap();
    assert_eq!(
        Some(&pulled.manifest.digest),
        pushed.manifest(Arch::Amd64).map(|d| &d.digest)
    );
}

#[tokio::test]
async fn busybox_stands_in_for_alpine_in_its_own_repositories() {
    if !has_debs() {
        return;
    }
    let Some(registry) = TestRegistry::start() else {
        return;
    };
    let Some(images) = BaseImages::get() else {
        return;
    };
    images.push(&registry).await.unwrap();
    let alpine = images
        .push_repositories(&registry, &hoist_testkit::images::ALPINE_STAND_IN)
        .await
        .unwrap();
    assert_eq!(
        alpine.reference("latest"),
        format!("{}/alpine:latest", registry.host())
    );
    let client = RegistryClient::new(RegistryConfig::default(), Credentials::anonymous());
    for path in ["alpine", "library/alpine"] {
        let reference = Reference::parse(&format!("{}/{path}:latest", registry.host())).unwrap();
        let resolved = client.resolve(&reference).await.unwrap();
        assert_eq!(resolved.descriptor.digest, images.index.descriptor.digest);
    }
}

#[test]
fn base_images_write_an_oci_layout_skopeo_reads() {
    if !has_debs() {
        return;
    }
    let Some(images) = BaseImages::get() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    images.write_oci_layout(dir.path()).unwrap();
    let layout = hoist_oci::OciLayout::open_dir(dir.path()).unwrap();
    assert_eq!(
        layout.find("latest").map(|d| &d.digest),
        Some(&images.index.descriptor.digest)
    );
    if Command::new("skopeo").arg("--version").output().is_err() {
        return;
    }
    let out = Command::new("skopeo")
        .args(["inspect", "--raw"])
        .arg(format!("oci:{}:latest", dir.path().display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(&out.stdout[..], &images.index.bytes[..]);
}
