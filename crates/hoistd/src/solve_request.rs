//! A `Solve` call's [`SolveRequest`] typed into a [`hoist_engine::BuildRequest`]: the
//! `dockerfile.v0` frontend's attributes (as buildctl's `--opt` and the docker CLI send them)
//! and the exporter, and the build's result as BuildKit's exporter response.
//!
//! Without a session the context is a remote URL (`context=`) and the result goes to the
//! image store or a registry. With one (`SolveRequest.session`), a missing `context`
//! means the client's `context` and `dockerfile` directories, and `local`/`tar` exports
//! and `oci`/`docker` archives stream back to the client, and `local:DIR` named contexts
//! are the client's directory DIR ([`SessionNeeds`]); without a session these are refused
//! with a message saying so.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use base64::Engine as _;
use hoist_engine::{BuildRequest, ContextSource, HostEntry};
use hoist_export::{ExportResult, Output};
use hoist_frontend::{BuildOptions, NamedContext};
use hoist_oci::Platform;
use hoist_proto::control::SolveRequest;
use tonic::Status;

/// The one frontend hoistd runs.
pub const DOCKERFILE_FRONTEND: &str = "dockerfile.v0";

/// What needs a session the request did not name (or that hoistd does not take from one).
fn needs_session(what: &str) -> Status {
    Status::unimplemented(format!(
        "{what} needs the client's session: open one (Control.Session) and name it in the \
         Solve's session field; hoistd takes the context and Dockerfile directories and sends \
         local, tar, oci and docker exports and local: named contexts through it (see \
         docs/dev/hoistd.md)"
    ))
}

/// What a build takes from, or gives to, the client's session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionNeeds {
    /// The context (dir `context`) and the Dockerfile (dir `dockerfile`) are synced from
    /// the client; the build request's context is a placeholder until then.
    pub context: bool,
    /// The result goes to the client: `local` (a directory) or `tar` (a stream), with the
    /// exporter's attributes other than `dest`.
    pub export: Option<SessionExport>,
    /// Named contexts `context:NAME=local:DIR`: (NAME, the client's dir name DIR), their
    /// sources placeholders until synced.
    pub named_dirs: Vec<(String, String)>,
}

impl SessionNeeds {
    pub fn any(&self) -> bool {
        self.context || self.export.is_some() || !self.named_dirs.is_empty()
    }
}

/// An exporter whose result streams to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionExport {
    /// `local` (a directory), or `tar`, `oci`, `docker` (a file streamed as bytes).
    pub kind: String,
    pub attrs: Vec<(String, String)>,
}

impl SessionExport {
    /// The exporter writing to `dest` on the daemon, from where it is sent.
    pub fn output(&self, dest: &std::path::Path) -> Result<Output, Status> {
        let mut spec = vec![
            quote(&format!("type={}", self.kind)),
            quote(&format!("dest={}", dest.display())),
        ];
        spec.extend(self.attrs.iter().map(|(k, v)| quote(&format!("{k}={v}"))));
        Output::parse(&spec.join(",")).map_err(|err| {
            Status::invalid_argument(format!("invalid {} exporter attributes: {err}", self.kind))
        })
    }
}

/// A build request and what it needs of the session.
#[derive(Debug)]
pub struct Planned {
    pub build: BuildRequest,
    pub session: SessionNeeds,
}

