//! The `kubernetes` driver's options (buildx's names, checked at `create`) and the objects
//! they become: a Deployment, or a StatefulSet with a volume claim template when
//! `persistent-volume-claim.requests.storage` is set, and a ConfigMap for `buildkitd.toml`.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, StatefulSet, StatefulSetSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, EnvVar, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PodSpec, PodTemplateSpec, SecurityContext, Toleration, Volume,
    VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use crate::driver::docker_container::default_image;
use crate::driver::KUBERNETES;
use crate::error::{Error, Result};
use crate::node_group::{Node, BUILDKITD_CONFIG_FILE};

/// The label naming a builder's pods (buildx's `app`, reserved).
pub const LABEL_APP: &str = "app";
/// The annotation listing a node's declared platforms (buildx's, reserved).
pub const ANNOTATION_PLATFORM: &str = "buildx.docker.com/platform";
/// The container's name (buildx's).
pub const CONTAINER: &str = "buildkitd";
/// The volume claim template's name (buildx's).
const CLAIM: &str = "buildkitd";
/// hoistd's socket in the container.
pub const SOCKET: &str = "unix:///run/hoistd/hoistd.sock";
/// hoistd's state dir in the container.
const STATE_ROOT: &str = "/var/lib/hoist";
/// Where the ConfigMap is mounted.
const CONFIG_DIR: &str = "/etc/hoist";
/// buildx's default for `qemu.image`.
const QEMU_IMAGE: &str = "tonistiigi/binfmt:latest";
/// buildx's default for `timeout`.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// How a build picks its pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadBalance {
    /// The same context path goes to the same pod (while the set of pods stays).
    Sticky,
    /// Any running pod.
    Random,
}

/// A node's driver options, checked.
#[derive(Debug, Clone)]
pub struct Options {
    pub namespace: Option<String>,
    pub replicas: i32,
    pub image: Option<String>,
    pub requests: BTreeMap<String, String>,
    pub limits: BTreeMap<String, String>,
    pub claim_storage: Option<String>,
    pub node_selector: BTreeMap<String, String>,
    pub tolerations: Vec<Toleration>,
    pub annotations: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    pub load_balance: LoadBalance,
    pub qemu_install: bool,
    pub qemu_image: String,
    pub timeout: Duration,
    pub env: Vec<(String, String)>,
    pub default_load: bool,
    pub service_account: Option<String>,
    pub scheduler: Option<String>,
}

