//! [`BuildOptions`]: what a build asks of the frontend, typed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use hoist_oci::{Digest, Platform};

/// Options of one conversion (one target platform). A multi-platform build converts once
/// per platform with the same options but `target_platform`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildOptions {
    /// `--build-arg NAME=value`.
    pub build_args: BTreeMap<String, String>,
    /// `--target`: the stage to build; the last stage when `None`.
    pub target: Option<String>,
    /// `--platform`: the platform to build for; `None` builds for `build_platform` and
    /// keeps the base image's platform in the config (BuildKit's implicit target).
    pub target_platform: Option<Platform>,
    /// The platform the builder runs on (`$BUILDPLATFORM`).
    pub build_platform: Platform,
    /// `--label NAME=value`, added to the final image's labels.
    pub labels: BTreeMap<String, String>,
    /// `--build-context NAME=...`: stages, images and `COPY --from` names replaced.
    pub named_contexts: BTreeMap<String, NamedContext>,
    /// `--no-cache-filter`: stages whose steps run even when cached (`None`: no filter).
    pub no_cache_filter: Option<BTreeSet<String>>,
    /// `--no-cache`: every step runs.
    pub no_cache: bool,
    /// The `.dockerignore` patterns of the main context.
    pub context_excludes: Vec<String>,
    /// The `.dockerignore` patterns of each local named context, by its local name.
    pub named_context_excludes: BTreeMap<String, Vec<String>>,
    /// The default network of RUN steps (`--network`).
    pub network: hoist_graph::Network,
    /// Several target platforms were asked for: step names start with the platform
    /// (`[linux/arm64 base 2/3] RUN make`), as BuildKit's `MultiPlatformRequested`.
    pub multi_platform: bool,
}

impl BuildOptions {
    /// Options for building for `build_platform` with no arguments.
    pub fn new(build_platform: Platform) -> BuildOptions {
        BuildOptions {
            build_args: BTreeMap::new(),
            target: None,
            target_platform: None,
            build_platform,
            labels: BTreeMap::new(),
            named_contexts: BTreeMap::new(),
            no_cache_filter: None,
            no_cache: false,
            context_excludes: Vec::new(),
            named_context_excludes: BTreeMap::new(),
            network: hoist_graph::Network::Sandbox,
            multi_platform: false,
        }
    }

    /// The same options for `platform`.
    pub fn for_platform(&self, platform: Platform) -> BuildOptions {
        BuildOptions {
            target_platform: Some(platform),
            ..self.clone()
        }
    }

    /// Whether the steps of stage `name` ignore the cache.
    pub(crate) fn ignores_cache(&self, stage: Option<&str>) -> bool {
        if self.no_cache {
            return true;
        }
        match (&self.no_cache_filter, stage) {
            (Some(filter), _) if filter.is_empty() => true,
            (Some(filter), Some(name)) => filter.iter().any(|f| f.eq_ignore_ascii_case(name)),
            _ => false,
        }
    }
}

/// What `--build-context NAME=...` stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamedContext {
    /// `docker-image://ref`: an image, resolved like a `FROM`.
    Image(String),
    /// A local directory sent by the client under this local name.
    Local(String),
    /// `oci-layout://DIR[:TAG|@DIGEST]`: the image an OCI layout directory holds. The
    /// frontend does no I/O, so the caller imports it into its store before planning and
    /// hands it over as an [`NamedContext::Image`] pinned by digest; planning with one
    /// still here is an error.
    OciLayout(OciLayoutRef),
}

/// An image in an OCI layout directory, as `oci-layout://` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciLayoutRef {
    /// The layout directory.
    pub dir: PathBuf,
    /// Which of its images.
    pub select: LayoutSelect,
}

/// How an [`OciLayoutRef`] picks its image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayoutSelect {
    /// `:TAG` (`latest` when neither is given): the `index.json` entry whose
    /// `org.opencontainers.image.ref.name` is the tag.
    Tag(String),
    /// `@sha256:…`: the manifest or index with this digest.
    Digest(Digest),
}

impl OciLayoutRef {
    /// Parses what follows `oci-layout://`: `DIR`, `DIR:TAG`, `DIR@DIGEST` (buildx cuts at
    /// the first `@`, then at the first `:`, so the directory holds neither).
    pub fn parse(value: &str) -> std::result::Result<OciLayoutRef, String> {
        let (rest, digest) = match value.split_once('@') {
            Some((rest, digest)) => (rest, Some(digest)),
            None => (value, None),
        };
        let (dir, tag) = match rest.split_once(':') {
            Some((dir, tag)) => (dir, Some(tag)),
            None => (rest, None),
        };
        if dir.is_empty() {
            return Err(format!("oci-layout://{value}: no layout directory"));
        }
        let select = match (digest, tag) {
            (Some(digest), _) => LayoutSelect::Digest(
                Digest::parse(digest)
                    .map_err(|e| format!("oci-layout://{value}: invalid digest: {e}"))?,
            ),
            (None, Some("")) => return Err(format!("oci-layout://{value}: empty tag")),
            (None, Some(tag)) => LayoutSelect::Tag(tag.to_owned()),
            (None, None) => LayoutSelect::Tag("latest".to_owned()),
        };
        Ok(OciLayoutRef {
            dir: PathBuf::from(dir),
            select,
        })
    }
}

impl std::fmt::Display for OciLayoutRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "oci-layout://{}", self.dir.display())?;
        match &self.select {
            LayoutSelect::Tag(tag) => write!(f, ":{tag}"),
            LayoutSelect::Digest(digest) => write!(f, "@{digest}"),
        }
    }
}
