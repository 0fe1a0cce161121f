//! Local manifest lists, as `docker manifest` keeps them: a [`ManifestListStore`] under the
//! state dir's `manifests/` holds one folder per list and one JSON file per member manifest
//! (names made file-safe by `:` → `%` and `/` → `#`, the files in docker's `ImageManifest`
//! shape), and the operations [`create`], [`annotate`], [`inspect`], [`push`] and [`remove`]
//! with docker's behaviour and error texts.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use hoist_oci::{Descriptor, MediaType, Platform, Reference};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::imagetools::copy_chain;
use crate::manifest_json::{self, to_go_json, to_go_json_string, ConfigPlatform};
use crate::remote::{Remote, MAX_CONFIG_SIZE};

/// One member of a local manifest list, serialised like docker's `types.ImageManifest`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredManifest {
    /// The image reference it was added as.
    #[serde(rename = "Ref")]
    pub reference: String,
    /// Its descriptor, with the platform from its config (and annotations).
    #[serde(rename = "Descriptor")]
    pub descriptor: Descriptor,
    /// The manifest bytes, base64 (Go's `[]byte`).
    #[serde(rename = "Raw", default, skip_serializing_if = "String::is_empty")]
    pub raw: String,
    /// The parsed manifest, when it is a Docker schema 2 manifest.
    #[serde(
        rename = "SchemaV2Manifest",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub schema_v2: Option<serde_json::Value>,
    /// The parsed manifest, when it is an OCI manifest.
    #[serde(
        rename = "OCIManifest",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub oci: Option<serde_json::Value>,
}

impl StoredManifest {
    fn new(reference: &Reference, descriptor: Descriptor, raw: &[u8]) -> Result<Self> {
        let parsed: serde_json::Value = manifest_json::parse_json(raw, "manifest")?;
        let (schema_v2, oci) = match descriptor.media_type {
            MediaType::DockerManifest => (Some(parsed), None),
            _ => (None, Some(parsed)),
        };
        Ok(StoredManifest {
            reference: reference.to_string(),
            descriptor,
            raw: base64::engine::general_purpose::STANDARD.encode(raw),
            schema_v2,
            oci,
        })
    }

    /// The manifest bytes.
    pub fn raw_bytes(&self) -> Result<Vec<u8>> {
        base64::engine::general_purpose::STANDARD
            .decode(&self.raw)
            .map_err(|source| Error::InvalidRaw {
                reference: self.reference.clone(),
                source,
            })
    }
}

/// docker's `normalizeReference`: Docker Hub rules, and `:latest` unless there is a digest.
pub fn normalize_reference(text: &str) -> Result<Reference> {
    Ok(Reference::parse_normalized(text)?.tag_name_only())
}

fn file_safe(name: &str) -> String {
    name.replace(':', "%").replace('/', "#")
}

/// The local manifest lists: `<root>/<list>/<manifest>` JSON files.
#[derive(Debug, Clone)]
pub struct ManifestListStore {
    root: PathBuf,
}

impl ManifestListStore {
    /// The store at `root` (the state dir's `manifests/`), created on first save.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        ManifestListStore { root: root.into() }
    }

    /// Its folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn list_dir(&self, list: &Reference) -> PathBuf {
        self.root.join(file_safe(&list.to_string()))
    }

    fn manifest_path(&self, list: &Reference, manifest: &Reference) -> PathBuf {
        self.list_dir(list).join(file_safe(&manifest.to_string()))
    }

    fn read(path: &Path, reference: &Reference) -> Result<StoredManifest> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotFound {
                    reference: reference.to_string(),
                })
            }
            Err(e) => return Err(io_error("read", path, e)),
        };
        serde_json::from_slice(&bytes).map_err(|source| Error::InvalidManifestFile {
            path: path.to_path_buf(),
            source,
        })
    }

    /// The member `manifest` of `list`; [`Error::NotFound`] when it is not there.
    pub fn get(&self, list: &Reference, manifest: &Reference) -> Result<StoredManifest> {
        Self::read(&self.manifest_path(list, manifest), manifest)
    }

    /// Every member of `list`, in file-name order; [`Error::NotFound`] (`No such manifest`)
    /// when there is no list.
    pub fn get_list(&self, list: &Reference) -> Result<Vec<StoredManifest>> {
        let dir = self.list_dir(list);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotFound {
                    reference: list.to_string(),
                })
            }
            Err(e) => return Err(io_error("read", &dir, e)),
        };
        let mut paths = entries
            .map(|e| e.map(|e| e.path()))
            .collect::<std::io::Result<Vec<_>>>()
            .map_err(|e| io_error("read", &dir, e))?;
        paths.sort();
        paths.iter().map(|p| Self::read(p, list)).collect()
    }

    /// Stores `stored` as the member `manifest` of `list`.
    pub fn save(
        &self,
        list: &Reference,
        manifest: &Reference,
        stored: &StoredManifest,
    ) -> Result<()> {
        let dir = self.list_dir(list);
        std::fs::create_dir_all(&dir).map_err(|e| io_error("create", &dir, e))?;
        let path = self.manifest_path(list, manifest);
        let bytes = serde_json::to_vec(stored).map_err(|source| Error::InvalidJson {
            kind: "manifest",
            source,
        })?;
        let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
        std::fs::write(&tmp, bytes)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| io_error("write", &path, e))
    }

    /// Removes `list` and its members.
    pub fn remove(&self, list: &Reference) -> Result<()> {
        let dir = self.list_dir(list);
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_error("remove", &dir, e)),
            _ => Ok(()),
        }
    }
}

