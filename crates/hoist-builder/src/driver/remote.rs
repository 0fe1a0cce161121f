//! [`RemoteDriver`]: a BuildKit-speaking daemon (hoistd, buildkitd) at an [`Endpoint`],
//! `unix://PATH` or `tcp://HOST:PORT`, with buildx's driver options `cacert`, `cert`, `key`,
//! `servername` (mutual TLS; paths absolute and present) and `default-load`.
//!
//! In this slice a node's status is whether its endpoint accepts a connection within
//! [`STATUS_TIMEOUT`](super::STATUS_TIMEOUT); the gRPC handshake (and so the daemon's
//! version and platforms) comes with hoistd's client.

use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use super::{Driver, Features, Info, Status, REMOTE, STATUS_TIMEOUT};
use crate::error::{Error, Result};
use crate::node_group::Node;

/// Where a remote daemon listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `unix://PATH`.
    Unix(PathBuf),
    /// `tcp://HOST:PORT`.
    Tcp {
        /// Host name or address.
        host: String,
        /// Port.
        port: u16,
    },
}

/// Schemes buildx accepts for a BuildKit endpoint that hoist does not dial yet.
const SCHEMES_NOT_YET: &[&str] = &["docker-container", "kube-pod", "npipe", "ssh"];

impl Endpoint {
    /// Parses `unix://PATH` or `tcp://HOST:PORT`.
    pub fn parse(endpoint: &str) -> Result<Endpoint> {
        let bad = |message: String| Error::BadEndpoint {
            endpoint: endpoint.to_owned(),
            message,
        };
        let Some((scheme, rest)) = endpoint.split_once("://") else {
            return Err(bad(
                "unrecognized url scheme (want unix:// or tcp://)".to_owned()
            ));
        };
        match scheme {
            "unix" => {
                if !rest.starts_with('/') {
                    return Err(bad("the socket path must be absolute".to_owned()));
                }
                Ok(Endpoint::Unix(PathBuf::from(rest)))
            }
            "tcp" => {
                let rest = rest.trim_end_matches('/');
                let (host, port) = rest
                    .rsplit_once(':')
                    .ok_or_else(|| bad("missing port (tcp://HOST:PORT)".to_owned()))?;
                let port = port
                    .parse::<u16>()
                    .map_err(|_| bad(format!("invalid port {port:?}")))?;
                let host = host.trim_start_matches('[').trim_end_matches(']');
                if host.is_empty() || rest.contains('/') {
                    return Err(bad("expected tcp://HOST:PORT".to_owned()));
                }
                Ok(Endpoint::Tcp {
                    host: host.to_owned(),
                    port,
                })
            }
            _ if SCHEMES_NOT_YET.contains(&scheme) => Err(bad(format!(
                "url scheme {scheme} is not available yet in hoist (use unix:// or tcp://)"
            ))),
            _ => Err(bad(format!("unrecognized url scheme {scheme}"))),
        }
    }

    /// Opens and closes a connection: `Ok` when something listens there.
    pub fn probe(&self) -> std::io::Result<()> {
        match self {
            Endpoint::Unix(path) => UnixStream::connect(path).map(drop),
            Endpoint::Tcp { host, port } => {
                let mut last = None;
                for addr in (host.as_str(), *port).to_socket_addrs()? {
                    match TcpStream::connect_timeout(&addr, STATUS_TIMEOUT) {
                        Ok(_) => return Ok(()),
                        Err(e) => last = Some(e),
                    }
                }
                Err(last.unwrap_or_else(|| {
                    std::io::Error::new(std::io::ErrorKind::NotFound, "no address for host")
                }))
            }
        }
    }
}

/// Mutual TLS settings of a remote node (used by the next slice's client).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// The server name to verify (default: the endpoint's host).
    pub server_name: String,
    /// The CA certificate file.
    pub ca_cert: PathBuf,
    /// The client certificate file.
    pub cert: Option<PathBuf>,
    /// The client key file.
    pub key: Option<PathBuf>,
}

/// A daemon at an endpoint.
#[derive(Debug)]
pub struct RemoteDriver {
    endpoint: Endpoint,
    raw_endpoint: String,
    tls: Option<TlsOptions>,
    default_load: bool,
}

