//! The copy action (`COPY`, `ADD` of local files, heredoc files), as BuildKit's file op and
//! tonistiigi/fsutil's `copy` do it.
//!
//! - **Sources** ([`sources`]): the source path names one path, or with wildcards every
//!   match (the part before the first wildcard is resolved following symlinks, the rest is
//!   matched against real directories only). With `follow_symlinks` a source that is a
//!   symlink is followed to what it points at, always inside the source root, and is copied
//!   under its own name; symlinks *inside* a copied directory stay symlinks.
//! - **Selection** ([`Selector`]): below a source directory, `--exclude` patterns leave
//!   entries out and `--parents` include patterns keep only matching ones; a directory
//!   that does not match but holds a match is still created (BuildKit's delayed parent
//!   directories), so `COPY --parents a/*/c /out/` makes `/out/b/c` and no `/out/b2`.
//!   `required_paths` must each have been selected.
//! - **Writing**: files and symlinks replace files and symlinks at the destination,
//!   directories merge into directories, and a directory onto a file (or a symlink, even to
//!   a directory) or a file onto a directory is an error, as in BuildKit;
//!   copies get the action's owner and mode (octal, or symbolic applied to each entry's
//!   own mode); directories the copy creates for its destination get an octal mode, 0755
//!   otherwise.
//!
//! The cache key of a copy digests the same sources and selection (see `checksum`).

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use hoist_dockerfile::dockerignore::{MatchInfo, PatternMatcher};
use hoist_dockerfile::instructions::{Chmod, SymbolicMode};
use hoist_graph::FileMode;

use super::file::{chown, resolve_owner, set_mode};
use super::scoped_path;
use crate::error::{Error, Result};

/// One path a copy's source names.
#[derive(Debug)]
pub(super) struct Source {
    /// The path in the source as named or matched (`/sub/l0`), before following it.
    pub(super) path: String,
    /// Where it is on the host: the link's target inside the source root when followed.
    pub(super) host: PathBuf,
}

impl Source {
    /// The name a copy into a directory gives it: the last component as named.
    fn name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or_default()
    }
}

/// The sources of `copy` in `root` (the source input's filesystem). A path without
/// wildcards gives one source, which may not exist; a pattern gives its matches, sorted.
pub(super) fn sources(root: &Path, copy: &hoist_graph::Copy) -> Result<Vec<Source>> {
    if copy.allow_wildcard && has_wildcard(&copy.src_path) {
        expand(root, &copy.src_path, copy.follow_symlinks)
    } else {
        Ok(vec![Source {
            path: copy.src_path.clone(),
            host: scoped_path::resolve(root, &copy.src_path, copy.follow_symlinks)?,
        }])
    }
}

pub(super) use hoist_frontend::has_wildcard;

/// Every path in `root` matching `pattern`, sorted (BuildKit's `ResolveWildcards`): the
/// components before the first wildcard are resolved following symlinks inside `root`, the
/// rest are matched one by one in real directories (a symlink is matched but not entered).
/// With `follow`, matches that are symlinks are followed inside `root`.
pub(super) fn expand(root: &Path, pattern: &str, follow: bool) -> Result<Vec<Source>> {
    let clean = scoped_path::clean(pattern);
    let components: Vec<&str> = clean.split('/').filter(|c| !c.is_empty()).collect();
    let first = components
        .iter()
        .position(|c| has_wildcard(c))
        .unwrap_or(components.len());
    let prefix = format!("/{}", components[..first].join("/"));
    let base = scoped_path::resolve(root, &prefix, true)?;
    let mut current = vec![(scoped_path::container_path(root, &base), base)];
    for component in &components[first..] {
        let mut next = Vec::new();
        for (path, host) in current {
            if !host.symlink_metadata().is_ok_and(|m| m.is_dir()) {
                continue;
            }
            let parent = if path == "/" { "" } else { path.as_str() };
            if !has_wildcard(component) {
                let child = host.join(component);
                if child.symlink_metadata().is_ok() {
                    next.push((format!("{parent}/{component}"), child));
                }
                continue;
            }
            let read = std::fs::read_dir(&host).map_err(Error::io("read", &host))?;
            let mut names = read
                .map(|e| e.map(|e| e.file_name()))
                .collect::<std::io::Result<Vec<_>>>()
                .map_err(Error::io("read", &host))?;
            names.sort();
            for name in names {
                let text = name.to_string_lossy();
                let matched =
                    hoist_dockerfile::go_glob::matches(component, &text).map_err(|source| {
                        Error::SourcePattern {
                            pattern: pattern.to_owned(),
                            source,
                        }
                    })?;
                if matched {
                    next.push((format!("{parent}/{text}"), host.join(&name)));
                }
            }
        }
        current = next;
    }
    current
        .into_iter()
        .map(|(path, host)| {
            let host = if follow {
                scoped_path::resolve(root, &path, true)?
            } else {
                host
            };
            Ok(Source { path, host })
        })
        .collect()
}

