//! The OCI runtime backend: writes a bundle (`config.json` pointing at the prepared rootfs)
//! and runs `runc run` or `crun run` on it in the foreground.
//!
//! A build killed with `kill -9` must not leave its container running: `runtime run` gets
//! SIGKILL as its parent-death signal, and each container's bundle holds `owner.lock`,
//! flocked by the hoist process running it. The kernel drops that lock when the process
//! dies, so [`OciRuntimeExecutor::remove_orphans`] stops and deletes every hoist container
//! whose lock it can take (a killed build's), and removes its bundle.
//!
//! The config is built with `serde_json::json!` rather than the `oci-spec` crate: it is a
//! few dozen fixed fields, and `oci-spec`'s builders would add more compile time than code.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Deserialize;
use serde_json::{json, Value};

use crate::etc_files::EtcFiles;
use crate::mounts::{self, Mount};
use crate::output::{pump, OutputSink};
use crate::stubs::MountStubs;
use crate::{cgroup, defaults};
use crate::{CancelToken, Confinement, Error, Executor, ExitStatus, Network, Result, RunSpec};

/// Runtime binaries looked for by [`OciRuntimeExecutor::detect`], in order.
pub const KNOWN_RUNTIMES: &[&str] = &["runc", "crun"];

/// Where runtimes keep container state unless told otherwise.
pub const DEFAULT_STATE_ROOT: &str = "/run/hoist/runtime";

/// The file in each bundle that the hoist process running its container holds flocked.
const OWNER_LOCK: &str = "owner.lock";

/// How the ids of hoist's containers and the names of their bundles begin.
const ID_PREFIX: &str = "hoist-";
const BUNDLE_PREFIX: &str = "hoist-bundle-";

/// What [`OciRuntimeExecutor::remove_orphans`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrphanContainers {
    /// The ids of the containers stopped and deleted.
    pub removed: Vec<String>,
    /// Those that could not be (or the listing that failed), with why; a later sweep retries.
    pub failed: Vec<(String, String)>,
}

/// One entry of `runtime list --format json` (runc and crun both print these fields).
#[derive(Debug, Deserialize)]
struct Listed {
    id: String,
    #[serde(default)]
    bundle: PathBuf,
}

/// The root file system path a bundle's `config.json` names; `None` when it cannot be read.
fn root_path(bundle: &Path) -> Option<PathBuf> {
    let text = std::fs::read(bundle.join("config.json")).ok()?;
    let config: serde_json::Value = serde_json::from_slice(&text).ok()?;
    let root = PathBuf::from(config.get("root")?.get("path")?.as_str()?);
    let root = if root.is_absolute() {
        root
    } else {
        bundle.join(root)
    };
    Some(std::fs::canonicalize(&root).unwrap_or(root))
}

/// Runs processes through an OCI runtime binary (runc, crun).
#[derive(Debug, Clone)]
pub struct OciRuntimeExecutor {
    runtime: PathBuf,
    state_root: PathBuf,
}

impl OciRuntimeExecutor {
    /// Uses the runtime binary at `runtime` with state under [`DEFAULT_STATE_ROOT`].
    pub fn new(runtime: impl Into<PathBuf>) -> Self {
        OciRuntimeExecutor {
            runtime: runtime.into(),
            state_root: PathBuf::from(DEFAULT_STATE_ROOT),
        }
    }

    /// The first of [`KNOWN_RUNTIMES`] found in `PATH`, if any.
    pub fn detect() -> Option<Self> {
        KNOWN_RUNTIMES.iter().find_map(|name| Self::find(name))
    }

    /// The runtime `name`: a path (containing `/`) to an existing file, or a binary looked
    /// up in `PATH`.
    pub fn find(name: &str) -> Option<Self> {
        if name.contains('/') {
            let path = PathBuf::from(name);
            return path.is_file().then(|| Self::new(path));
        }
        let paths = std::env::var_os("PATH")?;
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
            .map(Self::new)
    }

    /// Keeps the runtime's container state under `dir` (its `--root`).
    pub fn with_state_root(mut self, dir: impl Into<PathBuf>) -> Self {
        self.state_root = dir.into();
        self
    }

    /// The runtime binary.
    pub fn runtime(&self) -> &Path {
        &self.runtime
    }

    /// The runtime's state root (its `--root`).
    pub fn state_root(&self) -> &Path {
        &self.state_root
    }

