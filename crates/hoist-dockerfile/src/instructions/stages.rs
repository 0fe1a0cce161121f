//! A whole Dockerfile → global ARGs and build stages (BuildKit's `instructions.Parse`).

use super::{parse_command, Command, Instruction};
use crate::ast::{Dockerfile, LineSpan};
use crate::{Error, Result};

/// A global `ARG` (before the first `FROM`): usable in `FROM` lines, and in stages that
/// declare it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaArg {
    pub key: String,
    /// The default, not yet expanded; `None` for a bare `ARG name`.
    pub value: Option<String>,
    pub doc_comment: String,
    /// The lines of the `ARG` instruction that declared it.
    pub span: LineSpan,
}

/// A build stage: a `FROM` and the instructions up to the next one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// The stage's position in the file, from 0 (`COPY --from=0`).
    pub index: usize,
    /// The name after `AS`, lower-cased.
    pub name: Option<String>,
    /// The `FROM` image or stage, not yet expanded.
    pub base_name: String,
    /// `FROM --platform`, not yet expanded.
    pub platform: Option<String>,
    /// The comment above `FROM` that documents the stage (`# name does X` → `does X`).
    pub doc_comment: String,
    /// The lines and text of the `FROM` instruction.
    pub span: LineSpan,
    pub source: String,
    /// The instructions after `FROM`, in order.
    pub commands: Vec<Command>,
}

/// Reads a Dockerfile into its global ARGs and its stages.
///
/// Errors: an instruction that fails to parse ("dockerfile parse error on line N: ..."),
/// an instruction other than ARG before the first FROM ("no build stage in current
/// context"), and a file without FROM ("dockerfile contains no stages to build").
pub fn parse_stages(dockerfile: &Dockerfile) -> Result<(Vec<MetaArg>, Vec<Stage>)> {
    let mut meta_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    for node in &dockerfile.children {
        let command = parse_command(node).map_err(|err| match err {
            Error::Instruction { span, message } => Error::Instruction {
                span,
                message: format!("dockerfile parse error on line {}: {message}", span.start),
            },
            other => other,
        })?;
        match command.instruction {
            Instruction::From(from) => stages.push(Stage {
                index: stages.len(),
                name: from.name,
                base_name: from.image,
                platform: from.platform,
                doc_comment: from.doc_comment,
                span: command.span,
                source: command.source.trim().to_string(),
                commands: Vec::new(),
            }),
            Instruction::Arg(arg) if stages.is_empty() => {
                meta_args.extend(arg.args.into_iter().map(|def| MetaArg {
                    key: def.key,
                    value: def.value,
                    doc_comment: def.doc_comment,
                    span: command.span,
                }));
            }
            instruction => match stages.last_mut() {
                Some(stage) => stage.commands.push(Command {
                    instruction,
                    ..command
                }),
                None => {
                    return Err(Error::Instruction {
                        span: command.span,
                        message: "no build stage in current context".to_string(),
                    })
                }
            },
        }
    }
    if stages.is_empty() {
        return Err(Error::Instruction {
            span: dockerfile.span,
            message: "dockerfile contains no stages to build".to_string(),
        });
    }
    Ok((meta_args, stages))
}

impl Stage {
    /// The name to show for the stage: its name, or its index.
    pub fn display_name(&self) -> String {
        match &self.name {
            Some(name) => name.clone(),
            None => self.index.to_string(),
        }
    }
}

/// The stage called `name` (case-insensitive), as `COPY --from` and `FROM` look them up.
pub fn find_stage<'a>(stages: &'a [Stage], name: &str) -> Option<&'a Stage> {
    stages.iter().find(|s| {
        s.name
            .as_deref()
            .is_some_and(|n| n.eq_ignore_ascii_case(name))
    })
}
