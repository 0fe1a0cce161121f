//! `hoist debug parse|instructions FILE|-`: make the Dockerfile frontend observable.
//!
//! `parse` prints the AST in BuildKit's dump format (parser errors only, as BuildKit's
//! parser); `instructions` also converts to typed instructions and prints one per line.
//! Errors print the buildx-style excerpt that starts with `FILE:LINE`, and exit 1.

use std::io::{Read, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use hoist_dockerfile::ast::Dockerfile;
use hoist_dockerfile::{instructions, parser};

use crate::cli::DebugFileArgs;

/// `hoist debug parse`: the AST in BuildKit's dump format.
pub fn parse(args: &DebugFileArgs) -> anyhow::Result<ExitCode> {
    show(args, |df| Ok(df.dump()))
}

/// `hoist debug instructions`: the typed instructions, one per line, with their stage.
pub fn instructions(args: &DebugFileArgs) -> anyhow::Result<ExitCode> {
    show(args, instructions::listing)
}

fn show(
    args: &DebugFileArgs,
    render: impl Fn(&Dockerfile) -> hoist_dockerfile::Result<String>,
) -> anyhow::Result<ExitCode> {
    let (name, bytes) = read_input(&args.file)?;
    let outcome = parser::parse_bytes(&bytes).and_then(|df| render(&df).map(|out| (df, out)));
    match outcome {
        Ok((df, out)) => {
            let mut stderr = std::io::stderr().lock();
            for warning in &df.warnings {
                writeln!(
                    stderr,
                    "WARNING: {name}:{}: {}",
                    warning.span.start, warning.short
                )?;
            }
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(out.as_bytes())?;
            if !out.is_empty() && !out.ends_with('\n') {
                stdout.write_all(b"\n")?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(err) => {
            let source = String::from_utf8_lossy(&bytes);
            eprint!("{}", instructions::error_context(&name, &source, &err));
            Ok(ExitCode::FAILURE)
        }
    }
}

/// The display name and bytes of `file`, or of standard input for `-`.
fn read_input(file: &Path) -> anyhow::Result<(String, Vec<u8>)> {
    if file.as_os_str() == "-" {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .context("failed to read the Dockerfile from standard input")?;
        return Ok(("-".to_string(), bytes));
    }
    let bytes =
        std::fs::read(file).with_context(|| format!("failed to read {}", file.display()))?;
    Ok((file.display().to_string(), bytes))
}
