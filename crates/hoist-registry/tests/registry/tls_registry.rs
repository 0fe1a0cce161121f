//! Against the real registry serving HTTPS with a certificate from a throwaway CA: unknown
//! to the client by default, trusted through `ca = [...]`, or accepted with `insecure`.

use std::path::Path;

use crate::common::{build_image, temp_store};
use hoist_oci::{Platform, Reference};
use hoist_registry::{Credentials, RegistryClient, RegistryConfig, RegistryError};
use hoist_testkit::registry::{RegistryOptions, TestRegistry};

fn settings(host: &str, table: &str) -> RegistryConfig {
    let text = format!("[registry.\"{host}\"]\n{table}\n");
    let mut config = RegistryConfig::parse(&text, Path::new("registries.toml")).unwrap();
    config.retry.attempts = 2;
    config.retry.initial_delay = std::time::Duration::from_millis(10);
    config
}

#[tokio::test]
async fn https_registry_with_custom_ca_or_insecure() {
    let Some(reg) = TestRegistry::start_with(RegistryOptions {
        basic_auth: None,
        tls: true,
    }) else {
        return;
    };
    let host = reg.host();
    let ca = reg.tls_ca().unwrap();
    let amd64 = Platform::new("linux", "amd64");
    let target = Reference::parse_docker(&format!("{host}/secure/app:1")).unwrap();
    let (_a, src) = temp_store();
    let image = build_image(&src, &amd64, &[vec![("f", b"over tls".to_vec())]]);

    // The CA is unknown: the TLS error is what is reported (not the plain-HTTP fallback's).
    let untrusted = RegistryClient::new(settings(&host, ""), Credentials::anonymous());
    let err = untrusted.resolve(&target).await.unwrap_err();
    assert!(matches!(err, RegistryError::Http { .. }), "{err}");
    assert!(err.to_string().starts_with("GET https://"), "{err}");

    // Trusted through `ca`: push and pull.
    let trusted = RegistryClient::new(
        settings(&host, &format!("ca = [{:?}]", ca.display().to_string())),
        Credentials::anonymous(),
    );
    trusted
        .push_image(&src, &image.manifest, &target)
        .await
        .unwrap();
    let (_b, dst) = temp_store();
    trusted.pull_image(&target, &amd64, &dst).await.unwrap();
    assert_eq!(
        dst.read_blob(&image.layers[0].digest).unwrap(),
        src.read_blob(&image.layers[0].digest).unwrap()
    );

    // `insecure = true`: HTTPS without verification.
    let insecure =
        RegistryClient::new(settings(&host, "insecure = true"), Credentials::anonymous());
    let resolved = insecure.resolve(&target).await.unwrap();
    assert_eq!(resolved.descriptor.digest, image.manifest.digest);

    // `http = true` against an HTTPS port fails; a CA file that is not PEM is named.
    let plain = RegistryClient::new(settings(&host, "http = true"), Credentials::anonymous());
    assert!(plain.resolve(&target).await.is_err());
    let bad_ca = reg.dir().join("not-a-cert.pem");
    std::fs::write(&bad_ca, "hello").unwrap();
    let broken = RegistryClient::new(
        settings(&host, &format!("ca = [{:?}]", bad_ca.display().to_string())),
        Credentials::anonymous(),
    );
    let err = broken.resolve(&target).await.unwrap_err();
    assert!(matches!(err, RegistryError::Tls { .. }), "{err}");
    assert!(err.to_string().contains("not-a-cert.pem"), "{err}");
}