    /// `runtime --root <state root> <args>`.
    fn command(&self) -> Command {
        let mut command = Command::new(&self.runtime);
        command.arg("--root").arg(&self.state_root);
        command
    }

    /// Stops and deletes every container hoist started under this state root whose owner
    /// (the hoist process that ran it) is dead, and removes its bundle: what a killed build
    /// left running. Safe next to running builds, which hold their containers' owner locks.
    /// Runs the runtime only when the state root holds a hoist container.
    ///
    /// With `within`, only containers whose root file system lies under that directory (a
    /// hoist state dir) are touched, so one state dir's builds and prunes leave another's
    /// leftovers to it; a container whose bundle is gone cannot say, and goes.
    pub fn remove_orphans(&self, within: Option<&Path>) -> OrphanContainers {
        let mut report = OrphanContainers::default();
        let ours = std::fs::read_dir(&self.state_root).is_ok_and(|entries| {
            entries
                .filter_map(std::result::Result::ok)
                .any(|entry| entry.file_name().to_string_lossy().starts_with(ID_PREFIX))
        });
        if !ours {
            return report;
        }
        let listed = match self.list() {
            Ok(listed) => listed,
            Err(e) => {
                report
                    .failed
                    .push((self.state_root.display().to_string(), e.to_string()));
                return report;
            }
        };
        let within = within.map(|dir| std::fs::canonicalize(dir).unwrap_or(dir.to_path_buf()));
        for container in listed.into_iter().filter(|c| c.id.starts_with(ID_PREFIX)) {
            if let Some(dir) = &within {
                if root_path(&container.bundle).is_some_and(|root| !root.starts_with(dir)) {
                    continue;
                }
            }
            let lock = container.bundle.join(OWNER_LOCK);
            let _owner = match lock_owner(&lock, false) {
                Ok(Some(owner)) => Some(owner),
                // Its owner still runs it.
                Ok(None) => continue,
                // The bundle is gone: so is its owner.
                Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                    None
                }
                Err(e) => {
                    report.failed.push((container.id, e.to_string()));
                    continue;
                }
            };
            match self.stop_and_delete(&container.id) {
                Ok(()) => {
                    let is_bundle = container
                        .bundle
                        .file_name()
                        .is_some_and(|name| name.to_string_lossy().starts_with(BUNDLE_PREFIX));
                    if is_bundle {
                        let _ = std::fs::remove_dir_all(&container.bundle);
                    }
                    report.removed.push(container.id);
                }
                Err(e) => report.failed.push((container.id, e.to_string())),
            }
        }
        report
    }

    /// The containers under the state root.
    fn list(&self) -> Result<Vec<Listed>> {
        let out = self
            .command()
            .args(["list", "--format", "json"])
            .stdin(Stdio::null())
            .output()
            .map_err(|source| Error::Spawn {
                program: self.runtime.clone(),
                source,
            })?;
        if !out.status.success() {
            return Err(Error::Runtime {
                runtime: self.runtime.clone(),
                detail: format!("list: {}", String::from_utf8_lossy(&out.stderr).trim_end()),
            });
        }
        // runc prints `null` for no container.
        serde_json::from_slice::<Option<Vec<Listed>>>(&out.stdout)
            .map(Option::unwrap_or_default)
            .map_err(|e| Error::Runtime {
                runtime: self.runtime.clone(),
                detail: format!("list printed no container list: {e}"),
            })
    }

    /// `kill <id> KILL`, then `delete --force <id>` (which waits for it to stop and removes
    /// its cgroup and state).
    fn stop_and_delete(&self, id: &str) -> Result<()> {
        // Fails when it has stopped already; delete says whether it is gone.
        let _ = self
            .command()
            .args(["kill", id, "KILL"])
            .stdin(Stdio::null())
            .output();
        let out = self
            .command()
            .args(["delete", "--force", id])
            .stdin(Stdio::null())
            .output()
            .map_err(|source| Error::Spawn {
                program: self.runtime.clone(),
                source,
            })?;
        if out.status.success() {
            Ok(())
        } else {
            Err(Error::Runtime {
                runtime: self.runtime.clone(),
                detail: format!(
                    "delete {id}: {}",
                    String::from_utf8_lossy(&out.stderr).trim_end()
                ),
            })
        }
    }
}