/// One entry below a source directory that a copy takes.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    /// The path relative to the source directory (`/`-separated).
    pub(super) rel: String,
    pub(super) host: PathBuf,
    pub(super) meta: std::fs::Metadata,
    /// A directory taken only because something below it is: it is created if missing but
    /// an existing one is left as it is.
    pub(super) implied: bool,
}

/// Which entries below a source directory a copy takes: its include (`--parents`) and
/// exclude (`--exclude`) patterns, matched against paths relative to the source.
pub(super) struct Selector {
    includes: Option<PatternMatcher>,
    excludes: Option<PatternMatcher>,
}

impl Selector {
    pub(super) fn new(copy: &hoist_graph::Copy) -> Result<Selector> {
        let matcher = |patterns: &[String]| -> Result<Option<PatternMatcher>> {
            Ok(match patterns.is_empty() {
                true => None,
                false => Some(PatternMatcher::new(patterns)?),
            })
        };
        Ok(Selector {
            includes: matcher(&copy.include_patterns)?,
            excludes: matcher(&copy.exclude_patterns)?,
        })
    }

    /// Calls `visit` for each entry below `dir` that is taken, parents before their
    /// children and siblings by name; a directory holding a taken entry comes before it
    /// (as `implied` when not taken itself). Symlinks are not followed.
    pub(super) fn walk(
        &self,
        dir: &Path,
        visit: &mut dyn FnMut(&Entry) -> Result<()>,
    ) -> Result<()> {
        let mut pending = Vec::new();
        let none = MatchInfo::default();
        self.walk_dir(dir, "", (&none, &none), &mut pending, visit)
    }

    /// `parents` holds the directories above `dir` not yet visited (`None` once they are).
    fn walk_dir(
        &self,
        dir: &Path,
        rel: &str,
        (include_info, exclude_info): (&MatchInfo, &MatchInfo),
        parents: &mut Vec<Option<Entry>>,
        visit: &mut dyn FnMut(&Entry) -> Result<()>,
    ) -> Result<()> {
        let read = std::fs::read_dir(dir).map_err(Error::io("read", dir))?;
        let mut names = read
            .map(|e| e.map(|e| e.file_name()))
            .collect::<std::io::Result<Vec<_>>>()
            .map_err(Error::io("read", dir))?;
        names.sort();
        let exclusions = self.excludes.as_ref().is_some_and(|m| m.exclusions());
        for name in names {
            let text = name.to_string_lossy();
            let child_rel = match rel {
                "" => text.into_owned(),
                _ => format!("{rel}/{text}"),
            };
            let (included, include_info) = match &self.includes {
                Some(m) => m.matches_using_parent_results(&child_rel, include_info)?,
                None => (true, MatchInfo::default()),
            };
            let (excluded, exclude_info) = match &self.excludes {
                Some(m) => m.matches_using_parent_results(&child_rel, exclude_info)?,
                None => (false, MatchInfo::default()),
            };
            let taken = included && !excluded;
            // Nothing below an excluded path can come back without include patterns or
            // `!` exceptions.
            if !taken && self.includes.is_none() && !exclusions {
                continue;
            }
            let host = dir.join(&name);
            let meta = host.symlink_metadata().map_err(Error::io("stat", &host))?;
            let entry = Entry {
                rel: child_rel,
                host,
                meta,
                implied: !taken,
            };
            if !entry.meta.is_dir() {
                if taken {
                    visit_parents(parents, visit)?;
                    visit(&entry)?;
                }
                continue;
            }
            if taken {
                visit_parents(parents, visit)?;
                visit(&entry)?;
            }
            if excluded && !exclusions {
                continue;
            }
            let (host, child_rel) = (entry.host.clone(), entry.rel.clone());
            parents.push((!taken).then_some(entry));
            let walked = self.walk_dir(
                &host,
                &child_rel,
                (&include_info, &exclude_info),
                parents,
                visit,
            );
            parents.pop();
            walked?;
        }
        Ok(())
    }
}

