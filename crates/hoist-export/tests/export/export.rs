//! Exports of images built in the test (trees written to a tempdir, layers made with
//! `hoist_snapshot::write_layer`), checked with real tools: skopeo, umoci, podman and a
//! Distribution registry. A test whose tool is missing says so and passes.

use std::path::{Path, PathBuf};
use std::process::Command;

use hoist_content::ContentStore;
use hoist_export::{ExportLayer, ExportRequest, ExportResult, Exporter, Output, PlatformImage};
use hoist_oci::{
    Compression, DockerArchive, History, ImageConfig, Index, Manifest, MediaType, OciLayout,
    Platform,
};
use hoist_snapshot::{DiffSource, LayerOptions};
use serde_json::Value;
use tempfile::TempDir;

pub(crate) struct Fixture {
    tmp: TempDir,
    store: ContentStore,
}

impl Fixture {
    pub(crate) fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let store = ContentStore::open(tmp.path().join("state")).unwrap();
        Fixture { tmp, store }
    }

    pub(crate) fn store(&self) -> &ContentStore {
        &self.store
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// An image of two layers: a base tree with `etc/os` and `bin/hello`, then `app/msg`.
    fn image(&self, platform: &str, compression: Compression) -> PlatformImage {
        let platform = Platform::parse(platform).unwrap();
        let tag = platform.format().replace('/', "_");
        let base = self.path(&format!("{tag}-base"));
        let full = self.path(&format!("{tag}-full"));
        for dir in [&base, &full] {
            write(dir, "etc/os", "hoist test\n");
            write(
                dir,
                "bin/hello",
                &format!("hello from {}\n", platform.format()),
            );
        }
        write(&full, "app/msg", "top layer\n");
        for dir in [&base, &full] {
            fix_times(dir);
        }
        let options = LayerOptions {
            compression,
            ..LayerOptions::default()
        };
        let layers = [
            DiffSource::Trees {
                lower: None,
                upper: &base,
            },
            DiffSource::Trees {
                lower: Some(&base),
                upper: &full,
            },
        ]
        .into_iter()
        .map(|source| {
            let (bytes, layer, _) =
                hoist_snapshot::write_layer(source, Vec::new(), options).unwrap();
            self.store
                .write_blob(&layer.descriptor, bytes.as_slice())
                .unwrap();
            ExportLayer::from(layer)
        })
        .collect::<Vec<_>>();
        let mut config = ImageConfig::new(&platform);
        config.created = Some("2024-01-02T03:04:05Z".into());
        config.config.cmd = vec!["/bin/hello".into()];
        config.config.env = vec!["PATH=/bin".into()];
        config.rootfs.kind = "layers".into();
        config.rootfs.diff_ids = layers.iter().map(|l| l.diff_id.clone()).collect();
        config.history = ["base", "app"]
            .iter()
            .map(|what| History {
                created: Some("2024-01-02T03:04:05Z".into()),
                created_by: Some(format!("COPY {what} /")),
                ..History::default()
            })
            .collect();
        PlatformImage {
            platform,
            config,
            layers,
            rootfs: Some(full),
            source_date_epoch: None,
            base_diff_ids: Vec::new(),
            inline_cache: None,
            layer_sources: Default::default(),
        }
    }

    pub(crate) fn images(&self, platforms: &[&str]) -> Vec<PlatformImage> {
        platforms
            .iter()
            .map(|p| self.image(p, Compression::Gzip))
            .collect()
    }

    fn exporter(&self) -> Exporter {
        Exporter::new(self.store.clone())
    }

    pub(crate) async fn export(&self, images: &[PlatformImage], spec: &str) -> ExportResult {
        let request = ExportRequest {
            images: images.to_vec(),
            outputs: vec![Output::parse(spec).unwrap()],
        };
        self.exporter().export(&request).await.unwrap()
    }
}