/// Opens `path` and locks it exclusive, waiting (`wait`) or not; `None` when another
/// process holds it. Created only when waiting (the owner's side).
fn lock_owner(path: &Path, wait: bool) -> Result<Option<File>> {
    use rustix::fs::FlockOperation;
    let file = File::options()
        .create(wait)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| Error::io("open", path, e))?;
    let operation = if wait {
        FlockOperation::LockExclusive
    } else {
        FlockOperation::NonBlockingLockExclusive
    };
    match rustix::fs::flock(&file, operation) {
        Ok(()) => Ok(Some(file)),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
        Err(e) => Err(Error::io("lock", path, e.into())),
    }
}

/// Makes `command`'s child get SIGKILL when the thread that spawns it ends (hoist killed),
/// so `runtime run` does not outlive hoist.
fn die_with_parent(command: &mut Command) {
    let parent = std::process::id();
    // SAFETY: the closure runs in the forked child before exec and only makes the
    // `prctl` and `getppid` system calls, which are async-signal-safe; it allocates nothing
    // and takes no lock.
    #[allow(unsafe_code)]
    unsafe {
        command.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)?;
            // The parent died before the signal was set: it will never come.
            if u32::try_from(nix::unistd::getppid().as_raw()).ok() != Some(parent) {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

impl Executor for OciRuntimeExecutor {
    fn run_cancellable(
        &self,
        spec: &RunSpec,
        sink: &mut dyn OutputSink,
        cancel: &CancelToken,
    ) -> Result<ExitStatus> {
        spec.validate()?;
        let etc = EtcFiles::write(spec)?;
        let _stubs = MountStubs::record(
            &spec.rootfs,
            mounts::plan(spec, &etc.hosts(), &etc.resolv_conf())
                .iter()
                .map(|mount| mount.target.as_path()),
        );
        let bundle = tempfile::Builder::new()
            .prefix(BUNDLE_PREFIX)
            .tempdir()
            .map_err(|e| Error::io("create temp dir in", std::env::temp_dir(), e))?;
        // Held until the container is gone: while it is, remove_orphans leaves it alone.
        let _owner = lock_owner(&bundle.path().join(OWNER_LOCK), true)?;
        let config_path = bundle.path().join("config.json");
        let id = container_id();
        let config = config_json(spec, &id, &etc.hosts(), &etc.resolv_conf());
        let bytes = serde_json::to_vec_pretty(&config)
            .map_err(|e| Error::io("serialise", &config_path, std::io::Error::other(e)))?;
        std::fs::write(&config_path, bytes).map_err(|e| Error::io("write", &config_path, e))?;
        std::fs::create_dir_all(&self.state_root)
            .map_err(|e| Error::io("create", &self.state_root, e))?;
        let log = bundle.path().join("runtime.log");

        let mut command = self.command();
        if spec
            .cgroup_parent
            .as_deref()
            .is_some_and(cgroup::is_systemd_slice)
        {
            command.arg("--systemd-cgroup");
        }
        die_with_parent(&mut command);
        let mut child = command
            .arg("--log")
            .arg(&log)
            .arg("--log-format")
            .arg("json")
            .arg("run")
            .arg("--bundle")
            .arg(bundle.path())
            .arg(&id)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| Error::Spawn {
                program: self.runtime.clone(),
                source,
            })?;
        if let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) {
            // Killing `runtime run` would leave the container running: ask the runtime to
            // kill the container instead (again each poll, in case it was still being created).
            let mut kill = || {
                let _ = self
                    .command()
                    .arg("kill")
                    .arg(&id)
                    .arg("KILL")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            };
            pump(stdout, stderr, sink, cancel, &mut kill);
        }
        let status = child.wait().map_err(|source| Error::Spawn {
            program: self.runtime.clone(),
            source,
        })?;
        if cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        let errors = runtime_errors(&std::fs::read_to_string(&log).unwrap_or_default());
        if !status.success() && !errors.is_empty() {
            let detail = errors.join("; ");
            return Err(match command_not_found(&detail) {
                Some(command) => Error::CommandNotFound { command },
                None => Error::Runtime {
                    runtime: self.runtime.clone(),
                    detail,
                },
            });
        }
        // The runtime reports a signal as 128 + n, like a shell; BuildKit reports it so too.
        match status.code() {
            Some(code) => Ok(ExitStatus::Code(code)),
            None => Err(Error::Runtime {
                runtime: self.runtime.clone(),
                detail: format!("the runtime itself ended: {status}"),
            }),
        }
    }
}

