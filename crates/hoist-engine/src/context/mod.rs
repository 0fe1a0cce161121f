//! Build contexts as buildx and BuildKit read them. [`ContextSource`] says where a context
//! comes from — a local directory, no files at all (a Dockerfile piped on stdin), a tar
//! piped on stdin, an http(s) URL or a Git repository — and [`prepare_contexts`], the
//! build's first stage, makes each one a local directory, so that everything after it is
//! a local-directory build: the same files give the same image.
//!
//! What is not a local directory is prepared under
//! `<state>/engine/prepared-contexts/<unique>/`
//! ([`ContextDir`]: removed when the [`Prepared`] holding it drops, swept by the next build
//! or prune when a killed process left it; its liveness is an `flock`, never an age).
//!
//! As BuildKit's dockerui and buildx's `LoadInputs` decide:
//!
//! - an http(s) main context is downloaded and told apart by its first 1024 bytes
//!   ([`is_archive`]): a tarball (plain, gzip, bzip2, xz; zstd too) is unpacked and its
//!   Dockerfile read from it by the request's name (`-f`); anything else is itself the
//!   Dockerfile, in a context holding only that file, named `context`;
//! - an http(s) named context is the downloaded file, `context`, never unpacked;
//! - a Dockerfile given by the client (`-f -`, an absolute `-f` beside a URL) wins over
//!   the one in a remote context;
//! - `.dockerignore` applies to the local directories the client names only: BuildKit
//!   reads no ignore file of a remote, piped or empty context (its maintainers call that
//!   intended, docker/cli#2827);
//! - an archive entry that climbs out of the root is refused, as moby's `Untar` refuses it.

mod archive;
mod dir;
mod download;
mod git;

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use futures::channel::oneshot;
use futures::future::{BoxFuture, FutureExt, Shared};
use hoist_snapshot::Listing;

pub use archive::{is_archive, HEAD_LEN};
pub(crate) use dir::{contexts_dir, remove_orphans};

use crate::build::BuildRequest;
use crate::error::{Error, Result};
use crate::ops::{scoped_path, LocalContext, LocalContexts};
use crate::secrets::SecretStore;
use crate::ssh::SshStore;
use crate::steps::Progress;
use crate::worker::Worker;
use dir::ContextDir;

/// The name of a downloaded file in its context, and so of a downloaded Dockerfile
/// (BuildKit's http context filename).
const DOWNLOADED: &str = "context";

/// Where a build context comes from.
#[derive(Debug, Clone)]
pub enum ContextSource {
    /// A directory on this machine, read in place.
    Local(PathBuf),
    /// A directory on this machine that the caller owns while the build runs and changes
    /// only by renaming whole new files into place, never by writing into one (hoistd's
    /// copy of a client's context). Read in place like `Local`; its files may be
    /// hard-linked into the context's snapshot instead of copied. With its `listing` (what
    /// the caller wrote there, see [`hoist_snapshot::Listing`]) the build neither walks it
    /// nor reads the files whose digests the listing holds; digests the build computes are
    /// added to the listing. A listing still [`ContextListing::arriving`] lets the build
    /// start while the caller writes the directory: nothing reads it before the listing
    /// has come.
    Owned {
        dir: PathBuf,
        listing: Option<ContextListing>,
        /// The exclude patterns of its ignore file, as the caller read them: the build
        /// reads no ignore file in the directory. `None`: read as a `Local` one's.
        excludes: Option<Vec<String>>,
    },
    /// No files: the context of a Dockerfile read from stdin (buildx's empty directory).
    Empty,
    /// A tar archive, plain or compressed, read once from a stream (stdin).
    Tar(TarStream),
    /// An http(s) URL (see the module docs for what it becomes).
    Http(String),
    /// A Git repository, in BuildKit's URL form (`https://host/repo.git#ref:subdir`,
    /// `git@host:repo.git`, `ssh://…`, `git://…`).
    Git(String),
}

