//! Annotation keys hoist reads or writes (OCI pre-defined keys and containerd's image name).

/// Tag or fully qualified name of an image in an OCI layout `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// Date and time the image was built (RFC 3339).
pub const CREATED: &str = "org.opencontainers.image.created";
/// Digest of the base image.
pub const BASE_DIGEST: &str = "org.opencontainers.image.base.digest";
/// Name of the base image.
pub const BASE_NAME: &str = "org.opencontainers.image.base.name";
/// containerd's full image name annotation in OCI archives (`docker.io/library/x:tag`).
pub const CONTAINERD_IMAGE_NAME: &str = "io.containerd.image.name";

/// Which document a typed `--annotation` goes on (buildx's annotation types).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AnnotationType {
    /// `manifest`: each platform's manifest.
    Manifest,
    /// `manifest-descriptor`: each manifest's descriptor in the index.
    ManifestDescriptor,
    /// `index`: the index.
    Index,
    /// `index-descriptor`: the index's descriptor (in an OCI layout's `index.json`).
    IndexDescriptor,
}

/// One annotation of an `--annotation` value: `hoist build` and `imagetools create` read
/// the same grammar and differ only in what an untyped one means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnotationFlag {
    /// The type given, `None` for `KEY=VALUE` alone.
    pub kind: Option<AnnotationType>,
    /// `type[os/arch]`: only for manifests of this platform (as written, not normalized).
    pub platform: Option<crate::Platform>,
    /// The annotation key.
    pub key: String,
    /// Its value.
    pub value: String,
}

/// Why an `--annotation` value does not parse, in buildx's words.
#[derive(Debug, thiserror::Error)]
pub enum AnnotationFlagError {
    /// No `=`.
    #[error("expected key=value")]
    NoValue,
    /// A type that is not `name` or `name[platform]`.
    #[error(
        "invalid annotation type {text:?}, expected type and optional platform in square brackets"
    )]
    InvalidType {
        /// The type and platform as typed.
        text: String,
    },
    /// A type buildx does not know.
    #[error("unknown annotation type {name:?}")]
    UnknownType {
        /// The type.
        name: String,
    },
    /// The bracketed platform does not parse.
    #[error("invalid platform {spec:?}: {source}")]
    InvalidPlatform {
        /// As typed.
        spec: String,
        /// Why.
        #[source]
        source: Box<crate::Error>,
    },
}

/// Parses one `--annotation` value as buildx does: `KEY=VALUE`, or `TYPES:KEY=VALUE` where
/// `TYPES` is a comma-separated list of `manifest`, `manifest-descriptor`, `index` or
/// `index-descriptor`, each with an optional platform in brackets (`manifest[linux/arm64]`);
/// one annotation per type. An empty value gives none.
pub fn parse_annotation_flag(input: &str) -> Result<Vec<AnnotationFlag>, AnnotationFlagError> {
    if input.is_empty() {
        return Ok(Vec::new());
    }
    let (head, value) = input.split_once('=').ok_or(AnnotationFlagError::NoValue)?;
    let Some((types, key)) = head.split_once(':') else {
        return Ok(vec![AnnotationFlag {
            kind: None,
            platform: None,
            key: head.to_owned(),
            value: value.to_owned(),
        }]);
    };
    let mut out = Vec::new();
    for typed in types.split(',') {
        let invalid = || AnnotationFlagError::InvalidType {
            text: typed.to_owned(),
        };
        let (name, platform) = match typed.split_once('[') {
            Some((name, rest)) => match rest.strip_suffix(']') {
                Some(spec) if is_platform_text(spec) => (name, Some(spec)),
                _ => return Err(invalid()),
            },
            None => (typed, None),
        };
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_lowercase() || b == b'-') {
            return Err(invalid());
        }
        let kind = match name {
            "manifest" => AnnotationType::Manifest,
            "manifest-descriptor" => AnnotationType::ManifestDescriptor,
            "index" => AnnotationType::Index,
            "index-descriptor" => AnnotationType::IndexDescriptor,
            _ => {
                return Err(AnnotationFlagError::UnknownType {
                    name: name.to_owned(),
                })
            }
        };
        let platform = platform
            .map(|spec| {
                crate::Platform::parse(spec).map_err(|e| AnnotationFlagError::InvalidPlatform {
                    spec: spec.to_owned(),
                    source: Box::new(e),
                })
            })
            .transpose()?;
        out.push(AnnotationFlag {
            kind: Some(kind),
            platform,
            key: key.to_owned(),
            value: value.to_owned(),
        });
    }
    Ok(out)
}

fn is_platform_text(spec: &str) -> bool {
    !spec.is_empty()
        && spec
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'/' | b'-'))
}
