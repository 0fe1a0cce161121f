//! Resolving a ref to a commit ([`resolve_commit`]) and checking one commit out into a
//! directory ([`checkout`], [`checkout_resolved`]), as BuildKit's git source does.
//!
//! Resolution is `git ls-remote` with BuildKit's preference when a short name matches
//! several refs: `refs/<ref>` exactly, then the branch `refs/heads/<ref>`, then the tag
//! `refs/tags/<ref>` (an annotated tag resolving to the commit it points at). No ref means
//! the remote's default branch (`ls-remote --symref HEAD`). A full commit SHA is its own
//! resolution, with nothing asked of the remote.
//!
//! Fetching goes through a bare repository per remote under the caller's cache directory,
//! named by the sha256 of the redacted URL: each fetch brings only the one ref with
//! `--depth=1` (or the one commit; servers that do not let a commit be fetched by SHA get
//! a full fetch instead, and servers that cannot do shallow fetches a deep one), and
//! objects already there are not fetched again, so a second fetch of a moved branch is
//! incremental. The bare repository is used under an exclusive `flock` of `<name>.lock`,
//! so two processes can share the cache directory. A fetch into a cached repository that
//! fails is retried once on a fresh one (a ref rewritten upstream can leave a bare
//! repository git refuses to update).
//!
//! The checkout is a new repository in the destination that fetches the one commit from
//! the bare one (over `file://`, so no hard links into the cache), checks it out detached,
//! then `submodule update --init --recursive --depth=1` (unless submodules are off). With
//! `keep_git_dir` the `.git` stays, with the ref fetched under its own name, `origin` set
//! to the redacted URL and the reflog emptied; without it every `.git` is removed. A subdir
//! must be a directory reached through directories only (no symlink), and its contents
//! become the destination's; the `.git` is then always removed.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use fs4::fs_std::FileExt;
use sha2::{Digest as _, Sha256};

use crate::auth::Auth;
use crate::command::{Failure, GitCli};
use crate::error::{Error, Result};
use crate::git_ref::{is_commit_sha, GitRef, Remote};

/// What a ref resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The commit (an annotated tag's target, not the tag object).
    pub commit: String,
    /// The full ref name (`refs/heads/main`, `refs/tags/v1`, `refs/pull/42/head`); `None`
    /// when the ref was a commit SHA.
    pub ref_name: Option<String>,
    /// The tag object, for an annotated tag.
    pub tag_object: Option<String>,
}

/// What was checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkout {
    /// The commit now in the destination.
    pub commit: String,
    /// The full ref name it came from (`None` for a SHA ref).
    pub ref_name: Option<String>,
}

/// Asks the remote which commit `git_ref`'s ref names (the cache key of a git source), and
/// checks it against the ref's checksum.
pub fn resolve_commit(git_ref: &GitRef, auth: &Auth) -> Result<Resolved> {
    let git = GitCli::new(&git_ref.remote, auth)?;
    resolve_with(&git, git_ref)
}

/// Resolves `git_ref` and checks it out into `dest` (an empty or missing directory), with
/// a bare repository per remote under `cache_dir`. The lead's one call to materialise a git
/// build context.
pub fn checkout(git_ref: &GitRef, dest: &Path, auth: &Auth, cache_dir: &Path) -> Result<Checkout> {
    let resolved = resolve_commit(git_ref, auth)?;
    checkout_resolved(git_ref, &resolved, dest, auth, cache_dir)
}

