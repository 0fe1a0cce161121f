//! The directory walk of fsutil's sender: which entries of a directory are sent, in which
//! order and with which metadata.
//!
//! Order: depth first, each directory's entries sorted by name bytewise (Go's
//! `filepath.Walk`), a directory before its entries; the root itself is not sent. Filters as
//! fsutil's: `include-patterns` (plus the targets of `followpaths`, symlinks resolved) and
//! `exclude-patterns`, both moby/patternmatcher patterns; a directory that is filtered out
//! is still walked when a pattern could match below it, and then sent only once something
//! inside it is. Metadata: Go's `os.FileMode` bits, uid/gid, size, mtime in ns, symlink
//! targets, device numbers, xattrs; the second and later paths of a hardlinked file carry
//! the first path as linkname and size 0.

use std::collections::{BTreeSet, HashMap};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use hoist_dockerfile::dockerignore::{MatchInfo, PatternMatcher};
use hoist_proto::fsutil_types::Stat;

/// Go's `os.FileMode` type bits.
pub mod mode {
    /// `os.ModeDir`.
    pub const DIR: u32 = 1 << 31;
    /// `os.ModeSymlink`.
    pub const SYMLINK: u32 = 1 << 27;
    /// `os.ModeDevice`.
    pub const DEVICE: u32 = 1 << 26;
    /// `os.ModeNamedPipe`.
    pub const NAMED_PIPE: u32 = 1 << 25;
    /// `os.ModeSocket`.
    pub const SOCKET: u32 = 1 << 24;
    /// `os.ModeSetuid`.
    pub const SETUID: u32 = 1 << 23;
    /// `os.ModeSetgid`.
    pub const SETGID: u32 = 1 << 22;
    /// `os.ModeCharDevice`.
    pub const CHAR_DEVICE: u32 = 1 << 21;
    /// `os.ModeSticky`.
    pub const STICKY: u32 = 1 << 20;
    /// `os.ModeIrregular`.
    pub const IRREGULAR: u32 = 1 << 19;
    /// Every type bit (`os.ModeType`): a mode without them is a regular file.
    pub const TYPE: u32 = DIR | SYMLINK | NAMED_PIPE | SOCKET | DEVICE | CHAR_DEVICE | IRREGULAR;

    /// A Unix `st_mode` as Go's `os.FileMode`.
    pub fn from_unix(st_mode: u32) -> u32 {
        let mut mode = st_mode & 0o777;
        mode |= match st_mode & 0o170_000 {
            0o040_000 => DIR,
            0o120_000 => SYMLINK,
            0o060_000 => DEVICE,
            0o020_000 => DEVICE | CHAR_DEVICE,
            0o010_000 => NAMED_PIPE,
            0o140_000 => SOCKET,
            _ => 0,
        };
        if st_mode & 0o4000 != 0 {
            mode |= SETUID;
        }
        if st_mode & 0o2000 != 0 {
            mode |= SETGID;
        }
        if st_mode & 0o1000 != 0 {
            mode |= STICKY;
        }
        mode
    }

    /// Go's `os.FileMode` as Unix permission bits (with setuid, setgid, sticky).
    pub fn to_unix_permissions(mode: u32) -> u32 {
        let mut bits = mode & 0o777;
        if mode & SETUID != 0 {
            bits |= 0o4000;
        }
        if mode & SETGID != 0 {
            bits |= 0o2000;
        }
        if mode & STICKY != 0 {
            bits |= 0o1000;
        }
        bits
    }
}

/// The filters a `DiffCopy` call asks for (its metadata).
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// `include-patterns`.
    pub include: Vec<String>,
    /// `exclude-patterns`.
    pub exclude: Vec<String>,
    /// `followpaths`: paths whose symlinks are resolved and whose targets are included.
    pub follow: Vec<String>,
}

/// One entry to send: its stat and, for a regular file, where to read its bytes.
#[derive(Debug, Clone)]
pub struct Entry {
    /// What is sent.
    pub stat: Stat,
    /// The file's path on this machine when its data can be requested.
    pub data: Option<PathBuf>,
}

