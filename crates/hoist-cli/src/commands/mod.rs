//! One module per subcommand; `run` dispatches. [`Context`] carries the global flags
//! (`--root`, `--config`) and builds what commands share: the registry client, the state dir.

mod binfmt;
mod build;
mod debug;
mod debug_layout;
mod du;
mod history;
mod imagetools_create;
mod imagetools_inspect;
mod login;
mod logout;
mod manifest_annotate;
mod manifest_create;
mod manifest_inspect;
mod manifest_push;
mod manifest_rm;
mod prune;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use hoist_engine::StateDir;
use hoist_images::manifest_lists::ManifestListStore;
use hoist_images::remote::ClientRemote;
use hoist_oci::Reference;
use hoist_registry::{Credentials, RegistryClient, RegistryConfig};

use crate::cli::{Cli, Command, DebugCommand, HistoryCommand, ImagetoolsCommand, ManifestCommand};

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let ctx = Context {
        root: cli.root,
        config: cli.config,
    };
    match cli.command {
        Command::Build(args) => build::run(&ctx, *args),
        Command::Binfmt(args) => binfmt::run(&args),
        Command::Debug(DebugCommand::PushLayout(args)) => debug_layout::push(&ctx, args),
        Command::Debug(DebugCommand::PullLayout(args)) => debug_layout::pull(&ctx, args),
        Command::Debug(DebugCommand::Parse(args)) => debug::parse(&args),
        Command::Debug(DebugCommand::Instructions(args)) => debug::instructions(&args),
        Command::Imagetools(ImagetoolsCommand::Inspect(args)) => {
            imagetools_inspect::run(&ctx, args)
        }
        Command::Imagetools(ImagetoolsCommand::Create(args)) => imagetools_create::run(&ctx, args),
        Command::Manifest(ManifestCommand::Create(args)) => manifest_create::run(&ctx, args),
        Command::Manifest(ManifestCommand::Annotate(args)) => manifest_annotate::run(&ctx, args),
        Command::Manifest(ManifestCommand::Inspect(args)) => manifest_inspect::run(&ctx, args),
        Command::Manifest(ManifestCommand::Push(args)) => manifest_push::run(&ctx, args),
        Command::Manifest(ManifestCommand::Rm(args)) => manifest_rm::run(&ctx, args),
        Command::Login(args) => login::run(&ctx, args),
        Command::Logout(args) => logout::run(&ctx, args),
        Command::Prune(args) => prune::run(&ctx, args),
        Command::Du(args) => du::run(&ctx, args),
        Command::History(HistoryCommand::Ls(args)) => history::ls(&ctx, &args),
        Command::History(HistoryCommand::Inspect(args)) => history::inspect(&ctx, &args),
        Command::History(HistoryCommand::Logs(args)) => history::logs(&ctx, &args),
        Command::History(HistoryCommand::Rm(args)) => history::rm(&ctx, &args),
    }
}

/// The global flags, and the shared things built from them.
#[derive(Debug)]
pub struct Context {
    root: Option<PathBuf>,
    config: Option<PathBuf>,
}

impl Context {
    /// The state dir (`--root`, else the default for this user).
    pub fn state_dir(&self) -> anyhow::Result<StateDir> {
        Ok(StateDir::resolve(self.root.clone())?)
    }

    /// The local manifest lists, under the state dir's `manifests/`.
    pub fn manifest_store(&self) -> anyhow::Result<ManifestListStore> {
        Ok(ManifestListStore::new(
            self.state_dir()?.root().join("manifests"),
        ))
    }

    /// Registry settings: `--config` when given; `insecure_hosts` skip TLS verification
    /// (`--insecure` of the `manifest` commands).
    pub fn registry_config(&self, insecure_hosts: &[&str]) -> anyhow::Result<RegistryConfig> {
        let mut config = match &self.config {
            Some(path) => RegistryConfig::load(path)?,
            None => RegistryConfig::default(),
        };
        for host in insecure_hosts {
            config.hosts.entry((*host).to_owned()).or_default().insecure = true;
        }
        Ok(config)
    }

    /// A registry client with the docker config's credentials, wrapped for the commands.
    pub fn remote(&self, insecure_hosts: &[&str]) -> anyhow::Result<ClientRemote> {
        let client = RegistryClient::new(
            self.registry_config(insecure_hosts)?,
            Credentials::from_docker_config(),
        );
        Ok(ClientRemote::new(client, self.state_dir()?.root()))
    }
}

/// Runs a future to completion on a fresh runtime (commands are one-shot).
pub fn block_on<F: std::future::Future>(future: F) -> anyhow::Result<F::Output> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    Ok(runtime.block_on(future))
}

/// Writes `text` to stdout as it is.
pub fn print(text: impl AsRef<[u8]>) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_ref())
        .and_then(|()| out.flush())
        .context("cannot write to stdout")
}

/// The registry host of a reference typed by the user (for `--insecure`).
pub fn host_of(reference: &str) -> Option<String> {
    Reference::parse_normalized(reference)
        .ok()
        .map(|r| r.domain().to_owned())
}
