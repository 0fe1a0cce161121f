//! `hoist`: build container images from Dockerfiles, for one platform or many.
//!
//! This crate is thin on purpose: `cli` turns the command line into typed arguments, each
//! file under `commands/` turns one subcommand's arguments into a call of a library function
//! (hoist-engine for builds and the state dir, hoist-images for `imagetools` and `manifest`)
//! and prints the result; `progress` renders a build's events.

mod cli;
mod commands;
mod progress;

use clap::Parser;

fn main() -> std::process::ExitCode {
    // The built-in RUN sandbox re-executes this binary as its helper: that must happen
    // before anything else (threads, the async runtime).
    hoist_engine::runtime::init_if_requested();
    let cli = cli::Cli::parse_from(commands::docker_plugin::plugin_args(std::env::args_os()));
    match commands::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("ERROR: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