fn write(root: &Path, rel: &str, content: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

/// Sets every mtime under `root` to one instant, so layers of equal trees are equal.
fn fix_times(root: &Path) {
    let when = filetime::FileTime::from_unix_time(1_700_000_000, 0);
    for entry in walkdir::WalkDir::new(root).contents_first(true) {
        filetime::set_file_mtime(entry.unwrap().path(), when).unwrap();
    }
}

fn have(tool: &str) -> bool {
    let found = Command::new(tool).arg("--version").output().is_ok();
    if !found {
        hoist_testkit::skip(&format!("{tool} is not installed"));
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

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

fn platform_of(entry: &Value) -> String {
    let p = &entry["platform"];
    let mut s = format!(
        "{}/{}",
        p["os"].as_str().unwrap(),
        p["architecture"].as_str().unwrap()
    );
    if let Some(v) = p.get("variant").and_then(Value::as_str) {
        s = format!("{s}/{v}");
    }
    s
}

#[tokio::test]
async fn oci_tar_is_read_by_skopeo_and_dir_by_umoci() {
    let fx = Fixture::new();
    let images = fx.images(&["linux/amd64"]);
    let tar = fx.path("image.tar");
    let result = fx
        .export(
            &images,
            &format!("type=oci,dest={},name=app:1", tar.display()),
        )
        .await;
    let image = result.image().unwrap();
    assert_eq!(image.descriptor.media_type, MediaType::OciManifest);
    assert!(image.config_digest.is_some());

    // The layout as hoist reads it: one index.json entry named `1`, layers reused as is.
    let mut layout = OciLayout::open_tar(std::fs::File::open(&tar).unwrap(), &tar).unwrap();
    let entry = layout.find("1").unwrap().clone();
    assert_eq!(entry.digest, image.descriptor.digest);
    let manifest = layout.read_manifest(&entry).unwrap();
    let stored: Vec<_> = images[0]
        .layers
        .iter()
        .map(|l| l.descriptor.digest.clone())
        .collect();
    let written: Vec<_> = manifest.layers.iter().map(|l| l.digest.clone()).collect();
    assert_eq!(written, stored, "gzip layers are reused, not recompressed");

    if have("skopeo") {
        let out = run(Command::new("skopeo")
            .arg("inspect")
            .arg(format!("oci-archive:{}:1", tar.display())));
        let v = json(&out);
        assert_eq!(v["Architecture"], "amd64");
        assert_eq!(v["Os"], "linux");
        assert_eq!(v["Layers"].as_array().unwrap().len(), 2);
        assert_eq!(v["Digest"], image.descriptor.digest.to_string());
    }

    if have("umoci") {
        // The tar itself, unpacked as a layout directory.
        let from_tar = fx.path("from-tar");
        tar::Archive::new(std::fs::File::open(&tar).unwrap())
            .unpack(&from_tar)
            .unwrap();
        let bundle = fx.path("bundle-from-tar");
        run(Command::new("umoci")
            .arg("unpack")
            .arg("--image")
            .arg(format!("{}:1", from_tar.display()))
            .arg(&bundle));
        assert!(bundle.join("rootfs/app/msg").is_file());
    }

    let dir = fx.path("layout");
    fx.export(
        &images,
        &format!("type=oci,tar=false,dest={},name=app:1", dir.display()),
    )
    .await;
    if have("umoci") {
        let bundle = fx.path("bundle");
        run(Command::new("umoci")
            .arg("unpack")
            .arg("--image")
            .arg(format!("{}:1", dir.display()))
            .arg(&bundle));
        let hello = std::fs::read_to_string(bundle.join("rootfs/bin/hello")).unwrap();
        assert_eq!(hello, "hello from linux/amd64\n");
        assert!(bundle.join("rootfs/app/msg").is_file());
    }
}

#[tokio::test]
async fn oci_multi_platform_writes_an_index_with_exact_platforms() {
    let fx = Fixture::new();
    let images = fx.images(&["linux/amd64", "linux/arm64", "linux/arm/v7"]);
    let tar = fx.path("multi.tar");
    let result = fx
        .export(
            &images,
            &format!(
                "type=oci,dest={},annotation-index.org.example=x",
                tar.display()
            ),
        )
        .await;
    let image = result.image().unwrap();
    assert_eq!(image.descriptor.media_type, MediaType::OciIndex);
    assert_eq!(
        image.config_digest, None,
        "no config digest for several platforms"
    );
    let metadata = result.metadata();
    assert_eq!(metadata.digest.as_ref(), Some(&image.descriptor.digest));

    let mut layout = OciLayout::open_tar(std::fs::File::open(&tar).unwrap(), &tar).unwrap();
    let root = layout.index().manifests[0].clone();
    let raw = layout.read_blob(&root.digest).unwrap();
    let index: Index = serde_json::from_slice(&raw).unwrap();
    assert_eq!(
        index.annotations.get("org.example").map(String::as_str),
        Some("x")
    );
    let platforms: Vec<_> = index
        .manifests
        .iter()
        .map(|d| d.platform.clone().unwrap())
        .collect();
    assert_eq!(
        platforms,
        vec![
            Platform::new("linux", "amd64"),
            Platform::new("linux", "arm64"),
            Platform::new("linux", "arm").with_variant("v7"),
        ]
    );
    for entry in &index.manifests {
        let manifest = layout.read_manifest(entry).unwrap();
        let config = layout.read_config(&manifest.config).unwrap();
        assert_eq!(config.platform(), *entry.platform.as_ref().unwrap());
    }

    if have("skopeo") {
        let out = run(Command::new("skopeo")
            .args(["inspect", "--raw"])
            .arg(format!("oci-archive:{}", tar.display())));
        let v = json(&out);
        let listed: Vec<String> = v["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(platform_of)
            .collect();
        assert_eq!(listed, ["linux/amd64", "linux/arm64", "linux/arm/v7"]);
    }
}

#[tokio::test]
async fn docker_archive_is_loaded_by_podman() {
    let fx = Fixture::new();
    let images = fx.images(&["linux/amd64"]);
    let tar = fx.path("docker.tar");
    let result = fx
        .export(
            &images,
            &format!("type=docker,dest={},name=localhost/app:1", tar.display()),
        )
        .await;
    let image = result.image().unwrap();
    assert_eq!(image.descriptor.media_type, MediaType::DockerManifest);

    let mut archive = DockerArchive::open(std::fs::File::open(&tar).unwrap(), &tar).unwrap();
    let item = archive.images()[0].clone();
    assert_eq!(item.repo_tags, Some(vec!["localhost/app:1".to_owned()]));
    let config = archive.read_config(&item).unwrap();
    assert_eq!(Some(config.digest().clone()), image.config_digest);

    if !have("podman") {
        return;
    }
    let root = fx.path("podman-root");
    let runroot = fx.path("podman-runroot");
    let podman = |args: &[&str]| {
        let mut cmd = Command::new("podman");
        cmd.arg("--root")
            .arg(&root)
            .arg("--runroot")
            .arg(&runroot)
            .args(["--storage-driver", "vfs"])
            .args(args);
        cmd
    };
    run(&mut podman(&["load", "-i", tar.to_str().unwrap()]));
    let out = run(&mut podman(&["image", "inspect", "localhost/app:1"]));
    let v = json(&out);
    assert_eq!(v[0]["Architecture"], "amd64");
    assert_eq!(v[0]["Config"]["Cmd"][0], "/bin/hello");
    assert_eq!(v[0]["RootFS"]["Layers"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn docker_output_refuses_several_platforms() {
    let fx = Fixture::new();
    let images = fx.images(&["linux/amd64", "linux/arm64"]);
    let request = ExportRequest {
        images,
        outputs: vec![
            Output::parse(&format!("type=docker,dest={}", fx.path("x.tar").display())).unwrap(),
        ],
    };
    let err = fx.exporter().export(&request).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "docker exporter does not support exporting manifest lists, use the oci exporter instead"
    );
    assert!(!fx.path("x.tar").exists(), "nothing written");
}

#[tokio::test]
async fn destinations_of_the_wrong_kind_are_refused_before_writing() {
    let fx = Fixture::new();
    let dir = fx.path("a-dir");
    std::fs::create_dir(&dir).unwrap();
    let file = fx.path("a-file");
    std::fs::write(&file, "x").unwrap();
    let cases = [
        (
            format!("type=oci,dest={}", dir.display()),
            format!("destination file {} is a directory", dir.display()),
        ),
        (
            format!("type=local,dest={}", file.display()),
            format!("destination directory {} is a file", file.display()),
        ),
    ];
    for (spec, want) in cases {
        let request = ExportRequest {
            images: fx.images(&["linux/amd64"]),
            outputs: vec![Output::parse(&spec).unwrap()],
        };
        let err = fx.exporter().export(&request).await.unwrap_err();
        assert_eq!(err.to_string(), want, "{spec}");
    }
}

#[tokio::test]
async fn configs_contradicting_their_layers_or_platform_are_refused() {
    let fx = Fixture::new();
    let good = fx.image("linux/amd64", Compression::Gzip);
    let mut wrong_diff_ids = good.clone();
    wrong_diff_ids.config.rootfs.diff_ids.reverse();
    let mut short_history = good.clone();
    short_history.config.history.pop();
    let mut wrong_platform = good.clone();
    wrong_platform.platform = Platform::new("linux", "arm64");
    let cases = [
        (wrong_diff_ids, "image for linux/amd64: the config lists 2 diff ids that differ from the 2 layers' diff ids"),
        (short_history, "image for linux/amd64: the config history has 1 entries that made a layer, but there are 2 layers"),
        (wrong_platform, "image for linux/arm64: the config is for linux/amd64"),
    ];
    for (image, want) in cases {
        let request = ExportRequest {
            images: vec![image],
            outputs: vec![Output::parse("type=image,name=app").unwrap()],
        };
        let err = fx.exporter().export(&request).await.unwrap_err();
        assert_eq!(err.to_string(), want);
    }
}

#[tokio::test]
async fn docker_load_without_daemon_names_the_socket() {
    let fx = Fixture::new();
    let socket = fx.path("no-docker.sock");
    let request = ExportRequest {
        images: fx.images(&["linux/amd64"]),
        outputs: vec![Output::parse("type=docker,name=app").unwrap()],
    };
    let err = fx
        .exporter()
        .with_docker_socket(&socket)
        .export(&request)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("unix://{}", socket.display())) && err.contains("docker daemon"),
        "{err}"
    );
}

/// A fake Docker daemon on a unix socket: answers `POST /images/load` and keeps the body.
#[tokio::test]
async fn docker_load_posts_the_archive_to_the_daemon_api() {
    use http_body_util::BodyExt;
    use std::sync::{Arc, Mutex};

    let fx = Fixture::new();
    let socket = fx.path("docker.sock");
    let listener = tokio::net::UnixListener::bind(&socket).unwrap();
    /// The request line and body the fake daemon received.
    type Seen = Arc<Mutex<Option<(String, Vec<u8>)>>>;
    let seen: Seen = Arc::default();
    let seen_by_server = Arc::clone(&seen);
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let service =
            hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let seen = Arc::clone(&seen_by_server);
                async move {
                    let target = format!("{} {}", req.method(), req.uri());
                    let body = req.into_body().collect().await?.to_bytes().to_vec();
                    *seen.lock().unwrap() = Some((target, body));
                    Ok::<_, hyper::Error>(hyper::Response::new(http_body_util::Full::new(
                        bytes::Bytes::from_static(
                            b"{\"stream\":\"Loaded image: app:latest\\n\"}\n",
                        ),
                    )))
                }
            });
        hyper::server::conn::http1::Builder::new()
            .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
            .await
            .unwrap();
    });
    let request = ExportRequest {
        images: fx.images(&["linux/arm64"]),
        outputs: vec![Output::load_shorthand(&[
            hoist_oci::Reference::parse_docker("app").unwrap(),
        ])],
    };
    fx.exporter()
        .with_docker_socket(&socket)
        .export(&request)
        .await
        .unwrap();
    let (target, body) = seen.lock().unwrap().take().unwrap();
    assert_eq!(target, "POST /images/load?quiet=1");
    let archive = DockerArchive::open(std::io::Cursor::new(body), Path::new("posted")).unwrap();
    assert_eq!(
        archive.images()[0].repo_tags,
        Some(vec!["app:latest".to_owned()])
    );
}

