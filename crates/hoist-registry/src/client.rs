//! [`RegistryClient`]: one client for many registries. This module holds the transport every
//! operation goes through: per-host setup (scheme, TLS, the `/v2/` ping that learns the auth
//! challenge, credentials), authorisation of each request, and retries.
//!
//! Retries: a request marked idempotent is sent again on connection errors, `429` (after
//! `Retry-After` when given) and `500/502/503/504`, with exponential backoff
//! ([`crate::retry`]). A `401` is answered once per request by getting a fresh token
//! for the scopes the challenge names.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};
use tokio::io::AsyncSeekExt as _;
use url::Url;

use crate::auth::{fetch_token, parse_challenges, Challenge, TokenCache, TokenRequest};
use crate::config::{is_loopback, RegistryConfig};
use crate::credentials::{Auth, Credentials};
use crate::error::{RegistryError, Result};
use crate::retry::{self, is_retryable_status, is_retryable_transport, retry_after};
use crate::Repository;

/// The host Docker Hub's API answers on, for references naming `docker.io`.
pub const DOCKER_HUB_API_HOST: &str = "registry-1.docker.io";

/// A Distribution API client. Cheap to clone; clones share connections, tokens and the
/// per-host state learnt so far.
#[derive(Debug, Clone)]
pub struct RegistryClient {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) config: RegistryConfig,
    credentials: Credentials,
    tokens: TokenCache,
    /// One set-up cell per host, so hosts are set up concurrently but each only once.
    hosts: Mutex<HashMap<String, Arc<tokio::sync::OnceCell<Arc<HostState>>>>>,
    /// One lock per blob being pushed or mounted into a repository (see
    /// [`RegistryClient::lock_blob_transfer`]).
    blob_transfers: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// What we know about one registry host after setting it up.
#[derive(Debug)]
pub(crate) struct HostState {
    /// The host as written in references (`docker.io`, `127.0.0.1:5000`).
    pub(crate) host: String,
    /// `scheme://api-host/`.
    pub(crate) base: Url,
    http: reqwest::Client,
    challenge: Mutex<Option<Challenge>>,
    auth: Option<Auth>,
}

/// A request body that can be produced again for a retry.
#[derive(Debug, Clone)]
pub(crate) enum Body {
    Empty,
    Bytes(Bytes),
    /// `len` bytes of a file from `offset`.
    File {
        path: PathBuf,
        offset: u64,
        len: u64,
    },
    /// `len` bytes of a content-store blob from `offset`.
    Blob {
        store: hoist_content::ContentStore,
        digest: hoist_oci::Digest,
        offset: u64,
        len: u64,
    },
}

/// One request as the transport sends it (again, on retries).
#[derive(Debug)]
pub(crate) struct Call {
    pub(crate) method: Method,
    pub(crate) url: Url,
    pub(crate) scopes: BTreeSet<String>,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Body,
    pub(crate) idempotent: bool,
}

impl Call {
    pub(crate) fn new(method: Method, url: Url, scopes: BTreeSet<String>) -> Self {
        let idempotent = matches!(method, Method::GET | Method::HEAD | Method::PUT);
        Call {
            method,
            url,
            scopes,
            headers: HeaderMap::new(),
            body: Body::Empty,
            idempotent,
        }
    }

    pub(crate) fn header(mut self, name: reqwest::header::HeaderName, value: &str) -> Self {
        if let Ok(value) = HeaderValue::from_str(value) {
            self.headers.insert(name, value);
        }
        self
    }

    pub(crate) fn body(mut self, body: Body) -> Self {
        self.body = body;
        self
    }

    pub(crate) fn idempotent(mut self, idempotent: bool) -> Self {
        self.idempotent = idempotent;
        self
    }
}

