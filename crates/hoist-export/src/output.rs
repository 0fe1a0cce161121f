//! [`Output`]: one `-o`/`--output` value of `hoist build`, typed, with buildx's parsing rules
//! ([`Output::parse`], [`Output::push_shorthand`], [`Output::load_shorthand`]).
//!
//! The grammar is buildx's: comma-separated `key=value` fields (CSV, so a value holding a comma
//! is quoted: `"name=a,b"`); `type=` picks the exporter; a value without `=` is a shorthand
//! (`-o dir` is `type=local,dest=dir`, `-o -` is `type=tar,dest=-`). Every key an exporter
//! does not know, and every value that does not parse, is an [`Error::OutputKey`] naming it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use hoist_dockerfile::go_csv::{self, CsvError};
use hoist_oci::annotations::{self, AnnotationType};
use hoist_oci::{Compression, Platform, Reference};

use crate::error::{Error, Result};

/// One output of a build: which exporter, with its options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// `type=image` (and `type=registry`, which is `type=image,push=true`): the image is
    /// stored in the content store under its names and optionally pushed.
    Image(ImageOutput),
    /// `type=oci`: an OCI image layout, as a tar or a directory.
    Oci(OciOutput),
    /// `type=docker`: a docker-archive tar, or loaded into the local Docker daemon.
    Docker(DockerOutput),
    /// `type=local`: the final filesystem copied into a directory.
    Local(LocalOutput),
    /// `type=tar`: the final filesystem as a tar.
    Tar(TarOutput),
    /// `type=cacheonly`: nothing is exported (the build only fills the cache).
    CacheOnly,
}

/// `type=image` / `type=registry` options.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImageOutput {
    /// `name=`: the image names (tags), comma-separated in the option.
    pub names: Vec<Reference>,
    /// `push=true`: push every name to its registry.
    pub push: bool,
    /// `push-by-digest=true`: push without tags (the manifest or index by digest only).
    pub push_by_digest: bool,
    /// `insecure=true` / `registry.insecure=true`: the registry may be plain HTTP or have an
    /// untrusted certificate. The caller applies it to the registry client's configuration.
    pub insecure: bool,
    /// `store=false`: do not name the image in the content store (it is still written there,
    /// as pushing reads from it).
    pub store: bool,
    /// Manifest media types and layer compression.
    pub format: ImageFormat,
    /// `annotation*.` options.
    pub annotations: Annotations,
}

/// Where a file output goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileDest {
    /// `dest=-`: standard output (refused when it is a terminal, as buildx does).
    Stdout,
    /// `dest=<file>`.
    File(PathBuf),
}

/// `type=oci` options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciOutput {
    /// `dest=` with `tar=true` (the default): a file or stdout; with `tar=false`: a directory.
    pub dest: LayoutDest,
    /// `name=`: names written as `org.opencontainers.image.ref.name` (the tag) and
    /// `io.containerd.image.name` annotations in `index.json`.
    pub names: Vec<Reference>,
    /// Manifest media types and layer compression.
    pub format: ImageFormat,
    /// `annotation*.` options.
    pub annotations: Annotations,
}

/// Where an OCI layout goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayoutDest {
    /// `tar=true`: a tar.
    Tar(FileDest),
    /// `tar=false`: a directory (an existing layout there is added to).
    Dir(PathBuf),
}

/// `type=docker` options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerOutput {
    /// `dest=`: a docker-archive file or stdout; absent: load into the Docker daemon.
    pub dest: DockerDest,
    /// `name=`: the archive's `RepoTags`.
    pub names: Vec<Reference>,
    /// Manifest media types and layer compression (Docker media types by default).
    pub format: ImageFormat,
    /// `annotation*.` options.
    pub annotations: Annotations,
}

/// Where a docker-archive goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DockerDest {
    /// No `dest`: `POST /images/load` to the Docker daemon's API socket.
    Load,
    /// `dest=<file>` or `dest=-`.
    File(FileDest),
}

/// `type=local` options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalOutput {
    /// `dest=`: the directory.
    pub dest: PathBuf,
    /// `platform-split=`: one folder per platform (`linux_amd64/`). `None` (the default)
    /// splits when more than one platform is built.
    pub platform_split: Option<bool>,
}