/// The listing of an [`ContextSource::Owned`] directory: given with the request, or still
/// being written by its owner, who sends it once the directory holds it (or why it never
/// will). Clones wait for the same listing.
#[derive(Clone)]
pub struct ContextListing(Listed);

#[derive(Clone)]
enum Listed {
    Ready(Arc<Listing>),
    Arriving(Shared<BoxFuture<'static, std::result::Result<Arc<Listing>, String>>>),
}

/// The owner's end of an arriving [`ContextListing`]. Dropped unsent, the build's wait
/// ends with an error.
#[derive(Debug)]
pub struct ListingSender(oneshot::Sender<std::result::Result<Arc<Listing>, String>>);

impl ContextListing {
    /// A listing known now.
    pub fn ready(listing: Arc<Listing>) -> ContextListing {
        ContextListing(Listed::Ready(listing))
    }

    /// A listing to come through the sender.
    pub fn arriving() -> (ListingSender, ContextListing) {
        let (sender, receiver) = oneshot::channel();
        let listing = receiver.map(|sent| {
            sent.unwrap_or_else(|_| {
                Err("its owner stopped before the directory was written".to_owned())
            })
        });
        let arriving = Listed::Arriving(listing.boxed().shared());
        (ListingSender(sender), ContextListing(arriving))
    }

    /// Waits for the listing; the error says why it will not come.
    pub(crate) async fn wait(&self) -> std::result::Result<Arc<Listing>, String> {
        match &self.0 {
            Listed::Ready(listing) => Ok(Arc::clone(listing)),
            Listed::Arriving(arriving) => arriving.clone().await,
        }
    }

    /// The listing if it has come and a wait saw it (`None` before).
    pub(crate) fn now(&self) -> Option<std::result::Result<Arc<Listing>, String>> {
        match &self.0 {
            Listed::Ready(listing) => Some(Ok(Arc::clone(listing))),
            Listed::Arriving(arriving) => arriving.peek().cloned(),
        }
    }
}

impl std::fmt::Debug for ContextListing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.now() {
            Some(Ok(listing)) => write!(f, "ContextListing({} entries)", listing.len()),
            Some(Err(reason)) => write!(f, "ContextListing(failed: {reason})"),
            None => f.write_str("ContextListing(arriving)"),
        }
    }
}

impl ListingSender {
    /// Sends the listing of the written directory, or why it was not written.
    pub fn send(self, listing: std::result::Result<Arc<Listing>, String>) {
        // The build may have ended without reading the context: nobody waits then.
        let _ = self.0.send(listing);
    }
}

impl From<PathBuf> for ContextSource {
    fn from(dir: PathBuf) -> Self {
        ContextSource::Local(dir)
    }
}

impl ContextSource {
    /// The remote context `value` names, told apart as buildx's `IsRemoteURL` and
    /// BuildKit's `ParseGitRef` do: a Git URL (`git://`, `ssh://`, `user@host:path`,
    /// `github.com/…`, or an http(s) URL whose path ends in `.git`), else an http(s) URL;
    /// `None` for anything else (a path).
    pub fn remote(value: &str) -> Option<ContextSource> {
        if hoist_git::is_git_url(value) {
            Some(ContextSource::Git(value.to_owned()))
        } else if is_http_url(value) {
            Some(ContextSource::Http(value.to_owned()))
        } else {
            None
        }
    }

    /// A directory of this machine read in place (`Local` or `Owned`).
    pub fn is_directory(&self) -> bool {
        matches!(self, ContextSource::Local(_) | ContextSource::Owned { .. })
    }

    /// How messages name it.
    pub fn describe(&self) -> String {
        match self {
            ContextSource::Local(dir) | ContextSource::Owned { dir, .. } => {
                dir.display().to_string()
            }
            ContextSource::Empty => "an empty context".to_owned(),
            ContextSource::Tar(_) => "the tar archive on stdin".to_owned(),
            ContextSource::Http(url) | ContextSource::Git(url) => url.clone(),
        }
    }
}