#[tokio::test]
async fn push_to_registry_index_list_and_by_digest() {
    let Some(registry) = hoist_testkit::registry::TestRegistry::start() else {
        return;
    };
    let host = registry.host();
    let fx = Fixture::new();
    let images = fx.images(&["linux/amd64", "linux/arm/v7"]);
    let client = hoist_registry::RegistryClient::new(
        hoist_registry::RegistryConfig::default(),
        hoist_registry::Credentials::anonymous(),
    );
    let exporter = fx.exporter().with_registry(client);
    let export = |spec: String| {
        let request = ExportRequest {
            images: images.clone(),
            outputs: vec![Output::parse(&spec).unwrap()],
        };
        let exporter = exporter.clone();
        async move { exporter.export(&request).await.unwrap() }
    };

    let oci = export(format!("type=registry,name={host}/app:oci")).await;
    let oci_root = oci.image().unwrap().descriptor.clone();
    assert_eq!(oci_root.media_type, MediaType::OciIndex);
    // Named in the store too.
    assert_eq!(
        fx.store
            .get_name(&format!("{host}/app:oci"))
            .unwrap()
            .map(|d| d.digest),
        Some(oci_root.digest.clone())
    );

    let docker = export(format!(
        "type=image,push=true,oci-mediatypes=false,name={host}/app:docker"
    ))
    .await;
    let docker_root = docker.image().unwrap().descriptor.clone();
    assert_eq!(docker_root.media_type, MediaType::DockerManifestList);

    let by_digest = export(format!(
        "type=image,push=true,push-by-digest=true,name={host}/bydigest:ignored"
    ))
    .await;
    let by_digest_root = by_digest.image().unwrap().descriptor.clone();
    assert_eq!(
        by_digest_root.digest, oci_root.digest,
        "same input, same index"
    );

    if !have("skopeo") {
        return;
    }
    let inspect = |reference: String| {
        json(&run(Command::new("skopeo")
            .args(["inspect", "--raw", "--tls-verify=false"])
            .arg(format!("docker://{reference}"))))
    };
    let v = inspect(format!("{host}/app:oci"));
    assert_eq!(v["mediaType"], MediaType::OciIndex.as_str());
    let listed: Vec<String> = v["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(platform_of)
        .collect();
    assert_eq!(listed, ["linux/amd64", "linux/arm/v7"]);

    let v = inspect(format!("{host}/app:docker"));
    assert_eq!(v["mediaType"], MediaType::DockerManifestList.as_str());
    let listed: Vec<String> = v["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(platform_of)
        .collect();
    assert_eq!(listed, ["linux/amd64", "linux/arm/v7"]);
    let child = v["manifests"][1]["digest"].as_str().unwrap().to_owned();
    let m = inspect(format!("{host}/app@{child}"));
    assert_eq!(m["mediaType"], MediaType::DockerManifest.as_str());
    assert_eq!(m["config"]["mediaType"], MediaType::DockerConfig.as_str());
    for layer in m["layers"].as_array().unwrap() {
        assert_eq!(layer["mediaType"], MediaType::DockerLayerGzip.as_str());
    }

    let v = inspect(format!("{host}/bydigest@{}", by_digest_root.digest));
    assert_eq!(v["mediaType"], MediaType::OciIndex.as_str());
    let tagged = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{host}/bydigest:ignored"))
        .output()
        .unwrap();
    assert!(!tagged.status.success(), "push-by-digest pushed no tag");
}

fn tar_names(path: &Path) -> Vec<String> {
    let mut archive = tar::Archive::new(std::fs::File::open(path).unwrap());
    archive
        .entries()
        .unwrap()
        .map(|e| {
            e.unwrap()
                .path()
                .unwrap()
                .to_string_lossy()
                .trim_end_matches('/')
                .to_owned()
        })
        .collect()
}

#[tokio::test]
async fn local_and_tar_outputs_split_by_platform() {
    let fx = Fixture::new();
    let multi = fx.images(&["linux/amd64", "linux/arm/v7"]);

    let split = fx.path("split");
    let result = fx
        .export(&multi, &format!("type=local,dest={}", split.display()))
        .await;
    assert!(result.image().is_none());
    assert_eq!(result.metadata().to_json().unwrap(), b"{}");
    assert_eq!(
        std::fs::read_to_string(split.join("linux_amd64/bin/hello")).unwrap(),
        "hello from linux/amd64\n"
    );
    assert_eq!(
        std::fs::read_to_string(split.join("linux_arm_v7/bin/hello")).unwrap(),
        "hello from linux/arm/v7\n"
    );

    let merged = fx.path("merged");
    fx.export(
        &multi,
        &format!("type=local,dest={},platform-split=false", merged.display()),
    )
    .await;
    assert_eq!(
        std::fs::read_to_string(merged.join("bin/hello")).unwrap(),
        "hello from linux/arm/v7\n",
        "later platforms win"
    );

    let single = fx.images(&["linux/arm64"]);
    let one = fx.path("one");
    fx.export(&single, &format!("type=local,dest={}", one.display()))
        .await;
    assert!(one.join("app/msg").is_file());
    let forced = fx.path("forced");
    fx.export(
        &single,
        &format!("type=local,dest={},platform-split=true", forced.display()),
    )
    .await;
    assert!(forced.join("linux_arm64/app/msg").is_file());

    let tar = fx.path("fs.tar");
    fx.export(&multi, &format!("type=tar,dest={}", tar.display()))
        .await;
    let names = tar_names(&tar);
    for want in [
        "linux_amd64",
        "linux_amd64/bin/hello",
        "linux_arm_v7/app/msg",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing from {names:?}"
        );
    }
    let merged_tar = fx.path("merged.tar");
    fx.export(
        &multi,
        &format!(
            "type=tar,dest={},platform-split=false",
            merged_tar.display()
        ),
    )
    .await;
    let names = tar_names(&merged_tar);
    assert_eq!(
        names.iter().filter(|n| *n == "bin/hello").count(),
        1,
        "each path once: {names:?}"
    );
    let mut archive = tar::Archive::new(std::fs::File::open(&merged_tar).unwrap());
    let hello = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap())
        .find(|e| e.path().unwrap().as_os_str() == "bin/hello")
        .map(|mut e| {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut e, &mut text).unwrap();
            text
        });
    assert_eq!(
        hello.as_deref(),
        Some("hello from linux/arm/v7\n"),
        "later platforms win"
    );
    assert!(!names.iter().any(|n| n.starts_with("linux_")), "{names:?}");

    let flat = fx.path("flat.tar");
    fx.export(&single, &format!("type=tar,dest={}", flat.display()))
        .await;
    let names = tar_names(&flat);
    assert!(names.iter().any(|n| n == "bin/hello"), "{names:?}");
    assert!(!names.iter().any(|n| n.starts_with("linux_")), "{names:?}");
}