/// `type=tar` options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TarOutput {
    /// `dest=`: a file, or `-` (the default) for stdout.
    pub dest: FileDest,
    /// `platform-split=`, as for [`LocalOutput::platform_split`].
    pub platform_split: Option<bool>,
}

/// Manifest media types and layer compression of an image output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageFormat {
    /// `oci-mediatypes=`: OCI manifests, index and layer types (true), or Docker schema 2
    /// manifests, manifest list and layer types (false).
    pub oci_media_types: bool,
    /// `compression=gzip|zstd|uncompressed` (gzip by default).
    pub compression: Compression,
    /// `compression-level=N`.
    pub compression_level: Option<i32>,
    /// `force-compression=true`: recompress every layer, even one already in the wanted
    /// compression (without it, only layers in another compression are converted).
    pub force_compression: bool,
    /// `rewrite-timestamp=true`: every file time in the layers that is later than the
    /// build's `SOURCE_DATE_EPOCH` becomes the epoch (the layers are rewritten at export;
    /// the base image's own layers are kept). Without an epoch it does nothing.
    pub rewrite_timestamp: bool,
}

impl ImageFormat {
    /// OCI media types, gzip.
    pub const OCI: ImageFormat = ImageFormat {
        oci_media_types: true,
        compression: Compression::Gzip,
        compression_level: None,
        force_compression: false,
        rewrite_timestamp: false,
    };

    /// Docker media types, gzip.
    pub const DOCKER: ImageFormat = ImageFormat {
        oci_media_types: false,
        ..ImageFormat::OCI
    };
}

impl Default for ImageFormat {
    fn default() -> Self {
        ImageFormat::OCI
    }
}

/// Which document an annotation goes on (BuildKit's `annotation-<type>.key=value`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AnnotationTarget {
    /// `annotation.` or `annotation-manifest.`: each platform's manifest.
    Manifest,
    /// `annotation-manifest-descriptor.`: each manifest's descriptor in the index.
    ManifestDescriptor,
    /// `annotation-index.`: the index.
    Index,
    /// `annotation-index-descriptor.`: the index's descriptor (in an OCI layout's
    /// `index.json`).
    IndexDescriptor,
}

/// One annotation option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Annotation {
    /// Which document it goes on.
    pub target: AnnotationTarget,
    /// `annotation[linux/amd64].key`: only for this platform (manifest targets only).
    pub platform: Option<Platform>,
    /// The annotation key.
    pub key: String,
    /// Its value.
    pub value: String,
}

/// The annotation options of an output, in the order given.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Annotations(pub Vec<Annotation>);

