//! Where layout files go to and come from: [`LayoutSink`] (a directory or a tar stream being
//! written) and [`LayoutSource`] (a directory, or a seekable tar indexed once).
//!
//! Tar entries are written deterministically: GNU headers, mtime 0, uid/gid 0, mode 0644 for
//! files and 0755 for directories, parents before children.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::digest::{Digest, Digester};
use crate::error::{Error, Result};

fn io_err(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io {
        action,
        path,
        source,
    }
}

/// A reader that hashes and counts what passes through it.
struct HashingReader<'a> {
    inner: &'a mut dyn Read,
    digester: Digester,
}

impl Read for HashingReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.digester.update(&buf[..n]);
        Ok(n)
    }
}

fn check_blob(path: &str, expected: &Digest, size: u64, digester: Digester) -> Result<()> {
    let (actual, len) = digester.finish();
    if len != size {
        return Err(Error::SizeMismatch {
            digest: expected.to_string(),
            expected: size,
            actual: len,
        });
    }
    if actual != *expected {
        return Err(Error::DigestMismatch {
            expected: format!("{expected} ({path})"),
            actual: actual.to_string(),
        });
    }
    Ok(())
}

/// Somewhere an image layout is written to.
pub trait LayoutSink {
    /// Writes a small file (`oci-layout`, `index.json`, `manifest.json`) at `path`.
    fn write_file(&mut self, path: &str, bytes: &[u8]) -> Result<()>;

    /// Streams `size` bytes of `reader` to `path`, failing unless they hash to `expected`.
    /// A directory sink leaves nothing behind on failure; a tar sink has already written the
    /// entry, so the archive must be discarded.
    fn write_blob(
        &mut self,
        path: &str,
        expected: &Digest,
        size: u64,
        reader: &mut dyn Read,
    ) -> Result<()>;
}

/// Writes a layout into a directory; blobs go to a temporary file, are verified, then renamed.
#[derive(Debug)]
pub struct DirSink {
    root: PathBuf,
}

impl DirSink {
    /// Writes under `root`, creating it if needed.
    pub fn create(root: &Path) -> Result<Self> {
        fs::create_dir_all(root).map_err(io_err("create directory", root))?;
        Ok(Self {
            root: root.to_owned(),
        })
    }

    /// The directory written to.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn prepare(&self, path: &str) -> Result<PathBuf> {
        let full = self.root.join(path);
        if let Some(parent) = full.parent() {
            fs::create_dir_all(parent).map_err(io_err("create directory", parent))?;
        }
        Ok(full)
    }
}

impl LayoutSink for DirSink {
    fn write_file(&mut self, path: &str, bytes: &[u8]) -> Result<()> {
        let full = self.prepare(path)?;
        let tmp = full.with_extension("tmp");
        fs::write(&tmp, bytes).map_err(io_err("write", &tmp))?;
        fs::rename(&tmp, &full).map_err(io_err("rename into place", &full))
    }

    fn write_blob(
        &mut self,
        path: &str,
        expected: &Digest,
        size: u64,
        reader: &mut dyn Read,
    ) -> Result<()> {
        let full = self.prepare(path)?;
        let tmp = full.with_extension("partial");
        let mut file = fs::File::create(&tmp).map_err(io_err("create", &tmp))?;
        let mut hashing = HashingReader {
            inner: reader,
            digester: expected.digester()?,
        };
        let copied = io::copy(&mut (&mut hashing).take(size + 1), &mut file)
            .and_then(|_| file.sync_all())
            .map_err(io_err("write", &tmp));
        let checked = copied.and_then(|()| check_blob(path, expected, size, hashing.digester));
        if let Err(e) = checked {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        fs::rename(&tmp, &full).map_err(io_err("rename into place", &full))
    }
}

/// Writes a layout as a tar stream.
pub struct TarSink<W: Write> {
    builder: tar::Builder<W>,
    dirs: BTreeSet<String>,
}

impl<W: Write> std::fmt::Debug for TarSink<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TarSink").field("dirs", &self.dirs).finish()
    }
}

impl<W: Write> TarSink<W> {
    /// A tar written to `writer`.
    pub fn new(writer: W) -> Self {
        Self {
            builder: tar::Builder::new(writer),
            dirs: BTreeSet::new(),
        }
    }

    fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_size(size);
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        header
    }

    fn tar_err(path: &str) -> impl FnOnce(io::Error) -> Error + '_ {
        move |source| Error::Io {
            action: "write tar entry",
            path: PathBuf::from(path),
            source,
        }
    }

    fn parents(&mut self, path: &str) -> Result<()> {
        let mut end = 0;
        while let Some(i) = path[end..].find('/') {
            end += i + 1;
            let dir = &path[..end];
            if self.dirs.insert(dir.to_owned()) {
                let mut header = Self::header(tar::EntryType::Directory, 0o755, 0);
                self.builder
                    .append_data(&mut header, dir, io::empty())
                    .map_err(Self::tar_err(dir))?;
            }
        }
        Ok(())
    }

    /// Ends the archive and gives the writer back.
    pub fn finish(self) -> Result<W> {
        self.builder.into_inner().map_err(|source| Error::Io {
            action: "finish tar",
            path: PathBuf::new(),
            source,
        })
    }
}

impl<W: Write> LayoutSink for TarSink<W> {
    fn write_file(&mut self, path: &str, bytes: &[u8]) -> Result<()> {
        self.parents(path)?;
        let mut header = Self::header(tar::EntryType::Regular, 0o644, bytes.len() as u64);
        self.builder
            .append_data(&mut header, path, bytes)
            .map_err(Self::tar_err(path))
    }