impl Options {
    /// The node's `driver_opts`, each checked; an unknown key or a bad value is an error
    /// naming it.
    pub fn parse(node: &Node) -> Result<Options> {
        let mut o = Options {
            namespace: None,
            replicas: 1,
            image: None,
            requests: BTreeMap::new(),
            limits: BTreeMap::new(),
            claim_storage: None,
            node_selector: BTreeMap::new(),
            tolerations: Vec::new(),
            annotations: BTreeMap::new(),
            labels: BTreeMap::new(),
            load_balance: LoadBalance::Sticky,
            qemu_install: false,
            qemu_image: QEMU_IMAGE.to_owned(),
            timeout: DEFAULT_TIMEOUT,
            env: Vec::new(),
            default_load: false,
            service_account: None,
            scheduler: None,
        };
        for (key, value) in &node.driver_opts {
            let bad = |message: &str| Error::BadDriverOpt {
                key: key.clone(),
                value: value.clone(),
                driver: KUBERNETES,
                message: message.to_owned(),
            };
            match key.as_str() {
                "image" => o.image = (!value.is_empty()).then(|| value.clone()),
                "namespace" => {
                    if !is_dns_label(value) {
                        return Err(bad("a namespace is a DNS label: lowercase letters, digits and '-', at most 63"));
                    }
                    o.namespace = Some(value.clone());
                }
                "replicas" => {
                    o.replicas = value
                        .parse::<i32>()
                        .ok()
                        .filter(|n| *n >= 1)
                        .ok_or_else(|| bad("expected a whole number of pods, at least 1"))?;
                }
                "requests.cpu"
                | "requests.memory"
                | "requests.ephemeral-storage"
                | "limits.cpu"
                | "limits.memory"
                | "limits.ephemeral-storage"
                | "persistent-volume-claim.requests.storage" => {
                    if !is_quantity(value) {
                        return Err(bad("expected a Kubernetes quantity such as 500m, 2, 1Gi"));
                    }
                    let (kind, resource) = key.split_once('.').unwrap_or_default();
                    match kind {
                        "requests" => o.requests.insert(resource.to_owned(), value.clone()),
                        "limits" => o.limits.insert(resource.to_owned(), value.clone()),
                        _ => o.claim_storage.replace(value.clone()),
                    };
                }
                "nodeselector" => o.node_selector = pairs(value).ok_or_else(|| bad(PAIRS))?,
                "annotations" => {
                    o.annotations = pairs(value).ok_or_else(|| bad(PAIRS))?;
                    if o.annotations.contains_key(ANNOTATION_PLATFORM) {
                        return Err(bad(&format!("the annotation {ANNOTATION_PLATFORM:?} is reserved and cannot be customized")));
                    }
                }
                "labels" => {
                    o.labels = pairs(value).ok_or_else(|| bad(PAIRS))?;
                    if o.labels.contains_key(LABEL_APP) {
                        return Err(bad(&format!(
                            "the label {LABEL_APP:?} is reserved and cannot be customized"
                        )));
                    }
                }
                "tolerations" => o.tolerations = tolerations(value).map_err(|m| bad(&m))?,
                "loadbalance" => {
                    o.load_balance = match value.as_str() {
                        "sticky" => LoadBalance::Sticky,
                        "random" => LoadBalance::Random,
                        _ => return Err(bad("expected sticky or random")),
                    }
                }
                "qemu.install" => o.qemu_install = parse_bool(value).ok_or_else(|| bad(BOOL))?,
                "qemu.image" => {
                    if !value.is_empty() {
                        o.qemu_image = value.clone();
                    }
                }
                "default-load" => o.default_load = parse_bool(value).ok_or_else(|| bad(BOOL))?,
                "timeout" => {
                    o.timeout = parse_duration(value)
                        .ok_or_else(|| bad("expected a duration such as 90s, 2m or 1m30s"))?
                }
                "serviceaccount" => o.service_account = Some(value.clone()),
                "schedulername" => o.scheduler = Some(value.clone()),
                _ => match key.strip_prefix("env.") {
                    Some(name) if !name.is_empty() => o.env.push((name.to_owned(), value.clone())),
                    _ => {
                        return Err(Error::UnknownDriverOpt {
                            key: key.clone(),
                            driver: KUBERNETES,
                        })
                    }
                },
            }
        }
        Ok(o)
    }

    /// The container image: `image=`, else hoist's own hoistd image.
    pub fn image(&self) -> String {
        self.image.clone().unwrap_or_else(default_image)
    }
}

const PAIRS: &str = "expected key=value pairs separated by commas";
const BOOL: &str = "expected true or false";

/// The objects of one node.
pub struct Manifests {
    pub deployment: Option<Deployment>,
    pub stateful_set: Option<StatefulSet>,
    pub config_map: Option<ConfigMap>,
}

/// The name of the ConfigMap of `deployment`.
pub fn config_map_name(deployment: &str) -> String {
    format!("{deployment}-config")
}

