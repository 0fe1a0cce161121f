//! AST nodes → typed instructions and build stages, as BuildKit's
//! `frontend/dockerfile/instructions` package reads them.
//!
//! - [`parse_instruction`] turns one [`Node`] into an [`Instruction`] (one typed struct per
//!   Dockerfile instruction, every `--flag` parsed and validated: [`Run`] with typed
//!   [`Mount`]s, [`Copy`](struct@Copy) / [`Add`] with a typed [`Chmod`], [`Healthcheck`] with durations...).
//! - [`parse_stages`] groups a whole [`Dockerfile`](crate::ast::Dockerfile) into global [`MetaArg`]s and [`Stage`]s.
//! - [`listing`] is the stable one-line-per-instruction text `hoist debug instructions` prints.
//! - [`error_context`] prints the offending lines of a failed instruction the way buildx does.
//!
//! Error messages are BuildKit's texts (scripts grep them); every error is an
//! [`Error::Instruction`] carrying the node's line span.
//!
//! The structs are named after the instructions, so `Copy` and `From` shadow the std names
//! of a module that glob-imports this one: refer to them as `instructions::Copy`.
//!
//! Values that BuildKit expands with the shell lexer later (ENV, COPY sources, `--mount`
//! options, ...) are kept as written; each such instruction has an `expand` method taking the
//! expander, so the engine decides the variables in scope.

mod arg;
mod chmod;
mod config;
mod files;
mod flags;
mod from;
mod healthcheck;
mod listing;
mod location;
mod mount;
mod onbuild;
mod process;
mod run;
mod stages;
mod suggest;

pub use arg::{Arg, ArgDef};
pub use chmod::{Chmod, ModeClass, ModeClause, ModeOp, ModePerm, SymbolicMode};
pub use config::{Env, Expose, KeyValue, Label, Maintainer, StopSignal, User, Volume, Workdir};
pub use files::{Add, Copy, SourceContent, Sources};
pub use from::From;
pub use healthcheck::{Healthcheck, HealthcheckCmd};
pub use listing::listing;
pub use location::{error_context, source_excerpt};
pub use mount::{Mount, MountType, Sharing};
pub use onbuild::OnBuild;
pub use process::{Cmd, CommandLine, Entrypoint, InlineFile, Shell};
pub use run::{Device, NetworkMode, Run, Security};
pub use stages::{find_stage, parse_stages, MetaArg, Stage};

use crate::ast::{LineSpan, Node};
use crate::{Error, Result};

/// A Dockerfile instruction with its arguments and flags parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instruction {
    From(From),
    Run(Run),
    Cmd(Cmd),
    Entrypoint(Entrypoint),
    Shell(Shell),
    Label(Label),
    Maintainer(Maintainer),
    Expose(Expose),
    Env(Env),
    Add(Add),
    Copy(Copy),
    Volume(Volume),
    User(User),
    Workdir(Workdir),
    Arg(Arg),
    OnBuild(OnBuild),
    StopSignal(StopSignal),
    Healthcheck(Healthcheck),
}

/// The instruction keywords BuildKit knows, upper-case.
pub const INSTRUCTION_NAMES: &[&str] = &[
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

impl Instruction {
    /// The instruction keyword, upper-case (`RUN`).
    pub fn keyword(&self) -> &'static str {
        match self {
            Instruction::From(_) => "FROM",
            Instruction::Run(_) => "RUN",
            Instruction::Cmd(_) => "CMD",
            Instruction::Entrypoint(_) => "ENTRYPOINT",
            Instruction::Shell(_) => "SHELL",
            Instruction::Label(_) => "LABEL",
            Instruction::Maintainer(_) => "MAINTAINER",
            Instruction::Expose(_) => "EXPOSE",
            Instruction::Env(_) => "ENV",
            Instruction::Add(_) => "ADD",
            Instruction::Copy(_) => "COPY",
            Instruction::Volume(_) => "VOLUME",
            Instruction::User(_) => "USER",
            Instruction::Workdir(_) => "WORKDIR",
            Instruction::Arg(_) => "ARG",
            Instruction::OnBuild(_) => "ONBUILD",
            Instruction::StopSignal(_) => "STOPSIGNAL",
            Instruction::Healthcheck(_) => "HEALTHCHECK",
        }
    }

    /// A copy with the words BuildKit expands for this instruction passed through `expand`
    /// (instructions BuildKit does not expand come back unchanged). `expand` is the shell-word
    /// lexer with the variables in scope; values checked after expansion (`--chmod`,
    /// `--mount`) are validated again and fail as [`Error::InvalidValue`].
    pub fn expand<F>(&self, expand: &F) -> Result<Instruction>
    where
        F: Fn(&str) -> Result<String>,
    {
        Ok(match self {
            Instruction::From(c) => Instruction::From(c.expand(expand)?),
            Instruction::Run(c) => Instruction::Run(c.expand(expand)?),
            Instruction::Label(c) => Instruction::Label(c.expand(expand)?),
            Instruction::Expose(c) => Instruction::Expose(c.expand(expand)?),
            Instruction::Env(c) => Instruction::Env(c.expand(expand)?),
            Instruction::Add(c) => Instruction::Add(c.expand(expand)?),
            Instruction::Copy(c) => Instruction::Copy(c.expand(expand)?),
            Instruction::Volume(c) => Instruction::Volume(c.expand(expand)?),
            Instruction::User(c) => Instruction::User(c.expand(expand)?),
            Instruction::Workdir(c) => Instruction::Workdir(c.expand(expand)?),
            Instruction::Arg(c) => Instruction::Arg(c.expand(expand)?),
            Instruction::StopSignal(c) => Instruction::StopSignal(c.expand(expand)?),
            other @ (Instruction::Cmd(_)
            | Instruction::Entrypoint(_)
            | Instruction::Shell(_)
            | Instruction::Maintainer(_)
            | Instruction::OnBuild(_)
            | Instruction::Healthcheck(_)) => other.clone(),
        })
    }
}

