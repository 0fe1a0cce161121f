//! `hoist login [SERVER] -u USER [-p PASS | --password-stdin]`: checks the credentials
//! against the registry, then stores them in the docker config (or its credential helper).

use std::io::Read as _;
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use hoist_registry::LoginOptions;

use super::{block_on, print, Context};
use crate::cli::LoginArgs;

/// docker's `ConvertToHostname`: `https://host:5000/v2/` → `host:5000`; none is Docker Hub.
pub fn server_host(server: Option<&str>) -> String {
    let Some(server) = server.filter(|s| !s.is_empty()) else {
        return "docker.io".to_owned();
    };
    let rest = server
        .strip_prefix("https://")
        .or_else(|| server.strip_prefix("http://"))
        .unwrap_or(server);
    let host = rest.split('/').next().unwrap_or(rest);
    match host {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".to_owned(),
        other => other.to_owned(),
    }
}

pub fn run(ctx: &Context, args: LoginArgs) -> anyhow::Result<ExitCode> {
    if args.password.is_some() && args.password_stdin {
        bail!("--password and --password-stdin are mutually exclusive");
    }
    let password = if args.password_stdin {
        if args.username.as_deref().unwrap_or("").is_empty() {
            bail!("Must provide --username with --password-stdin");
        }
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the password from stdin")?;
        let text = text.strip_suffix('\n').unwrap_or(&text);
        let text = text.strip_suffix('\r').unwrap_or(text);
        Some(text.to_owned())
    } else {
        if args.password.is_some() {
            eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
        }
        args.password
    };
    let (Some(username), Some(password)) = (args.username.filter(|u| !u.is_empty()), password)
    else {
        bail!("Cannot perform an interactive login: give -u USER and -p PASS or --password-stdin");
    };
    if password.is_empty() {
        bail!("Password Required");
    }
    let host = server_host(args.server.as_deref());
    let options = LoginOptions {
        registry_config: ctx.registry_config(&[])?,
        docker_config: None,
    };
    let path = block_on(hoist_registry::login_with(
        &options, &host, &username, &password,
    ))??;
    let file = hoist_registry::DockerConfigFile::load(&path)?;
    if file.helper_for(&host).is_none() {
        eprintln!(
            "WARNING! Your password is stored unencrypted in {}.\n\
             Configure a credential helper to remove this warning.",
            path.display()
        );
    }
    print("Login Succeeded\n")?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_become_hosts_like_docker() {
        assert_eq!(server_host(None), "docker.io");
        assert_eq!(
            server_host(Some("https://index.docker.io/v1/")),
            "docker.io"
        );
        assert_eq!(
            server_host(Some("http://127.0.0.1:5000/v2/")),
            "127.0.0.1:5000"
        );
        assert_eq!(server_host(Some("reg.example")), "reg.example");
    }
}
