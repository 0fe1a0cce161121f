//! Chroot-scoped path resolution: where a path from a layer lands inside a root directory.
//!
//! [`resolve_in_root`] walks a path one component at a time under `root`. `..` never climbs
//! above `root`; an absolute path starts at `root`; a symlink met on the way is read and its
//! target resolved the same way, so an absolute target (`/etc`) or one climbing out
//! (`../../..`) is taken relative to `root`, as if `root` were `/` (BuildKit's
//! `fs.RootPath` and the kernel's `openat2(RESOLVE_IN_ROOT)` behave the same).
//!
//! Written by hand because it is short and its exact semantics matter: `cap-std` refuses
//! escaping symlinks instead of clamping them, and `openat2` would force every later call to
//! be fd-relative. Extraction is single-threaded over a directory only it writes, so
//! resolving by path and then acting on the resolved path without following its final
//! component is safe: every symlink a layer creates is itself resolved here before use.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io;
use std::path::{Component, Path, PathBuf};

/// How many symlinks one resolution may follow before giving up (like Linux's `ELOOP`).
const MAX_SYMLINKS: usize = 255;

/// One step of a path still to resolve.
#[derive(Debug)]
enum Step {
    Parent,
    Name(OsString),
}

fn steps_of(path: &Path) -> impl Iterator<Item = Step> + '_ {
    path.components().filter_map(|c| match c {
        Component::Normal(name) => Some(Step::Name(name.to_owned())),
        Component::ParentDir => Some(Step::Parent),
        Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
    })
}

/// The components of `path` relative to `root` after lexical cleaning under `/`: `..` at the
/// top is dropped, absolute paths become relative. No filesystem access.
pub(crate) fn clean_relative(path: &Path) -> PathBuf {
    let mut out: Vec<OsString> = Vec::new();
    for step in steps_of(path) {
        match step {
            Step::Parent => {
                out.pop();
            }
            Step::Name(name) => out.push(name),
        }
    }
    out.iter().collect()
}

/// Resolves `path` inside `root`, following symlinks in every component but the last one
/// (whose symlink, if any, is returned as is so that callers replace it rather than write
/// through it) unless `follow_final`. The result always lies under `root`; components that
/// do not exist yet are appended verbatim.
pub(crate) fn resolve_in_root(root: &Path, path: &Path, follow_final: bool) -> io::Result<PathBuf> {
    let mut resolved: Vec<OsString> = Vec::new();
    let mut pending: VecDeque<Step> = steps_of(path).collect();
    let mut links = 0usize;
    while let Some(step) = pending.pop_front() {
        let name = match step {
            Step::Parent => {
                resolved.pop();
                continue;
            }
            Step::Name(name) => name,
        };
        resolved.push(name);
        if pending.is_empty() && !follow_final {
            break;
        }
        let here = join(root, &resolved);
        let meta = match std::fs::symlink_metadata(&here) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NOTDIR.raw_os_error()) => {
                continue
            }
            Err(e) => return Err(e),
        };
        if !meta.file_type().is_symlink() {
            continue;
        }
        links += 1;
        if links > MAX_SYMLINKS {
            return Err(io::Error::other(format!(
                "too many levels of symbolic links at {}",
                here.display()
            )));
        }
        let target = std::fs::read_link(&here)?;
        resolved.pop();
        if target.has_root() {
            resolved.clear();
        }
        for step in steps_of(&target).collect::<Vec<_>>().into_iter().rev() {
            pending.push_front(step);
        }
    }
    Ok(join(root, &resolved))
}

fn join(root: &Path, parts: &[OsString]) -> PathBuf {
    let mut out = root.to_path_buf();
    out.extend(parts);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn dot_dot_and_absolute_paths_stay_under_root() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        assert_eq!(
            resolve_in_root(r, Path::new("../../etc/passwd"), false).unwrap(),
            r.join("etc/passwd")
        );
        assert_eq!(
            resolve_in_root(r, Path::new("/etc/passwd"), false).unwrap(),
            r.join("etc/passwd")
        );
        assert_eq!(
            resolve_in_root(r, Path::new("a/../../b"), false).unwrap(),
            r.join("b")
        );
        assert_eq!(
            clean_relative(Path::new("/../a/./b/..")),
            PathBuf::from("a")
        );
    }

    #[test]
    fn symlinked_parents_resolve_relative_to_root() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        symlink("/", r.join("abs")).unwrap();
        symlink("../../../../tmp", r.join("up")).unwrap();
        std::fs::create_dir(r.join("d")).unwrap();
        symlink("d", r.join("rel")).unwrap();
        assert_eq!(
            resolve_in_root(r, Path::new("abs/etc/passwd"), false).unwrap(),
            r.join("etc/passwd")
        );
        assert_eq!(
            resolve_in_root(r, Path::new("up/x"), false).unwrap(),
            r.join("tmp/x")
        );
        assert_eq!(
            resolve_in_root(r, Path::new("rel/x"), false).unwrap(),
            r.join("d/x")
        );
        // The final component is not followed unless asked.
        assert_eq!(
            resolve_in_root(r, Path::new("rel"), false).unwrap(),
            r.join("rel")
        );
        assert_eq!(
            resolve_in_root(r, Path::new("rel"), true).unwrap(),
            r.join("d")
        );
    }

    #[test]
    fn symlink_loops_fail_instead_of_spinning() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        symlink("b", r.join("a")).unwrap();
        symlink("a", r.join("b")).unwrap();
        let err = resolve_in_root(r, Path::new("a/x"), false).unwrap_err();
        assert!(err.to_string().contains("too many levels"), "{err}");
    }
}
