//! The Docker Engine API front door: the part of dockerd's HTTP API the docker CLI's
//! BuildKit path (`DOCKER_BUILDKIT=1 docker build`) uses, translated onto the Control
//! service, so an unmodified docker CLI builds on hoistd (`hoistd --engine-addr
//! unix:///PATH`, then `DOCKER_HOST=unix:///PATH`).
//!
//! Served (paths with or without the `/v1.NN` prefix):
//! - `GET|HEAD /_ping`: `OK` with `Api-Version: 1.41` and `Builder-Version: 2` (BuildKit).
//! - `GET /version`: hoistd's version in dockerd's shape.
//! - `POST /session`: upgraded to `h2c`; the CLI then serves gRPC on the connection and
//!   hoistd is its client (the same [`crate::session::SessionManager`] as `Control.Session`;
//!   the session metadata comes as `X-Docker-Expose-Session-*` headers).
//! - `POST /build?version=2&…`: the query (`dockerfile`, `target`, `buildargs`, `labels`,
//!   `platform`, `outputs`, `session`, `remote`, `buildid`, `nocache`, `pull`, `t`,
//!   `networkmode`, `extrahosts`, `cachefrom`: registry cache imports) as a `SolveRequest`
//!   for `dockerfile.v0`; the answer is
//!   dockerd's JSON message stream, progress as `{"id":"moby.buildkit.trace","aux":
//!   "<base64 StatusResponse>"}`, an error as `{"errorDetail":{"message":…},"error":…}`,
//!   an image's id as `{"id":"moby.image.id","aux":{"ID":…}}`.
//! - `POST /build/cancel?id=BUILDID`: cancels that build.
//! - `POST /build/prune?all=…&keep-storage=…&filters=…`: the Control service's `Prune`
//!   ([`crate::engine_prune`]), answered `{"CachesDeleted":[…],"SpaceReclaimed":N}`.
//!
//! Everything else is `404` with dockerd's `{"message":…}` body.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use hoist_proto::control::control_server::Control;
use hoist_proto::control::{SolveRequest, StatusRequest};
use hoist_proto::prost::Message as _;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::UnixListener;
use tokio::sync::{mpsc, watch};
use tokio_stream::StreamExt;

use crate::control::ControlService;
use crate::session::SessionMeta;

/// The API version hoistd answers as (docker 20.10's).
pub const API_VERSION: &str = "1.41";

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// The builds this front door runs, by build id, for `/build/cancel`.
#[derive(Debug, Clone, Default)]
struct Running {
    builds: Arc<Mutex<HashMap<String, tokio::task::AbortHandle>>>,
}

/// Serves the Engine API on `listener` until `stop` turns true, then until its open
/// connections end (or the task is aborted).
pub async fn serve(
    listener: UnixListener,
    control: ControlService,
    mut stop: watch::Receiver<bool>,
) {
    let running = Running::default();
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|s| *s) => break,
        };
        let Ok((stream, _)) = accepted else { continue };
        let control = control.clone();
        let running = running.clone();
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let control = control.clone();
                let running = running.clone();
                async move { Ok::<_, Infallible>(handle(request, control, running).await) }
            });
            // A bad request ends this connection only.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await;
        });
        while connections.try_join_next().is_some() {}
    }
    // No new connections; those open finish what they run (a build's stream) — the daemon
    // ends this task, and with it connections still idle, once its running calls are done.
    while connections.join_next().await.is_some() {}
}

fn full(body: impl Into<Bytes>) -> Body {
    Full::new(body.into()).boxed()
}

fn json_response(status: StatusCode, value: &Value) -> Response<Body> {
    let mut response = Response::new(full(format!("{value}\n")));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert("content-type", "application/json".parse().expect("static"));
    response
}

fn error_response(status: StatusCode, message: &str) -> Response<Body> {
    json_response(status, &json!({ "message": message }))
}

