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
    /// Shell-word expansion failed (`${VAR:?msg}`, an unterminated quote, ...).
    #[error("{message}")]
    Expand { message: String },
    /// A `.dockerignore` pattern is malformed.
    #[error("invalid .dockerignore pattern {pattern:?}: {message}")]
    Pattern { pattern: String, message: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
