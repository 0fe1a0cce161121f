//! Where hoist keeps its state: [`StateDir`].
//!
//! The root is `/var/lib/hoist` when running as root, `$XDG_DATA_HOME/hoist` (or
//! `~/.local/share/hoist`) otherwise, and `--root` overrides both. Choosing the root is pure
//! path logic over an [`Environment`], so it is tested without touching the process
//! environment; only [`StateDir::create`] and the `open` functions touch the disk.

use std::fs::DirBuilder;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use hoist_content::ContentStore;
use hoist_snapshot::AnySnapshotter;

use crate::error::{Error, Result};
use crate::worker::create_dir_all;

/// The system-wide state dir used when running as root.
pub const SYSTEM_ROOT: &str = "/var/lib/hoist";

/// The facts about the running process that decide the default state dir.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Environment {
    /// Whether the effective user is root (uid 0).
    pub is_root: bool,
    /// `$XDG_DATA_HOME`, when set.
    pub xdg_data_home: Option<PathBuf>,
    /// `$HOME`, when set.
    pub home: Option<PathBuf>,
}

impl Environment {
    /// The environment of the current process.
    pub fn current() -> Self {
        Self {
            is_root: rustix::process::geteuid().is_root(),
            xdg_data_home: std::env::var_os("XDG_DATA_HOME").map(PathBuf::from),
            home: std::env::var_os("HOME").map(PathBuf::from),
        }
    }
}

/// The root of hoist's state: the content store, the snapshots and the engine's records.
///
/// Layout under the root:
///
/// - the content store's files (`content/`, the OCI image layout, and its `ingest/`,
///   `leases/`, `named-leases/`, `variants/`, `content.lock`; see [`ContentStore`]),
/// - `snapshots/` — the snapshotter's (see [`AnySnapshotter`]),
/// - `engine/` — cache records, layer chains, cache mounts, http records, locks, and
///   `engine/git/`: a bare repository per git remote, shared by builds (prune removes those unused for the keep duration, or all with `all`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    /// A state dir at an explicit root (the `--root` flag).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The `--root` override when given, else the default for the current process. A
    /// relative `--root` is made absolute here, against the current directory: the root's
    /// paths reach places that need absolute ones (a RUN's rootfs, mount sources).
    pub fn resolve(root_override: Option<PathBuf>) -> Result<Self> {
        match root_override {
            Some(root) => std::path::absolute(&root)
                .map(Self::new)
                .map_err(Error::io("resolve the state dir", root)),
            None => Self::default_for(&Environment::current()),
        }
    }

    /// The default state dir for `env`: `/var/lib/hoist` for root, else
    /// `$XDG_DATA_HOME/hoist`, else `$HOME/.local/share/hoist`.
    ///
    /// Relative or empty values of `XDG_DATA_HOME` are ignored, as the XDG base directory
    /// specification requires; a missing or relative `HOME` is an error.
    pub fn default_for(env: &Environment) -> Result<Self> {
        if env.is_root {
            return Ok(Self::new(SYSTEM_ROOT));
        }
        if let Some(xdg) = env.xdg_data_home.as_deref().filter(|p| p.is_absolute()) {
            return Ok(Self::new(xdg.join("hoist")));
        }
        match env.home.as_deref().filter(|p| p.is_absolute()) {
            Some(home) => Ok(Self::new(home.join(".local/share/hoist"))),
            None => Err(Error::NoStateDir),
        }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<root>/engine`: the engine's own files (cache records, layer chains, cache mounts).
    pub fn engine_dir(&self) -> PathBuf {
        self.root.join("engine")
    }

    /// `<root>/snapshots`: the snapshotter's directory.
    pub fn snapshots_dir(&self) -> PathBuf {
        self.root.join("snapshots")
    }

    /// Creates the root directory (mode 0700 for the directories it creates) if missing.
    pub fn create(&self) -> Result<()> {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.root)
            .map_err(Error::io("create state dir", &self.root))
    }

    /// Creates the state dir if needed and opens its content store.
    pub fn open_content_store(&self) -> Result<ContentStore> {
        self.create()?;
        Ok(ContentStore::open(&self.root)?)
    }

    /// The content store, snapshotter (overlay when the kernel allows) and engine
    /// directory, created if missing: what a build and an inspection (du, prune) both open.
    pub(crate) fn open(&self) -> Result<(ContentStore, AnySnapshotter, PathBuf)> {
        let store = self.open_content_store()?;
        let snapshots = self.snapshots_dir();
        create_dir_all(&snapshots)?;
        let snapshotter = AnySnapshotter::probe(&snapshots)?;
        let engine = self.engine_dir();
        create_dir_all(&engine)?;
        Ok((store, snapshotter, engine))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(is_root: bool, xdg: Option<&str>, home: Option<&str>) -> Environment {
        Environment {
            is_root,
            xdg_data_home: xdg.map(PathBuf::from),
            home: home.map(PathBuf::from),
        }
    }

    #[test]
    fn root_user_uses_var_lib() {
        let dir = StateDir::default_for(&env(true, Some("/x"), Some("/root"))).unwrap();
        assert_eq!(dir.root(), Path::new("/var/lib/hoist"));
    }

    #[test]
    fn user_prefers_xdg_data_home() {
        let dir = StateDir::default_for(&env(false, Some("/data"), Some("/home/u"))).unwrap();
        assert_eq!(dir.root(), Path::new("/data/hoist"));
    }

    #[test]
    fn user_falls_back_to_local_share() {
        for xdg in [None, Some(""), Some("relative/dir")] {
            let dir = StateDir::default_for(&env(false, xdg, Some("/home/u"))).unwrap();
            assert_eq!(dir.root(), Path::new("/home/u/.local/share/hoist"));
        }
    }

    #[test]
    fn user_without_home_is_an_error() {
        let err = StateDir::default_for(&env(false, None, None)).unwrap_err();
        assert!(matches!(err, Error::NoStateDir), "{err}");
    }

    #[test]
    fn override_wins() {
        let dir = StateDir::resolve(Some(PathBuf::from("/tmp/r"))).unwrap();
        assert_eq!(dir.root(), Path::new("/tmp/r"));
        assert_eq!(dir.engine_dir(), Path::new("/tmp/r/engine"));
        assert_eq!(dir.snapshots_dir(), Path::new("/tmp/r/snapshots"));
    }

    #[test]
    fn relative_override_is_made_absolute() {
        let dir = StateDir::resolve(Some(PathBuf::from("state"))).unwrap();
        assert!(dir.root().is_absolute(), "{}", dir.root().display());
        assert_eq!(
            dir.root(),
            std::env::current_dir().unwrap().join("state").as_path()
        );
    }

    #[test]
    fn create_makes_the_root() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::new(tmp.path().join("a/b"));
        dir.create().unwrap();
        dir.create().unwrap();
        assert!(dir.root().is_dir());
    }
}
