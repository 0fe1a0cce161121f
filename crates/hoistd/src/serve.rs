//! Running the daemon: every listener bound before any is served (so a bad address fails
//! the start), each served by its own tonic server (TLS on tcp listeners when configured),
//! all sharing one control and health service, until the shutdown signal. Shutdown stops
//! accepting, turns health to `NOT_SERVING`, lets running calls finish, then removes the
//! unix sockets it made.

use std::collections::HashMap;
use std::future::Future;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hoist_engine::binfmt::ExecSupport;
use hoist_engine::StateDir;
use hoist_oci::{Digest, Platform};
use hoist_proto::control::control_server::ControlServer;
use hoist_proto::gateway::llb_bridge_server::LlbBridgeServer;
use hoist_proto::health::health_server::HealthServer;
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_stream::wrappers::{TcpListenerStream, UnixListenerStream};
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};

use crate::address::Address;
use crate::calls::Calls;
use crate::config::TlsFiles;
use crate::control::{
    ControlService, WorkerInfo, LABEL_EXECUTOR, LABEL_HOSTNAME, LABEL_NETWORK, LABEL_SNAPSHOTTER,
};
use crate::error::{Error, Result};
use crate::gateway::GatewayService;
use crate::health::HealthService;

/// Everything the daemon runs with, flags and config merged.
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    pub addresses: Vec<Address>,
    /// Unix sockets serving the Docker Engine API's build endpoints (`--engine-addr`).
    pub engine_addresses: Vec<Address>,
    /// How long a Solve waits for its session, and for each answer of the client.
    pub session_timeout: Duration,
    pub tls: TlsFiles,
    pub state: StateDir,
    /// Advertised platforms; empty: native plus what binfmt_misc runs.
    pub platforms: Vec<Platform>,
    /// The registries' settings builds use (`[registry."host"]`).
    pub registry: hoist_registry::RegistryConfig,
}

/// How long answers get to reach their clients after the last call ended, before the
/// connections still open are closed at shutdown.
const FLUSH_AFTER_LAST_CALL: Duration = Duration::from_secs(1);

enum Bound {
    Unix(PathBuf, UnixListener),
    Tcp(String, TcpListener),
}

/// Serves until `shutdown` completes, then drains and returns.
pub async fn run(options: DaemonOptions, shutdown: impl Future<Output = ()>) -> Result<()> {
    options.state.create()?;
    let worker = worker_info(&options)?;
    let tls = tls_config(&options.tls)?;
    let mut bound = Vec::new();
    for address in &options.addresses {
        bound.push(bind(address).await?);
    }
    let mut engine_bound = Vec::new();
    for address in &options.engine_addresses {
        match bind(address).await? {
            Bound::Unix(path, listener) => engine_bound.push((path, listener)),
            Bound::Tcp(..) => {
                return Err(Error::Listen {
                    address: address.to_string(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        "the Engine API is served on unix sockets only",
                    ),
                })
            }
        }
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let calls = Calls::default();
    let service = ControlService::new(options.state.clone(), worker.clone(), calls.clone())
        .with_registry(options.registry.clone())
        .with_session_timeout(options.session_timeout);
    let control = ControlServer::new(service.clone());
    let gateway = LlbBridgeServer::new(GatewayService::new(service.clone()));
    let health = HealthServer::new(HealthService::new(stop_rx.clone(), calls.clone()));
    let mut servers = JoinSet::new();
    let mut sockets = Vec::new();
    let mut engine_servers = JoinSet::new();
    for (path, listener) in engine_bound {
        eprintln!(
            "hoistd: serving the Engine API on unix://{}",
            path.display()
        );
        sockets.push(path);
        engine_servers.spawn(crate::engine_api::serve(
            listener,
            service.clone(),
            stop_rx.clone(),
        ));
    }
    for listener in bound {
        let mut stop = stop_rx.clone();
        let stopped = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        let mut builder = Server::builder();
        let address = match listener {
            Bound::Unix(path, listener) => {
                sockets.push(path.clone());
                let address = format!("unix://{}", path.display());
                let router = builder
                    .add_service(control.clone())
                    .add_service(gateway.clone())
                    .add_service(health.clone());
                let incoming = UnixListenerStream::new(listener);
                let label = address.clone();
                servers.spawn(async move {
                    let served = router.serve_with_incoming_shutdown(incoming, stopped).await;
                    (label, served)
                });
                address
            }
            Bound::Tcp(hostport, listener) => {
                let address = format!("tcp://{hostport}");
                if let Some(tls) = &tls {
                    builder = builder.tls_config(tls.clone()).map_err(|err| Error::Tls {
                        address: address.clone(),
                        message: err.to_string(),
                    })?;
                } else {
                    eprintln!("hoistd: warning: {address} serves without TLS: anyone who reaches it can build");
                }
                let router = builder
                    .add_service(control.clone())
                    .add_service(gateway.clone())
                    .add_service(health.clone());
                let incoming = TcpListenerStream::new(listener);
                let label = address.clone();
                servers.spawn(async move {
                    let served = router.serve_with_incoming_shutdown(incoming, stopped).await;
                    (label, served)
                });
                address
            }
        };
        eprintln!("hoistd: listening on {address}");
    }
    eprintln!(
        "hoistd: worker {} ({}), state dir {}",
        worker.id,
        worker
            .platforms
            .iter()
            .map(Platform::to_string)
            .collect::<Vec<_>>()
            .join(","),
        options.state.root().display()
    );
    shutdown.await;
    eprintln!("hoistd: shutting down: no new connections, waiting for running calls");
    let _ = stop_tx.send(true);
    // The servers end by themselves once every connection is closed. A connection on
    // which no call runs (a client that went silent) would hold them forever, so once the
    // running calls are done, and their answers had a moment to leave, what is left is
    // closed.
    let drained = async {
        calls.idle().await;
        tokio::time::sleep(FLUSH_AFTER_LAST_CALL).await;
    };
    tokio::pin!(drained);
    let mut first_error = None;
    let mut draining = true;
    loop {
        tokio::select! {
            joined = servers.join_next() => {
                let Some(joined) = joined else { break };
                match joined {
                    Ok((_, Ok(()))) => {}
                    Ok((address, Err(source))) => {
                        first_error.get_or_insert(Error::Serve { address, source });
                    }
                    Err(err) if err.is_cancelled() => {}
                    Err(err) => eprintln!("hoistd: a server failed: {err}"),
                }
            }
            () = &mut drained, if draining => {
                draining = false;
                eprintln!("hoistd: no call running: closing the connections left open");
                servers.abort_all();
            }
        }
    }
    engine_servers.abort_all();
    for socket in sockets {
        let _ = std::fs::remove_file(socket);
    }
    eprintln!("hoistd: stopped");
    first_error.map_or(Ok(()), Err)
}

async fn bind(address: &Address) -> Result<Bound> {
    let listen_error = |source| Error::Listen {
        address: address.to_string(),
        source,
    };
    match address {
        Address::Unix(path) => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|source| Error::Io {
                    action: "create",
                    path: dir.to_owned(),
                    source,
                })?;
            }
            remove_stale_socket(path).await.map_err(listen_error)?;
            let listener = UnixListener::bind(path).map_err(listen_error)?;
            // Owner and group, as buildkitd's default socket.
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(
                |source| Error::Io {
                    action: "set permissions of",
                    path: path.clone(),
                    source,
                },
            )?;
            Ok(Bound::Unix(path.clone(), listener))
        }
        Address::Tcp(hostport) => {
            let listener = TcpListener::bind(hostport.as_str())
                .await
                .map_err(listen_error)?;
            // Port 0 asks for a free port: name the one we got.
            let hostport = match listener.local_addr() {
                Ok(local) if hostport.ends_with(":0") => local.to_string(),
                _ => hostport.clone(),
            };
            Ok(Bound::Tcp(hostport, listener))
        }
    }
}

