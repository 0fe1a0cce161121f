//! Against the real Distribution server (Debian's `docker-registry`), anonymous and behind
//! htpasswd Basic auth: push images built in the test, pull them back byte for byte, indexes,
//! cross-repository mounts, chunked uploads, tags and digests, login and logout.

use crate::common::{blob_files, build_image, build_index, temp_store};
use bytes::Bytes;
use hoist_oci::{Descriptor, MediaType, Platform, Reference};
use hoist_registry::{
    login_with, logout_with, BlobSource, Credentials, LoginOptions, PushOptions, PushOutcome,
    RegistryClient, RegistryConfig, RegistryError, Repository,
};
use hoist_testkit::registry::TestRegistry;

fn amd64() -> Platform {
    Platform::new("linux", "amd64")
}

fn arm64() -> Platform {
    Platform::new("linux", "arm64")
}

fn reference(s: &str) -> Reference {
    Reference::parse_docker(s).unwrap()
}

/// Test settings: quick retries.
fn config() -> RegistryConfig {
    let mut config = RegistryConfig::default();
    config.retry.initial_delay = std::time::Duration::from_millis(20);
    config
}

fn assert_same_blob(
    a: &hoist_content::ContentStore,
    b: &hoist_content::ContentStore,
    d: &Descriptor,
) {
    assert_eq!(
        a.read_blob(&d.digest).unwrap(),
        b.read_blob(&d.digest).unwrap(),
        "blob {}",
        d.digest
    );
}

#[tokio::test]
async fn push_image_then_pull_it_back_byte_for_byte() {
    let Some(reg) = TestRegistry::start() else {
        return;
    };
    let (_a, src) = temp_store();
    let image = build_image(
        &src,
        &amd64(),
        &[
            vec![("etc/hello", b"hello\n".to_vec())],
            vec![("bin/tool", vec![7u8; 3000]), ("etc/conf", b"x=1".to_vec())],
        ],
    );
    let client = RegistryClient::new(config(), Credentials::anonymous());
    let target = reference(&format!("{}/test/app:v1", reg.host()));
    let pushed = client
        .push_image(&src, &image.manifest, &target)
        .await
        .unwrap();
    assert_eq!(pushed.digest, image.manifest.digest);

    let resolved = client.resolve(&target).await.unwrap();
    assert_eq!(resolved.descriptor.digest, image.manifest.digest);
    assert_eq!(resolved.descriptor.media_type, MediaType::OciManifest);
    assert_eq!(
        resolved.bytes,
        Bytes::from(src.read_blob(&image.manifest.digest).unwrap())
    );

    let (_b, dst) = temp_store();
    let pulled = client.pull_image(&target, &amd64(), &dst).await.unwrap();
    assert_eq!(pulled.root.digest, image.manifest.digest);
    assert_eq!(pulled.config.digest, image.config.digest);
    assert_eq!(pulled.layers.len(), 2);
    for d in [&image.manifest, &image.config]
        .into_iter()
        .chain(image.layers.iter())
    {
        assert_same_blob(&src, &dst, d);
    }
    // Pulling again finds everything present.
    client.pull_image(&target, &amd64(), &dst).await.unwrap();
    assert_eq!(blob_files(&dst).len(), 4);

    // Pushing again uploads nothing.
    let repo = Repository::from(&target);
    let outcome = client
        .push_blob(&repo, &image.layers[0], BlobSource::Store(src.clone()))
        .await
        .unwrap();
    assert_eq!(outcome, PushOutcome::Exists);
}

