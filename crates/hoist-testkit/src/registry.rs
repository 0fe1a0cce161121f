//! A real Distribution registry for tests: Debian's `docker-registry` (the `distribution`
//! server) started on a free `127.0.0.1` port with its own temporary storage directory and YAML
//! config, optionally behind htpasswd Basic auth (bcrypt, written by `htpasswd -Bbn`).
//!
//! ```no_run
//! let Some(reg) = hoist_testkit::registry::TestRegistry::start() else { return };
//! let host = reg.host(); // "127.0.0.1:PORT", plain HTTP
//! ```
//!
//! When the binary (or, for auth, `htpasswd`) is absent the constructors print why through
//! [`crate::skip`] and return `None`; the test then returns early. The process is killed when
//! the [`TestRegistry`] is dropped.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::find_in_path;

/// The Debian package's server binary.
pub const REGISTRY_BIN: &str = "docker-registry";

/// How long to wait for `/v2/` to answer after starting the server.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// How to start a [`TestRegistry`].
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// Require HTTP Basic auth with this user and password (htpasswd, bcrypt).
    pub basic_auth: Option<(String, String)>,
    /// Serve HTTPS with a certificate for `127.0.0.1`/`localhost` signed by a throwaway CA
    /// (made with `openssl`); see [`TestRegistry::tls_ca`].
    pub tls: bool,
}

/// A running `docker-registry` on loopback. Killed (and its storage removed) on drop.
#[derive(Debug)]
pub struct TestRegistry {
    child: Child,
    dir: tempfile::TempDir,
    addr: SocketAddr,
    basic_auth: Option<(String, String)>,
    tls: bool,
}

impl TestRegistry {
    /// Starts an anonymous registry (anyone may pull and push), or `None` after saying why.
    pub fn start() -> Option<Self> {
        Self::start_with(RegistryOptions::default())
    }

    /// Starts a registry that requires HTTP Basic auth with this one user (htpasswd, bcrypt),
    /// or `None` after saying why.
    pub fn start_with_basic_auth(user: &str, password: &str) -> Option<Self> {
        Self::start_with(RegistryOptions {
            basic_auth: Some((user.to_owned(), password.to_owned())),
            tls: false,
        })
    }

    /// Starts a registry as `options` say, or `None` after saying why.
    pub fn start_with(options: RegistryOptions) -> Option<Self> {
        Self::launch(options)
    }

    /// The PEM file of the CA that signed the registry's certificate (TLS registries only).
    pub fn tls_ca(&self) -> Option<PathBuf> {
        self.tls.then(|| self.dir.path().join("ca.pem"))
    }

    /// `127.0.0.1:PORT`, the registry host as it appears in image references.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// `http://127.0.0.1:PORT` (or `https://`), the base URL (the API is under `/v2/`).
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The socket address the registry listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The Basic auth user and password, when started with them.
    pub fn basic_auth(&self) -> Option<(&str, &str)> {
        self.basic_auth
            .as_ref()
            .map(|(u, p)| (u.as_str(), p.as_str()))
    }

