//! HTTP(S) sources (`ADD https://host/file /dst/`): one downloaded file in a snapshot of its
//! own, which the ADD's copy action then copies (never unpacks) into place.
//!
//! Behaviour follows BuildKit's http source:
//!
//! - the file is named by the source's `filename` (the Dockerfile frontend always sets the
//!   URL path's last element), else the response's `Content-Disposition` filename, else
//!   the URL path's last element, else `__unnamed__`;
//! - it gets mode 0600 and owner 0:0 (`ADD --chmod/--chown` apply later, in the copy), and
//!   the response's `Last-Modified` as mtime (the Unix epoch without one);
//! - statuses outside 200..400 fail naming the URL and status; connection errors, 429 and
//!   5xx are retried under the registry client's retry policy ([`hoist_registry::retry`],
//!   honouring `Retry-After`), and a body cut short restarts the download; the client is
//!   the worker's ([`Worker::http_client`]: the registry config's timeouts and, for a host
//!   it names, TLS settings); proxies come from `HTTP(S)_PROXY`/`NO_PROXY`.
//!
//! Cache key. With `--checksum` the key is that digest (and the filename): nothing is
//! fetched until the step runs, when the bytes are checked against it. Without, the key is
//! the digest of the content, which needs a request: every download whose response had an
//! `ETag` leaves a record `url → (etag, digest, Last-Modified)` under `<engine>/http/`,
//! and the next resolution asks `HEAD` (then `GET`) with `If-None-Match` listing the known
//! etags. A match (200 with that ETag, or 304) reuses the recorded digest without a
//! download; anything else downloads again. As in BuildKit, the key digests filename,
//! mode, content digest and Last-Modified, not the URL.
//!
//! Downloads stream into a content-store writer, which hashes them on the way and makes
//! them a blob (named by their sha256) only when complete: the bytes reach the disk once.
//! The step's snapshot is made from that blob. A failure leaves neither blob nor temp file.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use fs4::fs_std::FileExt;
use hoist_content::Expected;
use hoist_oci::{Algorithm, Digest, Digester};
use hoist_registry::retry;
use hoist_snapshot::Snapshotter as _;
use reqwest::header::{HeaderMap, CONTENT_DISPOSITION, ETAG, IF_NONE_MATCH, LAST_MODIFIED};
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};

use super::EngineOp;
use crate::error::{Error, Result};
use crate::worker::{create_dir_all, Ref, Worker};

/// The mode of a downloaded file (BuildKit's default; `ADD --chmod` changes the copy).
const FILE_MODE: u32 = 0o600;

/// The name BuildKit gives a download nothing names.
const UNNAMED: &str = "__unnamed__";

/// What the cache key of an http source was computed from, kept for its run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Resolved {
    /// The sha256 of the content; a blob of the content store once downloaded.
    digest: Digest,
    size: u64,
    filename: String,
    /// The `Last-Modified` header as sent.
    last_modified: Option<String>,
}

/// The resolution of one op, shared by its clones between `cache_map` and `exec`.
pub(crate) type Slot = Arc<Mutex<Option<Resolved>>>;

/// One http source vertex's fields.
#[derive(Debug, Clone)]
struct Source {
    url: String,
    /// As the graph names it (may be empty).
    filename: String,
    checksum: Option<Digest>,
}

impl Source {
    fn of(op: &EngineOp) -> Result<Source> {
        let hoist_graph::Op::Source(hoist_graph::Source::Http {
            url,
            filename,
            checksum,
        }) = &op.vertex.op
        else {
            return Err(Error::InvalidGraph("not an http source".into()));
        };
        let checksum = checksum
            .as_deref()
            .map(|c| {
                Digest::parse(c).map_err(|e| Error::InvalidChecksum {
                    url: url.clone(),
                    checksum: c.to_owned(),
                    reason: e.to_string(),
                })
            })
            .transpose()?;
        Ok(Source {
            url: url.clone(),
            filename: filename.clone(),
            checksum,
        })
    }

    /// The file's name, from the source, the response or the URL (BuildKit's
    /// `getFileName`).
    fn file_name(&self, headers: Option<&HeaderMap>) -> String {
        if !self.filename.is_empty() {
            return safe_file_name(&self.filename);
        }
        let disposition = headers
            .and_then(|h| h.get(CONTENT_DISPOSITION))
            .and_then(|v| v.to_str().ok())
            .and_then(disposition_filename);
        if let Some(name) = disposition {
            return safe_file_name(&name);
        }
        let path = reqwest::Url::parse(&self.url)
            .map(|u| u.path().to_owned())
            .unwrap_or_default();
        safe_file_name(path.rsplit('/').next().unwrap_or_default())
    }

