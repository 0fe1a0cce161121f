//! [`DockerDriver`]: the BuildKit inside a Docker daemon, as buildx's `docker` driver — the
//! daemon of `DOCKER_HOST` (else `/var/run/docker.sock`), or the `unix://`/`tcp://` endpoint
//! given to `create`. Nothing to start or remove: the daemon is the user's. Builds reach it
//! through hoist's BuildKit client (`--addr docker-daemon://…`: dockerd's `/grpc` and
//! `/session`), are single-platform, and their image is loaded into that daemon unless
//! another output is asked for.
//!
//! Status is the Engine API's `GET /_ping`; version and platform come from `GET /version`
//! (`Version`, `Os`/`Arch`), asked over a plain HTTP/1.0 request on the daemon's socket. The
//! version shown is the BuildKit that Docker release carries, as buildx shows it
//! ([`moby_version`](super::moby_version)).

use std::io::{Read as _, Write as _};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use hoist_oci::Platform;

use super::{Driver, Endpoint, Features, Info, Status, DOCKER, STATUS_TIMEOUT};
use crate::error::{Error, Result};
use crate::node_group::Node;

/// A Docker daemon's BuildKit.
#[derive(Debug)]
pub struct DockerDriver {
    endpoint: Endpoint,
}

impl DockerDriver {
    /// Checks the node as buildx's docker driver does: no driver options, config files or
    /// buildkitd flags. The endpoint is `unix://PATH`, `tcp://HOST:PORT`, or the placeholder
    /// `default` (the daemon of `DOCKER_HOST`, else `/var/run/docker.sock`).
    pub fn new(node: &Node) -> Result<DockerDriver> {
        if let Some(key) = node.driver_opts.keys().next() {
            return Err(Error::UnknownDriverOpt {
                key: key.clone(),
                driver: DOCKER,
            });
        }
        if !node.files.is_empty() {
            return Err(Error::Invalid(
                "setting config file is not supported for docker driver, use dockerd configuration file".to_owned(),
            ));
        }
        if !node.buildkitd_flags.is_empty() {
            return Err(Error::Invalid(
                "setting buildkit flags is not supported for docker driver".to_owned(),
            ));
        }
        Ok(DockerDriver {
            endpoint: daemon_endpoint(&node.endpoint)?,
        })
    }

    /// The daemon's endpoint.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The address hoist's BuildKit client takes for this daemon (`docker-daemon://…`).
    pub fn client_address(&self) -> String {
        match &self.endpoint {
            Endpoint::Unix(path) => format!("docker-daemon://{}", path.display()),
            Endpoint::Tcp { host, port } => format!("docker-daemon://tcp://{host}:{port}"),
        }
    }

    /// `GET path` on the daemon: the status code and body.
    fn get(&self, path: &str) -> std::io::Result<(u16, String)> {
        let request = format!("GET {path} HTTP/1.0\r\nHost: docker\r\nUser-Agent: hoist\r\n\r\n");
        let mut answer = Vec::new();
        match &self.endpoint {
            Endpoint::Unix(socket) => {
                let mut stream = UnixStream::connect(socket)?;
                stream.set_read_timeout(Some(STATUS_TIMEOUT))?;
                stream.write_all(request.as_bytes())?;
                stream.read_to_end(&mut answer)?;
            }
            Endpoint::Tcp { host, port } => {
                let addr = (host.as_str(), *port)
                    .to_socket_addrs()?
                    .next()
                    .ok_or_else(|| std::io::Error::other("no address for host"))?;
                let mut stream = TcpStream::connect_timeout(&addr, STATUS_TIMEOUT)?;
                stream.set_read_timeout(Some(STATUS_TIMEOUT))?;
                stream.write_all(request.as_bytes())?;
                stream.read_to_end(&mut answer)?;
            }
        }
        let answer = String::from_utf8_lossy(&answer);
        let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
        let code = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| std::io::Error::other("not an HTTP answer"))?;
        Ok((code, body.to_owned()))
    }

    fn describe(&self) -> String {
        match &self.endpoint {
            Endpoint::Unix(path) => format!("unix://{}", path.display()),
            Endpoint::Tcp { host, port } => format!("tcp://{host}:{port}"),
        }
    }

    fn version_json(&self) -> Option<serde_json::Value> {
        let (code, body) = self.get("/version").ok()?;
        (code == 200).then(|| serde_json::from_str(&body).ok())?
    }
}

/// The endpoint a docker node names: `default` (or nothing) is `DOCKER_HOST`, else the
/// usual socket.
fn daemon_endpoint(endpoint: &str) -> Result<Endpoint> {
    if endpoint.is_empty() || endpoint == crate::DEFAULT_BUILDER {
        return match std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()) {
            Some(host) => Endpoint::parse(&host),
            None => Ok(Endpoint::Unix(PathBuf::from("/var/run/docker.sock"))),
        };
    }
    Endpoint::parse(endpoint)
}

impl Driver for DockerDriver {
    fn name(&self) -> &'static str {
        DOCKER
    }

    fn bootstrap(&self) -> Result<()> {
        match self.get("/_ping") {
            Ok((200, _)) => Ok(()),
            Ok((code, body)) => Err(Error::Invalid(format!(
                "the Docker daemon at {} answered {code}: {}",
                self.describe(),
                body.trim()
            ))),
            Err(e) => Err(Error::Invalid(format!(
                "cannot connect to the Docker daemon at {}: {e}",
                self.describe()
            ))),
        }
    }

    fn info(&self) -> Info {
        if let Err(e) = self.bootstrap() {
            return Info {
                status: Status::Inactive,
                unreachable: Some(e.to_string()),
                platforms: Vec::new(),
            };
        }
        let platforms = self
            .version_json()
            .and_then(|v| {
                let os = v.get("Os")?.as_str()?.to_owned();
                let arch = v.get("Arch")?.as_str()?.to_owned();
                Platform::parse(&format!("{os}/{arch}")).ok()
            })
            .into_iter()
            .collect();
        Info {
            status: Status::Running,
            unreachable: None,
            platforms,
        }
    }

    fn version(&self) -> String {
        self.version_json()
            .and_then(|v| {
                v.get("Version")?
                    .as_str()
                    .map(super::moby_version::buildkit_of)
            })
            .unwrap_or_default()
    }

    fn stop(&self) -> Result<()> {
        Ok(())
    }

    fn rm(&self, _keep_state: bool) -> Result<()> {
        Ok(())
    }

    fn features(&self) -> Features {
        Features::from([
            (
                "Automatically load images to the Docker Engine image store",
                true,
            ),
            ("Multi-platform build", false),
            ("OCI exporter", false),
            ("Docker exporter", false),
            ("Cache export", false),
        ])
    }
}
