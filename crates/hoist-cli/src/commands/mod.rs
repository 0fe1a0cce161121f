//! One module per subcommand; `run` dispatches. [`Context`] carries the global flags
//! (`--root`, `--config`) and builds what commands share: the registry client, the state dir.

mod binfmt;
mod build;
mod build_gateway;
mod build_nodes;
mod build_remote;
mod builder_create;
mod builder_inspect;
mod builder_ls;
mod builder_rm;
mod builder_stop;
mod builder_use;
mod debug;
mod debug_layout;
pub mod docker_plugin;
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
mod remote_options;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use hoist_builder::BuilderStore;
use hoist_engine::{GcConfig, StateDir};
use hoist_images::manifest_lists::ManifestListStore;
use hoist_images::remote::ClientRemote;
use hoist_oci::Reference;
use hoist_registry::{Credentials, RegistryClient, RegistryConfig};

use crate::cli::{
    BuilderCommand, Cli, Command, DebugCommand, HistoryCommand, ImagetoolsCommand, ManifestCommand,
};

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let ctx = Context {
        root: cli.root,
        config: cli.config,
        builder: cli.builder,
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
        Command::Create(args) | Command::Builder(BuilderCommand::Create(args)) => {
            builder_create::run(&ctx, &args)
        }
        Command::Use(args) | Command::Builder(BuilderCommand::Use(args)) => {
            builder_use::run(&ctx, &args)
        }
        Command::Ls(args) | Command::Builder(BuilderCommand::Ls(args)) => {
            builder_ls::run(&ctx, &args)
        }
        Command::Inspect(args) | Command::Builder(BuilderCommand::Inspect(args)) => {
            builder_inspect::run(&ctx, &args)
        }
        Command::Stop(args) | Command::Builder(BuilderCommand::Stop(args)) => {
            builder_stop::run(&ctx, &args)
        }
        Command::Rm(args) | Command::Builder(BuilderCommand::Rm(args)) => {
            builder_rm::run(&ctx, &args)
        }
        Command::Install => docker_plugin::install(),
        Command::Uninstall => docker_plugin::uninstall(),
        Command::DockerCliPluginMetadata => docker_plugin::metadata(),
    }
}

/// The global flags, and the shared things built from them.
#[derive(Debug)]
pub struct Context {
    root: Option<PathBuf>,
    config: Option<PathBuf>,
    builder: Option<String>,
}

impl Context {
    /// The state dir (`--root`, else the default for this user).
    pub fn state_dir(&self) -> anyhow::Result<StateDir> {
        Ok(StateDir::resolve(self.root.clone())?)
    }

    /// The builder store (`HOIST_BUILDERS_DIR`, else `~/.config/hoist/builders`).
    pub fn builder_store(&self) -> anyhow::Result<BuilderStore> {
        let dir = hoist_builder::store::default_dir().context(
            "cannot find the builder store: set HOIST_BUILDERS_DIR, XDG_CONFIG_HOME or HOME",
        )?;
        Ok(BuilderStore::new(dir))
    }

