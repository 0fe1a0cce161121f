//! Against an in-process registry that misbehaves on purpose: token auth, 500s, 429 with
//! Retry-After, connections cut mid-blob, blobs that do not match their digest, manifests
//! lying about their size or digest. Nothing corrupt or half-written may reach the store.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::hostile::{Hostile, Req, Resp};
use common::{blob_files, temp_store};
use hoist_oci::{Descriptor, Digest, MediaType, Platform, Reference};
use hoist_registry::{Credentials, RegistryClient, RegistryConfig, RegistryError, Repository};

/// A one-layer image held in memory, as the fake registry serves it.
#[derive(Clone)]
struct Fixture {
    manifest: Bytes,
    manifest_digest: Digest,
    config: (Descriptor, Bytes),
    layer: (Descriptor, Bytes),
}

fn fixture() -> Fixture {
    let layer_bytes = Bytes::from(vec![42u8; 64 * 1024]);
    let layer = Descriptor::of_bytes(MediaType::OciLayerGzip, &layer_bytes);
    let config_bytes = Bytes::from_static(
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#,
    );
    let config = Descriptor::of_bytes(MediaType::OciConfig, &config_bytes);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MediaType::OciManifest.as_str(),
        "config": config,
        "layers": [layer],
    }))
    .unwrap();
    Fixture {
        manifest_digest: Digest::sha256_of(&manifest),
        manifest: manifest.into(),
        config: (config, config_bytes),
        layer: (layer, layer_bytes),
    }
}

impl Fixture {
    /// The well-behaved answers for `lib/app`; `None` for anything else.
    fn serve(&self, req: &Req) -> Option<Resp> {
        let manifest_resp = |head: bool| {
            let resp = Resp::ok(if head {
                Bytes::new()
            } else {
                self.manifest.clone()
            })
            .header("content-type", MediaType::OciManifest.as_str())
            .header("docker-content-digest", self.manifest_digest.as_str());
            if head {
                resp.header("content-length", &self.manifest.len().to_string())
            } else {
                resp
            }
        };
        let path = req.path.as_str();
        if path == "/v2/" {
            return Some(Resp::ok("{}"));
        }
        if path == "/v2/lib/app/manifests/v1"
            || path == format!("/v2/lib/app/manifests/{}", self.manifest_digest)
        {
            return Some(manifest_resp(req.method == "HEAD"));
        }
        for (desc, bytes) in [&self.config, &self.layer] {
            if path == format!("/v2/lib/app/blobs/{}", desc.digest) {
                return Some(Resp::ok(bytes.clone()));
            }
        }
        None
    }
}

fn config(attempts: u32) -> RegistryConfig {
    let mut config = RegistryConfig::default();
    config.retry.attempts = attempts;
    config.retry.initial_delay = Duration::from_millis(10);
    config.retry.max_delay = Duration::from_secs(3);
    config
}

fn reference(host: &str, rest: &str) -> Reference {
    Reference::parse_docker(&format!("{host}/{rest}")).unwrap()
}

fn amd64() -> Platform {
    Platform::new("linux", "amd64")
}

/// Nothing in the store: no blob, and no temp file left in the ingest dir.
fn assert_store_clean(store: &hoist_content::ContentStore) {
    assert_eq!(blob_files(store), Vec::<std::path::PathBuf>::new());
    let leftovers: Vec<_> = std::fs::read_dir(store.ingest_dir())
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "ingest leftovers: {leftovers:?}");
}

