//! Annotations, as `hoist build --annotation` and the `annotation*.` keys of `-o` give
//! them: parsed with buildx's grammar and messages, written on the manifests, their index
//! entries, the index and its `index.json` entry, read back from a real registry and from
//! OCI layouts; BuildKit's rules for what cannot be annotated.

use hoist_export::{
    Annotation, AnnotationTarget, Annotations, ExportRequest, Exporter, Output, PlatformImage,
};
use hoist_oci::{Index, Manifest, MediaType, OciLayout, Platform, Reference};
use hoist_registry::{Credentials, RegistryClient, RegistryConfig, Repository};

use crate::export::Fixture;

fn flags(values: &[&str]) -> Annotations {
    Annotations::parse_flags(values).unwrap()
}

#[test]
fn annotation_flags_follow_buildx_grammar() {
    let amd = Platform::parse("linux/amd64").unwrap();
    let parsed = flags(&[
        "org.plain=p",
        "index,manifest:org.both=b",
        "manifest[linux/amd64]:org.amd=a=b",
        "manifest-descriptor:org.md=d",
        "index-descriptor:org.id=i",
        "",
    ]);
    let expect = |target, platform: Option<&Platform>, key: &str, value: &str| Annotation {
        target,
        platform: platform.cloned(),
        key: key.to_owned(),
        value: value.to_owned(),
    };
    assert_eq!(
        parsed.0,
        [
            expect(AnnotationTarget::Manifest, None, "org.plain", "p"),
            expect(AnnotationTarget::Index, None, "org.both", "b"),
            expect(AnnotationTarget::Manifest, None, "org.both", "b"),
            expect(AnnotationTarget::Manifest, Some(&amd), "org.amd", "a=b"),
            expect(AnnotationTarget::ManifestDescriptor, None, "org.md", "d"),
            expect(AnnotationTarget::IndexDescriptor, None, "org.id", "i"),
        ]
    );

    let cases = [
        ("novalue", "invalid annotation \"novalue\": expected key=value"),
        (
            "Manifest:k=v",
            "invalid annotation \"Manifest:k=v\": invalid annotation type \"Manifest\", expected type and optional platform in square brackets",
        ),
        (
            "manifest[linux/amd64:k=v",
            "invalid annotation \"manifest[linux/amd64:k=v\": invalid annotation type \"manifest[linux/amd64\", expected type and optional platform in square brackets",
        ),
        (
            "config:k=v",
            "invalid annotation \"config:k=v\": unknown annotation type \"config\"",
        ),
        (
            "index[linux/amd64]:k=v",
            "invalid annotation \"index[linux/amd64]:k=v\": a platform cannot be given for index annotations",
        ),
    ];
    for (value, message) in cases {
        let err = Annotations::parse_flags(&[value]).unwrap_err();
        assert_eq!(err.to_string(), message, "{value}");
    }
}

/// Exports `images` to the output `spec` with `--annotation` values added.
async fn export_with(
    exporter: &Exporter,
    images: &[PlatformImage],
    spec: &str,
    annotations: &[&str],
) -> Result<hoist_export::ExportResult, hoist_export::Error> {
    let mut output = Output::parse(spec).unwrap();
    output.add_annotations(&flags(annotations));
    let request = ExportRequest {
        images: images.to_vec(),
        outputs: vec![output],
    };
    exporter.export(&request).await
}

#[tokio::test]
async fn pushed_index_and_manifests_carry_their_annotations() {
    let Some(registry) = hoist_testkit::registry::TestRegistry::start() else {
        return;
    };
    let host = registry.host();
    let fx = Fixture::new();
    let images = fx.images(&["linux/amd64", "linux/arm/v7"]);
    let client = RegistryClient::new(RegistryConfig::default(), Credentials::anonymous());
    let exporter = Exporter::new(fx.store().clone()).with_registry(client.clone());
    export_with(
        &exporter,
        &images,
        &format!("type=registry,name={host}/annotated:1,annotation-index.org.opt=from-o"),
        &[
            "org.plain=p",
            "index:org.idx=i",
            "manifest[linux/arm/v7]:org.arm=only-arm",
            "manifest-descriptor:org.md=d",
        ],
    )
    .await
    .unwrap();

    let reference = Reference::parse_normalized(&format!("{host}/annotated:1")).unwrap();
    let root = client.resolve(&reference).await.unwrap();
    assert_eq!(root.descriptor.media_type, MediaType::OciIndex);
    let index: Index = serde_json::from_slice(&root.bytes).unwrap();
    assert_eq!(index.annotations["org.idx"], "i");
    assert_eq!(index.annotations["org.opt"], "from-o");
    assert!(!index.annotations.contains_key("org.plain"));
    let repo = Repository::from(&reference);
    for entry in &index.manifests {
        let platform = entry.platform.as_ref().unwrap().format();
        assert_eq!(entry.annotations["org.md"], "d", "{platform}");
        let fetched = client.fetch_manifest(&repo, entry).await.unwrap();
        let manifest: Manifest = serde_json::from_slice(&fetched.bytes).unwrap();
        assert_eq!(manifest.annotations["org.plain"], "p", "{platform}");
        assert_eq!(
            manifest.annotations.get("org.arm").map(String::as_str),
            (platform == "linux/arm/v7").then_some("only-arm"),
            "{platform}"
        );
        assert!(!manifest.annotations.contains_key("org.idx"));
    }
}

