//! Inside the container's pid 1: mount the standard file systems into the rootfs,
//! `pivot_root` into it, switch to the user and exec the command.
//!
//! Every path inside the rootfs is resolved with [`safe_path::scoped_join`], so a symlink in
//! an image (`/proc -> /`) cannot make a mount land on the host. Nothing of the container
//! runs yet while this happens, so the paths cannot change under us.
//!
//! Devices: this runtime has no device cgroup, so it keeps the process away from host
//! devices with `nodev` instead. The rootfs, the `/dev` tmpfs and every bind mount are
//! `nodev`: a device node an image layer brought, or one the command makes with `mknod`,
//! cannot be opened (`EACCES`). The only usable nodes are Docker's default set, which
//! `/dev` gets as bind mounts of the host's nodes (each a mount of its own, keeping the
//! host `/dev`'s flags) and from the `devpts` instance (`ptmx`, `pts/*`).
//!
//! A privileged run (`Confinement::Privileged`, BuildKit's insecure mode) drops all of
//! that: no `nodev` anywhere, BuildKit's extra devices bound in, `/proc` and `/sys` left
//! unmasked, every capability kept. `--ulimit`s are set just before the user switch, while
//! raising a hard limit is still allowed.

use std::convert::Infallible;
use std::ffi::CString;
use std::fmt::Display;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::unistd::{Gid, Uid};
use rustix::thread::{CapabilitySet, CapabilitySets};

use super::protocol::{InitRequest, Report};
use crate::mounts::{self, Flag, Kind, Mount};
use crate::{defaults, Confinement, Network, RunSpec};

/// Host devices bind-mounted into the container's `/dev`.
const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

/// `result.step(|| "what was being done")` turns an error into a [`Report::Failed`].
trait StepExt<T> {
    fn step(self, what: impl FnOnce() -> String) -> Result<T, Report>;
}

impl<T, E: Display> StepExt<T> for Result<T, E> {
    fn step(self, what: impl FnOnce() -> String) -> Result<T, Report> {
        self.map_err(|e| Report::failed(what(), e))
    }
}

/// `mount --make-rprivate /` in the fresh mount namespace.
pub(super) fn make_mounts_private() -> Result<(), Report> {
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .step(|| "make mounts private".to_owned())
}

pub(super) fn prepare_and_exec(request: &InitRequest) -> Result<Infallible, Report> {
    let spec = &request.spec;
    let root = spec
        .rootfs
        .canonicalize()
        .step(|| format!("open rootfs {}", spec.rootfs.display()))?;
    let privileged = spec.confinement == Confinement::Privileged;
    // Nothing of the rootfs or the binds may be a usable device node, unless privileged.
    let nodev = if privileged {
        MsFlags::empty()
    } else {
        MsFlags::MS_NODEV
    };
    // pivot_root needs the new root to be a mount point.
    bind(&root, &root, MsFlags::empty())?;
    remount_bind(&root, nodev)?;
    for planned in mounts::plan(spec, &request.hosts, &request.resolv_conf) {
        apply(&root, &planned, nodev)?;
    }
    if privileged {
        let dev = scoped(&root, mounts::DEV)?;
        for device in defaults::insecure_devices() {
            let name = &device.name;
            bind_file(&Path::new("/dev").join(name), &dev.join(name))?;
        }
    }
    nix::unistd::sethostname(&spec.hostname).step(|| format!("set hostname {}", spec.hostname))?;
    if spec.network == Network::None {
        loopback::bring_up().step(|| "bring up the loopback interface".to_owned())?;
    }
    enter_root(&root)?;
    if !privileged {
        confine_proc_and_sys()?;
    }
    for limit in &spec.ulimits {
        limit.apply().step(|| format!("set ulimit {limit}"))?;
    }
    std::fs::create_dir_all(&spec.cwd)
        .step(|| format!("create working directory {}", spec.cwd.display()))?;
    switch_user(spec)?;
    nix::unistd::chdir(&spec.cwd)
        .step(|| format!("change to working directory {}", spec.cwd.display()))?;
    exec(spec)
}

