//! Exec ops (`RUN`): prepare a snapshot on the root input, mount the other inputs, cache
//! directories and tmpfs, resolve the user from the rootfs, run the process in the sandbox
//! with its output forwarded as solver log lines, and commit. A failing process leaves no
//! snapshot behind.
//!
//! Cache mounts are one directory per id under `<state>/engine/cache-mounts`, kept across
//! builds, keyed by id and source (`from=`, or the owner/mode the frontend prepared), seeded
//! from that source when first made; `sharing=locked` holds an `flock` for the run,
//! `private` takes an instance no concurrent run holds.
//! A RUN for a foreign platform logs which `binfmt_misc` emulator runs it.
//! A secret mount shows the build's secret as a read-only file (written for the run into
//! a private temporary directory, on `/dev/shm` when there is one, removed afterwards; the
//! sandbox removes the stub it mounts on) and/or as an environment variable of this run
//! alone; a secret the build was not given is skipped, or fails the run when `required`.
//! An SSH mount shows the build's agent for its id as a socket served for this run alone
//! (see `crate::ssh`), owned and moded as the mount says; the first SSH mount's target is
//! `SSH_AUTH_SOCK` unless the step sets it, as BuildKit does. An agent the build was not
//! given is skipped (a required one was refused before any step ran).
//! `--security=insecure` (its entitlement checked before any step ran) runs privileged;
//! the build's `RunOptions` (`--add-host`, `--shm-size`, `--ulimit`, `--cgroup-parent`)
//! apply to every run.

use std::collections::VecDeque;
use std::path::PathBuf;

use hoist_graph::{MountKind, MountSource, Network};
use hoist_sandbox::binfmt::{native_platforms, ExecSupport, Execution};
use hoist_sandbox::{
    BindMount, CancelToken, Confinement, Executor as _, OutputStream, RunSpec, TmpfsMount,
};
use hoist_snapshot::{ActiveSnapshot, AnySnapshotter, SnapshotId, Snapshotter as _};
use hoist_solver::{ExecContext, LogStream};
use sha2::{Digest as _, Sha256};

use super::{input, scoped_path, EngineOp};
use crate::error::{Error, Result};
use crate::ssh::{ServedSocket, SocketOwner};
use crate::worker::{create_dir_all, Ref};

/// How many of the last output lines a failure reports.
const LAST_LINES: usize = 6;

/// The run's mount snapshots (views and throwaway writable ones, removed when dropped),
/// cache-mount locks, secret files and served SSH agent sockets, released once the run is
/// over.
#[derive(Default)]
struct Cleanup<'a>(
    Vec<ActiveSnapshot<'a, AnySnapshotter>>,
    Vec<std::fs::File>,
    Vec<tempfile::TempDir>,
    Vec<ServedSocket>,
);