/// `request` as a build for a machine of `host` platform.
pub fn build_request(request: &SolveRequest, host: &Platform) -> Result<Planned, Status> {
    let has_session = !request.session.is_empty();
    let mut needs = SessionNeeds::default();
    if request.frontend.is_empty() {
        // (An empty frontend without a definition is the gateway's, crate::gateway.)
        return Err(Status::unimplemented(
            "hoistd does not run LLB definitions sent by the client (unsupported); use the \
             dockerfile.v0 frontend",
        ));
    }
    if request.frontend != DOCKERFILE_FRONTEND {
        return Err(Status::invalid_argument(format!(
            "unsupported frontend {:?}: hoistd runs {DOCKERFILE_FRONTEND}",
            request.frontend
        )));
    }
    if !request.frontend_inputs.is_empty() {
        return Err(Status::unimplemented(
            "hoistd does not take frontend inputs (LLB definitions) from the client (unsupported)",
        ));
    }
    let attrs = &request.frontend_attrs;
    let context = match attrs.get("context").map(String::as_str) {
        None | Some("") if has_session => {
            needs.context = true;
            ContextSource::Empty
        }
        None | Some("") => return Err(needs_session("a build context sent by the client")),
        Some(url) => ContextSource::remote(url).ok_or_else(|| {
            Status::invalid_argument(format!(
                "invalid frontend attribute context={url:?}: expected a Git or http(s) URL"
            ))
        })?,
    };
    let filename = attrs
        .get("filename")
        .filter(|f| !f.is_empty())
        .cloned()
        .unwrap_or_else(|| "Dockerfile".to_owned());
    let mut options = BuildOptions::new(host.clone());
    let mut named_contexts = BTreeMap::new();
    let mut platforms = Vec::new();
    let mut pull = false;
    let mut run = hoist_engine::RunOptions::default();
    for name in &request.entitlements {
        run.entitlements
            .allow(name)
            .map_err(|err| Status::invalid_argument(err.to_string()))?;
    }
    for (key, value) in sorted(attrs) {
        if let Some(arg) = key.strip_prefix("build-arg:") {
            options.build_args.insert(arg.to_owned(), value.clone());
        } else if let Some(label) = key.strip_prefix("label:") {
            options.labels.insert(label.to_owned(), value.clone());
        } else if let Some(name) = key.strip_prefix("context:") {
            if let Some(dir) = value.strip_prefix("local:").filter(|_| has_session) {
                // Synced from the client's directory `dir` once the session is there.
                needs.named_dirs.push((name.to_owned(), dir.to_owned()));
                named_contexts.insert(name.to_owned(), ContextSource::Empty);
                options
                    .named_contexts
                    .insert(name.to_owned(), NamedContext::Local(name.to_owned()));
            } else {
                named_context(name, value, &mut options, &mut named_contexts)?;
            }
        } else {
            match key {
                "target" => options.target = Some(value.clone()).filter(|t| !t.is_empty()),
                "platform" => platforms = parse_platforms(value)?,
                "no-cache" if value.is_empty() => options.no_cache = true,
                "no-cache" => {
                    options.no_cache_filter = Some(
                        value
                            .split(',')
                            .map(str::trim)
                            .filter(|s| !s.is_empty())
                            .map(str::to_owned)
                            .collect::<BTreeSet<_>>(),
                    );
                }
                "add-hosts" => run.extra_hosts = parse_hosts(value)?,
                "force-network-mode" => {
                    options.network = match value.as_str() {
                        "" | "sandbox" | "default" => hoist_graph::Network::Sandbox,
                        "none" => hoist_graph::Network::None,
                        "host" => {
                            run.entitlements.network_host = true;
                            hoist_graph::Network::Host
                        }
                        other => {
                            return Err(bad_attr(key, other, "expected sandbox, none or host"))
                        }
                    }
                }
                "image-resolve-mode" => {
                    pull = match value.as_str() {
                        "pull" => true,
                        "" | "default" | "local" => false,
                        other => {
                            return Err(bad_attr(key, other, "expected default, pull or local"))
                        }
                    }
                }
                "multi-platform" if !matches!(value.as_str(), "" | "true" | "false") => {
                    return Err(bad_attr(key, value, "expected true or false"));
                }
                // The context and Dockerfile are read above; other attributes (BuildKit's
                // newer ones, those of other frontends) are ignored, as BuildKit does.
                _ => {}
            }
        }
    }
    let mut build = BuildRequest::new(None, filename, context, options);
    build.platforms = platforms;
    build.pull = pull;
    build.named_contexts = named_contexts;
    build.run = run;
    build.outputs = outputs(request, has_session, &mut needs)?;
    Ok(Planned {
        build,
        session: needs,
    })
}

fn sorted(attrs: &HashMap<String, String>) -> BTreeMap<&str, &String> {
    attrs.iter().map(|(k, v)| (k.as_str(), v)).collect()
}

fn bad_attr(key: &str, value: &str, expected: &str) -> Status {
    Status::invalid_argument(format!(
        "invalid frontend attribute {key}={value:?}: {expected}"
    ))
}

/// `platform=linux/amd64,linux/arm64`, normalized, without repeats.
fn parse_platforms(value: &str) -> Result<Vec<Platform>, Status> {
    let mut platforms = Vec::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let platform = Platform::parse(item)
            .map_err(|err| bad_attr("platform", item, &err.to_string()))?
            .normalize();
        if !platforms.contains(&platform) {
            platforms.push(platform);
        }
    }
    Ok(platforms)
}

/// `add-hosts=host=ip,other:ip` (BuildKit takes `=` or `:` between name and address).
fn parse_hosts(value: &str) -> Result<Vec<HostEntry>, Status> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|entry| {
            let (host, ip) = entry
                .split_once('=')
                .or_else(|| entry.split_once(':'))
                .filter(|(host, ip)| !host.is_empty() && !ip.is_empty())
                .ok_or_else(|| bad_attr("add-hosts", entry, "expected HOST=IP"))?;
            let ip = ip.trim_start_matches('[').trim_end_matches(']');
            Ok(HostEntry {
                host: host.to_owned(),
                ip: ip
                    .parse()
                    .map_err(|_| bad_attr("add-hosts", entry, "not an IP address"))?,
            })
        })
        .collect()
}