fn is_http_url(value: &str) -> bool {
    value.starts_with("http://") || value.starts_with("https://")
}

/// A tar archive to be read once (stdin). Clones share the stream: the first to prepare
/// the context takes it.
#[derive(Clone)]
pub struct TarStream(Arc<Mutex<Option<Box<dyn Read + Send>>>>);

impl TarStream {
    pub fn new(reader: impl Read + Send + 'static) -> TarStream {
        TarStream(Arc::new(Mutex::new(Some(Box::new(reader)))))
    }

    fn take(&self) -> Option<Box<dyn Read + Send>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

impl std::fmt::Debug for TarStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TarStream")
    }
}

/// A request whose contexts are all local directories now, and the Dockerfile it builds:
/// what [`crate::load_definition`] reads. Holds the directories made for remote and piped
/// contexts until dropped (keep it until the build's last stage ends).
#[derive(Debug)]
pub struct Prepared {
    /// The request as given (its outputs, options, secrets, …).
    pub request: BuildRequest,
    /// The Dockerfile's bytes: the request's, or read from the prepared main context.
    pub dockerfile: Vec<u8>,
    /// Its name for messages (`-` for stdin; in a remote context, its path there).
    pub dockerfile_name: String,
    /// Every context as a directory, by name (the main one as `context`).
    pub contexts: LocalContexts,
    /// The contexts that were local directories: only their `.dockerignore` applies.
    pub(crate) ignore_files: BTreeSet<String>,
    /// Those whose owner read the ignore file (see [`ContextSource::Owned`]): its patterns
    /// are the request's options already; the build reads no file of theirs.
    pub(crate) ignores_given: BTreeSet<String>,
    /// The values of the build's secrets, read first (a Git context's credentials are
    /// among them, and a missing secret file fails the build before any download).
    pub secrets: SecretStore,
    /// The build's `--ssh` agents, checked first (a Git context over ssh uses `default`).
    pub ssh: SshStore,
    _dirs: Vec<ContextDir>,
}

/// Makes the request's main and named contexts local directories (see the module docs)
/// and settles its Dockerfile. On failure nothing is left in the state dir. Outputs that
/// cannot take the request's platforms (a docker output of several) are refused first,
/// before anything is downloaded, loaded or run, as buildx refuses them.
pub async fn prepare_contexts(
    worker: &Worker,
    mut request: BuildRequest,
    progress: &Progress,
) -> Result<Prepared> {
    for output in &request.outputs {
        output.check_platform_count(request.platforms.len().max(1))?;
    }
    let secrets = SecretStore::load(&request.secrets)?;
    let ssh = SshStore::load(&request.ssh)?;
    let git = GitSettings {
        secrets: &secrets,
        keep_git_dir: keep_git_dir(&request.options),
        ssh: &ssh,
    };
    let mut dirs = Vec::new();
    let mut contexts = LocalContexts::new();
    let mut ignore_files = BTreeSet::new();
    let mut named_excludes = Vec::new();
    let mut ignores_given = BTreeSet::new();
    let main = prepare(
        worker,
        &request.context,
        Role::Main,
        &git,
        progress,
        &mut dirs,
    )
    .await?;
    // Its Dockerfile and ignore file are read below, before the solve.
    let main_excludes = owner_excludes(&request.context);
    let reads = request.dockerfile.is_none() || main_excludes.is_none();
    written_before_read(&request.context, &main, reads).await?;
    let (dockerfile, dockerfile_name) = match &request.dockerfile {
        Some(bytes) => (bytes.clone(), request.dockerfile_name.clone()),
        None if main.downloaded_file => {
            let path = main.dir.join(DOWNLOADED);
            let bytes = std::fs::read(&path).map_err(Error::io("read", &path))?;
            check_text(&bytes, &request.context)?;
            (bytes, DOWNLOADED.to_owned())
        }
        None => (
            read_dockerfile(&main.dir, &request.dockerfile_name, &request.context)?,
            request.dockerfile_name.clone(),
        ),
    };
    if request.context.is_directory() {
        ignore_files.insert(hoist_frontend::MAIN_CONTEXT.to_owned());
    }
    if let Some(patterns) = main_excludes {
        request.options.context_excludes = patterns;
        ignores_given.insert(hoist_frontend::MAIN_CONTEXT.to_owned());
    }
    contexts.insert(
        hoist_frontend::MAIN_CONTEXT.to_owned(),
        LocalContext {
            dir: main.dir,
            linkable: main.linkable,
            listing: main.listing,
        },
    );
    for (name, source) in &request.named_contexts {
        let role = Role::Named(name);
        let named = prepare(worker, source, role, &git, progress, &mut dirs).await?;
        // Its ignore file is read before the solve.
        let excludes = owner_excludes(source);
        written_before_read(source, &named, excludes.is_none()).await?;
        if source.is_directory() {
            ignore_files.insert(name.clone());
        }
        if let Some(patterns) = excludes {
            named_excludes.push((name.clone(), patterns));
            ignores_given.insert(name.clone());
        }
        contexts.insert(
            name.clone(),
            LocalContext {
                dir: named.dir,
                linkable: named.linkable,
                listing: named.listing,
            },
        );
    }
    request
        .options
        .named_context_excludes
        .extend(named_excludes);
    Ok(Prepared {
        request,
        dockerfile,
        dockerfile_name,
        contexts,
        ignore_files,
        ignores_given,
        secrets,
        ssh,
        _dirs: dirs,
    })
}

