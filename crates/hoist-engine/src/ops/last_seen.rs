//! Why a step missed the cache: a "last seen" record per step under `<engine>/steps/`,
//! compared with what the step is made of now ([`hoist_solver::KeyFacts`] and the op's own
//! facts) when the solver asks [`EngineOp`]'s `explain_miss`.
//!
//! A step's identity ([`identity`]) survives changes of its inputs: its kind, platform,
//! Dockerfile lines and progress name (an image's pinned digest left out); a local source's
//! is its definition (context name and patterns). Its record holds the last cache key and
//! what the key was made of: the definition digest, each input's share, an exec's
//! environment (each value only as a digest: build args and env may hold secrets) and
//! command digest, an image source's resolved digest, and for a local source a digest per
//! selected file. Records are written with `Durability::Volatile` (a lost one only costs
//! an explanation) and only when they change, so a cached rebuild reads one small file per
//! step and writes nothing.
//!
//! A local source diffs its files while computing its key (it does so every build) and
//! leaves the changed paths in the build's [`MissContext`], where the copies that read
//! it find them by its name.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};

use hoist_content::Durability;
use hoist_dockerfile::dockerignore::PatternMatcher;
use hoist_graph::{FileAction, Op, Source};
use hoist_solver::{Forced, KeyFacts, KeyShare};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::EngineOp;

/// How many changed paths a reason names before "and N more".
const SHOWN_PATHS: usize = 5;

/// What a build's explanations share: whether it is a `--no-cache` build (the frontend
/// marks every vertex `ignore_cache` then, as it does for `--no-cache-filter`), and the
/// paths each local source found changed since its last record, by the source vertex's
/// name.
#[derive(Debug, Default)]
pub(crate) struct MissContext {
    no_cache: bool,
    changes: Mutex<HashMap<String, Vec<String>>>,
}

impl MissContext {
    pub(crate) fn new(no_cache: bool) -> MissContext {
        MissContext {
            no_cache,
            changes: Mutex::default(),
        }
    }

    fn set(&self, source: &str, changed: Vec<String>) {
        let mut map = self.changes.lock().unwrap_or_else(PoisonError::into_inner);
        map.insert(source.to_owned(), changed);
    }

    fn get(&self, source: &str) -> Option<Vec<String>> {
        let map = self.changes.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(source).cloned()
    }
}

/// What a step was last made of.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct LastSeen {
    /// Empty until the step's key was first computed.
    #[serde(default)]
    key: String,
    #[serde(default)]
    digest: String,
    /// Each input's share: `key:<digest>` or `content:<digest>`.
    #[serde(default)]
    inputs: Vec<String>,
    /// An exec's environment: name → digest of the value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    env: BTreeMap<String, String>,
    /// An exec's command line, digested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    command: Option<String>,
    /// An image source's resolved digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    image: Option<String>,
    /// A local source's key (the digest of its selected files) when they were last listed
    /// beside the record ([`local_files`]).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    files_digest: String,
}

/// A short digest of `bytes` (64 bits: enough to tell a change, too short to guess from).
fn short(bytes: &[u8]) -> String {
    hex::encode(&Sha256::digest(bytes)[..8])
}

/// The stable identity of `vertex`'s step.
fn identity(vertex: &hoist_graph::Vertex) -> String {
    let mut hash = Sha256::new();
    hash.update(b"hoist-engine/step/v1\0");
    if let Op::Source(Source::Local { .. }) = &vertex.op {
        hash.update(vertex.digest.to_string().as_bytes());
        return hex::encode(hash.finalize());
    }
    hash.update(vertex.op.kind().as_bytes());
    hash.update(b"\0");
    if let Some(platform) = &vertex.platform {
        hash.update(platform.format().as_bytes());
    }
    hash.update(b"\0");
    if let Some(lines) = vertex.location {
        hash.update(format!("{}-{}", lines.start, lines.end).as_bytes());
    }
    hash.update(b"\0");
    hash.update(without_pin(&vertex.name).as_bytes());
    hex::encode(hash.finalize())
}

