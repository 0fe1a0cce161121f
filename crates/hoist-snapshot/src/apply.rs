//! [`apply_layer`]: unpacks a layer tar (plain, gzip or zstd) onto a directory, applying OCI
//! whiteouts, without ever writing outside that directory.
//!
//! Every entry's parent is resolved with [`crate::root_path::resolve_in_root`], so `..`,
//! absolute names and symlinked parents (even ones pointing at `/`) land inside the root.
//! The final component is never followed: whatever is there is replaced. Hardlink targets
//! are resolved the same way and must already exist inside the root. Directory modes and
//! times are set at the end, deepest first, so a read-only directory can still be filled
//! and its mtime is not disturbed by its children.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, OpenOptionsExt};
use std::path::{Path, PathBuf};

use tar::EntryType;

use crate::compression::{decompress, decompress_archive};
use crate::error::{Error, Result};
use crate::meta::{apply_meta, running_as_root, FileMeta};
use crate::root_path::{clean_relative, resolve_in_root};

/// The prefix of a whiteout file: `.wh.name` deletes `name` from the layers below.
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// The opaque marker: a directory holding it hides everything below from lower layers.
pub const WHITEOUT_OPAQUE: &str = ".wh..wh..opq";

/// How to apply a layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyOptions {
    /// Set each entry's uid/gid from the tar (needs root); otherwise files belong to the
    /// caller.
    pub preserve_ownership: bool,
    /// Create block and character devices (needs root); otherwise they are skipped and
    /// listed in [`ApplyReport::skipped`].
    pub create_devices: bool,
}

impl Default for ApplyOptions {
    /// Both on when running as root, off otherwise.
    fn default() -> Self {
        let root = running_as_root();
        Self {
            preserve_ownership: root,
            create_devices: root,
        }
    }
}

/// Something an apply left out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The entry's path in the tar.
    pub entry: String,
    /// Why it was skipped.
    pub reason: String,
}

/// What [`apply_layer`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Tar entries read (including whiteouts).
    pub entries: u64,
    /// Entries or attributes left out (devices when not root, refused xattrs, unknown types).
    pub skipped: Vec<Skipped>,
}

/// Unpacks the layer tar read from `reader` (compression detected by magic bytes) onto the
/// directory `root`, which must exist.
pub fn apply_layer(reader: impl Read, root: &Path, options: &ApplyOptions) -> Result<ApplyReport> {
    apply_tar(decompress(reader)?, root, options, false)
}

/// Unpacks an archive that `ADD` found in its sources (a tar, plain or gzip, bzip2, xz or
/// zstd: [`decompress_archive`]) into the existing directory `root`, as [`apply_layer`]
/// does, except that the archive's `./` entry is ignored: `root` keeps its owner, mode and
/// times, as moby's `Untar` (which BuildKit unpacks with) leaves an existing directory.
pub fn unpack_archive(
    reader: impl Read,
    root: &Path,
    options: &ApplyOptions,
) -> Result<ApplyReport> {
    apply_tar(decompress_archive(reader)?, root, options, true)
}

fn apply_tar(
    tar: impl Read,
    root: &Path,
    options: &ApplyOptions,
    keep_root_metadata: bool,
) -> Result<ApplyReport> {
    let mut archive = tar::Archive::new(tar);
    let mut state = Applier {
        root,
        options,
        keep_root_metadata,
        report: ApplyReport::default(),
        unpacked: HashSet::new(),
        dirs: Vec::new(),
    };
    let entries = archive
        .entries()
        .map_err(|source| Error::ReadLayer { source })?;
    for entry in entries {
        let mut entry = entry.map_err(|source| Error::ReadLayer { source })?;
        state.report.entries += 1;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        state.entry(&mut entry, &name)?;
    }
    state.finish_dirs()?;
    Ok(state.report)
}

struct Applier<'a> {
    root: &'a Path,
    options: &'a ApplyOptions,
    /// Ignore the `./` entry ([`unpack_archive`]).
    keep_root_metadata: bool,
    report: ApplyReport,
    /// Paths placed by this layer, which an opaque marker must not delete.
    unpacked: HashSet<PathBuf>,
    /// Directories whose metadata is set at the end, with their entry names.
    dirs: Vec<(PathBuf, FileMeta, String)>,
}

