use super::*;
use crate::remote::memory::MemoryRemote;

const REG: &str = "reg.example:5000";

fn setup() -> (tempfile::TempDir, ManifestListStore, MemoryRemote) {
    let dir = tempfile::tempdir().unwrap();
    let store = ManifestListStore::new(dir.path().join("manifests"));
    let remote = MemoryRemote::default();
    remote.put_image(&format!("{REG}/app"), "amd64", "linux", "amd64");
    remote.put_image(&format!("{REG}/other"), "arm64", "linux", "arm64");
    (dir, store, remote)
}

fn args(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| format!("{REG}/{s}")).collect()
}

#[tokio::test]
async fn create_stores_members_docker_style_and_refuses_without_amend() {
    let (_dir, store, remote) = setup();
    let list = format!("{REG}/app:multi");
    let msg = create(&store, &remote, &list, &args(&["app:amd64"]), false)
        .await
        .unwrap();
    assert_eq!(msg, format!("Created manifest list {list}"));
    // docker's file-safe names.
    let file = store
        .root()
        .join("reg.example%5000#app%multi")
        .join("reg.example%5000#app%amd64");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(json["Ref"], format!("{REG}/app:amd64"));
    assert_eq!(json["Descriptor"]["platform"]["architecture"], "amd64");
    assert!(json["OCIManifest"].is_object());
    assert!(json["Raw"].is_string());

    let err = create(&store, &remote, &list, &args(&["other:arm64"]), false)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "refusing to amend an existing manifest list with no --amend flag"
    );
    create(&store, &remote, &list, &args(&["other:arm64"]), true)
        .await
        .unwrap();
    let target = normalize_reference(&list).unwrap();
    assert_eq!(store.get_list(&target).unwrap().len(), 2);
}

#[tokio::test]
async fn a_manifest_list_cannot_be_a_member() {
    let (_dir, store, remote) = setup();
    let list = format!("{REG}/app:multi");
    create(&store, &remote, &list, &args(&["app:amd64"]), false)
        .await
        .unwrap();
    push(&store, &remote, &list, false).await.unwrap();
    let err = create(
        &store,
        &remote,
        &format!("{REG}/app:nested"),
        &args(&["app:multi"]),
        false,
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("{REG}/app:multi is a manifest list")
    );
}

#[tokio::test]
async fn annotate_sets_platform_and_checks_os_arch() {
    let (_dir, store, remote) = setup();
    let list = format!("{REG}/app:multi");
    let member = format!("{REG}/app:amd64");
    create(&store, &remote, &list, std::slice::from_ref(&member), false)
        .await
        .unwrap();
    let ann = Annotation {
        arch: "arm".into(),
        variant: "v7".into(),
        os_features: vec!["f1".into(), "f1".into()],
        ..Annotation::default()
    };
    annotate(&store, &list, &member, &ann).unwrap();
    let stored = store
        .get(
            &normalize_reference(&list).unwrap(),
            &normalize_reference(&member).unwrap(),
        )
        .unwrap();
    let p = stored.descriptor.platform.unwrap();
    assert_eq!(p.format(), "linux/arm/v7");
    assert_eq!(p.os_features, ["f1"]);

    let bad = Annotation {
        os: "linux".into(),
        arch: "sparc".into(),
        ..Annotation::default()
    };
    assert_eq!(
        annotate(&store, &list, &member, &bad)
            .unwrap_err()
            .to_string(),
        "manifest entry for image has unsupported os/arch combination: linux/sparc"
    );
    assert_eq!(
        annotate(&store, &list, &format!("{REG}/nope:1"), &ann)
            .unwrap_err()
            .to_string(),
        format!("manifest for image {REG}/nope:1 does not exist in {list}")
    );
}