/// Why a walk failed.
#[derive(Debug, thiserror::Error)]
pub enum WalkError {
    /// A file system error on a path.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A pattern that does not parse.
    #[error("invalid {which} {patterns:?}: {source}")]
    Pattern {
        /// `include-patterns` or `exclude-patterns`.
        which: &'static str,
        /// The patterns.
        patterns: Vec<String>,
        /// The error.
        source: hoist_dockerfile::Error,
    },
    /// A name that is not UTF-8 (the wire format's paths are strings).
    #[error("{0}: the file name is not UTF-8")]
    Name(PathBuf),
    /// The receiver went away.
    #[error("the receiver closed the stream")]
    Closed,
}

struct Matcher {
    patterns: PatternMatcher,
    /// Whether every (non-exclusion, for includes; exclusion, for excludes) pattern is a
    /// plain path, so a directory no such path lies under need not be walked.
    only_prefixes: bool,
}

impl Matcher {
    fn new(
        which: &'static str,
        patterns: &[String],
        counted: bool,
    ) -> Result<Option<Self>, WalkError> {
        if patterns.is_empty() {
            return Ok(None);
        }
        let matcher = PatternMatcher::new(patterns).map_err(|source| WalkError::Pattern {
            which,
            patterns: patterns.to_vec(),
            source,
        })?;
        let only_prefixes = !matcher.patterns().iter().any(|p| {
            p.is_exclusion() == counted && without_trailing_glob(p.as_str()).contains(GLOB_CHARS)
        });
        Ok(Some(Matcher {
            patterns: matcher,
            only_prefixes,
        }))
    }

    /// Whether one of the patterns (exclusions when `exclusions`) names a path under `dir`.
    fn may_match_below(&self, dir: &str, exclusions: bool) -> bool {
        let dir_slash = format!("{dir}/");
        self.patterns.patterns().iter().any(|p| {
            p.is_exclusion() == exclusions
                && format!("{}/", without_trailing_glob(p.as_str())).starts_with(&dir_slash)
        })
    }
}

const GLOB_CHARS: &[char] = &['*', '[', ']', '?', '^', '\\'];

fn without_trailing_glob(pattern: &str) -> &str {
    let pattern = pattern.strip_suffix("/**").unwrap_or(pattern);
    pattern.strip_suffix("/*").unwrap_or(pattern)
}

/// A directory being walked, sent only once something in it is.
struct Pending {
    rel: String,
    stat: Stat,
    sent: bool,
    include: MatchInfo,
    exclude: MatchInfo,
}

struct Walker<F> {
    include: Option<Matcher>,
    exclude: Option<Matcher>,
    inodes: HashMap<u64, String>,
    emit: F,
}

/// Walks `root` with `filter`, calling `emit` for each entry in fsutil's order; an error
/// from `emit` stops the walk.
pub fn walk<F>(root: &Path, filter: &Filter, emit: F) -> Result<(), WalkError>
where
    F: FnMut(Entry) -> Result<(), WalkError>,
{
    let mut include = filter.include.clone();
    if !filter.follow.is_empty() {
        let mut resolved = BTreeSet::new();
        for path in &filter.follow {
            follow_links(root, path, &mut resolved, 0)?;
        }
        include.extend(resolved);
        let mut seen = BTreeSet::new();
        include.retain(|p| seen.insert(p.clone()));
    }
    let mut walker = Walker {
        include: Matcher::new("include-patterns", &include, false)?,
        exclude: Matcher::new("exclude-patterns", &filter.exclude, true)?,
        inodes: HashMap::new(),
        emit,
    };
    let mut parents = Vec::new();
    walker.dir("", root, &mut parents)
}