/// A container id unique on this host for the life of the process.
pub(crate) fn container_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "{ID_PREFIX}{}-{}-{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// The `msg` of every error-level entry of a runtime's JSON log.
fn runtime_errors(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|entry| matches!(entry["level"].as_str(), Some("error" | "fatal")))
        .filter_map(|entry| entry["msg"].as_str().map(str::to_owned))
        .collect()
}

/// The command named by runc's (`exec: "x": executable file not found in $PATH`) or crun's
/// (``executable file `x` not found in $PATH``) error.
fn command_not_found(message: &str) -> Option<String> {
    if let Some(rest) = message.split("exec: \"").nth(1) {
        if let Some((command, tail)) = rest.split_once('"') {
            if tail.contains("not found in $PATH") {
                return Some(command.to_owned());
            }
        }
    }
    let rest = message.split("executable file `").nth(1)?;
    let (command, tail) = rest.split_once('`')?;
    tail.contains("not found").then(|| command.to_owned())
}

/// The OCI runtime config for `spec`, container `id`: the same namespaces and mounts as the
/// built-in runtime.
pub(crate) fn config_json(spec: &RunSpec, id: &str, hosts: &Path, resolv_conf: &Path) -> Value {
    let privileged = spec.confinement == Confinement::Privileged;
    let bounding: Vec<String> = if privileged {
        all_capabilities()
    } else {
        defaults::CAPABILITIES
            .iter()
            .map(|(name, _)| (*name).to_owned())
            .collect()
    };
    let kept: &[String] = if spec.user.uid == 0 || privileged {
        &bounding
    } else {
        &[]
    };
    let mut capabilities = json!({"bounding": bounding, "effective": kept, "permitted": kept});
    if privileged {
        // BuildKit's insecure mode: users other than root keep them all too.
        capabilities["inheritable"] = json!(kept);
        capabilities["ambient"] = json!(kept);
    }
    let mut namespaces = vec![
        json!({"type": "pid"}),
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
        json!({"type": "mount"}),
    ];
    if spec.network == Network::None {
        namespaces.push(json!({"type": "network"}));
    }
    let mounts: Vec<Value> = mounts::plan(spec, hosts, resolv_conf)
        .iter()
        .map(Mount::to_oci)
        .collect();
    let (devices, device_nodes): (Vec<Value>, Vec<Value>) = if privileged {
        // Every device allowed, BuildKit's extra nodes made (those the host has).
        let nodes = defaults::insecure_devices()
            .iter()
            .map(|device| {
                json!({"path": format!("/dev/{}", device.name), "type": device.kind.to_string(),
                       "major": device.major, "minor": device.minor, "fileMode": device.mode,
                       "uid": 0, "gid": 0})
            })
            .collect();
        let allow = ['c', 'b']
            .map(|kind| json!({"allow": true, "type": kind.to_string(), "access": "rwm"}));
        (allow.to_vec(), nodes)
    } else {
        // Deny every device, then allow Docker's defaults, as containerd's default spec does.
        let rules = std::iter::once(json!({"allow": false, "access": "rwm"}))
            .chain(defaults::ALLOWED_DEVICES.iter().map(device_rule))
            .collect();
        (rules, Vec::new())
    };
    let (masked, readonly): (&[&str], &[&str]) = if privileged {
        (&[], &[])
    } else {
        (defaults::MASKED_PATHS, defaults::READONLY_PATHS)
    };
    let rlimits: Vec<Value> = spec
        .ulimits
        .iter()
        .map(|limit| {
            json!({"type": limit.oci_type(), "soft": crate::Ulimit::raw(limit.soft),
                   "hard": crate::Ulimit::raw(limit.hard)})
        })
        .collect();
    let mut process = json!({
        "terminal": false,
        "user": {"uid": spec.user.uid, "gid": spec.user.gid, "additionalGids": spec.user.additional_gids},
        "args": spec.args,
        "env": spec.env_strings(),
        "cwd": spec.cwd,
        "capabilities": capabilities,
        "noNewPrivileges": false,
    });
    if !rlimits.is_empty() {
        process["rlimits"] = json!(rlimits);
    }
    let mut linux = json!({
        "namespaces": namespaces,
        "maskedPaths": masked,
        "readonlyPaths": readonly,
        "resources": {"devices": devices},
    });
    if !device_nodes.is_empty() {
        linux["devices"] = json!(device_nodes);
    }
    if let Some(parent) = &spec.cgroup_parent {
        linux["cgroupsPath"] = json!(cgroup::cgroups_path(parent, id));
    }
    json!({
        "ociVersion": "1.0.2",
        "process": process,
        "root": {"path": spec.rootfs, "readonly": false},
        "hostname": spec.hostname,
        "mounts": mounts,
        "linux": linux,
    })
}