impl Annotations {
    /// The annotations for `target` (and, for manifest targets, `platform`).
    pub fn for_target(
        &self,
        target: AnnotationTarget,
        platform: Option<&Platform>,
    ) -> BTreeMap<String, String> {
        self.0
            .iter()
            .filter(|a| a.target == target)
            .filter(|a| match (&a.platform, platform) {
                (None, _) => true,
                (Some(want), Some(p)) => want.normalize() == p.normalize(),
                (Some(_), None) => false,
            })
            .map(|a| (a.key.clone(), a.value.clone()))
            .collect()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether any goes on an index or a descriptor: BuildKit then writes OCI media types
    /// whatever `oci-mediatypes` says (Docker's manifest list and descriptors have no
    /// annotations); manifest annotations alone keep the format asked for.
    pub fn need_oci_types(&self) -> bool {
        self.0
            .iter()
            .any(|a| a.target != AnnotationTarget::Manifest)
    }

    /// `hoist build --annotation` values as buildx reads them: `KEY=VALUE` (a manifest
    /// annotation), or `TYPES:KEY=VALUE` where `TYPES` is a comma-separated list of
    /// `manifest`, `index`, `manifest-descriptor` or `index-descriptor`, each with an
    /// optional platform in brackets (`manifest[linux/arm64]`); one annotation per type.
    pub fn parse_flags<S: AsRef<str>>(values: &[S]) -> Result<Annotations> {
        let mut out = Vec::new();
        for value in values.iter().map(AsRef::as_ref) {
            let bad = |reason: String| Error::AnnotationFlag {
                value: value.to_owned(),
                reason,
            };
            let flags =
                annotations::parse_annotation_flag(value).map_err(|e| bad(e.to_string()))?;
            for flag in flags {
                let target = match flag.kind {
                    None | Some(AnnotationType::Manifest) => AnnotationTarget::Manifest,
                    Some(AnnotationType::ManifestDescriptor) => {
                        AnnotationTarget::ManifestDescriptor
                    }
                    Some(AnnotationType::Index) => AnnotationTarget::Index,
                    Some(AnnotationType::IndexDescriptor) => AnnotationTarget::IndexDescriptor,
                };
                if flag.platform.is_some()
                    && matches!(
                        target,
                        AnnotationTarget::Index | AnnotationTarget::IndexDescriptor
                    )
                {
                    let name = if target == AnnotationTarget::Index {
                        "index"
                    } else {
                        "index-descriptor"
                    };
                    return Err(bad(format!(
                        "a platform cannot be given for {name} annotations"
                    )));
                }
                out.push(Annotation {
                    target,
                    platform: flag.platform,
                    key: flag.key,
                    value: flag.value,
                });
            }
        }
        Ok(Annotations(out))
    }

    /// Adds `more` after these (a later value for the same key and target wins).
    pub fn extend(&mut self, more: &Annotations) {
        self.0.extend(more.0.iter().cloned());
    }

    /// Refuses what BuildKit refuses for an export of `platforms`: index annotations when
    /// the result is a single manifest, and an annotation for a platform not built.
    pub(crate) fn check(&self, platforms: &[Platform]) -> Result<()> {
        if platforms.len() == 1
            && self.0.iter().any(|a| {
                matches!(
                    a.target,
                    AnnotationTarget::Index | AnnotationTarget::IndexDescriptor
                )
            })
        {
            return Err(Error::Unsupported(
                "index annotations not supported for single platform export".into(),
            ));
        }
        for wanted in self.0.iter().filter_map(|a| a.platform.as_ref()) {
            if !platforms
                .iter()
                .any(|p| p.normalize() == wanted.normalize())
            {
                return Err(Error::Unsupported(format!(
                    "invalid annotation: no platform {} found in source",
                    wanted.format()
                )));
            }
        }
        Ok(())
    }
}

/// buildx's `[A-Za-z0-9_/-]+` inside an annotation type's brackets.
/// buildx's message when `--load` (a docker output without `dest`) gets several platforms.
pub(crate) const DOCKER_LOAD_MANIFEST_LISTS: &str =
    "docker exporter does not currently support exporting manifest lists";

/// buildx's message when a docker archive (`dest=`) gets several platforms.
pub(crate) const DOCKER_ARCHIVE_MANIFEST_LISTS: &str =
    "docker exporter does not support exporting manifest lists, use the oci exporter instead";

/// The exporter type names, as `type=` spells them.
const TYPES: &str = "image, registry, oci, docker, local, tar, cacheonly";

impl Output {
    /// Parses one `-o` value: `type=oci,dest=out.tar`, `type=registry,name=r/app:1`, or a
    /// shorthand (`dir` → `type=local,dest=dir`; `-` → `type=tar,dest=-`).
    pub fn parse(spec: &str) -> Result<Output> {
        let fields = split_fields(spec)?;
        if fields.len() == 1 && !fields[0].contains('=') {
            let dest = &fields[0];
            return Ok(if dest == "-" {
                Output::Tar(TarOutput {
                    dest: FileDest::Stdout,
                    platform_split: None,
                })
            } else {
                Output::Local(LocalOutput {
                    dest: PathBuf::from(dest),
                    platform_split: None,
                })
            });
        }
        let mut kind = None;
        let mut attrs: Vec<(String, String)> = Vec::new();
        for field in &fields {
            let Some((key, value)) = field.split_once('=') else {
                // `name=a,b` unquoted: a bare field right after `name=` is another name.
                if let Some((last_key, names)) = attrs.last_mut() {
                    if last_key == "name" && !field.is_empty() {
                        names.push(',');
                        names.push_str(field);
                        continue;
                    }
                }
                return Err(Error::OutputSyntax {
                    spec: spec.to_owned(),
                    reason: format!("invalid value {field:?}, expected key=value"),
                });
            };
            // buildx lower-cases keys; annotation keys keep the case written.
            let key = key.trim();
            let key = if key.to_ascii_lowercase().starts_with("annotation") {
                let (head, rest) = key.split_once('.').unwrap_or((key, ""));
                format!("{}.{rest}", head.to_ascii_lowercase())
            } else {
                key.to_ascii_lowercase()
            };
            if key == "type" {
                kind = Some(value.to_owned());
            } else {
                attrs.push((key, value.to_owned()));
            }
        }
        let Some(kind) = kind else {
            return Err(Error::OutputSyntax {
                spec: spec.to_owned(),
                reason: "type is required for output".into(),
            });
        };
        let mut attrs = Attrs::new(&kind, attrs);
        let output = match kind.as_str() {
            "image" => Output::Image(parse_image(&mut attrs, false)?),
            "registry" => Output::Image(parse_image(&mut attrs, true)?),
            "oci" => Output::Oci(parse_oci(&mut attrs)?),
            "docker" => Output::Docker(parse_docker(&mut attrs)?),
            "local" => Output::Local(parse_local(&mut attrs)?),
            "tar" => Output::Tar(parse_tar(&mut attrs)?),
            "cacheonly" => Output::CacheOnly,
            other => {
                return Err(Error::OutputSyntax {
                    spec: spec.to_owned(),
                    reason: format!("unknown output type {other:?} (known: {TYPES})"),
                })
            }
        };
        attrs.finish()?;
        Ok(output)
    }