#[tokio::test]
async fn large_blob_goes_up_in_patch_chunks() {
    let Some(reg) = TestRegistry::start() else {
        return;
    };
    let mut config = config();
    config.monolithic_push_limit = 64 * 1024;
    config.chunk_size = 50 * 1024;
    let client = RegistryClient::new(config, Credentials::anonymous());
    // Incompressible bytes, so the gzip layer stays larger than the limit.
    let mut state = 0x2545_f491_u32;
    let noise: Vec<u8> = (0..300_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect();
    let (_a, src) = temp_store();
    let image = build_image(&src, &amd64(), &[vec![("data", noise)]]);
    assert!(image.layers[0].size > 200 * 1024);
    let target = reference(&format!("{}/test/big:latest", reg.host()));
    client
        .push_image(&src, &image.manifest, &target)
        .await
        .unwrap();
    let repo = Repository::from(&target);
    assert_eq!(
        client
            .blob_exists(&repo, &image.layers[0].digest)
            .await
            .unwrap(),
        Some(image.layers[0].size)
    );
    let (_b, dst) = temp_store();
    client.pull_image(&target, &amd64(), &dst).await.unwrap();
    assert_same_blob(&src, &dst, &image.layers[0]);
}

#[tokio::test]
async fn index_push_and_pull_selects_the_platform() {
    let Some(reg) = TestRegistry::start() else {
        return;
    };
    let (_a, src) = temp_store();
    let x86 = build_image(&src, &amd64(), &[vec![("arch", b"amd64".to_vec())]]);
    let arm = build_image(&src, &arm64(), &[vec![("arch", b"arm64".to_vec())]]);
    let index = build_index(
        &src,
        &[
            (x86.manifest.clone(), amd64()),
            (arm.manifest.clone(), arm64().with_variant("v8")),
        ],
    );
    let client = RegistryClient::new(config(), Credentials::anonymous());
    let target = reference(&format!("{}/multi/app:1.0", reg.host()));
    client.push_image(&src, &index, &target).await.unwrap();

    let resolved = client.resolve(&target).await.unwrap();
    assert!(resolved.is_index());
    assert_eq!(resolved.descriptor.digest, index.digest);

    let (_b, dst) = temp_store();
    let pulled = client.pull_image(&target, &arm64(), &dst).await.unwrap();
    assert_eq!(pulled.root.digest, index.digest);
    assert_eq!(pulled.manifest.digest, arm.manifest.digest);
    assert_eq!(
        pulled.manifest.platform.as_ref().unwrap().architecture,
        "arm64"
    );
    assert_same_blob(&src, &dst, &arm.layers[0]);
    assert!(
        !dst.has(&x86.layers[0].digest),
        "only the chosen platform is pulled"
    );
    assert_same_blob(&src, &dst, &index);

    let err = client
        .pull_image(&target, &Platform::new("linux", "s390x"), &dst)
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::NoMatchingPlatform { .. }),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains("linux/s390x") && text.contains("linux/arm64/v8"),
        "{text}"
    );

    let (_c, all) = temp_store();
    let root = client.pull_all(&target, &all).await.unwrap();
    assert_eq!(root.digest, index.digest);
    for d in [&x86.layers[0], &arm.layers[0], &x86.config, &arm.config] {
        assert_same_blob(&src, &all, d);
    }

    // Push by digest (no tag), then tag it.
    let by_digest = reference(&format!("{}/multi/bydigest@{}", reg.host(), index.digest));
    client.push_image(&src, &index, &by_digest).await.unwrap();
    let tagged = reference(&format!("{}/multi/bydigest:tagged", reg.host()));
    assert!(client.head_manifest(&tagged).await.unwrap().is_none());
    client.tag(&tagged, &index).await.unwrap();
    let head = client.head_manifest(&tagged).await.unwrap().unwrap();
    assert_eq!(head.digest, index.digest);
    assert_eq!(head.media_type, MediaType::OciIndex);
}