    /// The key under which this URL's etag records are kept: the URL and filename (not
    /// the checksum, so a pinned and an unpinned `ADD` share what they learnt).
    fn record_name(&self) -> String {
        let mut hash = Digester::sha256();
        hash.update(self.url.as_bytes());
        hash.update(b"\0");
        hash.update(self.filename.as_bytes());
        hash.finish().0.encoded().to_owned()
    }
}

/// The digest the solver keys the source on (see the module docs).
pub(super) async fn cache_key(op: &EngineOp) -> Result<hoist_solver::Digest> {
    let source = Source::of(op)?;
    let (digest, filename, last_modified) = match &source.checksum {
        Some(checksum) => (checksum.clone(), source.file_name(None), None),
        None => {
            let resolved = resolve(op, &source).await?;
            let parts = (
                resolved.digest.clone(),
                resolved.filename.clone(),
                resolved
                    .last_modified
                    .as_deref()
                    .and_then(normalize_http_date),
            );
            *op.http.lock().unwrap_or_else(PoisonError::into_inner) = Some(resolved);
            parts
        }
    };
    let key = serde_json::json!({
        "kind": "hoist-http-source/v1",
        "filename": filename,
        "mode": FILE_MODE,
        "checksum": digest.as_str(),
        "last_modified": last_modified,
    });
    Ok(hoist_solver::Digest::of(key.to_string().as_bytes()))
}

/// Makes the snapshot holding the downloaded file.
pub(super) async fn exec(op: &EngineOp) -> Result<Ref> {
    let source = Source::of(op)?;
    let known = op
        .http
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let resolved = match (known, &source.checksum) {
        (Some(resolved), _) if op.worker.store().has(&resolved.digest) => resolved,
        (_, Some(checksum)) => pinned(op, &source, checksum).await?,
        (Some(wanted), None) => {
            // The blob went away since the key was made: fetch it again, and insist on the
            // content the key was computed from.
            let fresh = download(op, &source).await?;
            if fresh.digest != wanted.digest {
                return Err(Error::ChecksumMismatch {
                    url: source.url.clone(),
                    expected: wanted.digest.to_string(),
                    actual: fresh.digest.to_string(),
                });
            }
            fresh
        }
        (None, None) => resolve(op, &source).await?,
    };
    op.blocking(move |op| snapshot(&op, &resolved)).await
}

/// A checksum-pinned source: a recorded download with that digest when its blob is still
/// here, else a fresh download checked against it.
async fn pinned(op: &EngineOp, source: &Source, checksum: &Digest) -> Result<Resolved> {
    let records = load_records(&op.worker, source).await?;
    if let Some(record) = records.iter().find(|r| {
        (r.digest == *checksum || r.pinned.as_ref() == Some(checksum))
            && op.worker.store().has(&r.digest)
    }) {
        return Ok(record.resolved(source, None));
    }
    download(op, source).await
}

/// Learns the content digest of an unpinned source, downloading only when no recorded
/// download matches the server's current ETag.
async fn resolve(op: &EngineOp, source: &Source) -> Result<Resolved> {
    let records: Vec<Record> = load_records(&op.worker, source)
        .await?
        .into_iter()
        .filter(|r| !r.etag.is_empty() && op.worker.store().has(&r.digest))
        .collect();
    if records.is_empty() {
        return download(op, source).await;
    }
    let etags: Vec<&str> = records.iter().map(|r| r.etag.as_str()).collect();
    let mut conditional = HeaderMap::new();
    if let Ok(value) = etags.join(", ").parse() {
        conditional.insert(IF_NONE_MATCH, value);
    }
    // If a 304 names no ETag and we asked about one, it is that one.
    let only = (etags.len() == 1).then(|| etags[0].to_owned());
    let matching = |status: StatusCode, headers: &HeaderMap| -> Option<Resolved> {
        let etag = headers
            .get(ETAG)
            .and_then(|v| v.to_str().ok())
            .map(etag_value)
            .filter(|e| !e.is_empty())
            .or_else(|| {
                (status == StatusCode::NOT_MODIFIED)
                    .then(|| only.clone())
                    .flatten()
            })?;
        let record = records.iter().find(|r| r.etag == etag)?;
        Some(record.resolved(source, Some(headers)))
    };
    // Some servers mishandle If-None-Match but send ETags: a HEAD compared by hand first.
    if let Ok(head) = send(op, Method::HEAD, &source.url, &conditional).await {
        let status = head.status();
        if status == StatusCode::OK || status == StatusCode::NOT_MODIFIED {
            if let Some(resolved) = matching(status, head.headers()) {
                return Ok(resolved);
            }
        }
    }
    get(op, source, &conditional, |response| {
        matching(response.status(), response.headers())
    })
    .await
}

