//! An in-process registry that misbehaves on purpose (hyper on 127.0.0.1): each test gives
//! a handler that sees every request and decides the answer, including bodies that stop
//! half-way (the connection is then cut).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt as _, StreamBody};
use hyper::body::Frame;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

/// One request as the handler sees it.
#[derive(Debug, Clone)]
pub struct Req {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

impl Req {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }

    /// `METHOD /path?query` for logs and assertions.
    pub fn line(&self) -> String {
        if self.query.is_empty() {
            format!("{} {}", self.method, self.path)
        } else {
            format!("{} {}?{}", self.method, self.path, self.query)
        }
    }
}

/// What to answer.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    /// Send only this many body bytes, then fail the connection.
    pub cut_after: Option<usize>,
}

impl Resp {
    pub fn status(status: u16) -> Self {
        Resp {
            status,
            headers: Vec::new(),
            body: Bytes::new(),
            cut_after: None,
        }
    }

    pub fn ok(body: impl Into<Bytes>) -> Self {
        Resp {
            body: body.into(),
            ..Resp::status(200)
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn cut_after(mut self, n: usize) -> Self {
        self.cut_after = Some(n);
        self
    }
}

type Handler = dyn Fn(&Req) -> Resp + Send + Sync;

/// The running server. Requests are logged; the task ends with the test's runtime.
pub struct Hostile {
    pub addr: SocketAddr,
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Hostile {
    pub async fn start(handler: impl Fn(&Req) -> Resp + Send + Sync + 'static) -> Hostile {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let server_log = log.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let handler = handler.clone();
                let log = server_log.clone();
                tokio::spawn(async move {
                    let service =
                        service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                            let handler = handler.clone();
                            let log = log.clone();
                            async move {
                                let (parts, body) = request.into_parts();
                                let body = body
                                    .collect()
                                    .await
                                    .map(|b| b.to_bytes())
                                    .unwrap_or_default();
                                let req = Req {
                                    method: parts.method.to_string(),
                                    path: parts.uri.path().to_owned(),
                                    query: parts.uri.query().unwrap_or("").to_owned(),
                                    headers: parts.headers,
                                    body,
                                };
                                log.lock().unwrap().push(req.line());
                                Ok::<_, Infallible>(respond(handler(&req)))
                            }
                        });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Hostile { addr, log }
    }

    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    pub fn requests(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    pub fn count(&self, line_prefix: &str) -> usize {
        self.requests()
            .iter()
            .filter(|l| l.starts_with(line_prefix))
            .count()
    }
}

fn respond(resp: Resp) -> hyper::Response<BoxBody<Bytes, std::io::Error>> {
    let full_len = resp.body.len();
    let body: BoxBody<Bytes, std::io::Error> = match resp.cut_after {
        None => http_body_util::Full::new(resp.body)
            .map_err(|never| match never {})
            .boxed(),
        Some(n) => {
            let first = resp.body.slice(..n.min(full_len));
            // The data, a pause so it is flushed to the client, then a broken connection.
            let data = futures::stream::iter([Ok::<_, std::io::Error>(Frame::data(first))]);
            let cut = futures::stream::once(async {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                Err(std::io::Error::other("connection cut on purpose"))
            });
            StreamBody::new(futures::StreamExt::chain(data, cut)).boxed()
        }
    };
    let mut builder = hyper::Response::builder().status(resp.status);
    let mut has_length = false;
    for (name, value) in &resp.headers {
        has_length |= name.eq_ignore_ascii_case("content-length");
        builder = builder.header(name, value);
    }
    if !has_length {
        builder = builder.header("content-length", full_len.to_string());
    }
    builder.body(body).unwrap()
}
