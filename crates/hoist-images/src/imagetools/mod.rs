//! `imagetools`: building an index from images already in registries ([`create`]) and
//! showing what a reference points at ([`inspect`]), with buildx's semantics.
//!
//! - Sources are references (`repo:tag`, `repo@digest`), bare digests (in the one repository
//!   named by the tags and other sources), or descriptor JSON ([`parse_source`]).
//! - Indexes among the sources are flattened into their manifests; a manifest without a
//!   platform gets the one in its image config; duplicates (by digest) are merged. The result
//!   is a Docker manifest list when every entry is a Docker manifest, else an OCI index,
//!   serialised as Go's `json.MarshalIndent(index, "", "  ")` would.
//! - Before the index is pushed to a tag, every source from another repository is copied
//!   there (its index, manifests and blobs; blobs are mounted within one registry).
//!
//! The output of [`render_inspection`] is buildx's default text output.

mod annotations;
mod template;

use std::collections::{BTreeMap, BTreeSet};

use futures::future::try_join_all;
use hoist_oci::{Descriptor, Digest, MediaType, Platform, Reference};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::manifest_json::{self, ConfigPlatform, Index};
use crate::remote::{Fetched, Remote, MAX_CONFIG_SIZE};

pub use annotations::{parse_annotations, Annotation};
pub use template::render_template;

/// One source of `imagetools create` as written by the user.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    /// The repository (and tag or digest) to read from; `None` for a bare digest or a
    /// descriptor, which are looked up in the default repository.
    pub reference: Option<Reference>,
    /// What is known of the descriptor (from a digest or descriptor JSON).
    pub descriptor: SourceDescriptor,
}

/// A possibly partial descriptor: a bare digest, or descriptor JSON with any fields.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceDescriptor {
    /// Media type, when given.
    #[serde(default)]
    pub media_type: Option<MediaType>,
    /// Digest, when given.
    #[serde(default)]
    pub digest: Option<Digest>,
    /// Size, when given.
    #[serde(default)]
    pub size: Option<u64>,
    /// Platform, when given.
    #[serde(default)]
    pub platform: Option<Platform>,
    /// Annotations.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// buildx's `parseSource`: a digest, else a reference, else descriptor JSON.
pub fn parse_source(text: &str) -> Result<Source> {
    let wrap = |err: Error| Error::InvalidSource {
        text: text.to_owned(),
        source: Box::new(err),
    };
    match Digest::parse(text) {
        Ok(digest) => {
            return Ok(Source {
                reference: None,
                descriptor: SourceDescriptor {
                    digest: Some(digest),
                    ..SourceDescriptor::default()
                },
            })
        }
        Err(err) if text.starts_with("sha256") => return Err(wrap(err.into())),
        Err(_) => {}
    }
    match Reference::parse_normalized(text) {
        Ok(reference) => {
            return Ok(Source {
                reference: Some(reference),
                descriptor: SourceDescriptor::default(),
            })
        }
        Err(err) if !text.trim_start().starts_with('{') => return Err(wrap(err.into())),
        Err(_) => {}
    }
    let descriptor: SourceDescriptor =
        serde_json::from_str(text).map_err(|err| wrap(Error::InvalidDescriptor(err)))?;
    Ok(Source {
        reference: None,
        descriptor,
    })
}

/// What `imagetools create` was asked to do.
#[derive(Debug, Clone)]
pub struct CreateRequest {
    /// `-t` targets, as typed.
    pub tags: Vec<String>,
    /// Sources: the contents of each `-f` file first, then the arguments.
    pub sources: Vec<String>,
    /// `--append`: the first tag's current image is a source too.
    pub append: bool,
    /// `--dry-run`: build the index but push nothing.
    pub dry_run: bool,
    /// `--prefer-index` (buildx's default): a single image source still becomes an index;
    /// when false it is copied as it is.
    pub prefer_index: bool,
    /// `--annotation [TYPES:]KEY=VALUE` values.
    pub annotations: Vec<String>,
}

impl Default for CreateRequest {
    fn default() -> Self {
        CreateRequest {
            tags: Vec::new(),
            sources: Vec::new(),
            append: false,
            dry_run: false,
            prefer_index: true,
            annotations: Vec::new(),
        }
    }
}

/// A source ready to combine: where to read it and its descriptor.
#[derive(Debug, Clone)]
struct Resolved {
    repository: Reference,
    descriptor: Descriptor,
    bytes: Vec<u8>,
}

