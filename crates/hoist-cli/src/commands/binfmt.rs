//! `hoist binfmt [--install all|ARCHS] [--uninstall ARCHS] [--format table|json]`: what
//! this machine executes (native platforms and enabled binfmt_misc handlers), and
//! registering or removing QEMU user-mode emulators with the `F` flag.

use std::process::ExitCode;

use anyhow::{bail, Context as _};
use hoist_engine::binfmt::{native_platforms, BinfmtMisc, Emulator, ExecSupport, EMULATORS};
use hoist_oci::Platform;

use super::print;
use crate::cli::BinfmtArgs;

pub fn run(args: &BinfmtArgs) -> anyhow::Result<ExitCode> {
    let binfmt = BinfmtMisc::new(&args.binfmt_misc_dir);
    // Changes report one line per handler on stderr; `hoist binfmt` alone lists.
    if let Some(list) = &args.install {
        install(&binfmt, args, list)?;
    } else if let Some(list) = &args.uninstall {
        uninstall(&binfmt, list)?;
    } else {
        list(&binfmt, &args.format)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `all` (every known emulator that is not native) or the named ones.
fn emulators(list: &str) -> anyhow::Result<Vec<&'static Emulator>> {
    if list.trim() == "all" {
        let native = native_platforms();
        return Ok(EMULATORS
            .iter()
            .filter(|e| !native.iter().any(|p| e.runs(p)))
            .collect());
    }
    let mut out: Vec<&'static Emulator> = Vec::new();
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let Some(emulator) = Emulator::find(name) else {
            let known: Vec<&str> = EMULATORS
                .iter()
                .filter_map(|e| e.platforms.first()?.split('/').nth(1))
                .collect();
            bail!(
                "unknown architecture {name:?}: expected all or some of {}",
                known.join(", ")
            );
        };
        if !out.contains(&emulator) {
            out.push(emulator);
        }
    }
    Ok(out)
}

fn install(binfmt: &BinfmtMisc, args: &BinfmtArgs, list: &str) -> anyhow::Result<()> {
    let wanted = emulators(list)?;
    binfmt
        .mount()
        .context("cannot mount binfmt_misc (installing emulators needs root)")?;
    let existing = binfmt.handlers()?;
    let native = native_platforms();
    let mut failures = Vec::new();
    for emulator in wanted {
        let name = emulator.handler_name();
        if native.iter().any(|p| emulator.runs(p)) {
            eprintln!(
                "{name}: {} is native here, nothing to install",
                emulator.platforms.join(", ")
            );
            continue;
        }
        if existing.iter().any(|h| h.emulator() == Some(emulator)) {
            eprintln!("{name}: already registered");
            continue;
        }
        let result = emulator
            .registration(&args.binfmt_conf_dir)
            .and_then(|reg| binfmt.register(&reg).map(|()| reg));
        match result {
            Ok(reg) => eprintln!(
                "{name}: installed ({} flags {})",
                reg.interpreter.display(),
                reg.flags
            ),
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    if !failures.is_empty() {
        bail!(
            "cannot install every emulator:\n  {}",
            failures.join("\n  ")
        );
    }
    Ok(())
}

fn uninstall(binfmt: &BinfmtMisc, list: &str) -> anyhow::Result<()> {
    let wanted = emulators(list)?;
    let existing = binfmt.handlers()?;
    for emulator in wanted {
        let handlers: Vec<_> = existing
            .iter()
            .filter(|h| h.emulator() == Some(emulator))
            .collect();
        if handlers.is_empty() {
            eprintln!("{}: not registered", emulator.handler_name());
        }
        for handler in handlers {
            binfmt.unregister(&handler.name)?;
            eprintln!("{}: uninstalled", handler.name);
        }
    }
    Ok(())
}

#[derive(serde::Serialize)]
struct Listing {
    supported: Vec<String>,
    native: Vec<String>,
    binfmt_misc: Mount,
    emulators: Vec<EmulatorEntry>,
}

#[derive(serde::Serialize)]
struct Mount {
    path: String,
    mounted: bool,
    enabled: bool,
}

#[derive(serde::Serialize)]
struct EmulatorEntry {
    name: String,
    platforms: Vec<String>,
    interpreter: String,
    flags: String,
    enabled: bool,
}

fn list(binfmt: &BinfmtMisc, format: &str) -> anyhow::Result<()> {
    let native = native_platforms();
    let support = ExecSupport::read(binfmt, native.clone())?;
    let formats = |ps: &[Platform]| ps.iter().map(Platform::format).collect::<Vec<_>>();
    let listing = Listing {
        supported: formats(&support.platforms()),
        native: formats(&native),
        binfmt_misc: Mount {
            path: binfmt.dir().display().to_string(),
            mounted: binfmt.is_mounted(),
            enabled: binfmt.enabled(),
        },
        emulators: binfmt
            .handlers()?
            .into_iter()
            .map(|h| EmulatorEntry {
                platforms: h
                    .emulator()
                    .map(|e| e.platforms.iter().map(|p| (*p).to_owned()).collect())
                    .unwrap_or_default(),
                interpreter: h.interpreter.display().to_string(),
                flags: h.flags.clone(),
                enabled: h.enabled,
                name: h.name,
            })
            .collect(),
    };
    match format {
        "json" => {
            let mut text = serde_json::to_string_pretty(&listing)?;
            text.push('\n');
            print(text)
        }
        "table" | "" => print(render(&listing)),
        other => bail!("unknown format {other:?}: expected table or json"),
    }
}

fn render(listing: &Listing) -> String {
    let mount = &listing.binfmt_misc;
    let state = match (mount.mounted, mount.enabled) {
        (false, _) => "not mounted",
        (true, true) => "enabled",
        (true, false) => "disabled",
    };
    let mut out = format!(
        "Platforms:   {}\nNative:      {}\nbinfmt_misc: {} ({})\n",
        listing.supported.join(", "),
        listing.native.join(", "),
        mount.path,
        state
    );
    if listing.emulators.is_empty() {
        out.push_str("\nNo emulators registered.\n");
        return out;
    }
    let rows: Vec<[String; 5]> = listing
        .emulators
        .iter()
        .map(|e| {
            [
                e.name.clone(),
                if e.platforms.is_empty() {
                    "-".to_owned()
                } else {
                    e.platforms.join(",")
                },
                e.interpreter.clone(),
                e.flags.clone(),
                (if e.enabled { "enabled" } else { "disabled" }).to_owned(),
            ]
        })
        .collect();
    let header = ["NAME", "PLATFORMS", "INTERPRETER", "FLAGS", "STATUS"].map(str::to_owned);
    let widths: Vec<usize> = (0..5)
        .map(|i| {
            rows.iter()
                .chain([&header])
                .map(|r| r[i].len())
                .max()
                .unwrap_or(0)
        })
        .collect();
    out.push('\n');
    for row in [&header].into_iter().chain(&rows) {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}
