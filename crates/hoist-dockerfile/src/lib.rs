//! Reading Dockerfiles exactly as BuildKit reads them.
//!
//! The pipeline, each stage a module:
//!
//! - [`parser`]: bytes → [`ast::Dockerfile`], an AST of [`ast::Node`]s that keep their
//!   source line ranges, parser directives ([`parser::Directives`]), heredocs and warnings.
//! - [`shell`]: BuildKit's shell-word lexer: `$VAR`, `${VAR:-word}` and friends, quoting,
//!   escapes and word splitting ([`shell::Lexer`]).
//! - [`instructions`]: AST nodes → typed [`instructions::Instruction`]s with every flag
//!   parsed and validated, grouped into [`instructions::Stage`]s.
//! - [`lint`]: BuildKit's build checks ([`lint::Rule`], [`lint::LintWarning`]) for the
//!   warnings a build reports.
//! - [`dockerignore`]: `.dockerignore` files and moby/patternmatcher matching
//!   ([`dockerignore::PatternMatcher`]).
//!
//! Small readers of Go's text formats live here too, the lowest crate that needs them:
//! [`go_duration`] (`time.Duration` printed and parsed), [`go_csv`] (one `encoding/csv`
//! record split into fields, as BuildKit reads `--mount` and buildx reads `-o`),
//! [`go_bool`] (`strconv.ParseBool`, for `--mount` options and BuildKit's boolean build
//! args) and [`go_glob`] (`filepath.Match`, the wildcards of `COPY`/`ADD` sources).
//!
//! Everything here is pure: no I/O, no async. Errors are one [`Error`] enum whose messages
//! follow BuildKit's texts, and carry the line range of the offending instruction.

pub mod ast;
pub mod dockerignore;
mod error;
pub mod go_bool;
pub mod go_csv;
pub mod go_duration;
pub mod go_glob;
pub mod instructions;
pub mod lint;
pub mod parser;
pub mod shell;

pub use error::{Error, Result};
