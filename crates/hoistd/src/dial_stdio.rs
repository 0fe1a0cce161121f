//! `hoistd dial-stdio`: the daemon's socket on stdin/stdout, for drivers that reach a daemon
//! by running a command (buildx's `docker-container` and `kubernetes` drivers do this with
//! `buildctl dial-stdio`). Bytes are copied both ways unchanged; when stdin ends, the write
//! side of the connection is shut so the daemon sees the end, and the bridge ends when the
//! daemon closes the connection or the reader of stdout goes away.

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

use crate::address::Address;
use crate::error::{Error, Result};

/// Bridges this process's stdin and stdout to `address`.
pub async fn run(address: &Address) -> Result<()> {
    let connect_error = |source| Error::Connect {
        address: address.to_string(),
        source,
    };
    match address {
        Address::Unix(path) => {
            let stream = UnixStream::connect(path).await.map_err(connect_error)?;
            let (read, write) = stream.into_split();
            bridge(read, write).await.map_err(connect_error)
        }
        Address::Tcp(hostport) => {
            let stream = TcpStream::connect(hostport.as_str())
                .await
                .map_err(connect_error)?;
            let (read, write) = stream.into_split();
            bridge(read, write).await.map_err(connect_error)
        }
    }
}

async fn bridge(
    mut from_daemon: impl AsyncRead + Unpin,
    mut to_daemon: impl AsyncWrite + Unpin + Send + 'static,
) -> std::io::Result<()> {
    let upstream = tokio::spawn(async move {
        let mut stdin = tokio::io::stdin();
        let copied = tokio::io::copy(&mut stdin, &mut to_daemon).await;
        let _ = to_daemon.shutdown().await;
        copied
    });
    let mut stdout = tokio::io::stdout();
    let copied = tokio::io::copy(&mut from_daemon, &mut stdout).await;
    upstream.abort();
    match copied.and(stdout.flush().await) {
        // The reader of stdout left: the client is gone, which ends the bridge as well.
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}
