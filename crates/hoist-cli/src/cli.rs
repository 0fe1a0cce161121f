//! The command line, as clap types. Names and flags follow buildx where buildx has them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "hoist",
    version,
    about = "Build container images from Dockerfiles, for one platform or many"
)]
pub struct Cli {
    /// State directory (content store, cache); default /var/lib/hoist as root.
    #[arg(long, global = true, env = "HOIST_ROOT")]
    pub root: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Look inside hoist's frontend: the parsed AST and typed instructions.
    #[command(subcommand)]
    Debug(DebugCommand),
}

#[derive(Debug, Subcommand)]
pub enum DebugCommand {
    /// Print the Dockerfile AST in BuildKit's dump format.
    Parse(DebugFileArgs),
    /// Print the typed instructions, one per line, with their stage.
    Instructions(DebugFileArgs),
}

#[derive(Debug, Args)]
pub struct DebugFileArgs {
    /// The Dockerfile to read, or `-` for standard input.
    pub file: PathBuf,
}
