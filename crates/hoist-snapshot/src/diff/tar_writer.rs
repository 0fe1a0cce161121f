//! Writes [`Change`]s as tar entries with fixed, reproducible headers.
//!
//! USTAR headers carry mode (`& 0o7777`), uid, gid, whole-second mtime, size, type, link
//! name and device numbers; user and group names stay empty and there is no atime or ctime.
//! A PAX extended header (`x`) comes first when a name or link target does not fit, an id
//! does not fit in octal, or the entry has xattrs (`SCHILY.xattr.*`), its records sorted by
//! key and itself named `dir/PaxHeaders.0/base`, as Go's `archive/tar` writes them. Directory names end in `/`. The second and later names of a hardlinked inode are
//! written as hardlinks to the first name in tar order.
//!
//! The header bytes are assembled by hand on top of `tar::Header` because `tar` 0.4 writes
//! long names as GNU `././@LongLink` entries and has no PAX writer, and we want the exact
//! layout Go's `archive/tar` (and so BuildKit) produces.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::{self, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use tar::{EntryType, Header};

use super::{Change, DiffStats};
use crate::apply::{WHITEOUT_OPAQUE, WHITEOUT_PREFIX};
use crate::error::{Error, Result};
use crate::meta::read_xattrs;

/// How much of a file is read at once: large reads, so a file of gigabytes costs few
/// system calls and the layer's writer gets whole chunks.
const CONTENT_BUFFER: usize = 1 << 20;

/// Files from this size on are read on a thread of their own while the layer is written.
const READ_AHEAD_FROM: u64 = 8 << 20;

/// The largest id USTAR's 8-byte octal field holds.
const MAX_OCTAL_ID: u64 = 0o7777777;

/// Xattrs that belong to overlayfs itself, never to a layer.
pub(super) fn is_overlay_xattr(name: &[u8]) -> bool {
    name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay.")
}

pub(crate) fn write_changes(changes: &[Change], out: impl Write) -> Result<DiffStats> {
    let mut writer = TarWriter {
        out,
        links: HashMap::new(),
        stats: DiffStats::default(),
        buffer: Vec::new(),
    };
    for change in changes {
        match change {
            Change::Add { rel, disk } => writer.add(rel, disk)?,
            Change::Whiteout { rel } => {
                let name = rel.file_name().unwrap_or_default();
                let mut marker = OsStr::new(WHITEOUT_PREFIX).to_os_string();
                marker.push(name);
                writer.marker(&rel.with_file_name(marker))?;
            }
            Change::Opaque { rel } => writer.marker(&rel.join(WHITEOUT_OPAQUE))?,
        }
    }
    writer.finish()
}

struct TarWriter<W: Write> {
    out: W,
    /// `(dev, ino)` of hardlinked files already written, with their tar names.
    links: HashMap<(u64, u64), Vec<u8>>,
    stats: DiffStats,
    /// Where file contents pass through ([`read_chunk`]), kept from one file to the next.
    buffer: Vec<u8>,
}

