//! [`BuilderStore`]: the builders on disk, as buildx keeps them — `instances/<name>` (one
//! [`NodeGroup`] as JSON per builder), `current` (the selected builder) — and [`Txn`], the
//! exclusive `flock(2)` on `.lock` under which every read-change-write happens, so two
//! `hoist create` at once both land. Files are replaced by `hoist_content::write_atomic`
//! (temp, fsync, rename, fsync dir): a reader sees a builder whole or not at all.
//!
//! The builder `default` is never stored: it is [`NodeGroup::default_builder`], found by
//! every lookup, and the selection when `current` names nothing that exists.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use fs4::fs_std::FileExt;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::name::validate_name;
use crate::node_group::NodeGroup;
use crate::DEFAULT_BUILDER;

/// The directory of builders: `HOIST_BUILDERS_DIR`, else `$XDG_CONFIG_HOME/hoist/builders`,
/// else `~/.config/hoist/builders`.
pub fn default_dir() -> Option<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = var("HOIST_BUILDERS_DIR") {
        return Some(dir.into());
    }
    let config = var("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| var("HOME").map(|home| PathBuf::from(home).join(".config")))?;
    Some(config.join("hoist").join("builders"))
}

/// The builders under one directory.
#[derive(Debug, Clone)]
pub struct BuilderStore {
    dir: PathBuf,
}

/// The store, locked: released on drop (or when the process dies).
#[derive(Debug)]
pub struct Txn<'a> {
    store: &'a BuilderStore,
    _lock: File,
}

/// The `current` file: which builder commands use when none is named (buildx's shape,
/// without the docker context key hoist has no use for).
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Current {
    #[serde(default)]
    name: String,
}

/// A builder's stored bytes and the selection's, as they were ([`Txn::snapshot`]).
#[derive(Debug, Clone)]
pub struct Snapshot {
    name: Option<String>,
    group: Option<Vec<u8>>,
    current: Option<Vec<u8>>,
}

impl BuilderStore {
    /// The store in `dir` (created on first lock).
    pub fn new(dir: impl Into<PathBuf>) -> BuilderStore {
        BuilderStore { dir: dir.into() }
    }

    /// Its directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Blocks until this caller holds the store's lock.
    pub fn txn(&self) -> Result<Txn<'_>> {
        let instances = self.instances_dir();
        fs::create_dir_all(&instances).map_err(|e| Error::io("create", &instances, e))?;
        let path = self.dir.join(".lock");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io("open", &path, e))?;
        FileExt::lock_exclusive(&file).map_err(|e| Error::io("lock", &path, e))?;
        Ok(Txn {
            store: self,
            _lock: file,
        })
    }

    fn instances_dir(&self) -> PathBuf {
        self.dir.join("instances")
    }
}

