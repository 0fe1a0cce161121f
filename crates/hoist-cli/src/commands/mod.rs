//! One module per subcommand; `run` dispatches.

mod debug;

use std::process::ExitCode;

use crate::cli::{Cli, Command};

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Debug(cmd) => debug::run(cmd),
    }
}