/// Checks out a commit [`resolve_commit`] found (so a cache key and the files agree even if
/// the branch moves in between) into `dest`.
pub fn checkout_resolved(
    git_ref: &GitRef,
    resolved: &Resolved,
    dest: &Path,
    auth: &Auth,
    cache_dir: &Path,
) -> Result<Checkout> {
    let git = GitCli::new(&git_ref.remote, auth)?;
    let source = Source { git_ref, resolved };
    if !is_commit_sha(&resolved.commit) {
        return Err(Error::InvalidChecksum {
            remote: git_ref.remote.redacted(),
            checksum: resolved.commit.clone(),
        });
    }
    std::fs::create_dir_all(dest).map_err(Error::io("create", dest))?;
    let keep_git_dir = git_ref.keep_git_dir.unwrap_or(false) && git_ref.subdir.is_none();
    let work = match &git_ref.subdir {
        Some(_) => Some(
            tempfile::Builder::new()
                .prefix(".hoist-git-checkout-")
                .tempdir_in(dest)
                .map_err(Error::io("create a checkout directory in", dest))?,
        ),
        None => None,
    };
    let work_dir = work.as_ref().map_or(dest, |w| w.path());
    {
        let cache = BareRepo::lock(cache_dir, &git_ref.remote)?;
        cache.fetch(&git, &source)?;
        source.fetch_from_cache(&git, &cache, work_dir, keep_git_dir)?;
    }
    let in_checkout = |action: &'static str, args: &[&str]| -> Result<()> {
        git.run(Some(work_dir), args)?
            .map(drop)
            .map_err(|failure| source.git_error(action, failure))
    };
    in_checkout(
        "check out",
        &["checkout", "-q", "--detach", &resolved.commit],
    )?;
    if git_ref.submodules.unwrap_or(true) && work_dir.join(".gitmodules").exists() {
        // Relative submodule URLs are resolved against `origin`.
        in_checkout(
            "set the remote of",
            &["remote", "add", "--", "origin", git_ref.remote.url()],
        )?;
        let update = ["submodule", "update", "-q", "--init", "--recursive"];
        let shallow = [&update[..], &["--depth=1"]].concat();
        match git.run(Some(work_dir), &shallow)? {
            Ok(_) => {}
            Err(f) if mentions_shallow(&f) => in_checkout("update the submodules of", &update)?,
            Err(f) => return Err(source.git_error("update the submodules of", f)),
        }
        in_checkout("set the remote of", &["remote", "remove", "origin"])?;
    }
    if keep_git_dir {
        let redacted = git_ref.remote.redacted();
        in_checkout(
            "set the remote of",
            &["remote", "add", "--", "origin", &redacted],
        )?;
        in_checkout(
            "expire the reflog of",
            &["reflog", "expire", "--all", "--expire=now"],
        )?;
        remove_if_present(&work_dir.join(".git/FETCH_HEAD"))?;
    } else {
        remove_git_dirs(work_dir)?;
    }
    if let (Some(subdir), Some(work)) = (&git_ref.subdir, &work) {
        let from = source.subdir_path(work.path(), subdir)?;
        for entry in std::fs::read_dir(&from).map_err(Error::io("read", &from))? {
            let entry = entry.map_err(Error::io("read", &from))?;
            let to = dest.join(entry.file_name());
            std::fs::rename(entry.path(), &to).map_err(Error::io("move into place", &to))?;
        }
    }
    Ok(Checkout {
        commit: resolved.commit.clone(),
        ref_name: resolved.ref_name.clone(),
    })
}

/// A ref and what it resolved to, for fetches and messages.
struct Source<'a> {
    git_ref: &'a GitRef,
    resolved: &'a Resolved,
}

impl Source<'_> {
    fn remote(&self) -> &Remote {
        &self.git_ref.remote
    }

    /// The ref as the user wrote it, `HEAD` for none.
    fn reference(&self) -> String {
        self.git_ref
            .reference
            .clone()
            .unwrap_or_else(|| "HEAD".to_owned())
    }

    fn git_error(&self, action: &'static str, failure: Failure) -> Error {
        Error::Git {
            action,
            remote: self.remote().redacted(),
            reference: self.reference(),
            command: failure.command,
            stderr: failure.stderr,
        }
    }

    /// Fetches the commit from the bare repository into a new repository at `work`.
    fn fetch_from_cache(
        &self,
        git: &GitCli,
        cache: &BareRepo,
        work: &Path,
        keep_git_dir: bool,
    ) -> Result<()> {
        let mut init = vec!["init", "-q", "--template="];
        if self.resolved.commit.len() == 64 {
            init.push("--object-format=sha256");
        }
        let work_text = work.to_string_lossy();
        init.extend(["--", &work_text]);
        git.run(None, &init)?
            .map_err(|f| self.git_error("create a checkout of", f))?;
        let url = format!("file://{}", cache.dir.display());
        // With the .git kept, the ref keeps its name (a tag its tag object).
        let refspec = match (&self.resolved.ref_name, keep_git_dir) {
            (Some(name), true) => format!(
                "+{}:{name}",
                self.resolved
                    .tag_object
                    .as_deref()
                    .unwrap_or(&self.resolved.commit)
            ),
            _ => self.resolved.commit.clone(),
        };
        let args = [
            "fetch",
            "-q",
            "--depth=1",
            "--no-tags",
            "--",
            &url,
            &refspec,
        ];
        git.run(Some(work), &args)?
            .map(drop)
            .map_err(|f| self.git_error("check out", f))
    }

    /// The subdir inside the checkout at `root`, checked to be directories all the way.
    fn subdir_path(&self, root: &Path, subdir: &str) -> Result<PathBuf> {
        let error = |reason: String| Error::Subdir {
            remote: self.remote().redacted(),
            reference: self.reference(),
            subdir: subdir.to_owned(),
            reason,
        };
        let mut path = root.to_path_buf();
        for part in subdir.split('/').filter(|p| !p.is_empty() && *p != ".") {
            if part == ".." {
                return Err(error("leaves the repository".into()));
            }
            path.push(part);
            match std::fs::symlink_metadata(&path) {
                Ok(meta) if meta.is_dir() => {}
                Ok(_) => return Err(error(format!("{part:?} is not a directory"))),
                Err(_) => return Err(error("no such directory in the repository".into())),
            }
        }
        Ok(path)
    }
}

