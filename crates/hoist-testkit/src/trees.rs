//! What a build exported, as text to compare: every entry of a directory or a tarball, path →
//! kind, permissions, owner, size and content digest or link target. Two builds that should
//! give the same files compare equal here, and a difference names the path.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::Path;

use hoist_oci::Digest;

/// Every entry under `root` (not `root` itself), keyed by its path relative to `root`.
/// Panics on an unreadable entry: this is for tests.
pub fn dir_tree(root: &Path) -> BTreeMap<String, String> {
    let mut entries = BTreeMap::new();
    for entry in walkdir::WalkDir::new(root).min_depth(1) {
        let entry = entry.expect("walk the exported tree");
        let path = entry.path();
        let meta = path.symlink_metadata().expect("stat an exported entry");
        let kind = if meta.file_type().is_symlink() {
            let target = std::fs::read_link(path).expect("read an exported link");
            format!("link -> {}", target.display())
        } else if meta.is_dir() {
            "dir".to_owned()
        } else {
            let content = std::fs::read(path).expect("read an exported file");
            format!(
                "file {} {}",
                content.len(),
                Digest::sha256_of(&content).encoded()
            )
        };
        let relative = path.strip_prefix(root).expect("inside the root");
        entries.insert(
            relative.display().to_string(),
            format!(
                "{kind} {:o} {}:{}",
                meta.permissions().mode() & 0o7777,
                meta.uid(),
                meta.gid()
            ),
        );
    }
    entries
}

/// Every entry of the tarball at `path`, keyed by its name without `./` and trailing `/`.
/// Panics on a tarball that does not read: this is for tests.
pub fn tar_tree(path: &Path) -> BTreeMap<String, String> {
    let file = std::fs::File::open(path).expect("open the exported tarball");
    let mut archive = tar::Archive::new(file);
    let mut entries = BTreeMap::new();
    for entry in archive.entries().expect("read the exported tarball") {
        let mut entry = entry.expect("read a tar entry");
        let header = entry.header().clone();
        let name = entry
            .path()
            .expect("a tar entry's name")
            .display()
            .to_string();
        let name = name
            .trim_start_matches("./")
            .trim_end_matches('/')
            .to_owned();
        let mut content = Vec::new();
        entry
            .read_to_end(&mut content)
            .expect("read a tar entry's data");
        let link = entry
            .link_name()
            .ok()
            .flatten()
            .map(|l| l.display().to_string())
            .unwrap_or_default();
        entries.insert(
            name,
            format!(
                "{:?} {:o} {}:{} {} {} {link}",
                header.entry_type(),
                header.mode().unwrap_or(0) & 0o7777,
                header.uid().unwrap_or(0),
                header.gid().unwrap_or(0),
                content.len(),
                Digest::sha256_of(&content).encoded()
            ),
        );
    }
    entries
}