impl Applier<'_> {
    fn skip(&mut self, entry: &str, reason: impl Into<String>) {
        self.report.skipped.push(Skipped {
            entry: entry.to_owned(),
            reason: reason.into(),
        });
    }

    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>, name: &str) -> Result<()> {
        let raw = entry.path_bytes().into_owned();
        let rel = clean_relative(Path::new(OsStr::from_bytes(&raw)));
        let kind = entry.header().entry_type();
        // Decide what to skip before touching anything at the entry's path.
        match kind {
            EntryType::Regular
            | EntryType::Continuous
            | EntryType::GNUSparse
            | EntryType::Directory
            | EntryType::Symlink
            | EntryType::Link
            | EntryType::Fifo => {}
            EntryType::Char | EntryType::Block if self.options.create_devices => {}
            EntryType::Char | EntryType::Block => {
                self.skip(name, "device node skipped: creating devices needs root");
                return Ok(());
            }
            // Global PAX records (`git archive` writes one) carry nothing a layer applies.
            EntryType::XGlobalHeader => return Ok(()),
            other => {
                self.skip(name, format!("unsupported tar entry type {other:?}"));
                return Ok(());
            }
        }
        let Some(base) = rel.file_name().map(OsStr::to_owned) else {
            // The root itself (`./`): only its metadata can change.
            if kind == EntryType::Directory && !self.keep_root_metadata {
                let meta = read_meta(entry, name)?;
                self.dirs
                    .push((self.root.to_path_buf(), meta, name.to_owned()));
            }
            return Ok(());
        };
        let parent_rel = rel.parent().unwrap_or(Path::new(""));
        let parent = resolve_in_root(self.root, parent_rel, true)
            .map_err(Error::entry_io("resolve parent directory of", name))?;
        if let Some(hidden) = base.as_bytes().strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
            return self.whiteout(&parent, hidden, name);
        }
        std::fs::create_dir_all(&parent)
            .map_err(Error::entry_io("create parent directory of", name))?;
        let target = parent.join(&base);
        let link_source = if kind == EntryType::Link {
            let source = self.hardlink_source(&link_name(entry, name)?, name)?;
            if source == target {
                return Ok(());
            }
            Some(source)
        } else {
            None
        };
        self.clear_for(&target, kind == EntryType::Directory, name)?;
        let meta = read_meta(entry, name)?;
        let chown = self.options.preserve_ownership;
        let is_symlink = match kind {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
                    .open(&target)
                    .map_err(Error::entry_io("create file", name))?;
                io::copy(entry, &mut file).map_err(Error::entry_io("write file", name))?;
                false
            }
            EntryType::Directory => {
                // `clear_for` left either a real directory or nothing.
                if std::fs::symlink_metadata(&target).is_err() {
                    std::fs::create_dir(&target)
                        .map_err(Error::entry_io("create directory", name))?;
                }
                self.unpacked.insert(target.clone());
                self.dirs.push((target, meta, name.to_owned()));
                return Ok(());
            }
            EntryType::Symlink => {
                let link = link_name(entry, name)?;
                symlink(&link, &target).map_err(Error::entry_io("create symlink", name))?;
                true
            }
            EntryType::Link => {
                if let Some(source) = &link_source {
                    std::fs::hard_link(source, &target)
                        .map_err(Error::entry_io("create hardlink", name))?;
                }
                self.unpacked.insert(target);
                return Ok(());
            }
            EntryType::Fifo | EntryType::Char | EntryType::Block => {
                self.mknod(entry.header(), kind, &target, &meta, name)?;
                false
            }
            _ => return Ok(()),
        };
        let mut notes = Vec::new();
        apply_meta(&target, is_symlink, &meta, chown, &mut |n| notes.push(n)).map_err(
            |(action, source)| Error::EntryIo {
                entry: name.to_owned(),
                action,
                source,
            },
        )?;
        for note in notes {
            self.skip(name, note);
        }
        self.unpacked.insert(target);
        Ok(())
    }

    /// Removes what stands at `target` unless it is a directory and a directory is coming.
    fn clear_for(&self, target: &Path, is_dir: bool, name: &str) -> Result<()> {
        let existing = match std::fs::symlink_metadata(target) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::entry_io("inspect", name)(e)),
        };
        if existing.is_dir() {
            if is_dir {
                return Ok(());
            }
            std::fs::remove_dir_all(target).map_err(Error::entry_io("replace directory", name))
        } else {
            std::fs::remove_file(target).map_err(Error::entry_io("replace", name))
        }
    }

    fn whiteout(&mut self, parent: &Path, hidden: &[u8], name: &str) -> Result<()> {
        if hidden == &WHITEOUT_OPAQUE.as_bytes()[WHITEOUT_PREFIX.len()..] {
            return self.opaque(parent, name);
        }
        if hidden.is_empty() || hidden == b"." || hidden == b".." {
            return Err(Error::Entry {
                entry: name.to_owned(),
                reason: "whiteout names no file".to_owned(),
            });
        }
        let victim = parent.join(OsStr::from_bytes(hidden));
        match std::fs::symlink_metadata(&victim) {
            Ok(m) if m.is_dir() => std::fs::remove_dir_all(&victim),
            Ok(_) => std::fs::remove_file(&victim),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
        .map_err(Error::entry_io("apply whiteout", name))
    }

    /// Deletes everything under `dir` not placed by this layer.
    fn opaque(&self, dir: &Path, name: &str) -> Result<()> {
        let read = match std::fs::read_dir(dir) {
            Ok(read) => read,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::entry_io("read opaque directory", name)(e)),
        };
        for child in read {
            let child = child.map_err(Error::entry_io("read opaque directory", name))?;
            let path = child.path();
            let file_type = child
                .file_type()
                .map_err(Error::entry_io("inspect", name))?;
            if self.unpacked.contains(&path) {
                if file_type.is_dir() {
                    self.opaque(&path, name)?;
                }
            } else if file_type.is_dir() {
                std::fs::remove_dir_all(&path)
                    .map_err(Error::entry_io("apply opaque whiteout", name))?;
            } else {
                std::fs::remove_file(&path)
                    .map_err(Error::entry_io("apply opaque whiteout", name))?;
            }
        }
        Ok(())
    }

    fn hardlink_source(&self, link: &Path, name: &str) -> Result<PathBuf> {
        let rel = clean_relative(link);
        let Some(base) = rel.file_name() else {
            return Err(Error::Entry {
                entry: name.to_owned(),
                reason: format!("hardlink target {} is the root", link.display()),
            });
        };
        let parent = resolve_in_root(self.root, rel.parent().unwrap_or(Path::new("")), true)
            .map_err(Error::entry_io("resolve hardlink target of", name))?;
        let source = parent.join(base);
        match std::fs::symlink_metadata(&source) {
            Ok(m) if m.is_dir() => Err(Error::Entry {
                entry: name.to_owned(),
                reason: format!("hardlink target {} is a directory", link.display()),
            }),
            Ok(_) => Ok(source),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Error::Entry {
                entry: name.to_owned(),
                reason: format!(
                    "hardlink target {} is not in the layer root",
                    link.display()
                ),
            }),
            Err(e) => Err(Error::entry_io("inspect hardlink target of", name)(e)),
        }
    }

    fn mknod(
        &self,
        header: &tar::Header,
        kind: EntryType,
        target: &Path,
        meta: &FileMeta,
        name: &str,
    ) -> Result<()> {
        use rustix::fs::{makedev, mknodat, FileType, Mode, CWD};
        let file_type = match kind {
            EntryType::Char => FileType::CharacterDevice,
            EntryType::Block => FileType::BlockDevice,
            _ => FileType::Fifo,
        };
        let number = |v: io::Result<Option<u32>>| v.map(Option::unwrap_or_default);
        let major = number(header.device_major())
            .map_err(Error::entry_io("read device number of", name))?;
        let minor = number(header.device_minor())
            .map_err(Error::entry_io("read device number of", name))?;
        mknodat(
            CWD,
            target,
            file_type,
            Mode::from_raw_mode(meta.mode & 0o777),
            makedev(major, minor),
        )
        .map_err(|e| Error::entry_io("create device node", name)(e.into()))
    }

    fn finish_dirs(&mut self) -> Result<()> {
        let chown = self.options.preserve_ownership;
        let dirs = std::mem::take(&mut self.dirs);
        for (path, meta, name) in dirs.iter().rev() {
            let mut notes = Vec::new();
            apply_meta(path, false, meta, chown, &mut |n| notes.push(n)).map_err(
                |(action, source)| Error::EntryIo {
                    entry: name.clone(),
                    action,
                    source,
                },
            )?;
            for note in notes {
                self.skip(name, note);
            }
        }
        Ok(())
    }
}

