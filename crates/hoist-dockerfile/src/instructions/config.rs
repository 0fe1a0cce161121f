//! Instructions that only set image configuration: ENV, LABEL, MAINTAINER, EXPOSE, VOLUME,
//! USER, WORKDIR and STOPSIGNAL.

use super::flags::Flags;
use super::{at_least_one_argument, exactly_one_argument, expand_all};
use crate::ast::Node;
use crate::Result;

/// One `key=value` (or legacy `key value`) pair of ENV or LABEL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
    /// True for the legacy `ENV key value` form (no `=`).
    pub no_delim: bool,
}

impl KeyValue {
    fn expand<F>(&self, expand: &F) -> Result<KeyValue>
    where
        F: Fn(&str) -> Result<String>,
    {
        Ok(KeyValue {
            key: expand(&self.key)?,
            value: expand(&self.value)?,
            no_delim: self.no_delim,
        })
    }
}

/// `ENV k=v ...` or `ENV k v`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Env {
    pub vars: Vec<KeyValue>,
}

/// `LABEL k=v ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    pub labels: Vec<KeyValue>,
}

/// `MAINTAINER name` (deprecated; sets the `author` field).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Maintainer {
    pub maintainer: String,
}

/// `EXPOSE 80 443/tcp ...`; ports are kept sorted as BuildKit sorts them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expose {
    pub ports: Vec<String>,
}

/// `VOLUME /a /b` or `VOLUME ["/a", "/b"]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    pub volumes: Vec<String>,
}

/// `USER name[:group]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub user: String,
}

/// `WORKDIR /path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workdir {
    pub path: String,
}

/// `STOPSIGNAL SIGTERM`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopSignal {
    pub signal: String,
}

impl Env {
    /// Expands every key and value.
    pub fn expand<F>(&self, expand: &F) -> Result<Env>
    where
        F: Fn(&str) -> Result<String>,
    {
        let vars = self
            .vars
            .iter()
            .map(|kv| kv.expand(expand))
            .collect::<Result<_>>()?;
        Ok(Env { vars })
    }
}

impl Label {
    /// Expands every key and value.
    pub fn expand<F>(&self, expand: &F) -> Result<Label>
    where
        F: Fn(&str) -> Result<String>,
    {
        let labels = self
            .labels
            .iter()
            .map(|kv| kv.expand(expand))
            .collect::<Result<_>>()?;
        Ok(Label { labels })
    }
}

impl Expose {
    /// Expands every port word (one word may expand to several ports, split later).
    pub fn expand<F>(&self, expand: &F) -> Result<Expose>
    where
        F: Fn(&str) -> Result<String>,
    {
        Ok(Expose {
            ports: expand_all(&self.ports, expand)?,
        })
    }
}

impl Volume {
    /// Expands every path.
    pub fn expand<F>(&self, expand: &F) -> Result<Volume>
    where
        F: Fn(&str) -> Result<String>,
    {
        Ok(Volume {
            volumes: expand_all(&self.volumes, expand)?,
        })
    }
}

impl User {
    /// Expands the user.
    pub fn expand<F>(&self, expand: &F) -> Result<User>
    where
        F: Fn(&str) -> Result<String>,
    {
        Ok(User {
            user: expand(&self.user)?,
        })
    }
}

impl Workdir {
    /// Expands the path.
    pub fn expand<F>(&self, expand: &F) -> Result<Workdir>
    where
        F: Fn(&str) -> Result<String>,
    {
        Ok(Workdir {
            path: expand(&self.path)?,
        })
    }
}

impl StopSignal {
    /// Expands the signal.
    pub fn expand<F>(&self, expand: &F) -> Result<StopSignal>
    where
        F: Fn(&str) -> Result<String>,
    {
        Ok(StopSignal {
            signal: expand(&self.signal)?,
        })
    }
}

/// Reads the `key value sep` triples the parser makes of ENV and LABEL arguments.
fn key_values(args: &[String], keyword: &str) -> Result<Vec<KeyValue>, String> {
    if args.is_empty() {
        return Err(at_least_one_argument(keyword));
    }
    if args.len() % 3 != 0 {
        return Err(format!("Bad input to {keyword}, too many arguments"));
    }
    args.chunks(3)
        .map(|triple| {
            if triple[0].is_empty() {
                return Err(format!("{keyword} names can not be blank"));
            }
            Ok(KeyValue {
                key: triple[0].clone(),
                value: triple[1].clone(),
                no_delim: triple[2].is_empty(),
            })
        })
        .collect()
}

pub(super) fn parse_env(node: &Node) -> Result<Env, String> {
    Flags::parse(&node.flags, &[])?;
    Ok(Env {
        vars: key_values(&node.args, "ENV")?,
    })
}

pub(super) fn parse_label(node: &Node) -> Result<Label, String> {
    Flags::parse(&node.flags, &[])?;
    Ok(Label {
        labels: key_values(&node.args, "LABEL")?,
    })
}

pub(super) fn parse_maintainer(node: &Node) -> Result<Maintainer, String> {
    let maintainer = single_argument(node, "MAINTAINER")?;
    Flags::parse(&node.flags, &[])?;
    Ok(Maintainer { maintainer })
}

pub(super) fn parse_expose(node: &Node) -> Result<Expose, String> {
    if node.args.is_empty() {
        return Err(at_least_one_argument("EXPOSE"));
    }
    Flags::parse(&node.flags, &[])?;
    let mut ports = node.args.clone();
    ports.sort();
    Ok(Expose { ports })
}

pub(super) fn parse_volume(node: &Node) -> Result<Volume, String> {
    if node.args.is_empty() {
        return Err(at_least_one_argument("VOLUME"));
    }
    Flags::parse(&node.flags, &[])?;
    let volumes = node
        .args
        .iter()
        .map(|v| {
            let v = v.trim();
            if v.is_empty() {
                Err("VOLUME specified can not be an empty string".to_string())
            } else {
                Ok(v.to_string())
            }
        })
        .collect::<Result<_, String>>()?;
    Ok(Volume { volumes })
}

pub(super) fn parse_user(node: &Node) -> Result<User, String> {
    let user = single_argument(node, "USER")?;
    Flags::parse(&node.flags, &[])?;
    Ok(User { user })
}

pub(super) fn parse_workdir(node: &Node) -> Result<Workdir, String> {
    let path = single_argument(node, "WORKDIR")?;
    Flags::parse(&node.flags, &[])?;
    Ok(Workdir { path })
}

/// STOPSIGNAL takes no flags; like BuildKit, flag words are ignored rather than rejected.
pub(super) fn parse_stopsignal(node: &Node) -> Result<StopSignal, String> {
    Ok(StopSignal {
        signal: single_argument(node, "STOPSIGNAL")?,
    })
}

fn single_argument(node: &Node, keyword: &str) -> Result<String, String> {
    match node.args.as_slice() {
        [one] => Ok(one.clone()),
        _ => Err(exactly_one_argument(keyword)),
    }
}