/// A socket file nobody answers on is a killed daemon's: remove it. One that answers is a
/// running daemon's: refuse to take it over.
async fn remove_stale_socket(path: &Path) -> std::io::Result<()> {
    if std::fs::symlink_metadata(path).is_err() {
        return Ok(());
    }
    if tokio::net::UnixStream::connect(path).await.is_ok() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::AddrInUse,
            "another daemon is serving this socket",
        ));
    }
    std::fs::remove_file(path)
}

fn read_pem(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| Error::Io {
        action: "read",
        path: path.to_owned(),
        source,
    })
}

/// TLS for tcp listeners: a certificate and key; with a CA, clients must present a
/// certificate it signed.
fn tls_config(files: &TlsFiles) -> Result<Option<ServerTlsConfig>> {
    let tls_error = |message: &str| Error::Tls {
        address: "tcp listeners".to_owned(),
        message: message.to_owned(),
    };
    let (cert, key) = match (&files.cert, &files.key) {
        (Some(cert), Some(key)) => (cert, key),
        (None, None) if files.ca.is_none() => return Ok(None),
        (None, None) => return Err(tls_error("--tlscacert needs --tlscert and --tlskey")),
        _ => return Err(tls_error("--tlscert and --tlskey go together")),
    };
    let mut config =
        ServerTlsConfig::new().identity(Identity::from_pem(read_pem(cert)?, read_pem(key)?));
    if let Some(ca) = &files.ca {
        config = config.client_ca_root(Certificate::from_pem(read_pem(ca)?));
    }
    Ok(Some(config))
}

/// The one worker: this machine's platforms and BuildKit-style labels.
fn worker_info(options: &DaemonOptions) -> Result<WorkerInfo> {
    let platforms = if options.platforms.is_empty() {
        ExecSupport::detect()
            .map_err(|err| Error::Binfmt(err.to_string()))?
            .platforms()
    } else {
        options.platforms.clone()
    };
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default();
    let snapshots = options.state.snapshots_dir();
    std::fs::create_dir_all(&snapshots).map_err(|source| Error::Io {
        action: "create",
        path: snapshots.clone(),
        source,
    })?;
    let snapshotter = match hoist_snapshot::AnySnapshotter::probe(&snapshots) {
        Ok(s) if s.name() == "overlay" => "overlayfs",
        _ => "native",
    };
    let labels = HashMap::from([
        (LABEL_EXECUTOR.to_owned(), "builtin".to_owned()),
        (LABEL_HOSTNAME.to_owned(), hostname.clone()),
        (LABEL_SNAPSHOTTER.to_owned(), snapshotter.to_owned()),
        (LABEL_NETWORK.to_owned(), "host".to_owned()),
    ]);
    // Stable for a host and state dir; as long as BuildKit's worker ids.
    let seed = format!("{hostname}\0{}", options.state.root().display());
    let id = Digest::sha256_of(seed.as_bytes()).encoded()[..25].to_owned();
    Ok(WorkerInfo {
        id,
        platforms,
        labels,
    })
}
