//! Registry settings: which hosts speak plain HTTP, skip TLS verification, trust extra CAs,
//! present client certificates, or have pull mirrors, plus the client's tuning (retries,
//! concurrency, chunk sizes, manifest limit).
//!
//! The file is shaped like BuildKit's `buildkitd.toml` registry tables, and other top-level
//! keys are ignored so that a real `buildkitd.toml` can be read as it is:
//!
//! ```toml
//! [registry."docker.io"]
//! mirrors = ["mirror.example.com"]
//!
//! [registry."registry.internal:5000"]
//! http = true                      # plain HTTP
//! insecure = true                  # HTTPS without certificate verification
//! ca = ["/etc/hoist/internal-ca.pem"]
//! [[registry."registry.internal:5000".keypair]]
//! key = "/etc/hoist/client.key"
//! cert = "/etc/hoist/client.pem"
//! ```
//!
//! Hosts on loopback (`localhost`, `127.0.0.0/8`, `::1`) may use plain HTTP without saying so,
//! as Docker allows: HTTPS is tried first and HTTP used when the TLS handshake fails.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{RegistryError, Result};
use crate::progress::ProgressHook;
use crate::retry::RetryPolicy;

/// Settings for one registry host (`[registry."host"]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostConfig {
    /// Pull mirrors tried in order before the host itself (`mirrors`).
    pub mirrors: Vec<String>,
    /// `Some(true)`: plain HTTP only; `Some(false)`: HTTPS only; `None`: HTTPS, with the
    /// loopback fallback to HTTP (`http`).
    pub plain_http: Option<bool>,
    /// HTTPS without certificate verification (`insecure`).
    pub insecure: bool,
    /// Extra CA certificates (PEM files) to trust for this host (`ca`).
    pub ca: Vec<PathBuf>,
    /// Client certificates presented to this host (`keypair`).
    pub keypairs: Vec<KeyPair>,
}

/// A client certificate and its key, both PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPair {
    /// The private key (`key`).
    pub key: PathBuf,
    /// The certificate chain (`cert`).
    pub cert: PathBuf,
}

/// Everything a [`crate::RegistryClient`] needs to know besides credentials.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// Per-host settings, keyed by host as written in references (`docker.io`, `host:port`).
    pub hosts: BTreeMap<String, HostConfig>,
    /// Retry behaviour.
    pub retry: RetryPolicy,
    /// Blobs transferred at once by one pull or push.
    pub max_concurrent_transfers: usize,
    /// Blobs up to this size are pushed in one PUT; larger ones in PATCH chunks.
    pub monolithic_push_limit: u64,
    /// Size of one PATCH chunk.
    pub chunk_size: u64,
    /// Manifests (and indexes) larger than this are refused.
    pub max_manifest_size: u64,
    /// Timeout for connecting to a registry.
    pub connect_timeout: Duration,
    /// Longest wait for the next bytes of an answer; a stalled transfer then fails (and is
    /// retried like a cut connection).
    pub read_timeout: Duration,
    /// The `User-Agent` sent.
    pub user_agent: String,
    /// Where blob transfer progress is reported, if anywhere.
    pub progress: Option<ProgressHook>,
}

/// The default manifest limit: 4 MiB, as containerd and distribution use.
pub const DEFAULT_MAX_MANIFEST_SIZE: u64 = 4 * 1024 * 1024;

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            hosts: BTreeMap::new(),
            retry: RetryPolicy::default(),
            max_concurrent_transfers: 4,
            monolithic_push_limit: 8 * 1024 * 1024,
            chunk_size: 8 * 1024 * 1024,
            max_manifest_size: DEFAULT_MAX_MANIFEST_SIZE,
            connect_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(120),
            user_agent: concat!("hoist/", env!("CARGO_PKG_VERSION")).to_owned(),
            progress: None,
        }
    }
}

