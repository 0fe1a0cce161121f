//! The fixture's objects ([`State`]): create, replace, merge patch, delete, lists with
//! label selectors, and the reconciliation that gives every deployment and statefulset its
//! pods (processes, see [`super::pods`]) and status.

use std::collections::BTreeMap;
use std::path::PathBuf;

use hyper::StatusCode;
use serde_json::{json, Value};

use super::pods::Pod;
use super::{not_found, respond, status, time, Answer, Key, Kind};

#[derive(Debug)]
pub(super) struct State {
    pub(super) objects: BTreeMap<Key, Value>,
    pub(super) pods: BTreeMap<(String, String), Pod>,
    pub(super) revision: u64,
    pub(super) root: PathBuf,
    pub(super) hoistd: PathBuf,
}

/// An equality-based label selector: `k=v`, `k==v`, `k!=v`, `k`, `!k`, comma-separated.
pub(super) fn selector_matches(selector: &str, labels: &Value) -> bool {
    selector
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .all(|term| {
            let label = |k: &str| labels.get(k.trim()).and_then(Value::as_str);
            if let Some((k, v)) = term.split_once("!=") {
                label(k) != Some(v.trim())
            } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                label(k) == Some(v.trim())
            } else if let Some(k) = term.strip_prefix('!') {
                label(k).is_none()
            } else {
                label(term).is_some()
            }
        })
}

pub(super) fn new_object(
    kind: &Kind,
    namespace: &str,
    name: &str,
    mut object: Value,
    revision: u64,
) -> Value {
    if !object.is_object() {
        object = json!({});
    }
    object["apiVersion"] = json!(kind.api_version());
    object["kind"] = json!(kind.kind);
    let meta = object
        .as_object_mut()
        .map(|o| o.entry("metadata").or_insert_with(|| json!({})))
        .expect("an object");
    meta["name"] = json!(name);
    if kind.namespaced {
        meta["namespace"] = json!(namespace);
    }
    meta["uid"] = json!(format!("{:08x}-0000-4000-8000-{revision:012x}", revision));
    meta["resourceVersion"] = json!(revision.to_string());
    meta["generation"] = json!(1);
    meta["creationTimestamp"] = json!(time::rfc3339_now());
    if kind.plural == "namespaces" {
        object["status"] = json!({"phase": "Active"});
    }
    object
}