    /// Parses several `-o` values; at most one may write to standard output.
    pub fn parse_all<S: AsRef<str>>(specs: &[S]) -> Result<Vec<Output>> {
        let outputs = specs
            .iter()
            .map(|s| Output::parse(s.as_ref()))
            .collect::<Result<Vec<_>>>()?;
        if outputs.iter().filter(|o| o.writes_stdout()).count() > 1 {
            return Err(Error::MultipleStdout);
        }
        Ok(outputs)
    }

    /// `--push`: `type=registry` with the `-t` names.
    pub fn push_shorthand(tags: &[Reference]) -> Output {
        Output::Image(ImageOutput {
            names: tags.to_vec(),
            push: true,
            store: true,
            ..ImageOutput::default()
        })
    }

    /// `--load`: `type=docker` into the daemon, with the `-t` names.
    pub fn load_shorthand(tags: &[Reference]) -> Output {
        Output::Docker(DockerOutput {
            dest: DockerDest::Load,
            names: tags.to_vec(),
            format: ImageFormat::DOCKER,
            annotations: Annotations::default(),
        })
    }

    /// Gives the `-t` tags as names to an image-shaped output that has none (`image`,
    /// `oci`, `docker`), as buildx does; `local` and `tar` outputs have no names.
    pub fn apply_tags(&mut self, tags: &[Reference]) {
        let names = match self {
            Output::Image(o) => &mut o.names,
            Output::Oci(o) => &mut o.names,
            Output::Docker(o) => &mut o.names,
            Output::Local(_) | Output::Tar(_) | Output::CacheOnly => return,
        };
        if names.is_empty() {
            *names = tags.to_vec();
        }
    }

    /// The annotation options of an image-shaped output (`image`, `oci`, `docker`).
    pub fn annotations(&self) -> Option<&Annotations> {
        match self {
            Output::Image(o) => Some(&o.annotations),
            Output::Oci(o) => Some(&o.annotations),
            Output::Docker(o) => Some(&o.annotations),
            Output::Local(_) | Output::Tar(_) | Output::CacheOnly => None,
        }
    }

    /// Adds `--annotation` values to an image-shaped output, after its own `annotation*.`
    /// options, as buildx adds them to every output's attributes; outputs without a
    /// manifest (`local`, `tar`, `cacheonly`) have nothing to annotate.
    pub fn add_annotations(&mut self, more: &Annotations) {
        let annotations = match self {
            Output::Image(o) => &mut o.annotations,
            Output::Oci(o) => &mut o.annotations,
            Output::Docker(o) => &mut o.annotations,
            Output::Local(_) | Output::Tar(_) | Output::CacheOnly => return,
        };
        annotations.extend(more);
    }

