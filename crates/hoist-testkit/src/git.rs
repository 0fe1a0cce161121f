//! Git servers on loopback and repositories to serve, for git source tests.
//!
//! - [`GitHttpServer`]: smart HTTP — a few lines of `std::net` running `git http-backend`
//!   as a CGI program for each request (`GIT_PROJECT_ROOT`, `PATH_INFO`, `QUERY_STRING`,
//!   `REQUEST_METHOD`, `CONTENT_TYPE`, the body on stdin, the `Status:` line and headers
//!   parsed back), optionally answering `401` to requests without the right token.
//! - [`GitDaemon`]: `git daemon` on a free port for `git://`.
//! - [`SshServer`]: `sshd` on loopback letting in one generated key, and an `ssh-agent`
//!   holding it, for `ssh://` remotes.
//! - [`Repo`]: a repository with commits, tags, branches, other refs and submodules, made
//!   with the git CLI under fixed names and dates.
//!
//! ```no_run
//! use hoist_testkit::git::{GitHttpServer, Repo};
//! let server = GitHttpServer::start().unwrap();
//! let repo = Repo::init(&server.root().join("app.git")).unwrap();
//! repo.write("a.txt", "a\n").unwrap();
//! let commit = repo.commit("first").unwrap();
//! let url = server.url("app.git");
//! ```

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::{Result, TestkitError};

/// One request the HTTP server answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The path without the query (`/app.git/info/refs`).
    pub path: String,
    pub query: String,
    /// The status answered.
    pub status: u16,
}

#[derive(Debug, Default)]
struct State {
    /// The tokens let in; empty: no auth asked.
    tokens: Vec<String>,
    requests: Vec<Request>,
}

/// `git http-backend` behind a small HTTP/1.1 server on a free loopback port; stops when
/// dropped. It serves every repository under [`GitHttpServer::root`].
#[derive(Debug)]
pub struct GitHttpServer {
    addr: SocketAddr,
    root: tempfile::TempDir,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
}

impl GitHttpServer {
    /// A server that lets everyone read.
    pub fn start() -> Result<GitHttpServer> {
        let root = tempfile::Builder::new()
            .prefix("hoist-git-server-")
            .tempdir()
            .map_err(TestkitError::io("create", std::env::temp_dir()))?;
        let listener = TcpListener::bind("127.0.0.1:0")
            .map_err(TestkitError::io("listen on", "127.0.0.1:0"))?;
        let addr = listener
            .local_addr()
            .map_err(TestkitError::io("read the address of", "127.0.0.1:0"))?;
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (shared, stopped) = (Arc::clone(&state), Arc::clone(&stop));
        let project_root = root.path().to_path_buf();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    let (shared, project_root) = (Arc::clone(&shared), project_root.clone());
                    std::thread::spawn(move || {
                        let _ = answer(stream, &project_root, &shared);
                    });
                }
            }
        });
        Ok(GitHttpServer {
            addr,
            root,
            state,
            stop,
        })
    }

    /// From now on only requests sending the token are let in, as `Authorization: Bearer
    /// TOKEN` or as basic credentials with any user name and the token as password
    /// (`x-access-token:TOKEN`, which BuildKit's `GIT_AUTH_TOKEN` sends); others get `401`.
    pub fn require_token(&self, token: &str) {
        self.state().tokens.push(token.to_owned());
    }

    /// The directory whose repositories are served (`<root>/app.git` is `/app.git`).
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// `http://127.0.0.1:PORT/<repo>`.
    pub fn url(&self, repo: &str) -> String {
        format!("http://{}/{}", self.addr, repo.trim_start_matches('/'))
    }

    /// Every request answered so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.state().requests.clone()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for GitHttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

/// Whether an `Authorization` value carries one of the `tokens` (all let in when none).
fn authorized(value: Option<&str>, tokens: &[String]) -> bool {
    use base64::Engine as _;
    if tokens.is_empty() {
        return true;
    }
    let Some((scheme, credentials)) = value.and_then(|v| v.trim().split_once(' ')) else {
        return false;
    };
    let presented = if scheme.eq_ignore_ascii_case("bearer") {
        credentials.trim().to_owned()
    } else if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(credentials.trim())
            .unwrap_or_default();
        let decoded = String::from_utf8_lossy(&decoded).into_owned();
        decoded
            .split_once(':')
            .map_or(String::new(), |(_, p)| p.to_owned())
    } else {
        return false;
    };
    tokens.contains(&presented)
}