impl<F> Walker<F>
where
    F: FnMut(Entry) -> Result<(), WalkError>,
{
    fn dir(&mut self, rel: &str, abs: &Path, parents: &mut Vec<Pending>) -> Result<(), WalkError> {
        let io = |source| WalkError::Io {
            path: abs.to_owned(),
            source,
        };
        let mut children = Vec::new();
        for entry in std::fs::read_dir(abs).map_err(io)? {
            let entry = entry.map_err(io)?;
            let name = (entry.file_name().into_string())
                .map_err(|name| WalkError::Name(abs.join(name)))?;
            children.push((name, entry));
        }
        children.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        for (name, entry) in children {
            let child_rel = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            let child_abs = abs.join(&name);
            // Through the directory's handle: the kernel resolves one name, not the path.
            let meta = match entry.metadata() {
                Ok(meta) => meta,
                // Removed since the directory was read: as fsutil, skipped.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => {
                    return Err(WalkError::Io {
                        path: child_abs,
                        source,
                    })
                }
            };
            let is_dir = meta.is_dir();
            let mut skip = false;
            let mut include_info = MatchInfo::default();
            if let Some(include) = &self.include {
                let parent_include = parents.last().map(|p| &p.include);
                let (matched, info) = include
                    .patterns
                    .matches_using_parent_results(
                        &child_rel,
                        parent_include.unwrap_or(&MatchInfo::default()),
                    )
                    .map_err(|source| WalkError::Pattern {
                        which: "include-patterns",
                        patterns: Vec::new(),
                        source,
                    })?;
                include_info = info;
                if !matched {
                    if is_dir
                        && include.only_prefixes
                        && !include.may_match_below(&child_rel, false)
                    {
                        continue;
                    }
                    skip = true;
                }
            }
            let mut exclude_info = MatchInfo::default();
            if let Some(exclude) = &self.exclude {
                let parent_exclude = parents.last().map(|p| &p.exclude);
                let (matched, info) = exclude
                    .patterns
                    .matches_using_parent_results(
                        &child_rel,
                        parent_exclude.unwrap_or(&MatchInfo::default()),
                    )
                    .map_err(|source| WalkError::Pattern {
                        which: "exclude-patterns",
                        patterns: Vec::new(),
                        source,
                    })?;
                exclude_info = info;
                if matched {
                    if is_dir
                        && exclude.only_prefixes
                        && (!exclude.patterns.exclusions()
                            || !exclude.may_match_below(&child_rel, true))
                    {
                        continue;
                    }
                    skip = true;
                }
            }
            if skip && !is_dir {
                // Not stat'ed at all, as fsutil: a skipped file is no hardlink's first path.
                continue;
            }
            let stat = self.stat(&child_rel, &child_abs, &meta)?;
            if !skip {
                for parent in parents.iter_mut().filter(|p| !p.sent) {
                    parent.sent = true;
                    (self.emit)(Entry {
                        stat: parent.stat.clone(),
                        data: None,
                    })?;
                }
                if !is_dir {
                    // Moved, not cloned: a file's stat and path are not needed below.
                    let data = (stat.mode & mode::TYPE == 0).then_some(child_abs);
                    (self.emit)(Entry { stat, data })?;
                    continue;
                }
                (self.emit)(Entry {
                    stat: stat.clone(),
                    data: None,
                })?;
            }
            if is_dir {
                parents.push(Pending {
                    rel: child_rel.clone(),
                    stat,
                    sent: !skip,
                    include: include_info,
                    exclude: exclude_info,
                });
                let result = self.dir(&child_rel, &child_abs, parents);
                let done = parents.pop();
                debug_assert_eq!(done.map(|p| p.rel), Some(child_rel));
                result?;
            }
        }
        Ok(())
    }

    fn stat(&mut self, rel: &str, abs: &Path, meta: &std::fs::Metadata) -> Result<Stat, WalkError> {
        let mut stat = stat(rel, abs, meta)?;
        if !meta.is_dir() && meta.nlink() > 1 {
            if let Some(first) = self.inodes.get(&meta.ino()) {
                // A hard-linked symlink keeps its target as linkname, as fsutil's.
                if !meta.file_type().is_symlink() {
                    stat.linkname = first.clone();
                }
                stat.size = 0;
            } else {
                self.inodes.insert(meta.ino(), rel.to_owned());
            }
        }
        Ok(stat)
    }
}