fn link_name<R: Read>(entry: &tar::Entry<'_, R>, name: &str) -> Result<PathBuf> {
    match entry.link_name_bytes() {
        Some(bytes) if !bytes.is_empty() => Ok(PathBuf::from(OsStr::from_bytes(&bytes))),
        _ => Err(Error::Entry {
            entry: name.to_owned(),
            reason: "link entry has no target".to_owned(),
        }),
    }
}

/// The metadata a tar entry asks for: mode, owner, mtime (sub-second from PAX when present)
/// and `SCHILY.xattr.*` PAX records.
fn read_meta<R: Read>(entry: &mut tar::Entry<'_, R>, name: &str) -> Result<FileMeta> {
    let bad = |what: &str, e: io::Error| Error::Entry {
        entry: name.to_owned(),
        reason: format!("bad {what} in header: {e}"),
    };
    let header = entry.header();
    let mut meta = FileMeta {
        mode: header.mode().map_err(|e| bad("mode", e))?,
        uid: u32::try_from(header.uid().map_err(|e| bad("uid", e))?).unwrap_or(u32::MAX),
        gid: u32::try_from(header.gid().map_err(|e| bad("gid", e))?).unwrap_or(u32::MAX),
        mtime_sec: i64::try_from(header.mtime().map_err(|e| bad("mtime", e))?).unwrap_or(i64::MAX),
        mtime_nsec: 0,
        xattrs: Vec::new(),
    };
    if let Some(extensions) = entry
        .pax_extensions()
        .map_err(|e| bad("pax extensions", e))?
    {
        for ext in extensions {
            let ext = ext.map_err(|e| bad("pax record", e))?;
            let key = ext.key_bytes();
            if let Some(xattr) = key.strip_prefix(b"SCHILY.xattr.") {
                meta.xattrs.push((
                    OsString::from(OsStr::from_bytes(xattr)),
                    ext.value_bytes().to_vec(),
                ));
            } else if key == b"mtime" {
                if let Some((sec, nsec)) = parse_pax_time(ext.value_bytes()) {
                    meta.mtime_sec = sec;
                    meta.mtime_nsec = nsec;
                }
            } else if key == b"uid" || key == b"gid" {
                let value = std::str::from_utf8(ext.value_bytes())
                    .ok()
                    .and_then(|v| v.parse::<u32>().ok());
                match (key, value) {
                    (b"uid", Some(v)) => meta.uid = v,
                    (b"gid", Some(v)) => meta.gid = v,
                    _ => {}
                }
            }
        }
    }
    meta.xattrs.sort();
    Ok(meta)
}

/// Parses a PAX time (`"1700000000.123456789"`, possibly negative) into seconds and nanos.
fn parse_pax_time(value: &[u8]) -> Option<(i64, u32)> {
    let text = std::str::from_utf8(value).ok()?;
    let (sec, frac) = text.split_once('.').unwrap_or((text, ""));
    let sec: i64 = sec.parse().ok()?;
    let digits: String = frac.chars().take(9).collect();
    let nsec = if digits.is_empty() {
        0
    } else {
        digits.parse::<u32>().ok()? * 10u32.pow(9 - digits.len() as u32)
    };
    Some((sec, nsec))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_times_parse() {
        assert_eq!(parse_pax_time(b"12.5"), Some((12, 500_000_000)));
        assert_eq!(parse_pax_time(b"12"), Some((12, 0)));
        assert_eq!(parse_pax_time(b"x"), None);
    }
}