/// An instruction with where it came from: what a [`Stage`] holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub instruction: Instruction,
    /// The source lines of the instruction.
    pub span: LineSpan,
    /// The instruction text as written (continuation lines joined).
    pub source: String,
}

impl Command {
    /// [`Instruction::expand`], with errors located on this command's lines.
    pub fn expand<F>(&self, expand: &F) -> Result<Command>
    where
        F: Fn(&str) -> Result<String>,
    {
        let instruction = self.instruction.expand(expand).map_err(|err| match err {
            Error::InvalidValue { message } => Error::Instruction {
                span: self.span,
                message,
            },
            other => other,
        })?;
        Ok(Command {
            instruction,
            span: self.span,
            source: self.source.clone(),
        })
    }
}

/// Turns one AST node into a typed instruction (BuildKit's `ParseInstruction`).
///
/// Errors are [`Error::Instruction`] with the node's span and BuildKit's message, for example
/// "unknown instruction: FOO" or "COPY requires at least two arguments, but only one was
/// provided. Destination could not be determined".
pub fn parse_instruction(node: &Node) -> Result<Instruction> {
    parse_node(node).map_err(|message| Error::Instruction {
        span: node.span,
        message,
    })
}

/// [`parse_instruction`], keeping the node's span and source text.
pub fn parse_command(node: &Node) -> Result<Command> {
    Ok(Command {
        instruction: parse_instruction(node)?,
        span: node.span,
        source: node.original.trim().to_string(),
    })
}

/// The parse step proper; errors are bare messages, located by the callers.
fn parse_node(node: &Node) -> Result<Instruction, String> {
    Ok(match node.keyword.to_ascii_lowercase().as_str() {
        "from" => Instruction::From(from::parse(node)?),
        "run" => Instruction::Run(run::parse(node)?),
        "cmd" => Instruction::Cmd(process::parse_cmd(node)?),
        "entrypoint" => Instruction::Entrypoint(process::parse_entrypoint(node)?),
        "shell" => Instruction::Shell(process::parse_shell(node)?),
        "label" => Instruction::Label(config::parse_label(node)?),
        "maintainer" => Instruction::Maintainer(config::parse_maintainer(node)?),
        "expose" => Instruction::Expose(config::parse_expose(node)?),
        "env" => Instruction::Env(config::parse_env(node)?),
        "add" => Instruction::Add(files::parse_add(node)?),
        "copy" => Instruction::Copy(files::parse_copy(node)?),
        "volume" => Instruction::Volume(config::parse_volume(node)?),
        "user" => Instruction::User(config::parse_user(node)?),
        "workdir" => Instruction::Workdir(config::parse_workdir(node)?),
        "arg" => Instruction::Arg(arg::parse(node)?),
        "onbuild" => Instruction::OnBuild(onbuild::parse(node)?),
        "stopsignal" => Instruction::StopSignal(config::parse_stopsignal(node)?),
        "healthcheck" => Instruction::Healthcheck(healthcheck::parse(node)?),
        _ => {
            let written = if node.keyword_original.is_empty() {
                &node.keyword
            } else {
                &node.keyword_original
            };
            return Err(suggest::with_suggestion(
                format!("unknown instruction: {written}"),
                written,
                INSTRUCTION_NAMES,
                false,
            ));
        }
    })
}

fn at_least_one_argument(keyword: &str) -> String {
    format!("{keyword} requires at least one argument")
}

fn exactly_one_argument(keyword: &str) -> String {
    format!("{keyword} requires exactly one argument")
}

/// Applies `expand` to every word of a list.
fn expand_all<F>(words: &[String], expand: &F) -> Result<Vec<String>>
where
    F: Fn(&str) -> Result<String>,
{
    words.iter().map(|w| expand(w)).collect()
}
