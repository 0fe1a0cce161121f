//! [`NodeGroup`] and [`Node`]: one builder and its nodes, in buildx's store shape (`Name`,
//! `Driver`, `Nodes[] {Name, Endpoint, Platforms, DriverOpts, Flags, Files}`, `Dynamic`), so a
//! builder file reads the same to hoist and to buildx.
//!
//! The group's changes follow buildx's `NodeGroup.Update`/`Leave`: a node's declared
//! platforms are taken away from the other nodes (a platform is declared by one node only),
//! endpoints are unique within a group, nodes are named `<builder><n>` unless named.

use std::collections::BTreeMap;

use base64::Engine as _;
use hoist_oci::Platform;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};
use crate::name::validate_name;

/// The file name under which a node keeps its `buildkitd.toml` in [`Node::files`].
pub const BUILDKITD_CONFIG_FILE: &str = "buildkitd.toml";

/// One builder: a name, a driver, and the nodes that driver reaches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NodeGroup {
    /// The builder's name (lowercase).
    pub name: String,
    /// The driver of every node (`embedded`, `remote`, …).
    pub driver: String,
    /// The nodes, in the order they were added.
    #[serde(default, deserialize_with = "null_as_default")]
    pub nodes: Vec<Node>,
    /// Nodes found at run time (buildx's kubernetes driver); never set by hoist yet.
    #[serde(default)]
    pub dynamic: bool,
}

/// One node: where it is and what it was told to be.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Node {
    /// The node's name, unique in its group.
    pub name: String,
    /// `unix://PATH`, `tcp://HOST:PORT`; `default` for the embedded engine.
    pub endpoint: String,
    /// Platforms declared with `--platform`: this node builds them natively.
    #[serde(default, deserialize_with = "null_as_default")]
    pub platforms: Vec<Platform>,
    /// `--driver-opt k=v` pairs.
    #[serde(default, deserialize_with = "null_as_default")]
    pub driver_opts: BTreeMap<String, String>,
    /// `--buildkitd-flags`, split as a shell does (buildx's field name `Flags`).
    #[serde(rename = "Flags", default, deserialize_with = "null_as_default")]
    pub buildkitd_flags: Vec<String>,
    /// Daemon files by name (`buildkitd.toml`), base64 in JSON as Go writes `[]byte`.
    #[serde(
        default,
        serialize_with = "files_to_base64",
        deserialize_with = "files_from_base64"
    )]
    pub files: BTreeMap<String, Vec<u8>>,
}

/// What to change in a group, from `create` (buildx's `NodeGroup.Update` arguments).
#[derive(Debug, Clone, Default)]
pub struct NodeUpdate {
    /// `--node`; empty: the next free `<builder><n>` for a new node.
    pub name: String,
    /// The endpoint (empty for the embedded driver).
    pub endpoint: String,
    /// Whether the endpoint was given (a changed node takes it only then).
    pub endpoint_set: bool,
    /// `--platform`.
    pub platforms: Vec<Platform>,
    /// `--driver-opt`; `None`: not given.
    pub driver_opts: Option<BTreeMap<String, String>>,
    /// `--buildkitd-flags`; `None`: not given.
    pub buildkitd_flags: Option<Vec<String>>,
    /// `--buildkitd-config` contents, already checked.
    pub files: BTreeMap<String, Vec<u8>>,
}

impl NodeGroup {
    /// An empty group.
    pub fn new(name: &str, driver: &str) -> NodeGroup {
        NodeGroup {
            name: name.to_owned(),
            driver: driver.to_owned(),
            nodes: Vec::new(),
            dynamic: false,
        }
    }

    /// The implicit `default` builder: the embedded engine, one node.
    pub fn default_builder() -> NodeGroup {
        NodeGroup {
            name: crate::DEFAULT_BUILDER.to_owned(),
            driver: crate::driver::EMBEDDED.to_owned(),
            nodes: vec![Node {
                name: crate::DEFAULT_BUILDER.to_owned(),
                endpoint: crate::DEFAULT_BUILDER.to_owned(),
                ..Node::default()
            }],
            dynamic: false,
        }
    }

    /// Changes the node `update.name`, or adds one when `append` (or when the group is new).
    pub fn update(&mut self, update: NodeUpdate, append: bool) -> Result<()> {
        if self.dynamic {
            return Err(Error::Invalid(
                "dynamic node group does not support Update".to_owned(),
            ));
        }
        let found = self.nodes.iter().position(|n| n.name == update.name);
        if found.is_none() && !append {
            if !self.nodes.is_empty() {
                return Err(Error::Invalid(format!(
                    "node {} not found, did you mean to append?",
                    update.name
                )));
            }
            self.nodes.clear();
        }
        let endpoint = update.endpoint.clone();
        let index = match found {
            Some(i) => {
                let node = &mut self.nodes[i];
                if update.endpoint_set {
                    node.endpoint = update.endpoint;
                }
                if !update.platforms.is_empty() {
                    node.platforms = update.platforms;
                }
                if let Some(flags) = update.buildkitd_flags {
                    node.buildkitd_flags = flags;
                }
                if let Some(opts) = update.driver_opts {
                    node.driver_opts = opts;
                }
                node.files.extend(update.files);
                i
            }
            None => {
                let name = if update.name.is_empty() {
                    self.next_node_name()
                } else {
                    validate_name(&update.name)?
                };
                self.nodes.push(Node {
                    name,
                    endpoint: update.endpoint,
                    platforms: update.platforms,
                    driver_opts: update.driver_opts.unwrap_or_default(),
                    buildkitd_flags: update.buildkitd_flags.unwrap_or_default(),
                    files: update.files,
                });
                self.nodes.len() - 1
            }
        };
        self.check_duplicates(&endpoint, index)
    }