/// Visits the directories above a taken entry that were not visited yet.
fn visit_parents(
    parents: &mut [Option<Entry>],
    visit: &mut dyn FnMut(&Entry) -> Result<()>,
) -> Result<()> {
    for slot in parents.iter_mut() {
        if let Some(parent) = slot.take() {
            visit(&parent)?;
        }
    }
    Ok(())
}

/// `path/rel`, or `path` when `rel` is empty.
pub(super) fn join(path: &str, rel: &str) -> String {
    match (path, rel) {
        (_, "") => path.to_string(),
        ("/", _) => format!("/{rel}"),
        _ => format!("{path}/{rel}"),
    }
}

/// Fails with the first of `copy`'s required paths that none of `taken` (the source paths
/// selected) is or lies under (BuildKit checks this when it computes the cache key).
pub(super) fn check_required(copy: &hoist_graph::Copy, taken: &[String]) -> Result<()> {
    for required in &copy.required_paths {
        let prefix = format!("{}/", required.trim_end_matches('/'));
        if !taken
            .iter()
            .any(|p| p == required || p.starts_with(&prefix))
        {
            return Err(Error::SourceNotFound {
                path: required.clone(),
            });
        }
    }
    Ok(())
}

/// How a copy sets its copies' modes.
enum ModeChange {
    /// Each keeps its source's mode.
    Keep,
    /// `--chmod=755`: these bits for every entry.
    Octal(u32),
    /// `--chmod=u+x`: applied to each entry's own mode.
    Symbolic(SymbolicMode),
}

impl ModeChange {
    fn of(mode: Option<&FileMode>) -> Result<ModeChange> {
        Ok(match mode {
            None => ModeChange::Keep,
            Some(FileMode::Octal(bits)) => ModeChange::Octal(*bits),
            Some(FileMode::Symbolic(text)) => match Chmod::parse(text) {
                Ok(Chmod::Symbolic(symbolic)) => ModeChange::Symbolic(symbolic),
                Ok(Chmod::Octal(bits)) => ModeChange::Octal(bits),
                Ok(Chmod::Unexpanded(_)) | Err(_) => {
                    return Err(Error::InvalidChmod { mode: text.clone() })
                }
            },
        })
    }

    /// The permission bits of the copy of an entry whose source has `meta`.
    fn of_copy(&self, meta: &std::fs::Metadata) -> u32 {
        match self {
            ModeChange::Keep => meta.mode() & 0o7777,
            ModeChange::Octal(bits) => *bits,
            ModeChange::Symbolic(symbolic) => symbolic.apply(meta.mode(), meta.is_dir()) & 0o7777,
        }
    }

    /// The mode of the directories a copy creates for its destination: the octal mode, or
    /// the default (BuildKit's 0755 with no umask; ours through the umask).
    fn of_created_dir(&self) -> Option<u32> {
        match self {
            ModeChange::Octal(bits) => Some(*bits),
            ModeChange::Keep | ModeChange::Symbolic(_) => None,
        }
    }
}

/// The owner and mode copies get.
struct Attributes<'a> {
    owner: Option<(u32, u32)>,
    mode: ModeChange,
    /// The destination root, to name paths in errors as the container sees them.
    root: &'a Path,
}

