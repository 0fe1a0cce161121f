//! Docker Image Manifest V2 Schema 2 (conformance folder `docker-manifest-v2-2`): the
//! canonical serialisations of distribution's tests are reproduced byte for byte with Go's
//! `json.MarshalIndent(v, "", "   ")`, and the spec examples parse and validate.
#![allow(clippy::print_stdout)] // conformance runners print their counts

use hoist_oci::{go_json, Digest, Index, Manifest, MediaType, Parsed};
use serde_json::Value;

#[test]
fn docker_manifest_v2_2_conformance() {
    let Some(dir) = hoist_testkit::conformance_dir("docker-manifest-v2-2") else {
        return;
    };
    let canonical = dir.join("canonical-serialization");
    let index: Value =
        serde_json::from_slice(&std::fs::read(canonical.join("index.json")).unwrap()).unwrap();
    let mut total = 0;
    let mut failures = Vec::new();
    for c in index.as_array().unwrap() {
        total += 1;
        let file = c["file"].as_str().unwrap();
        let raw = std::fs::read(canonical.join(file)).unwrap();
        let media_type = MediaType::from_string(c["media_type"].as_str().unwrap());
        let reserialised = if media_type.is_index() {
            Parsed::<Index>::from_bytes(raw.clone())
                .map(|p| (p.descriptor(), go_json::to_vec_indent(p.value(), "", "   ")))
        } else {
            Parsed::<Manifest>::from_bytes(raw.clone())
                .map(|p| (p.descriptor(), go_json::to_vec_indent(p.value(), "", "   ")))
        };
        let want_digest = Digest::parse(c["sha256"].as_str().unwrap()).unwrap();
        let ok = match &reserialised {
            Ok((desc, Ok(bytes))) => {
                *bytes == raw
                    && desc.digest == want_digest
                    && desc.size == c["size"].as_u64().unwrap()
                    && desc.media_type == media_type
            }
            _ => false,
        };
        if !ok {
            let got = match &reserialised {
                Ok((_, Ok(bytes))) => String::from_utf8_lossy(bytes).into_owned(),
                other => format!("{other:?}"),
            };
            failures.push(format!("{file}: got\n{got}"));
        }
    }
    for (file, is_index) in [
        ("manifest-list-example.json", true),
        ("image-manifest-example.json", false),
    ] {
        total += 1;
        let raw = std::fs::read(dir.join("spec-examples").join(file)).unwrap();
        let got = if is_index {
            Parsed::<Index>::from_bytes(raw).map(|_| ())
        } else {
            Parsed::<Manifest>::from_bytes(raw).map(|_| ())
        };
        if let Err(e) = got {
            failures.push(format!("{file}: {e}"));
        }
    }
    println!(
        "docker-manifest-v2-2: {}/{total} passed",
        total - failures.len()
    );
    assert!(
        failures.is_empty(),
        "failing cases:\n{}",
        failures.join("\n")
    );
}
