//! `-o` parsing: every exporter, the shorthands, and errors naming the key.

use std::path::PathBuf;

use hoist_export::{AnnotationTarget, DockerDest, FileDest, ImageFormat, LayoutDest, Output};
use hoist_oci::{Compression, Platform, Reference};

fn parse(spec: &str) -> Output {
    match Output::parse(spec) {
        Ok(output) => output,
        Err(e) => panic!("{spec}: {e}"),
    }
}

fn err(spec: &str) -> String {
    match Output::parse(spec) {
        Ok(output) => panic!("{spec} parsed as {output:?}"),
        Err(e) => e.to_string(),
    }
}

fn name(s: &str) -> Reference {
    Reference::parse_docker(s).unwrap()
}

#[test]
fn image_with_every_option() {
    let Output::Image(o) = parse(
        r#"type=image,"name=r.io/a:1,r.io/b:2",push=true,push-by-digest=true,oci-mediatypes=false,compression=zstd,compression-level=9,force-compression=true,rewrite-timestamp=true,annotation.org.example.key=v,annotation-index.idx=i,annotation[linux/arm64].only=arm,annotation-manifest-descriptor.md=d,store=false"#,
    ) else {
        panic!("not an image output")
    };
    assert_eq!(o.names, vec![name("r.io/a:1"), name("r.io/b:2")]);
    assert!(o.push && o.push_by_digest && !o.store);
    assert_eq!(
        o.format,
        ImageFormat {
            oci_media_types: false,
            compression: Compression::Zstd,
            compression_level: Some(9),
            force_compression: true,
            rewrite_timestamp: true,
        }
    );
    let arm = Platform::parse("linux/arm64").unwrap();
    let amd = Platform::parse("linux/amd64").unwrap();
    let manifest = o
        .annotations
        .for_target(AnnotationTarget::Manifest, Some(&arm));
    assert_eq!(
        manifest.get("org.example.key").map(String::as_str),
        Some("v")
    );
    assert_eq!(manifest.get("only").map(String::as_str), Some("arm"));
    let manifest_amd = o
        .annotations
        .for_target(AnnotationTarget::Manifest, Some(&amd));
    assert!(!manifest_amd.contains_key("only"));
    assert_eq!(
        o.annotations
            .for_target(AnnotationTarget::Index, None)
            .get("idx")
            .map(String::as_str),
        Some("i")
    );
    assert!(o
        .annotations
        .for_target(AnnotationTarget::ManifestDescriptor, Some(&amd))
        .contains_key("md"));
}

#[test]
fn unquoted_names_continue_after_name() {
    let Output::Image(o) = parse("type=image,name=r.io/a:1,r.io/b:2,push=true") else {
        panic!()
    };
    assert_eq!(o.names, vec![name("r.io/a:1"), name("r.io/b:2")]);
    assert!(o.push);
    assert_eq!(
        err("type=image,push=true,stray"),
        "invalid output \"type=image,push=true,stray\": invalid value \"stray\", expected key=value"
    );
}

#[test]
fn tags_become_names_of_image_outputs_without_names() {
    let tags = [name("app:1")];
    let mut docker = parse("type=docker,dest=x.tar");
    docker.apply_tags(&tags);
    let Output::Docker(o) = docker else { panic!() };
    assert_eq!(o.names, tags);
    let mut named = parse("type=image,name=other");
    named.apply_tags(&tags);
    let Output::Image(o) = named else { panic!() };
    assert_eq!(o.names, vec![name("other")]);
}

#[test]
fn image_defaults_are_oci_gzip_not_pushed() {
    let Output::Image(o) = parse("type=image,name=app") else {
        panic!()
    };
    assert_eq!(o.format, ImageFormat::OCI);
    assert!(!o.push && o.store);
    assert_eq!(o.names, vec![name("docker.io/library/app:latest")]);
}

#[test]
fn registry_is_image_with_push() {
    let Output::Image(o) = parse("type=registry,name=localhost:5000/app:1") else {
        panic!()
    };
    assert!(o.push);
    assert_eq!(
        err("type=registry"),
        "push requires at least one name (name=registry/repository:tag)"
    );
}

#[test]
fn oci_tar_and_dir() {
    let Output::Oci(o) = parse("type=oci,dest=out.tar,name=app:1") else {
        panic!()
    };
    assert_eq!(
        o.dest,
        LayoutDest::Tar(FileDest::File(PathBuf::from("out.tar")))
    );
    assert_eq!(o.format, ImageFormat::OCI);
    let Output::Oci(o) = parse("type=oci,dest=layout,tar=false") else {
        panic!()
    };
    assert_eq!(o.dest, LayoutDest::Dir(PathBuf::from("layout")));
    let Output::Oci(o) = parse("type=oci") else {
        panic!()
    };
    assert_eq!(o.dest, LayoutDest::Tar(FileDest::Stdout));
    assert_eq!(
        err("type=oci,tar=false"),
        "dest is required for oci exporter"
    );
    assert_eq!(
        err("type=oci,tar=false,dest=-"),
        "dest cannot be stdout for oci exporter"
    );
}