fn io_error(action: &'static str, path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// Fetches an image manifest (not a list) with the platform of its config, as docker's
/// registry client does.
async fn fetch_image_manifest<R: Remote>(
    remote: &R,
    reference: &Reference,
) -> Result<StoredManifest> {
    let fetched = remote.resolve(reference).await?;
    let mut descriptor = fetched.descriptor.clone();
    if descriptor.media_type.as_str().is_empty() {
        descriptor.media_type = manifest_json::detect_media_type(&fetched.bytes)?;
    }
    if manifest_json::is_index(&descriptor.media_type) {
        return Err(Error::IsManifestList {
            reference: reference.clone(),
        });
    }
    if !manifest_json::is_image_manifest(&descriptor.media_type) {
        return Err(Error::NotAManifest {
            reference: reference.clone(),
        });
    }
    let manifest = manifest_json::parse_manifest(&fetched.bytes)?;
    let config = remote
        .fetch_blob_bytes(reference, &manifest.config, MAX_CONFIG_SIZE)
        .await?;
    descriptor.platform = Some(ConfigPlatform::parse(&config)?.to_platform());
    StoredManifest::new(reference, descriptor, &fetched.bytes)
}

/// `docker manifest create LIST MANIFEST...`: the message printed on success.
pub async fn create<R: Remote>(
    store: &ManifestListStore,
    remote: &R,
    list: &str,
    manifests: &[String],
    amend: bool,
) -> Result<String> {
    let target = normalize_reference(list).map_err(|err| Error::InvalidListName {
        list: list.to_owned(),
        source: Box::new(err),
    })?;
    match store.get_list(&target) {
        Ok(_) if !amend => return Err(Error::ListExists),
        Ok(_) | Err(Error::NotFound { .. }) => {}
        Err(e) => return Err(e),
    }
    for text in manifests {
        let reference = normalize_reference(text)?;
        let stored = match store.get(&target, &reference) {
            Ok(s) if !s.raw.is_empty() => s,
            Ok(_) | Err(Error::NotFound { .. }) => fetch_image_manifest(remote, &reference).await?,
            Err(e) => return Err(e),
        };
        store.save(&target, &reference, &stored)?;
    }
    Ok(format!("Created manifest list {target}"))
}

/// The `--os`, `--arch`, ... of `manifest annotate`.
#[derive(Debug, Clone, Default)]
pub struct Annotation {
    /// `--os`.
    pub os: String,
    /// `--arch`.
    pub arch: String,
    /// `--variant`.
    pub variant: String,
    /// `--os-version`.
    pub os_version: String,
    /// `--os-features` (added when not yet present).
    pub os_features: Vec<String>,
}

/// The os/arch pairs docker accepts in `manifest annotate` (Go's supported ports).
const VALID_OS_ARCH: &[(&str, &str)] = &[
    ("darwin", "386"),
    ("darwin", "amd64"),
    ("darwin", "arm"),
    ("darwin", "arm64"),
    ("dragonfly", "amd64"),
    ("freebsd", "386"),
    ("freebsd", "amd64"),
    ("freebsd", "arm"),
    ("linux", "386"),
    ("linux", "amd64"),
    ("linux", "arm"),
    ("linux", "arm64"),
    ("linux", "ppc64le"),
    ("linux", "mips64"),
    ("linux", "mips64le"),
    ("linux", "riscv64"),
    ("linux", "s390x"),
    ("netbsd", "386"),
    ("netbsd", "amd64"),
    ("netbsd", "arm"),
    ("openbsd", "386"),
    ("openbsd", "amd64"),
    ("openbsd", "arm"),
    ("plan9", "386"),
    ("plan9", "amd64"),
    ("solaris", "amd64"),
    ("windows", "386"),
    ("windows", "amd64"),
];

/// `docker manifest annotate LIST MANIFEST --os ... --arch ...`.
pub fn annotate(
    store: &ManifestListStore,
    list: &str,
    manifest: &str,
    annotation: &Annotation,
) -> Result<()> {
    let parse = |what: &'static str, name: &str| {
        normalize_reference(name).map_err(|err| Error::InvalidAnnotateName {
            what,
            name: name.to_owned(),
            source: Box::new(err),
        })
    };
    let target = parse("manifest list", list)?;
    let image = parse("manifest", manifest)?;
    let mut stored = match store.get(&target, &image) {
        Ok(s) => s,
        Err(Error::NotFound { .. }) => {
            return Err(Error::NotInList {
                manifest: manifest.to_owned(),
                list: list.to_owned(),
            })
        }
        Err(e) => return Err(e),
    };
    let platform = stored
        .descriptor
        .platform
        .get_or_insert_with(Platform::default);
    if !annotation.os.is_empty() {
        platform.os = annotation.os.clone();
    }
    if !annotation.arch.is_empty() {
        platform.architecture = annotation.arch.clone();
    }
    for feature in &annotation.os_features {
        if !platform.os_features.contains(feature) {
            platform.os_features.push(feature.clone());
        }
    }
    if !annotation.variant.is_empty() {
        platform.variant = annotation.variant.clone();
    }
    if !annotation.os_version.is_empty() {
        platform.os_version = annotation.os_version.clone();
    }
    if !VALID_OS_ARCH.contains(&(platform.os.as_str(), platform.architecture.as_str())) {
        return Err(Error::UnsupportedPlatform {
            os: annotation.os.clone(),
            arch: annotation.arch.clone(),
        });
    }
    store.save(&target, &image, &stored)
}