#[tokio::test]
async fn oci_layouts_carry_descriptor_annotations_in_index_json() {
    let fx = Fixture::new();
    let exporter = Exporter::new(fx.store().clone());

    // One platform: the manifest is the root; its descriptor annotations are its entry's.
    let single = fx.path("single");
    export_with(
        &exporter,
        &fx.images(&["linux/amd64"]),
        &format!("type=oci,tar=false,dest={},name=app:1", single.display()),
        &["manifest:org.m=m", "manifest-descriptor:org.md=d"],
    )
    .await
    .unwrap();
    let mut layout = OciLayout::open_dir(&single).unwrap();
    let entry = layout.find("1").unwrap().clone();
    assert_eq!(entry.annotations["org.md"], "d");
    let manifest = layout.read_manifest(&entry).unwrap();
    assert_eq!(manifest.annotations["org.m"], "m");

    // Two platforms: the index's own entry has the index-descriptor annotations.
    let multi = fx.path("multi");
    export_with(
        &exporter,
        &fx.images(&["linux/amd64", "linux/arm64"]),
        &format!("type=oci,tar=false,dest={},name=app:2", multi.display()),
        &["index-descriptor:org.id=x", "index:org.i=y"],
    )
    .await
    .unwrap();
    let mut layout = OciLayout::open_dir(&multi).unwrap();
    let entry = layout.find("2").unwrap().clone();
    assert_eq!(entry.annotations["org.id"], "x");
    let index: Index = serde_json::from_slice(&layout.read_blob(&entry.digest).unwrap()).unwrap();
    assert_eq!(index.annotations["org.i"], "y");
    assert!(!index.annotations.contains_key("org.id"));
}

#[tokio::test]
async fn docker_media_types_and_what_buildkit_refuses() {
    let fx = Fixture::new();
    let exporter = Exporter::new(fx.store().clone());
    let one = fx.images(&["linux/amd64"]);
    let two = fx.images(&["linux/amd64", "linux/arm64"]);

    // Manifest annotations keep Docker media types: BuildKit writes them into the Docker
    // schema 2 manifest rather than refusing them.
    let result = export_with(
        &exporter,
        &one,
        "type=image,oci-mediatypes=false,name=docker-typed",
        &["org.m=m"],
    )
    .await
    .unwrap();
    let root = result.image().unwrap().descriptor.clone();
    assert_eq!(root.media_type, MediaType::DockerManifest);
    let manifest: Manifest =
        serde_json::from_slice(&fx.store().read_blob(&root.digest).unwrap()).unwrap();
    assert_eq!(manifest.annotations["org.m"], "m");

    // Index and descriptor annotations need OCI types, which BuildKit then forces.
    let result = export_with(
        &exporter,
        &two,
        "type=image,oci-mediatypes=false,name=forced-oci",
        &["index:org.i=i"],
    )
    .await
    .unwrap();
    assert_eq!(
        result.image().unwrap().descriptor.media_type,
        MediaType::OciIndex
    );

    // A single manifest has no index to annotate.
    for flag in ["index:org.i=i", "index-descriptor:org.i=i"] {
        let err = export_with(&exporter, &one, "type=image,name=single", &[flag])
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "index annotations not supported for single platform export",
            "{flag}"
        );
    }
    // A platform the build did not make.
    let err = export_with(
        &exporter,
        &two,
        "type=image,name=other",
        &["manifest[linux/s390x]:org.m=m"],
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid annotation: no platform linux/s390x found in source"
    );
}