/// fsutil's `Stat` of the file at `abs` (its `meta`, not following a final symlink) under
/// the name `rel`: Go's `os.FileMode` bits, uid/gid, size (none for a directory), mtime in
/// ns, a symlink's target, device numbers, xattrs. Hard links are the walk's business.
pub fn stat(rel: &str, abs: &Path, meta: &std::fs::Metadata) -> Result<Stat, WalkError> {
    let io = |source| WalkError::Io {
        path: abs.to_owned(),
        source,
    };
    let mut stat = Stat {
        path: rel.to_owned(),
        mode: mode::from_unix(meta.mode()) & !mode::SOCKET,
        uid: meta.uid(),
        gid: meta.gid(),
        mod_time: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
        ..Stat::default()
    };
    if !meta.is_dir() {
        stat.size = meta.size() as i64;
        let kind = meta.mode() & 0o170_000;
        if kind == 0o060_000 || kind == 0o020_000 {
            let rdev = meta.rdev();
            stat.devmajor = ((rdev >> 8) & 0xfff) as i64;
            stat.devminor = ((rdev & 0xff) | ((rdev >> 12) & 0xfff00)) as i64;
        }
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(abs).map_err(io)?;
            stat.linkname = target
                .into_os_string()
                .into_string()
                .map_err(|_| WalkError::Name(abs.to_owned()))?;
        }
    }
    match xattr::list(abs) {
        Ok(names) => {
            for name in names {
                let Some(key) = name.to_str() else { continue };
                if key.starts_with("com.apple.") {
                    continue;
                }
                if let Ok(Some(value)) = xattr::get(abs, &name) {
                    stat.xattrs.insert(key.to_owned(), value);
                }
            }
        }
        Err(e) if e.raw_os_error() == Some(95) => {} // ENOTSUP
        Err(source) => return Err(io(source)),
    }
    Ok(stat)
}

/// fsutil's `FollowLinks` for one path: each symlink on the way is kept and its target
/// followed (relative to the link's directory, or to the root when absolute); a wildcard
/// in a component matches the directory's entries (`COPY sub/l*` sends `sub/l*`), and the
/// targets of the symlinks among them are followed too.
fn follow_links(
    root: &Path,
    path: &str,
    resolved: &mut BTreeSet<String>,
    depth: usize,
) -> Result<(), WalkError> {
    if depth > 255 {
        return Ok(());
    }
    let clean = clean(path);
    let parts: Vec<&str> = clean.split('/').filter(|p| !p.is_empty()).collect();
    let mut current = String::new();
    for (i, part) in parts.iter().enumerate() {
        if !current.is_empty() {
            current.push('/');
        }
        current.push_str(part);
        let rest = parts[i + 1..].join("/");
        let targets = read_symlink(root, &current, true)?;
        if (rest.is_empty() || targets.is_some()) && resolved.contains(&current) {
            return Ok(());
        }
        if let Some(targets) = targets {
            resolved.insert(current.clone());
            for target in targets {
                follow_links(root, &format!("{target}/{rest}"), resolved, depth + 1)?;
            }
            return Ok(());
        }
        if rest.is_empty() {
            resolved.insert(current);
            return Ok(());
        }
    }
    Ok(())
}

/// The targets (cleaned, relative to the root) of the symlink at `rel`, or of the symlinks
/// its last component's wildcard matches; `None` when there are none.
fn read_symlink(root: &Path, rel: &str, wildcard: bool) -> Result<Option<Vec<String>>, WalkError> {
    let (dir, base) = rel.rsplit_once('/').unwrap_or(("", rel));
    if wildcard && base.contains(['*', '?', '[', '\\']) {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            return Ok(None);
        };
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort_unstable();
        let mut out = Vec::new();
        for name in names {
            if hoist_dockerfile::go_glob::matches(base, &name).unwrap_or(false) {
                let child = if dir.is_empty() {
                    name
                } else {
                    format!("{dir}/{name}")
                };
                out.extend(read_symlink(root, &child, false)?.unwrap_or_default());
            }
        }
        return Ok((!out.is_empty()).then_some(out));
    }
    let abs = root.join(rel);
    match std::fs::symlink_metadata(&abs) {
        Ok(meta) if meta.file_type().is_symlink() => {}
        _ => return Ok(None),
    }
    let link = std::fs::read_link(&abs).map_err(|source| WalkError::Io { path: abs, source })?;
    let link = link.to_string_lossy();
    let target = if link.starts_with('/') {
        clean(&link)
    } else {
        clean(&format!("{dir}/{link}"))
    };
    Ok(Some(vec![target]))
}