/// A Docker manifest list entry: descriptor fields, then the platform (always present).
#[derive(Debug, Serialize)]
struct ListEntry {
    #[serde(rename = "mediaType")]
    media_type: MediaType,
    size: u64,
    digest: hoist_oci::Digest,
    platform: Platform,
}

#[derive(Debug, Serialize)]
struct DockerList {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType")]
    media_type: MediaType,
    manifests: Vec<ListEntry>,
}

/// distribution's `manifestlist.FromDescriptors`: the list docker pushes and prints,
/// indented with three spaces.
fn docker_list_bytes(entries: Vec<ListEntry>) -> Result<Vec<u8>> {
    to_go_json(
        &DockerList {
            schema_version: 2,
            media_type: MediaType::DockerManifestList,
            manifests: entries,
        },
        "   ",
    )
}

fn list_entry(target: &Reference, stored: &StoredManifest) -> Result<ListEntry> {
    let member = Reference::parse_normalized(&stored.reference)?;
    if member.domain() != target.domain() {
        return Err(Error::OtherRegistry {
            member: member.domain().to_owned(),
            target: target.domain().to_owned(),
        });
    }
    Ok(ListEntry {
        media_type: stored.descriptor.media_type.clone(),
        size: stored.descriptor.size,
        digest: stored.descriptor.digest.clone(),
        platform: stored.descriptor.platform.clone().unwrap_or_default(),
    })
}

/// Go's `json.Indent(raw, "", "\t")`: the same keys and values, tab-indented.
fn tab_indent(raw: &[u8]) -> Result<String> {
    let value: serde_json::Value = manifest_json::parse_json(raw, "manifest")?;
    to_go_json_string(&value, "\t")
}

fn print_manifest(stored: &StoredManifest, verbose: bool) -> Result<String> {
    if verbose {
        return Ok(format!("{}\n", to_go_json_string(stored, "\t")?));
    }
    Ok(format!("{}\n", tab_indent(&stored.raw_bytes()?)?))
}