/// Runs one copy action from the source filesystem `src_root` into `root`.
pub(super) fn copy_action(copy: &hoist_graph::Copy, src_root: &Path, root: &Path) -> Result<()> {
    let sources = sources(src_root, copy)?;
    if sources.is_empty() && !copy.allow_empty_wildcard {
        return Err(Error::SourceNotFound {
            path: copy.src_path.clone(),
        });
    }
    let attributes = Attributes {
        owner: match &copy.owner {
            Some(owner) => Some(resolve_owner(owner, root)?),
            None => None,
        },
        mode: ModeChange::of(copy.mode.as_ref())?,
        root,
    };
    let selector = Selector::new(copy)?;
    // Only a trailing `/` names a directory: each match of a wildcard goes to the
    // destination in turn, into it when it is (by then) a directory and onto it when not, as
    // BuildKit's copy does (so several files onto one file name leave the last).
    let dest_is_dir_name = copy.dest.ends_with('/');
    let dest = scoped_path::resolve(root, &copy.dest, true)?;
    let mut taken = Vec::new();
    let mut dirs = Vec::new();
    for source in &sources {
        let Ok(meta) = std::fs::symlink_metadata(&source.host) else {
            return Err(Error::SourceNotFound {
                path: source.path.clone(),
            });
        };
        if copy.attempt_unpack && meta.is_file() && is_archive(&source.host) {
            // The destination and its missing parents are made as a copy's parents are
            // (`--chown` owns them), as BuildKit's unpack does before untarring.
            create_parents(&dest, &attributes)?;
            let file =
                std::fs::File::open(&source.host).map_err(Error::io("open", &source.host))?;
            hoist_snapshot::unpack_archive(file, &dest, &Default::default())?;
            taken.push(source.path.clone());
            continue;
        }
        let target = if meta.is_dir() && copy.dir_contents_only {
            dest.clone()
        } else if dest_is_dir_name || dest.is_dir() {
            dest.join(source.name())
        } else {
            dest.clone()
        };
        if let Some(parent) = target.parent() {
            if !parent.exists() {
                if !copy.create_dest_path && !dest_is_dir_name {
                    return Err(Error::Io {
                        action: "copy to",
                        path: target.clone(),
                        source: std::io::Error::from(std::io::ErrorKind::NotFound),
                    });
                }
                create_parents(parent, &attributes)?;
            }
        }
        taken.push(source.path.clone());
        if !meta.is_dir() {
            let entry = Entry {
                rel: String::new(),
                host: source.host.clone(),
                meta,
                implied: false,
            };
            copy_entry(&entry, &target, &attributes, &mut dirs)?;
            continue;
        }
        // A directory source gives its contents: the destination directory keeps its own
        // owner and mode when it exists, and is made like a created parent when not.
        if target.symlink_metadata().is_ok_and(|m| !m.is_dir()) {
            return Err(Error::CopyToNonDirectory {
                path: scoped_path::container_path(root, &target),
            });
        }
        create_parents(&target, &attributes)?;
        // Everything but regular files in walk order (a directory before its entries),
        // then the files, which only need their directory.
        let mut files = Vec::new();
        selector.walk(&source.host, &mut |entry| {
            taken.push(join(&source.path, &entry.rel));
            if entry.meta.is_file() {
                files.push(entry.clone());
                return Ok(());
            }
            copy_entry(entry, &target.join(&entry.rel), &attributes, &mut dirs)
        })?;
        copy_files(&files, &target, &attributes)?;
    }
    check_required(copy, &taken)?;
    for (dest, meta) in dirs.into_iter().rev() {
        finish(&dest, &meta, &attributes)?;
    }
    Ok(())
}

/// Copies the regular files `files` of one source directory under `target`, where their
/// directories exist; many on several threads ([`super::in_runs`]).
fn copy_files(files: &[Entry], target: &Path, attributes: &Attributes) -> Result<()> {
    super::in_runs(files, super::PARALLEL_FILES, |run| {
        // Files record no directory.
        let mut dirs = Vec::new();
        for entry in run {
            copy_entry(entry, &target.join(&entry.rel), attributes, &mut dirs)?;
        }
        Ok(())
    })
    .map(drop)
}

/// Creates `dir` and whichever of its parents are missing. As in BuildKit, the directories
/// COPY creates get the copy's octal `--chmod` mode and `--chown` owner (existing ones are
/// left alone); without them, the umask's 0755 and the builder's ids.
fn create_parents(dir: &Path, attributes: &Attributes) -> Result<()> {
    let mut missing = Vec::new();
    let mut current = Some(dir);
    while let Some(path) = current {
        if std::fs::symlink_metadata(path).is_ok() {
            break;
        }
        missing.push(path);
        current = path.parent();
    }
    for path in missing.into_iter().rev() {
        std::fs::create_dir(path).map_err(Error::io("create", path))?;
        if let Some(mode) = attributes.mode.of_created_dir() {
            set_mode(path, mode)?;
        }
        if let Some((uid, gid)) = attributes.owner {
            chown(path, uid, gid)?;
        }
    }
    Ok(())
}

