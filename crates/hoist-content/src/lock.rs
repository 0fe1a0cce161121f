//! [`StoreLock`]: the exclusive `flock(2)` on `<root>/content.lock`.
//!
//! Held while `index.json` is read, changed and replaced, and while garbage is collected, so
//! concurrent taggers (threads or processes) never lose each other's names and GC never
//! races a tagger. `flock` locks belong to the open file description, so two threads of one
//! process exclude each other too (each opens the file itself). The kernel drops the lock
//! when the file is closed, including when the process dies.

use std::fs::{File, OpenOptions};

use fs4::fs_std::FileExt;

use crate::error::{Error, Result};
use crate::store::ContentStore;

/// An exclusive lock on the store, released on drop.
#[derive(Debug)]
pub(crate) struct StoreLock {
    _file: File,
}

impl ContentStore {
    /// Blocks until this caller holds the store's exclusive lock.
    pub(crate) fn lock(&self) -> Result<StoreLock> {
        let path = &self.paths().lock;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| Error::io("open lock file", path, e))?;
        FileExt::lock_exclusive(&file).map_err(|e| Error::io("lock", path, e))?;
        Ok(StoreLock { _file: file })
    }
}