/// The exclude patterns the owner of an [`ContextSource::Owned`] directory read from its
/// ignore file, when it did.
fn owner_excludes(source: &ContextSource) -> Option<Vec<String>> {
    match source {
        ContextSource::Owned { excludes, .. } => excludes.clone(),
        _ => None,
    }
}

/// Waits, when the build `reads` a file of the prepared context `one` before the solve
/// (its Dockerfile, its ignore file), until an owned directory still being written has
/// arrived; the local source's ops wait for the rest.
async fn written_before_read(source: &ContextSource, one: &PreparedOne, reads: bool) -> Result<()> {
    match &one.listing {
        Some(listing) if reads => listing
            .wait()
            .await
            .map(drop)
            .map_err(|reason| Error::Context {
                input: source.describe(),
                reason,
            }),
        _ => Ok(()),
    }
}

/// What Git contexts are checked out with.
pub(crate) struct GitSettings<'a> {
    /// The build's secrets (`GIT_AUTH_TOKEN[.host]`, `GIT_AUTH_HEADER[.host]`).
    pub secrets: &'a SecretStore,
    /// `--build-arg BUILDKIT_CONTEXT_KEEP_GIT_DIR=1`: the checkout keeps its `.git`.
    pub keep_git_dir: bool,
    /// The build's `--ssh` agents: ssh remotes are fetched with `default`.
    pub ssh: &'a SshStore,
}

/// BuildKit's `BUILDKIT_CONTEXT_KEEP_GIT_DIR` build argument, a Go boolean.
fn keep_git_dir(options: &hoist_frontend::BuildOptions) -> bool {
    options
        .build_args
        .get("BUILDKIT_CONTEXT_KEEP_GIT_DIR")
        .is_some_and(|v| hoist_dockerfile::go_bool::parse(v) == Some(true))
}

/// Which context is prepared: the main one, or a named one.
#[derive(Debug, Clone, Copy)]
enum Role<'a> {
    Main,
    Named(&'a str),
}

/// One prepared context.
struct PreparedOne {
    dir: PathBuf,
    /// See [`LocalContext::linkable`].
    linkable: bool,
    /// See [`LocalContext::listing`].
    listing: Option<ContextListing>,
    /// Holds only the downloaded file `context` (a main http context that is no archive).
    downloaded_file: bool,
}

