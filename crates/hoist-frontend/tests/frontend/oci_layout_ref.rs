//! `oci-layout://DIR[:TAG|@DIGEST]` named contexts: parsed as buildx cuts them, and refused
//! by planning until the caller has imported them (the frontend does no I/O).

use std::path::PathBuf;

use hoist_dockerfile::parser::parse;
use hoist_frontend::{plan, BuildOptions, LayoutSelect, NamedContext, OciLayoutRef};
use hoist_oci::{Digest, Platform};

#[test]
fn oci_layout_values_parse_as_buildx_cuts_them() {
    let digest = format!("sha256:{}", "ab".repeat(32));
    let cases = [
        ("dir", "dir", LayoutSelect::Tag("latest".into())),
        ("/abs/dir:v1", "/abs/dir", LayoutSelect::Tag("v1".into())),
        (
            &*format!("rel/dir@{digest}"),
            "rel/dir",
            LayoutSelect::Digest(Digest::parse(&digest).unwrap()),
        ),
        // A digest wins over a tag, as in buildx.
        (
            &*format!("d:v2@{digest}"),
            "d",
            LayoutSelect::Digest(Digest::parse(&digest).unwrap()),
        ),
    ];
    for (value, dir, select) in cases {
        let parsed = OciLayoutRef::parse(value).unwrap();
        assert_eq!(parsed.dir, PathBuf::from(dir), "{value}");
        assert_eq!(parsed.select, select, "{value}");
    }
    assert_eq!(
        OciLayoutRef::parse("d:v1").unwrap().to_string(),
        "oci-layout://d:v1"
    );
    for (value, message) in [
        ("", "oci-layout://: no layout directory"),
        ("d:", "oci-layout://d:: empty tag"),
    ] {
        assert_eq!(OciLayoutRef::parse(value).unwrap_err(), message);
    }
    assert!(OciLayoutRef::parse("d@sha256:zz")
        .unwrap_err()
        .starts_with("oci-layout://d@sha256:zz: invalid digest"));
}

#[test]
fn an_oci_layout_not_imported_is_refused_by_planning() {
    let dockerfile = parse("FROM base\n").unwrap();
    let mut options = BuildOptions::new(Platform::parse("linux/amd64").unwrap());
    options.named_contexts.insert(
        "base".into(),
        NamedContext::OciLayout(OciLayoutRef::parse("layout:v1").unwrap()),
    );
    let err = plan(&dockerfile, &options).unwrap_err();
    assert_eq!(
        err.to_string(),
        "oci-layout://layout:v1 was not imported into the build's store before planning"
    );
}
