//! `hoist logout [SERVER]`: forgets the credentials stored for a registry.

use std::process::ExitCode;

use hoist_registry::LoginOptions;

use super::login::server_host;
use super::{block_on, print, Context};
use crate::cli::LogoutArgs;

pub fn run(ctx: &Context, args: LogoutArgs) -> anyhow::Result<ExitCode> {
    let host = server_host(args.server.as_deref());
    let shown = if host == "docker.io" {
        hoist_registry::credentials::DOCKER_HUB_CONFIG_KEY.to_owned()
    } else {
        host.clone()
    };
    let options = LoginOptions {
        registry_config: ctx.registry_config(&[])?,
        docker_config: None,
    };
    if block_on(hoist_registry::logout_with(&options, &host))?? {
        print(format!("Removing login credentials for {shown}\n"))?;
    } else {
        print(format!("Not logged in to {shown}\n"))?;
    }
    Ok(ExitCode::SUCCESS)
}
