//! Loading a docker-archive into the local Docker daemon: `POST /images/load` on its API
//! (HTTP/1.1 over a unix socket or plain TCP, with hyper), the archive streamed from a file.
//!
//! Which daemon: [`DockerEndpoint::from_environment`] reads it as the docker CLI does —
//! `DOCKER_HOST`, else the current context's endpoint (`DOCKER_CONTEXT` or `config.json`'s
//! `currentContext`, whose `contexts/meta/<sha256 of the name>/meta.json` names the host),
//! else `/var/run/docker.sock`.
//!
//! The daemon answers 200 with a JSON message stream even when the load fails, so each
//! message is read for an `error` field.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures::TryStreamExt;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio_util::io::ReaderStream;

use crate::error::{Error, Result};

/// Where the Docker daemon's API listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DockerEndpoint {
    /// `unix:///path/to/docker.sock`.
    Unix(PathBuf),
    /// `tcp://host:port`, plain HTTP (TLS endpoints are not supported).
    Tcp(String),
}

impl std::fmt::Display for DockerEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DockerEndpoint::Unix(path) => write!(f, "unix://{}", path.display()),
            DockerEndpoint::Tcp(address) => write!(f, "tcp://{address}"),
        }
    }
}

impl DockerEndpoint {
    /// The daemon's default socket, `/var/run/docker.sock`.
    pub fn default_socket() -> DockerEndpoint {
        DockerEndpoint::Unix(PathBuf::from(crate::exporter::DEFAULT_DOCKER_SOCKET))
    }

    /// Parses a docker host as `DOCKER_HOST` spells it: `unix:///path` or `tcp://host:port`
    /// (`http://` too; a missing port is Docker's 2375).
    pub fn parse(host: &str) -> Result<DockerEndpoint> {
        let bad = |reason: &str| Error::DockerHost {
            host: host.to_owned(),
            reason: reason.to_owned(),
        };
        if let Some(path) = host.strip_prefix("unix://") {
            if path.is_empty() {
                return Err(bad("the socket path is empty"));
            }
            return Ok(DockerEndpoint::Unix(PathBuf::from(path)));
        }
        let address = host
            .strip_prefix("tcp://")
            .or_else(|| host.strip_prefix("http://"))
            .ok_or_else(|| bad("expected unix://PATH or tcp://HOST:PORT"))?;
        let address = address.trim_end_matches('/');
        if address.is_empty() || address.contains('/') {
            return Err(bad("expected tcp://HOST:PORT"));
        }
        let has_port = match address.rsplit_once(':') {
            Some((_, port)) => !port.contains(']'),
            None => false,
        };
        Ok(DockerEndpoint::Tcp(if has_port {
            address.to_owned()
        } else {
            format!("{address}:2375")
        }))
    }

    /// The daemon the docker CLI would talk to: `DOCKER_HOST`, else the current docker
    /// context's endpoint, else the default socket.
    pub fn from_environment() -> Result<DockerEndpoint> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        if let Some(host) = var("DOCKER_HOST") {
            return DockerEndpoint::parse(&host);
        }
        let Some(config) = hoist_registry::DockerConfigFile::default_path() else {
            return Ok(DockerEndpoint::default_socket());
        };
        let config_dir = config.parent().unwrap_or(Path::new("."));
        let context = match var("DOCKER_CONTEXT") {
            Some(name) => Some(name),
            None => current_context(&config)?,
        };
        match context {
            Some(name) if name != "default" => context_endpoint(config_dir, &name),
            _ => Ok(DockerEndpoint::default_socket()),
        }
    }
}

/// `currentContext` of the docker CLI's `config.json` (a missing file has none).
fn current_context(config: &Path) -> Result<Option<String>> {
    #[derive(Deserialize)]
    struct Config {
        #[serde(default, rename = "currentContext")]
        current_context: Option<String>,
    }
    let bytes = match std::fs::read(config) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("read", config)(e)),
    };
    let parsed: Config = serde_json::from_slice(&bytes).map_err(|e| Error::DockerContext {
        path: config.to_path_buf(),
        reason: e.to_string(),
    })?;
    Ok(parsed.current_context.filter(|c| !c.is_empty()))
}

/// The docker endpoint of the context `name`, from its `meta.json`.
fn context_endpoint(config_dir: &Path, name: &str) -> Result<DockerEndpoint> {
    #[derive(Deserialize)]
    struct Meta {
        #[serde(rename = "Endpoints", default)]
        endpoints: std::collections::BTreeMap<String, Endpoint>,
    }
    #[derive(Deserialize)]
    struct Endpoint {
        #[serde(rename = "Host", default)]
        host: Option<String>,
    }
    let id = hoist_oci::Digest::sha256_of(name.as_bytes());
    let path = config_dir
        .join("contexts/meta")
        .join(id.encoded())
        .join("meta.json");
    let bad = |reason: String| Error::DockerContext {
        path: path.clone(),
        reason: format!("docker context {name:?}: {reason}"),
    };
    let bytes = std::fs::read(&path).map_err(|e| bad(e.to_string()))?;
    let meta: Meta = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
    let host = meta
        .endpoints
        .get("docker")
        .and_then(|e| e.host.clone())
        .ok_or_else(|| bad("no docker endpoint host".into()))?;
    DockerEndpoint::parse(&host)
}