impl<W: Write> TarWriter<W> {
    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.out
            .write_all(bytes)
            .map_err(|source| Error::WriteLayer { source })
    }

    fn pad(&mut self, len: u64) -> Result<()> {
        let rem = (len % 512) as usize;
        if rem != 0 {
            self.write(&[0u8; 512][..512 - rem])?;
        }
        Ok(())
    }

    /// A whiteout or opaque marker: an empty regular file, mode 0, owned by root, mtime 0.
    fn marker(&mut self, rel: &Path) -> Result<()> {
        let mut header = Header::new_ustar();
        header.set_entry_type(EntryType::Regular);
        header.set_mode(0);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_size(0);
        self.header(header, rel.as_os_str().as_bytes(), None, Vec::new(), rel)?;
        self.stats.deleted += 1;
        Ok(())
    }

    fn add(&mut self, rel: &Path, disk: &Path) -> Result<()> {
        let meta = std::fs::symlink_metadata(disk).map_err(Error::io("read metadata of", disk))?;
        let file_type = meta.file_type();
        let mut header = Header::new_ustar();
        header.set_mode(meta.mode() & 0o7777);
        header.set_mtime(u64::try_from(meta.mtime()).unwrap_or(0));
        header.set_size(0);
        let mut pax: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        for (key, id) in [
            ("uid", u64::from(meta.uid())),
            ("gid", u64::from(meta.gid())),
        ] {
            let field = if id > MAX_OCTAL_ID {
                pax.push((key.as_bytes().to_vec(), id.to_string().into_bytes()));
                0
            } else {
                id
            };
            if key == "uid" {
                header.set_uid(field);
            } else {
                header.set_gid(field);
            }
        }
        let mut name = rel.as_os_str().as_bytes().to_vec();
        let mut link: Option<Vec<u8>> = None;
        let mut content: Option<u64> = None;
        let hardlink_key = (meta.dev(), meta.ino());
        if file_type.is_dir() {
            header.set_entry_type(EntryType::Directory);
            name.push(b'/');
        } else if let Some(first) = (meta.nlink() > 1)
            .then(|| self.links.get(&hardlink_key))
            .flatten()
        {
            header.set_entry_type(EntryType::Link);
            link = Some(first.clone());
        } else if file_type.is_file() {
            header.set_entry_type(EntryType::Regular);
            header.set_size(meta.size());
            content = Some(meta.size());
        } else if file_type.is_symlink() {
            header.set_entry_type(EntryType::Symlink);
            let target = std::fs::read_link(disk).map_err(Error::io("read symlink", disk))?;
            link = Some(target.into_os_string().into_vec());
        } else if file_type.is_char_device() || file_type.is_block_device() {
            header.set_entry_type(if file_type.is_char_device() {
                EntryType::Char
            } else {
                EntryType::Block
            });
            let dev = meta.rdev();
            let unrepresentable = |e: io::Error| Error::Unrepresentable {
                path: disk.to_path_buf(),
                reason: e.to_string(),
            };
            header
                .set_device_major(rustix::fs::major(dev))
                .map_err(unrepresentable)?;
            header
                .set_device_minor(rustix::fs::minor(dev))
                .map_err(unrepresentable)?;
        } else if file_type.is_fifo() {
            header.set_entry_type(EntryType::Fifo);
        } else {
            // A socket (say a gpg-agent's, left by a RUN step) means nothing once its
            // process is gone; like containerd and moby, leave it out of the layer.
            return Ok(());
        }
        if !file_type.is_dir() && meta.nlink() > 1 && !self.links.contains_key(&hardlink_key) {
            self.links.insert(hardlink_key, name.clone());
        }
        if header.entry_type() != EntryType::Link {
            for (key, value) in read_xattrs(disk).map_err(Error::io("read xattrs of", disk))? {
                if !is_overlay_xattr(key.as_bytes()) {
                    let mut k = b"SCHILY.xattr.".to_vec();
                    k.extend_from_slice(key.as_bytes());
                    pax.push((k, value));
                }
            }
        }
        self.header(header, &name, link.as_deref(), pax, disk)?;
        if let Some(size) = content {
            self.content(disk, size)?;
        }
        self.stats.added += 1;
        Ok(())
    }

    /// Writes the (PAX and) USTAR header for `name` / `link`.
    fn header(
        &mut self,
        mut header: Header,
        name: &[u8],
        link: Option<&[u8]>,
        mut pax: Vec<(Vec<u8>, Vec<u8>)>,
        disk: &Path,
    ) -> Result<()> {
        let mut leading = Vec::new();
        if !set_ustar_path(&mut header, name) {
            leading.push((b"path".to_vec(), name.to_vec()));
            let short = &name[..name.len().min(100)];
            set_name_field(&mut header, short);
        }
        if let Some(link) = link {
            if link.len() > 100 {
                leading.push((b"linkpath".to_vec(), link.to_vec()));
                header
                    .set_link_name_literal(&link[..100])
                    .map_err(|e| unrepresentable(disk, e))?;
            } else {
                header
                    .set_link_name_literal(link)
                    .map_err(|e| unrepresentable(disk, e))?;
            }
        }
        leading.append(&mut pax);
        // Sorted by key, as Go's archive/tar writes them.
        leading.sort();
        if !leading.is_empty() {
            self.pax(name, &leading)?;
        }
        header.set_cksum();
        self.write(header.as_bytes())
    }

    fn pax(&mut self, name: &[u8], records: &[(Vec<u8>, Vec<u8>)]) -> Result<()> {
        let mut body = Vec::new();
        for (key, value) in records {
            body.extend_from_slice(&pax_record(key, value));
        }
        let mut header = Header::new_ustar();
        header.set_entry_type(EntryType::XHeader);
        header.set_mode(0);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_size(body.len() as u64);
        // `dir/PaxHeaders.0/base`, cut to 100 bytes, as Go's archive/tar names it.
        let split = name.iter().rposition(|&b| b == b'/').map_or(0, |i| i + 1);
        let (dir, base) = if split == name.len() {
            // A directory `a/b/`: Go's path.Split gives ("a/b/", "").
            (name, &b""[..])
        } else {
            name.split_at(split)
        };
        let mut pax_name = dir.to_vec();
        pax_name.extend_from_slice(b"PaxHeaders.0");
        if !base.is_empty() {
            pax_name.push(b'/');
            pax_name.extend_from_slice(base);
        }
        pax_name.truncate(100);
        set_name_field(&mut header, &pax_name);
        header.set_cksum();
        self.write(header.as_bytes())?;
        self.write(&body)?;
        self.pad(body.len() as u64)
    }

    fn content(&mut self, disk: &Path, size: u64) -> Result<()> {
        let file = std::fs::File::open(disk).map_err(Error::io("open", disk))?;
        let copied = if size >= READ_AHEAD_FROM {
            self.content_read_ahead(file, disk, size)?
        } else {
            self.content_here(file, disk, size)?
        };
        if copied != size {
            return Err(Error::Unrepresentable {
                path: disk.to_path_buf(),
                reason: format!("file shrank from {size} to {copied} bytes while being read"),
            });
        }
        self.pad(size)
    }

    /// Copies up to `size` bytes of `file` into the layer; returns how many there were.
    fn content_here(&mut self, mut file: std::fs::File, disk: &Path, size: u64) -> Result<u64> {
        let mut copied = 0u64;
        while copied < size {
            let n = read_chunk(&mut file, size - copied, &mut self.buffer)
                .map_err(Error::io("read", disk))?;
            if n == 0 {
                break;
            }
            self.out
                .write_all(&self.buffer)
                .map_err(|source| Error::WriteLayer { source })?;
            copied += n as u64;
        }
        Ok(copied)
    }

    /// [`Self::content_here`] for a large file, read on a thread of its own: the reads
    /// overlap the layer's hashing and compression instead of alternating with them.
    fn content_read_ahead(&mut self, file: std::fs::File, disk: &Path, size: u64) -> Result<u64> {
        let (to_layer, chunks) = std::sync::mpsc::sync_channel::<io::Result<Vec<u8>>>(2);
        let (give_back, recycled) = std::sync::mpsc::sync_channel::<Vec<u8>>(4);
        std::thread::scope(|scope| {
            scope.spawn(move || read_chunks(file, size, &to_layer, &recycled));
            let mut copied = 0u64;
            for chunk in chunks {
                let chunk = chunk.map_err(Error::io("read", disk))?;
                self.out
                    .write_all(&chunk)
                    .map_err(|source| Error::WriteLayer { source })?;
                copied += chunk.len() as u64;
                let _ = give_back.try_send(chunk);
            }
            Ok(copied)
        })
    }

    fn finish(mut self) -> Result<DiffStats> {
        self.write(&[0u8; 1024])?;
        self.out
            .flush()
            .map_err(|source| Error::WriteLayer { source })?;
        Ok(self.stats)
    }
}

