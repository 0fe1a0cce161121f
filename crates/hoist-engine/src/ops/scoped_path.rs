//! Resolving a container path inside a root directory on the host, following symlinks as
//! the container would see them: an absolute link target or `..` never leaves the root.

use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};

/// Symlinks followed before giving up (Linux's `MAXSYMLINKS`).
const MAX_LINKS: usize = 40;

/// The host path of `path` (absolute or relative to `/`) inside `root`. Symlinks in the
/// parents are followed inside `root`; the last component is followed too when `follow`.
pub(crate) fn resolve(root: &Path, path: &str, follow: bool) -> Result<PathBuf> {
    let mut links = 0;
    let mut pending: Vec<String> = components(path).into_iter().rev().collect();
    let mut resolved: Vec<String> = Vec::new();
    while let Some(name) = pending.pop() {
        if name == ".." {
            resolved.pop();
            continue;
        }
        let candidate = join(root, &resolved).join(&name);
        let last = pending.is_empty();
        let meta = std::fs::symlink_metadata(&candidate);
        match meta {
            Ok(meta) if meta.file_type().is_symlink() && (!last || follow) => {
                links += 1;
                if links > MAX_LINKS {
                    return Err(Error::Io {
                        action: "resolve",
                        path: candidate,
                        source: std::io::Error::other("too many levels of symbolic links"),
                    });
                }
                let target =
                    std::fs::read_link(&candidate).map_err(Error::io("read link", &candidate))?;
                let target = target.to_string_lossy().into_owned();
                if target.starts_with('/') {
                    resolved.clear();
                }
                pending.extend(components(&target).into_iter().rev());
            }
            _ => resolved.push(name),
        }
    }
    Ok(join(root, &resolved))
}

/// `path` cleaned as a path inside the root: absolute, `.` and empty components dropped,
/// `..` removing the previous component and stopping at `/` (Go's `path.Join("/", p)`).
pub(crate) fn clean(path: &str) -> String {
    let mut parts: Vec<String> = Vec::new();
    for part in components(path) {
        if part == ".." {
            parts.pop();
        } else {
            parts.push(part);
        }
    }
    format!("/{}", parts.join("/"))
}

/// The container path of `host`, a path under `root` (`/` for the root itself).
pub(crate) fn container_path(root: &Path, host: &Path) -> String {
    let rel = host.strip_prefix(root).unwrap_or(Path::new(""));
    clean(&rel.to_string_lossy())
}

fn join(root: &Path, parts: &[String]) -> PathBuf {
    let mut path = root.to_path_buf();
    path.extend(parts);
    path
}

/// The normal components of `path` and its `..`s (`.` and roots dropped).
fn components(path: &str) -> Vec<String> {
    Path::new(path)
        .components()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(name.to_string_lossy().into_owned()),
            Component::ParentDir => Some("..".to_owned()),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_stay_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("real/sub")).unwrap();
        std::os::unix::fs::symlink("/real", root.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../..", root.join("real/up")).unwrap();
        assert_eq!(
            resolve(root, "/abs/sub", true).unwrap(),
            root.join("real/sub")
        );
        assert_eq!(
            resolve(root, "real/up/etc", true).unwrap(),
            root.join("etc")
        );
        assert_eq!(resolve(root, "/abs", false).unwrap(), root.join("abs"));
        assert_eq!(resolve(root, "/../../x", true).unwrap(), root.join("x"));
    }

    #[test]
    fn paths_are_cleaned_inside_the_root() {
        assert_eq!(clean("a//b/./c/"), "/a/b/c");
        assert_eq!(clean("/../../etc/passwd"), "/etc/passwd");
        assert_eq!(clean("a/../../b"), "/b");
        assert_eq!(clean("."), "/");
        let root = Path::new("/r");
        assert_eq!(container_path(root, Path::new("/r/a/b")), "/a/b");
        assert_eq!(container_path(root, root), "/");
    }
}