#[tokio::test]
async fn blobs_mount_across_repositories() {
    let Some(reg) = TestRegistry::start() else {
        return;
    };
    let (_a, src) = temp_store();
    let image = build_image(&src, &amd64(), &[vec![("shared", b"base layer".to_vec())]]);
    let client = RegistryClient::new(config(), Credentials::anonymous());
    let base = reference(&format!("{}/team/base:1", reg.host()));
    client
        .push_image(&src, &image.manifest, &base)
        .await
        .unwrap();

    let from = Repository::from(&base);
    let other = Repository::new(reg.host(), "team/other");
    let layer = &image.layers[0];
    assert_eq!(
        client.blob_exists(&other, &layer.digest).await.unwrap(),
        None
    );
    assert!(client
        .mount_blob(&other, &layer.digest, &from)
        .await
        .unwrap());
    assert_eq!(
        client.blob_exists(&other, &layer.digest).await.unwrap(),
        Some(layer.size)
    );
    // A blob the source does not have is not mounted (and no upload is left open).
    let missing = hoist_oci::Digest::sha256_of(b"nobody has this");
    assert!(!client.mount_blob(&other, &missing, &from).await.unwrap());

    // A whole image pushed with mounts ends up complete.
    let third = reference(&format!("{}/team/third:1", reg.host()));
    let options = PushOptions {
        mount_from: vec![from.clone()],
        ..PushOptions::default()
    };
    client
        .push_image_with(&src, &image.manifest, &third, &options)
        .await
        .unwrap();
    let outcome = client
        .push_blob_or_mount(
            &Repository::new(reg.host(), "team/fourth"),
            &image.config,
            BlobSource::Bytes(src.read_blob(&image.config.digest).unwrap().into()),
            std::slice::from_ref(&from),
        )
        .await
        .unwrap();
    assert_eq!(outcome, PushOutcome::Mounted);
    let (_b, dst) = temp_store();
    client.pull_image(&third, &amd64(), &dst).await.unwrap();
    assert_same_blob(&src, &dst, layer);
}

#[tokio::test]
async fn blobs_missing_from_the_store_are_mounted_or_fetched_from_their_source() {
    let Some(reg) = TestRegistry::start() else {
        return;
    };
    let Some(other_reg) = TestRegistry::start() else {
        return;
    };
    let (_a, src) = temp_store();
    let image = build_image(&src, &amd64(), &[vec![("base", b"a base layer".to_vec())]]);
    let client = RegistryClient::new(config(), Credentials::anonymous());
    let base = reference(&format!("{}/team/base:1", reg.host()));
    client
        .push_image(&src, &image.manifest, &base)
        .await
        .unwrap();
    // A store with the manifest and config only (a build that never fetched the layer).
    let (_b, partial) = temp_store();
    for d in [&image.manifest, &image.config] {
        partial
            .put_bytes(d.media_type.clone(), &src.read_blob(&d.digest).unwrap())
            .unwrap();
    }
    let layer = &image.layers[0];
    let options = PushOptions {
        blob_sources: [(layer.digest.clone(), Repository::from(&base))].into(),
        ..PushOptions::default()
    };
    // Same registry: mounted, never fetched.
    let app = reference(&format!("{}/team/app:1", reg.host()));
    client
        .push_image_with(&partial, &image.manifest, &app, &options)
        .await
        .unwrap();
    assert!(!partial.has(&layer.digest), "the layer was fetched");
    let (_c, pulled) = temp_store();
    client.pull_image(&app, &amd64(), &pulled).await.unwrap();
    assert_same_blob(&src, &pulled, layer);
    // Without a source the push says which blob the store lacks.
    let err = client
        .push_image(&partial, &image.manifest, &app)
        .await
        .unwrap_err();
    assert!(err.to_string().contains(layer.digest.as_str()), "{err}");
    // Another registry: fetched from the source, then uploaded.
    let elsewhere = reference(&format!("{}/team/app:1", other_reg.host()));
    client
        .push_image_with(&partial, &image.manifest, &elsewhere, &options)
        .await
        .unwrap();
    assert!(partial.has(&layer.digest));
    let (_d, pulled) = temp_store();
    client
        .pull_image(&elsewhere, &amd64(), &pulled)
        .await
        .unwrap();
    assert_same_blob(&src, &pulled, layer);
}