/// Performs one planned mount inside `root`, creating its mount point; `nodev` goes on
/// `/dev` and every bind.
fn apply(root: &Path, planned: &Mount, nodev: MsFlags) -> Result<(), Report> {
    let target = scoped(root, &planned.target)?;
    match &planned.kind {
        Kind::Fs {
            fstype,
            source,
            flags,
            data,
        } => {
            mkdir_all(&target)?;
            let mut flags = flags
                .iter()
                .fold(MsFlags::empty(), |all, flag| all | ms_flag(*flag));
            if planned.target == Path::new(mounts::DEV) {
                // Nothing made in it can be opened; the devices bound in are mounts of their own.
                flags |= nodev;
            }
            mount(
                Some(*source),
                &target,
                Some(*fstype),
                flags,
                data.as_deref(),
            )
            .step(|| format!("mount {fstype} on {}", planned.target.display()))?;
            if planned.target == Path::new(mounts::DEV) {
                populate_dev(&target)?;
            }
        }
        Kind::Bind { source, readonly } => {
            if source.is_dir() {
                mkdir_all(&target)?;
                bind(source, &target, MsFlags::empty())?;
            } else {
                bind_file(source, &target)?;
            }
            let readonly = if *readonly {
                MsFlags::MS_RDONLY
            } else {
                MsFlags::empty()
            };
            remount_bind(&target, nodev | readonly)?;
        }
    }
    Ok(())
}

fn ms_flag(flag: Flag) -> MsFlags {
    match flag {
        Flag::NoSuid => MsFlags::MS_NOSUID,
        Flag::NoExec => MsFlags::MS_NOEXEC,
        Flag::NoDev => MsFlags::MS_NODEV,
        Flag::StrictAtime => MsFlags::MS_STRICTATIME,
        Flag::ReadOnly => MsFlags::MS_RDONLY,
    }
}

/// The host's harmless devices and the usual symlinks in the fresh `/dev` tmpfs.
fn populate_dev(dev: &Path) -> Result<(), Report> {
    for device in DEVICES {
        bind_file(&Path::new("/dev").join(device), &dev.join(device))?;
    }
    for (link, target) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        std::os::unix::fs::symlink(target, dev.join(link))
            .step(|| format!("create /dev/{link}"))?;
    }
    Ok(())
}

/// `root` becomes `/`; the old root is detached (the `pivot_root(".", ".")` idiom, which
/// needs no directory for the old root).
fn enter_root(root: &Path) -> Result<(), Report> {
    nix::unistd::chdir(root).step(|| format!("change to rootfs {}", root.display()))?;
    nix::unistd::pivot_root(".", ".").step(|| format!("pivot_root to {}", root.display()))?;
    umount2(".", MntFlags::MNT_DETACH).step(|| "detach the old root".to_owned())?;
    nix::unistd::chdir("/").step(|| "change to /".to_owned())
}

/// Docker's masked and read-only paths (run after `pivot_root`, so `/dev/null` is ours).
fn confine_proc_and_sys() -> Result<(), Report> {
    for path in defaults::READONLY_PATHS {
        let path = Path::new(path);
        if path.exists() {
            bind(path, path, MsFlags::empty())?;
            remount_bind(path, MsFlags::MS_RDONLY)?;
        }
    }
    for path in defaults::MASKED_PATHS {
        let path = Path::new(path);
        match std::fs::symlink_metadata(path) {
            Err(_) => continue,
            Ok(meta) if meta.is_dir() => mount(
                Some("tmpfs"),
                path,
                Some("tmpfs"),
                MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                None::<&str>,
            )
            .step(|| format!("mask {}", path.display()))?,
            Ok(_) => bind(Path::new("/dev/null"), path, MsFlags::empty())?,
        }
    }
    Ok(())
}