    /// The registry's storage root (blobs and repositories as `docker-registry` lays them out).
    pub fn storage_dir(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// The temporary directory holding config, htpasswd file, storage and log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's log so far (stdout and stderr), for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    fn launch(options: RegistryOptions) -> Option<Self> {
        let RegistryOptions { basic_auth, tls } = options;
        let Some(bin) = find_in_path(REGISTRY_BIN) else {
            crate::skip(&format!(
                "{REGISTRY_BIN} is not installed (apt-get install -y docker-registry)"
            ));
            return None;
        };
        let dir = match tempfile::Builder::new().prefix("hoist-registry-").tempdir() {
            Ok(dir) => dir,
            Err(err) => {
                crate::skip(&format!("cannot create a temporary directory: {err}"));
                return None;
            }
        };
        let auth_yaml = match &basic_auth {
            None => String::new(),
            Some((user, password)) => {
                let htpasswd_file = dir.path().join("htpasswd");
                let line = match htpasswd_line(user, password) {
                    Ok(line) => line,
                    Err(why) => {
                        crate::skip(&why);
                        return None;
                    }
                };
                if let Err(err) = std::fs::write(&htpasswd_file, line) {
                    crate::skip(&format!("cannot write {}: {err}", htpasswd_file.display()));
                    return None;
                }
                format!(
                    "auth:\n  htpasswd:\n    realm: hoist-test\n    path: {}\n",
                    htpasswd_file.display()
                )
            }
        };
        let tls_yaml = if tls {
            if let Err(why) = make_certificates(dir.path()) {
                crate::skip(&why);
                return None;
            }
            format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                dir.path().join("server.pem").display(),
                dir.path().join("server.key").display()
            )
        } else {
            String::new()
        };
        // A port picked by the kernel may be taken again before the server binds it; try a few.
        let mut last_err = String::new();
        for _ in 0..5 {
            let port = match free_port() {
                Ok(port) => port,
                Err(err) => {
                    last_err = format!("cannot find a free port: {err}");
                    continue;
                }
            };
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let config = format!(
                "version: 0.1\n\
                 log:\n  level: warn\n  accesslog:\n    disabled: true\n\
                 storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n\
                 http:\n  addr: {addr}\n  secret: hoist-test-secret\n{tls_yaml}\
                 {auth_yaml}",
                storage = dir.path().join("storage").display(),
            );
            let config_file = dir.path().join("config.yml");
            if let Err(err) = std::fs::write(&config_file, config) {
                crate::skip(&format!("cannot write {}: {err}", config_file.display()));
                return None;
            }
            let log_path = dir.path().join("registry.log");
            let log = match std::fs::File::create(&log_path) {
                Ok(log) => log,
                Err(err) => {
                    crate::skip(&format!("cannot create {}: {err}", log_path.display()));
                    return None;
                }
            };
            let log_err = match log.try_clone() {
                Ok(l) => l,
                Err(err) => {
                    crate::skip(&format!("cannot clone {}: {err}", log_path.display()));
                    return None;
                }
            };
            let child = Command::new(&bin)
                .arg("serve")
                .arg(&config_file)
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(log_err)
                .spawn();
            let child = match child {
                Ok(child) => child,
                Err(err) => {
                    crate::skip(&format!("cannot start {}: {err}", bin.display()));
                    return None;
                }
            };
            let mut child = child;
            match wait_ready(&mut child, addr, tls) {
                Ok(()) => {
                    return Some(TestRegistry {
                        child,
                        dir,
                        addr,
                        basic_auth,
                        tls,
                    })
                }
                Err(err) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                    last_err = format!("{err}; log:\n{log}");
                }
            }
        }
        // The binary is there but would not start: that is a broken machine, not a skip.
        panic!("{REGISTRY_BIN} did not start: {last_err}");
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `GET /v2/` until it answers 200 (anonymous) or 401 (auth required).
fn wait_ready(child: &mut Child, addr: SocketAddr, tls: bool) -> Result<(), String> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("{REGISTRY_BIN} exited with {status}"));
        }
        // A TLS port answers plain HTTP with 400 and may close before the request is even
        // written, so for TLS an accepted connection is the sign of life.
        if tls {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("nothing listens on {addr}"));
            }
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        let answer = probe_v2(addr);
        match answer {
            Ok(200 | 401) => return Ok(()),
            Ok(code) if Instant::now() > deadline => {
                return Err(format!("GET /v2/ answered {code}"))
            }
            Err(err) if Instant::now() > deadline => return Err(format!("GET /v2/ failed: {err}")),
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

fn free_port() -> std::io::Result<u16> {
    let listener = TcpListener::bind(("127.0.0.1", 0))?;
    Ok(listener.local_addr()?.port())
}

/// `user:$2y$...` for an htpasswd file, from `htpasswd -Bbn` (bcrypt, as distribution requires).
fn htpasswd_line(user: &str, password: &str) -> Result<String, String> {
    if find_in_path("htpasswd").is_none() {
        return Err("htpasswd is not installed (apt-get install -y apache2-utils)".to_owned());
    }
    let out = Command::new("htpasswd")
        .args(["-Bbn", user, password])
        .output()
        .map_err(|err| format!("cannot run htpasswd: {err}"))?;
    if !out.status.success() {
        return Err(format!(
            "htpasswd -Bbn failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let line = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    Ok(format!("{line}\n"))
}

/// A throwaway CA (`ca.pem`) and a server certificate for `127.0.0.1` and `localhost`
/// signed by it (`server.pem`, `server.key`), made with `openssl` in `dir`.
fn make_certificates(dir: &Path) -> Result<(), String> {
    if find_in_path("openssl").is_none() {
        return Err("openssl is not installed (apt-get install -y openssl)".to_owned());
    }
    let ext = dir.join("server.ext");
    std::fs::write(
        &ext,
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .map_err(|err| format!("cannot write {}: {err}", ext.display()))?;
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let steps: [Vec<&str>; 3] = [
        [
            &["req", "-x509"][..],
            &ec[..],
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=hoist test CA",
            ][..],
        ]
        .concat(),
        [
            &["req"][..],
            &ec[..],
            &[
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=127.0.0.1",
            ][..],
        ]
        .concat(),
        vec![
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
    ];
    for args in steps {
        let out = Command::new("openssl")
            .args(&args)
            .current_dir(dir)
            .output()
            .map_err(|err| format!("cannot run openssl: {err}"))?;
        if !out.status.success() {
            return Err(format!(
                "openssl {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    Ok(())
}

/// One plain HTTP/1.1 `GET /v2/`, returning the status code.
fn probe_v2(addr: SocketAddr) -> std::io::Result<u16> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(
        stream,
        "GET /v2/ HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut head = [0u8; 64];
    let n = stream.read(&mut head)?;
    let text = String::from_utf8_lossy(&head[..n]);
    // "HTTP/1.1 200 OK"
    text.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP answer: {text:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_answers_v2_and_stops_on_drop() {
        let Some(reg) = TestRegistry::start() else {
            return;
        };
        assert_eq!(probe_v2(reg.addr()).unwrap(), 200);
        let addr = reg.addr();
        drop(reg);
        assert!(probe_v2(addr).is_err());
    }

    #[test]
    fn tls_registry_serves_https_with_its_own_ca() {
        let Some(reg) = TestRegistry::start_with(RegistryOptions {
            basic_auth: None,
            tls: true,
        }) else {
            return;
        };
        assert!(reg.url().starts_with("https://"));
        assert!(reg.tls_ca().unwrap().is_file());
        assert!(TcpStream::connect(reg.addr()).is_ok());
    }

    #[test]
    fn basic_auth_registry_wants_credentials() {
        let Some(reg) = TestRegistry::start_with_basic_auth("hoist", "s3cret") else {
            return;
        };
        assert_eq!(probe_v2(reg.addr()).unwrap(), 401);
        assert_eq!(reg.basic_auth(), Some(("hoist", "s3cret")));
    }
}
