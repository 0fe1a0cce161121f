//! Client sessions: the reverse gRPC connection a BuildKit client opens so the daemon can
//! call services the client serves (file sync for the context and Dockerfile, file send
//! for outputs, ...).
//!
//! A client opens a session either as `Control.Session` (a bidirectional stream of
//! `BytesMessage`s carrying raw HTTP/2 bytes) or, through the Engine API front door, as
//! `POST /session` upgraded to `h2c` (the hijacked connection itself). Either way the
//! client is the HTTP/2 *server* on those bytes and the daemon its gRPC client: the bytes
//! become an `AsyncRead + AsyncWrite` on which a tonic [`Channel`] runs. The client names
//! the session with BuildKit's metadata (`X-Docker-Expose-Session-Uuid`, `-Name`,
//! `-Sharedkey`, and `-Grpc-Method` once per method it serves); a `Solve` picks it by its
//! `session` field, waiting a bounded time for it to arrive.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use hoist_proto::control::BytesMessage;
use hoist_session::tunnel::{tunnel, Outbound};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;
use tonic::transport::{Channel, Endpoint, Uri};
use tonic::{Status, Streaming};

/// BuildKit's session metadata keys (lower case, as gRPC metadata carries them; HTTP
/// headers are matched without regard to case).
pub const HEADER_UUID: &str = "x-docker-expose-session-uuid";
pub const HEADER_NAME: &str = "x-docker-expose-session-name";
pub const HEADER_SHARED_KEY: &str = "x-docker-expose-session-sharedkey";
pub const HEADER_METHOD: &str = "x-docker-expose-session-grpc-method";

/// What a client says about its session when it opens it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionMeta {
    pub id: String,
    pub name: String,
    pub shared_key: String,
    /// The gRPC methods the client serves (`/moby.filesync.v1.FileSync/DiffCopy`, ...).
    pub methods: Vec<String>,
}

impl SessionMeta {
    /// Reads the metadata from `(key, value)` pairs, keys in any case; the id is required.
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<SessionMeta, Status> {
        let mut meta = SessionMeta::default();
        for (key, value) in pairs {
            let key = key.to_ascii_lowercase();
            match key.as_str() {
                HEADER_UUID => meta.id = value.to_owned(),
                HEADER_NAME => meta.name = value.to_owned(),
                HEADER_SHARED_KEY => meta.shared_key = value.to_owned(),
                // grpc-go joins repeated values with commas in some paths: accept both.
                HEADER_METHOD => meta.methods.extend(
                    value
                        .split(',')
                        .map(str::trim)
                        .filter(|m| !m.is_empty())
                        .map(str::to_owned),
                ),
                _ => {}
            }
        }
        if meta.id.is_empty() {
            return Err(Status::invalid_argument(format!(
                "a session needs the {HEADER_UUID} metadata"
            )));
        }
        if meta.shared_key.is_empty() {
            meta.shared_key.clone_from(&meta.id);
        }
        Ok(meta)
    }

    /// Whether the client serves `method` (a full gRPC path).
    pub fn serves(&self, method: &str) -> bool {
        self.methods.iter().any(|m| m.eq_ignore_ascii_case(method))
    }
}

/// An open session: the daemon's gRPC channel to the client's services.
#[derive(Debug)]
pub struct Session {
    pub meta: SessionMeta,
    channel: Channel,
    closed: watch::Receiver<bool>,
}

impl Session {
    /// A channel to the client's services (cheap to clone).
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// Fails with a clear message when the client does not serve `method`.
    pub fn require(&self, method: &str) -> Result<(), Status> {
        if self.meta.serves(method) {
            Ok(())
        } else {
            Err(Status::failed_precondition(format!(
                "the client's session {} does not serve {method}",
                self.meta.id
            )))
        }
    }

    /// Whether the connection has ended.
    pub fn is_closed(&self) -> bool {
        *self.closed.borrow()
    }
}

/// The sessions open now, by id.
#[derive(Debug, Clone, Default)]
pub struct SessionManager {
    sessions: Arc<Mutex<HashMap<String, Arc<Session>>>>,
    added: Arc<tokio::sync::Notify>,
}