pub(super) async fn exec(op: &EngineOp, ctx: &ExecContext, inputs: Vec<Ref>) -> Result<Ref> {
    if let Some(note) = emulation_note(op) {
        ctx.log(LogStream::Stderr, note);
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(LogStream, String)>();
    // The solver drops this future when the build is cancelled: the guard then stops the
    // process the blocking task runs.
    let cancel = CancelOnDrop(CancelToken::new());
    let task = {
        let (op, token) = (op.clone(), cancel.0.clone());
        tokio::task::spawn_blocking(move || run(&op, &inputs, tx, &token))
    };
    while let Some((stream, line)) = rx.recv().await {
        ctx.log(stream, line);
    }
    task.await.map_err(|e| Error::Task(e.to_string()))?
}

/// `[emulated] qemu-aarch64 (binfmt_misc: <interpreter>)` when the RUN's platform is not
/// native and an emulator runs it; the build checked beforehand that one does.
fn emulation_note(op: &EngineOp) -> Option<String> {
    let platform = op.vertex.platform.as_ref()?;
    let wanted = platform.normalize();
    if native_platforms()
        .iter()
        .any(|p| p.os == wanted.os && p.architecture == wanted.architecture)
    {
        return None;
    }
    match ExecSupport::detect().ok()?.check(platform) {
        Execution::Emulated {
            handler,
            interpreter,
        } => Some(format!(
            "[emulated] {handler} (binfmt_misc: {})",
            interpreter.display()
        )),
        Execution::Native | Execution::Unavailable => None,
    }
}

/// Cancels its token when dropped.
struct CancelOnDrop(CancelToken);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

fn run(
    op: &EngineOp,
    inputs: &[Ref],
    lines: tokio::sync::mpsc::UnboundedSender<(LogStream, String)>,
    cancel: &CancelToken,
) -> Result<Ref> {
    let hoist_graph::Op::Exec(exec) = &op.vertex.op else {
        return Err(Error::InvalidGraph("not an exec".into()));
    };
    let root_mount = exec
        .mounts
        .get(exec.output_mount)
        .filter(|m| m.target == "/")
        .ok_or_else(|| Error::Unsupported("an exec whose output is not its root mount".into()))?;
    let base = match root_mount.source {
        MountSource::Input(i) => Some(input(inputs, i)?.clone()),
        MountSource::Scratch => None,
    };
    let snapshotter = op.worker.snapshotter();
    let key = op.worker.unique_key("exec");
    let parents: Vec<SnapshotId> = base
        .iter()
        .map(|b| b.snapshot().cloned())
        .collect::<Result<_>>()?;
    let mount = snapshotter.prepare(&key, &parents)?;
    let mut cleanup = Cleanup::default();
    let outcome = prepare_and_run(
        op,
        exec,
        inputs,
        mount.path().to_path_buf(),
        &mut cleanup,
        lines,
        cancel,
    );
    drop(cleanup);
    match outcome {
        Ok(()) => super::commit(op, &key, base.as_ref()),
        Err(e) => {
            let _ = snapshotter.remove(&key);
            Err(e)
        }
    }
}

fn prepare_and_run<'a>(
    op: &'a EngineOp,
    exec: &hoist_graph::Exec,
    inputs: &[Ref],
    rootfs: PathBuf,
    cleanup: &mut Cleanup<'a>,
    lines: tokio::sync::mpsc::UnboundedSender<(LogStream, String)>,
    cancel: &CancelToken,
) -> Result<()> {
    let snapshotter = op.worker.snapshotter();
    let mut spec = RunSpec::new(&rootfs, exec.args.clone());
    if exec.security == hoist_graph::Security::Insecure {
        spec.confinement = Confinement::Privileged;
    }
    let options = &op.run.options;
    spec.extra_hosts = options.extra_hosts.clone();
    spec.shm_size = options.shm_size;
    spec.ulimits = options.ulimits.clone();
    spec.cgroup_parent = options.cgroup_parent.clone();
    spec.env = exec
        .env
        .iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (kv.clone(), String::new()),
        })
        .collect();
    if let Some(proxy) = &exec.proxy {
        // Proxy build args reach the process, in both spellings, as BuildKit passes them.
        for (name, value) in [
            ("HTTP_PROXY", &proxy.http_proxy),
            ("HTTPS_PROXY", &proxy.https_proxy),
            ("FTP_PROXY", &proxy.ftp_proxy),
            ("NO_PROXY", &proxy.no_proxy),
            ("ALL_PROXY", &proxy.all_proxy),
        ] {
            if let Some(value) = value {
                spec.env.push((name.to_owned(), value.clone()));
                spec.env.push((name.to_ascii_lowercase(), value.clone()));
            }
        }
    }
    spec.cwd = PathBuf::from(if exec.cwd.is_empty() { "/" } else { &exec.cwd });
    let cwd = scoped_path::resolve(&rootfs, &spec.cwd.to_string_lossy(), true)?;
    create_dir_all(&cwd)?;
    spec.user = hoist_sandbox::resolve_user(&exec.user, &rootfs)?;
    if !spec.env.iter().any(|(name, _)| name == "HOME") {
        // runc sets it so, which is what BuildKit's RUN sees.
        let home = hoist_sandbox::home_dir(spec.user.uid, &rootfs)?;
        spec.env.push(("HOME".to_owned(), home));
    }
    spec.network = match exec.network {
        Network::None => hoist_sandbox::Network::None,
        Network::Sandbox | Network::Host => hoist_sandbox::Network::Host,
    };
    for (index, mount) in exec.mounts.iter().enumerate() {
        if index == exec.output_mount {
            continue;
        }
        let target = PathBuf::from(&mount.target);
        match &mount.kind {
            MountKind::Bind => {
                let source = match mount.source {
                    MountSource::Input(i) => {
                        let key = op.worker.unique_key("mount");
                        let parents = [input(inputs, i)?.snapshot()?.clone()];
                        let dir = if mount.readonly {
                            snapshotter.view(&key, &parents)?
                        } else {
                            ActiveSnapshot::prepare(snapshotter, &key, &parents)?
                        };
                        let selector = mount.selector.as_deref().unwrap_or("/");
                        let source = scoped_path::resolve(dir.path(), selector, true)?;
                        cleanup.0.push(dir);
                        source
                    }
                    MountSource::Scratch => {
                        let key = op.worker.unique_key("scratch");
                        let dir = ActiveSnapshot::prepare(snapshotter, &key, &[])?;
                        let source = dir.path().to_path_buf();
                        cleanup.0.push(dir);
                        source
                    }
                };
                spec.mounts.push(BindMount {
                    source,
                    target,
                    readonly: mount.readonly,
                });
            }
            MountKind::Cache { id, sharing } => {
                // BuildKit keys a cache by its id and, when it has one, its source.
                let mut name = id.clone();
                let seed = match mount.source {
                    MountSource::Input(i) => {
                        let snapshot = input(inputs, i)?.snapshot()?.clone();
                        let selector = mount.selector.clone().unwrap_or_else(|| "/".into());
                        name.push_str(&format!(":{snapshot}:{selector}"));
                        Some((snapshot, selector))
                    }
                    MountSource::Scratch => None,
                };
                let name = cache_mount_name(&name);
                let (dir, lock) = cache_mount_dir(op, &name, *sharing)?;
                cleanup.1.extend(lock);
                if !dir.exists() {
                    create_cache_mount(op, &dir, seed.as_ref())?;
                }
                spec.mounts.push(BindMount {
                    source: dir,
                    target,
                    readonly: false,
                });
            }
            MountKind::Tmpfs { size } => spec.tmpfs.push(TmpfsMount {
                target,
                size: (*size > 0).then_some(*size),
            }),
            MountKind::Secret {
                id,
                env,
                required,
                mode,
                uid,
                gid,
            } => {
                let Some(value) = op.secrets.get(id) else {
                    if *required {
                        return Err(Error::SecretNotFound { id: id.clone() });
                    }
                    continue;
                };
                if let Some(name) = env {
                    let name = if name.is_empty() { id } else { name };
                    spec.env.retain(|(k, _)| k != name);
                    spec.env
                        .push((name.clone(), String::from_utf8_lossy(value).into_owned()));
                }
                if !mount.target.is_empty() {
                    let (dir, file) = secret_file(value, *mode, *uid, *gid)?;
                    cleanup.2.push(dir);
                    spec.mounts.push(BindMount {
                        source: file,
                        target,
                        readonly: true,
                    });
                }
            }
            MountKind::Ssh {
                id,
                required,
                mode,
                uid,
                gid,
            } => {
                let owner = SocketOwner {
                    uid: *uid,
                    gid: *gid,
                    mode: *mode,
                };
                let Some(socket) = op.run.ssh.serve(id, owner)? else {
                    if *required {
                        return Err(Error::SshNotForwarded { id: id.clone() });
                    }
                    continue;
                };
                spec.mounts.push(BindMount {
                    source: socket.path(),
                    target,
                    readonly: true,
                });
                cleanup.3.push(socket);
            }
        }
    }
    let first_ssh = exec
        .mounts
        .iter()
        .find(|mount| matches!(mount.kind, MountKind::Ssh { .. }));
    if let Some(mount) = first_ssh {
        if !spec.env.iter().any(|(name, _)| name == "SSH_AUTH_SOCK") {
            spec.env
                .push(("SSH_AUTH_SOCK".to_owned(), mount.target.clone()));
        }
    }
    let mut last: VecDeque<String> = VecDeque::new();
    let mut sink = |stream: OutputStream, line: &[u8]| {
        let text = String::from_utf8_lossy(line)
            .trim_end_matches('\n')
            .to_owned();
        if last.len() == LAST_LINES {
            last.pop_front();
        }
        last.push_back(text.clone());
        let stream = match stream {
            OutputStream::Stdout => LogStream::Stdout,
            OutputStream::Stderr => LogStream::Stderr,
        };
        let _ = lines.send((stream, text));
    };
    let status = op
        .worker
        .executor()
        .run_cancellable(&spec, &mut sink, cancel)?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::RunFailed {
            command: exec.args.join(" "),
            status,
            output: last.into_iter().collect(),
        })
    }
}

