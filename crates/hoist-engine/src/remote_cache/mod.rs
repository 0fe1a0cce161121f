//! Build cache that travels: buildx's `--cache-to` / `--cache-from`, in BuildKit's format.
//!
//! - [`CacheOptions`]: a build's imports ([`CacheImport`]: a registry reference or an OCI
//!   layout directory) and exports ([`CacheExport`]: [`CacheDestination`], [`CacheMode`],
//!   media types, compression, `ignore-error`), parsed once from buildx's CSV specs
//!   ([`CacheImport::parse`], [`CacheExport::parse`]).
//! - `config`: BuildKit's cache config (`application/vnd.buildkit.cacheconfig.v0`) as serde
//!   structs; hoist's records (one per cache key, its result a layer chain) written into it
//!   and read back out of it — and out of BuildKit's own, without error.
//! - `import`: each `--cache-from` read before the solve (index or image manifest → cache
//!   config → records by key; an image or an index of images → inline cache); a source
//!   that is missing, unreachable or corrupt is a warning, never a failed build.
//! - `inline`: BuildKit's inline cache (`moby.buildkit.cache.v0`): `--cache-to type=inline`
//!   or `BUILDKIT_INLINE_CACHE=1` gives each final image the records whose chains prefix
//!   its layers (hoist-export writes them into the config); reading turns an image's
//!   manifest and config back into a cache config.
//! - `store`: [`LayeredCacheStore`], the solver's store for a build with imports: the state
//!   dir's records first, then the imported ones (read-only). An imported hit fetches its
//!   layers into the content store through verified ingests, unpacks them into a snapshot
//!   chain as an image source does, and becomes a local record, so the step is CACHED and
//!   nothing runs. It also remembers every record the build used, for the exports.
//! - `export`: after the image export, the records the mode selects (`min`: the steps
//!   whose results are the final images' layers; `max`: every step but local context
//!   sources) written as a cache config, layers converted once (store variants shared
//!   with the image export), then an index (or image manifest) pushed — blobs the
//!   repository holds are not sent again, uploads run concurrently — or written to an OCI
//!   layout directory under its tag.
//! - `mounts`: cache mounts that travel (`mounts=true|ID,ID`, [`MountSelection`]): each
//!   selected `RUN --mount=type=cache` directory as a layer blob beside the records,
//!   named in the config under `hoist.cacheMounts`; an import restores them before any
//!   step runs where no local mount has files.
//!
//! - `client_store`: [`ClientStore`], a [`BlobStore`] on another machine (a BuildKit
//!   client's `type=local` directory reached through its session): imports
//!   ([`CacheImport::Client`]) read the root by digest and blobs on a hit, exports
//!   ([`CacheDestination::Client`]) write each blob the store lacks and the root, and the
//!   build result names that root (`BuildResult::cache_manifest`) for the client to tag.
//!
//! Failure policy: an import is never fatal. An export that fails is a warning unless it
//! says `ignore-error=false`; hoist's default is the opposite of BuildKit's (which fails
//! the build), so that a registry hiccup on CI does not turn a good build red.

mod client_store;
mod config;
mod export;
mod import;
mod inline;
mod mounts;
mod store;

use std::path::PathBuf;

use hoist_dockerfile::go_csv;
use hoist_export::ImageFormat;
use hoist_oci::{Compression, Digest, Reference};

use crate::error::{Error, Result};

pub use client_store::{BlobStore, ClientStore};
pub(crate) use export::export;
pub(crate) use import::{import, ImportedCache};
pub(crate) use inline::{records_for as inline_records, wanted as inline_wanted};
pub(crate) use mounts::used_ids as cache_mount_ids;
pub(crate) use store::LayeredCacheStore;

