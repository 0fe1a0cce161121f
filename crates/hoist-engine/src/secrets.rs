//! Build secrets (`--secret`): what a build is given, by id, and the values read from it
//! once, before any step runs, for `RUN --mount=type=secret`.
//!
//! A secret's value is never part of a vertex, a cache key or record, a layer or progress
//! output: only its id is (as in BuildKit). Nothing here prints a value: the `Debug` forms
//! show ids, paths and lengths.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use crate::error::{Error, Result};

/// Where a secret's bytes come from.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// A file, read when the build starts.
    File(PathBuf),
    /// The bytes themselves (an environment variable the client read).
    Value(Vec<u8>),
}

impl fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::File(path) => f.debug_tuple("File").field(path).finish(),
            SecretSource::Value(bytes) => write!(f, "Value(<{} bytes>)", bytes.len()),
        }
    }
}

/// The secrets of a build, by id.
pub type Secrets = BTreeMap<String, SecretSource>;

/// The secrets' values, read from their sources.
#[derive(Clone, Default)]
pub struct SecretStore {
    values: BTreeMap<String, Vec<u8>>,
}

impl SecretStore {
    /// Reads every file source; a file that cannot be read fails the build, naming it.
    pub fn load(secrets: &Secrets) -> Result<SecretStore> {
        let mut values = BTreeMap::new();
        for (id, source) in secrets {
            let bytes = match source {
                SecretSource::Value(bytes) => bytes.clone(),
                SecretSource::File(path) => {
                    std::fs::read(path).map_err(|source| Error::SecretFile {
                        id: id.clone(),
                        path: path.clone(),
                        source,
                    })?
                }
            };
            values.insert(id.clone(), bytes);
        }
        Ok(SecretStore { values })
    }

    /// The value of secret `id`, if the build was given it.
    pub(crate) fn get(&self, id: &str) -> Option<&[u8]> {
        self.values.get(id).map(Vec::as_slice)
    }
}

impl fmt::Debug for SecretStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.values.keys()).finish()
    }
}