/// The objects for `node` as deployment `name` in `namespace`.
pub fn manifests(node: &Node, o: &Options, name: &str, namespace: &str) -> Manifests {
    let mut labels = o.labels.clone();
    labels.insert(LABEL_APP.to_owned(), name.to_owned());
    let mut annotations = o.annotations.clone();
    if !node.platforms.is_empty() {
        let list: Vec<String> = node.platforms.iter().map(|p| p.format()).collect();
        annotations.insert(ANNOTATION_PLATFORM.to_owned(), list.join(","));
    }
    let meta = ObjectMeta {
        name: Some(name.to_owned()),
        namespace: Some(namespace.to_owned()),
        labels: Some(labels.clone()),
        annotations: (!annotations.is_empty()).then(|| annotations.clone()),
        ..ObjectMeta::default()
    };
    let config = node.files.get(BUILDKITD_CONFIG_FILE);
    let mut args = vec![
        "--root".to_owned(),
        STATE_ROOT.to_owned(),
        "--addr".to_owned(),
        SOCKET.to_owned(),
    ];
    if config.is_some() {
        args.push("--config".to_owned());
        args.push(format!("{CONFIG_DIR}/{BUILDKITD_CONFIG_FILE}"));
    }
    args.extend(node.buildkitd_flags.iter().cloned());
    let quantities = |map: &BTreeMap<String, String>| {
        (!map.is_empty()).then(|| {
            map.iter()
                .map(|(k, v)| (k.clone(), Quantity(v.clone())))
                .collect::<BTreeMap<_, _>>()
        })
    };
    let mut mounts = Vec::new();
    let mut volumes = Vec::new();
    if config.is_some() {
        mounts.push(VolumeMount {
            name: "config".to_owned(),
            mount_path: CONFIG_DIR.to_owned(),
            ..VolumeMount::default()
        });
        volumes.push(Volume {
            name: "config".to_owned(),
            config_map: Some(ConfigMapVolumeSource {
                name: config_map_name(name),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        });
    }
    if o.claim_storage.is_some() {
        mounts.push(VolumeMount {
            name: CLAIM.to_owned(),
            mount_path: STATE_ROOT.to_owned(),
            ..VolumeMount::default()
        });
    }
    let container = Container {
        name: CONTAINER.to_owned(),
        image: Some(o.image()),
        command: Some(vec!["hoistd".to_owned()]),
        args: Some(args),
        env: (!o.env.is_empty()).then(|| {
            o.env
                .iter()
                .map(|(name, value)| EnvVar {
                    name: name.clone(),
                    value: Some(value.clone()),
                    ..EnvVar::default()
                })
                .collect()
        }),
        security_context: Some(SecurityContext {
            privileged: Some(true),
            ..SecurityContext::default()
        }),
        resources: Some(k8s_openapi::api::core::v1::ResourceRequirements {
            requests: quantities(&o.requests),
            limits: quantities(&o.limits),
            ..Default::default()
        }),
        volume_mounts: (!mounts.is_empty()).then_some(mounts),
        ..Container::default()
    };
    let init_containers = o.qemu_install.then(|| {
        vec![Container {
            name: "qemu".to_owned(),
            image: Some(o.qemu_image.clone()),
            args: Some(vec!["--install".to_owned(), "all".to_owned()]),
            security_context: Some(SecurityContext {
                privileged: Some(true),
                ..SecurityContext::default()
            }),
            ..Container::default()
        }]
    });
    let template = PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels.clone()),
            annotations: (!annotations.is_empty()).then_some(annotations),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            containers: vec![container],
            init_containers,
            volumes: (!volumes.is_empty()).then_some(volumes),
            node_selector: (!o.node_selector.is_empty()).then(|| o.node_selector.clone()),
            tolerations: (!o.tolerations.is_empty()).then(|| o.tolerations.clone()),
            service_account_name: o.service_account.clone(),
            scheduler_name: o.scheduler.clone(),
            ..PodSpec::default()
        }),
    };
    let selector = LabelSelector {
        match_labels: Some(BTreeMap::from([(LABEL_APP.to_owned(), name.to_owned())])),
        ..LabelSelector::default()
    };
    let config_map = config.map(|bytes| ConfigMap {
        metadata: ObjectMeta {
            name: Some(config_map_name(name)),
            namespace: Some(namespace.to_owned()),
            labels: Some(labels.clone()),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(
            BUILDKITD_CONFIG_FILE.to_owned(),
            String::from_utf8_lossy(bytes).into_owned(),
        )])),
        ..ConfigMap::default()
    });
    let (deployment, stateful_set) = match &o.claim_storage {
        None => (
            Some(Deployment {
                metadata: meta,
                spec: Some(DeploymentSpec {
                    replicas: Some(o.replicas),
                    selector,
                    template,
                    ..DeploymentSpec::default()
                }),
                ..Deployment::default()
            }),
            None,
        ),
        Some(storage) => (
            None,
            Some(StatefulSet {
                metadata: meta,
                spec: Some(StatefulSetSpec {
                    replicas: Some(o.replicas),
                    selector,
                    template,
                    service_name: Some(CLAIM.to_owned()),
                    pod_management_policy: Some("Parallel".to_owned()),
                    volume_claim_templates: Some(vec![PersistentVolumeClaim {
                        metadata: ObjectMeta {
                            name: Some(CLAIM.to_owned()),
                            labels: Some(BTreeMap::from([(LABEL_APP.to_owned(), name.to_owned())])),
                            ..ObjectMeta::default()
                        },
                        spec: Some(PersistentVolumeClaimSpec {
                            access_modes: Some(vec!["ReadWriteOnce".to_owned()]),
                            resources: Some(VolumeResourceRequirements {
                                requests: Some(BTreeMap::from([(
                                    "storage".to_owned(),
                                    Quantity(storage.clone()),
                                )])),
                                ..VolumeResourceRequirements::default()
                            }),
                            ..PersistentVolumeClaimSpec::default()
                        }),
                        ..PersistentVolumeClaim::default()
                    }]),
                    ..StatefulSetSpec::default()
                }),
                ..StatefulSet::default()
            }),
        ),
    };
    Manifests {
        deployment,
        stateful_set,
        config_map,
    }
}