impl RegistryConfig {
    /// Reads the `[registry."host"]` tables of a TOML file; other top-level keys are ignored.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| RegistryError::ConfigRead {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses settings text; `path` is only used in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let invalid = |key: &str, message: String| RegistryError::ConfigInvalid {
            path: path.to_owned(),
            key: key.to_owned(),
            message,
        };
        let doc: toml::Table = text.parse().map_err(|err: toml::de::Error| {
            let line = err
                .span()
                .and_then(|span| text.get(..span.start))
                .map(|before| before.matches('\n').count() + 1);
            let key = line.map_or("(file)".to_owned(), |l| format!("line {l}"));
            invalid(&key, err.message().to_owned())
        })?;
        let mut config = RegistryConfig::default();
        let Some(registries) = doc.get("registry") else {
            return Ok(config);
        };
        let registries = registries
            .as_table()
            .ok_or_else(|| invalid("registry", expected("a table", registries)))?;
        for (host, table) in registries {
            let prefix = format!("registry.{host:?}");
            let table = table
                .as_table()
                .ok_or_else(|| invalid(&prefix, expected("a table", table)))?;
            let mut hc = HostConfig::default();
            for (key, value) in table {
                let at = format!("{prefix}.{key}");
                match key.as_str() {
                    "mirrors" => hc.mirrors = string_list(value).map_err(|m| invalid(&at, m))?,
                    "http" => {
                        hc.plain_http = Some(
                            value
                                .as_bool()
                                .ok_or_else(|| invalid(&at, expected("a boolean", value)))?,
                        )
                    }
                    "insecure" => {
                        hc.insecure = value
                            .as_bool()
                            .ok_or_else(|| invalid(&at, expected("a boolean", value)))?
                    }
                    "ca" => {
                        hc.ca = string_list(value)
                            .map_err(|m| invalid(&at, m))?
                            .into_iter()
                            .map(PathBuf::from)
                            .collect()
                    }
                    "keypair" => hc.keypairs = keypairs(value).map_err(|m| invalid(&at, m))?,
                    other => {
                        return Err(invalid(
                            &at,
                            format!(
                            "unknown key {other:?} (known: mirrors, http, insecure, ca, keypair)"
                        ),
                        ))
                    }
                }
            }
            for mirror in &hc.mirrors {
                if mirror.is_empty() || mirror.contains("://") {
                    return Err(invalid(
                        &format!("{prefix}.mirrors"),
                        format!("mirror {mirror:?} must be a host[:port], without a scheme"),
                    ));
                }
            }
            config.hosts.insert(host.clone(), hc);
        }
        Ok(config)
    }

    /// The settings for `host` (defaults when it has no table).
    pub fn host(&self, host: &str) -> HostConfig {
        self.hosts.get(host).cloned().unwrap_or_default()
    }

    /// The HTTP client for `host` (as written in references: `docker.io`, `host:port`): this
    /// config's user agent and timeouts, up to 10 redirects, proxies from the environment,
    /// and the host's `insecure`, `ca` and first `keypair`. Its CA and key files are read now.
    pub fn http_client(&self, host: &str) -> Result<reqwest::Client> {
        let hc = self.host(host);
        let mut builder = reqwest::Client::builder()
            .user_agent(self.user_agent.clone())
            .connect_timeout(self.connect_timeout)
            .read_timeout(self.read_timeout)
            .redirect(reqwest::redirect::Policy::limited(10));
        if hc.insecure {
            builder = builder.danger_accept_invalid_certs(true);
        }
        for ca in &hc.ca {
            let tls = |message: String| RegistryError::Tls {
                host: host.to_owned(),
                path: ca.clone(),
                message,
            };
            let pem = std::fs::read(ca).map_err(|err| tls(err.to_string()))?;
            let certs =
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|err| tls(err.to_string()))?;
            if certs.is_empty() {
                return Err(tls("no certificate in the file".to_owned()));
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        if let Some(pair) = hc.keypairs.first() {
            let tls = |path: &PathBuf, message: String| RegistryError::Tls {
                host: host.to_owned(),
                path: path.clone(),
                message,
            };
            let mut pem = std::fs::read(&pair.cert).map_err(|e| tls(&pair.cert, e.to_string()))?;
            pem.push(b'\n');
            pem.extend(std::fs::read(&pair.key).map_err(|e| tls(&pair.key, e.to_string()))?);
            let identity =
                reqwest::Identity::from_pem(&pem).map_err(|e| tls(&pair.cert, e.to_string()))?;
            builder = builder.identity(identity);
        }
        builder.build().map_err(|err| RegistryError::Tls {
            host: host.to_owned(),
            path: PathBuf::new(),
            message: err.to_string(),
        })
    }
}

fn expected(what: &str, found: &toml::Value) -> String {
    format!("expected {what}, found {}", found.type_str())
}

fn string_list(value: &toml::Value) -> std::result::Result<Vec<String>, String> {
    let items = value
        .as_array()
        .ok_or_else(|| expected("an array of strings", value))?;
    items
        .iter()
        .map(|item| {
            item.as_str()
                .map(str::to_owned)
                .ok_or_else(|| expected("an array of strings", item))
        })
        .collect()
}