/// Downloads the source, stores it and records its ETag.
async fn download(op: &EngineOp, source: &Source) -> Result<Resolved> {
    get(op, source, &HeaderMap::new(), |_| None).await
}

/// `GET`s the source with `headers`, restarting a body cut short; a 304 answer is what
/// `not_modified` makes of it, anything else successful is saved.
async fn get(
    op: &EngineOp,
    source: &Source,
    headers: &HeaderMap,
    not_modified: impl Fn(&reqwest::Response) -> Option<Resolved>,
) -> Result<Resolved> {
    let mut attempts = op.worker.registry().config().retry.attempts();
    loop {
        let response = send(op, Method::GET, &source.url, headers).await?;
        if response.status() == StatusCode::NOT_MODIFIED {
            return not_modified(&response).ok_or_else(|| Error::Download {
                url: source.url.clone(),
                message: "the server answered 304 Not Modified for an ETag never seen".to_owned(),
            });
        }
        match save(op, source, response).await {
            Err(Saving::Retry(_)) if attempts.can_retry() => attempts.wait(None).await,
            Err(Saving::Retry(e) | Saving::Fail(e)) => return Err(e),
            Ok(resolved) => return Ok(resolved),
        }
    }
}

/// Why saving a response failed: worth another request, or not.
#[derive(Debug)]
enum Saving {
    Retry(Error),
    Fail(Error),
}

/// Streams a successful response into a temp file, checks a pinned checksum, and stores
/// the bytes as a blob named by their sha256 (then records the ETag, if any).
async fn save(
    op: &EngineOp,
    source: &Source,
    mut response: reqwest::Response,
) -> Result<Resolved, Saving> {
    let status = response.status();
    if !(200..400).contains(&status.as_u16()) {
        return Err(Saving::Fail(Error::DownloadStatus {
            url: source.url.clone(),
            status: status.as_u16(),
        }));
    }
    let store = op.worker.store().clone();
    let mut blob = op
        .blocking(move |_| Ok(store.writer()?))
        .await
        .map_err(Saving::Fail)?;
    let mut pinned = source
        .checksum
        .as_ref()
        .and_then(Digest::known_algorithm)
        .filter(|a| *a != Algorithm::Sha256)
        .map(Digester::new);
    loop {
        let chunk = match response.chunk().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(e) => return Err(Saving::Retry(download_error(&source.url, &e))),
        };
        if let Some(d) = &mut pinned {
            d.update(&chunk);
        }
        // Small buffered writes of what the network delivers (the writer hashes them); the
        // commit's fsync runs on a blocking thread.
        blob.append(&chunk)
            .map_err(|e| Saving::Fail(Error::from(e)))?;
    }
    let digest = blob.digest();
    let size = blob.written();
    if let Some(expected) = &source.checksum {
        let actual = match pinned {
            Some(d) => d.finish().0,
            None => digest.clone(),
        };
        if actual != *expected {
            return Err(Saving::Fail(Error::ChecksumMismatch {
                url: source.url.clone(),
                expected: expected.to_string(),
                actual: actual.to_string(),
            }));
        }
    }
    let headers = response.headers().clone();
    let resolved = Resolved {
        digest: digest.clone(),
        size,
        filename: source.file_name(Some(&headers)),
        last_modified: header(&headers, LAST_MODIFIED),
    };
    let record = header(&headers, ETAG).map(|etag| Record {
        etag: etag_value(&etag),
        digest: digest.clone(),
        size,
        last_modified: resolved.last_modified.clone(),
        pinned: source
            .checksum
            .clone()
            .filter(|c| c.known_algorithm() != Some(Algorithm::Sha256)),
    });
    let source = source.clone();
    op.blocking(move |op| {
        blob.commit(Some(Expected::new(digest, size)))?;
        if let Some(record) = record {
            add_record(&op.worker, &source, record)?;
        }
        Ok(())
    })
    .await
    .map_err(Saving::Fail)?;
    Ok(resolved)
}

