use crate::ast::LineSpan;

/// Everything that can go wrong while reading a Dockerfile or a `.dockerignore`.
///
/// Messages follow BuildKit's texts where users and scripts may depend on them.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The parser rejected the text (`dockerfile parse error on line N: ...`).
    #[error("dockerfile parse error on line {line}: {message}")]
    Parse { line: usize, message: String },
    /// An instruction could not be turned into a typed instruction.
    #[error("{message}")]
    Instruction { span: LineSpan, message: String },
    /// A flag value is invalid once its variables are expanded (`--chmod=$MODE`,
    /// `--mount=type=$T`); [`crate::instructions::Command::expand`] turns it into
    /// [`Error::Instruction`] with the instruction's lines.
    #[error("{message}")]
    InvalidValue { message: String },
    /// Build checks: options that do not parse (`# check=`, `BUILDKIT_DOCKERFILE_CHECK`),
    /// or findings under `error=true` (BuildKit's texts).
    #[error("{message}")]
    Check { message: String },
    /// Shell-word expansion failed (`${VAR:?msg}`, an unterminated quote, ...).
    #[error("{message}")]
    Expand { message: String },
    /// Shell-word expansion of `word` failed; prints as BuildKit does:
    /// `failed to process "<word>": <reason>` (the word quoted as Go's `%q`).
    #[error("failed to process {}: {reason}", crate::shell::go_quote(word))]
    ShellWord { word: String, reason: String },
    /// A `.dockerignore` pattern is malformed.
    #[error("invalid .dockerignore pattern {pattern:?}: {message}")]
    Pattern { pattern: String, message: String },
    /// A `.dockerignore` file could not be read into patterns (a line too long).
    #[error("invalid .dockerignore: line {line}: {message}")]
    IgnoreFile { line: usize, message: String },
    /// A [`crate::dockerignore::MatchInfo`] was handed to a matcher it did not come from.
    #[error("match info holds {found} pattern results but the matcher has {expected} patterns; it comes from another matcher")]
    MatchInfoMismatch { expected: usize, found: usize },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
