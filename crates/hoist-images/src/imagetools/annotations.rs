//! `imagetools create --annotation [TYPES:]KEY=VALUE`, parsed as buildx parses it: TYPES is a
//! comma-separated list of `index`, `index-descriptor`, `manifest` or `manifest-descriptor`,
//! each optionally with a platform in square brackets (`manifest-descriptor[linux/amd64]`);
//! no TYPES means an untyped annotation. Only `index` and `manifest-descriptor` can be applied
//! to an index being created, and only to an OCI index (a Docker list has no annotations).

use std::collections::BTreeMap;

use hoist_oci::annotations::{parse_annotation_flag, AnnotationFlagError, AnnotationType};
use hoist_oci::{Descriptor, Platform};

use crate::error::{Error, Result};

/// Where an annotation goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AnnotationTarget {
    /// No type given.
    Untyped,
    /// The index itself.
    Index,
    /// The descriptor of the index (in an OCI layout's index.json).
    IndexDescriptor,
    /// Each manifest.
    Manifest,
    /// Each manifest's descriptor in the index.
    ManifestDescriptor,
}

impl AnnotationTarget {
    fn name(self) -> &'static str {
        match self {
            AnnotationTarget::Untyped => "",
            AnnotationTarget::Index => "index",
            AnnotationTarget::IndexDescriptor => "index-descriptor",
            AnnotationTarget::Manifest => "manifest",
            AnnotationTarget::ManifestDescriptor => "manifest-descriptor",
        }
    }
}

/// One parsed `--annotation`.
#[derive(Debug, Clone, PartialEq)]
pub struct Annotation {
    /// Where it goes.
    pub target: AnnotationTarget,
    /// Only for manifests of this platform, when given.
    pub platform: Option<Platform>,
    /// The annotation key.
    pub key: String,
    /// Its value.
    pub value: String,
}

/// Parses `--annotation` values (the grammar `hoist build --annotation` reads too).
pub fn parse_annotations(inputs: &[String]) -> Result<Vec<Annotation>> {
    let mut out = Vec::new();
    for input in inputs {
        let flags = parse_annotation_flag(input).map_err(|e| match e {
            AnnotationFlagError::NoValue => Error::AnnotationWithoutValue {
                input: input.clone(),
            },
            AnnotationFlagError::InvalidType { text } => Error::InvalidAnnotationType { text },
            AnnotationFlagError::UnknownType { name } => Error::UnknownAnnotationType { name },
            AnnotationFlagError::InvalidPlatform { source, .. } => Error::from(*source),
        })?;
        out.extend(flags.into_iter().map(|flag| Annotation {
            target: match flag.kind {
                None => AnnotationTarget::Untyped,
                Some(AnnotationType::Index) => AnnotationTarget::Index,
                Some(AnnotationType::IndexDescriptor) => AnnotationTarget::IndexDescriptor,
                Some(AnnotationType::Manifest) => AnnotationTarget::Manifest,
                Some(AnnotationType::ManifestDescriptor) => AnnotationTarget::ManifestDescriptor,
            },
            platform: flag.platform.map(|p| p.normalize()),
            key: flag.key,
            value: flag.value,
        }));
    }
    Ok(out)
}

/// Applies annotations to an OCI index being created: index annotations returned, descriptor
/// annotations set on `manifests`; the types buildx refuses are errors.
pub fn apply(
    annotations: &[Annotation],
    manifests: &mut [Descriptor],
) -> Result<BTreeMap<String, String>> {
    let mut index = BTreeMap::new();
    for a in annotations {
        match a.target {
            AnnotationTarget::Index => {
                index.insert(a.key.clone(), a.value.clone());
            }
            AnnotationTarget::ManifestDescriptor => {
                for m in manifests.iter_mut() {
                    let matches = match (&a.platform, &m.platform) {
                        (None, _) => true,
                        (Some(want), Some(have)) => want.format() == have.format(),
                        (Some(_), None) => false,
                    };
                    if matches {
                        m.annotations.insert(a.key.clone(), a.value.clone());
                    }
                }
            }
            AnnotationTarget::Manifest | AnnotationTarget::Untyped => {
                return Err(Error::UnsupportedAnnotation {
                    name: a.target.name(),
                })
            }
            AnnotationTarget::IndexDescriptor => {
                return Err(Error::InvalidAnnotationTarget {
                    name: a.target.name(),
                })
            }
        }
    }
    Ok(index)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hoist_oci::MediaType;

    fn parse(v: &[&str]) -> Result<Vec<Annotation>> {
        parse_annotations(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn parses_types_and_platforms_like_buildx() {
        let a = parse(&[
            "index,manifest-descriptor[linux/arm64]:org.x=a=b",
            "plain=1",
        ])
        .unwrap();
        assert_eq!(a.len(), 3);
        assert_eq!(a[0].target, AnnotationTarget::Index);
        assert_eq!(a[0].value, "a=b");
        assert_eq!(a[1].target, AnnotationTarget::ManifestDescriptor);
        assert_eq!(a[1].platform.as_ref().unwrap().format(), "linux/arm64");
        assert_eq!(a[2].target, AnnotationTarget::Untyped);
        assert_eq!(
            parse(&["novalue"]).unwrap_err().to_string(),
            "invalid annotation \"novalue\", expected key=value"
        );
        assert_eq!(
            parse(&["layer:k=v"]).unwrap_err().to_string(),
            "unknown annotation type \"layer\""
        );
        assert!(parse(&["index[x:k=v"]).is_err());
    }

    #[test]
    fn applies_index_and_descriptor_annotations() {
        let amd = Descriptor::of_bytes(MediaType::OciManifest, b"a")
            .with_platform(Platform::new("linux", "amd64"));
        let arm = Descriptor::of_bytes(MediaType::OciManifest, b"b")
            .with_platform(Platform::new("linux", "arm64"));
        let mut manifests = vec![amd, arm];
        let a = parse(&["index:i=1", "manifest-descriptor[linux/arm64]:d=2"]).unwrap();
        let index = apply(&a, &mut manifests).unwrap();
        assert_eq!(index.get("i").map(String::as_str), Some("1"));
        assert!(manifests[0].annotations.is_empty());
        assert_eq!(
            manifests[1].annotations.get("d").map(String::as_str),
            Some("2")
        );
        let err = apply(&parse(&["k=v"]).unwrap(), &mut manifests).unwrap_err();
        assert_eq!(err.to_string(), "\"\" annotations are not supported yet");
        let err = apply(&parse(&["index-descriptor:k=v"]).unwrap(), &mut manifests).unwrap_err();
        assert_eq!(
            err.to_string(),
            "\"index-descriptor\" annotations are invalid while creating an image"
        );
    }
}