    /// The builder a command without a NAME works on: `--builder`, else `HOIST_BUILDER`,
    /// else `BUILDX_BUILDER`, else the current selection (`default` unless `hoist use`).
    pub fn builder_name(&self) -> anyhow::Result<String> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        if let Some(name) = self
            .builder
            .clone()
            .or_else(|| env("HOIST_BUILDER"))
            .or_else(|| env("BUILDX_BUILDER"))
        {
            return Ok(name);
        }
        let store = self.builder_store()?;
        if !store.dir().exists() {
            // Nothing ever created: no store to make just to read the selection.
            return Ok(hoist_builder::DEFAULT_BUILDER.to_owned());
        }
        Ok(store.txn()?.current()?.name)
    }

    /// Where `hoist build` runs, from the selected builder: the embedded engine, the node(s)
    /// of a `remote` builder (through hoist's BuildKit client, with each node's TLS
    /// driver-opts; several nodes each build their platforms), the one node of a
    /// `docker-container` builder (the same client over the container's dial), or the
    /// Docker daemon of a `docker` builder (`docker-daemon://…`). Other drivers are refused,
    /// naming the builder.
    pub fn build_target(&self) -> anyhow::Result<BuildTarget> {
        let name = self.builder_name()?;
        if name == hoist_builder::DEFAULT_BUILDER {
            return Ok(BuildTarget::Embedded);
        }
        let group = self.builder_store()?.txn()?.find(&name)?;
        if group.driver == hoist_builder::driver::EMBEDDED {
            return Ok(BuildTarget::Embedded);
        }
        if group.driver == hoist_builder::driver::DOCKER {
            let [node] = group.nodes.as_slice() else {
                anyhow::bail!(
                    "builder {:?} of the docker driver has no single node",
                    group.name
                );
            };
            let driver = hoist_builder::driver::DockerDriver::new(node)?;
            return Ok(BuildTarget::Remote {
                addr: driver.client_address(),
                tls: RemoteTls::default(),
            });
        }
        if group.driver == hoist_builder::driver::DOCKER_CONTAINER {
            return match group.nodes.as_slice() {
                [node] => Ok(BuildTarget::DockerContainer(Box::new(
                    hoist_builder::driver::DockerContainerDriver::new(node)?,
                ))),
                nodes => Ok(BuildTarget::Nodes {
                    builder: group.name.clone(),
                    nodes: nodes
                        .iter()
                        .map(|node| {
                            let driver = hoist_builder::driver::DockerContainerDriver::new(node)?;
                            Ok(build_nodes::NodeTarget {
                                name: node.name.clone(),
                                dial: std::sync::Arc::new(build_remote::Dial::Container(Box::new(
                                    driver,
                                ))),
                                platforms: node.platforms.clone(),
                            })
                        })
                        .collect::<anyhow::Result<_>>()?,
                }),
            };
        }
        if group.driver == hoist_builder::driver::KUBERNETES {
            return match group.nodes.as_slice() {
                [node] => Ok(BuildTarget::Kubernetes(Box::new(
                    hoist_builder::driver::KubernetesDriver::new(node)?,
                ))),
                nodes => anyhow::bail!(
                    "builder {:?} has {} nodes: builds spread over several kubernetes nodes are not available yet in hoist (use a builder with one node; its replicas share the builds)",
                    group.name,
                    nodes.len()
                ),
            };
        }
        if group.driver != hoist_builder::driver::REMOTE {
            anyhow::bail!(
                "builder {:?} uses the {} driver, which cannot build in hoist yet",
                group.name,
                group.driver
            );
        }
        match group.nodes.as_slice() {
            [node] => Ok(BuildTarget::Remote {
                addr: node.endpoint.clone(),
                tls: node_tls(node),
            }),
            nodes => Ok(BuildTarget::Nodes {
                builder: group.name.clone(),
                nodes: nodes
                    .iter()
                    .map(|node| build_nodes::NodeTarget {
                        name: node.name.clone(),
                        dial: std::sync::Arc::new(build_remote::Dial::Address {
                            addr: node.endpoint.clone(),
                            tls: node_tls(node),
                        }),
                        platforms: node.platforms.clone(),
                    })
                    .collect(),
            }),
        }
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

    /// The automatic gc settings: `--config`'s `[worker.oci]` gc keys, else BuildKit's
    /// default policy.
    pub fn gc_config(&self) -> anyhow::Result<GcConfig> {
        Ok(match &self.config {
            Some(path) => GcConfig::load(path)?,
            None => GcConfig::default(),
        })
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

/// A remote node's TLS driver-opts.
fn node_tls(node: &hoist_builder::Node) -> RemoteTls {
    RemoteTls {
        ca: node.driver_opts.get("cacert").map(PathBuf::from),
        cert: node.driver_opts.get("cert").map(PathBuf::from),
        key: node.driver_opts.get("key").map(PathBuf::from),
        server_name: node.driver_opts.get("servername").cloned(),
    }
}

/// Where a build runs (see [`Context::build_target`]).
pub enum BuildTarget {
    /// The in-process engine.
    Embedded,
    /// A BuildKit daemon (hoistd, or any BuildKit) at `addr`.
    Remote { addr: String, tls: RemoteTls },
    /// hoistd in a container of a `docker-container` builder, dialled through the Docker
    /// daemon (`exec hoistd dial-stdio`).
    DockerContainer(Box<hoist_builder::driver::DockerContainerDriver>),
    /// The pods of a `kubernetes` builder, dialled by pod exec.
    Kubernetes(Box<hoist_builder::driver::KubernetesDriver>),
    /// The nodes of a `remote` or `docker-container` builder with several: each platform on
    /// its node, each node reached through its own dial.
    Nodes {
        builder: String,
        nodes: Vec<build_nodes::NodeTarget>,
    },
}

/// TLS settings of a connection to a daemon: buildctl's `--tlscacert`, `--tlscert`,
/// `--tlskey`, `--tlsservername`, or a remote builder's `cacert`, `cert`, `key`,
/// `servername` driver-opts.
#[derive(Debug, Clone, Default)]
pub struct RemoteTls {
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub server_name: Option<String>,
}
