//! Images in hoist's own store are bases: an image exported with `-o type=image,name=…`
//! (no push) is found by `FROM` and `COPY --from` under its normalised name before any
//! registry is asked, so a chain of builds works with the registry gone; `--pull` still
//! asks the registry, and fails naming the image. A local index gives each platform its
//! manifest, as a registry's does. An `oci-layout://` named context is imported into the
//! store and used the same way.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use hoist_engine::{
    build, load_definition, prepare_contexts, resolve, BuildRequest, BuildResult, ContextSource,
    Progress, StateDir, Worker,
};
use hoist_export::Output;
use hoist_frontend::{BuildOptions, NamedContext, OciLayoutRef};
use hoist_oci::Platform;
use hoist_registry::{Credentials, RegistryClient, RegistryConfig};
use hoist_testkit::images::BaseImages;
use hoist_testkit::registry::TestRegistry;

/// A build directory: `ctx/` (the context) and `state/` (the engine's state dir).
struct Dir {
    dir: tempfile::TempDir,
}

impl Dir {
    fn new() -> Dir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("ctx")).unwrap();
        Dir { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn worker(&self) -> Arc<Worker> {
        let client = RegistryClient::new(RegistryConfig::default(), Credentials::anonymous());
        Arc::new(Worker::open(StateDir::new(self.path("state")), client).unwrap())
    }

    fn request(&self, dockerfile: &str, platforms: &[&str], outputs: &[String]) -> BuildRequest {
        BuildRequest {
            platforms: platforms
                .iter()
                .map(|p| Platform::parse(p).unwrap())
                .collect(),
            outputs: Output::parse_all(outputs).unwrap(),
            ..BuildRequest::new(
                Some(dockerfile.as_bytes().to_vec()),
                "Dockerfile",
                ContextSource::Local(self.path("ctx")),
                BuildOptions::new(Platform::host()),
            )
        }
    }

    fn build(&self, request: BuildRequest) -> hoist_engine::Result<BuildResult> {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(build(self.worker(), request, None))
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn a_chain_of_builds_uses_the_local_image_with_the_registry_gone() {
    let Some(registry) = TestRegistry::start() else {
        return;
    };
    let Some(images) = BaseImages::get() else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let pushed = runtime.block_on(images.push(&registry)).unwrap();
    let host = registry.host();
    let dir = Dir::new();
    std::fs::write(dir.path("ctx/a.txt"), "made by A\n").unwrap();

    // A: on the registry's busybox, named twice in hoist's store and pushed nowhere.
    let a = dir.request(
        &format!("FROM {}\nCOPY a.txt /a.txt\n", pushed.reference("amd64")),
        &["linux/amd64"],
        &[format!("type=image,name={host}/a,plain-a")],
    );
    let built = dir.build(a).unwrap();
    let root = built.export.metadata().digest.clone().unwrap();
    let names = dir.worker().store().names().unwrap();
    // The normalised names, as `FROM` normalises what it reads.
    assert_eq!(names[&format!("{host}/a:latest")].digest, root);
    assert_eq!(names["docker.io/library/plain-a:latest"].digest, root);

    drop(registry);

    // B: `FROM` one name and `COPY --from` the other, with nothing to ask.
    let b = dir.request(
        &format!("FROM {host}/a\nCOPY --from=plain-a /a.txt /b.txt\n"),
        &["linux/amd64"],
        &[format!("type=local,dest={}", dir.path("out").display())],
    );
    dir.build(b).unwrap();
    assert_eq!(read(&dir.path("out/a.txt")), "made by A\n");
    assert_eq!(read(&dir.path("out/b.txt")), "made by A\n");
    assert!(dir.path("out/bin/busybox").exists());

    // `--pull` goes to the registry, which is gone: the error names the image.
    let mut pull = dir.request(&format!("FROM {host}/a\n"), &["linux/amd64"], &[]);
    pull.pull = true;
    let err = dir.build(pull).unwrap_err().to_string();
    assert!(
        err.contains(&format!(
            "failed to resolve source metadata for {host}/a:latest"
        )),
        "{err}"
    );
}

#[test]
fn a_local_index_gives_each_platform_its_manifest() {
    let Some(registry) = TestRegistry::start() else {
        return;
    };
    let Some(images) = BaseImages::get() else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let pushed = runtime.block_on(images.push(&registry)).unwrap();
    let dir = Dir::new();
    let a = dir.request(
        &format!("FROM {}\nENV MADE=a\n", pushed.reference("latest")),
        &["linux/amd64", "linux/arm64"],
        &["type=image,name=multi".to_owned()],
    );
    dir.build(a).unwrap();
    drop(registry);

    let worker = dir.worker();
    let progress = Progress::default();
    let b = dir.request("FROM multi\n", &["linux/amd64", "linux/arm64"], &[]);
    let prepared = runtime
        .block_on(prepare_contexts(&worker, b, &progress))
        .unwrap();
    let loaded = load_definition(&prepared, &progress).unwrap();
    let definition = runtime
        .block_on(resolve(&worker, &loaded, &progress))
        .unwrap();
    let mut seen: Vec<(String, String)> = definition
        .images
        .iter()
        .map(|(request, resolved)| {
            let env = &resolved.config.config.env;
            assert!(env.contains(&"MADE=a".to_owned()), "{env:?}");
            (
                request.platform.format(),
                resolved.config.architecture.clone(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("linux/amd64".to_owned(), "amd64".to_owned()),
            ("linux/arm64".to_owned(), "arm64".to_owned())
        ]
    );

    // A platform the local index does not have is an error naming the image and what it has.
    let arm = dir.request("FROM multi\n", &["linux/arm/v7"], &[]);
    let prepared = runtime
        .block_on(prepare_contexts(&worker, arm, &progress))
        .unwrap();
    let loaded = load_definition(&prepared, &progress).unwrap();
    let err = runtime
        .block_on(resolve(&worker, &loaded, &progress))
        .unwrap_err()
        .to_string();
    assert!(err.contains("docker.io/library/multi:latest"), "{err}");
    assert!(err.contains("linux/arm/v7"), "{err}");
    assert!(err.contains("linux/amd64, linux/arm64"), "{err}");
}

/// A request whose named context `base` is the layout `value` (what follows
/// `oci-layout://`).
fn with_layout(dir: &Dir, dockerfile: &str, platform: &str, value: &str) -> BuildRequest {
    let mut request = dir.request(dockerfile, &[platform], &[]);
    request.options.named_contexts.insert(
        "base".into(),
        NamedContext::OciLayout(OciLayoutRef::parse(value).unwrap()),
    );
    request
}

#[test]
fn an_oci_layout_named_context_is_imported_and_used_without_a_registry() {
    let Some(images) = BaseImages::get() else {
        return;
    };
    let dir = Dir::new();
    let layout = dir.path("busybox-layout");
    images.write_oci_layout(&layout).unwrap();
    let value = layout.display().to_string();

    // FROM and COPY --from both name the context; no registry runs anywhere.
    let mut request = with_layout(
        &dir,
        "FROM base\nCOPY --from=base /bin/busybox /copied\n",
        "linux/amd64",
        &value,
    );
    request.outputs =
        Output::parse_all(&[format!("type=local,dest={}", dir.path("out").display())]).unwrap();
    dir.build(request).unwrap();
    assert!(dir.path("out/bin/busybox").exists());
    assert!(dir.path("out/copied").exists());

    // The layout's index gives each platform its manifest; by tag or by digest.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let worker = dir.worker();
    let progress = Progress::default();
    let index_digest = images.index.descriptor.digest.to_string();
    for value in [format!("{value}:latest"), format!("{value}@{index_digest}")] {
        let request = with_layout(&dir, "FROM base\n", "linux/arm64", &value);
        let prepared = runtime
            .block_on(prepare_contexts(&worker, request, &progress))
            .unwrap();
        let loaded = load_definition(&prepared, &progress).unwrap();
        let definition = runtime
            .block_on(resolve(&worker, &loaded, &progress))
            .unwrap();
        let (request, resolved) = definition.images.iter().next().unwrap();
        assert_eq!(resolved.config.architecture, "arm64", "{value}");
        assert_eq!(resolved.digest, images.index.descriptor.digest, "{value}");
        assert_eq!(
            request.reference.to_string(),
            format!("oci-layout.invalid/busybox-layout@{index_digest}")
        );
    }

    // Bad inputs are errors naming the layout.
    let missing_manifest = "sha256:".to_owned() + &"0".repeat(64);
    let cases = [
        (
            dir.path("nowhere").display().to_string(),
            "is not a directory".to_owned(),
        ),
        (
            format!("{value}:v9"),
            "no image tagged \"v9\" in its index.json (tags: latest)".to_owned(),
        ),
        (
            format!("{value}@{missing_manifest}"),
            format!("{missing_manifest} is not in the layout"),
        ),
    ];
    for (value, reason) in cases {
        let request = with_layout(&dir, "FROM base\n", "linux/amd64", &value);
        let prepared = runtime
            .block_on(prepare_contexts(&worker, request, &progress))
            .unwrap();
        let loaded = load_definition(&prepared, &progress).unwrap();
        let err = runtime
            .block_on(resolve(&worker, &loaded, &progress))
            .unwrap_err()
            .to_string();
        let shown = OciLayoutRef::parse(&value).unwrap().to_string();
        assert!(err.starts_with(&format!("{shown}: ")), "{err}");
        assert!(err.contains(&reason), "{err}");
    }
}