/// A build's cache imports and exports (`--cache-from`, `--cache-to`); empty by default.
#[derive(Debug, Clone, Default)]
pub struct CacheOptions {
    /// Where records are read from, in order (the first holding a key wins).
    pub imports: Vec<CacheImport>,
    /// Where the build's records are written after it.
    pub exports: Vec<CacheExport>,
}

/// One `--cache-from`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheImport {
    /// `type=registry,ref=REF`, or `REF` alone: a cache manifest (or index) in a registry.
    Registry { reference: Reference },
    /// `type=local,src=DIR[,tag=T|digest=D]`: an OCI layout directory.
    Local { src: PathBuf, select: LocalSelect },
    /// A client's `type=local` directory read through a [`ClientStore`]: the root `root`
    /// (the digest its client found in the directory's `index.json`), `dir` as the client
    /// named it.
    Client {
        store: ClientStore,
        dir: String,
        root: Digest,
    },
}

/// Which cache of a local directory: by `tag=` (`latest` by default) or `digest=`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalSelect {
    Tag(String),
    Digest(Digest),
}

/// One `--cache-to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheExport {
    pub destination: CacheDestination,
    /// `mode=min|max` (`min` by default).
    pub mode: CacheMode,
    /// `image-manifest=true`: an image manifest whose config is the cache config, instead
    /// of an index listing layers and config (default: false for registries, true for
    /// local directories with OCI media types, as BuildKit).
    pub image_manifest: bool,
    /// `oci-mediatypes=`, `compression=`, `compression-level=`, `force-compression=`.
    pub format: ImageFormat,
    /// `ignore-error=`: whether a failed export is only a warning (hoist's default: true).
    pub ignore_error: bool,
    /// `mounts=`: which `RUN --mount=type=cache` directories travel with the cache.
    pub mounts: MountSelection,
}

/// The cache mounts a `--cache-to` carries (`mounts=true`, `mounts=ID,ID`; none by default).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum MountSelection {
    /// None (no `mounts=`, or `mounts=false`).
    #[default]
    None,
    /// Every cache mount the build's steps name.
    All,
    /// Those with these ids (a mount's `id=`, its target when it has none).
    Ids(Vec<String>),
}

/// Where a `--cache-to` writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheDestination {
    /// `type=registry,ref=REF`.
    Registry { reference: Reference },
    /// `type=local,dest=DIR[,tag=T]`: an OCI layout directory, the cache under `tag`
    /// (`latest` by default) in its `index.json`.
    Local { dest: PathBuf, tag: String },
    /// A client's `type=local` directory written through a [`ClientStore`] (`dir` as the
    /// client named it): the blobs it lacks and the root, which the build result names
    /// for the client to tag in its `index.json`.
    Client { store: ClientStore, dir: String },
    /// `type=inline` (or the build argument `BUILDKIT_INLINE_CACHE=1`): the records whose
    /// results are the final images' own layers, in each image's config under
    /// `moby.buildkit.cache.v0` — wherever the image goes. Always `mode=min`, as BuildKit.
    Inline,
}

/// Which records an export writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CacheMode {
    /// The steps whose results are layers of the final images.
    #[default]
    Min,
    /// Every step of the build.
    Max,
}

impl CacheDestination {
    /// How progress and warnings name it.
    pub fn describe(&self) -> String {
        match self {
            CacheDestination::Registry { reference } => reference.to_string(),
            CacheDestination::Local { dest, tag } => format!("{}:{tag}", dest.display()),
            CacheDestination::Client { dir, .. } => format!("the client's {dir}"),
            CacheDestination::Inline => "the image config".to_owned(),
        }
    }
}

impl CacheImport {
    /// How progress and warnings name it.
    pub fn describe(&self) -> String {
        match self {
            CacheImport::Registry { reference } => reference.to_string(),
            CacheImport::Local { src, select } => match select {
                LocalSelect::Tag(tag) => format!("{}:{tag}", src.display()),
                LocalSelect::Digest(digest) => format!("{}@{digest}", src.display()),
            },
            CacheImport::Client { dir, root, .. } => format!("the client's {dir}@{root}"),
        }
    }

