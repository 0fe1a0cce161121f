//! Loading a docker-archive into the local Docker daemon: `POST /images/load` on its API
//! socket (HTTP/1.1 over a unix socket, with hyper), the archive streamed from a file.
//!
//! The daemon answers 200 with a JSON message stream even when the load fails, so each
//! message is read for an `error` field.

use std::path::Path;

use bytes::Bytes;
use futures::TryStreamExt;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio_util::io::ReaderStream;

use crate::error::{Error, Result};

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

/// Sends the docker-archive at `archive` to the daemon listening on `socket`.
pub(crate) async fn load(socket: &Path, archive: &Path) -> Result<()> {
    let fail = |message: String| Error::DockerLoad {
        socket: socket.to_path_buf(),
        message,
    };
    let stream = tokio::net::UnixStream::connect(socket)
        .await
        .map_err(|source| Error::DockerUnreachable {
            socket: socket.to_path_buf(),
            source,
        })?;
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
