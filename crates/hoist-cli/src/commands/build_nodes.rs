//! `hoist build --builder B --platform a,b,c --push` on a builder of several `remote` or
//! `docker-container` nodes (each reached through its own [`Dial`]): each platform goes to
//! the node that builds it natively, each node builds and pushes its platforms by digest,
//! and the client joins their images into one index pushed to every tag (buildx's
//! multi-node build).
//!
//! Beyond buildx, `-o type=oci|local|tar` are merged on the client instead of refused: each
//! node exports its share through its session into a temp directory next to the
//! destination, then hoist-builder's `merge` joins them — one OCI layout with one index of
//! every node's manifests, or a directory (tar) with one subdirectory per platform.
//!
//! Which node builds a platform, as buildx: the first node whose `--platform` list has it;
//! else the first node whose workers (`ListWorkers`) report it; else the first node
//! (emulated there). Every node a build needs is connected to before any is asked to build,
//! so a node that cannot be reached fails the build at once, naming it, and nothing is
//! pushed. A node whose build fails stops the others; no tag is pushed then either (its
//! images pushed by digest stay unnamed in the registry).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context as _};
use hoist_engine::progress::{Digest, Event};
use hoist_images::imagetools::{self, CreateRequest};
use hoist_oci::{Platform, Reference};
use hoist_proto::control::control_client::ControlClient;
use hoist_proto::control::ListWorkersRequest;
use hoist_proto::tonic::transport::Channel;

use hoist_session::Output;

use super::build_remote::{self, Dial};
use super::{block_on, Context};
use crate::cli::BuildArgs;
use crate::progress;

/// How long a node may take to say which platforms its workers run.
const LIST_WORKERS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// One node of the builder, as the build reaches it.
#[derive(Clone)]
pub struct NodeTarget {
    pub name: String,
    /// How the client reaches it (an address, or a container's `dial-stdio`).
    pub dial: Arc<Dial>,
    /// The platforms the node declared (`create --platform`).
    pub platforms: Vec<Platform>,
}

impl NodeTarget {
    fn describe(&self) -> String {
        format!("node {} ({})", self.name, self.dial.label())
    }
}

/// What the nodes' results become.
enum Merge {
    /// Each node pushes by digest; one index is pushed to the tags.
    Push {
        attrs: HashMap<String, String>,
        names: Vec<Reference>,
    },
    /// Each node exports its share here; the shares are joined into `output`.
    Files {
        kind: String,
        attrs: HashMap<String, String>,
        output: Output,
        temp: tempfile::TempDir,
    },
}

/// The platforms the build asks for (`--platform`, `local` as this machine's), normalized,
/// each once.
fn requested_platforms(args: &BuildArgs) -> anyhow::Result<Vec<Platform>> {
    let mut platforms = Vec::new();
    for item in (args.platforms.iter())
        .flat_map(|list| list.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        let platform = if item == "local" {
            Platform::host()
        } else {
            Platform::parse(item)
                .map(|p| p.normalize())
                .with_context(|| format!("invalid platform {item:?}"))?
        };
        if !platforms.contains(&platform) {
            platforms.push(platform);
        }
    }
    Ok(platforms)
}