    /// Parses a `--cache-from` value: `type=registry,ref=REF`, `type=local,src=DIR,…`, or
    /// an image reference alone.
    pub fn parse(spec: &str) -> Result<CacheImport> {
        let mut attrs = Attrs::parse(spec)?;
        let kind = match attrs.take("type") {
            Some(kind) => kind,
            None if !spec.contains('=') => {
                return Ok(CacheImport::Registry {
                    reference: parse_reference(spec, spec.trim())?,
                })
            }
            None => "registry".to_owned(),
        };
        match kind.as_str() {
            "registry" => {
                let reference = attrs
                    .take("ref")
                    .ok_or_else(|| invalid(spec, "type=registry needs ref=".into()))?;
                Ok(CacheImport::Registry {
                    reference: parse_reference(spec, &reference)?,
                })
            }
            "local" => {
                let src = attrs
                    .take("src")
                    .ok_or_else(|| invalid(spec, "type=local needs src=".into()))?;
                let select = match (attrs.take("digest"), attrs.take("tag")) {
                    (Some(digest), _) => LocalSelect::Digest(
                        Digest::parse(&digest).map_err(|e| invalid(spec, e.to_string()))?,
                    ),
                    (None, tag) => LocalSelect::Tag(tag.unwrap_or_else(|| "latest".to_owned())),
                };
                Ok(CacheImport::Local {
                    src: PathBuf::from(src),
                    select,
                })
            }
            "inline" => Err(invalid(
                spec,
                "type=inline is for --cache-to; import an inline cache by the image's \
                 reference (type=registry,ref=IMAGE)"
                    .into(),
            )),
            other => Err(invalid(spec, unsupported_type(other))),
        }
    }
}

impl CacheExport {
    /// Parses a `--cache-to` value (`type=registry,ref=…`, `type=local,dest=…` or
    /// `type=inline`, with buildx's keys).
    pub fn parse(spec: &str) -> Result<CacheExport> {
        let mut attrs = Attrs::parse(spec)?;
        let kind = attrs.take("type").unwrap_or_else(|| "registry".to_owned());
        let oci_media_types = attrs.take_bool(spec, "oci-mediatypes")?.unwrap_or(true);
        let mounts = MountSelection::parse(attrs.take("mounts"));
        let (destination, image_manifest_default) = match kind.as_str() {
            "registry" => {
                let reference = attrs
                    .take("ref")
                    .ok_or_else(|| invalid(spec, "type=registry needs ref=".into()))?;
                let reference = parse_reference(spec, &reference)?;
                (CacheDestination::Registry { reference }, false)
            }
            "local" => {
                let dest = attrs
                    .take("dest")
                    .ok_or_else(|| invalid(spec, "type=local needs dest=".into()))?;
                let tag = attrs.take("tag").unwrap_or_else(|| "latest".to_owned());
                let dest = PathBuf::from(dest);
                (CacheDestination::Local { dest, tag }, oci_media_types)
            }
            "inline" if mounts != MountSelection::None => {
                return Err(invalid(
                    spec,
                    "mounts= needs type=registry or type=local (an image config cannot \
                     carry cache mounts)"
                        .into(),
                ))
            }
            "inline" => {
                // The image's own layers and media types: nothing else to say.
                let _ = attrs.take("mode");
                (CacheDestination::Inline, false)
            }
            other => return Err(invalid(spec, unsupported_type(other))),
        };
        let mode = match attrs.take("mode").as_deref() {
            None | Some("min") => CacheMode::Min,
            Some("max") => CacheMode::Max,
            Some(other) => return Err(invalid(spec, format!("mode={other}: expected min or max"))),
        };
        let compression = match attrs.take("compression").as_deref() {
            None | Some("gzip") => Compression::Gzip,
            Some("zstd") => Compression::Zstd,
            Some("uncompressed") => Compression::None,
            Some(other) => {
                return Err(invalid(
                    spec,
                    format!("compression={other}: expected gzip, zstd or uncompressed"),
                ))
            }
        };
        let compression_level =
            match attrs.take("compression-level") {
                None => None,
                Some(level) => Some(level.parse::<i32>().map_err(|_| {
                    invalid(spec, format!("compression-level={level}: not a number"))
                })?),
            };
        let format = ImageFormat {
            oci_media_types,
            compression,
            compression_level,
            force_compression: attrs.take_bool(spec, "force-compression")?.unwrap_or(false),
            rewrite_timestamp: false,
        };
        Ok(CacheExport {
            destination,
            mode,
            image_manifest: attrs
                .take_bool(spec, "image-manifest")?
                .unwrap_or(image_manifest_default),
            format,
            ignore_error: attrs.take_bool(spec, "ignore-error")?.unwrap_or(true),
            mounts,
        })
    }
}

