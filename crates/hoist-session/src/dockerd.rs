//! The BuildKit inside a Docker daemon, reached through the Engine API's two upgrades:
//! `POST /grpc` (`Upgrade: h2c`; then the connection is an HTTP/2 gRPC connection to
//! BuildKit's `Control`, the client speaking first) and `POST /session` (`Upgrade: h2c` with
//! the session's `X-Docker-Expose-Session-*` headers; then the *daemon* is the HTTP/2 client
//! and the client serves the session on it, [`crate::Session::serve`]).

use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};

use anyhow::{bail, Context as _};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};

/// Where the Docker daemon listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A unix socket (`unix:///var/run/docker.sock`).
    Unix(PathBuf),
    /// `tcp://HOST:PORT`, plain HTTP.
    Tcp(String),
}

impl Endpoint {
    /// The daemon of `--addr docker-daemon` (`DOCKER_HOST`, else `/var/run/docker.sock`) or
    /// `docker-daemon://SOCKET`; `None` when `addr` names no Docker daemon.
    pub fn from_addr(addr: &str, docker_host: Option<&str>) -> Option<anyhow::Result<Self>> {
        if addr == "docker-daemon" {
            return Some(match docker_host.filter(|h| !h.is_empty()) {
                Some(host) => Self::parse(host),
                None => Ok(Endpoint::Unix(PathBuf::from("/var/run/docker.sock"))),
            });
        }
        let rest = addr.strip_prefix("docker-daemon://")?;
        Some(if rest.is_empty() {
            Err(anyhow::anyhow!("invalid address {addr:?}: no socket path"))
        } else if rest.starts_with("unix://") || rest.starts_with("tcp://") {
            Self::parse(rest)
        } else {
            Ok(Endpoint::Unix(PathBuf::from(rest)))
        })
    }

    /// `unix:///PATH` or `tcp://HOST:PORT` as `DOCKER_HOST` spells them.
    pub fn parse(host: &str) -> anyhow::Result<Self> {
        if let Some(path) = host.strip_prefix("unix://") {
            if path.is_empty() {
                bail!("invalid DOCKER_HOST {host:?}: no socket path");
            }
            return Ok(Endpoint::Unix(PathBuf::from(path)));
        }
        if let Some(address) = host.strip_prefix("tcp://") {
            let address = address.trim_end_matches('/');
            if address.is_empty() {
                bail!("invalid DOCKER_HOST {host:?}: no address");
            }
            return Ok(Endpoint::Tcp(address.to_owned()));
        }
        bail!(
            "unsupported Docker daemon address {host:?}: expected unix:///PATH or tcp://HOST:PORT"
        )
    }

    async fn connect(&self) -> anyhow::Result<Connection> {
        match self {
            Endpoint::Unix(path) => tokio::net::UnixStream::connect(path)
                .await
                .map(Connection::Unix)
                .with_context(|| {
                    format!("cannot connect to the Docker daemon at {}", path.display())
                }),
            Endpoint::Tcp(address) => tokio::net::TcpStream::connect(address)
                .await
                .map(Connection::Tcp)
                .with_context(|| format!("cannot connect to the Docker daemon at {address}")),
        }
    }

    /// Opens `POST path` with `Upgrade: h2c` and the given headers; the connection once the
    /// daemon answered `101`. A refusal is an error with the daemon's message.
    pub async fn upgrade(
        &self,
        path: &str,
        headers: &[(&str, String)],
    ) -> anyhow::Result<Connection> {
        let mut connection = self.connect().await?;
        let mut request = format!(
            "POST {path} HTTP/1.1\r\nHost: docker\r\nUser-Agent: hoist\r\n\
             Connection: Upgrade\r\nUpgrade: h2c\r\nContent-Length: 0\r\n"
        );
        for (name, value) in headers {
            if value.contains(['\r', '\n']) {
                bail!("invalid header value for {name}: {value:?}");
            }
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        connection.write_all(request.as_bytes()).await?;
        // Read the head byte by byte: what follows it is the upgraded protocol's.
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if head.len() > 64 * 1024 {
                bail!("the Docker daemon's answer to POST {path} has an oversized header");
            }
            if connection.read(&mut byte).await? == 0 {
                bail!("the Docker daemon closed the connection to POST {path}");
            }
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head);
        let status_line = head.lines().next().unwrap_or("");
        let code = status_line.split_whitespace().nth(1).unwrap_or("");
        if code == "101" {
            return Ok(connection);
        }
        // An error answer: its body says why (JSON `{"message": …}` or text).
        let mut body = vec![0u8; 4096];
        let n = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            connection.read(&mut body),
        )
        .await
        .unwrap_or(Ok(0))
        .unwrap_or(0);
        let body = String::from_utf8_lossy(&body[..n]);
        let message = body
            .lines()
            .rev()
            .find_map(|l| {
                let start = l.find("\"message\":\"")? + 11;
                Some(l[start..].trim_end_matches("\"}").to_owned())
            })
            .unwrap_or_else(|| body.trim().to_owned());
        bail!("the Docker daemon refused POST {path}: {status_line}: {message}")
    }
}

/// A connection to the Docker daemon.
#[derive(Debug)]
pub enum Connection {
    /// Over a unix socket.
    Unix(tokio::net::UnixStream),
    /// Over TCP.
    Tcp(tokio::net::TcpStream),
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Connection::Unix(s) => Pin::new(s).poll_read(cx, buf),
            Connection::Tcp(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Connection::Unix(s) => Pin::new(s).poll_write(cx, buf),
            Connection::Tcp(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Connection::Unix(s) => Pin::new(s).poll_flush(cx),
            Connection::Tcp(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Connection::Unix(s) => Pin::new(s).poll_shutdown(cx),
            Connection::Tcp(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        let unix = |p: &str| Endpoint::Unix(PathBuf::from(p));
        assert_eq!(
            Endpoint::from_addr("docker-daemon", None).unwrap().unwrap(),
            unix("/var/run/docker.sock")
        );
        assert_eq!(
            Endpoint::from_addr("docker-daemon", Some("unix:///tmp/d.sock"))
                .unwrap()
                .unwrap(),
            unix("/tmp/d.sock")
        );
        assert_eq!(
            Endpoint::from_addr("docker-daemon:///run/x.sock", Some("tcp://h:1"))
                .unwrap()
                .unwrap(),
            unix("/run/x.sock")
        );
        assert_eq!(
            Endpoint::from_addr("docker-daemon://tcp://h:2375", None)
                .unwrap()
                .unwrap(),
            Endpoint::Tcp("h:2375".into())
        );
        assert!(Endpoint::from_addr("unix:///x", None).is_none());
        assert!(Endpoint::from_addr("docker-daemon://", None)
            .unwrap()
            .is_err());
        assert!(Endpoint::from_addr("docker-daemon", Some("ssh://h"))
            .unwrap()
            .is_err());
    }
}