async fn prepare(
    worker: &Worker,
    source: &ContextSource,
    role: Role<'_>,
    git_settings: &GitSettings<'_>,
    progress: &Progress,
    dirs: &mut Vec<ContextDir>,
) -> Result<PreparedOne> {
    let local = |dir: PathBuf| PreparedOne {
        dir,
        linkable: matches!(source, ContextSource::Owned { .. }),
        listing: match source {
            ContextSource::Owned { listing, .. } => listing.clone(),
            _ => None,
        },
        downloaded_file: false,
    };
    if let ContextSource::Local(dir) | ContextSource::Owned { dir, .. } = source {
        if !dir.is_dir() {
            return Err(Error::Context {
                input: dir.display().to_string(),
                reason: "not a directory".to_owned(),
            });
        }
        return Ok(local(dir.clone()));
    }
    let engine = worker.engine_dir();
    let held = tokio::task::spawn_blocking(move || ContextDir::create(&engine))
        .await
        .map_err(|e| Error::Task(e.to_string()))??;
    let root = held.root();
    let mut downloaded_file = false;
    match source {
        ContextSource::Local(_) | ContextSource::Owned { .. } | ContextSource::Empty => {}
        ContextSource::Tar(stream) => {
            let step = progress.step("[internal] load build context from stdin".to_owned());
            let result = unpack_stream(stream.clone(), &held).await;
            step.finish(result)?;
        }
        ContextSource::Http(url) => {
            let name = match role {
                Role::Main => "[internal] load remote build context".to_owned(),
                Role::Named(name) => format!("[context {name}] {url}"),
            };
            let step = progress.step(name);
            let result = prepare_http(worker, url, role, &held).await;
            downloaded_file = step.finish(result)?;
        }
        ContextSource::Git(url) => {
            let name = match role {
                Role::Main => format!("[internal] load git source {url}"),
                Role::Named(name) => format!("[context {name}] {url}"),
            };
            let step = progress.step(name);
            step.finish(git::checkout(worker, url, &root, git_settings).await)?;
        }
    }
    dirs.push(held);
    Ok(PreparedOne {
        dir: root,
        linkable: true,
        listing: None,
        downloaded_file,
    })
}

/// Spools a piped tar next to the root and unpacks it there.
async fn unpack_stream(stream: TarStream, held: &ContextDir) -> Result<()> {
    let (download, root) = (held.download(), held.root());
    tokio::task::spawn_blocking(move || {
        const INPUT: &str = "stdin";
        let mut reader = stream.take().ok_or_else(|| Error::Context {
            input: INPUT.to_owned(),
            reason: "the stream was already read".to_owned(),
        })?;
        let mut file = std::fs::File::create(&download).map_err(Error::io("create", &download))?;
        std::io::copy(&mut reader, &mut file).map_err(Error::io("read stdin into", &download))?;
        drop(file);
        if !is_archive(&archive::read_head(&download)?) {
            return Err(Error::Context {
                input: INPUT.to_owned(),
                reason: "not a tar archive (plain, gzip, bzip2, xz or zstd)".to_owned(),
            });
        }
        archive::unpack(&download, &root, INPUT)?;
        remove_file(&download)
    })
    .await
    .map_err(|e| Error::Task(e.to_string()))?
}

/// Downloads `url` and makes the context of it; `true` when the context is the downloaded
/// file alone (a main context that is no archive: the Dockerfile itself).
async fn prepare_http(
    worker: &Worker,
    url: &str,
    role: Role<'_>,
    held: &ContextDir,
) -> Result<bool> {
    let (download, root) = (held.download(), held.root());
    let got = download::download(worker, url, &download).await?;
    let url = url.to_owned();
    let main = matches!(role, Role::Main);
    tokio::task::spawn_blocking(move || {
        if main && is_archive(&archive::read_head(&download)?) {
            archive::unpack(&download, &root, &url)?;
            remove_file(&download)?;
            return Ok(false);
        }
        // BuildKit's http source: the file `context`, mode 0600, Last-Modified as mtime
        // (the Unix epoch without one).
        use std::os::unix::fs::PermissionsExt as _;
        let file = root.join(DOWNLOADED);
        std::fs::rename(&download, &file).map_err(Error::io("move", &download))?;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
            .map_err(Error::io("chmod", &file))?;
        let mtime = got.last_modified.unwrap_or(std::time::UNIX_EPOCH);
        filetime::set_file_mtime(&file, filetime::FileTime::from_system_time(mtime))
            .map_err(Error::io("set times of", &file))?;
        Ok(main)
    })
    .await
    .map_err(|e| Error::Task(e.to_string()))?
}

