//! [`KubernetesDriver`]: hoistd pods through the Kubernetes API (the `kube` crate), as
//! buildx's `kubernetes` driver runs buildkitd:
//!
//! - the node's endpoint names the kubeconfig context (`default`: the current one), the
//!   kubeconfig being `KUBECONFIG`'s files or `~/.kube/config` (in a pod: its service
//!   account); the namespace is `namespace=`, else the context's;
//! - `bootstrap` creates a Deployment named after the node (a StatefulSet with a volume
//!   claim template when `persistent-volume-claim.requests.storage` is set) whose pods run
//!   `hoistd --root /var/lib/hoist --addr unix:///run/hoistd/hoistd.sock`, plus a
//!   ConfigMap `<name>-config` holding the builder's `buildkitd.toml` (mounted at
//!   `/etc/hoist`), scales it back up after a `stop`, and waits (`timeout=`, 120 s) for
//!   the replicas to be ready;
//! - a build reaches one running pod by `exec hoistd dial-stdio` ([`pod_stream`]): with
//!   `loadbalance=sticky` (the default) the pod is chosen by rendezvous hashing of the
//!   build's context path over the running pods' names, so the same context goes to the
//!   same pod while the pods stay; `random` takes any;
//! - `info` reports each running pod ([`KubernetesDriver::pods`]) with the version and
//!   platforms its hoistd tells over the same exec; `stop` scales to 0; `rm` deletes the
//!   workload and the ConfigMap, and the volume claims unless `--keep-state`.

mod options;
pub mod pod_stream;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use hoist_oci::Platform;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use tonic::transport::Channel;

pub use options::{LoadBalance, Options};

use super::{block_on, Driver, Features, Info, Status, KUBERNETES};
use crate::error::{Error, Result};
use crate::node_group::Node;

/// How long one status question (exec + Info + ListWorkers) may take.
const ASK_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a connection to the API server may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `ls`/`inspect` wait for a node's whole status (workload, pods, each pod's
/// hoistd).
const STATUS_TIMEOUT: Duration = Duration::from_secs(30);

/// One running pod, as `ls` and `inspect` show it.
#[derive(Debug, Clone)]
pub struct PodReport {
    /// The pod's name.
    pub name: String,
    /// Its hoistd's status and platforms.
    pub info: Info,
    /// Its hoistd's version.
    pub version: String,
}

/// hoistd pods of a Kubernetes deployment.
#[derive(Debug)]
pub struct KubernetesDriver {
    node: Node,
    /// The kubeconfig context; `None`: the current one.
    context: Option<String>,
    deployment: String,
    options: Options,
    /// The pod the last dial reached, for messages.
    last_pod: Mutex<Option<String>>,
}

/// The objects' API handles in the node's namespace.
struct Apis {
    namespace: String,
    deployments: Api<Deployment>,
    stateful_sets: Api<StatefulSet>,
    config_maps: Api<ConfigMap>,
    pods: Api<Pod>,
    claims: Api<PersistentVolumeClaim>,
}

impl KubernetesDriver {
    /// Checks the node's options; nothing is asked of the cluster.
    pub fn new(node: &Node) -> Result<KubernetesDriver> {
        let options = Options::parse(node)?;
        let deployment = options::deployment_name(&node.name)?;
        let context = match node.endpoint.as_str() {
            "" | crate::DEFAULT_BUILDER => None,
            context => Some(context.to_owned()),
        };
        Ok(KubernetesDriver {
            node: node.clone(),
            context,
            deployment,
            options,
            last_pod: Mutex::new(None),
        })
    }

    /// The deployment's (or statefulset's) name.
    pub fn deployment(&self) -> &str {
        &self.deployment
    }

    /// The kubeconfig context, `None` for the current one.
    pub fn context(&self) -> Option<&str> {
        self.context.as_deref()
    }

