use super::*;
use crate::remote::memory::MemoryRemote;

const REG: &str = "reg.example:5000";

fn repo(name: &str) -> String {
    format!("{REG}/{name}")
}

fn request(tags: &[&str], sources: &[&str]) -> CreateRequest {
    CreateRequest {
        tags: tags.iter().map(|s| s.to_string()).collect(),
        sources: sources.iter().map(|s| s.to_string()).collect(),
        ..CreateRequest::default()
    }
}

#[test]
fn sources_parse_as_digest_reference_or_descriptor() {
    let d = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let s = parse_source(d).unwrap();
    assert!(s.reference.is_none());
    assert_eq!(s.descriptor.digest.unwrap().as_str(), d);
    let s = parse_source("busybox").unwrap();
    assert_eq!(
        s.reference.unwrap().to_string(),
        "docker.io/library/busybox"
    );
    let s = parse_source(&format!(
        r#"{{"digest":"{d}","platform":{{"os":"linux","architecture":"s390x"}}}}"#
    ))
    .unwrap();
    assert_eq!(s.descriptor.platform.unwrap().architecture, "s390x");
    let err = crate::error::chain(&parse_source("sha256:nothex").unwrap_err());
    assert!(
        err.starts_with("failed to parse source \"sha256:nothex\", valid sources are digests"),
        "{err}"
    );
    assert!(parse_source("Not/A/Ref").is_err());
}

#[tokio::test]
async fn refuses_like_buildx() {
    let remote = MemoryRemote::default();
    let err = create(&remote, &request(&["x"], &[])).await.unwrap_err();
    assert_eq!(err.to_string(), "no sources specified");
    let err = create(&remote, &request(&[], &["x"])).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "can't push with no tags specified, please set --tag or --dry-run"
    );
    let d = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let mut req = request(&[], &[d]);
    req.dry_run = true;
    let err = create(&remote, &req).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "no repositories specified, please set a reference in tag or source"
    );
    let req = request(&[&repo("a:1")], &[&repo("b:1"), d]);
    let err = create(&remote, &req).await.unwrap_err();
    assert_eq!(
        crate::error::chain(&err),
        format!("multiple repositories specified, cannot infer repository for \"{d}\"")
    );
}

#[tokio::test]
async fn combines_two_images_with_platforms_from_configs_and_copies_blobs() {
    let remote = MemoryRemote::default();
    let amd = remote.put_image(&repo("src"), "amd64", "linux", "amd64");
    let arm = remote.put_image(&repo("other"), "arm64", "linux", "aarch64");
    let created = create(
        &remote,
        &request(
            &[&repo("dst:multi")],
            &[&repo("src:amd64"), &repo("other:arm64")],
        ),
    )
    .await
    .unwrap();
    assert_eq!(created.descriptor.media_type, MediaType::OciIndex);
    let index = manifest_json::parse_index(&created.bytes).unwrap();
    assert_eq!(index.manifests.len(), 2);
    assert_eq!(index.manifests[0].digest, amd.digest);
    assert_eq!(
        index.manifests[0].platform.as_ref().unwrap().format(),
        "linux/amd64"
    );
    assert_eq!(index.manifests[1].digest, arm.digest);
    // aarch64 in the config is normalised, as buildx does.
    assert_eq!(
        index.manifests[1].platform.as_ref().unwrap().format(),
        "linux/arm64"
    );
    // Go's MarshalIndent with two spaces.
    let text = String::from_utf8(created.bytes.clone()).unwrap();
    assert!(
        text.starts_with(
            "{\n  \"schemaVersion\": 2,\n  \"mediaType\": \"application/vnd.oci.image.index.v1+json\",\n  \"manifests\": [\n    {\n      \"mediaType\""
        ),
        "{text}"
    );
    let (mt, bytes) = remote.tagged(&repo("dst"), "multi").unwrap();
    assert_eq!(mt, MediaType::OciIndex);
    assert_eq!(bytes, created.bytes);
    // Both images' blobs now live in dst.
    let dst = remote.blob_digests(&repo("dst"));
    assert!(remote.blob_digests(&repo("src")).is_subset(&dst));
    assert!(remote.blob_digests(&repo("other")).is_subset(&dst));
    assert_eq!(created.copied.len(), 2);
}

