//! A small Docker Engine API client (dockerd, and podman's compatible API): HTTP/1.1 with
//! hyper over the daemon's unix socket (or plain tcp), one connection per request — just
//! the calls the `docker-container` driver makes, and `exec` hijacked into a byte stream
//! ([`ExecStream`]) whose output is demultiplexed from Docker's 8-byte frame headers.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use hoist_export::DockerEndpoint;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A connection to the daemon: a unix or tcp stream.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// The daemon's answer to one request.
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: StatusCode,
    pub body: Bytes,
}

impl Answer {
    /// The daemon's `message` (its error body), else the body as text.
    pub fn message(&self) -> String {
        #[derive(serde::Deserialize)]
        struct Message {
            message: String,
        }
        match serde_json::from_slice::<Message>(&self.body) {
            Ok(m) => m.message,
            Err(_) => String::from_utf8_lossy(&self.body).trim().to_owned(),
        }
    }

    /// The body as JSON of type `T`.
    pub fn json<T: serde::de::DeserializeOwned>(&self, what: &str) -> Result<T, String> {
        serde_json::from_slice(&self.body)
            .map_err(|e| format!("unexpected answer of the Docker daemon to {what}: {e}"))
    }
}

/// The daemon at one endpoint.
#[derive(Debug, Clone)]
pub(crate) struct DockerApi {
    pub endpoint: DockerEndpoint,
}

impl DockerApi {
    async fn connect(&self) -> Result<Box<dyn Io>, String> {
        let cannot = |e: io::Error| {
            format!(
                "cannot connect to the Docker daemon at {}: {e}",
                self.endpoint
            )
        };
        Ok(match &self.endpoint {
            DockerEndpoint::Unix(path) => Box::new(
                tokio::net::UnixStream::connect(path)
                    .await
                    .map_err(cannot)?,
            ),
            DockerEndpoint::Tcp(address) => Box::new(
                tokio::net::TcpStream::connect(address.as_str())
                    .await
                    .map_err(cannot)?,
            ),
        })
    }

    fn request(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: Bytes,
    ) -> Result<Request<Full<Bytes>>, String> {
        Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, "docker")
            .header(hyper::header::CONTENT_TYPE, content_type)
            .body(Full::new(body))
            .map_err(|e| format!("invalid Docker API request {path}: {e}"))
    }

    /// Sends one request and reads the whole answer.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: impl Into<Bytes>,
    ) -> Result<Answer, String> {
        let failed = |e: hyper::Error| format!("Docker API {path}: {e}");
        let io = self.connect().await?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(failed)?;
        tokio::spawn(connection);
        let request = self.request(method, path, content_type, body.into())?;
        let response = sender.send_request(request).await.map_err(failed)?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(failed)?
            .to_bytes();
        Ok(Answer { status, body })
    }

    /// A JSON request (`body` serialised), or none for `Value::Null`.
    pub async fn call_json(
        &self,
        method: Method,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<Answer, String> {
        let bytes = if body.is_null() {
            Bytes::new()
        } else {
            Bytes::from(body.to_string())
        };
        self.call(method, path, "application/json", bytes).await
    }

    /// Runs `cmd` in `container` with stdin, stdout and stderr attached and no TTY, the
    /// connection hijacked into an [`ExecStream`].
    pub async fn exec(&self, container: &str, cmd: &[&str]) -> Result<ExecStream, String> {
        let created = self
            .call_json(
                Method::POST,
                &format!("/containers/{container}/exec"),
                &serde_json::json!({
                    "AttachStdin": true,
                    "AttachStdout": true,
                    "AttachStderr": true,
                    "Tty": false,
                    "Cmd": cmd,
                }),
            )
            .await?;
        if created.status != StatusCode::CREATED {
            return Err(format!(
                "cannot exec in container {container}: {}",
                created.message()
            ));
        }
        #[derive(serde::Deserialize)]
        struct Created {
            #[serde(rename = "Id")]
            id: String,
        }
        let id = created.json::<Created>("exec create")?.id;
        let path = format!("/exec/{id}/start");
        let failed = |e: hyper::Error| format!("Docker API {path}: {e}");
        let io = self.connect().await?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(failed)?;
        tokio::spawn(connection.with_upgrades());
        let mut request = self.request(
            Method::POST,
            &path,
            "application/json",
            Bytes::from(r#"{"Detach":false,"Tty":false}"#),
        )?;
        let headers = request.headers_mut();
        headers.insert(
            hyper::header::CONNECTION,
            "Upgrade".parse().expect("header"),
        );
        headers.insert(hyper::header::UPGRADE, "tcp".parse().expect("header"));
        let response = sender.send_request(request).await.map_err(failed)?;
        if response.status() != StatusCode::SWITCHING_PROTOCOLS {
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let answer = Answer { status, body };
            return Err(format!(
                "cannot start exec in container {container}: {} ({status})",
                answer.message()
            ));
        }
        let upgraded = hyper::upgrade::on(response).await.map_err(failed)?;
        Ok(ExecStream::new(Box::new(TokioIo::new(upgraded))))
    }
}

/// An exec's hijacked connection: writes go to the command's stdin; reads give its stdout,
/// taken out of Docker's frames (`[stream, 0, 0, 0, size as u32 big-endian]` + payload);
/// stderr frames are kept for error messages ([`ExecStream::stderr`]).
pub struct ExecStream {
    io: Box<dyn Io>,
    /// Header bytes read of the current frame.
    header: [u8; 8],
    header_len: usize,
    /// Payload bytes left in the current frame, and its stream.
    remaining: usize,
    stream: u8,
    stderr: Arc<Mutex<Vec<u8>>>,
}

impl std::fmt::Debug for ExecStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecStream").finish_non_exhaustive()
    }
}