/// RFC 7386 merge patch.
fn merge(target: &mut Value, patch: &Value) {
    match (target.as_object_mut(), patch.as_object()) {
        (Some(target), Some(patch)) => {
            for (k, v) in patch {
                if v.is_null() {
                    target.remove(k);
                } else {
                    merge(target.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        _ => *target = patch.clone(),
    }
}

impl State {
    pub(super) fn next_revision(&mut self) -> u64 {
        self.revision += 1;
        self.revision
    }

    pub(super) fn namespace_exists(&self, namespace: &str) -> bool {
        self.objects
            .contains_key(&("namespaces", String::new(), namespace.to_owned()))
    }

    pub(super) fn list(&self, kind: &Kind, namespace: &str, params: &[(String, String)]) -> Answer {
        let selector = params
            .iter()
            .find(|(k, _)| k == "labelSelector")
            .map(|(_, v)| v.as_str())
            .unwrap_or_default();
        let items: Vec<&Value> = self
            .objects
            .iter()
            .filter(|((p, ns, _), _)| {
                *p == kind.plural && (namespace.is_empty() || ns == namespace)
            })
            .map(|(_, o)| o)
            .filter(|o| selector_matches(selector, &o["metadata"]["labels"]))
            .collect();
        respond(
            StatusCode::OK,
            &json!({
                "kind": format!("{}List", kind.kind),
                "apiVersion": kind.api_version(),
                "metadata": {"resourceVersion": self.revision.to_string()},
                "items": items,
            }),
        )
    }

    pub(super) fn create(&mut self, kind: &Kind, namespace: &str, object: Value) -> Answer {
        let Some(name) = object["metadata"]["name"].as_str().map(str::to_owned) else {
            return status(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Invalid",
                format!(
                    "{} \"\" is invalid: metadata.name: Required value",
                    kind.kind
                ),
                json!({}),
            );
        };
        let ns = if kind.namespaced { namespace } else { "" };
        let key = (kind.plural, ns.to_owned(), name.clone());
        if self.objects.contains_key(&key) {
            return status(
                StatusCode::CONFLICT,
                "AlreadyExists",
                format!("{} {name:?} already exists", kind.qualified()),
                json!({"name": name, "group": kind.group, "kind": kind.plural}),
            );
        }
        let revision = self.next_revision();
        let object = new_object(kind, ns, &name, object, revision);
        self.objects.insert(key, object.clone());
        respond(StatusCode::CREATED, &object)
    }

    pub(super) fn replace(
        &mut self,
        kind: &Kind,
        namespace: &str,
        name: &str,
        object: Value,
    ) -> Answer {
        let key = (kind.plural, namespace.to_owned(), name.to_owned());
        let Some(old) = self.objects.get(&key).cloned() else {
            return not_found(kind, name);
        };
        let mut object = object;
        object["metadata"] = old["metadata"].clone();
        self.store_update(kind, key, old, object)
    }

    pub(super) fn patch(
        &mut self,
        kind: &Kind,
        namespace: &str,
        name: &str,
        patch: &Value,
    ) -> Answer {
        let key = (kind.plural, namespace.to_owned(), name.to_owned());
        let Some(old) = self.objects.get(&key).cloned() else {
            return not_found(kind, name);
        };
        let mut object = old.clone();
        merge(&mut object, patch);
        self.store_update(kind, key, old, object)
    }

    fn store_update(&mut self, kind: &Kind, key: Key, old: Value, mut object: Value) -> Answer {
        let revision = self.next_revision();
        object["apiVersion"] = json!(kind.api_version());
        object["kind"] = json!(kind.kind);
        object["metadata"]["resourceVersion"] = json!(revision.to_string());
        if old["spec"] != object["spec"] {
            let generation = old["metadata"]["generation"].as_i64().unwrap_or(1) + 1;
            object["metadata"]["generation"] = json!(generation);
        }
        self.objects.insert(key, object.clone());
        respond(StatusCode::OK, &object)
    }

    pub(super) fn delete(&mut self, kind: &Kind, namespace: &str, name: &str) -> Answer {
        let ns = if kind.namespaced { namespace } else { "" };
        let key = (kind.plural, ns.to_owned(), name.to_owned());
        let Some(object) = self.objects.remove(&key) else {
            return not_found(kind, name);
        };
        if kind.plural == "pods" {
            if let Some(mut pod) = self.pods.remove(&(ns.to_owned(), name.to_owned())) {
                pod.kill();
            }
        }
        if kind.plural == "namespaces" {
            let inside: Vec<Key> = (self.objects.keys())
                .filter(|(_, o_ns, _)| o_ns == name)
                .cloned()
                .collect();
            for key in inside {
                self.objects.remove(&key);
                if key.0 == "pods" {
                    if let Some(mut pod) = self.pods.remove(&(key.1, key.2)) {
                        pod.kill();
                    }
                }
            }
        }
        respond(StatusCode::OK, &object)
    }

    /// Pods' readiness and the workloads' status from the pods' processes.
    pub(super) fn refresh(&mut self) {
        let mut changes = Vec::new();
        for ((ns, name), pod) in self.pods.iter_mut() {
            let key = ("pods", ns.clone(), name.clone());
            if let Some(object) = self.objects.get(&key) {
                let status = pod.status();
                if object["status"] != status {
                    changes.push((key, status));
                }
            }
        }
        for (key, status) in changes {
            if let Some(object) = self.objects.get_mut(&key) {
                object["status"] = status;
            }
        }
        let workloads: Vec<Key> = (self.objects.keys())
            .filter(|(p, _, _)| *p == "deployments" || *p == "statefulsets")
            .cloned()
            .collect();
        for key in workloads {
            let (ready, existing) = self.owned_pods(&key).iter().fold((0, 0), |(r, e), pod| {
                let ready = pod["status"]["conditions"][0]["status"] == "True";
                (r + i64::from(ready), e + 1)
            });
            if let Some(object) = self.objects.get_mut(&key) {
                let status = json!({
                    "observedGeneration": object["metadata"]["generation"],
                    "replicas": existing,
                    "readyReplicas": ready,
                    "availableReplicas": ready,
                    "updatedReplicas": existing,
                    "currentReplicas": existing,
                });
                object["status"] = status;
            }
        }
    }

    fn owned_pods(&self, owner: &Key) -> Vec<&Value> {
        self.objects
            .iter()
            .filter(|((p, ns, _), o)| {
                *p == "pods"
                    && *ns == owner.1
                    && o["metadata"]["ownerReferences"][0]["name"] == owner.2.as_str()
                    && o["metadata"]["ownerReferences"][0]["kind"]
                        == if owner.0 == "deployments" {
                            "ReplicaSet"
                        } else {
                            "StatefulSet"
                        }
            })
            .map(|(_, o)| o)
            .collect()
    }

    /// Every workload gets the pods its `replicas` asks for: missing pods are started,
    /// extra ones (and those of removed workloads) killed and removed.
    pub(super) fn reconcile(&mut self) {
        let workloads: Vec<(Key, Value)> = (self.objects.iter())
            .filter(|((p, _, _), _)| *p == "deployments" || *p == "statefulsets")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        // Pods whose workload is gone.
        let orphans: Vec<Key> = (self.objects.iter())
            .filter(|((p, _, _), o)| *p == "pods" && o["metadata"]["ownerReferences"].is_array())
            .filter(|((_, ns, _), o)| {
                let owner = o["metadata"]["ownerReferences"][0]["name"]
                    .as_str()
                    .unwrap_or("");
                let plural = if o["metadata"]["ownerReferences"][0]["kind"] == "StatefulSet" {
                    "statefulsets"
                } else {
                    "deployments"
                };
                !workloads
                    .iter()
                    .any(|((p, wns, wname), _)| *p == plural && wns == ns && wname == owner)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in orphans {
            self.remove_pod(&key);
        }
        for (key, workload) in workloads {
            let wanted = workload["spec"]["replicas"].as_i64().unwrap_or(1).max(0) as usize;
            let mut pods: Vec<String> = self
                .owned_pods(&key)
                .iter()
                .filter_map(|o| o["metadata"]["name"].as_str().map(str::to_owned))
                .collect();
            pods.sort();
            if key.0 == "statefulsets" {
                for ordinal in 0..wanted {
                    let name = format!("{}-{ordinal}", key.2);
                    if !pods.contains(&name) {
                        self.start_pod(&key, &workload, &name);
                    }
                }
                for name in pods {
                    let ordinal = name
                        .rsplit('-')
                        .next()
                        .and_then(|o| o.parse::<usize>().ok());
                    if ordinal.is_none_or(|o| o >= wanted) {
                        self.remove_pod(&("pods", key.1.clone(), name));
                    }
                }
            } else {
                let template = template_hash(&workload["spec"]["template"]);
                for _ in pods.len()..wanted {
                    let name = format!("{}-{template}-{}", key.2, pod_suffix(self.revision));
                    self.next_revision();
                    self.start_pod(&key, &workload, &name);
                }
                for name in pods.iter().skip(wanted).cloned().collect::<Vec<_>>() {
                    self.remove_pod(&("pods", key.1.clone(), name));
                }
            }
        }
        self.refresh();
    }

    fn remove_pod(&mut self, key: &Key) {
        self.objects.remove(key);
        if let Some(mut pod) = self.pods.remove(&(key.1.clone(), key.2.clone())) {
            pod.kill();
        }
    }

    fn start_pod(&mut self, owner: &Key, workload: &Value, name: &str) {
        let namespace = owner.1.clone();
        let template = &workload["spec"]["template"];
        let statefulset = owner.0 == "statefulsets";
        let owner_ref = if statefulset {
            json!([{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": owner.2, "controller": true,
                "uid": workload["metadata"]["uid"]}])
        } else {
            json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": owner.2, "controller": true,
                "uid": workload["metadata"]["uid"]}])
        };
        let mut object = json!({
            "metadata": {
                "labels": template["metadata"]["labels"],
                "annotations": template["metadata"]["annotations"],
                "ownerReferences": owner_ref,
            },
            "spec": template["spec"],
        });
        if statefulset {
            // A claim per template, `TEMPLATE-POD`, kept when the pod goes (as Kubernetes).
            let claims = workload["spec"]["volumeClaimTemplates"].as_array().cloned();
            for claim in claims.unwrap_or_default() {
                let claim_name = format!(
                    "{}-{name}",
                    claim["metadata"]["name"].as_str().unwrap_or("claim")
                );
                let key = (
                    "persistentvolumeclaims",
                    namespace.clone(),
                    claim_name.clone(),
                );
                if !self.objects.contains_key(&key) {
                    let mut pvc = claim.clone();
                    pvc["metadata"]["name"] = json!(claim_name);
                    pvc["status"] = json!({"phase": "Bound"});
                    let revision = self.next_revision();
                    let kind = Kind::find("", "persistentvolumeclaims").expect("a known kind");
                    let pvc = new_object(&kind, &namespace, &claim_name, pvc, revision);
                    self.objects.insert(key, pvc);
                }
            }
        }
        let configmaps: BTreeMap<String, Value> = (self.objects.iter())
            .filter(|((p, ns, _), _)| *p == "configmaps" && *ns == namespace)
            .map(|((_, _, n), o)| (n.clone(), o["data"].clone()))
            .collect();
        let root = self.root.join(&namespace).join(name);
        let pod = Pod::start(&self.hoistd, root, &object["spec"], &configmaps);
        self.pods.insert((namespace.clone(), name.to_owned()), pod);
        let revision = self.next_revision();
        let kind = Kind::find("", "pods").expect("a known kind");
        object = new_object(&kind, &namespace, name, object, revision);
        object["spec"]["nodeName"] = json!("hoist-testkit");
        self.objects
            .insert(("pods", namespace, name.to_owned()), object);
    }
}

/// The pod-template hash part of a deployment's pod names: 10 characters from the
/// template.
fn template_hash(template: &Value) -> String {
    let text = template.to_string();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    alphanumeric(hash, 10)
}

fn pod_suffix(seed: u64) -> String {
    alphanumeric(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5bd1_e995, 5)
}

/// Kubernetes' name alphabet (no vowels, no digits that look like letters).
fn alphanumeric(mut n: u64, len: usize) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..len)
        .map(|_| {
            let c = ALPHABET[(n % ALPHABET.len() as u64) as usize] as char;
            n /= ALPHABET.len() as u64;
            n = n.wrapping_mul(31).wrapping_add(7);
            c
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_selectors_match_as_the_api_server_does() {
        let labels = json!({"app": "b0", "tier": "build"});
        assert!(selector_matches("app=b0", &labels));
        assert!(selector_matches("app==b0,tier", &labels));
        assert!(selector_matches("app!=b1,!missing", &labels));
        assert!(!selector_matches("app=b1", &labels));
        assert!(!selector_matches("missing", &labels));
        assert!(selector_matches("", &labels));
    }

    #[test]
    fn merge_patches_replace_remove_and_recurse() {
        let mut object = json!({"spec": {"replicas": 2, "paused": true}, "a": [1]});
        merge(
            &mut object,
            &json!({"spec": {"replicas": 0, "paused": null}, "a": [2]}),
        );
        assert_eq!(object, json!({"spec": {"replicas": 0}, "a": [2]}));
    }
}