    /// The `type=` name of this output's exporter.
    pub fn type_name(&self) -> &'static str {
        match self {
            Output::Image(_) => "image",
            Output::Oci(_) => "oci",
            Output::Docker(_) => "docker",
            Output::Local(_) => "local",
            Output::Tar(_) => "tar",
            Output::CacheOnly => "cacheonly",
        }
    }

    /// The step BuildKit's exporter shows in progress (its `Name()`); `None` for
    /// `cacheonly`, which exports nothing.
    pub fn progress_name(&self) -> Option<&'static str> {
        match self {
            Output::Image(_) => Some("exporting to image"),
            Output::Oci(_) => Some("exporting to oci image format"),
            Output::Docker(_) => Some("exporting to docker image format"),
            Output::Local(_) => Some("exporting to client directory"),
            Output::Tar(_) => Some("exporting to client tarball"),
            Output::CacheOnly => None,
        }
    }

    /// Refuses, as buildx does before anything is built, an output that cannot hold the
    /// images of `platforms` target platforms: a docker archive, or an image loaded into the
    /// daemon, is one image and never a manifest list.
    pub fn check_platform_count(&self, platforms: usize) -> Result<()> {
        match self {
            Output::Docker(docker) if platforms > 1 => Err(Error::Unsupported(
                match docker.dest {
                    DockerDest::Load => DOCKER_LOAD_MANIFEST_LISTS,
                    DockerDest::File(_) => DOCKER_ARCHIVE_MANIFEST_LISTS,
                }
                .into(),
            )),
            _ => Ok(()),
        }
    }

    /// Whether this output writes to standard output.
    pub fn writes_stdout(&self) -> bool {
        matches!(
            self,
            Output::Oci(OciOutput {
                dest: LayoutDest::Tar(FileDest::Stdout),
                ..
            }) | Output::Docker(DockerOutput {
                dest: DockerDest::File(FileDest::Stdout),
                ..
            }) | Output::Tar(TarOutput {
                dest: FileDest::Stdout,
                ..
            })
        )
    }
}

/// Splits an output spec into its CSV fields as buildx does (Go's `encoding/csv`, so a bare
/// `"` inside an unquoted field is refused); a spec of nothing but empty fields is no output.
fn split_fields(spec: &str) -> Result<Vec<String>> {
    let syntax = |reason: String| Error::OutputSyntax {
        spec: spec.to_owned(),
        reason,
    };
    let fields = go_csv::fields(spec).map_err(|e| {
        syntax(match e {
            CsvError::Unterminated => "unterminated quoted field".into(),
            CsvError::AfterQuote(c) => format!("unexpected {c:?} after a quoted field"),
            CsvError::BareQuote => e.to_string(),
        })
    })?;
    if fields.iter().all(|f| f.is_empty()) {
        return Err(syntax("empty output".into()));
    }
    Ok(fields)
}

/// The `key=value` fields of one output, consumed as the exporter reads them; what is left
/// at the end is an unknown key.
struct Attrs {
    kind: String,
    fields: Vec<(String, String)>,
}

impl Attrs {
    fn new(kind: &str, fields: Vec<(String, String)>) -> Self {
        Self {
            kind: kind.to_owned(),
            fields,
        }
    }

    fn bad(&self, key: &str, value: &str, reason: impl Into<String>) -> Error {
        Error::OutputKey {
            output: self.kind.clone(),
            key: key.to_owned(),
            value: value.to_owned(),
            reason: reason.into(),
        }
    }

    /// Removes `key` and returns its (last) value.
    fn take(&mut self, key: &str) -> Option<String> {
        let mut found = None;
        self.fields.retain(|(k, v)| {
            if k == key {
                found = Some(v.clone());
                false
            } else {
                true
            }
        });
        found
    }