/// Copies one entry to `dest` (whose parent exists). Directories are recorded in `dirs`
/// to get their owner, mode and time once their contents are written.
fn copy_entry(
    entry: &Entry,
    dest: &Path,
    attributes: &Attributes,
    dirs: &mut Vec<(PathBuf, std::fs::Metadata)>,
) -> Result<()> {
    let meta = &entry.meta;
    if meta.is_file() {
        // The common case first: nothing at the destination yet.
        let owner = attributes.owner.unwrap_or((meta.uid(), meta.gid()));
        let mtime = filetime::FileTime::from_last_modification_time(meta);
        match super::file::copy_new_file(
            &entry.host,
            meta.len(),
            dest,
            Some(owner),
            attributes.mode.of_copy(meta),
            mtime,
        ) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::io("copy", &entry.host)(e)),
        }
    }
    // Directories merge and files replace files (a symlink is a file here, even one to a
    // directory), but one kind never replaces the other: BuildKit fails instead.
    let existing = dest.symlink_metadata().ok();
    if let Some(existing) = &existing {
        match (meta.is_dir(), existing.is_dir()) {
            (true, true) => {}
            (true, false) => {
                return Err(Error::CopyToNonDirectory {
                    path: scoped_path::container_path(attributes.root, dest),
                })
            }
            (false, true) => {
                return Err(Error::CopyFileOverDirectory {
                    path: scoped_path::container_path(attributes.root, dest),
                })
            }
            (false, false) => {
                std::fs::remove_file(dest).map_err(Error::io("replace", dest))?;
            }
        }
    }
    if meta.is_dir() {
        let created = !existing.as_ref().is_some_and(|m| m.is_dir());
        if created {
            std::fs::create_dir(dest).map_err(Error::io("create", dest))?;
        }
        if created || !entry.implied {
            dirs.push((dest.to_path_buf(), meta.clone()));
        }
    } else if meta.file_type().is_symlink() {
        let link = std::fs::read_link(&entry.host).map_err(Error::io("read link", &entry.host))?;
        std::os::unix::fs::symlink(&link, dest).map_err(Error::io("create symlink", dest))?;
        let (uid, gid) = attributes.owner.unwrap_or((meta.uid(), meta.gid()));
        chown(dest, uid, gid)?;
    } else if meta.is_file() {
        std::fs::copy(&entry.host, dest).map_err(Error::io("copy", &entry.host))?;
        finish(dest, meta, attributes)?;
    }
    Ok(())
}

/// Owner, mode and modification time of a copied file or directory.
fn finish(dest: &Path, meta: &std::fs::Metadata, attributes: &Attributes) -> Result<()> {
    let (uid, gid) = attributes.owner.unwrap_or((meta.uid(), meta.gid()));
    chown(dest, uid, gid)?;
    set_mode(dest, attributes.mode.of_copy(meta))?;
    filetime::set_file_mtime(dest, filetime::FileTime::from_last_modification_time(meta))
        .map_err(Error::io("set times of", dest))
}