fn print_list(target: &Reference, list: &[StoredManifest], verbose: bool) -> Result<String> {
    if verbose {
        return Ok(format!("{}\n", to_go_json_string(list, "\t")?));
    }
    let entries = list
        .iter()
        .map(|m| list_entry(target, m))
        .collect::<Result<Vec<_>>>()?;
    Ok(format!(
        "{}\n",
        String::from_utf8_lossy(&docker_list_bytes(entries)?)
    ))
}

/// `docker manifest inspect [LIST] MANIFEST [--verbose]`: what it prints.
pub async fn inspect<R: Remote>(
    store: &ManifestListStore,
    remote: &R,
    list: Option<&str>,
    manifest: &str,
    verbose: bool,
) -> Result<String> {
    let named = normalize_reference(manifest)?;
    if let Some(list) = list {
        let list = normalize_reference(list)?;
        return print_manifest(&store.get(&list, &named)?, verbose);
    }
    match store.get_list(&named) {
        Ok(local) => return print_list(&named, &local, verbose),
        Err(Error::NotFound { .. }) => {}
        Err(e) => return Err(e),
    }
    let fetched = remote.resolve(&named).await?;
    let media_type = if fetched.descriptor.media_type.as_str().is_empty() {
        manifest_json::detect_media_type(&fetched.bytes)?
    } else {
        fetched.descriptor.media_type.clone()
    };
    if !manifest_json::is_index(&media_type) {
        let stored = fetch_image_manifest(remote, &named).await?;
        return print_manifest(&stored, verbose);
    }
    let index = manifest_json::parse_index(&fetched.bytes)?;
    let mut members = Vec::new();
    for child in &index.manifests {
        let child_ref = named.with_digest(child.digest.clone());
        let got = remote.fetch_manifest(&named, child).await?;
        let mut descriptor = got.descriptor.clone();
        descriptor.media_type = child.media_type.clone();
        descriptor.platform = child.platform.clone();
        members.push(StoredManifest::new(&child_ref, descriptor, &got.bytes)?);
    }
    print_list(&named, &members, verbose)
}

/// `docker manifest push [--purge] LIST`: the lines printed (one per member pushed into
/// the target repository, then the list's digest).
pub async fn push<R: Remote>(
    store: &ManifestListStore,
    remote: &R,
    list: &str,
    purge: bool,
) -> Result<String> {
    let target = normalize_reference(list)?;
    let members = store.get_list(&target)?;
    if members.is_empty() {
        return Err(Error::EmptyList { reference: target });
    }
    let mut entries = Vec::new();
    for m in &members {
        let p = m.descriptor.platform.as_ref();
        if p.is_none_or(|p| p.architecture.is_empty() || p.os.is_empty()) {
            return Err(Error::NoPlatform {
                reference: m.reference.clone(),
            });
        }
        entries.push(list_entry(&target, m)?);
    }
    let mut out = String::new();
    for m in &members {
        let member = Reference::parse_normalized(&m.reference)?;
        if member.name() == target.name() {
            continue;
        }
        // Blobs are mounted (same registry) and the manifest put by digest into the target.
        copy_chain(remote, &member, &m.descriptor, &target).await?;
        let pushed = target
            .without_tag()
            .without_digest()
            .with_digest(m.descriptor.digest.clone());
        out.push_str(&format!(
            "Pushed ref {pushed} with digest: {}\n",
            m.descriptor.digest
        ));
    }
    let bytes = docker_list_bytes(entries)?;
    let desc = remote
        .push_manifest(&target, bytes, &MediaType::DockerManifestList)
        .await?;
    out.push_str(&format!("{}\n", desc.digest));
    if purge {
        store.remove(&target)?;
    }
    Ok(out)
}

/// `docker manifest rm LIST...`: every list that exists is removed; the errors of the
/// others are joined, one per line.
pub fn remove(store: &ManifestListStore, lists: &[String]) -> Result<()> {
    let mut errors = Vec::new();
    for list in lists {
        let result = normalize_reference(list).and_then(|target| {
            store.get_list(&target)?;
            store.remove(&target)
        });
        if let Err(e) = result {
            errors.push(e);
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::Remove(errors))
    }
}

#[cfg(test)]
mod tests;
