//! A proxy in front of a real registry that answers `503` to every `n`th request, as an
//! overloaded gateway does, without passing that request on. (A gateway that passed part of a
//! chunk on would leave Distribution's session at an offset its signed `_state` no longer
//! matches, and Distribution cancels such a session on the next request: the hostile
//! registry tests cover partly received chunks.) `Location`s are rewritten to point at the
//! proxy, so every request of a session passes it.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

pub struct FlakyProxy {
    pub addr: SocketAddr,
    /// `METHOD /path -> status` of every request, the failed ones as `503 (proxy)`.
    pub log: Arc<Mutex<Vec<String>>>,
}

struct Shared {
    upstream: String,
    own: String,
    every: usize,
    seen: AtomicUsize,
    http: reqwest::Client,
    log: Arc<Mutex<Vec<String>>>,
}

impl FlakyProxy {
    /// Listens on 127.0.0.1 and forwards to `upstream` (`host:port`, plain HTTP).
    pub async fn start(upstream: &str, every: usize) -> FlakyProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let shared = Arc::new(Shared {
            upstream: upstream.to_owned(),
            own: addr.to_string(),
            every,
            seen: AtomicUsize::new(0),
            http: reqwest::Client::new(),
            log: log.clone(),
        });
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let shared = shared.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let shared = shared.clone();
                        async move { Ok::<_, Infallible>(shared.handle(request).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        FlakyProxy { addr, log }
    }

    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    pub fn requests(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

impl Shared {
    async fn handle(
        &self,
        request: hyper::Request<hyper::body::Incoming>,
    ) -> hyper::Response<Full<Bytes>> {
        let (parts, body) = request.into_parts();
        let body = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let line = format!("{} {}", parts.method, parts.uri.path());
        let fail = (self.seen.fetch_add(1, Ordering::SeqCst) + 1) % self.every == 0;
        if fail {
            self.log
                .lock()
                .unwrap()
                .push(format!("{line} -> 503 (proxy)"));
            return hyper::Response::builder()
                .status(503)
                .body(Full::new(Bytes::new()))
                .unwrap();
        }
        let answer = match self.forward(&parts, parts.headers.clone(), body).await {
            Ok(answer) => answer,
            Err(err) => {
                self.log.lock().unwrap().push(format!("{line} -> {err}"));
                return hyper::Response::builder()
                    .status(502)
                    .body(Full::new(Bytes::new()))
                    .unwrap();
            }
        };
        let status = answer.status();
        self.log
            .lock()
            .unwrap()
            .push(format!("{line} -> {}", status.as_u16()));
        let mut builder = hyper::Response::builder().status(status.as_u16());
        for (name, value) in answer.headers() {
            if name == "transfer-encoding" || name == "connection" {
                continue;
            }
            let value = value.to_str().unwrap_or_default();
            let value = value.replace(&self.upstream, &self.own);
            builder = builder.header(name.as_str(), value);
        }
        let bytes = answer.bytes().await.unwrap_or_default();
        builder.body(Full::new(bytes)).unwrap()
    }

    async fn forward(
        &self,
        parts: &hyper::http::request::Parts,
        mut headers: hyper::HeaderMap,
        body: Bytes,
    ) -> reqwest::Result<reqwest::Response> {
        headers.remove("host");
        headers.remove("content-length");
        let url = format!(
            "http://{}{}",
            self.upstream,
            parts.uri.path_and_query().map_or("/", |p| p.as_str())
        );
        let method = reqwest::Method::from_bytes(parts.method.as_str().as_bytes()).unwrap();
        let mut request = self.http.request(method.clone(), url);
        for (name, value) in &headers {
            request = request.header(name.as_str(), value.as_bytes());
        }
        if method != reqwest::Method::GET && method != reqwest::Method::HEAD {
            request = request.body(body);
        }
        request.send().await
    }
}
