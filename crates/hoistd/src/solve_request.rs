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
use hoist_engine::{
    BuildRequest, CacheExport, CacheImport, CacheOptions, ContextSource, HostEntry,
};
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
    /// The context is the client's upload at this URL (`http://buildkit-session/<id>`, a
    /// tar or a Dockerfile read from its stdin), pulled through `Upload.Pull`.
    pub upload: Option<String>,
    /// `type=local` caches: the client's directories, reached through its content store.
    pub cache_stores: bool,
}

impl SessionNeeds {
    pub fn any(&self) -> bool {
        self.context
            || self.export.is_some()
            || !self.named_dirs.is_empty()
            || self.upload.is_some()
            || self.cache_stores
    }
}

/// Whether `url` names an upload of the client's session (BuildKit's http source fetches
/// such a URL through the session).
pub fn is_session_upload(url: &str) -> bool {
    url.strip_prefix("http://")
        .and_then(|rest| rest.split('/').next())
        .is_some_and(|host| host == hoist_session::upload::UPLOAD_HOST)
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
        Some(url) if is_session_upload(url) && has_session => {
            needs.upload = Some(url.to_owned());
            ContextSource::Empty
        }
        Some(url) if is_session_upload(url) => {
            return Err(needs_session(&format!("the uploaded context {url}")))
        }
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
    build.cache = cache_options(request)?;
    if crate::cache_store::has_local(&build.cache) {
        if !has_session {
            return Err(needs_session("a type=local cache (the client's directory)"));
        }
        needs.cache_stores = true;
    }
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

/// The request's `Cache` as the engine's [`CacheOptions`]: each import and export entry (a
/// type and its attributes, as buildx and buildctl send `--cache-from`/`--cache-to`) and
/// the deprecated fields of old clients (`export_ref`/`export_attrs`, `import_refs`: registry
/// references). `registry` and `inline` are served, and `local`: its `src`/`dest` is the
/// client's directory, which `cache_store::attach` reaches through the session's content
/// store (an import also names the `digest` the client read from its `index.json`).
pub fn cache_options(request: &SolveRequest) -> Result<CacheOptions, Status> {
    let mut options = CacheOptions::default();
    // BuildKit's client also sends the imports as the frontend attribute `cache-imports`
    // (JSON `[{"Type":…,"Attrs":{…}}]`), which older daemons read: taken when the request's
    // own list is empty.
    let attr_imports = cache_imports_attr(request)?;
    let default_cache = hoist_proto::control::CacheOptions::default();
    let cache = request.cache.as_ref().unwrap_or(&default_cache);
    let mut imports: Vec<(&str, Vec<(&str, &str)>)> = cache
        .imports
        .iter()
        .map(|e| (e.r#type.as_str(), sorted_pairs(&e.attrs)))
        .collect();
    if imports.is_empty() {
        imports.extend(attr_imports.iter().map(|(kind, attrs)| {
            (
                kind.as_str(),
                attrs
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect(),
            )
        }));
    }
    imports.extend(
        cache
            .import_refs_deprecated
            .iter()
            .map(|r| ("registry", vec![("ref", r.as_str())])),
    );
    let mut exports: Vec<(&str, Vec<(&str, &str)>)> = cache
        .exports
        .iter()
        .map(|e| (e.r#type.as_str(), sorted_pairs(&e.attrs)))
        .collect();
    if !cache.export_ref_deprecated.is_empty() {
        let mut attrs = sorted_pairs(&cache.export_attrs_deprecated);
        attrs.retain(|(k, _)| *k != "ref");
        attrs.push(("ref", cache.export_ref_deprecated.as_str()));
        exports.push(("registry", attrs));
    }
    for (kind, attrs) in imports {
        let spec = cache_spec(kind, &attrs, "import")?;
        options.imports.push(
            CacheImport::parse(&spec)
                .map_err(|err| Status::invalid_argument(format!("cache import: {err}")))?,
        );
    }
    for (kind, attrs) in exports {
        let spec = cache_spec(kind, &attrs, "export")?;
        options.exports.push(
            CacheExport::parse(&spec)
                .map_err(|err| Status::invalid_argument(format!("cache export: {err}")))?,
        );
    }
    Ok(options)
}

/// The `cache-imports` frontend attribute as (type, sorted attributes) entries.
#[allow(clippy::type_complexity)]
fn cache_imports_attr(
    request: &SolveRequest,
) -> Result<Vec<(String, BTreeMap<String, String>)>, Status> {
    #[derive(serde::Deserialize)]
    struct Entry {
        #[serde(rename = "Type", default)]
        kind: String,
        #[serde(rename = "Attrs", default)]
        attrs: BTreeMap<String, String>,
    }
    let Some(text) = request
        .frontend_attrs
        .get("cache-imports")
        .filter(|t| !t.is_empty())
    else {
        return Ok(Vec::new());
    };
    let entries: Vec<Entry> = serde_json::from_str(text).map_err(|err| {
        bad_attr(
            "cache-imports",
            text,
            &format!("expected [{{\"Type\":…,\"Attrs\":{{…}}}}]: {err}"),
        )
    })?;
    Ok(entries.into_iter().map(|e| (e.kind, e.attrs)).collect())
}

fn sorted_pairs(attrs: &HashMap<String, String>) -> Vec<(&str, &str)> {
    sorted(attrs)
        .into_iter()
        .map(|(k, v)| (k, v.as_str()))
        .collect()
}

/// One cache entry as the `type=…,key=value` spec the engine parses.
fn cache_spec(kind: &str, attrs: &[(&str, &str)], what: &str) -> Result<String, Status> {
    match kind {
        "registry" | "inline" | "local" => {}
        other => {
            return Err(Status::invalid_argument(format!(
                "unsupported cache {what} type {other:?}: hoistd takes registry, inline and \
                 local"
            )))
        }
    }
    let mut spec = vec![quote(&format!("type={kind}"))];
    spec.extend(attrs.iter().map(|(k, v)| quote(&format!("{k}={v}"))));
    Ok(spec.join(","))
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

#[cfg(test)]
mod tests {
    use hoist_proto::control::{CacheOptions as WireCache, CacheOptionsEntry, SolveRequest};

    fn entry(kind: &str, attrs: &[(&str, &str)]) -> CacheOptionsEntry {
        CacheOptionsEntry {
            r#type: kind.to_owned(),
            attrs: attrs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    fn with_cache(cache: WireCache) -> SolveRequest {
        SolveRequest {
            cache: Some(cache),
            ..SolveRequest::default()
        }
    }

    #[test]
    fn cache_entries_and_old_clients_fields_become_engine_options() {
        let request = with_cache(WireCache {
            imports: vec![entry("registry", &[("ref", "reg:5000/c:1")])],
            exports: vec![
                entry("registry", &[("ref", "reg:5000/c:1"), ("mode", "max")]),
                entry("inline", &[]),
            ],
            import_refs_deprecated: vec!["reg:5000/old".to_owned()],
            export_ref_deprecated: "reg:5000/old-out".to_owned(),
            ..WireCache::default()
        });
        let options = super::cache_options(&request).unwrap();
        let imports: Vec<String> = options.imports.iter().map(|i| i.describe()).collect();
        assert_eq!(imports, ["reg:5000/c:1", "reg:5000/old"]);
        let exports: Vec<String> = options
            .exports
            .iter()
            .map(|e| e.destination.describe())
            .collect();
        assert_eq!(
            exports,
            ["reg:5000/c:1", "the image config", "reg:5000/old-out"]
        );
        assert_eq!(options.exports[0].mode, hoist_engine::CacheMode::Max);
    }

    #[test]
    fn the_cache_imports_attribute_is_read_when_the_list_is_empty() {
        let mut request = SolveRequest::default();
        request.frontend_attrs.insert(
            "cache-imports".to_owned(),
            r#"[{"Type":"registry","Attrs":{"ref":"reg:5000/from-attr"}}]"#.to_owned(),
        );
        let options = super::cache_options(&request).unwrap();
        let imports: Vec<String> = options.imports.iter().map(|i| i.describe()).collect();
        assert_eq!(imports, ["reg:5000/from-attr"]);
        request
            .frontend_attrs
            .insert("cache-imports".to_owned(), "not json".to_owned());
        let err = super::cache_options(&request).unwrap_err();
        assert!(err.message().contains("cache-imports"), "{}", err.message());
    }

    #[test]
    fn local_caches_are_typed_with_the_clients_paths_and_unknown_types_refused() {
        let local = with_cache(WireCache {
            exports: vec![entry("local", &[("dest", "/tmp/c"), ("mode", "max")])],
            imports: vec![entry(
                "local",
                &[
                    ("src", "/tmp/c"),
                    ("digest", &format!("sha256:{}", "a".repeat(64))),
                ],
            )],
            ..WireCache::default()
        });
        let options = super::cache_options(&local).unwrap();
        assert!(matches!(
            &options.exports[0].destination,
            hoist_engine::CacheDestination::Local { dest, .. } if dest.as_os_str() == "/tmp/c"
        ));
        assert_eq!(options.exports[0].mode, hoist_engine::CacheMode::Max);
        assert!(matches!(
            &options.imports[0],
            hoist_engine::CacheImport::Local {
                select: hoist_engine::LocalSelect::Digest(_),
                ..
            }
        ));
        assert!(crate::cache_store::has_local(&options));
        let gha = with_cache(WireCache {
            imports: vec![entry("gha", &[])],
            ..WireCache::default()
        });
        let err = super::cache_options(&gha).unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert!(err.message().contains("\"gha\""), "{}", err.message());
        let bad = with_cache(WireCache {
            exports: vec![entry("registry", &[("ref", "reg:5000/c"), ("mode", "all")])],
            ..WireCache::default()
        });
        let err = super::cache_options(&bad).unwrap_err();
        assert!(err.message().contains("mode=all"), "{}", err.message());
    }
}