#[tokio::test]
async fn token_auth_challenge_flow_and_token_cache() {
    let fx = fixture();
    let realm: Arc<OnceLock<String>> = Arc::new(OnceLock::new());
    let token_requests = Arc::new(AtomicUsize::new(0));
    let server = {
        let realm = realm.clone();
        let token_requests = token_requests.clone();
        Hostile::start(move |req| {
            let challenge = |scope: Option<&str>| {
                let mut value = format!(
                    r#"Bearer realm="{}",service="hostile.test""#,
                    realm.get().unwrap()
                );
                if let Some(scope) = scope {
                    value.push_str(&format!(r#",scope="{scope}",error="insufficient_scope""#));
                }
                Resp::status(401).header("www-authenticate", &value)
            };
            if req.path == "/token" {
                token_requests.fetch_add(1, Ordering::SeqCst);
                // Credentials must reach the token service, Basic-encoded.
                if req.header("authorization").as_deref() != Some("Basic YWxpY2U6cHc=") {
                    return Resp::status(401);
                }
                let query: Vec<(String, String)> =
                    url::form_urlencoded::parse(req.query.as_bytes())
                        .into_owned()
                        .collect();
                let scope = query
                    .iter()
                    .find(|(k, _)| k == "scope")
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default();
                assert!(
                    query.contains(&("service".into(), "hostile.test".into())),
                    "{query:?}"
                );
                let body = serde_json::json!({"token": format!("T {scope}"), "expires_in": 300});
                return Resp::ok(body.to_string()).header("content-type", "application/json");
            }
            if req.path == "/v2/" {
                return challenge(None);
            }
            let want = "Bearer T repository:lib/app:pull";
            if req.header("authorization").as_deref() != Some(want) {
                return challenge(Some("repository:lib/app:pull"));
            }
            fx.serve(req).unwrap_or(Resp::status(404))
        })
        .await
    };
    realm.set(format!("http://{}/token", server.addr)).unwrap();
    let host = server.host();
    let client = RegistryClient::new(
        config(3),
        Credentials::anonymous().with_basic(&host, "alice", "pw"),
    );
    let (_d, store) = temp_store();
    let pulled = client
        .pull_image(&reference(&host, "lib/app:v1"), &amd64(), &store)
        .await
        .unwrap();
    assert_eq!(pulled.manifest.digest, fixture().manifest_digest);
    assert_eq!(blob_files(&store).len(), 3);
    // One token, reused for HEAD, GET manifest and both blobs.
    assert_eq!(
        token_requests.load(Ordering::SeqCst),
        1,
        "{:?}",
        server.requests()
    );

    // Wrong credentials: a clear error naming the registry, nothing stored.
    let bad = RegistryClient::new(
        config(3),
        Credentials::anonymous().with_basic(&host, "alice", "nope"),
    );
    let (_e, empty) = temp_store();
    let err = bad
        .pull_image(&reference(&host, "lib/app:v1"), &amd64(), &empty)
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err}");
    assert!(err.to_string().contains(&host), "{err}");
    assert_store_clean(&empty);
}

#[tokio::test]
async fn server_error_then_success_is_retried() {
    let fx = fixture();
    let failures = Arc::new(AtomicUsize::new(0));
    let server = {
        let failures = failures.clone();
        Hostile::start(move |req| {
            if req.method == "GET"
                && req.path.contains("/manifests/")
                && failures.fetch_add(1, Ordering::SeqCst) < 2
            {
                return Resp::status(if failures.load(Ordering::SeqCst) == 1 {
                    500
                } else {
                    503
                });
            }
            fx.serve(req).unwrap_or(Resp::status(404))
        })
        .await
    };
    let client = RegistryClient::new(config(4), Credentials::anonymous());
    let resolved = client
        .resolve(&reference(&server.host(), "lib/app:v1"))
        .await
        .unwrap();
    assert_eq!(resolved.descriptor.digest, fixture().manifest_digest);
    assert_eq!(server.count("GET /v2/lib/app/manifests/"), 3);

    // A registry that keeps failing: the last status is reported after the attempts run out.
    let always = Hostile::start(|req| {
        if req.path == "/v2/" {
            Resp::ok("{}")
        } else {
            Resp::status(502)
        }
    })
    .await;
    let err = client
        .resolve(&reference(&always.host(), "lib/app:v1"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::Status { status: 502, .. }),
        "{err}"
    );
    assert_eq!(always.count("GET /v2/lib/app/manifests/"), 4);
}

#[tokio::test]
async fn too_many_requests_waits_for_retry_after() {
    let fx = fixture();
    let layer_digest = fx.layer.0.digest.clone();
    let limited = Arc::new(AtomicUsize::new(0));
    let server = {
        let limited = limited.clone();
        Hostile::start(move |req| {
            if req.path.ends_with(layer_digest.as_str())
                && limited.fetch_add(1, Ordering::SeqCst) == 0
            {
                return Resp::status(429).header("retry-after", "1");
            }
            fx.serve(req).unwrap_or(Resp::status(404))
        })
        .await
    };
    let client = RegistryClient::new(config(3), Credentials::anonymous());
    let (_d, store) = temp_store();
    let started = Instant::now();
    client
        .pull_image(&reference(&server.host(), "lib/app:v1"), &amd64(), &store)
        .await
        .unwrap();
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(950),
        "waited only {waited:?}"
    );
    assert!(store.has(&fixture().layer.0.digest));
    assert_eq!(limited.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn connection_cut_mid_blob_is_retried_from_scratch() {
    let fx = fixture();
    let layer = fx.layer.clone();
    let cuts = Arc::new(AtomicUsize::new(0));
    let server = {
        let cuts = cuts.clone();
        Hostile::start(move |req| {
            if req.path.ends_with(layer.0.digest.as_str())
                && cuts.fetch_add(1, Ordering::SeqCst) == 0
            {
                return Resp::ok(layer.1.clone()).cut_after(layer.1.len() / 2);
            }
            fx.serve(req).unwrap_or(Resp::status(404))
        })
        .await
    };
    let client = RegistryClient::new(config(3), Credentials::anonymous());
    let (_d, store) = temp_store();
    let repo = Repository::new(server.host(), "lib/app");
    let fx = fixture();
    client.fetch_blob(&repo, &fx.layer.0, &store).await.unwrap();
    assert_eq!(store.read_blob(&fx.layer.0.digest).unwrap(), fx.layer.1);
    assert_eq!(cuts.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn connection_always_cut_fails_cleanly() {
    let fx = fixture();
    let layer = fx.layer.clone();
    let server = Hostile::start(move |req| {
        if req.path.ends_with(layer.0.digest.as_str()) {
            return Resp::ok(layer.1.clone()).cut_after(1000);
        }
        fx.serve(req).unwrap_or(Resp::status(404))
    })
    .await;
    let client = RegistryClient::new(config(3), Credentials::anonymous());
    let (_d, store) = temp_store();
    let repo = Repository::new(server.host(), "lib/app");
    let fx = fixture();
    let err = client
        .fetch_blob(&repo, &fx.layer.0, &store)
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Http { .. }), "{err}");
    assert!(
        err.to_string().contains(fx.layer.0.digest.as_str()),
        "{err}"
    );
    assert_eq!(
        server.count(&format!("GET /v2/lib/app/blobs/{}", fx.layer.0.digest)),
        3
    );
    assert_store_clean(&store);
}

#[tokio::test]
async fn blob_not_matching_its_digest_is_refused_and_not_stored() {
    let fx = fixture();
    let layer = fx.layer.clone();
    let server = Hostile::start(move |req| {
        if req.path.ends_with(layer.0.digest.as_str()) {
            // Same length, one byte flipped.
            let mut evil = layer.1.to_vec();
            evil[100] ^= 1;
            return Resp::ok(evil);
        }
        fx.serve(req).unwrap_or(Resp::status(404))
    })
    .await;
    let client = RegistryClient::new(config(3), Credentials::anonymous());
    let (_d, store) = temp_store();
    let err = client
        .pull_image(&reference(&server.host(), "lib/app:v1"), &amd64(), &store)
        .await
        .unwrap_err();
    let fx = fixture();
    assert!(
        matches!(err, RegistryError::Mismatch { kind: "blob", .. }),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains(fx.layer.0.digest.as_str()) && text.contains(&server.host()),
        "{text}"
    );
    // Not retried: a digest mismatch is not a transient fault.
    assert_eq!(
        server.count(&format!("GET /v2/lib/app/blobs/{}", fx.layer.0.digest)),
        1
    );
    // The config may have landed (it is valid); the layer and manifest must not.
    assert!(!store.has(&fx.layer.0.digest));
    assert!(!store.has(&fx.manifest_digest));
    let leftovers: Vec<_> = std::fs::read_dir(store.ingest_dir())
        .map(|d| d.flatten().collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty());

    // A blob longer than its descriptor says is refused too.
    let long = fixture();
    let layer = long.layer.clone();
    let server = Hostile::start(move |req| {
        if req.path.ends_with(layer.0.digest.as_str()) {
            let mut more = layer.1.to_vec();
            more.extend_from_slice(b"extra");
            return Resp::ok(more);
        }
        long.serve(req).unwrap_or(Resp::status(404))
    })
    .await;
    let (_e, store) = temp_store();
    let repo = Repository::new(server.host(), "lib/app");
    let err = client
        .fetch_blob(&repo, &fx.layer.0, &store)
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Mismatch { .. }), "{err}");
    assert_store_clean(&store);
}