    /// A boolean as Go's `strconv.ParseBool` reads it.
    fn take_bool(&mut self, key: &str) -> Result<Option<bool>> {
        let Some(value) = self.take(key) else {
            return Ok(None);
        };
        match value.as_str() {
            "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(Some(true)),
            "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(Some(false)),
            // BuildKit treats a bare `key=` as true for its boolean flags.
            "" => Ok(Some(true)),
            _ => Err(self.bad(key, &value, "expected true or false")),
        }
    }

    fn take_names(&mut self) -> Result<Vec<Reference>> {
        let Some(value) = self.take("name") else {
            return Ok(Vec::new());
        };
        let mut names = Vec::new();
        for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let reference = Reference::parse_docker(name)
                .map_err(|e| self.bad("name", name, format!("invalid image name: {e}")))?;
            names.push(reference);
        }
        Ok(names)
    }

    fn take_format(&mut self, default: ImageFormat) -> Result<ImageFormat> {
        let mut format = default;
        if let Some(oci) = self.take_bool("oci-mediatypes")? {
            format.oci_media_types = oci;
        }
        if let Some(value) = self.take("compression") {
            format.compression = match value.as_str() {
                "gzip" => Compression::Gzip,
                "zstd" => Compression::Zstd,
                "uncompressed" => Compression::None,
                // BuildKit's estargz is a gzip variant with a table of contents; hoist does
                // not write it.
                _ => {
                    return Err(self.bad(
                        "compression",
                        &value,
                        "expected gzip, zstd or uncompressed",
                    ))
                }
            };
        }
        if let Some(value) = self.take("compression-level") {
            let level: i32 = value
                .parse()
                .map_err(|_| self.bad("compression-level", &value, "expected an integer"))?;
            let range = match format.compression {
                Compression::Gzip => 0..=9,
                Compression::Zstd => 1..=22,
                Compression::None => i32::MIN..=i32::MAX,
            };
            if !range.contains(&level) {
                return Err(self.bad(
                    "compression-level",
                    &value,
                    format!(
                        "out of range {}..={} for this compression",
                        range.start(),
                        range.end()
                    ),
                ));
            }
            format.compression_level = Some(level);
        }
        if let Some(force) = self.take_bool("force-compression")? {
            format.force_compression = force;
        }
        if let Some(rewrite) = self.take_bool("rewrite-timestamp")? {
            format.rewrite_timestamp = rewrite;
        }
        Ok(format)
    }

    fn take_annotations(&mut self) -> Result<Annotations> {
        let mut annotations = Vec::new();
        let mut rest = Vec::new();
        for (key, value) in std::mem::take(&mut self.fields) {
            if key.starts_with("annotation") {
                annotations.push(self.parse_annotation(&key, value)?);
            } else {
                rest.push((key, value));
            }
        }
        self.fields = rest;
        Ok(Annotations(annotations))
    }

    /// `annotation[-type][\[platform\]].key=value`.
    fn parse_annotation(&self, key: &str, value: String) -> Result<Annotation> {
        let Some((head, name)) = key.split_once('.') else {
            return Err(self.bad(key, &value, "unknown key"));
        };
        if name.is_empty() {
            return Err(self.bad(key, &value, "annotation key is empty"));
        }
        let (head, platform) = match head.split_once('[') {
            Some((head, rest)) => {
                let Some(spec) = rest.strip_suffix(']') else {
                    return Err(self.bad(key, &value, "unterminated [platform]"));
                };
                let platform = Platform::parse(spec)
                    .map_err(|e| self.bad(key, &value, format!("invalid platform: {e}")))?;
                (head, Some(platform))
            }
            None => (head, None),
        };
        let target = match head {
            "annotation" | "annotation-manifest" => AnnotationTarget::Manifest,
            "annotation-manifest-descriptor" => AnnotationTarget::ManifestDescriptor,
            "annotation-index" => AnnotationTarget::Index,
            "annotation-index-descriptor" => AnnotationTarget::IndexDescriptor,
            _ => return Err(self.bad(key, &value, "unknown annotation type")),
        };
        if platform.is_some()
            && matches!(
                target,
                AnnotationTarget::Index | AnnotationTarget::IndexDescriptor
            )
        {
            return Err(self.bad(
                key,
                &value,
                "a platform cannot be given for index annotations",
            ));
        }
        Ok(Annotation {
            target,
            platform,
            key: name.to_owned(),
            value,
        })
    }

    fn take_file_dest(&mut self, default_stdout: bool) -> Option<FileDest> {
        match self.take("dest") {
            Some(d) if d == "-" => Some(FileDest::Stdout),
            Some(d) if !d.is_empty() => Some(FileDest::File(PathBuf::from(d))),
            _ => default_stdout.then_some(FileDest::Stdout),
        }
    }

    fn take_dir_dest(&mut self) -> Result<PathBuf> {
        match self.take("dest") {
            Some(d) if d == "-" => Err(Error::OutputDest {
                output: self.kind.clone(),
                reason: format!("dest cannot be stdout for {} exporter", self.kind),
            }),
            Some(d) if !d.is_empty() => Ok(PathBuf::from(d)),
            _ => Err(Error::OutputDest {
                output: self.kind.clone(),
                reason: format!("dest is required for {} exporter", self.kind),
            }),
        }
    }

    fn finish(self) -> Result<()> {
        match self.fields.first() {
            Some((key, value)) => Err(self.bad(key, value, "unknown key")),
            None => Ok(()),
        }
    }
}