fn keypairs(value: &toml::Value) -> std::result::Result<Vec<KeyPair>, String> {
    let items = value
        .as_array()
        .ok_or_else(|| expected("an array of {key, cert} tables", value))?;
    let mut out = Vec::new();
    for item in items {
        let table = item
            .as_table()
            .ok_or_else(|| expected("a {key, cert} table", item))?;
        let field = |name: &str| -> std::result::Result<PathBuf, String> {
            match table.get(name) {
                Some(v) => v
                    .as_str()
                    .map(PathBuf::from)
                    .ok_or_else(|| format!("{name}: {}", expected("a string", v))),
                None => Err(format!("missing {name}")),
            }
        };
        if let Some(extra) = table.keys().find(|k| *k != "key" && *k != "cert") {
            return Err(format!("unknown key {extra:?} (known: key, cert)"));
        }
        out.push(KeyPair {
            key: field("key")?,
            cert: field("cert")?,
        });
    }
    Ok(out)
}

/// Whether `host` (`name`, `name:port`, `[v6]:port`) is on loopback: `localhost`,
/// `127.0.0.0/8` or `::1`. Such registries may speak plain HTTP without configuration.
pub fn is_loopback(host: &str) -> bool {
    let name = strip_port(host);
    if name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    name.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .map(|ip| ip.is_loopback())
        .unwrap_or(false)
}

/// `host` without its `:port` (IPv6 brackets kept off the port only).
fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        // A bare IPv6 address has several colons and no port.
        Some((name, port)) if !name.contains(':') && port.chars().all(|c| c.is_ascii_digit()) => {
            name
        }
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<RegistryConfig> {
        RegistryConfig::parse(text, Path::new("/etc/hoist/registries.toml"))
    }

    #[test]
    fn reads_buildkitd_shaped_tables() {
        let cfg = parse(
            r#"
debug = true
[worker.oci]
enabled = true
[registry."docker.io"]
mirrors = ["mirror.example.com", "10.0.0.1:5000"]
[registry."reg.internal:5000"]
http = true
insecure = true
ca = ["/etc/ca.pem"]
[[registry."reg.internal:5000".keypair]]
key = "/k.pem"
cert = "/c.pem"
"#,
        )
        .unwrap();
        assert_eq!(
            cfg.host("docker.io").mirrors,
            ["mirror.example.com", "10.0.0.1:5000"]
        );
        let internal = cfg.host("reg.internal:5000");
        assert_eq!(internal.plain_http, Some(true));
        assert!(internal.insecure);
        assert_eq!(internal.ca, [PathBuf::from("/etc/ca.pem")]);
        assert_eq!(internal.keypairs[0].cert, PathBuf::from("/c.pem"));
        assert_eq!(cfg.host("elsewhere"), HostConfig::default());
    }

    #[test]
    fn bad_value_names_file_and_key() {
        let err = parse("[registry.\"r.example\"]\nhttp = \"yes\"\n").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("/etc/hoist/registries.toml"), "{text}");
        assert!(text.contains("registry.\"r.example\".http"), "{text}");
        assert!(text.contains("expected a boolean, found string"), "{text}");
    }

    #[test]
    fn unknown_key_and_syntax_errors_are_named() {
        let err = parse("[registry.\"r\"]\ninsecure-skip = true\n").unwrap_err();
        assert!(
            err.to_string().contains("registry.\"r\".insecure-skip"),
            "{err}"
        );
        let err = parse("[registry.\"r\"\nhttp = true\n").unwrap_err();
        assert!(err.to_string().contains("registries.toml"), "{err}");
        let err = parse("[registry.\"r\"]\nmirrors = [\"https://m\"]\n").unwrap_err();
        assert!(err.to_string().contains("without a scheme"), "{err}");
    }

    #[test]
    fn loopback_hosts() {
        for host in [
            "localhost",
            "localhost:5000",
            "127.0.0.1",
            "127.1.2.3:80",
            "[::1]:5000",
            "::1",
        ] {
            assert!(is_loopback(host), "{host}");
        }
        for host in [
            "docker.io",
            "10.0.0.1:5000",
            "[fe80::1]:5000",
            "localhost.example",
        ] {
            assert!(!is_loopback(host), "{host}");
        }
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let p = RetryPolicy {
            attempts: 5,
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(350),
        };
        assert_eq!(p.delay(0), Duration::from_millis(100));
        assert_eq!(p.delay(1), Duration::from_millis(200));
        assert_eq!(p.delay(2), Duration::from_millis(350));
        assert_eq!(p.delay(40), Duration::from_millis(350));
    }
}