/// Writes a secret's value for one run: a file with the mount's mode and owner in a new
/// directory only root can enter, on `/dev/shm` (memory) when there is one. The directory
/// goes when dropped.
fn secret_file(
    value: &[u8],
    mode: u32,
    uid: u32,
    gid: u32,
) -> Result<(tempfile::TempDir, PathBuf)> {
    use std::io::Write as _;
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};

    let shm = std::path::Path::new("/dev/shm");
    let parent = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    let dir = tempfile::Builder::new()
        .prefix("hoist-secret-")
        .tempdir_in(&parent)
        .map_err(Error::io("create a directory in", &parent))?;
    let path = dir.path().join("secret");
    let mut file = std::fs::File::options()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(Error::io("create", &path))?;
    file.write_all(value).map_err(Error::io("write", &path))?;
    drop(file);
    std::os::unix::fs::chown(&path, Some(uid), Some(gid)).map_err(Error::io("chown", &path))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode & 0o7777))
        .map_err(Error::io("chmod", &path))?;
    Ok((dir, path))
}

/// The directory of cache mount `name` this run uses, and the lock held for the run:
/// `shared` uses the one directory with no lock; `locked` holds its lock exclusively (one
/// run at a time, across processes); `private` takes the first instance (`name`, `name-1`,
/// …) no other run holds, so concurrent runs never see each other's writes.
/// Where cache mounts live: `<state>/engine/cache-mounts`.
pub(crate) fn cache_mounts_root(worker: &crate::worker::Worker) -> PathBuf {
    worker.engine_dir().join("cache-mounts")
}