/// `/v1.41/build` → `/build`.
fn strip_version(path: &str) -> &str {
    if let Some(rest) = path.strip_prefix("/v") {
        if let Some(slash) = rest.find('/') {
            if rest[..slash]
                .chars()
                .all(|c| c.is_ascii_digit() || c == '.')
                && slash > 0
            {
                return &rest[slash..];
            }
        }
    }
    path
}

async fn handle(
    request: Request<Incoming>,
    control: ControlService,
    running: Running,
) -> Response<Body> {
    let path = strip_version(request.uri().path()).to_owned();
    let method = request.method().clone();
    eprintln!("hoistd: engine api {method} {}", request.uri());
    match (method, path.as_str()) {
        (Method::GET | Method::HEAD, "/_ping") => ping(),
        (Method::GET, "/version") => version(),
        (Method::POST, "/session") => session(request, control),
        (Method::POST, "/build") => {
            let response = build(&request, control, running);
            if !response.status().is_success() {
                // The classic builder sends its context as the body: read it (and drop it)
                // so the client sees the answer instead of a broken pipe.
                let mut body = request.into_body();
                while let Some(Ok(_)) = body.frame().await {}
            }
            response
        }
        (Method::POST, "/build/cancel") => cancel(&request, &running),
        (Method::POST, "/build/prune") => prune(&request, control).await,
        _ => error_response(
            StatusCode::NOT_FOUND,
            &format!(
                "page not found: hoistd serves only the build part of the Engine API ({path})"
            ),
        ),
    }
}

fn ping() -> Response<Body> {
    let mut response = Response::new(full("OK"));
    let headers = response.headers_mut();
    for (key, value) in [
        ("api-version", API_VERSION),
        ("builder-version", "2"),
        ("docker-experimental", "false"),
        ("ostype", "linux"),
        ("cache-control", "no-cache, no-store, must-revalidate"),
        ("pragma", "no-cache"),
        ("content-type", "text/plain; charset=utf-8"),
    ] {
        headers.insert(key, value.parse().expect("static"));
    }
    response
}

fn version() -> Response<Body> {
    let version = crate::control::version().version;
    json_response(
        StatusCode::OK,
        &json!({
            "Platform": { "Name": "hoistd" },
            "Components": [{ "Name": "hoistd", "Version": version, "Details": {} }],
            "Version": version,
            "ApiVersion": API_VERSION,
            "MinAPIVersion": "1.12",
            "Os": "linux",
            "Arch": std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64"),
            "KernelVersion": std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|v| v.trim().to_owned())
                .unwrap_or_default(),
        }),
    )
}

