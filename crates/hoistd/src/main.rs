//! `hoistd`: flags (buildkitd's names) and the config file → [`hoistd::DaemonOptions`];
//! SIGTERM and SIGINT stop it gracefully. `hoistd dial-stdio` bridges stdio to a daemon.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use hoist_engine::{Environment, StateDir};
use hoistd::{Address, DaemonConfig, DaemonOptions, TlsFiles};
use tokio::signal::unix::{signal, SignalKind};

#[derive(Debug, Parser)]
#[command(
    name = "hoistd",
    version,
    about = "hoist's build daemon, serving BuildKit's gRPC API"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Listening address, repeatable: unix:///PATH or tcp://HOST:PORT
    /// [default: unix:///run/hoistd/hoistd.sock as root]
    #[arg(long = "addr", value_name = "ADDRESS")]
    addresses: Vec<String>,
    /// State dir (content store, snapshots, build cache), shared with `hoist --root`
    #[arg(long)]
    root: Option<PathBuf>,
    /// Config file shaped like buildkitd.toml
    #[arg(long)]
    config: Option<PathBuf>,
    /// Server certificate (PEM) for tcp listeners
    #[arg(long)]
    tlscert: Option<PathBuf>,
    /// Key of --tlscert (PEM)
    #[arg(long)]
    tlskey: Option<PathBuf>,
    /// CA (PEM) that must have signed each client's certificate: mutual TLS
    #[arg(long)]
    tlscacert: Option<PathBuf>,
    /// Also serve the Docker Engine API's build endpoints (what `DOCKER_BUILDKIT=1 docker
    /// build` uses) on this unix socket, repeatable: unix:///PATH
    #[arg(long = "engine-addr", value_name = "ADDRESS")]
    engine_addresses: Vec<String>,
    /// How long a Solve waits for its client session to open, and for each answer of the
    /// client during a file transfer; a gateway call waits as long for its build's Solve
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    session_timeout: u64,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Bridge stdin and stdout to the daemon's socket
    DialStdio {
        /// The daemon's address [default: the first --addr, else the default socket]
        #[arg(long = "addr", value_name = "ADDRESS")]
        address: Option<String>,
    },
}

fn main() -> ExitCode {
    // RUN steps run in a sandbox helper that is this binary re-executed: it must take over
    // before anything else (no threads, no argument parsing).
    hoist_engine::runtime::init_if_requested();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("hoistd: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("hoistd: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn default_address() -> Address {
    let env = Environment::current();
    Address::default_for(
        env.is_root,
        std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from),
    )
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Some(Command::DialStdio { address }) = &cli.command {
        let address = match address.as_ref().or(cli.addresses.first()) {
            Some(text) => Address::parse(text)?,
            None => default_address(),
        };
        return Ok(hoistd::dial_stdio::run(&address).await?);
    }
    let config = match &cli.config {
        Some(path) => DaemonConfig::load(path)?,
        None => DaemonConfig::default(),
    };
    let texts = if cli.addresses.is_empty() {
        config.addresses.clone()
    } else {
        cli.addresses.clone()
    };
    let mut addresses = texts
        .iter()
        .map(|text| Address::parse(text))
        .collect::<Result<Vec<_>, _>>()?;
    if addresses.is_empty() {
        addresses.push(default_address());
    }
    let tls = TlsFiles {
        cert: cli.tlscert.or(config.tls.cert),
        key: cli.tlskey.or(config.tls.key),
        ca: cli.tlscacert.or(config.tls.ca),
    };
    let state = StateDir::resolve(cli.root.or(config.root))?;
    let engine_addresses = cli
        .engine_addresses
        .iter()
        .map(|text| match Address::parse(text)? {
            address @ Address::Unix(_) => Ok(address),
            Address::Tcp(_) => anyhow::bail!(
                "--engine-addr {text}: the Engine API is served on unix sockets only (it has no TLS)"
            ),
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let options = DaemonOptions {
        addresses,
        engine_addresses,
        session_timeout: std::time::Duration::from_secs(cli.session_timeout.max(1)),
        tls,
        state,
        platforms: config.platforms,
        registry: config.registry,
    };
    let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => eprintln!("hoistd: SIGTERM"),
            _ = int.recv() => eprintln!("hoistd: SIGINT"),
        }
    };
    hoistd::serve::run(options, shutdown).await?;
    Ok(())
}
