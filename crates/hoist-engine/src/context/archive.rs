//! Archives as contexts: telling a tarball from a Dockerfile by its first bytes, as buildx
//! (stdin) and BuildKit's dockerui (a downloaded context) do, and unpacking one into a
//! context root after checking that no entry leaves it.

use std::io::Read as _;
use std::path::{Component, Path};

use crate::error::{Error, Result};

/// How many leading bytes decide (BuildKit reads 1024 of a download; buildx peeks 1024 of
/// stdin).
pub const HEAD_LEN: usize = 1024;

const GZIP: &[u8] = &[0x1f, 0x8b, 0x08];
const BZIP2: &[u8] = b"BZh";
const XZ: &[u8] = &[0xfd, b'7', b'z', b'X', b'Z', 0x00];
const ZSTD: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];

/// Whether a context starting with `head` is an archive to unpack rather than a Dockerfile:
/// gzip, bzip2 or xz magic, or a first block that is a tar header with a valid checksum
/// (BuildKit's and buildx's `isArchive`); zstd too, which hoist unpacks wherever it
/// unpacks the others (BuildKit's test leaves it out, so there a zstd tarball would be
/// read as a Dockerfile and fail to parse).
pub fn is_archive(head: &[u8]) -> bool {
    if [GZIP, BZIP2, XZ, ZSTD].iter().any(|m| head.starts_with(m)) {
        return true;
    }
    is_tar_header(head)
}

/// Whether the first 512 bytes are a tar header: not all zeros (the end of an archive),
/// with the checksum it records (unsigned or signed sum, as Go's reader accepts both).
fn is_tar_header(head: &[u8]) -> bool {
    let Some(block) = head.get(..512) else {
        return false;
    };
    if block.iter().all(|&b| b == 0) {
        return false;
    }
    let field = &block[148..156];
    let text: String = field
        .iter()
        .map(|&b| b as char)
        .filter(|c| c.is_ascii_digit())
        .collect();
    let Ok(recorded) = u64::from_str_radix(&text, 8) else {
        return false;
    };
    let (mut unsigned, mut signed) = (0u64, 0i64);
    for (i, &b) in block.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { b };
        unsigned += u64::from(b);
        signed += i64::from(b as i8);
    }
    recorded == unsigned || i64::try_from(recorded).is_ok_and(|r| r == signed)
}

/// Checks every entry of the archive at `path` (named `input` in errors) and unpacks it
/// into `root`. An entry whose name, hard link or relative symlink target climbs out of the
/// root is refused, as moby's `Untar` (BuildKit's unpack) refuses it.
pub(crate) fn unpack(path: &Path, root: &Path, input: &str) -> Result<()> {
    check_entries(path, input)?;
    let file = std::fs::File::open(path).map_err(Error::io("open", path))?;
    hoist_snapshot::unpack_archive(file, root, &Default::default()).map_err(|e| {
        Error::Context {
            input: input.to_owned(),
            reason: format!("cannot unpack the archive: {e}"),
        }
    })?;
    Ok(())
}

fn check_entries(path: &Path, input: &str) -> Result<()> {
    let invalid = |reason: String| Error::Context {
        input: input.to_owned(),
        reason,
    };
    let file = std::fs::File::open(path).map_err(Error::io("open", path))?;
    let reader = hoist_snapshot::decompress_archive(file)
        .map_err(|e| invalid(format!("invalid archive: {e}")))?;
    let mut archive = tar::Archive::new(reader);
    let entries = archive
        .entries()
        .map_err(|e| invalid(format!("invalid tar archive: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| invalid(format!("invalid tar archive: {e}")))?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        if climbs_out(Path::new("."), &name) {
            return Err(invalid(format!("{name:?} is outside of the context")));
        }
        let link = entry
            .link_name_bytes()
            .map(|l| String::from_utf8_lossy(l.as_ref()).into_owned());
        match (entry.header().entry_type(), link) {
            (tar::EntryType::Link, Some(target)) if climbs_out(Path::new("."), &target) => {
                return Err(invalid(format!("invalid hardlink {name:?} -> {target:?}")));
            }
            (tar::EntryType::Symlink, Some(target)) => {
                let dir = Path::new(&name).parent().unwrap_or(Path::new(""));
                if !target.starts_with('/') && climbs_out(dir, &target) {
                    return Err(invalid(format!("invalid symlink {name:?} -> {target:?}")));
                }
            }
            _ => {}
        }
        // Read to the end so that a truncated body fails here, not halfway through the unpack.
        std::io::copy(&mut entry, &mut std::io::sink())
            .map_err(|e| invalid(format!("invalid tar archive: {name}: {e}")))?;
    }
    Ok(())
}

/// Whether `rel`, taken from the directory `base` inside the root (both relative, a
/// leading `/` meaning the root), names something above the root.
fn climbs_out(base: &Path, rel: &str) -> bool {
    let mut depth: usize = 0;
    for component in base.components().chain(Path::new(rel).components()) {
        match component {
            Component::Normal(_) => depth += 1,
            Component::ParentDir if depth == 0 => return true,
            Component::ParentDir => depth -= 1,
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    false
}

/// Reads up to [`HEAD_LEN`] leading bytes of the file at `path`.
pub(crate) fn read_head(path: &Path) -> Result<Vec<u8>> {
    let file = std::fs::File::open(path).map_err(Error::io("open", path))?;
    let mut head = Vec::with_capacity(HEAD_LEN);
    file.take(HEAD_LEN as u64)
        .read_to_end(&mut head)
        .map_err(Error::io("read", path))?;
    Ok(head)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(name: &str, body: &[u8]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(body.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, name, body).unwrap();
        builder.into_inner().unwrap()
    }

    #[test]
    fn archives_are_told_from_dockerfiles_by_their_first_bytes() {
        assert!(is_archive(&tar_of("Dockerfile", b"FROM scratch\n")));
        assert!(is_archive(&[0x1f, 0x8b, 0x08, 0]));
        assert!(is_archive(b"BZh91AY"));
        assert!(is_archive(&[0xfd, b'7', b'z', b'X', b'Z', 0x00, 1]));
        assert!(is_archive(&[0x28, 0xb5, 0x2f, 0xfd, 0]));
        assert!(!is_archive(b"FROM scratch\nCOPY . /\n"));
        assert!(
            !is_archive(&[0u8; 1024]),
            "an empty tar is no archive, as in Go"
        );
        let mut bad = tar_of("a", b"x");
        bad[0] ^= 1;
        assert!(!is_archive(&bad), "a header with a wrong checksum");
        assert!(!is_archive(b"PK\x03\x04zip"));
    }

    #[test]
    fn paths_that_climb_out_are_found() {
        assert!(!climbs_out(Path::new("."), "a/../b"));
        assert!(!climbs_out(Path::new("."), "/etc/passwd"));
        assert!(climbs_out(Path::new("."), "../x"));
        assert!(climbs_out(Path::new("."), "a/../../x"));
        assert!(!climbs_out(Path::new("a/b"), "../c"));
        assert!(climbs_out(Path::new("a"), "../../c"));
    }
}