impl SessionManager {
    /// Runs the client's HTTP/2 server bytes on `io` as the daemon's gRPC channel and
    /// registers the session until the connection ends. Returns once registered; the
    /// returned receiver turns `true` when the connection is gone.
    pub async fn attach<IO>(
        &self,
        meta: SessionMeta,
        io: IO,
    ) -> Result<watch::Receiver<bool>, Status>
    where
        IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let (closed_tx, closed) = watch::channel(false);
        let tracked = Tracked {
            inner: io,
            closed: Some(closed_tx),
        };
        let slot = Arc::new(Mutex::new(Some(TokioIo::new(tracked))));
        let connector = tower::service_fn(move |_: Uri| {
            let io = slot.lock().ok().and_then(|mut s| s.take());
            async move {
                io.ok_or_else(|| {
                    std::io::Error::new(
                        std::io::ErrorKind::NotConnected,
                        "the client's session connection has ended",
                    )
                })
            }
        });
        let channel = Endpoint::from_static("http://session.invalid")
            .connect_with_connector(connector)
            .await
            .map_err(|err| {
                Status::unavailable(format!("cannot start HTTP/2 on session {}: {err}", meta.id))
            })?;
        let session = Arc::new(Session {
            meta: meta.clone(),
            channel,
            closed: closed.clone(),
        });
        {
            let mut sessions = self.sessions.lock().expect("sessions lock");
            sessions.insert(meta.id.clone(), session.clone());
        }
        self.added.notify_waiters();
        eprintln!(
            "hoistd: session {} ({}) opened, serving {}",
            meta.id,
            meta.name,
            meta.methods.join(",")
        );
        let sessions = self.sessions.clone();
        let mut watch_closed = closed.clone();
        tokio::spawn(async move {
            let _ = watch_closed.wait_for(|c| *c).await;
            let mut sessions = sessions.lock().expect("sessions lock");
            if sessions
                .get(&meta.id)
                .is_some_and(|s| Arc::ptr_eq(s, &session))
            {
                sessions.remove(&meta.id);
            }
            eprintln!("hoistd: session {} closed", meta.id);
        });
        Ok(closed)
    }

    /// The session `id`, waiting up to `timeout` for the client to open it.
    pub async fn get(&self, id: &str, timeout: Duration) -> Result<Arc<Session>, Status> {
        let wait = async {
            loop {
                let added = self.added.notified();
                tokio::pin!(added);
                added.as_mut().enable();
                if let Some(session) = self.lookup(id) {
                    return session;
                }
                added.await;
            }
        };
        tokio::time::timeout(timeout, wait).await.map_err(|_| {
            Status::deadline_exceeded(format!(
                "session {id} did not open within {}s: the client must open it (Control.Session \
                 or POST /session) before or while it solves",
                timeout.as_secs()
            ))
        })
    }

    fn lookup(&self, id: &str) -> Option<Arc<Session>> {
        let sessions = self.sessions.lock().expect("sessions lock");
        sessions.get(id).filter(|s| !s.is_closed()).cloned()
    }

    /// How many sessions are open.
    pub fn len(&self) -> usize {
        self.sessions.lock().expect("sessions lock").len()
    }

    /// Whether no session is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `Control.Session`: the client's HTTP/2 bytes arrive as `incoming` messages; the
    /// daemon's go out as the returned stream (hoist-session's [`tunnel`], the adapter
    /// hoist's client uses for its end of the same call).
    pub async fn attach_stream(
        &self,
        meta: SessionMeta,
        incoming: Streaming<BytesMessage>,
    ) -> Result<Outbound<BytesMessage>, Status> {
        let (ours, outbound, inbound) = tunnel::<BytesMessage>();
        // Client → daemon: each message's bytes into the pipe; the stream's end is EOF.
        tokio::spawn(inbound.feed(incoming));
        self.attach(meta, ours).await?;
        Ok(outbound)
    }
}

/// An IO that reports when it ends: at EOF, on an error, or when dropped (the HTTP/2
/// connection task dropped it).
struct Tracked<IO> {
    inner: IO,
    closed: Option<watch::Sender<bool>>,
}

impl<IO> Tracked<IO> {
    fn close(&mut self) {
        if let Some(closed) = self.closed.take() {
            let _ = closed.send(true);
        }
    }
}

impl<IO> Drop for Tracked<IO> {
    fn drop(&mut self) {
        self.close();
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Tracked<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        match &polled {
            Poll::Ready(Ok(())) if buf.filled().len() == before && buf.remaining() > 0 => {
                self.close();
            }
            Poll::Ready(Err(_)) => self.close(),
            _ => {}
        }
        polled
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Tracked<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_is_read_in_any_case_and_methods_repeat() {
        let meta = SessionMeta::from_pairs([
            ("X-Docker-Expose-Session-Uuid", "abc"),
            ("X-Docker-Expose-Session-Name", "ctx"),
            ("x-docker-expose-session-grpc-method", "/a/B"),
            ("X-Docker-Expose-Session-Grpc-Method", "/c/D,/e/F"),
        ])
        .unwrap();
        assert_eq!(meta.id, "abc");
        assert_eq!(meta.shared_key, "abc");
        assert_eq!(meta.methods, ["/a/B", "/c/D", "/e/F"]);
        assert!(meta.serves("/c/D"));
        assert!(!meta.serves("/x/Y"));
        assert!(SessionMeta::from_pairs([("x-docker-expose-session-name", "n")]).is_err());
    }
}
