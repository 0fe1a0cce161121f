//! `moby.upload.v1.Upload/Pull`: bytes the client uploads for the daemon to fetch — a build
//! context read from stdin, as buildx's upload provider serves it. Each upload is named by
//! a URL `http://buildkit-session/<id>` the client puts in the request (the `context`
//! frontend attribute); the daemon's `Pull` call names the URL's path in its `urlpath`
//! metadata, and the client streams that reader's bytes, once.

use std::collections::BTreeMap;
use std::io::Read;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use futures::Stream;
use hoist_proto::upload::upload_server::Upload;
use hoist_proto::upload::BytesMessage;
use tonic::{Request, Response, Status, Streaming};

/// The host of the URLs that name a session's uploads (BuildKit's http source fetches
/// such a URL through the session instead of the network).
pub const UPLOAD_HOST: &str = "buildkit-session";

/// The metadata key naming the URL's path in a `Pull` call.
pub const URL_PATH_KEY: &str = "urlpath";
/// The metadata key naming the URL's host.
pub const URL_HOST_KEY: &str = "urlhost";

/// The size of each message sent (BuildKit's client sends up to 3 MiB).
const CHUNK: usize = 1024 * 1024;

/// The readers a session serves, by id; each is taken by the first `Pull` naming it.
#[derive(Default)]
pub struct Uploads(Mutex<BTreeMap<String, Box<dyn Read + Send>>>);

impl std::fmt::Debug for Uploads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<String> = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect();
        f.debug_tuple("Uploads").field(&ids).finish()
    }
}

impl Uploads {
    /// Serves `reader` under a new id; the URL naming it.
    pub fn add(&self, id: String, reader: Box<dyn Read + Send>) -> String {
        let url = format!("http://{UPLOAD_HOST}/{id}");
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, reader);
        url
    }

    pub fn is_empty(&self) -> bool {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_empty()
    }

    fn take(&self, id: &str) -> Option<Box<dyn Read + Send>> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id)
    }
}

type PullStream = Pin<Box<dyn Stream<Item = Result<BytesMessage, Status>> + Send>>;

/// The `Upload` service over a session's uploads.
pub(crate) struct UploadService(pub(crate) Arc<crate::Session>);

#[tonic::async_trait]
impl Upload for UploadService {
    type PullStream = PullStream;

    async fn pull(
        &self,
        request: Request<Streaming<BytesMessage>>,
    ) -> Result<Response<PullStream>, Status> {
        let path = request
            .metadata()
            .get(URL_PATH_KEY)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        // As BuildKit's provider: the path's last component is the id.
        let id = path.rsplit('/').next().unwrap_or_default().to_owned();
        let Some(mut reader) = self.0.uploads.take(&id) else {
            return Err(Status::not_found(format!(
                "no upload {path:?} in this session (each is pulled once)"
            )));
        };
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let session = Arc::clone(&self.0);
        // The reader is a blocking one (stdin): read off the async threads.
        tokio::task::spawn_blocking(move || loop {
            let mut buf = vec![0u8; CHUNK];
            match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    buf.truncate(n);
                    if tx.blocking_send(Ok(BytesMessage { data: buf })).is_err() {
                        break;
                    }
                }
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                Err(err) => {
                    let message = format!("reading the upload {id} failed: {err}");
                    session.fail(message.clone());
                    let _ = tx.blocking_send(Err(Status::data_loss(message)));
                    break;
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }
}
