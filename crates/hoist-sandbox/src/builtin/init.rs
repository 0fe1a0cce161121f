//! The helper process: [`init_if_requested`] turns a freshly started hoist binary into the
//! sandbox's parent, which unshares the namespaces, forks the container's pid 1 and reports
//! how it ended.

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;

use nix::sched::CloneFlags;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::ForkResult;

use super::protocol::{InitRequest, Report, INIT_ENV};
use super::rootfs;
use crate::Network;

/// Exit code of the helper when it could not even report (the host side then says so).
const HELPER_FAILED: i32 = 125;

/// Becomes the sandbox helper and exits when this process was started as one by
/// [`crate::BuiltinExecutor`]; returns at once otherwise.
///
/// Binaries using [`crate::BuiltinExecutor::new`] must call this first in `main`, before
/// starting any thread or async runtime: the helper forks, which is only sound while the
/// process has a single thread.
pub fn init_if_requested() {
    let Some(parent) = std::env::var_os(INIT_ENV) else {
        return;
    };
    // The pid of the process that started us (unknown when it does not parse).
    let parent = parent
        .to_str()
        .and_then(|p| p.parse::<i32>().ok())
        .filter(|&p| p > 1);
    std::process::exit(helper_main(parent));
}

fn helper_main(parent: Option<i32>) -> i32 {
    // If hoist dies (killed mid-build), take the run down with it: the container's pid 1
    // already dies with this helper. The signal is tied to the thread that spawned us, which
    // waits for us for the whole run. Had hoist died before this line, we are an orphan: our
    // parent is no longer the process that started us. (Not "our parent is pid 1": hoistd is
    // pid 1 in a container, and a helper it starts has pid 1 as its parent.)
    let orphan = match parent {
        Some(parent) => nix::unistd::getppid().as_raw() != parent,
        None => nix::unistd::getppid() == nix::unistd::Pid::from_raw(1),
    };
    if nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL).is_err() || orphan {
        return HELPER_FAILED;
    }
    // fd 0 is our end of the socket; keep a close-on-exec copy so the command never sees it.
    let Ok(fd) = std::io::stdin().as_fd().try_clone_to_owned() else {
        return HELPER_FAILED;
    };
    let mut socket = UnixStream::from(fd);
    let mut bytes = Vec::new();
    if socket.read_to_end(&mut bytes).is_err() {
        return HELPER_FAILED;
    }
    let request: InitRequest = match serde_json::from_slice(&bytes) {
        Ok(request) => request,
        Err(e) => {
            return report(
                &mut socket,
                &Report::failed("read the run request", e),
                HELPER_FAILED,
            )
        }
    };
    // The command's stdin is /dev/null, never the socket (it could forge reports).
    let stdin_replaced = std::fs::File::open("/dev/null")
        .and_then(|null| nix::unistd::dup2_stdin(null).map_err(std::io::Error::from));
    if let Err(e) = stdin_replaced {
        return report(
            &mut socket,
            &Report::failed("open /dev/null as stdin", e),
            HELPER_FAILED,
        );
    }
    if let Err(failure) = enter_namespaces(&request) {
        return report(&mut socket, &failure, HELPER_FAILED);
    }
    if let Err(failure) = ensure_single_threaded() {
        return report(&mut socket, &failure, HELPER_FAILED);
    }
    // SAFETY: this process is a freshly exec'd helper that has started no thread (checked
    // just above), so the child may run any code, not only async-signal-safe functions.
    #[allow(unsafe_code)]
    let forked = unsafe { nix::unistd::fork() };
    match forked {
        Err(e) => report(
            &mut socket,
            &Report::failed("fork the container's init", e),
            HELPER_FAILED,
        ),
        Ok(ForkResult::Child) => {
            // Pid 1 of the new pid namespace: prepare the root and exec; only failures return.
            let failure = container_main(&request);
            report(&mut socket, &failure, 127)
        }
        Ok(ForkResult::Parent { child }) => {
            drop(request);
            let status = loop {
                match waitpid(child, None) {
                    Err(nix::errno::Errno::EINTR) => continue,
                    other => break other,
                }
            };
            let outcome = match status {
                Ok(WaitStatus::Exited(_, code)) => Report::Exited { code },
                Ok(WaitStatus::Signaled(_, signal, _)) => Report::Signaled {
                    signal: signal as i32,
                },
                Ok(other) => Report::failed(
                    "wait for the container's init",
                    format!("unexpected status {other:?}"),
                ),
                Err(e) => Report::failed("wait for the container's init", e),
            };
            report(&mut socket, &outcome, 0)
        }
    }
}

/// New mount, pid, ipc and uts namespaces (and network for [`Network::None`]), with every
/// mount private so nothing done inside propagates to the host.
fn enter_namespaces(request: &InitRequest) -> Result<(), Report> {
    let mut flags = CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWUTS;
    if request.spec.network == Network::None {
        flags |= CloneFlags::CLONE_NEWNET;
    }
    nix::sched::unshare(flags).map_err(|e| {
        Report::failed(
            "unshare namespaces (hoist's built-in runtime needs root)",
            e,
        )
    })?;
    rootfs::make_mounts_private()
}

fn ensure_single_threaded() -> Result<(), Report> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| Report::failed("read /proc/self/status", e))?;
    let threads = status
        .lines()
        .find_map(|line| line.strip_prefix("Threads:"))
        .map(str::trim);
    if threads == Some("1") {
        Ok(())
    } else {
        Err(Report::failed(
            "fork the container's init",
            format!(
                "the helper has {} threads; `hoist_sandbox::init_if_requested` must be called first in main",
                threads.unwrap_or("?")
            ),
        ))
    }
}

/// Runs in the container's pid 1: never returns on success (the command replaced it).
fn container_main(request: &InitRequest) -> Report {
    // If the helper dies (hoist cancelled the run by killing it), take the container down too.
    if let Err(e) = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL) {
        return Report::failed("set the parent-death signal", e);
    }
    match rootfs::prepare_and_exec(request) {
        Ok(never) => match never {},
        Err(report) => report,
    }
}

fn report(socket: &mut UnixStream, report: &Report, code: i32) -> i32 {
    let Ok(mut line) = serde_json::to_vec(report) else {
        return HELPER_FAILED;
    };
    line.push(b'\n');
    match socket.write_all(&line) {
        Ok(()) => code,
        Err(_) => HELPER_FAILED,
    }
}