impl Txn<'_> {
    /// Every stored builder, by name, `default` first.
    pub fn list(&self) -> Result<Vec<NodeGroup>> {
        let dir = self.store.instances_dir();
        let mut names = Vec::new();
        for entry in fs::read_dir(&dir).map_err(|e| Error::io("read", &dir, e))? {
            let entry = entry.map_err(|e| Error::io("read", &dir, e))?;
            if let Some(name) = entry.file_name().to_str() {
                if validate_name(name).is_ok_and(|n| n == name) {
                    names.push(name.to_owned());
                }
            }
        }
        names.sort();
        let mut groups = vec![NodeGroup::default_builder()];
        for name in names {
            groups.extend(self.read(&name)?);
        }
        Ok(groups)
    }

    /// The builder `name`, `default` included; `None` when there is none.
    pub fn get(&self, name: &str) -> Result<Option<NodeGroup>> {
        let name = validate_name(name)?;
        if name == DEFAULT_BUILDER {
            return Ok(Some(NodeGroup::default_builder()));
        }
        self.read(&name)
    }

    /// The builder `name`, or buildx's `no builder "x" found`.
    pub fn find(&self, name: &str) -> Result<NodeGroup> {
        self.get(name)?
            .ok_or_else(|| Error::NotFound(name.to_owned()))
    }

    /// Stores `group` (replacing the builder of that name).
    pub fn save(&self, group: &NodeGroup) -> Result<()> {
        let name = validate_name(&group.name)?;
        if name == DEFAULT_BUILDER {
            return Err(Error::ReservedName);
        }
        let bytes = serde_json::to_vec(group).map_err(|e| Error::Corrupt {
            path: self.path_of(&name),
            message: e.to_string(),
        })?;
        Ok(hoist_content::write_atomic(&self.path_of(&name), &bytes)?)
    }

    /// Removes the builder `name`; the selection falls back to `default` if it was this one.
    pub fn remove(&self, name: &str) -> Result<()> {
        let name = validate_name(name)?;
        let path = self.path_of(&name);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::NotFound(name));
            }
            Err(e) => return Err(Error::io("remove", &path, e)),
        }
        if self.current_name()? == name {
            self.set_current(DEFAULT_BUILDER)?;
        }
        Ok(())
    }

    /// The selected builder: the one `current` names, or `default`.
    pub fn current(&self) -> Result<NodeGroup> {
        let name = self.current_name()?;
        Ok(self
            .get(&name)
            .ok()
            .flatten()
            .unwrap_or_else(NodeGroup::default_builder))
    }

    /// Selects the builder `name` (which must exist).
    pub fn set_current(&self, name: &str) -> Result<()> {
        let group = self.find(name)?;
        let current = Current { name: group.name };
        let bytes = serde_json::to_vec(&current).unwrap_or_default();
        Ok(hoist_content::write_atomic(
            &self.store.dir.join("current"),
            &bytes,
        )?)
    }

    /// The stored bytes of the builder `name` (none when it is not stored or the name is not
    /// valid) and of the selection, for [`Txn::restore`].
    pub fn snapshot(&self, name: Option<&str>) -> Result<Snapshot> {
        let name = name.and_then(|n| validate_name(n).ok());
        let read = |path: PathBuf| match fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("read", &path, e)),
        };
        Ok(Snapshot {
            group: match &name {
                Some(name) => read(self.path_of(name))?,
                None => None,
            },
            name,
            current: read(self.store.dir.join("current"))?,
        })
    }

    /// Puts back what [`Txn::snapshot`] saw of the builder `name` (now stored under that
    /// name, or made since) and of the selection, byte for byte: a file that was not there
    /// is removed.
    pub fn restore(&self, name: &str, snapshot: &Snapshot) -> Result<()> {
        let name = validate_name(name)?;
        let group = if snapshot.name.as_deref() == Some(name.as_str()) {
            snapshot.group.as_deref()
        } else {
            None
        };
        let put = |path: PathBuf, bytes: Option<&[u8]>| match bytes {
            Some(bytes) => Ok(hoist_content::write_atomic(&path, bytes)?),
            None => match fs::remove_file(&path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(Error::io("remove", &path, e)),
            },
        };
        put(self.path_of(&name), group)?;
        put(self.store.dir.join("current"), snapshot.current.as_deref())
    }

    fn current_name(&self) -> Result<String> {
        let path = self.store.dir.join("current");
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(DEFAULT_BUILDER.to_owned()),
            Err(e) => return Err(Error::io("read", &path, e)),
        };
        let current: Current = serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt {
            path: path.clone(),
            message: e.to_string(),
        })?;
        Ok(if current.name.is_empty() {
            DEFAULT_BUILDER.to_owned()
        } else {
            current.name
        })
    }

    fn read(&self, name: &str) -> Result<Option<NodeGroup>> {
        let path = self.path_of(name);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("read", &path, e)),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::Corrupt {
                path,
                message: e.to_string(),
            })
    }

    fn path_of(&self, name: &str) -> PathBuf {
        self.store.instances_dir().join(name)
    }
}
