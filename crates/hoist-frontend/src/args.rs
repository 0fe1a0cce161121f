//! Build arguments: the automatic platform ARGs, global (meta) ARGs and the ordered variable
//! lists stages carry.

use std::collections::BTreeMap;

use hoist_dockerfile::instructions::MetaArg;
use hoist_dockerfile::shell::{Lexer, Lookup};
use hoist_graph::ProxyEnv;
use hoist_oci::Platform;

use crate::{BuildOptions, Error, Result};

/// Variables in the order first set; setting one again replaces its value in place (BuildKit's
/// `EnvList.AddOrReplace`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvList {
    vars: Vec<(String, String)>,
}

impl EnvList {
    pub fn new() -> EnvList {
        EnvList::default()
    }

    pub fn set(&mut self, key: &str, value: &str) {
        match self.vars.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value.to_string(),
            None => self.vars.push((key.to_string(), value.to_string())),
        }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.vars.iter().map(|(k, _)| k.as_str())
    }

    /// `KEY=value` entries in order.
    pub fn to_entries(&self) -> Vec<String> {
        self.vars.iter().map(|(k, v)| format!("{k}={v}")).collect()
    }
}

impl Lookup for EnvList {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.get(name)
    }
}

/// The platforms of a conversion (BuildKit's `platformOpt`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Platforms {
    pub target: Platform,
    pub build: Platform,
    /// No `--platform` was given: the target is the build platform, and the final config
    /// keeps the base image's platform.
    pub implicit_target: bool,
}

impl Platforms {
    pub fn from_options(opts: &BuildOptions) -> Platforms {
        let build = opts.build_platform.normalize();
        match &opts.target_platform {
            Some(target) => Platforms {
                target: target.normalize(),
                build,
                implicit_target: false,
            },
            None => Platforms {
                target: build.clone(),
                build,
                implicit_target: true,
            },
        }
    }
}

/// The automatic ARGs (`BUILDPLATFORM`, `TARGETARCH`, `TARGETSTAGE`, ...), build args of the
/// same name overriding them.
pub(crate) fn default_args(
    platforms: &Platforms,
    build_args: &BTreeMap<String, String>,
    target: &str,
) -> EnvList {
    let bp = &platforms.build;
    let tp = &platforms.target;
    let target = if target.is_empty() { "default" } else { target };
    let defaults = [
        ("BUILDPLATFORM", bp.format()),
        ("BUILDOS", bp.os.clone()),
        ("BUILDOSVERSION", bp.os_version.clone()),
        ("BUILDARCH", bp.architecture.clone()),
        ("BUILDVARIANT", bp.variant.clone()),
        ("TARGETPLATFORM", tp.format_all()),
        ("TARGETOS", tp.os.clone()),
        ("TARGETOSVERSION", tp.os_version.clone()),
        ("TARGETARCH", tp.architecture.clone()),
        ("TARGETVARIANT", tp.variant.clone()),
        ("TARGETSTAGE", target.to_string()),
    ];
    let mut env = EnvList::new();
    for (key, value) in defaults {
        let value = build_args.get(key).cloned().unwrap_or(value);
        env.set(key, &value);
    }
    env
}

/// The global ARGs in force for `FROM` lines and bare `ARG NAME`s in stages: each default is
/// expanded with the ARGs before it, a build arg of the same name wins.
pub(crate) fn meta_args(
    mut args: EnvList,
    lexer: &Lexer,
    meta: &[MetaArg],
    build_args: &BTreeMap<String, String>,
) -> Result<EnvList> {
    for arg in meta {
        let value = match build_args.get(&arg.key) {
            Some(v) => Some(v.clone()),
            None => match &arg.value {
                Some(default) => Some(
                    lexer
                        .process_word(default, &args)
                        .map_err(|e| Error::from(e).located(arg.span))?,
                ),
                None => None,
            },
        };
        if let Some(value) = value {
            args.set(&arg.key, &value);
        }
    }
    Ok(args)
}

/// `HTTP_PROXY` and friends from the build args (case-insensitive, the lower-case spelling
/// winning as it sorts last), or `None` when there are none.
pub(crate) fn proxy_env(build_args: &BTreeMap<String, String>) -> Option<ProxyEnv> {
    let mut proxy = ProxyEnv::default();
    let mut any = false;
    for (key, value) in build_args {
        let slot = match key.to_ascii_lowercase().as_str() {
            "http_proxy" => &mut proxy.http_proxy,
            "https_proxy" => &mut proxy.https_proxy,
            "ftp_proxy" => &mut proxy.ftp_proxy,
            "no_proxy" => &mut proxy.no_proxy,
            "all_proxy" => &mut proxy.all_proxy,
            _ => continue,
        };
        *slot = Some(value.clone());
        any = true;
    }
    any.then_some(proxy)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_args_as_buildkit_defines_them() {
        let platforms = Platforms {
            target: Platform::new("linux", "arm").with_variant("v7"),
            build: Platform::new("linux", "amd64"),
            implicit_target: false,
        };
        let env = default_args(&platforms, &BTreeMap::new(), "");
        assert_eq!(
            env.to_entries(),
            [
                "BUILDPLATFORM=linux/amd64",
                "BUILDOS=linux",
                "BUILDOSVERSION=",
                "BUILDARCH=amd64",
                "BUILDVARIANT=",
                "TARGETPLATFORM=linux/arm/v7",
                "TARGETOS=linux",
                "TARGETOSVERSION=",
                "TARGETARCH=arm",
                "TARGETVARIANT=v7",
                "TARGETSTAGE=default",
            ]
        );
    }

    #[test]
    fn proxy_args_lower_case_wins() {
        let args: BTreeMap<String, String> = [
            ("HTTP_PROXY", "upper"),
            ("http_proxy", "lower"),
            ("NO_PROXY", "x"),
            ("FOO", "bar"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let p = proxy_env(&args).unwrap();
        assert_eq!(p.http_proxy.as_deref(), Some("lower"));
        assert_eq!(p.no_proxy.as_deref(), Some("x"));
        assert!(proxy_env(&BTreeMap::new()).is_none());
    }
}
