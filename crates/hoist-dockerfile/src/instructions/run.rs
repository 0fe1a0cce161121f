//! `RUN [--mount=...]... [--network=...] [--security=...] [--device=...] command`.

use super::flags::{FlagSpec, Flags};
use super::mount::{self, Mount};
use super::process::{command_line, inline_files, CommandLine, InlineFile};
use super::suggest;
use crate::ast::Node;
use crate::Result;

/// `RUN`: a command executed in the stage's filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub line: CommandLine,
    /// Heredoc bodies (`RUN <<EOF`).
    pub files: Vec<InlineFile>,
    /// `--mount=...`, in order.
    pub mounts: Vec<Mount>,
    /// `--network`; `None` when not given (the default network).
    pub network: Option<NetworkMode>,
    /// `--security`; `None` when not given (sandboxed).
    pub security: Option<Security>,
    /// `--device=...`, in order.
    pub devices: Vec<Device>,
}

impl Run {
    /// Expands the `--mount` options and validates them again (BuildKit expands mounts with
    /// the stage's variables when it dispatches the RUN).
    pub fn expand<F>(&self, expand: &F) -> Result<Run>
    where
        F: Fn(&str) -> Result<String>,
    {
        let mounts = self
            .mounts
            .iter()
            .map(|m| m.expand(expand))
            .collect::<Result<_>>()?;
        Ok(Run {
            mounts,
            ..self.clone()
        })
    }
}

/// `RUN --network=...`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkMode {
    Default,
    None,
    Host,
}

impl NetworkMode {
    pub fn as_str(self) -> &'static str {
        match self {
            NetworkMode::Default => "default",
            NetworkMode::None => "none",
            NetworkMode::Host => "host",
        }
    }
}

/// `RUN --security=...`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    Sandbox,
    Insecure,
}

impl Security {
    pub fn as_str(self) -> &'static str {
        match self {
            Security::Sandbox => "sandbox",
            Security::Insecure => "insecure",
        }
    }
}

/// `RUN --device=name[,required]`: a CDI device made available to the command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub name: String,
    pub required: bool,
}

const RUN_FLAGS: &[FlagSpec] = &[
    FlagSpec::strings("mount"),
    FlagSpec::string("network"),
    FlagSpec::string("security"),
    FlagSpec::strings("device"),
];

pub(super) fn parse(node: &Node) -> Result<Run, String> {
    let flags = Flags::parse(&node.flags, RUN_FLAGS)?;
    let line = command_line(node);
    let files = inline_files(node);
    let mounts = flags
        .strings("mount")
        .iter()
        .map(|spec| mount::parse_unexpanded(spec))
        .collect::<Result<_, String>>()?;
    let network = match flags.string("network") {
        None => None,
        Some(value) => Some(match value.as_str() {
            "default" => NetworkMode::Default,
            "none" => NetworkMode::None,
            "host" => NetworkMode::Host,
            _ => return Err(format!("invalid network mode {value:?}")),
        }),
    };
    let security = match flags.string("security") {
        None => None,
        Some(value) => Some(match value.as_str() {
            "sandbox" => Security::Sandbox,
            "insecure" => Security::Insecure,
            _ => return Err(format!("security {value:?} is not valid")),
        }),
    };
    let devices = flags
        .strings("device")
        .iter()
        .map(|spec| parse_device(spec))
        .collect::<Result<_, String>>()?;
    Ok(Run {
        line,
        files,
        mounts,
        network,
        security,
        devices,
    })
}

/// `name`, `name=x`, `required`, `required=bool`, comma-separated; the first unknown word
/// is the name when none was given yet.
fn parse_device(spec: &str) -> Result<Device, String> {
    let fields =
        crate::go_csv::fields(spec).map_err(|e| format!("failed to parse csv devices: {e}"))?;
    let mut name = String::new();
    let mut required = false;
    for field in fields {
        let Some((key, value)) = field.split_once('=') else {
            if field.eq_ignore_ascii_case("required") {
                required = true;
            } else if name.is_empty() {
                name = field;
            } else {
                return Err(format!("invalid field '{field}' must be a key=value pair"));
            }
            continue;
        };
        match key.to_lowercase().as_str() {
            "name" => {
                if !name.is_empty() {
                    return Err(format!("device name already set to {name}"));
                }
                name = value.to_string();
            }
            "required" => {
                required = mount::parse_go_bool(value)
                    .ok_or_else(|| format!("invalid value for required: {value}"))?;
            }
            other => {
                if name.is_empty() {
                    name = field.clone();
                    continue;
                }
                return Err(suggest::with_suggestion(
                    format!("unexpected key '{other}' in '{field}'"),
                    other,
                    &["name", "required"],
                    true,
                ));
            }
        }
    }
    Ok(Device { name, required })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices() {
        let d = parse_device("vendor.com/gpu=all,required").unwrap();
        assert_eq!(
            d,
            Device {
                name: "vendor.com/gpu=all".to_string(),
                required: true
            }
        );
        let d = parse_device("name=nvidia.com/gpu,required=false").unwrap();
        assert_eq!(
            d,
            Device {
                name: "nvidia.com/gpu".to_string(),
                required: false
            }
        );
        assert_eq!(
            parse_device("name=a,name=b").unwrap_err(),
            "device name already set to a"
        );
    }
}