/// The bare repository that caches one remote's objects, locked while held.
struct BareRepo {
    dir: PathBuf,
    _lock: File,
}

impl BareRepo {
    fn lock(cache_dir: &Path, remote: &Remote) -> Result<BareRepo> {
        std::fs::create_dir_all(cache_dir).map_err(Error::io("create", cache_dir))?;
        let name = hex::encode(Sha256::digest(remote.redacted().as_bytes()));
        let lock_path = cache_dir.join(format!("{name}.lock"));
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(Error::io("open", &lock_path))?;
        lock.lock_exclusive()
            .map_err(Error::io("lock", &lock_path))?;
        // The lock's time is the repository's last use, which the engine's prune reads.
        let _ = lock.set_modified(std::time::SystemTime::now());
        Ok(BareRepo {
            dir: cache_dir.join(format!("{name}.git")),
            _lock: lock,
        })
    }

    /// Makes sure the repository holds the resolved commit (and tag object).
    fn fetch(&self, git: &GitCli, source: &Source) -> Result<()> {
        let existed = self.dir.join("HEAD").exists();
        if existed && self.has_objects(git, source)? {
            return Ok(());
        }
        match self.init_and_fetch(git, source, existed) {
            Err(_) if existed => {
                // Start again on a fresh repository.
                self.init_and_fetch(git, source, false)
            }
            result => result,
        }
    }

    fn init_and_fetch(&self, git: &GitCli, source: &Source, reuse: bool) -> Result<()> {
        if !reuse {
            if self.dir.exists() {
                std::fs::remove_dir_all(&self.dir).map_err(Error::io("remove", &self.dir))?;
            }
            let dir = self.dir.to_string_lossy();
            let mut init = vec!["init", "-q", "--bare", "--template="];
            if source.resolved.commit.len() == 64 {
                init.push("--object-format=sha256");
            }
            init.extend(["--", &dir]);
            git.run(None, &init)?
                .map_err(|f| source.git_error("create a cache of", f))?;
            // Checkouts fetch one commit by its SHA from here.
            git.run(
                Some(&self.dir),
                &["config", "uploadpack.allowAnySHA1InWant", "true"],
            )?
            .map_err(|f| source.git_error("create a cache of", f))?;
        }
        let url = source.remote().url();
        if let Some(name) = &source.resolved.ref_name {
            let refspec = format!("+{name}:{name}");
            let fetched = self.fetch_shallow(git, &["--no-tags", "--", url, &refspec])?;
            match fetched {
                Ok(()) if self.has_objects(git, source)? => return Ok(()),
                // The ref moved since it was resolved: fetch the commit itself.
                Ok(()) => {}
                Err(f) => return Err(source.git_error("fetch", f)),
            }
        }
        self.fetch_commit(git, source)
    }

    /// `git fetch --depth=1 <args>`, again without `--depth` when the server cannot do
    /// shallow fetches (a dumb http server).
    fn fetch_shallow(&self, git: &GitCli, args: &[&str]) -> Result<Result<(), Failure>> {
        let shallow = [&["fetch", "-q", "--depth=1"][..], args].concat();
        match git.run(Some(&self.dir), &shallow)? {
            Ok(_) => Ok(Ok(())),
            Err(f) if mentions_shallow(&f) => {
                let deep = [&["fetch", "-q"][..], args].concat();
                Ok(git.run(Some(&self.dir), &deep)?.map(drop))
            }
            Err(f) => Ok(Err(f)),
        }
    }

