//! Applying ownership, permissions, extended attributes and times to a path without
//! following a symlink at its final component; shared by extraction and tree copies.

use std::ffi::OsString;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use filetime::FileTime;

/// Metadata to set on one placed file.
#[derive(Debug, Clone, Default)]
pub(crate) struct FileMeta {
    /// Permission bits including setuid/setgid/sticky (`mode & 0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime_sec: i64,
    pub mtime_nsec: u32,
    /// Extended attributes, sorted by name.
    pub xattrs: Vec<(OsString, Vec<u8>)>,
}

/// What went wrong setting metadata: the failing step and its error.
pub(crate) type MetaError = (&'static str, io::Error);

/// Sets `meta` on `path`. Ownership only when `chown`; an xattr the filesystem or our
/// privileges refuse is reported through `skipped` rather than failing.
pub(crate) fn apply_meta(
    path: &Path,
    is_symlink: bool,
    meta: &FileMeta,
    chown: bool,
    skipped: &mut dyn FnMut(String),
) -> Result<(), MetaError> {
    if chown {
        std::os::unix::fs::lchown(path, Some(meta.uid), Some(meta.gid))
            .map_err(|e| ("change owner of", e))?;
    }
    for (name, value) in &meta.xattrs {
        if let Err(e) = xattr::set(path, name, value) {
            let refused = matches!(
                e.raw_os_error(),
                Some(code) if code == rustix::io::Errno::NOTSUP.raw_os_error()
                    || code == rustix::io::Errno::PERM.raw_os_error()
            );
            if refused {
                skipped(format!("xattr {} not set: {e}", name.to_string_lossy()));
            } else {
                return Err(("set extended attribute on", e));
            }
        }
    }
    if !is_symlink {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(meta.mode & 0o7777))
            .map_err(|e| ("change mode of", e))?;
    }
    let mtime = FileTime::from_unix_time(meta.mtime_sec, meta.mtime_nsec);
    filetime::set_symlink_file_times(path, mtime, mtime).map_err(|e| ("set times of", e))?;
    Ok(())
}

/// Reads the extended attributes of `path` (not following a final symlink), sorted by name.
/// A filesystem without xattr support gives none.
pub(crate) fn read_xattrs(path: &Path) -> io::Result<Vec<(OsString, Vec<u8>)>> {
    let names = match xattr::list(path) {
        Ok(names) => names,
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NOTSUP.raw_os_error()) => {
            return Ok(Vec::new())
        }
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for name in names {
        if let Some(value) = xattr::get(path, &name)? {
            out.push((name, value));
        }
    }
    out.sort();
    Ok(out)
}

/// Whether the current process runs as root (and may set ownership and make devices).
pub(crate) fn running_as_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// The owner of a file this process creates (outside a set-group-id directory, which gives
/// its own group): the effective user and group ids.
pub fn created_owner() -> (u32, u32) {
    (
        rustix::process::geteuid().as_raw(),
        rustix::process::getegid().as_raw(),
    )
}

/// Whether a file created with `mode` already has it: no set-id or sticky bit (open()
/// ignores them and a chown clears set-id) and nothing the process's umask removes.
pub fn created_with(mode: u32) -> bool {
    mode & !0o777 == 0 && umask().is_some_and(|mask| mode & mask == 0)
}

/// The process's umask, as the kernel reports it in `/proc/self/status` (reading it with
/// umask(2) would have to set it, racing with threads creating files); `None` when the
/// kernel does not say, so every mode is set explicitly. Read once: hoist never changes it.
fn umask() -> Option<u32> {
    static UMASK: std::sync::OnceLock<Option<u32>> = std::sync::OnceLock::new();
    *UMASK.get_or_init(|| {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let line = status.lines().find_map(|l| l.strip_prefix("Umask:"))?;
        u32::from_str_radix(line.trim(), 8).ok()
    })
}