/// Supplementary groups, then gid, then uid (after which no privilege is left to change them).
/// By default every process loses the capabilities outside Docker's default set from its
/// bounding set; root keeps the default set, other users keep nothing (the kernel clears
/// them on setuid). Privileged, every process keeps every capability this kernel has, other
/// users too (through the ambient set), as BuildKit's insecure mode gives them.
fn switch_user(spec: &RunSpec) -> Result<(), Report> {
    let privileged = spec.confinement == Confinement::Privileged;
    let keep = if privileged {
        CapabilitySet::all()
            .iter()
            .filter(|cap| rustix::thread::capability_is_in_bounding_set(*cap).unwrap_or(false))
            .fold(CapabilitySet::empty(), |set, cap| set | cap)
    } else {
        defaults::capability_set()
    };
    for (name, cap) in CapabilitySet::all().iter_names() {
        if !keep.contains(cap) {
            match rustix::thread::remove_capability_from_bounding_set(cap) {
                // A capability this kernel does not know.
                Ok(()) | Err(rustix::io::Errno::INVAL) => {}
                Err(e) => return Err(Report::failed(format!("drop capability {name}"), e)),
            }
        }
    }
    let user = &spec.user;
    let gids: Vec<Gid> = user
        .additional_gids
        .iter()
        .copied()
        .map(Gid::from_raw)
        .collect();
    nix::unistd::setgroups(&gids)
        .step(|| format!("set supplementary groups {:?}", user.additional_gids))?;
    nix::unistd::setgid(Gid::from_raw(user.gid)).step(|| format!("set gid {}", user.gid))?;
    if privileged && user.uid != 0 {
        rustix::thread::set_keep_capabilities(true)
            .step(|| "keep capabilities across setuid".to_owned())?;
    }
    nix::unistd::setuid(Uid::from_raw(user.uid)).step(|| format!("set uid {}", user.uid))?;
    if user.uid == 0 || privileged {
        let sets = CapabilitySets {
            effective: keep,
            permitted: keep,
            inheritable: if privileged {
                keep
            } else {
                CapabilitySet::empty()
            },
        };
        rustix::thread::set_capabilities(None, sets).step(|| "set capabilities".to_owned())?;
    }
    if privileged && user.uid != 0 {
        // Ambient capabilities survive the exec of a program without file capabilities.
        for cap in keep.iter() {
            rustix::thread::configure_capability_in_ambient_set(cap, true)
                .step(|| format!("raise ambient capability {cap:?}"))?;
        }
    }
    Ok(())
}

/// Every signal back to its default action and none blocked, as a process runc starts
/// has them. The helper is hoist re-executed, and Rust's runtime ignores `SIGPIPE` at
/// start; an ignored signal stays ignored across `execve`, so without this a RUN's
/// `yes | head -c 1` never ends (the writer gets `EPIPE` instead of dying), and whatever the
/// caller ignored (`SIGQUIT`, `SIGINT` under `nohup` or a shell's `&`) would be too.
fn default_signals() {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    for signal in Signal::iterator() {
        if matches!(signal, Signal::SIGKILL | Signal::SIGSTOP) {
            continue;
        }
        // SAFETY: installing the default action sets no handler of ours that could run;
        // this process is single-threaded and about to exec.
        #[allow(unsafe_code)]
        let _ = unsafe { sigaction(signal, &default) };
    }
    let _ = nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&SigSet::empty()),
        None,
    );
}

fn exec(spec: &RunSpec) -> Result<Infallible, Report> {
    let name = spec.args.first().map(String::as_str).unwrap_or_default();
    let program = if name.contains('/') {
        PathBuf::from(name)
    } else {
        find_in_path(name, spec.path_var()).ok_or_else(|| Report::CommandNotFound {
            command: name.to_owned(),
        })?
    };
    // execve itself, not execvp: no retry through /bin/sh when the kernel refuses the format.
    let cstring = |text: &[u8]| {
        CString::new(text).map_err(|_| {
            Report::failed(
                format!("exec {name}"),
                "an argument or environment entry contains a NUL byte",
            )
        })
    };
    let path = cstring(program.as_os_str().as_bytes())?;
    let argv = spec
        .args
        .iter()
        .map(|arg| cstring(arg.as_bytes()))
        .collect::<Result<Vec<_>, _>>()?;
    let envp = spec
        .env_strings()
        .iter()
        .map(|entry| cstring(entry.as_bytes()))
        .collect::<Result<Vec<_>, _>>()?;
    default_signals();
    let Err(error) = nix::unistd::execve(&path, &argv, &envp);
    let error = std::io::Error::from(error);
    let found = program.exists();
    if !found && !name.contains('/') {
        return Err(Report::CommandNotFound {
            command: name.to_owned(),
        });
    }
    let hint = match error.raw_os_error() {
        Some(libc::ENOENT) if found => {
            " (the program exists: is its ELF interpreter or a library missing from the rootfs?)"
        }
        Some(libc::ENOEXEC) => {
            " (a program for another architecture? running it needs a QEMU binfmt_misc handler)"
        }
        _ => "",
    };
    Err(Report::failed(
        format!("exec {}", program.display()),
        format!("{error}{hint}"),
    ))
}

