//! The built-in runtime: Linux namespaces, bind mounts and `pivot_root`, with nothing
//! installed beyond hoist.
//!
//! [`BuiltinExecutor`] starts a fresh helper process for each run (the hoist binary itself
//! through `/proc/self/exe`, or the `hoist-sandbox-init` binary) so no `fork` ever happens in
//! the caller's multi-threaded process. The helper ([`init`]) unshares the namespaces, forks the
//! container's pid 1 (it is single-threaded, so that is sound), which prepares the root
//! ([`rootfs`]) and execs the command. Setup failures and the exit status come back over a
//! socket ([`protocol`]); stdout and stderr are pipes read line by line.

pub(crate) mod init;
pub(crate) mod protocol;
mod rootfs;

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::cgroup::RunCgroup;
use crate::etc_files::EtcFiles;
use crate::mounts;
use crate::output::{pump, OutputSink};
use crate::stubs::MountStubs;
use crate::{CancelToken, Error, Executor, ExitStatus, Result, RunSpec};
use protocol::{InitRequest, Report, INIT_ENV};

/// Where the running binary is; the helper then is this binary, whose `main` must call
/// [`crate::init_if_requested`] first.
const SELF_EXE: &str = "/proc/self/exe";

/// Runs processes with the built-in namespaces runtime (needs root).
#[derive(Debug, Clone)]
pub struct BuiltinExecutor {
    helper: PathBuf,
}

impl Default for BuiltinExecutor {
    fn default() -> Self {
        Self::new()
    }
}

impl BuiltinExecutor {
    /// The helper is the running binary; its `main` must call [`crate::init_if_requested`]
    /// before anything else.
    pub fn new() -> Self {
        BuiltinExecutor {
            helper: PathBuf::from(SELF_EXE),
        }
    }

    /// The helper is `path`, a binary whose `main` calls [`crate::init_if_requested`] first
    /// (such as this crate's `hoist-sandbox-init`).
    pub fn with_helper(path: impl Into<PathBuf>) -> Self {
        BuiltinExecutor {
            helper: path.into(),
        }
    }

    /// The helper binary this executor starts.
    pub fn helper(&self) -> &Path {
        &self.helper
    }
}

impl Executor for BuiltinExecutor {
    fn run_cancellable(
        &self,
        spec: &RunSpec,
        sink: &mut dyn OutputSink,
        cancel: &CancelToken,
    ) -> Result<ExitStatus> {
        spec.validate()?;
        if !spec.rootfs.is_dir() {
            return Err(Error::io(
                "open rootfs",
                &spec.rootfs,
                std::io::Error::from(std::io::ErrorKind::NotFound),
            ));
        }
        let etc = EtcFiles::write(spec)?;
        let _stubs = MountStubs::record(
            &spec.rootfs,
            mounts::plan(spec, &etc.hosts(), &etc.resolv_conf())
                .iter()
                .map(|mount| mount.target.as_path()),
        );
        let request = InitRequest {
            spec: spec.clone(),
            hosts: etc.hosts(),
            resolv_conf: etc.resolv_conf(),
        };
        let cgroup = match &spec.cgroup_parent {
            Some(parent) => Some(RunCgroup::create(parent, &crate::oci::container_id())?),
            None => None,
        };
        let protocol_error = |detail: String| Error::Protocol { detail };
        let (mut socket, helper_end) =
            UnixStream::pair().map_err(|e| protocol_error(format!("socketpair: {e}")))?;
        let mut child = {
            // The command (and with it the helper's end of the socket) is dropped at the end
            // of this block, so the socket reaches EOF once the helper and the container
            // are gone.
            let mut command = Command::new(&self.helper);
            command
                .env_clear()
                // The helper's parent is this process: it checks that it still is (a helper
                // whose parent died before it armed its death signal is an orphan).
                .env(INIT_ENV, std::process::id().to_string())
                .stdin(Stdio::from(OwnedFd::from(helper_end)))
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            command.spawn().map_err(|source| Error::Spawn {
                program: self.helper.clone(),
                source,
            })?
        };
        // The helper waits for the request, so it forks the container inside the cgroup.
        if let Some(cgroup) = &cgroup {
            if let Err(e) = cgroup.add(child.id()) {
                let _ = child.kill();
                let _ = child.wait();
                return Err(e);
            }
        }
        let sent = serde_json::to_vec(&request)
            .map_err(std::io::Error::other)
            .and_then(|bytes| socket.write_all(&bytes))
            .and_then(|()| socket.shutdown(std::net::Shutdown::Write));
        if let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) {
            // Killing the helper kills the container's pid 1 (its parent-death signal), and
            // with it the whole pid namespace.
            let mut kill = || {
                let _ = child.kill();
            };
            pump(stdout, stderr, sink, cancel, &mut kill);
        }
        let mut replies = String::new();
        let received = socket.read_to_string(&mut replies);
        let helper_status = child
            .wait()
            .map_err(|e| protocol_error(format!("wait for the helper: {e}")))?;
        if cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        let mut reports = Vec::new();
        for line in replies.lines().filter(|l| !l.is_empty()) {
            let report: Report = serde_json::from_str(line)
                .map_err(|e| protocol_error(format!("unreadable report {line:?}: {e}")))?;
            reports.push(report);
        }
        for report in &reports {
            match report {
                Report::CommandNotFound { command } => {
                    return Err(Error::CommandNotFound {
                        command: command.clone(),
                    })
                }
                Report::Failed { step, detail } => {
                    return Err(Error::Setup {
                        step: step.clone(),
                        detail: detail.clone(),
                    })
                }
                Report::Exited { .. } | Report::Signaled { .. } => {}
            }
        }
        for report in reports {
            match report {
                Report::Exited { code } => return Ok(ExitStatus::Code(code)),
                Report::Signaled { signal } => return Ok(ExitStatus::Signal(signal)),
                Report::CommandNotFound { .. } | Report::Failed { .. } => {}
            }
        }
        let why = match (sent, received) {
            (Err(e), _) => format!("sending the request failed: {e}"),
            (_, Err(e)) => format!("reading its reports failed: {e}"),
            _ => "it sent no exit status".to_owned(),
        };
        Err(protocol_error(format!(
            "helper {} ended ({helper_status}) and {why}; is `init_if_requested` called first in its main?",
            self.helper.display()
        )))
    }
}