/// The directory name (under [`cache_mounts_root`]) of the cache mount keyed `key`: its
/// id, followed by its source when it has one. `remote_cache` finds mounts by it.
pub(crate) fn cache_mount_name(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

fn cache_mount_dir(
    op: &EngineOp,
    name: &str,
    sharing: hoist_graph::Sharing,
) -> Result<(PathBuf, Option<std::fs::File>)> {
    let root = cache_mounts_root(&op.worker);
    create_dir_all(&root)?;
    let open_lock = |instance: &str| {
        let path = root.join(format!("{instance}.lock"));
        std::fs::File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(Error::io("open", &path))
            .map(|file| (file, path))
    };
    match sharing {
        hoist_graph::Sharing::Shared => Ok((root.join(name), None)),
        hoist_graph::Sharing::Locked => {
            let (lock, path) = open_lock(name)?;
            fs4::fs_std::FileExt::lock_exclusive(&lock).map_err(Error::io("lock", &path))?;
            Ok((root.join(name), Some(lock)))
        }
        hoist_graph::Sharing::Private => {
            for n in 0u32.. {
                let instance = if n == 0 {
                    name.to_owned()
                } else {
                    format!("{name}-{n}")
                };
                let (lock, path) = open_lock(&instance)?;
                match fs4::fs_std::FileExt::try_lock_exclusive(&lock) {
                    Ok(true) => return Ok((root.join(instance), Some(lock))),
                    Ok(false) => continue,
                    Err(e) => return Err(Error::io("lock", &path)(e)),
                }
            }
            Err(Error::InvalidGraph(format!(
                "no free instance of cache mount {name}"
            )))
        }
    }
}

/// Creates a cache mount's directory: empty, or a copy of its source (`from=`/`source=`,
/// or the directory the frontend prepared with `uid`/`gid`/`mode`), owner and mode of the
/// top directory included. Built beside `dir` and renamed into place, so a half-made cache
/// is never seen.
fn create_cache_mount(
    op: &EngineOp,
    dir: &std::path::Path,
    seed: Option<&(SnapshotId, String)>,
) -> Result<()> {
    let parent = dir.parent().unwrap_or(dir);
    let tmp = tempfile::Builder::new()
        .prefix(".new-")
        .tempdir_in(parent)
        .map_err(Error::io("create a directory in", parent))?;
    if let Some((snapshot, selector)) = seed {
        let view = op.worker.snapshotter().view(
            &op.worker.unique_key("cache-seed"),
            std::slice::from_ref(snapshot),
        )?;
        let source = scoped_path::resolve(view.path(), selector, true)?;
        if source.is_dir() {
            hoist_snapshot::copy_tree(&source, tmp.path())?;
        }
    } else {
        std::fs::set_permissions(
            tmp.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .map_err(Error::io("chmod", tmp.path()))?;
    }
    let made = tmp.keep();
    match std::fs::rename(&made, dir) {
        Ok(()) => Ok(()),
        // Another run made it first: theirs is as good.
        Err(_) if dir.is_dir() => {
            let _ = std::fs::remove_dir_all(&made);
            Ok(())
        }
        Err(e) => Err(Error::io("create", dir)(e)),
    }
}