    /// The checked options.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// The pod the last dial reached.
    pub fn last_pod(&self) -> Option<String> {
        self.last_pod
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// An error naming `namespace/deployment` (the deployment alone while the namespace
    /// is not known yet).
    fn fail(&self, namespace: &str, message: impl Into<String>) -> Error {
        Error::Kubernetes {
            object: if namespace.is_empty() {
                self.deployment.clone()
            } else {
                format!("{namespace}/{}", self.deployment)
            },
            message: message.into(),
        }
    }

    fn kube_fail(&self, namespace: &str, doing: &str, e: kube::Error) -> Error {
        self.fail(namespace, format!("{doing}: {}", kube_message(&e)))
    }

    /// A client for the node's context, and the namespace to work in.
    async fn apis(&self) -> Result<Apis> {
        let unnamed = || self.options.namespace.clone().unwrap_or_default();
        let config = if self.context.is_none() && Kubeconfig::read().is_err() {
            // No kubeconfig: in a pod, its service account.
            Config::incluster().map_err(|e| {
                self.fail(
                    &unnamed(),
                    format!(
                        "no kubeconfig (KUBECONFIG or ~/.kube/config) and not in a cluster: {e}"
                    ),
                )
            })?
        } else {
            let options = KubeConfigOptions {
                context: self.context.clone(),
                ..KubeConfigOptions::default()
            };
            Config::from_kubeconfig(&options).await.map_err(|e| {
                let context = match &self.context {
                    Some(name) => format!("context {name:?}"),
                    None => "the current context".to_owned(),
                };
                self.fail(
                    &unnamed(),
                    format!("cannot load kubeconfig for {context}: {e}"),
                )
            })?
        };
        let namespace =
            (self.options.namespace.clone()).unwrap_or_else(|| config.default_namespace.clone());
        let mut config = config;
        // An API server that does not answer is a status, not a long wait.
        config.connect_timeout = Some(CONNECT_TIMEOUT);
        let client = Client::try_from(config)
            .map_err(|e| self.fail(&namespace, format!("cannot make a client: {e}")))?;
        Ok(Apis {
            deployments: Api::namespaced(client.clone(), &namespace),
            stateful_sets: Api::namespaced(client.clone(), &namespace),
            config_maps: Api::namespaced(client.clone(), &namespace),
            pods: Api::namespaced(client.clone(), &namespace),
            claims: Api::namespaced(client, &namespace),
            namespace,
        })
    }

    fn stateful(&self) -> bool {
        self.options.claim_storage.is_some()
    }

    /// The workload's wanted and ready replicas; `None` when it does not exist.
    async fn replicas(&self, apis: &Apis) -> Result<Option<(i32, i32)>> {
        let ns = &apis.namespace;
        if self.stateful() {
            let found = (apis.stateful_sets.get_opt(&self.deployment).await)
                .map_err(|e| self.kube_fail(ns, "cannot get the statefulset", e))?;
            Ok(found.map(|s| {
                let wanted = s.spec.and_then(|s| s.replicas).unwrap_or(1);
                (wanted, s.status.and_then(|s| s.ready_replicas).unwrap_or(0))
            }))
        } else {
            let found = (apis.deployments.get_opt(&self.deployment).await)
                .map_err(|e| self.kube_fail(ns, "cannot get the deployment", e))?;
            Ok(found.map(|d| {
                let wanted = d.spec.and_then(|s| s.replicas).unwrap_or(1);
                (wanted, d.status.and_then(|s| s.ready_replicas).unwrap_or(0))
            }))
        }
    }

    async fn scale(&self, apis: &Apis, replicas: i32) -> Result<()> {
        let patch = Patch::Merge(serde_json::json!({ "spec": { "replicas": replicas } }));
        let params = PatchParams::default();
        let ns = &apis.namespace;
        let result = if self.stateful() {
            apis.stateful_sets
                .patch(&self.deployment, &params, &patch)
                .await
                .map(drop)
        } else {
            apis.deployments
                .patch(&self.deployment, &params, &patch)
                .await
                .map(drop)
        };
        match result {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(self.kube_fail(ns, &format!("cannot scale to {replicas}"), e)),
        }
    }

    /// Creates what is missing (ConfigMap, workload), scales a stopped workload back up and
    /// waits for its replicas to be ready.
    pub async fn ensure_running(&self) -> Result<()> {
        let apis = self.apis().await?;
        let ns = apis.namespace.clone();
        let wanted = self.options.replicas;
        match self.replicas(&apis).await? {
            Some((replicas, ready)) if replicas == wanted && ready >= wanted => return Ok(()),
            Some((replicas, _)) => {
                if replicas != wanted {
                    self.scale(&apis, wanted).await?;
                }
            }
            None => {
                let manifests =
                    options::manifests(&self.node, &self.options, &self.deployment, &ns);
                if let Some(config_map) = &manifests.config_map {
                    let created = apis
                        .config_maps
                        .create(&PostParams::default(), config_map)
                        .await;
                    match created {
                        Ok(_) => {}
                        Err(e) if is_conflict(&e) => {
                            let name = options::config_map_name(&self.deployment);
                            let mut replacement = config_map.clone();
                            let current = (apis.config_maps.get(&name).await)
                                .map_err(|e| self.kube_fail(&ns, "cannot get the configmap", e))?;
                            replacement.metadata.resource_version =
                                current.metadata.resource_version;
                            apis.config_maps
                                .replace(&name, &PostParams::default(), &replacement)
                                .await
                                .map_err(|e| {
                                    self.kube_fail(&ns, "cannot replace the configmap", e)
                                })?;
                        }
                        Err(e) => {
                            return Err(self.kube_fail(&ns, "cannot create the configmap", e))
                        }
                    }
                }
                if let Some(deployment) = &manifests.deployment {
                    apis.deployments
                        .create(&PostParams::default(), deployment)
                        .await
                        .map_err(|e| self.kube_fail(&ns, "cannot create the deployment", e))?;
                }
                if let Some(stateful_set) = &manifests.stateful_set {
                    apis.stateful_sets
                        .create(&PostParams::default(), stateful_set)
                        .await
                        .map_err(|e| self.kube_fail(&ns, "cannot create the statefulset", e))?;
                }
            }
        }
        self.wait_ready(&apis).await
    }

    async fn wait_ready(&self, apis: &Apis) -> Result<()> {
        let started = Instant::now();
        let wanted = self.options.replicas;
        loop {
            let ready = match self.replicas(apis).await? {
                Some((_, ready)) => ready,
                None => {
                    return Err(self.fail(&apis.namespace, "removed while waiting for its pods"))
                }
            };
            if ready >= wanted {
                return Ok(());
            }
            if started.elapsed() >= self.options.timeout {
                let kind = if self.stateful() {
                    "statefulset"
                } else {
                    "deployment"
                };
                return Err(self.fail(
                    &apis.namespace,
                    format!(
                        "{kind} not ready after {:?}: expected {wanted} replicas to be ready, got {ready} (see `kubectl -n {} describe {kind} {}`)",
                        self.options.timeout, apis.namespace, self.deployment
                    ),
                ));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The running pods of the workload, sorted by name (buildx's `ListRunningPods`).
    async fn running_pods(&self, apis: &Apis) -> Result<Vec<String>> {
        let selector = format!("{}={}", options::LABEL_APP, self.deployment);
        let list = apis
            .pods
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| self.kube_fail(&apis.namespace, "cannot list the pods", e))?;
        let mut names: Vec<String> = list
            .items
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
            .filter_map(|p| p.metadata.name)
            .collect();
        names.sort();
        Ok(names)
    }

    /// A gRPC channel to one running pod's hoistd: with `loadbalance=sticky`, the pod that
    /// `key` (the build's context path) hashes to; each connection is a pod exec of
    /// `hoistd dial-stdio`.
    pub async fn channel(&self, key: &str) -> Result<(Channel, String)> {
        let apis = self.apis().await?;
        let pods = self.running_pods(&apis).await?;
        let chosen = match self.options.load_balance {
            LoadBalance::Sticky => pod_stream::sticky(key, &pods),
            LoadBalance::Random => pod_stream::random(&pods),
        }
        .ok_or_else(|| {
            self.fail(
                &apis.namespace,
                "no running hoistd pods (bootstrap the builder: `hoist inspect --bootstrap`)",
            )
        })?
        .to_owned();
        *self.last_pod.lock().unwrap_or_else(|e| e.into_inner()) = Some(chosen.clone());
        let channel = pod_stream::connect(apis.pods.clone(), &chosen, ASK_TIMEOUT)
            .await
            .map_err(|e| self.fail(&apis.namespace, format!("pod {chosen}: {e}")))?;
        Ok((channel, chosen))
    }

    /// Every running pod with what its hoistd says; empty when none runs.
    pub async fn pods(&self) -> Result<Vec<PodReport>> {
        let apis = self.apis().await?;
        let names = self.running_pods(&apis).await?;
        let apis = &apis;
        let asks = names.iter().map(|name| async move {
            let asked = tokio::time::timeout(ASK_TIMEOUT, async {
                let channel = pod_stream::connect(apis.pods.clone(), name, ASK_TIMEOUT).await?;
                super::grpc::ask(channel)
                    .await
                    .map_err(|e| format!("hoistd did not answer: {}", e.message()))
            })
            .await
            .unwrap_or_else(|_| Err(format!("hoistd did not answer within {ASK_TIMEOUT:?}")));
            match asked {
                Ok((version, platforms)) => PodReport {
                    name: name.clone(),
                    info: Info {
                        status: Status::Running,
                        unreachable: None,
                        platforms,
                    },
                    version,
                },
                Err(e) => PodReport {
                    name: name.clone(),
                    info: Info {
                        status: Status::Inactive,
                        unreachable: Some(format!("pod {name}: {e}")),
                        platforms: Vec::new(),
                    },
                    version: String::new(),
                },
            }
        });
        Ok(futures::future::join_all(asks).await)
    }

    async fn status(&self) -> Result<(Status, Vec<PodReport>)> {
        let apis = self.apis().await?;
        match self.replicas(&apis).await? {
            None => Ok((Status::Inactive, Vec::new())),
            Some((_, ready)) if ready <= 0 => Ok((Status::Stopped, Vec::new())),
            Some(_) => Ok((Status::Running, self.pods().await?)),
        }
    }

    /// The node's status and, when running, each running pod.
    pub fn report(&self) -> (Info, Vec<PodReport>) {
        let status = block_on(async {
            match tokio::time::timeout(STATUS_TIMEOUT, self.status()).await {
                Ok(status) => status,
                Err(_) => Err(self.fail(
                    self.options.namespace.as_deref().unwrap_or_default(),
                    format!("no status within {STATUS_TIMEOUT:?}"),
                )),
            }
        });
        match status.and_then(|r| r) {
            Ok((status, pods)) => {
                let mut platforms: Vec<Platform> = Vec::new();
                for pod in &pods {
                    for p in &pod.info.platforms {
                        if !platforms.contains(p) {
                            platforms.push(p.clone());
                        }
                    }
                }
                let info = Info {
                    status,
                    unreachable: None,
                    platforms,
                };
                (info, pods)
            }
            Err(e) => (
                Info {
                    status: Status::Inactive,
                    unreachable: Some(e.to_string()),
                    platforms: Vec::new(),
                },
                Vec::new(),
            ),
        }
    }

    async fn rm_async(&self, keep_state: bool) -> Result<()> {
        let apis = self.apis().await?;
        let ns = apis.namespace.clone();
        let params = DeleteParams::default();
        let ignore_missing = |r: std::result::Result<(), kube::Error>, what: &str| match r {
            Err(e) if !is_not_found(&e) => {
                Err(self.kube_fail(&ns, &format!("cannot delete the {what}"), e))
            }
            _ => Ok(()),
        };
        if self.stateful() {
            let r = apis.stateful_sets.delete(&self.deployment, &params).await;
            ignore_missing(r.map(drop), "statefulset")?;
        } else {
            let r = apis.deployments.delete(&self.deployment, &params).await;
            ignore_missing(r.map(drop), "deployment")?;
        }
        let name = options::config_map_name(&self.deployment);
        let r = apis.config_maps.delete(&name, &params).await;
        ignore_missing(r.map(drop), "configmap")?;
        if !keep_state && self.stateful() {
            let selector = format!("{}={}", options::LABEL_APP, self.deployment);
            let claims = (apis
                .claims
                .list(&ListParams::default().labels(&selector))
                .await)
                .map_err(|e| self.kube_fail(&ns, "cannot list the volume claims", e))?;
            for claim in claims.items {
                if let Some(name) = claim.metadata.name {
                    let r = apis.claims.delete(&name, &params).await;
                    ignore_missing(r.map(drop), "volume claim")?;
                }
            }
        }
        Ok(())
    }
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(status) if status.code == 404)
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(status) if status.code == 409)
}

/// The API server's message, or the transport's error chain.
fn kube_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) => status.message.clone(),
        other => super::chain(other),
    }
}

impl Driver for KubernetesDriver {
    fn name(&self) -> &'static str {
        KUBERNETES
    }

    fn bootstrap(&self) -> Result<()> {
        block_on(self.ensure_running())?
    }

    fn info(&self) -> Info {
        self.report().0
    }

    fn version(&self) -> String {
        let (_, pods) = self.report();
        pods.into_iter()
            .map(|p| p.version)
            .find(|v| !v.is_empty())
            .unwrap_or_default()
    }

    /// Scales the workload to 0 (its objects stay; `bootstrap` scales it back).
    fn stop(&self) -> Result<()> {
        block_on(async {
            let apis = self.apis().await?;
            self.scale(&apis, 0).await
        })?
    }

    fn rm(&self, keep_state: bool) -> Result<()> {
        block_on(self.rm_async(keep_state))?
    }

    fn features(&self) -> Features {
        Features::from([
            ("OCI exporter", true),
            ("Docker exporter", true),
            ("Multi-platform build", true),
            (
                "Automatically load images to the Docker Engine image store",
                self.options.default_load,
            ),
        ])
    }
}
