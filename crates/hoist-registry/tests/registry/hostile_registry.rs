//! Against an in-process registry that misbehaves on purpose: token auth (and identity
//! tokens), 500s and 503s, 429 with Retry-After, manifests cut mid-way or lying about their
//! size or digest, mirrors. Blob transfers are in `hostile_blobs.rs`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::common::hostile::{Hostile, Resp};
use crate::common::served::{amd64, assert_store_clean, config, fixture, reference};
use crate::common::{blob_files, temp_store};
use bytes::Bytes;
use hoist_oci::{Descriptor, Digest, MediaType};
use hoist_registry::{Credentials, RegistryClient, RegistryConfig, RegistryError};

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
                // The token service hiccups once.
                if token_requests.fetch_add(1, Ordering::SeqCst) == 0 {
                    return Resp::status(503);
                }
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
                    query.contains(&("account".into(), "alice".into())),
                    "{query:?}"
                );
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
    // One token (after one 503), reused for HEAD, GET manifest and both blobs.
    assert_eq!(
        token_requests.load(Ordering::SeqCst),
        2,
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
async fn pulls_try_mirrors_first_and_fall_back_to_the_registry() {
    let fx = fixture();
    let mirror = {
        let fx = fx.clone();
        Hostile::start(move |req| fx.serve(req).unwrap_or(Resp::status(404))).await
    };
    let origin = Hostile::start(|req| {
        if req.path == "/v2/" {
            Resp::ok("{}")
        } else {
            Resp::status(500)
        }
    })
    .await;
    let settings = format!(
        "[registry.\"{}\"]\nmirrors = [\"{}\"]\n",
        origin.host(),
        mirror.host()
    );
    let mut cfg = RegistryConfig::parse(&settings, std::path::Path::new("test.toml")).unwrap();
    cfg.retry = config(2).retry;
    let client = RegistryClient::new(cfg, Credentials::anonymous());
    let (_d, store) = temp_store();
    client
        .pull_image(&reference(&origin.host(), "lib/app:v1"), &amd64(), &store)
        .await
        .unwrap();
    assert!(store.has(&fx.layer.0.digest));
    assert_eq!(origin.count("GET /v2/lib"), 0, "{:?}", origin.requests());
    assert_eq!(origin.count("HEAD /v2/lib"), 0, "{:?}", origin.requests());

    // A mirror without the image: the registry itself answers.
    let empty_mirror = Hostile::start(|req| {
        if req.path == "/v2/" {
            Resp::ok("{}")
        } else {
            Resp::status(404)
        }
    })
    .await;
    let origin = {
        let fx = fx.clone();
        Hostile::start(move |req| fx.serve(req).unwrap_or(Resp::status(404))).await
    };
    let settings = format!(
        "[registry.\"{}\"]\nmirrors = [\"{}\"]\n",
        origin.host(),
        empty_mirror.host()
    );
    let cfg = RegistryConfig::parse(&settings, std::path::Path::new("test.toml")).unwrap();
    let client = RegistryClient::new(cfg, Credentials::anonymous());
    let (_e, store) = temp_store();
    client
        .pull_image(&reference(&origin.host(), "lib/app:v1"), &amd64(), &store)
        .await
        .unwrap();
    assert!(store.has(&fx.layer.0.digest));
    assert!(empty_mirror.count("HEAD /v2/lib/app/manifests/v1") >= 1);
}

#[tokio::test]
async fn identity_token_is_exchanged_with_a_refresh_grant() {
    let fx = fixture();
    let realm: Arc<OnceLock<String>> = Arc::new(OnceLock::new());
    let server = {
        let realm = realm.clone();
        Hostile::start(move |req| {
            if req.path == "/token" {
                let form: Vec<(String, String)> = url::form_urlencoded::parse(&req.body)
                    .into_owned()
                    .collect();
                let has = |k: &str, v: &str| form.contains(&(k.to_owned(), v.to_owned()));
                if req.method != "POST"
                    || !has("grant_type", "refresh_token")
                    || !has("refresh_token", "my-refresh")
                    || !has("scope", "repository:lib/app:pull")
                {
                    return Resp::status(400);
                }
                return Resp::ok(r#"{"access_token":"AT","expires_in":120}"#);
            }
            if req.header("authorization").as_deref() != Some("Bearer AT") {
                let value = format!(r#"Bearer realm="{}",service="s""#, realm.get().unwrap());
                return Resp::status(401).header("www-authenticate", &value);
            }
            fx.serve(req).unwrap_or(Resp::status(404))
        })
        .await
    };
    realm.set(format!("http://{}/token", server.addr)).unwrap();
    let client = RegistryClient::new(
        config(2),
        Credentials::anonymous().with(
            &server.host(),
            hoist_registry::Auth::IdentityToken("my-refresh".into()),
        ),
    );
    let resolved = client
        .resolve(&reference(&server.host(), "lib/app:v1"))
        .await
        .unwrap();
    assert_eq!(resolved.descriptor.digest, fixture().manifest_digest);
}

#[tokio::test]
async fn connection_cut_mid_manifest_is_retried() {
    let fx = fixture();
    let cuts = Arc::new(AtomicUsize::new(0));
    let server = {
        let cuts = cuts.clone();
        Hostile::start(move |req| {
            let resp = fx.serve(req).unwrap_or(Resp::status(404));
            if req.method == "GET"
                && req.path.contains("/manifests/")
                && cuts.fetch_add(1, Ordering::SeqCst) == 0
            {
                return resp.cut_after(20);
            }
            resp
        })
        .await
    };
    let client = RegistryClient::new(config(3), Credentials::anonymous());
    let resolved = client
        .resolve(&reference(&server.host(), "lib/app:v1"))
        .await
        .unwrap();
    assert_eq!(resolved.descriptor.digest, fixture().manifest_digest);
    assert_eq!(cuts.load(Ordering::SeqCst), 2);
}

/// A manifest push answered `MANIFEST_BLOB_UNKNOWN` (the Distribution registry reading its
/// link for a blob that another pusher is rewriting) is tried again after a pause; a
/// registry that keeps saying so fails the push with its answer.
#[tokio::test]
async fn a_manifest_push_meeting_a_blob_being_rewritten_is_tried_again() {
    let bytes = Bytes::from_static(
        br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#,
    );
    let digest = Digest::sha256_of(&bytes);
    let racing = |refusals: usize| {
        let refused = Arc::new(AtomicUsize::new(0));
        let digest = digest.to_string();
        Hostile::start(move |req| {
            if req.path == "/v2/" {
                return Resp::ok("{}");
            }
            if req.method != "PUT" || !req.path.contains("/manifests/") {
                return Resp::status(404);
            }
            if refused.fetch_add(1, Ordering::SeqCst) < refusals {
                let body = r#"{"errors":[{"code":"DIGEST_INVALID","message":"provided digest did not match uploaded content"},{"code":"MANIFEST_BLOB_UNKNOWN","message":"blob unknown to registry"}]}"#;
                return Resp {
                    body: Bytes::from_static(body.as_bytes()),
                    ..Resp::status(400)
                };
            }
            Resp::status(201).header("docker-content-digest", &digest)
        })
    };
    let client = RegistryClient::new(config(4), Credentials::anonymous());
    let server = racing(2).await;
    let target = reference(&server.host(), "lib/app:v1");
    let pushed = client
        .push_manifest(&target, bytes.clone(), MediaType::OciManifest)
        .await
        .unwrap();
    assert_eq!(pushed.digest, digest);
    assert_eq!(server.count("PUT /v2/lib/app/manifests/v1"), 3);

    let stuck = racing(usize::MAX).await;
    let target = reference(&stuck.host(), "lib/app:v1");
    let err = client
        .push_manifest(&target, bytes, MediaType::OciManifest)
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::Status { status: 400, ref message, .. } if message.contains("MANIFEST_BLOB_UNKNOWN")),
        "{err}"
    );
    assert_eq!(stuck.count("PUT /v2/lib/app/manifests/v1"), 4);
}