/// Reads one request, runs `git http-backend` for it and sends its answer.
fn answer(stream: TcpStream, project_root: &Path, state: &Mutex<State>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let target = parts.next().unwrap_or_default().to_owned();
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let (path, query) = (path.to_owned(), query.to_owned());
    let mut headers: Vec<(String, String)> = Vec::new();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let body = read_body(
        &mut reader,
        header("content-length"),
        header("transfer-encoding"),
    )?;
    let mut out = stream;
    let allowed = {
        let state = state.lock().unwrap_or_else(PoisonError::into_inner);
        authorized(header("authorization"), &state.tokens)
    };
    let record = |status: u16| {
        state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .requests
            .push(Request {
                method: method.clone(),
                path: path.clone(),
                query: query.clone(),
                status,
            });
    };
    if !allowed {
        record(401);
        return write!(
            out,
            "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"git\"\r\n\
             Content-Length: 0\r\nConnection: close\r\n\r\n"
        );
    }
    let mut cgi = Command::new("git");
    cgi.arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", project_root)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_PROJECT_ROOT", project_root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("PATH_INFO", &path)
        .env("QUERY_STRING", &query)
        .env("REQUEST_METHOD", &method)
        .env("REMOTE_ADDR", "127.0.0.1")
        .env("CONTENT_TYPE", header("content-type").unwrap_or_default())
        .env("CONTENT_LENGTH", body.len().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    // Protocol v2 and gzipped requests are told through these.
    if let Some(protocol) = header("git-protocol") {
        cgi.env("HTTP_GIT_PROTOCOL", protocol);
    }
    if let Some(encoding) = header("content-encoding") {
        cgi.env("HTTP_CONTENT_ENCODING", encoding);
    }
    let mut child = cgi.spawn()?;
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let writer = std::thread::spawn(move || stdin.write_all(&body));
    let output = child.wait_with_output()?;
    let _ = writer.join();
    let (status, cgi_headers, body) = parse_cgi(&output.stdout);
    record(status);
    let mut response = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for (name, value) in cgi_headers {
        response.push_str(&format!("{name}: {value}\r\n"));
    }
    response.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    out.write_all(response.as_bytes())?;
    out.write_all(body)
}

/// A request body by `Content-Length` or chunked transfer encoding.
fn read_body(
    reader: &mut BufReader<TcpStream>,
    length: Option<&str>,
    transfer_encoding: Option<&str>,
) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    if transfer_encoding.is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut size_line = String::new();
            reader.read_line(&mut size_line)?;
            let size_text = size_line.trim().split(';').next().unwrap_or_default();
            let size = usize::from_str_radix(size_text, 16).unwrap_or(0);
            if size == 0 {
                // Trailers, then the blank line.
                loop {
                    let mut trailer = String::new();
                    if reader.read_line(&mut trailer)? == 0 || trailer.trim().is_empty() {
                        break;
                    }
                }
                return Ok(body);
            }
            let start = body.len();
            body.resize(start + size, 0);
            reader.read_exact(&mut body[start..])?;
            let mut crlf = [0u8; 2];
            reader.read_exact(&mut crlf)?;
        }
    }
    let length: usize = length.and_then(|l| l.parse().ok()).unwrap_or(0);
    body.resize(length, 0);
    reader.read_exact(&mut body)?;
    Ok(body)
}

/// A CGI answer: `Status:` (200 without one), the other headers, the body.
fn parse_cgi(output: &[u8]) -> (u16, Vec<(String, String)>, &[u8]) {
    let split = output
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, i + 4))
        .or_else(|| {
            output
                .windows(2)
                .position(|w| w == b"\n\n")
                .map(|i| (i, i + 2))
        });
    let Some((end, body_start)) = split else {
        return (500, Vec::new(), output);
    };
    let head = String::from_utf8_lossy(&output[..end]);
    let mut status = 200;
    let mut headers = Vec::new();
    for line in head.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim().to_owned();
        if name.eq_ignore_ascii_case("status") {
            status = value
                .split_whitespace()
                .next()
                .and_then(|s| s.parse().ok())
                .unwrap_or(500);
        } else {
            headers.push((name.trim().to_owned(), value));
        }
    }
    (status, headers, &output[body_start..])
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Status",
    }
}