/// `context:NAME=docker-image://REF` or a URL; a client's directory (`local:`) needs the
/// session.
fn named_context(
    name: &str,
    value: &str,
    options: &mut BuildOptions,
    sources: &mut BTreeMap<String, ContextSource>,
) -> Result<(), Status> {
    let context = if let Some(reference) = value.strip_prefix("docker-image://") {
        NamedContext::Image(reference.to_owned())
    } else if let Some(remote) = ContextSource::remote(value) {
        sources.insert(name.to_owned(), remote);
        NamedContext::Local(name.to_owned())
    } else if value.starts_with("local:") {
        return Err(needs_session(&format!(
            "the named context {name} ({value})"
        )));
    } else {
        return Err(bad_attr(
            &format!("context:{name}"),
            value,
            "hoistd takes docker-image://REF or a Git or http(s) URL",
        ));
    };
    options.named_contexts.insert(name.to_owned(), context);
    Ok(())
}

/// The exporters: `exporters` (BuildKit 0.13 and later) or the single `exporter` with
/// `exporter_attrs` (older clients, the docker CLI 20.10). `image` and `registry` are
/// served; the others stream their result through the session.
fn outputs(
    request: &SolveRequest,
    has_session: bool,
    needs: &mut SessionNeeds,
) -> Result<Vec<Output>, Status> {
    let mut exporters: Vec<(&str, &HashMap<String, String>)> = request
        .exporters
        .iter()
        .map(|e| (e.r#type.as_str(), &e.attrs))
        .collect();
    if exporters.is_empty() && !request.exporter.is_empty() {
        exporters.push((&request.exporter, &request.exporter_attrs));
    }
    let mut outputs = Vec::new();
    for (kind, attrs) in exporters {
        match kind {
            "image" | "registry" => {}
            "oci" if has_session && attrs.get("tar").is_some_and(|t| t == "false") => {
                return Err(Status::invalid_argument(
                    "the oci exporter with tar=false writes a directory on the daemon, which \
                     hoistd does not send to the client; leave tar at its default",
                ))
            }
            "local" | "tar" | "oci" | "docker" if has_session => {
                if needs.export.is_some() {
                    return Err(Status::invalid_argument(
                        "hoistd sends one exporter's result to the client per build",
                    ));
                }
                needs.export = Some(SessionExport {
                    kind: kind.to_owned(),
                    attrs: sorted(attrs)
                        .into_iter()
                        .filter(|(k, _)| *k != "dest")
                        .map(|(k, v)| (k.to_owned(), v.clone()))
                        .collect(),
                });
                continue;
            }
            "oci" | "docker" | "local" | "tar" => {
                return Err(needs_session(&format!(
                    "the {kind} exporter (it sends its result to the client)"
                )))
            }
            other => {
                return Err(Status::invalid_argument(format!(
                    "unknown exporter {other:?}: hoistd exports with image and registry \
                     (oci, docker, local and tar need a session)"
                )))
            }
        }
        // hoist-export's parser knows the attributes and says which one it does not.
        let mut spec = vec![quote(&format!("type={kind}"))];
        spec.extend(
            sorted(attrs)
                .into_iter()
                .map(|(k, v)| quote(&format!("{k}={v}"))),
        );
        let output = Output::parse(&spec.join(",")).map_err(|err| {
            Status::invalid_argument(format!("invalid {kind} exporter attributes: {err}"))
        })?;
        outputs.push(output);
    }
    Ok(outputs)
}

/// One CSV field, quoted so commas inside it (`name=a,b`) stay in it.
fn quote(field: &str) -> String {
    format!("\"{}\"", field.replace('"', "\"\""))
}

/// BuildKit's exporter response keys for `result`: `containerimage.digest`,
/// `containerimage.config.digest` (one platform), `image.name`, and
/// `containerimage.descriptor` (the root descriptor's JSON, base64 encoded, as BuildKit
/// sends it).
pub fn exporter_response(result: &ExportResult) -> Result<HashMap<String, String>, Status> {
    let metadata = result.metadata();
    let mut response = HashMap::new();
    if let Some(digest) = &metadata.digest {
        response.insert("containerimage.digest".to_owned(), digest.to_string());
    }
    if let Some(digest) = &metadata.config_digest {
        response.insert(
            "containerimage.config.digest".to_owned(),
            digest.to_string(),
        );
    }
    if let Some(names) = &metadata.image_name {
        response.insert("image.name".to_owned(), names.clone());
    }
    if let Some(descriptor) = &metadata.descriptor {
        let json = hoist_oci::go_json::to_vec(descriptor)
            .map_err(|err| Status::internal(format!("cannot encode the descriptor: {err}")))?;
        response.insert(
            "containerimage.descriptor".to_owned(),
            base64::engine::general_purpose::STANDARD.encode(json),
        );
    }
    Ok(response)
}