/// The first executable regular file named `name` in `path_var`'s directories.
fn find_in_path(name: &str, path_var: &str) -> Option<PathBuf> {
    path_var
        .split(':')
        .filter(|dir| !dir.is_empty())
        .map(|dir| Path::new(dir).join(name))
        .find(|candidate| {
            std::fs::metadata(candidate)
                .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        })
}

/// `path` (absolute, inside the container) as a host path under `root`, symlinks resolved
/// inside `root`.
fn scoped(root: &Path, path: impl AsRef<Path>) -> Result<PathBuf, Report> {
    let path = path.as_ref();
    safe_path::scoped_join(root, path).step(|| format!("resolve {} in the rootfs", path.display()))
}

fn mkdir_all(path: &Path) -> Result<(), Report> {
    std::fs::create_dir_all(path).step(|| format!("create directory {}", path.display()))
}

fn bind(source: &Path, target: &Path, extra: MsFlags) -> Result<(), Report> {
    mount(
        Some(source),
        target,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC | extra,
        None::<&str>,
    )
    .step(|| format!("bind-mount {} on {}", source.display(), target.display()))
}

/// Binds a file, creating an empty file (and its parents) as the mount point when missing.
fn bind_file(source: &Path, target: &Path) -> Result<(), Report> {
    if let Some(parent) = target.parent() {
        mkdir_all(parent)?;
    }
    if !target.exists() {
        std::fs::File::create(target)
            .step(|| format!("create mount point {}", target.display()))?;
    }
    bind(source, target, MsFlags::empty())
}

/// Adds `extra` (`MS_RDONLY`, `MS_NODEV`) to the bind mount at `target`, keeping the flags
/// it has: a bind remount sets every per-mount flag at once, so one left out would be
/// cleared (a `nosuid` source turning suid, say).
fn remount_bind(target: &Path, extra: MsFlags) -> Result<(), Report> {
    use rustix::fs::StatVfsMountFlags as St;
    let have = rustix::fs::statvfs(target)
        .step(|| format!("read the mount flags of {}", target.display()))?
        .f_flag;
    let kept = [
        (St::RDONLY, MsFlags::MS_RDONLY),
        (St::NOSUID, MsFlags::MS_NOSUID),
        (St::NODEV, MsFlags::MS_NODEV),
        (St::NOEXEC, MsFlags::MS_NOEXEC),
        (St::NOATIME, MsFlags::MS_NOATIME),
        (St::NODIRATIME, MsFlags::MS_NODIRATIME),
        (St::RELATIME, MsFlags::MS_RELATIME),
    ]
    .into_iter()
    .filter(|(st, _)| have.contains(*st))
    .fold(MsFlags::empty(), |all, (_, ms)| all | ms);
    mount(
        None::<&str>,
        target,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | kept | extra,
        None::<&str>,
    )
    .step(|| format!("remount {} with {extra:?}", target.display()))
}

/// Bringing `lo` up in a fresh network namespace. There is no safe wrapper for
/// `SIOCSIFFLAGS` in nix or rustix, and netlink crates would be far more code for one flag,
/// so this is the one `unsafe` use of the crate.
mod loopback {
    use std::os::fd::AsRawFd;

    use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};

    pub(super) fn bring_up() -> std::io::Result<()> {
        let sock = socket(
            AddressFamily::Inet,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC,
            None,
        )?;
        let mut name = [0 as libc::c_char; libc::IFNAMSIZ];
        name[0] = b'l' as libc::c_char;
        name[1] = b'o' as libc::c_char;
        let mut request = libc::ifreq {
            ifr_name: name,
            ifr_ifru: libc::__c_anonymous_ifr_ifru { ifru_flags: 0 },
        };
        // SAFETY: `request` is a valid, initialised `ifreq` that outlives the call, which is
        // what SIOCGIFFLAGS reads and writes; `sock` is an open socket.
        #[allow(unsafe_code)]
        let got = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut request) };
        if got < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: SIOCGIFFLAGS succeeded, so the kernel filled in `ifru_flags`.
        #[allow(unsafe_code)]
        let flags = unsafe { request.ifr_ifru.ifru_flags };
        request.ifr_ifru.ifru_flags = flags | (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        // SAFETY: as above; SIOCSIFFLAGS only reads `request`.
        #[allow(unsafe_code)]
        let set = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &request) };
        if set < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
}
