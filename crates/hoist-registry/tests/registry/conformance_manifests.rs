//! Conformance: real manifests with known digests (distribution's canonical serialisations
//! and Docker Hub documents from the OCI image-spec tests) served by an in-process registry,
//! resolved by tag. Each must come back with its recorded digest, size and media type, both
//! when the registry sends the right `Content-Type` and when it sends a generic one (then the
//! type comes from the document itself).

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::common::hostile::{Hostile, Resp};
use bytes::Bytes;
use hoist_oci::{media_types, Reference};
use hoist_registry::{Credentials, RegistryClient, RegistryConfig};

struct Case {
    name: String,
    bytes: Bytes,
    media_type: String,
    digest: String,
    size: u64,
}

fn cases() -> Option<Vec<Case>> {
    let mut out = Vec::new();
    let canonical =
        hoist_testkit::conformance_dir("docker-manifest-v2-2")?.join("canonical-serialization");
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(canonical.join("index.json")).unwrap()).unwrap();
    for entry in index.as_array().unwrap() {
        let file = entry["file"].as_str().unwrap();
        out.push(Case {
            name: format!("docker-manifest-v2-2/{file}"),
            bytes: std::fs::read(canonical.join(file)).unwrap().into(),
            media_type: entry["media_type"].as_str().unwrap().to_owned(),
            digest: entry["sha256"].as_str().unwrap().to_owned(),
            size: entry["size"].as_u64().unwrap(),
        });
    }
    let compat = hoist_testkit::conformance_dir("oci-image-spec")?.join("schema-tests");
    let table: serde_json::Value =
        serde_json::from_slice(&std::fs::read(compat.join("cases.json")).unwrap()).unwrap();
    let tests = table["backwards_compatibility"]["tests"]
        .as_object()
        .unwrap();
    for (test, media_type) in [
        (
            "TestBackwardsCompatibilityImageIndex",
            media_types::DOCKER_MANIFEST_LIST,
        ),
        (
            "TestBackwardsCompatibilityManifest",
            media_types::DOCKER_MANIFEST,
        ),
    ] {
        for case in tests[test]["cases"].as_array().unwrap() {
            let file = case["file"].as_str().unwrap();
            let bytes: Bytes = std::fs::read(compat.join("backwards_compatibility").join(file))
                .unwrap()
                .into();
            out.push(Case {
                name: format!("oci-image-spec/backwards_compatibility/{file}"),
                size: bytes.len() as u64,
                bytes,
                media_type: media_type.to_owned(),
                digest: case["sha256_of_file_bytes"].as_str().unwrap().to_owned(),
            });
        }
    }
    Some(out)
}

#[tokio::test]
async fn registry_manifest_conformance() {
    let Some(cases) = cases() else {
        return;
    };
    // Tag `c<i>-typed` sends the media type, `c<i>-generic` sends application/octet-stream.
    let mut served: BTreeMap<String, (Bytes, String)> = BTreeMap::new();
    for (i, case) in cases.iter().enumerate() {
        served.insert(
            format!("c{i}-typed"),
            (case.bytes.clone(), case.media_type.clone()),
        );
        served.insert(
            format!("c{i}-generic"),
            (case.bytes.clone(), "application/octet-stream".to_owned()),
        );
        served.insert(
            case.digest.clone(),
            (case.bytes.clone(), case.media_type.clone()),
        );
    }
    let served = Arc::new(served);
    let server = Hostile::start(move |req| {
        if req.path == "/v2/" {
            return Resp::ok("{}");
        }
        let Some(target) = req.path.strip_prefix("/v2/conformance/manifests/") else {
            return Resp::status(404);
        };
        match served.get(target) {
            // No HEAD support, so the GET by tag is verified against the bytes alone.
            Some(_) if req.method == "HEAD" => Resp::status(405),
            Some((bytes, content_type)) => {
                Resp::ok(bytes.clone()).header("content-type", content_type)
            }
            None => Resp::status(404),
        }
    })
    .await;
    let client = RegistryClient::new(RegistryConfig::default(), Credentials::anonymous());
    let mut failures = Vec::new();
    let mut total = 0;
    for (i, case) in cases.iter().enumerate() {
        for flavour in ["typed", "generic"] {
            total += 1;
            let label = format!("{} ({flavour} content-type)", case.name);
            let reference =
                Reference::parse_docker(&format!("{}/conformance:c{i}-{flavour}", server.host()))
                    .unwrap();
            match client.resolve(&reference).await {
                Ok(resolved) => {
                    let d = &resolved.descriptor;
                    let got = (
                        d.digest.to_string(),
                        d.size,
                        d.media_type.as_str().to_owned(),
                    );
                    let want = (case.digest.clone(), case.size, case.media_type.clone());
                    if got != want || resolved.bytes != case.bytes {
                        failures.push(format!("{label}: got {got:?}, want {want:?}"));
                    }
                }
                Err(err) => failures.push(format!("{label}: {err}")),
            }
        }
        // By digest too: the bytes are checked against the digest asked for.
        total += 1;
        let reference =
            Reference::parse_docker(&format!("{}/conformance@{}", server.host(), case.digest))
                .unwrap();
        if let Err(err) = client.resolve(&reference).await {
            failures.push(format!("{} (by digest): {err}", case.name));
        }
    }
    eprintln!(
        "registry-manifests: {}/{total} passed",
        total - failures.len()
    );
    assert!(
        failures.is_empty(),
        "failing cases:\n{}",
        failures.join("\n")
    );
}
