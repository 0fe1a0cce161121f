//! Pushes whose layers are converted on the way (uncompressed build layers gzipped): each
//! converted layer is uploaded while it is compressed, and the pushed blobs are the stored
//! ones, byte for byte. A registry failing mid-upload makes the push upload from the store
//! (it gets through) or fail with the reference named, never with a manifest pushed over
//! missing blobs, and nothing corrupt in the store.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use hoist_content::ContentStore;
use hoist_export::{ExportLayer, ExportRequest, Exporter, Output, PlatformImage};
use hoist_oci::{Compression, Digest, History, ImageConfig, Manifest, Platform};
use hoist_registry::{Credentials, RegistryClient, RegistryConfig};
use hoist_snapshot::{DiffSource, LayerOptions};
use hoist_testkit::registry::TestRegistry;
use http_body_util::{BodyExt as _, Full};

/// Which requests a [`Proxy`] fails (answered 503, not passed on): given the request line
/// and how many `PATCH`es came before it.
type Fail = dyn Fn(&str, usize) -> bool + Send + Sync;

/// A proxy in front of a registry that logs `METHOD /path -> status` and fails what `fail`
/// says; `Location`s are rewritten to point at it.
struct Proxy {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

impl Proxy {
    async fn start(upstream: String, fail: Box<Fail>) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let patches = Arc::new(AtomicUsize::new(0));
        let fail: Arc<Fail> = Arc::from(fail);
        let http = reqwest::Client::new();
        let shared_log = log.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (log, patches, fail, http, upstream) = (
                    shared_log.clone(),
                    patches.clone(),
                    fail.clone(),
                    http.clone(),
                    upstream.clone(),
                );
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let (log, patches, fail, http, upstream) = (
                            log.clone(),
                            patches.clone(),
                            fail.clone(),
                            http.clone(),
                            upstream.clone(),
                        );
                        async move {
                            Ok::<_, Infallible>(
                                forward(req, &upstream, addr, &http, &log, &patches, &*fail).await,
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Proxy { addr, log }
    }

    fn host(&self) -> String {
        self.addr.to_string()
    }

    fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

async fn forward(
    req: hyper::Request<hyper::body::Incoming>,
    upstream: &str,
    own: SocketAddr,
    http: &reqwest::Client,
    log: &Mutex<Vec<String>>,
    patches: &AtomicUsize,
    fail: &Fail,
) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let line = format!("{} {}", parts.method, parts.uri.path());
    let before = if parts.method == hyper::Method::PATCH {
        patches.fetch_add(1, Ordering::SeqCst)
    } else {
        patches.load(Ordering::SeqCst)
    };
    if fail(&line, before) {
        log.lock().unwrap().push(format!("{line} -> 503 (proxy)"));
        return hyper::Response::builder()
            .status(503)
            .body(Full::new(Bytes::new()))
            .unwrap();
    }
    let url = format!(
        "http://{upstream}{}",
        parts.uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let method = reqwest::Method::from_bytes(parts.method.as_str().as_bytes()).unwrap();
    let mut request = http.request(method, url).body(body);
    for (name, value) in &parts.headers {
        if name != "host" && name != "content-length" {
            request = request.header(name.as_str(), value.as_bytes());
        }
    }
    let answer = request.send().await.unwrap();
    let status = answer.status().as_u16();
    log.lock().unwrap().push(format!("{line} -> {status}"));
    let mut builder = hyper::Response::builder().status(status);
    for (name, value) in answer.headers() {
        if name == "transfer-encoding" || name == "connection" {
            continue;
        }
        let value = value.to_str().unwrap_or_default();
        builder = builder.header(name.as_str(), value.replace(upstream, &own.to_string()));
    }
    builder
        .body(Full::new(answer.bytes().await.unwrap_or_default()))
        .unwrap()
}

/// Bytes that do not compress (xorshift).
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect()
}

/// An image of three uncompressed layers (as a build stores them), each a few MiB of text
/// and noise, in a fresh store.
fn image_in(store: &ContentStore, dir: &Path) -> PlatformImage {
    let platform = Platform::parse("linux/amd64").unwrap();
    let mut layers = Vec::new();
    for i in 0..3u64 {
        let tree = dir.join(format!("tree{i}"));
        std::fs::create_dir_all(&tree).unwrap();
        let text: String = (0..200_000).map(|n| format!("{i} line {n}\n")).collect();
        std::fs::write(tree.join("text"), text).unwrap();
        std::fs::write(tree.join("noise"), noise(2 << 20, i + 1)).unwrap();
        let when = filetime::FileTime::from_unix_time(1_700_000_000, 0);
        for entry in walkdir::WalkDir::new(&tree).contents_first(true) {
            filetime::set_file_mtime(entry.unwrap().path(), when).unwrap();
        }
        let options = LayerOptions {
            compression: Compression::None,
            ..LayerOptions::default()
        };
        let source = DiffSource::Trees {
            lower: None,
            upper: &tree,
        };
        let (bytes, layer, _) = hoist_snapshot::write_layer(source, Vec::new(), options).unwrap();
        store
            .write_blob(&layer.descriptor, bytes.as_slice())
            .unwrap();
        layers.push(ExportLayer::from(layer));
    }
    let mut config = ImageConfig::new(&platform);
    config.created = Some("2024-01-02T03:04:05Z".into());
    config.history = (0..layers.len())
        .map(|i| History {
            created: Some("2024-01-02T03:04:05Z".into()),
            created_by: Some(format!("RUN layer {i}")),
            ..History::default()
        })
        .collect();
    PlatformImage::new(platform, config, layers, None)
}

/// A client sending 1 MiB chunks, retrying quickly.
fn client() -> RegistryClient {
    let config = RegistryConfig {
        chunk_size: 1 << 20,
        retry: hoist_registry::RetryPolicy {
            attempts: 3,
            initial_delay: std::time::Duration::from_millis(10),
            max_delay: std::time::Duration::from_millis(50),
        },
        ..RegistryConfig::default()
    };
    RegistryClient::new(config, Credentials::anonymous())
}

async fn push(
    store: &ContentStore,
    image: &PlatformImage,
    name: &str,
) -> hoist_export::Result<Digest> {
    let request = ExportRequest {
        images: vec![image.clone()],
        outputs: vec![Output::parse(&format!("type=image,push=true,name={name}")).unwrap()],
    };
    let result = Exporter::new(store.clone())
        .with_registry(client())
        .export(&request)
        .await?;
    Ok(result.image().unwrap().descriptor.digest.clone())
}

fn read_store(store: &ContentStore, digest: &Digest) -> Vec<u8> {
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut store.open_blob(digest).unwrap(), &mut bytes).unwrap();
    bytes
}

/// The pushed manifest's layers, each checked byte for byte against the store's blob.
async fn check_pushed(registry: &str, repo: &str, store: &ContentStore, root: &Digest) -> Manifest {
    let url = format!("http://{registry}/v2/{repo}/manifests/{root}");
    let answer = reqwest::Client::new()
        .get(&url)
        .header(
            "accept",
            "application/vnd.oci.image.manifest.v1+json, \
             application/vnd.docker.distribution.manifest.v2+json",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200, "{url}");
    let manifest: Manifest = serde_json::from_slice(&answer.bytes().await.unwrap()).unwrap();
    for layer in &manifest.layers {
        let url = format!("http://{registry}/v2/{repo}/blobs/{}", layer.digest);
        let pushed = reqwest::get(&url).await.unwrap().bytes().await.unwrap();
        assert_eq!(Digest::sha256_of(&pushed), layer.digest, "{url}");
        assert_eq!(pushed.as_ref(), read_store(store, &layer.digest), "{url}");
    }
    manifest
}

/// Every blob the store holds hashes to its name.
fn store_is_sound(store: &ContentStore, digests: &[Digest]) {
    for digest in digests {
        if store.has(digest) {
            assert_eq!(&Digest::sha256_of(&read_store(store, digest)), digest);
        }
    }
}

#[tokio::test]
async fn converted_layers_are_uploaded_as_they_are_compressed_and_byte_identical() {
    let Some(registry) = TestRegistry::start() else {
        return;
    };
    let proxy = Proxy::start(registry.host(), Box::new(|_, _| false)).await;
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::open(dir.path().join("a")).unwrap();
    let image = image_in(&store, &dir.path().join("trees-a"));
    let root = push(&store, &image, &format!("{}/stream/app:1", proxy.host()))
        .await
        .unwrap();
    let manifest = check_pushed(&registry.host(), "stream/app", &store, &root).await;
    assert_eq!(manifest.layers.len(), 3);
    let log = proxy.log();
    for layer in &manifest.layers {
        // Uploaded while converted: the push then finds each layer there.
        let head = format!("HEAD /v2/stream/app/blobs/{} -> 200", layer.digest);
        assert!(log.contains(&head), "{head} in {log:#?}");
        assert!(layer.size > 2 << 20, "several 1 MiB PATCHes per layer");
    }
    let put_with_digest = log
        .iter()
        .filter(|l| l.starts_with("PUT /v2/stream/app/blobs/uploads/"))
        .count();
    assert!(put_with_digest >= 3, "{log:#?}");

    // The same image from a fresh store: the same blobs and manifest, byte for byte.
    let other = ContentStore::open(dir.path().join("b")).unwrap();
    let again = image_in(&other, &dir.path().join("trees-b"));
    let root_again = push(
        &other,
        &again,
        &format!("{}/stream/again:1", registry.host()),
    )
    .await
    .unwrap();
    assert_eq!(root_again, root);
    let manifest_again = check_pushed(&registry.host(), "stream/again", &other, &root_again).await;
    assert_eq!(manifest_again, manifest);
}

#[tokio::test]
async fn upload_failing_mid_stream_is_pushed_again_from_the_store() {
    let Some(registry) = TestRegistry::start() else {
        return;
    };
    // The fifth PATCH (the second layer, or the first's second chunk) fails, and the next.
    let proxy = Proxy::start(
        registry.host(),
        Box::new(|line, before| line.starts_with("PATCH") && (4..6).contains(&before)),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::open(dir.path().join("a")).unwrap();
    let image = image_in(&store, &dir.path().join("trees"));
    let root = push(&store, &image, &format!("{}/flaky/app:1", proxy.host()))
        .await
        .unwrap_or_else(|err| panic!("{err}: {:#?}", proxy.log()));
    let manifest = check_pushed(&registry.host(), "flaky/app", &store, &root).await;
    let log = proxy.log();
    assert!(log.iter().any(|l| l.ends_with("503 (proxy)")), "{log:#?}");
    assert!(
        log.iter()
            .any(|l| l.starts_with("DELETE /v2/flaky/app/blobs/uploads/")),
        "the failed streamed upload is cancelled: {log:#?}"
    );
    // At least one layer was missing when the push looked, and was uploaded then.
    assert!(
        manifest
            .layers
            .iter()
            .any(|l| log.contains(&format!("HEAD /v2/flaky/app/blobs/{} -> 404", l.digest))),
        "{log:#?}"
    );
    let digests: Vec<Digest> = manifest.layers.iter().map(|l| l.digest.clone()).collect();
    store_is_sound(&store, &digests);
}

#[tokio::test]
async fn registry_gone_mid_upload_fails_the_push_and_pushes_no_manifest() {
    let Some(registry) = TestRegistry::start() else {
        return;
    };
    // From the third PATCH on, every request fails.
    let proxy = Proxy::start(registry.host(), Box::new(|_, before| before >= 2)).await;
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::open(dir.path().join("a")).unwrap();
    let image = image_in(&store, &dir.path().join("trees"));
    let name = format!("{}/gone/app:1", proxy.host());
    let err = push(&store, &image, &name).await.unwrap_err().to_string();
    assert!(err.contains("gone/app"), "names the reference: {err}");
    // No manifest went up.
    let url = format!("http://{}/v2/gone/app/manifests/1", registry.host());
    assert_eq!(reqwest::get(&url).await.unwrap().status(), 404);
    let log = proxy.log();
    assert!(
        !log.iter()
            .any(|l| l.starts_with("PUT /v2/gone/app/manifests/") && l.ends_with("201")),
        "{log:#?}"
    );
    // The layers were converted and stored whole all the same.
    let stored: Vec<Digest> = image
        .layers
        .iter()
        .map(|l| l.descriptor.digest.clone())
        .collect();
    store_is_sound(&store, &stored);
}
