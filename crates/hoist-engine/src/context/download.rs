//! Downloading a context URL to a file, through the same per-host clients and retry policy
//! as `ADD <url>` (the worker's [`Worker::http_client`], the registry config's
//! [`hoist_registry::RetryPolicy`]; a body cut short starts the download again).

use std::path::Path;
use std::time::SystemTime;

use reqwest::header::{HeaderMap, LAST_MODIFIED};
use reqwest::Method;
use tokio::io::AsyncWriteExt as _;

use crate::error::{Error, Result};
use crate::ops::{download_error, http_request};
use crate::worker::Worker;

/// What a download told besides its bytes.
#[derive(Debug)]
pub(crate) struct Downloaded {
    /// `Last-Modified`, which BuildKit gives a downloaded file as its mtime.
    pub last_modified: Option<SystemTime>,
}

/// `GET`s `url` into a new file at `dest`; a status outside 200..400 fails naming both.
pub(crate) async fn download(worker: &Worker, url: &str, dest: &Path) -> Result<Downloaded> {
    let mut attempts = worker.registry().config().retry.attempts();
    loop {
        let mut response = http_request(worker, Method::GET, url, &HeaderMap::new()).await?;
        let status = response.status().as_u16();
        if !(200..400).contains(&status) {
            return Err(Error::DownloadStatus {
                url: url.to_owned(),
                status,
            });
        }
        let last_modified = response
            .headers()
            .get(LAST_MODIFIED)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v).ok());
        let mut file = tokio::fs::File::create(dest)
            .await
            .map_err(Error::io("create", dest))?;
        let cut_short = loop {
            match response.chunk().await {
                Ok(Some(chunk)) => file
                    .write_all(&chunk)
                    .await
                    .map_err(Error::io("write", dest))?,
                Ok(None) => break None,
                Err(e) => break Some(download_error(url, &e)),
            }
        };
        match cut_short {
            None => {
                file.flush().await.map_err(Error::io("write", dest))?;
                return Ok(Downloaded { last_modified });
            }
            Some(_) if attempts.can_retry() => attempts.wait(None).await,
            Some(e) => return Err(e),
        }
    }
}