/// One message of the daemon's load response.
#[derive(Debug, Deserialize)]
struct LoadMessage {
    #[serde(default)]
    error: Option<String>,
    #[serde(default, rename = "errorDetail")]
    error_detail: Option<ErrorDetail>,
}

#[derive(Debug, Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    message: Option<String>,
}

/// Sends the docker-archive at `archive` to the daemon at `endpoint`.
pub(crate) async fn load(endpoint: &DockerEndpoint, archive: &Path) -> Result<()> {
    let unreachable = |source| Error::DockerUnreachable {
        endpoint: endpoint.to_string(),
        source,
    };
    match endpoint {
        DockerEndpoint::Unix(socket) => {
            let stream = tokio::net::UnixStream::connect(socket)
                .await
                .map_err(unreachable)?;
            post_archive(stream, endpoint, archive).await
        }
        DockerEndpoint::Tcp(address) => {
            let stream = tokio::net::TcpStream::connect(address.as_str())
                .await
                .map_err(unreachable)?;
            post_archive(stream, endpoint, archive).await
        }
    }
}

/// `POST /images/load` of the archive over a connected stream.
async fn post_archive<S>(stream: S, endpoint: &DockerEndpoint, archive: &Path) -> Result<()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let fail = |message: String| Error::DockerLoad {
        endpoint: endpoint.to_string(),
        message,
    };
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| fail(format!("HTTP handshake: {e}")))?;
    let driver = tokio::spawn(connection);

    let file = tokio::fs::File::open(archive)
        .await
        .map_err(Error::io("open", archive))?;
    let size = file
        .metadata()
        .await
        .map_err(Error::io("read metadata of", archive))?
        .len();
    let body = StreamBody::new(ReaderStream::new(file).map_ok(Frame::data));
    let request = hyper::Request::post("/images/load?quiet=1")
        .header(hyper::header::HOST, "docker")
        .header(hyper::header::CONTENT_TYPE, "application/x-tar")
        .header(hyper::header::CONTENT_LENGTH, size)
        .body(body)
        .map_err(|e| fail(format!("building the request: {e}")))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| fail(format!("sending the archive: {e}")))?;
    let status = response.status();
    let body: Bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|e| fail(format!("reading the response: {e}")))?
        .to_bytes();
    driver.abort();
    let text = String::from_utf8_lossy(&body);
    if !status.is_success() {
        return Err(fail(format!("{status}: {}", text.trim())));
    }
    let messages = serde_json::Deserializer::from_slice(&body).into_iter::<LoadMessage>();
    for message in messages {
        let Ok(message) = message else {
            break;
        };
        let detail = message.error_detail.and_then(|d| d.message);
        if let Some(error) = message.error.or(detail) {
            return Err(fail(error));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hosts_parse_as_the_docker_cli_writes_them() {
        let cases = [
            (
                "unix:///run/docker.sock",
                DockerEndpoint::Unix("/run/docker.sock".into()),
            ),
            (
                "tcp://127.0.0.1:2376",
                DockerEndpoint::Tcp("127.0.0.1:2376".into()),
            ),
            ("tcp://daemon", DockerEndpoint::Tcp("daemon:2375".into())),
            (
                "http://[::1]:2375/",
                DockerEndpoint::Tcp("[::1]:2375".into()),
            ),
            ("tcp://[::1]", DockerEndpoint::Tcp("[::1]:2375".into())),
        ];
        for (host, want) in cases {
            assert_eq!(DockerEndpoint::parse(host).unwrap(), want, "{host}");
        }
        for bad in ["unix://", "ssh://me@host", "/var/run/docker.sock", "tcp://"] {
            let err = DockerEndpoint::parse(bad).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("invalid docker host {bad:?}")),
                "{err}"
            );
        }
    }

    #[test]
    fn a_context_names_its_docker_endpoint_in_its_meta_file() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.json");
        assert_eq!(current_context(&config).unwrap(), None, "no config file");
        std::fs::write(&config, r#"{"auths":{},"currentContext":"remote"}"#).unwrap();
        assert_eq!(current_context(&config).unwrap().as_deref(), Some("remote"));
        // The directory is the sha256 of the context's name.
        let id = hoist_oci::Digest::sha256_of(b"remote");
        let meta = dir.path().join("contexts/meta").join(id.encoded());
        std::fs::create_dir_all(&meta).unwrap();
        std::fs::write(
            meta.join("meta.json"),
            r#"{"Name":"remote","Metadata":{},"Endpoints":{"docker":{"Host":"unix:///srv/d.sock","SkipTLSVerify":false}}}"#,
        )
        .unwrap();
        assert_eq!(
            context_endpoint(dir.path(), "remote").unwrap(),
            DockerEndpoint::Unix("/srv/d.sock".into())
        );
        let err = context_endpoint(dir.path(), "missing")
            .unwrap_err()
            .to_string();
        assert!(err.contains("docker context \"missing\""), "{err}");
    }
}