/// At most this much of an exec's stderr is kept.
const STDERR_KEPT: usize = 64 * 1024;

impl ExecStream {
    fn new(io: Box<dyn Io>) -> ExecStream {
        ExecStream {
            io,
            header: [0; 8],
            header_len: 0,
            remaining: 0,
            stream: 1,
            stderr: Arc::default(),
        }
    }

    /// What the command wrote to stderr so far (shared: readable after the stream moved).
    pub fn stderr(&self) -> Arc<Mutex<Vec<u8>>> {
        self.stderr.clone()
    }
}

impl AsyncRead for ExecStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            if this.remaining == 0 {
                // A frame header, possibly over several reads.
                let mut header = ReadBuf::new(&mut this.header[this.header_len..]);
                ready!(Pin::new(&mut this.io).poll_read(cx, &mut header))?;
                let n = header.filled().len();
                if n == 0 {
                    if this.header_len == 0 {
                        return Poll::Ready(Ok(())); // the end
                    }
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the exec stream ended inside a frame header",
                    )));
                }
                this.header_len += n;
                if this.header_len < 8 {
                    continue;
                }
                this.header_len = 0;
                this.stream = this.header[0];
                this.remaining =
                    u32::from_be_bytes(this.header[4..8].try_into().expect("4 bytes")) as usize;
                continue;
            }
            if this.stream == 1 {
                let want = this.remaining.min(buf.remaining());
                let mut limited = ReadBuf::new(buf.initialize_unfilled_to(want));
                ready!(Pin::new(&mut this.io).poll_read(cx, &mut limited))?;
                let n = limited.filled().len();
                if n == 0 {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the exec stream ended inside a frame",
                    )));
                }
                buf.advance(n);
                this.remaining -= n;
                return Poll::Ready(Ok(()));
            }
            // stderr (or anything else): kept aside, not handed to the reader.
            let mut scratch = [0u8; 4096];
            let want = this.remaining.min(scratch.len());
            let mut side = ReadBuf::new(&mut scratch[..want]);
            ready!(Pin::new(&mut this.io).poll_read(cx, &mut side))?;
            let n = side.filled().len();
            if n == 0 {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the exec stream ended inside a frame",
                )));
            }
            this.remaining -= n;
            if this.stream == 2 {
                let mut kept = this.stderr.lock().unwrap_or_else(|e| e.into_inner());
                if kept.len() < STDERR_KEPT {
                    kept.extend_from_slice(side.filled());
                }
            }
        }
    }
}

impl AsyncWrite for ExecStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn frame(stream: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![stream, 0, 0, 0];
        out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    #[tokio::test]
    async fn stdout_is_demultiplexed_and_stderr_kept_aside() {
        let (mut daemon, client) = tokio::io::duplex(7);
        let mut stream = ExecStream::new(Box::new(client));
        let stderr = stream.stderr();
        let writer = tokio::spawn(async move {
            let mut all = frame(1, b"hello ");
            all.extend(frame(2, b"oops"));
            all.extend(frame(1, b""));
            all.extend(frame(1, b"world"));
            daemon.write_all(&all).await.unwrap();
        });
        let mut out = Vec::new();
        stream.read_to_end(&mut out).await.unwrap();
        writer.await.unwrap();
        assert_eq!(out, b"hello world");
        assert_eq!(&*stderr.lock().unwrap(), b"oops");
    }

    #[tokio::test]
    async fn a_stream_cut_inside_a_frame_is_an_error() {
        let (mut daemon, client) = tokio::io::duplex(64);
        let mut stream = ExecStream::new(Box::new(client));
        daemon.write_all(&frame(1, b"abc")[..9]).await.unwrap();
        drop(daemon);
        let mut out = Vec::new();
        let err = stream.read_to_end(&mut out).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }
}
