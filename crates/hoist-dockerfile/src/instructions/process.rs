//! Command lines in shell or exec form, and the instructions made of one: CMD, ENTRYPOINT and
//! SHELL (RUN, which has flags, is in `run.rs`).

use super::at_least_one_argument;
use super::flags::Flags;
use crate::ast::Node;

/// A command line as written: shell form (run through the image's shell) or exec form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandLine {
    /// `RUN echo hi`: one string, run as `<shell...> "echo hi"`.
    Shell(String),
    /// `RUN ["echo", "hi"]`: the argv as is.
    Exec(Vec<String>),
}

impl CommandLine {
    /// True for the shell form (BuildKit's `PrependShell`).
    pub fn prepends_shell(&self) -> bool {
        matches!(self, CommandLine::Shell(_))
    }

    /// The words BuildKit's `CmdLine` holds: the one shell string, or the exec argv.
    pub fn words(&self) -> Vec<String> {
        match self {
            CommandLine::Shell(line) => vec![line.clone()],
            CommandLine::Exec(argv) => argv.clone(),
        }
    }
}

/// A heredoc body attached to a RUN / CMD / ENTRYPOINT (`RUN <<EOF`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InlineFile {
    /// The delimiter (`EOF`).
    pub name: String,
    /// The body as written, not yet chomped.
    pub data: String,
    /// `<<-`: leading tabs are stripped from each line when the body is used.
    pub chomp: bool,
}

/// `CMD`: the default command of the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmd {
    pub line: CommandLine,
    pub files: Vec<InlineFile>,
}

/// `ENTRYPOINT`: the entrypoint of the image. An empty exec form (`ENTRYPOINT []`) clears it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entrypoint {
    pub line: CommandLine,
    pub files: Vec<InlineFile>,
}

/// `SHELL ["/bin/bash", "-c"]`: the shell for later shell-form commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shell {
    pub shell: Vec<String>,
}

/// The command line of a node: exec form keeps the array, shell form joins the arguments.
pub(super) fn command_line(node: &Node) -> CommandLine {
    command_line_of(&node.args, node.json)
}

pub(super) fn command_line_of(args: &[String], json: bool) -> CommandLine {
    if json {
        CommandLine::Exec(args.to_vec())
    } else {
        CommandLine::Shell(args.join(" "))
    }
}

pub(super) fn inline_files(node: &Node) -> Vec<InlineFile> {
    node.heredocs
        .iter()
        .map(|h| InlineFile {
            name: h.name.clone(),
            data: h.content.clone(),
            chomp: h.chomp,
        })
        .collect()
}

pub(super) fn parse_cmd(node: &Node) -> Result<Cmd, String> {
    Flags::parse(&node.flags, &[])?;
    Ok(Cmd {
        line: command_line(node),
        files: inline_files(node),
    })
}

pub(super) fn parse_entrypoint(node: &Node) -> Result<Entrypoint, String> {
    Flags::parse(&node.flags, &[])?;
    Ok(Entrypoint {
        line: command_line(node),
        files: inline_files(node),
    })
}

pub(super) fn parse_shell(node: &Node) -> Result<Shell, String> {
    Flags::parse(&node.flags, &[])?;
    if node.args.is_empty() {
        return Err(at_least_one_argument("SHELL"));
    }
    if !node.json {
        return Err("SHELL requires the arguments to be in JSON form".to_string());
    }
    Ok(Shell {
        shell: node.args.clone(),
    })
}
