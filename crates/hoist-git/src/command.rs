//! [`GitCli`]: runs `git` for one remote in a clean environment.
//!
//! - No user, global or system config: the environment is cleared, `HOME` is a fresh
//!   temporary directory, `GIT_CONFIG_NOSYSTEM=1`, `GIT_CONFIG_GLOBAL=/dev/null`; only
//!   `PATH`, the proxy variables and what is set here pass.
//! - Never a prompt: `GIT_TERMINAL_PROMPT=0`, stdin is `/dev/null`, ssh runs in batch mode.
//! - Config git needs is given as `GIT_CONFIG_COUNT`/`GIT_CONFIG_KEY_n`/`GIT_CONFIG_VALUE_n`
//!   in the environment, not as `-c` arguments: the auth header is then not on a command
//!   line other users can read in `/proc`. Submodule fetches inherit it.
//! - `protocol.file.allow=user`: a repository cannot name a local path as a submodule.
//! - ssh: `GIT_SSH_COMMAND` is `ssh -F /dev/null -o BatchMode=yes` plus either the known
//!   hosts given or `StrictHostKeyChecking=no` with `UserKnownHostsFile=/dev/null` (as
//!   BuildKit does), and `SSH_AUTH_SOCK` when an agent was given.
//!
//! Callers put `--` before every value that comes from a user (URLs, refs), so none is read
//! as an option. What git prints on failure is kept with the remote's credentials and the
//! auth secrets masked.

use std::ffi::OsString;
use std::path::Path;
use std::process::{Command, Stdio};

use tempfile::TempDir;

use crate::auth::{header_scope, Auth};
use crate::error::{Error, Result};
use crate::git_ref::{redact, Remote};

/// Environment variables passed through to git (proxies, as BuildKit passes them).
const PASSED_THROUGH: &[&str] = &[
    "PATH",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "all_proxy",
];

/// A failed git run: what it printed on stderr, scrubbed.
#[derive(Debug)]
pub(crate) struct Failure {
    pub command: String,
    pub stderr: String,
}

/// Runs git for one remote with its credentials.
#[derive(Debug)]
pub(crate) struct GitCli<'a> {
    remote: &'a Remote,
    auth: &'a Auth,
    /// `HOME` of every run, and where known hosts are written.
    home: TempDir,
    env: Vec<(String, OsString)>,
}

impl<'a> GitCli<'a> {
    pub fn new(remote: &'a Remote, auth: &'a Auth) -> Result<GitCli<'a>> {
        let home = tempfile::Builder::new()
            .prefix("hoist-git-home-")
            .tempdir()
            .map_err(Error::io(
                "create a temporary HOME for git in",
                std::env::temp_dir(),
            ))?;
        let mut config: Vec<(String, String)> = vec![
            ("protocol.file.allow".into(), "user".into()),
            ("init.defaultBranch".into(), "master".into()),
            ("advice.detachedHead".into(), "false".into()),
            ("core.hooksPath".into(), "/dev/null".into()),
        ];
        if let (Some(header), true) = (auth.header(), remote.is_http()) {
            config.push((
                format!("http.{}.extraheader", header_scope(remote)),
                format!("Authorization: {header}"),
            ));
        }
        let mut env: Vec<(String, OsString)> = vec![
            ("HOME".into(), home.path().into()),
            ("GIT_CONFIG_NOSYSTEM".into(), "1".into()),
            ("GIT_CONFIG_GLOBAL".into(), "/dev/null".into()),
            ("GIT_TERMINAL_PROMPT".into(), "0".into()),
            ("LC_ALL".into(), "C".into()),
            ("GIT_CONFIG_COUNT".into(), config.len().to_string().into()),
        ];
        for (i, (key, value)) in config.into_iter().enumerate() {
            env.push((format!("GIT_CONFIG_KEY_{i}"), key.into()));
            env.push((format!("GIT_CONFIG_VALUE_{i}"), value.into()));
        }
        let mut ssh = String::from("ssh -F /dev/null -o BatchMode=yes");
        match auth.known_hosts() {
            Some(lines) => {
                let file = home.path().join("known_hosts");
                std::fs::write(&file, lines).map_err(Error::io("write", &file))?;
                ssh.push_str(&format!(" -o UserKnownHostsFile={}", file.display()));
            }
            None => ssh.push_str(" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"),
        }
        env.push(("GIT_SSH_COMMAND".into(), ssh.into()));
        if let Some(socket) = auth.ssh_agent() {
            env.push(("SSH_AUTH_SOCK".into(), socket.into()));
        }
        Ok(GitCli {
            remote,
            auth,
            home,
            env,
        })
    }

    /// Runs `git <args>` in `dir` (or the temporary HOME); its stdout on success.
    pub fn run(&self, dir: Option<&Path>, args: &[&str]) -> Result<Result<String, Failure>> {
        let mut command = Command::new("git");
        command
            .args(args)
            .current_dir(dir.unwrap_or(self.home.path()))
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for name in PASSED_THROUGH {
            if let Some(value) = std::env::var_os(name) {
                command.env(name, value);
            }
        }
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        let output = command.output().map_err(Error::Spawn)?;
        if output.status.success() {
            return Ok(Ok(String::from_utf8_lossy(&output.stdout).into_owned()));
        }
        let mut stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
        if stderr.is_empty() {
            stderr = format!("exited with {}", output.status);
        }
        Ok(Err(Failure {
            command: args.first().copied().unwrap_or("git").to_owned(),
            stderr: self.scrub(&stderr),
        }))
    }

    /// `text` without the remote's credentials or any auth secret.
    pub fn scrub(&self, text: &str) -> String {
        let mut text = self.auth.scrub(text);
        let url = self.remote.url();
        if self.remote.has_credentials() {
            text = text.replace(url, &self.remote.redacted());
        }
        // git quotes URLs it cannot reach; mask any credentials it printed in another form.
        text.split(' ').map(redact).collect::<Vec<_>>().join(" ")
    }
}
