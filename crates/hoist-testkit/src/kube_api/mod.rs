//! [`KubeApiServer`]: an in-process Kubernetes API server on loopback, enough of one for
//! hoist's `kubernetes` driver and for the real `kubectl` client to work against it.
//!
//! What it serves (plain HTTP/1.1, JSON only):
//! - discovery: `/version`, `/api`, `/api/v1`, `/apis`, `/apis/apps/v1` (legacy discovery:
//!   clients that ask for the aggregated kind get the plain one and fall back, as they do
//!   with old servers);
//! - `namespaces` (`default` exists), and in a namespace `configmaps`, `pods`,
//!   `persistentvolumeclaims`, `apps/v1` `deployments` and `statefulsets`: list (with
//!   equality-based `labelSelector`s), get, create, replace (`PUT`), merge patch, delete;
//! - workloads are reconciled at once: a deployment or statefulset with `replicas: N` has N
//!   pods (a statefulset's named `NAME-0…`, with a claim per volume claim template), each a
//!   real process ([`pods`]): the first container's `command` + `args`, `hoistd` meaning the
//!   binary given to [`KubeApiServer::start`], every absolute path in them (and `unix://`
//!   addresses) moved under the pod's own root dir, config map volumes written there first.
//!   A pod is `Ready` while its process lives and, for `hoistd`, once its socket exists;
//! - `pods/NAME/exec` over WebSocket (`v5.channel.k8s.io`, `v4.channel.k8s.io`): the command,
//!   its paths mapped the same way, with stdin, stdout, stderr and the exit status on the
//!   channels of the protocol; `pods/NAME/log`: what the pod's process wrote.
//!
//! Not served: watches, server-side apply, strategic merge patches beyond a merge of maps,
//! protobuf, authentication, OpenAPI schemas (so `kubectl create` needs
//! `--validate=false`), field selectors; init containers and probes are not run, images
//! are not pulled (a container without `command` fails), resources are not enforced. Pods are killed (SIGKILL) when deleted and when the server is
//! dropped.

mod pods;
mod store;
mod time;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};

use store::{new_object, State};

/// The kubeconfig context (and cluster and user) name [`KubeApiServer`] writes.
pub const CONTEXT: &str = "hoist-testkit";

/// A resource the server keeps: its plural, API group version and kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Kind {
    plural: &'static str,
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    short: &'static [&'static str],
    namespaced: bool,
}

const KINDS: &[Kind] = &[
    Kind {
        plural: "namespaces",
        group: "",
        version: "v1",
        kind: "Namespace",
        short: &["ns"],
        namespaced: false,
    },
    Kind {
        plural: "configmaps",
        group: "",
        version: "v1",
        kind: "ConfigMap",
        short: &["cm"],
        namespaced: true,
    },
    Kind {
        plural: "pods",
        group: "",
        version: "v1",
        kind: "Pod",
        short: &["po"],
        namespaced: true,
    },
    Kind {
        plural: "persistentvolumeclaims",
        group: "",
        version: "v1",
        kind: "PersistentVolumeClaim",
        short: &["pvc"],
        namespaced: true,
    },
    Kind {
        plural: "deployments",
        group: "apps",
        version: "v1",
        kind: "Deployment",
        short: &["deploy"],
        namespaced: true,
    },
    Kind {
        plural: "statefulsets",
        group: "apps",
        version: "v1",
        kind: "StatefulSet",
        short: &["sts"],
        namespaced: true,
    },
];

impl Kind {
    fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_owned()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `deployments.apps`, as the API server names a resource in messages.
    fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_owned()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    fn find(group: &str, plural: &str) -> Option<Kind> {
        KINDS
            .iter()
            .find(|k| k.group == group && k.plural == plural)
            .copied()
    }
}

