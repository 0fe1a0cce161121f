//! `hoistd --config FILE`: settings shaped like buildkitd.toml, so a buildkitd.toml can be
//! read as it is (keys hoistd does not know are ignored):
//!
//! ```toml
//! root = "/var/lib/hoist"
//! [grpc]
//! address = ["unix:///run/hoistd/hoistd.sock", "tcp://0.0.0.0:1234"]
//! [grpc.tls]
//! cert = "/etc/hoistd/server.pem"
//! key = "/etc/hoistd/server.key"
//! ca = "/etc/hoistd/ca.pem"          # clients must present a certificate it signed
//! [worker.oci]
//! platforms = ["linux/amd64", "linux/arm64"]   # what ListWorkers advertises
//! [registry."docker.io"]                        # hoist-registry's tables
//! mirrors = ["mirror.example.com"]
//! ```
//!
//! Command-line flags win over the file.

use std::path::{Path, PathBuf};

use hoist_oci::Platform;
use hoist_registry::RegistryConfig;

use crate::error::{Error, Result};

/// The daemon's settings from a config file.
#[derive(Debug, Clone, Default)]
pub struct DaemonConfig {
    /// `root`: the state dir.
    pub root: Option<PathBuf>,
    /// `[grpc] address`.
    pub addresses: Vec<String>,
    /// `[grpc.tls]`.
    pub tls: TlsFiles,
    /// `[worker.oci] platforms`: advertised instead of what this machine detects.
    pub platforms: Vec<Platform>,
    /// `[registry."host"]` tables.
    pub registry: RegistryConfig,
}

/// PEM files for TLS on tcp listeners.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// The server certificate (`cert`, `--tlscert`).
    pub cert: Option<PathBuf>,
    /// Its key (`key`, `--tlskey`).
    pub key: Option<PathBuf>,
    /// The CA client certificates must be signed by (`ca`, `--tlscacert`): mutual TLS.
    pub ca: Option<PathBuf>,
}

impl DaemonConfig {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<DaemonConfig> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::ConfigRead {
            path: path.to_owned(),
            source,
        })?;
        DaemonConfig::parse(&text, path)
    }

    /// Parses config text; `path` is only used in errors.
    pub fn parse(text: &str, path: &Path) -> Result<DaemonConfig> {
        let registry = RegistryConfig::parse(text, path)?;
        // The registry parser has checked the TOML syntax already.
        let doc: toml::Table = text
            .parse()
            .map_err(|err: toml::de::Error| invalid(path, "(file)", err.message()))?;
        let mut config = DaemonConfig {
            registry,
            ..DaemonConfig::default()
        };
        if let Some(root) = doc.get("root") {
            config.root = Some(PathBuf::from(string(path, "root", root)?));
        }
        if let Some(grpc) = doc.get("grpc") {
            let grpc = table(path, "grpc", grpc)?;
            if let Some(address) = grpc.get("address") {
                config.addresses = strings(path, "grpc.address", address)?;
            }
            if let Some(tls) = grpc.get("tls") {
                let tls = table(path, "grpc.tls", tls)?;
                let file = |key: &str| -> Result<Option<PathBuf>> {
                    tls.get(key)
                        .map(|v| string(path, &format!("grpc.tls.{key}"), v).map(PathBuf::from))
                        .transpose()
                };
                config.tls = TlsFiles {
                    cert: file("cert")?,
                    key: file("key")?,
                    ca: file("ca")?,
                };
            }
        }
        let oci = doc
            .get("worker")
            .map(|w| table(path, "worker", w))
            .transpose()?
            .and_then(|w| w.get("oci"));
        if let Some(oci) = oci {
            let oci = table(path, "worker.oci", oci)?;
            if let Some(platforms) = oci.get("platforms") {
                for specifier in strings(path, "worker.oci.platforms", platforms)? {
                    let platform = Platform::parse(&specifier).map_err(|err| {
                        invalid(
                            path,
                            "worker.oci.platforms",
                            &format!("{specifier:?}: {err}"),
                        )
                    })?;
                    config.platforms.push(platform.normalize());
                }
            }
        }
        Ok(config)
    }
}

fn invalid(path: &Path, key: &str, message: &str) -> Error {
    Error::ConfigInvalid {
        path: path.to_owned(),
        key: key.to_owned(),
        message: message.to_owned(),
    }
}

fn table<'a>(path: &Path, key: &str, value: &'a toml::Value) -> Result<&'a toml::Table> {
    value.as_table().ok_or_else(|| {
        invalid(
            path,
            key,
            &format!("expected a table, found {}", value.type_str()),
        )
    })
}

fn string(path: &Path, key: &str, value: &toml::Value) -> Result<String> {
    value.as_str().map(str::to_owned).ok_or_else(|| {
        invalid(
            path,
            key,
            &format!("expected a string, found {}", value.type_str()),
        )
    })
}

fn strings(path: &Path, key: &str, value: &toml::Value) -> Result<Vec<String>> {
    match value {
        toml::Value::Array(items) => items.iter().map(|item| string(path, key, item)).collect(),
        other => Ok(vec![string(path, key, other)?]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_buildkitd_toml() {
        let text = r#"
debug = true
root = "/srv/hoist"
[grpc]
address = ["unix:///tmp/h.sock", "tcp://127.0.0.1:1234"]
uid = 0
[grpc.tls]
cert = "/c.pem"
key = "/c.key"
ca = "/ca.pem"
[worker.oci]
enabled = true
platforms = ["linux/amd64", "linux/arm64/v8"]
gc = true
[worker.containerd]
enabled = false
[registry."localhost:5000"]
http = true
"#;
        let config = DaemonConfig::parse(text, Path::new("buildkitd.toml")).unwrap();
        assert_eq!(config.root, Some(PathBuf::from("/srv/hoist")));
        assert_eq!(
            config.addresses,
            ["unix:///tmp/h.sock", "tcp://127.0.0.1:1234"]
        );
        assert_eq!(config.tls.ca, Some(PathBuf::from("/ca.pem")));
        let platforms: Vec<String> = config.platforms.iter().map(Platform::to_string).collect();
        assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);
        assert_eq!(
            config.registry.host("localhost:5000").plain_http,
            Some(true)
        );
    }

    #[test]
    fn errors_name_the_key() {
        let err = DaemonConfig::parse("[grpc]\naddress = 3\n", Path::new("h.toml")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid config h.toml: grpc.address: expected a string, found integer"
        );
        let err = DaemonConfig::parse(
            "[worker.oci]\nplatforms = [\"linux/\"]\n",
            Path::new("h.toml"),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("worker.oci.platforms: \"linux/\""),
            "{err}"
        );
    }
}