fn parse_image(attrs: &mut Attrs, registry: bool) -> Result<ImageOutput> {
    let names = attrs.take_names()?;
    let push = attrs.take_bool("push")?.unwrap_or(false) || registry;
    let push_by_digest = attrs.take_bool("push-by-digest")?.unwrap_or(false);
    let insecure = attrs.take_bool("insecure")?.unwrap_or(false)
        | attrs.take_bool("registry.insecure")?.unwrap_or(false);
    let store = attrs.take_bool("store")?.unwrap_or(true);
    let format = attrs.take_format(ImageFormat::OCI)?;
    let annotations = attrs.take_annotations()?;
    if push && names.is_empty() {
        return Err(Error::OutputDest {
            output: attrs.kind.clone(),
            reason: "push requires at least one name (name=registry/repository:tag)".into(),
        });
    }
    Ok(ImageOutput {
        names,
        push,
        push_by_digest,
        insecure,
        store,
        format,
        annotations,
    })
}

fn parse_oci(attrs: &mut Attrs) -> Result<OciOutput> {
    let names = attrs.take_names()?;
    let tar = attrs.take_bool("tar")?.unwrap_or(true);
    let dest = if tar {
        LayoutDest::Tar(attrs.take_file_dest(true).unwrap_or(FileDest::Stdout))
    } else {
        LayoutDest::Dir(attrs.take_dir_dest()?)
    };
    let format = attrs.take_format(ImageFormat::OCI)?;
    let annotations = attrs.take_annotations()?;
    Ok(OciOutput {
        dest,
        names,
        format,
        annotations,
    })
}

fn parse_docker(attrs: &mut Attrs) -> Result<DockerOutput> {
    let names = attrs.take_names()?;
    if attrs.take_bool("tar")? == Some(false) {
        return Err(attrs.bad(
            "tar",
            "false",
            "the docker exporter writes a tar or loads into the daemon; use type=oci,tar=false for a directory",
        ));
    }
    let dest = match attrs.take_file_dest(false) {
        Some(dest) => DockerDest::File(dest),
        None => DockerDest::Load,
    };
    let format = attrs.take_format(ImageFormat::DOCKER)?;
    let annotations = attrs.take_annotations()?;
    Ok(DockerOutput {
        dest,
        names,
        format,
        annotations,
    })
}

fn parse_local(attrs: &mut Attrs) -> Result<LocalOutput> {
    let dest = attrs.take_dir_dest()?;
    let platform_split = attrs.take_bool("platform-split")?;
    Ok(LocalOutput {
        dest,
        platform_split,
    })
}

fn parse_tar(attrs: &mut Attrs) -> Result<TarOutput> {
    let dest = attrs.take_file_dest(true).unwrap_or(FileDest::Stdout);
    let platform_split = attrs.take_bool("platform-split")?;
    Ok(TarOutput {
        dest,
        platform_split,
    })
}