/// The OCI names of every capability this kernel has (those in hoist's bounding set).
fn all_capabilities() -> Vec<String> {
    rustix::thread::CapabilitySet::all()
        .iter_names()
        .filter(|(_, cap)| rustix::thread::capability_is_in_bounding_set(*cap).unwrap_or(false))
        .map(|(name, _)| format!("CAP_{name}"))
        .collect()
}

/// A `linux.resources.devices` entry allowing `rule` (a missing number matches any).
fn device_rule(rule: &defaults::DeviceRule) -> Value {
    let mut entry = json!({"allow": true, "type": rule.kind.to_string(), "access": rule.access});
    for (field, number) in [("major", rule.major), ("minor", rule.minor)] {
        if let Some(number) = number {
            entry[field] = json!(number);
        }
    }
    entry
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BindMount, TmpfsMount, User};

    #[test]
    fn command_not_found_reads_runc_and_crun_messages() {
        let runc = "runc run failed: unable to start container process: exec: \"nope\": executable file not found in $PATH";
        assert_eq!(command_not_found(runc).as_deref(), Some("nope"));
        let crun = "executable file `nope` not found in $PATH: No such file or directory";
        assert_eq!(command_not_found(crun).as_deref(), Some("nope"));
        assert_eq!(
            command_not_found("container_linux.go: permission denied"),
            None
        );
    }

    #[test]
    fn runtime_errors_keep_error_entries_only() {
        let log = "{\"level\":\"warning\",\"msg\":\"w\"}\nnot json\n{\"level\":\"error\",\"msg\":\"boom\"}\n";
        assert_eq!(runtime_errors(log), vec!["boom".to_owned()]);
    }

    #[test]
    fn config_json_maps_the_spec() {
        let mut spec = RunSpec::new("/rootfs", ["sh", "-c", "true"]);
        spec.user = User {
            uid: 1000,
            gid: 1000,
            additional_gids: vec![10],
        };
        spec.network = Network::None;
        spec.mounts.push(BindMount {
            source: "/src".into(),
            target: "/dst".into(),
            readonly: true,
        });
        spec.tmpfs.push(TmpfsMount {
            target: "/tmp".into(),
            size: Some(1024),
        });
        let config = config_json(&spec, "c1", Path::new("/h"), Path::new("/r"));
        assert_eq!(
            config["process"]["user"],
            json!({"uid": 1000, "gid": 1000, "additionalGids": [10]})
        );
        assert_eq!(config["process"]["args"], json!(["sh", "-c", "true"]));
        assert_eq!(config["process"]["capabilities"]["effective"], json!([]));
        assert_eq!(
            config["process"]["capabilities"]["bounding"]
                .as_array()
                .unwrap()
                .len(),
            14
        );
        assert_eq!(config["root"]["path"], json!("/rootfs"));
        assert!(config["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .contains(&json!({"type": "network"})));
        let mounts = config["mounts"].as_array().unwrap();
        assert!(mounts.contains(
            &json!({"destination": "/dst", "type": "bind", "source": "/src",
                                         "options": ["rbind", "rprivate", "nodev", "ro"]})
        ));
        let devices = config["linux"]["resources"]["devices"].as_array().unwrap();
        assert_eq!(devices[0], json!({"allow": false, "access": "rwm"}));
        assert!(devices.contains(
            &json!({"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"})
        ));
        assert!(devices.contains(&json!({"allow": true, "type": "c", "access": "m"})));
        assert!(!devices
            .iter()
            .any(|rule| rule["major"] == json!(10) && rule["allow"] == json!(true)));
        assert!(mounts.contains(
            &json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
                                         "options": ["nosuid", "nodev", "size=1024"]})
        ));
    }
}