#[tokio::test]
async fn same_input_gives_identical_digests_and_bytes() {
    let fx = Fixture::new();
    let images = fx.images(&["linux/amd64", "linux/arm64"]);
    let (a, b) = (fx.path("a.tar"), fx.path("b.tar"));
    let ra = fx
        .export(
            &images,
            &format!("type=oci,dest={},name=app:1", a.display()),
        )
        .await;
    let rb = fx
        .export(
            &images,
            &format!("type=oci,dest={},name=app:1", b.display()),
        )
        .await;
    assert_eq!(ra, rb);
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());

    // A second fixture built from the same trees gives the same index digest too.
    let other = Fixture::new();
    let again = other.images(&["linux/amd64", "linux/arm64"]);
    let rc = other.export(&again, "type=image,name=app:1").await;
    assert_eq!(
        rc.image().unwrap().descriptor.digest,
        ra.image().unwrap().descriptor.digest
    );
}

#[tokio::test]
async fn zstd_recompresses_and_keeps_diff_ids() {
    let fx = Fixture::new();
    let images = fx.images(&["linux/amd64"]);
    let tar = fx.path("zstd.tar");
    let result = fx
        .export(
            &images,
            &format!(
                "type=oci,dest={},compression=zstd,oci-mediatypes=false",
                tar.display()
            ),
        )
        .await;
    let root = result.image().unwrap().descriptor.clone();
    assert_eq!(
        root.media_type,
        MediaType::OciManifest,
        "zstd forces OCI media types"
    );
    let mut layout = OciLayout::open_tar(std::fs::File::open(&tar).unwrap(), &tar).unwrap();
    let manifest: Manifest = layout.read_manifest(&root).unwrap().into_parts().0;
    let config = layout.read_config(&manifest.config).unwrap();
    let want: Vec<_> = images[0].layers.iter().map(|l| l.diff_id.clone()).collect();
    assert_eq!(config.rootfs.diff_ids, want);
    for (layer, source) in manifest.layers.iter().zip(&images[0].layers) {
        assert_eq!(layer.media_type, MediaType::OciLayerZstd);
        assert_ne!(layer.digest, source.descriptor.digest);
        let blob = layout.read_blob(&layer.digest).unwrap();
        assert_eq!(&blob[..4], &[0x28, 0xb5, 0x2f, 0xfd]);
        assert!(
            fx.store.has(&layer.digest),
            "recompressed layers are stored"
        );
    }

    // Layers already zstd are reused; force-compression recompresses them anyway.
    let zstd_image = fx.image("linux/arm64", Compression::Zstd);
    let source: Vec<_> = zstd_image
        .layers
        .iter()
        .map(|l| l.descriptor.digest.clone())
        .collect();
    let kept = fx
        .export(
            std::slice::from_ref(&zstd_image),
            "type=image,compression=zstd",
        )
        .await;
    let forced = fx
        .export(
            std::slice::from_ref(&zstd_image),
            "type=image,compression=zstd,compression-level=19,force-compression=true",
        )
        .await;
    let layers_of = |r: &ExportResult| -> Vec<_> {
        let d = r.image().unwrap().descriptor.digest.clone();
        let m: Manifest = serde_json::from_slice(&fx.store.read_blob(&d).unwrap()).unwrap();
        m.layers.into_iter().map(|l| l.digest).collect()
    };
    assert_eq!(layers_of(&kept), source);
    assert_ne!(layers_of(&forced), source);

    // Uncompressed output of gzip layers: the diff ids are the blob digests.
    let plain = fx
        .export(&images, "type=image,compression=uncompressed")
        .await;
    assert_eq!(layers_of(&plain), want);
}