    fn write_blob(
        &mut self,
        path: &str,
        expected: &Digest,
        size: u64,
        reader: &mut dyn Read,
    ) -> Result<()> {
        self.parents(path)?;
        let mut header = Self::header(tar::EntryType::Regular, 0o644, size);
        let mut hashing = HashingReader {
            inner: reader,
            digester: expected.digester()?,
        };
        // The header promises `size` bytes: never copy more, and fail if fewer came.
        self.builder
            .append_data(&mut header, path, (&mut hashing).take(size))
            .map_err(Self::tar_err(path))?;
        let mut extra = [0u8; 1];
        if hashing
            .inner
            .read(&mut extra)
            .map_err(Self::tar_err(path))?
            != 0
        {
            return Err(Error::SizeMismatch {
                digest: expected.to_string(),
                expected: size,
                actual: size + 1,
            });
        }
        check_blob(path, expected, size, hashing.digester)
    }
}

/// Somewhere an image layout is read from.
pub trait LayoutSource {
    /// Opens the file at `path` (relative, `/`-separated).
    fn open(&mut self, path: &str) -> Result<Box<dyn Read + '_>>;

    /// Whether a file exists at `path`.
    fn exists(&self, path: &str) -> bool;

    /// What to call this source in errors.
    fn location(&self) -> &Path;

    /// Reads the whole file at `path`.
    fn read(&mut self, path: &str) -> Result<Vec<u8>> {
        let location = self.location().join(path);
        let mut bytes = Vec::new();
        self.open(path)?
            .read_to_end(&mut bytes)
            .map_err(io_err("read", location))?;
        Ok(bytes)
    }
}

/// Reads a layout from a directory.
#[derive(Debug)]
pub struct DirSource {
    root: PathBuf,
}

impl DirSource {
    /// Reads under `root`.
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_owned(),
        }
    }
}

impl LayoutSource for DirSource {
    fn open(&mut self, path: &str) -> Result<Box<dyn Read + '_>> {
        let full = self.root.join(path);
        let file = fs::File::open(&full).map_err(io_err("open", &full))?;
        Ok(Box::new(io::BufReader::new(file)))
    }

    fn exists(&self, path: &str) -> bool {
        self.root.join(path).is_file()
    }

    fn location(&self) -> &Path {
        &self.root
    }
}

#[derive(Debug, Clone)]
enum TarEntry {
    File { offset: u64, size: u64 },
    Link(String),
}

/// Reads a layout from a seekable tar: the entries are indexed once, then files are read by
/// seeking. Symlinks and hard links inside the archive are followed (skopeo writes
/// `<id>/layer.tar` as links); nothing outside the archive is ever touched.
#[derive(Debug)]
pub struct TarSource<R> {
    reader: R,
    entries: BTreeMap<String, TarEntry>,
    label: PathBuf,
}

/// `a/./b/../c` → `a/c`; `None` when it climbs above the root.
fn normalize_path(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

impl<R: Read + Seek> TarSource<R> {
    /// Indexes the tar read from `reader`; `label` names it in errors.
    pub fn new(reader: R, label: &Path) -> Result<Self> {
        let bad = |reason: String| Error::Archive {
            format: "tar",
            path: label.to_owned(),
            reason,
        };
        let mut archive = tar::Archive::new(reader);
        let mut entries = BTreeMap::new();
        for entry in archive
            .entries_with_seek()
            .map_err(io_err("read tar", label))?
        {
            let entry = entry.map_err(io_err("read tar", label))?;
            let raw_path = entry.path().map_err(io_err("read tar", label))?;
            let raw_path = raw_path.to_string_lossy().into_owned();
            let Some(path) = normalize_path(&raw_path) else {
                return Err(bad(format!("entry {raw_path:?} climbs out of the archive")));
            };
            let kind = entry.header().entry_type();
            let value = if kind.is_file() {
                TarEntry::File {
                    offset: entry.raw_file_position(),
                    size: entry.size(),
                }
            } else if kind.is_symlink() || kind.is_hard_link() {
                let target = entry
                    .link_name()
                    .map_err(io_err("read tar", label))?
                    .map(|t| t.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let base = if kind.is_symlink() {
                    path.rsplit_once('/').map_or("", |(dir, _)| dir).to_owned()
                } else {
                    String::new()
                };
                match normalize_path(&format!("{base}/{target}")) {
                    Some(t) => TarEntry::Link(t),
                    None => {
                        return Err(bad(format!("link {raw_path:?} points out of the archive")))
                    }
                }
            } else {
                continue;
            };
            entries.insert(path, value);
        }
        Ok(Self {
            reader: archive.into_inner(),
            entries,
            label: label.to_owned(),
        })
    }

    fn resolve(&self, path: &str) -> Option<(u64, u64)> {
        let mut path = normalize_path(path)?;
        for _ in 0..16 {
            match self.entries.get(&path)? {
                TarEntry::File { offset, size } => return Some((*offset, *size)),
                TarEntry::Link(target) => path = target.clone(),
            }
        }
        None
    }
}

impl<R: Read + Seek> LayoutSource for TarSource<R> {
    fn open(&mut self, path: &str) -> Result<Box<dyn Read + '_>> {
        let (offset, size) = self.resolve(path).ok_or_else(|| Error::Archive {
            format: "tar",
            path: self.label.clone(),
            reason: format!("no file {path:?} in the archive"),
        })?;
        self.reader
            .seek(SeekFrom::Start(offset))
            .map_err(io_err("seek in", self.label.clone()))?;
        Ok(Box::new((&mut self.reader).take(size)))
    }

    fn exists(&self, path: &str) -> bool {
        self.resolve(path).is_some()
    }

    fn location(&self) -> &Path {
        &self.label
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_path_stays_inside() {
        assert_eq!(normalize_path("./a/../b/c").as_deref(), Some("b/c"));
        assert_eq!(normalize_path("../x"), None);
    }
}
