//! [`GroupReport`]: what `ls` and `inspect` show of a builder — each node's driver, status,
//! version and platforms — asked of all nodes at once (one thread each, every check bounded
//! by the driver's short timeout), so one unreachable node costs its timeout once and the
//! others are still listed. A `kubernetes` node with running pods is listed as its pods, as
//! buildx lists them.

use hoist_oci::Platform;

use crate::driver::{AnyDriver, Driver, Features, Info};
use crate::node_group::{Node, NodeGroup};

/// A builder and what its nodes said.
#[derive(Debug, Clone)]
pub struct GroupReport {
    /// The builder as stored.
    pub group: NodeGroup,
    /// One report per node, in the group's order.
    pub nodes: Vec<NodeReport>,
}

/// One node and what its driver said.
#[derive(Debug, Clone)]
pub struct NodeReport {
    /// The node as stored.
    pub node: Node,
    /// The driver could not be set up for it (unknown driver, bad option in a hand-edited
    /// file); then nothing else is known.
    pub error: Option<String>,
    /// Status and platforms.
    pub info: Option<Info>,
    /// The builder software's version, when known.
    pub version: String,
    /// The driver's capabilities.
    pub features: Features,
}

impl GroupReport {
    /// Asks every node of `group`.
    pub fn gather(group: &NodeGroup) -> GroupReport {
        let nodes = std::thread::scope(|scope| {
            let handles: Vec<_> = group
                .nodes
                .iter()
                .map(|node| scope.spawn(move || NodeReport::gather(group, node)))
                .collect();
            handles
                .into_iter()
                .zip(&group.nodes)
                .flat_map(|(handle, node)| {
                    handle.join().unwrap_or_else(|_| {
                        vec![NodeReport {
                            node: node.clone(),
                            error: Some("status check panicked".to_owned()),
                            info: None,
                            version: String::new(),
                            features: Features::new(),
                        }]
                    })
                })
                .collect()
        });
        GroupReport {
            group: group.clone(),
            nodes,
        }
    }

    /// [`GroupReport::gather`] for several builders at once.
    pub fn gather_all(groups: &[NodeGroup]) -> Vec<GroupReport> {
        std::thread::scope(|scope| {
            let handles: Vec<_> = groups
                .iter()
                .map(|g| scope.spawn(move || GroupReport::gather(g)))
                .collect();
            handles
                .into_iter()
                .zip(groups)
                .map(|(h, g)| {
                    h.join().unwrap_or_else(|_| GroupReport {
                        group: g.clone(),
                        nodes: Vec::new(),
                    })
                })
                .collect()
        })
    }
}

impl NodeReport {
    /// The node's report; a `kubernetes` node with running pods is reported as its pods
    /// (buildx's dynamic nodes: each pod's name, its hoistd's version and platforms).
    fn gather(group: &NodeGroup, node: &Node) -> Vec<NodeReport> {
        match AnyDriver::new(group, node) {
            Ok(AnyDriver::Kubernetes(driver)) => {
                let (info, pods) = driver.report();
                let features = driver.features();
                if pods.is_empty() {
                    return vec![NodeReport {
                        node: node.clone(),
                        error: None,
                        info: Some(info),
                        version: String::new(),
                        features,
                    }];
                }
                pods.into_iter()
                    .map(|pod| NodeReport {
                        node: Node {
                            name: pod.name,
                            ..node.clone()
                        },
                        error: None,
                        info: Some(pod.info),
                        version: pod.version,
                        features: features.clone(),
                    })
                    .collect()
            }
            Ok(driver) => vec![NodeReport {
                node: node.clone(),
                error: None,
                info: Some(driver.info()),
                version: driver.version(),
                features: driver.features(),
            }],
            Err(e) => vec![NodeReport {
                node: node.clone(),
                error: Some(e.to_string()),
                info: None,
                version: String::new(),
                features: Features::new(),
            }],
        }
    }

    /// buildx's platform list: the declared platforms first, each marked `*`, then those the
    /// worker reports that were not declared.
    pub fn platforms(&self) -> Vec<String> {
        let reported = self.info.as_ref().map_or(&[][..], |i| &i.platforms[..]);
        let mut out: Vec<String> = Vec::new();
        let mut seen: Vec<String> = Vec::new();
        for (declared, list) in [(true, &self.node.platforms[..]), (false, reported)] {
            for platform in list {
                let key = Platform::format(&platform.normalize());
                if seen.contains(&key) {
                    continue;
                }
                seen.push(key.clone());
                out.push(if declared { format!("{key}*") } else { key });
            }
        }
        out
    }
}