/// Sends one request, retrying connection errors, 429 and 5xx under the registry config's
/// [`hoist_registry::RetryPolicy`] (a `HEAD`, only ever a shortcut, is sent once). Any final
/// answer is returned; callers check the status.
async fn send(
    op: &EngineOp,
    method: Method,
    url: &str,
    headers: &HeaderMap,
) -> Result<reqwest::Response> {
    request(&op.worker, method, url, headers).await
}

/// [`send`] for any caller with a worker (a remote build context's download too).
pub(crate) async fn request(
    worker: &Worker,
    method: Method,
    url: &str,
    headers: &HeaderMap,
) -> Result<reqwest::Response> {
    let parsed = reqwest::Url::parse(url).map_err(|e| Error::Download {
        url: url.to_owned(),
        message: e.to_string(),
    })?;
    let client = worker.http_client(&parsed)?;
    let policy = &worker.registry().config().retry;
    let attempts = if method == Method::HEAD {
        policy.once().attempts()
    } else {
        policy.attempts()
    };
    retry::send(attempts, || {
        client
            .request(method.clone(), parsed.clone())
            .headers(headers.clone())
    })
    .await
    .map_err(|e| download_error(url, &e))
}

pub(crate) fn download_error(url: &str, error: &reqwest::Error) -> Error {
    Error::Download {
        url: url.to_owned(),
        message: chain(error),
    }
}

/// An error and its sources, `: `-separated (reqwest's own text leaves out the cause).
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let part = e.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = e.source();
    }
    text
}

fn header(headers: &HeaderMap, name: reqwest::header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// An ETag without its weak marker, for comparison.
fn etag_value(etag: &str) -> String {
    etag.trim().trim_start_matches("W/").to_owned()
}

/// An HTTP date in its one canonical form; `None` when it is not one.
fn normalize_http_date(text: &str) -> Option<String> {
    httpdate::parse_http_date(text)
        .ok()
        .map(httpdate::fmt_http_date)
}

/// The `filename` parameter of a `Content-Disposition` value, unquoted. Written here
/// because it is one parameter of one header; `filename*` (RFC 5987) is not decoded.
fn disposition_filename(value: &str) -> Option<String> {
    let mut params = value.split(';').skip(1);
    params.find_map(|param| {
        let (name, value) = param.split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("filename") {
            return None;
        }
        let value = value.trim();
        let value = match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
            Some(quoted) => {
                let mut out = String::new();
                let mut chars = quoted.chars();
                while let Some(c) = chars.next() {
                    out.push(if c == '\\' { chars.next()? } else { c });
                }
                out
            }
            None => value.to_owned(),
        };
        (!value.is_empty() && !value.ends_with('/')).then_some(value)
    })
}

/// A name safe to create in the source's root: its last path element, or `__unnamed__`.
fn safe_file_name(name: &str) -> String {
    match name.rsplit('/').next() {
        Some(base) if !base.is_empty() && base != "." && base != ".." => base.to_owned(),
        _ => UNNAMED.to_owned(),
    }
}

/// A committed snapshot holding the blob as `/<filename>` (mode 0600, mtime from
/// Last-Modified), and its layer.
fn snapshot(op: &EngineOp, resolved: &Resolved) -> Result<Ref> {
    let snapshotter = op.worker.snapshotter();
    let key = op.worker.unique_key("http");
    let mount = snapshotter.prepare(&key, &[])?;
    if let Err(e) = write_file(op, resolved, mount.path()) {
        let _ = snapshotter.remove(&key);
        return Err(e);
    }
    super::commit(op, &key, None)
}

fn write_file(op: &EngineOp, resolved: &Resolved, root: &Path) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    use std::os::unix::fs::PermissionsExt as _;
    let path = root.join(&resolved.filename);
    let mut blob = op.worker.store().open_blob(&resolved.digest)?;
    let mut file = std::fs::File::options()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(&path)
        .map_err(Error::io("create", &path))?;
    let copied = std::io::copy(&mut blob, &mut file).map_err(Error::io("write", &path))?;
    if copied != resolved.size {
        return Err(Error::InvalidBlob {
            digest: resolved.digest.clone(),
            reason: format!("has {copied} bytes, {} expected", resolved.size),
        });
    }
    // The umask may have narrowed the create mode; set it exactly.
    file.set_permissions(std::fs::Permissions::from_mode(FILE_MODE))
        .map_err(Error::io("chmod", &path))?;
    let mtime = resolved
        .last_modified
        .as_deref()
        .and_then(|t| httpdate::parse_http_date(t).ok())
        .unwrap_or(SystemTime::UNIX_EPOCH);
    file.set_modified(mtime)
        .map_err(Error::io("set times of", &path))
}