/// Runs the build on `nodes` of the builder `builder`.
pub fn run(
    ctx: &Context,
    args: &BuildArgs,
    builder: &str,
    nodes: &[NodeTarget],
) -> anyhow::Result<ExitCode> {
    if nodes.is_empty() {
        bail!("builder {builder:?} has no nodes");
    }
    let platforms = requested_platforms(args)?;
    // Declared platforms decide without asking anyone.
    let declared: Vec<Option<usize>> = platforms
        .iter()
        .map(|p| {
            nodes
                .iter()
                .position(|n| n.platforms.iter().any(|d| d.normalize() == *p))
        })
        .collect();
    // Platforms nobody declared go to a node whose workers report them, else the first.
    let assigned = match block_on(async {
        let mut channels: Vec<Option<Channel>> = vec![None; nodes.len()];
        let mut assigned = Vec::with_capacity(platforms.len());
        for (platform, node) in platforms.iter().zip(&declared) {
            assigned.push(match node {
                Some(index) => *index,
                None => reported_by(nodes, &mut channels, platform)
                    .await?
                    .unwrap_or(0),
            });
        }
        anyhow::Ok(assigned)
    })? {
        Ok(assigned) => assigned,
        Err(err) => {
            eprintln!("ERROR: {err:#}");
            return Ok(ExitCode::FAILURE);
        }
    };
    // Nothing to spread: the whole build goes to one node as a single-node build does.
    let first = assigned.first().copied().unwrap_or(0);
    if assigned.iter().all(|&index| index == first) {
        let node = &nodes[first];
        return build_remote::run_on(args, &node.dial);
    }
    let merge = merge_of(args, builder, platforms.len())?;
    let mode = super::build::progress_mode(args)?;
    let remote = ctx.remote(&[])?;
    let outcome = block_on(async {
        // Every node the build needs, connected first: one that is down fails the build
        // before anything is pushed or exported.
        let mut channels: Vec<Option<Channel>> = vec![None; nodes.len()];
        for &index in &assigned {
            if channels[index].is_none() {
                channels[index] = Some(connect(&nodes[index]).await?);
            }
        }
        let mut shares = Vec::new();
        let mut jobs = Vec::new();
        let (events, renderer) = progress::start(mode);
        for (index, node) in nodes.iter().enumerate() {
            let mine: Vec<&Platform> = (platforms.iter().zip(&assigned))
                .filter(|(_, n)| **n == index)
                .map(|(p, _)| p)
                .collect();
            let Some(channel) = channels[index].clone().filter(|_| !mine.is_empty()) else {
                continue;
            };
            let list = mine
                .iter()
                .map(|p| p.format())
                .collect::<Vec<_>>()
                .join(",");
            let (mut build, share) = match &merge {
                Merge::Push { attrs, names } => {
                    let mut build = build_remote::NodeBuild::new(args)?;
                    let mut attrs = attrs.clone();
                    attrs.insert("name".to_owned(), repository(names)?.to_string());
                    attrs.insert("push-by-digest".to_owned(), "true".to_owned());
                    build.request.exporters = vec![hoist_proto::control::Exporter {
                        r#type: "image".to_owned(),
                        attrs,
                    }];
                    (build, None)
                }
                Merge::Files {
                    kind, attrs, temp, ..
                } => {
                    // The node's share comes back into the temp dir: an OCI layout tar, or
                    // a local tree (a tar output is made on the client from the merge).
                    let (node_kind, path) = if kind == "oci" {
                        ("oci", temp.path().join(format!("{}.tar", node.name)))
                    } else {
                        ("local", temp.path().join(&node.name))
                    };
                    let mut node_args = args.clone();
                    node_args.outputs = vec![format!(
                        "type={node_kind},\"dest={}\"",
                        path.display().to_string().replace('"', "\"\"")
                    )];
                    node_args.push = false;
                    node_args.load = false;
                    let mut build = build_remote::NodeBuild::new(&node_args)?;
                    let mut attrs = attrs.clone();
                    attrs.remove("tar");
                    build.request.exporters = vec![hoist_proto::control::Exporter {
                        r#type: node_kind.to_owned(),
                        attrs,
                    }];
                    let share = hoist_builder::merge::NodeShare {
                        node: node.name.clone(),
                        path,
                        platforms: mine.iter().map(|p| (*p).clone()).collect(),
                    };
                    (build, Some(share))
                }
            };
            shares.extend(share);
            build
                .request
                .frontend_attrs
                .insert("platform".to_owned(), list.clone());
            let pushes = matches!(merge, Merge::Push { .. });
            let label = (mine.len() == 1).then(|| list.clone());
            let node_events = node_events(&node.name, label, events.clone());
            let what = format!("{} building {list}", node.describe());
            jobs.push(async move {
                let client = ControlClient::new(channel.clone());
                let (request, _session) = build
                    .start(client)
                    .await
                    .with_context(|| format!("{what}: cannot open the session"))?;
                let response = build_remote::solve(channel, request, node_events)
                    .await
                    .map_err(|status| {
                        anyhow::anyhow!("{what} failed: {}", build_remote::status_text(&status))
                    })?;
                if !pushes {
                    return anyhow::Ok(None);
                }
                let metadata = build_remote::metadata(&response)?;
                let digest = metadata
                    .descriptor
                    .map(|d| d.digest)
                    .or(metadata.digest)
                    .with_context(|| format!("{what}: the node answered no image digest"))?;
                anyhow::Ok(Some(digest))
            });
        }
        drop(events);
        // The first failure drops the other builds, which cancels them on their nodes.
        let digests = try_join_all(jobs).await;
        let _ = renderer.await;
        let digests = digests?;
        match &merge {
            Merge::Push { names, .. } => {
                let repository = repository(names)?;
                let request = CreateRequest {
                    tags: names.iter().map(ToString::to_string).collect(),
                    sources: digests
                        .iter()
                        .flatten()
                        .map(|d| repository.with_digest(d.clone()).to_string())
                        .collect(),
                    ..CreateRequest::default()
                };
                let created = imagetools::create(&remote, &request)
                    .await
                    .context("cannot join the nodes' images into one index")?;
                for tag in &created.pushed {
                    eprintln!("pushing {} to {tag}", created.descriptor.digest);
                }
                anyhow::Ok(Some(created.descriptor))
            }
            Merge::Files {
                kind,
                attrs,
                output,
                temp,
            } => {
                let names = file_names(args, attrs)?;
                merge_files(kind, attrs, output, temp.path(), &shares, &names)
            }
        }
    })?;
    let root = match outcome {
        Ok(root) => root,
        Err(err) => {
            eprintln!("ERROR: {err:#}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let Some(root) = root else {
        return Ok(ExitCode::SUCCESS);
    };
    let metadata = hoist_export::ExportMetadata {
        config_digest: None,
        descriptor: Some(root.clone()),
        digest: Some(root.digest.clone()),
        image_name: match &merge {
            Merge::Push { names, .. } => Some(
                names
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            Merge::Files { .. } => None,
        },
    };
    if let Some(path) = &args.metadata_file {
        std::fs::write(path, metadata.to_json()?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let id = root.digest.to_string();
    if let Some(path) = &args.iidfile {
        std::fs::write(path, &id).with_context(|| format!("cannot write {}", path.display()))?;
    }
    if args.quiet {
        super::print(format!("{id}\n"))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The repository the nodes push their images to by digest: the first name's.
fn repository(names: &[Reference]) -> anyhow::Result<Reference> {
    match names.first() {
        Some(name) => Ok(name.without_tag()),
        None => bail!("tag is needed when pushing to registry"),
    }
}

/// What the build's output asks of the nodes: a push, or files joined here.
fn merge_of(args: &BuildArgs, builder: &str, count: usize) -> anyhow::Result<Merge> {
    let exporter = build_remote::node_exporter(args)?;
    match exporter {
        Some((exporter, _)) if exporter.attrs.get("push").map(String::as_str) == Some("true") => {
            let names = exporter.attrs["name"]
                .split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(|n| {
                    Reference::parse_normalized(n).with_context(|| format!("invalid name {n:?}"))
                })
                .collect::<anyhow::Result<_>>()?;
            Ok(Merge::Push {
                attrs: exporter.attrs,
                names,
            })
        }
        Some((exporter, Some(output)))
            if matches!(exporter.r#type.as_str(), "oci" | "local" | "tar") =>
        {
            // The shares land next to the destination (one file system: moved, not
            // copied), or in the temp dir for stdout.
            let parent = match &output {
                Output::Directory(dest) | Output::Stream(Some(dest)) => {
                    let parent = dest.parent().filter(|p| !p.as_os_str().is_empty());
                    parent.map_or_else(|| PathBuf::from("."), Path::to_owned)
                }
                Output::Stream(None) => std::env::temp_dir(),
            };
            std::fs::create_dir_all(&parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
            let temp = tempfile::Builder::new()
                .prefix(".hoist-nodes-")
                .tempdir_in(&parent)
                .with_context(|| format!("cannot create a temp dir in {}", parent.display()))?;
            Ok(Merge::Files {
                kind: exporter.r#type,
                attrs: exporter.attrs,
                output,
                temp,
            })
        }
        _ => bail!(
            "a build of {count} platforms on builder {builder:?} spreads over its nodes and \
             needs --push (each node pushes its images by digest and hoist joins them into one \
             index) or -o type=oci|local|tar (the nodes' results joined on this machine)"
        ),
    }
}

/// The names an OCI output gives its image: `name=` of the output, else the tags.
fn file_names(args: &BuildArgs, attrs: &HashMap<String, String>) -> anyhow::Result<Vec<Reference>> {
    let names: Vec<&str> = match attrs.get("name") {
        Some(list) => list.split(',').collect(),
        None => args.tags.iter().map(String::as_str).collect(),
    };
    names
        .into_iter()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(|n| Reference::parse_normalized(n).with_context(|| format!("invalid name {n:?}")))
        .collect()
}

/// Joins the nodes' shares into the output: an OCI layout (tar, directory with `tar=false`,
/// or stdout), a directory per platform, or its tar. Files are replaced only when complete.
fn merge_files(
    kind: &str,
    attrs: &HashMap<String, String>,
    output: &Output,
    temp: &Path,
    shares: &[hoist_builder::merge::NodeShare],
    names: &[Reference],
) -> anyhow::Result<Option<hoist_oci::Descriptor>> {
    use hoist_builder::merge;
    match (kind, output) {
        ("local", Output::Directory(dest)) => {
            merge::merge_local(shares, dest)?;
            Ok(None)
        }
        ("oci", Output::Stream(dest)) if attrs.get("tar").map(String::as_str) == Some("false") => {
            let Some(dest) = dest else {
                bail!("dest is required for an oci output with tar=false");
            };
            let mut writer = hoist_oci::OciLayoutWriter::create_dir(dest)
                .with_context(|| format!("cannot write {}", dest.display()))?;
            let root = merge::merge_oci(shares, names, &mut writer)?;
            writer
                .finish()
                .with_context(|| format!("cannot write {}", dest.display()))?;
            Ok(Some(root))
        }
        ("oci", Output::Stream(dest)) => {
            let mut root = None;
            write_stream(dest.as_deref(), temp, |out| {
                let mut writer = hoist_oci::OciLayoutWriter::tar(out)?;
                root = Some(merge::merge_oci(shares, names, &mut writer)?);
                Ok(writer.finish_tar()?)
            })?;
            Ok(root)
        }
        ("tar", Output::Stream(dest)) => {
            let tree = temp.join("merged");
            merge::merge_local(shares, &tree)?;
            write_stream(dest.as_deref(), temp, |out| {
                Ok(merge::tar_tree(&tree, out)?)
            })?;
            Ok(None)
        }
        (kind, _) => bail!("the {kind} output cannot be merged from several nodes"),
    }
}

/// Writes a stream output: into a temp file renamed over `dest` once complete, or stdout.
fn write_stream(
    dest: Option<&Path>,
    temp: &Path,
    write: impl FnOnce(Box<dyn std::io::Write>) -> anyhow::Result<Box<dyn std::io::Write>>,
) -> anyhow::Result<()> {
    match dest {
        None => {
            let mut out = write(Box::new(std::io::BufWriter::new(std::io::stdout().lock())))?;
            out.flush().context("cannot write to stdout")?;
        }
        Some(dest) => {
            let file = tempfile::NamedTempFile::new_in(temp)
                .with_context(|| format!("cannot create a temp file in {}", temp.display()))?;
            let handle = file
                .reopen()
                .with_context(|| format!("cannot open {}", file.path().display()))?;
            let mut out = write(Box::new(std::io::BufWriter::new(handle)))?;
            out.flush()
                .with_context(|| format!("cannot write {}", file.path().display()))?;
            drop(out);
            file.persist(dest)
                .with_context(|| format!("cannot write {}", dest.display()))?;
        }
    }
    Ok(())
}

/// Runs every job; the first error wins and aborts the rest. The results in job order.
async fn try_join_all<F, T>(jobs: Vec<F>) -> anyhow::Result<Vec<T>>
where
    F: std::future::Future<Output = anyhow::Result<T>> + Send + 'static,
    T: Send + 'static,
{
    let mut set = tokio::task::JoinSet::new();
    let count = jobs.len();
    for (index, job) in jobs.into_iter().enumerate() {
        set.spawn(async move { (index, job.await) });
    }
    let mut out: Vec<Option<T>> = (0..count).map(|_| None).collect();
    while let Some(joined) = set.join_next().await {
        let (index, result) = joined.context("a node's build task failed")?;
        // Returning drops the set, which aborts the builds still running.
        out[index] = Some(result?);
    }
    Ok(out.into_iter().flatten().collect())
}

/// A channel to `node`, or an error naming it.
async fn connect(node: &NodeTarget) -> anyhow::Result<Channel> {
    let platforms = if node.platforms.is_empty() {
        String::new()
    } else {
        let list: Vec<String> = node.platforms.iter().map(Platform::format).collect();
        format!(", platforms {}", list.join(","))
    };
    node.dial.connect().await.with_context(|| {
        format!(
            "node {} ({}{platforms}) cannot be reached",
            node.name,
            node.dial.label()
        )
    })
}

/// The first node whose workers report `platform` (buildx's rule for a platform no node
/// declared), connecting to the nodes on the way.
async fn reported_by(
    nodes: &[NodeTarget],
    channels: &mut [Option<Channel>],
    platform: &Platform,
) -> anyhow::Result<Option<usize>> {
    for (index, node) in nodes.iter().enumerate() {
        if channels[index].is_none() {
            channels[index] = Some(connect(node).await?);
        }
        let Some(channel) = channels[index].clone() else {
            continue;
        };
        // A node that accepts connections but does not answer fails the build, named.
        let answer = tokio::time::timeout(
            LIST_WORKERS_TIMEOUT,
            ControlClient::new(channel).list_workers(ListWorkersRequest::default()),
        )
        .await
        .map_err(|_| {
            anyhow::anyhow!(
                "{}: ListWorkers did not answer within {} s",
                node.describe(),
                LIST_WORKERS_TIMEOUT.as_secs()
            )
        })?;
        let workers = answer
            .map_err(|status| {
                anyhow::anyhow!("{}: ListWorkers: {}", node.describe(), status.message())
            })?
            .into_inner();
        let reports = workers.record.iter().flat_map(|w| &w.platforms).any(|p| {
            let reported = Platform {
                architecture: p.architecture.clone(),
                os: p.os.clone(),
                variant: p.variant.clone(),
                ..Platform::default()
            };
            reported.normalize() == *platform
        });
        if reports {
            return Ok(Some(index));
        }
    }
    Ok(None)
}

/// A progress sender for one node's events: its vertices get identities of their own, so
/// two nodes' steps of the same name stay two steps, and a node building one platform has
/// it in its step names as a multi-platform build shows it (`[linux/arm64 1/2] RUN …`).
fn node_events(
    node: &str,
    platform: Option<String>,
    events: tokio::sync::mpsc::UnboundedSender<Event>,
) -> tokio::sync::mpsc::UnboundedSender<Event> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Event>();
    let node = node.to_owned();
    let mut ids: HashMap<Digest, Digest> = HashMap::new();
    tokio::spawn(async move {
        while let Some(mut event) = rx.recv().await {
            let digest = *ids.entry(event.vertex.digest).or_insert_with(|| {
                Digest::of(format!("{node} {}", event.vertex.digest).as_bytes())
            });
            event.vertex.digest = digest;
            if let Some(platform) = &platform {
                event.vertex.name = with_platform(&event.vertex.name, platform).into();
            }
            if events.send(event).is_err() {
                break;
            }
        }
    });
    tx
}

/// `[1/2] RUN x` → `[PLATFORM 1/2] RUN x`; a name already carrying it, or without a
/// bracket, as it is.
fn with_platform(name: &str, platform: &str) -> String {
    match name.strip_prefix('[') {
        Some(rest) if !rest.starts_with(platform) => format!("[{platform} {rest}"),
        _ => name.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::with_platform;

    #[test]
    fn step_names_get_the_node_platform() {
        assert_eq!(
            with_platform("[1/2] COPY a /", "linux/arm64"),
            "[linux/arm64 1/2] COPY a /"
        );
        assert_eq!(
            with_platform("[internal] load build context", "linux/arm/v7"),
            "[linux/arm/v7 internal] load build context"
        );
        assert_eq!(
            with_platform("[linux/arm64 1/2] COPY a /", "linux/arm64"),
            "[linux/arm64 1/2] COPY a /"
        );
        assert_eq!(
            with_platform("exporting to image", "linux/arm64"),
            "exporting to image"
        );
    }
}
