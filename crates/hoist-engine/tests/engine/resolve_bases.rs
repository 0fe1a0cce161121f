//! Base images are resolved once, config-only and concurrently: the `resolve` stage of a
//! build with three `FROM` images asks the registry for their manifests and configs, never
//! a layer, and the three resolutions overlap in time; the layers are fetched only when
//! the solve needs the images' filesystems.
//!
//! The registry is Debian's `docker-registry` (hoist-testkit) behind an in-process proxy
//! that logs every request with its start and end and holds each manifest request for
//! 300 ms, so that resolutions done one after another could not overlap.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hoist_engine::{
    load_definition, prepare_contexts, resolve, solve, BuildRequest, Progress, StateDir, Worker,
};
use hoist_frontend::BuildOptions;
use hoist_oci::Platform;
use hoist_registry::{Credentials, RegistryClient, RegistryConfig};
use hoist_testkit::images::{Arch, BaseImages};
use hoist_testkit::registry::TestRegistry;
use http_body_util::{BodyExt as _, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

/// One proxied request: `METHOD /path?query` and when it started and ended.
#[derive(Debug, Clone)]
pub(crate) struct Logged {
    pub line: String,
    start: Instant,
    end: Instant,
}

/// Forwards every request to `upstream`, logging it; manifest requests wait
/// `manifest_delay` first.
pub(crate) async fn start_proxy(
    upstream: String,
    manifest_delay: Duration,
) -> (SocketAddr, Arc<Mutex<Vec<Logged>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let log: Arc<Mutex<Vec<Logged>>> = Arc::default();
    let client = reqwest::Client::new();
    let shared = Arc::clone(&log);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (log, client, upstream) = (Arc::clone(&shared), client.clone(), upstream.clone());
            tokio::spawn(async move {
                let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let (log, client, upstream) =
                        (Arc::clone(&log), client.clone(), upstream.clone());
                    async move {
                        let start = Instant::now();
                        let line = format!(
                            "{} {}",
                            req.method(),
                            req.uri().path_and_query().map_or("/", |p| p.as_str())
                        );
                        if req.uri().path().contains("/manifests/") {
                            tokio::time::sleep(manifest_delay).await;
                        }
                        let url = format!(
                            "http://{upstream}{}",
                            req.uri().path_and_query().map_or("/", |p| p.as_str())
                        );
                        let mut forward = client.request(req.method().clone(), url);
                        for (name, value) in req.headers() {
                            if name != hyper::header::HOST {
                                forward = forward.header(name, value);
                            }
                        }
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let answer = forward.body(body).send().await.unwrap();
                        let mut response = hyper::Response::builder().status(answer.status());
                        for (name, value) in answer.headers() {
                            response = response.header(name, value);
                        }
                        let bytes = answer.bytes().await.unwrap();
                        log.lock().unwrap().push(Logged {
                            line,
                            start,
                            end: Instant::now(),
                        });
                        Ok::<_, Infallible>(response.body(Full::new(bytes)).unwrap())
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, log)
}

#[test]
fn three_bases_resolve_config_only_and_at_once() {
    let Some(registry) = TestRegistry::start() else {
        return;
    };
    let Some(images) = BaseImages::get() else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime
        .block_on(images.push_repositories(&registry, &["one", "two", "three"]))
        .unwrap();
    let (proxy, log) = runtime.block_on(start_proxy(registry.host(), Duration::from_millis(300)));
    let amd64 = images.image(Arch::Amd64).unwrap();
    let layer = amd64.layer.descriptor.digest.to_string();
    let config = amd64.config_blob.descriptor.digest.to_string();

    let dir = tempfile::tempdir().unwrap();
    let context = dir.path().join("ctx");
    std::fs::create_dir_all(&context).unwrap();
    let dockerfile = format!(
        "FROM {proxy}/one:amd64 AS a\nFROM {proxy}/two:amd64 AS b\nFROM {proxy}/three:amd64\n\
         COPY --from=a /bin/busybox /a\nCOPY --from=b /bin/busybox /b\n"
    );
    let request = BuildRequest {
        platforms: vec![Platform::parse("linux/amd64").unwrap()],
        ..BuildRequest::new(
            Some(dockerfile.into_bytes()),
            "Dockerfile",
            context.into(),
            BuildOptions::new(Platform::host()),
        )
    };
    let client = RegistryClient::new(RegistryConfig::default(), Credentials::anonymous());
    let worker = Arc::new(Worker::open(StateDir::new(dir.path().join("state")), client).unwrap());
    let progress = Progress::default();
    let prepared = runtime
        .block_on(prepare_contexts(&worker, request, &progress))
        .unwrap();
    let loaded = load_definition(&prepared, &progress).unwrap();
    let definition = runtime
        .block_on(resolve(&worker, &loaded, &progress))
        .unwrap();
    assert_eq!(definition.images.len(), 3, "{:?}", definition.images.keys());

    let resolving = log.lock().unwrap().clone();
    let lines: Vec<&str> = resolving.iter().map(|l| l.line.as_str()).collect();
    assert!(
        !lines.iter().any(|l| l.contains(&layer)),
        "a layer was fetched while resolving: {lines:#?}"
    );
    for repo in ["one", "two", "three"] {
        assert!(
            lines
                .iter()
                .any(|l| l.contains(&format!("/v2/{repo}/manifests/"))),
            "{repo}'s manifest was not asked for: {lines:#?}"
        );
    }
    let configs = lines.iter().filter(|l| l.contains(&config)).count();
    assert!(configs >= 1, "no config was fetched: {lines:#?}");
    // Every request is for a manifest or the config (the store dedupes the shared config).
    assert!(
        lines
            .iter()
            .all(|l| l.contains("/manifests/") || l.contains(&config) || l.ends_with("/v2/")),
        "{lines:#?}"
    );
    // The three resolutions overlap: each repository's first manifest request started
    // before any other repository's manifest requests were all answered.
    let window = |repo: &str| {
        let own: Vec<&Logged> = resolving
            .iter()
            .filter(|l| l.line.contains(&format!("/v2/{repo}/manifests/")))
            .collect();
        let start = own.iter().map(|l| l.start).min().unwrap();
        let end = own.iter().map(|l| l.end).max().unwrap();
        (start, end)
    };
    let windows = ["one", "two", "three"].map(window);
    let latest_start = windows.iter().map(|w| w.0).max().unwrap();
    let earliest_end = windows.iter().map(|w| w.1).min().unwrap();
    assert!(
        latest_start < earliest_end,
        "resolutions ran one after another: {windows:?}"
    );

    // Solving needs the images' filesystems: now, and only now, the layer is fetched.
    if !hoist_testkit::is_root() {
        hoist_testkit::skip("unpacking busybox layers needs root");
        return;
    }
    runtime
        .block_on(solve(&worker, &loaded, &definition, &progress))
        .unwrap();
    let all = log.lock().unwrap().clone();
    assert!(
        all[resolving.len()..]
            .iter()
            .any(|l| l.line.contains(&layer)),
        "the solve fetched no layer: {all:#?}"
    );
}