#[tokio::test]
async fn manifests_lying_about_size_or_digest_are_refused() {
    let fx = fixture();
    // An index whose entry claims the manifest is 10 bytes longer than it is.
    let mut lying = Descriptor::new(
        MediaType::OciManifest,
        fx.manifest_digest.clone(),
        fx.manifest.len() as u64 + 10,
    );
    lying.platform = Some(amd64());
    let index = Bytes::from(
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MediaType::OciIndex.as_str(),
            "manifests": [lying],
        }))
        .unwrap(),
    );
    let index_digest = Digest::sha256_of(&index);
    let huge = Bytes::from(vec![b' '; 5 * 1024 * 1024]);
    let server = {
        let fx = fx.clone();
        Hostile::start(move |req| match req.path.as_str() {
            "/v2/lib/app/manifests/multi" | "/v2/lib/app/manifests/sha256:ignored" => {
                let resp = Resp::ok(if req.method == "HEAD" {
                    Bytes::new()
                } else {
                    index.clone()
                })
                .header("content-type", MediaType::OciIndex.as_str())
                .header("docker-content-digest", index_digest.as_str());
                if req.method == "HEAD" {
                    resp.header("content-length", &index.len().to_string())
                } else {
                    resp
                }
            }
            p if p == format!("/v2/lib/app/manifests/{index_digest}") => {
                Resp::ok(index.clone()).header("content-type", MediaType::OciIndex.as_str())
            }
            // HEAD announces more than 4 MiB.
            "/v2/lib/app/manifests/huge-head" if req.method == "HEAD" => Resp::ok(Bytes::new())
                .header("content-type", MediaType::OciManifest.as_str())
                .header("docker-content-digest", fx.manifest_digest.as_str())
                .header("content-length", &(5u64 * 1024 * 1024).to_string()),
            // No HEAD support; the GET body is over 4 MiB.
            "/v2/lib/app/manifests/huge-get" if req.method == "GET" => {
                Resp::ok(huge.clone()).header("content-type", MediaType::OciManifest.as_str())
            }
            "/v2/lib/app/manifests/huge-get" => Resp::status(405),
            // Docker-Content-Digest that is not the digest of the bytes.
            "/v2/lib/app/manifests/wrong-digest" if req.method == "GET" => {
                Resp::ok(fx.manifest.clone())
                    .header("content-type", MediaType::OciManifest.as_str())
                    .header(
                        "docker-content-digest",
                        Digest::sha256_of(b"other").as_str(),
                    )
            }
            "/v2/lib/app/manifests/wrong-digest" => Resp::status(405),
            _ => fx.serve(req).unwrap_or(Resp::status(404)),
        })
        .await
    };
    let host = server.host();
    let client = RegistryClient::new(config(2), Credentials::anonymous());
    let (_d, store) = temp_store();

    let err = client
        .pull_image(&reference(&host, "lib/app:multi"), &amd64(), &store)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            RegistryError::Mismatch {
                kind: "manifest",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("expected"), "{err}");
    assert_store_clean(&store);

    for tag in ["huge-head", "huge-get"] {
        let err = client
            .resolve(&reference(&host, &format!("lib/app:{tag}")))
            .await
            .unwrap_err();
        assert!(
            matches!(err, RegistryError::ManifestTooLarge { .. }),
            "{tag}: {err}"
        );
        assert!(err.to_string().contains("4194304"), "{err}");
    }

    let err = client
        .resolve(&reference(&host, "lib/app:wrong-digest"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            RegistryError::Mismatch {
                kind: "manifest",
                ..
            }
        ),
        "{err}"
    );

    // Asking by digest checks the bytes against that digest.
    let other = Digest::sha256_of(b"not the manifest");
    let by_digest = reference(&host, &format!("lib/app@{other}"));
    let server2 = {
        let fx = fx.clone();
        Hostile::start(move |req| {
            if req.path.contains("/manifests/") {
                return Resp::ok(fx.manifest.clone())
                    .header("content-type", MediaType::OciManifest.as_str());
            }
            fx.serve(req).unwrap_or(Resp::status(404))
        })
        .await
    };
    let by_digest2 = reference(&server2.host(), &format!("lib/app@{other}"));
    let err = client.resolve(&by_digest2).await.unwrap_err();
    assert!(
        matches!(
            err,
            RegistryError::Mismatch {
                kind: "manifest",
                ..
            }
        ),
        "{err}"
    );
    drop(by_digest);
}

