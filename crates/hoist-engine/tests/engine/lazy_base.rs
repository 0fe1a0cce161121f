//! Lazy base layers: `FROM` an image + `COPY --link` + push to the base's registry reads no
//! byte of the base's layers (the push mounts them from the base's repository), and gives
//! the manifest an eager build (one that fetched every layer) gives. A later step that
//! needs the filesystem, on the cached lazy records, fetches the layers then; a push to
//! another registry fetches them to upload them there.
//!
//! The base is a three-layer image built by the engine itself `FROM scratch` and pushed to
//! a `TestRegistry`; later builds reach that registry through the logging proxy of
//! `resolve_bases`, which counts the blob requests.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hoist_content::ContentStore;
use hoist_engine::{build, BuildRequest, BuildResult, ContextSource, StateDir, Worker};
use hoist_export::Output;
use hoist_frontend::BuildOptions;
use hoist_oci::{Digest, Manifest, Platform, Reference};
use hoist_registry::{Credentials, RegistryClient, RegistryConfig};
use hoist_sandbox::{AnyExecutor, ExitStatus, ScriptedExecutor};
use hoist_testkit::registry::TestRegistry;

use crate::resolve_bases::{start_proxy, Logged};

/// A temp dir with a context `ctx/` and any number of state dirs.
struct Dir {
    dir: tempfile::TempDir,
    runs: Arc<AtomicUsize>,
}

impl Dir {
    fn new(files: &[(&str, Vec<u8>)]) -> Dir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("ctx")).unwrap();
        for (name, bytes) in files {
            std::fs::write(dir.path().join("ctx").join(name), bytes).unwrap();
        }
        Dir {
            dir,
            runs: Arc::default(),
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// A worker on the state dir `state`, whose RUN `check` concatenates `/one`, `/two`,
    /// `/three` and `/small` of its rootfs into `/ok`.
    fn worker(&self, state: &str) -> Arc<Worker> {
        let runs = Arc::clone(&self.runs);
        let executor = ScriptedExecutor::new(move |spec, _sink| {
            runs.fetch_add(1, Ordering::SeqCst);
            let mut all = Vec::new();
            for name in ["one", "two", "three", "small"] {
                all.extend(std::fs::read(spec.rootfs.join(name))?);
            }
            std::fs::write(spec.rootfs.join("ok"), all)?;
            Ok(ExitStatus::Code(0))
        });
        let client = RegistryClient::new(RegistryConfig::default(), Credentials::anonymous());
        let worker = Worker::with_executor(
            StateDir::new(self.path(state)),
            client,
            AnyExecutor::Scripted(executor),
        )
        .unwrap();
        Arc::new(worker)
    }

    fn build(&self, state: &str, dockerfile: &str, outputs: &[String]) -> BuildResult {
        let mut options = BuildOptions::new(Platform::host());
        options
            .build_args
            .insert("SOURCE_DATE_EPOCH".into(), "1700000000".into());
        let request = BuildRequest {
            platforms: vec![Platform::parse("linux/amd64").unwrap()],
            outputs: Output::parse_all(outputs).unwrap(),
            ..BuildRequest::new(
                Some(dockerfile.as_bytes().to_vec()),
                "Dockerfile",
                ContextSource::Local(self.path("ctx")),
                options,
            )
        };
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime
            .block_on(build(self.worker(state), request, None))
            .unwrap_or_else(|e| panic!("build in {state} failed: {e}"))
    }

    fn store(&self, state: &str) -> ContentStore {
        StateDir::new(self.path(state))
            .open_content_store()
            .unwrap()
    }
}

