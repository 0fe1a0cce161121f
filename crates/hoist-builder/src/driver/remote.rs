//! [`RemoteDriver`]: a BuildKit-speaking daemon (hoistd, buildkitd) at an [`Endpoint`],
//! `unix://PATH` or `tcp://HOST:PORT`, with buildx's driver options `cacert`, `cert`, `key`,
//! `servername` (mutual TLS; paths absolute and present) and `default-load`.
//!
//! A node's status is buildx's: `running` when the daemon answers `Control.Info` and
//! `Control.ListWorkers` within [`ANSWER_TIMEOUT`] (over TLS when the
//! node has TLS options), which also give its version (`ls`'s `BUILDKIT` column) and
//! platforms; `inactive` with the reason otherwise — nothing listening, or something
//! listening that does not speak BuildKit's API.

use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use hoist_oci::Platform;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity, Uri};

use super::{block_on, chain, grpc, Driver, Features, Info, Status, REMOTE, STATUS_TIMEOUT};
use crate::error::{Error, Result};
use crate::node_group::Node;

/// How long a daemon that accepted the connection has to answer `Info` and `ListWorkers`
/// (longer than the connection's own timeout: a busy daemon answers late, not never).
pub const ANSWER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

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

/// Mutual TLS settings of a remote node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// The server name to verify (default: the endpoint's host).
    pub server_name: String,
    /// The CA certificate file (a remote node always has one; `hoist build --addr` may go
    /// without `--tlscacert`, trusting no CA then).
    pub ca_cert: Option<PathBuf>,
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
    /// What the last status question learnt: version and platforms, or why it failed.
    asked: Mutex<Option<Asked>>,
}

/// One answer to "who are you": the daemon's version and platforms, or why there is none.
type Asked = std::result::Result<(String, Vec<Platform>), String>;

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
            tls.ca_cert = ca_cert;
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
            asked: Mutex::new(None),
        })
    }

    /// A gRPC channel to the daemon (TLS on `tcp://` when the node has TLS options). The
    /// connection is made lazily by the first call; errors name the endpoint.
    pub async fn channel(&self) -> Result<Channel> {
        channel(&self.endpoint, self.tls.as_ref(), STATUS_TIMEOUT)
            .await
            .map_err(|message| {
                Error::Invalid(format!(
                    "cannot connect to {}: {message}",
                    self.raw_endpoint
                ))
            })
    }

    /// Asks the daemon for its version and platforms, within the status timeout; the
    /// answer is kept for [`Driver::version`].
    fn ask(&self) -> Asked {
        let asked = match self.endpoint.probe() {
            Err(e) => Err(format!("cannot connect to {}: {e}", self.raw_endpoint)),
            Ok(()) => block_on(async {
                let channel = self.channel().await.map_err(|e| e.to_string())?;
                match tokio::time::timeout(ANSWER_TIMEOUT, grpc::ask(channel)).await {
                    Ok(Ok(answer)) => Ok(answer),
                    Ok(Err(status)) => Err(format!(
                        "{} did not answer as a BuildKit daemon: {}",
                        self.raw_endpoint,
                        status_chain(&status)
                    )),
                    Err(_) => Err(format!(
                        "{} did not answer within {} s (is it a BuildKit daemon?)",
                        self.raw_endpoint,
                        ANSWER_TIMEOUT.as_secs()
                    )),
                }
            })
            .map_err(|e| e.to_string())
            .and_then(|answer| answer),
        };
        *self.asked.lock().unwrap_or_else(|e| e.into_inner()) = Some(asked.clone());
        asked
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

/// A gRPC channel to a BuildKit daemon at `endpoint`, over TLS on `tcp://` when `tls` is
/// given (`https`, the CA and client identity read now, `server_name` checked); connecting
/// gives up after `connect_timeout`. The error is why, without the endpoint.
pub async fn channel(
    endpoint: &Endpoint,
    tls: Option<&TlsOptions>,
    connect_timeout: std::time::Duration,
) -> std::result::Result<Channel, String> {
    match endpoint {
        Endpoint::Unix(path) => {
            let socket = path.clone();
            tonic::transport::Endpoint::from_static("http://remote.invalid")
                .connect_timeout(connect_timeout)
                .connect_with_connector(tower::service_fn(move |_: Uri| {
                    let socket = socket.clone();
                    async move {
                        let stream = tokio::net::UnixStream::connect(socket).await?;
                        Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
                    }
                }))
                .await
                .map_err(|e| chain(&e))
        }
        Endpoint::Tcp { host, port } => {
            let authority = if host.contains(':') {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            };
            let scheme = if tls.is_some() { "https" } else { "http" };
            let mut target =
                tonic::transport::Endpoint::from_shared(format!("{scheme}://{authority}"))
                    .map_err(|e| e.to_string())?
                    .connect_timeout(connect_timeout);
            if let Some(tls) = tls {
                let read = |path: &Path| {
                    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
                };
                let server_name = if tls.server_name.is_empty() {
                    host.as_str()
                } else {
                    tls.server_name.as_str()
                };
                let mut config = ClientTlsConfig::new().domain_name(server_name);
                if let Some(ca) = &tls.ca_cert {
                    config = config.ca_certificate(Certificate::from_pem(read(ca)?));
                }
                match (&tls.cert, &tls.key) {
                    (Some(cert), Some(key)) => {
                        config = config.identity(Identity::from_pem(read(cert)?, read(key)?));
                    }
                    (None, None) => {}
                    _ => return Err("a client certificate and its key go together".to_owned()),
                }
                target = target.tls_config(config).map_err(|e| chain(&e))?;
            }
            target.connect().await.map_err(|e| chain(&e))
        }
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
        match self.ask() {
            Ok((_, platforms)) => Info {
                status: Status::Running,
                unreachable: None,
                platforms,
            },
            Err(why) => Info {
                status: Status::Inactive,
                unreachable: Some(why),
                platforms: Vec::new(),
            },
        }
    }

    fn version(&self) -> String {
        let asked = self.asked.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match asked.unwrap_or_else(|| self.ask()) {
            Ok((version, _)) => version,
            Err(_) => String::new(),
        }
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

/// A call's message and the causes the transport attached.
fn status_chain(status: &tonic::Status) -> String {
    let mut text = status.message().to_owned();
    let mut source = std::error::Error::source(status);
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
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