/// `name` without an `@sha256:…` pin (a base image's name shows the digest it resolved to).
fn without_pin(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(at) = rest.find("@sha256:") {
        out.push_str(&rest[..at]);
        let tail = &rest[at + "@sha256:".len()..];
        let hex_len = tail.bytes().take_while(u8::is_ascii_hexdigit).count();
        rest = &tail[hex_len..];
    }
    out.push_str(rest);
    out
}

fn record_path(op: &EngineOp) -> PathBuf {
    op.worker
        .engine_dir()
        .join("steps")
        .join(identity(&op.vertex))
}

fn load(path: &std::path::Path) -> Option<LastSeen> {
    read_json(path)
}

/// A record file's JSON; none when it is missing or unreadable.
fn read_json<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> Option<T> {
    let bytes = std::fs::read(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Replaces the record when it changed; a record that cannot be written only costs a
/// later explanation.
fn store(path: &std::path::Path, old: Option<&LastSeen>, new: &LastSeen) {
    if old != Some(new) {
        write_json(path, new);
    }
}

/// Replaces a record file with `value` (volatile: a lost one only costs an explanation);
/// whether it was written.
fn write_json(path: &std::path::Path, value: &impl Serialize) -> bool {
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    serde_json::to_vec(value).is_ok_and(|bytes| {
        hoist_content::write_atomic_with(path, &bytes, Durability::Volatile).is_ok()
    })
}

/// `record` updated with the key `facts` describe and the op's own facts.
fn updated(op: &EngineOp, record: Option<&LastSeen>, facts: &KeyFacts) -> LastSeen {
    let mut new = record.cloned().unwrap_or_default();
    new.key = facts.key.to_string();
    new.digest = facts.digest.to_string();
    new.inputs = facts
        .inputs
        .iter()
        .map(|input| match input.share {
            KeyShare::Key(key) => format!("key:{key}"),
            KeyShare::Content(digest) => format!("content:{digest}"),
        })
        .collect();
    match &op.vertex.op {
        Op::Exec(exec) => {
            new.env = exec
                .env
                .iter()
                .map(|pair| match pair.split_once('=') {
                    Some((name, value)) => (name.to_owned(), short(value.as_bytes())),
                    None => (pair.clone(), String::new()),
                })
                .collect();
            new.command = Some(short(exec.args.join("\0").as_bytes()));
        }
        Op::Source(Source::Image { reference, .. }) => {
            new.image = reference.split_once('@').map(|(_, pin)| pin.to_owned());
        }
        _ => {}
    }
    new
}

/// Notes a key with a result (a cache hit, or a run saved): the record follows the key the
/// step was last built or used with, so a failed run leaves it as it was.
pub(super) fn key_used(op: &EngineOp, facts: &KeyFacts) {
    let path = record_path(op);
    let old = load(&path);
    if old.as_ref().is_some_and(|o| o.key == facts.key.to_string()) {
        return;
    }
    store(&path, old.as_ref(), &updated(op, old.as_ref(), facts));
}

/// Why the step missed the cache (against the record of its last result; the new record
/// is kept by [`key_used`] once this run's result is saved).
pub(super) fn explain_miss(op: &EngineOp, facts: &KeyFacts) -> String {
    let path = record_path(op);
    let old = load(&path);
    let new = updated(op, old.as_ref(), facts);
    reason(op, old.as_ref().filter(|o| !o.key.is_empty()), &new, facts)
}

fn reason(op: &EngineOp, old: Option<&LastSeen>, new: &LastSeen, facts: &KeyFacts) -> String {
    match facts.forced {
        Some(Forced::NoCache) => return "--no-cache".to_owned(),
        Some(Forced::IgnoreCache) if op.changes.no_cache => return "--no-cache".to_owned(),
        Some(Forced::IgnoreCache) => return "--no-cache-filter".to_owned(),
        Some(Forced::Input(i)) => {
            if let Some(input) = facts.inputs.get(i) {
                return format!("parent step ran: {}", input.name);
            }
        }
        None => {}
    }
    let Some(old) = old else {
        return "no record of an earlier build of this step".to_owned();
    };
    if old.key == new.key {
        return "no cached result for the same inputs (pruned)".to_owned();
    }
    let mut reasons = Vec::new();
    if old.digest != new.digest {
        reasons.extend(definition_reason(op, old, new));
    }
    for (index, input) in facts.inputs.iter().enumerate() {
        if old.inputs.get(index) == new.inputs.get(index) {
            continue;
        }
        reasons.push(match input.share {
            KeyShare::Content(_) => content_reason(op, index, &input.name),
            KeyShare::Key(_) if input.ran => format!("parent step ran: {}", input.name),
            KeyShare::Key(_) => format!("parent step changed: {}", input.name),
        });
    }
    if reasons.is_empty() {
        reasons.push("step definition changed".to_owned());
    }
    reasons.join("; ")
}

/// Why the op's own share of the key changed, when the op can tell more than that it did.
fn definition_reason(op: &EngineOp, old: &LastSeen, new: &LastSeen) -> Option<String> {
    match &op.vertex.op {
        Op::Source(Source::Image { .. }) if old.image != new.image => {
            let pin = |p: &Option<String>| {
                p.as_deref()
                    .map(|d| d.chars().take("sha256:".len() + 12).collect::<String>())
                    .unwrap_or_else(|| "none".to_owned())
            };
            Some(format!(
                "base image digest changed: {} -> {}",
                pin(&old.image),
                pin(&new.image)
            ))
        }
        Op::Source(Source::Local { .. }) => Some(
            match op.changes.get(&op.vertex.name).filter(|c| !c.is_empty()) {
                Some(changed) => format!("context files changed: {}", list(&changed)),
                None => "context files changed".to_owned(),
            },
        ),
        Op::Exec(_) => {
            let mut names: Vec<&str> = old
                .env
                .iter()
                .filter(|(name, value)| new.env.get(*name) != Some(value))
                .map(|(name, _)| name.as_str())
                .chain(
                    new.env
                        .keys()
                        .filter(|name| !old.env.contains_key(*name))
                        .map(String::as_str),
                )
                .collect();
            names.sort_unstable();
            names.dedup();
            if !names.is_empty() {
                Some(format!("build arg or env changed: {}", names.join(", ")))
            } else if old.command != new.command {
                Some("command changed".to_owned())
            } else {
                None
            }
        }
        _ => None,
    }
}

/// Why a content-keyed input's share changed: the context files the op's copies read.
fn content_reason(op: &EngineOp, index: usize, input: &str) -> String {
    let changed = op.changes.get(input).unwrap_or_default();
    let mut sources = Vec::new();
    if let Op::File(file) = &op.vertex.op {
        for action in &file.actions {
            if let FileAction::Copy(copy) = action {
                if copy.src == index {
                    sources.push(copy.src_path.clone());
                }
            }
        }
    }
    let read: Vec<String> = changed
        .into_iter()
        .filter(|path| sources.iter().any(|src| selects(src, path)))
        .collect();
    if read.is_empty() {
        format!("files read from {input} changed")
    } else {
        format!("context files changed: {}", list(&read))
    }
}

/// Whether a copy of `src` reads `path` (a path relative to the source's root).
fn selects(src: &str, path: &str) -> bool {
    let src = src.trim_start_matches('/').trim_start_matches("./");
    let src = src.trim_end_matches('/');
    if src.is_empty() || src == "." {
        return true;
    }
    PatternMatcher::new([src])
        .and_then(|m| m.matches_or_parent_matches(path))
        .unwrap_or(true)
}

/// The first few of `paths`, then how many more.
fn list(paths: &[String]) -> String {
    let mut text = paths
        .iter()
        .take(SHOWN_PATHS)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    if paths.len() > SHOWN_PATHS {
        text.push_str(&format!(" and {} more", paths.len() - SHOWN_PATHS));
    }
    text
}

/// For a local source whose key `digest` is known without its files: true (and no files
/// changed, for the build's [`MissContext`]) when that is the key it had when last listed;
/// otherwise the caller lists its files for [`local_files`].
pub(super) fn local_files_known(op: &EngineOp, digest: &hoist_solver::Digest) -> bool {
    let known = load(&record_path(op)).is_some_and(|o| o.files_digest == digest.to_string());
    if known {
        op.changes.set(&op.vertex.name, Vec::new());
    }
    known
}

/// For a local source that computed its key `digest`: when the files differ from those it
/// had when last listed, compares `files()` (path → entry digest) with that list and leaves
/// the changed paths in the build's [`MissContext`], then keeps the new list.
///
/// The list lives beside the record (`<record>.files`), so that a build whose context did
/// not change reads neither it nor builds it: the record names the key it belongs to.
pub(super) fn local_files(
    op: &EngineOp,
    digest: &hoist_solver::Digest,
    files: impl FnOnce() -> BTreeMap<String, String>,
) {
    let path = record_path(op);
    let old = load(&path);
    let digest = digest.to_string();
    if old.as_ref().is_some_and(|o| o.files_digest == digest) {
        op.changes.set(&op.vertex.name, Vec::new());
        return;
    }
    let files = files();
    let list_path = path.with_extension("files");
    let listed: Option<BTreeMap<String, String>> = read_json(&list_path);
    let mut changed: Vec<String> = Vec::new();
    if let Some(listed) = &listed {
        changed.extend(
            files
                .iter()
                .filter(|(p, d)| listed.get(*p) != Some(d))
                .map(|(p, _)| p.clone()),
        );
        changed.extend(listed.keys().filter(|p| !files.contains_key(*p)).cloned());
        changed.sort();
    }
    op.changes.set(&op.vertex.name, changed);
    // The list first: a record naming a key whose list was not written would hide a change.
    if write_json(&list_path, &files) {
        let mut new = old.clone().unwrap_or_default();
        new.files_digest = digest;
        store(&path, old.as_ref(), &new);
    }
}

/// The digest of one context entry, as the files list holds it (hex): 64 bits of its
/// sha256.
pub(super) fn entry_digest(entry: Sha256) -> [u8; 8] {
    let mut short = [0; 8];
    short.copy_from_slice(&entry.finalize()[..8]);
    short
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pinned_image_name_keeps_its_identity_across_digests() {
        let a = format!(
            "[1/2] FROM docker.io/library/busybox:latest@sha256:{}",
            "a".repeat(64)
        );
        let b = format!(
            "[1/2] FROM docker.io/library/busybox:latest@sha256:{}",
            "b".repeat(64)
        );
        assert_eq!(without_pin(&a), without_pin(&b));
        assert_eq!(
            without_pin(&a),
            "[1/2] FROM docker.io/library/busybox:latest"
        );
    }

    #[test]
    fn copies_select_their_sources_and_what_is_below() {
        assert!(selects(".", "a/b"));
        assert!(selects("/", "a"));
        assert!(selects("src", "src/main.rs"));
        assert!(selects("./src/", "src/main.rs"));
        assert!(!selects("src", "Cargo.toml"));
        assert!(selects("*.toml", "Cargo.toml"));
    }

    #[test]
    fn long_lists_say_how_many_more() {
        let paths: Vec<String> = (1..=7).map(|i| format!("f{i}")).collect();
        assert_eq!(list(&paths), "f1, f2, f3, f4, f5 and 2 more");
        assert_eq!(list(&paths[..2]), "f1, f2");
    }
}
