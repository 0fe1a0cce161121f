//! A context the client uploads through its session (`hoist build --addr … -`, buildx with
//! a tar on stdin): the request's `context` is `http://buildkit-session/<id>`, and hoistd
//! pulls those bytes with `moby.upload.v1.Upload/Pull` (metadata `urlpath`, `urlhost`), as
//! BuildKit's http source does for that host. The bytes are spooled into an unnamed file
//! under `<root>/hoistd/uploads` (gone when the build drops it), then told apart as
//! BuildKit's dockerui tells an http context: an archive (tar, gzip, bzip2, xz, zstd) is
//! the context, anything else the Dockerfile with an empty context.

use std::io::{Read as _, Seek as _, Write as _};
use std::path::Path;
use std::time::Duration;

use hoist_engine::{BuildRequest, ContextSource, TarStream};
use hoist_proto::upload::upload_client::UploadClient;
use hoist_proto::upload::BytesMessage;
use hoist_session::upload::{UPLOAD_HOST, URL_HOST_KEY, URL_PATH_KEY};
use tonic::{Request, Status};

use crate::session::Session;

/// Pulls `url` from `session` into a file under `spool_dir` and points `build` at it: a
/// tar stream context, or the Dockerfile with an empty context. The number of bytes pulled.
pub async fn pull_context(
    session: &Session,
    url: &str,
    spool_dir: &Path,
    timeout: Duration,
    build: &mut BuildRequest,
) -> Result<u64, Status> {
    session.require(hoist_session::UPLOAD_METHOD)?;
    let path = url
        .strip_prefix("http://")
        .and_then(|rest| rest.find('/').map(|at| &rest[at..]))
        .unwrap_or("/")
        .to_owned();
    std::fs::create_dir_all(spool_dir)
        .map_err(|err| Status::internal(format!("cannot create {}: {err}", spool_dir.display())))?;
    let mut file = tempfile::tempfile_in(spool_dir).map_err(|err| {
        Status::internal(format!(
            "cannot create a file in {}: {err}",
            spool_dir.display()
        ))
    })?;
    let mut request = Request::new(tokio_stream::empty::<BytesMessage>());
    for (key, value) in [(URL_PATH_KEY, path.as_str()), (URL_HOST_KEY, UPLOAD_HOST)] {
        let value = value
            .parse()
            .map_err(|_| Status::invalid_argument(format!("invalid upload URL {url:?}")))?;
        request.metadata_mut().insert(key, value);
    }
    let failed = |status: Status| {
        Status::new(
            status.code(),
            format!(
                "pulling the uploaded context {url} failed: {}",
                status.message()
            ),
        )
    };
    let silent = || {
        Status::deadline_exceeded(format!(
            "the client sent nothing of the uploaded context {url} for {}s",
            timeout.as_secs()
        ))
    };
    let mut client = UploadClient::new(session.channel());
    let mut stream = tokio::time::timeout(timeout, client.pull(request))
        .await
        .map_err(|_| silent())?
        .map_err(failed)?
        .into_inner();
    let mut total = 0u64;
    while let Some(message) = tokio::time::timeout(timeout, stream.message())
        .await
        .map_err(|_| silent())?
        .map_err(failed)?
    {
        total += message.data.len() as u64;
        file.write_all(&message.data)
            .map_err(|err| Status::internal(format!("cannot spool the upload: {err}")))?;
    }
    let mut head = Vec::with_capacity(hoist_engine::HEAD_LEN);
    let rewound = file
        .rewind()
        .and_then(|()| {
            (&mut file)
                .take(hoist_engine::HEAD_LEN as u64)
                .read_to_end(&mut head)
        })
        .and_then(|_| file.rewind());
    rewound.map_err(|err| Status::internal(format!("cannot read the spooled upload: {err}")))?;
    if hoist_engine::is_archive(&head) {
        build.context = ContextSource::Tar(TarStream::new(file));
    } else {
        let mut dockerfile = Vec::new();
        file.read_to_end(&mut dockerfile)
            .map_err(|err| Status::internal(format!("cannot read the spooled upload: {err}")))?;
        build.dockerfile = Some(dockerfile);
        build.context = ContextSource::Empty;
    }
    Ok(total)
}
