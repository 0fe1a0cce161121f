//! [`Error`]: everything the image operations can fail with. Each variant names the object
//! (reference, digest, file) and, where another error caused it, keeps that error as its
//! `source`, so `{:#}` prints the same `outer: inner` chain the commands always printed.
//! The texts of `docker manifest` and `buildx imagetools` are kept as those tools word them.

use std::path::PathBuf;

use hoist_oci::{Digest, Reference};

/// The one error type of hoist-images.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A local manifest list, or a member of one, does not exist (docker's store error).
    #[error("No such manifest: {reference}")]
    NotFound {
        /// The list or member asked for.
        reference: String,
    },
    /// A registry operation failed.
    #[error(transparent)]
    Registry(#[from] hoist_registry::RegistryError),
    /// A reference, digest or platform did not parse, or an OCI document was invalid.
    #[error(transparent)]
    Oci(#[from] hoist_oci::Error),
    /// The content store relaying a cross-registry copy could not be opened.
    #[error("cannot open the content store in {}", root.display())]
    RelayStore {
        /// The state dir holding the store.
        root: PathBuf,
        #[source]
        source: hoist_content::Error,
    },
    /// Bytes that should be JSON of a kind (`image index`, `image manifest`, `image
    /// config`, `manifest`) are not.
    #[error("invalid {kind} JSON")]
    InvalidJson {
        /// What the bytes should have been.
        kind: &'static str,
        #[source]
        source: serde_json::Error,
    },
    /// A value could not be written as JSON.
    #[error("cannot serialise JSON")]
    Serialise(#[source] hoist_oci::Error),
    /// A file of the local manifest store could not be read, written or removed.
    #[error("cannot {action} {}", path.display())]
    Io {
        /// `read`, `create`, `write`, `remove`.
        action: &'static str,
        /// The file or folder.
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A stored manifest file is not the JSON it should be.
    #[error("invalid manifest file {}", path.display())]
    InvalidManifestFile {
        /// The file.
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// A stored manifest's `Raw` field is not base64.
    #[error("invalid Raw of manifest {reference}")]
    InvalidRaw {
        /// The member's reference.
        reference: String,
        #[source]
        source: base64::DecodeError,
    },

    // imagetools create / inspect
    /// `imagetools create` without sources.
    #[error("no sources specified")]
    NoSources,
    /// `imagetools create` without tags and without `--dry-run`.
    #[error("can't push with no tags specified, please set --tag or --dry-run")]
    NoTags,
    /// Neither the tags nor the sources name a repository.
    #[error("no repositories specified, please set a reference in tag or source")]
    NoRepositories,
    /// A `-t` value is not a reference.
    #[error("invalid tag {tag:?}")]
    InvalidTag {
        /// As typed.
        tag: String,
        #[source]
        source: hoist_oci::Error,
    },
    /// A name to inspect is not a reference.
    #[error("invalid reference {name:?}")]
    InvalidReference {
        /// As typed.
        name: String,
        #[source]
        source: hoist_oci::Error,
    },
    /// A source is neither a digest, a reference nor descriptor JSON.
    #[error(
        "failed to parse source {text:?}, valid sources are digests, references and descriptors"
    )]
    InvalidSource {
        /// As given.
        text: String,
        #[source]
        source: Box<Error>,
    },
    /// Source text that looked like descriptor JSON but is not.
    #[error("invalid descriptor JSON: {0}")]
    InvalidDescriptor(serde_json::Error),
    /// A bare digest or descriptor source with several repositories to choose from.
    #[error("multiple repositories specified, cannot infer repository for {text:?}")]
    AmbiguousRepository {
        /// The source as given.
        text: String,
    },
    /// A descriptor source without a digest.
    #[error("source {text:?} has no digest")]
    SourceWithoutDigest {
        /// The source as given.
        text: String,
    },
    /// A source's descriptor gave a size the registry's manifest does not have.
    #[error("invalid size mismatch for {digest}, {given} != {actual}")]
    SizeMismatch {
        /// The manifest.
        digest: Digest,
        /// The size in the source's descriptor.
        given: u64,
        /// The manifest's size.
        actual: u64,
    },
    /// Docker schema 1 manifests cannot go into an index.
    #[error("schema1 manifests are not allowed in manifest lists")]
    Schema1InList,
    /// A reference could not be resolved.
    #[error("cannot resolve {reference}")]
    Resolve {
        /// The reference.
        reference: Reference,
        #[source]
        source: Box<Error>,
    },
    /// A manifest or index could not be fetched.
    #[error("cannot fetch {repository}@{digest}")]
    FetchManifest {
        /// The repository's name.
        repository: String,
        /// The manifest's digest.
        digest: Digest,
        #[source]
        source: Box<Error>,
    },
    /// An image config could not be fetched.
    #[error("cannot fetch config {digest}")]
    FetchConfig {
        /// The config's digest.
        digest: Digest,
        #[source]
        source: Box<Error>,
    },
    /// An image config is not JSON.
    #[error("invalid image config {digest}")]
    InvalidConfig {
        /// The config's digest.
        digest: Digest,
        #[source]
        source: serde_json::Error,
    },
    /// A blob could not be copied into another repository.
    #[error("cannot copy blob {digest} to {repository}")]
    CopyBlob {
        /// The blob.
        digest: Digest,
        /// The target repository's name.
        repository: String,
        #[source]
        source: Box<Error>,
    },
    /// A manifest or index could not be pushed.
    #[error("cannot push {reference}")]
    Push {
        /// Where it went.
        reference: Reference,
        #[source]
        source: Box<Error>,
    },

    // --annotation
    /// The `--annotation` values did not parse.
    #[error("failed to parse annotations")]
    InvalidAnnotations(#[source] Box<Error>),
    /// An `--annotation` without `=`.
    #[error("invalid annotation {input:?}, expected key=value")]
    AnnotationWithoutValue {
        /// As typed.
        input: String,
    },
    /// An `--annotation` type that is not `name` or `name[platform]`.
    #[error(
        "invalid annotation type {text:?}, expected type and optional platform in square brackets"
    )]
    InvalidAnnotationType {
        /// The type and platform as typed.
        text: String,
    },
    /// An `--annotation` type buildx does not know.
    #[error("unknown annotation type {name:?}")]
    UnknownAnnotationType {
        /// The type.
        name: String,
    },
    /// An annotation type buildx cannot apply yet (`manifest`, untyped).
    #[error("{name:?} annotations are not supported yet")]
    UnsupportedAnnotation {
        /// The type (empty for untyped).
        name: &'static str,
    },
    /// An annotation type that makes no sense for a new index (`index-descriptor`).
    #[error("{name:?} annotations are invalid while creating an image")]
    InvalidAnnotationTarget {
        /// The type.
        name: &'static str,
    },

    // --format templates
    /// A `{{` without `}}`.
    #[error("template: unclosed action in {template:?}")]
    UnclosedAction {
        /// The whole template.
        template: String,
    },
    /// An action other than `{{.Path}}` and `{{json .Path}}`.
    #[error("template: unsupported action {{{{{action}}}}} (supported: {{{{.Field}}}} and {{{{json .Field}}}})")]
    UnsupportedAction {
        /// The action's text.
        action: String,
    },
    /// A field of something that is not an object.
    #[error("template: can't evaluate field {field} in {path}")]
    NotAnObject {
        /// The field.
        field: String,
        /// The whole path.
        path: String,
    },

    // manifest create / annotate / push / rm
    /// A `manifest create` list name is not a reference.
    #[error("error parsing name for manifest list {list}")]
    InvalidListName {
        /// As typed.
        list: String,
        #[source]
        source: Box<Error>,
    },
    /// A `manifest annotate` name is not a reference.
    #[error("annotate: error parsing name for {what} {name}")]
    InvalidAnnotateName {
        /// `manifest list` or `manifest`.
        what: &'static str,
        /// As typed.
        name: String,
        #[source]
        source: Box<Error>,
    },
    /// `manifest create` of a list that exists, without `--amend`.
    #[error("refusing to amend an existing manifest list with no --amend flag")]
    ListExists,
    /// `manifest annotate` of an image that is not in the list.
    #[error("manifest for image {manifest} does not exist in {list}")]
    NotInList {
        /// The member as typed.
        manifest: String,
        /// The list as typed.
        list: String,
    },
    /// `manifest annotate` to a platform Go does not support.
    #[error("manifest entry for image has unsupported os/arch combination: {os}/{arch}")]
    UnsupportedPlatform {
        /// `--os` as given.
        os: String,
        /// `--arch` as given.
        arch: String,
    },
    /// A manifest list as a member of a manifest list.
    #[error("{reference} is a manifest list")]
    IsManifestList {
        /// The member.
        reference: Reference,
    },
    /// A member that is no image manifest.
    #[error("{reference} is not a manifest")]
    NotAManifest {
        /// The member.
        reference: Reference,
    },
    /// A list whose members come from another registry than the list's.
    #[error(
        "cannot use source images from a different registry than the target image: {member} != {target}"
    )]
    OtherRegistry {
        /// The member's registry.
        member: String,
        /// The list's registry.
        target: String,
    },
    /// `manifest push` of an empty list.
    #[error("{reference} not found")]
    EmptyList {
        /// The list.
        reference: Reference,
    },
    /// A member without OS or architecture cannot be pushed.
    #[error("manifest {reference} must have an OS and Architecture to be pushed to a registry")]
    NoPlatform {
        /// The member.
        reference: String,
    },
    /// `manifest rm`: the lists that could not be removed, one line each.
    #[error("{}", .0.iter().map(chain).collect::<Vec<_>>().join("\n"))]
    Remove(Vec<Error>),
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `err` and its sources joined by `: `, as `{:#}` prints an `anyhow` chain.
pub(crate) fn chain(err: &Error) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