    /// Fetches the resolved commit by SHA; when the server refuses that, every branch and
    /// tag, in which the commit must then be.
    fn fetch_commit(&self, git: &GitCli, source: &Source) -> Result<()> {
        let commit = &source.resolved.commit;
        let url = source.remote().url();
        let keep = format!("+{commit}:refs/hoist/commits/{commit}");
        let first = match self.fetch_shallow(git, &["--no-tags", "--", url, &keep])? {
            Ok(()) if self.has_objects(git, source)? => return Ok(()),
            Ok(()) => "the fetch did not bring it".to_owned(),
            Err(f) => f.stderr,
        };
        let mut full = vec!["fetch", "-q", "--tags"];
        if self.dir.join("shallow").exists() {
            full.push("--unshallow");
        }
        full.extend(["--", url, "+refs/heads/*:refs/remotes/origin/*"]);
        if let Err(f) = git.run(Some(&self.dir), &full)? {
            return Err(source.git_error("fetch", f));
        }
        if self.has_objects(git, source)? {
            return Ok(());
        }
        Err(Error::CommitNotFound {
            remote: source.remote().redacted(),
            commit: commit.clone(),
            detail: first,
        })
    }

    /// Whether the commit (and the tag object, if any) are here.
    fn has_objects(&self, git: &GitCli, source: &Source) -> Result<bool> {
        let commit = format!("{}^{{commit}}", source.resolved.commit);
        let mut objects = vec![commit];
        objects.extend(source.resolved.tag_object.clone());
        for object in &objects {
            if git
                .run(Some(&self.dir), &["cat-file", "-e", object])?
                .is_err()
            {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// Resolves `git_ref` (see the module docs) and checks its checksum.
fn resolve_with(git: &GitCli, git_ref: &GitRef) -> Result<Resolved> {
    let remote = &git_ref.remote;
    let reference = git_ref.reference.as_deref();
    if let Some(r) = reference {
        if r.starts_with('-') || r.chars().any(|c| c.is_control() || c == ' ') {
            return Err(Error::InvalidRef {
                remote: remote.redacted(),
                reference: r.to_owned(),
            });
        }
    }
    let shown = reference.unwrap_or("HEAD").to_owned();
    let resolved = match reference {
        Some(sha) if is_commit_sha(sha) => Resolved {
            commit: sha.to_owned(),
            ref_name: None,
            tag_object: None,
        },
        None => {
            let out = ls_remote(
                git,
                git_ref,
                &["ls-remote", "--symref", "--", remote.url(), "HEAD"],
            )?;
            let mut resolved = Resolved {
                commit: String::new(),
                ref_name: None,
                tag_object: None,
            };
            for line in out.lines() {
                match line.split_once('\t') {
                    Some((head, "HEAD")) if head.starts_with("ref: ") => {
                        resolved.ref_name = Some(head["ref: ".len()..].to_owned());
                    }
                    Some((sha, "HEAD")) => resolved.commit = sha.to_owned(),
                    _ => {}
                }
            }
            if resolved.commit.is_empty() {
                return Err(Error::RefNotFound {
                    remote: remote.redacted(),
                    reference: shown,
                });
            }
            resolved
        }
        Some(r) => {
            let peeled = format!("{r}^{{}}");
            let out = ls_remote(git, git_ref, &["ls-remote", "--", remote.url(), r, &peeled])?;
            pick_ref(&out, r).ok_or_else(|| Error::RefNotFound {
                remote: remote.redacted(),
                reference: shown.clone(),
            })?
        }
    };
    if !is_commit_sha(&resolved.commit) {
        return Err(Error::RefNotFound {
            remote: remote.redacted(),
            reference: shown,
        });
    }
    if let Some(checksum) = &git_ref.checksum {
        let checksum = checksum.to_ascii_lowercase();
        if checksum.is_empty() || !checksum.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::InvalidChecksum {
                remote: remote.redacted(),
                checksum,
            });
        }
        let matches = resolved.commit.starts_with(&checksum)
            || resolved
                .tag_object
                .as_deref()
                .is_some_and(|t| t.starts_with(&checksum));
        if !matches {
            return Err(Error::ChecksumMismatch {
                remote: remote.redacted(),
                reference: shown,
                expected: checksum,
                actual: resolved.commit,
            });
        }
    }
    Ok(resolved)
}

fn ls_remote(git: &GitCli, git_ref: &GitRef, args: &[&str]) -> Result<String> {
    git.run(None, args)?.map_err(|f| {
        let mut stderr = f.stderr;
        let denied = ["could not read Username", "Authentication failed", "401"];
        if git_ref.remote.is_http() && denied.iter().any(|d| stderr.contains(d)) {
            stderr.push_str(
                " (a private repository? give its token as the build secret GIT_AUTH_TOKEN, \
                 or a whole Authorization header as GIT_AUTH_HEADER)",
            );
        }
        Error::Git {
            action: "list the refs for",
            remote: git_ref.remote.redacted(),
            reference: git_ref
                .reference
                .clone()
                .unwrap_or_else(|| "HEAD".to_owned()),
            command: f.command,
            stderr,
        }
    })
}

/// BuildKit's choice among the refs `ls-remote <ref> <ref>^{}` listed.
fn pick_ref(listing: &str, reference: &str) -> Option<Resolved> {
    let unqualified = reference.strip_prefix("refs/").unwrap_or(reference);
    let exact = format!("refs/{unqualified}");
    let head = format!("refs/heads/{}", reference.trim_start_matches("refs/heads/"));
    let tag = format!("refs/tags/{}", reference.trim_start_matches("refs/tags/"));
    let peeled_tag = format!("{tag}^{{}}");
    let (mut exact_sha, mut head_sha, mut tag_sha, mut peeled_sha) = (None, None, None, None);
    for line in listing.lines() {
        let Some((sha, name)) = line.split_once('\t') else {
            continue;
        };
        let sha = Some(sha.to_owned());
        if name == head {
            head_sha = sha.clone();
        }
        if name == tag {
            tag_sha = sha.clone();
        }
        if name == peeled_tag {
            peeled_sha = sha.clone();
        }
        if name == exact {
            exact_sha = sha;
        }
    }
    // An exact name, then a branch (git checkout prefers branches), then a tag.
    if let Some(sha) = exact_sha.clone().or(head_sha.clone()) {
        let name = if exact_sha.is_some() { exact } else { head };
        // `refs/tags/v1` named in full is still a tag: peel it.
        let (commit, tag_object) = match (name == tag, peeled_sha) {
            (true, Some(peeled)) => (peeled, Some(sha)),
            _ => (sha, None),
        };
        return Some(Resolved {
            commit,
            ref_name: Some(name),
            tag_object,
        });
    }
    let sha = tag_sha?;
    let (commit, tag_object) = match peeled_sha {
        Some(peeled) => (peeled, Some(sha)),
        None => (sha, None),
    };
    Some(Resolved {
        commit,
        ref_name: Some(tag),
        tag_object,
    })
}

/// Whether git failed because the server cannot do what `--depth` asks.
fn mentions_shallow(failure: &Failure) -> bool {
    failure.stderr.contains("--depth") || failure.stderr.contains("shallow")
}

fn remove_if_present(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io("remove", path)(e)),
        _ => Ok(()),
    }
}

