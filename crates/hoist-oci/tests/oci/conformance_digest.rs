//! opencontainers/go-digest `TestParseDigest` vectors (conformance folder
//! `opencontainers-go-digest`).
#![allow(clippy::print_stdout)] // conformance runners print their counts

use hoist_oci::{Digest, DigestErrorKind};
use serde_json::Value;

#[test]
fn go_digest_parse_conformance() {
    let Some(dir) = hoist_testkit::conformance_dir("opencontainers-go-digest") else {
        return;
    };
    let text = std::fs::read_to_string(dir.join("parse-digest.json")).unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    let cases = doc["cases"].as_array().unwrap();
    let mut failures = Vec::new();
    for case in cases {
        let input = case["input"].as_str().unwrap();
        let want = case["error"].as_str();
        let got = Digest::parse(input);
        let ok = match (want, &got) {
            (None, Ok(d)) => {
                Some(d.algorithm()) == case["algorithm"].as_str()
                    && Some(d.encoded()) == case["encoded"].as_str()
                    && Digest::parse(&format!("{d}")).ok().as_ref() == Some(d)
                    && Digest::from_parts(d.algorithm(), d.encoded())
                        .map(|x| x.as_str() == input)
                        .unwrap_or(false)
            }
            (Some(name), Err(e)) => {
                let kind = match name {
                    "ErrDigestInvalidFormat" => DigestErrorKind::InvalidFormat,
                    "ErrDigestInvalidLength" => DigestErrorKind::InvalidLength,
                    _ => DigestErrorKind::Unsupported,
                };
                e.digest_kind() == Some(kind)
            }
            _ => false,
        };
        if !ok {
            failures.push(format!("{input:?}: want {want:?}, got {got:?}"));
        }
    }
    println!(
        "go-digest parse: {}/{} passed",
        cases.len() - failures.len(),
        cases.len()
    );
    assert!(
        failures.is_empty(),
        "failing cases:\n{}",
        failures.join("\n")
    );
}