#[tokio::test]
async fn indexes_are_flattened_and_append_keeps_the_old_entries() {
    let remote = MemoryRemote::default();
    remote.put_image(&repo("app"), "amd64", "linux", "amd64");
    remote.put_image(&repo("app"), "arm64", "linux", "arm64");
    remote.put_image(&repo("app"), "s390x", "linux", "s390x");
    create(
        &remote,
        &request(
            &[&repo("app:multi")],
            &[&repo("app:amd64"), &repo("app:arm64")],
        ),
    )
    .await
    .unwrap();
    // Combining the index with the same manifest again de-duplicates.
    let mut req = request(
        &[&repo("app:multi")],
        &[&repo("app:s390x"), &repo("app:amd64")],
    );
    req.append = true;
    let created = create(&remote, &req).await.unwrap();
    let platforms: Vec<String> = manifest_json::parse_index(&created.bytes)
        .unwrap()
        .manifests
        .iter()
        .map(|m| m.platform.as_ref().unwrap().format())
        .collect();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64", "linux/s390x"]);
    // Same repository: nothing copied.
    assert!(remote.copies().is_empty());
    assert!(created.copied.is_empty());
}

#[tokio::test]
async fn a_single_index_source_is_pushed_as_it_is() {
    let remote = MemoryRemote::default();
    remote.put_image(&repo("app"), "amd64", "linux", "amd64");
    let first = create(&remote, &request(&[&repo("app:v1")], &[&repo("app:amd64")]))
        .await
        .unwrap();
    let copy = create(&remote, &request(&[&repo("mirror:v1")], &[&repo("app:v1")]))
        .await
        .unwrap();
    assert_eq!(copy.bytes, first.bytes);
    assert_eq!(copy.descriptor.digest, first.descriptor.digest);
    assert!(remote.tagged(&repo("mirror"), "v1").is_some());
}

#[tokio::test]
async fn a_single_image_becomes_an_index_unless_prefer_index_is_off() {
    let remote = MemoryRemote::default();
    let amd = remote.put_image(&repo("app"), "amd64", "linux", "amd64");
    let mut req = request(&[&repo("copy:v1")], &[&repo("app:amd64")]);
    let created = create(&remote, &req).await.unwrap();
    assert_eq!(created.descriptor.media_type, MediaType::OciIndex);
    req.prefer_index = false;
    let created = create(&remote, &req).await.unwrap();
    assert_eq!(created.descriptor.digest, amd.digest);
    let (mt, _) = remote.tagged(&repo("copy"), "v1").unwrap();
    assert_eq!(mt, MediaType::OciManifest);
}

#[tokio::test]
async fn digests_and_descriptors_use_the_default_repository() {
    let remote = MemoryRemote::default();
    let amd = remote.put_image(&repo("app"), "amd64", "linux", "amd64");
    let arm = remote.put_image(&repo("app"), "arm64", "linux", "arm64");
    let desc = format!(
        r#"{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{}","size":{},"platform":{{"os":"linux","architecture":"arm","variant":"v7"}}}}"#,
        arm.digest, arm.size
    );
    let mut req = request(&[&repo("app:multi")], &[amd.digest.as_str(), &desc]);
    req.dry_run = true;
    let created = create(&remote, &req).await.unwrap();
    let index = manifest_json::parse_index(&created.bytes).unwrap();
    assert_eq!(
        index.manifests[1].platform.as_ref().unwrap().format(),
        "linux/arm/v7",
        "a platform given in the descriptor wins over the config's"
    );
    assert!(remote.tagged(&repo("app"), "multi").is_none(), "dry run");
}

#[tokio::test]
async fn docker_manifests_make_a_docker_manifest_list() {
    let remote = MemoryRemote::default();
    let r = repo("d");
    let config = remote.put_blob(
        &r,
        MediaType::DockerConfig,
        br#"{"architecture":"amd64","os":"linux"}"#,
    );
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": config, "layers": [],
    });
    remote.put_manifest(
        &r,
        Some("v1"),
        MediaType::DockerManifest,
        &serde_json::to_vec(&manifest).unwrap(),
    );
    let mut req = request(&[], &[&format!("{r}:v1")]);
    req.dry_run = true;
    let created = create(&remote, &req).await.unwrap();
    assert_eq!(created.descriptor.media_type, MediaType::DockerManifestList);
}

