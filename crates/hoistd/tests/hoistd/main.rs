//! Integration tests of the `hoistd` binary: a daemon started on a temp unix socket and a
//! loopback tcp port (TLS certificates made with rcgen), called with tonic clients built
//! from hoist-proto's schema — the same code a BuildKit client's requests meet.
//!
//! One test binary; each module is one concern. The fixtures live here: [`Daemon`] (the
//! process, its addresses and stderr), [`Pki`] (a CA with server and client certificates)
//! and the client constructors.

mod control;
mod dial_stdio;
mod docker_cli;
mod dockerd;
mod engine_prune;
mod gateway;
mod gateway_files;
mod robustness;
mod session;
mod solve;
mod tls;
mod warnings;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hoist_proto::control::control_client::ControlClient;
use hoist_proto::health::health_client::HealthClient;
use hoist_proto::tonic::transport::{
    Certificate, Channel, ClientTlsConfig, Endpoint, Identity, Uri,
};
use hyper_util::rt::TokioIo;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};

/// A CA and two certificates it signed, as PEM files in a directory.
#[derive(Debug)]
pub struct Pki {
    pub dir: PathBuf,
}

impl Pki {
    /// `ca.pem`, `server.pem`/`server.key` (for `localhost` and `127.0.0.1`), and
    /// `client.pem`/`client.key`, all under `dir`.
    pub fn new(dir: &Path, ca_name: &str) -> Pki {
        std::fs::create_dir_all(dir).unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, ca_name);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        for (name, sans, usage) in [
            (
                "server",
                vec!["localhost".to_owned(), "127.0.0.1".to_owned()],
                ExtendedKeyUsagePurpose::ServerAuth,
            ),
            ("client", Vec::new(), ExtendedKeyUsagePurpose::ClientAuth),
        ] {
            let mut params = CertificateParams::new(sans).unwrap();
            params.distinguished_name.push(DnType::CommonName, name);
            params.extended_key_usages = vec![usage];
            let key = KeyPair::generate().unwrap();
            let cert = params.signed_by(&key, &ca).unwrap();
            std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
            std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
        }
        Pki {
            dir: dir.to_owned(),
        }
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.file(name)).unwrap()
    }
}

/// A running `hoistd`, killed on drop.
#[derive(Debug)]
pub struct Daemon {
    pub dir: tempfile::TempDir,
    child: Option<Child>,
    pub socket: PathBuf,
    /// `127.0.0.1:PORT` of the tcp listener.
    pub tcp: String,
    pub pki: Pki,
    stderr: Arc<Mutex<String>>,
}

impl Daemon {
    /// A daemon on `<tmp>/hoistd.sock` and a free loopback port with mutual TLS, its state
    /// dir `<tmp>/state`.
    pub fn start() -> Daemon {
        Daemon::start_with(&[])
    }

    /// [`Daemon::start`] with more flags; `{dir}` in them is the daemon's temp dir.
    pub fn start_with(extra: &[&str]) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let extra: Vec<String> = extra
            .iter()
            .map(|arg| arg.replace("{dir}", &dir.path().display().to_string()))
            .collect();
        let pki = Pki::new(&dir.path().join("pki"), "hoistd test CA");
        let socket = dir.path().join("run/hoistd.sock");
        let mut command = Command::new(env!("CARGO_BIN_EXE_hoistd"));
        command
            .arg("--addr")
            .arg(format!("unix://{}", socket.display()))
            .args(["--addr", "tcp://127.0.0.1:0"])
            .arg("--root")
            .arg(dir.path().join("state"))
            .arg("--tlscert")
            .arg(pki.file("server.pem"))
            .arg("--tlskey")
            .arg(pki.file("server.key"))
            .arg("--tlscacert")
            .arg(pki.file("ca.pem"))
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("spawn hoistd");
        let stderr = Arc::new(Mutex::new(String::new()));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        {
            let stderr = Arc::clone(&stderr);
            let pipe = child.stderr.take().unwrap();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    let ready = line.starts_with("hoistd: worker ");
                    let tcp = line
                        .strip_prefix("hoistd: listening on tcp://")
                        .map(str::to_owned);
                    stderr.lock().unwrap().push_str(&format!("{line}\n"));
                    if let Some(tcp) = tcp {
                        let _ = ready_tx.send(Some(tcp));
                    }
                    if ready {
                        let _ = ready_tx.send(None);
                    }
                }
            });
        }
        let mut tcp = String::new();
        loop {
            match ready_rx.recv_timeout(Duration::from_secs(30)) {
                Ok(Some(addr)) => tcp = addr,
                Ok(None) => break,
                Err(_) => {
                    let _ = child.kill();
                    panic!("hoistd did not start:\n{}", stderr.lock().unwrap());
                }
            }
        }
        Daemon {
            dir,
            child: Some(child),
            socket,
            tcp,
            pki,
            stderr,
        }
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// What the daemon wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The daemon's stderr once it holds `needle` (its pipe is read by a thread of its
    /// own, so a line written before an answer may arrive after it); at most 30 s.
    pub fn stderr_with(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let log = self.stderr();
            if log.contains(needle) || Instant::now() > deadline {
                return log;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Sends SIGTERM and waits (at most 30 s) for the exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let mut child = self.child.take().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("hoistd did not stop after SIGTERM:\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().unwrap().is_none())
    }

    /// A gRPC channel over the unix socket.
    pub async fn unix_channel(&self) -> Channel {
        unix_channel(&self.socket).await
    }

    /// A gRPC channel over tcp with TLS, presenting the client certificate when `client_cert`.
    pub async fn tls_channel(
        &self,
        client_cert: bool,
    ) -> Result<Channel, hoist_proto::tonic::transport::Error> {
        let mut tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(self.pki.read("ca.pem")))
            .domain_name("localhost");
        if client_cert {
            tls = tls.identity(Identity::from_pem(
                self.pki.read("client.pem"),
                self.pki.read("client.key"),
            ));
        }
        Endpoint::from_shared(format!("https://{}", self.tcp))
            .unwrap()
            .tls_config(tls)?
            .connect_timeout(Duration::from_secs(10))
            .connect()
            .await
    }

    pub async fn control(&self) -> ControlClient<Channel> {
        ControlClient::new(self.unix_channel().await)
    }

    pub async fn health(&self) -> HealthClient<Channel> {
        HealthClient::new(self.unix_channel().await)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A gRPC channel to a unix socket (the URI is a placeholder tonic requires).
pub async fn unix_channel(socket: &Path) -> Channel {
    let socket = socket.to_owned();
    Endpoint::from_static("http://hoistd.invalid")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let socket = socket.clone();
            async move {
                Ok::<_, std::io::Error>(TokioIo::new(
                    tokio::net::UnixStream::connect(socket).await?,
                ))
            }
        }))
        .await
        .expect("connect to hoistd's unix socket")
}
