//! opencontainers/image-spec schema tests (conformance folder `oci-image-spec`): valid
//! documents must decode and validate, invalid ones must be rejected by typed decoding plus
//! validation; the spec examples and the Docker Hub backwards-compatibility documents must pass.
#![allow(clippy::print_stdout)] // conformance runners print their counts

use std::path::Path;

use hoist_oci::{Descriptor, Digest, Document, ImageConfig, ImageLayout, Index, Manifest, Parsed};
use serde_json::Value;

fn check<T: Document>(raw: Vec<u8>) -> Result<(), String> {
    Parsed::<T>::from_bytes(raw)
        .and_then(|parsed| parsed.value().validate_schema())
        .map_err(|e| e.to_string())
}

fn check_media_type(media_type: &str, raw: Vec<u8>) -> Result<(), String> {
    match media_type {
        "application/vnd.oci.image.manifest.v1+json" => check::<Manifest>(raw),
        "application/vnd.oci.image.index.v1+json" => check::<Index>(raw),
        "application/vnd.oci.image.config.v1+json" => check::<ImageConfig>(raw),
        "application/vnd.oci.descriptor.v1+json" => check::<Descriptor>(raw),
        "application/vnd.oci.layout.header.v1+json" => check::<ImageLayout>(raw),
        other => panic!("no validator for {other}"),
    }
}

#[derive(Default)]
struct Tally {
    total: usize,
    failures: Vec<String>,
}

impl Tally {
    fn expect(&mut self, name: &str, expect_fail: bool, got: Result<(), String>) {
        self.total += 1;
        match (expect_fail, got) {
            (false, Err(e)) => self
                .failures
                .push(format!("{name}: rejected a valid document: {e}")),
            (true, Ok(())) => self
                .failures
                .push(format!("{name}: accepted an invalid document")),
            _ => {}
        }
    }
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

#[test]
fn oci_image_spec_conformance() {
    let Some(dir) = hoist_testkit::conformance_dir("oci-image-spec") else {
        return;
    };
    let tests = dir.join("schema-tests");
    let cases: Value = serde_json::from_slice(&read(&tests.join("cases.json"))).unwrap();
    let mut t = Tally::default();
    for kind in [
        "manifest",
        "config",
        "descriptor",
        "imageindex",
        "imagelayout",
    ] {
        let media_type = cases[kind]["media_type"].as_str().unwrap();
        for c in cases[kind]["cases"].as_array().unwrap() {
            let file = c["file"].as_str().unwrap();
            let got = check_media_type(media_type, read(&tests.join(kind).join(file)));
            t.expect(
                &format!("{kind}/{file}"),
                c["expect_fail"].as_bool().unwrap(),
                got,
            );
        }
    }
    let compat = &cases["backwards_compatibility"];
    let compat_map = compat["compat_map"].as_object().unwrap();
    for (name, test) in compat["tests"].as_object().unwrap() {
        let media_type = match test["validator"].as_str().unwrap() {
            "ValidatorMediaTypeImageIndex" => "application/vnd.oci.image.index.v1+json",
            "ValidatorMediaTypeManifest" => "application/vnd.oci.image.manifest.v1+json",
            _ => "application/vnd.oci.image.config.v1+json",
        };
        for c in test["cases"].as_array().unwrap() {
            let file = c["file"].as_str().unwrap();
            let raw = read(&tests.join("backwards_compatibility").join(file));
            let want = Digest::parse(c["sha256_of_file_bytes"].as_str().unwrap()).unwrap();
            let digest_ok = Digest::sha256_of(&raw) == want;
            let mut text = String::from_utf8(raw).unwrap();
            for (docker, oci) in compat_map {
                text = text.replace(docker.as_str(), oci.as_str().unwrap());
            }
            let got = if digest_ok {
                check_media_type(media_type, text.into_bytes())
            } else {
                Err(format!("sha256 of {file} is not {want}"))
            };
            t.expect(
                &format!("{name}/{file}"),
                c["expect_fail"].as_bool().unwrap(),
                got,
            );
        }
    }
    for c in cases["spec_examples"]["cases"].as_array().unwrap() {
        let file = c["file"].as_str().unwrap();
        let raw = read(&dir.join("spec-examples").join(file));
        let got = check_media_type(c["media_type"].as_str().unwrap(), raw);
        t.expect(
            &format!("spec-examples/{file}"),
            c["expect_fail"].as_bool().unwrap(),
            got,
        );
    }
    println!(
        "oci-image-spec: {}/{} passed",
        t.total - t.failures.len(),
        t.total
    );
    assert!(
        t.failures.is_empty(),
        "failing cases:\n{}",
        t.failures.join("\n")
    );
}