impl RemoteDriver {
    /// Checks the node's endpoint and options as buildx's remote driver does, and that the
    /// TLS files exist.
    pub fn new(node: &Node) -> Result<RemoteDriver> {
        if !node.files.is_empty() {
            return Err(Error::Invalid(
                "setting config file is not supported for remote driver".to_owned(),
            ));
        }
        if !node.buildkitd_flags.is_empty() {
            return Err(Error::Invalid(
                "setting buildkit flags is not supported for remote driver".to_owned(),
            ));
        }
        let endpoint = Endpoint::parse(&node.endpoint)?;
        let mut tls = TlsOptions::default();
        let mut tls_enabled = false;
        let mut ca_cert = None;
        let mut default_load = false;
        for (key, value) in &node.driver_opts {
            let bad = |message: String| Error::BadDriverOpt {
                key: key.clone(),
                value: value.clone(),
                driver: REMOTE,
                message,
            };
            match key.as_str() {
                "servername" => {
                    tls.server_name = value.clone();
                    tls_enabled = true;
                }
                "cacert" | "cert" | "key" => {
                    let path = tls_file(key, value)?;
                    match key.as_str() {
                        "cacert" => ca_cert = Some(path),
                        "cert" => tls.cert = Some(path),
                        _ => tls.key = Some(path),
                    }
                    tls_enabled = true;
                }
                "default-load" => {
                    default_load = value
                        .parse()
                        .map_err(|_| bad("expected true or false".to_owned()))?;
                }
                _ => {
                    return Err(Error::UnknownDriverOpt {
                        key: key.clone(),
                        driver: REMOTE,
                    })
                }
            }
        }
        let tls = if tls_enabled {
            let mut missing = Vec::new();
            if ca_cert.is_none() {
                missing.push("cacert");
            }
            if tls.cert.is_some() && tls.key.is_none() {
                missing.push("key");
            }
            if tls.key.is_some() && tls.cert.is_none() {
                missing.push("cert");
            }
            if !missing.is_empty() {
                return Err(Error::Invalid(format!(
                    "tls enabled, but missing keys {}",
                    missing.join(", ")
                )));
            }
            tls.ca_cert = ca_cert.unwrap_or_default();
            if tls.server_name.is_empty() {
                if let Endpoint::Tcp { host, .. } = &endpoint {
                    tls.server_name = host.clone();
                }
            }
            Some(tls)
        } else {
            None
        };
        Ok(RemoteDriver {
            endpoint,
            raw_endpoint: node.endpoint.clone(),
            tls,
            default_load,
        })
    }

    /// Where the daemon listens.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The TLS settings, when any TLS option was given.
    pub fn tls(&self) -> Option<&TlsOptions> {
        self.tls.as_ref()
    }

    /// `default-load`: load results into the Docker daemon when no output is given.
    pub fn default_load(&self) -> bool {
        self.default_load
    }
}

/// A TLS file option: absolute (buildx's rule) and present (hoist's: caught at create).
fn tls_file(key: &str, value: &str) -> Result<PathBuf> {
    let path = Path::new(value);
    if !path.is_absolute() {
        return Err(Error::Invalid(format!(
            "non-absolute path '{value}' provided for {key}"
        )));
    }
    if !path.is_file() {
        return Err(Error::BadDriverOpt {
            key: key.to_owned(),
            value: value.to_owned(),
            driver: REMOTE,
            message: "no such file".to_owned(),
        });
    }
    Ok(path.to_owned())
}

impl Driver for RemoteDriver {
    fn name(&self) -> &'static str {
        REMOTE
    }

    fn bootstrap(&self) -> Result<()> {
        self.endpoint
            .probe()
            .map_err(|e| Error::Invalid(format!("cannot connect to {}: {e}", self.raw_endpoint)))
    }

    fn info(&self) -> Info {
        match self.endpoint.probe() {
            Ok(()) => Info {
                status: Status::Running,
                unreachable: None,
                platforms: Vec::new(),
            },
            Err(e) => Info {
                status: Status::Inactive,
                unreachable: Some(format!("cannot connect to {}: {e}", self.raw_endpoint)),
                platforms: Vec::new(),
            },
        }
    }

    fn version(&self) -> String {
        String::new()
    }

    fn stop(&self) -> Result<()> {
        Ok(())
    }

    fn rm(&self, _keep_state: bool) -> Result<()> {
        Ok(())
    }

    fn features(&self) -> Features {
        Features::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(
            Endpoint::parse("unix:///run/hoistd.sock").unwrap(),
            Endpoint::Unix("/run/hoistd.sock".into())
        );
        assert_eq!(
            Endpoint::parse("tcp://10.0.0.1:1234").unwrap(),
            Endpoint::Tcp {
                host: "10.0.0.1".into(),
                port: 1234
            }
        );
        assert_eq!(
            Endpoint::parse("tcp://[::1]:1234").unwrap(),
            Endpoint::Tcp {
                host: "::1".into(),
                port: 1234
            }
        );
        for (bad, why) in [
            ("http://x:1", "unrecognized url scheme http"),
            ("tcp://x", "missing port (tcp://HOST:PORT)"),
            ("tcp://x:port", "invalid port \"port\""),
            ("unix://rel.sock", "the socket path must be absolute"),
            (
                "/run/x.sock",
                "unrecognized url scheme (want unix:// or tcp://)",
            ),
        ] {
            assert_eq!(
                Endpoint::parse(bad).unwrap_err().to_string(),
                format!("invalid endpoint {bad:?}: {why}")
            );
        }
        assert!(Endpoint::parse("ssh://me@host")
            .unwrap_err()
            .to_string()
            .contains("not available yet in hoist"));
    }
}