/// Objects by kind, namespace ("" for cluster-wide) and name.
type Key = (&'static str, String, String);

/// The API server; stopped, and every pod killed, on drop.
#[derive(Debug)]
pub struct KubeApiServer {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    kubeconfig: PathBuf,
    runtime: Option<tokio::runtime::Runtime>,
    _dir: tempfile::TempDir,
}

impl KubeApiServer {
    /// Starts the server on a free loopback port; pods run `hoistd` as the binary
    /// `hoistd`. Its kubeconfig (context [`CONTEXT`], namespace `default`) is
    /// [`KubeApiServer::kubeconfig`].
    pub fn start(hoistd: &Path) -> std::io::Result<KubeApiServer> {
        let dir = tempfile::Builder::new().prefix("kapi").tempdir()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
        let addr = listener.local_addr()?;
        let mut objects = BTreeMap::new();
        for ns in ["default", "kube-system"] {
            let object = new_object(&KINDS[0], "", ns, json!({}), 1);
            objects.insert(("namespaces", String::new(), ns.to_owned()), object);
        }
        let state = Arc::new(Mutex::new(State {
            objects,
            pods: BTreeMap::new(),
            revision: 10,
            root: dir.path().join("pods"),
            hoistd: hoistd.to_owned(),
        }));
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\ncurrent-context: {CONTEXT}\nclusters:\n- name: {CONTEXT}\n  cluster:\n    server: http://{addr}\ncontexts:\n- name: {CONTEXT}\n  context:\n    cluster: {CONTEXT}\n    user: {CONTEXT}\n    namespace: default\nusers:\n- name: {CONTEXT}\n  user: {{}}\n"
            ),
        )?;
        let shared = state.clone();
        runtime.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = shared.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let state = state.clone();
                        async move { Ok::<_, std::convert::Infallible>(serve(state, request).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .with_upgrades()
                        .await;
                });
            }
        });
        Ok(KubeApiServer {
            addr,
            state,
            kubeconfig,
            runtime: Some(runtime),
            _dir: dir,
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The kubeconfig file naming this server (for `KUBECONFIG`).
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// Creates the namespace `name` (as `kubectl create namespace` would).
    pub fn create_namespace(&self, name: &str) {
        let mut state = self.lock();
        let revision = state.next_revision();
        let object = new_object(&KINDS[0], "", name, json!({}), revision);
        state
            .objects
            .insert(("namespaces", String::new(), name.to_owned()), object);
    }

    /// The names of the objects of `plural` (`deployments`, `pods`, `configmaps`, …) in
    /// `namespace`, sorted.
    pub fn names(&self, plural: &str, namespace: &str) -> Vec<String> {
        let state = self.lock();
        state
            .objects
            .keys()
            .filter(|(p, ns, _)| *p == plural && ns == namespace)
            .map(|(_, _, name)| name.clone())
            .collect()
    }

    /// The object `plural`/`name` in `namespace`, as stored.
    pub fn get(&self, plural: &str, namespace: &str, name: &str) -> Option<Value> {
        let mut state = self.lock();
        state.refresh();
        let key = KINDS.iter().find(|k| k.plural == plural)?.plural;
        state
            .objects
            .get(&(key, namespace.to_owned(), name.to_owned()))
            .cloned()
    }

    /// What the pod's process wrote to stdout and stderr so far.
    pub fn pod_log(&self, namespace: &str, name: &str) -> Option<String> {
        let state = self.lock();
        let pod = state.pods.get(&(namespace.to_owned(), name.to_owned()))?;
        Some(pod.log())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for KubeApiServer {
    fn drop(&mut self) {
        let pods = std::mem::take(&mut self.lock().pods);
        for (_, mut pod) in pods {
            pod.kill();
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

type Answer = Response<Full<Bytes>>;

fn respond(status: StatusCode, body: &Value) -> Answer {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

/// A `Status` object, as the API server reports failures.
fn status(code: StatusCode, reason: &str, message: String, details: Value) -> Answer {
    respond(
        code,
        &json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "details": details,
            "code": code.as_u16(),
        }),
    )
}

fn not_found(kind: &Kind, name: &str) -> Answer {
    status(
        StatusCode::NOT_FOUND,
        "NotFound",
        format!("{} {name:?} not found", kind.qualified()),
        json!({"name": name, "group": kind.group, "kind": kind.plural}),
    )
}

fn bad_request(message: String) -> Answer {
    status(StatusCode::BAD_REQUEST, "BadRequest", message, json!({}))
}

async fn serve(state: Arc<Mutex<State>>, request: Request<Incoming>) -> Answer {
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or_default().to_owned();
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match parts.as_slice() {
        ["version"] => respond(
            StatusCode::OK,
            &json!({
                "major": "1", "minor": "30", "gitVersion": "v1.30.0-hoist-testkit",
                "gitCommit": "", "gitTreeState": "clean", "buildDate": "2024-01-01T00:00:00Z",
                "goVersion": "", "compiler": "gc", "platform": "linux/amd64",
            }),
        ),
        ["api"] => respond(
            StatusCode::OK,
            &json!({"kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}),
        ),
        ["apis"] => respond(
            StatusCode::OK,
            &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": [{
                "name": "apps",
                "versions": [{"groupVersion": "apps/v1", "version": "v1"}],
                "preferredVersion": {"groupVersion": "apps/v1", "version": "v1"},
            }]}),
        ),
        ["api", "v1"] => resource_list(""),
        ["apis", "apps", "v1"] => resource_list("apps"),
        ["api", "v1", rest @ ..] => resource(state, request, "", rest, &query).await,
        ["apis", "apps", "v1", rest @ ..] => resource(state, request, "apps", rest, &query).await,
        _ => status(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("the server could not find the requested resource ({path})"),
            json!({}),
        ),
    }
}

fn resource_list(group: &str) -> Answer {
    let mut resources = Vec::new();
    for kind in KINDS.iter().filter(|k| k.group == group) {
        resources.push(json!({
            "name": kind.plural,
            "singularName": kind.kind.to_ascii_lowercase(),
            "namespaced": kind.namespaced,
            "kind": kind.kind,
            "verbs": ["create", "delete", "get", "list", "patch", "update"],
            "shortNames": kind.short,
        }));
        match kind.plural {
            "pods" => {
                for (sub, sub_kind) in [("exec", "PodExecOptions"), ("log", "Pod")] {
                    resources.push(json!({
                        "name": format!("pods/{sub}"), "singularName": "", "namespaced": true,
                        "kind": sub_kind, "verbs": ["create", "get"],
                    }));
                }
            }
            "deployments" | "statefulsets" => resources.push(json!({
                "name": format!("{}/scale", kind.plural), "singularName": "", "namespaced": true,
                "group": "autoscaling", "version": "v1", "kind": "Scale",
                "verbs": ["get", "patch", "update"],
            })),
            _ => {}
        }
    }
    let group_version = if group.is_empty() {
        "v1".to_owned()
    } else {
        format!("{group}/v1")
    };
    respond(
        StatusCode::OK,
        &json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version,
            "resources": resources}),
    )
}

/// `[namespaces/NS/]PLURAL[/NAME[/SUB]]` of an API group.
async fn resource(
    state: Arc<Mutex<State>>,
    request: Request<Incoming>,
    group: &str,
    rest: &[&str],
    query: &str,
) -> Answer {
    let (namespace, rest) = match rest {
        ["namespaces", ns, more @ ..] if !more.is_empty() => (ns.to_string(), more),
        other => (String::new(), other),
    };
    let (plural, name, sub) = match rest {
        [plural] => (*plural, None, None),
        [plural, name] => (*plural, Some(name.to_string()), None),
        [plural, name, sub] => (*plural, Some(name.to_string()), Some(*sub)),
        _ => return bad_request(format!("unexpected path {}", rest.join("/"))),
    };
    let Some(kind) = Kind::find(group, plural) else {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("the server could not find the requested resource ({plural})"),
            json!({}),
        );
    };
    if kind.namespaced && namespace.is_empty() && name.is_some() {
        return bad_request(format!("{} needs a namespace", kind.plural));
    }
    let params = query_params(query);
    if let (Some(name), Some(sub)) = (&name, sub) {
        return match (kind.plural, sub) {
            ("pods", "exec") => pods::exec(state, request, &namespace, name, &params).await,
            ("pods", "log") => {
                let state = state.lock().unwrap_or_else(|e| e.into_inner());
                match state.pods.get(&(namespace.clone(), name.clone())) {
                    Some(pod) => {
                        let mut response = Response::new(Full::new(Bytes::from(pod.log())));
                        response.headers_mut().insert(
                            hyper::header::CONTENT_TYPE,
                            hyper::header::HeaderValue::from_static("text/plain"),
                        );
                        response
                    }
                    None => not_found(&kind, name),
                }
            }
            _ => bad_request(format!(
                "subresource {sub} of {} is not served",
                kind.plural
            )),
        };
    }
    let method = request.method().clone();
    let body = match request.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(e) => return bad_request(format!("cannot read the request body: {e}")),
    };
    let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
    state.refresh();
    if kind.namespaced && !namespace.is_empty() && !state.namespace_exists(&namespace) {
        if method == Method::POST {
            return not_found(&KINDS[0], &namespace);
        }
        if name.is_some() {
            return not_found(&kind, name.as_deref().unwrap_or_default());
        }
    }
    let answer = match (method, name) {
        (Method::GET, None) => state.list(&kind, &namespace, &params),
        (Method::GET, Some(name)) => {
            match state.objects.get(&(kind.plural, namespace, name.clone())) {
                Some(object) => respond(StatusCode::OK, object),
                None => not_found(&kind, &name),
            }
        }
        (Method::POST, None) => match serde_json::from_slice::<Value>(&body) {
            Ok(object) => state.create(&kind, &namespace, object),
            Err(e) => bad_request(format!("invalid JSON body: {e}")),
        },
        (Method::PUT, Some(name)) => match serde_json::from_slice::<Value>(&body) {
            Ok(object) => state.replace(&kind, &namespace, &name, object),
            Err(e) => bad_request(format!("invalid JSON body: {e}")),
        },
        (Method::PATCH, Some(name)) => match serde_json::from_slice::<Value>(&body) {
            Ok(patch) => state.patch(&kind, &namespace, &name, &patch),
            Err(e) => bad_request(format!("invalid JSON body: {e}")),
        },
        (Method::DELETE, Some(name)) => state.delete(&kind, &namespace, &name),
        (method, _) => status(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!("{method} is not served on {}", kind.plural),
            json!({}),
        ),
    };
    state.reconcile();
    answer
}

/// `a=b&c=d` with `%XX` and `+` decoded; repeated keys kept in order.
fn query_params(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(byte) => {
                        out.push(byte);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_decode() {
        assert_eq!(
            query_params("command=hoistd&command=dial-stdio&labelSelector=app%3Db0+x"),
            [
                ("command".to_owned(), "hoistd".to_owned()),
                ("command".to_owned(), "dial-stdio".to_owned()),
                ("labelSelector".to_owned(), "app=b0 x".to_owned()),
            ]
        );
    }
}
