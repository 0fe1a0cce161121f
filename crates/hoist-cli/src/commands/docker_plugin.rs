//! hoist as a docker CLI plugin: the handshake (`docker-cli-plugin-metadata`), the argument
//! shift when docker runs it (`docker hoist build …` runs `docker-hoist hoist build …`), and
//! `hoist install`/`uninstall`, which as `buildx install` set (or remove) the alias
//! `builder` → `hoist` in the docker config and link `cli-plugins/docker-hoist` to this
//! binary.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use serde_json::{json, Map, Value};

use super::print;

/// The plugin's name: `docker hoist`.
const PLUGIN_NAME: &str = "hoist";

/// The command line without the plugin name docker puts first.
pub fn plugin_args(args: impl Iterator<Item = OsString>) -> Vec<OsString> {
    let mut args: Vec<OsString> = args.collect();
    if args.get(1).is_some_and(|a| a == PLUGIN_NAME) {
        args.remove(1);
    }
    args
}

/// Prints the metadata the docker CLI asks a plugin for.
pub fn metadata() -> anyhow::Result<ExitCode> {
    let metadata = json!({
        "SchemaVersion": "0.1.0",
        "Vendor": "hoist",
        "Version": concat!("v", env!("CARGO_PKG_VERSION")),
        "ShortDescription": "Build container images from Dockerfiles, for one platform or many",
    });
    print(format!("{metadata}\n"))?;
    Ok(ExitCode::SUCCESS)
}

/// The docker CLI's config dir: `DOCKER_CONFIG`, else `~/.docker`.
fn docker_config_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return Ok(dir.into());
    }
    let home =
        std::env::var_os("HOME").context("cannot find the docker config: HOME is not set")?;
    Ok(PathBuf::from(home).join(".docker"))
}

pub fn install() -> anyhow::Result<ExitCode> {
    let dir = docker_config_dir()?;
    edit_aliases(&dir, |aliases| {
        aliases.insert("builder".to_owned(), json!(PLUGIN_NAME));
    })?;
    let plugins = dir.join("cli-plugins");
    std::fs::create_dir_all(&plugins)
        .with_context(|| format!("could not create {}", plugins.display()))?;
    let link = plugins.join(format!("docker-{PLUGIN_NAME}"));
    let exe = std::env::current_exe().context("cannot find the hoist binary")?;
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&exe, &link)
        .with_context(|| format!("could not link {} to {}", link.display(), exe.display()))?;
    Ok(ExitCode::SUCCESS)
}

pub fn uninstall() -> anyhow::Result<ExitCode> {
    let dir = docker_config_dir()?;
    edit_aliases(&dir, |aliases| {
        if aliases.get("builder") == Some(&json!(PLUGIN_NAME)) {
            aliases.remove("builder");
        }
    })?;
    let link = dir
        .join("cli-plugins")
        .join(format!("docker-{PLUGIN_NAME}"));
    if link
        .symlink_metadata()
        .is_ok_and(|m| m.file_type().is_symlink())
    {
        std::fs::remove_file(&link)
            .with_context(|| format!("could not remove {}", link.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Changes the `aliases` object of `<dir>/config.json`, every other key kept as it was.
fn edit_aliases(
    dir: &std::path::Path,
    edit: impl FnOnce(&mut Map<String, Value>),
) -> anyhow::Result<()> {
    let path = dir.join("config.json");
    let mut config: Map<String, Value> = match std::fs::read(&path) {
        Ok(bytes) if !bytes.iter().all(u8::is_ascii_whitespace) => {
            serde_json::from_slice(&bytes)
                .with_context(|| format!("invalid docker config {}", path.display()))?
        }
        Ok(_) => Map::new(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Map::new(),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let aliases = config
        .entry("aliases")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .with_context(|| {
            format!(
                "invalid docker config {}: aliases is not an object",
                path.display()
            )
        })?;
    edit(aliases);
    if aliases.is_empty() {
        config.remove("aliases");
    }
    let mut bytes = serde_json::to_vec_pretty(&config)?;
    bytes.push(b'\n');
    std::fs::create_dir_all(dir)
        .with_context(|| format!("could not create docker config {}", dir.display()))?;
    // Replaced whole, as the docker CLI saves it: a temp file beside it renamed over it.
    let temp = dir.join(".config.json.hoist-tmp");
    std::fs::write(&temp, &bytes).with_context(|| format!("could not write {}", temp.display()))?;
    std::fs::rename(&temp, &path)
        .with_context(|| format!("could not write docker config {}", path.display()))?;
    Ok(())
}