#[tokio::test]
async fn metadata_file_has_buildkit_keys() {
    let fx = Fixture::new();
    let images = fx.images(&["linux/amd64"]);
    let result = fx
        .export(&images, "type=image,\"name=r.io/a:1,r.io/b:2\"")
        .await;
    let image = result.image().unwrap();
    let v = json(std::str::from_utf8(&result.metadata().to_json().unwrap()).unwrap());
    assert_eq!(
        v["containerimage.digest"],
        image.descriptor.digest.to_string()
    );
    assert_eq!(
        v["containerimage.config.digest"],
        image.config_digest.as_ref().unwrap().to_string()
    );
    assert_eq!(
        v["containerimage.descriptor"]["mediaType"],
        MediaType::OciManifest.as_str()
    );
    assert_eq!(
        v["containerimage.descriptor"]["size"],
        image.descriptor.size
    );
    assert_eq!(v["image.name"], "r.io/a:1,r.io/b:2");
    let keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
    assert_eq!(
        keys,
        [
            "containerimage.config.digest",
            "containerimage.descriptor",
            "containerimage.digest",
            "image.name"
        ]
    );
}

/// A layer converted into the store is hashed once, by the store writer: the blob it
/// commits still hashes to its name and holds its size, and it uncompresses to the diff
/// id the config lists — for uncompressed sources (the engine's layers, whose digest is
/// the diff id and is not hashed again) and for compressed ones.
#[tokio::test]
async fn converted_layers_hash_to_their_names_and_keep_their_diff_ids() {
    let fx = Fixture::new();
    let plain = fx.image("linux/amd64", Compression::None);
    let gzipped = fx.image("linux/arm64", Compression::Gzip);
    for (image, spec) in [
        (&plain, "type=image,compression=gzip"),
        (&plain, "type=image,compression=zstd"),
        (&gzipped, "type=image,compression=zstd"),
        (
            &gzipped,
            "type=image,compression=gzip,force-compression=true",
        ),
    ] {
        let result = fx.export(std::slice::from_ref(image), spec).await;
        let root = result.image().unwrap().descriptor.digest.clone();
        let manifest: Manifest =
            serde_json::from_slice(&fx.store.read_blob(&root).unwrap()).unwrap();
        let config: ImageConfig =
            serde_json::from_slice(&fx.store.read_blob(&manifest.config.digest).unwrap()).unwrap();
        let want: Vec<_> = image.layers.iter().map(|l| l.diff_id.clone()).collect();
        assert_eq!(config.rootfs.diff_ids, want, "{spec}");
        for (layer, diff_id) in manifest.layers.iter().zip(&want) {
            let blob = fx.store.read_blob(&layer.digest).unwrap();
            assert_eq!(hoist_oci::Digest::sha256_of(&blob), layer.digest, "{spec}");
            assert_eq!(blob.len() as u64, layer.size, "{spec}");
            let mut tar = Vec::new();
            std::io::Read::read_to_end(
                &mut hoist_snapshot::decompress(blob.as_slice()).unwrap(),
                &mut tar,
            )
            .unwrap();
            assert_eq!(&hoist_oci::Digest::sha256_of(&tar), diff_id, "{spec}");
        }
    }
}
