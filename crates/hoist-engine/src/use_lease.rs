//! [`UseLease`]: what a running build uses — cache records and snapshots — written where a
//! concurrent `hoist prune` reads it, so prune never takes them away mid-build.
//!
//! A use lease is a file `<state>/engine/leases/use-<random>`, `flock`ed by the build for as
//! long as its [`crate::Worker`] lives, one `record <key hex>` or `snapshot <id>` a line.
//! [`live_uses`] reads every lease whose lock is held and removes those of dead builds (the
//! same scheme as the content store's leases). Lines are appended under the lock that
//! orders them with prune: record lines under `engine/cache.lock`, snapshot lines of image
//! layer chains under `engine/layers.lock`; prune holds both while it decides.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::Mutex;

use fs4::fs_std::FileExt;
use hoist_snapshot::SnapshotId;
use tempfile::TempPath;

use crate::error::{Error, Result};

/// The records and snapshots one running build uses.
#[derive(Debug)]
pub(crate) struct UseLease {
    file: Mutex<File>,
    /// Removes the lease file on drop.
    path: TempPath,
    /// Lines already written.
    written: Mutex<HashSet<String>>,
}

/// What every live build uses, as prune sees it.
#[derive(Debug, Default)]
pub(crate) struct LiveUses {
    /// Cache keys (hex) of records in use.
    pub records: HashSet<String>,
    /// Snapshots in use.
    pub snapshots: HashSet<SnapshotId>,
}

impl UseLease {
    /// Takes a new, empty lease in `dir`.
    pub(crate) fn take(dir: &Path) -> Result<UseLease> {
        fs::create_dir_all(dir).map_err(Error::io("create", dir))?;
        let (file, path) = tempfile::Builder::new()
            .prefix("use-")
            .tempfile_in(dir)
            .map_err(Error::io("create a lease in", dir))?
            .into_parts();
        FileExt::lock_exclusive(&file).map_err(Error::io("lock", &path))?;
        Ok(UseLease {
            file: Mutex::new(file),
            path,
            written: Mutex::new(HashSet::new()),
        })
    }

    /// Marks the cache record `key_hex` as in use.
    pub(crate) fn record(&self, key_hex: &str) -> Result<()> {
        self.write(format!("record {key_hex}"))
    }

    /// Marks the snapshot `id` (and so its parents) as in use.
    pub(crate) fn snapshot(&self, id: &SnapshotId) -> Result<()> {
        self.write(format!("snapshot {id}"))
    }

    fn write(&self, line: String) -> Result<()> {
        let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        if written.contains(&line) {
            return Ok(());
        }
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        writeln!(file, "{line}").map_err(Error::io("write", &self.path))?;
        written.insert(line);
        Ok(())
    }
}

/// Every live build's uses in `dir`; removes the leases of builds that died.
pub(crate) fn live_uses(dir: &Path) -> Result<LiveUses> {
    let mut uses = LiveUses::default();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(uses),
        Err(e) => return Err(Error::io("list", dir)(e)),
    };
    for entry in entries {
        let path = entry.map_err(Error::io("list", dir))?.path();
        let mut file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io("open", &path)(e)),
        };
        let dead = FileExt::try_lock_exclusive(&file).map_err(Error::io("lock", &path))?;
        if dead {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("remove", &path)(e)),
            }
            continue;
        }
        let mut text = String::new();
        file.read_to_string(&mut text)
            .map_err(Error::io("read", &path))?;
        for line in text.lines() {
            if let Some(key) = line.strip_prefix("record ") {
                uses.records.insert(key.to_owned());
            } else if let Some(id) = line.strip_prefix("snapshot ") {
                if let Ok(id) = SnapshotId::parse(id) {
                    uses.snapshots.insert(id);
                }
            }
        }
    }
    Ok(uses)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_lease_is_read_and_a_dropped_one_is_gone() {
        let tmp = tempfile::tempdir().unwrap();
        let lease = UseLease::take(tmp.path()).unwrap();
        lease.record("ab12").unwrap();
        lease.record("ab12").unwrap();
        lease.snapshot(&SnapshotId::parse("7").unwrap()).unwrap();
        let uses = live_uses(tmp.path()).unwrap();
        assert_eq!(uses.records, HashSet::from(["ab12".to_owned()]));
        assert_eq!(
            uses.snapshots,
            HashSet::from([SnapshotId::parse("7").unwrap()])
        );
        drop(lease);
        let uses = live_uses(tmp.path()).unwrap();
        assert!(uses.records.is_empty() && uses.snapshots.is_empty());
    }

    #[test]
    fn a_lease_left_by_a_dead_build_is_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let stale = tmp.path().join("use-stale");
        std::fs::write(&stale, "record ff\n").unwrap();
        assert!(live_uses(tmp.path()).unwrap().records.is_empty());
        assert!(!stale.exists());
    }
}