impl RegistryClient {
    /// Waits until no other task of this client is pushing or mounting `digest` into
    /// `repository`, and holds that place until the guard is dropped.
    ///
    /// Two transfers of one blob into one repository at once are not only wasted work: the
    /// Distribution registry rewrites the repository's link file for the blob on each, and a
    /// manifest `PUT` that reads the file mid-rewrite fails with `DIGEST_INVALID` +
    /// `MANIFEST_BLOB_UNKNOWN`. Serialising them makes the second one find the blob there.
    pub(crate) async fn lock_blob_transfer(
        &self,
        repository: &Repository,
        digest: &hoist_oci::Digest,
    ) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut transfers = self
                .inner
                .blob_transfers
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            // Forget locks nobody holds or waits for.
            transfers.retain(|_, lock| Arc::strong_count(lock) > 1);
            let key = format!("{}/{}@{digest}", repository.registry, repository.path);
            transfers.entry(key).or_default().clone()
        };
        lock.lock_owned().await
    }

    /// A client with these settings and credentials. Nothing is contacted until first use.
    pub fn new(config: RegistryConfig, credentials: Credentials) -> Self {
        RegistryClient {
            inner: Arc::new(Inner {
                config,
                credentials,
                tokens: TokenCache::default(),
                hosts: Mutex::new(HashMap::new()),
                blob_transfers: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The settings this client was made with.
    pub fn config(&self) -> &RegistryConfig {
        &self.inner.config
    }

    /// Sets up `host` once: picks the scheme, builds its TLS settings, looks up credentials
    /// and pings `/v2/` to learn how it wants to be authenticated.
    pub(crate) async fn host(&self, host: &str) -> Result<Arc<HostState>> {
        let cell = {
            let mut hosts = self.inner.hosts.lock().unwrap_or_else(|e| e.into_inner());
            hosts.entry(host.to_owned()).or_default().clone()
        };
        cell.get_or_try_init(|| async { Ok(Arc::new(self.setup_host(host).await?)) })
            .await
            .cloned()
    }

    /// Forgets what was learnt about `host` (after a login, say).
    pub async fn forget_host(&self, host: &str) {
        self.inner
            .hosts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(host);
    }

    async fn setup_host(&self, host: &str) -> Result<HostState> {
        let hc = self.inner.config.host(host);
        let http = self.inner.config.http_client(host)?;
        let api_host = if host == "docker.io" || host == "index.docker.io" {
            DOCKER_HUB_API_HOST
        } else {
            host
        };
        let schemes: &[&str] = match hc.plain_http {
            Some(true) => &["http"],
            Some(false) => &["https"],
            None if is_loopback(host) || hc.insecure => &["https", "http"],
            None => &["https"],
        };
        let auth = self.inner.credentials.lookup(host).await?;
        let mut first_err: Option<RegistryError> = None;
        let mut last_err = None;
        for (i, scheme) in schemes.iter().enumerate() {
            let base = Url::parse(&format!("{scheme}://{api_host}/")).map_err(|err| {
                RegistryError::Protocol {
                    registry: host.to_owned(),
                    message: format!("{api_host:?} is not a valid host: {err}"),
                }
            })?;
            let state = HostState {
                host: host.to_owned(),
                base,
                http: http.clone(),
                challenge: Mutex::new(None),
                auth: auth.clone(),
            };
            let last = i + 1 == schemes.len();
            match self.ping(&state, last).await {
                Ok(challenge) => {
                    *state.challenge.lock().unwrap_or_else(|e| e.into_inner()) = challenge;
                    return Ok(state);
                }
                Err(err) if first_err.is_none() => first_err = Some(err),
                Err(err) => last_err = Some(err),
            }
        }
        // HTTPS failed, and plain HTTP reached the server but got a 400 ("HTTP request to an
        // HTTPS server") or a closed connection: it speaks TLS, and the HTTPS error (an
        // unknown certificate, say) is the one that explains.
        let prefer_first = match (&first_err, &last_err) {
            (Some(RegistryError::Http { .. }), Some(RegistryError::Status { status, .. })) => {
                *status == 400
            }
            (Some(RegistryError::Http { .. }), Some(RegistryError::Http { source, .. })) => {
                !source.is_connect() && !source.is_timeout()
            }
            _ => false,
        };
        let (first_err, last_err) = if prefer_first {
            (last_err, first_err)
        } else {
            (first_err, last_err)
        };
        Err(last_err
            .or(first_err)
            .unwrap_or_else(|| RegistryError::Protocol {
                registry: host.to_owned(),
                message: "no scheme to try".to_owned(),
            }))
    }

    /// `GET /v2/`: 200 means anonymous access, 401 carries the challenge to answer later.
    async fn ping(&self, state: &HostState, retry: bool) -> Result<Option<Challenge>> {
        let url = state
            .base
            .join("v2/")
            .map_err(|err| RegistryError::Protocol {
                registry: state.host.clone(),
                message: err.to_string(),
            })?;
        let policy = if retry {
            self.inner.config.retry.clone()
        } else {
            self.inner.config.retry.once()
        };
        let result = retry::send(policy.attempts(), || state.http.get(url.clone())).await;
        let resp = result.map_err(|source| RegistryError::Http {
            method: "GET".to_owned(),
            url: url.to_string(),
            source,
        })?;
        match resp.status() {
            StatusCode::UNAUTHORIZED => {
                let challenges = challenges_of(&state.host, resp.headers())?;
                Ok(pick_challenge(challenges))
            }
            status if status.is_success() => Ok(None),
            // Some registries answer 404 or 403 on /v2/ but serve the API all the same.
            StatusCode::NOT_FOUND | StatusCode::FORBIDDEN => Ok(None),
            status => Err(RegistryError::Status {
                method: "GET".to_owned(),
                url: url.to_string(),
                status: status.as_u16(),
                message: String::new(),
            }),
        }
    }

    /// Adds the `Authorization` header the host's challenge calls for.
    async fn authorize(
        &self,
        state: &HostState,
        scopes: &BTreeSet<String>,
    ) -> Result<Option<HeaderValue>> {
        let challenge = state
            .challenge
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let value = match (&challenge, &state.auth) {
            (_, Some(Auth::BearerToken(token))) => format!("Bearer {token}"),
            (Some(Challenge::Basic { .. }), Some(Auth::Basic { username, password })) => {
                use base64::Engine as _;
                let raw = format!("{username}:{password}");
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(raw)
                )
            }
            (Some(Challenge::Bearer { realm, service, .. }), auth) => {
                let token = match self.inner.tokens.get(&state.host, scopes) {
                    Some(token) => token,
                    None => {
                        let (token, lifetime) = fetch_token(
                            &state.http,
                            TokenRequest {
                                registry: &state.host,
                                realm,
                                service: service.as_deref(),
                                scopes,
                                auth: auth.as_ref(),
                                retry: &self.inner.config.retry,
                            },
                        )
                        .await?;
                        self.inner
                            .tokens
                            .put(&state.host, scopes, token.clone(), lifetime);
                        token
                    }
                };
                format!("Bearer {token}")
            }
            _ => return Ok(None),
        };
        Ok(HeaderValue::from_str(&value).ok())
    }

    /// Builds the reqwest body for one attempt.
    async fn make_body(&self, body: &Body) -> Result<reqwest::Body> {
        Ok(match body {
            Body::Empty => reqwest::Body::from(Bytes::new()),
            Body::Bytes(bytes) => reqwest::Body::from(bytes.clone()),
            Body::File { path, offset, len } => {
                let read_err = |source| RegistryError::ReadFile {
                    path: path.clone(),
                    source,
                };
                let file = tokio::fs::File::open(path).await.map_err(read_err)?;
                file_body(file, *offset, *len).await.map_err(read_err)?
            }
            Body::Blob {
                store,
                digest,
                offset,
                len,
            } => {
                let file = tokio::fs::File::from_std(store.open_blob(digest)?);
                file_body(file, *offset, *len).await.map_err(|source| {
                    hoist_content::Error::ReadContent {
                        digest: digest.clone(),
                        source,
                    }
                })?
            }
        })
    }

    /// Sends `call` to `state`'s host, answering one `401` with fresh credentials and
    /// retrying idempotent calls as the policy says. Returns any final answer; callers check
    /// its status (see [`check_status`]).
    pub(crate) async fn send(&self, state: &HostState, call: &Call) -> Result<reqwest::Response> {
        let mut attempts = self.inner.config.retry.attempts();
        let mut scopes = call.scopes.clone();
        let mut reauthorized = false;
        loop {
            let mut request = state
                .http
                .request(call.method.clone(), call.url.clone())
                .headers(call.headers.clone());
            if let Some(value) = self.authorize(state, &scopes).await? {
                request = request.header(AUTHORIZATION, value);
            }
            match &call.body {
                Body::Empty if call.method == Method::GET || call.method == Method::HEAD => {}
                Body::Empty => {
                    request = request.header(reqwest::header::CONTENT_LENGTH, "0");
                }
                Body::File { len, .. } | Body::Blob { len, .. } => {
                    request = request
                        .header(reqwest::header::CONTENT_LENGTH, len.to_string())
                        .body(self.make_body(&call.body).await?);
                }
                other => request = request.body(self.make_body(other).await?),
            }
            let can_retry = call.idempotent && attempts.can_retry();
            match request.send().await {
                Err(err) => {
                    if can_retry && is_retryable_transport(&err) {
                        attempts.wait(None).await;
                        continue;
                    }
                    return Err(RegistryError::Http {
                        method: call.method.to_string(),
                        url: call.url.to_string(),
                        source: err,
                    });
                }
                Ok(resp) if resp.status() == StatusCode::UNAUTHORIZED && !reauthorized => {
                    reauthorized = true;
                    let challenges = challenges_of(&state.host, resp.headers())?;
                    let Some(challenge) = pick_challenge(challenges) else {
                        return Ok(resp);
                    };
                    self.inner.tokens.forget(&state.host, &scopes);
                    if let Challenge::Bearer {
                        scope: Some(wanted),
                        ..
                    } = &challenge
                    {
                        scopes.extend(
                            wanted
                                .split(' ')
                                .filter(|s| !s.is_empty())
                                .map(str::to_owned),
                        );
                    }
                    let had_none =
                        state.auth.is_none() && matches!(challenge, Challenge::Basic { .. });
                    *state.challenge.lock().unwrap_or_else(|e| e.into_inner()) = Some(challenge);
                    if had_none {
                        // Basic auth with no credentials: asking again cannot help.
                        return Ok(resp);
                    }
                }
                Ok(resp) if can_retry && is_retryable_status(resp.status()) => {
                    let asked = retry_after(resp.headers());
                    drop(resp);
                    attempts.wait(asked).await;
                }
                Ok(resp) => return Ok(resp),
            }
        }
    }

    /// Runs a pull-side operation against `repository`'s mirrors in order, then the registry
    /// itself; the first success wins, and the registry's own error is the one reported.
    pub(crate) async fn try_pull_hosts<T, F, Fut>(
        &self,
        repository: &Repository,
        op: F,
    ) -> Result<T>
    where
        F: Fn(RegistryClient, String) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let mirrors = self.inner.config.host(&repository.registry).mirrors;
        for mirror in mirrors {
            if let Ok(found) = op(self.clone(), mirror).await {
                return Ok(found);
            }
        }
        op(self.clone(), repository.registry.clone()).await
    }

    /// Checks that the client's credentials for `host` are accepted: `GET /v2/` with them for
    /// Basic registries, a token request without scope for Bearer ones. A registry that lets
    /// anyone in accepts any credentials, as with docker.
    pub async fn verify_credentials(&self, host: &str) -> Result<()> {
        self.forget_host(host).await;
        let state = self.host(host).await?;
        let challenge = state
            .challenge
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let Some(challenge) = challenge else {
            return Ok(());
        };
        let refused = |message: String| RegistryError::Unauthorized {
            registry: host.to_owned(),
            what: "login".to_owned(),
            message,
        };
        match challenge {
            Challenge::Basic { .. } => {
                let url = state
                    .base
                    .join("v2/")
                    .map_err(|err| RegistryError::Protocol {
                        registry: host.to_owned(),
                        message: err.to_string(),
                    })?;
                let resp = self
                    .send(&state, &Call::new(Method::GET, url, BTreeSet::new()))
                    .await?;
                if resp.status().is_success() {
                    Ok(())
                } else {
                    Err(refused(format!("the registry answered {}", resp.status())))
                }
            }
            Challenge::Bearer { realm, service, .. } => {
                if state.auth.is_none() {
                    return Err(refused("no credentials given".to_owned()));
                }
                fetch_token(
                    &state.http,
                    TokenRequest {
                        registry: host,
                        realm: &realm,
                        service: service.as_deref(),
                        scopes: &BTreeSet::new(),
                        auth: state.auth.as_ref(),
                        retry: &self.inner.config.retry,
                    },
                )
                .await
                .map(drop)
            }
        }
    }

    /// The API URL `v2/<repository>/<rest>` on `state`'s host.
    pub(crate) fn api_url(&self, state: &HostState, repository: &str, rest: &str) -> Result<Url> {
        state
            .base
            .join(&format!("v2/{repository}/{rest}"))
            .map_err(|err| RegistryError::Protocol {
                registry: state.host.clone(),
                message: format!("cannot build the URL for {repository}/{rest}: {err}"),
            })
    }
}

fn challenges_of(registry: &str, headers: &HeaderMap) -> Result<Vec<Challenge>> {
    let mut out = Vec::new();
    for value in headers.get_all(WWW_AUTHENTICATE) {
        let text = String::from_utf8_lossy(value.as_bytes());
        out.extend(parse_challenges(registry, &text)?);
    }
    Ok(out)
}

/// Bearer is preferred over Basic, as docker does.
fn pick_challenge(challenges: Vec<Challenge>) -> Option<Challenge> {
    let mut basic = None;
    for c in challenges {
        match c {
            Challenge::Bearer { .. } => return Some(c),
            Challenge::Basic { .. } => basic = basic.or(Some(c)),
        }
    }
    basic
}

/// The Distribution error body: `{"errors":[{"code","message","detail"}]}`.
#[derive(serde::Deserialize)]
struct ErrorBody {
    #[serde(default)]
    errors: Vec<ErrorEntry>,
}

#[derive(serde::Deserialize)]
struct ErrorEntry {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

/// Turns a non-success answer into the error it means (`what` names the object asked about);
/// passes successes through.
pub(crate) async fn check_status(
    registry: &str,
    what: &str,
    method: &Method,
    resp: reqwest::Response,
) -> Result<reqwest::Response> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let url = resp.url().to_string();
    let body = if *method == Method::HEAD {
        Bytes::new()
    } else {
        resp.bytes().await.unwrap_or_default()
    };
    let message = match serde_json::from_slice::<ErrorBody>(&body) {
        Ok(parsed) if !parsed.errors.is_empty() => parsed
            .errors
            .iter()
            .map(|e| {
                if e.message.is_empty() {
                    e.code.clone()
                } else {
                    format!("{}: {}", e.code, e.message)
                }
            })
            .collect::<Vec<_>>()
            .join("; "),
        _ => String::from_utf8_lossy(&body[..body.len().min(300)])
            .trim()
            .to_owned(),
    };
    Err(match status {
        StatusCode::NOT_FOUND => RegistryError::NotFound {
            registry: registry.to_owned(),
            what: what.to_owned(),
        },
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => RegistryError::Unauthorized {
            registry: registry.to_owned(),
            what: what.to_owned(),
            message: if message.is_empty() {
                status.to_string()
            } else {
                message
            },
        },
        _ => RegistryError::Status {
            method: method.to_string(),
            url,
            status: status.as_u16(),
            message,
        },
    })
}

/// A streamed body of `len` bytes of `file` from `offset`.
async fn file_body(
    mut file: tokio::fs::File,
    offset: u64,
    len: u64,
) -> std::io::Result<reqwest::Body> {
    use tokio::io::AsyncReadExt as _;
    file.seek(std::io::SeekFrom::Start(offset)).await?;
    let stream = tokio_util::io::ReaderStream::with_capacity(file.take(len), 256 * 1024);
    Ok(reqwest::Body::wrap_stream(stream))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_is_preferred() {
        let got = pick_challenge(vec![
            Challenge::Basic { realm: None },
            Challenge::Bearer {
                realm: "https://t".into(),
                service: None,
                scope: None,
                error: None,
            },
        ]);
        assert!(matches!(got, Some(Challenge::Bearer { .. })));
    }
}
