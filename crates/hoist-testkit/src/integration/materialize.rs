//! A case's folders copied into a temporary directory the way upstream's test created them:
//! the modes case.json records (0600 files, 0700 directories, mostly), symlinks as symlinks
//! (the conformance copy may hold them as plain files), and nothing unlisted.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use super::{Entry, IntegrationCase, Run};
use crate::error::{Result, TestkitError};

/// A case's context (and Dockerfile folder and variants) in a temporary directory, removed
/// on drop. The layout inside mirrors the case folder (`context/`, `dockerfile-dir/`,
/// `variants/<name>/Dockerfile`).
#[derive(Debug)]
pub struct MaterializedCase {
    dir: tempfile::TempDir,
    context: PathBuf,
}

impl MaterializedCase {
    /// The temporary directory (the case folder's counterpart).
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// The build context.
    pub fn context(&self) -> &Path {
        &self.context
    }

    /// The Dockerfile `run` of `case` uses, inside this directory.
    pub fn dockerfile(&self, case: &IntegrationCase, run: &Run) -> PathBuf {
        self.dir.path().join(case.dockerfile_relative(run))
    }
}

impl IntegrationCase {
    /// Copies the context (and the Dockerfile folder when separate, and the variant
    /// Dockerfiles) into a new temporary directory with the listed modes and symlinks. Fails
    /// when a listed file is missing or has another size, or the folder holds unlisted files.
    pub fn materialize(&self) -> Result<MaterializedCase> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("hoist-case-{}-", self.id))
            .tempdir()
            .map_err(TestkitError::io(
                "create a temporary directory in",
                std::env::temp_dir(),
            ))?;
        let context = dir.path().join(&self.layout.context_dir);
        self.copy_folder(
            &self.layout.context_dir,
            &self.layout.context_listing,
            dir.path(),
        )?;
        if self.layout.dockerfile_dir != self.layout.context_dir {
            self.copy_folder(
                &self.layout.dockerfile_dir,
                &self.layout.dockerfile_dir_listing,
                dir.path(),
            )?;
        }
        for variant in self.variants.values() {
            let from = self.dir.join(variant);
            let to = dir.path().join(variant);
            if let Some(parent) = to.parent() {
                fs::create_dir_all(parent).map_err(TestkitError::io("create directory", parent))?;
            }
            fs::copy(&from, &to).map_err(TestkitError::io("copy", &from))?;
            set_mode(&to, 0o600)?;
        }
        Ok(MaterializedCase { dir, context })
    }

    /// Recreates `folder` of the case (listed by `listing`) under `root`.
    fn copy_folder(&self, folder: &str, listing: &[Entry], root: &Path) -> Result<()> {
        let from_root = self.dir.join(folder);
        let to_root = root.join(folder);
        fs::create_dir_all(&to_root).map_err(TestkitError::io("create directory", &to_root))?;
        self.check_nothing_unlisted(&from_root, listing)?;
        let mut dir_modes = Vec::new();
        for entry in listing {
            let to = to_root.join(entry.path());
            if let Some(parent) = to.parent() {
                fs::create_dir_all(parent).map_err(TestkitError::io("create directory", parent))?;
            }
            match entry {
                Entry::Dir { upstream_mode, .. } => {
                    fs::create_dir_all(&to).map_err(TestkitError::io("create directory", &to))?;
                    dir_modes.push((to, upstream_mode.0));
                }
                Entry::File {
                    path,
                    upstream_mode,
                    size,
                } => {
                    let from = from_root.join(path);
                    let data = fs::read(&from).map_err(TestkitError::io("read", &from))?;
                    if data.len() as u64 != *size {
                        return Err(self.error(format!(
                            "{folder}/{path} has {} bytes, case.json says {size}",
                            data.len()
                        )));
                    }
                    fs::write(&to, data).map_err(TestkitError::io("write", &to))?;
                    set_mode(&to, upstream_mode.0)?;
                }
                Entry::Symlink { target, .. } => {
                    symlink(target, &to).map_err(TestkitError::io("create symlink", &to))?;
                }
            }
        }
        // Deepest first, so a 0500 directory does not stop its children being made (they
        // all exist by now, but keep the order safe for any mode).
        dir_modes.sort_by_key(|(path, _)| std::cmp::Reverse(path.components().count()));
        for (path, mode) in dir_modes {
            set_mode(&path, mode)?;
        }
        Ok(())
    }

    /// Every file and directory under `from_root` is in `listing`.
    fn check_nothing_unlisted(&self, from_root: &Path, listing: &[Entry]) -> Result<()> {
        for found in walkdir::WalkDir::new(from_root).min_depth(1) {
            let found = found.map_err(|err| {
                let path = err.path().unwrap_or(from_root).to_owned();
                TestkitError::io("walk", path)(err.into())
            })?;
            let relative = found.path().strip_prefix(from_root).unwrap_or(found.path());
            if !listing
                .iter()
                .any(|entry| Path::new(entry.path()) == relative)
            {
                return Err(self.error(format!(
                    "{} is not in case.json's listing",
                    found.path().display()
                )));
            }
        }
        Ok(())
    }
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(TestkitError::io("set the mode of", path))
}