/// One download whose response had an ETag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Record {
    etag: String,
    /// The sha256 of the content (a blob of the content store).
    digest: Digest,
    size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_modified: Option<String>,
    /// The `--checksum` of the download, when it was not sha256.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pinned: Option<Digest>,
}

impl Record {
    fn resolved(&self, source: &Source, headers: Option<&HeaderMap>) -> Resolved {
        Resolved {
            digest: self.digest.clone(),
            size: self.size,
            filename: source.file_name(headers),
            last_modified: self.last_modified.clone(),
        }
    }
}

/// `<engine>/http`: the records, one JSON list per URL.
fn records_dir(worker: &Worker) -> std::path::PathBuf {
    worker.engine_dir().join("http")
}

/// Holds `<engine>/http.lock` (shared or exclusive) while the guard lives.
fn lock(worker: &Worker, exclusive: bool) -> Result<std::fs::File> {
    let path = worker.engine_dir().join("http.lock");
    let file = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(Error::io("open", &path))?;
    if exclusive {
        FileExt::lock_exclusive(&file)
    } else {
        FileExt::lock_shared(&file)
    }
    .map_err(Error::io("lock", &path))?;
    Ok(file)
}

async fn load_records(worker: &Arc<Worker>, source: &Source) -> Result<Vec<Record>> {
    let worker = Arc::clone(worker);
    let name = source.record_name();
    tokio::task::spawn_blocking(move || {
        let _lock = lock(&worker, false)?;
        read_records(&records_dir(&worker).join(format!("{name}.json")))
    })
    .await
    .map_err(|e| Error::Task(e.to_string()))?
}

/// The records in `path`; none when it is missing or unreadable (they are only a hint).
fn read_records(path: &Path) -> Result<Vec<Record>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(serde_json::from_slice(&bytes).unwrap_or_default()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(Error::io("read", path)(e)),
    }
}

/// Adds (or refreshes) the record of `record.etag`, keeping only records whose blob exists.
fn add_record(worker: &Worker, source: &Source, record: Record) -> Result<()> {
    let dir = records_dir(worker);
    create_dir_all(&dir)?;
    let _lock = lock(worker, true)?;
    let path = dir.join(format!("{}.json", source.record_name()));
    let mut records = read_records(&path)?;
    records.retain(|r| r.etag != record.etag && worker.store().has(&r.digest));
    records.push(record);
    let bytes = serde_json::to_vec_pretty(&records).map_err(|e| Error::CacheRecord {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    Ok(hoist_content::write_atomic(&path, &bytes)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_follow_buildkit() {
        let source = |url: &str, filename: &str| Source {
            url: url.to_owned(),
            filename: filename.to_owned(),
            checksum: None,
        };
        assert_eq!(source("http://h/a/b.txt", "").file_name(None), "b.txt");
        assert_eq!(source("http://h/a/b.txt", "c").file_name(None), "c");
        assert_eq!(source("http://h/", "").file_name(None), UNNAMED);
        assert_eq!(source("http://h", "").file_name(None), UNNAMED);
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_DISPOSITION,
            "attachment; filename=\"../x \\\"y\\\".tgz\""
                .parse()
                .unwrap(),
        );
        assert_eq!(
            source("http://h/a/b.txt", "").file_name(Some(&headers)),
            "x \"y\".tgz"
        );
        assert_eq!(
            source("http://h/a/b.txt", "given").file_name(Some(&headers)),
            "given"
        );
    }

    #[test]
    fn disposition_filenames() {
        assert_eq!(
            disposition_filename("attachment; filename=a.txt").as_deref(),
            Some("a.txt")
        );
        assert_eq!(
            disposition_filename("inline; FileName=\"b c\"").as_deref(),
            Some("b c")
        );
        assert_eq!(disposition_filename("attachment; filename=dir/"), None);
        assert_eq!(disposition_filename("attachment"), None);
    }

    #[test]
    fn etags_lose_their_weak_marker() {
        assert_eq!(etag_value("W/\"abc\""), "\"abc\"");
        assert_eq!(etag_value("\"abc\""), "\"abc\"");
    }

    #[test]
    fn http_dates_normalise() {
        assert_eq!(
            normalize_http_date("Sun, 06 Nov 1994 08:49:37 GMT").as_deref(),
            Some("Sun, 06 Nov 1994 08:49:37 GMT")
        );
        assert_eq!(normalize_http_date("yesterday"), None);
    }
}