/// A node's name as a deployment name (a DNS label): lowercase, other characters `-`.
pub fn deployment_name(node: &str) -> Result<String> {
    let name: String = node
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9') => c,
            _ => '-',
        })
        .collect();
    // `-config` must still fit the ConfigMap's name.
    if !is_dns_label(&name) || name.len() > 56 {
        return Err(Error::Invalid(format!(
            "node name {node:?} cannot name a Kubernetes deployment (a DNS label of at most 56 characters is needed)"
        )));
    }
    Ok(name)
}

fn is_dns_label(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 63
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !text.starts_with('-')
        && !text.ends_with('-')
}

/// Kubernetes' quantity syntax: a decimal number with an optional SI or binary suffix or
/// exponent.
fn is_quantity(text: &str) -> bool {
    let body = text.strip_prefix(['+', '-']).unwrap_or(text);
    let end = body
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(body.len());
    let (number, suffix) = body.split_at(end);
    let digits = number.chars().filter(char::is_ascii_digit).count();
    let valid_number = digits > 0 && number.matches('.').count() <= 1;
    let valid_suffix = matches!(
        suffix,
        "" | "m" | "k" | "M" | "G" | "T" | "P" | "E" | "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei"
    ) || suffix
        .strip_prefix(['e', 'E'])
        .map(|e| e.strip_prefix(['+', '-']).unwrap_or(e))
        .is_some_and(|e| !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit()));
    valid_number && valid_suffix
}

/// `k=v,k2=v2` (quotes around the whole value allowed, as buildx).
fn pairs(text: &str) -> Option<BTreeMap<String, String>> {
    text.trim_matches('"')
        .split(',')
        .map(|item| {
            let (k, v) = item.split_once('=')?;
            (!k.is_empty() && !v.contains('=')).then(|| (k.to_owned(), v.to_owned()))
        })
        .collect()
}

/// buildx's `tolerations`: `key=K,operator=Exists,value=V,effect=NoSchedule,tolerationSeconds=N`,
/// several separated by `;`.
fn tolerations(text: &str) -> std::result::Result<Vec<Toleration>, String> {
    let mut out = Vec::new();
    for item in text.split(';').filter(|s| !s.is_empty()) {
        let mut toleration = Toleration::default();
        for field in item.split(',') {
            let Some((k, v)) = field.split_once('=') else {
                return Err(format!("expected key=value in toleration field {field:?}"));
            };
            match k {
                "key" => toleration.key = Some(v.to_owned()),
                "operator" => toleration.operator = Some(v.to_owned()),
                "value" => toleration.value = Some(v.to_owned()),
                "effect" => toleration.effect = Some(v.to_owned()),
                "tolerationSeconds" => {
                    toleration.toleration_seconds = Some(
                        v.parse()
                            .map_err(|_| format!("tolerationSeconds {v:?} is not a number"))?,
                    )
                }
                _ => return Err(format!("unknown toleration field {k:?}")),
            }
        }
        out.push(toleration);
    }
    Ok(out)
}

