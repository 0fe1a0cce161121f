//! Named leases: GC roots that outlive the process that set them, for owners such as the
//! build cache whose records point at blobs without naming them in `index.json`.
//!
//! A named lease is a file `<root>/named-leases/<name>` listing digests, one a line. Unlike a
//! [`crate::Lease`] it holds no lock and is never removed by garbage collection: it stays
//! until its owner replaces or removes it. Setting and removing one take the store lock, so
//! they are ordered with GC; a blob leased before GC starts is kept.
//!
//! Use: write the blobs (under a [`crate::Lease`] while they are unnamed), set the named
//! lease, then record whatever points at the blobs; remove the record first, then the lease.

use std::collections::BTreeMap;
use std::fs;
use std::io;

use hoist_oci::Digest;

use crate::atomic_file::{sync_parent, write_atomic};
use crate::error::{Error, Result};
use crate::store::ContentStore;

impl ContentStore {
    /// Makes `digests` (and what they reference) GC roots under `name` until the lease is
    /// replaced or removed, replacing what `name` held before.
    ///
    /// `name` is `[A-Za-z0-9._-]{1,200}`, not starting with '.'.
    pub fn set_named_lease(&self, name: &str, digests: &[Digest]) -> Result<()> {
        validate_lease_name(name)?;
        let dir = &self.paths().named_leases;
        let mut text = String::new();
        for digest in digests {
            text.push_str(digest.as_str());
            text.push('\n');
        }
        let _lock = self.lock()?;
        write_atomic(&dir.join(name), text.as_bytes())
    }

    /// Removes the named lease `name`; returns whether it existed. Its blobs stay until
    /// garbage collection finds nothing else keeping them.
    pub fn remove_named_lease(&self, name: &str) -> Result<bool> {
        validate_lease_name(name)?;
        let path = self.paths().named_leases.join(name);
        let _lock = self.lock()?;
        match fs::remove_file(&path) {
            Ok(()) => {
                sync_parent(&path)?;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io("remove named lease", &path, e)),
        }
    }

    /// The digests the named lease `name` holds, or `None` when there is no such lease.
    pub fn named_lease(&self, name: &str) -> Result<Option<Vec<Digest>>> {
        validate_lease_name(name)?;
        let path = self.paths().named_leases.join(name);
        match fs::read_to_string(&path) {
            Ok(text) => Ok(Some(parse_digests(&text))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("read named lease", &path, e)),
        }
    }

    /// Every named lease and its digests, by name.
    pub fn named_leases(&self) -> Result<BTreeMap<String, Vec<Digest>>> {
        let dir = &self.paths().named_leases;
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
            Err(e) => return Err(Error::io("list", dir, e)),
        };
        let mut leases = BTreeMap::new();
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("list", dir, e))?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if validate_lease_name(&name).is_err() {
                continue;
            }
            let path = entry.path();
            match fs::read_to_string(&path) {
                Ok(text) => {
                    leases.insert(name, parse_digests(&text));
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("read named lease", &path, e)),
            }
        }
        Ok(leases)
    }
}

/// The digests of a lease file; a line that does not parse protects nothing.
fn parse_digests(text: &str) -> Vec<Digest> {
    text.lines().filter_map(|line| line.parse().ok()).collect()
}

fn validate_lease_name(name: &str) -> Result<()> {
    if hoist_oci::file_name::is_plain_name(name) {
        Ok(())
    } else {
        Err(Error::InvalidLeaseName {
            name: name.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::validate_lease_name;

    #[test]
    fn lease_names() {
        for ok in ["cache-0a1b", "a", "x.y_z-1"] {
            validate_lease_name(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in ["", ".hidden", "a/b", "a b", &"x".repeat(201)] {
            assert!(
                validate_lease_name(bad).is_err(),
                "{bad:?} should be invalid"
            );
        }
    }
}