/// Removes every `.git` (the checkout's and its submodules') below `dir`: a tracked file
/// can never be named `.git`, so each is git's own.
fn remove_git_dirs(dir: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(Error::io("read", dir))? {
        let entry = entry.map_err(Error::io("read", dir))?;
        let path = entry.path();
        let kind = entry.file_type().map_err(Error::io("stat", &path))?;
        if entry.file_name() == ".git" {
            if kind.is_dir() {
                std::fs::remove_dir_all(&path).map_err(Error::io("remove", &path))?;
            } else {
                std::fs::remove_file(&path).map_err(Error::io("remove", &path))?;
            }
        } else if kind.is_dir() {
            remove_git_dirs(&path)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    const C: &str = "cccccccccccccccccccccccccccccccccccccccc";

    #[test]
    fn branches_win_over_tags_and_tags_are_peeled() {
        let listing = format!("{A}\trefs/heads/v1\n{B}\trefs/tags/v1\n{C}\trefs/tags/v1^{{}}\n");
        let r = pick_ref(&listing, "v1").unwrap();
        assert_eq!(
            (r.commit.as_str(), r.ref_name.as_deref()),
            (A, Some("refs/heads/v1"))
        );
        let r = pick_ref(&listing, "refs/tags/v1").unwrap();
        assert_eq!(
            (
                r.commit.as_str(),
                r.ref_name.as_deref(),
                r.tag_object.as_deref()
            ),
            (C, Some("refs/tags/v1"), Some(B))
        );
        let listing = format!("{B}\trefs/tags/v2\n{C}\trefs/tags/v2^{{}}\n");
        let r = pick_ref(&listing, "v2").unwrap();
        assert_eq!((r.commit.as_str(), r.tag_object.as_deref()), (C, Some(B)));
        let listing = format!("{A}\trefs/pull/42/head\n");
        let r = pick_ref(&listing, "pull/42/head").unwrap();
        assert_eq!(r.ref_name.as_deref(), Some("refs/pull/42/head"));
        // `ls-remote main` also lists `refs/heads/feature/main`: not a match.
        let listing = format!("{A}\trefs/heads/feature/main\n");
        assert_eq!(pick_ref(&listing, "main"), None);
    }
}