/// Go's `strconv.ParseBool`.
fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// A Go duration made of `h`, `m`, `s` and `ms` parts (`90s`, `1m30s`).
fn parse_duration(text: &str) -> Option<Duration> {
    let mut total = 0f64;
    let mut rest = text;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let number: f64 = rest[..end].parse().ok()?;
        rest = &rest[end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            _ => return None,
        };
        total += number * scale;
        rest = &rest[unit_end..];
    }
    Some(Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(opts: &[(&str, &str)]) -> Node {
        Node {
            name: "kb0".to_owned(),
            endpoint: "default".to_owned(),
            driver_opts: opts
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ..Node::default()
        }
    }

    #[test]
    fn options_become_the_deployment() {
        let n = node(&[
            ("namespace", "builds"),
            ("replicas", "2"),
            ("requests.cpu", "500m"),
            ("limits.memory", "2Gi"),
            ("nodeselector", "kubernetes.io/arch=amd64"),
            (
                "tolerations",
                "key=k,operator=Equal,value=v,effect=NoSchedule",
            ),
            ("annotations", "team=build"),
            ("labels", "tier=ci"),
            ("loadbalance", "random"),
            ("qemu.install", "true"),
            ("image", "registry.example/hoistd:1"),
            ("env.RUST_LOG", "debug"),
            ("timeout", "1m30s"),
        ]);
        let o = Options::parse(&n).unwrap();
        assert_eq!(o.namespace.as_deref(), Some("builds"));
        assert_eq!(o.replicas, 2);
        assert_eq!(o.load_balance, LoadBalance::Random);
        assert_eq!(o.timeout, Duration::from_secs(90));
        let m = manifests(&n, &o, "kb0", "builds");
        assert!(m.stateful_set.is_none() && m.config_map.is_none());
        let d = serde_json::to_value(m.deployment.unwrap()).unwrap();
        assert_eq!(d["spec"]["replicas"], 2);
        assert_eq!(d["metadata"]["labels"]["app"], "kb0");
        assert_eq!(d["metadata"]["labels"]["tier"], "ci");
        assert_eq!(
            d["spec"]["selector"]["matchLabels"],
            serde_json::json!({"app": "kb0"})
        );
        let pod = &d["spec"]["template"]["spec"];
        assert_eq!(pod["containers"][0]["image"], "registry.example/hoistd:1");
        assert_eq!(pod["containers"][0]["resources"]["requests"]["cpu"], "500m");
        assert_eq!(pod["containers"][0]["resources"]["limits"]["memory"], "2Gi");
        assert_eq!(pod["containers"][0]["securityContext"]["privileged"], true);
        assert_eq!(pod["nodeSelector"]["kubernetes.io/arch"], "amd64");
        assert_eq!(pod["tolerations"][0]["effect"], "NoSchedule");
        assert_eq!(
            pod["initContainers"][0]["args"],
            serde_json::json!(["--install", "all"])
        );
        assert_eq!(pod["containers"][0]["env"][0]["name"], "RUST_LOG");
    }

    #[test]
    fn a_claim_size_makes_a_stateful_set_and_a_config_a_config_map() {
        let mut n = node(&[("persistent-volume-claim.requests.storage", "10Gi")]);
        n.files
            .insert(BUILDKITD_CONFIG_FILE.to_owned(), b"debug = true\n".to_vec());
        let o = Options::parse(&n).unwrap();
        let m = manifests(&n, &o, "kb0", "default");
        assert!(m.deployment.is_none());
        let s = serde_json::to_value(m.stateful_set.unwrap()).unwrap();
        let claim = &s["spec"]["volumeClaimTemplates"][0];
        assert_eq!(claim["spec"]["resources"]["requests"]["storage"], "10Gi");
        let c = serde_json::to_value(m.config_map.unwrap()).unwrap();
        assert_eq!(c["metadata"]["name"], "kb0-config");
        assert_eq!(c["data"]["buildkitd.toml"], "debug = true\n");
        let args = &s["spec"]["template"]["spec"]["containers"][0]["args"];
        assert_eq!(args[4], "--config");
        assert_eq!(args[5], "/etc/hoist/buildkitd.toml");
    }

    #[test]
    fn bad_options_name_key_and_value() {
        for (key, value, message) in [
            ("colour", "red", "invalid driver option colour for kubernetes driver"),
            (
                "replicas",
                "two",
                "invalid driver option replicas=\"two\" for kubernetes driver: expected a whole number of pods, at least 1",
            ),
            (
                "replicas",
                "0",
                "invalid driver option replicas=\"0\" for kubernetes driver: expected a whole number of pods, at least 1",
            ),
            (
                "requests.memory",
                "lots",
                "invalid driver option requests.memory=\"lots\" for kubernetes driver: expected a Kubernetes quantity such as 500m, 2, 1Gi",
            ),
            (
                "loadbalance",
                "roundrobin",
                "invalid driver option loadbalance=\"roundrobin\" for kubernetes driver: expected sticky or random",
            ),
            (
                "labels",
                "app=x",
                "invalid driver option labels=\"app=x\" for kubernetes driver: the label \"app\" is reserved and cannot be customized",
            ),
            (
                "namespace",
                "Build_NS",
                "invalid driver option namespace=\"Build_NS\" for kubernetes driver: a namespace is a DNS label: lowercase letters, digits and '-', at most 63",
            ),
        ] {
            let err = Options::parse(&node(&[(key, value)])).unwrap_err();
            assert_eq!(err.to_string(), message);
        }
    }

    #[test]
    fn quantities_durations_and_names() {
        for good in ["1", "500m", "1.5", "2Gi", "1e3", "+1k"] {
            assert!(is_quantity(good), "{good}");
        }
        for bad in ["", "lots", "1.2.3", "1Gb", "Gi"] {
            assert!(!is_quantity(bad), "{bad}");
        }
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("soon"), None);
        assert_eq!(deployment_name("My_Builder0").unwrap(), "my-builder0");
        assert!(deployment_name("-x").is_err());
    }
}