#[tokio::test]
async fn basic_auth_registry_push_pull_login_logout() {
    let Some(reg) = TestRegistry::start_with_basic_auth("hoist", "s3cret") else {
        return;
    };
    let host = reg.host();
    let (_a, src) = temp_store();
    let image = build_image(&src, &amd64(), &[vec![("f", b"private".to_vec())]]);
    let target = reference(&format!("{host}/private/app:1"));

    let anonymous = RegistryClient::new(config(), Credentials::anonymous());
    let err = anonymous
        .push_image(&src, &image.manifest, &target)
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err}");
    assert!(err.to_string().contains(&host), "{err}");

    let client = RegistryClient::new(
        config(),
        Credentials::anonymous().with_basic(&host, "hoist", "s3cret"),
    );
    client
        .push_image(&src, &image.manifest, &target)
        .await
        .unwrap();
    let (_b, dst) = temp_store();
    client.pull_image(&target, &amd64(), &dst).await.unwrap();
    assert_same_blob(&src, &dst, &image.layers[0]);

    // login writes docker's config.json; a client reading it can pull.
    let home = tempfile::tempdir().unwrap();
    let docker_config = home.path().join("config.json");
    std::fs::write(&docker_config, r#"{"psFormat":"table"}"#).unwrap();
    let options = LoginOptions {
        registry_config: config(),
        docker_config: Some(docker_config.clone()),
    };
    let err = login_with(&options, &host, "hoist", "wrong")
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err}");
    assert!(!std::fs::read_to_string(&docker_config)
        .unwrap()
        .contains("auths"));
    login_with(&options, &host, "hoist", "s3cret")
        .await
        .unwrap();
    let text = std::fs::read_to_string(&docker_config).unwrap();
    assert!(text.contains("psFormat") && text.contains(&host), "{text}");
    let from_file = RegistryClient::new(
        config(),
        Credentials::from_docker_config_file(&docker_config),
    );
    let resolved = from_file.resolve(&target).await.unwrap();
    assert_eq!(resolved.descriptor.digest, image.manifest.digest);

    assert!(logout_with(&options, &host).await.unwrap());
    assert!(!logout_with(&options, &host).await.unwrap());
    let logged_out = RegistryClient::new(
        config(),
        Credentials::from_docker_config_file(&docker_config),
    );
    let err = logged_out.resolve(&target).await.unwrap_err();
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err}");
}

#[tokio::test]
async fn copy_image_within_and_across_registries() {
    let Some(one) = TestRegistry::start() else {
        return;
    };
    let Some(two) = TestRegistry::start() else {
        return;
    };
    let (_a, src) = temp_store();
    let x86 = build_image(&src, &amd64(), &[vec![("a", b"amd64 layer".to_vec())]]);
    let arm = build_image(&src, &arm64(), &[vec![("a", b"arm64 layer".to_vec())]]);
    let index = build_index(
        &src,
        &[
            (x86.manifest.clone(), amd64()),
            (arm.manifest.clone(), arm64()),
        ],
    );
    let client = RegistryClient::new(config(), Credentials::anonymous());
    let source = reference(&format!("{}/src/app:1", one.host()));
    client.push_image(&src, &index, &source).await.unwrap();

    let (_s, scratch) = temp_store();
    // Same registry: blobs are mounted, nothing needs the scratch store.
    let same = reference(&format!("{}/dst/app:copied", one.host()));
    let copied = client.copy_image(&source, &same, &scratch).await.unwrap();
    assert_eq!(copied.digest, index.digest);
    assert!(blob_files(&scratch).is_empty(), "mounts need no local copy");
    // Another registry: blobs travel through the scratch store.
    let other = reference(&format!("{}/elsewhere/app:copied", two.host()));
    client.copy_image(&source, &other, &scratch).await.unwrap();
    for target in [&same, &other] {
        let (_b, dst) = temp_store();
        let pulled = client.pull_image(target, &arm64(), &dst).await.unwrap();
        assert_eq!(pulled.root.digest, index.digest);
        assert_same_blob(&src, &dst, &arm.layers[0]);
    }
}