#[tokio::test]
async fn inspect_renders_like_buildx() {
    let remote = MemoryRemote::default();
    let amd = remote.put_image(&repo("app"), "amd64", "linux", "amd64");
    let arm = remote.put_image(&repo("app"), "arm64", "linux", "arm64");
    let created = create(
        &remote,
        &request(
            &[&repo("app:multi")],
            &[&repo("app:amd64"), &repo("app:arm64")],
        ),
    )
    .await
    .unwrap();
    let inspection = inspect(&remote, &repo("app:multi")).await.unwrap();
    let text = render_inspection(&inspection);
    let expected = format!(
        "Name:      {REG}/app:multi\n\
         MediaType: application/vnd.oci.image.index.v1+json\n\
         Digest:    {}\n           \n\
         Manifests: \n\
         \x20 Name:      {REG}/app:multi@{}\n\
         \x20 MediaType: application/vnd.oci.image.manifest.v1+json\n\
         \x20 Platform:  linux/amd64\n             \n\
         \x20 Name:      {REG}/app:multi@{}\n\
         \x20 MediaType: application/vnd.oci.image.manifest.v1+json\n\
         \x20 Platform:  linux/arm64\n",
        created.descriptor.digest, amd.digest, arm.digest
    );
    assert_eq!(text, expected);

    let single = inspect(&remote, &repo("app:amd64")).await.unwrap();
    assert_eq!(
        render_inspection(&single),
        format!(
            "Name:      {REG}/app:amd64\nMediaType: application/vnd.oci.image.manifest.v1+json\nDigest:    {}\n",
            amd.digest
        )
    );

    let input = template_input(&remote, &inspection).await.unwrap();
    let value = serde_json::to_value(&input).unwrap();
    assert_eq!(
        value["manifest"]["digest"],
        created.descriptor.digest.as_str()
    );
    assert_eq!(value["image"]["linux/arm64"]["architecture"], "arm64");
    assert_eq!(
        render_template("{{.Manifest.Digest}}", &value).unwrap(),
        created.descriptor.digest.as_str()
    );
}

#[test]
fn inspection_shows_os_version_features_urls_and_annotations_like_buildx() {
    let reference = Reference::parse_normalized("reg.example/win:1").unwrap();
    let mut win = Platform::new("windows", "amd64");
    win.os_version = "10.0.20348.1".into();
    win.os_features = vec!["win32k".into()];
    let mut entry = Descriptor::of_bytes(MediaType::DockerManifest, b"m").with_platform(win);
    entry.urls = vec!["https://a.example/x".into()];
    entry.annotations = BTreeMap::from([
        (
            "org.opencontainers.image.created".to_owned(),
            "2024".to_owned(),
        ),
        ("a".to_owned(), "b".to_owned()),
    ]);
    let bare = Descriptor::of_bytes(MediaType::OciManifest, b"n");
    let index = Index::new_docker(vec![entry.clone(), bare.clone()]);
    let bytes = manifest_json::to_go_json(&index, "   ").unwrap();
    let inspection = Inspection {
        name: "reg.example/win:1".into(),
        reference: reference.clone(),
        fetched: Fetched {
            descriptor: Descriptor::of_bytes(MediaType::DockerManifestList, &bytes),
            bytes,
        },
        index: Some(index),
    };
    let text = render_inspection(&inspection);
    // buildx flushes its tabwriter at "Annotations:", so the entries after it start a new
    // alignment block (narrower here, as no longer label follows).
    let tail = text.split("Manifests: \n").nth(1).unwrap();
    assert_eq!(
        tail,
        format!(
            "  Name:        {reference}@{}\n\
             \x20 MediaType:   application/vnd.docker.distribution.manifest.v2+json\n\
             \x20 Platform:    windows/amd64\n\
             \x20 OSVersion:   10.0.20348.1\n\
             \x20 OSFeatures:  win32k\n\
             \x20 URLs:        https://a.example/x\n\
             \x20 Annotations: \n\
             \x20   a:                                b\n\
             \x20   org.opencontainers.image.created: 2024\n\
             \x20            \n\
             \x20 Name:      {reference}@{}\n\
             \x20 MediaType: application/vnd.oci.image.manifest.v1+json\n",
            entry.digest, bare.digest
        )
    );
}

#[tokio::test]
async fn annotations_go_on_the_oci_index_and_its_descriptors() {
    let remote = MemoryRemote::default();
    remote.put_image(&repo("app"), "amd64", "linux", "amd64");
    remote.put_image(&repo("app"), "arm64", "linux", "arm64");
    let mut req = request(&[], &[&repo("app:amd64"), &repo("app:arm64")]);
    req.dry_run = true;
    req.annotations = vec![
        "index:org.opencontainers.image.title=t".into(),
        "manifest-descriptor[linux/amd64]:k=v".into(),
    ];
    let created = create(&remote, &req).await.unwrap();
    let index = manifest_json::parse_index(&created.bytes).unwrap();
    assert_eq!(index.annotations["org.opencontainers.image.title"], "t");
    assert_eq!(index.manifests[0].annotations["k"], "v");
    assert!(index.manifests[1].annotations.is_empty());
    req.annotations = vec!["bad".into()];
    let err = create(&remote, &req).await.unwrap_err();
    assert_eq!(
        crate::error::chain(&err),
        "failed to parse annotations: invalid annotation \"bad\", expected key=value"
    );
}
