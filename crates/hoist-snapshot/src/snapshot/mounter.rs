//! [`Mounter`]: the kernel calls the overlay snapshotter makes, behind a trait so its logic
//! is tested without root; [`KernelMounter`] makes them for real with `rustix`.

use std::path::{Path, PathBuf};

use rustix::mount::{MountFlags, UnmountFlags};

use crate::error::{Error, Result};

/// An overlay filesystem to mount: lower layers top-most first, and for a writable mount
/// an upper and a work directory on the same filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverlayMount {
    /// Lower directories, the top-most (highest priority) first.
    pub lower: Vec<PathBuf>,
    /// The writable upper directory; `None` for a read-only view.
    pub upper: Option<PathBuf>,
    /// overlayfs's work directory; set exactly when `upper` is.
    pub work: Option<PathBuf>,
}

impl OverlayMount {
    /// The mount data string: `lowerdir=a:b`, plus for a writable mount
    /// `,upperdir=u,workdir=w,index=off,redirect_dir=off,metacopy=off`.
    ///
    /// A writable mount turns off the features that would make its upper directory an
    /// incomplete record of the change (renamed directories as redirect xattrs, metadata-only
    /// copy-ups), whatever the kernel's defaults, so the upper directory can be diffed as is.
    pub fn options(&self) -> Result<String> {
        let mut all = self
            .lower
            .iter()
            .chain(self.upper.iter())
            .chain(self.work.iter());
        if let Some(bad) = all.find(|p| {
            let s = p.as_os_str().as_encoded_bytes();
            s.contains(&b',') || s.contains(&b':') || std::str::from_utf8(s).is_err()
        }) {
            return Err(Error::Unsupported(format!(
                "overlay directory {} contains ',' or ':' or is not UTF-8",
                bad.display()
            )));
        }
        let lower: Vec<String> = self.lower.iter().map(|p| p.display().to_string()).collect();
        let mut out = format!("lowerdir={}", lower.join(":"));
        if let (Some(upper), Some(work)) = (&self.upper, &self.work) {
            out.push_str(&format!(
                ",upperdir={},workdir={},index=off,redirect_dir=off,metacopy=off",
                upper.display(),
                work.display()
            ));
        }
        Ok(out)
    }
}

/// Mounting and unmounting overlays.
pub trait Mounter: std::fmt::Debug + Send + Sync {
    /// Mounts `overlay` at `target` (read-only when it has no upper directory).
    fn mount_overlay(&self, overlay: &OverlayMount, target: &Path) -> Result<()>;
    /// Unmounts `target`.
    fn unmount(&self, target: &Path) -> Result<()>;
}

/// The real kernel: `mount(2)` / `umount2(2)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct KernelMounter;

impl Mounter for KernelMounter {
    fn mount_overlay(&self, overlay: &OverlayMount, target: &Path) -> Result<()> {
        let data = overlay.options()?;
        let data = std::ffi::CString::new(data).map_err(|e| Error::Unsupported(e.to_string()))?;
        let flags = if overlay.upper.is_none() {
            MountFlags::RDONLY
        } else {
            MountFlags::empty()
        };
        rustix::mount::mount("overlay", target, "overlay", flags, Some(data.as_c_str())).map_err(
            |e| Error::Mount {
                action: "mount overlay on",
                target: target.to_path_buf(),
                source: e.into(),
            },
        )
    }

    /// Retries while the mount is busy, as containerd does (50 times, 50 ms apart): a
    /// process that still holds it for a moment (a child forked by another thread before
    /// its exec closes the descriptors, a command exiting) lets go of it soon.
    fn unmount(&self, target: &Path) -> Result<()> {
        let mut attempts = 0;
        loop {
            match rustix::mount::unmount(target, UnmountFlags::empty()) {
                Ok(()) => return Ok(()),
                Err(rustix::io::Errno::BUSY) if attempts < 50 => {
                    attempts += 1;
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(e) => {
                    return Err(Error::Mount {
                        action: "unmount",
                        target: target.to_path_buf(),
                        source: e.into(),
                    })
                }
            }
        }
    }
}