/// The reading thread of [`TarWriter::content_read_ahead`]: `file`'s first `size` bytes in
/// chunks, until the end, an error, or the layer side hanging up (its write failed).
fn read_chunks(
    mut file: std::fs::File,
    size: u64,
    to_layer: &std::sync::mpsc::SyncSender<io::Result<Vec<u8>>>,
    recycled: &std::sync::mpsc::Receiver<Vec<u8>>,
) {
    let mut left = size;
    while left > 0 {
        let mut chunk = recycled.try_recv().unwrap_or_default();
        let message = match read_chunk(&mut file, left, &mut chunk) {
            Ok(0) => return,
            Ok(n) => {
                left -= n as u64;
                Ok(chunk)
            }
            Err(e) => Err(e),
        };
        let failed = message.is_err();
        if to_layer.send(message).is_err() || failed {
            return;
        }
    }
}

/// Replaces `chunk`'s bytes with the next bytes of `file`, in one read of at most
/// [`CONTENT_BUFFER`] and at most `left`; returns how many (0 at the end of the file).
///
/// One read: `Read::read_to_end` would start each chunk with 8 KiB reads and double them.
fn read_chunk(file: &mut std::fs::File, left: u64, chunk: &mut Vec<u8>) -> io::Result<usize> {
    // A no-op for a recycled chunk that was filled: only a short read's tail is zeroed again.
    chunk.resize(left.min(CONTENT_BUFFER as u64) as usize, 0);
    loop {
        match file.read(chunk) {
            Ok(n) => {
                chunk.truncate(n);
                return Ok(n);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

fn unrepresentable(disk: &Path, e: io::Error) -> Error {
    Error::Unrepresentable {
        path: disk.to_path_buf(),
        reason: e.to_string(),
    }
}

/// One PAX record: `"<len> <key>=<value>\n"`, where `<len>` counts the whole record.
fn pax_record(key: &[u8], value: &[u8]) -> Vec<u8> {
    let rest = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = rest + 1;
    while len.to_string().len() + rest > len {
        len += 1;
    }
    let mut out = len.to_string().into_bytes();
    out.push(b' ');
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
    out
}

fn set_name_field(header: &mut Header, name: &[u8]) {
    if let Some(ustar) = header.as_ustar_mut() {
        ustar.name = [0; 100];
        ustar.name[..name.len()].copy_from_slice(name);
    }
}

/// Puts `name` into the USTAR name (100 bytes) or prefix (155) + name fields, splitting at a
/// `/`. False when it does not fit.
fn set_ustar_path(header: &mut Header, name: &[u8]) -> bool {
    let Some(ustar) = header.as_ustar_mut() else {
        return false;
    };
    if name.len() <= 100 {
        ustar.name = [0; 100];
        ustar.name[..name.len()].copy_from_slice(name);
        return true;
    }
    // Split at the last '/' that leaves a prefix of at most 155 and a rest of at most 100,
    // not counting a trailing '/'.
    let search = name.strip_suffix(b"/").unwrap_or(name);
    for (i, &b) in search.iter().enumerate().rev() {
        if b != b'/' {
            continue;
        }
        let (prefix, rest) = (&name[..i], &name[i + 1..]);
        if prefix.len() <= 155 && rest.len() <= 100 && !rest.is_empty() {
            ustar.prefix = [0; 155];
            ustar.prefix[..prefix.len()].copy_from_slice(prefix);
            ustar.name = [0; 100];
            ustar.name[..rest.len()].copy_from_slice(rest);
            return true;
        }
        if prefix.len() <= 155 {
            break;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_record_length_counts_itself() {
        assert_eq!(pax_record(b"path", b"a"), b"9 path=a\n".to_vec());
        assert_eq!(pax_record(b"path", b"abc"), b"12 path=abc\n".to_vec());
        let long = vec![b'x'; 95];
        let rec = pax_record(b"path", &long);
        let len: usize = std::str::from_utf8(&rec[..3]).unwrap().parse().unwrap();
        assert_eq!(len, rec.len());
    }

    #[test]
    fn long_names_split_into_prefix_or_need_pax() {
        let mut h = Header::new_ustar();
        let name = format!("{}/{}", "d".repeat(120), "f".repeat(50));
        assert!(set_ustar_path(&mut h, name.as_bytes()));
        assert_eq!(h.path_bytes().as_ref(), name.as_bytes());
        let mut h = Header::new_ustar();
        assert!(!set_ustar_path(&mut h, "x".repeat(200).as_bytes()));
    }
}
