//! The `imagetools`, `manifest`, `login` and `logout` commands of the built `hoist` binary
//! against real `docker-registry` servers on loopback, read back with `skopeo`. Images are
//! made in the test (small gzip layer tars) and pushed with hoist-registry.
//!
//! Skipped (with the reason printed) when `docker-registry`, `htpasswd` or `skopeo` is absent.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use hoist_engine::ContentStore;
use hoist_oci::{Descriptor, MediaType, Platform, Reference};
use hoist_registry::{Credentials, RegistryClient, RegistryConfig};
use hoist_testkit::registry::TestRegistry;
use serde_json::Value;

/// A sandbox for one test: its own state dir, docker config dir and home.
struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Self {
        Sandbox {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn docker_config_dir(&self) -> PathBuf {
        self.dir.path().join("docker")
    }

    fn hoist_with_stdin(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = Command::new(env!("CARGO_BIN_EXE_hoist"))
            .arg("--root")
            .arg(self.dir.path().join("state"))
            .args(args)
            .env("DOCKER_CONFIG", self.docker_config_dir())
            .env("HOME", self.dir.path())
            .env_remove("HOIST_ROOT")
            .env_remove("HOIST_CONFIG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    fn hoist(&self, args: &[&str]) -> Output {
        self.hoist_with_stdin(args, "")
    }

    /// Runs hoist and returns stdout, failing the test with stderr when it fails.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.hoist(args);
        assert!(
            out.status.success(),
            "hoist {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs hoist expecting failure; its stderr.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.hoist(args);
        assert!(!out.status.success(), "hoist {args:?} should have failed");
        String::from_utf8(out.stderr).unwrap()
    }
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

fn have_skopeo() -> bool {
    if find_in_path("skopeo").is_some() {
        return true;
    }
    hoist_testkit::skip("skopeo is not installed (apt-get install -y skopeo)");
    false
}

/// `skopeo inspect --raw` of `reference`: the exact manifest bytes.
fn skopeo_raw(reference: &str, creds: Option<(&str, &str)>) -> Vec<u8> {
    let mut cmd = Command::new("skopeo");
    cmd.args(["inspect", "--raw", "--tls-verify=false"]);
    if let Some((user, pass)) = creds {
        cmd.arg(format!("--creds={user}:{pass}"));
    }
    let out = cmd.arg(format!("docker://{reference}")).output().unwrap();
    assert!(
        out.status.success(),
        "skopeo inspect {reference}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A gzip layer tar holding one file.
fn layer(name: &str, content: &[u8]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(content.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_cksum();
    builder.append_data(&mut header, name, content).unwrap();
    let tar = builder.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    gz.finish().unwrap()
}

/// Builds a two-layer image for `platform` in a temp store and pushes it to `target`.
fn push_image(target: &str, platform: &Platform, credentials: Credentials) -> Descriptor {
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::open(dir.path()).unwrap();
    let layers: Vec<Descriptor> = [
        layer(
            "etc/os-release",
            format!("ID={}\n", platform.format()).as_bytes(),
        ),
        layer("bin/tool", &vec![platform.architecture.len() as u8; 4096]),
    ]
    .iter()
    .map(|gz| store.put_bytes(MediaType::OciLayerGzip, gz).unwrap())
    .collect();
    let config = serde_json::json!({
        "architecture": platform.architecture,
        "os": platform.os,
        "variant": platform.variant,
        "rootfs": {"type": "layers", "diff_ids": []},
    });
    let config = store
        .put_bytes(MediaType::OciConfig, &serde_json::to_vec(&config).unwrap())
        .unwrap();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MediaType::OciManifest.as_str(),
        "config": config,
        "layers": layers,
    });
    let manifest = store
        .put_bytes(
            MediaType::OciManifest,
            &serde_json::to_vec(&manifest).unwrap(),
        )
        .unwrap();
    let client = RegistryClient::new(RegistryConfig::default(), credentials);
    let target = Reference::parse_docker(target).unwrap();
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(client.push_image(&store, &manifest, &target))
        .unwrap()
}

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

fn platforms(index: &Value) -> Vec<String> {
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let p = &m["platform"];
            let mut s = format!(
                "{}/{}",
                p["os"].as_str().unwrap(),
                p["architecture"].as_str().unwrap()
            );
            if let Some(v) = p["variant"].as_str().filter(|v| !v.is_empty()) {
                s.push('/');
                s.push_str(v);
            }
            s
        })
        .collect()
}

#[test]
fn imagetools_create_index_of_two_images_read_back_by_skopeo() {
    let Some(reg) = TestRegistry::start() else {
        return;
    };
    if !have_skopeo() {
        return;
    }
    let host = reg.host();
    let sb = Sandbox::new();
    let amd = push_image(
        &format!("{host}/src/a:amd64"),
        &Platform::new("linux", "amd64"),
        Credentials::anonymous(),
    );
    let arm = push_image(
        &format!("{host}/src/b:arm64"),
        &Platform::new("linux", "arm64"),
        Credentials::anonymous(),
    );
    let target = format!("{host}/multi/app:v1");

    // A dry run prints the index and pushes nothing.
    let dry = sb.ok(&[
        "imagetools",
        "create",
        "--dry-run",
        &format!("{host}/src/a:amd64"),
        &format!("{host}/src/b:arm64"),
    ]);
    assert_eq!(
        platforms(&json(dry.as_bytes())),
        ["linux/amd64", "linux/arm64"]
    );

    sb.ok(&[
        "imagetools",
        "create",
        "-t",
        &target,
        &format!("{host}/src/a:amd64"),
        &format!("{host}/src/b:arm64"),
    ]);
    let raw = skopeo_raw(&target, None);
    let index = json(&raw);
    assert_eq!(index["mediaType"], MediaType::OciIndex.as_str());
    assert_eq!(platforms(&index), ["linux/amd64", "linux/arm64"]);
    assert_eq!(index["manifests"][0]["digest"], amd.digest.as_str());
    assert_eq!(index["manifests"][1]["digest"], arm.digest.as_str());
    // The per-platform manifests were copied into the target repository.
    let child = skopeo_raw(&format!("{host}/multi/app@{}", arm.digest), None);
    assert_eq!(hoist_oci::Digest::sha256_of(&child), arm.digest);

    // inspect: buildx's text, the raw bytes, and a template.
    let text = sb.ok(&["imagetools", "inspect", &target]);
    let digest = hoist_oci::Digest::sha256_of(&raw);
    assert!(text.starts_with(&format!(
        "Name:      {target}\nMediaType: application/vnd.oci.image.index.v1+json\nDigest:    {digest}\n"
    )), "{text}");
    assert!(text.contains("  Platform:  linux/amd64\n"), "{text}");
    assert!(text.contains("  Platform:  linux/arm64\n"), "{text}");
    assert!(text.contains(&format!("  Name:      {target}@{}\n", arm.digest)));
    let out = sb.hoist(&["imagetools", "inspect", "--raw", &target]);
    assert_eq!(out.stdout, raw);
    let manifest = sb.ok(&[
        "imagetools",
        "inspect",
        "--format",
        "{{json .Manifest}}",
        &target,
    ]);
    assert_eq!(json(manifest.as_bytes())["digest"], digest.as_str());
    let all = json(
        sb.ok(&["imagetools", "inspect", "--format", "json", &target])
            .as_bytes(),
    );
    assert_eq!(all["image"]["linux/arm64"]["architecture"], "arm64");

    // --append adds a third platform to the existing index.
    push_image(
        &format!("{host}/multi/app:s390x"),
        &Platform::new("linux", "s390x"),
        Credentials::anonymous(),
    );
    sb.ok(&[
        "imagetools",
        "create",
        "--append",
        "-t",
        &target,
        &format!("{host}/multi/app:s390x"),
    ]);
    assert_eq!(
        platforms(&json(&skopeo_raw(&target, None))),
        ["linux/amd64", "linux/arm64", "linux/s390x"]
    );

    // Across registries the blobs are copied.
    let Some(other) = TestRegistry::start() else {
        return;
    };
    let copy = format!("{}/copy/app:v1", other.host());
    sb.ok(&["imagetools", "create", "-t", &copy, &target]);
    let copied = skopeo_raw(&copy, None);
    assert_eq!(copied, skopeo_raw(&target, None));
    let out = Command::new("skopeo")
        .args(["copy", "--src-tls-verify=false", "--all"])
        .arg(format!("docker://{copy}"))
        .arg(format!("oci:{}:x", sb.dir.path().join("layout").display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo copy of the copied index: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Errors as buildx words them.
    let err = sb.fails(&["imagetools", "create", &format!("{host}/src/a:amd64")]);
    assert!(
        err.contains("can't push with no tags specified, please set --tag or --dry-run"),
        "{err}"
    );
}

#[test]
fn manifest_create_annotate_push_round_trip() {
    let Some(reg) = TestRegistry::start() else {
        return;
    };
    if !have_skopeo() {
        return;
    }
    let host = reg.host();
    let sb = Sandbox::new();
    let amd = push_image(
        &format!("{host}/app:amd64"),
        &Platform::new("linux", "amd64"),
        Credentials::anonymous(),
    );
    let arm = push_image(
        &format!("{host}/other:arm"),
        &Platform::new("linux", "arm"),
        Credentials::anonymous(),
    );
    let list = format!("{host}/app:multi");
    let out = sb.ok(&[
        "manifest",
        "create",
        "--insecure",
        &list,
        &format!("{host}/app:amd64"),
        &format!("{host}/other:arm"),
    ]);
    assert_eq!(out, format!("Created manifest list {list}\n"));
    // Stored like docker stores it.
    let stored = sb
        .dir
        .path()
        .join("state/manifests")
        .join(list.replace(':', "%").replace('/', "#"));
    assert_eq!(std::fs::read_dir(&stored).unwrap().count(), 2);

    let err = sb.fails(&["manifest", "create", &list, &format!("{host}/app:amd64")]);
    assert!(
        err.contains("refusing to amend an existing manifest list with no --amend flag"),
        "{err}"
    );
    sb.ok(&[
        "manifest",
        "annotate",
        &list,
        &format!("{host}/other:arm"),
        "--variant",
        "v7",
        "--os-features",
        "a,b",
    ]);
    let err = sb.fails(&[
        "manifest",
        "annotate",
        &list,
        &format!("{host}/other:arm"),
        "--arch",
        "sparc",
    ]);
    assert!(
        err.contains("manifest entry for image has unsupported os/arch combination: /sparc"),
        "{err}"
    );
    let local = sb.ok(&["manifest", "inspect", &list]);
    assert_eq!(
        platforms(&json(local.as_bytes())),
        ["linux/amd64", "linux/arm/v7"]
    );

    let out = sb.ok(&["manifest", "push", "--purge", &list]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        format!(
            "Pushed ref {host}/app@{} with digest: {}",
            arm.digest, arm.digest
        )
    );
    let raw = skopeo_raw(&list, None);
    assert_eq!(lines[1], hoist_oci::Digest::sha256_of(&raw).as_str());
    let pushed = json(&raw);
    assert_eq!(pushed["mediaType"], MediaType::DockerManifestList.as_str());
    assert_eq!(platforms(&pushed), ["linux/amd64", "linux/arm/v7"]);
    assert_eq!(pushed["manifests"][0]["digest"], amd.digest.as_str());
    assert_eq!(
        pushed["manifests"][1]["platform"]["os.features"],
        serde_json::json!(["a", "b"])
    );
    // --purge removed the local list; inspect now reads the registry's.
    assert_eq!(
        std::fs::read_dir(sb.dir.path().join("state/manifests"))
            .unwrap()
            .count(),
        0
    );
    let remote = sb.ok(&["manifest", "inspect", &list]);
    assert_eq!(
        platforms(&json(remote.as_bytes())),
        ["linux/amd64", "linux/arm/v7"]
    );

    // A manifest list cannot be a member.
    let err = sb.fails(&["manifest", "create", &format!("{host}/app:nested"), &list]);
    assert!(err.contains(&format!("{list} is a manifest list")), "{err}");
    let err = sb.fails(&["manifest", "rm", &format!("{host}/app:none")]);
    assert!(
        err.contains(&format!("No such manifest: {host}/app:none")),
        "{err}"
    );
}

fn read_config(dir: &Path) -> Value {
    json(&std::fs::read(dir.join("config.json")).unwrap())
}

#[test]
fn login_and_logout_against_an_htpasswd_registry() {
    let Some(reg) = TestRegistry::start_with_basic_auth("hoist", "s3cret") else {
        return;
    };
    let host = reg.host();
    let sb = Sandbox::new();

    let out = sb.hoist_with_stdin(
        &["login", &host, "-u", "hoist", "--password-stdin"],
        "wrong\n",
    );
    assert!(!out.status.success());
    assert!(!sb.docker_config_dir().join("config.json").exists());

    let out = sb.hoist_with_stdin(
        &["login", &host, "-u", "hoist", "--password-stdin"],
        "s3cret\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "Login Succeeded\n");
    let config = read_config(&sb.docker_config_dir());
    assert_eq!(config["auths"][&host]["auth"], "aG9pc3Q6czNjcmV0");

    // The stored credentials are used by the other commands.
    push_image(
        &format!("{host}/private/app:v1"),
        &Platform::new("linux", "amd64"),
        Credentials::anonymous().with_basic(&host, "hoist", "s3cret"),
    );
    let text = sb.ok(&["imagetools", "inspect", &format!("{host}/private/app:v1")]);
    assert!(text.contains("MediaType: application/vnd.oci.image.manifest.v1+json"));

    let err = sb.fails(&["login", &host, "-u", "hoist", "-p", "x", "--password-stdin"]);
    assert!(err.contains("--password and --password-stdin are mutually exclusive"));

    assert_eq!(
        sb.ok(&["logout", &host]),
        format!("Removing login credentials for {host}\n")
    );
    assert!(read_config(&sb.docker_config_dir())["auths"]
        .get(&host)
        .is_none());
    assert_eq!(
        sb.ok(&["logout", &host]),
        format!("Not logged in to {host}\n")
    );
    let err = sb.fails(&["imagetools", "inspect", &format!("{host}/private/app:v1")]);
    assert!(!err.is_empty());
}

#[test]
fn registry_config_file_is_read() {
    let Some(reg) = TestRegistry::start() else {
        return;
    };
    let host = reg.host();
    let sb = Sandbox::new();
    push_image(
        &format!("{host}/cfg/app:v1"),
        &Platform::new("linux", "amd64"),
        Credentials::anonymous(),
    );
    let config = sb.dir.path().join("buildkitd.toml");
    std::fs::write(
        &config,
        format!("debug = true\n[registry.\"{host}\"]\nhttp = true\n"),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let text = sb.ok(&[
        "--config",
        config,
        "imagetools",
        "inspect",
        &format!("{host}/cfg/app:v1"),
    ]);
    assert!(
        text.starts_with(&format!("Name:      {host}/cfg/app:v1\n")),
        "{text}"
    );

    // `http = false` forbids the plain-HTTP fallback, so the registry cannot be reached.
    std::fs::write(config, format!("[registry.\"{host}\"]\nhttp = false\n")).unwrap();
    sb.fails(&[
        "--config",
        config,
        "imagetools",
        "inspect",
        &format!("{host}/cfg/app:v1"),
    ]);

    std::fs::write(config, "[registry.\"x\"]\nhttp = \"yes\"\n").unwrap();
    let err = sb.fails(&["--config", config, "imagetools", "inspect", "x/y:z"]);
    assert!(err.contains(config), "{err}");
}
