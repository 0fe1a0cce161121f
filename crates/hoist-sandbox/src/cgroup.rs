//! `--cgroup-parent`: where a run's cgroup goes. The path is BuildKit's: `<parent>/hoist/<id>`
//! below the cgroup root, or for a systemd slice (`name.slice:prefix:`) the slice form
//! `<parent><id>` that an OCI runtime started with `--systemd-cgroup` understands.
//!
//! The OCI backend hands the path to the runtime (`linux.cgroupsPath`). The built-in runtime
//! manages no cgroup of its own (its runs stay in hoist's), so for a parent it makes the
//! run's cgroup itself with [`RunCgroup`]: the directory in the unified (v2) hierarchy, or in
//! every v1 controller hierarchy mounted under `/sys/fs/cgroup`, moves the helper into it
//! before the helper forks the container, and removes it once the run is over. Slices need
//! systemd's API, so the built-in runtime refuses them.

use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Where cgroup hierarchies are mounted.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// Whether `parent` is a systemd slice in the runtime's `slice:prefix:` form.
pub(crate) fn is_systemd_slice(parent: &str) -> bool {
    parent.contains(".slice") && parent.ends_with(':')
}

/// The OCI `linux.cgroupsPath` of container `id` under `parent`.
pub(crate) fn cgroups_path(parent: &str, id: &str) -> String {
    if is_systemd_slice(parent) {
        format!("{parent}{id}")
    } else {
        let relative = Path::new(parent.trim_start_matches('/'))
            .join("hoist")
            .join(id);
        format!("/{}", relative.display())
    }
}

/// The cgroup directories of one built-in run, removed when dropped.
#[derive(Debug)]
pub(crate) struct RunCgroup {
    dirs: Vec<PathBuf>,
}

impl RunCgroup {
    /// Makes `<parent>/hoist/<id>` in each hierarchy.
    pub(crate) fn create(parent: &str, id: &str) -> Result<RunCgroup> {
        if is_systemd_slice(parent) {
            return Err(Error::InvalidSpec {
                reason: format!(
                    "cgroup parent {parent:?} is a systemd slice, which only an OCI runtime \
                     places containers in (--runtime=runc): give a cgroup path for the \
                     built-in runtime"
                ),
            });
        }
        let hierarchies = hierarchies()?;
        let relative = cgroups_path(parent, id);
        let mut made = RunCgroup { dirs: Vec::new() };
        for hierarchy in hierarchies {
            let mut dir = hierarchy;
            for part in Path::new(relative.trim_start_matches('/')).components() {
                let parent = dir.clone();
                dir.push(part);
                match std::fs::create_dir(&dir) {
                    Ok(()) => inherit_cpuset(&parent, &dir)?,
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(Error::io("create cgroup", &dir, e)),
                }
            }
            made.dirs.push(dir);
        }
        Ok(made)
    }

    /// Moves process `pid` (and the children it makes from now on) into the run's cgroups.
    pub(crate) fn add(&self, pid: u32) -> Result<()> {
        for dir in &self.dirs {
            let procs = dir.join("cgroup.procs");
            std::fs::write(&procs, pid.to_string())
                .map_err(|e| Error::io("move the sandbox into", &procs, e))?;
        }
        Ok(())
    }
}

impl Drop for RunCgroup {
    fn drop(&mut self) {
        // The run's processes are gone, but the kernel may take a moment to notice.
        for dir in self.dirs.iter().rev() {
            for _ in 0..50 {
                match std::fs::remove_dir(dir) {
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                        std::thread::sleep(std::time::Duration::from_millis(20));
                    }
                    _ => break,
                }
            }
        }
    }
}

/// A new v1 `cpuset` cgroup starts with no CPUs and no memory nodes, and no process may
/// join it until it has some: it gets its parent's, as runc gives them.
fn inherit_cpuset(parent: &Path, dir: &Path) -> Result<()> {
    for file in ["cpuset.cpus", "cpuset.mems"] {
        let mine = dir.join(file);
        let Ok(current) = std::fs::read_to_string(&mine) else {
            continue;
        };
        if current.trim().is_empty() {
            let from = parent.join(file);
            let value = std::fs::read_to_string(&from).map_err(|e| Error::io("read", &from, e))?;
            std::fs::write(&mine, value.trim()).map_err(|e| Error::io("write", &mine, e))?;
        }
    }
    Ok(())
}

/// The unified hierarchy when `/sys/fs/cgroup` is one, else every v1 hierarchy mounted in
/// it (the `cpu,cpuacct`-style links to them left out).
fn hierarchies() -> Result<Vec<PathBuf>> {
    let root = Path::new(CGROUP_ROOT);
    if root.join("cgroup.controllers").exists() {
        return Ok(vec![root.to_path_buf()]);
    }
    let entries = std::fs::read_dir(root).map_err(|e| Error::io("read", root, e))?;
    let mut found: Vec<PathBuf> = entries
        .filter_map(std::result::Result::ok)
        .filter(|entry| entry.file_type().is_ok_and(|t| t.is_dir()))
        .map(|entry| entry.path())
        .filter(|dir| dir.join("cgroup.procs").exists())
        .collect();
    found.sort();
    if found.is_empty() {
        return Err(Error::io(
            "find a cgroup hierarchy in",
            root,
            std::io::Error::from(std::io::ErrorKind::NotFound),
        ));
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroups_path_is_buildkits() {
        assert_eq!(cgroups_path("build", "c1"), "/build/hoist/c1");
        assert_eq!(cgroups_path("/a/b", "c1"), "/a/b/hoist/c1");
        assert_eq!(
            cgroups_path("system.slice:hoist:", "c1"),
            "system.slice:hoist:c1"
        );
    }
}