impl MountSelection {
    /// Reads a `mounts=` value: `true`, `false`, or ids separated by commas.
    fn parse(value: Option<String>) -> MountSelection {
        match value.as_deref().map(str::trim) {
            None | Some("false") | Some("0") => MountSelection::None,
            Some("") | Some("true") | Some("1") => MountSelection::All,
            Some(ids) => MountSelection::Ids(
                ids.split(',')
                    .map(str::trim)
                    .filter(|id| !id.is_empty())
                    .map(str::to_owned)
                    .collect(),
            ),
        }
    }
}

fn invalid(spec: &str, reason: String) -> Error {
    Error::CacheOption {
        spec: spec.to_owned(),
        reason,
    }
}

fn unsupported_type(kind: &str) -> String {
    match kind {
        "gha" | "s3" | "azblob" => {
            format!("type={kind} is not supported by hoist yet (registry, local and inline are)")
        }
        other => format!("unknown cache type {other:?} (registry, local or inline)"),
    }
}

fn parse_reference(spec: &str, reference: &str) -> Result<Reference> {
    Reference::parse_normalized(reference)
        .map_err(|e| invalid(spec, format!("invalid reference {reference:?}: {e}")))
}

/// The `key=value` fields of one spec; unknown keys are ignored, as BuildKit ignores
/// attributes an exporter does not read.
struct Attrs {
    fields: Vec<(String, String)>,
}

impl Attrs {
    fn parse(spec: &str) -> Result<Attrs> {
        let fields =
            go_csv::fields(spec).map_err(|e| invalid(spec, format!("not CSV fields: {e}")))?;
        let mut out = Vec::new();
        for field in fields {
            let field = field.trim();
            if field.is_empty() {
                continue;
            }
            match field.split_once('=') {
                Some((key, value)) => out.push((key.trim().to_lowercase(), value.to_owned())),
                // `mounts=a,b` unquoted: the ids after the first are fields of their own.
                None if out
                    .last()
                    .is_some_and(|(k, _): &(String, String)| k == "mounts") =>
                {
                    if let Some((_, ids)) = out.last_mut() {
                        ids.push(',');
                        ids.push_str(field);
                    }
                }
                // A bare word is the reference shorthand (`--cache-from REF`).
                None => out.push((String::new(), field.to_owned())),
            }
        }
        Ok(Attrs { fields: out })
    }

    fn take(&mut self, key: &str) -> Option<String> {
        let at = self.fields.iter().position(|(k, _)| k == key)?;
        Some(self.fields.remove(at).1)
    }