    /// Removes the node `name` (`create --leave --node`).
    pub fn leave(&mut self, name: &str) -> Result<()> {
        if self.dynamic {
            return Err(Error::Invalid(
                "dynamic node group does not support Leave".to_owned(),
            ));
        }
        let Some(i) = self.nodes.iter().position(|n| n.name == name) else {
            return Err(Error::Invalid(format!(
                "node {name:?} not found for {}",
                self.name
            )));
        };
        if self.nodes.len() == 1 {
            return Err(Error::Invalid(
                "can not leave last node, do you want to rm instance instead?".to_owned(),
            ));
        }
        self.nodes.remove(i);
        Ok(())
    }

    /// One endpoint per group; the platforms node `index` declares leave the other nodes.
    fn check_duplicates(&mut self, endpoint: &str, index: usize) -> Result<()> {
        if self.nodes.iter().filter(|n| n.endpoint == endpoint).count() > 1 {
            return Err(Error::Invalid(format!(
                "invalid duplicate endpoint {endpoint}"
            )));
        }
        let declared: Vec<String> = self.nodes[index]
            .platforms
            .iter()
            .map(Platform::format)
            .collect();
        for (i, node) in self.nodes.iter_mut().enumerate() {
            if i != index {
                node.platforms.retain(|p| !declared.contains(&p.format()));
            }
        }
        Ok(())
    }

    fn next_node_name(&self) -> String {
        (0..)
            .map(|i| format!("{}{i}", self.name))
            .find(|name| self.nodes.iter().all(|n| &n.name != name))
            .unwrap_or_default()
    }
}

/// Go writes a nil slice or map as `null`; read it as empty.
fn null_as_default<'de, D, T>(deserializer: D) -> std::result::Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

fn files_to_base64<S: Serializer>(
    files: &BTreeMap<String, Vec<u8>>,
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    let encoded: BTreeMap<&str, String> = files
        .iter()
        .map(|(k, v)| {
            (
                k.as_str(),
                base64::engine::general_purpose::STANDARD.encode(v),
            )
        })
        .collect();
    encoded.serialize(serializer)
}

fn files_from_base64<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<BTreeMap<String, Vec<u8>>, D::Error> {
    let encoded: Option<BTreeMap<String, String>> = Option::deserialize(deserializer)?;
    encoded
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| {
            base64::engine::general_purpose::STANDARD
                .decode(v)
                .map(|bytes| (k, bytes))
                .map_err(serde::de::Error::custom)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(group: &mut NodeGroup, endpoint: &str, platforms: &[&str], append: bool) -> Result<()> {
        group.update(
            NodeUpdate {
                endpoint: endpoint.to_owned(),
                endpoint_set: true,
                platforms: platforms
                    .iter()
                    .map(|p| Platform::parse(p).unwrap())
                    .collect(),
                ..NodeUpdate::default()
            },
            append,
        )
    }

    #[test]
    fn appended_nodes_are_numbered_and_take_their_platforms_from_the_others() {
        let mut group = NodeGroup::new("b", "remote");
        add(
            &mut group,
            "tcp://a:1",
            &["linux/amd64", "linux/arm64"],
            false,
        )
        .unwrap();
        add(&mut group, "tcp://b:1", &["linux/arm64"], true).unwrap();
        assert_eq!(group.nodes[0].name, "b0");
        assert_eq!(group.nodes[1].name, "b1");
        let first: Vec<String> = group.nodes[0]
            .platforms
            .iter()
            .map(Platform::format)
            .collect();
        assert_eq!(first, ["linux/amd64"]);
    }

    #[test]
    fn duplicate_endpoint_and_unknown_node_are_refused() {
        let mut group = NodeGroup::new("b", "remote");
        add(&mut group, "tcp://a:1", &[], false).unwrap();
        let err = add(&mut group, "tcp://a:1", &[], true).unwrap_err();
        assert_eq!(err.to_string(), "invalid duplicate endpoint tcp://a:1");
        let err = group
            .update(
                NodeUpdate {
                    name: "other".to_owned(),
                    ..NodeUpdate::default()
                },
                false,
            )
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "node other not found, did you mean to append?"
        );
        let mut single = NodeGroup::new("s", "remote");
        add(&mut single, "tcp://a:1", &[], false).unwrap();
        assert_eq!(
            single.leave("s0").unwrap_err().to_string(),
            "can not leave last node, do you want to rm instance instead?"
        );
    }

    #[test]
    fn json_is_buildx_shaped_and_reads_go_nulls() {
        let mut group = NodeGroup::new("b", "remote");
        add(&mut group, "unix:///run/x.sock", &["linux/arm/v7"], false).unwrap();
        group.nodes[0]
            .files
            .insert(BUILDKITD_CONFIG_FILE.to_owned(), b"debug = true\n".to_vec());
        let json = serde_json::to_string(&group).unwrap();
        assert_eq!(
            json,
            r#"{"Name":"b","Driver":"remote","Nodes":[{"Name":"b0","Endpoint":"unix:///run/x.sock","Platforms":[{"architecture":"arm","os":"linux","variant":"v7"}],"DriverOpts":{},"Flags":[],"Files":{"buildkitd.toml":"ZGVidWcgPSB0cnVlCg=="}}],"Dynamic":false}"#
        );
        assert_eq!(serde_json::from_str::<NodeGroup>(&json).unwrap(), group);
        let go = r#"{"Name":"g","Driver":"remote","Nodes":[{"Name":"g0","Endpoint":"tcp://h:1","Platforms":null,"DriverOpts":null,"Flags":null,"Files":null}],"Dynamic":false}"#;
        let read: NodeGroup = serde_json::from_str(go).unwrap();
        assert!(read.nodes[0].platforms.is_empty() && read.nodes[0].files.is_empty());
    }
}