/// `POST /session`: answers `101 Switching Protocols` (`h2c`), then runs the session on
/// the hijacked connection.
fn session(mut request: Request<Incoming>, control: ControlService) -> Response<Body> {
    let upgrade = request
        .headers()
        .get("upgrade")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !upgrade.eq_ignore_ascii_case("h2c") {
        return error_response(
            StatusCode::BAD_REQUEST,
            "POST /session needs `Upgrade: h2c` (the docker CLI's session)",
        );
    }
    let pairs: Vec<(String, String)> = request
        .headers()
        .iter()
        .filter_map(|(k, v)| {
            v.to_str()
                .ok()
                .map(|v| (k.as_str().to_owned(), v.to_owned()))
        })
        .collect();
    let meta = match SessionMeta::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))) {
        Ok(meta) => meta,
        Err(status) => return error_response(StatusCode::BAD_REQUEST, status.message()),
    };
    let on_upgrade = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let id = meta.id.clone();
                if let Err(status) = control
                    .sessions()
                    .attach(meta, TokioIo::new(upgraded))
                    .await
                {
                    eprintln!("hoistd: session {id} failed: {}", status.message());
                }
            }
            Err(err) => eprintln!("hoistd: session upgrade failed: {err}"),
        }
    });
    let mut response = Response::new(full(Bytes::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert("connection", "Upgrade".parse().expect("static"));
    headers.insert("upgrade", "h2c".parse().expect("static"));
    response
}

fn query_pairs(request: &Request<Incoming>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(request.uri().query().unwrap_or_default().as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn truthy(value: &str) -> bool {
    matches!(value, "1" | "true" | "True" | "TRUE")
}

/// The `/build` query as a `SolveRequest`.
pub fn solve_request(query: &[(String, String)], reference: &str) -> Result<SolveRequest, String> {
    let mut request = SolveRequest {
        r#ref: reference.to_owned(),
        frontend: crate::solve_request::DOCKERFILE_FRONTEND.to_owned(),
        ..SolveRequest::default()
    };
    let attrs = &mut request.frontend_attrs;
    let mut tags = Vec::new();
    let mut outputs: Option<Vec<Value>> = None;
    for (key, value) in query {
        match key.as_str() {
            "dockerfile" if !value.is_empty() => {
                attrs.insert("filename".to_owned(), value.clone());
            }
            "target" if !value.is_empty() => {
                attrs.insert("target".to_owned(), value.clone());
            }
            "platform" if !value.is_empty() => {
                attrs.insert("platform".to_owned(), value.clone());
            }
            "nocache" if truthy(value) => {
                attrs.insert("no-cache".to_owned(), String::new());
            }
            "pull" if truthy(value) => {
                attrs.insert("image-resolve-mode".to_owned(), "pull".to_owned());
            }
            "networkmode" if matches!(value.as_str(), "host" | "none") => {
                attrs.insert("force-network-mode".to_owned(), value.clone());
            }
            "buildargs" | "labels" if !value.is_empty() => {
                let map: HashMap<String, Option<String>> = serde_json::from_str(value)
                    .map_err(|err| format!("invalid {key} {value:?}: {err}"))?;
                let prefix = if key == "buildargs" {
                    "build-arg:"
                } else {
                    "label:"
                };
                for (name, value) in map {
                    // A build arg without a value (`--build-arg NAME` with NAME unset) is
                    // not set, as dockerd does.
                    if let Some(value) = value {
                        attrs.insert(format!("{prefix}{name}"), value);
                    }
                }
            }
            "extrahosts" if !value.is_empty() => {
                attrs.insert("add-hosts".to_owned(), value.clone());
            }
            "session" => request.session.clone_from(value),
            "remote" if !value.is_empty() && value != "client-session" => {
                attrs.insert("context".to_owned(), value.clone());
            }
            "t" if !value.is_empty() => tags.push(value.clone()),
            // `--cache-from REF…`: registry imports, as dockerd's builder makes them.
            "cachefrom" if !value.is_empty() => {
                let refs: Vec<String> = serde_json::from_str(value)
                    .map_err(|err| format!("invalid cachefrom {value:?}: {err}"))?;
                let cache = request.cache.get_or_insert_with(Default::default);
                cache
                    .imports
                    .extend(refs.into_iter().filter(|r| !r.is_empty()).map(|r| {
                        hoist_proto::control::CacheOptionsEntry {
                            r#type: "registry".to_owned(),
                            attrs: HashMap::from([("ref".to_owned(), r)]),
                        }
                    }));
            }
            "outputs" if !value.is_empty() => {
                outputs = Some(
                    serde_json::from_str(value)
                        .map_err(|err| format!("invalid outputs {value:?}: {err}"))?,
                );
            }
            _ => {}
        }
    }
    match outputs.as_deref() {
        Some([]) | None => {
            // dockerd keeps the image in its store: here, hoist's image store.
            request.exporter = "image".to_owned();
            if !tags.is_empty() {
                request
                    .exporter_attrs
                    .insert("name".to_owned(), tags.join(","));
            }
        }
        Some([output]) => {
            request.exporter = output
                .get("Type")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            if let Some(Value::Object(attrs)) = output.get("Attrs") {
                for (key, value) in attrs {
                    if let Some(value) = value.as_str() {
                        request.exporter_attrs.insert(key.clone(), value.to_owned());
                    }
                }
            }
            if request.exporter == "image" && !tags.is_empty() {
                request
                    .exporter_attrs
                    .entry("name".to_owned())
                    .or_insert_with(|| tags.join(","));
            }
        }
        Some(_) => return Err("multiple outputs are not supported".to_owned()),
    }
    Ok(request)
}

/// One line of dockerd's JSON message stream.
fn message_line(value: &Value) -> Result<Frame<Bytes>, Infallible> {
    Ok(Frame::data(Bytes::from(format!("{value}\r\n"))))
}

fn build(request: &Request<Incoming>, control: ControlService, running: Running) -> Response<Body> {
    let query = query_pairs(request);
    let version = query
        .iter()
        .find(|(k, _)| k == "version")
        .map(|(_, v)| v.as_str())
        .unwrap_or("1");
    if version != "2" {
        return error_response(
            StatusCode::BAD_REQUEST,
            "hoistd builds with BuildKit only: use DOCKER_BUILDKIT=1 (build version 2)",
        );
    }
    let reference = query
        .iter()
        .find(|(k, _)| k == "buildid")
        .map(|(_, v)| v.clone())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos();
            hoist_oci::Digest::sha256_of(format!("{nanos}{}", std::process::id()).as_bytes())
                .encoded()[..25]
                .to_owned()
        });
    let solve = match solve_request(&query, &reference) {
        Ok(solve) => solve,
        Err(message) => return error_response(StatusCode::BAD_REQUEST, &message),
    };
    let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, Infallible>>(64);
    let statuses = control.clone();
    let status_ref = reference.clone();
    let progress_tx = tx.clone();
    // Aborted when dropped: with the build task below, even when `/build/cancel` aborts that
    // task before it first runs (the forwarder would otherwise wait for a Solve that never
    // comes, holding the response open).
    let forward = tokio_util::task::AbortOnDropHandle::new(tokio::spawn(async move {
        let Ok(response) = statuses
            .status(tonic::Request::new(StatusRequest { r#ref: status_ref }))
            .await
        else {
            return;
        };
        let mut stream = response.into_inner();
        while let Some(Ok(status)) = stream.next().await {
            let aux = base64::engine::general_purpose::STANDARD.encode(status.encode_to_vec());
            let line = json!({ "id": "moby.buildkit.trace", "aux": aux });
            if progress_tx.send(message_line(&line)).await.is_err() {
                break;
            }
        }
    }));
    let build_id = reference.clone();
    let builds = running.clone();
    let task = tokio::spawn(async move {
        // The forwarder holds a sender of the response body: it goes with this task, also
        // when `/build/cancel` aborts it, so a cancelled build's response ends.
        let mut forward = forward;
        let result = control.solve(tonic::Request::new(solve)).await;
        // The Status stream ends once the build's last event is in; a Solve refused
        // before its build started has none, so it gets a moment only.
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut forward).await;
        match result {
            Ok(response) => {
                let response = response.into_inner().exporter_response;
                if let Some(digest) = response
                    .get("containerimage.config.digest")
                    .or_else(|| response.get("containerimage.digest"))
                {
                    let line = json!({ "id": "moby.image.id", "aux": { "ID": digest } });
                    let _ = tx.send(message_line(&line)).await;
                }
            }
            Err(status) => {
                let message = status.message();
                let line = json!({ "errorDetail": { "message": message }, "error": message });
                let _ = tx.send(message_line(&line)).await;
            }
        }
        builds.builds.lock().expect("builds lock").remove(&build_id);
    });
    running
        .builds
        .lock()
        .expect("builds lock")
        .insert(reference, task.abort_handle());
    let body = StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(rx));
    let mut response = Response::new(BodyExt::boxed(body));
    response
        .headers_mut()
        .insert("content-type", "application/json".parse().expect("static"));
    response
}

/// `POST /build/prune`: the records removed and the bytes they held, as dockerd answers
/// (`CachesDeleted` null when none went).
async fn prune(request: &Request<Incoming>, control: ControlService) -> Response<Body> {
    let prune = match crate::engine_prune::prune_request(&query_pairs(request)) {
        Ok(prune) => prune,
        Err(message) => return error_response(StatusCode::BAD_REQUEST, &message),
    };
    let mut stream = match control.prune(tonic::Request::new(prune)).await {
        Ok(response) => response.into_inner(),
        Err(status) => {
            let code = if status.code() == tonic::Code::InvalidArgument {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            };
            return error_response(code, status.message());
        }
    };
    let mut deleted = Vec::new();
    let mut reclaimed: u64 = 0;
    while let Some(record) = stream.next().await {
        match record {
            Ok(record) => {
                reclaimed += record.size.max(0).unsigned_abs();
                deleted.push(record.id);
            }
            Err(status) => {
                return error_response(StatusCode::INTERNAL_SERVER_ERROR, status.message())
            }
        }
    }
    json_response(
        StatusCode::OK,
        &json!({
            "CachesDeleted": if deleted.is_empty() { Value::Null } else { json!(deleted) },
            "SpaceReclaimed": reclaimed,
        }),
    )
}

fn cancel(request: &Request<Incoming>, running: &Running) -> Response<Body> {
    let query = query_pairs(request);
    let Some((_, id)) = query.iter().find(|(k, _)| k == "id") else {
        return error_response(StatusCode::BAD_REQUEST, "build cancel needs id=BUILDID");
    };
    let handle = running.builds.lock().expect("builds lock").remove(id);
    match handle {
        Some(handle) => {
            eprintln!("hoistd: engine api: cancelling build {id}");
            handle.abort();
            Response::new(full(Bytes::new()))
        }
        None => error_response(StatusCode::NOT_FOUND, &format!("no build with id {id}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn the_clis_query_becomes_a_solve_request() {
        let request = solve_request(
            &q(&[
                ("version", "2"),
                ("dockerfile", "sub/Dockerfile.x"),
                ("target", "t"),
                ("buildargs", r#"{"A":"1","UNSET":null}"#),
                ("labels", r#"{"l":"v"}"#),
                ("platform", "linux/arm64"),
                ("session", "sid"),
                ("remote", "client-session"),
                ("nocache", "1"),
                ("outputs", r#"[{"Type":"local","Attrs":{}}]"#),
            ]),
            "bid",
        )
        .unwrap();
        assert_eq!(request.r#ref, "bid");
        assert_eq!(request.session, "sid");
        assert_eq!(request.exporter, "local");
        let attrs = &request.frontend_attrs;
        assert_eq!(attrs["filename"], "sub/Dockerfile.x");
        assert_eq!(attrs["target"], "t");
        assert_eq!(attrs["build-arg:A"], "1");
        assert!(!attrs.contains_key("build-arg:UNSET"));
        assert_eq!(attrs["label:l"], "v");
        assert_eq!(attrs["platform"], "linux/arm64");
        assert_eq!(attrs["no-cache"], "");
        assert!(!attrs.contains_key("context"));
        let image = solve_request(&q(&[("t", "a:1"), ("t", "b:2")]), "r").unwrap();
        assert_eq!(image.exporter, "image");
        assert_eq!(image.exporter_attrs["name"], "a:1,b:2");
        assert!(solve_request(&q(&[("buildargs", "{")]), "r").is_err());
    }

    #[test]
    fn cachefrom_becomes_registry_imports() {
        let request = solve_request(
            &q(&[("cachefrom", r#"["reg:5000/a:c","reg:5000/b"]"#)]),
            "r",
        )
        .unwrap();
        let imports = request.cache.unwrap().imports;
        assert_eq!(imports.len(), 2);
        assert!(imports.iter().all(|i| i.r#type == "registry"));
        assert_eq!(imports[0].attrs["ref"], "reg:5000/a:c");
        assert_eq!(imports[1].attrs["ref"], "reg:5000/b");
        assert!(solve_request(&q(&[("cachefrom", "reg:5000/a")]), "r").is_err());
    }

    #[test]
    fn versions_are_stripped() {
        assert_eq!(strip_version("/v1.41/build"), "/build");
        assert_eq!(strip_version("/_ping"), "/_ping");
        assert_eq!(strip_version("/version"), "/version");
        assert_eq!(strip_version("/v1.41/build/cancel"), "/build/cancel");
    }
}