#[tokio::test]
async fn progress_events_follow_each_blob() {
    use hoist_registry::{Direction, ProgressHook, TransferEvent, TransferOutcome};
    use std::sync::{Arc, Mutex};

    let Some(reg) = TestRegistry::start() else {
        return;
    };
    let events = Arc::new(Mutex::new(Vec::<TransferEvent>::new()));
    let mut cfg = config();
    cfg.monolithic_push_limit = 1024;
    cfg.chunk_size = 1024;
    cfg.progress = Some(ProgressHook::new({
        let events = events.clone();
        move |e| events.lock().unwrap().push(e.clone())
    }));
    let client = RegistryClient::new(cfg, Credentials::anonymous());
    let (_a, src) = temp_store();
    let mut state = 7u32;
    let noise: Vec<u8> = (0..5000)
        .map(|_| {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (state >> 16) as u8
        })
        .collect();
    let image = build_image(&src, &amd64(), &[vec![("noise", noise)]]);
    let layer = image.layers[0].clone();
    assert!(layer.size > 2048, "{}", layer.size);
    let target = reference(&format!("{}/progress/app:1", reg.host()));
    client
        .push_image(&src, &image.manifest, &target)
        .await
        .unwrap();
    let pushed = std::mem::take(&mut *events.lock().unwrap());
    let of_layer: Vec<&TransferEvent> = pushed
        .iter()
        .filter(|e| match e {
            TransferEvent::Started { digest, .. }
            | TransferEvent::Bytes { digest, .. }
            | TransferEvent::Finished { digest, .. } => *digest == layer.digest,
        })
        .collect();
    assert!(matches!(
        of_layer.first(),
        Some(TransferEvent::Started {
            direction: Direction::Upload,
            ..
        })
    ));
    assert!(
        of_layer
            .iter()
            .filter(|e| matches!(e, TransferEvent::Bytes { .. }))
            .count()
            >= 2,
        "chunks are reported: {of_layer:?}"
    );
    assert_eq!(
        of_layer.last(),
        Some(&&TransferEvent::Finished {
            digest: layer.digest.clone(),
            size: layer.size,
            outcome: TransferOutcome::Uploaded
        })
    );

    client
        .push_image(&src, &image.manifest, &target)
        .await
        .unwrap();
    let again = std::mem::take(&mut *events.lock().unwrap());
    assert!(
        again.iter().all(|e| matches!(
            e,
            TransferEvent::Finished {
                outcome: TransferOutcome::Exists,
                ..
            }
        )),
        "{again:?}"
    );

    let (_b, dst) = temp_store();
    client.pull_image(&target, &amd64(), &dst).await.unwrap();
    let pulled = std::mem::take(&mut *events.lock().unwrap());
    assert!(pulled.contains(&TransferEvent::Finished {
        digest: layer.digest.clone(),
        size: layer.size,
        outcome: TransferOutcome::Downloaded
    }));
    assert!(pulled.contains(&TransferEvent::Bytes {
        digest: layer.digest.clone(),
        done: layer.size,
        size: layer.size
    }));
}

/// Regression: several tasks copying images that share a blob into one repository used to
/// mount it there at the same time; the registry rewrites its link file on each mount, and a
/// manifest PUT checking the blob mid-rewrite failed with `DIGEST_INVALID` +
/// `MANIFEST_BLOB_UNKNOWN` (seen as a flaky `imagetools create`). Transfers of one blob into
/// one repository now take turns, and a later one finds the blob there.
#[tokio::test]
async fn concurrent_mounts_of_a_shared_blob_keep_manifest_pushes_working() {
    let Some(reg) = TestRegistry::start() else {
        return;
    };
    let (_a, src) = temp_store();
    let image = build_image(
        &src,
        &amd64(),
        &[vec![("shared", b"shared layer".to_vec())]],
    );
    let client = RegistryClient::new(config(), Credentials::anonymous());
    let base = reference(&format!("{}/team/base:1", reg.host()));
    client
        .push_image(&src, &image.manifest, &base)
        .await
        .unwrap();
    let from = Repository::from(&base);
    let manifest_bytes = Bytes::from(src.read_blob(&image.manifest.digest).unwrap());
    let blobs: Vec<Descriptor> = image
        .layers
        .iter()
        .chain([&image.config])
        .cloned()
        .collect();
    for round in 0..8 {
        let target = reference(&format!("{}/team/copy{round}:v1", reg.host()));
        let tasks = (0..6).map(|_| {
            let (client, from, target) = (client.clone(), from.clone(), target.clone());
            let (blobs, bytes) = (blobs.clone(), manifest_bytes.clone());
            tokio::spawn(async move {
                let to = Repository::from(&target);
                for blob in &blobs {
                    assert!(client.mount_blob(&to, &blob.digest, &from).await.unwrap());
                }
                client
                    .push_manifest(&target, bytes, MediaType::OciManifest)
                    .await
            })
        });
        for task in futures::future::join_all(tasks).await {
            task.unwrap().unwrap();
        }
    }
}