/// Bytes that differ per seed (so each layer is its own blob).
fn data(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// The digest of the root document the first output pushed or stored.
fn root_digest(result: &BuildResult) -> Digest {
    result.export.outputs[0]
        .image
        .as_ref()
        .unwrap()
        .descriptor
        .digest
        .clone()
}

/// The layers of the manifest `digest` in `store`.
fn manifest_layers(store: &ContentStore, digest: &Digest) -> Vec<Digest> {
    let manifest: Manifest = serde_json::from_slice(&store.read_blob(digest).unwrap()).unwrap();
    manifest.layers.into_iter().map(|l| l.digest).collect()
}

/// The requests of `log` from `from` on whose line `what` appears.
fn requests(log: &Mutex<Vec<Logged>>, from: usize, what: impl Fn(&str) -> bool) -> Vec<String> {
    log.lock().unwrap()[from..]
        .iter()
        .map(|l| l.line.clone())
        .filter(|l| what(l))
        .collect()
}

/// Blob GETs of any of `layers`.
fn layer_gets(log: &Mutex<Vec<Logged>>, from: usize, layers: &[Digest]) -> Vec<String> {
    requests(log, from, |l| {
        l.starts_with("GET ") && layers.iter().any(|d| l.contains(&d.to_string()))
    })
}

/// Pulls `reference` into a fresh store (every blob verified) and returns its layers.
fn pull(reference: &str) -> Vec<Digest> {
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::open(dir.path()).unwrap();
    let client = RegistryClient::new(RegistryConfig::default(), Credentials::anonymous());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let pulled = runtime
        .block_on(client.pull_image(
            &Reference::parse_normalized(reference).unwrap(),
            &Platform::parse("linux/amd64").unwrap(),
            &store,
        ))
        .unwrap_or_else(|e| panic!("pull {reference}: {e}"));
    pulled.layers.into_iter().map(|l| l.digest).collect()
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

const LINKED: &str = "COPY --link small /small\n";

/// The base `{registry}/base:1` (three layers) pushed from the state dir `base`; its
/// layer digests.
fn push_base(dir: &Dir, registry: &TestRegistry) -> Vec<Digest> {
    let base = dir.build(
        "base",
        "FROM scratch\nCOPY one /one\nCOPY two /two\nCOPY three /three\n",
        &[format!(
            "type=image,name={}/base:1,push=true",
            registry.host()
        )],
    );
    let layers = manifest_layers(&dir.store("base"), &root_digest(&base));
    assert_eq!(layers.len(), 3);
    layers
}

fn context() -> Dir {
    Dir::new(&[
        ("one", data(1, 300_000)),
        ("two", data(2, 200_000)),
        ("three", data(3, 100_000)),
        ("small", b"small\n".to_vec()),
    ])
}

#[test]
fn copy_link_and_push_to_the_base_registry_read_no_base_layer() {
    let Some(registry) = TestRegistry::start() else {
        return;
    };
    let dir = context();
    let base_layers = push_base(&dir, &registry);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (proxy, log) = runtime.block_on(start_proxy(registry.host(), Duration::ZERO));
    let dockerfile = format!("FROM {proxy}/base:1\n{LINKED}");

    let lazy = dir.build(
        "lazy",
        &dockerfile,
        &[format!("type=image,name={proxy}/app:lazy,push=true")],
    );
    assert_eq!(
        layer_gets(&log, 0, &base_layers),
        Vec::<String>::new(),
        "the lazy build downloaded base layers"
    );
    let store = dir.store("lazy");
    for layer in &base_layers {
        assert!(!store.has(layer), "base layer {layer} was fetched");
        let mounts = requests(&log, 0, |l| {
            l.starts_with("POST /v2/app/blobs/uploads/")
                && l.contains(layer.encoded())
                && l.contains("from=base")
        });
        assert_eq!(mounts.len(), 1, "base layer {layer} was not mounted once");
    }
    let pushed = manifest_layers(&store, &root_digest(&lazy));
    assert_eq!(&pushed[..3], &base_layers[..]);
    assert_eq!(pushed.len(), 4);
    // What the registry holds is a whole image.
    assert_eq!(pull(&format!("{}/app:lazy", registry.host())), pushed);

    // The same build where every base layer is fetched (a local output needs the final
    // filesystem) pushes the same manifest.
    let out = dir.path("out");
    let eager = dir.build(
        "eager",
        &dockerfile,
        &[
            format!("type=image,name={proxy}/app:eager,push=true"),
            format!("type=local,dest={}", out.display()),
        ],
    );
    assert_eq!(root_digest(&eager), root_digest(&lazy));
    assert_eq!(read(&out.join("one")), data(1, 300_000));
    assert_eq!(read(&out.join("small")), b"small\n");

    // A RUN on the lazy build's cached steps needs their filesystem: the base layers
    // are fetched now, and the RUN sees every layer's files.
    let before = log.lock().unwrap().len();
    let ran = dir.path("ran");
    dir.build(
        "lazy",
        &format!("{dockerfile}RUN check\n"),
        &[format!("type=local,dest={}", ran.display())],
    );
    assert_eq!(dir.runs.load(Ordering::SeqCst), 1);
    let mut expected = data(1, 300_000);
    expected.extend(data(2, 200_000));
    expected.extend(data(3, 100_000));
    expected.extend(b"small\n");
    assert!(read(&ran.join("ok")) == expected, "the RUN saw other files");
    assert_eq!(
        layer_gets(&log, before, &base_layers).len(),
        3,
        "each base layer is fetched once when the RUN needs it"
    );
    for layer in &base_layers {
        assert!(dir.store("lazy").has(layer));
    }
}

#[test]
fn a_push_to_another_registry_fetches_the_base_layers() {
    let Some(registry) = TestRegistry::start() else {
        return;
    };
    let Some(other) = TestRegistry::start() else {
        return;
    };
    let dir = context();
    let base_layers = push_base(&dir, &registry);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (proxy, log) = runtime.block_on(start_proxy(registry.host(), Duration::ZERO));
    let dockerfile = format!("FROM {proxy}/base:1\n{LINKED}");

    let same = dir.build(
        "state",
        &dockerfile,
        &[format!("type=image,name={proxy}/app:1,push=true")],
    );
    assert!(layer_gets(&log, 0, &base_layers).is_empty());
    // The cached lazy steps, pushed elsewhere: the layers come from the base's registry
    // (each once) and go up to the other one.
    let before = log.lock().unwrap().len();
    let elsewhere = dir.build(
        "state",
        &dockerfile,
        &[format!("type=image,name={}/app:1,push=true", other.host())],
    );
    assert_eq!(layer_gets(&log, before, &base_layers).len(), 3);
    assert_eq!(root_digest(&elsewhere), root_digest(&same));
    let pulled = pull(&format!("{}/app:1", other.host()));
    assert_eq!(&pulled[..3], &base_layers[..]);
}