#[test]
fn docker_load_file_and_stdout() {
    let Output::Docker(o) = parse("type=docker,name=app") else {
        panic!()
    };
    assert_eq!(o.dest, DockerDest::Load);
    assert_eq!(o.format, ImageFormat::DOCKER);
    let Output::Docker(o) = parse("type=docker,dest=x.tar,oci-mediatypes=true") else {
        panic!()
    };
    assert_eq!(
        o.dest,
        DockerDest::File(FileDest::File(PathBuf::from("x.tar")))
    );
    assert!(o.format.oci_media_types);
    let Output::Docker(o) = parse("type=docker,dest=-") else {
        panic!()
    };
    assert_eq!(o.dest, DockerDest::File(FileDest::Stdout));
}

#[test]
fn local_tar_and_shorthands() {
    let Output::Local(o) = parse("type=local,dest=out,platform-split=false") else {
        panic!()
    };
    assert_eq!(o.dest, PathBuf::from("out"));
    assert_eq!(o.platform_split, Some(false));
    let Output::Local(o) = parse("outdir") else {
        panic!()
    };
    assert_eq!((o.dest, o.platform_split), (PathBuf::from("outdir"), None));
    let Output::Tar(o) = parse("-") else { panic!() };
    assert_eq!(o.dest, FileDest::Stdout);
    let Output::Tar(o) = parse("type=tar,dest=fs.tar,platform-split=true") else {
        panic!()
    };
    assert_eq!(o.dest, FileDest::File(PathBuf::from("fs.tar")));
    assert_eq!(o.platform_split, Some(true));
    assert_eq!(err("type=local"), "dest is required for local exporter");
    assert_eq!(
        err("type=local,dest=-"),
        "dest cannot be stdout for local exporter"
    );
}

#[test]
fn cacheonly_exports_nothing() {
    assert_eq!(parse("type=cacheonly"), Output::CacheOnly);
    assert!(err("type=cacheonly,dest=x").contains("invalid dest=\"x\": unknown key"));
}

#[test]
fn push_and_load_shorthands() {
    let tags = [name("localhost:5000/app:1")];
    let Output::Image(o) = Output::push_shorthand(&tags) else {
        panic!()
    };
    assert!(o.push && o.names == tags);
    let Output::Docker(o) = Output::load_shorthand(&tags) else {
        panic!()
    };
    assert_eq!(o.dest, DockerDest::Load);
}

#[test]
fn errors_name_the_key_and_value() {
    let cases = [
        ("type=image,colour=red", "image output: invalid colour=\"red\": unknown key"),
        ("type=oci,dest=x,bogus=1", "oci output: invalid bogus=\"1\": unknown key"),
        ("type=local,dest=x,name=a", "local output: invalid name=\"a\": unknown key"),
        (
            "type=image,compression=brotli",
            "image output: invalid compression=\"brotli\": expected gzip, zstd or uncompressed",
        ),
        (
            "type=image,push=maybe",
            "image output: invalid push=\"maybe\": expected true or false",
        ),
        (
            "type=oci,dest=x,rewrite-timestamp=yes",
            "oci output: invalid rewrite-timestamp=\"yes\": expected true or false",
        ),
        (
            "type=local,dest=x,rewrite-timestamp=true",
            "local output: invalid rewrite-timestamp=\"true\": unknown key",
        ),
        (
            "type=image,compression=gzip,compression-level=12",
            "image output: invalid compression-level=\"12\": out of range 0..=9 for this compression",
        ),
        (
            "type=image,compression-level=x",
            "image output: invalid compression-level=\"x\": expected an integer",
        ),
        (
            "type=tar,platform-split=yes",
            "tar output: invalid platform-split=\"yes\": expected true or false",
        ),
        (
            "type=image,name=app/UPPER",
            "image output: invalid name=\"app/UPPER\": invalid image name",
        ),
        (
            "type=image,annotation-bogus.k=v",
            "image output: invalid annotation-bogus.k=\"v\": unknown annotation type",
        ),
        ("dest=x", "invalid output \"dest=x\": type is required for output"),
        ("type=ftp,dest=x", "invalid output \"type=ftp,dest=x\": unknown output type \"ftp\""),
        ("", "invalid output \"\": empty output"),
        ("type=oci,\"dest=x", "invalid output \"type=oci,\\\"dest=x\": unterminated quoted field"),
        ("type=oci,\"dest=x\"y", "invalid output \"type=oci,\\\"dest=x\\\"y\": unexpected 'y' after a quoted field"),
        ("type=oci,dest=x\"y", "invalid output \"type=oci,dest=x\\\"y\": bare \" in non-quoted-field"),
    ];
    let mut failures = Vec::new();
    for (spec, want) in cases {
        match Output::parse(spec) {
            Ok(o) => failures.push(format!("{spec}: parsed as {o:?}")),
            Err(e) if e.to_string().starts_with(want) => {}
            Err(e) => failures.push(format!("{spec}: got {e:?}, want {want:?}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn only_one_output_may_write_stdout() {
    let e = Output::parse_all(&["type=tar,dest=-", "type=oci"]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "multiple outputs configured to write to stdout"
    );
    assert_eq!(
        Output::parse_all(&["type=tar", "type=oci,dest=x.tar"])
            .unwrap()
            .len(),
        2
    );
}