/// A slash-separated path cleaned as Go's `filepath.Join("/", path)`, without the leading
/// slash: no empty, `.` or `..` components (`..` stops at the root).
fn clean(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    parts.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(root: &Path, filter: &Filter) -> Vec<String> {
        let mut out = Vec::new();
        walk(root, filter, |e| {
            out.push(e.stat.path);
            Ok(())
        })
        .unwrap();
        out
    }

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::write(root.join("a/b/c.txt"), "c").unwrap();
        std::fs::write(root.join("a.txt"), "a").unwrap();
        std::fs::write(root.join("a/x"), "x").unwrap();
        std::fs::write(root.join("Dockerfile"), "FROM scratch\n").unwrap();
        std::os::unix::fs::symlink("a/x", root.join("link")).unwrap();
        std::fs::hard_link(root.join("a/x"), root.join("z")).unwrap();
        dir
    }

    #[test]
    fn walk_order_is_depth_first_sorted_by_bytes() {
        let dir = tree();
        assert_eq!(
            paths(dir.path(), &Filter::default()),
            [
                "Dockerfile",
                "a",
                "a/b",
                "a/b/c.txt",
                "a/x",
                "a.txt",
                "link",
                "z"
            ]
        );
    }

    #[test]
    fn stats_carry_go_modes_links_and_hardlinks() {
        let dir = tree();
        let mut stats = HashMap::new();
        walk(dir.path(), &Filter::default(), |e| {
            stats.insert(e.stat.path.clone(), (e.stat, e.data));
            Ok(())
        })
        .unwrap();
        let (a, data) = &stats["a"];
        assert_eq!(a.mode & mode::DIR, mode::DIR);
        assert!(data.is_none());
        let (link, data) = &stats["link"];
        assert_eq!(link.mode & mode::TYPE, mode::SYMLINK);
        assert_eq!(link.linkname, "a/x");
        assert!(data.is_none());
        let (z, data) = &stats["z"];
        assert_eq!(
            z.linkname, "a/x",
            "the second path of a hardlink names the first"
        );
        assert_eq!(z.size, 0);
        assert!(data.is_some());
        assert_eq!(stats["a/x"].0.size, 1);
        assert_eq!(stats["a/x"].0.linkname, "");
    }

    #[test]
    fn excluded_directories_and_exceptions() {
        let dir = tree();
        let filter = Filter {
            exclude: vec!["a".into(), "!a/b/c.txt".into()],
            ..Filter::default()
        };
        assert_eq!(
            paths(dir.path(), &filter),
            ["Dockerfile", "a", "a/b", "a/b/c.txt", "a.txt", "link", "z"]
        );
        let filter = Filter {
            exclude: vec!["a".into(), "*.txt".into()],
            ..Filter::default()
        };
        assert_eq!(paths(dir.path(), &filter), ["Dockerfile", "link", "z"]);
    }

    #[test]
    fn includes_send_parents_lazily_and_followpaths_resolve_links() {
        let dir = tree();
        let filter = Filter {
            include: vec!["a/b/c.txt".into()],
            ..Filter::default()
        };
        assert_eq!(paths(dir.path(), &filter), ["a", "a/b", "a/b/c.txt"]);
        let filter = Filter {
            follow: vec!["link".into()],
            ..Filter::default()
        };
        assert_eq!(paths(dir.path(), &filter), ["a", "a/x", "link"]);
        std::os::unix::fs::symlink("b/c.txt", dir.path().join("a/lc")).unwrap();
        let filter = Filter {
            follow: vec!["a/l*".into()],
            ..Filter::default()
        };
        assert_eq!(
            paths(dir.path(), &filter),
            ["a", "a/b", "a/b/c.txt", "a/lc"]
        );
        let filter = Filter {
            include: vec!["*.txt".into()],
            ..Filter::default()
        };
        assert_eq!(paths(dir.path(), &filter), ["a.txt"]);
    }
}