/// What `imagetools create` produced.
#[derive(Debug, Clone)]
pub struct Created {
    /// The index (or, for a single index source, that index) exactly as pushed.
    pub bytes: Vec<u8>,
    /// Its descriptor.
    pub descriptor: Descriptor,
    /// The tags it was pushed to (empty for a dry run).
    pub pushed: Vec<Reference>,
    /// `(digest, from, to)` of every source copied to another repository.
    pub copied: Vec<(Digest, Reference, Reference)>,
}

/// `imagetools create`: checks the request, resolves the sources, combines them and (unless
/// a dry run) copies foreign sources and pushes the result to every tag.
pub async fn create<R: Remote>(remote: &R, request: &CreateRequest) -> Result<Created> {
    if request.sources.is_empty() {
        return Err(Error::NoSources);
    }
    if !request.dry_run && request.tags.is_empty() {
        return Err(Error::NoTags);
    }
    let tags = request
        .tags
        .iter()
        .map(|t| {
            Reference::parse_normalized(t).map_err(|source| Error::InvalidTag {
                tag: t.clone(),
                source,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let annotations = parse_annotations(&request.annotations)
        .map_err(|err| Error::InvalidAnnotations(Box::new(err)))?;
    let mut texts = request.sources.clone();
    if request.append {
        if let Some(first) = request.tags.first() {
            texts.insert(0, first.clone());
        }
    }
    let sources = texts
        .iter()
        .map(|t| parse_source(t))
        .collect::<Result<Vec<_>>>()?;

    let mut repos: BTreeSet<String> = tags.iter().map(Reference::name).collect();
    repos.extend(
        sources
            .iter()
            .filter_map(|s| s.reference.as_ref().map(Reference::name)),
    );
    if repos.is_empty() {
        return Err(Error::NoRepositories);
    }
    let default_repo = if repos.len() == 1 {
        repos.iter().next().cloned()
    } else {
        None
    };

    // Every source's repository is settled before anything is fetched, as buildx does.
    let located = sources
        .iter()
        .zip(&texts)
        .map(|(source, text)| locate_source(source, text, default_repo.as_deref()))
        .collect::<Result<Vec<_>>>()?;
    let resolved = try_join_all(
        sources
            .iter()
            .zip(located)
            .map(|(source, reference)| resolve_source(remote, source, reference)),
    )
    .await?;
    let (bytes, descriptor) =
        combine(remote, resolved.clone(), request.prefer_index, &annotations).await?;
    let mut created = Created {
        bytes,
        descriptor,
        pushed: Vec::new(),
        copied: Vec::new(),
    };
    if request.dry_run {
        return Ok(created);
    }
    for tag in &tags {
        let tag = tag.tag_name_only();
        // Sources from other repositories are copied into the tag's, concurrently.
        let foreign: Vec<&Resolved> = resolved
            .iter()
            .filter(|s| s.repository.domain() != tag.domain() || s.repository.path() != tag.path())
            .collect();
        try_join_all(
            foreign
                .iter()
                .map(|s| copy_chain(remote, &s.repository, &s.descriptor, &tag)),
        )
        .await?;
        created.copied.extend(foreign.iter().map(|s| {
            (
                s.descriptor.digest.clone(),
                s.repository.clone(),
                tag.clone(),
            )
        }));
        remote
            .push_manifest(&tag, created.bytes.clone(), &created.descriptor.media_type)
            .await
            .map_err(|err| Error::Push {
                reference: tag.clone(),
                source: Box::new(err),
            })?;
        created.pushed.push(tag);
    }
    Ok(created)
}

/// The reference a source is fetched by: its own (with `:latest` added), or the default
/// repository at the source's digest.
fn locate_source(source: &Source, text: &str, default_repo: Option<&str>) -> Result<Reference> {
    if let Some(reference) = &source.reference {
        return Ok(reference.tag_name_only());
    }
    let Some(repo) = default_repo else {
        return Err(Error::AmbiguousRepository {
            text: text.to_owned(),
        });
    };
    let Some(digest) = &source.descriptor.digest else {
        return Err(Error::SourceWithoutDigest {
            text: text.to_owned(),
        });
    };
    Ok(Reference::parse_normalized(repo)?.with_digest(digest.clone()))
}

/// Fetches a source's manifest or index and merges what the user said of it.
async fn resolve_source<R: Remote>(
    remote: &R,
    source: &Source,
    repository: Reference,
) -> Result<Resolved> {
    let given = &source.descriptor;
    let fetched = remote
        .resolve(&repository)
        .await
        .map_err(|err| Error::Resolve {
            reference: repository.clone(),
            source: Box::new(err),
        })?;
    let mut descriptor = fetched.descriptor.clone();
    if let Some(size) = given.size.filter(|s| *s != 0) {
        if size != descriptor.size {
            return Err(Error::SizeMismatch {
                digest: descriptor.digest,
                given: size,
                actual: descriptor.size,
            });
        }
    }
    if descriptor.media_type.as_str().is_empty() {
        descriptor.media_type = manifest_json::detect_media_type(&fetched.bytes)?;
    }
    if let Some(mt) = &given.media_type {
        descriptor.media_type = mt.clone();
    }
    if !given.annotations.is_empty() {
        descriptor.annotations = given.annotations.clone();
    }
    if let Some(p) = &given.platform {
        descriptor.platform = Some(p.clone());
    }
    Ok(Resolved {
        repository,
        descriptor,
        bytes: fetched.bytes,
    })
}

/// buildx's `Combine`: one index of every source's manifests, platforms filled in.
async fn combine<R: Remote>(
    remote: &R,
    mut sources: Vec<Resolved>,
    prefer_index: bool,
    annotations: &[Annotation],
) -> Result<(Vec<u8>, Descriptor)> {
    for source in &mut sources {
        let mt = &source.descriptor.media_type;
        if matches!(
            mt,
            MediaType::DockerManifestV1 | MediaType::DockerManifestV1Signed
        ) {
            return Err(Error::Schema1InList);
        }
        if manifest_json::is_image_manifest(mt) {
            let mut platform = source.descriptor.platform.clone().unwrap_or_default();
            if platform.os.is_empty() || platform.architecture.is_empty() {
                let from_config =
                    config_platform(remote, &source.repository, &source.bytes).await?;
                if platform.architecture.is_empty() {
                    platform.architecture = from_config.architecture;
                    if platform.variant.is_empty() {
                        platform.variant = from_config.variant;
                    }
                }
                if platform.os.is_empty() {
                    platform.os = from_config.os;
                }
            }
            source.descriptor.platform = Some(platform);
        }
    }
    if let ([only], true) = (sources.as_slice(), annotations.is_empty()) {
        if manifest_json::is_index(&only.descriptor.media_type) || !prefer_index {
            return Ok((only.bytes.clone(), only.descriptor.clone()));
        }
    }
    let mut entries: Vec<Descriptor> = Vec::new();
    let mut add = |d: Descriptor| {
        if let Some(old) = entries.iter_mut().find(|e| e.digest == d.digest) {
            if old.media_type.as_str().is_empty() {
                old.media_type = d.media_type;
            }
            if d.platform.is_some() {
                old.platform = d.platform;
            }
            old.annotations.extend(d.annotations);
        } else {
            entries.push(d);
        }
    };
    for source in sources {
        if manifest_json::is_index(&source.descriptor.media_type) {
            for d in manifest_json::parse_index(&source.bytes)?.manifests {
                add(d);
            }
        } else {
            add(source.descriptor);
        }
    }
    let all_docker = entries
        .iter()
        .all(|d| d.media_type.as_str().starts_with("application/vnd.docker."));
    let media_type = if all_docker {
        MediaType::DockerManifestList
    } else {
        MediaType::OciIndex
    };
    let index = if all_docker {
        Index::new_docker(entries)
    } else {
        // Annotations are only allowed on OCI indexes.
        let mut index = Index::new_oci(entries);
        index.annotations = annotations::apply(annotations, &mut index.manifests)?;
        index
    };
    let bytes = manifest_json::to_go_json(&index, "  ")?;
    let descriptor = Descriptor::of_bytes(media_type, &bytes);
    Ok((bytes, descriptor))
}

/// Image config bytes as a JSON value.
fn config_json(digest: &Digest, config: &[u8]) -> Result<serde_json::Value> {
    serde_json::from_slice(config).map_err(|source| Error::InvalidConfig {
        digest: digest.clone(),
        source,
    })
}

/// The normalised platform in the config of the manifest `manifest_bytes`.
async fn config_platform<R: Remote>(
    remote: &R,
    repository: &Reference,
    manifest_bytes: &[u8],
) -> Result<Platform> {
    let manifest = manifest_json::parse_manifest(manifest_bytes)?;
    let config = remote
        .fetch_blob_bytes(repository, &manifest.config, MAX_CONFIG_SIZE)
        .await
        .map_err(|err| Error::FetchConfig {
            digest: manifest.config.digest.clone(),
            source: Box::new(err),
        })?;
    Ok(ConfigPlatform::parse(&config)?.to_platform().normalize())
}

/// Copies the manifest or index `descriptor` of `from`, with everything it points at, into
/// the repository of `to` (pushed by digest).
pub async fn copy_chain<R: Remote>(
    remote: &R,
    from: &Reference,
    descriptor: &Descriptor,
    to: &Reference,
) -> Result<()> {
    let fetched = remote
        .fetch_manifest(from, descriptor)
        .await
        .map_err(|err| Error::FetchManifest {
            repository: from.name(),
            digest: descriptor.digest.clone(),
            source: Box::new(err),
        })?;
    let media_type = if descriptor.media_type.as_str().is_empty() {
        manifest_json::detect_media_type(&fetched.bytes)?
    } else {
        descriptor.media_type.clone()
    };
    if manifest_json::is_index(&media_type) {
        let index = manifest_json::parse_index(&fetched.bytes)?;
        for child in &index.manifests {
            Box::pin(copy_chain(remote, from, child, to)).await?;
        }
    } else {
        let manifest = manifest_json::parse_manifest(&fetched.bytes)?;
        try_join_all(
            manifest_json::blobs(&manifest)
                .filter(|b| !b.media_type.is_non_distributable())
                .map(|b| async move {
                    remote
                        .copy_blob(from, to, b)
                        .await
                        .map_err(|err| Error::CopyBlob {
                            digest: b.digest.clone(),
                            repository: to.name(),
                            source: Box::new(err),
                        })
                }),
        )
        .await?;
    }
    let by_digest = to
        .without_tag()
        .without_digest()
        .with_digest(descriptor.digest.clone());
    remote
        .push_manifest(&by_digest, fetched.bytes, &media_type)
        .await
        .map_err(|err| Error::Push {
            reference: by_digest.clone(),
            source: Box::new(err),
        })?;
    Ok(())
}

/// What `imagetools inspect` found.
#[derive(Debug, Clone)]
pub struct Inspection {
    /// The name as typed.
    pub name: String,
    /// The reference, normalised with `:latest` added when it had neither tag nor digest.
    pub reference: Reference,
    /// The manifest or index, exact bytes.
    pub fetched: Fetched,
    /// The parsed index, when it is one.
    pub index: Option<Index>,
}

/// `imagetools inspect`: resolves `name`.
pub async fn inspect<R: Remote>(remote: &R, name: &str) -> Result<Inspection> {
    let reference = Reference::parse_normalized(name)
        .map_err(|source| Error::InvalidReference {
            name: name.to_owned(),
            source,
        })?
        .tag_name_only();
    let mut fetched = remote
        .resolve(&reference)
        .await
        .map_err(|err| Error::Resolve {
            reference: reference.clone(),
            source: Box::new(err),
        })?;
    if fetched.descriptor.media_type.as_str().is_empty() {
        fetched.descriptor.media_type = manifest_json::detect_media_type(&fetched.bytes)?;
    }
    let index = if manifest_json::is_index(&fetched.descriptor.media_type) {
        Some(manifest_json::parse_index(&fetched.bytes)?)
    } else {
        None
    };
    Ok(Inspection {
        name: name.to_owned(),
        reference,
        fetched,
        index,
    })
}

/// Rows of `label` and value, aligned as Go's `tabwriter` (padding 1) aligns one column.
fn aligned(rows: &[(String, String)]) -> String {
    let width = rows
        .iter()
        .map(|(l, _)| l.chars().count())
        .max()
        .unwrap_or(0)
        + 1;
    let mut out = String::new();
    for (label, value) in rows {
        out.push_str(label);
        out.extend(std::iter::repeat_n(' ', width - label.chars().count()));
        out.push_str(value);
        out.push('\n');
    }
    out
}

/// buildx's default text output of `imagetools inspect`.
pub fn render_inspection(inspection: &Inspection) -> String {
    let desc = &inspection.fetched.descriptor;
    let mut out = aligned(&[
        ("Name:".into(), inspection.reference.to_string()),
        ("MediaType:".into(), desc.media_type.to_string()),
        ("Digest:".into(), desc.digest.to_string()),
    ]);
    let Some(index) = &inspection.index else {
        return out;
    };
    out.push_str(&aligned(&[
        (String::new(), String::new()),
        ("Manifests:".into(), String::new()),
    ]));
    const PFX: &str = "  ";
    let mut rows: Vec<(String, String)> = Vec::new();
    for (i, m) in index.manifests.iter().enumerate() {
        if i != 0 {
            rows.push((String::new(), String::new()));
        }
        let named = inspection.reference.with_digest(m.digest.clone());
        rows.push((format!("{PFX}Name:"), named.to_string()));
        rows.push((format!("{PFX}MediaType:"), m.media_type.to_string()));
        let Some(p) = &m.platform else { continue };
        rows.push((format!("{PFX}Platform:"), p.format()));
        if !p.os_version.is_empty() {
            rows.push((format!("{PFX}OSVersion:"), p.os_version.clone()));
        }
        if !p.os_features.is_empty() {
            rows.push((format!("{PFX}OSFeatures:"), p.os_features.join(", ")));
        }
        if !m.urls.is_empty() {
            rows.push((format!("{PFX}URLs:"), m.urls.join(", ")));
        }
        if !m.annotations.is_empty() {
            // buildx flushes here and aligns the annotations on their own.
            rows.push((format!("{PFX}Annotations:"), String::new()));
            out.push_str(&aligned(&rows));
            rows.clear();
            let ann: Vec<(String, String)> = m
                .annotations
                .iter()
                .map(|(k, v)| (format!("{PFX}{PFX}{k}:"), v.clone()))
                .collect();
            out.push_str(&aligned(&ann));
        }
    }
    out.push_str(&aligned(&rows));
    out
}

/// The `.Manifest` of buildx's template input: the descriptor of a manifest, or the index
/// with its own digest and size.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum TemplateManifest {
    /// A single manifest: its descriptor.
    Manifest(Descriptor),
    /// An index.
    Index {
        /// `schemaVersion`.
        #[serde(rename = "schemaVersion")]
        schema_version: u32,
        /// `mediaType`.
        #[serde(rename = "mediaType", skip_serializing_if = "Option::is_none")]
        media_type: Option<MediaType>,
        /// The index digest.
        digest: Digest,
        /// The index size.
        size: u64,
        /// Its manifests.
        manifests: Vec<Descriptor>,
        /// Its annotations.
        #[serde(skip_serializing_if = "BTreeMap::is_empty")]
        annotations: BTreeMap<String, String>,
    },
}

/// buildx's template input (`{{json .}}`): name as typed, manifest, and image config(s).
#[derive(Debug, Serialize)]
pub struct TemplateInput {
    /// The name as typed.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// See [`TemplateManifest`].
    pub manifest: TemplateManifest,
    /// The image config (one platform) or configs by platform (several).
    #[serde(skip_serializing_if = "serde_json::Value::is_null")]
    pub image: serde_json::Value,
}

/// Builds the template input, fetching the image config of every platform (attestation
/// manifests are skipped, as buildx's loader does).
pub async fn template_input<R: Remote>(
    remote: &R,
    inspection: &Inspection,
) -> Result<TemplateInput> {
    let desc = &inspection.fetched.descriptor;
    let repo = &inspection.reference;
    let mut configs: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    let manifest = match &inspection.index {
        None => {
            if manifest_json::is_image_manifest(&desc.media_type) {
                let m = manifest_json::parse_manifest(&inspection.fetched.bytes)?;
                let config = remote
                    .fetch_blob_bytes(repo, &m.config, MAX_CONFIG_SIZE)
                    .await?;
                let value = config_json(&m.config.digest, &config)?;
                configs.insert(String::new(), value);
            }
            TemplateManifest::Manifest(desc.clone())
        }
        Some(index) => {
            for child in &index.manifests {
                let attestation = child
                    .annotations
                    .get("vnd.docker.reference.type")
                    .is_some_and(|t| t == "attestation-manifest");
                if attestation || !manifest_json::is_image_manifest(&child.media_type) {
                    continue;
                }
                let fetched = remote.fetch_manifest(repo, child).await?;
                let m = manifest_json::parse_manifest(&fetched.bytes)?;
                let config = remote
                    .fetch_blob_bytes(repo, &m.config, MAX_CONFIG_SIZE)
                    .await?;
                let value = config_json(&m.config.digest, &config)?;
                let key = match &child.platform {
                    Some(p) => p.format(),
                    None => ConfigPlatform::parse(&config)?.to_platform().format(),
                };
                configs.insert(key, value);
            }
            TemplateManifest::Index {
                schema_version: index.schema_version,
                media_type: index.media_type.clone(),
                digest: desc.digest.clone(),
                size: desc.size,
                manifests: index.manifests.clone(),
                annotations: index.annotations.clone(),
            }
        }
    };
    let image = match configs.len() {
        0 => serde_json::Value::Null,
        1 => configs.into_values().next().unwrap_or_default(),
        _ => serde_json::Value::Object(configs.into_iter().collect()),
    };
    Ok(TemplateInput {
        name: inspection.name.clone(),
        manifest,
        image,
    })
}

#[cfg(test)]
mod tests;