#[tokio::test]
async fn failed_upload_restarts_with_a_new_session() {
    let posts = Arc::new(AtomicUsize::new(0));
    let puts = Arc::new(AtomicUsize::new(0));
    let server = {
        let posts = posts.clone();
        let puts = puts.clone();
        Hostile::start(move |req| match (req.method.as_str(), req.path.as_str()) {
            ("GET", "/v2/") => Resp::ok("{}"),
            ("HEAD", p) if p.contains("/blobs/") => Resp::status(404),
            ("POST", "/v2/lib/app/blobs/uploads/") => {
                let n = posts.fetch_add(1, Ordering::SeqCst);
                Resp::status(202).header("location", &format!("/v2/lib/app/blobs/uploads/s{n}"))
            }
            ("PUT", p) if p.starts_with("/v2/lib/app/blobs/uploads/") => {
                // The first session dies with a 503.
                if puts.fetch_add(1, Ordering::SeqCst) == 0 {
                    Resp::status(503)
                } else {
                    assert!(req.query.contains("digest=sha256%3A"), "{}", req.query);
                    Resp::status(201)
                }
            }
            _ => Resp::status(404),
        })
        .await
    };
    let client = RegistryClient::new(config(3), Credentials::anonymous());
    let repo = Repository::new(server.host(), "lib/app");
    let bytes = Bytes::from_static(b"some blob");
    let desc = Descriptor::of_bytes(MediaType::OciLayer, &bytes);
    let outcome = client
        .push_blob(&repo, &desc, hoist_registry::BlobSource::Bytes(bytes))
        .await
        .unwrap();
    assert_eq!(outcome, hoist_registry::PushOutcome::Uploaded);
    assert_eq!(posts.load(Ordering::SeqCst), 2, "{:?}", server.requests());
    assert!(
        server
            .requests()
            .contains(&"PUT /v2/lib/app/blobs/uploads/s1".to_owned())
            || server
                .requests()
                .iter()
                .any(|l| l.starts_with("PUT /v2/lib/app/blobs/uploads/s1?"))
    );
}
