//! The crate's one error type.

use hoist_dockerfile::ast::LineSpan;

/// What can go wrong while planning or converting a Dockerfile. Messages are BuildKit's
/// texts (scripts grep them); errors tied to an instruction carry its line span.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Parsing or reading the instructions failed (the Dockerfile crate's error, with its
    /// span when it has one).
    #[error(transparent)]
    Dockerfile(#[from] hoist_dockerfile::Error),
    /// An instruction or stage could not be converted: `circular dependency detected on
    /// stage: x`, `cannot copy from stage "b", it needs to be defined before current stage
    /// "a"`, `failed to parse stage name "..."`...
    #[error("{message}")]
    Instruction { span: LineSpan, message: String },
    /// `--target` names no stage.
    #[error("target stage {target:?} could not be found{suggestion}")]
    TargetNotFound { target: String, suggestion: String },
    /// `convert` needed an image the resolver does not have (resolve every request of
    /// [`crate::Plan::images`], and the ones a base image's ONBUILD triggers name).
    #[error("image {reference} for {platform} was not resolved")]
    ImageNotResolved {
        reference: String,
        /// The platform, formatted (`linux/arm64`).
        platform: String,
    },
    /// A base image could not be resolved by the build's [`crate::MetaResolver`] (BuildKit's
    /// `failed to resolve source metadata for REF`); `span` is the first `FROM` (or
    /// instruction) naming it, `None` for an image only an ONBUILD trigger names.
    #[error("failed to resolve source metadata for {reference}: {source}")]
    Resolve {
        reference: String,
        span: Option<LineSpan>,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A build option is invalid (a platform that does not parse...).
    #[error("{message}")]
    Option { message: String },
    /// Adding a vertex failed (a bug in the conversion).
    #[error(transparent)]
    Graph(#[from] hoist_graph::Error),
}

impl Error {
    /// The Dockerfile lines the error is about, when it is about some.
    pub fn span(&self) -> Option<LineSpan> {
        match self {
            Error::Instruction { span, .. } => Some(*span),
            Error::Resolve { span, .. } => *span,
            Error::Dockerfile(hoist_dockerfile::Error::Instruction { span, .. }) => Some(*span),
            Error::Dockerfile(hoist_dockerfile::Error::Parse { line, .. }) => Some(LineSpan {
                start: *line,
                end: *line,
            }),
            _ => None,
        }
    }

    /// The error as buildx prints it: the Dockerfile lines with the offending ones marked,
    /// then `ERROR: <message>` (just the latter when the error has no span).
    pub fn excerpt(&self, filename: &str, source: &str) -> String {
        let lines = self
            .span()
            .map(|span| hoist_dockerfile::instructions::source_excerpt(filename, source, span))
            .unwrap_or_default();
        format!("{lines}ERROR: {self}\n")
    }

    pub(crate) fn at(span: LineSpan, message: impl Into<String>) -> Error {
        Error::Instruction {
            span,
            message: message.into(),
        }
    }

    /// Locates an error from expansion or validation on `span` (errors that already have a
    /// span keep it).
    pub(crate) fn located(self, span: LineSpan) -> Error {
        match self {
            Error::Dockerfile(hoist_dockerfile::Error::Instruction { span, message }) => {
                Error::Instruction { span, message }
            }
            Error::Dockerfile(other) => Error::Instruction {
                span,
                message: other.to_string(),
            },
            Error::Option { message } => Error::Instruction { span, message },
            other => other,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
