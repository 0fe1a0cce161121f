//! containerd's `content.v1.Content` service over a client's OCI layout directories: what a
//! BuildKit client serves on its session for `--cache-to type=local,dest=DIR` and
//! `--cache-from type=local,src=DIR`. The daemon names the store in each call's
//! `buildkit-attachable-store-id` metadata (`local:DIR`, [`store_id`]) and reads blobs
//! (`Info`, `Read`) or writes them (`Write`: STAT, WRITE…, COMMIT on one stream); the
//! client itself then tags the cache's root in `index.json` ([`LayoutDir::tag`]) from the
//! exporter response's `cache.manifest`.
//!
//! A blob is written to a temp file under `DIR/ingest/`, hashed as its bytes arrive, and
//! renamed to `DIR/blobs/<alg>/<hex>` only after its size and digest matched what the
//! daemon announced, fsynced: the layout never holds a half-written or misnamed blob.
//! Nothing is kept between `Write` calls, so `Status` knows no ingest and `Abort` has
//! nothing to drop.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use hoist_oci::{Descriptor, Digest, Digester, OciLayoutWriter};
use hoist_proto::content::content_server::Content;
use hoist_proto::content::{
    AbortRequest, Info, InfoRequest, InfoResponse, ReadContentRequest, ReadContentResponse,
    StatusRequest, StatusResponse, WriteAction, WriteContentRequest, WriteContentResponse,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

/// The metadata key naming the store a call is for (BuildKit's `GRPCHeaderID`).
pub const STORE_ID_KEY: &str = "buildkit-attachable-store-id";

/// The gRPC methods served when a session has a content store.
pub const METHODS: &[&str] = &[
    "/containerd.services.content.v1.Content/Info",
    "/containerd.services.content.v1.Content/Read",
    "/containerd.services.content.v1.Content/Status",
    "/containerd.services.content.v1.Content/Write",
    "/containerd.services.content.v1.Content/Abort",
];

/// The largest message taken from a daemon.
pub const MAX_MESSAGE: usize = 64 << 20;

/// The size of each `Read` message.
const CHUNK: usize = 1024 * 1024;

/// The store id BuildKit's client and daemon both derive from a `type=local` cache's
/// directory (the `dest`/`src` attribute as given): `local:DIR`.
pub fn store_id(dir: &str) -> String {
    format!("local:{dir}")
}

/// One OCI layout directory served as a content store.
#[derive(Debug, Clone)]
pub struct LayoutDir {
    root: PathBuf,
}

impl LayoutDir {
    /// The layout in `root` (created, with its `oci-layout`, when written to).
    pub fn new(root: PathBuf) -> Self {
        LayoutDir { root }
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join(hoist_oci::layout::blob_path(digest))
    }

    /// The size of a blob present in the layout; `None` when it is not.
    pub fn size(&self, digest: &Digest) -> std::io::Result<Option<u64>> {
        match fs::metadata(self.blob_path(digest)) {
            Ok(meta) if meta.is_file() => Ok(Some(meta.len())),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Names `root` `tag` in `index.json` (replacing the entry that had the tag), as
    /// BuildKit's client does after a cache export; the file is replaced by a rename.
    pub fn tag(&self, root: &Descriptor, tag: &str) -> hoist_oci::Result<()> {
        let mut layout = OciLayoutWriter::create_dir(&self.root)?;
        layout.add_manifest(root.clone(), Some(tag));
        layout.finish()?;
        Ok(())
    }

    /// The descriptor `tag` names in `index.json`, if the directory is a layout holding it.
    pub fn tagged(&self, tag: &str) -> hoist_oci::Result<Option<Descriptor>> {
        let layout = hoist_oci::OciLayout::open_dir(&self.root)?;
        Ok(layout.find(tag).cloned())
    }
}

/// The content stores a session serves, by store id.
#[derive(Debug, Clone, Default)]
pub struct Stores(BTreeMap<String, LayoutDir>);

impl Stores {
    pub(crate) fn insert(&mut self, id: String, dir: LayoutDir) {
        self.0.insert(id, dir);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The store a call names in its metadata.
    fn choose<T>(&self, request: &Request<T>) -> Result<LayoutDir, Status> {
        let id = request
            .metadata()
            .get(STORE_ID_KEY)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                Status::invalid_argument(format!("request lacks metadata {STORE_ID_KEY:?}"))
            })?;
        self.0
            .get(id)
            .cloned()
            .ok_or_else(|| Status::not_found(format!("unknown store {id}")))
    }
}

/// The `Content` service over a session's [`Stores`].
#[derive(Debug, Clone)]
pub struct ContentService(pub Arc<Stores>);

type ReadStream = Pin<Box<dyn Stream<Item = Result<ReadContentResponse, Status>> + Send>>;
type WriteStream = Pin<Box<dyn Stream<Item = Result<WriteContentResponse, Status>> + Send>>;

fn parse_digest(text: &str) -> Result<Digest, Status> {
    Digest::parse(text).map_err(|e| Status::invalid_argument(format!("{text:?}: {e}")))
}

fn io_status(action: &str, path: &Path, e: &std::io::Error) -> Status {
    Status::internal(format!("cannot {action} {}: {e}", path.display()))
}

fn not_found(dir: &LayoutDir, digest: &Digest) -> Status {
    Status::not_found(format!(
        "content {digest} not found in {}",
        dir.root.display()
    ))
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A blob being written: a temp file in `DIR/ingest/`, removed unless committed.
struct Ingest {
    dir: LayoutDir,
    file: tempfile::NamedTempFile,
    digester: Digester,
    written: u64,
}

impl Ingest {
    fn begin(dir: LayoutDir) -> Result<Ingest, Status> {
        let ingest = dir.root.join("ingest");
        fs::create_dir_all(&ingest).map_err(|e| io_status("create", &ingest, &e))?;
        let file = tempfile::Builder::new()
            .prefix("blob-")
            .tempfile_in(&ingest)
            .map_err(|e| io_status("create a temp file in", &ingest, &e))?;
        Ok(Ingest {
            dir,
            file,
            digester: Digester::sha256(),
            written: 0,
        })
    }

    /// Writes `data` at `offset`: the current end, or 0 to start over (containerd's rule).
    fn append(&mut self, offset: u64, data: &[u8]) -> Result<(), Status> {
        if offset == 0 && self.written > 0 {
            let file = self.file.as_file_mut();
            file.set_len(0)
                .and_then(|()| file.seek(SeekFrom::Start(0)).map(|_| ()))
                .map_err(|e| io_status("truncate", self.file.path(), &e))?;
            self.digester = Digester::sha256();
            self.written = 0;
        } else if offset != 0 && offset != self.written {
            return Err(Status::out_of_range(format!(
                "write @{offset} must occur at current offset {}",
                self.written
            )));
        }
        self.file
            .as_file_mut()
            .write_all(data)
            .map_err(|e| io_status("write", self.file.path(), &e))?;
        self.digester.update(data);
        self.written += data.len() as u64;
        Ok(())
    }

    /// Checks the bytes against `total` (when not 0) and `expected` (when given), then
    /// moves them into `blobs/` durably; a blob already there is left as it is.
    fn commit(self, total: u64, expected: Option<&Digest>) -> Result<Digest, Status> {
        let (digest, size) = self.digester.clone().finish();
        if total > 0 && size != total {
            return Err(Status::failed_precondition(format!(
                "unexpected commit size {size}, expected {total}"
            )));
        }
        if let Some(expected) = expected.filter(|e| **e != digest) {
            return Err(Status::failed_precondition(format!(
                "unexpected commit digest {digest}, expected {expected}"
            )));
        }
        let target = self.dir.blob_path(&digest);
        if target.is_file() {
            return Ok(digest);
        }
        self.file
            .as_file()
            .sync_all()
            .map_err(|e| io_status("fsync", self.file.path(), &e))?;
        let parent = target.parent().unwrap_or(&self.dir.root).to_owned();
        fs::create_dir_all(&parent).map_err(|e| io_status("create", &parent, &e))?;
        self.file
            .persist(&target)
            .map_err(|e| io_status("rename into place", &target, &e.error))?;
        File::open(&parent)
            .and_then(|d| d.sync_all())
            .map_err(|e| io_status("fsync", &parent, &e))?;
        // The layout is valid from its first blob on.
        let marker = self.dir.root.join("oci-layout");
        if !marker.is_file() {
            write_small(&marker, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        }
        Ok(digest)
    }
}

/// A small file written whole under a temp name and renamed.
fn write_small(path: &Path, bytes: &[u8]) -> Result<(), Status> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp =
        tempfile::NamedTempFile::new_in(dir).map_err(|e| io_status("create in", dir, &e))?;
    tmp.write_all(bytes)
        .map_err(|e| io_status("write", tmp.path(), &e))?;
    tmp.persist(path)
        .map_err(|e| io_status("rename into place", path, &e.error))?;
    Ok(())
}

/// Runs blocking file work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, Status> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Status::internal(format!("file task failed: {e}")))?
}

/// One `Write` call, containerd's content server's rules: the first message names the
/// ref (and usually the expected digest and size, refused as `AlreadyExists` when the
/// blob is there); each message gets one response carrying the offset written so far;
/// `COMMIT` ends the call.
async fn write_call(
    dir: LayoutDir,
    mut incoming: Streaming<WriteContentRequest>,
    tx: mpsc::Sender<Result<WriteContentResponse, Status>>,
) -> Result<(), Status> {
    let Some(first) = incoming.message().await? else {
        return Ok(());
    };
    if first.r#ref.is_empty() {
        return Err(Status::invalid_argument(
            "first message must have a reference",
        ));
    }
    let started = prost_now();
    let mut ingest = Some(
        blocking({
            let dir = dir.clone();
            move || Ingest::begin(dir)
        })
        .await?,
    );
    let mut total = u64::try_from(first.total).unwrap_or(0);
    let mut expected: Option<Digest> = None;
    let mut request = first;
    loop {
        if !request.expected.is_empty() {
            let digest = parse_digest(&request.expected)?;
            if dir.blob_path(&digest).is_file() {
                return Err(Status::already_exists(format!(
                    "blob with expected digest {digest} exists"
                )));
            }
            expected = Some(digest);
        }
        if request.total > 0 {
            total = u64::try_from(request.total).unwrap_or(0);
        }
        let action = WriteAction::try_from(request.action)
            .map_err(|_| Status::invalid_argument(format!("unknown action {}", request.action)))?;
        let mut response = WriteContentResponse {
            action: request.action,
            ..WriteContentResponse::default()
        };
        let mut current = ingest
            .take()
            .ok_or_else(|| Status::internal("write after commit"))?;
        match action {
            WriteAction::Stat => {
                response.offset = to_i64(current.written);
                response.digest = current.digester.clone().finish().0.to_string();
                response.started_at = Some(started);
                response.updated_at = Some(prost_now());
                response.total = to_i64(total);
                ingest = Some(current);
            }
            WriteAction::Write | WriteAction::Commit => {
                let offset = u64::try_from(request.offset).unwrap_or(0);
                let data = std::mem::take(&mut request.data);
                let commit = action == WriteAction::Commit;
                let expected = expected.clone();
                let (back, digest, written) = blocking(move || {
                    if !data.is_empty() || offset == 0 {
                        current.append(offset, &data)?;
                    }
                    let written = current.written;
                    if commit {
                        let digest = current.commit(total, expected.as_ref())?;
                        Ok((None, digest, written))
                    } else {
                        let digest = current.digester.clone().finish().0;
                        Ok((Some(current), digest, written))
                    }
                })
                .await?;
                ingest = back;
                response.offset = to_i64(written);
                response.digest = digest.to_string();
            }
        }
        if tx.send(Ok(response)).await.is_err() || action == WriteAction::Commit {
            return Ok(());
        }
        match incoming.message().await? {
            Some(next) => request = next,
            None => return Ok(()),
        }
    }
}

fn prost_now() -> hoist_proto::Timestamp {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    hoist_proto::Timestamp {
        seconds: i64::try_from(now.as_secs()).unwrap_or(0),
        nanos: i32::try_from(now.subsec_nanos()).unwrap_or(0),
    }
}

#[tonic::async_trait]
impl Content for ContentService {
    type ReadStream = ReadStream;
    type WriteStream = WriteStream;

    async fn info(&self, request: Request<InfoRequest>) -> Result<Response<InfoResponse>, Status> {
        let dir = self.0.choose(&request)?;
        let digest = parse_digest(&request.get_ref().digest)?;
        let size = blocking({
            let (dir, digest) = (dir.clone(), digest.clone());
            move || {
                dir.size(&digest)
                    .map_err(|e| io_status("stat", &dir.blob_path(&digest), &e))
            }
        })
        .await?
        .ok_or_else(|| not_found(&dir, &digest))?;
        Ok(Response::new(InfoResponse {
            info: Some(Info {
                digest: digest.to_string(),
                size: to_i64(size),
                ..Info::default()
            }),
        }))
    }

    async fn read(
        &self,
        request: Request<ReadContentRequest>,
    ) -> Result<Response<ReadStream>, Status> {
        let dir = self.0.choose(&request)?;
        let request = request.into_inner();
        let digest = parse_digest(&request.digest)?;
        let path = dir.blob_path(&digest);
        let (file, size) = blocking({
            let (path, dir, digest) = (path.clone(), dir.clone(), digest.clone());
            move || {
                let file = match File::open(&path) {
                    Ok(file) => file,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        return Err(not_found(&dir, &digest))
                    }
                    Err(e) => return Err(io_status("open", &path, &e)),
                };
                let size = file
                    .metadata()
                    .map_err(|e| io_status("stat", &path, &e))?
                    .len();
                Ok((file, size))
            }
        })
        .await?;
        let offset = u64::try_from(request.offset).unwrap_or(0);
        if offset > size {
            return Err(Status::out_of_range(format!(
                "read past object length {size} bytes"
            )));
        }
        let wanted = u64::try_from(request.size).unwrap_or(0);
        let end = if wanted == 0 || offset + wanted > size {
            size
        } else {
            offset + wanted
        };
        let (tx, rx) = mpsc::channel(4);
        tokio::task::spawn_blocking(move || {
            let mut file = file;
            let mut at = offset;
            if let Err(e) = file.seek(SeekFrom::Start(offset)) {
                let _ = tx.blocking_send(Err(io_status("seek", &path, &e)));
                return;
            }
            while at < end {
                let len = usize::try_from((end - at).min(CHUNK as u64)).unwrap_or(CHUNK);
                let mut data = vec![0; len];
                if let Err(e) = file.read_exact(&mut data) {
                    let _ = tx.blocking_send(Err(io_status("read", &path, &e)));
                    return;
                }
                let message = ReadContentResponse {
                    offset: to_i64(at),
                    data,
                };
                if tx.blocking_send(Ok(message)).is_err() {
                    return;
                }
                at += len as u64;
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn status(
        &self,
        request: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        self.0.choose(&request)?;
        Err(Status::not_found(format!(
            "no ingest {:?}: this store keeps none between writes",
            request.get_ref().r#ref
        )))
    }

    async fn write(
        &self,
        request: Request<Streaming<WriteContentRequest>>,
    ) -> Result<Response<WriteStream>, Status> {
        let dir = self.0.choose(&request)?;
        let incoming = request.into_inner();
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            let errors = tx.clone();
            if let Err(status) = write_call(dir, incoming, tx).await {
                let _ = errors.send(Err(status)).await;
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn abort(&self, request: Request<AbortRequest>) -> Result<Response<()>, Status> {
        // Ingests live only as long as their `Write` call: nothing to drop.
        self.0.choose(&request)?;
        Ok(Response::new(()))
    }
}