/// Whether `path` is a tar archive, uncompressed or gzip, bzip2, xz or zstd (`ADD` unpacks
/// those).
fn is_archive(path: &Path) -> bool {
    use std::io::Read as _;
    let Ok(file) = std::fs::File::open(path) else {
        return false;
    };
    let Ok(mut reader) = hoist_snapshot::decompress_archive(file) else {
        return false;
    };
    let mut header = [0u8; 512];
    reader.read_exact(&mut header).is_ok() && &header[257..262] == b"ustar"
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn mode_of(path: &Path) -> u32 {
        std::fs::symlink_metadata(path)
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    }

    fn tree(files: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for file in files {
            let path = dir.path().join(file.trim_end_matches('/'));
            if file.ends_with('/') {
                std::fs::create_dir_all(&path).unwrap();
            } else {
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(&path, file).unwrap();
            }
        }
        dir
    }

    fn selected(dir: &Path, includes: &[&str], excludes: &[&str]) -> Vec<String> {
        let mut copy = hoist_graph::Copy::new(0, "/", "/");
        copy.include_patterns = includes.iter().map(|s| s.to_string()).collect();
        copy.exclude_patterns = excludes.iter().map(|s| s.to_string()).collect();
        let mut out = Vec::new();
        Selector::new(&copy)
            .unwrap()
            .walk(dir, &mut |e| {
                out.push(format!(
                    "{}{}",
                    e.rel,
                    if e.implied { " (parent)" } else { "" }
                ));
                Ok(())
            })
            .unwrap();
        out
    }

    #[test]
    fn include_patterns_keep_matches_and_the_directories_above_them() {
        let dir = tree(&["a/b/c/d/foo", "a/b2/c/d/e/bar", "a/b3/x", "top"]);
        assert_eq!(
            selected(dir.path(), &["a/*/c"], &[]),
            [
                "a (parent)",
                "a/b (parent)",
                "a/b/c",
                "a/b/c/d",
                "a/b/c/d/foo",
                "a/b2 (parent)",
                "a/b2/c",
                "a/b2/c/d",
                "a/b2/c/d/e",
                "a/b2/c/d/e/bar",
            ]
        );
        assert_eq!(
            selected(dir.path(), &["a/**/e"], &[]),
            [
                "a (parent)",
                "a/b2 (parent)",
                "a/b2/c (parent)",
                "a/b2/c/d (parent)",
                "a/b2/c/d/e",
                "a/b2/c/d/e/bar",
            ]
        );
        assert!(selected(dir.path(), &["nothing"], &[]).is_empty());
    }

    #[test]
    fn excludes_leave_out_whole_directories_unless_excepted() {
        let dir = tree(&["a/x", "a/y", "b"]);
        assert_eq!(selected(dir.path(), &[], &["a"]), ["b"]);
        assert_eq!(
            selected(dir.path(), &[], &["a", "!a/y"]),
            ["a (parent)", "a/y", "b"]
        );
        assert_eq!(selected(dir.path(), &["a"], &["a/x"]), ["a", "a/y"]);
    }

    #[test]
    fn wildcards_match_symlinks_and_follow_them_inside_the_root() {
        let dir = tree(&["sub/lfile", "sub/subfile", "sub/baz", "real/inner"]);
        let root = dir.path();
        std::os::unix::fs::symlink("subfile", root.join("sub/l0")).unwrap();
        std::os::unix::fs::symlink("second", root.join("sub/l1")).unwrap();
        std::os::unix::fs::symlink("baz", root.join("sub/second")).unwrap();
        std::os::unix::fs::symlink("/real", root.join("link")).unwrap();
        std::os::unix::fs::symlink("/etc", root.join("sub/lout")).unwrap();
        let found = expand(root, "/sub/l*", true).unwrap();
        let pairs: Vec<_> = found
            .iter()
            .map(|s| {
                (
                    s.path.as_str(),
                    s.host.strip_prefix(root).unwrap().to_owned(),
                )
            })
            .collect();
        assert_eq!(
            pairs,
            [
                ("/sub/l0", PathBuf::from("sub/subfile")),
                ("/sub/l1", PathBuf::from("sub/baz")),
                ("/sub/lfile", PathBuf::from("sub/lfile")),
                ("/sub/lout", PathBuf::from("etc")),
            ]
        );
        assert_eq!(found[0].name(), "l0");
        // The prefix goes through a symlinked directory; a link matched later is not
        // entered.
        let through = expand(root, "/link/*", true).unwrap();
        assert_eq!(through.len(), 1);
        assert_eq!(through[0].path, "/real/inner");
        assert!(expand(root, "/*/inner", false).unwrap().len() == 1);
        assert!(expand(root, "/nothing/*", true).unwrap().is_empty());
    }

    #[test]
    fn required_paths_must_be_selected() {
        let mut copy = hoist_graph::Copy::new(0, "/", "/");
        copy.required_paths = vec!["/a/b".into()];
        assert!(check_required(&copy, &["/a/b".into()]).is_ok());
        assert!(check_required(&copy, &["/a/b/c".into()]).is_ok());
        let err = check_required(&copy, &["/a/bc".into(), "/a".into()]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "failed to compute cache key: \"/a/b\": not found"
        );
    }

    #[test]
    fn symbolic_modes_apply_to_each_entry() {
        let dir = tree(&["src/d/", "src/d/f", "src/x", "dest/"]);
        let root = dir.path();
        set_mode(&root.join("src/d"), 0o700).unwrap();
        set_mode(&root.join("src/d/f"), 0o600).unwrap();
        set_mode(&root.join("src/x"), 0o744).unwrap();
        let mut copy = hoist_graph::Copy::new(0, "/src", "/dest/");
        copy.dir_contents_only = true;
        copy.mode = Some(FileMode::Symbolic("u=rwX,go=rX".into()));
        copy_action(&copy, root, &root.join("dest")).unwrap_or_else(|e| panic!("{e}"));
        let dest = root.join("dest/dest");
        assert_eq!(mode_of(&dest.join("d")), 0o755);
        assert_eq!(mode_of(&dest.join("d/f")), 0o644);
        assert_eq!(mode_of(&dest.join("x")), 0o755);

        copy.mode = Some(FileMode::Symbolic("u+q".into()));
        let err = copy_action(&copy, root, &root.join("dest")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid --chmod=u+q: not an octal or symbolic mode"
        );
    }
}