#[tokio::test]
async fn push_mounts_foreign_members_and_pushes_a_docker_list() {
    let (_dir, store, remote) = setup();
    let list = format!("{REG}/app:multi");
    create(
        &store,
        &remote,
        &list,
        &args(&["app:amd64", "other:arm64"]),
        false,
    )
    .await
    .unwrap();
    let out = push(&store, &remote, &list, true).await.unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0].starts_with(&format!("Pushed ref {REG}/app@sha256:")));
    let (mt, bytes) = remote.tagged(&format!("{REG}/app"), "multi").unwrap();
    assert_eq!(mt, MediaType::DockerManifestList);
    assert_eq!(lines[1], hoist_oci::Digest::sha256_of(&bytes).as_str());
    let text = String::from_utf8(bytes).unwrap();
    assert!(text.starts_with("{\n   \"schemaVersion\": 2,\n   \"mediaType\": \"application/vnd.docker.distribution.manifest.list.v2+json\",\n   \"manifests\": [\n      {\n         \"mediaType\": \"application/vnd.oci.image.manifest.v1+json\",\n         \"size\": "), "{text}");
    assert!(text.contains("\"platform\": {\n            \"architecture\": \"arm64\",\n            \"os\": \"linux\"\n         }"));
    // --purge removed the local list.
    let err = store
        .get_list(&normalize_reference(&list).unwrap())
        .unwrap_err();
    assert_eq!(err.to_string(), format!("No such manifest: {list}"));
}

#[tokio::test]
async fn push_refuses_other_registries_and_missing_platforms() {
    let (_dir, store, remote) = setup();
    remote.put_image("elsewhere.example/x", "1", "linux", "amd64");
    let list = format!("{REG}/app:multi");
    create(
        &store,
        &remote,
        &list,
        &["elsewhere.example/x:1".to_owned()],
        false,
    )
    .await
    .unwrap();
    assert_eq!(
        push(&store, &remote, &list, false).await.unwrap_err().to_string(),
        format!("cannot use source images from a different registry than the target image: elsewhere.example != {REG}")
    );
    assert_eq!(
        push(&store, &remote, &format!("{REG}/none:1"), false)
            .await
            .unwrap_err()
            .to_string(),
        format!("No such manifest: {REG}/none:1")
    );
}

#[tokio::test]
async fn inspect_local_list_member_and_remote() {
    let (_dir, store, remote) = setup();
    let list = format!("{REG}/app:multi");
    let member = format!("{REG}/app:amd64");
    create(&store, &remote, &list, std::slice::from_ref(&member), false)
        .await
        .unwrap();
    let out = inspect(&store, &remote, None, &list, false).await.unwrap();
    assert!(out.starts_with("{\n   \"schemaVersion\": 2,"), "{out}");
    let out = inspect(&store, &remote, Some(&list), &member, false)
        .await
        .unwrap();
    assert!(out.starts_with("{\n\t\"schemaVersion\": 2,"), "{out}");
    let out = inspect(&store, &remote, Some(&list), &member, true)
        .await
        .unwrap();
    assert!(out.starts_with("{\n\t\"Ref\": "), "{out}");
    // Not a local list: the registry's manifest.
    let out = inspect(&store, &remote, None, &member, false)
        .await
        .unwrap();
    assert!(out.contains("\"layers\""), "{out}");
}

#[tokio::test]
async fn rm_removes_existing_lists_and_reports_the_rest() {
    let (_dir, store, remote) = setup();
    let list = format!("{REG}/app:multi");
    create(&store, &remote, &list, &args(&["app:amd64"]), false)
        .await
        .unwrap();
    let err = remove(&store, &[list.clone(), format!("{REG}/gone:1")]).unwrap_err();
    assert_eq!(err.to_string(), format!("No such manifest: {REG}/gone:1"));
    assert!(store
        .get_list(&normalize_reference(&list).unwrap())
        .is_err());
}

#[test]
fn rm_reports_each_failure_on_its_own_line_and_keeps_them_typed() {
    let (_dir, store, _remote) = setup();
    let err = remove(&store, &[format!("{REG}/gone:1"), "BAD".to_owned()]).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "No such manifest: {REG}/gone:1\n\
             invalid reference \"BAD\": repository name must be lowercase"
        )
    );
    let Error::Remove(errors) = err else {
        panic!("not a remove error: {err:?}");
    };
    assert!(
        matches!(&errors[0], Error::NotFound { reference } if *reference == format!("{REG}/gone:1"))
    );
    assert!(matches!(&errors[1], Error::Oci(_)));
}