/// `git daemon` serving every repository under a directory over `git://` on a free loopback
/// port; killed when dropped.
#[derive(Debug)]
pub struct GitDaemon {
    child: Child,
    port: u16,
    root: PathBuf,
}

impl GitDaemon {
    /// Serves the repositories under `root` (`git://127.0.0.1:PORT/app.git` is
    /// `<root>/app.git`).
    pub fn start(root: &Path) -> Result<GitDaemon> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(TestkitError::io("find a free port on", "127.0.0.1:0"))?
            .port();
        let child = Command::new("git")
            .arg("daemon")
            .arg("--reuseaddr")
            .arg("--export-all")
            .arg("--listen=127.0.0.1")
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", root.display()))
            .arg(root)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(TestkitError::io("run git daemon for", root))?;
        let mut daemon = GitDaemon {
            child,
            port,
            root: root.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline || daemon.child.try_wait().ok().flatten().is_some() {
                return Err(TestkitError::Command {
                    command: format!("git daemon --port={port}"),
                    status: "not listening".into(),
                    stderr: String::new(),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(daemon)
    }

    /// `git://127.0.0.1:PORT/<repo>`.
    pub fn url(&self, repo: &str) -> String {
        format!(
            "git://127.0.0.1:{}/{}",
            self.port,
            repo.trim_start_matches('/')
        )
    }

    /// The directory served.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A repository with a work tree, changed through the git CLI with fixed identities and
/// dates (so a commit's SHA depends only on what the test did).
#[derive(Debug, Clone)]
pub struct Repo {
    dir: PathBuf,
}

impl Repo {
    /// `git init` at `dir` (created), default branch `main`.
    pub fn init(dir: &Path) -> Result<Repo> {
        std::fs::create_dir_all(dir).map_err(TestkitError::io("create", dir))?;
        let repo = Repo {
            dir: dir.to_path_buf(),
        };
        repo.git(&["init", "-q", "-b", "main"])?;
        // Let clients fetch any commit by its SHA, as GitHub does.
        repo.git(&["config", "uploadpack.allowAnySHA1InWant", "true"])?;
        Ok(repo)
    }

    /// An existing repository (a checkout to inspect).
    pub fn open(dir: &Path) -> Repo {
        Repo {
            dir: dir.to_path_buf(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes `contents` to `path` in the work tree (parents created).
    pub fn write(&self, path: &str, contents: &str) -> Result<()> {
        let file = self.dir.join(path);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent).map_err(TestkitError::io("create", parent))?;
        }
        std::fs::write(&file, contents).map_err(TestkitError::io("write", &file))
    }

    /// Commits everything in the work tree; the new commit's SHA.
    pub fn commit(&self, message: &str) -> Result<String> {
        self.git(&["add", "-A"])?;
        self.git(&["commit", "-q", "--allow-empty", "-m", message])?;
        self.head()
    }

    /// The SHA of `HEAD`.
    pub fn head(&self) -> Result<String> {
        self.rev_parse("HEAD")
    }

    /// The object a revision names.
    pub fn rev_parse(&self, rev: &str) -> Result<String> {
        Ok(self.git(&["rev-parse", rev])?.trim().to_owned())
    }

    /// A lightweight tag at `HEAD`.
    pub fn tag(&self, name: &str) -> Result<()> {
        self.git(&["tag", name]).map(drop)
    }

    /// An annotated tag at `HEAD`.
    pub fn annotated_tag(&self, name: &str, message: &str) -> Result<()> {
        self.git(&["tag", "-a", name, "-m", message]).map(drop)
    }

    /// Creates branch `name` at `HEAD` and switches to it.
    pub fn branch(&self, name: &str) -> Result<()> {
        self.git(&["checkout", "-q", "-b", name]).map(drop)
    }

    /// Switches to an existing branch.
    pub fn switch(&self, name: &str) -> Result<()> {
        self.git(&["checkout", "-q", name]).map(drop)
    }

    /// Points any ref at a commit (`refs/pull/42/head`, as a forge stores pull requests).
    pub fn set_ref(&self, name: &str, commit: &str) -> Result<()> {
        self.git(&["update-ref", name, commit]).map(drop)
    }

    /// Adds the repository at `url` as a submodule at `path` (not yet committed).
    pub fn add_submodule(&self, url: &str, path: &str) -> Result<()> {
        self.git(&["submodule", "add", "-q", url, path]).map(drop)
    }

    /// Runs git in the repository with fixed identities and dates; its stdout.
    pub fn git(&self, args: &[&str]) -> Result<String> {
        let output = Command::new("git")
            .args(args)
            .current_dir(&self.dir)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_AUTHOR_NAME", "hoist test")
            .env("GIT_AUTHOR_EMAIL", "test@hoist.invalid")
            .env("GIT_COMMITTER_NAME", "hoist test")
            .env("GIT_COMMITTER_EMAIL", "test@hoist.invalid")
            .env("GIT_AUTHOR_DATE", "2024-01-01T00:00:00Z")
            .env("GIT_COMMITTER_DATE", "2024-01-01T00:00:00Z")
            .stdin(Stdio::null())
            .output()
            .map_err(TestkitError::io("run git in", &self.dir))?;
        if !output.status.success() {
            return Err(TestkitError::Command {
                command: format!("git {}", args.join(" ")),
                status: output.status.to_string(),
                stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ls_remote(url: &str, extra: &[&str]) -> std::process::Output {
        Command::new("git")
            .args(extra)
            .args(["ls-remote", "--", url])
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    #[test]
    fn http_server_serves_refs_and_asks_for_the_token() {
        let server = GitHttpServer::start().unwrap();
        let repo = Repo::init(&server.root().join("app.git")).unwrap();
        repo.write("a.txt", "a\n").unwrap();
        let commit = repo.commit("first").unwrap();
        let out = ls_remote(&server.url("app.git"), &[]);
        let listing = String::from_utf8_lossy(&out.stdout);
        assert!(
            listing.contains(&format!("{commit}\trefs/heads/main")),
            "{listing}"
        );

        server.require_token("t0k");
        let out = ls_remote(&server.url("app.git"), &[]);
        assert!(!out.status.success());
        assert!(server.requests().iter().any(|r| r.status == 401));
        let out = ls_remote(
            &server.url("app.git"),
            &["-c", "http.extraheader=Authorization: Bearer t0k"],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn daemon_serves_git_urls() {
        let root = tempfile::tempdir().unwrap();
        let repo = Repo::init(&root.path().join("app.git")).unwrap();
        let commit = repo.commit("empty").unwrap();
        let daemon = GitDaemon::start(root.path()).unwrap();
        let out = ls_remote(&daemon.url("app.git"), &[]);
        assert!(String::from_utf8_lossy(&out.stdout).contains(&commit));
    }
}

/// `sshd` on a free loopback port letting in one generated key, and an `ssh-agent` holding
/// that key, for `ssh://` remotes; both killed when dropped. Repositories are reached by
/// their absolute path (`ssh://root@127.0.0.1:PORT/abs/path/app.git`) as the current user.
#[derive(Debug)]
pub struct SshServer {
    sshd: Child,
    agent: SshAgent,
    port: u16,
    user: String,
    dir: tempfile::TempDir,
}

impl SshServer {
    /// Starts both; [`TestkitError::MissingTool`] when `sshd` or the ssh client tools are
    /// not installed (Debian's `openssh-server` and `openssh-client`).
    pub fn start() -> Result<SshServer> {
        const SSHD: &str = "/usr/sbin/sshd";
        if !Path::new(SSHD).is_file() {
            return Err(TestkitError::MissingTool {
                tool: "sshd",
                install: "apt-get install openssh-server",
            });
        }
        for tool in ["ssh", "ssh-keygen", "ssh-agent", "ssh-add"] {
            if crate::find_in_path(tool).is_none() {
                return Err(TestkitError::MissingTool {
                    tool: "ssh",
                    install: "apt-get install openssh-client",
                });
            }
        }
        let dir = tempfile::Builder::new()
            .prefix("hoist-sshd-")
            .tempdir()
            .map_err(TestkitError::io("create", std::env::temp_dir()))?;
        let d = dir.path();
        for key in ["host_key", "client_key"] {
            run(Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(d.join(key)))?;
        }
        let authorized = d.join("authorized_keys");
        std::fs::copy(d.join("client_key.pub"), &authorized)
            .map_err(TestkitError::io("write", &authorized))?;
        // sshd insists on its privilege separation directory.
        let _ = std::fs::create_dir_all("/run/sshd");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(TestkitError::io("find a free port on", "127.0.0.1:0"))?
            .port();
        let config = d.join("sshd_config");
        let text = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             PubkeyAuthentication yes\nPermitRootLogin prohibit-password\nStrictModes no\n\
             UsePAM no\nPidFile {}\n",
            d.join("host_key").display(),
            authorized.display(),
            d.join("sshd.pid").display(),
        );
        std::fs::write(&config, text).map_err(TestkitError::io("write", &config))?;
        let sshd = Command::new(SSHD)
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(TestkitError::io("run", SSHD))?;
        let agent = SshAgent::start(d)?;
        let user = std::env::var("USER")
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| "root".to_owned());
        let server = SshServer {
            sshd,
            agent,
            port,
            user,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err(TestkitError::Command {
                    command: format!("{SSHD} -p {port}"),
                    status: "not listening".into(),
                    stderr: String::new(),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        server.agent.add(&server.dir.path().join("client_key"))?;
        Ok(server)
    }

    /// `ssh://USER@127.0.0.1:PORT<path>` for a repository at an absolute path.
    pub fn url(&self, repo: &Path) -> String {
        format!(
            "ssh://{}@127.0.0.1:{}{}",
            self.user,
            self.port,
            repo.display()
        )
    }

    /// The agent's socket (`SSH_AUTH_SOCK`), which holds the one key sshd lets in.
    pub fn agent_socket(&self) -> PathBuf {
        self.agent.socket().to_owned()
    }

    /// The `known_hosts` line of the server's host key.
    pub fn known_hosts(&self) -> Result<String> {
        let file = self.dir.path().join("host_key.pub");
        let key = std::fs::read_to_string(&file).map_err(TestkitError::io("read", &file))?;
        let mut fields = key.split_whitespace();
        let (kind, data) = (
            fields.next().unwrap_or_default(),
            fields.next().unwrap_or_default(),
        );
        Ok(format!("[127.0.0.1]:{} {kind} {data}\n", self.port))
    }
}

impl Drop for SshServer {
    fn drop(&mut self) {
        let _ = self.sshd.kill();
        let _ = self.sshd.wait();
    }
}

/// An `ssh-agent` on a socket in a directory the caller names, killed when dropped: the
/// agent of [`SshServer`] and of tests that forward an agent to RUN steps.
#[derive(Debug)]
pub struct SshAgent {
    child: Child,
    socket: PathBuf,
}

impl SshAgent {
    /// Starts `ssh-agent -D` on `<dir>/agent.sock` and waits for its socket.
    pub fn start(dir: &Path) -> Result<SshAgent> {
        let socket = dir.join("agent.sock");
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(TestkitError::io("run ssh-agent in", dir))?;
        let agent = SshAgent { child, socket };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !agent.socket.exists() {
            if Instant::now() > deadline {
                return Err(TestkitError::Command {
                    command: format!("ssh-agent -D -a {}", agent.socket.display()),
                    status: "not listening".into(),
                    stderr: String::new(),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(agent)
    }

    /// Adds the private key file `key` (`ssh-add`).
    pub fn add(&self, key: &Path) -> Result<()> {
        run(Command::new("ssh-add")
            .arg("-q")
            .arg(key)
            .env("SSH_AUTH_SOCK", &self.socket))
    }

    /// The agent's socket (`SSH_AUTH_SOCK`).
    pub fn socket(&self) -> &Path {
        &self.socket
    }
}

impl Drop for SshAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a fixture command that must succeed.
fn run(command: &mut Command) -> Result<()> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(TestkitError::io("run", format!("{command:?}")))?;
    if output.status.success() {
        return Ok(());
    }
    Err(TestkitError::Command {
        command: format!("{command:?}"),
        status: output.status.to_string(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}