    fn take_bool(&mut self, spec: &str, key: &str) -> Result<Option<bool>> {
        match self.take(key) {
            None => Ok(None),
            Some(value) => match value.to_lowercase().as_str() {
                "" | "true" | "1" | "t" => Ok(Some(true)),
                "false" | "0" | "f" => Ok(Some(false)),
                _ => Err(invalid(spec, format!("{key}={value}: not a boolean"))),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_reference_imports_from_a_registry() {
        let import = CacheImport::parse("localhost:5000/app/cache:main").unwrap();
        let CacheImport::Registry { reference } = import else {
            panic!("not a registry import");
        };
        assert_eq!(reference.to_string(), "localhost:5000/app/cache:main");
    }

    #[test]
    fn local_imports_select_by_tag_or_digest() {
        let digest = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(
            CacheImport::parse("type=local,src=/c").unwrap(),
            CacheImport::Local {
                src: "/c".into(),
                select: LocalSelect::Tag("latest".into())
            }
        );
        assert_eq!(
            CacheImport::parse(&format!("type=local,src=/c,digest={digest}")).unwrap(),
            CacheImport::Local {
                src: "/c".into(),
                select: LocalSelect::Digest(Digest::parse(&digest).unwrap())
            }
        );
    }

    #[test]
    fn export_defaults_follow_buildkit_but_ignore_errors() {
        let export = CacheExport::parse("type=registry,ref=localhost:5000/c").unwrap();
        assert_eq!(export.mode, CacheMode::Min);
        assert!(!export.image_manifest);
        assert!(export.format.oci_media_types);
        assert_eq!(export.format.compression, Compression::Gzip);
        assert!(export.ignore_error, "hoist warns where BuildKit fails");
        let local = CacheExport::parse("type=local,dest=/c,mode=max,ignore-error=false").unwrap();
        assert_eq!(local.mode, CacheMode::Max);
        assert!(local.image_manifest);
        assert!(!local.ignore_error);
        assert_eq!(
            local.destination,
            CacheDestination::Local {
                dest: "/c".into(),
                tag: "latest".into()
            }
        );
        let docker = CacheExport::parse("type=local,dest=/c,oci-mediatypes=false").unwrap();
        assert!(!docker.image_manifest, "docker media types mean an index");
    }

    #[test]
    fn mounts_are_opt_in_by_flag_or_ids() {
        let parse = |spec: &str| CacheExport::parse(spec).unwrap().mounts;
        assert_eq!(parse("type=local,dest=/c"), MountSelection::None);
        assert_eq!(
            parse("type=local,dest=/c,mounts=false"),
            MountSelection::None
        );
        assert_eq!(parse("type=local,dest=/c,mounts=true"), MountSelection::All);
        let ids = MountSelection::Ids(vec!["/root/.cache".into(), "go".into()]);
        assert_eq!(parse("type=local,dest=/c,mounts=/root/.cache,go"), ids);
        assert_eq!(parse("type=local,\"mounts=/root/.cache,go\",dest=/c"), ids);
        assert_eq!(
            parse("type=local,mounts=a,b,mode=max,dest=/c"),
            MountSelection::Ids(vec!["a".into(), "b".into()])
        );
        let err = CacheExport::parse("type=inline,mounts=true").unwrap_err();
        assert!(err.to_string().contains("mounts= needs"), "{err}");
    }

    #[test]
    fn bad_cache_specs_name_the_problem() {
        for (spec, says) in [
            ("type=registry", "needs ref="),
            ("type=local", "needs src="),
            ("type=gha", "not supported"),
            ("type=nope,ref=x", "unknown cache type"),
        ] {
            let err = CacheImport::parse(spec).unwrap_err().to_string();
            assert!(err.contains(says), "{spec}: {err}");
        }
        for (spec, says) in [
            ("type=registry,ref=a/b,mode=all", "expected min or max"),
            ("type=local,dest=/c,compression=lz4", "compression=lz4"),
            ("type=local,dest=/c,ignore-error=maybe", "not a boolean"),
            ("type=local", "needs dest="),
        ] {
            let err = CacheExport::parse(spec).unwrap_err().to_string();
            assert!(err.contains(says), "{spec}: {err}");
        }
    }
}
