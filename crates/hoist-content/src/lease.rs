//! [`Lease`]: GC roots held by a live writer, so blobs it writes survive until it names them.
//!
//! A lease is a file `<root>/leases/lease-<random>` listing digests, one a line, and
//! `flock`ed by its holder for as long as the [`Lease`] value lives. Garbage collection keeps
//! every digest of a lease whose lock is held; a lease whose lock it can take belongs to a
//! dead process and is removed. Creating a lease and adding to it take the store lock, so
//! they are ordered with GC: a digest added before GC starts is kept, and one added after
//! it ends is written again by the holder if GC removed it (its `has` check now says no).
//!
//! Use: take a lease, [`Lease::add`] each digest *before* writing or reusing its blob, set
//! the name, drop the lease.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::Mutex;

use fs4::fs_std::FileExt;
use hoist_oci::Digest;
use tempfile::TempPath;

use crate::error::{Error, Result};
use crate::store::ContentStore;

/// Digests protected from garbage collection while this value lives.
#[derive(Debug)]
pub struct Lease {
    store: ContentStore,
    /// Holds the lease file's lock; closing it releases the lock.
    file: Mutex<File>,
    /// Removes the lease file on drop.
    path: TempPath,
    digests: Mutex<BTreeSet<Digest>>,
}

impl ContentStore {
    /// Takes a new, empty lease.
    pub fn lease(&self) -> Result<Lease> {
        let dir = &self.paths().leases;
        fs::create_dir_all(dir).map_err(|e| Error::io("create directory", dir, e))?;
        // Under the store lock, so GC never sees the file before it is locked.
        let _lock = self.lock()?;
        let (file, path) = tempfile::Builder::new()
            .prefix("lease-")
            .tempfile_in(dir)
            .map_err(|e| Error::io("create lease in", dir, e))?
            .into_parts();
        FileExt::lock_exclusive(&file).map_err(|e| Error::io("lock", &path, e))?;
        Ok(Lease {
            store: self.clone(),
            file: Mutex::new(file),
            path,
            digests: Mutex::new(BTreeSet::new()),
        })
    }

    /// The digests of every live lease; removes the lease files of dead holders.
    /// The caller holds the store lock.
    pub(crate) fn leased_digests(&self) -> Result<Vec<Digest>> {
        let dir = &self.paths().leases;
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("list", dir, e)),
        };
        let mut digests = Vec::new();
        for entry in entries {
            let path = entry.map_err(|e| Error::io("list", dir, e))?.path();
            let mut file = match File::open(&path) {
                Ok(file) => file,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io("open lease", &path, e)),
            };
            let dead =
                FileExt::try_lock_exclusive(&file).map_err(|e| Error::io("lock", &path, e))?;
            if dead {
                match fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::io("remove stale lease", &path, e)),
                }
                continue;
            }
            let mut text = String::new();
            file.read_to_string(&mut text)
                .map_err(|e| Error::io("read lease", &path, e))?;
            // A line that does not parse protects nothing; the holder wrote whole lines.
            digests.extend(text.lines().filter_map(|line| line.parse().ok()));
        }
        Ok(digests)
    }
}

impl Lease {
    /// Protects `digest` from garbage collection until this lease is dropped; call it before
    /// writing or reusing the blob. A leased manifest or index also protects what it
    /// references, but only once it is stored itself, so lease every blob you write.
    pub fn add(&self, digest: &Digest) -> Result<()> {
        let mut digests = self.digests.lock().unwrap_or_else(|e| e.into_inner());
        if digests.contains(digest) {
            return Ok(());
        }
        let _lock = self.store.lock()?;
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        writeln!(file, "{digest}").map_err(|e| Error::io("write lease", &self.path, e))?;
        digests.insert(digest.clone());
        Ok(())
    }

    /// The digests this lease protects.
    pub fn digests(&self) -> Vec<Digest> {
        let digests = self.digests.lock().unwrap_or_else(|e| e.into_inner());
        digests.iter().cloned().collect()
    }

    /// The lease file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