fn remove_file(path: &Path) -> Result<()> {
    std::fs::remove_file(path).map_err(Error::io("remove", path))
}

/// The Dockerfile `name` inside the prepared context `root` (resolved inside it), or
/// `dockerfile` beside it when the name's base is `Dockerfile` and there is none, as
/// BuildKit reads it.
fn read_dockerfile(root: &Path, name: &str, source: &ContextSource) -> Result<Vec<u8>> {
    let read = |name: &str| -> Result<std::io::Result<Vec<u8>>> {
        let path = scoped_path::resolve(root, name, true)?;
        Ok(std::fs::read(path))
    };
    let first = read(name)?;
    let error = match first {
        Ok(bytes) => return Ok(bytes),
        Err(e) => e,
    };
    let path = Path::new(name);
    if path.file_name().is_some_and(|base| base == "Dockerfile") {
        let lower = path.with_file_name("dockerfile");
        if let Ok(bytes) = read(&lower.to_string_lossy())? {
            return Ok(bytes);
        }
    }
    Err(Error::Context {
        input: source.describe(),
        reason: format!("failed to read dockerfile: open {name}: {error}"),
    })
}

/// Refuses a downloaded file that is to be the Dockerfile but is binary: it is neither
/// an archive nor text, and BuildKit would only fail parsing it.
fn check_text(bytes: &[u8], source: &ContextSource) -> Result<()> {
    if bytes.contains(&0) || std::str::from_utf8(bytes).is_err() {
        return Err(Error::Context {
            input: source.describe(),
            reason: "neither a tar archive (plain, gzip, bzip2, xz or zstd) nor a text \
                     Dockerfile"
                .to_owned(),
        });
    }
    Ok(())
}

impl Prepared {
    /// Whether the `.dockerignore` of context `name` applies (see [`Prepared`]).
    pub(crate) fn reads_ignore_file(&self, name: &str) -> bool {
        self.ignore_files.contains(name)
    }

    /// Whether the owner of context `name` gave its ignore patterns (see [`Prepared`]).
    pub(crate) fn ignore_given(&self, name: &str) -> bool {
        self.ignores_given.contains(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(value: &str) -> &'static str {
        match ContextSource::remote(value) {
            Some(ContextSource::Git(_)) => "git",
            Some(ContextSource::Http(_)) => "http",
            _ => "path",
        }
    }

    #[test]
    fn remote_contexts_are_told_apart_as_buildx_does() {
        assert_eq!(kind("https://example.com/repo.git"), "git");
        assert_eq!(kind("https://example.com/repo.git#main:sub"), "git");
        assert_eq!(kind("https://example.com/repo.git?ref=v1"), "git");
        assert_eq!(kind("git://example.com/repo"), "git");
        assert_eq!(kind("ssh://git@example.com/repo"), "git");
        assert_eq!(kind("git@github.com:moby/buildkit.git"), "git");
        assert_eq!(kind("github.com/moby/buildkit"), "git");
        assert_eq!(kind("https://example.com/ctx.tar.gz"), "http");
        assert_eq!(kind("http://example.com/Dockerfile"), "http");
        assert_eq!(kind("https://example.com/a.git/x.tar"), "http");
        assert_eq!(kind("ftp://example.com/a.tar"), "path");
        assert_eq!(kind("./git@host:x"), "path");
        assert_eq!(kind("some/dir"), "path");
        assert_eq!(kind("-"), "path");
    }
}
